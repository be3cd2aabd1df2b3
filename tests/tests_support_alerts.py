"""Recording check statuses for the alert tests, as the engine would."""

from __future__ import annotations

from datetime import datetime

from opsctl.contract import CheckResult, State
from opsctl.store import Recorded, Store


def record(
    store: Store, check_id: str, state: State, at: datetime, state_type: str = "hard"
) -> None:
    """Record one result of ``check_id`` at ``at``, its status following from the last one."""
    previous = store.statuses([check_id]).get(check_id)
    changed = previous is None or previous.state != state
    since = at if changed else previous.since
    hard_change = (
        at
        if state_type == "hard" and (previous is None or previous.last_hard_state != state)
        else (previous.last_hard_change if previous else at)
    )
    site, target, kind = check_id.split("/")
    store.record(
        [
            Recorded(
                check_id=check_id,
                site=site,
                target=target,
                kind=kind,
                result=CheckResult(state, f"{state.name} at {at:%H:%M}", started=at, duration=0.1),
                state_type=state_type,
                attempt=1,
                since=since,
                last_hard_state=state
                if state_type == "hard"
                else (previous.last_hard_state if previous else State.OK),
                last_hard_change=hard_change,
                changed=changed,
                previous_state=None if previous is None else previous.state,
            )
        ]
    )
