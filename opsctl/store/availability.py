"""The availability of checks over a period, computed exactly from their state changes.

A check's availability counts its hard states only: a soft problem that recovers before its
last attempt is a retry, not an outage. The engine writes a ``state_changes`` row whenever
the state changes, soft or hard, but none when a soft problem turns hard on its last attempt
(the state stays the same): that moment is the first hard result after the soft change, read
from ``check_results``. While a check is soft its hard state is OK (a soft problem only ever
follows OK or another soft problem).

The state in force at the start of the period is the one the last change before it left.
Time in maintenance windows is left out of the figures; the period ends at ``until``, so
pass no later than now. The dispenser fleet's availability, from device flips, is
``opsctl.store.fleet.availability_by``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, or_, select

from opsctl.contract import State
from opsctl.maintenance import Window, covered
from opsctl.store.api import Store, _chunks, _require_aware
from opsctl.store.models import ChangeModel, ResultModel

CHANGES = ChangeModel.__table__
RESULTS = ResultModel.__table__

_NONE = timedelta(0)


@dataclass(frozen=True, slots=True)
class Availability:
    """One check's availability over a period.

    ``total`` is the time observed: from the check's first known state, or the start of the
    period if that is later, to its end. ``maintenance`` is the part of it covered by
    maintenance windows, which ``down`` and ``unknown`` leave out. ``outages`` counts the
    changes into a down state within the period that were not wholly in maintenance (an
    outage already in force at the start is not counted); ``longest_outage`` is the longest
    stretch in down states within the period, maintenance left out (that one included).
    """

    total: timedelta
    down: timedelta
    maintenance: timedelta
    unknown: timedelta
    outages: int
    longest_outage: timedelta

    @property
    def ratio(self) -> float | None:
        """1 - down / (total - maintenance); None when nothing outside maintenance was
        observed."""
        counted = self.total - self.maintenance
        if counted <= _NONE:
            return None
        return 1 - self.down / counted


@dataclass(frozen=True, slots=True)
class _Event:
    """The hard state a check entered at a moment; ``carried`` if from before the period."""

    at: datetime
    state: State
    carried: bool = False


def availability(
    store: Store,
    check_ids: Iterable[str],
    since: datetime,
    until: datetime,
    *,
    windows: Iterable[Window] = (),
    count_unknown_as_down: bool = False,
    down_states: Iterable[State] = (State.CRITICAL,),
) -> dict[str, Availability]:
    """Given check ids, a period [since, until) and the maintenance spans that may cover
    them, return each check's availability over the period, by check id (a check never
    recorded is observed for no time, its ratio None).

    A check is down in ``down_states`` (CRITICAL by default), and in UNKNOWN too with
    ``count_unknown_as_down``. Raise ValueError if a time is naive or the period ends before
    it starts, StoreError if the database fails.
    """
    _require_aware(since, "since")
    _require_aware(until, "until")
    if until < since:
        raise ValueError(
            f"the period ends ({until.isoformat()}) before it starts ({since.isoformat()})"
        )
    wanted = list(dict.fromkeys(check_ids))
    spans = list(windows)
    down = frozenset(State(state) for state in down_states)
    if count_unknown_as_down:
        down |= {State.UNKNOWN}
    with store._guard("read state changes from"), store.engine.connect() as connection:
        timelines = _timelines(connection, wanted, since, until)
    return {
        check_id: _measure(timelines.get(check_id, []), check_id, since, until, spans, down)
        for check_id in wanted
    }


def _timelines(
    connection: Connection, check_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[_Event]]:
    """Each check's hard states over the period, in order: the one in force at ``since``
    (``carried``) if the check was known by then, then every change of it."""
    timelines: dict[str, list[_Event]] = {}
    for chunk in _chunks(list(check_ids)):
        carried = {row.check_id: row for row in connection.execute(_before(chunk, since, until))}
        during: dict[str, list[Any]] = {}
        for row in connection.execute(_during(chunk, since, until)):
            during.setdefault(row.check_id, []).append(row)
        for check_id in chunk:
            rows = during.get(check_id, [])
            events: list[_Event] = []
            last = carried.get(check_id)
            if last is not None:
                following = rows[0].at if rows else until
                promoted = last.promoted if last.promoted and last.promoted < following else None
                if last.state_type == "hard" or (promoted is not None and promoted < since):
                    events.append(_Event(last.at, last.to_state, carried=True))
                else:
                    events.append(_Event(last.at, State.OK, carried=True))
                    if promoted is not None:
                        events.append(_Event(promoted, last.to_state))
            for row in rows:
                if row.state_type == "hard":
                    events.append(_Event(row.at, row.to_state))
                else:
                    events.append(_Event(row.at, State.OK))
                    if row.promoted is not None:
                        events.append(_Event(row.promoted, row.to_state))
            if events:
                timelines[check_id] = events
    return timelines


def _before(chunk: Sequence[str], since: datetime, until: datetime) -> Any:
    """The last change of each check before ``since``, with the first hard result after it
    (before ``until``) in ``promoted`` when it was soft."""
    ranked = (
        select(
            CHANGES.c.check_id,
            CHANGES.c.at,
            CHANGES.c.to_state,
            CHANGES.c.state_type,
            func.row_number()
            .over(
                partition_by=CHANGES.c.check_id,
                order_by=(CHANGES.c.at.desc(), CHANGES.c.id.desc()),
            )
            .label("rank"),
        )
        .where(CHANGES.c.check_id.in_(chunk), CHANGES.c.at < since)
        .subquery("ranked")
    )
    return select(
        ranked.c.check_id,
        ranked.c.at,
        ranked.c.to_state,
        ranked.c.state_type,
        _promoted(ranked.c.check_id, ranked.c.at, ranked.c.state_type, None, until),
    ).where(ranked.c.rank == 1)


def _during(chunk: Sequence[str], since: datetime, until: datetime) -> Any:
    """The changes of the checks in [since, until), oldest first, each soft one with the
    first hard result after it and before the next change in ``promoted``."""
    ordered = (
        select(
            CHANGES.c.id,
            CHANGES.c.check_id,
            CHANGES.c.at,
            CHANGES.c.to_state,
            CHANGES.c.state_type,
            func.lead(CHANGES.c.at)
            .over(partition_by=CHANGES.c.check_id, order_by=(CHANGES.c.at, CHANGES.c.id))
            .label("next_at"),
        )
        .where(CHANGES.c.check_id.in_(chunk), CHANGES.c.at >= since, CHANGES.c.at < until)
        .subquery("ordered")
    )
    return select(
        ordered.c.check_id,
        ordered.c.at,
        ordered.c.to_state,
        ordered.c.state_type,
        _promoted(ordered.c.check_id, ordered.c.at, ordered.c.state_type, ordered.c.next_at, until),
    ).order_by(ordered.c.check_id, ordered.c.at, ordered.c.id)


def _promoted(
    check_id: ColumnElement[str],
    at: ColumnElement[datetime],
    state_type: ColumnElement[str],
    next_at: ColumnElement[datetime] | None,
    until: datetime,
) -> ColumnElement[datetime | None]:
    """When a soft change turned hard: its check's first hard result from then on, before the
    next change (the results in between all have the state it changed to)."""
    conditions = [
        RESULTS.c.check_id == check_id,
        RESULTS.c.state_type == "hard",
        RESULTS.c.started >= at,
        RESULTS.c.started < until,
    ]
    if next_at is not None:
        conditions.append(or_(next_at.is_(None), RESULTS.c.started < next_at))
    first_hard = select(func.min(RESULTS.c.started)).where(*conditions).scalar_subquery()
    return case((state_type == "soft", first_hard), else_=None).label("promoted")


def _measure(
    events: Sequence[_Event],
    check_id: str,
    since: datetime,
    until: datetime,
    spans: Sequence[Window],
    down_states: frozenset[State],
) -> Availability:
    """A check's availability from its hard states over the period."""
    if not events:
        return Availability(_NONE, _NONE, _NONE, _NONE, 0, _NONE)
    start = max(since, events[0].at)
    down = unknown = longest = stretch = _NONE
    outages = 0
    counted_stretch = False  # whether the current stretch began by a change in the period
    for index, event in enumerate(events):
        begin = max(event.at, since)
        end = min(events[index + 1].at if index + 1 < len(events) else until, until)
        if event.state not in down_states:
            if stretch > _NONE and counted_stretch:
                outages += 1
            stretch, counted_stretch = _NONE, False
        elif index == 0 or events[index - 1].state not in down_states:
            counted_stretch = not event.carried
        if end <= begin:
            continue
        outside = (end - begin) - covered(spans, check_id, begin, end)
        if event.state == State.UNKNOWN:
            unknown += outside
        if event.state in down_states:
            down += outside
            stretch += outside
            longest = max(longest, stretch)
    if stretch > _NONE and counted_stretch:
        outages += 1
    return Availability(
        total=until - start,
        down=down,
        maintenance=covered(spans, check_id, start, until),
        unknown=unknown,
        outages=outages,
        longest_outage=longest,
    )


__all__ = ["Availability", "availability"]
