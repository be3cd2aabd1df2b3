"""Storing what agents push: one transaction per batch, and a batch id stored once.

``store_push`` writes the batch's row in ``ingest_batches`` first; if that row exists the
batch is a retry (the agent's answer was lost, or its spool replays) and nothing else is
written. Otherwise the samples, the results of the agent's local checks and the agent's row
are written in the same transaction, so a batch is either wholly stored or not at all, and
the server answers 2xx only after the commit.

Samples go in with the driver's bulk path (SQLite ``executemany``, PostgreSQL ``COPY``):
agents push hundreds of samples a batch, and the ORM's per-row work would be the bottleneck.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from opsctl.contract import CheckResult, Metric, State
from opsctl.engine import Status, transition
from opsctl.store.api import Recorded, Store
from opsctl.store.models import AgentModel, BatchModel, StatusModel

#: The check id under which an agent's samples and its silence check are kept.
AGENT_CHECK = "agent"


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What storing one push did."""

    duplicate: bool
    samples: int
    results: int


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent as the store knows it."""

    name: str
    site: str
    interval: float
    first_seen: datetime
    last_push: datetime
    last_sent: datetime
    address: str
    version: str
    facts: dict[str, Any]
    pushes: int
    samples: int
    spooled: int
    dropped_batches: int
    dropped_samples: int


def agent_check_id(site: str, agent: str) -> str:
    """The check id of an agent's samples and silence check: ``SITE/AGENT/agent``."""
    return f"{site}/{agent}/{AGENT_CHECK}"


def store_push(store: Store, push: Any, *, site: str, address: str, now: datetime) -> PushOutcome:
    """Given a validated ``AgentPush``, the agent's site, the peer address and the server's
    time, store it once; return what was stored (nothing for a duplicate batch id).

    Raise StoreError if the database fails: then nothing is stored.
    """
    with store._guard("store an agent push"), store._sessions.begin() as session:
        statement = (
            store._insert(BatchModel)
            .values(
                agent=push.agent,
                batch_id=push.batch_id,
                received=now,
                samples=len(push.samples),
                results=len(push.results),
            )
            .on_conflict_do_nothing(index_elements=["agent", "batch_id"])
            .returning(BatchModel.batch_id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT SQLAlchemy executes.
        if session.execute(statement).first() is None:
            _touch_agent(session, store, push, site, address, now, stored_samples=0)
            return PushOutcome(True, 0, 0)
        check_id = agent_check_id(site, push.agent)
        if push.samples:
            _bulk_samples(session, store, check_id, push.samples)
        if push.results:
            store._record_in(session, _recorded(session, site, push))
        _touch_agent(session, store, push, site, address, now, stored_samples=len(push.samples))
        return PushOutcome(False, len(push.samples), len(push.results))


def agents(store: Store, site: str | None = None) -> list[AgentRow]:
    """Return the agents the store knows (optionally one site's), by site and name."""
    statement = select(AgentModel).order_by(AgentModel.site, AgentModel.name)
    if site is not None:
        statement = statement.where(AgentModel.site == site)
    with store._guard("read agents"), store._sessions() as session:
        return [_agent_row(model) for model in session.scalars(statement)]


def agent(store: Store, name: str) -> AgentRow | None:
    """Return one agent by name, or None if it never pushed."""
    with store._guard("read an agent"), store._sessions() as session:
        model = session.get(AgentModel, name)
        return None if model is None else _agent_row(model)


# --------------------------------------------------------------------------- writing


# The text SQLAlchemy's SQLite DATETIME type writes and reads: bulk rows must match it.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _bulk_samples(session: Any, store: Store, check_id: str, samples: Any) -> None:
    raw = session.connection().connection.driver_connection
    # A batch's samples share a few label sets and one or two instants: encode each once.
    labels: dict[tuple[tuple[str, str], ...], str] = {}
    times: dict[datetime, Any] = {}
    postgresql = store.engine.dialect.name == "postgresql"

    def encoded(sample: Any) -> tuple[str, Any]:
        key = tuple(sample.labels.items())
        text = labels.get(key)
        if text is None:
            text = labels[key] = _labels(sample.labels)
        at = times.get(sample.at)
        if at is None:
            at = times[sample.at] = (
                sample.at if postgresql else sample.at.astimezone(UTC).strftime(_SQLITE_TIME)
            )
        return text, at

    if postgresql:
        with raw.cursor() as cursor:
            copy_sql = "COPY metric_samples (check_id, name, value, unit, labels, at) FROM STDIN"
            with cursor.copy(copy_sql) as copy:
                for sample in samples:
                    text, at = encoded(sample)
                    copy.write_row((check_id, sample.name, sample.value, "", text, at))
        return
    rows = []
    for sample in samples:
        text, at = encoded(sample)
        rows.append((check_id, sample.name, sample.value, text, at))
    cursor = raw.cursor()
    try:
        cursor.executemany(
            "INSERT INTO metric_samples (result_id, check_id, name, value, unit, labels, at) "
            "VALUES (NULL, ?, ?, ?, '', ?, ?)",
            rows,
        )
    finally:
        cursor.close()


def _labels(labels: dict[str, str]) -> str:
    return json.dumps(labels, ensure_ascii=False, separators=(",", ":")) if labels else "{}"


def _recorded(session: Any, site: str, push: Any) -> list[Recorded]:
    """The agent's local check results as recorded results, with hard states (an agent
    retries nothing: each result is final)."""
    ids = [f"{site}/{push.agent}/{result.name}" for result in push.results]
    stored = {
        model.check_id: model
        for model in session.scalars(select(StatusModel).where(StatusModel.check_id.in_(ids)))
    }
    previous: dict[str, Status | None] = {
        check_id: None
        if model is None
        else Status(
            model.state,
            model.state_type,
            model.attempt,
            model.since,
            model.last_hard_state,
            model.last_hard_change,
        )
        for check_id, model in ((i, stored.get(i)) for i in ids)
    }
    recorded = []
    for check_id, result in sorted(zip(ids, push.results, strict=True), key=lambda p: p[1].at):
        state = State(result.state)
        before = previous[check_id]
        status = transition(before, state, result.at, 1)
        previous[check_id] = status
        recorded.append(
            Recorded(
                check_id=check_id,
                site=site,
                target=push.agent,
                kind=result.kind,
                result=CheckResult(
                    state,
                    result.summary,
                    metrics=tuple(_metrics(result.metrics)),
                    details={"source": "agent"},
                    started=result.at,
                    duration=result.duration,
                ),
                state_type=status.state_type,
                attempt=status.attempt,
                since=status.since,
                last_hard_state=status.last_hard_state,
                last_hard_change=status.last_hard_change,
                changed=before is None or before.state != state,
                previous_state=None if before is None else before.state,
            )
        )
    return recorded


def _metrics(raw: list[dict[str, Any]]) -> list[Metric]:
    metrics = []
    for entry in raw:
        try:
            metrics.append(
                Metric(
                    str(entry["name"]),
                    float(entry["value"]),
                    unit=str(entry.get("unit", "")),
                    labels={str(k): str(v) for k, v in dict(entry.get("labels", {})).items()},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed perfdata entry is dropped; the state and summary stand
    return metrics


def _touch_agent(
    session: Any,
    store: Store,
    push: Any,
    site: str,
    address: str,
    now: datetime,
    *,
    stored_samples: int,
) -> None:
    facts = push.facts.model_dump() if push.facts is not None else None
    values = {
        "name": push.agent,
        "site": site,
        "interval": push.interval,
        "first_seen": now,
        "last_push": now,
        "last_sent": push.sent_at,
        "address": address,
        "version": push.facts.version if push.facts is not None else "",
        "facts": facts or {},
        "pushes": 1,
        "samples": stored_samples,
        "spooled": push.spool.queued_batches,
        "dropped_batches": push.spool.dropped_batches,
        "dropped_samples": push.spool.dropped_samples,
    }
    statement = store._insert(AgentModel).values(**values)
    table = AgentModel.__table__.c
    update = {
        "site": site,
        "interval": push.interval,
        "last_push": now,
        "last_sent": push.sent_at,
        "address": address,
        "pushes": table.pushes + 1,
        "samples": table.samples + stored_samples,
        "spooled": push.spool.queued_batches,
        "dropped_batches": push.spool.dropped_batches,
        "dropped_samples": push.spool.dropped_samples,
    }
    if facts is not None:
        update["facts"] = statement.excluded.facts
        update["version"] = statement.excluded.version
    session.execute(statement.on_conflict_do_update(index_elements=["name"], set_=update))


def _agent_row(model: AgentModel) -> AgentRow:
    return AgentRow(
        name=model.name,
        site=model.site,
        interval=model.interval,
        first_seen=model.first_seen,
        last_push=model.last_push,
        last_sent=model.last_sent,
        address=model.address,
        version=model.version,
        facts=dict(model.facts),
        pushes=model.pushes,
        samples=model.samples,
        spooled=model.spooled,
        dropped_batches=model.dropped_batches,
        dropped_samples=model.dropped_samples,
    )
