"""PostgreSQL 12 or later through psycopg 3: the nine inspection items and the ``sql`` check.

The monitoring user needs only ``pg_monitor`` and CONNECT (see ``PRIVILEGES``). Every item
reads catalog views and functions; none writes. The SQL is version-aware where the server's
views changed: ``wal_keep_segments`` became ``wal_keep_size`` in 13, ``reserved_connections``
appeared in 16, the checkpoint counters left ``pg_stat_bgwriter`` for ``pg_stat_checkpointer``
in 17 and the database's ICU locale column was renamed ``datlocale`` in 17.

Default thresholds follow check_postgres (bucardo/check_postgres, ``check_postgres.pl``):
``backends`` defaults to 90%/95% of max_connections; ``hitratio`` has no default, its example
warns below 90% and is critical below 80%; ``archive_ready`` has no default, its example is
critical above 10 ``.ready`` files; ``locks`` gives "waiting=5" as a critical example;
``txn_time`` and ``checkpoint`` have no defaults (see each measure for what was chosen).

Rates (I/O, temporary files, WAL per hour, archiver failures) are differences of cumulative
counters between this run and the previous one; the first run, and a run after the counters
went backwards (a crash restart or a statistics reset), records a baseline instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import closing
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
    rate,
)

PRIVILEGES = """\
-- PostgreSQL 12 or later; pg_monitor exists since PostgreSQL 10.
CREATE ROLE monitor LOGIN PASSWORD '...';
-- pg_monitor = pg_read_all_settings + pg_read_all_stats + pg_stat_scan_tables, and EXECUTE on
-- pg_ls_waldir(), pg_ls_archive_statusdir() and pg_ls_tmpdir() (WAL, archiver, temp files).
GRANT pg_monitor TO monitor;  -- PostgreSQL 10+
-- CONNECT on each database given as `database:` (PUBLIC has it unless it was revoked):
GRANT CONNECT ON DATABASE his TO monitor;
-- The sql check runs its query in a READ ONLY transaction; grant SELECT on what it reads:
-- GRANT SELECT ON his_schema.orders TO monitor;
-- pg_hba.conf: host  his  monitor  10.8.1.0/24  scram-sha-256
"""

BASELINE = "baseline recorded; rates from the next run"
_FIRST_RUN = "first run: baseline recorded; rates from the next run"
_BACKWARDS = "counters went backwards (restart or statistics reset): new baseline recorded"

#: A transaction open longer than this (in seconds) is a long transaction.
LONG_TRANSACTION_SECONDS = 3600.0

#: Key parameters of the configuration item, in report order (pg_settings names).
CONFIG_PARAMETERS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "max_connections",
    "server_encoding",
    "lc_collate",
    "wal_level",
    "archive_mode",
    "archive_command",
    "archive_library",
    "max_wal_size",
    "data_checksums",
    "fsync",
    "synchronous_commit",
    "autovacuum",
    "log_min_duration_statement",
    "TimeZone",
)
_ARCHIVE_COMMAND_SHOWN = 80


# --------------------------------------------------------------------------- connection


class PostgresConnection:
    """An autocommit psycopg connection answering ``rows``/``value`` with dict rows, driver
    errors turned into DbError (with the grant to give when access is denied)."""

    engine = "postgresql"

    def __init__(
        self, raw: Any, user: str, server_version: int, timeout: float, secret: str | None
    ) -> None:
        self.raw = raw
        self.user = user
        self.server_version = server_version
        self.timeout = timeout
        self._secret = secret

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a query; return its rows keyed by lower-case column name. Raise DbError."""
        import psycopg
        from psycopg.rows import dict_row

        try:
            with self.raw.cursor(row_factory=dict_row) as cursor:
                cursor.execute(sql, parameters)
                if cursor.description is None:
                    return []
                return [{key.lower(): value for key, value in row.items()} for row in cursor]
        except psycopg.Error as error:
            raise self.error(error, f"grant pg_monitor to {self.user}") from None

    def value(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a query; return the first column of its first row (None if no row)."""
        found = self.rows(sql, parameters)
        return next(iter(found[0].values())) if found and found[0] else None

    def close(self) -> None:
        self.raw.close()

    def error(self, error: Exception, grant: str) -> DbError:
        """Given a psycopg error and the grant that cures a permission error, return the DbError."""
        from psycopg import OperationalError, errors

        text = _one_line(str(error), self._secret)
        if isinstance(error, errors.InsufficientPrivilege):
            return DbError(f"{text}: {grant}", "privilege")
        if isinstance(error, errors.QueryCanceled):
            return DbError(f"statement timed out after {self.timeout:g} s: {text}", "timeout")
        if isinstance(error, errors.ReadOnlySqlTransaction | errors.ActiveSqlTransaction):
            return DbError(f"the sql check only reads: {text}", "readonly")
        # A broken socket has no SQLSTATE; class 08 is a connection exception; 57P01-03 mean
        # the server is shutting down or not accepting connections yet.
        lost = isinstance(error, OperationalError) and (
            error.sqlstate is None or error.sqlstate.startswith("08")
        )
        if lost or isinstance(error, errors.AdminShutdown | errors.CannotConnectNow):
            return DbError(f"connection lost: {text}", "connect")
        return DbError(text, "query")


def connect(target: Any, timeout: float) -> PostgresConnection:
    """Given a Database target and a time budget in seconds, return an open connection.

    Autocommit, ``application_name=opsctl``, ``connect_timeout`` and a session
    ``statement_timeout`` from the budget; ``target.options`` are passed as libpq parameters
    (``sslmode``, ``sslrootcert``...). Raise DbError: stage ``driver`` if psycopg is missing,
    ``connect`` if the server cannot be reached, ``auth`` if it refuses the login, ``privilege``
    if CONNECT on the database is missing. No message holds the password.
    """
    try:
        import psycopg
    except ImportError:
        raise DbError(
            "the PostgreSQL driver is not installed: pip install 'psycopg[binary]'", "driver"
        ) from None
    from opsctl.inventory import SecretError

    secret: str | None = None
    if target.password is not None:
        try:
            secret = target.password.reveal()
        except SecretError as error:
            raise DbError(str(error), "auth") from None
    database = target.database or "postgres"
    parameters: dict[str, Any] = {
        "host": target.host,
        "port": target.effective_port,
        "dbname": database,
        # libpq counts whole seconds and treats anything below 2 as 2.
        "connect_timeout": max(2, math.ceil(timeout)),
        "application_name": "opsctl",
    }
    if target.user:
        parameters["user"] = target.user
    parameters.update(target.options)
    if secret is not None:
        parameters["password"] = secret
    try:
        raw = psycopg.connect(autocommit=True, **parameters)
    except psycopg.Error as error:
        raise _connect_error(error, database, target.user, secret) from None
    try:
        row = raw.execute(
            "SELECT current_setting('server_version_num')::int, current_user,"
            " set_config('statement_timeout', %s, false)",
            [f"{max(1, int(timeout * 1000))}ms"],
        ).fetchone()
    except psycopg.Error as error:
        raw.close()
        raise PostgresConnection(raw, target.user or "", 0, timeout, secret).error(
            error, f"grant pg_monitor to {target.user}"
        ) from None
    return PostgresConnection(raw, row[1], int(row[0]), timeout, secret)


_AUTH_FAILURES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "fe_sendauth",
    "no password supplied",
    "scram",
)
_BAD_SETTINGS = ("invalid connection option", "invalid sslmode", "invalid value", "invalid integer")


def _connect_error(
    error: Exception, database: str, user: str | None, secret: str | None
) -> DbError:
    text = _one_line(str(error), secret).removeprefix("connection failed: ")
    lowered = text.lower()
    if "permission denied for database" in lowered:
        return DbError(f"{text}: grant CONNECT on database {database} to {user}", "privilege")
    missing = "does not exist" in lowered and ('role "' in lowered or 'database "' in lowered)
    if missing or any(marker in lowered for marker in _AUTH_FAILURES):
        return DbError(text, "auth")
    if any(marker in lowered for marker in _BAD_SETTINGS):
        return DbError(f"bad connection settings: {text}", "query")
    return DbError(text, "connect")


def _one_line(text: str, secret: str | None) -> str:
    """The driver's message on one line, without the position marker of a syntax error,
    credentials in URLs masked and the password itself (if it somehow appears) replaced."""
    parts = [
        part.strip()
        for part in text.splitlines()
        if part.strip() and not part.strip().startswith(("LINE ", "^"))
    ]
    line = mask_credentials(" ".join(parts))
    if secret and len(secret) >= 3:
        line = line.replace(secret, "***")
    return line


# --------------------------------------------------------------------------- sql check


def read_only(
    connection: Any, sql: str, timeout: float, max_rows: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Given a connection, one SQL statement, a timeout in seconds and a row limit, run the
    statement in a READ ONLY transaction with a statement timeout, return its column names and
    at most ``max_rows`` rows, and roll back.

    The statement goes through the extended query protocol, which refuses several statements
    in one string (so ``SELECT 1; COMMIT; DELETE ...`` cannot escape the transaction); rows
    are streamed and the query is cancelled once ``max_rows`` have arrived. Raise DbError:
    stage ``readonly`` if it tries to write, ``timeout`` if it runs longer than ``timeout``,
    ``privilege`` if a table is not readable. A READ ONLY transaction does not stop functions
    with side effects outside the database: give the monitoring user no more than PRIVILEGES.
    """
    import psycopg

    raw = getattr(connection, "raw", None)
    if raw is None:
        raise DbError("the sql check needs a live PostgreSQL connection", "query")
    limit = max(1, int(timeout * 1000))
    columns: list[str] = []
    found: list[tuple[Any, ...]] = []
    try:
        raw.execute("BEGIN TRANSACTION READ ONLY")
        raw.execute(f"SET LOCAL statement_timeout = {limit}")
        cursor = raw.cursor()
        with closing(cursor.stream(sql)) as stream:
            for row in stream:
                if not columns and cursor.description:
                    columns = [column.name for column in cursor.description]
                if len(found) >= max_rows:
                    break
                found.append(tuple(row))
        if not columns:
            columns = _described_columns(raw)
    except psycopg.ProgrammingError as error:
        if "didn't produce a result" in str(error):
            raise DbError(
                "the sql check runs one query that returns rows (SELECT, WITH, SHOW...)", "query"
            ) from None
        raise connection.error(error, f"grant SELECT on it to {connection.user}") from None
    except psycopg.Error as error:
        raise connection.error(error, f"grant SELECT on it to {connection.user}") from None
    finally:
        try:
            raw.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection broke: the pool drops it (stage connect/timeout)
    return columns, found


def _described_columns(raw: Any) -> list[str]:
    """The column names of the statement just streamed, for a result without rows (psycopg
    leaves ``description`` unset then): the unnamed prepared statement still describes it."""
    try:
        described = raw.pgconn.describe_prepared(b"")
        encoding = raw.info.encoding
        return [described.fname(i).decode(encoding, "replace") for i in range(described.nfields)]
    except Exception:  # noqa: BLE001 - column names are a nicety; the rows are the result
        return []


# --------------------------------------------------------------------------- availability


def availability(connection: Any, previous: Snapshot | None) -> Observation:
    """Version, start time, uptime, restart since the last run, open mode, role, archive mode.

    (The connect time is measured by the db.availability check around ``connect``.)
    """
    row = first(
        connection.rows(
            """
            SELECT version() AS version,
                   pg_postmaster_start_time() AS started,
                   extract(epoch FROM now() - pg_postmaster_start_time()) AS uptime,
                   pg_is_in_recovery() AS in_recovery,
                   current_setting('archive_mode') AS archive_mode,
                   current_setting('default_transaction_read_only') AS default_read_only,
                   current_setting('transaction_read_only') AS transaction_read_only
            """
        )
    )
    started = _datetime(row.get("started"))
    version = str(row.get("version") or "")
    short_version = version.split(" on ", 1)[0].split(",", 1)[0]
    in_recovery = bool(row.get("in_recovery"))
    # transaction_read_only is what this session got: on a standby it is on whatever the
    # default says.
    read_only_setting = "on" in (row.get("default_read_only"), row.get("transaction_read_only"))
    role = "standby" if in_recovery else "primary"
    if in_recovery:
        open_mode, why = "read only", " (standby: in recovery)"
    elif read_only_setting:
        open_mode, why = "read only", " (default_transaction_read_only = on)"
    else:
        open_mode, why = "read write", ""
    uptime = _float(row.get("uptime"))
    measures = [
        Measure("db.availability.version", "Server / version", version, display=short_version),
        Measure(
            "db.availability.started",
            "Server / started",
            _iso(started),
            display=_iso(started, "seconds"),
        ),
        Measure(
            "db.availability.uptime",
            "Server / uptime",
            None if uptime is None else round(uptime),
            "s",
            display=None if uptime is None else _duration(uptime),
        ),
        _restarted(started, previous),
        Measure(
            "db.availability.open_mode", "Server / open mode", open_mode, display=open_mode + why
        ),
        Measure("db.availability.role", "Server / role", role),
        Measure(
            "db.availability.archive_mode",
            "Server / archive mode",
            str(row.get("archive_mode") or ""),
        ),
    ]
    summary = f"{short_version}, {role}, {open_mode}"
    if uptime is not None:
        summary += f", up {_duration(uptime)}"
    return Observation(measures, counters={"started": _iso(started)}, summary=summary)


def _restarted(started: datetime | None, previous: Snapshot | None) -> Measure:
    key, label = "db.availability.restarted", "Server / restarted since last run"
    before = _datetime(previous.counters.get("started")) if previous else None
    if before is None or started is None:
        return Measure(key, label, False, display="no (first run: nothing to compare)")
    # The same postmaster reports the same start time to the microsecond; allow for a
    # previous run that stored it rounded.
    if abs((started - before).total_seconds()) < 1:
        return Measure(key, label, False)
    return Measure(
        key,
        label,
        True,
        verdict=1,
        display=f"yes: started {_iso(started, 'seconds')} (was {_iso(before, 'seconds')})",
        advice="the server restarted since the last run: look in the server log for a crash "
        "or the reason of the restart",
    )


# --------------------------------------------------------------------------- config


def config(connection: Any, previous: Snapshot | None) -> Observation:
    """Key parameters as report items; fsync off is CRITICAL, autovacuum off a WARNING."""
    version = _server_version(connection)
    settings = {
        str(row["name"]): str(row["value"])
        for row in connection.rows(
            "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY(%s)",
            [list(CONFIG_PARAMETERS)],
        )
    }
    # lc_collate stopped being a setting in 16; the database's own row always has it.
    locale_column = "datlocale" if version >= 170000 else "daticulocale"
    provider = (
        f", datlocprovider AS provider, {locale_column} AS locale" if version >= 150000 else ""
    )
    database = first(
        connection.rows(
            f"SELECT datcollate, datctype{provider} FROM pg_database"
            " WHERE datname = current_database()"
        )
    )
    if database.get("datcollate") is not None:
        collate = str(database["datcollate"])
        if database.get("provider") == "i":
            collate = f"{database.get('locale')} (ICU; datcollate {collate})"
        elif database.get("provider") == "b":
            collate = f"{database.get('locale')} (builtin)"
        settings["lc_collate"] = collate
    measures = []
    for name in CONFIG_PARAMETERS:
        label = f"Parameter {name}"
        labels = {"name": name}
        if name not in settings:
            if name == "archive_library":
                continue  # only PostgreSQL 15+ has it; archive_command says how WAL is archived
            measures.append(
                Measure(
                    "db.config.parameter",
                    label,
                    None,
                    labels=labels,
                    display=f"not available in PostgreSQL {version // 10000}",
                )
            )
            continue
        value = settings[name]
        shown = value or "(empty)"
        if name == "archive_command" and len(value) > _ARCHIVE_COMMAND_SHOWN:
            shown = value[: _ARCHIVE_COMMAND_SHOWN - 1] + "…"
        verdict, advice = None, ""
        if name == "fsync" and value == "off":
            verdict, advice = 2, "fsync is off: a crash or power loss can corrupt the database"
        elif name == "autovacuum" and value == "off":
            verdict, advice = (
                1,
                "autovacuum is off: tables bloat and transaction ID wraparound comes closer",
            )
        measures.append(
            Measure(
                "db.config.parameter",
                label,
                value,
                labels=labels,
                display=shown,
                verdict=verdict,
                advice=advice,
            )
        )
    return Observation(measures, summary=f"{len(settings)} parameters recorded")


# --------------------------------------------------------------------------- tablespace


def tablespace(connection: Any, previous: Snapshot | None) -> Observation:
    """Size of each database and each tablespace.

    PostgreSQL tablespaces are directories with no maximum size, so there is no used
    percentage to judge, and SQL cannot see the filesystem's free space without superuser
    file access: the filesystem check on the host watches the data directory and the
    tablespace locations. Sizes are kept in the counters for growth.
    """
    databases = connection.rows(
        "SELECT datname AS name, pg_database_size(oid) AS bytes FROM pg_database"
        " WHERE NOT datistemplate AND datallowconn ORDER BY datname"
    )
    spaces = connection.rows(
        "SELECT spcname AS name, pg_tablespace_size(oid) AS bytes,"
        " pg_tablespace_location(oid) AS location FROM pg_tablespace ORDER BY spcname"
    )
    measures = [
        Measure(
            "db.tablespace.used_percent",
            "Tablespaces / used of maximum",
            None,
            "%",
            display="not applicable: PostgreSQL tablespaces have no maximum size and SQL cannot "
            "see free disk space; use a filesystem check on the host (data directory, "
            "tablespace locations)",
            verdict=0,
        )
    ]
    database_sizes: dict[str, int] = {}
    for row in databases:
        name, size = str(row["name"]), _int(row.get("bytes"))
        database_sizes[name] = size or 0
        measures.append(
            Measure(
                "db.tablespace.database_size",
                f"Database {name} / size",
                size,
                "B",
                labels={"name": name},
                min=0,
            )
        )
    space_sizes: dict[str, int] = {}
    for row in spaces:
        name, size = str(row["name"]), _int(row.get("bytes"))
        space_sizes[name] = size or 0
        location = str(row.get("location") or "") or "(data directory)"
        measures.append(
            Measure(
                "db.tablespace.size",
                f"Tablespace {name} / size",
                size,
                "B",
                labels={"name": name, "location": location},
                min=0,
            )
        )
    largest = max(database_sizes.items(), key=lambda item: item[1], default=None)
    summary = f"{len(database_sizes)} databases"
    if largest:
        summary += f", largest {largest[0]}"
    return Observation(
        measures,
        counters={"database_size": database_sizes, "tablespace_size": space_sizes},
        summary=summary,
    )


# --------------------------------------------------------------------------- logs (WAL)


def logs(connection: Any, previous: Snapshot | None) -> Observation:
    """WAL: files and size in pg_wal (against max_wal_size), WAL generated per hour, the
    archiver (failing now, failures since the last run) and ``.ready`` files waiting.

    Needs pg_monitor for pg_ls_waldir() and pg_ls_archive_statusdir().
    """
    version = _server_version(connection)
    # wal_keep_segments (12) became wal_keep_size (13+); both add to what pg_wal may hold.
    keep = (
        "pg_size_bytes(current_setting('wal_keep_size'))"
        if version >= 130000
        else "current_setting('wal_keep_segments')::bigint"
        " * pg_size_bytes(current_setting('wal_segment_size'))"
    )
    # The WAL position: written on a primary, replayed on a standby (where
    # pg_current_wal_lsn() raises). pg_stat_wal.wal_bytes (14+) would also give the volume,
    # but the LSN exists on 12-13 too and no statistics reset moves it back.
    state = first(
        connection.rows(
            f"""
            SELECT current_setting('archive_mode') AS archive_mode,
                   pg_is_in_recovery() AS in_recovery,
                   pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size,
                   {keep} AS wal_keep_bytes,
                   pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                        ELSE pg_current_wal_lsn() END, '0/0') AS wal_position,
                   clock_timestamp() AS read_at
            """
        )
    )
    directory = first(
        connection.rows(
            "SELECT count(*) FILTER (WHERE name ~ '^[0-9A-F]{24}$') AS segments,"
            " coalesce(sum(size), 0) AS bytes FROM pg_ls_waldir()"
        )
    )
    archiver = _archiver(connection, previous, state)
    wal_bytes = _int(directory.get("bytes")) or 0
    limit = (_int(state.get("max_wal_size")) or 0) + (_int(state.get("wal_keep_bytes")) or 0)
    in_recovery = bool(state.get("in_recovery"))
    position = _int(state.get("wal_position"))
    read_at = _datetime(state.get("read_at"))
    seconds = _interval(previous, read_at)
    before = previous.counters.get("wal_position") if previous else None
    per_second = rate(position, before, seconds) if seconds is not None else None
    notes = []
    if per_second is None:
        notes.append(_FIRST_RUN if previous is None or before is None else _BACKWARDS)
    doing = "replayed" if in_recovery else "generated"
    measures = [
        Measure(
            "db.logs.wal_files",
            "WAL / segment files in pg_wal",
            _int(directory.get("segments")),
            min=0,
        ),
        Measure("db.logs.wal_size", "WAL / size of pg_wal", wal_bytes, "B", min=0),
        # check_postgres wal_files counts segments (warning 10, critical 15 by default), a
        # rule from before max_wal_size (9.5): a healthy pg_wal now holds up to max_wal_size.
        # Over it (a soft limit) WAL is being kept: by a failing archiver, a replication
        # slot, or a burst of writes; twice over it is no burst.
        Measure(
            "db.logs.wal_size_percent",
            "WAL / size of pg_wal of max_wal_size + wal_keep_size",
            round(100.0 * wal_bytes / limit, 1) if limit else None,
            "%",
            warn=Range.parse("100"),
            crit=Range.parse("200"),
            advice="pg_wal holds more than max_wal_size: check the archiver, replication slots "
            "(pg_replication_slots) and the free space of the WAL filesystem",
            min=0,
        ),
        Measure(
            "db.logs.wal_bytes_per_hour",
            f"WAL / {doing} per hour",
            None if per_second is None else round(per_second * 3600),
            "B",
            display=BASELINE if per_second is None else f"{_bytes(round(per_second * 3600))}/h",
            min=0,
        ),
        *archiver.measures("db.logs"),
        archiver.ready_files(),
    ]
    counters = {
        "wal_position": position,
        "read_at": _iso(read_at),
        **archiver.counters,
    }
    summary = f"pg_wal {_count_text(directory.get('segments'))} files; archiver {archiver.status}"
    return Observation(measures, counters=counters, notes=notes, summary=summary)


def _count_text(value: Any) -> str:
    number = _int(value)
    return "?" if number is None else str(number)


class _Archiver:
    """What pg_stat_archiver and archive_status say, judged for the logs and backup items."""

    def __init__(
        self,
        mode: str,
        applicable: str,
        row: dict[str, Any],
        new_failures: int | None,
        ready: int | None,
        counters: dict[str, Any],
        note: str,
    ) -> None:
        self.mode = mode
        self.applicable = applicable  # "" if archiving applies, else why not
        self.row = row
        self.new_failures = new_failures
        self.ready = ready
        self.counters = counters
        self.note = note
        last_failed = _datetime(row.get("last_failed_time"))
        last_archived = _datetime(row.get("last_archived_time"))
        # The archiver retries a failing segment every minute, so a last failure newer than
        # the last success means it is failing now.
        self.failing = last_failed is not None and (
            last_archived is None or last_failed > last_archived
        )
        if applicable:
            self.status = "not applicable"
        elif self.failing:
            self.status = "failing"
        else:
            self.status = "archiving"

    def measures(self, prefix: str) -> list[Measure]:
        rows = [Measure(f"{prefix}.archive_mode", "Archiver / archive mode", self.mode)]
        if self.applicable:
            why = f"not applicable: {self.applicable}"
            return [
                *rows,
                Measure(f"{prefix}.archiver", "Archiver / status", None, display=why, verdict=0),
                Measure(
                    f"{prefix}.archive_failures",
                    "Archiver / failures since last run",
                    None,
                    display=why,
                    verdict=0,
                ),
            ]
        if self.failing:
            status = Measure(
                f"{prefix}.archiver",
                "Archiver / status",
                "failing",
                verdict=2,
                display=f"failing since {_iso(_datetime(self.row.get('last_failed_time')), 'seconds')}"
                f" on {self.row.get('last_failed_wal')}",
                advice="archive_command fails: WAL piles up in pg_wal until the disk is full; "
                "see the server log for the command's error",
            )
        else:
            status = Measure(f"{prefix}.archiver", "Archiver / status", "archiving")
        # Any new failure is CRITICAL by default, as the task asks; a user who tolerates
        # retried failures sets thresholds on this key.
        failures = Measure(
            f"{prefix}.archive_failures",
            "Archiver / failures since last run",
            self.new_failures,
            crit=Range.parse("0"),
            display=BASELINE if self.new_failures is None else None,
            advice="WAL archiving failed since the last run: see the server log for the "
            "archive_command's error and check the archive's storage",
            min=0,
        )
        return [*rows, status, failures]

    def ready_files(self) -> Measure:
        key, label = "db.logs.wal_ready_files", "Archiver / WAL files waiting (.ready)"
        if self.applicable:
            return Measure(
                key, label, None, display=f"not applicable: {self.applicable}", verdict=0
            )
        # check_postgres archive_ready has no default; its example is critical above 10.
        return Measure(
            key,
            label,
            self.ready,
            warn=Range.parse("5"),
            crit=Range.parse("10"),
            advice="WAL segments wait to be archived: the archiver is failing or too slow",
            min=0,
        )


def _archiver(connection: Any, previous: Snapshot | None, state: dict[str, Any]) -> _Archiver:
    mode = str(state.get("archive_mode") or "")
    in_recovery = bool(state.get("in_recovery"))
    row = first(
        connection.rows(
            """
            SELECT archived_count, last_archived_wal, last_archived_time,
                   failed_count, last_failed_wal, last_failed_time, stats_reset,
                   extract(epoch FROM now() - last_archived_time) AS last_archived_age
            FROM pg_stat_archiver
            """
        )
    )
    if mode == "off":
        applicable = "archive_mode is off, so no WAL is archived (no point-in-time recovery)"
    elif in_recovery and mode != "always":
        applicable = f"a standby with archive_mode = {mode} does not archive (only 'always' does)"
    else:
        applicable = ""
    ready = None
    if not applicable:
        ready = _int(
            connection.value(
                "SELECT count(*) AS ready FROM pg_ls_archive_statusdir()"
                " WHERE right(name, 6) = '.ready'"
            )
        )
    failed = _int(row.get("failed_count"))
    reset = _iso(_datetime(row.get("stats_reset")))
    new_failures, note = None, _FIRST_RUN
    if previous is not None and "archiver_failed_count" in previous.counters:
        before = _int(previous.counters.get("archiver_failed_count"))
        same_reset = previous.counters.get("archiver_stats_reset") == reset
        if failed is not None and before is not None and failed >= before and same_reset:
            new_failures, note = failed - before, ""
        else:
            note = _BACKWARDS
    counters = {"archiver_failed_count": failed, "archiver_stats_reset": reset}
    return _Archiver(mode, applicable, row, new_failures, ready, counters, note)


# --------------------------------------------------------------------------- control file


def controlfile(connection: Any, previous: Snapshot | None) -> Observation:
    """pg_control: last checkpoint (time, age, redo WAL file, timeline), system identifier
    (a change is a WARNING: another cluster answers at this address), catalog version, data
    checksums and the checksum failures counted in pg_stat_database (any is CRITICAL), and the
    share of checkpoints requested rather than timed.
    """
    version = _server_version(connection)
    checkpoint = first(
        connection.rows(
            "SELECT checkpoint_time, redo_wal_file, timeline_id,"
            " extract(epoch FROM now() - checkpoint_time) AS checkpoint_age"
            " FROM pg_control_checkpoint()"
        )
    )
    system = first(
        connection.rows(
            "SELECT pg_control_version, catalog_version_no, system_identifier"
            " FROM pg_control_system()"
        )
    )
    checksums = first(
        connection.rows(
            """
            SELECT current_setting('data_checksums') AS data_checksums,
                   sum(checksum_failures) AS failures,
                   string_agg(coalesce(datname, '(shared objects)') || ': ' || checksum_failures,
                              ', ') FILTER (WHERE checksum_failures > 0) AS databases
            FROM pg_stat_database
            """
        )
    )
    # The checkpoint counters moved from pg_stat_bgwriter to pg_stat_checkpointer in 17.
    counts = first(
        connection.rows(
            "SELECT num_timed AS timed, num_requested AS requested FROM pg_stat_checkpointer"
            if version >= 170000
            else "SELECT checkpoints_timed AS timed, checkpoints_req AS requested"
            " FROM pg_stat_bgwriter"
        )
    )
    checkpoint_time = _datetime(checkpoint.get("checkpoint_time"))
    age = _float(checkpoint.get("checkpoint_age"))
    identifier = (
        None if system.get("system_identifier") is None else str(system["system_identifier"])
    )
    measures = [
        Measure(
            "db.controlfile.checkpoint_time",
            "Checkpoint / last",
            _iso(checkpoint_time, "seconds"),
        ),
        # check_postgres' checkpoint action has no default threshold, and an idle server
        # skips its timed checkpoints, so an old checkpoint is no fault by itself: no
        # default here either; set e.g. {"db.controlfile.checkpoint_age": {warn: "1800"}}.
        Measure(
            "db.controlfile.checkpoint_age",
            "Checkpoint / age",
            None if age is None else round(age),
            "s",
            advice="no checkpoint for long: a long crash recovery awaits; check the checkpointer "
            "in the server log",
            min=0,
        ),
        Measure(
            "db.controlfile.redo_wal_file",
            "Checkpoint / redo WAL file",
            str(checkpoint.get("redo_wal_file") or ""),
        ),
        Measure(
            "db.controlfile.timeline",
            "Checkpoint / timeline",
            str(checkpoint.get("timeline_id") or ""),
        ),
        _system_identifier(identifier, previous),
        Measure(
            "db.controlfile.catalog_version",
            "Control file / catalog version",
            str(system.get("catalog_version_no") or ""),
            display=f"{system.get('catalog_version_no')}"
            f" (pg_control version {system.get('pg_control_version')})",
        ),
    ]
    enabled = checksums.get("data_checksums") == "on"
    measures.append(
        Measure(
            "db.controlfile.data_checksums",
            "Data checksums",
            str(checksums.get("data_checksums") or ""),
        )
    )
    if enabled:
        failures = _int(checksums.get("failures")) or 0
        measures.append(
            Measure(
                "db.controlfile.checksum_failures",
                "Data checksums / failures",
                failures,
                crit=Range.parse("0"),
                display=f"{failures} ({checksums['databases']})" if failures else "0",
                advice="data pages failed their checksum: storage corruption; check the disks, "
                "restore the damaged relations from backup",
                min=0,
            )
        )
    else:
        measures.append(
            Measure(
                "db.controlfile.checksum_failures",
                "Data checksums / failures",
                None,
                display="not applicable: data checksums are off (pg_checksums --enable while "
                "the server is stopped turns them on)",
                verdict=0,
            )
        )
    timed, requested = _int(counts.get("timed")), _int(counts.get("requested"))
    since = "since statistics reset"
    if previous is not None and timed is not None and requested is not None:
        old_timed = _int(previous.counters.get("checkpoints_timed"))
        old_requested = _int(previous.counters.get("checkpoints_requested"))
        if (
            old_timed is not None
            and old_requested is not None
            and timed >= old_timed
            and requested >= old_requested
        ):
            timed, requested, since = timed - old_timed, requested - old_requested, "since last run"
    total = (timed or 0) + (requested or 0)
    measures.append(
        Measure(
            "db.controlfile.checkpoints_requested_percent",
            f"Checkpoints / requested (not timed), {since}",
            round(100.0 * (requested or 0) / total, 1) if total else None,
            "%",
            display=None if total else f"no checkpoint {since}",
            advice="most checkpoints are forced by WAL volume: raise max_wal_size",
            min=0,
            max=100,
        )
    )
    counters = {
        "system_identifier": identifier,
        "checkpoints_timed": _int(counts.get("timed")),
        "checkpoints_requested": _int(counts.get("requested")),
    }
    summary = f"last checkpoint {_duration(age)} ago" if age is not None else "no checkpoint"
    return Observation(measures, counters=counters, summary=summary)


def _system_identifier(identifier: str | None, previous: Snapshot | None) -> Measure:
    key, label = "db.controlfile.system_identifier", "Control file / system identifier"
    before = previous.counters.get("system_identifier") if previous else None
    if before is None or identifier is None or str(before) == identifier:
        return Measure(key, label, identifier)
    # check_postgres cluster_id: the identifier changes only when the cluster is replaced.
    return Measure(
        key,
        label,
        identifier,
        verdict=1,
        display=f"{identifier} (was {before})",
        advice="another cluster answers at this address (re-initialised, restored or failed "
        "over): confirm it is the intended one",
    )


# --------------------------------------------------------------------------- temp


def temp(connection: Any, previous: Snapshot | None) -> Observation:
    """Temporary files: now on disk (pg_ls_tmpdir, needs pg_monitor), created per second and
    bytes per second between runs (pg_stat_database), temp_tablespaces and temp_file_limit.
    """
    stats = first(
        connection.rows(
            """
            SELECT sum(temp_files) AS temp_files, sum(temp_bytes) AS temp_bytes,
                   current_setting('temp_tablespaces') AS temp_tablespaces,
                   current_setting('temp_file_limit') AS temp_file_limit,
                   clock_timestamp() AS read_at
            FROM pg_stat_database
            """
        )
    )
    on_disk = first(
        connection.rows(
            "SELECT count(f.name) AS files, coalesce(sum(f.size), 0) AS bytes"
            " FROM pg_tablespace t CROSS JOIN LATERAL pg_ls_tmpdir(t.oid) AS f"
            " WHERE t.spcname <> 'pg_global'"
        )
    )
    counters = {
        "temp_files": _int(stats.get("temp_files")),
        "temp_bytes": _int(stats.get("temp_bytes")),
        "read_at": _iso(_datetime(stats.get("read_at"))),
    }
    rates, notes = _rates(counters, previous, ("temp_files", "temp_bytes"))
    spaces = str(stats.get("temp_tablespaces") or "")
    limit = str(stats.get("temp_file_limit") or "")
    measures = [
        Measure(
            "db.temp.used_percent",
            "Temporary space / used of maximum",
            None,
            "%",
            display="not applicable: PostgreSQL has no temporary tablespace of fixed size; "
            "temporary files grow in temp_tablespaces (temp_file_limit caps one process)",
            verdict=0,
        ),
        Measure(
            "db.temp.used",
            "Temporary files / on disk now",
            _int(on_disk.get("bytes")),
            "B",
            display=None
            if on_disk.get("bytes") is None
            else f"{_bytes(_int(on_disk.get('bytes')))} in {_int(on_disk.get('files'))} files",
            min=0,
        ),
        _rate_measure(
            "db.temp.files_per_second",
            "Temporary files / created per second",
            rates,
            "temp_files",
            "files/s",
        ),
        _rate_measure(
            "db.temp.bytes_per_second",
            "Temporary files / written per second",
            rates,
            "temp_bytes",
            "B",
        ),
        Measure(
            "db.temp.tablespaces",
            "Temporary files / tablespaces",
            spaces,
            display=spaces or "(the database's default tablespace)",
        ),
        Measure(
            "db.temp.file_limit",
            "Temporary files / limit per process",
            limit,
            display="unlimited" if limit == "-1" else limit,
        ),
    ]
    summary = f"{_bytes(_int(on_disk.get('bytes')))} of temporary files on disk"
    return Observation(measures, counters=counters, notes=notes, summary=summary)


# --------------------------------------------------------------------------- io


def io(connection: Any, previous: Snapshot | None) -> Observation:
    """Blocks read per second, rows written per second, buffer cache hit ratio, transactions
    per second, over all databases (pg_stat_database; pg_stat_io of 16+ splits the same reads
    by backend type, which an inspection does not need).

    The hit ratio is over the interval since the last run; on the first run it is since the
    statistics were last reset, so it is judged at once.
    """
    stats = first(
        connection.rows(
            """
            SELECT sum(blks_read) AS blks_read, sum(blks_hit) AS blks_hit,
                   sum(tup_inserted + tup_updated + tup_deleted) AS tup_written,
                   sum(xact_commit + xact_rollback) AS xacts,
                   clock_timestamp() AS read_at
            FROM pg_stat_database
            """
        )
    )
    names = ("blks_read", "blks_hit", "tup_written", "xacts")
    counters: dict[str, Any] = {name: _int(stats.get(name)) for name in names}
    counters["read_at"] = _iso(_datetime(stats.get("read_at")))
    rates, notes = _rates(counters, previous, names)
    if rates:
        read, hit, over = rates["blks_read"], rates["blks_hit"], "since last run"
    else:
        read, hit, over = counters["blks_read"], counters["blks_hit"], "since statistics reset"
    accesses = (read or 0) + (hit or 0)
    ratio = round(100.0 * (hit or 0) / accesses, 2) if accesses else None
    measures = [
        _rate_measure(
            "db.io.reads_per_second", "I/O / blocks read per second", rates, "blks_read", "blocks/s"
        ),
        _rate_measure(
            "db.io.writes_per_second",
            "I/O / rows written per second",
            rates,
            "tup_written",
            "rows/s",
        ),
        # check_postgres hitratio has no default; its example warns below 90%, critical below 80%.
        Measure(
            "db.io.hit_ratio",
            f"I/O / buffer cache hit ratio, {over}",
            ratio,
            "%",
            warn=Range.parse("90:"),
            crit=Range.parse("80:"),
            display=None if ratio is not None else f"no block accessed {over}",
            advice="many reads miss shared_buffers: raise shared_buffers or look for "
            "sequential scans of large tables",
            min=0,
            max=100,
        ),
        _rate_measure(
            "db.io.transactions_per_second", "I/O / transactions per second", rates, "xacts", "tx/s"
        ),
    ]
    summary = f"hit ratio {ratio:g}% {over}" if ratio is not None else f"no block accessed {over}"
    if rates:
        summary += f", {rates['xacts']:.1f} transactions/s"
    return Observation(measures, counters=counters, notes=notes, summary=summary)


# --------------------------------------------------------------------------- sessions


def sessions(
    connection: Any, previous: Snapshot | None, long_after: float = LONG_TRANSACTION_SECONDS
) -> Observation:
    """Client sessions against max_connections less the reserved slots, transactions open
    longer than ``long_after`` seconds (idle in transaction included), the longest one,
    sessions waiting for a lock, sessions idle in transaction.

    Raise DbError (stage ``privilege``) if the user cannot see other users' sessions: their
    state would read as NULL and every count would look healthy.
    """
    version = _server_version(connection)
    if not connection.value("SELECT pg_has_role('pg_read_all_stats', 'USAGE') AS sees_all"):
        user = getattr(connection, "user", "") or "the monitoring user"
        raise DbError(
            "the monitoring user cannot see other sessions in pg_stat_activity: "
            f"grant pg_monitor to {user}",
            "privilege",
        )
    # reserved_connections (16+) keeps slots for pg_use_reserved_connections members.
    reserved = "current_setting('reserved_connections')::int" if version >= 160000 else "0"
    limits = first(
        connection.rows(
            "SELECT current_setting('max_connections')::int AS max_connections,"
            " current_setting('superuser_reserved_connections')::int AS superuser_reserved,"
            f" {reserved} AS reserved"
        )
    )
    activity = first(
        connection.rows(
            """
            SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS sessions,
                   count(*) FILTER (WHERE backend_type = 'client backend' AND state <> 'idle'
                                    AND pid <> pg_backend_pid()
                                    AND xact_start < now() - make_interval(secs => %s))
                       AS long_transactions,
                   max(extract(epoch FROM now() - xact_start))
                       FILTER (WHERE backend_type = 'client backend' AND state <> 'idle'
                               AND pid <> pg_backend_pid()) AS longest_transaction,
                   count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waits,
                   count(*) FILTER (WHERE state IN ('idle in transaction',
                                                    'idle in transaction (aborted)'))
                       AS idle_in_transaction
            FROM pg_stat_activity
            """,
            [float(long_after)],
        )
    )
    maximum = (
        (_int(limits.get("max_connections")) or 0)
        - (_int(limits.get("superuser_reserved")) or 0)
        - (_int(limits.get("reserved")) or 0)
    )
    count = _int(activity.get("sessions")) or 0
    longest = _float(activity.get("longest_transaction"))
    hours = f"{long_after / 3600:g} h" if long_after >= 3600 else f"{long_after:g} s"
    measures = [
        Measure("db.sessions.count", "Sessions / client connections", count, min=0),
        Measure(
            "db.sessions.max",
            "Sessions / maximum (max_connections less reserved)",
            maximum,
            min=0,
        ),
        # check_postgres backends: 90% and 95% of max_connections by default.
        Measure(
            "db.sessions.used_percent",
            "Sessions / used of maximum",
            round(100.0 * count / maximum, 1) if maximum > 0 else None,
            "%",
            warn=Range.parse("90"),
            crit=Range.parse("95"),
            advice="connections near max_connections: look for a leaking connection pool, or "
            "put PgBouncer in front",
            min=0,
            max=100,
        ),
        # check_postgres txn_time has no default (its example: critical at 10 minutes); any
        # transaction open over an hour holds back vacuum and is worth a WARNING.
        Measure(
            "db.sessions.long_transactions",
            f"Sessions / transactions open longer than {hours}",
            _int(activity.get("long_transactions")),
            warn=Range.parse("0"),
            advice="long transactions hold back vacuum and may hold locks: find them in "
            "pg_stat_activity (xact_start) and ask their owner",
            min=0,
        ),
        Measure(
            "db.sessions.longest_transaction",
            "Sessions / longest open transaction",
            None if longest is None else round(longest, 1),
            "s",
            display="no open transaction" if longest is None else None,
            advice="a transaction has been open for long: see pg_stat_activity (xact_start)",
            min=0,
        ),
        # check_postgres locks gives "waiting=5" as a critical example; one waiter is
        # ordinary row-lock contention, several at once are worth a look.
        Measure(
            "db.sessions.lock_waits",
            "Sessions / waiting for a lock",
            _int(activity.get("lock_waits")),
            warn=Range.parse("1"),
            crit=Range.parse("5"),
            advice="sessions wait for locks: find the blocker with pg_blocking_pids()",
            min=0,
        ),
        Measure(
            "db.sessions.idle_in_transaction",
            "Sessions / idle in transaction",
            _int(activity.get("idle_in_transaction")),
            advice="sessions sit idle inside a transaction: set "
            "idle_in_transaction_session_timeout or fix the application",
            min=0,
        ),
    ]
    summary = f"{count} of {maximum} sessions"
    return Observation(measures, summary=summary)


# --------------------------------------------------------------------------- backup


def backup(connection: Any, previous: Snapshot | None) -> Observation:
    """Backup health seen from inside PostgreSQL: the WAL archiver (failing now, failures
    since the last run, the last archived segment and its age). Base backups and dump files
    live outside the database: the ``backup`` check on the host judges them.
    """
    state = first(
        connection.rows(
            "SELECT current_setting('archive_mode') AS archive_mode,"
            " pg_is_in_recovery() AS in_recovery"
        )
    )
    archiver = _archiver(connection, previous, state)
    measures = archiver.measures("db.backup")
    key_wal, key_age = "db.backup.last_archived", "db.backup.last_archived_age"
    if archiver.applicable:
        why = f"not applicable: {archiver.applicable}"
        measures += [
            Measure(key_wal, "Archiver / last archived WAL", None, display=why, verdict=0),
            Measure(
                key_age, "Archiver / age of last archived WAL", None, "s", display=why, verdict=0
            ),
        ]
    else:
        wal = archiver.row.get("last_archived_wal")
        when = _datetime(archiver.row.get("last_archived_time"))
        age = _float(archiver.row.get("last_archived_age"))
        measures += [
            Measure(
                key_wal,
                "Archiver / last archived WAL",
                None if wal is None else str(wal),
                display=f"{wal} at {_iso(when, 'seconds')}" if wal else "none archived yet",
            ),
            # A busy hospital database fills a segment in minutes; a day without one archived
            # means archiving stopped, or the server is idle without archive_timeout (set it,
            # so that the archive keeps proving it works).
            Measure(
                key_age,
                "Archiver / age of last archived WAL",
                None if age is None else round(age),
                "s",
                warn=Range.parse("86400"),
                display=None if age is not None else "none archived yet",
                advice="no WAL archived for a day: check archive_command, or set archive_timeout",
                min=0,
            ),
        ]
    measures.append(
        Measure(
            "db.backup.file_backups",
            "Base backups and dumps",
            None,
            display="not applicable: base backups and dump files are outside the database; the "
            "backup check on the host judges them",
            verdict=0,
        )
    )
    notes = [archiver.note] if archiver.note and not archiver.applicable else []
    return Observation(
        measures, counters=archiver.counters, notes=notes, summary=f"archiver {archiver.status}"
    )


# --------------------------------------------------------------------------- helpers


def _server_version(connection: Any) -> int:
    """The server_version_num (150020): from the live connection, else asked (recorded rows)."""
    known = getattr(connection, "server_version", None)
    if known:
        return int(known)
    return int(
        connection.value("SELECT current_setting('server_version_num')::int AS server_version_num")
    )


def _rates(
    counters: Mapping[str, Any], previous: Snapshot | None, names: Sequence[str]
) -> tuple[dict[str, float], list[str]]:
    """Given this run's counters (with ``read_at``), the previous snapshot and the counter
    names, return the rate per second of each (empty: baseline) and the notes to add."""
    if previous is None or any(previous.counters.get(name) is None for name in names):
        return {}, [_FIRST_RUN]
    seconds = _interval(previous, _datetime(counters.get("read_at")))
    found: dict[str, float] = {}
    for name in names:
        per_second = (
            None if seconds is None else rate(counters.get(name), previous.counters[name], seconds)
        )
        if per_second is None:
            return {}, [_BACKWARDS]
        found[name] = per_second
    return found, []


def _interval(previous: Snapshot | None, read_at: datetime | None) -> float | None:
    """Seconds between the previous run's reading and this one: both on the server's clock
    when the previous counters hold ``read_at``, else from the previous run's start."""
    if previous is None or read_at is None:
        return None
    start = _datetime(previous.counters.get("read_at")) or _datetime(previous.taken)
    if start is None:
        return None
    seconds = (read_at - start).total_seconds()
    return seconds if seconds > 0 else None


def _rate_measure(
    key: str, label: str, rates: Mapping[str, float], name: str, unit: str
) -> Measure:
    if not rates:
        return Measure(key, label, None, unit, display=BASELINE, min=0)
    value = round(rates[name], 2)
    # Bytes stay bytes for the metric; the person reading the item sees "1.5 MB/s".
    display = f"{_bytes(round(value))}/s" if unit == "B" else None
    return Measure(key, label, value, unit, display=display, min=0)


def _datetime(value: Any) -> datetime | None:
    """Given a datetime or ISO text (recorded rows, counters), return an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None, timespec: str = "microseconds") -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec=timespec)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _bytes(value: int | None) -> str:
    from opsctl.sources import format_bytes

    return format_bytes(float(value or 0))


def _duration(seconds: float) -> str:
    """A person's reading of a duration: ``3d 4h``, ``2h 5m``, ``40s``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


__all__ = [
    "PRIVILEGES",
    "PostgresConnection",
    "availability",
    "backup",
    "config",
    "connect",
    "controlfile",
    "io",
    "logs",
    "read_only",
    "sessions",
    "tablespace",
    "temp",
]
