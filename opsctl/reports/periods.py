"""Report periods: a day, an ISO week, a month, a quarter or a half-year, in a time zone.

A period is a run of whole local days, ``first`` to ``last`` with both included. Its ``start``
and ``end`` are the UTC instants around it (``end`` excluded), so a query against the store,
which holds UTC, selects ``start <= t < end``.

- ``parse_period(text)``: ``2026-10``, ``2026Q3``, ``2026年上半年``, ``2026-W43``,
  ``2026-10-05``, ``last-month`` and the other forms people type or the CLI receives.
- ``covering(kind, day)``: the period of a kind that contains a day.
- ``Period.code`` (``2026-10``, ``2026Q3``, ``2026H1``, ``2026-W43``, ``2026-10-05``) is stable
  and names files; ``Period.label(lang)`` titles reports in Chinese or English.
- ``format_date(day, lang)``: ``2026年10月5日`` / ``5 October 2026``.

Weeks are ISO 8601 weeks, Monday to Sunday, numbered within the ISO year: week 1 is the week
holding the year's first Thursday, so it may start in December, and some years have a week 53.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PeriodKind = Literal["day", "week", "month", "quarter", "half-year"]
Lang = Literal["zh", "en"]

KINDS: tuple[PeriodKind, ...] = ("day", "week", "month", "quarter", "half-year")
DEFAULT_TIMEZONE = "Asia/Shanghai"

#: What ``parse_period`` accepts for each kind, as shown in its error messages.
ACCEPTED_FORMS: dict[PeriodKind, tuple[str, ...]] = {
    "day": ("2026-10-05", "2026/10/05", "2026年10月5日", "today", "yesterday"),
    "week": ("2026-W43", "2026W43", "this-week", "last-week"),
    "month": ("2026-10", "2026/10", "2026年10月", "this-month", "last-month"),
    "quarter": (
        "2026Q3",
        "2026-Q3",
        "2026年第3季度",
        "2026年第三季度",
        "this-quarter",
        "last-quarter",
    ),
    "half-year": (
        "2026H1",
        "2026-H2",
        "2026年上半年",
        "2026年下半年",
        "this-half-year",
        "last-half-year",
    ),
}

_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_CHINESE_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4}


class PeriodError(ValueError):
    """Raised for text that is not a period (or not one of the kind asked for), and for
    dates, kinds or time zones that do not make a period."""


def _check_lang(lang: str) -> None:
    if lang not in ("zh", "en"):
        raise ValueError(f"unknown language {lang!r}; expected 'zh' or 'en'")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PeriodError(
            f'unknown time zone {name!r}; expected an IANA time zone like "Asia/Shanghai"'
        ) from None


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _bounds(kind: PeriodKind, day: date) -> tuple[date, date]:
    """Given a kind and a day, return the first and last day of the period holding the day."""
    if kind == "day":
        return day, day
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if kind == "month":
        first_month, months = day.month, 1
    elif kind == "quarter":
        first_month, months = (day.month - 1) // 3 * 3 + 1, 3
    elif kind == "half-year":
        first_month, months = (1 if day.month <= 6 else 7), 6
    else:
        raise PeriodError(f"unknown period kind {kind!r}; expected one of {', '.join(KINDS)}")
    return date(day.year, first_month, 1), _month_end(day.year, first_month + months - 1)


def format_date(day: date, lang: Lang = "zh") -> str:
    """Given a date, return it as ``2026年10月5日`` (``zh``) or ``5 October 2026`` (``en``).

    Raise ValueError for another language.
    """
    _check_lang(lang)
    if lang == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_EN_MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True)
class Period:
    """A day, ISO week, calendar month, quarter or half-year: ``first`` to ``last`` (both
    included), local days of ``timezone``.

    Raise PeriodError on construction if the kind is unknown, if ``first`` and ``last`` are not
    the bounds of one period of that kind, or if the time zone is unknown.
    """

    kind: PeriodKind
    first: date
    last: date
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if _bounds(self.kind, self.first) != (self.first, self.last):
            raise PeriodError(
                f"{self.first.isoformat()} to {self.last.isoformat()} is not a {self.kind}"
            )
        _zone(self.timezone)

    @property
    def start(self) -> datetime:
        """The UTC instant at which the first day begins, local time."""
        return _utc_midnight(self.first, self.timezone)

    @property
    def end(self) -> datetime:
        """The UTC instant at which the day after the last begins, local time (excluded)."""
        return _utc_midnight(self.last + timedelta(days=1), self.timezone)

    @property
    def days(self) -> list[date]:
        """Every day of the period, in order."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def previous(self) -> Period:
        """Return the period of the same kind and time zone just before this one."""
        return covering(self.kind, self.first - timedelta(days=1), self.timezone)

    def next(self) -> Period:
        """Return the period of the same kind and time zone just after this one."""
        return covering(self.kind, self.last + timedelta(days=1), self.timezone)

    @property
    def code(self) -> str:
        """The period as stable text for file names: ``2026-10-05``, ``2026-W43``,
        ``2026-10``, ``2026Q3`` or ``2026H1``."""
        year, month = self.first.year, self.first.month
        if self.kind == "day":
            return self.first.isoformat()
        if self.kind == "week":
            iso_year, week, _ = self.first.isocalendar()
            return f"{iso_year}-W{week:02d}"
        if self.kind == "month":
            return f"{year}-{month:02d}"
        if self.kind == "quarter":
            return f"{year}Q{(month - 1) // 3 + 1}"
        return f"{year}H{1 if month == 1 else 2}"

    def label(self, lang: Lang = "zh") -> str:
        """Return the period as a report title gives it, in Chinese (``2026年10月``,
        ``2026年第3季度``, ``2026年上半年``, ``2026年第43周（10月19日—10月25日）``,
        ``2026年10月5日``) or English (``October 2026``, ``Q3 2026``, ``H1 2026``,
        ``Week 43 of 2026 (19–25 Oct)``, ``5 October 2026``).

        Raise ValueError for another language.
        """
        _check_lang(lang)
        year, month = self.first.year, self.first.month
        zh = lang == "zh"
        if self.kind == "day":
            return format_date(self.first, lang)
        if self.kind == "week":
            return self._week_label(lang)
        if self.kind == "month":
            return f"{year}年{month}月" if zh else f"{_EN_MONTHS[month - 1]} {year}"
        if self.kind == "quarter":
            quarter = (month - 1) // 3 + 1
            return f"{year}年第{quarter}季度" if zh else f"Q{quarter} {year}"
        if zh:
            return f"{year}年{'上' if month == 1 else '下'}半年"
        return f"H{1 if month == 1 else 2} {year}"

    def _week_label(self, lang: Lang) -> str:
        iso_year, week, _ = self.first.isocalendar()
        first, last = self.first, self.last
        # Around New Year an ISO week holds days of two calendar years: name both years then.
        same_year = first.year == last.year == iso_year
        if lang == "zh":
            if same_year:
                days = f"{first.month}月{first.day}日—{last.month}月{last.day}日"
            else:
                days = f"{format_date(first)}—{format_date(last)}"
            return f"{iso_year}年第{week}周（{days}）"
        first_month, last_month = _EN_MONTHS[first.month - 1][:3], _EN_MONTHS[last.month - 1][:3]
        if not same_year:
            days = f"{first.day} {first_month} {first.year} – {last.day} {last_month} {last.year}"
        elif first.month == last.month:
            days = f"{first.day}–{last.day} {last_month}"
        else:
            days = f"{first.day} {first_month} – {last.day} {last_month}"
        return f"Week {week} of {iso_year} ({days})"


def _utc_midnight(day: date, timezone: str) -> datetime:
    # ZoneInfo resolves a midnight skipped by a daylight-saving change to the instant after the gap.
    return datetime.combine(day, time(), tzinfo=_zone(timezone)).astimezone(UTC)


def covering(kind: PeriodKind, day: date, timezone: str = DEFAULT_TIMEZONE) -> Period:
    """Given a kind, a local date and a time zone, return the period of that kind holding the date.

    Raise PeriodError if the kind or the time zone is unknown.
    """
    first, last = _bounds(kind, day)
    return Period(kind, first, last, timezone)


def _day(year: str, month: str, day: str) -> tuple[date, str]:
    try:
        return date(int(year), int(month), int(day)), ""
    except ValueError:
        return date.min, f"{year}-{month}-{day} is not a date"


def _week(year: str, week: str) -> tuple[date, str]:
    if int(year) < 1:
        return date.min, f"there is no year {year}"
    # 28 December always lies in the last ISO week of its year.
    weeks = date(int(year), 12, 28).isocalendar()[1]
    if not 1 <= int(week) <= weeks:
        return date.min, f"{year} has ISO weeks 1 to {weeks}"
    return date.fromisocalendar(int(year), int(week), 1), ""


def _month(year: str, month: str) -> tuple[date, str]:
    if int(year) < 1 or not 1 <= int(month) <= 12:
        return date.min, f"there is no month {month} of {year}"
    return date(int(year), int(month), 1), ""


def _quarter(year: str, quarter: str) -> tuple[date, str]:
    number = _CHINESE_DIGITS.get(quarter) or int(quarter)
    if int(year) < 1 or not 1 <= number <= 4:
        return date.min, f"there is no quarter {quarter} of {year}"
    return date(int(year), 3 * number - 2, 1), ""


def _half(year: str, half: str) -> tuple[date, str]:
    number = {"上": 1, "下": 2}.get(half) or int(half)
    if int(year) < 1 or not 1 <= number <= 2:
        return date.min, f"there is no half-year {half} of {year}"
    return date(int(year), 6 * number - 5, 1), ""


#: Each written form: its kind, its pattern (matched whole, letters in any case), and a
#: function of the captured groups returning a day of the period, or an explanation why none.
_PATTERNS: tuple[tuple[PeriodKind, re.Pattern[str], Callable[..., tuple[date, str]]], ...] = (
    ("day", re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"), _day),
    ("day", re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"), _day),
    ("day", re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日"), _day),
    ("week", re.compile(r"(\d{4})-?W(\d{1,2})", re.IGNORECASE), _week),
    ("month", re.compile(r"(\d{4})[-/](\d{1,2})"), _month),
    ("month", re.compile(r"(\d{4})年(\d{1,2})月"), _month),
    ("quarter", re.compile(r"(\d{4})-?Q(\d)", re.IGNORECASE), _quarter),
    ("quarter", re.compile(r"(\d{4})年第(\d|[一二三四])季度"), _quarter),
    ("half-year", re.compile(r"(\d{4})-?H(\d)", re.IGNORECASE), _half),
    ("half-year", re.compile(r"(\d{4})年([上下])半年"), _half),
)

#: Relative words: the kind, and how many periods back from the one holding today.
_RELATIVE: dict[str, tuple[PeriodKind, int]] = {
    "today": ("day", 0),
    "yesterday": ("day", 1),
    "this-week": ("week", 0),
    "last-week": ("week", 1),
    "this-month": ("month", 0),
    "last-month": ("month", 1),
    "this-quarter": ("quarter", 0),
    "last-quarter": ("quarter", 1),
    "this-half-year": ("half-year", 0),
    "last-half-year": ("half-year", 1),
}


def _expected(kind: PeriodKind | None) -> str:
    def forms(one: PeriodKind) -> str:
        quoted = [f'"{form}"' for form in ACCEPTED_FORMS[one]]
        return ", ".join(quoted[:-1]) + " or " + quoted[-1]

    if kind is not None:
        return f"expected a {kind} like {forms(kind)}"
    return "expected a period: " + "; ".join(f"a {one} like {forms(one)}" for one in KINDS)


def parse_period(
    text: str,
    kind: PeriodKind | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    today: date | None = None,
) -> Period:
    """Given text such as ``2026-10``, ``2026Q3``, ``2026年上半年``, ``2026-W43``,
    ``2026-10-05`` or ``last-month`` (see ``ACCEPTED_FORMS``), return the period it names in
    ``timezone``.

    Relative words count from ``today``, by default the current date in ``timezone``. With
    ``kind``, the text must name a period of that kind.

    Raise PeriodError, naming the text and the accepted forms, if the text is not a period, is
    one of another kind, or names one that does not exist (``2026-13``, ``2026-W53``); also if
    the kind or the time zone is unknown.
    """
    if kind is not None and kind not in KINDS:
        raise PeriodError(f"unknown period kind {kind!r}; expected one of {', '.join(KINDS)}")
    zone = _zone(timezone)
    raw = text.strip()
    found: tuple[PeriodKind, date] | None = None
    if raw.lower() in _RELATIVE:
        relative_kind, back = _RELATIVE[raw.lower()]
        period = covering(relative_kind, today or datetime.now(zone).date(), timezone)
        for _ in range(back):
            period = period.previous()
        found = relative_kind, period.first
    else:
        for pattern_kind, pattern, build in _PATTERNS:
            match = pattern.fullmatch(raw)
            if match is None:
                continue
            day, problem = build(*match.groups())
            if problem:
                raise PeriodError(
                    f"{text!r} is not a valid {pattern_kind}: {problem}; {_expected(kind or pattern_kind)}"
                )
            found = pattern_kind, day
            break
    if found is None:
        raise PeriodError(f"{text!r} is not a {kind or 'period'}; {_expected(kind)}")
    found_kind, day = found
    if kind is not None and found_kind != kind:
        raise PeriodError(f"{text!r} is a {found_kind}, not a {kind}; {_expected(kind)}")
    return covering(found_kind, day, timezone)
