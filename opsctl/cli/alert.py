"""``opsctl alert``: the open alerts, and acknowledging one (which stops its escalation)."""

from __future__ import annotations

from typing import Annotated

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

app = typer.Typer(help="Alerts raised from checks' hard problem states.", no_args_is_help=True)

LEVELS = ("duty A", "duty B", "escalation contact")


@app.command("list")
def list_(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="Cleared alerts too.")] = False,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List the open alerts (newest first); exit code = the worst open state."""
    from opsctl.alerts import alerts
    from opsctl.contract import worst

    database, zones = open_store_for(ctx, inventory)
    try:
        rows = alerts(database, open_only=not show_all, site=site)
    finally:
        database.close()
    code = int(worst(r.state for r in rows if r.cleared is None))
    if as_json:
        emit_json(
            [
                {
                    "id": r.id,
                    "check_id": r.check_id,
                    "state": r.state.name,
                    "summary": r.summary,
                    "opened": r.opened.isoformat(),
                    "cleared": r.cleared.isoformat() if r.cleared else None,
                    "acknowledged": r.acknowledged.isoformat() if r.acknowledged else None,
                    "acknowledged_by": r.acknowledged_by,
                    "notified": LEVELS[r.escalation],
                    "flapping": r.flapping,
                    "maintenance": r.silenced,
                }
                for r in rows
            ]
        )
        raise typer.Exit(code)
    if not rows:
        typer.echo("no open alerts" if not show_all else "no alerts")
        raise typer.Exit(code)
    tz = options(ctx).tz
    print_table(
        "opsctl alerts",
        ["ID", "STATE", "CHECK", "OPENED", "ACK", "NOTIFIED", "SUMMARY"],
        [
            [
                str(r.id),
                r.state.name + (" (flapping)" if r.flapping else ""),
                r.check_id,
                local_time(r.opened, zones.get(r.site, tz)),
                r.acknowledged_by or ("cleared" if r.cleared else "-"),
                f"maintenance {r.silenced}" if r.silenced else LEVELS[r.escalation],
                r.summary,
            ]
            for r in rows
        ],
        state_column=1,
    )
    raise typer.Exit(code)


@app.command("ack")
def ack(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="The alert's id (opsctl alert list).")],
    by: Annotated[str, typer.Option("--by", help="Who takes it on.")],
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Acknowledge an alert: nobody else is escalated to, and it is not re-sent."""
    from opsctl.alerts import AlertError, acknowledge
    from opsctl.contract import utc_now

    if not by.strip():
        raise fail("--by: give the name of who takes the alert on")
    database, _ = open_store_for(ctx, inventory)
    try:
        row = acknowledge(database, alert_id, by.strip(), utc_now())
    except AlertError as error:
        raise fail(str(error)) from None
    finally:
        database.close()
    if as_json:
        emit_json({"id": row.id, "acknowledged_by": row.acknowledged_by})
        return
    typer.echo(f"alert {row.id} ({row.check_id}) acknowledged by {row.acknowledged_by}")
