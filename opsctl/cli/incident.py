"""``opsctl incident``: the incident log — open, acknowledge, note, resolve, list, show.

``list`` and ``show`` judge each incident on its site's SLA (the inventory's ``sla:``) at a
moment, ``--now``: the clocks as they stood then, a step recorded later counting as not done
yet. ``list --breaching`` is a monitoring check over the open incidents.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_UNKNOWN,
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store,
    open_store_for,
    options,
    print_table,
)

if TYPE_CHECKING:
    from opsctl.incidents import Clock, Incident
    from opsctl.inventory import LoadedInventory, Site

app = typer.Typer(help="The incident log the SLA is judged on.", no_args_is_help=True)

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When it happened, ISO 8601 with a zone offset (default: now), e.g. "
        "2026-11-23T09:40+08:00.",
    ),
]


NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Judge the SLA clocks as they stood at this moment, ISO 8601 with a zone offset "
        "(default: now); a step recorded later counts as not done yet.",
    ),
]
WithinOption = Annotated[
    str,
    typer.Option(
        "--within",
        help="How little clock time left counts as breaching soon, e.g. 30m or 1h.",
    ),
]


def _when(value: str | None, option: str = "--at") -> datetime | None:
    """Given an option's ISO 8601 text (or None), return the aware datetime (or None); exit 2
    naming the option if it is malformed or has no zone offset."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option}: expected an ISO 8601 time like 2026-11-23T09:40+08:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise fail(f"{option}: give a zone offset, e.g. {value}+08:00")
    return parsed


def _dict(incident: Any) -> dict[str, Any]:
    return {
        "id": incident.id,
        "site": incident.site,
        "system": incident.system,
        "severity": incident.severity,
        "category": incident.category,
        "title": incident.title,
        "description": incident.description,
        "reporter": incident.reporter,
        "source": incident.source,
        "opened": incident.opened.isoformat(),
        "acknowledged": incident.acknowledged.isoformat() if incident.acknowledged else None,
        "acknowledged_by": incident.acknowledged_by,
        "resolved": incident.resolved.isoformat() if incident.resolved else None,
        "root_cause": incident.root_cause,
        "actions": incident.actions,
        "notes": [
            {"at": n.at.isoformat(), "author": n.author, "text": n.text} for n in incident.notes
        ],
    }


def _done(incident: Any, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(_dict(incident))
    else:
        typer.echo(f"incident {incident.id} {verb}: {incident.title}")


@app.command("open")
def open_(
    ctx: typer.Context,
    site: Annotated[str, typer.Option("--site", "-s", help="The site.")],
    system: Annotated[str, typer.Option("--system", help="The system affected, e.g. 预约平台.")],
    title: Annotated[str, typer.Option("--title", help="One line: what is wrong.")],
    reporter: Annotated[str, typer.Option("--reporter", help="Who reported it.")],
    severity: Annotated[
        str, typer.Option("--severity", help="critical, major, minor or complaint.")
    ] = "major",
    category: Annotated[str, typer.Option("--category", help="e.g. 网络, 数据库, 接口.")] = "",
    description: Annotated[str, typer.Option("--description", help="What was seen.")] = "",
    at: AtOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Open an incident."""
    from opsctl.incidents import IncidentError, open_incident

    database, zones = open_store_for(ctx, inventory)
    try:
        if zones and site not in zones:
            raise fail(f"{inventory}: no site named {site!r} (sites: {', '.join(sorted(zones))})")
        incident = open_incident(
            database, site=site, system=system, severity=severity, title=title,
            reporter=reporter, category=category, description=description, opened=_when(at),
        )  # fmt: skip
    except IncidentError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    _done(incident, as_json, "opened")


@app.command("ack")
def ack(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="The incident's id.")],
    by: Annotated[str, typer.Option("--by", help="Who answered.")],
    at: AtOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Record the first reply to an incident."""
    from opsctl.incidents import IncidentError, acknowledge

    database, _ = open_store_for(ctx, inventory)
    try:
        incident = acknowledge(database, incident_id, by, _when(at))
    except IncidentError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    _done(incident, as_json, f"acknowledged by {incident.acknowledged_by}")


@app.command("note")
def note(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="The incident's id.")],
    text: Annotated[str, typer.Argument(help="The note.")],
    by: Annotated[str, typer.Option("--by", help="Who writes it.")],
    at: AtOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Add a note to an incident."""
    from opsctl.incidents import IncidentError, add_note

    database, _ = open_store_for(ctx, inventory)
    try:
        incident = add_note(database, incident_id, by, text, _when(at))
    except IncidentError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    _done(incident, as_json, "noted")


@app.command("resolve")
def resolve_(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="The incident's id.")],
    cause: Annotated[str, typer.Option("--cause", help="The root cause.")] = "",
    actions: Annotated[str, typer.Option("--actions", help="What was done.")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who solved it.")] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Record that an incident is solved, with its cause and the actions taken."""
    from opsctl.incidents import IncidentError, resolve

    database, _ = open_store_for(ctx, inventory)
    try:
        incident = resolve(
            database, incident_id, root_cause=cause, actions=actions, at=_when(at), by=by
        )
    except IncidentError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    _done(incident, as_json, "resolved")


# --------------------------------------------------------------------------- SLA clocks


def _clocks(
    site: Site | None, incident: Incident, now: datetime, soon: timedelta
) -> dict[str, Clock | None] | None:
    """Return the incident's respond, resolve and onsite clocks on its site's SLA, or None
    when there is no site (no inventory) or the site has no SLA."""
    from opsctl.incidents import sla_clocks

    if site is None or site.sla is None:
        return None
    return sla_clocks(site.sla, incident, now, soon)


def _span(value: timedelta | None) -> str:
    from opsctl.duration import format_duration

    seconds = round(value.total_seconds()) if value is not None else 0
    return format_duration(seconds) if seconds > 0 else "0s"


def _minute(value: datetime, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _words(clock: Clock) -> str:
    """The verdict in words: ``breached by 1h 30m``, ``running, 7h left``, ``met``."""
    if clock.state == "breached":
        # Done after hours, past a due time at the close of business: late, by no clock time.
        overdue = _span(clock.overdue)
        return "breached" if overdue == "0s" else f"breached by {overdue}"
    if clock.state in ("running", "breaching soon"):
        return f"{clock.state}, {_span(clock.remaining)} left"
    if clock.state == "unknown":
        return f"unknown: {clock.reason}"
    return clock.state


def _cell(clocks: dict[str, Clock | None] | None, kind: str, tz: str) -> str:
    """A table cell: ``breached by 30m (due 2026-10-08 08:30)``."""
    if clocks is None:
        return "no SLA"
    clock = clocks[kind]
    if clock is None:
        return "no target"
    if kind == "onsite":
        return _minute(clock.due, tz) if clock.due else _words(clock)
    return f"{_words(clock)} (due {_minute(clock.due, tz)})" if clock.due else _words(clock)


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else round(value.total_seconds())


def _sla_dict(clocks: dict[str, Clock | None] | None, tz: str) -> dict[str, Any] | None:
    from zoneinfo import ZoneInfo

    if clocks is None:
        return None
    return {
        kind: None
        if clock is None
        else {
            "due": clock.due.astimezone(ZoneInfo(tz)).isoformat() if clock.due else None,
            "state": clock.state,
            "remaining_seconds": _seconds(clock.remaining),
            "overdue_seconds": _seconds(clock.overdue),
            "reason": clock.reason,
        }
        for kind, clock in clocks.items()
    }


#: The monitoring code of a clock state, for ``list --breaching``.
_CODES = {"breaching soon": 1, "breached": 2, "unknown": 3}


def _breach_code(incident: Incident, clocks: dict[str, Clock | None] | None, now: datetime) -> int:
    """Given an incident, its clocks and the moment judged, return 0 unless the incident was
    open then with its respond (while unacknowledged) or resolve clock breaching soon (1),
    breached (2) or impossible to judge (3); the worst of them, a breach first."""
    if clocks is None or incident.opened > now:
        return 0
    if incident.resolved is not None and incident.resolved <= now:
        return 0
    watched = [clocks["resolve"]]
    if incident.acknowledged is None or incident.acknowledged > now:
        watched.append(clocks["respond"])
    return _worst(_CODES.get(clock.state, 0) for clock in watched if clock is not None)


def _worst(codes: Iterable[int]) -> int:
    """The code to exit with: a breach (2) outweighs a clock that cannot be judged (3)."""
    found = set(codes)
    return 2 if 2 in found else max(found, default=0)


def _judging(
    inventory: Path | None, now_text: str | None, within: str, as_json: bool
) -> tuple[LoadedInventory | None, datetime, timedelta]:
    """Read the options every judging command shares; exit 2 on bad input."""
    from opsctl.contract import utc_now
    from opsctl.duration import parse_duration

    now = _when(now_text, "--now") or utc_now()
    try:
        soon = parse_duration(within)
    except ValueError as error:
        raise fail(f"--within: {error}") from None
    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    return loaded, now, soon


def _alert_dict(number: int, row: Any) -> dict[str, Any]:
    """A linked alert as JSON; only its id when it is not among the site's alerts."""
    if row is None:
        return {"id": number, "check_id": None, "state": None, "summary": None,
                "opened": None, "cleared": None}  # fmt: skip
    return {
        "id": row.id,
        "check_id": row.check_id,
        "state": row.state.name,
        "summary": row.summary,
        "opened": row.opened.isoformat(),
        "cleared": row.cleared.isoformat() if row.cleared else None,
    }


def _site_of(loaded: LoadedInventory | None, name: str) -> Site | None:
    return loaded.site(name) if loaded is not None else None


@app.command("list")
def list_(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only unresolved ones.")] = False,
    breaching: Annotated[
        bool,
        typer.Option(
            "--breaching",
            help="Only incidents open at --now whose respond clock (while unacknowledged) or "
            "resolve clock has run out or has at most --within left; needs the inventory.",
        ),
    ] = False,
    within: WithinOption = "30m",
    now_text: NowOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List incidents, newest first, each judged on its site's SLA from the inventory.

    With --breaching the exit code is a monitoring one: 2 if an SLA clock is already
    breached, else 3 if a clock cannot be judged (the holiday calendar has no data for its
    year), else 1 if one is breaching soon, else 0.
    """
    from opsctl.incidents import incidents
    from opsctl.store import StoreError

    loaded, now, soon = _judging(inventory, now_text, within, as_json)
    if breaching and loaded is None:
        raise fail(
            "--breaching judges incidents on their site's SLA: give the inventory with -i "
            "or OPSCTL_INVENTORY"
        )
    database = open_store(ctx, loaded)
    try:
        rows = incidents(database, site=site, open_only=open_only)
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()
    judged = [(i, _clocks(_site_of(loaded, i.site), i, now, soon)) for i in rows]
    code = 0
    if breaching:
        codes = [(i, clocks, _breach_code(i, clocks, now)) for i, clocks in judged]
        judged = [(i, clocks) for i, clocks, found in codes if found]
        code = _worst(found for _, _, found in codes)
    zones = {s.name: s.timezone for s in loaded.inventory.sites} if loaded else {}
    tz = options(ctx).tz
    if as_json:
        emit_json(
            [{**_dict(i), "sla": _sla_dict(clocks, zones.get(i.site, tz))} for i, clocks in judged]
        )
        raise typer.Exit(code)
    if not judged:
        typer.echo("no incident is breaching its SLA" if breaching else "no incidents")
        raise typer.Exit(code)
    onsite = any(clocks is not None and clocks["onsite"] is not None for _, clocks in judged)
    headers = ["ID", "SEVERITY", "SITE", "SYSTEM", "OPENED", "ACKNOWLEDGED", "RESOLVED"]
    headers += ["RESPOND", "RESOLVE", *(["ONSITE DUE"] if onsite else []), "TITLE"]
    table = []
    for i, clocks in judged:
        zone = zones.get(i.site, tz)
        table.append(
            [
                str(i.id),
                i.severity,
                i.site,
                i.system,
                local_time(i.opened, zone),
                local_time(i.acknowledged, zone),
                local_time(i.resolved, zone),
                _cell(clocks, "respond", zone),
                _cell(clocks, "resolve", zone),
                *([_cell(clocks, "onsite", zone)] if onsite else []),
                i.title,
            ]
        )
    print_table("opsctl incidents", headers, table)
    raise typer.Exit(code)


@app.command("show")
def show(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="The incident's id.")],
    within: WithinOption = "30m",
    now_text: NowOption = None,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show one incident with its SLA clocks, its linked alerts and its notes."""
    from opsctl.alerts import alerts
    from opsctl.incidents import IncidentError, get
    from opsctl.store import StoreError

    loaded, now, soon = _judging(inventory, now_text, within, as_json)
    database = open_store(ctx, loaded)
    try:
        incident = get(database, incident_id)
        linked = {
            row.id: row
            for row in alerts(database, open_only=False, site=incident.site)
            if row.id in incident.alerts
        }
    except IncidentError as error:
        raise fail(str(error)) from None
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()
    site = _site_of(loaded, incident.site)
    clocks = _clocks(site, incident, now, soon)
    tz = site.timezone if site is not None else options(ctx).tz
    if as_json:
        emit_json(
            {
                **_dict(incident),
                "sla": _sla_dict(clocks, tz),
                "alerts": [_alert_dict(number, linked.get(number)) for number in incident.alerts],
            }
        )
        return
    lines = [
        f"incident {incident.id}: {incident.title}",
        f"  site {incident.site}, system {incident.system}, severity {incident.severity}"
        + (f", category {incident.category}" if incident.category else ""),
        f"  reported by {incident.reporter} ({incident.source})",
        f"  opened       {local_time(incident.opened, tz)}",
        f"  acknowledged {local_time(incident.acknowledged, tz)}"
        + (f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""),
        f"  resolved     {local_time(incident.resolved, tz)}",
    ]
    if clocks is None:
        lines.append("  SLA: no SLA")
    else:
        lines.append(f"  SLA at {local_time(now, tz)}:")
        for kind, clock in clocks.items():
            if clock is None:
                if kind != "onsite":
                    lines.append(f"    {kind:<8} no target")
                continue
            due = f"due {_minute(clock.due, tz)}" if clock.due else "due unknown"
            words = "on-site arrival is not recorded" if kind == "onsite" else _words(clock)
            lines.append(f"    {kind:<8} {due}  {words}")
    if incident.description:
        lines.append(f"  description: {incident.description}")
    if incident.root_cause:
        lines.append(f"  root cause: {incident.root_cause}")
    if incident.actions:
        lines.append(f"  actions: {incident.actions}")
    if incident.alerts:
        lines.append("  alerts:")
    for number in incident.alerts:
        row = linked.get(number)
        if row is None:
            lines.append(f"    alert {number}")
            continue
        cleared = f", cleared {local_time(row.cleared, tz)}" if row.cleared else ""
        lines.append(
            f"    alert {row.id} {row.check_id} {row.state.name} since "
            f"{local_time(row.opened, tz)}{cleared}: {row.summary}"
        )
    for n in incident.notes:
        lines.append(f"  {local_time(n.at, tz)} {n.author}: {n.text}")
    typer.echo("\n".join(lines))
