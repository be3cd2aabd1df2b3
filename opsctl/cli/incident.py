"""``opsctl incident``: the incident log — open, acknowledge, note, resolve, list, show."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from opsctl.cli.common import (
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    local_time,
    open_store_for,
    options,
    print_table,
)

app = typer.Typer(help="The incident log the SLA is judged on.", no_args_is_help=True)

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When it happened, ISO 8601 with a zone offset (default: now), e.g. "
        "2026-11-23T09:40+08:00.",
    ),
]


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"--at: expected an ISO 8601 time like 2026-11-23T09:40+08:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise fail(f"--at: give a zone offset, e.g. {value}+08:00")
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


@app.command("list")
def list_(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only unresolved ones.")] = False,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List incidents, newest first."""
    from opsctl.incidents import incidents

    database, zones = open_store_for(ctx, inventory)
    try:
        rows = incidents(database, site=site, open_only=open_only)
    finally:
        database.close()
    if as_json:
        emit_json([_dict(i) for i in rows])
        return
    if not rows:
        typer.echo("no incidents")
        return
    tz = options(ctx).tz
    print_table(
        "opsctl incidents",
        ["ID", "SEVERITY", "SITE", "SYSTEM", "OPENED", "ACKNOWLEDGED", "RESOLVED", "TITLE"],
        [
            [
                str(i.id),
                i.severity,
                i.site,
                i.system,
                local_time(i.opened, zones.get(i.site, tz)),
                local_time(i.acknowledged, zones.get(i.site, tz)),
                local_time(i.resolved, zones.get(i.site, tz)),
                i.title,
            ]
            for i in rows
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="The incident's id.")],
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show one incident with its notes."""
    from opsctl.incidents import IncidentError, get

    database, zones = open_store_for(ctx, inventory)
    try:
        incident = get(database, incident_id)
    except IncidentError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    if as_json:
        emit_json(_dict(incident))
        return
    tz = zones.get(incident.site, options(ctx).tz)
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
    if incident.description:
        lines.append(f"  description: {incident.description}")
    if incident.root_cause:
        lines.append(f"  root cause: {incident.root_cause}")
    if incident.actions:
        lines.append(f"  actions: {incident.actions}")
    for n in incident.notes:
        lines.append(f"  {local_time(n.at, tz)} {n.author}: {n.text}")
    typer.echo("\n".join(lines))
