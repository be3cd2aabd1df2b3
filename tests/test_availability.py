"""Availability from state changes, on a real SQLite file and a real PostgreSQL database
(each test runs on both). Histories are recorded as the engine records them: each result's
status from ``opsctl.engine.transition``, a state change whenever the state changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.contract import CheckResult, State
from opsctl.engine import Status, transition
from opsctl.maintenance import Window
from opsctl.store import Recorded, Store
from opsctl.store.availability import Availability, availability

CHECK = "hq/his-db/tcp"
OK, WARNING, CRITICAL, UNKNOWN = State.OK, State.WARNING, State.CRITICAL, State.UNKNOWN

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 31, tzinfo=UTC)  # 30 days: 43,200 minutes
PERIOD = timedelta(days=30)


def at(day: int, hour: int, minute: int = 0, *, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def record(
    store: Store,
    results: list[tuple[datetime, State]],
    *,
    check_id: str = CHECK,
    max_attempts: int = 1,
) -> None:
    """Record one check's results in time order, as the engine would."""
    site, target, kind = check_id.split("/")
    previous: Status | None = None
    batch = []
    for started, state in results:
        status = transition(previous, state, started, max_attempts)
        batch.append(
            Recorded(
                check_id=check_id,
                site=site,
                target=target,
                kind=kind,
                result=CheckResult(state, state.name, started=started, duration=0.1),
                state_type=status.state_type,
                attempt=status.attempt,
                since=status.since,
                last_hard_state=status.last_hard_state,
                last_hard_change=status.last_hard_change,
                changed=previous is None or previous.state != status.state,
                previous_state=None if previous is None else previous.state,
            )
        )
        previous = status
    store.record(batch)


def one(store: Store, **options: object) -> Availability:
    return availability(store, [CHECK], SINCE, UNTIL, **options)[CHECK]  # type: ignore[arg-type]


def test_a_ninety_minute_outage_in_thirty_days(store: Store) -> None:
    record(
        store,
        [
            (at(20, 8, month=2), OK),
            (at(10, 10), CRITICAL),
            (at(10, 10, 30), CRITICAL),
            (at(10, 11, 30), OK),
            (at(20, 0), OK),
        ],
    )
    found = one(store)
    assert found == Availability(
        total=PERIOD,
        down=minutes(90),
        maintenance=timedelta(0),
        unknown=timedelta(0),
        outages=1,
        longest_outage=minutes(90),
    )
    assert found.ratio == pytest.approx(1 - 90 / 43200)


def test_the_state_in_force_before_the_period_counts_from_its_start(store: Store) -> None:
    record(store, [(at(28, 23, month=2), CRITICAL), (at(1, 0, 45), OK), (at(2, 0), CRITICAL)])
    found = one(store)
    # 45 minutes at the start (not an outage of this period), then down from 2 March on.
    assert found.total == PERIOD
    assert found.down == minutes(45) + timedelta(days=29)
    assert found.outages == 1
    assert found.longest_outage == timedelta(days=29)


def test_a_check_first_seen_within_the_period_is_observed_from_then(store: Store) -> None:
    record(store, [(at(11, 0), OK), (at(12, 0), CRITICAL), (at(12, 1), OK)])
    found = one(store)
    assert found.total == timedelta(days=20)
    assert found.down == minutes(60)
    assert found.ratio == pytest.approx(1 - 60 / (20 * 1440))


def test_a_check_first_seen_down_has_an_outage(store: Store) -> None:
    record(store, [(at(11, 0), CRITICAL), (at(11, 2), OK)])
    found = one(store)
    assert (found.total, found.down, found.outages) == (timedelta(days=20), minutes(120), 1)


def test_maintenance_is_left_out_of_total_and_down(store: Store) -> None:
    record(
        store,
        [
            (at(20, 8, month=2), OK),
            (at(10, 10), CRITICAL),
            (at(10, 11, 30), OK),
            (at(20, 2), CRITICAL),  # wholly within the second window
            (at(20, 2, 30), OK),
        ],
    )
    windows = [
        Window("db-patch", at(10, 11), at(10, 12), checks=("his-db/*",), site="hq"),
        Window("night", at(20, 2), at(20, 3)),
        Window("other-site", at(10, 9), at(10, 12), site="branch"),
    ]
    found = one(store, windows=windows)
    assert found == Availability(
        total=PERIOD,
        down=minutes(60),
        maintenance=minutes(120),
        unknown=timedelta(0),
        outages=1,
        longest_outage=minutes(60),
    )
    assert found.ratio == pytest.approx(1 - 60 / (43200 - 120))


def test_unknown_is_not_down_unless_asked(store: Store) -> None:
    record(
        store,
        [
            (at(20, 8, month=2), OK),
            (at(5, 0), UNKNOWN),
            (at(5, 2), OK),
            (at(6, 0), CRITICAL),
            (at(6, 1), UNKNOWN),  # still down when UNKNOWN counts: one outage of 90 minutes
            (at(6, 1, 30), OK),
        ],
    )
    plain = one(store)
    assert (plain.down, plain.unknown, plain.outages) == (minutes(60), minutes(150), 1)
    assert plain.longest_outage == minutes(60)
    strict = one(store, count_unknown_as_down=True)
    assert (strict.down, strict.unknown, strict.outages) == (minutes(210), minutes(150), 2)
    assert strict.longest_outage == minutes(120)
    assert strict.ratio == pytest.approx(1 - 210 / 43200)


def test_down_states_can_include_warning(store: Store) -> None:
    record(store, [(at(20, 8, month=2), OK), (at(5, 0), WARNING), (at(5, 3), OK)])
    assert one(store).down == timedelta(0)
    assert one(store, down_states=(WARNING, CRITICAL)).down == minutes(180)


def test_soft_problems_are_ignored_and_hard_ones_count_from_the_last_attempt(
    store: Store,
) -> None:
    record(
        store,
        [
            (at(20, 8, month=2), OK),
            # A blip: recovered at the second attempt, never hard.
            (at(5, 10, 0), CRITICAL),
            (at(5, 10, 1), OK),
            # Hard at the third attempt (10:02), the state the same as at 10:00: down 30 min.
            (at(6, 10, 0), CRITICAL),
            (at(6, 10, 1), CRITICAL),
            (at(6, 10, 2), CRITICAL),
            (at(6, 10, 20), CRITICAL),
            (at(6, 10, 32), OK),
            # Soft WARNING, then CRITICAL, hard at the third attempt (12:02): down 10 min.
            (at(7, 12, 0), WARNING),
            (at(7, 12, 1), CRITICAL),
            (at(7, 12, 2), CRITICAL),
            (at(7, 12, 12), OK),
        ],
        max_attempts=3,
    )
    found = one(store)
    assert (found.down, found.outages, found.longest_outage) == (minutes(40), 2, minutes(30))


def test_a_problem_turning_hard_around_the_start_of_the_period(store: Store) -> None:
    record(
        store,
        [
            (at(28, 23, 58, month=2), CRITICAL),
            (at(28, 23, 59, month=2), CRITICAL),  # hard before the period: in force at its start
            (at(1, 0, 29), OK),
            (at(1, 23, 59), CRITICAL),
            (at(2, 0, 1), CRITICAL),  # hard within the period: an outage of it
            (at(2, 0, 30), OK),
        ],
        max_attempts=2,
    )
    found = one(store)
    assert (found.down, found.outages, found.longest_outage) == (minutes(58), 1, minutes(29))


def test_several_checks_at_once_and_one_never_seen(store: Store) -> None:
    record(store, [(at(20, 8, month=2), OK), (at(3, 0), CRITICAL), (at(3, 6), OK)])
    record(store, [(at(20, 8, month=2), OK)], check_id="hq/web1/http")
    found = availability(store, [CHECK, "hq/web1/http", "hq/never/run"], at(3, 0), at(4, 0))
    assert found[CHECK].down == minutes(360)
    assert found[CHECK].ratio == pytest.approx(0.75)
    assert found["hq/web1/http"].ratio == 1.0
    assert found["hq/never/run"] == Availability(
        timedelta(0), timedelta(0), timedelta(0), timedelta(0), 0, timedelta(0)
    )
    assert found["hq/never/run"].ratio is None


def test_a_period_wholly_in_maintenance_has_no_ratio(store: Store) -> None:
    record(store, [(at(20, 8, month=2), CRITICAL)])
    found = one(store, windows=[Window("all", SINCE - PERIOD, UNTIL + PERIOD)])
    assert (found.total, found.maintenance, found.down) == (PERIOD, PERIOD, timedelta(0))
    assert found.ratio is None


def test_bad_periods_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        availability(store, [CHECK], UNTIL, SINCE)
    with pytest.raises(ValueError, match="naive"):
        availability(store, [CHECK], datetime(2026, 3, 1), UNTIL)  # noqa: DTZ001
