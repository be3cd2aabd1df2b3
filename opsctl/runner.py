"""Running checks into the store: what ``opsctl check run``, ``opsctl backup drill`` and the
server's scheduler share.

The store gives each check its previous status (for soft/hard states) and its last result
(for the counters a check keeps); the engine runs the checks; ``StoreSink`` writes the
outcomes back in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsctl.contract import CheckResult, State
from opsctl.engine import Engine, Outcome, Status

if TYPE_CHECKING:
    from opsctl.inventory import CheckInstance
    from opsctl.store import ResultRow, StatusRow, Store


def status_of(row: StatusRow) -> Status:
    """Given a stored status row, return the engine's Status of it."""
    return Status(
        state=State(row.state),
        state_type=row.state_type,
        attempt=row.attempt,
        since=row.since,
        last_hard_state=State(row.last_hard_state),
        last_hard_change=row.last_hard_change,
    )


def result_of(row: ResultRow) -> CheckResult:
    """The stored result a check finds as ``previous``: its state, summary, time and details."""
    return CheckResult(
        row.state, row.summary, details=row.details, started=row.started, duration=row.duration
    )


class StoreSink:
    """Writes finished outcomes to the store in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, outcomes: Sequence[Outcome]) -> None:
        from opsctl.store import Recorded

        self.store.record(
            [
                Recorded(
                    check_id=o.check.id,
                    site=o.check.site.name,
                    target=o.check.target.name,
                    kind=o.check.kind,
                    result=o.result,
                    state_type=o.status.state_type,
                    attempt=o.status.attempt,
                    since=o.status.since,
                    last_hard_state=o.status.last_hard_state,
                    last_hard_change=o.status.last_hard_change,
                    changed=o.changed,
                    previous_state=None if o.previous is None else o.previous.state,
                )
                for o in outcomes
            ]
        )


def previous_of(
    store: Store, checks: Sequence[CheckInstance]
) -> tuple[dict[str, Status], dict[str, CheckResult]]:
    """Given the checks about to run, return their stored statuses and last results by id."""
    ids = [c.id for c in checks]
    statuses = {check_id: status_of(row) for check_id, row in store.statuses(ids).items()}
    results = {check_id: result_of(row) for check_id, row in store.latest_results(ids).items()}
    return statuses, results


def run_into_store(
    store: Store,
    checks: Sequence[CheckInstance],
    *,
    concurrency: int = 16,
    retry: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
    engine: Any = None,
) -> list[Outcome]:
    """Given an open store and checks, run them with their stored history and record every
    outcome; return the outcomes. ``engine`` replaces the default one (progress bars)."""
    statuses, results = previous_of(store, checks)
    engine = engine or Engine(
        concurrency=concurrency, sink=StoreSink(store), retry=retry, store=store
    )
    return engine.run(checks, statuses, on_outcome=on_outcome, previous_results=results)
