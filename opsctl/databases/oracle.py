"""Oracle Database inspection (11g R2 and later; one instance of a RAC database).

Verified by SQL review and recorded result rows, not against a live server: Oracle cannot run
on the machines the tests run on. Every statement below was written against the view
definitions of the Oracle Database Reference; ``tests/test_db_oracle.py`` feeds their result
shapes through a ``RecordedConnection``.

Driver: python-oracledb in thin mode (no Oracle Client needed), the extra ``opsctl[oracle]``.
The inventory's ``database`` is the service name (``options: {sid: ORCL}`` for an old SID-only
listener). Default thresholds follow check_oracle_health (ConSol Labs) wherever it has a mode
for the figure; each is cited where it is set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from opsctl.contract import Range
from opsctl.databases import (
    BASELINE,
    DbError,
    Measure,
    Observation,
    Snapshot,
    autoextensible as _autoextend,
    counter_rate as _rate,
    duration_text as _duration,
    first,
    interval_since as _interval,
    iso_text as _iso,
    mask_credentials,
    not_applicable as _not_applicable,
    number as _number,
    password_of as _password,
    plain as _plain,
)
from opsctl.sources import format_bytes

PRIVILEGES = """\
-- Oracle: a monitoring user that can log in and read the data dictionary, nothing else.
CREATE USER opsmon IDENTIFIED BY "<password>";
GRANT CREATE SESSION, SELECT_CATALOG_ROLE TO opsmon;
-- SELECT_CATALOG_ROLE gives read access to the V$ views and DBA_ views this inspection uses
-- (v$instance, v$log, v$rman_backup_job_details, dba_data_files, ...).
-- Alternative: GRANT CREATE SESSION, SELECT ANY DICTIONARY TO opsmon;
-- (a system privilege that also opens the SYS tables behind the views: broader than needed).
-- In a container database, create the user in the PDB that the service name points to.
"""

# Backup history and thresholds of the queries, bound as parameters.
BACKUP_WINDOW_DAYS = 3  # check_oracle_health rman-backup-problems looks at the last 3 days
LONG_TRANSACTION_SECONDS = 3600
LOCK_WAIT_SECONDS = 60
LOG_HISTORY_HOURS = 24

INSTANCE_SQL = """
SELECT i.instance_name, i.host_name, i.version, i.startup_time, i.status, i.database_status,
       ROUND((SYSDATE - i.startup_time) * 86400) AS uptime_seconds,
       d.name, d.open_mode, d.database_role, d.log_mode
FROM v$instance i CROSS JOIN v$database d
"""

# Key parameters recorded in the inspection report, in report order.
CONFIG_PARAMETERS = (
    "sga_target",
    "sga_max_size",
    "pga_aggregate_target",
    "memory_target",
    "processes",
    "sessions",
    "db_block_size",
    "open_cursors",
    "undo_retention",
    "log_archive_dest_1",
    "db_recovery_file_dest_size",
    "compatible",
)

PARAMETERS_SQL = """
SELECT name, value, display_value, isdefault
FROM v$parameter
WHERE name IN ('sga_target', 'sga_max_size', 'pga_aggregate_target', 'memory_target',
               'processes', 'sessions', 'db_block_size', 'open_cursors', 'undo_retention',
               'log_archive_dest_1', 'db_recovery_file_dest_size', 'compatible')
ORDER BY name
"""

NLS_SQL = """
SELECT parameter, value
FROM nls_database_parameters
WHERE parameter IN ('NLS_CHARACTERSET', 'NLS_NCHAR_CHARACTERSET')
ORDER BY parameter
"""

# Autoextend-aware like check_oracle_health tablespace-usage: the ceiling of a file is its
# MAXBYTES when it can autoextend (GREATEST: a file resized past MAXBYTES keeps its size), else
# its size; expired undo extents count as free, as check_oracle_health does. Temporary
# tablespaces take their use from dba_temp_free_space (11g+), since dba_free_space omits them.
TABLESPACE_SQL = """
SELECT t.tablespace_name, t.contents, t.status,
       NVL(d.size_bytes, 0) AS size_bytes,
       NVL(d.max_bytes, 0) AS max_bytes,
       NVL(d.autoextensible, 'NO') AS autoextensible,
       NVL(d.size_bytes, 0) - NVL(f.free_bytes, 0) - NVL(u.expired_bytes, 0) AS used_bytes
FROM dba_tablespaces t
LEFT JOIN (SELECT tablespace_name, SUM(bytes) AS size_bytes,
                  SUM(CASE WHEN autoextensible = 'YES' THEN GREATEST(maxbytes, bytes)
                           ELSE bytes END) AS max_bytes,
                  MAX(autoextensible) AS autoextensible
             FROM dba_data_files GROUP BY tablespace_name) d
       ON d.tablespace_name = t.tablespace_name
LEFT JOIN (SELECT tablespace_name, SUM(bytes) AS free_bytes
             FROM dba_free_space GROUP BY tablespace_name) f
       ON f.tablespace_name = t.tablespace_name
LEFT JOIN (SELECT tablespace_name, SUM(bytes) AS expired_bytes
             FROM dba_undo_extents WHERE status = 'EXPIRED' GROUP BY tablespace_name) u
       ON u.tablespace_name = t.tablespace_name
WHERE t.contents <> 'TEMPORARY'
UNION ALL
SELECT t.tablespace_name, t.contents, t.status,
       NVL(d.size_bytes, 0),
       NVL(d.max_bytes, 0),
       NVL(d.autoextensible, 'NO'),
       NVL(s.tablespace_size, 0) - NVL(s.free_space, 0)
FROM dba_tablespaces t
LEFT JOIN (SELECT tablespace_name, SUM(bytes) AS size_bytes,
                  SUM(CASE WHEN autoextensible = 'YES' THEN GREATEST(maxbytes, bytes)
                           ELSE bytes END) AS max_bytes,
                  MAX(autoextensible) AS autoextensible
             FROM dba_temp_files GROUP BY tablespace_name) d
       ON d.tablespace_name = t.tablespace_name
LEFT JOIN dba_temp_free_space s ON s.tablespace_name = t.tablespace_name
WHERE t.contents = 'TEMPORARY'
ORDER BY 1
"""

# Online redo only: standby redo logs are in v$logfile but not in v$log.
REDO_SQL = """
SELECT l.group#, l.thread#, l.sequence#, l.bytes, l.members, l.archived,
       l.status AS group_status, f.member, f.status AS member_status
FROM v$log l JOIN v$logfile f ON f.group# = l.group#
ORDER BY l.thread#, l.group#, f.member
"""

LOG_HISTORY_SQL = """
SELECT TO_CHAR(first_time, 'YYYY-MM-DD HH24') AS hour, COUNT(*) AS switches
FROM v$log_history
WHERE first_time > SYSDATE - :hours / 24
GROUP BY TO_CHAR(first_time, 'YYYY-MM-DD HH24')
ORDER BY switches DESC, hour DESC
"""

ARCHIVE_DEST_SQL = """
SELECT dest_id, dest_name, status, destination, target, error
FROM v$archive_dest
WHERE status <> 'INACTIVE'
ORDER BY dest_id
"""

FRA_SQL = """
SELECT name, space_limit, space_used, space_reclaimable, number_of_files
FROM v$recovery_file_dest
"""

FRA_USAGE_SQL = """
SELECT file_type, percent_space_used, percent_space_reclaimable, number_of_files
FROM v$recovery_area_usage
ORDER BY percent_space_used DESC
"""

CONTROLFILE_SQL = """
SELECT name, status, is_recovery_dest_file, block_size, file_size_blks
FROM v$controlfile
ORDER BY name
"""

# The buffer cache hit ratio uses the "from cache" statistics, as the Oracle Database
# Performance Tuning Guide computes it: direct path reads bypass the cache and would otherwise
# count as misses.
SYSSTAT_SQL = """
SELECT name, value
FROM v$sysstat
WHERE name IN ('physical reads', 'physical writes', 'physical reads cache',
               'consistent gets from cache', 'db block gets from cache',
               'user commits', 'user rollbacks',
               'sorts (disk)', 'physical writes direct temporary tablespace')
"""

SESSION_COUNT_SQL = """
SELECT (SELECT COUNT(*) FROM v$session) AS sessions,
       (SELECT COUNT(*) FROM v$process) AS processes
FROM dual
"""

LONG_TRANSACTIONS_SQL = """
SELECT s.sid, s.serial#, s.username, s.program, s.machine, t.start_date,
       ROUND((SYSDATE - t.start_date) * 86400) AS age_seconds
FROM v$transaction t JOIN v$session s ON s.taddr = t.addr
WHERE t.start_date < SYSDATE - :seconds / 86400
ORDER BY t.start_date
"""

LOCK_WAITS_SQL = """
SELECT s.sid, s.username, s.program, s.blocking_session, s.event, s.seconds_in_wait
FROM v$session s
WHERE s.blocking_session IS NOT NULL AND s.seconds_in_wait >= :seconds
ORDER BY s.seconds_in_wait DESC
"""

# A "full" backup is a DB FULL job or a DB INCR job that wrote incremental level 0 sets (the
# base of an incremental strategy); ages are computed by the server, in days.
BACKUP_JOBS_SQL = """
SELECT
  SUM(CASE WHEN j.status = 'FAILED' AND j.start_time > SYSDATE - :days
           THEN 1 ELSE 0 END) AS failed_jobs,
  SUM(CASE WHEN j.status = 'COMPLETED WITH ERRORS' AND j.start_time > SYSDATE - :days
           THEN 1 ELSE 0 END) AS jobs_with_errors,
  MAX(CASE WHEN j.status IN ('FAILED', 'COMPLETED WITH ERRORS') AND j.start_time > SYSDATE - :days
           THEN j.start_time END) AS last_problem_start,
  MAX(CASE WHEN j.ok = 1 AND j.kind = 'full' THEN j.end_time END) AS last_full_end,
  ROUND(SYSDATE - MAX(CASE WHEN j.ok = 1 AND j.kind = 'full' THEN j.end_time END), 2)
    AS last_full_age_days,
  MAX(CASE WHEN j.ok = 1 AND j.kind = 'incremental' THEN j.end_time END) AS last_incremental_end,
  ROUND(SYSDATE - MAX(CASE WHEN j.ok = 1 AND j.kind = 'incremental' THEN j.end_time END), 2)
    AS last_incremental_age_days,
  MAX(CASE WHEN j.ok = 1 AND j.kind = 'archivelog' THEN j.end_time END) AS last_archivelog_end,
  ROUND(SYSDATE - MAX(CASE WHEN j.ok = 1 AND j.kind = 'archivelog' THEN j.end_time END), 2)
    AS last_archivelog_age_days
FROM (SELECT r.status, r.start_time, r.end_time,
             CASE WHEN r.status IN ('COMPLETED', 'COMPLETED WITH WARNINGS') THEN 1 ELSE 0 END AS ok,
             CASE WHEN r.input_type = 'DB FULL' THEN 'full'
                  WHEN r.input_type = 'DB INCR'
                       AND EXISTS (SELECT 1 FROM v$backup_set_details b
                                    WHERE b.session_key = r.session_key
                                      AND b.incremental_level = 0) THEN 'full'
                  WHEN r.input_type = 'DB INCR' THEN 'incremental'
                  WHEN r.input_type = 'ARCHIVELOG' THEN 'archivelog'
                  ELSE 'other' END AS kind
        FROM v$rman_backup_job_details r) j
"""

CORRUPTION_SQL = """
SELECT COUNT(*) AS corrupt_ranges, NVL(SUM(blocks), 0) AS corrupt_blocks
FROM v$database_block_corruption
"""


# --- connection -------------------------------------------------------------------------------


class OracleConnection:
    """A python-oracledb connection as the engine modules use it (``rows``/``value``)."""

    engine = "oracle"

    def __init__(
        self,
        raw: Any,
        driver: Any,
        user: str | None = None,
        connect_seconds: float | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.raw = raw
        self.driver = driver
        self.user = user
        self.connect_seconds = connect_seconds
        self.timeout = timeout

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | Iterable[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a query; return its rows as dicts keyed by lower-case column name.

        Raise DbError with the stage the Oracle error code points to.
        """
        try:
            cursor = self.raw.cursor()
            try:
                cursor.execute(sql, parameters)
                names = [column[0].lower() for column in cursor.description or ()]
                return [
                    dict(zip(names, (_plain(value) for value in row), strict=True))
                    for row in cursor.fetchall()
                ]
            finally:
                cursor.close()
        except self.driver.Error as error:
            raise error_from_driver(error, self.user, sql, self.timeout) from None

    def value(self, sql: str, parameters: Any = None) -> Any:
        found = self.rows(sql, parameters)
        return next(iter(found[0].values())) if found and found[0] else None

    def close(self) -> None:
        self.raw.close()


def connect(target: Any, timeout: float) -> OracleConnection:
    """Given a Database target and a time budget in seconds, return an open connection.

    Raise DbError: stage ``driver`` if python-oracledb is missing, ``auth``, ``connect``...
    """
    try:
        import oracledb
    except ImportError:
        raise DbError(
            "the Oracle driver is not installed: pip install 'opsctl[oracle]'", "driver"
        ) from None
    if not target.user:
        raise DbError(
            f"no user given for database {target.name}: set user in the inventory", "auth"
        )
    password = _password(target)
    sid = target.options.get("sid")
    service = None if sid else (target.database or target.options.get("service_name"))
    clock = time.monotonic()
    try:
        raw = oracledb.connect(
            user=target.user,
            password=password,
            host=target.host,
            port=target.effective_port,
            service_name=service,
            sid=sid,
            tcp_connect_timeout=timeout,
        )
        # Milliseconds for every round trip: the statement timeout of this connection.
        raw.call_timeout = max(1, int(timeout * 1000))
    except oracledb.Error as error:
        raise error_from_driver(error, target.user, timeout=timeout) from None
    return OracleConnection(raw, oracledb, target.user, time.monotonic() - clock, timeout)


# Oracle error numbers (ORA-nnnnn) and python-oracledb thin-mode errors (DPY-nnnn) by stage.
_AUTH_CODES = {
    1005: "no password given",
    1017: "invalid user name or password",
    1045: "the user lacks CREATE SESSION: GRANT CREATE SESSION TO {user}",
    28000: "the account is locked: ALTER USER {user} ACCOUNT UNLOCK",
    28001: "the password has expired",
}
_CONNECT_CODES = {
    1033,  # initialization or shutdown in progress
    1034,  # Oracle not available
    1089,  # immediate shutdown in progress
    1090,  # shutdown in progress
    3113,  # end-of-file on communication channel
    3114,  # not connected
    3135,  # connection lost contact
    12170,  # TNS connect timeout
    12505,  # SID not known by the listener
    12514,  # service not known by the listener
    12516,  # no handler available
    12518,  # listener could not hand off
    12519,  # no appropriate service handler
    12520,  # no handler for the server type
    12521,  # instance not known by the listener
    12528,  # all instances are blocking new connections
    12535,  # operation timed out
    12537,  # connection closed
    12541,  # no listener
    12543,  # destination host unreachable
    12547,  # lost contact
}
_PRIVILEGE_CODES = {942, 1031}  # table or view does not exist; insufficient privileges
_TIMEOUT_CODES = {1013, 3156}  # user requested cancel (the call timeout); OCI call timed out
_READONLY_CODES = {1456}  # may not perform insert/delete/update inside a READ ONLY transaction
_DPY_CONNECT = {"DPY-1001", "DPY-4011", "DPY-6000", "DPY-6001", "DPY-6002", "DPY-6003", "DPY-6005"}
_DPY_TIMEOUT = {"DPY-4024"}  # call timeout of n ms exceeded
_DPY_AUTH = {"DPY-4001"}  # no credentials

_ORA_CODE = re.compile(r"\bORA-(\d{5})\b")
_DICTIONARY_VIEW = re.compile(r"\b((?:g?v\$|dba_|nls_)[a-z_$#]+)", re.IGNORECASE)


def error_from_driver(
    error: BaseException, user: str | None = None, sql: str = "", timeout: float | None = None
) -> DbError:
    """Given a python-oracledb exception (its ``args[0]`` carries ``code``, ``full_code``,
    ``message``), return the DbError of the right stage with a one-line message.

    The message never holds the password: driver text goes through ``mask_credentials``.
    """
    detail = error.args[0] if error.args else None
    message = _one_line(str(getattr(detail, "message", None) or error))
    code = getattr(detail, "code", 0) or 0
    full_code = str(getattr(detail, "full_code", "") or "")
    if not code:
        found = _ORA_CODE.search(full_code) or _ORA_CODE.search(message)
        code = int(found.group(1)) if found else 0
    grantee = user or "the monitoring user"
    if code in _AUTH_CODES or full_code in _DPY_AUTH:
        hint = _AUTH_CODES.get(code, "no credentials given").format(user=grantee)
        return DbError(f"login refused ({hint}): {message}", "auth")
    if code in _CONNECT_CODES or full_code in _DPY_CONNECT:
        return DbError(f"cannot reach the database: {message}", "connect")
    if code in _TIMEOUT_CODES or full_code in _DPY_TIMEOUT:
        budget = f" of {timeout:g} s" if timeout else ""
        return DbError(f"statement exceeded the call timeout{budget}: {message}", "timeout")
    if code in _READONLY_CODES:
        return DbError(f"the sql check only reads: {message}", "readonly")
    if code in _PRIVILEGE_CODES:
        views = sorted({view.lower() for view in _DICTIONARY_VIEW.findall(sql)})
        subject = ", ".join(views) if views else "the data dictionary"
        return DbError(
            f"{grantee} cannot read {subject}: GRANT SELECT_CATALOG_ROLE TO {grantee} "
            f"(or SELECT ANY DICTIONARY); {message}",
            "privilege",
        )
    return DbError(message, "query")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Oracle 23ai appends a "Help: https://docs.oracle.com/error-help/..." line.
    lines = [line for line in lines if not line.startswith("Help: ")]
    return mask_credentials("; ".join(lines))


# --- the sql check --------------------------------------------------------------------------

_QUERY_START = re.compile(r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(select|with)\b", re.I | re.S)
_FOR_UPDATE = re.compile(r"\bfor\s+update\b", re.I)


def read_only(
    connection: Any, sql: str, timeout: float, max_rows: int
) -> tuple[list[str], list[tuple]]:
    """Run one query in a READ ONLY transaction under a call timeout; return its column names
    and at most ``max_rows`` rows, then roll back.

    Only SELECT/WITH statements are sent: DDL would commit the read-only transaction and run
    (Oracle commits before DDL). Raise DbError stage ``readonly`` for anything that writes.
    """
    statement = sql.strip().rstrip(";").strip()
    if not _QUERY_START.match(statement) or _FOR_UPDATE.search(statement):
        raise DbError("the sql check only reads: give one SELECT (or WITH ... SELECT)", "readonly")
    raw, driver = connection.raw, connection.driver
    previous_timeout = raw.call_timeout
    try:
        raw.rollback()
        raw.call_timeout = max(1, int(timeout * 1000))
        cursor = raw.cursor()
        try:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(statement)
            columns = [column[0] for column in cursor.description or ()]
            rows = [tuple(_plain(value) for value in row) for row in cursor.fetchmany(max_rows)]
        finally:
            cursor.close()
        return columns, rows
    except driver.Error as error:
        raise error_from_driver(error, connection.user, statement, timeout) from None
    finally:
        try:
            raw.rollback()
        finally:
            raw.call_timeout = previous_timeout


# --- inspection items ---------------------------------------------------------------------


def availability(connection: Any, previous: Snapshot | None) -> Observation:
    """Connect time, version, instance status, start time, uptime, restart, open mode, role,
    archive mode."""
    clock = time.monotonic()
    instance = _instance(connection)
    latency = (getattr(connection, "connect_seconds", None) or 0.0) + time.monotonic() - clock
    started = _iso(instance.get("startup_time"))
    role = str(instance.get("database_role") or "")
    standby = "STANDBY" in role.upper()
    status = str(instance.get("status") or "")
    database_status = str(instance.get("database_status") or "")
    open_mode = str(instance.get("open_mode") or "")
    archive = _archivelog(instance)
    status_ok = (status == "OPEN" or (standby and status == "MOUNTED")) and (
        database_status == "ACTIVE"
    )
    uptime = _number(instance.get("uptime_seconds"))
    measures = [
        Measure(
            "db.availability.connect_time",
            "Connect time (login and first query)",
            round(latency, 3),
            "s",
            # check_oracle_health connection-time: warning 1 s, critical 5 s.
            warn=Range.parse("1s"),
            crit=Range.parse("5s"),
            advice="Slow login: check the listener, DNS (reverse lookups) and the network path.",
        ),
        Measure("db.availability.version", "Oracle version", str(instance.get("version") or "")),
        Measure(
            "db.availability.status",
            "Instance status",
            f"{status} / {database_status}",
            verdict=None if status_ok else 2,
            advice="The instance is not open for work: read the alert log and open the database.",
        ),
        Measure("db.availability.started", "Instance started", started),
        Measure(
            "db.availability.uptime",
            "Instance uptime",
            uptime,
            "s",
            display=_duration(uptime),
        ),
        _restart(started, previous),
        Measure(
            "db.availability.open_mode",
            "Database open mode",
            open_mode,
            verdict=1 if not standby and open_mode != "READ WRITE" else None,
            advice="A primary database should be open READ WRITE: ALTER DATABASE OPEN.",
        ),
        Measure(
            "db.availability.role",
            "Database role",
            "standby" if standby else "primary",
            display=role.lower() or None,
        ),
        Measure(
            "db.availability.archive_mode",
            "Archive log mode",
            "on" if archive else "off",
            display=f"{'on' if archive else 'off'} ({instance.get('log_mode') or 'unknown'})",
            verdict=None if archive else 1,
            advice="Without ARCHIVELOG mode only the last full backup can be restored: "
            "enable it (SHUTDOWN, STARTUP MOUNT, ALTER DATABASE ARCHIVELOG).",
        ),
    ]
    return Observation(
        measures,
        counters={"started": started},
        summary=f"{status} {open_mode.lower()}, up {_duration(uptime)}",
    )


def config(connection: Any, previous: Snapshot | None) -> Observation:
    """Key instance parameters and the database character sets, one report row each."""
    parameters = {row["name"]: row for row in connection.rows(PARAMETERS_SQL)}
    measures = []
    for name in CONFIG_PARAMETERS:
        row = parameters.get(name)
        value = "" if row is None or row.get("value") is None else str(row["value"])
        shown = str(row.get("display_value") or value) if row else ""
        if name == "undo_retention" and shown:
            shown = f"{shown} s"
        measures.append(
            Measure(
                "db.config.parameter",
                f"Parameter {name}",
                value,
                labels={"name": name},
                display=shown if shown else "not set",
            )
        )
    for row in connection.rows(NLS_SQL):
        name = str(row["parameter"])
        measures.append(
            Measure(
                "db.config.parameter",
                f"Parameter {name}",
                str(row.get("value") or ""),
                labels={"name": name},
            )
        )
    charset = next((m.value for m in measures if m.labels["name"] == "NLS_CHARACTERSET"), "")
    return Observation(measures, summary=f"{len(measures)} parameters, character set {charset}")


def tablespace(connection: Any, previous: Snapshot | None) -> Observation:
    """Use of every tablespace against its autoextend ceiling, with size, use and ceiling."""
    rows = connection.rows(TABLESPACE_SQL)
    measures: list[Measure] = []
    used: dict[str, int] = {}
    for row in rows:
        name = str(row["tablespace_name"])
        used[name] = int(_number(row.get("used_bytes")) or 0)
        measures.extend(_tablespace_measures(row))
    if not measures:
        measures.append(
            Measure(
                "db.tablespace.used_percent",
                "Tablespaces",
                None,
                display="no tablespace visible to the monitoring user",
                verdict=3,
            )
        )
    fullest = max(
        (m for m in measures if m.key == "db.tablespace.used_percent" and m.value is not None),
        key=lambda m: float(m.value or 0),
        default=None,
    )
    summary = f"{len(rows)} tablespaces" + (
        f", fullest {fullest.labels['name']} {float(fullest.value or 0):.1f}% of its ceiling"
        if fullest
        else ""
    )
    return Observation(measures, counters={"tablespace_used": used}, summary=summary)


def logs(connection: Any, previous: Snapshot | None) -> Observation:
    """Redo groups and members, log switches per hour, archive destinations, fast recovery area."""
    instance = _instance(connection)
    measures = _redo_measures(connection.rows(REDO_SQL))
    measures.append(
        _switches_measure(connection.rows(LOG_HISTORY_SQL, {"hours": LOG_HISTORY_HOURS}))
    )
    if _archivelog(instance):
        measures.extend(_archive_dest_measures(connection.rows(ARCHIVE_DEST_SQL)))
    else:
        measures.append(
            _not_applicable(
                "db.logs.archive_dest_status",
                "Archive destinations",
                "the database runs in NOARCHIVELOG mode",
            )
        )
    measures.extend(_fra_measures(connection))
    return Observation(measures)


def controlfile(connection: Any, previous: Snapshot | None) -> Observation:
    """Copies of the control file (at least two, on separate disks) and the status of each."""
    rows = connection.rows(CONTROLFILE_SQL)
    measures = [
        Measure(
            "db.controlfile.count",
            "Control files / copies",
            len(rows),
            # Oracle's own advice (Administrator's Guide, "Multiplex Control Files"): two or more.
            warn=Range.parse("2:"),
            crit=Range.parse("1:"),
            advice="Multiplex the control file: list at least two copies on separate disks "
            "in CONTROL_FILES.",
        )
    ]
    for row in rows:
        name = str(row["name"])
        status = str(row.get("status") or "") or "VALID"
        measures.append(
            Measure(
                "db.controlfile.status",
                f"Control file {name} / status",
                status,
                labels={"name": name},
                display=status
                + (
                    " (in the fast recovery area)"
                    if row.get("is_recovery_dest_file") == "YES"
                    else ""
                ),
                verdict=None if status == "VALID" else 2,
                advice="The control file copy cannot be read: restore it from a good copy "
                "(shut down, copy a valid control file over it, start up).",
            )
        )
    return Observation(measures, summary=f"{len(rows)} control file copies")


def temp(connection: Any, previous: Snapshot | None) -> Observation:
    """Temporary tablespace use, sorts spilled to disk and bytes written to temp per second."""
    measures: list[Measure] = []
    for row in connection.rows(TABLESPACE_SQL):
        if str(row.get("contents") or "") == "TEMPORARY":
            measures.append(_space_percent("db.temp.used_percent", "Temp tablespace", row))
    if not measures:
        measures.append(
            _not_applicable("db.temp.used_percent", "Temp tablespaces", "no temporary tablespace")
        )
    instance = _instance(connection)
    started = _iso(instance.get("startup_time"))
    stats = _sysstat(connection)
    block_size = _number(_parameters(connection).get("db_block_size")) or 8192.0
    names = ("sorts (disk)", "physical writes direct temporary tablespace")
    seconds, note = _interval(previous, started)
    sorts = _rate(stats, previous, seconds, names[0])
    blocks = _rate(stats, previous, seconds, names[1])
    measures.append(
        _rate_measure(
            "db.temp.disk_sorts_per_second",
            "Sorts spilled to disk per second",
            sorts,
            "/s",
            advice="Many sorts spill to temp: raise PGA_AGGREGATE_TARGET or tune the statements.",
        )
    )
    measures.append(
        _rate_measure(
            "db.temp.bytes_per_second",
            "Bytes written to temp per second",
            None if blocks is None else blocks * block_size,
            "B",
        )
    )
    counters = {"started": started, **{name: stats.get(name) for name in names}}
    return Observation(measures, counters=counters, notes=[note] if note else [])


def io(connection: Any, previous: Snapshot | None) -> Observation:
    """Physical reads and writes, buffer cache hit ratio and transactions per second, between
    this run and the previous one (the first run records a baseline)."""
    instance = _instance(connection)
    started = _iso(instance.get("startup_time"))
    stats = _sysstat(connection)
    seconds, note = _interval(previous, started)
    reads = _rate(stats, previous, seconds, "physical reads")
    writes = _rate(stats, previous, seconds, "physical writes")
    commits = _rate(stats, previous, seconds, "user commits")
    rollbacks = _rate(stats, previous, seconds, "user rollbacks")
    transactions = None if commits is None or rollbacks is None else commits + rollbacks
    # Between runs when there is a baseline, else since startup: the first run still reports.
    cache_reads = _rate(stats, previous, seconds, "physical reads cache")
    cache_gets = [
        _rate(stats, previous, seconds, name)
        for name in ("consistent gets from cache", "db block gets from cache")
    ]
    if cache_reads is not None and None not in cache_gets:
        since, misses, gets = "between runs", cache_reads, sum(g or 0 for g in cache_gets)
    else:
        since = "since instance startup"
        misses = stats.get("physical reads cache", 0.0)
        gets = stats.get("consistent gets from cache", 0.0) + stats.get(
            "db block gets from cache", 0.0
        )
    hit = None if gets <= 0 else round(100.0 * (1 - misses / gets), 2)
    measures = [
        _rate_measure("db.io.reads_per_second", "Physical reads (blocks per second)", reads, "/s"),
        _rate_measure(
            "db.io.writes_per_second", "Physical writes (blocks per second)", writes, "/s"
        ),
        Measure(
            "db.io.hit_ratio",
            "Buffer cache hit ratio",
            hit,
            "%",
            # check_oracle_health sga-data-buffer-hit-ratio: warning 98:, critical 95:.
            warn=Range.parse("98%:"),
            crit=Range.parse("95%:"),
            display="no buffer gets yet" if hit is None else f"{hit:.2f}% ({since})",
            verdict=0 if hit is None else None,
            advice="Many reads miss the buffer cache: check DB_CACHE_SIZE/SGA_TARGET and the "
            "statements doing full scans (AWR/Statspack top SQL by physical reads).",
            min=0,
            max=100,
        ),
        _rate_measure(
            "db.io.transactions_per_second", "Transactions per second", transactions, "/s"
        ),
    ]
    counters = {"started": started, **stats}
    return Observation(measures, counters=counters, notes=[note] if note else [])


def sessions(connection: Any, previous: Snapshot | None) -> Observation:
    """Sessions and processes against their limits, transactions open over an hour, sessions
    blocked by a lock for over a minute."""
    counts = first(connection.rows(SESSION_COUNT_SQL))
    parameters = _parameters(connection)
    session_count = int(_number(counts.get("sessions")) or 0)
    process_count = int(_number(counts.get("processes")) or 0)
    session_limit = _number(parameters.get("sessions"))
    process_limit = _number(parameters.get("processes"))
    long_rows = connection.rows(LONG_TRANSACTIONS_SQL, {"seconds": LONG_TRANSACTION_SECONDS})
    lock_rows = connection.rows(LOCK_WAITS_SQL, {"seconds": LOCK_WAIT_SECONDS})
    measures = [
        Measure("db.sessions.count", "Sessions / open", session_count),
        Measure("db.sessions.max", "Sessions / limit (SESSIONS)", session_limit),
        _used_percent(
            "db.sessions.used_percent",
            "Sessions / used of the limit",
            session_count,
            session_limit,
            "Sessions near the SESSIONS limit: find idle application sessions (connection "
            "pools) or raise SESSIONS and PROCESSES (restart needed).",
        ),
        _used_percent(
            "db.sessions.processes_used_percent",
            "Processes / used of the limit",
            process_count,
            process_limit,
            "Processes near the PROCESSES limit (new logins fail with ORA-00020): raise "
            "PROCESSES (restart needed) or reduce dedicated-server connections.",
        ),
        Measure(
            "db.sessions.long_transactions",
            "Transactions open longer than 1 h",
            len(long_rows),
            warn=Range.parse("0"),
            display=_long_transactions_display(long_rows),
            advice="A transaction open for hours holds locks and undo: ask its owner to commit, "
            "or end the session (ALTER SYSTEM KILL SESSION 'sid,serial#').",
        ),
        Measure(
            "db.sessions.lock_waits",
            f"Sessions blocked by a lock for over {LOCK_WAIT_SECONDS} s",
            len(lock_rows),
            warn=Range.parse("0"),
            display=_lock_waits_display(lock_rows),
            advice="Sessions wait on a lock held by another: find the blocking session "
            "(v$session.blocking_session) and have it commit or end it.",
        ),
    ]
    return Observation(measures)


def backup(connection: Any, previous: Snapshot | None) -> Observation:
    """RMAN job failures of the last 3 days, age of the last full (or level 0), incremental and
    archived-log backups, and blocks marked corrupt."""
    jobs = first(connection.rows(BACKUP_JOBS_SQL, {"days": BACKUP_WINDOW_DAYS}))
    archive = _archivelog(_instance(connection))
    corruption = first(connection.rows(CORRUPTION_SQL))
    last_problem = _iso(jobs.get("last_problem_start"))
    measures = [
        Measure(
            "db.backup.failed_jobs",
            f"RMAN jobs failed in the last {BACKUP_WINDOW_DAYS} days",
            int(_number(jobs.get("failed_jobs")) or 0),
            crit=Range.parse("0"),
            display=_problem_display(jobs.get("failed_jobs"), last_problem),
            advice="An RMAN backup failed: read its output (v$rman_output or the job log) and "
            "run the backup again.",
        ),
        Measure(
            "db.backup.jobs_with_errors",
            f"RMAN jobs completed with errors in the last {BACKUP_WINDOW_DAYS} days",
            int(_number(jobs.get("jobs_with_errors")) or 0),
            warn=Range.parse("0"),
            display=_problem_display(jobs.get("jobs_with_errors"), last_problem),
            advice="An RMAN backup completed with errors: some files may be missing from it.",
        ),
        _backup_age(
            "full",
            "Last full or level 0 backup",
            jobs.get("last_full_age_days"),
            jobs.get("last_full_end"),
            # A weekly full is the usual schedule (Oracle MAA: weekly level 0, daily level 1):
            # warn when one is a day late, critical when two were missed.
            warn="8d",
            crit="15d",
            missing_verdict=2,
            missing="no successful full or level 0 RMAN backup recorded in the control file",
            advice="Take a full (or incremental level 0) RMAN backup and check the schedule.",
        ),
        _backup_age(
            "incremental",
            "Last incremental backup",
            jobs.get("last_incremental_age_days"),
            jobs.get("last_incremental_end"),
            warn="2d",
            crit="4d",
            missing_verdict=None,
            missing="none recorded (not applicable when only full backups are taken)",
            advice="The daily incremental backup did not run: check the RMAN schedule.",
        ),
        _backup_age(
            "archivelog",
            "Last archived-log backup",
            jobs.get("last_archivelog_age_days"),
            jobs.get("last_archivelog_end"),
            warn="1d",
            crit="2d",
            missing_verdict=1 if archive else None,
            missing="none recorded" + ("" if archive else " (not applicable: NOARCHIVELOG mode)"),
            advice="Back up the archived logs at least daily (BACKUP ARCHIVELOG ALL NOT BACKED "
            "UP): they are needed to recover past the last full backup.",
        ),
        Measure(
            "db.backup.corrupt_blocks",
            "Blocks marked corrupt",
            int(_number(corruption.get("corrupt_blocks")) or 0),
            crit=Range.parse("0"),
            display=f"{int(_number(corruption.get('corrupt_blocks')) or 0)} blocks in "
            f"{int(_number(corruption.get('corrupt_ranges')) or 0)} ranges "
            "(v$database_block_corruption)",
            advice="Corrupt blocks were found: run RMAN VALIDATE DATABASE and repair them with "
            "RECOVER ... BLOCK from a good backup.",
        ),
    ]
    return Observation(measures)


# --- helpers --------------------------------------------------------------------------------


def _instance(connection: Any) -> dict[str, Any]:
    return first(connection.rows(INSTANCE_SQL))


def _archivelog(instance: Mapping[str, Any]) -> bool:
    return str(instance.get("log_mode") or "").upper() == "ARCHIVELOG"


def _parameters(connection: Any) -> dict[str, Any]:
    return {str(row["name"]): row.get("value") for row in connection.rows(PARAMETERS_SQL)}


def _sysstat(connection: Any) -> dict[str, float]:
    return {
        str(row["name"]): float(_number(row.get("value")) or 0)
        for row in connection.rows(SYSSTAT_SQL)
    }


def _restart(started: str, previous: Snapshot | None) -> Measure:
    before = previous.counters.get("started") if previous is not None else None
    label = "Restarted since the last run"
    if not before:
        return Measure("db.availability.restarted", label, False, display="no (first run)")
    restarted = before != started
    return Measure(
        "db.availability.restarted",
        label,
        restarted,
        display=f"yes: started {started}, previously {before}" if restarted else "no",
        verdict=1 if restarted else None,
        advice="The instance restarted since the last run: read the alert log for the reason "
        "(crash, patching, planned maintenance).",
    )


def _rate_measure(
    key: str, label: str, value: float | None, unit: str, advice: str = ""
) -> Measure:
    if value is None:
        return Measure(key, label, None, unit, display=BASELINE, advice=advice)
    return Measure(key, label, round(value, 2), unit, advice=advice)


def _used_percent(key: str, label: str, used: float, limit: float | None, advice: str) -> Measure:
    exact = None if not limit else 100.0 * used / limit
    percent = None if exact is None else round(exact, 2)
    return Measure(
        key,
        label,
        percent,
        "%",
        # The shared convention for db.sessions.used_percent (check_oracle_health
        # session-usage and process-usage default to 80/90).
        warn=Range.parse("90%"),
        crit=Range.parse("95%"),
        display="limit unknown"
        if exact is None
        else f"{exact:.1f}% ({int(used)} of {int(limit or 0)})",
        verdict=0 if percent is None else None,
        advice=advice,
        min=0,
        max=100,
    )


def _contents(row: Mapping[str, Any]) -> str:
    return str(row.get("contents") or "PERMANENT")


def _tablespace_measures(row: Mapping[str, Any]) -> list[Measure]:
    name = str(row["tablespace_name"])
    labels = {"name": name, "contents": _contents(row)}
    return [
        _space_percent("db.tablespace.used_percent", "Tablespace", row),
        Measure(
            "db.tablespace.used",
            f"Tablespace {name} / used space",
            _number(row.get("used_bytes")),
            "B",
            labels=labels,
        ),
        Measure(
            "db.tablespace.size",
            f"Tablespace {name} / allocated size",
            _number(row.get("size_bytes")),
            "B",
            labels=labels,
        ),
        Measure(
            "db.tablespace.max",
            f"Tablespace {name} / maximum size",
            _number(row.get("max_bytes")),
            "B",
            labels=labels,
            display=format_bytes(_number(row.get("max_bytes")) or 0)
            + (" (autoextend)" if _autoextend(row) else " (fixed size)"),
        ),
    ]


def _space_percent(key: str, kind: str, row: Mapping[str, Any]) -> Measure:
    """Use of a tablespace against its ceiling: MAXBYTES of autoextensible files, else size."""
    name = str(row["tablespace_name"])
    contents = _contents(row)
    labels = {"name": name, "contents": contents}
    label = f"{kind} {name} / used"
    used = _number(row.get("used_bytes")) or 0.0
    ceiling = _number(row.get("max_bytes")) or 0.0
    status = str(row.get("status") or "ONLINE")
    if status == "OFFLINE":
        return Measure(
            key,
            label,
            None,
            "%",
            labels=labels,
            display="offline: use unknown",
            verdict=1,
            advice=f"Tablespace {name} is offline: bring it online or drop it if unused.",
        )
    if ceiling <= 0:
        return Measure(key, label, None, "%", labels=labels, display="no data file", verdict=0)
    percent = round(100.0 * used / ceiling, 2)
    growth = "autoextend" if _autoextend(row) else "fixed size"
    if contents == "TEMPORARY":
        advice = (
            f"Temp tablespace {name} is nearly full: find the sorting statements "
            "(v$tempseg_usage) or add a temp file."
        )
    elif contents == "UNDO":
        advice = (
            f"Undo tablespace {name} is nearly full: look for long transactions, check "
            "UNDO_RETENTION, or add space."
        )
    elif _autoextend(row):
        advice = (
            f"Tablespace {name} nears its autoextend ceiling: raise MAXSIZE of its data "
            "files or add a data file."
        )
    else:
        advice = f"Tablespace {name} is nearly full: add a data file or enable AUTOEXTEND."
    return Measure(
        key,
        label,
        percent,
        "%",
        # check_oracle_health tablespace-usage: warning 90, critical 98 (percent of the
        # autoextend ceiling).
        warn=Range.parse("90%"),
        crit=Range.parse("98%"),
        labels=labels,
        display=f"{percent:.1f}% of {format_bytes(ceiling)} ({growth}; "
        f"{format_bytes(used)} used, {format_bytes(_number(row.get('size_bytes')) or 0)} allocated)",
        advice=advice,
        min=0,
        max=100,
    )


def _redo_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        groups.setdefault(row["group#"], row)
    sizes = sorted({int(_number(row.get("bytes")) or 0) for row in groups.values()})
    measures = [
        Measure(
            "db.logs.redo_groups",
            "Redo log groups",
            len(groups),
            display=f"{len(groups)} groups of {', '.join(format_bytes(s) for s in sizes) or '-'}",
        )
    ]
    for number, row in groups.items():
        members = int(_number(row.get("members")) or 0)
        measures.append(
            Measure(
                "db.logs.redo_group_members",
                f"Redo group {number} / members",
                members,
                labels={"name": f"group {number}"},
                # Oracle's advice (Administrator's Guide, "Multiplexing Redo Log Files"): at
                # least two members per group, on separate disks.
                warn=Range.parse("2:"),
                display=f"{members} member{'s' if members != 1 else ''}, "
                f"{row.get('group_status') or ''}, {format_bytes(_number(row.get('bytes')) or 0)}",
                advice="Multiplex your redo logs: add a member on another disk "
                f"(ALTER DATABASE ADD LOGFILE MEMBER '...' TO GROUP {number}).",
            )
        )
    for row in rows:
        member = str(row["member"])
        # v$logfile STATUS: null = in use, INVALID = inaccessible, STALE = contents incomplete
        # (e.g. a member just added), DELETED = no longer used.
        status = str(row.get("member_status") or "") or "VALID"
        verdict = {"INVALID": 2, "STALE": 1, "DELETED": 1}.get(status)
        measures.append(
            Measure(
                "db.logs.redo_member_status",
                f"Redo member {member} / status",
                status,
                labels={"name": member, "group": str(row["group#"])},
                verdict=verdict,
                advice="A redo log member is unusable: check its disk, then drop and re-add the "
                "member (ALTER DATABASE DROP/ADD LOGFILE MEMBER) once its group is INACTIVE.",
            )
        )
    return measures


def _switches_measure(rows: list[dict[str, Any]]) -> Measure:
    busiest = max(rows, key=lambda row: _number(row.get("switches")) or 0, default=None)
    peak = int(_number(busiest.get("switches")) or 0) if busiest else 0
    total = sum(int(_number(row.get("switches")) or 0) for row in rows)
    display = (
        f"{peak} in the hour {busiest.get('hour')}:00 ({total} in {LOG_HISTORY_HOURS} h)"
        if busiest
        else f"0 in the last {LOG_HISTORY_HOURS} h"
    )
    return Measure(
        "db.logs.switches_peak_per_hour",
        f"Redo log switches / busiest hour of the last {LOG_HISTORY_HOURS} h",
        peak,
        # Oracle sizes redo logs for a switch every 15-20 minutes (no more than ~5 an hour at
        # peak, Siebel/Oracle redo sizing guide); Checkmk oracle_logswitches warns at 50 and 100
        # an hour. 20 (one every 3 min) is well past the sizing target; 60 (one a minute) is
        # check_oracle_health's critical switch-interval.
        warn=Range.parse("20"),
        crit=Range.parse("60"),
        display=display,
        advice="Redo logs switch too often: make the redo log files larger so that they "
        "switch every 15-20 minutes at peak.",
    )


def _archive_dest_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    if not rows:
        return [
            Measure(
                "db.logs.archive_dest_status",
                "Archive destinations",
                "none",
                display="no active archive destination in ARCHIVELOG mode",
                verdict=2,
                advice="Set LOG_ARCHIVE_DEST_1 (or DB_RECOVERY_FILE_DEST): the database hangs "
                "when the redo logs cannot be archived.",
            )
        ]
    measures = []
    for row in rows:
        name = str(row.get("dest_name") or f"LOG_ARCHIVE_DEST_{row.get('dest_id')}")
        status = str(row.get("status") or "")
        error = str(row.get("error") or "").strip()
        verdict = {"ERROR": 2, "BAD PARAM": 2, "FULL": 2, "DEFERRED": 1, "DISABLED": 1}.get(status)
        measures.append(
            Measure(
                "db.logs.archive_dest_status",
                f"Archive destination {name} / status",
                status,
                labels={"name": name},
                display=f"{status} -> {row.get('destination') or '-'}"
                + (f" ({error})" if error else ""),
                verdict=verdict,
                advice=f"Archiving to {name} fails: fix the destination (space, path, standby "
                "connection) before the redo logs fill and the database hangs (ORA-00257).",
            )
        )
    return measures


def _fra_measures(connection: Any) -> list[Measure]:
    fra = first(connection.rows(FRA_SQL))
    limit = _number(fra.get("space_limit")) or 0.0
    if not fra.get("name") or limit <= 0:
        return [
            _not_applicable(
                "db.logs.fra_used_percent",
                "Fast recovery area",
                "no fast recovery area (DB_RECOVERY_FILE_DEST) configured",
            )
        ]
    name = str(fra["name"])
    used = _number(fra.get("space_used")) or 0.0
    reclaimable = _number(fra.get("space_reclaimable")) or 0.0
    percent = round(100.0 * (used - reclaimable) / limit, 2)
    usage = connection.rows(FRA_USAGE_SQL)
    top = ", ".join(
        f"{row['file_type']} {float(_number(row.get('percent_space_used')) or 0):.0f}%"
        for row in usage
        if (_number(row.get("percent_space_used")) or 0) > 0
    )
    labels = {"name": name}
    return [
        Measure(
            "db.logs.fra_used_percent",
            "Fast recovery area / used",
            percent,
            "%",
            # check_oracle_health flash-recovery-area-usage: warning 90, critical 98, on the
            # space not reclaimable.
            warn=Range.parse("90%"),
            crit=Range.parse("98%"),
            labels=labels,
            display=f"{percent:.1f}% of {format_bytes(limit)} not reclaimable"
            + (f" ({top})" if top else ""),
            advice="The fast recovery area is nearly full (the database hangs when archiving "
            "fails): back up and delete archived logs (BACKUP ARCHIVELOG ALL DELETE INPUT), "
            "delete obsolete backups, or raise DB_RECOVERY_FILE_DEST_SIZE.",
            min=0,
            max=100,
        ),
        Measure("db.logs.fra_used", "Fast recovery area / used space", used, "B", labels=labels),
        Measure(
            "db.logs.fra_reclaimable",
            "Fast recovery area / reclaimable space",
            reclaimable,
            "B",
            labels=labels,
        ),
        Measure("db.logs.fra_limit", "Fast recovery area / size limit", limit, "B", labels=labels),
    ]


def _long_transactions_display(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    oldest = rows[0]
    who = " ".join(str(oldest.get(k)) for k in ("username", "program") if oldest.get(k))
    return (
        f"{len(rows)} (oldest: SID {oldest.get('sid')}{' ' + who if who else ''}, "
        f"open {_duration(_number(oldest.get('age_seconds')))})"
    )


def _lock_waits_display(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    longest = rows[0]
    return (
        f"{len(rows)} (longest: SID {longest.get('sid')} waits "
        f"{_duration(_number(longest.get('seconds_in_wait')))} on SID "
        f"{longest.get('blocking_session')}, {longest.get('event') or 'lock'})"
    )


def _problem_display(count: Any, last: str) -> str:
    number = int(_number(count) or 0)
    return f"{number} (latest started {last})" if number and last else str(number)


def _backup_age(
    name: str,
    label: str,
    age_days: Any,
    ended: Any,
    warn: str,
    crit: str,
    missing_verdict: int | None,
    missing: str,
    advice: str,
) -> Measure:
    age = _number(age_days)
    key = f"db.backup.last_{name}_age"
    if age is None:
        return Measure(
            key,
            label,
            None,
            "d",
            labels={"name": name},
            display=missing,
            verdict=missing_verdict if missing_verdict is not None else 0,
            advice=advice,
        )
    return Measure(
        key,
        label,
        round(age, 2),
        "d",
        warn=Range.parse(warn),
        crit=Range.parse(crit),
        labels={"name": name},
        display=f"{age:.1f} days ago (ended {_iso(ended)})",
        advice=advice,
    )
