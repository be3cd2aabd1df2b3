"""The duty roster of a site: who holds the A post (A岗, first on call) and the B post (B岗,
the backup) on each duty day, with their phones.

A duty day starts at ``shift_start`` (08:30 local unless set) and runs until the same time
the next day: at 02:00 on 2 October the duty is that of 1 October.

A roster is read from a mapping (``Roster.from_mapping``)::

    shift_start: "08:30"          # optional
    timezone: Asia/Shanghai       # optional
    people: {张工: "13800000001", 李工: "13800000002", 王工: "13800000003"}
    weekly:                       # every weekday: mon tue wed thu fri sat sun (or 周一…周日)
      mon: {A: 张工, B: 李工}
      ...
    dates:                        # overrides for single days
      2026-10-01: {A: 王工, B: 张工}
    holidays:                     # days of a holiday block: one pair, or a list taken in turn
      - {A: 王工, B: 张工}
      - {A: 李工, B: 王工}
    festivals:                    # per festival, instead of holidays (春节, 国庆节, …)
      春节: {A: 李工, B: 张工}
    workday: {A: 张工, B: 李工}     # make-up working days (调休) on a weekend

or from a CSV file (``Roster.from_csv``) whose first column is ``date`` (``日期``) or
``weekday`` (``星期``), then ``A`` and ``B`` (``A岗``, ``B岗``) and optionally their phones
(``A_phone``, ``B_phone`` or ``A电话``, ``B电话``); UTF-8 and GBK (Excel's export on Chinese
Windows) are both read. Other columns, such as 备注, are ignored.

Which entry decides a duty day, first match wins:

1. ``dates``: the day's own entry.
2. ``festivals`` / ``holidays``: a day of a holiday block (``opsctl.calendar``), weekends
   inside the block included. A list is taken in turn from the block's first day: day *n*
   of the block has entry *n* modulo the list's length. A block that two festivals share
   (国庆节、中秋节) uses the entry of the first of them that ``festivals`` names.
3. ``workday``: a Saturday or Sunday that is a make-up working day. Without a ``workday``
   entry such a day keeps its own weekday's entry: a make-up Saturday has Saturday's pair.
4. ``weekly``: the weekday's entry.

A roster without ``weekly`` is a dated roster: its ``dates`` must cover every day from the
first to the last, and asking for a day outside them is an error. The holiday calendar is
consulted only by a roster with ``holidays``, ``festivals`` or ``workday``.

Loading reports every problem at once, each naming the source and the field or line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opsctl.calendar import ENGLISH, block_of, is_workday, parse_time_of_day

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENGLISH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CHINESE_DAYS = ("一", "二", "三", "四", "五", "六", "日")

#: Every accepted weekday name → weekday number (Monday 0).
WEEKDAY_NAMES: dict[str, int] = {
    **{name: number for number, name in enumerate(WEEKDAYS)},
    **{name: number for number, name in enumerate(_ENGLISH_DAYS)},
    **{
        prefix + day: number
        for number, day in enumerate(_CHINESE_DAYS)
        for prefix in ("周", "星期", "礼拜")
    },
    **{prefix + "天": 6 for prefix in ("周", "星期", "礼拜")},
}

_ALIASES = {
    "清明": "清明节",
    "五一": "劳动节",
    "端午": "端午节",
    "中秋": "中秋节",
    "国庆": "国庆节",
}

#: Every accepted festival name (Chinese, short Chinese, English in any case) → Chinese name.
FESTIVAL_NAMES: dict[str, str] = {
    **{zh: zh for zh in ENGLISH},
    **{en.lower(): zh for zh, en in ENGLISH.items()},
    **_ALIASES,
}

_KEYS = ("people", "weekly", "dates", "holidays", "festivals", "workday", "shift_start", "timezone")
_PHONE = re.compile(r"^\+?\d[\d\- ]{4,23}$")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")

DEFAULT_SHIFT_START = time(8, 30)
DEFAULT_TIMEZONE = "Asia/Shanghai"


class RosterError(ValueError):
    """Raised with every problem found in a roster, or for a duty it cannot answer."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    phone: str


@dataclass(frozen=True, slots=True)
class Pair:
    """The names on the A and the B post."""

    a: str
    b: str


@dataclass(frozen=True, slots=True)
class Duty:
    """Who is on duty on one duty day, ``start`` to ``end``, and which roster entry decided:
    ``basis`` is ``dates``, ``festivals.春节``, ``holidays``, ``workday`` or ``weekly.mon``."""

    day: date
    a: Person
    b: Person
    basis: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Roster:
    """A site's duty roster, validated. Build it with ``from_mapping`` or ``from_csv``."""

    source: str
    people: Mapping[str, Person]
    weekly: Mapping[int, Pair] = field(default_factory=dict)
    dates: Mapping[date, Pair] = field(default_factory=dict)
    holidays: tuple[Pair, ...] = ()
    festivals: Mapping[str, tuple[Pair, ...]] = field(default_factory=dict)
    workday: Pair | None = None
    shift_start: time = DEFAULT_SHIFT_START
    timezone: str = DEFAULT_TIMEZONE

    # ----------------------------------------------------------------------- loading

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> Roster:
        """Given a roster as a mapping (parsed YAML) and where it came from (a file name or
        ``inventory.yaml sites[0].roster``), return the roster.

        Raise RosterError listing every problem: unknown keys or weekday names, a weekday
        missing from ``weekly``, a person without a phone, the same person as A and B.
        """
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise RosterError([f"{source}: expected a mapping with keys such as people, weekly"])
        for key in data:
            if key not in _KEYS:
                problems.append(
                    f"{source}: unknown key {key!r}; expected one of: {', '.join(_KEYS)}"
                )
        bad_phones: set[str] = set()
        people = _read_people(data.get("people"), source, bad_phones, problems)
        entries: list[tuple[str, Pair]] = []

        weekly: dict[int, Pair] = _read_keyed(
            data.get("weekly"), f"{source} weekly", "weekday", _weekday,
            lambda number: WEEKDAYS[number], problems, entries,
        )  # fmt: skip
        dates: dict[date, Pair] = _read_keyed(
            data.get("dates"), f"{source} dates", "date", _date, str, problems, entries
        )

        found = _read_pairs(data.get("holidays"), f"{source} holidays", problems)
        holidays = tuple(pair for _, pair in found)
        entries += found

        festivals: dict[str, tuple[Pair, ...]] = {}
        raw_festivals = data.get("festivals")
        if raw_festivals is not None:
            if not isinstance(raw_festivals, Mapping):
                problems.append(f"{source} festivals: expected a mapping of festival to pairs")
            else:
                for name, value in raw_festivals.items():
                    where = f"{source} festivals.{name}"
                    canonical = FESTIVAL_NAMES.get(str(name).strip().lower())
                    if canonical is None:
                        known = ", ".join(ENGLISH)
                        problems.append(f"{where}: unknown festival {name!r} (expected {known})")
                        continue
                    found = _read_pairs(value, where, problems)
                    if canonical in festivals:
                        problems.append(f"{where}: {canonical} is given twice")
                        continue
                    festivals[canonical] = tuple(pair for _, pair in found)
                    entries += found

        workday = None
        if data.get("workday") is not None:
            workday = _read_pair(data["workday"], f"{source} workday", problems)
            if workday is not None:
                entries.append((f"{source} workday", workday))

        shift_start = DEFAULT_SHIFT_START
        if data.get("shift_start") is not None:
            try:
                shift_start = parse_time_of_day(data["shift_start"])
            except ValueError as error:
                problems.append(f"{source} shift_start: {error}")
        timezone = str(data.get("timezone") or DEFAULT_TIMEZONE)
        if not _zone_exists(timezone):
            problems.append(
                f"{source} timezone: expected an IANA time zone like "
                f'"Asia/Shanghai", got {timezone!r}'
            )

        return cls._build(
            source=source,
            people=people,
            weekly=weekly,
            dates=dates,
            holidays=holidays,
            festivals=festivals,
            workday=workday,
            shift_start=shift_start,
            timezone=timezone,
            entries=entries,
            weekly_where=f"{source} weekly" if data.get("weekly") is not None else None,
            phone_hint="add them to people",
            bad_phones=bad_phones,
            problems=problems,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        people: Mapping[str, str] | None = None,
        shift_start: time = DEFAULT_SHIFT_START,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> Roster:
        """Given a CSV file of ``date,A,B`` or ``weekday,A,B`` rows (UTF-8 or GBK), and the
        phones of people the file has no phone column for, return the roster.

        Raise RosterError listing every problem, each with the file and line: unreadable or
        undecodable text, a missing column, a bad date or weekday, the same date or weekday
        twice, the same person as A and B, a person without a phone, a gap.
        """
        source = str(path)
        problems: list[str] = []
        try:
            raw = Path(path).read_bytes()
        except OSError as error:
            raise RosterError([f"{source}: cannot read: {error.strerror or error}"]) from None
        text = _decode(raw, source)
        rows = [
            (reader_line, row)
            for reader_line, row in _rows(text)
            if any(cell.strip() for cell in row)
        ]
        if len(rows) < 2:
            raise RosterError(
                [
                    f"{source}: no duty at all: expected a header such as date,A,B "
                    "and a row for each day or weekday"
                ]
            )
        header_line, header = rows[0]
        columns = _columns(header, f"{source}:{header_line}", problems)
        if columns is None:
            raise RosterError(problems)
        key_kind, key_at, a_at, b_at, a_phone_at, b_phone_at = columns

        phones: dict[str, tuple[str, str]] = {}  # name → (phone, where it was given)
        for name, phone in (people or {}).items():
            phones[name] = (str(phone).strip(), "the people given")
        weekly: dict[int, Pair] = {}
        dates: dict[date, Pair] = {}
        seen: dict[date | int, int] = {}
        entries: list[tuple[str, Pair]] = []
        for line, row in rows[1:]:
            where = f"{source}:{line}"

            def cell(index: int | None, row: list[str] = row) -> str:
                if index is None or index >= len(row):
                    return ""
                return row[index].strip()

            key_text = cell(key_at)
            key: date | int | None
            if key_kind == "date":
                key = _date(key_text, where, problems)
            else:
                key = _weekday(key_text, where, problems)
            names = cell(a_at), cell(b_at)
            for post, name in zip("AB", names, strict=True):
                if not name:
                    problems.append(f"{where}: no name in column {post}")
            for name, phone_at in zip(names, (a_phone_at, b_phone_at), strict=True):
                phone = cell(phone_at)
                if not name or not phone:
                    continue
                known = phones.get(name)
                if known is not None and known[0] != phone:
                    problems.append(
                        f"{where}: {name}'s phone {phone} differs from {known[0]} "
                        f"given in {known[1]}"
                    )
                elif known is None:
                    phones[name] = (phone, f"line {line}")
            if key is None or not all(names):
                continue
            if key in seen:
                shown = key if isinstance(key, date) else WEEKDAYS[key]
                problems.append(f"{where}: {shown} is already on line {seen[key]}")
                continue
            seen[key] = line
            pair = Pair(*names)
            if isinstance(key, date):
                dates[key] = pair
            else:
                weekly[key] = pair
            entries.append((where, pair))

        people_found: dict[str, Person] = {}
        bad_phones: set[str] = set()
        for name, (phone, given) in phones.items():
            if _PHONE.match(phone):
                people_found[name] = Person(name, phone)
            elif phone:
                problems.append(f"{source}: {name}'s phone {phone!r} in {given} is not a number")
                bad_phones.add(name)
        return cls._build(
            source=source,
            people=people_found,
            weekly=weekly,
            dates=dates,
            holidays=(),
            festivals={},
            workday=None,
            shift_start=shift_start,
            timezone=timezone,
            entries=entries,
            weekly_where=source if key_kind == "weekday" else None,
            phone_hint="add an A_phone or B_phone column, or pass people",
            bad_phones=bad_phones,
            problems=problems,
        )

    @classmethod
    def _build(
        cls,
        *,
        source: str,
        people: dict[str, Person],
        weekly: dict[int, Pair],
        dates: dict[date, Pair],
        holidays: tuple[Pair, ...],
        festivals: dict[str, tuple[Pair, ...]],
        workday: Pair | None,
        shift_start: time,
        timezone: str,
        entries: list[tuple[str, Pair]],
        weekly_where: str | None,
        phone_hint: str,
        bad_phones: set[str],
        problems: list[str],
    ) -> Roster:
        """The checks every roster gets, whatever it was read from. ``weekly_where`` names
        the weekly pattern when one was given (None for a dated roster). A person in
        ``bad_phones`` was already reported and is not reported again at every entry."""
        for where, pair in entries:
            if pair.a == pair.b:
                problems.append(f"{where}: {pair.a} is both A and B")
            for name in dict.fromkeys((pair.a, pair.b)):
                if name not in people and name not in bad_phones:
                    problems.append(f"{where}: {name} has no phone ({phone_hint})")
        if weekly_where is not None:
            missing = [WEEKDAYS[number] for number in range(7) if number not in weekly]
            if missing:
                problems.append(
                    f"{weekly_where}: no duty on {', '.join(missing)}: every weekday needs "
                    "an entry (or give no weekly pattern and list every day under dates)"
                )
        elif not dates:
            problems.append(f"{source}: no duty at all: give weekly (every weekday) or dates")
        else:
            gaps = _gaps(sorted(dates))
            if gaps:
                problems.append(f"{source}: no duty on {gaps}: a dated roster needs every day")
        if problems:
            raise RosterError(problems)
        return cls(
            source=source,
            people=people,
            weekly=weekly,
            dates=dates,
            holidays=holidays,
            festivals=festivals,
            workday=workday,
            shift_start=shift_start,
            timezone=timezone,
        )

    # ----------------------------------------------------------------------- asking

    @property
    def zone(self) -> ZoneInfo:
        """The roster's time zone."""
        return ZoneInfo(self.timezone)

    def duty(self, day: date) -> Duty:
        """Given a duty day, return who is on duty on it.

        Raise RosterError for a day outside a dated roster; UnknownYear if the roster needs
        the holiday calendar for a year the calendar does not know.
        """
        pair, basis = self._decide(day)
        return Duty(
            day=day,
            a=self.people[pair.a],
            b=self.people[pair.b],
            basis=basis,
            start=datetime.combine(day, self.shift_start, tzinfo=self.zone),
            end=datetime.combine(day + timedelta(days=1), self.shift_start, tzinfo=self.zone),
        )

    def _decide(self, day: date) -> tuple[Pair, str]:
        if day in self.dates:
            return self.dates[day], "dates"
        if not self.weekly:
            first, last = min(self.dates), max(self.dates)
            raise RosterError(
                [f"{self.source}: no duty on {day}: the roster covers {first} to {last}"]
            )
        if self.holidays or self.festivals:
            block = block_of(day)
            if block is not None:
                basis, pairs = "holidays", self.holidays
                for name in block.name.split("、"):
                    if name in self.festivals:
                        basis, pairs = f"festivals.{name}", self.festivals[name]
                        break
                if pairs:
                    return pairs[(day - block.first).days % len(pairs)], basis
        if self.workday is not None and day.weekday() >= 5 and is_workday(day):
            return self.workday, "workday"
        return self.weekly[day.weekday()], f"weekly.{WEEKDAYS[day.weekday()]}"

    def on_duty(self, at: datetime) -> Duty:
        """Given an instant (timezone-aware), return the duty of the duty day it falls in:
        before ``shift_start`` local time, that of the day before.

        Raise RosterError for a naive datetime or a day outside a dated roster; UnknownYear
        as ``duty`` does.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise RosterError([f"on_duty needs a timezone-aware time, got {at.isoformat()}"])
        local = at.astimezone(self.zone)
        day = local.date()
        if local.time() < self.shift_start:
            day -= timedelta(days=1)
        return self.duty(day)

    def days(self, first: date, last: date) -> list[Duty]:
        """Given two days, return the duty of every day from ``first`` to ``last`` inclusive.

        Raise RosterError if ``last`` is before ``first`` or a day cannot be answered;
        UnknownYear as ``duty`` does.
        """
        if last < first:
            raise RosterError([f"days: last {last} is before first {first}"])
        return [self.duty(first + timedelta(days=n)) for n in range((last - first).days + 1)]


# --------------------------------------------------------------------------- parts


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _read_people(
    value: Any, source: str, bad_phones: set[str], problems: list[str]
) -> dict[str, Person]:
    people: dict[str, Person] = {}
    if value is None:
        return people
    if not isinstance(value, Mapping):
        problems.append(f'{source} people: expected a mapping of name to phone, like 张工: "138…"')
        return people
    for name, phone in value.items():
        where = f"{source} people.{name}"
        name = str(name).strip()
        text = "" if phone is None or isinstance(phone, bool) else str(phone).strip()
        if not text:
            problems.append(f"{where}: {name} has no phone")
            bad_phones.add(name)
        elif not _PHONE.match(text):
            problems.append(f"{where}: expected a phone number, got {phone!r}")
            bad_phones.add(name)
        else:
            people[name] = Person(name, text)
    return people


def _read_keyed(
    raw: Any,
    where: str,
    key_name: str,
    parse_key: Callable[[Any, str, list[str]], Any],
    show: Callable[[Any], str],
    problems: list[str],
    entries: list[tuple[str, Pair]],
) -> dict[Any, Pair]:
    """Read a mapping of keys (weekdays, dates) to ``{A:, B:}`` pairs, reporting a wrong
    shape, a bad key or pair, and a key given twice; record each pair in ``entries``."""
    found: dict[Any, Pair] = {}
    if raw is None:
        return found
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of {key_name} to {{A:, B:}}")
        return found
    for name, value in raw.items():
        here = f"{where}.{name}"
        key = parse_key(name, here, problems)
        pair = _read_pair(value, here, problems)
        if key is None or pair is None:
            continue
        if key in found:
            problems.append(f"{here}: {show(key)} is given twice")
            continue
        found[key] = pair
        entries.append((here, pair))
    return found


def _read_pair(value: Any, where: str, problems: list[str]) -> Pair | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected {{A: name, B: name}}, got {value!r}")
        return None
    keys = {str(key).strip().upper(): name for key, name in value.items()}
    if set(keys) != {"A", "B"} or len(keys) != len(value):
        problems.append(f"{where}: expected exactly the keys A and B, got {list(value)}")
        return None
    names = []
    for post in "AB":
        name = keys[post]
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}.{post}: expected a name, got {name!r}")
            return None
        names.append(name.strip())
    return Pair(*names)


def _read_pairs(value: Any, where: str, problems: list[str]) -> list[tuple[str, Pair]]:
    """One pair, or a non-empty list of pairs taken in turn; each with where it was given."""
    if value is None:
        return []
    if isinstance(value, list):
        if not value:
            problems.append(f"{where}: expected a pair or a list of pairs, got an empty list")
        found = []
        for n, item in enumerate(value):
            pair = _read_pair(item, f"{where}[{n}]", problems)
            if pair is not None:
                found.append((f"{where}[{n}]", pair))
        return found
    pair = _read_pair(value, where, problems)
    return [] if pair is None else [(where, pair)]


def _weekday(name: Any, where: str, problems: list[str]) -> int | None:
    number = WEEKDAY_NAMES.get(str(name).strip().lower())
    if number is None:
        problems.append(
            f"{where}: unknown weekday {name!r} (expected {', '.join(WEEKDAYS)} or 周一…周日)"
        )
    return number


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    match = _DATE.match(str(value).strip())
    if match:
        try:
            return date(*(int(part) for part in match.groups()))
        except ValueError:
            pass
    problems.append(f"{where}: expected a date like 2026-10-01, got {str(value)!r}")
    return None


def _decode(raw: bytes, source: str) -> str:
    """UTF-8 (with or without a byte-order mark), else GBK as GB 18030 reads it."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as error:
        raise RosterError(
            [f"{source}: neither UTF-8 nor GBK text (undecodable byte at {error.start})"]
        ) from None


def _rows(text: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        yield reader.line_num, row


_KEY_COLUMNS = {"date": "date", "日期": "date", "weekday": "weekday", "星期": "weekday"}
_POST_COLUMNS = {
    "a": "A",
    "a岗": "A",
    "b": "B",
    "b岗": "B",
    "a_phone": "A phone",
    "a电话": "A phone",
    "a岗电话": "A phone",
    "b_phone": "B phone",
    "b电话": "B phone",
    "b岗电话": "B phone",
}


def _columns(
    header: list[str], where: str, problems: list[str]
) -> tuple[str, int, int, int, int | None, int | None] | None:
    """The key column's kind and the positions of the key, A, B and phone columns."""
    found: dict[str, int] = {}
    key_kind = None
    for index, title in enumerate(header):
        name = title.strip().lower().replace(" ", "")
        if name in _KEY_COLUMNS and key_kind is None:
            key_kind, found["key"] = _KEY_COLUMNS[name], index
        elif name in _POST_COLUMNS and _POST_COLUMNS[name] not in found:
            found[_POST_COLUMNS[name]] = index
    missing = [
        label
        for label, present in (
            ("date or weekday (日期 or 星期)", key_kind is not None),
            ("A (A岗)", "A" in found),
            ("B (B岗)", "B" in found),
        )
        if not present
    ]
    if missing or key_kind is None:
        problems.append(f"{where}: no column {', '.join(missing)} in the header {header}")
        return None
    return (
        key_kind,
        found["key"],
        found["A"],
        found["B"],
        found.get("A phone"),
        found.get("B phone"),
    )


def _gaps(days: list[date]) -> str:
    """The days missing between the first and the last of sorted ``days``, as runs."""
    runs = []
    for before, after in zip(days, days[1:], strict=False):
        if (after - before).days > 1:
            first, last = before + timedelta(days=1), after - timedelta(days=1)
            runs.append(str(first) if first == last else f"{first}..{last}")
    return ", ".join(runs)
