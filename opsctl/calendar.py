"""China's public holidays and make-up working days (调休), as the State Council announces them.

The arrangement is taken from the ``chinesecalendar`` package (import name
``chinese_calendar``), which follows each year's notice of the General Office of the State
Council: the statutory days off, and the weekend days that become working days in exchange.
A year the package does not know raises ``UnknownYear``; nothing here guesses from weekends.

- ``is_workday(day)``: a Monday-to-Friday that is not a day off, or a make-up working day.
- ``HolidayBlock``: the consecutive days off of one festival (or of two that share them, as
  中秋节 and 国庆节 did in 2023 and 2025), the weekend days inside or joined to them
  included, and the make-up working days traded for them.
- ``is_holiday(day)`` / ``holiday_name(day)`` / ``block_of(day)``: whether a day lies in such
  a block, and which. An ordinary weekend is neither a workday nor a holiday.
- ``blocks(year)`` and ``next_block(after)``.

Also here, for the clocks and rosters built on the calendar: ``parse_time_of_day`` and the
pydantic types ``TimeOfDay`` and ``TimeZoneName``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chinese_calendar.constants import holidays as _DAYS_OFF, workdays as _MAKEUP_DAYS
from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

LIBRARY = "chinesecalendar"
try:
    LIBRARY_VERSION = version(LIBRARY)
except PackageNotFoundError:  # imported from a source tree that was never installed
    LIBRARY_VERSION = "(version unknown)"

#: Each festival as the library names it → (Chinese name of the State Council notices, English).
_FESTIVALS: dict[str, tuple[str, str]] = {
    "New Year's Day": ("元旦", "New Year's Day"),
    "Spring Festival": ("春节", "Spring Festival"),
    "Tomb-sweeping Day": ("清明节", "Tomb-Sweeping Day"),
    "Labour Day": ("劳动节", "Labour Day"),
    "Dragon Boat Festival": ("端午节", "Dragon Boat Festival"),
    "Mid-autumn Festival": ("中秋节", "Mid-Autumn Festival"),
    "National Day": ("国庆节", "National Day"),
    "Anti-Fascist 70th Day": (
        "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
        "70th Anniversary of the Victory of the Chinese People's War of Resistance",
    ),
}

#: Chinese festival name → English name.
ENGLISH: dict[str, str] = {zh: en for zh, en in _FESTIVALS.values()}


class UnknownYear(LookupError):
    """Raised for a year whose holiday arrangement the calendar library does not know."""

    def __init__(self, year: int) -> None:
        first, last = known_years()
        advice = "upgrade it" if year > last else f"it starts in {first}"
        super().__init__(
            f"China's holiday arrangement for {year} is not known to {LIBRARY} "
            f"{LIBRARY_VERSION} (it knows {first}-{last}): {advice}"
        )
        self.year = year


@dataclass(frozen=True, slots=True)
class HolidayBlock:
    """One run of consecutive days off, ``first`` to ``last`` inclusive, and the make-up
    working days traded for it (sorted; empty when none were).

    ``name`` is the Chinese name of its festival (``春节``), or of both festivals when two
    share the block (``国庆节、中秋节``); ``name_en`` is the English one.
    """

    name: str
    name_en: str
    first: date
    last: date
    makeup_days: tuple[date, ...] = ()

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def days(self) -> list[date]:
        """Return every day of the block, first to last."""
        return [self.first + timedelta(days=offset) for offset in range(len(self))]


def known_years() -> tuple[int, int]:
    """Return the first and the last year whose arrangement the library knows."""
    return min(_DAYS_OFF).year, max(_DAYS_OFF).year


def _check_day(day: date) -> None:
    if isinstance(day, datetime):
        raise TypeError(
            f"expected a date, got the datetime {day.isoformat()}: take its date in the "
            "site's time zone first"
        )
    _check_year(day.year)


def _check_year(year: int) -> None:
    first, last = known_years()
    if not first <= year <= last:
        raise UnknownYear(year)


def _off(day: date) -> bool:
    """Whether ``day`` (of a known year) is a day off: a holiday, or a weekend day that is no
    make-up working day."""
    if day in _DAYS_OFF:
        return True
    return day.weekday() >= 5 and day not in _MAKEUP_DAYS


@dataclass(frozen=True, slots=True)
class _Index:
    by_year: dict[int, tuple[HolidayBlock, ...]]
    by_day: dict[date, HolidayBlock]
    ordered: tuple[HolidayBlock, ...]


@lru_cache(maxsize=1)
def _index() -> _Index:
    """Build every block the library knows: each maximal run of days off that holds at least
    one statutory holiday, named after the festivals in it, with their make-up days."""
    first_year, last_year = known_years()
    day, end = date(first_year, 1, 1), date(last_year, 12, 31)
    runs: list[tuple[date, date, list[str]]] = []
    current: tuple[date, list[str]] | None = None
    while day <= end + timedelta(days=1):
        if day <= end and _off(day):
            if current is None:
                current = (day, [])
            festival = _DAYS_OFF.get(day)
            if festival is not None and festival not in current[1]:
                current[1].append(festival)
        elif current is not None:
            if current[1]:
                runs.append((current[0], day - timedelta(days=1), current[1]))
            current = None
        day += timedelta(days=1)

    makeups: dict[int, list[date]] = {index: [] for index in range(len(runs))}
    for makeup, festival in _MAKEUP_DAYS.items():
        candidates = [index for index, run in enumerate(runs) if festival in run[2]]
        if not candidates:
            continue

        def distance(index: int, makeup: date = makeup) -> int:
            first, last, _ = runs[index]
            return min(abs((makeup - first).days), abs((makeup - last).days))

        makeups[min(candidates, key=distance)].append(makeup)

    ordered = []
    for index, (first, last, festivals) in enumerate(runs):
        names = [_FESTIVALS.get(festival, (festival, festival)) for festival in festivals]
        ordered.append(
            HolidayBlock(
                name="、".join(zh for zh, _ in names),
                name_en=" and ".join(en for _, en in names),
                first=first,
                last=last,
                makeup_days=tuple(sorted(makeups[index])),
            )
        )
    by_year: dict[int, list[HolidayBlock]] = {}
    by_day: dict[date, HolidayBlock] = {}
    for block in ordered:
        by_year.setdefault(block.last.year, []).append(block)
        for member in block.days():
            by_day[member] = block
    return _Index(
        by_year={year: tuple(found) for year, found in by_year.items()},
        by_day=by_day,
        ordered=tuple(ordered),
    )


def is_workday(day: date) -> bool:
    """Given a day, return True if people in China work on it: Monday to Friday unless it is
    a day off, and the make-up working days (调休) on weekends.

    Raise UnknownYear if the library does not know the day's year, TypeError for a datetime.
    """
    _check_day(day)
    return not _off(day)


def block_of(day: date) -> HolidayBlock | None:
    """Given a day, return the holiday block it lies in, or None. Raise UnknownYear, or
    TypeError for a datetime."""
    _check_day(day)
    return _index().by_day.get(day)


def is_holiday(day: date) -> bool:
    """Given a day, return True if it lies in a holiday block (an ordinary weekend does not).

    Raise UnknownYear if the library does not know the day's year.
    """
    return block_of(day) is not None


def holiday_name(day: date, *, english: bool = False) -> str | None:
    """Given a day, return the Chinese name of the holiday block it lies in (``春节``), or
    its English name with ``english=True``; None for a day outside every block.

    Raise UnknownYear if the library does not know the day's year.
    """
    block = block_of(day)
    if block is None:
        return None
    return block.name_en if english else block.name


def blocks(year: int) -> list[HolidayBlock]:
    """Given a year, return its holiday blocks in order: those that end in it (a New Year's
    block from 30 December to 1 January belongs to the year it ends in).

    Raise UnknownYear if the library does not know the year.
    """
    _check_year(year)
    return list(_index().by_year.get(year, ()))


def next_block(after: date) -> HolidayBlock | None:
    """Given a day, return the first holiday block that begins after it (a block already
    under way on ``after`` is not the next one), or None when the library knows no later
    block: its data ends before the next one is announced.

    Raise UnknownYear if the library does not know the year of ``after``, TypeError for a
    datetime.
    """
    _check_day(after)
    for block in _index().ordered:
        if block.first > after:
            return block
    return None


# --------------------------------------------------------------------------- times of day

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")

TIME_HINT = 'a time of day like "08:30" or "18:00"'


def parse_time_of_day(value: str | int | time) -> time:
    """Given ``"08:30"`` (or a ``time``), return the time of day. Raise ValueError otherwise.

    An int is YAML 1.1's reading of an unquoted ``8:30`` (sexagesimal: 8 × 60 + 30 = 510) and
    is read back as that hour and minute.
    """
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"expected {TIME_HINT} without a time zone, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {TIME_HINT}, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < 24 * 60:
            raise ValueError(f"expected {TIME_HINT}, got {value!r}")
        return time(value // 60, value % 60)
    match = _CLOCK.match(str(value))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"expected {TIME_HINT}, got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _time_of_day(value: Any) -> time:
    try:
        return parse_time_of_day(value)
    except ValueError as error:
        raise PydanticCustomError("time_of_day", "{reason}", {"reason": str(error)}) from None


def _zone_name(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PydanticCustomError(
            "timezone",
            'expected an IANA time zone like "Asia/Shanghai", got {value}',
            {"value": repr(value)},
        ) from None
    return str(value)


#: A pydantic field type: a time of day written ``"08:30"``, held as a ``time``.
TimeOfDay = Annotated[
    time,
    BeforeValidator(_time_of_day),
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str),
]

#: A pydantic field type: an IANA time zone name, checked against the zone database.
TimeZoneName = Annotated[str, BeforeValidator(_zone_name)]
