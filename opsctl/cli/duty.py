"""``opsctl duty``: who holds the A and the B post, from each site's roster, holiday-aware."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_UNKNOWN,
    InventoryOption,
    JsonOption,
    chosen_sites,
    emit_json,
    fail,
    load_inventory,
    print_table,
)

if TYPE_CHECKING:
    from opsctl.inventory import Site
    from opsctl.roster import Duty, Person, Roster

app = typer.Typer(help="The duty roster: who is on call, and when.", no_args_is_help=True)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_day(text: str, option: str) -> date:
    """Given a day as ``YYYY-MM-DD`` and the option it came from, return it, or exit 2
    naming the option."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{option}: expected a date like 2026-10-01, got {text!r}") from None


def _phone(phone: str, full: bool) -> str:
    from opsctl.masking import mask

    return phone if full else mask(phone)


def _person(person: Person, full: bool) -> dict[str, str]:
    return {"name": person.name, "phone": _phone(person.phone, full)}


def _holiday(day: date) -> str | None:
    from opsctl.calendar import UnknownYear, holiday_name

    try:
        return holiday_name(day)
    except UnknownYear:
        # Only a roster with holidays, festivals or workday needs the calendar; a weekly
        # roster still answers for a year the calendar does not know.
        return None


def _day_dict(duty: Duty, full: bool) -> dict[str, Any]:
    return {
        "day": duty.day.isoformat(),
        "weekday": WEEKDAYS[duty.day.weekday()].lower(),
        "holiday": _holiday(duty.day),
        "basis": duty.basis,
        "start": duty.start.isoformat(),
        "end": duty.end.isoformat(),
        "a": _person(duty.a, full),
        "b": _person(duty.b, full),
    }


def _fallback(site: Site, full: bool) -> list[dict[str, str]]:
    """The contacts rung at a site without a roster: those of role A岗/B岗 (or A/B)."""
    found = []
    for contact in site.contacts:
        post = contact.role.strip().upper().removesuffix("岗")
        if post in ("A", "B"):
            found.append({"post": post, "name": contact.name, "phone": _phone(contact.phone, full)})
    return found


def _duties(roster: Roster, first: date | None, days: int, now: datetime) -> list[Duty]:
    """The duties of ``days`` days from ``first``, or from the duty day under way ``now``.
    Raise RosterError or UnknownYear as the roster does."""
    if first is None:
        first = roster.on_duty(now).day
    return roster.days(first, first + timedelta(days=days - 1))


@app.command("show")
def show(
    inventory: InventoryOption,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    day: Annotated[
        str | None,
        typer.Option(
            "--date", help="First duty day, YYYY-MM-DD (default: the duty day under way now)."
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", "-n", min=1, max=366, help="How many duty days.")
    ] = 1,
    phones: Annotated[
        bool, typer.Option("--phones", help="Show phone numbers in full (masked otherwise).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show who holds the A and the B post on each duty day, its start and end, and which
    roster entry decided (weekly.mon, holidays, festivals.春节, workday or dates).

    Exit code 3 if a roster cannot answer: a year China's holiday calendar does not know yet,
    or a day outside a dated roster.
    """
    from opsctl.calendar import UnknownYear
    from opsctl.contract import utc_now
    from opsctl.roster import RosterError

    first = parse_day(day, "--date") if day is not None else None
    loaded = load_inventory(inventory, as_json=as_json)
    sites = chosen_sites(loaded, site, inventory)
    if site is None:
        sites = [s for s in sites if s.name in loaded.rosters]
        if not sites:
            message = f"no site in {inventory} has a duty roster (give a site one under duty:)"
            if as_json:
                emit_json([])
            else:
                typer.echo(message)
            return

    now = utc_now()
    entries: list[dict[str, Any]] = []
    unanswered = False
    for current in sites:
        roster = loaded.rosters.get(current.name)
        entry: dict[str, Any] = {"site": current.name, "roster": roster is not None}
        if roster is None:
            entry["contacts"] = _fallback(current, phones)
            entries.append(entry)
            continue
        entry["timezone"] = roster.timezone
        try:
            entry["days"] = [_day_dict(d, phones) for d in _duties(roster, first, days, now)]
        except (RosterError, UnknownYear) as error:
            unanswered = True
            entry["days"] = []
            entry["error"] = str(error)
        entries.append(entry)

    code = EXIT_UNKNOWN if unanswered else 0
    if as_json:
        emit_json(entries)
        raise typer.Exit(code)
    rows = []
    for entry in entries:
        if not entry["roster"]:
            people = ", ".join(
                f"{c['name']} ({c['post']}岗 {c['phone']})" for c in entry["contacts"]
            )
            typer.echo(
                f"site {entry['site']} has no duty roster; alerts ring its contacts of role "
                f"A岗/B岗: {people or 'none'}"
            )
        elif "error" in entry:
            typer.echo(f"opsctl: site {entry['site']}: {entry['error']}", err=True)
        for item in entry.get("days", []):
            weekday = WEEKDAYS[date.fromisoformat(item["day"]).weekday()]
            rows.append(
                [
                    entry["site"],
                    f"{item['day']} {weekday}",
                    item["holiday"] or "-",
                    f"{item['a']['name']} {item['a']['phone']}",
                    f"{item['b']['name']} {item['b']['phone']}",
                    _clock(item["start"]),
                    _clock(item["end"]),
                    item["basis"],
                ]
            )
    if rows:
        print_table(
            "opsctl duty",
            ["SITE", "DAY", "HOLIDAY", "A", "B", "FROM", "TO", "BASIS"],
            rows,
        )
    raise typer.Exit(code)


def _clock(iso: str) -> str:
    """An ISO time in its own zone as ``2026-10-01 08:30``."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
