"""``opsctl schedule``: the inventory's schedules, when they run next, how their runs went,
and which server runs the scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_UNKNOWN,
    InventoryOption,
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
    from opsctl.inventory import LoadedInventory
    from opsctl.server.jobs import JobRunRow
    from opsctl.server.lease import LeaseInfo

app = typer.Typer(
    help="Show the schedules, their runs and the scheduler's leader.", no_args_is_help=True
)


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    as_json: JsonOption = False,
) -> None:
    """List the schedules: next run, last run, and which server runs the scheduler.

    Times are shown in each schedule's time zone (its own, else its site's).
    """
    from opsctl.contract import utc_now
    from opsctl.duration import format_duration
    from opsctl.server.jobs import last_runs
    from opsctl.server.lease import read_lease
    from opsctl.server.scheduler import next_run, schedule_zone
    from opsctl.store import StoreError

    loaded = load_inventory(inventory, as_json=as_json)
    now = utc_now()
    entries = []
    for schedule in loaded.inventory.schedules:
        zone = schedule_zone(schedule, loaded)
        try:
            upcoming = next_run(schedule, loaded, now)
        except ValueError as error:
            raise fail(f"{inventory}: schedule {schedule.name}: {error}") from None
        entries.append((schedule, zone, upcoming))
    database = open_store(ctx, loaded)
    try:
        last = last_runs(database)
        lease = read_lease(database)
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()

    if as_json:
        emit_json(
            {
                "schedules": [
                    {
                        "name": schedule.name,
                        "job": schedule.job,
                        "site": schedule.site,
                        "cron": schedule.cron,
                        "timezone": zone,
                        "catch_up": format_duration(schedule.catch_up),
                        "next_run": _in_zone(upcoming, zone),
                        "last_run": _run_dict(last.get(schedule.name), zone),
                    }
                    for schedule, zone, upcoming in entries
                ],
                "scheduler": _lease_dict(lease, now),
            }
        )
        return
    typer.echo(_lease_line(lease, now, options(ctx).tz))
    if not entries:
        typer.echo(f"no schedules in {inventory}")
        return
    rows = []
    for schedule, zone, upcoming in entries:
        run = last.get(schedule.name)
        rows.append(
            [
                schedule.name,
                schedule.job,
                schedule.site or "-",
                schedule.cron,
                zone,
                local_time(upcoming, zone),
                "-"
                if run is None
                else f"{local_time(run.started, zone)} {run.outcome}"
                + (f": {run.message}" if run.message else ""),
            ]
        )
    print_table(
        "opsctl schedules",
        ["SCHEDULE", "JOB", "SITE", "CRON", "TIME ZONE", "NEXT RUN", "LAST RUN"],
        rows,
    )


@app.command("runs")
def runs(
    ctx: typer.Context,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Only this schedule's runs.")
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 30m, 12h, 7d...")] = "7d",
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 200,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List the recorded runs of the schedules, newest first."""
    from opsctl.contract import utc_now
    from opsctl.duration import format_duration, parse_duration
    from opsctl.server.jobs import job_runs, schedule_names_with_runs
    from opsctl.server.scheduler import schedule_zone
    from opsctl.store import StoreError

    try:
        window = parse_duration(since)
    except ValueError as error:
        raise fail(f"--since: {error}") from None
    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    zones = _zones(loaded, schedule_zone)
    start = utc_now() - window
    database = open_store(ctx, loaded)
    try:
        if schedule is not None and schedule not in zones:
            known = set(zones) | schedule_names_with_runs(database)
            if schedule not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise fail(f"--schedule: no schedule named {schedule!r} (known: {listed})")
        rows = job_runs(database, schedule=schedule, since=start, limit=limit)
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()

    if as_json:
        emit_json({"since": start.isoformat(), "runs": [run.to_dict() for run in rows]})
        return
    which = f" of {schedule}" if schedule else ""
    if not rows:
        typer.echo(f"no runs{which} in the last {since}")
        return
    default_tz = options(ctx).tz
    table = []
    for run in rows:
        zone = zones.get(run.schedule, default_tz)
        took = "-" if run.finished is None else format_duration(run.finished - run.started)
        table.append(
            [
                local_time(run.started, zone),
                run.schedule,
                run.job,
                local_time(run.scheduled_for, zone),
                run.outcome,
                took,
                run.message,
            ]
        )
    print_table(
        f"runs{which} since {since}",
        ["STARTED", "SCHEDULE", "JOB", "DUE", "OUTCOME", "TOOK", "MESSAGE"],
        table,
    )


def _zones(loaded: LoadedInventory | None, zone_of: Any) -> dict[str, str]:
    """Each schedule's time zone, by name (none without an inventory)."""
    if loaded is None:
        return {}
    return {schedule.name: zone_of(schedule, loaded) for schedule in loaded.inventory.schedules}


def _in_zone(value: datetime | None, zone: str) -> str | None:
    from zoneinfo import ZoneInfo

    return None if value is None else value.astimezone(ZoneInfo(zone)).isoformat()


def _run_dict(run: JobRunRow | None, zone: str) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "started": _in_zone(run.started, zone),
        "finished": _in_zone(run.finished, zone),
        "scheduled_for": _in_zone(run.scheduled_for, zone),
        "outcome": run.outcome,
        "message": run.message,
        "holder": run.holder,
    }


def _lease_dict(lease: LeaseInfo | None, now: datetime) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {
        "holder": lease.holder,
        "acquired": lease.acquired.isoformat(),
        "renewed": lease.renewed.isoformat(),
        "expires": lease.expires.isoformat(),
        "live": lease.live(now),
    }


def _lease_line(lease: LeaseInfo | None, now: datetime, zone: str) -> str:
    from opsctl.duration import format_duration

    if lease is None:
        return "scheduler: no server has run it yet"
    if lease.live(now):
        ago = format_duration(max(now - lease.renewed, timedelta(0)))
        return (
            f"scheduler: run by {lease.holder} since {local_time(lease.acquired, zone)}, "
            f"renewed {local_time(lease.renewed, zone)} ({ago} ago)"
        )
    return (
        f"scheduler: no server runs it now (last run by {lease.holder} until "
        f"{local_time(lease.expires, zone)})"
    )


__all__ = ["app", "list_schedules", "runs"]
