"""The engine: concurrency bound, timeouts, exceptions, garbage, soft/hard states."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsctl.contract import Check, CheckConfig, CheckResult, State
from opsctl.engine import HARD, SOFT, Engine, Outcome, Status, transition
from opsctl.inventory import CheckInstance, CheckSpec, Host, Site

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


class Behaviour(CheckConfig):
    pass


def instance(check_class: type[Check], name: str = "c", **spec: Any) -> CheckInstance:
    site = Site(name="s")
    host = Host(name="h")
    fields = {"kind": "test", "timeout": "5s", "retry_interval": 0, **spec}
    return CheckInstance(
        id=f"s/h/{name}",
        site=site,
        target=host,
        spec=CheckSpec.model_validate(fields),
        name=name,
        config=Behaviour(),
        check_class=check_class,
    )


def make_check(function: Any) -> type[Check]:
    class Dynamic(Check):
        kind = "test"

        def run(self, target: Any) -> CheckResult:
            return function()

    return Dynamic


def test_an_exception_becomes_unknown_and_the_run_continues() -> None:
    def boom() -> CheckResult:
        raise RuntimeError("disk exploded")

    ok = make_check(lambda: CheckResult(State.OK, "fine"))
    outcomes = Engine().run([instance(make_check(boom), "bad"), instance(ok, "good")])
    assert [(o.check.name, o.result.state) for o in outcomes] == [
        ("bad", State.UNKNOWN),
        ("good", State.OK),
    ]
    assert outcomes[0].result.summary == "check failed: disk exploded"
    assert outcomes[0].result.details["error"] == "RuntimeError"
    assert outcomes[0].result.started is not None and outcomes[0].result.duration is not None


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (None, "check returned NoneType, expected a CheckResult"),
        ({"state": 0}, "check returned dict, expected a CheckResult"),
        (CheckResult(7, "x"), "check returned an invalid state 7"),  # type: ignore[arg-type]
    ],
)
def test_garbage_becomes_unknown(returned: Any, reason: str) -> None:
    (outcome,) = Engine().run([instance(make_check(lambda: returned))])
    assert outcome.result.state is State.UNKNOWN
    assert outcome.result.summary == reason


def test_multiline_summary_is_cut_to_its_first_line() -> None:
    (outcome,) = Engine().run([instance(make_check(lambda: CheckResult(2, "first\nsecond")))])  # type: ignore[arg-type]
    assert outcome.result.state is State.CRITICAL
    assert outcome.result.summary == "first"


def test_a_hanging_check_is_abandoned_with_unknown() -> None:
    release = threading.Event()

    def hang() -> CheckResult:
        release.wait(60)
        return CheckResult(State.OK, "too late")

    quick = make_check(lambda: CheckResult(State.OK, "quick"))
    try:
        outcomes = Engine(timeout_grace=0.0, concurrency=1).run(
            [instance(make_check(hang), "hang", timeout="0.2s"), instance(quick, "quick")]
        )
    finally:
        release.set()
    assert outcomes[0].result.state is State.UNKNOWN
    assert outcomes[0].result.summary == "check timed out after 0.2s"
    # the only slot was freed for the next check
    assert outcomes[1].result.summary == "quick"


def test_concurrency_is_bounded() -> None:
    lock = threading.Lock()
    running = peak = 0

    def tracked() -> CheckResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return CheckResult(State.OK, "ok")

    checks = [instance(make_check(tracked), f"c{i}") for i in range(30)]
    outcomes = Engine(concurrency=4).run(checks)
    assert len(outcomes) == 30
    assert peak == 4
    assert [o.check.name for o in outcomes] == [f"c{i}" for i in range(30)]


def test_soft_states_are_retried_until_hard() -> None:
    calls = []

    def failing() -> CheckResult:
        calls.append(1)
        return CheckResult(State.CRITICAL, "down")

    seen: list[Outcome] = []
    (outcome,) = Engine().run(
        [instance(make_check(failing), max_attempts=3)], on_outcome=seen.append
    )
    assert len(calls) == 3
    assert [(o.status.state_type, o.status.attempt) for o in seen] == [
        (SOFT, 1),
        (SOFT, 2),
        (HARD, 3),
    ]
    assert outcome.status.state_type == HARD and outcome.status.state is State.CRITICAL


def test_a_soft_problem_that_recovers_is_ok_without_becoming_hard() -> None:
    answers = iter([State.CRITICAL, State.OK])
    (outcome,) = Engine().run(
        [instance(make_check(lambda: CheckResult(next(answers), "x")), max_attempts=3)]
    )
    assert outcome.result.state is State.OK
    assert outcome.status.last_hard_state is State.OK


def test_no_retry_records_the_soft_state_once() -> None:
    calls = []

    def failing() -> CheckResult:
        calls.append(1)
        return CheckResult(State.WARNING, "slow")

    (outcome,) = Engine(retry=False).run([instance(make_check(failing), max_attempts=3)])
    assert len(calls) == 1
    assert (outcome.status.state_type, outcome.status.attempt) == (SOFT, 1)


def test_sink_receives_every_outcome() -> None:
    class Collect:
        def __init__(self) -> None:
            self.batches: list[list[Outcome]] = []

        def write(self, outcomes: Any) -> None:
            self.batches.append(list(outcomes))

    sink = Collect()
    checks = [instance(make_check(lambda: CheckResult(State.OK, "ok")), f"c{i}") for i in range(50)]
    Engine(sink=sink, flush_every=0).run(checks)
    written = [o.check.name for batch in sink.batches for o in batch]
    assert sorted(written) == sorted(f"c{i}" for i in range(50))


H = timedelta(hours=1)
TRANSITIONS = [
    # previous, observed, max_attempts -> state_type, attempt, since, last_hard_state
    (None, State.OK, 3, HARD, 1, T0, State.OK),
    (None, State.CRITICAL, 1, HARD, 1, T0, State.CRITICAL),
    (None, State.CRITICAL, 3, SOFT, 1, T0, State.OK),
    (Status(State.OK, HARD, 1, T0 - H, State.OK, T0 - H), State.WARNING, 3, SOFT, 1, T0, State.OK),
    (
        Status(State.WARNING, SOFT, 1, T0 - H, State.OK, T0 - H),
        State.WARNING,
        3,
        SOFT,
        2,
        T0 - H,
        State.OK,
    ),
    (
        Status(State.WARNING, SOFT, 2, T0 - H, State.OK, T0 - H),
        State.CRITICAL,
        3,
        HARD,
        3,
        T0,
        State.CRITICAL,
    ),
    (
        Status(State.CRITICAL, HARD, 3, T0 - H, State.CRITICAL, T0 - H),
        State.CRITICAL,
        3,
        HARD,
        3,
        T0 - H,
        State.CRITICAL,
    ),
    (
        Status(State.CRITICAL, HARD, 3, T0 - H, State.CRITICAL, T0 - H),
        State.WARNING,
        3,
        HARD,
        3,
        T0,
        State.WARNING,
    ),
    (
        Status(State.CRITICAL, HARD, 3, T0 - H, State.CRITICAL, T0 - H),
        State.OK,
        3,
        HARD,
        1,
        T0,
        State.OK,
    ),
    (
        Status(State.CRITICAL, SOFT, 1, T0 - H, State.OK, T0 - 2 * H),
        State.OK,
        3,
        HARD,
        1,
        T0,
        State.OK,
    ),
]


@pytest.mark.parametrize(
    ("previous", "observed", "attempts", "state_type", "attempt", "since", "hard"), TRANSITIONS
)
def test_transition(
    previous: Status | None,
    observed: State,
    attempts: int,
    state_type: str,
    attempt: int,
    since: datetime,
    hard: State,
) -> None:
    status = transition(previous, observed, T0, attempts)
    assert (
        status.state,
        status.state_type,
        status.attempt,
        status.since,
        status.last_hard_state,
    ) == (
        observed,
        state_type,
        attempt,
        since,
        hard,
    )


def test_recovery_from_a_soft_problem_keeps_the_last_hard_change() -> None:
    previous = Status(State.CRITICAL, SOFT, 1, T0 - H, State.OK, T0 - 5 * H)
    assert transition(previous, State.OK, T0, 3).last_hard_change == T0 - 5 * H


def test_a_failed_run_keeps_the_counters_of_the_previous_one() -> None:
    def boom() -> CheckResult:
        raise OSError("permission denied: /var/log/his/upload.log")

    previous = CheckResult(State.OK, "ok", details={"counters": {"cursors": {"offset": 42}}})
    (outcome,) = Engine().run([instance(make_check(boom))], previous_results={"s/h/c": previous})
    assert outcome.result.state is State.UNKNOWN
    assert outcome.result.details["counters"] == {"cursors": {"offset": 42}}
