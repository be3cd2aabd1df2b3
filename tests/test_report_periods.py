"""Report periods: parsing every written form, ISO weeks, bounds in UTC, labels and codes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from opsctl.reports.periods import (
    Period,
    PeriodError,
    covering,
    format_date,
    parse_period,
)


@pytest.mark.parametrize(
    ("text", "kind", "first", "last"),
    [
        ("2026-10", "month", date(2026, 10, 1), date(2026, 10, 31)),
        ("2026/10", "month", date(2026, 10, 1), date(2026, 10, 31)),
        ("2026年10月", "month", date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-3", "month", date(2026, 3, 1), date(2026, 3, 31)),
        ("2026年2月", "month", date(2026, 2, 1), date(2026, 2, 28)),
        ("2028-02", "month", date(2028, 2, 1), date(2028, 2, 29)),  # leap year
        ("2100-02", "month", date(2100, 2, 1), date(2100, 2, 28)),  # not a leap year
        ("2000-02", "month", date(2000, 2, 1), date(2000, 2, 29)),  # leap: divisible by 400
        ("2026Q3", "quarter", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026q1", "quarter", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30)),
        ("2026年第4季度", "quarter", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026年第三季度", "quarter", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026H1", "half-year", date(2026, 1, 1), date(2026, 6, 30)),
        ("2026-H2", "half-year", date(2026, 7, 1), date(2026, 12, 31)),
        ("2026年上半年", "half-year", date(2026, 1, 1), date(2026, 6, 30)),
        ("2026年下半年", "half-year", date(2026, 7, 1), date(2026, 12, 31)),
        ("2026-W43", "week", date(2026, 10, 19), date(2026, 10, 25)),
        ("2026W43", "week", date(2026, 10, 19), date(2026, 10, 25)),
        ("2026-w01", "week", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-W53", "week", date(2026, 12, 28), date(2027, 1, 3)),  # 2026 starts on a Thursday
        ("2020-W53", "week", date(2020, 12, 28), date(2021, 1, 3)),
        ("2021-W01", "week", date(2021, 1, 4), date(2021, 1, 10)),
        ("2026-10-05", "day", date(2026, 10, 5), date(2026, 10, 5)),
        ("2026/10/5", "day", date(2026, 10, 5), date(2026, 10, 5)),
        ("2026年10月5日", "day", date(2026, 10, 5), date(2026, 10, 5)),
        ("2028-02-29", "day", date(2028, 2, 29), date(2028, 2, 29)),
        ("  2026-10  ", "month", date(2026, 10, 1), date(2026, 10, 31)),
    ],
)
def test_parse_written_forms(text: str, kind: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.kind, period.first, period.last) == (kind, first, last)
    assert period.timezone == "Asia/Shanghai"
    assert parse_period(text, kind=kind) == period  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "today", "code"),
    [
        ("today", date(2026, 1, 1), "2026-01-01"),
        ("yesterday", date(2026, 1, 1), "2025-12-31"),
        ("yesterday", date(2028, 3, 1), "2028-02-29"),
        ("this-week", date(2026, 1, 1), "2026-W01"),
        ("last-week", date(2026, 1, 1), "2025-W52"),
        ("last-week", date(2026, 10, 26), "2026-W43"),  # a Monday
        ("this-month", date(2026, 1, 1), "2026-01"),
        ("last-month", date(2026, 1, 1), "2025-12"),
        ("last-month", date(2026, 3, 31), "2026-02"),
        ("this-quarter", date(2026, 6, 30), "2026Q2"),
        ("last-quarter", date(2026, 1, 15), "2025Q4"),
        ("last-quarter", date(2026, 7, 1), "2026Q2"),
        ("this-half-year", date(2026, 7, 1), "2026H2"),
        ("last-half-year", date(2026, 1, 1), "2025H2"),
        ("last-half-year", date(2026, 12, 31), "2026H1"),
        ("Last-Month", date(2026, 5, 20), "2026-04"),
    ],
)
def test_parse_relative_words(text: str, today: date, code: str) -> None:
    assert parse_period(text, today=today).code == code


def test_relative_words_default_to_today_in_the_zone() -> None:
    # 17:00 UTC on 31 October is 01:00 on 1 November in Shanghai, 23:00 on 31 October in Urumqi.
    with time_machine.travel(datetime(2026, 10, 31, 17, tzinfo=UTC), tick=False):
        assert parse_period("this-month").code == "2026-11"
        assert parse_period("this-month", timezone="Asia/Urumqi").code == "2026-10"
        assert parse_period("yesterday").code == "2026-10-31"
        assert parse_period("yesterday", timezone="Asia/Urumqi").code == "2026-10-30"


def test_parse_keeps_the_time_zone() -> None:
    assert parse_period("2026-10", timezone="Asia/Urumqi").timezone == "Asia/Urumqi"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "2026Q3",
            "month",
            "'2026Q3' is a quarter, not a month; expected a month like \"2026-10\", "
            '"2026/10", "2026年10月", "this-month" or "last-month"',
        ),
        (
            "last-month",
            "day",
            "'last-month' is a month, not a day; expected a day like \"2026-10-05\", "
            '"2026/10/05", "2026年10月5日", "today" or "yesterday"',
        ),
        (
            "2026-10",
            "week",
            "'2026-10' is a month, not a week; expected a week like \"2026-W43\", "
            '"2026W43", "this-week" or "last-week"',
        ),
        (
            "October",
            "month",
            "'October' is not a month; expected a month like \"2026-10\", "
            '"2026/10", "2026年10月", "this-month" or "last-month"',
        ),
        (
            "2026-13",
            None,
            "'2026-13' is not a valid month: there is no month 13 of 2026; expected a month "
            'like "2026-10", "2026/10", "2026年10月", "this-month" or "last-month"',
        ),
        (
            "2025-W53",
            None,
            "'2025-W53' is not a valid week: 2025 has ISO weeks 1 to 52; expected a week "
            'like "2026-W43", "2026W43", "this-week" or "last-week"',
        ),
        (
            "2026-W00",
            "week",
            "'2026-W00' is not a valid week: 2026 has ISO weeks 1 to 53; expected a week "
            'like "2026-W43", "2026W43", "this-week" or "last-week"',
        ),
        (
            "2026Q5",
            None,
            "'2026Q5' is not a valid quarter: there is no quarter 5 of 2026; expected a "
            'quarter like "2026Q3", "2026-Q3", "2026年第3季度", "2026年第三季度", '
            '"this-quarter" or "last-quarter"',
        ),
        (
            "2026H3",
            None,
            "'2026H3' is not a valid half-year: there is no half-year 3 of 2026; expected a "
            'half-year like "2026H1", "2026-H2", "2026年上半年", "2026年下半年", '
            '"this-half-year" or "last-half-year"',
        ),
        (
            "2026-02-29",
            None,
            "'2026-02-29' is not a valid day: 2026-02-29 is not a date; expected a day like "
            '"2026-10-05", "2026/10/05", "2026年10月5日", "today" or "yesterday"',
        ),
    ],
)
def test_parse_errors_name_the_text_and_the_forms(
    text: str, kind: str | None, message: str
) -> None:
    with pytest.raises(PeriodError) as raised:
        parse_period(text, kind=kind)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_parse_error_without_a_kind_lists_every_kind() -> None:
    with pytest.raises(PeriodError) as raised:
        parse_period("next-month")
    message = str(raised.value)
    assert message.startswith("'next-month' is not a period; expected a period: a day like")
    for example in ('"2026-10-05"', '"2026-W43"', '"2026-10"', '"2026Q3"', '"2026H1"'):
        assert example in message


def test_period_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="2027-W53"):
        parse_period("2027-W53")


def test_unknown_kind_and_time_zone() -> None:
    with pytest.raises(PeriodError, match="unknown period kind 'year'"):
        parse_period("2026", kind="year")  # type: ignore[arg-type]
    with pytest.raises(PeriodError, match="unknown time zone 'Asia/Beijing'"):
        parse_period("2026-10", timezone="Asia/Beijing")
    with pytest.raises(PeriodError, match="unknown time zone"):
        Period("day", date(2026, 10, 5), date(2026, 10, 5), "Mars/Olympus")


def test_period_refuses_bounds_that_are_not_one_period() -> None:
    with pytest.raises(PeriodError, match="2026-10-02 to 2026-10-31 is not a month"):
        Period("month", date(2026, 10, 2), date(2026, 10, 31))
    with pytest.raises(PeriodError, match="2026-10-20 to 2026-10-26 is not a week"):
        Period("week", date(2026, 10, 20), date(2026, 10, 26))  # Tuesday to Monday
    assert Period("quarter", date(2026, 7, 1), date(2026, 9, 30)).code == "2026Q3"


@pytest.mark.parametrize(
    ("kind", "day", "first", "last"),
    [
        ("day", date(2026, 10, 5), date(2026, 10, 5), date(2026, 10, 5)),
        ("week", date(2026, 10, 25), date(2026, 10, 19), date(2026, 10, 25)),  # a Sunday
        ("week", date(2026, 1, 1), date(2025, 12, 29), date(2026, 1, 4)),
        ("month", date(2028, 2, 15), date(2028, 2, 1), date(2028, 2, 29)),
        ("quarter", date(2026, 3, 31), date(2026, 1, 1), date(2026, 3, 31)),
        ("quarter", date(2026, 4, 1), date(2026, 4, 1), date(2026, 6, 30)),
        ("half-year", date(2026, 6, 30), date(2026, 1, 1), date(2026, 6, 30)),
        ("half-year", date(2026, 7, 1), date(2026, 7, 1), date(2026, 12, 31)),
    ],
)
def test_covering(kind: str, day: date, first: date, last: date) -> None:
    period = covering(kind, day, "Asia/Shanghai")  # type: ignore[arg-type]
    assert (period.first, period.last) == (first, last)


@pytest.mark.parametrize(
    ("code", "previous", "following"),
    [
        ("2026-01", "2025-12", "2026-02"),
        ("2026-12", "2026-11", "2027-01"),
        ("2026Q1", "2025Q4", "2026Q2"),
        ("2026Q4", "2026Q3", "2027Q1"),
        ("2026H1", "2025H2", "2026H2"),
        ("2026H2", "2026H1", "2027H1"),
        ("2026-W01", "2025-W52", "2026-W02"),
        ("2026-W53", "2026-W52", "2027-W01"),
        ("2021-W01", "2020-W53", "2021-W02"),
        ("2026-01-01", "2025-12-31", "2026-01-02"),
        ("2028-02-28", "2028-02-27", "2028-02-29"),
    ],
)
def test_previous_and_next(code: str, previous: str, following: str) -> None:
    period = parse_period(code, timezone="Asia/Urumqi")
    assert period.previous().code == previous
    assert period.next().code == following
    assert period.previous().kind == period.next().kind == period.kind
    assert period.previous().timezone == "Asia/Urumqi"
    assert period.next().previous() == period


@pytest.mark.parametrize(
    ("text", "timezone", "start", "end"),
    [
        (
            "2026-10",
            "Asia/Shanghai",
            datetime(2026, 9, 30, 16, tzinfo=UTC),
            datetime(2026, 10, 31, 16, tzinfo=UTC),
        ),
        (
            "2026-10",
            "Asia/Urumqi",  # UTC+6
            datetime(2026, 9, 30, 18, tzinfo=UTC),
            datetime(2026, 10, 31, 18, tzinfo=UTC),
        ),
        (
            "2026-10-05",
            "Asia/Shanghai",
            datetime(2026, 10, 4, 16, tzinfo=UTC),
            datetime(2026, 10, 5, 16, tzinfo=UTC),
        ),
        (
            "2026-W01",
            "Asia/Shanghai",
            datetime(2025, 12, 28, 16, tzinfo=UTC),
            datetime(2026, 1, 4, 16, tzinfo=UTC),
        ),
        (
            "2026H1",
            "Asia/Urumqi",
            datetime(2025, 12, 31, 18, tzinfo=UTC),
            datetime(2026, 6, 30, 18, tzinfo=UTC),
        ),
        (
            # Berlin changes to summer time on 29 March 2026: +01:00 at the start, +02:00 at the end.
            "2026Q2",
            "Europe/Berlin",
            datetime(2026, 3, 31, 22, tzinfo=UTC),
            datetime(2026, 6, 30, 22, tzinfo=UTC),
        ),
    ],
)
def test_start_and_end_in_utc(text: str, timezone: str, start: datetime, end: datetime) -> None:
    period = parse_period(text, timezone=timezone)
    assert period.start == start
    assert period.end == end
    assert period.start.utcoffset() is not None
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_days() -> None:
    assert parse_period("2026-W43").days == [date(2026, 10, day) for day in range(19, 26)]
    assert len(parse_period("2028-02").days) == 29
    assert len(parse_period("2026Q1").days) == 31 + 28 + 31
    assert len(parse_period("2026H2").days) == 184
    assert parse_period("2026-10-05").days == [date(2026, 10, 5)]


@pytest.mark.parametrize(
    ("text", "zh", "en", "code"),
    [
        ("2026-10", "2026年10月", "October 2026", "2026-10"),
        ("2026/1", "2026年1月", "January 2026", "2026-01"),
        ("2026Q3", "2026年第3季度", "Q3 2026", "2026Q3"),
        ("2026年上半年", "2026年上半年", "H1 2026", "2026H1"),
        ("2026-H2", "2026年下半年", "H2 2026", "2026H2"),
        (
            "2026-W43",
            "2026年第43周（10月19日—10月25日）",
            "Week 43 of 2026 (19–25 Oct)",
            "2026-W43",
        ),
        (
            "2026-W44",
            "2026年第44周（10月26日—11月1日）",
            "Week 44 of 2026 (26 Oct – 1 Nov)",
            "2026-W44",
        ),
        (
            "2026-W1",
            "2026年第1周（2025年12月29日—2026年1月4日）",
            "Week 1 of 2026 (29 Dec 2025 – 4 Jan 2026)",
            "2026-W01",
        ),
        (
            "2020-W53",
            "2020年第53周（2020年12月28日—2021年1月3日）",
            "Week 53 of 2020 (28 Dec 2020 – 3 Jan 2021)",
            "2020-W53",
        ),
        ("2026-10-05", "2026年10月5日", "5 October 2026", "2026-10-05"),
        ("2026年1月9日", "2026年1月9日", "9 January 2026", "2026-01-09"),
    ],
)
def test_labels_and_codes(text: str, zh: str, en: str, code: str) -> None:
    period = parse_period(text)
    assert period.label() == zh
    assert period.label("zh") == zh
    assert period.label("en") == en
    assert period.code == code
    assert parse_period(code) == period


def test_unknown_language() -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        parse_period("2026-10").label("fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        format_date(date(2026, 10, 5), "fr")  # type: ignore[arg-type]


def test_format_date() -> None:
    assert format_date(date(2027, 3, 2)) == "2027年3月2日"
    assert format_date(date(2027, 3, 2), "en") == "2 March 2027"
