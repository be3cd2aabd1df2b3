"""SLA clocks: due times on 24x7 and business calendars, China's holidays and make-up
working days, the evening cut-off, verdicts, and the moments and policies refused."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from opsctl.calendar import UnknownYear
from opsctl.sla import (
    BusinessHours,
    SlaError,
    SlaPolicy,
    Verdict,
    breaching,
    clock_start,
    due,
    elapsed,
    verdict,
)

CST = ZoneInfo("Asia/Shanghai")

TARGETS = {
    "critical": {"respond": "15m", "resolve": "4h", "onsite": "2h"},
    "major": {"respond": "30m", "resolve": "8h"},
    "minor": {"respond": "2h", "resolve": "27h"},
}

BUSINESS = SlaPolicy.model_validate({"severities": TARGETS, "calendar": "business"})
# Business hours to 18:00: a Friday 17:50 incident has ten minutes left that day.
UNTIL_SIX = SlaPolicy.model_validate(
    {"severities": TARGETS, "calendar": "business", "business_hours": "08:30-18:00"}
)
ROUND_THE_CLOCK = SlaPolicy.model_validate({"severities": TARGETS})
CUTOFF_24X7 = SlaPolicy.model_validate({"severities": TARGETS, "cutoff": "18:00"})
CUTOFF_BUSINESS = SlaPolicy.model_validate(
    {
        "severities": TARGETS,
        "calendar": "business",
        "business_hours": "08:00-20:00",
        "cutoff": "18:00",
    }
)
CUTOFF_LATE_MORNING = SlaPolicy.model_validate(
    {"severities": TARGETS, "cutoff": 1080, "next_day_start": "09:00"}  # YAML's 18:00
)


def at(*parts: int) -> datetime:
    """A moment in Asia/Shanghai."""
    return datetime(*parts, tzinfo=CST)


@pytest.mark.parametrize(
    ("policy", "severity", "kind", "opened", "expected"),
    [
        # Business hours 08:30-17:30 on China's workdays.
        (BUSINESS, "major", "respond", at(2026, 3, 4, 10, 0), at(2026, 3, 4, 10, 30)),
        (BUSINESS, "major", "respond", at(2026, 3, 4, 7, 0), at(2026, 3, 4, 9, 0)),
        (BUSINESS, "major", "respond", at(2026, 3, 4, 17, 0), at(2026, 3, 4, 17, 30)),
        (BUSINESS, "major", "respond", at(2026, 3, 4, 17, 20), at(2026, 3, 5, 8, 50)),
        # Weekend: Saturday's incident waits for Monday.
        (BUSINESS, "major", "respond", at(2026, 3, 7, 10, 0), at(2026, 3, 9, 9, 0)),
        (BUSINESS, "major", "respond", at(2026, 3, 6, 17, 20), at(2026, 3, 9, 8, 50)),
        # Friday 17:50, after business hours end at 17:30: Monday 09:00.
        (BUSINESS, "major", "respond", at(2026, 3, 6, 17, 50), at(2026, 3, 9, 9, 0)),
        # Friday 17:50 with hours to 18:00: ten minutes Friday, twenty on the next workday.
        (UNTIL_SIX, "major", "respond", at(2026, 3, 6, 17, 50), at(2026, 3, 9, 8, 50)),
        (UNTIL_SIX, "major", "respond", at(2026, 2, 13, 17, 50), at(2026, 2, 14, 8, 50)),
        (UNTIL_SIX, "major", "respond", at(2026, 9, 18, 17, 50), at(2026, 9, 20, 8, 50)),
        # The 2026 Spring Festival block (15-23 Feb) and its make-up Saturdays (14, 28 Feb).
        (BUSINESS, "critical", "resolve", at(2026, 2, 13, 15, 0), at(2026, 2, 14, 10, 0)),
        (BUSINESS, "minor", "respond", at(2026, 2, 14, 16, 0), at(2026, 2, 24, 9, 0)),
        (BUSINESS, "minor", "respond", at(2026, 2, 18, 10, 0), at(2026, 2, 24, 10, 30)),
        (BUSINESS, "major", "resolve", at(2026, 2, 27, 12, 0), at(2026, 2, 28, 11, 0)),
        # National Day (1-7 Oct) and its make-up Saturday (10 Oct).
        (BUSINESS, "critical", "resolve", at(2026, 9, 30, 16, 0), at(2026, 10, 8, 11, 0)),
        (BUSINESS, "critical", "resolve", at(2026, 10, 9, 16, 0), at(2026, 10, 10, 11, 0)),
        # Labour Day (1-5 May) inside a three-business-day target.
        (BUSINESS, "minor", "resolve", at(2026, 4, 29, 12, 0), at(2026, 5, 7, 12, 0)),
        # 24x7 counts every minute, across midnight and holidays.
        (ROUND_THE_CLOCK, "critical", "respond", at(2026, 3, 4, 23, 50), at(2026, 3, 5, 0, 5)),
        (ROUND_THE_CLOCK, "critical", "resolve", at(2026, 10, 1, 22, 0), at(2026, 10, 2, 2, 0)),
        (
            ROUND_THE_CLOCK,
            "critical",
            "onsite",
            datetime(2026, 3, 4, 23, 0, tzinfo=UTC),
            at(2026, 3, 5, 9, 0),
        ),
        (
            BUSINESS,
            "major",
            "respond",
            datetime(2026, 3, 4, 1, 50, tzinfo=UTC),
            at(2026, 3, 4, 10, 20),
        ),
        # No target set: nothing to be due.
        (BUSINESS, "major", "onsite", at(2026, 3, 4, 10, 0), None),
        (BUSINESS, "complaint", "respond", at(2026, 3, 4, 10, 0), None),
    ],
)
def test_due(
    policy: SlaPolicy, severity: str, kind: Any, opened: datetime, expected: datetime | None
) -> None:
    assert due(policy, severity, kind, opened) == expected


@pytest.mark.parametrize(
    ("policy", "opened", "start", "respond_due"),
    [
        # 24x7 with an 18:00 cut-off: the quiet window runs to 08:30 the next workday.
        (CUTOFF_24X7, at(2026, 3, 4, 17, 59), at(2026, 3, 4, 17, 59), at(2026, 3, 4, 18, 14)),
        (CUTOFF_24X7, at(2026, 3, 4, 18, 0), at(2026, 3, 5, 8, 30), at(2026, 3, 5, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 4, 18, 1), at(2026, 3, 5, 8, 30), at(2026, 3, 5, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 5, 2, 0), at(2026, 3, 5, 8, 30), at(2026, 3, 5, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 5, 8, 30), at(2026, 3, 5, 8, 30), at(2026, 3, 5, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 6, 18, 1), at(2026, 3, 9, 8, 30), at(2026, 3, 9, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 7, 3, 0), at(2026, 3, 9, 8, 30), at(2026, 3, 9, 8, 45)),
        (CUTOFF_24X7, at(2026, 3, 7, 10, 0), at(2026, 3, 7, 10, 0), at(2026, 3, 7, 10, 15)),
        (CUTOFF_24X7, at(2026, 2, 13, 18, 1), at(2026, 2, 14, 8, 30), at(2026, 2, 14, 8, 45)),
        (CUTOFF_24X7, at(2026, 9, 30, 18, 30), at(2026, 10, 8, 8, 30), at(2026, 10, 8, 8, 45)),
        # Business hours to 20:00 with an 18:00 cut-off.
        (CUTOFF_BUSINESS, at(2026, 3, 4, 17, 59), at(2026, 3, 4, 17, 59), at(2026, 3, 4, 18, 14)),
        (CUTOFF_BUSINESS, at(2026, 3, 4, 18, 1), at(2026, 3, 5, 8, 0), at(2026, 3, 5, 8, 15)),
        (CUTOFF_BUSINESS, at(2026, 3, 4, 19, 55), at(2026, 3, 5, 8, 0), at(2026, 3, 5, 8, 15)),
        # A next_day_start of its own.
        (CUTOFF_LATE_MORNING, at(2026, 3, 4, 18, 1), at(2026, 3, 5, 9, 0), at(2026, 3, 5, 9, 15)),
        (CUTOFF_LATE_MORNING, at(2026, 3, 5, 8, 45), at(2026, 3, 5, 9, 0), at(2026, 3, 5, 9, 15)),
    ],
)
def test_cutoff(
    policy: SlaPolicy, opened: datetime, start: datetime, respond_due: datetime
) -> None:
    assert (clock_start(policy, opened), due(policy, "critical", "respond", opened)) == (
        start,
        respond_due,
    )


def test_without_cutoff_the_clock_starts_when_opened() -> None:
    assert clock_start(BUSINESS, at(2026, 3, 4, 23, 0)) == at(2026, 3, 4, 23, 0)


@pytest.mark.parametrize(
    ("policy", "start", "end", "expected"),
    [
        (BUSINESS, at(2026, 3, 6, 17, 0), at(2026, 3, 9, 9, 0), timedelta(hours=1)),
        (BUSINESS, at(2026, 2, 13, 17, 0), at(2026, 2, 24, 9, 0), timedelta(hours=10)),
        (BUSINESS, at(2026, 3, 4, 18, 0), at(2026, 3, 5, 8, 0), timedelta(0)),
        (BUSINESS, at(2026, 3, 4, 10, 0), at(2026, 3, 4, 10, 0), timedelta(0)),
        (BUSINESS, at(2026, 9, 30, 8, 30), at(2026, 10, 8, 17, 30), timedelta(hours=18)),
        (ROUND_THE_CLOCK, at(2026, 3, 4, 23, 0), at(2026, 3, 5, 1, 0), timedelta(hours=2)),
        # The cut-off moves when a clock starts, not how time between two instants counts.
        (
            CUTOFF_24X7,
            at(2026, 3, 4, 18, 0),
            at(2026, 3, 5, 8, 30),
            timedelta(hours=14, minutes=30),
        ),
    ],
)
def test_elapsed(policy: SlaPolicy, start: datetime, end: datetime, expected: timedelta) -> None:
    assert elapsed(policy, start, end) == expected


OPENED = at(2026, 3, 4, 10, 0)  # major respond due 10:30 on the business calendar
DUE = at(2026, 3, 4, 10, 30)
MINUTE = timedelta(minutes=1)
NAIVE_TEN = OPENED.replace(tzinfo=None)
NAIVE_ELEVEN = at(2026, 3, 4, 11, 0).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("done", "now", "soon", "expected"),
    [
        (
            at(2026, 3, 4, 10, 20),
            at(2026, 3, 4, 12, 0),
            10,
            Verdict(DUE, "met", True, 10 * MINUTE, None),
        ),
        (
            at(2026, 3, 4, 10, 30),
            at(2026, 3, 4, 12, 0),
            10,
            Verdict(DUE, "met", True, 0 * MINUTE, None),
        ),
        (
            at(2026, 3, 4, 10, 45),
            at(2026, 3, 4, 12, 0),
            10,
            Verdict(DUE, "breached", False, None, 15 * MINUTE),
        ),
        (OPENED, OPENED, 10, Verdict(DUE, "met", True, 30 * MINUTE, None)),
        (None, OPENED, 10, Verdict(DUE, "running", None, 30 * MINUTE, None)),
        (None, at(2026, 3, 4, 10, 19), 10, Verdict(DUE, "running", None, 11 * MINUTE, None)),
        (None, at(2026, 3, 4, 10, 20), 10, Verdict(DUE, "breaching soon", None, 10 * MINUTE, None)),
        (None, DUE, 10, Verdict(DUE, "breaching soon", None, 0 * MINUTE, None)),
        (None, at(2026, 3, 4, 10, 31), 10, Verdict(DUE, "breached", False, None, MINUTE)),
        # Overdue counts business time: 10:30-17:30 and 08:30-09:00 the next day.
        (None, at(2026, 3, 5, 9, 0), 10, Verdict(DUE, "breached", False, None, 450 * MINUTE)),
    ],
)
def test_verdict(done: datetime | None, now: datetime, soon: int, expected: Verdict) -> None:
    assert verdict(BUSINESS, "major", "respond", OPENED, done, now, soon=soon * MINUTE) == expected


def test_verdict_over_a_weekend_counts_business_time_left() -> None:
    # Opened Friday 17:20: due Monday 08:50; at 17:25 ten business minutes are gone of 30.
    found = verdict(
        BUSINESS, "major", "respond", at(2026, 3, 6, 17, 20), None, at(2026, 3, 6, 17, 25)
    )
    assert found == Verdict(at(2026, 3, 9, 8, 50), "breaching soon", None, 25 * MINUTE, None)


def test_verdict_without_a_target_is_none() -> None:
    assert verdict(BUSINESS, "major", "onsite", OPENED, None, OPENED) is None
    assert verdict(BUSINESS, "complaint", "resolve", OPENED, None, OPENED) is None


@pytest.mark.parametrize(
    ("severity", "kind", "now", "within", "expected"),
    [
        ("major", "respond", at(2026, 3, 4, 10, 5), 10, False),
        ("major", "respond", at(2026, 3, 4, 10, 20), 10, True),
        ("major", "respond", at(2026, 3, 4, 11, 0), 10, True),  # already breached
        ("major", "resolve", at(2026, 3, 4, 16, 0), 60, False),  # due 09:00 tomorrow
        ("major", "resolve", at(2026, 3, 4, 17, 0), 60, True),  # 30m today, 30m tomorrow
        ("major", "resolve", at(2026, 3, 5, 8, 45), 60, True),
        ("major", "onsite", at(2026, 3, 9, 0, 0), 60, False),  # no target
    ],
)
def test_breaching(severity: str, kind: Any, now: datetime, within: int, expected: bool) -> None:
    assert breaching(BUSINESS, severity, kind, OPENED, now, within * MINUTE) is expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: verdict(BUSINESS, "major", "resolve", OPENED, at(2026, 3, 4, 9, 0), OPENED),
            "done 2026-03-04T09:00:00+08:00 is before opened 2026-03-04T10:00:00+08:00: "
            "a step cannot be done before the incident was opened",
        ),
        (
            lambda: verdict(BUSINESS, "major", "resolve", OPENED, None, at(2026, 3, 4, 9, 0)),
            "now 2026-03-04T09:00:00+08:00 is before opened 2026-03-04T10:00:00+08:00",
        ),
        (
            lambda: due(BUSINESS, "major", "respond", NAIVE_TEN),
            "opened must be timezone-aware, got the naive 2026-03-04T10:00:00",
        ),
        (
            lambda: due(BUSINESS, "major", "onsite", NAIVE_TEN),
            "opened must be timezone-aware, got the naive 2026-03-04T10:00:00",
        ),
        (
            lambda: verdict(BUSINESS, "major", "respond", OPENED, NAIVE_ELEVEN, OPENED),
            "done must be timezone-aware, got the naive 2026-03-04T11:00:00",
        ),
        (
            lambda: verdict(BUSINESS, "major", "respond", OPENED, None, NAIVE_ELEVEN),
            "now must be timezone-aware, got the naive 2026-03-04T11:00:00",
        ),
        (
            lambda: elapsed(BUSINESS, OPENED, NAIVE_ELEVEN),
            "end must be timezone-aware, got the naive 2026-03-04T11:00:00",
        ),
        (
            lambda: elapsed(BUSINESS, DUE, OPENED),
            "end 2026-03-04T10:00:00+08:00 is before start 2026-03-04T10:30:00+08:00",
        ),
        (
            lambda: due(BUSINESS, "urgent", "respond", OPENED),
            "unknown severity 'urgent' (expected critical, major, minor or complaint)",
        ),
        (
            lambda: due(BUSINESS, "major", "fix", OPENED),  # type: ignore[arg-type]
            "unknown SLA kind 'fix' (expected respond, resolve or onsite)",
        ),
    ],
)
def test_refused(call: Any, message: str) -> None:
    with pytest.raises(SlaError) as caught:
        call()
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_a_year_unknown_to_the_calendar_surfaces() -> None:
    # 4 business hours from 31 Dec 2026 17:00 reach into 2027, which the calendar lacks.
    with pytest.raises(UnknownYear) as caught:
        due(BUSINESS, "critical", "resolve", at(2026, 12, 31, 17, 0))
    assert caught.value.year == 2027
    with pytest.raises(UnknownYear):
        elapsed(BUSINESS, at(2026, 12, 31, 9, 0), at(2027, 1, 4, 9, 0))
    with pytest.raises(UnknownYear):
        clock_start(CUTOFF_24X7, at(2026, 12, 31, 19, 0))


def test_a_24x7_clock_without_cutoff_needs_no_calendar() -> None:
    assert due(ROUND_THE_CLOCK, "critical", "resolve", at(2031, 5, 6, 22, 0)) == at(
        2031, 5, 7, 2, 0
    )


def test_policy_defaults_and_round_trip() -> None:
    policy = SlaPolicy.model_validate({"severities": {"major": {"respond": "30m"}}})
    assert (policy.calendar, policy.business_hours, policy.cutoff, policy.timezone) == (
        "24x7",
        BusinessHours(time(8, 30), time(17, 30)),
        None,
        "Asia/Shanghai",
    )
    assert CUTOFF_LATE_MORNING.model_dump() == {
        "severities": {
            "critical": {"respond": "15m", "resolve": "4h", "onsite": "2h"},
            "major": {"respond": "30m", "resolve": "8h", "onsite": None},
            "minor": {"respond": "2h", "resolve": "1d 3h", "onsite": None},
        },
        "calendar": "24x7",
        "business_hours": "08:30-17:30",
        "cutoff": "18:00",
        "next_day_start": "09:00",
        "timezone": "Asia/Shanghai",
    }


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {"severities": {"urgent": {"respond": "5m"}, "p1": {}}},
            [
                (
                    ("severities",),
                    "unknown severity 'urgent', 'p1' (expected critical, major, minor or complaint)",
                )
            ],
        ),
        (
            {"severities": {"major": {"respond": "0s", "fix": "1h"}}},
            [
                (("severities", "major", "respond"), "a target must be longer than 0"),
                (("severities", "major", "fix"), "Extra inputs are not permitted"),
            ],
        ),
        (
            {"severities": {"major": {"resolve": "soon"}}},
            [
                (
                    ("severities", "major", "resolve"),
                    'expected a duration like "30s", "5m", "2h", "7d" or "1h30m", got \'soon\'',
                )
            ],
        ),
        (
            {"severities": {}, "calendar": "office"},
            [(("calendar",), "Input should be '24x7' or 'business'")],
        ),
        (
            {"severities": {}, "business_hours": "17:30-08:30"},
            [
                (
                    ("business_hours",),
                    'expected business hours like "08:30-17:30" (start before end, within one '
                    "day), got '17:30-08:30': the start is not before the end",
                )
            ],
        ),
        (
            {"severities": {}, "business_hours": "8-17"},
            [
                (
                    ("business_hours",),
                    'expected business hours like "08:30-17:30" (start before end, within one '
                    "day), got '8-17'",
                )
            ],
        ),
        (
            {"severities": {}, "cutoff": "07:00"},
            [((), "cutoff 07:00 must be later than the morning start 08:30")],
        ),
        (
            {"severities": {}, "cutoff": "18:00", "next_day_start": "19:00"},
            [((), "cutoff 18:00 must be later than the morning start 19:00")],
        ),
        (
            {"severities": {}, "next_day_start": "09:00"},
            [((), "next_day_start is only used with a cutoff: set cutoff too")],
        ),
        (
            {"severities": {}, "cutoff": "6pm"},
            [(("cutoff",), 'expected a time of day like "08:30" or "18:00", got \'6pm\'')],
        ),
        (
            {"severities": {}, "timezone": "Beijing"},
            [(("timezone",), "expected an IANA time zone like \"Asia/Shanghai\", got 'Beijing'")],
        ),
        ({}, [(("severities",), "Field required")]),
    ],
)
def test_policy_refused(data: dict[str, Any], errors: list[tuple[tuple[str, ...], str]]) -> None:
    with pytest.raises(ValidationError) as caught:
        SlaPolicy.model_validate(data)
    assert [(error["loc"], error["msg"]) for error in caught.value.errors()] == errors
