"""DM8 (达梦数据库) inspection.

Verified by SQL review and recorded result rows, not against a live server: DM8 cannot run on
the machines the tests run on. The statements use DM's own dictionary (V$INSTANCE, V$DM_INI,
V$RLOGFILE, V$ARCH_STATUS, V$SESSIONS, V$TRX, V$LOCK, V$BACKUPSET...) and its Oracle-compatible
DBA_DATA_FILES/DBA_FREE_SPACE; ``tests/test_db_dm.py`` feeds their result shapes through a
``RecordedConnection``. Column names were taken from the DM8 system-management manual and
cross-checked against the SQL of the open-source dameng_exporter (gaoyuan98/dameng_exporter);
where a column could not be confirmed, the statement selects ``*`` and the code reads the
column if present (see the comments at each statement).

Driver: dmPython, the extra ``opsctl[dm]``. Error codes were read from the code-to-message
table in dmPython 2.6.1's client library (libdmdpi): -5504 no SELECT privilege, -6506 write in
a read-only transaction, -7049 statement timeout, -70019/-70028 network (both seen from the real
driver against a closed port). A refused login is -2501 in field reports and DM's manual; that
table files the same message under -200, so both are mapped.
"""

from __future__ import annotations

import math
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
-- DM8: a monitoring user with read access to the dictionary and dynamic views only.
CREATE USER opsmon IDENTIFIED BY "<password>";
GRANT VTI, SOI TO opsmon;
-- VTI: query the dynamic performance views (V$INSTANCE, V$SESSIONS, V$RLOGFILE, V$BACKUPSET...).
-- SOI: query the system tables (SYS*) behind the dictionary views DBA_DATA_FILES/DBA_FREE_SPACE.
-- SVI (basic views) is granted to PUBLIC by default: nothing to grant.
-- If DBA_DATA_FILES is still refused (-5504), also: GRANT SELECT ANY DICTIONARY TO opsmon;
"""

LONG_TRANSACTION_SECONDS = 3600
ARCHIVE_HISTORY_HOURS = 24

# STATUS$: OPEN / MOUNT / SUSPEND; MODE$: PRIMARY / STANDBY / NORMAL (a standalone server).
INSTANCE_SQL = """
SELECT I.INSTANCE_NAME, I.HOST_NAME, I.SVR_VERSION, I.START_TIME, I.STATUS$, I.MODE$,
       DATEDIFF(SECOND, I.START_TIME, SYSDATE) AS UPTIME_SECONDS, D.ARCH_MODE
FROM V$INSTANCE I CROSS JOIN V$DATABASE D
"""

# dm.ini parameters for the report, the session limit and the control file settings.
CONFIG_PARAMETERS = (
    "MEMORY_TARGET",
    "MEMORY_POOL",
    "BUFFER",
    "MAX_BUFFER",
    "MAX_SESSIONS",
    "MAX_SESSION_STATEMENT",
    "WORKER_THREADS",
    "COMPATIBLE_MODE",
    "UNDO_RETENTION",
    "ARCH_INI",
    "BAK_PATH",
)
_PARAMETER_UNITS = {
    "MEMORY_TARGET": "MB",
    "MEMORY_POOL": "MB",
    "BUFFER": "MB",
    "MAX_BUFFER": "MB",
    "UNDO_RETENTION": "s",
}

PARAMETERS_SQL = """
SELECT PARA_NAME, PARA_VALUE
FROM V$DM_INI
WHERE PARA_NAME IN ('MEMORY_TARGET', 'MEMORY_POOL', 'BUFFER', 'MAX_BUFFER', 'MAX_SESSIONS',
                    'MAX_SESSION_STATEMENT', 'WORKER_THREADS', 'COMPATIBLE_MODE',
                    'UNDO_RETENTION', 'ARCH_INI', 'BAK_PATH',
                    'CTL_PATH', 'CTL_BAK_PATH', 'CTL_BAK_NUM')
ORDER BY PARA_NAME
"""

# Fixed when the database is created (dminit): character set, case sensitivity, page size.
DATABASE_SETTINGS_SQL = """
SELECT SF_GET_UNICODE_FLAG() AS UNICODE_FLAG,
       SF_GET_CASE_SENSITIVE_FLAG() AS CASE_SENSITIVE,
       SF_GET_PAGE_SIZE() AS PAGE_SIZE
FROM DUAL
"""
_CHARSETS = {0: "GB18030", 1: "UTF-8", 2: "EUC-KR"}

# Autoextend-aware as for Oracle. How DM reports MAXSIZE UNLIMITED in DBA_DATA_FILES.MAXBYTES
# is not documented: a non-positive MAXBYTES on an autoextensible file is counted as unbounded
# (the file system is then the ceiling) rather than as a ceiling equal to the current size.
TABLESPACE_SQL = """
SELECT D.TABLESPACE_NAME, D.SIZE_BYTES, D.MAX_BYTES, D.AUTOEXTENSIBLE, D.UNBOUNDED_FILES,
       D.SIZE_BYTES - NVL(F.FREE_BYTES, 0) AS USED_BYTES
FROM (SELECT TABLESPACE_NAME, SUM(BYTES) AS SIZE_BYTES,
             SUM(CASE WHEN AUTOEXTENSIBLE = 'YES' THEN GREATEST(MAXBYTES, BYTES)
                      ELSE BYTES END) AS MAX_BYTES,
             MAX(AUTOEXTENSIBLE) AS AUTOEXTENSIBLE,
             SUM(CASE WHEN AUTOEXTENSIBLE = 'YES' AND NVL(MAXBYTES, 0) <= 0
                      THEN 1 ELSE 0 END) AS UNBOUNDED_FILES
        FROM DBA_DATA_FILES GROUP BY TABLESPACE_NAME) D
LEFT JOIN (SELECT TABLESPACE_NAME, SUM(BYTES) AS FREE_BYTES
             FROM DBA_FREE_SPACE GROUP BY TABLESPACE_NAME) F
       ON F.TABLESPACE_NAME = D.TABLESPACE_NAME
ORDER BY D.TABLESPACE_NAME
"""

# DM has one temporary tablespace, TEMP. V$DATAFILE sizes are in pages; MAX_SIZE in MB
# (0: unlimited), AUTO_EXTEND a flag.
TEMP_SQL = """
SELECT T.NAME AS TABLESPACE_NAME,
       SUM(F.TOTAL_SIZE) * SF_GET_PAGE_SIZE() AS SIZE_BYTES,
       (SUM(F.TOTAL_SIZE) - SUM(F.FREE_SIZE)) * SF_GET_PAGE_SIZE() AS USED_BYTES,
       MAX(F.AUTO_EXTEND) AS AUTO_EXTEND,
       MIN(F.MAX_SIZE) AS MIN_MAX_SIZE_MB,
       SUM(F.MAX_SIZE) AS MAX_SIZE_MB
FROM V$TABLESPACE T JOIN V$DATAFILE F ON F.GROUP_ID = T.ID
WHERE T.NAME = 'TEMP'
GROUP BY T.NAME
"""

# DM redo files are used in rotation; there are no members to multiplex. RLOG_SIZE in bytes.
REDO_SQL = """
SELECT GROUP_ID, FILE_ID, PATH, CLIENT_PATH, RLOG_SIZE
FROM V$RLOGFILE
ORDER BY GROUP_ID, FILE_ID
"""

ARCHIVE_STATUS_SQL = """
SELECT ARCH_DEST, ARCH_TYPE, ARCH_STATUS, ARCH_SRC
FROM V$ARCH_STATUS
ORDER BY ARCH_TYPE, ARCH_DEST
"""

# Column set of V$DM_ARCH_INI varies between DM8 builds: read ARCH_SPACE_LIMIT (MB, 0 for no
# limit) if present.
ARCHIVE_CONFIG_SQL = """
SELECT * FROM V$DM_ARCH_INI
"""

ARCHIVE_FILES_SQL = """
SELECT TO_CHAR(CREATE_TIME, 'YYYY-MM-DD HH24') AS HOUR, COUNT(*) AS FILES
FROM V$ARCH_FILE
WHERE CREATE_TIME > DATEADD(HOUR, ?, SYSDATE)
GROUP BY TO_CHAR(CREATE_TIME, 'YYYY-MM-DD HH24')
ORDER BY FILES DESC, HOUR DESC
"""

SYSSTAT_SQL = """
SELECT NAME, STAT_VAL
FROM V$SYSSTAT
WHERE NAME IN ('physical read count', 'physical write count', 'logic read count',
               'transaction total count')
"""

SESSION_COUNT_SQL = """
SELECT COUNT(*) AS SESSIONS, SUM(CASE WHEN STATE = 'ACTIVE' THEN 1 ELSE 0 END) AS ACTIVE
FROM V$SESSIONS
"""

# V$TRX has no start time: a transaction that changed rows in a session whose last request
# came in over an hour ago has been open at least that long (idle in transaction, or one
# statement running for an hour).
LONG_TRANSACTIONS_SQL = """
SELECT T.ID AS TRX_ID, S.SESS_ID, S.USER_NAME, S.CLNT_IP, S.STATE,
       DATEDIFF(SECOND, S.LAST_RECV_TIME, SYSDATE) AS AGE_SECONDS
FROM V$TRX T JOIN V$SESSIONS S ON S.SESS_ID = T.SESS_ID
WHERE T.INS_CNT + T.DEL_CNT + T.UPD_CNT > 0
  AND DATEDIFF(SECOND, S.LAST_RECV_TIME, SYSDATE) > ?
ORDER BY AGE_SECONDS DESC
"""

# Lock requests blocked right now (an instant, unlike Oracle's "waiting over a minute").
LOCK_WAITS_SQL = """
SELECT TRX_ID, LTYPE, LMODE, TABLE_ID
FROM V$LOCK
WHERE BLOCKED = 1
"""

# V$BACKUPSET lists the backup sets found in the default backup directory (BAK_PATH) and in
# directories added with SF_BAKSET_BACKUP_DIR_ADD. Its documented columns TYPE (0 base, 1
# incremental) and RANGE# (1 database, 2 tablespace, 3 table, 4 archive) differ between
# builds, so the statement selects every column and the age is computed by the server.
BACKUPSET_SQL = """
SELECT B.*, DATEDIFF(SECOND, B.BACKUP_TIME, SYSDATE) AS AGE_SECONDS
FROM V$BACKUPSET B
ORDER BY B.BACKUP_TIME DESC
"""


# --- connection -------------------------------------------------------------------------------


class DmConnection:
    """A dmPython connection as the engine modules use it (``rows``/``value``)."""

    engine = "dm"

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
        """Run a query (``?`` placeholders); return its rows as dicts keyed by lower-case
        column name. Raise DbError with the stage the DM error code points to."""
        try:
            cursor = self.raw.cursor()
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, tuple(parameters))  # type: ignore[arg-type]
                names = [column[0].lower() for column in cursor.description or ()]
                return [
                    dict(zip(names, (_plain(value) for value in row), strict=True))
                    for row in cursor.fetchall()
                ]
            finally:
                cursor.close()
        except self.driver.Error as error:
            raise error_from_driver(error, self.user, sql) from None

    def value(self, sql: str, parameters: Any = None) -> Any:
        found = self.rows(sql, parameters)
        return next(iter(found[0].values())) if found and found[0] else None

    def close(self) -> None:
        self.raw.close()


def connect(target: Any, timeout: float) -> DmConnection:
    """Given a Database target and a time budget in seconds, return an open connection.

    Raise DbError: stage ``driver`` if dmPython is missing, ``auth``, ``connect``...
    """
    try:
        import dmPython
    except ImportError:
        raise DbError(
            "the DM8 driver is not installed: pip install 'opsctl[dm]'", "driver"
        ) from None
    if not target.user:
        raise DbError(
            f"no user given for database {target.name}: set user in the inventory", "auth"
        )
    password = _password(target)
    seconds = max(1, math.ceil(timeout))
    clock = time.monotonic()
    try:
        raw = dmPython.connect(
            user=target.user,
            password=password,
            server=target.host,
            port=target.effective_port,
            # Seconds to log in, and seconds any later request may take (DPI's
            # DSQL_ATTR_CONNECTION_TIMEOUT): DM8 has no per-session statement timeout, so this
            # is the statement timeout of the connection.
            login_timeout=seconds,
            connection_timeout=seconds,
            # English driver messages and UTF-8 text whatever the server's character set.
            lang_id=dmPython.LANGUAGE_EN,
            local_code=dmPython.PG_UTF8,
        )
    except dmPython.Error as error:
        raise error_from_driver(error, target.user) from None
    return DmConnection(raw, dmPython, target.user, time.monotonic() - clock, timeout)


# DM error codes by stage (server codes from the DM8 manual; client codes -70xxx from
# dmPython's client library). -200 carries "invalid username or password" in the message table
# of dmPython 2.6.1; servers report -2501 for it.
_AUTH_CODES = {
    -200: "invalid user name or password",
    -2501: "invalid user name or password",
    -2503: "the password has expired",
    -2508: "too many failed logins: the account is locked",
    -5509: "the user may not access the database",
    -70096: "invalid user name or password",
}
_CONNECT_CODES = {
    -6001,  # exceeds MAX_SESSIONS
    -6002,  # exceeds the user's session limit
    -6003,  # cannot establish the connection
    -6007,  # connection exception
    -6010,  # connection lost
    -6011,  # unknown host or DNS failure
    -6012,  # cannot connect to the host
    -6029,  # connection timeout
    -6032,  # connection refused
    -70019,  # network communication failure
    -70025,  # connection not opened
    -70028,  # cannot create the socket connection (refused, unreachable)
    -70065,  # connection exception, switched to another server
    -70066,  # connection exception, could not switch
}
_PRIVILEGE_CODES = {
    -5504,  # no SELECT privilege on the object
    -5508,  # no SELECT privilege on the column
    -5669,  # insufficient privileges
}
_TIMEOUT_CODES = {
    -574,  # timeout waiting for the query to complete
    -604,  # session execute timeout
    -608,  # request timeout
    -6407,  # lock timeout
    -7049,  # statement execution timeout
}
_READONLY_CODES = {
    -615,  # the session is read only
    -6506,  # tried to modify data in a read-only transaction
}
_INVALID_NAME = -2106  # invalid table or view name

_DM_CODE = re.compile(r"\[CODE:(-?\d+)\]")
_DICTIONARY_VIEW = re.compile(r"\b((?:v\$|dba_)[a-z_$#]+)", re.IGNORECASE)


def error_from_driver(error: BaseException, user: str | None = None, sql: str = "") -> DbError:
    """Given a dmPython exception (its ``args[0]`` is a DmError carrying ``code`` and
    ``message``, e.g. ``-70028`` and ``[CODE:-70028]Create SOCKET connection failure``), return
    the DbError of the right stage with a one-line message without the password."""
    detail = error.args[0] if error.args else None
    message = _one_line(str(getattr(detail, "message", None) or detail or error))
    code = getattr(detail, "code", None)
    if not isinstance(code, int) or isinstance(code, bool):
        found = _DM_CODE.search(message)
        code = int(found.group(1)) if found else 0
    grantee = user or "the monitoring user"
    views = sorted({view.upper() for view in _DICTIONARY_VIEW.findall(sql)})
    subject = ", ".join(views) if views else "the dictionary views"
    if code in _AUTH_CODES:
        return DbError(f"login refused ({_AUTH_CODES[code]}): {message}", "auth")
    if code in _CONNECT_CODES:
        return DbError(f"cannot reach the database: {message}", "connect")
    if code in _TIMEOUT_CODES:
        return DbError(f"statement timed out: {message}", "timeout")
    if code in _READONLY_CODES:
        return DbError(f"the sql check only reads: {message}", "readonly")
    if code in _PRIVILEGE_CODES:
        return DbError(
            f"{grantee} cannot read {subject}: GRANT VTI, SOI TO {grantee}; {message}",
            "privilege",
        )
    if code == _INVALID_NAME:
        # DM answers -2106 both for a view this release lacks and for one hidden from the user.
        return DbError(
            f"{subject} not found: missing in this DM8 release, or hidden from {grantee} "
            f"(GRANT VTI, SOI TO {grantee}); {message}",
            "query",
        )
    return DbError(message, "query")


def _one_line(text: str) -> str:
    return mask_credentials("; ".join(line.strip() for line in text.splitlines() if line.strip()))


# --- the sql check --------------------------------------------------------------------------

_QUERY_START = re.compile(r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(select|with)\b", re.I | re.S)
_FOR_UPDATE = re.compile(r"\bfor\s+update\b", re.I)


def read_only(
    connection: Any, sql: str, timeout: float, max_rows: int
) -> tuple[list[str], list[tuple]]:
    """Run one query in a READ ONLY transaction; return its column names and at most
    ``max_rows`` rows, then roll back.

    DM8 supports ``SET TRANSACTION READ ONLY`` (a write in it fails with -6506). Autocommit is
    turned off for the statement so that the transaction lasts until the rollback, and only
    SELECT/WITH statements are sent, since DM commits before DDL as Oracle does. The timeout is
    the connection's request timeout (DM8 has no statement timeout of its own). Raise DbError
    stage ``readonly`` for anything that writes.
    """
    statement = sql.strip().rstrip(";").strip()
    if not _QUERY_START.match(statement) or _FOR_UPDATE.search(statement):
        raise DbError("the sql check only reads: give one SELECT (or WITH ... SELECT)", "readonly")
    raw, driver = connection.raw, connection.driver
    autocommit = raw.autocommit
    previous_timeout = raw.connection_timeout
    try:
        raw.autocommit = False
        raw.connection_timeout = max(1, math.ceil(timeout))
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
        raise error_from_driver(error, connection.user, statement) from None
    finally:
        try:
            raw.rollback()
        finally:
            raw.autocommit = autocommit
            raw.connection_timeout = previous_timeout


# --- inspection items ---------------------------------------------------------------------


def availability(connection: Any, previous: Snapshot | None) -> Observation:
    """Connect time, version, instance status, start time, uptime, restart, open mode, role,
    archive mode."""
    clock = time.monotonic()
    instance = _instance(connection)
    latency = (getattr(connection, "connect_seconds", None) or 0.0) + time.monotonic() - clock
    started = _iso(instance.get("start_time"))
    status = str(instance.get("status$") or "")
    mode = str(instance.get("mode$") or "")
    standby = mode.upper() == "STANDBY"
    archive = _archive_on(instance)
    uptime = _number(instance.get("uptime_seconds"))
    if status != "OPEN":
        open_mode = status.lower()
    else:
        open_mode = "read only" if standby else "read write"
    measures = [
        Measure(
            "db.availability.connect_time",
            "Connect time (login and first query)",
            round(latency, 3),
            "s",
            # check_oracle_health connection-time: warning 1 s, critical 5 s.
            warn=Range.parse("1s"),
            crit=Range.parse("5s"),
            advice="Slow login: check the network path and the server's load (V$SESSIONS).",
        ),
        Measure("db.availability.version", "DM version", str(instance.get("svr_version") or "")),
        Measure(
            "db.availability.status",
            "Instance status",
            status,
            verdict=None if status == "OPEN" else 2,
            advice="The instance is not OPEN (MOUNT or SUSPEND): read dm_<instance>.log and "
            "open it (ALTER DATABASE OPEN) or check the data watcher.",
        ),
        Measure("db.availability.started", "Instance started", started),
        Measure(
            "db.availability.uptime", "Instance uptime", uptime, "s", display=_duration(uptime)
        ),
        _restart(started, previous),
        Measure("db.availability.open_mode", "Database open mode", open_mode),
        Measure(
            "db.availability.role",
            "Database role",
            "standby" if standby else "primary",
            display=f"{'standby' if standby else 'primary'} ({mode or 'unknown'})",
        ),
        Measure(
            "db.availability.archive_mode",
            "Archive log mode",
            "on" if archive else "off",
            verdict=None if archive else 1,
            advice="Without archiving only the last full backup can be restored: enable it "
            "(ALTER DATABASE MOUNT; ALTER DATABASE ADD ARCHIVELOG ...; ALTER DATABASE "
            "ARCHIVELOG; ALTER DATABASE OPEN).",
        ),
    ]
    return Observation(
        measures,
        counters={"started": started},
        summary=f"{status} {open_mode}, up {_duration(uptime)}",
    )


def config(connection: Any, previous: Snapshot | None) -> Observation:
    """Key dm.ini parameters and the settings fixed at creation, one report row each."""
    parameters = _parameters(connection)
    measures = []
    for name in CONFIG_PARAMETERS:
        value = "" if parameters.get(name) is None else str(parameters[name])
        unit = _PARAMETER_UNITS.get(name, "")
        measures.append(
            Measure(
                "db.config.parameter",
                f"Parameter {name}",
                value,
                labels={"name": name},
                display=f"{value} {unit}".strip() if value else "not set",
            )
        )
    settings = first(connection.rows(DATABASE_SETTINGS_SQL))
    flag = _number(settings.get("unicode_flag"))
    charset = _CHARSETS.get(int(flag), str(flag)) if flag is not None else ""
    page = _number(settings.get("page_size"))
    case = str(settings.get("case_sensitive") or "")
    for name, value, display in (
        (
            "CHARSET",
            charset,
            f"{charset} (SF_GET_UNICODE_FLAG {'' if flag is None else int(flag)})",
        ),
        ("CASE_SENSITIVE", case, "yes" if case in ("1", "Y") else "no"),
        ("PAGE_SIZE", "" if page is None else str(int(page)), format_bytes(page or 0)),
    ):
        measures.append(
            Measure(
                "db.config.parameter",
                f"Parameter {name}",
                value,
                labels={"name": name},
                display=display,
            )
        )
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
    return Observation(
        measures, counters={"tablespace_used": used}, summary=f"{len(rows)} tablespaces"
    )


def logs(connection: Any, previous: Snapshot | None) -> Observation:
    """Redo files, archive destinations and their status, archive files per hour."""
    redo = connection.rows(REDO_SQL)
    measures = [
        Measure(
            "db.logs.redo_files",
            "Redo log files",
            len(redo),
            # DM needs at least two redo files, used in rotation (DM8 system management).
            warn=Range.parse("2:"),
            display=f"{len(redo)} files (used in rotation; DM has no redo members to multiplex)",
            advice="Add a redo log file (ALTER DATABASE ADD LOGFILE ...).",
        )
    ]
    for row in redo:
        path = str(row.get("path") or row.get("client_path") or row.get("file_id"))
        measures.append(
            Measure(
                "db.logs.redo_file_size",
                f"Redo file {path} / size",
                _number(row.get("rlog_size")),
                "B",
                labels={"name": path},
            )
        )
    if _archive_on(_instance(connection)):
        measures.extend(_archive_measures(connection))
    else:
        measures.append(
            _not_applicable(
                "db.logs.archive_dest_status",
                "Archive destinations",
                "archiving is off (V$DATABASE.ARCH_MODE = N)",
            )
        )
    return Observation(measures)


def controlfile(connection: Any, previous: Snapshot | None) -> Observation:
    """Control file paths (dm.ini CTL_PATH) and the automatic control file backups."""
    parameters = _parameters(connection)
    paths = [p.strip() for p in str(parameters.get("CTL_PATH") or "").split(",") if p.strip()]
    backup_path = str(parameters.get("CTL_BAK_PATH") or "").strip()
    copies = _number(parameters.get("CTL_BAK_NUM"))
    measures = [
        Measure(
            "db.controlfile.count",
            "Control files / copies",
            len(paths),
            crit=Range.parse("1:"),
            display=f"{len(paths)} in CTL_PATH",
            advice="dm.ini names no control file (CTL_PATH): check the instance configuration.",
        )
    ]
    for path in paths:
        measures.append(
            Measure(
                "db.controlfile.status",
                f"Control file {path} / status",
                "configured",
                labels={"name": path},
                display="configured in dm.ini (DM8 does not report a status per copy)",
            )
        )
    missing_backups = not backup_path or copies == 0
    measures.append(
        Measure(
            "db.controlfile.backup_path",
            "Control file backups (CTL_BAK_PATH)",
            backup_path,
            display=f"{backup_path or 'not set'}, keeping "
            f"{'?' if copies is None else int(copies)} copies (CTL_BAK_NUM)",
            verdict=1 if missing_backups else None,
            advice="Set CTL_BAK_PATH (on another disk) and CTL_BAK_NUM > 0 in dm.ini so that "
            "DM keeps backups of the control file.",
        )
    )
    where = backup_path or "nowhere (CTL_BAK_PATH not set)"
    return Observation(measures, summary=f"{len(paths)} control file(s), backups in {where}")


def temp(connection: Any, previous: Snapshot | None) -> Observation:
    """Use of the TEMP tablespace; temp I/O rates are not exposed by DM8."""
    row = first(connection.rows(TEMP_SQL))
    measures = []
    if row:
        auto = str(row.get("auto_extend") or "").upper() in ("1", "Y", "YES", "TRUE")
        max_mb = _number(row.get("max_size_mb")) or 0.0
        unbounded = auto and (_number(row.get("min_max_size_mb")) or 0.0) <= 0
        size = _number(row.get("size_bytes")) or 0.0
        space = {
            "tablespace_name": row.get("tablespace_name") or "TEMP",
            "contents": "TEMPORARY",
            "used_bytes": row.get("used_bytes"),
            "size_bytes": size,
            "max_bytes": max(size, max_mb * 1024 * 1024) if auto else size,
            "autoextensible": "YES" if auto else "NO",
            "unbounded_files": 1 if unbounded else 0,
        }
        measures.append(_space_percent("db.temp.used_percent", "Temp tablespace", space))
    else:
        measures.append(
            _not_applicable("db.temp.used_percent", "Temp tablespace", "no TEMP tablespace found")
        )
    measures.append(
        _not_applicable(
            "db.temp.bytes_per_second",
            "Bytes written to temp per second",
            "DM8 exposes no cumulative temp I/O counter",
        )
    )
    return Observation(measures)


def io(connection: Any, previous: Snapshot | None) -> Observation:
    """Physical reads and writes, buffer hit ratio and transactions per second, between this
    run and the previous one (the first run records a baseline)."""
    started = _iso(_instance(connection).get("start_time"))
    stats = {
        str(row["name"]): float(_number(row.get("stat_val")) or 0)
        for row in connection.rows(SYSSTAT_SQL)
    }
    seconds, note = _interval(previous, started)
    reads = _rate(stats, previous, seconds, "physical read count")
    writes = _rate(stats, previous, seconds, "physical write count")
    transactions = _rate(stats, previous, seconds, "transaction total count")
    logical = _rate(stats, previous, seconds, "logic read count")
    if reads is not None and logical is not None:
        since, misses, gets = "between runs", reads, logical
    else:
        since = "since instance startup"
        misses = stats.get("physical read count", 0.0)
        gets = stats.get("logic read count", 0.0)
    hit = None if gets <= 0 else round(100.0 * (1 - misses / gets), 2)
    measures = [
        _rate_measure("db.io.reads_per_second", "Physical reads (pages per second)", reads, "/s"),
        _rate_measure(
            "db.io.writes_per_second", "Physical writes (pages per second)", writes, "/s"
        ),
        Measure(
            "db.io.hit_ratio",
            "Buffer pool hit ratio",
            hit,
            "%",
            # check_oracle_health sga-data-buffer-hit-ratio: warning 98:, critical 95:.
            warn=Range.parse("98%:"),
            crit=Range.parse("95%:"),
            display="no logical reads yet" if hit is None else f"{hit:.2f}% ({since})",
            verdict=0 if hit is None else None,
            advice="Many reads miss the buffer pool: check BUFFER/MAX_BUFFER in dm.ini and the "
            "statements doing full scans.",
            min=0,
            max=100,
        ),
        _rate_measure(
            "db.io.transactions_per_second", "Transactions per second", transactions, "/s"
        ),
    ]
    return Observation(
        measures, counters={"started": started, **stats}, notes=[note] if note else []
    )


def sessions(connection: Any, previous: Snapshot | None) -> Observation:
    """Sessions against MAX_SESSIONS, transactions open over an hour, blocked lock requests."""
    counts = first(connection.rows(SESSION_COUNT_SQL))
    limit = _number(_parameters(connection).get("MAX_SESSIONS"))
    count = int(_number(counts.get("sessions")) or 0)
    long_rows = connection.rows(LONG_TRANSACTIONS_SQL, (LONG_TRANSACTION_SECONDS,))
    blocked = connection.rows(LOCK_WAITS_SQL)
    percent = None if not limit else round(100.0 * count / limit, 2)
    measures = [
        Measure(
            "db.sessions.count",
            "Sessions / open",
            count,
            display=f"{count} ({int(_number(counts.get('active')) or 0)} active)",
        ),
        Measure("db.sessions.max", "Sessions / limit (MAX_SESSIONS)", limit),
        Measure(
            "db.sessions.used_percent",
            "Sessions / used of the limit",
            percent,
            "%",
            # The shared convention for db.sessions.used_percent: 90/95.
            warn=Range.parse("90%"),
            crit=Range.parse("95%"),
            display="limit unknown"
            if percent is None
            else f"{percent:.1f}% ({count} of {int(limit or 0)})",
            verdict=0 if percent is None else None,
            advice="Sessions near MAX_SESSIONS (new logins fail with -6001): find idle "
            "application sessions or raise MAX_SESSIONS in dm.ini (restart needed).",
            min=0,
            max=100,
        ),
        Measure(
            "db.sessions.long_transactions",
            "Transactions open longer than 1 h",
            len(long_rows),
            warn=Range.parse("0"),
            display=_long_transactions_display(long_rows),
            advice="A transaction open for hours holds locks and undo: ask its owner to commit, "
            "or end the session (SP_CLOSE_SESSION(sess_id)).",
        ),
        Measure(
            "db.sessions.lock_waits",
            "Lock requests blocked now",
            len(blocked),
            warn=Range.parse("0"),
            display=f"{len(blocked)} (V$LOCK.BLOCKED = 1)",
            advice="Transactions wait on locks held by others: find the holder in V$TRXWAIT "
            "and V$SESSIONS and have it commit or end it.",
        ),
    ]
    return Observation(measures)


def backup(connection: Any, previous: Snapshot | None) -> Observation:
    """Age of the last full, incremental and archive backup sets seen by V$BACKUPSET."""
    sets = connection.rows(BACKUPSET_SQL)
    newest: dict[str, dict[str, Any]] = {}
    for row in sets:
        kind = _backup_kind(row)
        age = _number(row.get("age_seconds"))
        if (
            kind
            and age is not None
            and (kind not in newest or age < (_number(newest[kind].get("age_seconds")) or 0))
        ):
            newest[kind] = row
    archive = _archive_on(_instance(connection))
    where = "in the backup directories V$BACKUPSET reads (BAK_PATH)"
    measures = [
        _not_applicable(
            "db.backup.failed_jobs",
            "Backup jobs failed in the last 3 days",
            "DM8 keeps no backup job history in a view; read the dmrman or job logs",
        ),
        _backup_age(
            "full",
            "Last full database backup",
            newest.get("full"),
            # A weekly full is the usual schedule: warn a day late, critical two missed.
            warn="8d",
            crit="15d",
            missing_verdict=1,
            missing=f"no full database backup set found {where}",
            advice="Take a full backup (BACKUP DATABASE FULL) and check the backup job; backups "
            "written outside BAK_PATH are invisible here.",
        ),
        _backup_age(
            "incremental",
            "Last incremental database backup",
            newest.get("incremental"),
            warn="2d",
            crit="4d",
            missing_verdict=None,
            missing="none found (not applicable when only full backups are taken)",
            advice="The daily incremental backup did not run: check the backup job.",
        ),
        _backup_age(
            "archivelog",
            "Last archive log backup",
            newest.get("archivelog"),
            warn="1d",
            crit="2d",
            missing_verdict=None,
            missing="none found" + ("" if archive else " (not applicable: archiving is off)"),
            advice="Back up the archive logs daily (BACKUP ARCHIVELOG ...): they are needed to "
            "recover past the last full backup.",
        ),
        _not_applicable(
            "db.backup.corrupt_blocks",
            "Blocks marked corrupt",
            "DM8 exposes no block-corruption view; check with dmdbchk",
        ),
    ]
    return Observation(measures, summary=f"{len(sets)} backup sets found")


# --- helpers --------------------------------------------------------------------------------


def _instance(connection: Any) -> dict[str, Any]:
    return first(connection.rows(INSTANCE_SQL))


def _archive_on(instance: Mapping[str, Any]) -> bool:
    return str(instance.get("arch_mode") or "").upper() in ("Y", "1", "YES")


def _parameters(connection: Any) -> dict[str, Any]:
    return {
        str(row["para_name"]).upper(): row.get("para_value")
        for row in connection.rows(PARAMETERS_SQL)
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
        advice="The instance restarted since the last run: read dm_<instance>.log for the "
        "reason (crash, data watcher switchover, planned maintenance).",
    )


def _rate_measure(key: str, label: str, value: float | None, unit: str) -> Measure:
    if value is None:
        return Measure(key, label, None, unit, display=BASELINE)
    return Measure(key, label, round(value, 2), unit)


def _contents(name: str) -> str:
    # DM's fixed tablespaces: TEMP is the temporary one, ROLL holds the undo (rollback) pages.
    return {"TEMP": "TEMPORARY", "ROLL": "UNDO"}.get(name.upper(), "PERMANENT")


def _tablespace_measures(row: Mapping[str, Any]) -> list[Measure]:
    name = str(row["tablespace_name"])
    labels = {"name": name, "contents": _contents(name)}
    unbounded = (_number(row.get("unbounded_files")) or 0) > 0
    ceiling = _number(row.get("max_bytes"))
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
            None if unbounded else ceiling,
            "B",
            labels=labels,
            display="unlimited (autoextend without MAXSIZE: the file system is the limit)"
            if unbounded
            else format_bytes(ceiling or 0)
            + (" (autoextend)" if _autoextend(row) else " (fixed size)"),
        ),
    ]


def _space_percent(key: str, kind: str, row: Mapping[str, Any]) -> Measure:
    """Use of a tablespace against its ceiling: MAXBYTES of autoextensible files, else size."""
    name = str(row["tablespace_name"])
    labels = {"name": name, "contents": str(row.get("contents") or _contents(name))}
    label = f"{kind} {name} / used"
    used = _number(row.get("used_bytes")) or 0.0
    size = _number(row.get("size_bytes")) or 0.0
    if (_number(row.get("unbounded_files")) or 0) > 0:
        percent = round(100.0 * used / size, 2) if size > 0 else None
        return Measure(
            key,
            label,
            percent,
            "%",
            labels=labels,
            display=f"{percent or 0:.1f}% of the {format_bytes(size)} allocated; autoextend "
            "without MAXSIZE, so the file system is the limit",
            # Nothing to judge against: the ceiling is the free space of the file system,
            # which the filesystem check watches.
            verdict=0,
        )
    ceiling = _number(row.get("max_bytes")) or 0.0
    if ceiling <= 0:
        return Measure(key, label, None, "%", labels=labels, display="no data file", verdict=0)
    percent = round(100.0 * used / ceiling, 2)
    growth = "autoextend" if _autoextend(row) else "fixed size"
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
        display=f"{percent:.1f}% of {format_bytes(ceiling)} ({growth}; {format_bytes(used)} "
        f"used, {format_bytes(size)} allocated)",
        advice=f"Tablespace {name} is nearly full: add a data file (ALTER TABLESPACE {name} "
        "ADD DATAFILE ...) or raise the MAXSIZE of its files.",
        min=0,
        max=100,
    )


def _archive_measures(connection: Any) -> list[Measure]:
    rows = connection.rows(ARCHIVE_STATUS_SQL)
    limits = {
        str(row.get("arch_dest") or row.get("arch_name")): _number(row.get("arch_space_limit"))
        for row in connection.rows(ARCHIVE_CONFIG_SQL)
    }
    measures = []
    for row in rows:
        dest = str(row.get("arch_dest") or "")
        status = str(row.get("arch_status") or "")
        limit = limits.get(dest)
        measures.append(
            Measure(
                "db.logs.archive_dest_status",
                f"Archive destination {dest} / status",
                status,
                labels={"name": dest},
                display=f"{status} ({row.get('arch_type') or '?'}"
                + (
                    ""
                    if limit is None
                    else f", space limit {'none' if limit <= 0 else format_bytes(limit * 1024 * 1024)}"
                )
                + ")",
                verdict=None if status == "VALID" else 2,
                advice=f"Archiving to {dest} fails: check its disk space and, for a standby or "
                "remote destination, the connection (V$ARCH_SEND_INFO).",
            )
        )
    if not rows:
        measures.append(
            Measure(
                "db.logs.archive_dest_status",
                "Archive destinations",
                "none",
                display="archiving is on but V$ARCH_STATUS lists no destination",
                verdict=2,
                advice="Configure a local archive destination (dmarch.ini ARCH_DEST).",
            )
        )
    files = connection.rows(ARCHIVE_FILES_SQL, (-ARCHIVE_HISTORY_HOURS,))
    busiest = max(files, key=lambda row: _number(row.get("files")) or 0, default=None)
    peak = int(_number(busiest.get("files")) or 0) if busiest else 0
    measures.append(
        Measure(
            "db.logs.archive_files_peak_per_hour",
            f"Archive files / busiest hour of the last {ARCHIVE_HISTORY_HOURS} h",
            peak,
            display=f"{peak} in the hour {busiest.get('hour')}:00"
            if busiest
            else f"0 in the last {ARCHIVE_HISTORY_HOURS} h",
        )
    )
    return measures


def _long_transactions_display(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    oldest = rows[0]
    who = " ".join(str(oldest.get(k)) for k in ("user_name", "clnt_ip") if oldest.get(k))
    return (
        f"{len(rows)} (oldest: session {oldest.get('sess_id')}{' ' + who if who else ''}, "
        f"open at least {_duration(_number(oldest.get('age_seconds')))})"
    )


def _backup_kind(row: Mapping[str, Any]) -> str | None:
    """Return full, incremental or archivelog for a database or archive backup set."""
    scope = _number(row.get("range#"))
    if scope == 4:
        return "archivelog"
    if scope not in (None, 1):
        return None  # tablespace or table backups
    return "incremental" if _number(row.get("type")) == 1 else "full"


def _backup_age(
    name: str,
    label: str,
    row: Mapping[str, Any] | None,
    warn: str,
    crit: str,
    missing_verdict: int | None,
    missing: str,
    advice: str,
) -> Measure:
    key = f"db.backup.last_{name}_age"
    seconds = _number(row.get("age_seconds")) if row else None
    if row is None or seconds is None:
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
    days = round(seconds / 86400, 2)
    return Measure(
        key,
        label,
        days,
        "d",
        warn=Range.parse(warn),
        crit=Range.parse(crit),
        labels={"name": name},
        display=f"{days:.1f} days ago ({row.get('backup_name') or 'backup set'}, "
        f"{_iso(row.get('backup_time'))})",
        advice=advice,
    )
