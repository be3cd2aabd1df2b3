"""``opsctl status``: what is not OK now, and since when."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.cli.common import (
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    local_time,
    open_store_for,
    options,
    print_table,
)


def status(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="Show OK checks too.")] = False,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show the checks that are not OK now and since when; exit code = the worst state."""
    from opsctl.contract import State, utc_now, worst
    from opsctl.duration import format_duration

    database, zones = open_store_for(ctx, inventory)
    try:
        rows = database.all_statuses(site) if show_all else database.problems(site)
    finally:
        database.close()
    now = utc_now()
    code = int(worst(State(r.state) for r in rows))
    if as_json:
        emit_json(
            {
                "worst": code,
                "checks": [
                    {
                        "check_id": r.check_id,
                        "site": r.site,
                        "target": r.target,
                        "kind": r.kind,
                        "state": State(r.state).name,
                        "state_type": r.state_type,
                        "attempt": r.attempt,
                        "since": r.since.isoformat(),
                        "last_checked": r.last_checked.isoformat(),
                        "summary": r.summary,
                    }
                    for r in rows
                ],
            }
        )
        raise typer.Exit(code)
    if not rows:
        typer.echo("no checks recorded yet" if show_all else "all checks OK")
        raise typer.Exit(code)
    default_tz = options(ctx).tz
    table = [
        [
            State(r.state).name + (" (soft)" if r.state_type == "soft" else ""),
            r.check_id,
            f"{local_time(r.since, zones.get(r.site, default_tz))} ({format_duration(now - r.since)})",
            r.summary,
        ]
        for r in rows
    ]
    print_table("opsctl status", ["STATE", "CHECK", "SINCE", "SUMMARY"], table, state_column=0)
    raise typer.Exit(code)
