"""``opsctl alert``: the open alerts, acknowledging one (which stops its escalation), and one
on-call pass run by hand or from cron."""

from __future__ import annotations

from typing import Annotated, Any

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
    open_store_for,
    options,
    print_table,
)

app = typer.Typer(help="Alerts raised from checks' hard problem states.", no_args_is_help=True)

LEVELS = ("duty A", "duty B", "escalation contact")

#: How long ``alert run`` waits for its messages to be sent, in seconds.
SEND_TIMEOUT = 60.0


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


@app.command("run")
def run(
    ctx: typer.Context,
    inventory: InventoryOption,
    as_json: JsonOption = False,
) -> None:
    """Run one on-call pass now, as ``opsctl server`` does every minute: raise, clear,
    re-send and escalate alerts, open incidents, warn of SLA clocks running out, and send
    the messages (waiting at most 60 s for them). For deployments that run opsctl from cron.

    Exit code = the worst state of the open alerts after the pass.
    """
    from opsctl.alerts import alerts
    from opsctl.contract import State, utc_now, worst
    from opsctl.notify.channels import Delivery
    from opsctl.oncall import OnCall
    from opsctl.store import StoreError

    loaded = load_inventory(inventory, as_json=as_json)
    database = open_store(ctx, loaded)
    deliveries: list[Delivery] = []
    now = utc_now()
    try:
        oncall = OnCall(database, loaded)
        record = oncall.record

        def delivered(delivery: Delivery) -> None:
            record(delivery)
            deliveries.append(delivery)

        oncall.dispatcher.on_delivery = delivered
        try:
            result = oncall.run(now)
        finally:
            complete = oncall.close(timeout=SEND_TIMEOUT)
        rows = alerts(database, open_only=True)
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()

    code = int(worst(r.state for r in rows))
    counts = {status: 0 for status in ("sent", "failed", "broken")}
    for delivery in deliveries:
        count = delivery.message.count if delivery.message is not None else 1
        counts[delivery.status if delivery.status in counts else "failed"] += count
    if not complete:
        typer.echo(
            f"opsctl: warning: not every message was delivered within {SEND_TIMEOUT:g} s; "
            "the rest are recorded as failed",
            err=True,
        )

    def shown_state(notice: Any) -> str:
        return State.OK.name if notice.reason == "recovery" else notice.alert.state.name

    if as_json:
        emit_json(
            {
                "at": now.isoformat(),
                "notices": [
                    {
                        "alert_id": n.alert.id,
                        "check_id": n.alert.check_id,
                        "site": n.alert.site,
                        "state": shown_state(n),
                        "reason": n.reason,
                        "level": n.level,
                        "notified": LEVELS[min(n.level, len(LEVELS) - 1)],
                    }
                    for n in result.notices
                ],
                "incidents": result.incidents,
                "sla_warnings": [
                    {"incident_id": incident_id, "clock": clock}
                    for incident_id, clock in result.sla_warnings
                ],
                "queued": result.queued,
                "delivered": counts,
                "complete": complete,
                "deliveries": [d.to_dict() for d in deliveries],
                "worst": State(code).name,
            }
        )
        raise typer.Exit(code)

    lines = []
    for notice in result.notices:
        level = LEVELS[min(notice.level, len(LEVELS) - 1)]
        lines.append(
            f"alert {notice.alert.id} {notice.alert.check_id} {shown_state(notice)}: "
            f"{notice.reason}, to {level}"
        )
    lines += [f"incident {number} opened" for number in result.incidents]
    lines += [
        f"incident {number}: SLA {clock} clock running out, people on duty warned"
        for number, clock in result.sla_warnings
    ]
    if not lines:
        lines.append("nothing to notify")
    lines.append(
        f"{result.queued} message{'s' if result.queued != 1 else ''} queued: "
        f"{counts['sent']} sent, {counts['failed']} failed, {counts['broken']} broken"
    )
    for delivery in deliveries:
        if not delivery.ok:
            lines.append(f"  {delivery.channel}: {delivery.status}: {delivery.detail}")
    open_count = len(rows)
    lines.append(
        f"{open_count} open alert{'s' if open_count != 1 else ''}"
        + (f", worst {State(code).name}" if open_count else "")
    )
    typer.echo("\n".join(lines))
    raise typer.Exit(code)
