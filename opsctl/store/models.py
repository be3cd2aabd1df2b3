"""The store's tables as SQLAlchemy 2.x declarative models.

One schema for SQLite and PostgreSQL:

- ``check_results``: every result a check produced (the raw history).
- ``metric_samples``: the numbers of each result, one row per metric (rolled up later), and
  the samples agents push (those have no result).
- ``metric_rollups``: each series' samples summed up per UTC hour and per UTC day (count, min,
  max, sum and the last value), what reports over long periods read.
- ``check_status``: one row per check, its current state (what ``status`` and ``problems`` read).
- ``state_changes``: one row per flip of a check's state (healthchecks' ``Flip``).
- ``api_tokens``: the server's bearer tokens, hashed, each scoped to one agent or one vendor.
- ``ingest_batches``: the agent batches already stored, so that a retried batch is not
  stored twice.
- ``agents``: each push agent, its last push and the facts it last reported.
- ``devices`` and ``device_flips``: the dispenser fleet, each device's current status and
  one row per change of it, from which availability over any period is exact.
- ``scheduler_lease`` and ``job_runs``: which server runs the scheduler, and what it ran.
- ``alerts`` and ``notifications``: problems raised from checks' hard states, and every
  message sent (or not) about them.
- ``incidents`` and ``incident_notes``: the incident log the SLA clocks are computed from.

The schema itself is created by the migrations in ``migrations/versions``; these models
describe it for queries, and a test keeps the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from opsctl.contract import State

#: The head revision of ``migrations/versions``. Opening a store whose ``alembic_version``
#: already says this skips alembic entirely (a test keeps the two equal).
SCHEMA_REVISION = "0005"

# Named constraints, so that a later migration can drop or alter them by name on both engines
# (SQLite batch migrations need the names; PostgreSQL would otherwise invent its own).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity,
# since samples of a few hundred checks a minute pass 2**31 within years.
Identifier = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL: smaller, and indexable should reports ever filter on an item.
Document = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC: aware datetimes in, aware UTC datetimes out, on every engine.

    Raise ValueError when given a naive datetime: the store cannot know which zone it meant,
    and a hospital's servers often run in Asia/Shanghai while the database runs in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the store: "
                "pass a timezone-aware datetime (for example datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        # SQLite has no time zone type: its DATETIME text drops the offset, so store the UTC
        # wall time; comparisons stay correct because every stored value is UTC.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # PostgreSQL returns timestamptz in the session's TimeZone; normalise to UTC.
        return value.astimezone(UTC)


class StateType(TypeDecorator[State]):
    """A ``State`` stored as its Nagios code (0..3) and read back as a ``State``."""

    impl = SmallInteger()
    cache_ok = True

    def process_bind_param(self, value: State | int | None, dialect: Dialect) -> int | None:
        return None if value is None else int(State(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> State | None:
        return None if value is None else State(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        State: StateType(),
        str: String(),
        float: Float(),
        dict[str, Any]: Document,
        list[dict[str, Any]]: Document,
    }


class ResultModel(Base):
    """One result of one check run."""

    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    check_id: Mapped[str]
    site: Mapped[str]
    target: Mapped[str]
    kind: Mapped[str]
    state: Mapped[State]
    state_type: Mapped[str] = mapped_column(String(4))
    attempt: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    started: Mapped[datetime]
    duration: Mapped[float]
    items: Mapped[list[dict[str, Any]]]
    details: Mapped[dict[str, Any]]

    __table_args__ = (
        CheckConstraint("state BETWEEN 0 AND 3", name="state"),
        CheckConstraint("state_type IN ('soft', 'hard')", name="state_type"),
        Index(None, "check_id", "started"),
        Index(None, "target", "started"),
        Index(None, "site", "started"),
    )


class SampleModel(Base):
    """One metric value of one result, or one sample an agent pushed (no result then;
    ``check_id`` is then ``SITE/AGENT/agent``). Raw; rollups are a later table."""

    __tablename__ = "metric_samples"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    # CASCADE, so that raw retention deletes old results and their samples in one statement.
    result_id: Mapped[int | None] = mapped_column(
        Identifier, ForeignKey("check_results.id", ondelete="CASCADE")
    )
    check_id: Mapped[str]
    name: Mapped[str]
    value: Mapped[float]
    unit: Mapped[str]
    labels: Mapped[dict[str, Any]]
    at: Mapped[datetime]

    __table_args__ = (
        Index(None, "check_id", "name", "at"),
        # A foreign key without an index makes every cascaded delete scan the whole table.
        Index(None, "result_id"),
    )


class RollupModel(Base):
    """The samples of one series (check, metric name and labels) in one UTC hour or UTC day:
    how many, their min, max and sum, and the value of the latest one."""

    __tablename__ = "metric_rollups"

    check_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    # The labels as sorted, compact JSON text: one series per distinct label set, and a key
    # that compares equal on both engines (JSON columns do not, on SQLite).
    labels_key: Mapped[str] = mapped_column(Text, primary_key=True)
    labels: Mapped[dict[str, Any]]
    unit: Mapped[str]  # the latest sample's
    resolution: Mapped[str] = mapped_column(String(4), primary_key=True)  # hour | day
    bucket: Mapped[datetime] = mapped_column(primary_key=True)  # UTC start of the hour or day
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float]
    max: Mapped[float]
    sum: Mapped[float]
    last: Mapped[float]
    last_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("resolution IN ('hour', 'day')", name="resolution"),
        CheckConstraint("count > 0", name="count"),
        # A series over a period, whatever its labels.
        Index(None, "check_id", "name", "resolution", "bucket"),
        # The watermark (the latest bucket rolled up), read on every run of the rollup.
        Index(None, "resolution", "bucket"),
    )


class StatusModel(Base):
    """The current status of one check."""

    __tablename__ = "check_status"

    check_id: Mapped[str] = mapped_column(primary_key=True)
    site: Mapped[str]
    target: Mapped[str]
    kind: Mapped[str]
    state: Mapped[State]
    state_type: Mapped[str] = mapped_column(String(4))
    attempt: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime]
    last_hard_state: Mapped[State]
    last_hard_change: Mapped[datetime]
    last_checked: Mapped[datetime]
    summary: Mapped[str] = mapped_column(Text)
    # No foreign key: raw retention may delete the result while the status stays.
    last_result_id: Mapped[int | None] = mapped_column(Identifier)

    __table_args__ = (
        CheckConstraint("state BETWEEN 0 AND 3", name="state"),
        CheckConstraint("last_hard_state BETWEEN 0 AND 3", name="last_hard_state"),
        CheckConstraint("state_type IN ('soft', 'hard')", name="state_type"),
    )


class ChangeModel(Base):
    """One change of a check's state: the previous state (None for the first result) and the new."""

    __tablename__ = "state_changes"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    check_id: Mapped[str]
    site: Mapped[str]
    target: Mapped[str]
    kind: Mapped[str]
    at: Mapped[datetime]
    from_state: Mapped[State | None]
    to_state: Mapped[State]
    state_type: Mapped[str] = mapped_column(String(4))
    summary: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("from_state BETWEEN 0 AND 3", name="from_state"),
        CheckConstraint("to_state BETWEEN 0 AND 3", name="to_state"),
        CheckConstraint("state_type IN ('soft', 'hard')", name="state_type"),
        Index(None, "check_id", "at"),
        Index(None, "at"),
    )


class TokenModel(Base):
    """A bearer token of the server's API. Only its SHA-256 is kept: a token is 256 random
    bits, so a plain hash is enough and lets the server find it by an index."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists, to tell tokens apart
    scope: Mapped[str] = mapped_column(String(8))  # "agent" | "vendor"
    subject: Mapped[str]  # the agent's or the vendor's name
    site: Mapped[str | None]
    note: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime]
    last_used: Mapped[datetime | None]
    revoked: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("scope IN ('agent', 'vendor')", name="scope"),)


class BatchModel(Base):
    """An agent batch already stored (its samples and results are committed with this row)."""

    __tablename__ = "ingest_batches"

    agent: Mapped[str] = mapped_column(primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received: Mapped[datetime]
    samples: Mapped[int] = mapped_column(Integer)
    results: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index(None, "received"),)


class AgentModel(Base):
    """One push agent: where it belongs, when it last pushed and what it last reported."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(primary_key=True)
    site: Mapped[str]
    interval: Mapped[float]  # seconds between collections, as the agent says
    first_seen: Mapped[datetime]
    last_push: Mapped[datetime]  # the server's clock
    last_sent: Mapped[datetime]  # the agent's clock, for skew
    address: Mapped[str]
    version: Mapped[str]
    facts: Mapped[dict[str, Any]]
    pushes: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(BigInteger)
    # What the agent says its spool holds and has had to drop (never silently).
    spooled: Mapped[int] = mapped_column(BigInteger)
    dropped_batches: Mapped[int] = mapped_column(BigInteger)
    dropped_samples: Mapped[int] = mapped_column(BigInteger)


class DeviceModel(Base):
    """One dispenser: its registration and its latest heartbeat, and its current status."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(primary_key=True)
    vendor: Mapped[str]
    site: Mapped[str]
    region: Mapped[str]
    address: Mapped[str] = mapped_column(Text)
    registered: Mapped[bool]  # listed in a vendor's registry CSV (else learned from heartbeats)
    first_seen: Mapped[datetime | None]
    last_heartbeat: Mapped[datetime | None]  # the server's clock: what liveness is judged on
    last_reported: Mapped[datetime | None]  # the device's own timestamp
    heartbeats: Mapped[int] = mapped_column(BigInteger)
    reported_status: Mapped[str]
    fault_code: Mapped[str | None]
    fault_message: Mapped[str | None] = mapped_column(Text)
    stock: Mapped[list[dict[str, Any]]]
    temperature: Mapped[float | None]
    door: Mapped[str | None]
    firmware: Mapped[str | None]
    interval: Mapped[float | None]  # seconds between heartbeats, as the device says
    status: Mapped[str]  # online | late | offline | faulty | low-stock | unknown
    status_since: Mapped[datetime]

    __table_args__ = (Index(None, "vendor", "region"), Index(None, "site"), Index(None, "status"))


class DeviceFlipModel(Base):
    """One change of a device's status, at the exact moment it happened."""

    __tablename__ = "device_flips"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    device_id: Mapped[str]
    vendor: Mapped[str]
    site: Mapped[str]
    region: Mapped[str]
    at: Mapped[datetime]
    from_status: Mapped[str | None]
    to_status: Mapped[str]
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "device_id", "at"), Index(None, "at"))


class LeaseModel(Base):
    """A lease one server holds (the scheduler's): renewed while it lives, taken over once
    it has expired."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(primary_key=True)
    holder: Mapped[str]
    acquired: Mapped[datetime]
    renewed: Mapped[datetime]
    expires: Mapped[datetime]


class JobRunModel(Base):
    """One run of a scheduled job: when it was due, when it ran, and how it ended."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    schedule: Mapped[str]
    job: Mapped[str]
    site: Mapped[str | None]
    scheduled_for: Mapped[datetime | None]
    started: Mapped[datetime]
    finished: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(8))  # running | ok | failed
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    holder: Mapped[str]

    __table_args__ = (
        CheckConstraint("outcome IN ('running', 'ok', 'failed')", name="outcome"),
        Index(None, "schedule", "started"),
        Index(None, "started"),
    )


class AlertModel(Base):
    """A problem raised from a check's hard state: open until the check recovers."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    check_id: Mapped[str]
    site: Mapped[str]
    target: Mapped[str]
    kind: Mapped[str]
    state: Mapped[State]
    summary: Mapped[str] = mapped_column(Text)
    opened: Mapped[datetime]
    changed: Mapped[datetime]  # the last change of its state while open
    cleared: Mapped[datetime | None]
    acknowledged: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    last_notified: Mapped[datetime | None]
    announced: Mapped[datetime | None]  # the first problem notice; escalation is timed from it
    notifications: Mapped[int] = mapped_column(Integer)
    escalation: Mapped[int] = mapped_column(SmallInteger)  # 0 duty A, 1 duty B, 2 the contact
    flapping: Mapped[bool]
    silenced: Mapped[str | None]  # the maintenance window it was raised in
    incident_id: Mapped[int | None] = mapped_column(Identifier)

    __table_args__ = (
        CheckConstraint("state BETWEEN 0 AND 3", name="state"),
        Index(None, "check_id", "cleared"),
        Index(None, "opened"),
    )


class NotificationModel(Base):
    """One message to one channel: sent, to be retried, failed, or refused by a broken channel."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(Identifier)
    channel: Mapped[str]
    at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(Identifier)
    site: Mapped[str | None]
    # problem, recovery, renotify, escalation, flapping, acknowledged, sla-respond, sla-resolve,
    # sla-onsite, test
    reason: Mapped[str | None]

    __table_args__ = (
        CheckConstraint("status IN ('sent', 'retry', 'broken', 'failed')", name="status"),
        Index(None, "at"),
        Index(None, "alert_id"),
        Index(None, "incident_id"),
    )


class IncidentModel(Base):
    """One incident: what happened, to which system, and when it was answered and solved."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    site: Mapped[str]
    system: Mapped[str]
    severity: Mapped[str]
    category: Mapped[str]
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    reporter: Mapped[str]
    source: Mapped[str] = mapped_column(String(8))  # manual | alert
    opened: Mapped[datetime]
    acknowledged: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    resolved: Mapped[datetime | None]
    root_cause: Mapped[str] = mapped_column(Text)
    actions: Mapped[str] = mapped_column(Text)
    # The SLA clocks whose coming breach was already told (space-separated: respond resolve).
    sla_warned: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (
        CheckConstraint("source IN ('manual', 'alert')", name="source"),
        CheckConstraint("acknowledged IS NULL OR acknowledged >= opened", name="acknowledged"),
        CheckConstraint("resolved IS NULL OR resolved >= opened", name="resolved"),
        Index(None, "site", "opened"),
        Index(None, "resolved"),
    )


class IncidentNoteModel(Base):
    """A note on an incident: who wrote what, when."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Identifier, ForeignKey("incidents.id", ondelete="CASCADE")
    )
    at: Mapped[datetime]
    author: Mapped[str]
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "incident_id"),)
