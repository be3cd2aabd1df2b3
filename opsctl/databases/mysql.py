"""MySQL and MariaDB inspection (engines ``mysql`` and ``mariadb``), through PyMySQL.

One module serves both: the server says which it is (``@@version`` holds ``MariaDB``), and
the few places where they differ branch on it — the privilege names (MariaDB 10.5 split
``REPLICATION CLIENT`` into ``BINLOG MONITOR`` and ``SLAVE MONITOR``), the statement timeout
(MariaDB ``max_statement_time`` in seconds, any statement; MySQL ``max_execution_time`` in
milliseconds, SELECT only), ``SHOW REPLICA STATUS`` (MariaDB 10.5.1, MySQL 8.0.22) and the
InnoDB tablespace view (``INNODB_SYS_TABLESPACES``, MySQL 8: ``INNODB_TABLESPACES``).

Everything is read from ``SHOW GLOBAL STATUS``/``SHOW GLOBAL VARIABLES`` (no privilege),
``information_schema`` (InnoDB views need PROCESS) and the replication statements;
performance_schema is not used, so it may be off. Default thresholds follow
check_mysql_health (ConSol) where it has a mode for the figure; each is cited where set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsctl.contract import Range
from opsctl.databases import (
    DbError,
    Measure,
    Observation,
    Snapshot,
    first,
    mask_credentials,
    number as _number,
)

PRIVILEGES = """\
The monitoring user needs no access to data, only these global privileges:

MySQL 5.7 / 8.x, and MariaDB before 10.5:
  CREATE USER 'monitor'@'%' IDENTIFIED BY '<password>';
  GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'monitor'@'%';

MariaDB 10.5 and later (REPLICATION CLIENT was split in two):
  CREATE USER 'monitor'@'%' IDENTIFIED BY '<password>';
  GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'monitor'@'%';
  (MariaDB 10.5.0 to 10.5.8 have no SLAVE MONITOR yet: grant REPLICATION SLAVE ADMIN.)

PROCESS: open transactions and lock waits (information_schema.innodb_trx) and the sizes of
InnoDB tablespace files, hence of each schema. REPLICATION CLIENT / BINLOG MONITOR: SHOW
BINARY LOGS. REPLICATION CLIENT / SLAVE MONITOR: SHOW REPLICA STATUS (the server's role).
performance_schema is not used. MyISAM/Aria tables are counted in schema sizes only where
the user may see them (SELECT on that schema, which also lets it read the data: optional).
"""

#: A transaction open longer than this is "long" (db.sessions.long_transactions).
LONG_TRANSACTION_SECONDS = 3600

#: Start times from two runs that differ by less than this are the same start: the start
#: time is computed as now minus the whole seconds of uptime, so it jitters by a second.
RESTART_TOLERANCE_SECONDS = 5

_SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
_BASELINE = "baseline recorded; rates from the next run"

# Server errors, by number (mysqld_error.h, MariaDB's include/mysqld_error.h, errmsg.h).
_AUTH_ERRORS = {1044, 1045, 1049, 1251, 1698, 1862, 4151}
_PRIVILEGE_ERRORS = {1142, 1143, 1227, 1370}
_TIMEOUT_ERRORS = {1205, 1317, 1969, 3024}
_READONLY_ERRORS = {1290, 1792, 1836}
_CONNECTION_ERRORS = {2002, 2003, 2005, 2006, 2013, 2055}


# ----------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Server:
    """What the server says it is: ``@@version``, ``@@version_comment``, and whether MariaDB."""

    version: str
    comment: str

    @property
    def mariadb(self) -> bool:
        return "mariadb" in f"{self.version} {self.comment}".lower()

    @property
    def number(self) -> tuple[int, int, int]:
        """The version as numbers, (10, 11, 6); (0, 0, 0) if unreadable."""
        match = re.search(r"(\d+)\.(\d+)\.(\d+)", self.version)
        return (
            (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else (0, 0, 0)
        )

    @property
    def product(self) -> str:
        return "MariaDB" if self.mariadb else "MySQL"

    @property
    def describe(self) -> str:
        """``MariaDB 10.11.6`` as a person names it."""
        numbers = ".".join(str(part) for part in self.number)
        return f"{self.product} {numbers}"

    @property
    def split_replication_privileges(self) -> bool:
        """MariaDB 10.5 replaced REPLICATION CLIENT by BINLOG MONITOR and SLAVE MONITOR."""
        return self.mariadb and self.number >= (10, 5, 0)

    @property
    def binlog_privilege(self) -> str:
        return "BINLOG MONITOR" if self.split_replication_privileges else "REPLICATION CLIENT"

    @property
    def replica_privilege(self) -> str:
        if not self.split_replication_privileges:
            return "REPLICATION CLIENT"
        return "SLAVE MONITOR" if self.number >= (10, 5, 9) else "REPLICATION SLAVE ADMIN"

    @property
    def replica_status_sql(self) -> str:
        new = self.number >= ((10, 5, 1) if self.mariadb else (8, 0, 22))
        return "SHOW REPLICA STATUS" if new else "SHOW SLAVE STATUS"

    @property
    def innodb_tablespaces_view(self) -> str:
        if not self.mariadb and self.number >= (8, 0, 0):
            return "information_schema.INNODB_TABLESPACES"
        return "information_schema.INNODB_SYS_TABLESPACES"


class MySQLConnection:
    """An open PyMySQL connection, as the engine's item functions use it."""

    def __init__(self, raw: Any, engine: str, user: str) -> None:
        self.raw = raw
        self.engine = engine
        self.user = user
        self.server: Server | None = None
        #: Seconds from opening the socket to the answer of the first query.
        self.connect_seconds: float | None = None

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts keyed by lower-case column name.

        Raise DbError: stage ``privilege`` naming the grant when access is denied.
        """
        import pymysql

        try:
            with self.raw.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(sql, parameters)
                return [
                    {str(key).lower(): value for key, value in row.items()}
                    for row in cursor.fetchall()
                ]
        except pymysql.Error as error:
            raise _db_error(error, user=self.user) from None
        except OSError as error:
            raise DbError(f"connection to the server lost: {error}", "connect") from None

    def value(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query and return the first column of its first row (None if no row)."""
        found = self.rows(sql, parameters)
        return next(iter(found[0].values())) if found and found[0] else None

    def close(self) -> None:
        self.raw.close()


def connect(target: Any, timeout: float) -> MySQLConnection:
    """Given a Database target (engine ``mysql`` or ``mariadb``) and a time budget in seconds,
    return an open connection (autocommit, utf8mb4), having asked the server what it is.

    Raise DbError: ``driver`` if PyMySQL is missing, ``connect`` if the server cannot be
    reached, ``auth`` if the login is refused (the message never holds the password).
    """
    try:
        import pymysql
    except ImportError:
        raise DbError(
            "the MySQL/MariaDB driver is not installed: pip install pymysql", "driver"
        ) from None
    from opsctl.inventory import SecretError

    try:
        password = target.password.reveal() if target.password is not None else ""
    except SecretError as error:
        raise DbError(str(error), "auth") from None
    seconds = max(1, round(timeout))  # PyMySQL takes whole seconds for connect_timeout
    options: dict[str, Any] = {
        "host": target.host,
        "port": target.effective_port,
        "user": target.user or "",
        "password": password,
        "connect_timeout": seconds,
        "read_timeout": seconds,
        "write_timeout": seconds,
        "charset": "utf8mb4",
        "autocommit": True,
    }
    if target.database:
        options["database"] = target.database
    started = time.monotonic()
    try:
        raw = pymysql.connect(**options)
    except pymysql.Error as error:
        raise _db_error(error, user=target.user or "", connecting=True, secret=password) from None
    except OSError as error:
        where = f"{target.host}:{target.effective_port}"
        raise DbError(f"cannot connect to {where}: {error}", "connect") from None
    connection = MySQLConnection(raw, target.engine, target.user or "")
    try:
        connection.server = _server(connection)
    except DbError:
        connection.close()
        raise
    connection.connect_seconds = time.monotonic() - started
    return connection


def _db_error(
    error: Exception, *, user: str = "", connecting: bool = False, secret: str = ""
) -> DbError:
    """Given a PyMySQL exception, return the DbError with the right stage and a one-line
    message without credentials; a privilege error names the grant to give."""
    code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    text = mask_credentials(" ".join(text.split()))
    if secret and len(secret) >= 3:
        text = text.replace(secret, "***")
    if code in _AUTH_ERRORS:
        return DbError(f"login refused: {text}", "auth")
    if code in _PRIVILEGE_ERRORS:
        grant = _grant_for(text, user)
        return DbError(f"{text}: {grant}" if grant else text, "privilege")
    if code in _TIMEOUT_ERRORS:
        return DbError(f"statement timed out: {text}", "timeout")
    if code in _CONNECTION_ERRORS or (code == 0 and connecting):
        if not connecting and "timed out" in text:
            return DbError(f"no answer from the server in time: {text}", "timeout")
        return DbError(text or "the connection to the server was lost", "connect")
    if code in _READONLY_ERRORS:
        return DbError(f"the sql check only reads: {text}", "readonly")
    return DbError(f"{text} (error {code})" if code else text or type(error).__name__, "query")


def _grant_for(message: str, user: str) -> str:
    """Given a server's access-denied message, return the GRANT that would allow it."""
    who = f"'{user}'" if user else "the monitoring user"
    wanted = re.search(r"the (.+?) privilege", message)
    if wanted:
        names = [name.strip() for name in wanted.group(1).split(",")]
        names = [name for name in names if name.upper() != "SUPER"] or names
        # "at least one of" lists alternatives: the narrowest (the last) is enough.
        return f"grant {names[-1]} ON *.* to {who}"
    # MariaDB names `schema`.`table`, MySQL 'table'.
    table = re.search(r"(\w+) command denied .* for table (.+)$", message)
    if table:
        name = table.group(2).replace("`", "").replace("'", "")
        return f"grant {table.group(1).upper()} ON {name} to {who}"
    return ""


def _server(connection: Any) -> Server:
    """Return what the server is (cached on a live connection; asked of a recorded one)."""
    known = getattr(connection, "server", None)
    if isinstance(known, Server):
        return known
    row = first(
        connection.rows("SELECT @@version AS version, @@version_comment AS version_comment")
    )
    return Server(str(row.get("version") or ""), str(row.get("version_comment") or ""))


# ----------------------------------------------------------------------------- helpers


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _variables(connection: Any, names: Sequence[str]) -> dict[str, str]:
    """Return the global variables asked for that this server has, by lower-case name."""
    found = connection.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({_quoted(names)})")
    wanted = {name.lower() for name in names}
    values = {str(row.get("variable_name", "")).lower(): row.get("value") for row in found}
    return {
        name: "" if value is None else str(value)
        for name, value in values.items()
        if name in wanted
    }


def _status(connection: Any, names: Sequence[str]) -> dict[str, int]:
    """Return the global status counters asked for (numbers; absent ones left out)."""
    found = connection.rows(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({_quoted(names)})")
    wanted = {name.lower(): name for name in names}
    counters: dict[str, int] = {}
    for row in found:
        name = wanted.get(str(row.get("variable_name", "")).lower())
        number = _number(row.get("value"))
        if name is not None and number is not None:
            counters[name] = int(number)
    return counters


def _on(value: str | None) -> bool:
    return str(value or "").strip().upper() in ("ON", "1", "YES", "TRUE")


def _now() -> datetime:
    return datetime.now(UTC)


def _bytes_text(size: float) -> str:
    from opsctl.sources import format_bytes

    return format_bytes(size)


def _seconds_text(seconds: float) -> str:
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600 and seconds % 60 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


def _not_applicable(
    key: str, label: str, why: str, labels: Mapping[str, str] | None = None
) -> Measure:
    return Measure(
        key, label, None, labels=dict(labels or {}), verdict=0, display=f"not applicable: {why}"
    )


def _denied(
    key: str, label: str, error: DbError, labels: Mapping[str, str] | None = None
) -> Measure:
    """A measure that could not be read because the monitoring user lacks a grant: WARNING,
    so that the grant gets fixed, with the server's words and the GRANT to run."""
    return Measure(
        key,
        label,
        None,
        labels=dict(labels or {}),
        verdict=1,
        display=f"unknown: {error}",
        advice="give the monitoring user its grants (opsctl db privileges mariadb / mysql)",
    )


def _interval(previous: Snapshot | None, uptime: int, now: datetime) -> tuple[float | None, str]:
    """Given the previous run's snapshot and the server's uptime now, return the seconds
    since that run, or None and why the counters cannot be compared (a baseline is due)."""
    if previous is None or _number(previous.counters.get("Uptime")) is None:
        return None, "first run: baseline recorded"
    taken = previous.taken if previous.taken.tzinfo else previous.taken.replace(tzinfo=UTC)
    seconds = (now - taken).total_seconds()
    if seconds <= 0:
        return None, "no time since the last run: baseline recorded"
    # Uptime grows with the wall clock unless the server restarted in between.
    if uptime - float(previous.counters["Uptime"]) < seconds - RESTART_TOLERANCE_SECONDS:
        return None, "the server restarted since the last run: baseline recorded"
    return seconds, ""


def _delta(counters: Mapping[str, int], previous: Snapshot | None, name: str) -> int | None:
    """Return how much a cumulative counter grew since the previous run (None: unknown)."""
    if previous is None:
        return None
    before = _number(previous.counters.get(name))
    now = counters.get(name)
    if before is None or now is None or now < before:
        return None
    return int(now - before)


def _rate_measure(
    key: str,
    label: str,
    names: Sequence[str],
    counters: Mapping[str, int],
    previous: Snapshot | None,
    seconds: float | None,
    **extra: Any,
) -> Measure:
    """A per-second rate of the sum of cumulative counters, or a baseline row."""
    if seconds is None:
        return Measure(key, label, None, "/s", display=_BASELINE, **extra)
    deltas = [_delta(counters, previous, name) for name in names]
    if any(delta is None for delta in deltas):
        return Measure(key, label, None, "/s", display=_BASELINE, **extra)
    total = sum(delta for delta in deltas if delta is not None)
    value = round(total / seconds, 3)
    return Measure(
        key, label, value, "/s", display=f"{value:g}/s ({total} in {seconds:.0f} s)", **extra
    )


def _ratio(
    part: str,
    whole: str,
    counters: Mapping[str, int],
    previous: Snapshot | None,
    seconds: float | None,
) -> tuple[float | None, int, int, str]:
    """Given two cumulative counters, return part/whole in percent over the interval since
    the previous run (since the server started on a first run or after a restart), the two
    differences and the period's name. The percentage is None when ``whole`` did not move."""
    if seconds is not None:
        part_delta, whole_delta = (
            _delta(counters, previous, part),
            _delta(counters, previous, whole),
        )
        if part_delta is not None and whole_delta is not None:
            if whole_delta == 0:
                return None, part_delta, whole_delta, "since the last run"
            return (
                round(100.0 * part_delta / whole_delta, 2),
                part_delta,
                whole_delta,
                "since the last run",
            )
    part_total, whole_total = counters.get(part, 0), counters.get(whole, 0)
    if whole_total == 0:
        return None, part_total, whole_total, "since the server started"
    return (
        round(100.0 * part_total / whole_total, 2),
        part_total,
        whole_total,
        "since the server started",
    )


_SIZE = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class DataFilePath:
    """``innodb_data_file_path``/``innodb_temp_data_file_path`` read: ``ibdata1:12M:autoextend``."""

    fixed: int  # the sizes given for every file
    autoextend: bool
    maximum: int | None  # the largest the files may grow to together, if bounded

    @classmethod
    def parse(cls, text: str) -> DataFilePath | None:
        """Given the variable's value, return it read, or None if it cannot be read."""
        fixed, autoextend, maximum = 0, False, None
        files = [part for part in text.split(";") if part.strip()]
        for position, part in enumerate(files):
            fields = part.strip().split(":")
            if len(fields) < 2:
                return None
            size = _size(fields[1])
            if size is None:
                return None
            fixed += size
            rest = [field.lower() for field in fields[2:]]
            if position == len(files) - 1 and "autoextend" in rest:
                autoextend = True
                if "max" in rest and rest.index("max") + 1 < len(rest):
                    limit = _size(rest[rest.index("max") + 1])
                    maximum = None if limit is None else fixed - size + limit
        if not files:
            return None
        return cls(fixed, autoextend, maximum if autoextend else fixed)


def _size(text: str) -> int | None:
    match = _SIZE.match(text.strip())
    return int(match.group(1)) * _FACTORS[match.group(2).upper()] if match else None


def _innodb_files(connection: Any, server: Server, name: str = "") -> list[dict[str, Any]]:
    """Return the InnoDB tablespace files (name, file_size), or the one named; needs PROCESS."""
    sql = f"SELECT name, file_size FROM {server.innodb_tablespaces_view}"
    return connection.rows(f"{sql} WHERE name = %s", (name,)) if name else connection.rows(sql)


def _filename_decoded(name: str) -> str:
    # InnoDB names files with MySQL's file-name encoding: '-' is '@002d' and so on.
    return re.sub(r"@([0-9a-fA-F]{4})", lambda match: chr(int(match.group(1), 16)), name)


# ----------------------------------------------------------------------------- items


def availability(connection: Any, previous: Snapshot | None) -> Observation:
    """Connect time, version, start time and uptime, restart since the last run, open mode,
    role (primary, or standby: a replica) with replication health, binary logging."""
    server = _server(connection)
    began = time.monotonic()
    variables = _variables(connection, ["read_only", "super_read_only", "log_bin"])
    seconds = getattr(connection, "connect_seconds", None)
    if seconds is None:  # not opened by connect(): the round trip of a query stands for it
        seconds = time.monotonic() - began
    uptime = _status(connection, ["Uptime"]).get("Uptime")
    now = _now()
    measures = [
        Measure(
            "db.availability.connect_time",
            "Connection / time to connect and answer",
            round(seconds, 3),
            "s",
            # check_mysql_health connection-time: warning 1, critical 5 seconds.
            Range.parse("1"),
            Range.parse("5"),
            advice="the server is slow to accept logins: check its load, DNS (skip_name_resolve) and max_connections",
        ),
        Measure(
            "db.availability.version",
            "Server / version",
            server.version,
            display=f"{server.describe} ({server.version}{', ' + server.comment if server.comment else ''})",
        ),
    ]
    counters: dict[str, Any] = {}
    if uptime is None:
        raise DbError("the server did not report its Uptime status variable", "query")
    started = datetime.fromtimestamp(round(now.timestamp() - uptime), UTC)
    counters["started"] = started.isoformat()
    counters["Uptime"] = uptime
    measures.append(
        Measure(
            "db.availability.started",
            "Server / started",
            started.isoformat(),
            display=started.isoformat(timespec="seconds"),
        )
    )
    measures.append(
        Measure(
            "db.availability.uptime",
            "Server / uptime",
            uptime,
            "s",
            display=_uptime_text(uptime),
        )
    )
    measures.append(_restarted(started, previous))
    read_only, super_read_only = (
        _on(variables.get("read_only")),
        _on(variables.get("super_read_only")),
    )
    measures.append(
        Measure(
            "db.availability.open_mode",
            "Server / open mode",
            "read only" if read_only or super_read_only else "read write",
            display="read only (super_read_only)"
            if super_read_only
            else ("read only" if read_only else "read write"),
        )
    )
    measures.extend(_replication(connection, server))
    binlog = _on(variables.get("log_bin"))
    measures.append(
        Measure(
            "db.availability.archive_mode",
            "Server / binary logging",
            "on" if binlog else "off",
            display="on (log_bin = ON)" if binlog else "off (log_bin = OFF)",
        )
    )
    role = next(m for m in measures if m.key == "db.availability.role")
    open_mode = next(m for m in measures if m.key == "db.availability.open_mode")
    summary = (
        f"{server.describe}, up {_uptime_text(uptime)}, {role.value or 'role unknown'},"
        f" {open_mode.value}"
    )
    return Observation(measures, counters, summary=summary)


def _uptime_text(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days} d {hours} h {minutes} min" if days else f"{hours} h {minutes} min"


def _restarted(started: datetime, previous: Snapshot | None) -> Measure:
    key, label = "db.availability.restarted", "Server / restarted since the last run"
    before_text = previous.counters.get("started") if previous is not None else None
    if not before_text:
        return Measure(key, label, False, verdict=0, display="no previous run to compare with")
    try:
        before = datetime.fromisoformat(str(before_text))
    except ValueError:
        return Measure(key, label, False, verdict=0, display="no readable previous start time")
    if before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    if abs((started - before).total_seconds()) <= RESTART_TOLERANCE_SECONDS:
        return Measure(key, label, False, display="no")
    return Measure(
        key,
        label,
        True,
        verdict=1,
        display=f"yes: started {started.isoformat(timespec='seconds')}, was {before.isoformat(timespec='seconds')}",
        advice="find out why the server restarted (its error log; a crash, an OOM kill or planned maintenance)",
    )


def _replication(connection: Any, server: Server) -> list[Measure]:
    """Role, replication threads and lag, from SHOW REPLICA STATUS (empty on a primary)."""
    role_key, role_label = "db.availability.role", "Server / role"
    threads_key, threads_label = "db.availability.replication", "Replication / threads"
    lag_key, lag_label = "db.availability.replication_lag", "Replication / delay"
    try:
        rows = connection.rows(server.replica_status_sql)
    except DbError as error:
        if error.stage != "privilege":
            raise
        unknown = f"unknown: {server.replica_status_sql} needs {server.replica_privilege}"
        return [
            _denied(role_key, role_label, error),
            Measure(threads_key, threads_label, None, verdict=0, display=unknown),
            Measure(lag_key, lag_label, None, "s", verdict=0, display=unknown),
        ]
    if not rows:
        return [
            Measure(role_key, role_label, "primary", display="primary (not a replica)"),
            _not_applicable(threads_key, threads_label, "not a replica"),
            _not_applicable(lag_key, lag_label, "not a replica"),
        ]
    row = rows[0]

    def column(*names: str) -> Any:
        for name in names:
            if name in row:
                return row[name]
        return None

    source = f"{column('master_host', 'source_host')}:{column('master_port', 'source_port')}"
    io_running = str(column("slave_io_running", "replica_io_running") or "No")
    sql_running = str(column("slave_sql_running", "replica_sql_running") or "No")
    lag = _number(column("seconds_behind_master", "seconds_behind_source"))
    errors = [str(text) for text in (column("last_io_error"), column("last_sql_error")) if text]
    running = io_running == "Yes" and sql_running == "Yes"
    threads_display = f"IO thread {io_running}, SQL thread {sql_running}"
    if errors:
        threads_display += ": " + "; ".join(errors)
    return [
        Measure(role_key, role_label, "standby", display=f"standby (replica of {source})"),
        Measure(
            threads_key,
            threads_label,
            "running" if running else "stopped",
            # check_mysql_health slave-io-running / slave-sql-running: CRITICAL when not Yes.
            verdict=0 if running else 2,
            display=threads_display,
            advice="replication is stopped: read Last_IO_Error/Last_SQL_Error in SHOW REPLICA STATUS and restart it",
        ),
        Measure(
            lag_key,
            lag_label,
            None if lag is None else int(lag),
            "s",
            # check_mysql_health slave-lag: warning 10, critical 20 seconds.
            Range.parse("10"),
            Range.parse("20"),
            display="unknown (SQL thread not running)" if lag is None else None,
            advice="the replica lags behind its source: check its load and the source's write volume",
        ),
    ]


_CONFIG = (
    ("innodb_buffer_pool_size", "B"),
    ("max_connections", ""),
    ("character_set_server", ""),
    ("collation_server", ""),
    ("log_bin", ""),
    ("binlog_format", ""),
    ("expire_logs_days", "d"),
    ("binlog_expire_logs_seconds", "s"),
    ("sync_binlog", ""),
    ("innodb_flush_log_at_trx_commit", ""),
    ("innodb_file_per_table", ""),
    ("max_allowed_packet", "B"),
    ("tmp_table_size", "B"),
    ("max_heap_table_size", "B"),
    ("slow_query_log", ""),
    ("long_query_time", "s"),
    ("lower_case_table_names", ""),
    ("sql_mode", ""),
)

#: Longest value shown for a parameter (sql_mode lists many modes).
CONFIG_DISPLAY_LENGTH = 80


def config(connection: Any, previous: Snapshot | None) -> Observation:
    """The key server variables: memory, connections, character set, binary logging and its
    durability, temporary tables, slow query log, name case, SQL mode."""
    server = _server(connection)
    values = _variables(connection, [name for name, _ in _CONFIG])
    measures = []
    for name, unit in _CONFIG:
        label, labels = f"Parameter {name}", {"name": name}
        if name not in values:
            measures.append(
                _not_applicable(
                    "db.config.parameter", label, f"no such variable in {server.describe}", labels
                )
            )
            continue
        value = values[name]
        number = _number(value)
        if unit == "B" and number is not None:
            display = f"{value} B ({_bytes_text(number)})"
        elif unit and number is not None:
            display = f"{number:g} {unit}"
        else:
            display = (
                value
                if len(value) <= CONFIG_DISPLAY_LENGTH
                else value[: CONFIG_DISPLAY_LENGTH - 1] + "…"
            )
        measures.append(
            Measure(
                "db.config.parameter", label, value, labels=labels, display=display or "(empty)"
            )
        )
    return Observation(measures)


def tablespace(connection: Any, previous: Snapshot | None) -> Observation:
    """Size of each schema (InnoDB files, plus other engines' tables where visible) and its
    free space inside the files, the InnoDB system tablespace against its maximum, and why
    the file system's free space is not known here."""
    server = _server(connection)
    notes: list[str] = []
    measures: list[Measure] = []
    tables = connection.rows(
        "SELECT table_schema AS name, COUNT(*) AS tables,"
        " SUM(data_length + index_length) AS used, SUM(data_free) AS free,"
        " SUM(CASE WHEN engine = 'InnoDB' THEN 0 ELSE data_length + index_length END) AS other"
        " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        " GROUP BY table_schema"
    )
    seen = {str(row["name"]): row for row in tables}
    files: dict[str, int] = {}
    system_size: int | None = None
    denied: DbError | None = None
    try:
        for row in _innodb_files(connection, server):
            name, size = str(row.get("name") or ""), int(_number(row.get("file_size")) or 0)
            if name == "innodb_system":
                system_size = size
            elif "/" in name:
                schema = _filename_decoded(name.split("/", 1)[0])
                files[schema] = files.get(schema, 0) + size
    except DbError as error:
        if error.stage != "privilege":
            raise
        denied = error
        measures.append(_denied("db.tablespace.innodb_files", "InnoDB tablespace files", error))
        notes.append(
            "InnoDB file sizes need PROCESS: schema sizes are those of visible tables only"
        )
    sizes: dict[str, int] = {}
    for schema in sorted(set(seen) | set(files)):
        row = seen.get(schema, {})
        if schema in files:
            size = files[schema] + int(_number(row.get("other")) or 0)
            source = "InnoDB files" + (" and other tables" if _number(row.get("other")) else "")
        else:
            size, source = int(_number(row.get("used")) or 0), "data and indexes"
        sizes[schema] = size
        kind = "System schema" if schema.lower() in _SYSTEM_SCHEMAS else "Schema"
        measures.append(
            Measure(
                "db.tablespace.database_size",
                f"{kind} {schema} / size",
                size,
                "B",
                labels={"name": schema},
                display=f"{_bytes_text(size)} ({source})",
            )
        )
        if row:
            free = int(_number(row.get("free")) or 0)
            measures.append(
                Measure(
                    "db.tablespace.data_free",
                    f"{kind} {schema} / free inside its files",
                    free,
                    "B",
                    labels={"name": schema},
                )
            )
    variables = _variables(connection, ["innodb_data_file_path", "datadir"])
    measures.extend(
        _bounded_file(
            "db.tablespace",
            "InnoDB system tablespace",
            "innodb_system",
            "innodb_data_file_path",
            variables,
            system_size,
            denied,
        )
    )
    datadir = variables.get("datadir") or "the data directory"
    measures.append(
        _not_applicable(
            "db.tablespace.filesystem_free",
            "Data directory / file system free",
            f"the free space of the file system holding {datadir} is not visible through SQL; use the filesystem check on the database host",
        )
    )
    total = sum(sizes.values())
    summary = f"{len(sizes)} schemas, {_bytes_text(total)} in all"
    return Observation(measures, {"sizes": sizes}, notes, summary)


def _bounded_file(
    prefix: str,
    subject: str,
    name: str,
    variable: str,
    variables: Mapping[str, str],
    size: int | None,
    denied: DbError | None,
) -> list[Measure]:
    """Size, maximum and use of an InnoDB data file set (system or temporary tablespace)."""
    labels = {"name": name}
    path_text = variables.get(variable, "")
    path = DataFilePath.parse(path_text) if path_text else None
    size_key, max_key, used_key = f"{prefix}.size", f"{prefix}.max", f"{prefix}.used_percent"
    if size is None:
        why = "needs PROCESS" if denied is not None else "not reported by this server"
        size_measure = Measure(
            size_key,
            f"{subject} / size",
            None,
            "B",
            labels=labels,
            verdict=0,
            display=f"unknown: {why}",
        )
    else:
        size_measure = Measure(size_key, f"{subject} / size", size, "B", labels=labels)
    if path is None:
        why = f"{variable} is not readable ({path_text or 'absent'})"
        return [
            size_measure,
            _not_applicable(max_key, f"{subject} / maximum", why, labels),
            _not_applicable(used_key, f"{subject} / used", why, labels),
        ]
    if path.autoextend and path.maximum is None:
        why = f"it grows without a maximum ({variable} = {path_text}): the file system's free space is the limit"
        return [
            size_measure,
            Measure(
                max_key,
                f"{subject} / maximum",
                None,
                "B",
                labels=labels,
                display="unlimited (autoextend)",
            ),
            _not_applicable(used_key, f"{subject} / used", why, labels),
        ]
    maximum = path.maximum or path.fixed
    max_measure = Measure(max_key, f"{subject} / maximum", maximum, "B", labels=labels)
    if not path.autoextend:
        why = f"fixed size ({variable} = {path_text}); the free space inside it is not visible through SQL"
        return [
            size_measure,
            max_measure,
            _not_applicable(used_key, f"{subject} / used", why, labels),
        ]
    if size is None:
        return [
            size_measure,
            max_measure,
            Measure(
                used_key,
                f"{subject} / used",
                None,
                "%",
                labels=labels,
                verdict=0,
                display="unknown: size not visible",
            ),
        ]
    return [
        size_measure,
        max_measure,
        Measure(
            used_key,
            f"{subject} / grown toward its maximum",
            round(100.0 * size / maximum, 2) if maximum else None,
            "%",
            # check_oracle_health tablespace-usage: warning 90, critical 98 percent.
            Range.parse("90"),
            Range.parse("98"),
            labels=labels,
            advice=f"raise the max of {variable} (a restart) or free space in it",
            min=0,
            max=100,
        ),
    ]


def logs(connection: Any, previous: Snapshot | None) -> Observation:
    """Binary logs (count, size, expiry, cache spills to disk) and InnoDB redo log waits."""
    server = _server(connection)
    variables = _variables(
        connection, ["log_bin", "expire_logs_days", "binlog_expire_logs_seconds"]
    )
    names = ["Uptime", "Innodb_log_waits", "Binlog_cache_use", "Binlog_cache_disk_use"]
    counters = _status(connection, names)
    seconds, why = _interval(previous, counters.get("Uptime", 0), _now())
    measures: list[Measure] = []
    binlog = _on(variables.get("log_bin"))
    off = "binary logging is off"
    if not binlog:
        measures += [
            _not_applicable("db.logs.binlog_files", "Binary logs / files", off),
            _not_applicable("db.logs.binlog_size", "Binary logs / total size", off),
            _not_applicable("db.logs.binlog_expire", "Binary logs / expire after", off),
            _not_applicable(
                "db.logs.binlog_cache_disk_ratio", "Binary log cache / spilled to disk", off
            ),
        ]
    else:
        measures += _binary_logs(connection, server)
        expire = max(
            _number(variables.get("binlog_expire_logs_seconds")) or 0,
            (_number(variables.get("expire_logs_days")) or 0) * 86400,
        )
        measures.append(
            Measure(
                "db.logs.binlog_expire",
                "Binary logs / expire after",
                int(expire),
                "s",
                # 0 means never: the logs fill the disk. Any expiry at all is acceptable.
                Range.parse("1:"),
                display=_seconds_text(expire) if expire else "never (0)",
                advice="binary logs are never purged: set binlog_expire_logs_seconds (or expire_logs_days) longer than your backup interval",
            )
        )
        spilled, disk, used, period = _ratio(
            "Binlog_cache_disk_use", "Binlog_cache_use", counters, previous, seconds
        )
        measures.append(
            Measure(
                "db.logs.binlog_cache_disk_ratio",
                "Binary log cache / spilled to disk",
                spilled,
                "%",
                display=f"{spilled:g}% ({disk} of {used} transactions {period})"
                if spilled is not None
                else f"no transaction used the binary log cache {period}",
                advice="large transactions spill to disk: raise binlog_cache_size",
                min=0,
                max=100,
            )
        )
    waits = _delta(counters, previous, "Innodb_log_waits") if seconds is not None else None
    measures.append(
        Measure(
            "db.logs.innodb_log_waits",
            "InnoDB redo log / waits for log buffer space",
            waits,
            # Any wait means the log buffer is too small (check_mysql_health log-waits warns
            # at 1 per second; between two runs a single one is already worth a look).
            warn=Range.parse("0"),
            display=_BASELINE if waits is None else f"{waits} since the last run",
            advice="raise innodb_log_buffer_size: transactions wait for redo log buffer space",
        )
    )
    summary = "binary logging off" if not binlog else _binlog_summary(measures)
    return Observation(measures, counters, [why] if why else [], summary)


def _binlog_summary(measures: list[Measure]) -> str:
    files = next(m for m in measures if m.key == "db.logs.binlog_files")
    size = next(m for m in measures if m.key == "db.logs.binlog_size")
    if files.value is None or size.value is None:
        return "binary logging on"
    return f"{files.value} binary logs, {_bytes_text(float(size.value))}"


def _binary_logs(connection: Any, server: Server) -> list[Measure]:
    files_key, size_key = "db.logs.binlog_files", "db.logs.binlog_size"
    try:
        rows = connection.rows("SHOW BINARY LOGS")
    except DbError as error:
        if error.stage != "privilege":
            raise
        return [
            _denied(files_key, "Binary logs / files", error),
            Measure(
                size_key,
                "Binary logs / total size",
                None,
                "B",
                verdict=0,
                display=f"unknown: SHOW BINARY LOGS needs {server.binlog_privilege}",
            ),
        ]
    total = sum(int(_number(row.get("file_size")) or 0) for row in rows)
    names = [str(row.get("log_name")) for row in rows]
    span = f"{names[0]} .. {names[-1]}" if len(names) > 1 else (names[0] if names else "none")
    return [
        Measure(files_key, "Binary logs / files", len(rows), display=f"{len(rows)} ({span})"),
        Measure(size_key, "Binary logs / total size", total, "B"),
    ]


def controlfile(connection: Any, previous: Snapshot | None) -> Observation:
    """MySQL/MariaDB keep no control file; the InnoDB redo log's capacity is recorded."""
    server = _server(connection)
    variables = _variables(
        connection,
        ["innodb_redo_log_capacity", "innodb_log_file_size", "innodb_log_files_in_group"],
    )
    measures = [
        Measure(
            "db.controlfile.applicable",
            "Control file",
            None,
            verdict=0,
            display="not applicable: MySQL/MariaDB keep no control file; InnoDB's redo log and data dictionary play that role",
        )
    ]
    capacity = _number(variables.get("innodb_redo_log_capacity"))
    if capacity is not None:  # MySQL 8.0.30 and later size the redo log as one capacity
        source = "innodb_redo_log_capacity"
    else:
        file_size = _number(variables.get("innodb_log_file_size"))
        files = _number(variables.get("innodb_log_files_in_group")) or 1  # MariaDB 10.5+: one file
        capacity = None if file_size is None else file_size * files
        source = f"innodb_log_file_size × {files:g} files" if files != 1 else "innodb_log_file_size"
    if capacity is None:
        measures.append(
            _not_applicable(
                "db.controlfile.redo_log_capacity",
                "InnoDB redo log / capacity",
                f"not reported by {server.describe}",
            )
        )
    else:
        measures.append(
            Measure(
                "db.controlfile.redo_log_capacity",
                "InnoDB redo log / capacity",
                int(capacity),
                "B",
                display=f"{_bytes_text(capacity)} ({source})",
            )
        )
    return Observation(measures)


def temp(connection: Any, previous: Snapshot | None) -> Observation:
    """Temporary tables created on disk (share of all), temporary files per second, and the
    InnoDB temporary tablespace against its maximum if it has one."""
    server = _server(connection)
    names = ["Uptime", "Created_tmp_tables", "Created_tmp_disk_tables", "Created_tmp_files"]
    counters = _status(connection, names)
    seconds, why = _interval(previous, counters.get("Uptime", 0), _now())
    ratio, disk, created, period = _ratio(
        "Created_tmp_disk_tables", "Created_tmp_tables", counters, previous, seconds
    )
    measures = [
        Measure(
            "db.temp.disk_tables_ratio",
            "Temporary tables / created on disk",
            0.0 if ratio is None else ratio,
            "%",
            # check_mysql_health tmp-disk-tables: warning 25, critical 50 percent.
            Range.parse("25"),
            Range.parse("50"),
            display=f"{0.0 if ratio is None else ratio:g}% ({disk} of {created} {period})",
            advice="queries sort or group through on-disk temporary tables: raise tmp_table_size and max_heap_table_size, or avoid TEXT/BLOB columns in GROUP BY/ORDER BY",
            min=0,
            max=100,
        ),
        _rate_measure(
            "db.temp.files_per_second",
            "Temporary files / created",
            ["Created_tmp_files"],
            counters,
            previous,
            seconds,
        ),
        _not_applicable(
            "db.temp.bytes_per_second",
            "Temporary files / bytes written",
            f"{server.product} does not count the bytes written to temporary files",
        ),
    ]
    variables = _variables(connection, ["innodb_temp_data_file_path"])
    size: int | None = None
    denied: DbError | None = None
    if server.mariadb or server.number < (8, 0, 0):  # MySQL 8 keeps it out of the view
        try:
            for row in _innodb_files(connection, server, "innodb_temporary"):
                if str(row.get("name")) == "innodb_temporary":
                    size = int(_number(row.get("file_size")) or 0)
        except DbError as error:
            if error.stage != "privilege":
                raise
            denied = error
    measures.extend(
        _bounded_file(
            "db.temp",
            "InnoDB temporary tablespace",
            "innodb_temporary",
            "innodb_temp_data_file_path",
            variables,
            size,
            denied,
        )
    )
    return Observation(measures, counters, [why] if why else [])


def io(connection: Any, previous: Snapshot | None) -> Observation:
    """Buffer pool hit ratio, InnoDB data reads and writes, transactions and queries per second."""
    names = [
        "Uptime",
        "Innodb_buffer_pool_read_requests",
        "Innodb_buffer_pool_reads",
        "Innodb_data_reads",
        "Innodb_data_writes",
        "Com_commit",
        "Com_rollback",
        "Questions",
    ]
    counters = _status(connection, names)
    seconds, why = _interval(previous, counters.get("Uptime", 0), _now())
    missed, reads, requests, period = _ratio(
        "Innodb_buffer_pool_reads", "Innodb_buffer_pool_read_requests", counters, previous, seconds
    )
    hit = None if missed is None else round(100.0 - missed, 2)
    measures = [
        Measure(
            "db.io.hit_ratio",
            "InnoDB buffer pool / hit ratio",
            hit,
            "%",
            # check_mysql_health bufferpool-hitrate: warning below 99, critical below 95.
            Range.parse("99:"),
            Range.parse("95:"),
            verdict=0 if hit is None else None,
            display=f"no buffer pool read requests {period}"
            if hit is None
            else f"{hit:g}% ({reads} of {requests} reads from disk {period})",
            advice="reads miss the buffer pool: raise innodb_buffer_pool_size if memory allows",
            min=0,
            max=100,
        ),
        _rate_measure(
            "db.io.reads_per_second",
            "InnoDB data / reads",
            ["Innodb_data_reads"],
            counters,
            previous,
            seconds,
        ),
        _rate_measure(
            "db.io.writes_per_second",
            "InnoDB data / writes",
            ["Innodb_data_writes"],
            counters,
            previous,
            seconds,
        ),
        _rate_measure(
            "db.io.transactions_per_second",
            "Transactions / commits and rollbacks",
            ["Com_commit", "Com_rollback"],
            counters,
            previous,
            seconds,
        ),
        _rate_measure(
            "db.io.queries_per_second",
            "Queries / statements from clients",
            ["Questions"],
            counters,
            previous,
            seconds,
        ),
    ]
    return Observation(measures, counters, [why] if why else [])


def sessions(connection: Any, previous: Snapshot | None) -> Observation:
    """Connections against max_connections, long transactions and lock waits (PROCESS),
    and failed connection attempts per second."""
    counters = _status(
        connection, ["Uptime", "Threads_connected", "Max_used_connections", "Aborted_connects"]
    )
    limit = int(_number(_variables(connection, ["max_connections"]).get("max_connections")) or 0)
    count = counters.get("Threads_connected", 0)
    seconds, why = _interval(previous, counters.get("Uptime", 0), _now())
    measures = [
        Measure("db.sessions.count", "Sessions / connected", count),
        Measure("db.sessions.max", "Sessions / maximum (max_connections)", limit),
        Measure(
            "db.sessions.used_percent",
            "Sessions / used of max_connections",
            round(100.0 * count / limit, 2) if limit else None,
            "%",
            # No check_mysql_health mode (threads-connected is an absolute 10/20); the common
            # shared default of the db.* kinds: warning 90, critical 95 percent.
            Range.parse("90"),
            Range.parse("95"),
            display=None if limit else "unknown: max_connections not reported",
            advice="connections near max_connections: look for connection leaks, or raise max_connections",
            min=0,
            max=100,
        ),
    ]
    try:
        row = first(
            connection.rows(
                "SELECT COUNT(*) AS open_transactions,"
                " COALESCE(SUM(trx_started < NOW() - INTERVAL %s SECOND), 0) AS long_transactions,"
                " MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())) AS longest,"
                " COALESCE(SUM(trx_state = 'LOCK WAIT'), 0) AS lock_waits,"
                " COALESCE(MAX(CASE WHEN trx_state = 'LOCK WAIT'"
                " THEN TIMESTAMPDIFF(SECOND, trx_wait_started, NOW()) END), 0) AS longest_wait"
                " FROM information_schema.innodb_trx",
                (LONG_TRANSACTION_SECONDS,),
            )
        )
    except DbError as error:
        if error.stage != "privilege":
            raise
        measures += [
            _denied(
                "db.sessions.long_transactions", "Transactions / open longer than the limit", error
            ),
            Measure(
                "db.sessions.longest_transaction",
                "Transactions / longest open",
                None,
                "s",
                verdict=0,
                display="unknown: needs PROCESS",
            ),
            Measure(
                "db.sessions.lock_waits",
                "Transactions / waiting for a lock",
                None,
                verdict=0,
                display="unknown: needs PROCESS",
            ),
        ]
    else:
        long_count = int(_number(row.get("long_transactions")) or 0)
        longest = _number(row.get("longest"))
        waits = int(_number(row.get("lock_waits")) or 0)
        longest_wait = int(_number(row.get("longest_wait")) or 0)
        open_count = int(_number(row.get("open_transactions")) or 0)
        measures += [
            Measure(
                "db.sessions.long_transactions",
                f"Transactions / open longer than {_seconds_text(LONG_TRANSACTION_SECONDS)}",
                long_count,
                # As the PostgreSQL module (check_postgres txn_time has no default): a
                # transaction left open for an hour holds locks and old row versions (undo
                # grows, purge stalls): even one deserves a look. check_mysql_health has no
                # transaction-age mode (long-running-procs counts statements over 60 s).
                warn=Range.parse("0"),
                advice="a transaction has been open for long: find it in information_schema.innodb_trx (trx_mysql_thread_id) and have it committed or killed",
                min=0,
            ),
            Measure(
                "db.sessions.longest_transaction",
                "Transactions / longest open",
                None if longest is None else int(longest),
                "s",
                # No default: long_transactions judges the same fact; a range set here
                # judges by age instead (e.g. {warn: "600"}).
                display=f"{_seconds_text(longest)} ({open_count} open)"
                if longest is not None
                else "no open transaction",
                min=0,
                advice="a transaction has been open for long: find it in information_schema.innodb_trx and have it committed or killed",
            ),
            Measure(
                "db.sessions.lock_waits",
                "Transactions / waiting for a lock",
                waits,
                # As the PostgreSQL module (check_postgres locks: "waiting=5" as its critical
                # example): one waiter is ordinary row-lock contention, several are not.
                warn=Range.parse("1"),
                crit=Range.parse("5"),
                min=0,
                display=f"{waits} (longest {longest_wait} s)" if waits else "0",
                advice="sessions wait for row locks: find the blocking transaction (information_schema.innodb_trx, innodb_lock_waits)",
            ),
        ]
    aborted = _rate_measure(
        "db.sessions.aborted_connects_per_second",
        "Connections / failed attempts",
        ["Aborted_connects"],
        counters,
        previous,
        seconds,
        # check_mysql_health connects-aborted: warning 1, critical 5 per second.
        warn=Range.parse("1"),
        crit=Range.parse("5"),
        advice="many failed logins: a client with a wrong password, or someone guessing",
    )
    measures.append(aborted)
    summary = f"{count} of {limit} sessions" if limit else f"{count} sessions"
    return Observation(measures, counters, [why] if why else [], summary)


def backup(connection: Any, previous: Snapshot | None) -> Observation:
    """MySQL/MariaDB keep no backup catalogue: say so, and whether point-in-time recovery is
    possible (it needs binary logs)."""
    variables = _variables(connection, ["log_bin", "binlog_format"])
    binlog = _on(variables.get("log_bin"))
    measures = [
        Measure(
            "db.backup.applicable",
            "Backup catalogue",
            None,
            verdict=0,
            display="not applicable: MySQL/MariaDB keep no backup catalogue; use the backup check on the dump files",
        ),
        Measure(
            "db.backup.point_in_time_recovery",
            "Point-in-time recovery / binary logs",
            "on" if binlog else "off",
            verdict=0 if binlog else 1,
            display=f"possible: binary logging is on (binlog_format {variables.get('binlog_format') or 'unknown'})"
            if binlog
            else "impossible: binary logging is off",
            advice="without binary logs a restore loses everything since the last dump: set log_bin (and binlog_expire_logs_seconds) and restart",
        ),
    ]
    return Observation(measures)


# ----------------------------------------------------------------------------- sql check

#: First words of the statements the sql check may run.
READ_STATEMENTS = ("select", "show", "with", "describe", "desc", "explain", "values", "table")

_LEADING_COMMENTS = re.compile(
    r"^(?:\s+|/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\()*", re.DOTALL
)
_EXECUTABLE_COMMENT = re.compile(r"/\*[mM]?!")
_INTO_FILE = re.compile(r"\binto\s+(?:outfile|dumpfile)\b", re.IGNORECASE)


def _read_statement(sql: str) -> str:
    """Given the sql check's statement, return it ready to run. Raise DbError ``readonly``
    if it is not a read: DDL would commit the read-only transaction implicitly, so only
    reading statements are sent at all."""
    statement = sql.strip().rstrip(";").strip()
    if _EXECUTABLE_COMMENT.search(statement):
        raise DbError(
            "the sql check only reads: executable comments (/*! ... */) are refused", "readonly"
        )
    if _INTO_FILE.search(statement):
        raise DbError(
            "the sql check only reads: SELECT ... INTO OUTFILE/DUMPFILE writes a file", "readonly"
        )
    body = _LEADING_COMMENTS.sub("", statement, count=1)
    word = re.match(r"[A-Za-z]+", body)
    verb = word.group(0).lower() if word else ""
    if verb not in READ_STATEMENTS:
        allowed = ", ".join(name.upper() for name in READ_STATEMENTS)
        shown = verb.upper() or "an empty or unreadable statement"
        raise DbError(
            f"the sql check only reads: {shown} is refused (allowed: {allowed})", "readonly"
        )
    return statement


def read_only(
    connection: MySQLConnection, sql: str, timeout: float, max_rows: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Given a connection, one reading statement, a statement timeout in seconds and a row
    limit, run it in a READ ONLY transaction and return its column names and at most
    ``max_rows`` rows; the transaction is rolled back.

    Raise DbError: ``readonly`` for a statement that is not a read or that tried to write,
    ``timeout`` when it ran out of time, ``privilege`` naming the grant, ``query`` otherwise.
    """
    import pymysql

    statement = _read_statement(sql)
    server = connection.server or _server(connection)
    raw = connection.raw
    if server.mariadb:  # any statement, in seconds
        limit_sql, reset_sql = (
            f"SET SESSION max_statement_time = {float(timeout):.3f}",
            "SET SESSION max_statement_time = DEFAULT",
        )
    else:  # SELECT only, in milliseconds (MySQL 5.7.8+); the socket's read timeout is the backstop
        limit_sql, reset_sql = (
            f"SET SESSION max_execution_time = {max(1, round(timeout * 1000))}",
            "SET SESSION max_execution_time = DEFAULT",
        )
    try:
        with raw.cursor() as setup:
            try:
                setup.execute(limit_sql)
            except (pymysql.err.OperationalError, pymysql.err.InternalError):
                reset_sql = ""  # a server too old for a statement timeout
            setup.execute("START TRANSACTION READ ONLY")
        cursor = raw.cursor(pymysql.cursors.SSCursor)  # rows are read as needed, not all
        try:
            cursor.execute(statement)
            columns = [str(column[0]) for column in cursor.description or ()]
            rows = [tuple(row) for row in cursor.fetchmany(max_rows)] if cursor.description else []
        finally:
            cursor.close()  # reads and drops the rest, within the statement timeout
    except pymysql.Error as error:
        failure = _db_error(error, user=connection.user)
        _end_read(raw, reset_sql, quietly=True)
        raise failure from None
    except OSError as error:
        raise DbError(f"connection to the server lost: {error}", "connect") from None
    try:
        _end_read(raw, reset_sql)
    except pymysql.Error as error:
        raise _db_error(error, user=connection.user) from None
    return columns, rows


def _end_read(raw: Any, reset_sql: str, quietly: bool = False) -> None:
    """Roll the read-only transaction back and lift the statement timeout. ``quietly``: the
    statement already failed (perhaps with the connection), and that failure is the one to
    report."""
    try:
        with raw.cursor() as cursor:
            cursor.execute("ROLLBACK")
            if reset_sql:
                cursor.execute(reset_sql)
    except Exception:
        if not quietly:
            raise
