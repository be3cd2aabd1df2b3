"""The store: where results, metric samples, statuses and state changes are kept.

``Store.open(url)`` opens (and if needed creates and migrates) a SQLite file or a PostgreSQL
database; the engine hands it batches of ``Recorded`` results; the CLI, alerts and reports
read ``StatusRow``, ``ResultRow`` and ``ChangeRow`` back. Every datetime in and out is
timezone-aware UTC. Every database failure surfaces as ``StoreError`` with the URL's password
masked, so that callers need not import SQLAlchemy to handle it.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time as clock
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any

from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from opsctl.contract import CheckResult, State
from opsctl.store.models import (
    SCHEMA_REVISION,
    ChangeModel,
    ResultModel,
    SampleModel,
    StatusModel,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: The environment variable naming the store, between ``--db`` and the inventory.
ENVIRONMENT_VARIABLE = "OPSCTL_DB"

STATE_TYPES = ("soft", "hard")

# How long a SQLite writer waits for another process's write lock before failing: longer
# than any one batch takes, short enough that a wedged process is noticed.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Seconds to wait for a PostgreSQL server before giving up, unless the URL says otherwise:
# an unreachable address would otherwise hang for the operating system's TCP timeout.
POSTGRESQL_CONNECT_TIMEOUT = 10

# Any fixed 64-bit number, shared by every opsctl process: the advisory lock that lets exactly
# one of several processes (server replicas, a cron'd `opsctl run`) migrate a PostgreSQL store.
MIGRATION_LOCK_KEY = 0x6F7073_6374_6C01

# Bound parameters per IN (...) list: far below SQLite's and PostgreSQL's limits.
CHUNK = 500


class StoreError(Exception):
    """The store cannot be opened, migrated, read or written; the message says why."""


@dataclass(frozen=True, slots=True)
class StatusRow:
    """The current status of one check (a row of ``check_status``)."""

    check_id: str
    site: str
    target: str
    kind: str
    state: State
    state_type: str
    attempt: int
    since: datetime
    last_hard_state: State
    last_hard_change: datetime
    last_checked: datetime
    summary: str
    last_result_id: int | None


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One stored result. ``metrics`` is filled only when ``history(..., metrics=True)``."""

    id: int
    check_id: str
    site: str
    target: str
    kind: str
    state: State
    state_type: str
    attempt: int
    summary: str
    started: datetime
    duration: float
    items: list[dict[str, Any]]
    details: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One change of a check's state (a row of ``state_changes``); ``from_state`` is None
    for a check's first result."""

    id: int
    check_id: str
    site: str
    target: str
    kind: str
    at: datetime
    from_state: State | None
    to_state: State
    state_type: str
    summary: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the engine hands the store for one result, with the status it leads to."""

    check_id: str
    site: str
    target: str
    kind: str
    result: CheckResult  # started and duration filled
    state_type: str  # "soft" | "hard"
    attempt: int
    since: datetime  # when the current state began
    last_hard_state: State
    last_hard_change: datetime
    changed: bool  # the state differs from the previously stored one: write a state_changes row
    previous_state: State | None


# --------------------------------------------------------------------------- URLs


def default_url() -> str:
    """Return the URL of the default store: ``opsctl.db`` in the user's data directory."""
    return _sqlite_url(Path(user_data_dir("opsctl")) / "opsctl.db")


def resolve_url(cli: str | None, env: Mapping[str, str], inventory_url: str | None) -> str:
    """Given ``--db``, the environment and the inventory's ``store.url``, return the store URL.

    The first one set wins, in that order (``OPSCTL_DB`` is read from ``env``); without any,
    ``default_url()``. A bare file path becomes an absolute ``sqlite:///`` URL; a
    ``postgresql://`` (or ``postgres://``) URL gets the psycopg driver. Other URLs pass as given.
    """
    for candidate in (cli, env.get(ENVIRONMENT_VARIABLE), inventory_url):
        if candidate is not None and candidate.strip():
            return _normalise_url(candidate.strip())
    return default_url()


def _normalise_url(text: str) -> str:
    if "://" not in text:
        return _sqlite_url(Path(os.path.abspath(Path(text).expanduser())))
    scheme, _, rest = text.partition("://")
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text


def _sqlite_url(path: Path) -> str:
    # URL.create quotes what a URL cannot hold (%, ?, #) and make_url undoes it, so paths like
    # "D:\运维 数据\opsctl.db" survive the round trip.
    return URL.create("sqlite", database=path.as_posix()).render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """Given a database URL, return it with the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not parseable as a URL: still hide whatever sits between "user:" and "@".
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# --------------------------------------------------------------------------- the store


class Store:
    """An open store. Use ``Store.open(url)``; close it (or use it as a context manager)."""

    def __init__(self, engine: Engine, url: str) -> None:
        """Given an engine whose schema is at the head revision, wrap it. Prefer ``open``."""
        self.engine = engine
        self.url = mask_url(url)
        self._password = make_url(url).password
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str) -> Store:
        """Given a SQLAlchemy URL (or a bare SQLite file path, as ``resolve_url`` takes it),
        return the open store, creating and migrating it if needed.

        A SQLite file and its parent directories are created. Raise StoreError (with the
        password masked) if the URL is malformed, names an unsupported database, or the
        database cannot be reached or migrated.
        """
        if not url.strip():
            raise StoreError(
                "no store URL given: pass a file path, sqlite:///PATH or postgresql://..."
            )
        url = _normalise_url(url.strip())
        masked = mask_url(url)
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            raise StoreError(
                f"not a database URL: {masked!r} (expected a file path, sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"unsupported store database {backend!r} in {masked}: use SQLite or PostgreSQL"
            )
        try:
            engine = _create_engine(parsed)
        except (ArgumentError, NoSuchModuleError, ImportError) as error:
            raise StoreError(f"cannot open the store at {masked}: {error}") from None
        store = cls(engine, url)
        try:
            with store._guard("open"):
                _prepare_sqlite_file(parsed)
                _migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ----------------------------------------------------------------------- writing

    def record(self, batch: Sequence[Recorded]) -> None:
        """Given the engine's recorded results, write them in one transaction: the results,
        their finite metric values as samples, the checks' statuses, and a state change for
        each result marked ``changed``.

        A status is only replaced by a result at least as recent as the one it holds, so that
        two processes recording the same check cannot move its status back in time. Raise
        ValueError if a datetime is naive or missing or a state type is unknown, and
        StoreError if the database fails (nothing is written then).
        """
        if not batch:
            return
        with self._guard("record results"), self._sessions.begin() as session:
            self._record_in(session, batch)

    def _record_in(self, session: Any, batch: Sequence[Recorded]) -> None:
        """Write recorded results inside an open session's transaction (see ``record``)."""
        if not batch:
            return
        results = [_result_values(recorded) for recorded in batch]
        ids = session.scalars(
            insert(ResultModel).returning(ResultModel.id, sort_by_parameter_order=True),
            results,
        ).all()
        samples = [
            {
                "result_id": result_id,
                "check_id": recorded.check_id,
                "name": metric.name,
                "value": float(metric.value),
                "unit": metric.unit,
                "labels": dict(metric.labels),
                "at": recorded.result.started,
            }
            for recorded, result_id in zip(batch, ids, strict=True)
            for metric in recorded.result.metrics
            # NaN and infinities are "not measured", and would poison every average.
            if _finite(metric.value)
        ]
        if samples:
            session.execute(insert(SampleModel), samples)
        changes = [_change_values(recorded) for recorded in batch if recorded.changed]
        if changes:
            session.execute(insert(ChangeModel), changes)
        session.execute(self._upsert_status(), _latest_statuses(batch, ids))

    def _upsert_status(self) -> Any:
        statement = self._insert(StatusModel)
        excluded = statement.excluded
        columns = [c.name for c in StatusModel.__table__.columns if c.name != "check_id"]
        return statement.on_conflict_do_update(
            index_elements=[StatusModel.check_id],
            set_={name: excluded[name] for name in columns},
            where=StatusModel.last_checked <= excluded.last_checked,
        )

    # ----------------------------------------------------------------------- reading

    def statuses(self, check_ids: Iterable[str] | None = None) -> dict[str, StatusRow]:
        """Given check ids (None for all), return their stored statuses by check id.

        Checks never recorded are absent. Raise StoreError if the database fails.
        """
        with self._guard("read statuses"), self._sessions() as session:
            if check_ids is None:
                models = list(session.scalars(select(StatusModel)))
            else:
                wanted = list(dict.fromkeys(check_ids))
                models = []
                for chunk in _chunks(wanted):
                    statement = select(StatusModel).where(StatusModel.check_id.in_(chunk))
                    models.extend(session.scalars(statement))
        return {model.check_id: _status_row(model) for model in models}

    def all_statuses(self, site: str | None = None) -> list[StatusRow]:
        """Given a site (None for all), return every check's status, ordered by site,
        target and check id. Raise StoreError if the database fails."""
        statement = select(StatusModel).order_by(
            StatusModel.site, StatusModel.target, StatusModel.check_id
        )
        if site is not None:
            statement = statement.where(StatusModel.site == site)
        with self._guard("read statuses"), self._sessions() as session:
            return [_status_row(model) for model in session.scalars(statement)]

    def problems(self, site: str | None = None) -> list[StatusRow]:
        """Given a site (None for all), return the statuses that are not OK: worst first
        (UNKNOWN, CRITICAL, WARNING), then the longest-standing. Raise StoreError if the
        database fails."""
        statement = (
            select(StatusModel)
            .where(StatusModel.state != State.OK)
            .order_by(StatusModel.state.desc(), StatusModel.since, StatusModel.check_id)
        )
        if site is not None:
            statement = statement.where(StatusModel.site == site)
        with self._guard("read problems"), self._sessions() as session:
            return [_status_row(model) for model in session.scalars(statement)]

    def latest_results(self, check_ids: Iterable[str]) -> dict[str, ResultRow]:
        """Given check ids, return the last stored result of each that has one (what a check
        that computes rates finds its previous counters in). Raise StoreError if the database
        fails.
        """
        found: dict[str, ResultRow] = {}
        with self._guard("read the latest results"), self._sessions() as session:
            for chunk in _chunks(list(check_ids)):
                latest = select(StatusModel.last_result_id).where(StatusModel.check_id.in_(chunk))
                for model in session.scalars(select(ResultModel).where(ResultModel.id.in_(latest))):
                    found[model.check_id] = _result_row(model, [])
        return found

    def history(
        self,
        target: str,
        since: datetime,
        *,
        site: str | None = None,
        kind: str | None = None,
        limit: int = 500,
        metrics: bool = False,
    ) -> list[ResultRow]:
        """Given a target and a start time, return its results started at or after ``since``,
        newest first, at most ``limit``; optionally only one site's or one check kind's. With
        ``metrics``, each row carries its metric samples. Raise ValueError if ``since`` is
        naive, StoreError if the database fails.
        """
        _require_aware(since, "since")
        statement = (
            select(ResultModel)
            .where(ResultModel.target == target, ResultModel.started >= since)
            .order_by(ResultModel.started.desc(), ResultModel.id.desc())
            .limit(limit)
        )
        if site is not None:
            statement = statement.where(ResultModel.site == site)
        if kind is not None:
            statement = statement.where(ResultModel.kind == kind)
        with self._guard("read history"), self._sessions() as session:
            models = list(session.scalars(statement))
            by_result: dict[int, list[dict[str, Any]]] = {}
            if metrics:
                for chunk in _chunks([model.id for model in models]):
                    rows = session.scalars(
                        select(SampleModel)
                        .where(SampleModel.result_id.in_(chunk))
                        .order_by(SampleModel.id)
                    )
                    for sample in rows:
                        by_result.setdefault(sample.result_id, []).append(
                            {
                                "name": sample.name,
                                "value": sample.value,
                                "unit": sample.unit,
                                "labels": sample.labels,
                            }
                        )
        return [_result_row(model, by_result.get(model.id, [])) for model in models]

    def changes(
        self, since: datetime, *, target: str | None = None, site: str | None = None
    ) -> list[ChangeRow]:
        """Given a start time, return the state changes at or after it, newest first;
        optionally only one target's or one site's. Raise ValueError if ``since`` is naive,
        StoreError if the database fails.
        """
        _require_aware(since, "since")
        statement = (
            select(ChangeModel)
            .where(ChangeModel.at >= since)
            .order_by(ChangeModel.at.desc(), ChangeModel.id.desc())
        )
        if target is not None:
            statement = statement.where(ChangeModel.target == target)
        if site is not None:
            statement = statement.where(ChangeModel.site == site)
        with self._guard("read state changes"), self._sessions() as session:
            return [_change_row(model) for model in session.scalars(statement)]

    def samples(self, check_id: str, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """Given a check id, a metric name and a start time, return the metric's (time, value)
        samples at or after ``since``, oldest first. Raise ValueError if ``since`` is naive,
        StoreError if the database fails.
        """
        _require_aware(since, "since")
        statement = (
            select(SampleModel.at, SampleModel.value)
            .where(
                SampleModel.check_id == check_id,
                SampleModel.name == name,
                SampleModel.at >= since,
            )
            .order_by(SampleModel.at, SampleModel.id)
        )
        with self._guard("read samples"), self._sessions() as session:
            return [(at, value) for at, value in session.execute(statement)]

    # ----------------------------------------------------------------------- errors

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn a database failure into StoreError, naming the action and the masked URL."""
        try:
            yield
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot {action} the store at {self.url}: {self._reason(error)}"
            ) from error
        except OSError as error:
            raise StoreError(f"cannot {action} the store at {self.url}: {error}") from error

    def _reason(self, error: BaseException) -> str:
        cause = getattr(error, "orig", None) or error
        # One line: psycopg's messages carry hints on continuation lines.
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        reason = "; ".join(lines) or type(cause).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason


# --------------------------------------------------------------------------- engine and schema


def _create_engine(url: URL) -> Engine:
    serialise = {"json_serializer": _json_dumps}
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRESQL_CONNECT_TIMEOUT
        if "application_name" not in url.query:
            # So that the hospital's DBA sees who holds a connection in pg_stat_activity.
            connect_args["application_name"] = "opsctl"
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **serialise)
    if _sqlite_in_memory(url):
        # One shared connection, or every pooled connection would see its own empty database.
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            **serialise,
        )
    else:
        engine = create_engine(url, **serialise)
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL itself needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # SQLite enforces foreign keys (the samples' cascade) only when asked, per connection.
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL lets readers (the CLI, reports) run while the engine writes. It is a property
        # of the file, so only the first opener switches; SQLite may answer that switch with
        # "database is locked" at once, without waiting, while another connection is busy
        # creating the file, hence the retry.
        deadline = clock.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or clock.monotonic() > deadline:
                    raise
                clock.sleep(0.05)
    finally:
        cursor.close()


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in (url.database or "")


def _prepare_sqlite_file(url: URL) -> None:
    if url.get_backend_name() != "sqlite" or _sqlite_in_memory(url):
        return
    database = url.database or ""
    if database.startswith("file:"):
        return  # a SQLite URI: the caller chose its own path semantics
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _current_revisions(connection: Any) -> set[str]:
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def _migrate(engine: Engine) -> None:
    """Bring the schema to ``SCHEMA_REVISION``, unless it is there already (the cheap path)."""
    with engine.connect() as connection:
        if _current_revisions(connection) == {SCHEMA_REVISION}:
            return
    with engine.connect() as connection:
        # Serialise migrations between processes: the second one waits, then finds the schema
        # already at head. SQLite's BEGIN IMMEDIATE takes the write lock up front (pysqlite
        # would otherwise run the DDL outside any transaction).
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        current = _current_revisions(connection)
        if current != {SCHEMA_REVISION}:
            _upgrade(connection, current)
        connection.commit()


def _upgrade(connection: Any, current: set[str]) -> None:
    # alembic is imported only here: opening an up-to-date store does not need it.
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = Config()
    # Config values pass through configparser interpolation: a "%" in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    unknown = current - known
    if unknown:
        raise StoreError(
            f"the store's schema is at revision {', '.join(sorted(unknown))}, which this version "
            f"of opsctl does not know (it knows up to {SCHEMA_REVISION}): upgrade opsctl"
        )
    try:
        command.upgrade(config, "head")
    except CommandError as error:
        raise StoreError(f"cannot migrate the store: {error}") from error


# --------------------------------------------------------------------------- rows


def _require_aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({value.isoformat()}): pass a timezone-aware one, "
            "for example datetime.now(UTC)"
        )
    return value


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _result_values(recorded: Recorded) -> dict[str, Any]:
    result = recorded.result
    where = f"result of {recorded.check_id}"
    _require_aware(result.started, f"started ({where})")
    _require_aware(recorded.since, f"since ({where})")
    _require_aware(recorded.last_hard_change, f"last_hard_change ({where})")
    if result.duration is None:
        raise ValueError(f"duration of the {where} is missing: the engine fills it")
    if recorded.state_type not in STATE_TYPES:
        raise ValueError(
            f"state_type of the {where} must be 'soft' or 'hard', got {recorded.state_type!r}"
        )
    return {
        "check_id": recorded.check_id,
        "site": recorded.site,
        "target": recorded.target,
        "kind": recorded.kind,
        "state": result.state,
        "state_type": recorded.state_type,
        "attempt": recorded.attempt,
        "summary": result.summary,
        "started": result.started,
        "duration": float(result.duration),
        "items": [item.to_dict() for item in result.items],
        "details": dict(result.details),
    }


def _change_values(recorded: Recorded) -> dict[str, Any]:
    return {
        "check_id": recorded.check_id,
        "site": recorded.site,
        "target": recorded.target,
        "kind": recorded.kind,
        "at": recorded.result.started,
        "from_state": recorded.previous_state,
        "to_state": recorded.result.state,
        "state_type": recorded.state_type,
        "summary": recorded.result.summary,
    }


def _latest_statuses(batch: Sequence[Recorded], ids: Sequence[int]) -> list[dict[str, Any]]:
    """One status per check: the latest result of the batch (the engine's soft retries put
    several results of one check in a batch, and one upsert statement may not touch a row
    twice). Ordered by check id, so that two processes lock rows in the same order."""
    latest: dict[str, tuple[Recorded, int]] = {}
    for recorded, result_id in zip(batch, ids, strict=True):
        held = latest.get(recorded.check_id)
        if held is None or held[0].result.started <= recorded.result.started:  # type: ignore[operator]
            latest[recorded.check_id] = (recorded, result_id)
    return [
        {
            "check_id": recorded.check_id,
            "site": recorded.site,
            "target": recorded.target,
            "kind": recorded.kind,
            "state": recorded.result.state,
            "state_type": recorded.state_type,
            "attempt": recorded.attempt,
            "since": recorded.since,
            "last_hard_state": recorded.last_hard_state,
            "last_hard_change": recorded.last_hard_change,
            "last_checked": recorded.result.started,
            "summary": recorded.result.summary,
            "last_result_id": result_id,
        }
        for check_id, (recorded, result_id) in sorted(latest.items())
    ]


def _status_row(model: StatusModel) -> StatusRow:
    return StatusRow(
        check_id=model.check_id,
        site=model.site,
        target=model.target,
        kind=model.kind,
        state=model.state,
        state_type=model.state_type,
        attempt=model.attempt,
        since=model.since,
        last_hard_state=model.last_hard_state,
        last_hard_change=model.last_hard_change,
        last_checked=model.last_checked,
        summary=model.summary,
        last_result_id=model.last_result_id,
    )


def _result_row(model: ResultModel, metrics: list[dict[str, Any]]) -> ResultRow:
    return ResultRow(
        id=model.id,
        check_id=model.check_id,
        site=model.site,
        target=model.target,
        kind=model.kind,
        state=model.state,
        state_type=model.state_type,
        attempt=model.attempt,
        summary=model.summary,
        started=model.started,
        duration=model.duration,
        items=list(model.items),
        details=dict(model.details),
        metrics=metrics,
    )


def _change_row(model: ChangeModel) -> ChangeRow:
    return ChangeRow(
        id=model.id,
        check_id=model.check_id,
        site=model.site,
        target=model.target,
        kind=model.kind,
        at=model.at,
        from_state=model.from_state,
        to_state=model.to_state,
        state_type=model.state_type,
        summary=model.summary,
    )


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _json_dumps(value: Any) -> str:
    """Serialise a JSON column. Details come from checks: a datetime or a Decimal becomes its
    text, and NaN becomes null (PostgreSQL's JSON refuses NaN). Chinese stays readable."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:
        cleaned = _without_nan(value)
        return json.dumps(cleaned, ensure_ascii=False, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value


__all__ = [
    "ChangeRow",
    "Recorded",
    "ResultRow",
    "StatusRow",
    "Store",
    "StoreError",
    "default_url",
    "mask_url",
    "resolve_url",
]
