"""``opsctl maintenance``: the sites' maintenance windows, as the spans they open."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

import typer

from opsctl.cli.common import (
    InventoryOption,
    JsonOption,
    chosen_sites,
    emit_json,
    load_inventory,
    print_table,
)
from opsctl.cli.duty import parse_day

app = typer.Typer(
    help="Maintenance windows: when each site's checks raise no alerts.", no_args_is_help=True
)


@app.command("list")
def list_(
    inventory: InventoryOption,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day, YYYY-MM-DD, site time (default: today)."),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", "-n", min=1, max=366, help="How many days from --from.")
    ] = 7,
    as_json: JsonOption = False,
) -> None:
    """List the maintenance windows open in a period, in each site's time: name, start, end,
    the checks covered, the reason, and whether the window is open now."""
    from zoneinfo import ZoneInfo

    from opsctl.contract import utc_now
    from opsctl.maintenance import occurrences

    first = parse_day(start, "--from") if start is not None else None
    loaded = load_inventory(inventory, as_json=as_json)
    sites = chosen_sites(loaded, site, inventory)

    now = utc_now()
    found: list[tuple[datetime, str, str, dict[str, Any]]] = []
    for current in sites:
        zone = ZoneInfo(current.timezone)
        day = first if first is not None else now.astimezone(zone).date()
        since = datetime.combine(day, time(0), zone)
        until = datetime.combine(day + timedelta(days=days), time(0), zone)
        for window in current.maintenance:
            for span in occurrences(window, current.timezone, since, until):
                found.append(
                    (
                        span.start,
                        current.name,
                        window.name,
                        {
                            "site": current.name,
                            "name": window.name,
                            "start": span.start.astimezone(zone).isoformat(),
                            "end": span.end.astimezone(zone).isoformat(),
                            "checks": list(span.checks),
                            "reason": window.reason,
                            "active": span.start <= now < span.end,
                        },
                    )
                )
    found.sort(key=lambda item: item[:3])
    windows = [item[3] for item in found]
    if as_json:
        emit_json(windows)
        return
    if not windows:
        when = f"from {first.isoformat()}" if first is not None else "from today"
        typer.echo(f"no maintenance windows {when} for {days} day{'s' if days != 1 else ''}")
        return
    print_table(
        "opsctl maintenance windows",
        ["SITE", "WINDOW", "START", "END", "ACTIVE", "CHECKS", "REASON"],
        [
            [
                w["site"],
                w["name"],
                _clock(w["start"]),
                _clock(w["end"]),
                "now" if w["active"] else "-",
                ", ".join(w["checks"]),
                w["reason"] or "-",
            ]
            for w in windows
        ],
    )


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
