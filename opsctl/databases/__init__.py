"""Database inspection: one connection layer and one shape of observation for every engine.

The ``db.*`` check kinds ask an *engine module* (``postgresql``, ``mysql``, ``oracle``, ``dm``
in this package) for an ``Observation`` of one inspection item — availability, configuration,
tablespaces, logs, control files, temporary space, I/O, sessions, backups. An observation is
a list of ``Measure`` rows (a stable key, a label, a value, default thresholds, advice) plus
the counters to remember for the next run, so that the quarterly database inspection report
has one shape whatever the engine. The check kinds (``checks/db_*.py``) turn measures into
metrics and items with the user's thresholds; they hold no SQL.

An engine module provides:

- ``connect(target: Database, timeout: float) -> Connection``
- one function per inspection item, ``availability(connection, previous)`` ... ``backup``,
  each given the connection and the previous run's ``Snapshot`` (or None) and returning an
  ``Observation``. They call only ``connection.rows``/``connection.value``, so tests can feed
  recorded rows through a ``RecordedConnection``.
- ``PRIVILEGES``: the minimum grants of the monitoring user, as text to print.
- ``read_only(connection, sql, timeout, max_rows)`` for the ``sql`` check.

Oracle and DM8 cannot run on the machines these tests run on; their modules are verified by
SQL review and recorded result rows, not against a live server.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from opsctl.contract import CheckError, Range

#: Engine name in the inventory -> module of this package that inspects it.
ENGINE_MODULES = {
    "postgresql": "opsctl.databases.postgresql",
    "mysql": "opsctl.databases.mysql",
    "mariadb": "opsctl.databases.mysql",
    "oracle": "opsctl.databases.oracle",
    "dm": "opsctl.databases.dm",
}

#: The inspection items, in report order; each is a function of every engine module.
ITEMS = (
    "availability",
    "config",
    "tablespace",
    "logs",
    "controlfile",
    "temp",
    "io",
    "sessions",
    "backup",
)


class DbError(CheckError):
    """A database could not be inspected. ``stage`` says where it failed: ``driver`` (not
    installed), ``connect`` (unreachable, refused, timed out: the database is down),
    ``auth``, ``privilege``, ``timeout`` (a statement), ``query`` or ``readonly``.
    The message is one line and never holds a password.
    """

    def __init__(self, message: str, stage: str = "query") -> None:
        super().__init__(message)
        self.stage = stage


class Connection(Protocol):
    """An open connection to one database, as the engine modules use it."""

    engine: str

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts keyed by lower-case column name.

        Raise DbError (stage ``privilege`` naming the grant when access is denied).
        """
        ...

    def value(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query and return the first column of its first row (None if no row)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Measure:
    """One observed fact or figure of an inspection item.

    ``key`` is stable across engines where the meaning is the same (``db.sessions.used``),
    ``label`` names the subject in English (``Sessions / used of max``). A numeric ``value``
    becomes a metric; ``warn``/``crit`` are the defaults the user may override by key. A
    ``verdict`` set by the engine module (for states that are not numbers: "INVALID" redo
    member) wins over thresholds. ``advice`` is printed when the row is not OK.
    """

    key: str
    label: str
    value: float | int | str | bool | None
    unit: str = ""
    warn: Range | None = None
    crit: Range | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    advice: str = ""
    verdict: int | None = None
    display: str | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a previous run remembered: when, and the counters it read (for deltas)."""

    taken: datetime
    counters: Mapping[str, Any]


@dataclass(frozen=True)
class Observation:
    """What an engine module saw for one inspection item.

    ``counters`` are remembered for the next run (cumulative counters, start time) so that
    rates and restarts can be computed; ``notes`` are one-line remarks for the summary
    ("first run: baseline recorded", "not applicable to MySQL: ...").
    """

    measures: list[Measure]
    counters: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary: str = ""


def engine_module(engine: str) -> Any:
    """Given an engine name, return the module that inspects it. Raise DbError if unknown."""
    name = ENGINE_MODULES.get(engine)
    if name is None:
        known = ", ".join(sorted(ENGINE_MODULES))
        raise DbError(f"engine {engine!r} is not supported (supported: {known})", "driver")
    return importlib.import_module(name)


def rate(current: float | None, previous: float | None, seconds: float) -> float | None:
    """Given a cumulative counter now and at the previous run, and the seconds between, return
    the rate per second; None if unknown or if the counter went backwards (a restart)."""
    if current is None or previous is None or seconds <= 0 or current < previous:
        return None
    return (current - previous) / seconds


_SECRETS_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def mask_credentials(text: str) -> str:
    """Given a message that may hold a URL with a password, return it with the password masked."""
    return _SECRETS_IN_URL.sub(r"\1***@", text)


class ConnectionPool:
    """One connection per database for the length of a run, shared by its checks in turn.

    DB-API connections are not safe to share between threads at once, so each database's
    connection is lent to one check at a time; checks of different databases run in parallel.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by the target object; the entry holds the target too, so that its id cannot
        # be reused by another target while the pool lives.
        self._entries: dict[int, tuple[Any, threading.Lock, list[Connection]]] = {}

    def run(self, target: Any, timeout: float, work: Callable[[Connection], Any]) -> Any:
        """Lend the target's connection (connecting if needed) to ``work`` and return its
        result. A connection that fails during ``work`` is dropped, not reused.
        """
        with self._lock:
            entry = self._entries.setdefault(id(target), (target, threading.Lock(), []))
        _, lock, held = entry
        with lock:
            if not held:
                held.append(engine_module(target.engine).connect(target, timeout))
            connection = held[0]
            try:
                return work(connection)
            except DbError as error:
                if error.stage in ("connect", "timeout"):
                    held.clear()
                    _close_quietly(connection)
                raise

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for _, lock, held in entries:
            with lock:
                for connection in held:
                    _close_quietly(connection)
                held.clear()


def _close_quietly(connection: Connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; nothing to do
        pass


_default_pool: ConnectionPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ConnectionPool:
    """Return the process-wide connection pool (closed at exit)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            import atexit

            _default_pool = ConnectionPool()
            atexit.register(_default_pool.close_all)
        return _default_pool


class RecordedConnection:
    """A Connection that answers from recorded rows: for engines that cannot run here.

    ``answers`` maps a marker found in the SQL (a table or view name such as ``v$log``) to
    the rows to return; the first marker contained in the statement (case-insensitive)
    answers. ``asked`` keeps every statement, so tests can review the SQL that was sent.
    """

    def __init__(
        self, engine: str, answers: Mapping[str, list[dict[str, Any]] | Exception]
    ) -> None:
        self.engine = engine
        self.answers = {marker.lower(): rows for marker, rows in answers.items()}
        self.asked: list[str] = []

    def rows(self, sql: str, parameters: Any = None) -> list[dict[str, Any]]:
        self.asked.append(sql)
        lowered = " ".join(sql.lower().split())
        for marker, rows in self.answers.items():
            if marker in lowered:
                if isinstance(rows, Exception):
                    raise rows
                return [{key.lower(): value for key, value in row.items()} for row in rows]
        raise DbError(f"no recorded rows for: {lowered[:120]}", "query")

    def value(self, sql: str, parameters: Any = None) -> Any:
        found = self.rows(sql, parameters)
        return next(iter(found[0].values())) if found and found[0] else None

    def close(self) -> None:
        pass


def first(rows: Iterable[dict[str, Any]], default: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the first row, or ``default`` (an empty dict) if there is none."""
    for row in rows:
        return row
    return default or {}


# --------------------------------------------------------------------------- shared helpers
# Small helpers of the engine modules that read dictionary views (Oracle, DM8, MySQL).

#: What a rate shows on a first run, or after a restart.
BASELINE = "baseline recorded; rates from the next run"


def password_of(target: Any) -> str | None:
    """Given a target, return its revealed password or None. Raise DbError (stage auth) naming the reference if it cannot be read."""
    if target.password is None:
        return None
    try:
        return target.password.reveal()
    except Exception as error:  # noqa: BLE001 - a SecretError names the reference, not the value
        raise DbError(f"cannot read the password of {target.name}: {error}", "auth") from None


def plain(value: Any) -> Any:
    """Given a driver value, return Decimals as int or float, anything else as is."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def number(value: Any) -> float | None:
    """Given a value from a row, return it as a float, or None if it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def iso_text(value: Any) -> str:
    """Given a datetime (or anything), return ISO text; empty for None."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return "" if value is None else str(value)


def duration_text(seconds: float | None) -> str:
    """Given seconds, return "2 d 3 h", "4 h 5 min" or "6 min"; "unknown" for None."""
    if seconds is None:
        return "unknown"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def not_applicable(key: str, label: str, why: str) -> Measure:
    """Return a measure that says, with the reason, that an item does not apply."""
    return Measure(key, label, None, display=f"not applicable: {why}", verdict=0)


def interval_since(previous: Snapshot | None, started: str) -> tuple[float | None, str | None]:
    """Given the previous snapshot and the start time now, return the seconds since the previous run, or None and why only a baseline is recorded."""
    """Return the seconds since the previous run, or None and why there is only a baseline."""
    if previous is None or not previous.counters:
        return None, f"first run: {BASELINE}"
    if previous.counters.get("started") != started:
        return None, f"instance restarted since the last run: {BASELINE}"
    taken = previous.taken if previous.taken.tzinfo else previous.taken.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - taken).total_seconds()
    if seconds <= 0:
        return None, f"clock went backwards since the last run: {BASELINE}"
    return seconds, None


def counter_rate(
    stats: Mapping[str, float], previous: Snapshot | None, seconds: float | None, name: str
) -> float | None:
    """Given counters now, the previous snapshot and the seconds between, return the rate per second of one counter, or None."""
    if seconds is None or previous is None:
        return None
    return rate(stats.get(name), number(previous.counters.get(name)), seconds)


def autoextensible(row: Mapping[str, Any]) -> bool:
    """Given a data file row, return True if it may grow by itself (AUTOEXTENSIBLE = YES)."""
    return str(row.get("autoextensible") or "").upper() == "YES"
