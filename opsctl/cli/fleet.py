"""``opsctl fleet``: the dispenser fleet — its status by vendor and region, one device's
history, importing a vendor's device registry, and a simulated fleet to drive a server."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_UNKNOWN,
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store,
    options,
    print_table,
)

if TYPE_CHECKING:
    from opsctl.fleet import Rules
    from opsctl.inventory import LoadedInventory

app = typer.Typer(
    help="The dispenser fleet: status by vendor and region, device history, registries.",
    no_args_is_help=True,
)

#: Devices listed under "worst offenders" unless --top says otherwise.
TOP = 10


def _context(
    inventory: Path | None, *, as_json: bool = False
) -> tuple[LoadedInventory | None, Rules, dict[str, str]]:
    """Load the optional inventory; return it, the fleet rules and each site's time zone."""
    from opsctl.fleet import Rules

    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    if loaded is None:
        return None, Rules(), {}
    zones = {site.name: site.timezone for site in loaded.inventory.sites}
    return loaded, Rules.from_inventory(loaded.inventory), zones


def _duration(text: str, option: str) -> timedelta:
    """Parse a duration option, or exit 2 naming the option."""
    from opsctl.duration import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as error:
        raise fail(f"{option}: {error}") from None
    return value


def _store_failure(error: Exception) -> typer.Exit:
    return fail(f"store: {error}", EXIT_UNKNOWN)


@app.command("status")
def status(
    ctx: typer.Context,
    vendor: Annotated[str | None, typer.Option("--vendor", help="Only this vendor.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    top: Annotated[
        int, typer.Option("--top", min=0, help="How many worst offenders to list.")
    ] = TOP,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show device counts per vendor, region and status, and the devices down longest.

    Counts of online, late, low-stock, faulty and offline devices per vendor and region, then
    the devices offline or faulty for the longest. Statuses are judged now on the fleet's
    rules (the inventory's fleets; defaults without one), so they are right even if the
    server has not swept yet.
    """
    from collections import Counter

    from opsctl.contract import utc_now
    from opsctl.duration import format_duration
    from opsctl.fleet import DOWN, STATUSES, describe_counts, offline_percent
    from opsctl.store import StoreError
    from opsctl.store.fleet import current, latest_reasons

    loaded, rules, zones = _context(inventory, as_json=as_json)
    now = utc_now()
    database = open_store(ctx, loaded)
    try:
        devices = current(database, rules, now, vendor=vendor, region=region, site=site)
        offenders = sorted(
            (device for device in devices if device.status in DOWN),
            key=lambda device: (device.since, device.device_id),
        )[:top]
        reasons = latest_reasons(database, [d.device_id for d in offenders if d.reason is None])
    except StoreError as error:
        raise _store_failure(error) from None
    finally:
        database.close()

    groups: dict[tuple[str, str], Counter[str]] = {}
    totals: Counter[str] = Counter()
    for device in devices:
        groups.setdefault((device.vendor, device.region), Counter())[device.status] += 1
        totals[device.status] += 1
    offender_rows = [
        {
            "device_id": device.device_id,
            "vendor": device.vendor,
            "region": device.region,
            "site": device.site,
            "status": device.status,
            "since": device.since,
            "for_seconds": (now - device.since).total_seconds(),
            "reason": device.reason or reasons.get(device.device_id, ""),
        }
        for device in offenders
    ]
    if as_json:
        emit_json(
            {
                "at": now.isoformat(),
                "devices": sum(totals.values()),
                "totals": {name: totals[name] for name in STATUSES},
                "offline_percent": round(offline_percent(totals), 2),
                "groups": [
                    {
                        "vendor": group_vendor,
                        "region": group_region,
                        "devices": sum(counts.values()),
                        **{name: counts[name] for name in STATUSES},
                        "offline_percent": round(offline_percent(counts), 2),
                    }
                    for (group_vendor, group_region), counts in sorted(groups.items())
                ],
                "offenders": [{**row, "since": row["since"].isoformat()} for row in offender_rows],
            }
        )
        return
    if not devices:
        typer.echo(
            "no devices in the store"
            + (" matching the filters" if (vendor or region or site) else "")
        )
        return
    rows = [
        [
            group_vendor,
            group_region or "-",
            f"{sum(counts.values()):,}",
            *(f"{counts[name]:,}" for name in STATUSES),
            f"{offline_percent(counts):.1f}%",
        ]
        for (group_vendor, group_region), counts in sorted(groups.items())
    ]
    headers = ["VENDOR", "REGION", "DEVICES", "ONLINE", "LATE", "LOW STOCK", "FAULTY"]
    print_table("fleet status", [*headers, "OFFLINE", "UNKNOWN", "OFFLINE %"], rows)
    typer.echo(describe_counts(totals))
    if offender_rows:
        default_tz = options(ctx).tz
        typer.echo("")
        print_table(
            "worst offenders",
            ["DEVICE", "VENDOR", "REGION", "STATUS", "SINCE", "REASON"],
            [
                [
                    row["device_id"],
                    row["vendor"],
                    row["region"] or "-",
                    row["status"],
                    f"{local_time(row['since'], zones.get(row['site'], default_tz))} "
                    f"({format_duration(now - row['since'])})",
                    row["reason"],
                ]
                for row in offender_rows
            ],
        )


@app.command("show")
def show(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The device id, e.g. ZJ-3301-A-000123.")],
    since: Annotated[
        str, typer.Option("--since", help="Window of the timeline and availability (e.g. 7d).")
    ] = "7d",
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show one device: registration, latest heartbeat, status changes, availability.

    Times are shown in the device's site's time zone; the status changes and the
    availability are over the --since window.
    """
    from opsctl.contract import utc_now
    from opsctl.duration import format_duration
    from opsctl.fleet import DeviceState, status_at, transitions
    from opsctl.store import StoreError
    from opsctl.store.fleet import availability_by, device, flips

    window = _duration(since, "--since")
    loaded, rules, zones = _context(inventory, as_json=as_json)
    now = utc_now()
    start = now - window
    database = open_store(ctx, loaded)
    try:
        row = device(database, device_id)
        if row is None:
            raise fail(f"no device {device_id!r} in the store at {database.url}", EXIT_BAD_INPUT)
        timeline = flips(database, device_id, start)
        measured = availability_by(
            database, start, now, "device", rules=rules, now=now, device_id=device_id
        )
    except StoreError as error:
        raise _store_failure(error) from None
    finally:
        database.close()

    rule = rules.rule_for(row.vendor)
    state = DeviceState(
        device_id=row.device_id,
        vendor=row.vendor,
        status=row.status,
        last_heartbeat=row.last_heartbeat,
        interval=row.interval,
        reported_status=row.reported_status,
        fault_code=row.fault_code,
        fault_message=row.fault_message,
        stock=row.stock,
    )
    status_now, moved = status_at(state, rule, now)
    status_since = moved or row.status_since
    # The changes silence has brought about that no sweep has written yet belong to it too.
    pending = [flip for flip in transitions(state, rule, now) if flip.at >= start]
    changes: list[Any] = [*timeline, *pending]
    availability = measured[0] if measured else None
    zone = zones.get(row.site, options(ctx).tz)
    if as_json:
        emit_json(
            {
                "device": {
                    "device_id": row.device_id,
                    "vendor": row.vendor,
                    "site": row.site,
                    "region": row.region,
                    "address": row.address,
                    "registered": row.registered,
                    "first_seen": _iso(row.first_seen),
                },
                "status": status_now,
                "since": status_since.isoformat(),
                "heartbeat": {
                    "received": _iso(row.last_heartbeat),
                    "reported": _iso(row.last_reported),
                    "count": row.heartbeats,
                    "status": row.reported_status or None,
                    "fault_code": row.fault_code,
                    "fault_message": row.fault_message,
                    "stock": row.stock,
                    "temperature": row.temperature,
                    "door": row.door,
                    "firmware": row.firmware,
                    "interval": row.interval,
                },
                "flips": [
                    {
                        "at": flip.at.isoformat(),
                        "from": flip.from_status,
                        "to": flip.to_status,
                        "reason": flip.reason,
                    }
                    for flip in changes
                ],
                "availability": None
                if availability is None
                else {
                    "start": start.isoformat(),
                    "end": now.isoformat(),
                    "ratio": None
                    if availability.ratio != availability.ratio
                    else availability.ratio,
                    "up_seconds": availability.up,
                    "down_seconds": availability.down,
                    "unknown_seconds": availability.unknown,
                },
            }
        )
        return
    where = ", ".join(
        part for part in (row.vendor, row.region, row.site and f"site {row.site}") if part
    )
    typer.echo(f"{row.device_id} ({where})")
    if row.address:
        typer.echo(f"  address:        {row.address}")
    typer.echo(
        "  registered:     "
        + ("yes (vendor registry)" if row.registered else "no (learned from its heartbeats)")
        + (f"; first heard {local_time(row.first_seen, zone)}" if row.first_seen else "")
    )
    typer.echo(
        f"  status:         {status_now} since {local_time(status_since, zone)} "
        f"({format_duration(max(now - status_since, timedelta(0)))})"
    )
    if row.last_heartbeat is None:
        typer.echo("  last heartbeat: never")
    else:
        said = [row.reported_status]
        if row.fault_code:
            said.append(row.fault_code + (":" if row.fault_message else ""))
        if row.fault_message:
            said.append(row.fault_message)
        reported = " ".join(said)
        typer.echo(
            f"  last heartbeat: {local_time(row.last_heartbeat, zone)} "
            f"({format_duration(max(now - row.last_heartbeat, timedelta(0)))} ago; device clock "
            f"{local_time(row.last_reported, zone)}), {row.heartbeats:,} in all"
        )
        facts = [f"reported {reported}"]
        if row.temperature is not None:
            facts.append(f"{row.temperature:g}°C")
        if row.door:
            facts.append(f"door {row.door}")
        if row.firmware:
            facts.append(f"firmware {row.firmware}")
        facts.append(
            f"every {format_duration(row.interval)}" if row.interval else "interval not given"
        )
        typer.echo(f"                  {', '.join(facts)}")
        for index, item in enumerate(row.stock):
            low = item.get("low")
            mark = f" (low ≤ {low})" if low is not None else ""
            capacity = f"/{item['capacity']}" if item.get("capacity") is not None else ""
            label = "stock:" if index == 0 else ""
            typer.echo(
                f"  {label:<16}{item.get('name') or item['item']} {item['level']}{capacity}{mark}"
            )
    if availability is not None:
        ratio = availability.ratio
        shown = "unknown (no status in the window)" if ratio != ratio else f"{ratio * 100:.2f}%"
        typer.echo(
            f"  availability:   {shown} over {format_duration(window)} "
            f"(down {format_duration(availability.down)}"
            + (f", unknown {format_duration(availability.unknown)}" if availability.unknown else "")
            + ")"
        )
    if not changes:
        typer.echo(f"no status changes in the last {format_duration(window)}")
        return
    typer.echo("")
    print_table(
        f"{row.device_id}: status changes",
        ["AT", "FROM", "TO", "REASON"],
        [
            [local_time(flip.at, zone), flip.from_status or "-", flip.to_status, flip.reason]
            for flip in changes
        ],
    )


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@app.command("import")
def import_registry(
    ctx: typer.Context,
    csv_file: Annotated[
        Path, typer.Argument(metavar="CSV", help="The vendor's device list (CSV).")
    ],
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Register the devices of a vendor's device list (CSV).

    Header: device_id,vendor,region,site,address (UTF-8, with or without BOM, or GBK). New
    devices are unknown until their first heartbeat; a device without a site gets the site
    of the fleet that lists its vendor. Any error imports nothing.
    """
    from opsctl.store import StoreError
    from opsctl.store.fleet import RegistryInvalid, load_registry

    loaded, rules, _ = _context(inventory, as_json=as_json)
    database = open_store(ctx, loaded)
    try:
        count = load_registry(database, csv_file, rules)
    except RegistryInvalid as invalid:
        if as_json:
            emit_json({"imported": 0, "errors": invalid.errors})
        else:
            for error in invalid.errors:
                typer.echo(error, err=True)
            number = len(invalid.errors)
            typer.echo(
                f"{csv_file}: {number} error{'s' if number != 1 else ''}; nothing imported",
                err=True,
            )
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except StoreError as error:
        raise _store_failure(error) from None
    finally:
        database.close()
    if as_json:
        emit_json({"imported": count, "errors": []})
    else:
        typer.echo(f"imported {count} device{'s' if count != 1 else ''} from {csv_file}")


@app.command("simulate")
def simulate(
    server: Annotated[
        str, typer.Option("--server", help="The server's URL, e.g. http://127.0.0.1:8080.")
    ],
    devices: Annotated[int, typer.Option("--devices", min=1, help="Simulated devices.")] = 100,
    vendors: Annotated[
        int, typer.Option("--vendors", min=1, max=26, help="Vendors (vendor-a, vendor-b, ...).")
    ] = 3,
    token: Annotated[
        list[str] | None,
        typer.Option(
            "--token",
            help='VENDOR=TOKEN, once per vendor (also OPSCTL_VENDOR_TOKENS="a=...,b=...").',
        ),
    ] = None,
    duration: Annotated[
        str, typer.Option("--duration", help="How long to run (0s: one heartbeat per device).")
    ] = "10m",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same fleet.")] = 1,
    interval: Annotated[
        str, typer.Option("--interval", help="The devices' heartbeat interval.")
    ] = "60s",
    as_json: JsonOption = False,
) -> None:
    """Drive a simulated fleet of dispensers against a live server.

    Heartbeats are posted as the devices send them, per vendor in batches, with each
    vendor's token. Reports what was sent, accepted and refused, and the latency of the
    requests; exits 1 if any batch failed. Tokens are never printed.
    """
    from opsctl.fleet_sim import Simulator, drive, parse_tokens

    if not server.startswith(("http://", "https://")):
        raise fail(f"--server: expected a URL starting with http:// or https://, got {server!r}")
    length = _duration(duration, "--duration")
    every = _duration(interval, "--interval")
    try:
        tokens = parse_tokens(token or [], os.environ)
        simulator = Simulator(devices, vendors, seed, interval=round(every.total_seconds()))
    except ValueError as error:
        raise fail(str(error)) from None
    missing = [vendor for vendor in simulator.vendors if vendor not in tokens]
    if missing:
        raise fail(
            f"no token for {', '.join(missing)}: create one with opsctl token create --vendor "
            f"NAME and give --token VENDOR=TOKEN (or OPSCTL_VENDOR_TOKENS)"
        )

    def progress(report: Any) -> None:
        if not as_json:
            typer.echo(report.describe(), err=True)

    report = drive(simulator, server, tokens, length, progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        typer.echo(report.describe())
        for error, count in report.errors.most_common():
            typer.echo(f"  {count} batch{'es' if count != 1 else ''}: {error}")
    if report.errors:
        raise typer.Exit(1)
