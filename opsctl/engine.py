"""The engine: runs many checks at once, bounded; owns timeouts, retries, exceptions and
soft/hard states, so that a check only has to observe and judge.

Each check runs in a daemon thread of its own, at most ``concurrency`` at a time. A check that
raises, returns garbage or outlives its timeout becomes UNKNOWN with the reason; a hung
thread is abandoned (Python cannot kill a thread) and its slot given to the next check, so a
hanging plugin costs one thread, never the run.

Soft and hard states follow Nagios: a change away from the last hard state is *soft* and is
re-checked after ``retry_interval`` until it has been seen ``max_attempts`` times in a row,
when it becomes *hard*. Recovery to OK is hard at once.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsctl.contract import CheckResult, State, utc_now
from opsctl.inventory import CheckInstance

HARD, SOFT = "hard", "soft"


@dataclass(frozen=True, slots=True)
class Status:
    """The remembered state of one check between runs (see ``transition``)."""

    state: State
    state_type: str
    attempt: int
    since: datetime
    last_hard_state: State
    last_hard_change: datetime


def transition(previous: Status | None, state: State, now: datetime, max_attempts: int) -> Status:
    """Given the previous status of a check (None if never run), the state just observed,
    the time and ``max_attempts``, return the new status (Nagios soft/hard logic).
    """
    if previous is None:
        if state == State.OK or max_attempts <= 1:
            return Status(state, HARD, 1, now, state, now)
        return Status(state, SOFT, 1, now, State.OK, now)
    since = previous.since if state == previous.state else now
    if state == State.OK:
        if previous.last_hard_state == State.OK:
            return Status(state, HARD, 1, since, State.OK, previous.last_hard_change)
        return Status(state, HARD, 1, since, State.OK, now)
    if previous.state_type == HARD and previous.state != State.OK:
        # Already in a hard problem state: a change among problem states stays hard.
        changed = state != previous.last_hard_state
        return Status(
            state, HARD, max_attempts, since, state, now if changed else previous.last_hard_change
        )
    attempt = 1 if previous.state == State.OK else previous.attempt + 1
    if attempt >= max_attempts:
        return Status(state, HARD, attempt, since, state, now)
    return Status(state, SOFT, attempt, since, previous.last_hard_state, previous.last_hard_change)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished check: the result and the status it leads to."""

    check: CheckInstance
    result: CheckResult
    status: Status
    previous: Status | None

    @property
    def changed(self) -> bool:
        return self.previous is None or self.previous.state != self.status.state


class Sink(Protocol):
    """Where outcomes go as they finish (the store, in practice)."""

    def write(self, outcomes: Sequence[Outcome]) -> None: ...


def run_check(
    check: CheckInstance, previous: CheckResult | None = None, store: Any = None
) -> CheckResult:
    """Given a check instance, its last stored result and the open store (if any), run it
    once in the calling thread and return a well-formed CheckResult: whatever the check
    raises or returns, the answer is a CheckResult.
    """
    started = utc_now()
    clock = time.perf_counter()
    try:
        result = check.build(previous, store).run(check.target)
    except Exception as error:  # any failure inside a check is its UNKNOWN, not the engine's
        reason = str(error) or type(error).__name__
        result = CheckResult.unknown(f"check failed: {reason}", error=type(error).__name__)
        counters = previous.details.get("counters") if previous is not None else None
        if counters:
            # Keep what the check remembers (log cursors, counters) for its next run: one
            # failed run must not turn the next one into a first run.
            result = replace(result, details={**result.details, "counters": counters})
    else:
        result = _validated(result)
    return replace(result, started=started, duration=time.perf_counter() - clock)


def _validated(result: Any) -> CheckResult:
    if not isinstance(result, CheckResult):
        return CheckResult.unknown(
            f"check returned {type(result).__name__}, expected a CheckResult"
        )
    if not isinstance(result.state, State):
        try:
            result = replace(result, state=State(int(result.state)))
        except (TypeError, ValueError):
            return CheckResult.unknown(f"check returned an invalid state {result.state!r}")
    summary = result.summary if isinstance(result.summary, str) else str(result.summary)
    # One line a person reads on a phone: keep only the first line.
    first_line = summary.strip().splitlines()[0] if summary.strip() else result.state.name
    return replace(result, summary=first_line)


@dataclass(order=True)
class _Pending:
    ready_at: float
    order: int
    check: CheckInstance
    previous: Status | None


class Engine:
    """Runs check instances concurrently and hands their outcomes to a sink."""

    def __init__(
        self,
        *,
        concurrency: int = 16,
        sink: Sink | None = None,
        flush_every: float = 1.0,
        timeout_grace: float = 2.0,
        retry: bool = True,
        runner: Callable[[CheckInstance, CheckResult | None], CheckResult] | None = None,
        store: Any = None,
    ) -> None:
        """``timeout_grace`` is added to each check's own timeout before the engine abandons
        it, so that a check which honours its timeout can report its own precise reason.
        ``retry`` off means soft states are recorded but not re-checked within this run.
        ``store`` is handed to the checks that read it (agents, the fleet).
        """
        if runner is None:
            runner = functools.partial(run_check, store=store)
        self.concurrency = max(1, concurrency)
        self.sink = sink
        self.flush_every = flush_every
        self.timeout_grace = timeout_grace
        self.retry = retry
        self.runner = runner

    def run(
        self,
        checks: Iterable[CheckInstance],
        previous: dict[str, Status] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        previous_results: dict[str, CheckResult] | None = None,
    ) -> list[Outcome]:
        """Given check instances, their previous statuses and last stored results, run them
        all and return the final outcome of each (after in-run retries), in the order the
        checks were given.
        """
        previous = previous or {}
        previous_results = previous_results or {}
        order = itertools.count()
        checks = list(checks)
        heap: list[_Pending] = [_Pending(0.0, next(order), c, previous.get(c.id)) for c in checks]
        heapq.heapify(heap)
        pool = _Workers(self.runner)
        running: dict[int, tuple[_Pending, float]] = {}
        tokens = itertools.count()
        final: dict[str, Outcome] = {}
        unflushed: list[Outcome] = []
        last_flush = time.monotonic()

        def settle(pending: _Pending, result: CheckResult) -> None:
            nonlocal last_flush
            check = pending.check
            now = result.started or utc_now()
            status = transition(pending.previous, result.state, now, check.spec.max_attempts)
            outcome = Outcome(check, result, status, pending.previous)
            unflushed.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if self.retry and status.state_type == SOFT and status.state != State.OK:
                delay = check.spec.retry_interval.total_seconds()
                heapq.heappush(heap, _Pending(time.monotonic() + delay, next(order), check, status))
            else:
                final[check.id] = outcome
            if self.sink is not None and time.monotonic() - last_flush >= self.flush_every:
                self.sink.write(unflushed)
                unflushed.clear()
                last_flush = time.monotonic()

        try:
            while heap or running:
                now = time.monotonic()
                while heap and len(running) < self.concurrency and heap[0].ready_at <= now:
                    pending = heapq.heappop(heap)
                    token = next(tokens)
                    timeout = pending.check.spec.timeout.total_seconds() + self.timeout_grace
                    running[token] = (pending, now + timeout)
                    pool.submit(token, pending.check, previous_results.get(pending.check.id))
                waits = [deadline for _, deadline in running.values()]
                if heap and len(running) < self.concurrency:
                    waits.append(heap[0].ready_at)
                wait = max(0.0, min(waits) - time.monotonic()) if waits else 0.0
                for token, result in pool.results(wait):
                    entry = running.pop(token, None)
                    if entry is not None:  # else: the late answer of an abandoned check
                        settle(entry[0], result)
                now = time.monotonic()
                for token, (pending, deadline) in list(running.items()):
                    if deadline <= now:
                        del running[token]
                        pool.abandon(token)
                        settle(pending, _timed_out(pending.check.spec.timeout.total_seconds()))
        finally:
            pool.close()
        if self.sink is not None and unflushed:
            self.sink.write(unflushed)
        return [final[c.id] for c in checks if c.id in final]


class _Workers:
    """A pool of daemon threads that grows only to replace threads stuck in abandoned checks.

    A worker whose check was abandoned exits when (if ever) that check returns, so the number
    of threads taking new work never exceeds the engine's concurrency.
    """

    def __init__(self, runner: Callable[[CheckInstance, CheckResult | None], CheckResult]) -> None:
        self.runner = runner
        self.jobs: queue.SimpleQueue[tuple[int, CheckInstance, CheckResult | None] | None] = (
            queue.SimpleQueue()
        )
        self.done: queue.SimpleQueue[tuple[int, CheckResult]] = queue.SimpleQueue()
        self.abandoned: set[int] = set()
        self.idle = 0
        self.threads = 0
        self.lock = threading.Lock()

    def submit(self, token: int, check: CheckInstance, previous: CheckResult | None) -> None:
        with self.lock:
            start_one = self.idle == 0
            if start_one:
                self.threads += 1
            else:
                self.idle -= 1
        if start_one:
            threading.Thread(target=self._work, name="opsctl-check", daemon=True).start()
        self.jobs.put((token, check, previous))

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            token, check, previous = job
            result = self.runner(check, previous)
            with self.lock:
                stuck = token in self.abandoned
                if stuck:
                    self.abandoned.discard(token)
                    self.threads -= 1
                else:
                    # Idle before the result is seen, so the next check reuses this thread.
                    self.idle += 1
            self.done.put((token, result))
            if stuck:
                return

    def results(self, wait: float) -> list[tuple[int, CheckResult]]:
        """Return the finished (token, result) pairs, waiting up to ``wait`` seconds for one."""
        try:
            found = [self.done.get(timeout=wait) if wait > 0 else self.done.get_nowait()]
        except queue.Empty:
            return []
        while True:
            try:
                found.append(self.done.get_nowait())
            except queue.Empty:
                return found

    def abandon(self, token: int) -> None:
        with self.lock:
            self.abandoned.add(token)

    def close(self) -> None:
        with self.lock:
            waiting = self.threads
        for _ in range(waiting):
            self.jobs.put(None)


def _timed_out(seconds: float) -> CheckResult:
    return replace(
        CheckResult.unknown(f"check timed out after {seconds:g}s", error="timeout"),
        started=utc_now() - timedelta(seconds=seconds),
        duration=seconds,
    )
