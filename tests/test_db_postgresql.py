"""The PostgreSQL engine module against the real PostgreSQL at 127.0.0.1:5432.

A fresh database, a monitoring role with only LOGIN, CONNECT and pg_monitor, and a role
without pg_monitor are created for this module and dropped after it. States are driven for
real: writes and a large sort between two runs, a transaction held open, a row lock waited
on. What cannot be staged on a shared server — a failing archive_command, checksum failures,
a replaced cluster, a standby, other server versions — is fed as recorded rows through a
RecordedConnection, and the SQL those rows answer is the SQL the real-server tests run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import POSTGRES_HOST, POSTGRES_PORT, need, port_open

from checks.db_availability import DbAvailabilityCheck
from checks.db_backup import DbBackupCheck
from checks.db_config import DbConfigCheck
from checks.db_controlfile import DbControlfileCheck
from checks.db_io import DbIoCheck
from checks.db_logs import DbLogsCheck
from checks.db_sessions import DbSessionsCheck
from checks.db_tablespace import DbTablespaceCheck
from checks.db_temp import DbTempCheck
from opsctl.contract import State
from opsctl.databases import (
    ITEMS,
    DbError,
    Observation,
    RecordedConnection,
    Snapshot,
    postgresql,
)
from opsctl.databases.check import DbCheckConfig, judge
from opsctl.inventory import Database

PASSWORD = "Pw-never-shown-9f3k"

KEYS = {
    "availability": {
        "db.availability.version",
        "db.availability.started",
        "db.availability.uptime",
        "db.availability.restarted",
        "db.availability.open_mode",
        "db.availability.role",
        "db.availability.archive_mode",
    },
    "config": {"db.config.parameter"},
    "tablespace": {
        "db.tablespace.used_percent",
        "db.tablespace.database_size",
        "db.tablespace.size",
    },
    "logs": {
        "db.logs.wal_files",
        "db.logs.wal_size",
        "db.logs.wal_size_percent",
        "db.logs.wal_bytes_per_hour",
        "db.logs.archive_mode",
        "db.logs.archiver",
        "db.logs.archive_failures",
        "db.logs.wal_ready_files",
    },
    "controlfile": {
        "db.controlfile.checkpoint_time",
        "db.controlfile.checkpoint_age",
        "db.controlfile.redo_wal_file",
        "db.controlfile.timeline",
        "db.controlfile.system_identifier",
        "db.controlfile.catalog_version",
        "db.controlfile.data_checksums",
        "db.controlfile.checksum_failures",
        "db.controlfile.checkpoints_requested_percent",
    },
    "temp": {
        "db.temp.used_percent",
        "db.temp.used",
        "db.temp.files_per_second",
        "db.temp.bytes_per_second",
        "db.temp.tablespaces",
        "db.temp.file_limit",
    },
    "io": {
        "db.io.reads_per_second",
        "db.io.writes_per_second",
        "db.io.hit_ratio",
        "db.io.transactions_per_second",
    },
    "sessions": {
        "db.sessions.count",
        "db.sessions.max",
        "db.sessions.used_percent",
        "db.sessions.long_transactions",
        "db.sessions.longest_transaction",
        "db.sessions.lock_waits",
        "db.sessions.idle_in_transaction",
    },
    "backup": {
        "db.backup.archive_mode",
        "db.backup.archiver",
        "db.backup.archive_failures",
        "db.backup.last_archived",
        "db.backup.last_archived_age",
        "db.backup.file_backups",
    },
}

CHECKS = {
    "availability": DbAvailabilityCheck,
    "config": DbConfigCheck,
    "tablespace": DbTablespaceCheck,
    "logs": DbLogsCheck,
    "controlfile": DbControlfileCheck,
    "temp": DbTempCheck,
    "io": DbIoCheck,
    "sessions": DbSessionsCheck,
    "backup": DbBackupCheck,
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[SimpleNamespace]:
    """A fresh database with a table of 100 rows, a monitoring role (LOGIN, CONNECT,
    pg_monitor and nothing else) and a role without pg_monitor; all dropped afterwards."""
    need(
        port_open(POSTGRES_HOST, POSTGRES_PORT),
        f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}",
    )
    import psycopg

    suffix = uuid.uuid4().hex[:10]
    names = SimpleNamespace(
        database=f"opsctl_pgmod_{suffix}",
        monitor=f"opsctl_mon_{suffix}",
        plain=f"opsctl_plain_{suffix}",
    )
    admin = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres"
    with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{names.database}"')
        connection.execute(f'CREATE ROLE "{names.monitor}" LOGIN')
        connection.execute(f'GRANT pg_monitor TO "{names.monitor}"')
        connection.execute(f'CREATE ROLE "{names.plain}" LOGIN')
        for role in (names.monitor, names.plain):
            connection.execute(f'GRANT CONNECT ON DATABASE "{names.database}" TO "{role}"')
    try:
        with psycopg.connect(f"{admin} dbname={names.database}", autocommit=True) as connection:
            connection.execute("CREATE TABLE visits (id int PRIMARY KEY, v int NOT NULL)")
            connection.execute("INSERT INTO visits SELECT g, 0 FROM generate_series(1, 100) g")
        names.admin = f"{admin} dbname={names.database}"
        yield names
    finally:
        with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)')
            connection.execute(f'DROP ROLE IF EXISTS "{names.monitor}"')
            connection.execute(f'DROP ROLE IF EXISTS "{names.plain}"')


#: Every target made stays alive: the connection pool tells targets apart by id(), which a
#: freed target's successor could reuse (and get the wrong user's connection).
_TARGETS: list[Database] = []


def target(server: SimpleNamespace, user: str | None = None, **changes: Any) -> Database:
    fields: dict[str, Any] = {
        "name": "pg-test",
        "engine": "postgresql",
        "host": POSTGRES_HOST,
        "port": POSTGRES_PORT,
        "database": server.database,
        "user": user or server.monitor,
        **changes,
    }
    made = Database(**fields)
    _TARGETS.append(made)
    return made


@pytest.fixture(scope="module")
def monitor(server: SimpleNamespace) -> Iterator[postgresql.PostgresConnection]:
    """A connection of the monitoring role (pg_monitor only)."""
    connection = postgresql.connect(target(server), 10)
    yield connection
    connection.close()


@pytest.fixture()
def admin(server: SimpleNamespace) -> Iterator[Any]:
    """A superuser connection to the test database (autocommit)."""
    import psycopg

    with psycopg.connect(server.admin, autocommit=True) as connection:
        yield connection


def flush_statistics(connection: Any) -> None:
    """Make the session's pending statistics visible in pg_stat_database now (PostgreSQL 15+
    flushes at most once a second otherwise)."""
    connection.execute("SELECT pg_stat_force_next_flush()")


def keys(observation: Observation) -> set[str]:
    return {measure.key for measure in observation.measures}


def measure(observation: Observation, key: str, name: str | None = None) -> Any:
    found = [
        m
        for m in observation.measures
        if m.key == key and (name is None or m.labels.get("name") == name)
    ]
    assert len(found) == 1, f"{key} {name}: {found}"
    return found[0]


def seconds_between(first: Observation, second: Observation) -> float:
    return (
        datetime.fromisoformat(second.counters["read_at"])
        - datetime.fromisoformat(first.counters["read_at"])
    ).total_seconds()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- every item


@pytest.mark.parametrize("item", ITEMS)
def test_each_item_returns_its_keys_as_the_pg_monitor_user(
    monitor: postgresql.PostgresConnection, item: str
) -> None:
    observation = getattr(postgresql, item)(monitor, None)
    assert keys(observation) == KEYS[item]
    result = judge(observation, DbCheckConfig(), "", "postgresql")
    assert result.state is not State.UNKNOWN
    assert all(m.label for m in observation.measures)


def test_availability_reports_the_server_as_it_is(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    started = admin.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    observation = postgresql.availability(monitor, None)
    assert measure(observation, "db.availability.started").value == started.astimezone(
        UTC
    ).isoformat(timespec="microseconds")
    assert observation.counters == {
        "started": started.astimezone(UTC).isoformat(timespec="microseconds")
    }
    assert measure(observation, "db.availability.role").value == "primary"
    assert measure(observation, "db.availability.open_mode").value == "read write"
    version = measure(observation, "db.availability.version")
    assert version.value.startswith("PostgreSQL ") and version.display.startswith("PostgreSQL ")
    assert " on " not in version.display
    uptime = admin.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time())")
    assert (
        abs(measure(observation, "db.availability.uptime").value - float(uptime.fetchone()[0])) < 5
    )
    archive = admin.execute("SHOW archive_mode").fetchone()[0]
    assert measure(observation, "db.availability.archive_mode").value == archive
    first_run = measure(observation, "db.availability.restarted")
    assert (first_run.value, first_run.verdict) == (False, None)


def test_a_changed_start_time_is_a_restart_warning(monitor: postgresql.PostgresConnection) -> None:
    now = postgresql.availability(monitor, None)
    same = postgresql.availability(monitor, Snapshot(datetime.now(UTC), now.counters))
    assert measure(same, "db.availability.restarted").value is False
    earlier = Snapshot(datetime.now(UTC), {"started": "2020-01-01T00:00:00+00:00"})
    restarted = postgresql.availability(monitor, earlier)
    row = measure(restarted, "db.availability.restarted")
    assert (row.value, row.verdict) == (True, 1)
    assert "was 2020-01-01T00:00:00+00:00" in row.display
    result = judge(restarted, DbCheckConfig(), "", "postgresql")
    assert result.state is State.WARNING
    assert "restarted" in result.summary


def test_config_reads_the_key_parameters(
    monitor: postgresql.PostgresConnection, admin: Any, server: SimpleNamespace
) -> None:
    observation = postgresql.config(monitor, None)
    rows = {m.labels["name"]: m for m in observation.measures}
    assert list(rows) == list(postgresql.CONFIG_PARAMETERS)  # 15 has archive_library
    assert rows["shared_buffers"].value == admin.execute("SHOW shared_buffers").fetchone()[0]
    collate = admin.execute(
        "SELECT datcollate FROM pg_database WHERE datname = %s", [server.database]
    ).fetchone()[0]
    assert rows["lc_collate"].value == collate
    assert rows["archive_command"].value == admin.execute("SHOW archive_command").fetchone()[0]
    autovacuum = admin.execute("SHOW autovacuum").fetchone()[0]
    assert rows["autovacuum"].verdict == (1 if autovacuum == "off" else None)


def test_tablespace_sizes_databases_and_tablespaces(
    monitor: postgresql.PostgresConnection, admin: Any, server: SimpleNamespace
) -> None:
    observation = postgresql.tablespace(monitor, None)
    size = admin.execute("SELECT pg_database_size(%s)", [server.database]).fetchone()[0]
    mine = measure(observation, "db.tablespace.database_size", server.database)
    assert (mine.value, mine.unit) == (size, "B")
    assert observation.counters["database_size"][server.database] == size
    assert {"pg_default", "pg_global"} <= set(observation.counters["tablespace_size"])
    default = measure(observation, "db.tablespace.size", "pg_default")
    assert default.labels["location"] == "(data directory)" and default.value > size
    used = measure(observation, "db.tablespace.used_percent")
    assert used.value is None and used.verdict == 0
    assert used.display.startswith("not applicable:") and "filesystem check" in used.display


def test_io_records_a_baseline_then_rates(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    first = postgresql.io(monitor, None)
    assert measure(first, "db.io.writes_per_second").value is None
    assert measure(first, "db.io.writes_per_second").display == postgresql.BASELINE
    assert first.notes == ["first run: baseline recorded; rates from the next run"]
    hit = measure(first, "db.io.hit_ratio")  # judged at once: since the statistics reset
    assert hit.label.endswith("since statistics reset") and 0 < hit.value <= 100
    time.sleep(1)
    admin.execute("INSERT INTO visits SELECT g, 1 FROM generate_series(1001, 3000) g")
    admin.execute("SELECT count(*) FROM visits")
    flush_statistics(admin)
    second = postgresql.io(
        monitor, Snapshot(datetime.now(UTC) - timedelta(seconds=3), first.counters)
    )
    assert second.notes == []
    seconds = seconds_between(first, second)
    assert seconds > 1
    writes = measure(second, "db.io.writes_per_second").value
    assert writes * seconds >= 2000 * 0.99  # the 2000 rows inserted in between
    assert measure(second, "db.io.transactions_per_second").value * seconds >= 3 * 0.99
    assert measure(second, "db.io.hit_ratio").label.endswith("since last run")
    assert isinstance(measure(second, "db.io.reads_per_second").value, float)
    # Counters that went backwards (a crash restart, a statistics reset) start a new baseline.
    reset = {**first.counters, "tup_written": first.counters["tup_written"] + 10**12}
    again = postgresql.io(monitor, Snapshot(datetime.now(UTC), reset))
    assert measure(again, "db.io.writes_per_second").value is None
    assert again.notes == [postgresql._BACKWARDS]


def test_a_large_sort_with_tiny_work_mem_shows_in_the_temp_rates(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    first = postgresql.temp(monitor, None)
    assert measure(first, "db.temp.files_per_second").value is None
    time.sleep(1)
    admin.execute("SET work_mem = '64kB'")
    admin.execute(
        "SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY random()) s"
    )
    flush_statistics(admin)
    second = postgresql.temp(monitor, Snapshot(datetime.now(UTC), first.counters))
    seconds = seconds_between(first, second)
    files = measure(second, "db.temp.files_per_second")
    written = measure(second, "db.temp.bytes_per_second")
    assert files.value * seconds >= 0.99 and files.unit == "files/s"
    assert written.value * seconds >= 1024 * 1024  # 200k rows spill megabytes at 64kB
    assert written.display.endswith("/s")
    assert second.counters["temp_files"] > first.counters["temp_files"]
    assert measure(second, "db.temp.used_percent").display.startswith("not applicable:")
    assert (
        measure(second, "db.temp.file_limit").value
        == admin.execute("SHOW temp_file_limit").fetchone()[0]
    )


def test_wal_generated_between_runs_is_a_rate_per_hour(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    first = postgresql.logs(monitor, None)
    assert measure(first, "db.logs.wal_bytes_per_hour").value is None
    assert measure(first, "db.logs.wal_files").value >= 1  # the current segment at least
    before = admin.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    admin.execute("UPDATE visits SET v = v + 1")
    after = admin.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [before]
    ).fetchone()
    second = postgresql.logs(monitor, Snapshot(datetime.now(UTC), first.counters))
    per_hour = measure(second, "db.logs.wal_bytes_per_hour")
    generated = second.counters["wal_position"] - first.counters["wal_position"]
    assert generated >= int(after[0]) > 0
    assert per_hour.value == round(generated / seconds_between(first, second) * 3600)
    assert per_hour.display.endswith("/h")
    archive = admin.execute("SHOW archive_mode").fetchone()[0]
    if archive == "off":
        assert measure(second, "db.logs.archiver").display.startswith(
            "not applicable: archive_mode is off"
        )


def test_controlfile_reads_pg_control(monitor: postgresql.PostgresConnection, admin: Any) -> None:
    observation = postgresql.controlfile(monitor, None)
    identifier = admin.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
    assert measure(observation, "db.controlfile.system_identifier").value == str(identifier)
    checkpoint = admin.execute("SELECT redo_wal_file FROM pg_control_checkpoint()").fetchone()[0]
    assert measure(observation, "db.controlfile.redo_wal_file").value == checkpoint
    checksums = admin.execute("SHOW data_checksums").fetchone()[0]
    assert measure(observation, "db.controlfile.data_checksums").value == checksums
    failures = measure(observation, "db.controlfile.checksum_failures")
    assert failures.verdict == (0 if checksums == "off" else None)
    replaced = postgresql.controlfile(
        monitor, Snapshot(datetime.now(UTC), {"system_identifier": "1"})
    )
    row = measure(replaced, "db.controlfile.system_identifier")
    assert row.verdict == 1 and row.display.endswith("(was 1)")


def test_a_transaction_held_open_is_a_long_transaction(
    monitor: postgresql.PostgresConnection, server: SimpleNamespace
) -> None:
    import psycopg

    with psycopg.connect(server.admin) as holder:  # not autocommit: the transaction stays open
        holder.execute("UPDATE visits SET v = v + 1 WHERE id = 1")
        time.sleep(1.5)
        short = postgresql.sessions(monitor, None, long_after=1)
        assert measure(short, "db.sessions.long_transactions").value >= 1
        assert measure(short, "db.sessions.longest_transaction").value >= 1.5
        assert measure(short, "db.sessions.idle_in_transaction").value >= 1
        assert "longer than 1 s" in measure(short, "db.sessions.long_transactions").label
        default = postgresql.sessions(monitor, None)
        assert "longer than 1 h" in measure(default, "db.sessions.long_transactions").label
        # End to end: the user lowers the threshold of the longest transaction by its key.
        config = DbCheckConfig.model_validate(
            {"thresholds": {"db.sessions.longest_transaction": {"warn": "1"}}}
        )
        result = DbSessionsCheck(config, timeout=10).run(target(server))
        longest = next(i for i in result.items if i.key == "db.sessions.longest_transaction")
        assert longest.verdict is State.WARNING and longest.threshold == "warning > 1"
        assert result.state >= State.WARNING
        holder.rollback()


def test_a_session_waiting_on_a_row_lock_is_a_lock_wait(
    monitor: postgresql.PostgresConnection, server: SimpleNamespace
) -> None:
    import psycopg

    with psycopg.connect(server.admin) as holder:
        holder.execute("UPDATE visits SET v = v + 1 WHERE id = 2")
        errors: list[Exception] = []

        def wait_for_the_lock() -> None:
            try:
                with psycopg.connect(server.admin, autocommit=True) as waiter:
                    waiter.execute("UPDATE visits SET v = v + 1 WHERE id = 2")
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)

        thread = threading.Thread(target=wait_for_the_lock)
        thread.start()
        try:
            waits = 0
            for _ in range(50):
                observation = postgresql.sessions(monitor, None)
                waits = measure(observation, "db.sessions.lock_waits").value
                if waits >= 1:
                    break
                time.sleep(0.1)
            assert waits >= 1
        finally:
            holder.rollback()
            thread.join(10)
    assert not thread.is_alive() and errors == []


def test_sessions_count_against_max_connections_less_reserved(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    observation = postgresql.sessions(monitor, None)
    maximum = int(admin.execute("SHOW max_connections").fetchone()[0]) - int(
        admin.execute("SHOW superuser_reserved_connections").fetchone()[0]
    )
    assert measure(observation, "db.sessions.max").value == maximum
    count = measure(observation, "db.sessions.count").value
    assert count >= 2  # the monitoring connection and the admin one
    assert measure(observation, "db.sessions.used_percent").value == round(100 * count / maximum, 1)


# --------------------------------------------------------------------------- privileges, errors


@pytest.mark.parametrize("item", ["logs", "sessions", "temp", "tablespace"])
def test_without_pg_monitor_items_name_the_grant(server: SimpleNamespace, item: str) -> None:
    connection = postgresql.connect(target(server, server.plain), 10)
    try:
        with pytest.raises(DbError) as raised:
            getattr(postgresql, item)(connection, None)
    finally:
        connection.close()
    assert raised.value.stage == "privilege"
    assert f"grant pg_monitor to {server.plain}" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_without_pg_monitor_the_logs_check_raises_for_unknown(server: SimpleNamespace) -> None:
    with pytest.raises(DbError) as raised:
        DbLogsCheck(DbCheckConfig(), timeout=10).run(target(server, server.plain))
    assert raised.value.stage == "privilege"
    assert "pg_ls_waldir" in str(raised.value) and "pg_monitor" in str(raised.value)


def test_a_refused_login_is_auth_without_the_password(
    server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCTL_PG_TEST_PASSWORD", PASSWORD)
    nobody = target(server, "opsctl_nobody_x", password="env:OPSCTL_PG_TEST_PASSWORD")
    with pytest.raises(DbError) as raised:
        postgresql.connect(nobody, 5)
    assert raised.value.stage == "auth"
    assert 'role "opsctl_nobody_x" does not exist' in str(raised.value)
    assert PASSWORD not in str(raised.value)
    missing = target(server, password="env:OPSCTL_PG_TEST_UNSET_VARIABLE")
    monkeypatch.delenv("OPSCTL_PG_TEST_UNSET_VARIABLE", raising=False)
    with pytest.raises(DbError) as raised:
        postgresql.connect(missing, 5)
    assert raised.value.stage == "auth" and "OPSCTL_PG_TEST_UNSET_VARIABLE" in str(raised.value)


def test_an_unreachable_port_is_connect_and_the_database_is_down(
    server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCTL_PG_TEST_PASSWORD", PASSWORD)
    down = target(server, port=closed_port(), password="env:OPSCTL_PG_TEST_PASSWORD")
    with pytest.raises(DbError) as raised:
        postgresql.connect(down, 3)
    assert raised.value.stage == "connect"
    assert "Connection refused" in str(raised.value) and PASSWORD not in str(raised.value)
    assert "\n" not in str(raised.value)
    result = DbAvailabilityCheck(DbCheckConfig(), timeout=3).run(down)
    assert result.state is State.CRITICAL
    assert [item.key for item in result.items] == ["db.availability.reachable"]
    assert PASSWORD not in result.summary


def test_options_are_libpq_parameters(server: SimpleNamespace) -> None:
    connection = postgresql.connect(target(server, options={"sslmode": "disable"}), 5)
    try:
        assert connection.value("SELECT current_setting('application_name')") == "opsctl"
        assert connection.value("SELECT current_setting('statement_timeout')") == "5s"
    finally:
        connection.close()
    with pytest.raises(DbError) as raised:
        postgresql.connect(target(server, options={"sslmode": "sometimes"}), 5)
    assert raised.value.stage == "query" and "sslmode" in str(raised.value)


def test_a_driver_message_never_carries_the_password() -> None:
    import psycopg

    connection = postgresql.PostgresConnection(None, "monitor", 150000, 5, "S3cret-value")
    error = connection.error(
        psycopg.OperationalError("could not reach postgresql://monitor:S3cret-value@db/his\nagain"),
        "grant pg_monitor to monitor",
    )
    assert error.stage == "connect"
    assert "S3cret-value" not in str(error) and "\n" not in str(error)


def test_importing_the_module_does_not_import_the_driver() -> None:
    code = "import sys, opsctl.databases.postgresql; print('psycopg' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert found.stdout.strip() == "False"


# --------------------------------------------------------------------------- read_only


def test_read_only_returns_columns_and_at_most_max_rows(
    monitor: postgresql.PostgresConnection,
) -> None:
    # The monitoring role has no SELECT on the table: it reads what pg_monitor may read.
    columns, rows = postgresql.read_only(
        monitor, "SELECT g AS id, g * 2 AS v FROM generate_series(1, 100000) g", 5, 3
    )
    assert columns == ["id", "v"] and rows == [(1, 2), (2, 4), (3, 6)]
    columns, rows = postgresql.read_only(
        monitor, "SELECT relname AS visit, 'x%' AS pattern FROM pg_class WHERE false", 5, 3
    )
    assert (columns, rows) == (["visit", "pattern"], [])
    assert monitor.value("SELECT 1") == 1  # the transaction was rolled back


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO visits VALUES (100000, 0)",
        "UPDATE visits SET v = 9",
        "CREATE TABLE intruder (a int)",
        "SELECT id FROM visits FOR UPDATE",
    ],
)
def test_read_only_refuses_writes(
    monitor: postgresql.PostgresConnection, admin: Any, sql: str
) -> None:
    before = admin.execute("SELECT count(*), sum(v) FROM visits").fetchone()
    with pytest.raises(DbError) as raised:
        postgresql.read_only(monitor, sql, 5, 10)
    assert raised.value.stage == "readonly"
    assert str(raised.value).startswith("the sql check only reads: cannot execute")
    assert admin.execute("SELECT count(*), sum(v) FROM visits").fetchone() == before


def test_read_only_refuses_a_second_statement(
    monitor: postgresql.PostgresConnection, admin: Any
) -> None:
    with pytest.raises(DbError) as raised:
        postgresql.read_only(monitor, "SELECT 1; COMMIT; DELETE FROM visits", 5, 10)
    assert "multiple commands" in str(raised.value)
    assert admin.execute("SELECT count(*) FROM visits WHERE id <= 100").fetchone()[0] == 100
    with pytest.raises(DbError) as raised:
        postgresql.read_only(monitor, "COMMIT", 5, 10)
    assert raised.value.stage == "query" and "returns rows" in str(raised.value)


def test_read_only_times_out(monitor: postgresql.PostgresConnection) -> None:
    started = time.monotonic()
    with pytest.raises(DbError) as raised:
        postgresql.read_only(monitor, "SELECT pg_sleep(5)", 1, 10)
    assert raised.value.stage == "timeout"
    assert time.monotonic() - started < 3
    assert postgresql.read_only(monitor, "SELECT 2 AS two", 5, 10) == (["two"], [(2,)])


def test_read_only_names_the_select_grant(server: SimpleNamespace) -> None:
    connection = postgresql.connect(target(server, server.plain), 5)
    try:
        with pytest.raises(DbError) as raised:
            postgresql.read_only(connection, "SELECT * FROM visits", 5, 10)
    finally:
        connection.close()
    assert raised.value.stage == "privilege"
    assert f"grant SELECT on it to {server.plain}" in str(raised.value)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("item", ITEMS)
def test_each_check_kind_runs_end_to_end(server: SimpleNamespace, item: str) -> None:
    check = CHECKS[item](DbCheckConfig(), timeout=10)
    result = check.run(target(server))
    assert result.state is not State.UNKNOWN
    expected = KEYS[item] | ({"db.availability.connect_time"} if item == "availability" else set())
    assert {i.key for i in result.items} == expected
    assert result.details["engine"] == "postgresql"
    if item == "availability":
        connect = next(i for i in result.items if i.key == "db.availability.connect_time")
        assert connect.verdict is State.OK
        assert {m.name for m in result.metrics} >= {"connect_time", "uptime"}


def test_the_io_check_turns_its_previous_result_into_rates(
    server: SimpleNamespace, admin: Any
) -> None:
    first = DbIoCheck(DbCheckConfig(), timeout=10).run(target(server))
    assert "baseline recorded" in first.summary
    admin.execute("INSERT INTO visits SELECT g, 2 FROM generate_series(5001, 5500) g")
    flush_statistics(admin)
    previous = replace(first, started=datetime.now(UTC) - timedelta(seconds=2))
    second = DbIoCheck(DbCheckConfig(), timeout=10, previous=previous).run(target(server))
    metrics = {m.name: m for m in second.metrics}
    assert {"reads_per_second", "writes_per_second", "hit_ratio", "transactions_per_second"} <= set(
        metrics
    )
    assert metrics["writes_per_second"].value > 0
    assert "baseline" not in second.summary


# --------------------------------------------------------------------------- recorded rows

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
RESET = datetime(2026, 11, 1, tzinfo=UTC)


def archiver_rows(**changes: Any) -> dict[str, Any]:
    row = {
        "archived_count": 120,
        "last_archived_wal": "00000001000000000000007A",
        "last_archived_time": T0 - timedelta(minutes=10),
        "failed_count": 3,
        "last_failed_wal": None,
        "last_failed_time": T0 - timedelta(days=3),
        "stats_reset": RESET,
        "last_archived_age": 600.0,
    }
    return {**row, **changes}


def recorded(
    archiver: dict[str, Any] | None = None,
    ready: int = 0,
    archive_mode: str = "on",
    in_recovery: bool = False,
    version: int = 150020,
    wal_bytes: int = 3 * 16 * 1024**2,
) -> RecordedConnection:
    state = {
        "archive_mode": archive_mode,
        "in_recovery": in_recovery,
        "max_wal_size": 1024**3,
        "wal_keep_bytes": 0,
        "wal_position": 10 * 1024**3,
        "read_at": T0,
    }
    return RecordedConnection(
        "postgresql",
        {
            "server_version_num": [{"server_version_num": version}],
            "max_wal_size": [state],
            "in_recovery": [state],
            "pg_ls_waldir": [{"segments": wal_bytes // (16 * 1024**2), "bytes": wal_bytes}],
            "pg_stat_archiver": [archiver or archiver_rows()],
            "pg_ls_archive_statusdir": [{"ready": ready}],
        },
    )


def previous_archiver(failed: int = 3, reset: datetime = RESET) -> Snapshot:
    return Snapshot(
        T0 - timedelta(minutes=5),
        {
            "archiver_failed_count": failed,
            "archiver_stats_reset": reset.isoformat(timespec="microseconds"),
            "wal_position": 10 * 1024**3 - 3600 * 1000,
            "read_at": (T0 - timedelta(hours=1)).isoformat(),
        },
    )


@pytest.mark.parametrize("item", ["logs", "backup"])
def test_recorded_archiver_failing_now_is_critical(item: str) -> None:
    failing = archiver_rows(
        failed_count=5,
        last_failed_wal="00000001000000000000007B",
        last_failed_time=T0 - timedelta(minutes=1),
    )
    observation = getattr(postgresql, item)(recorded(failing, ready=12), previous_archiver())
    prefix = f"db.{item}"
    status = measure(observation, f"{prefix}.archiver")
    assert (status.value, status.verdict) == ("failing", 2)
    assert "00000001000000000000007B" in status.display
    assert measure(observation, f"{prefix}.archive_failures").value == 2
    result = judge(observation, DbCheckConfig(), "", "postgresql")
    assert result.state is State.CRITICAL
    verdicts = {i.key: i.verdict for i in result.items}
    assert verdicts[f"{prefix}.archive_failures"] is State.CRITICAL
    if item == "logs":
        assert verdicts["db.logs.wal_ready_files"] is State.CRITICAL  # 12 > 10


def test_recorded_archiver_that_recovered_counts_its_new_failures() -> None:
    recovered = archiver_rows(failed_count=4, last_failed_time=T0 - timedelta(minutes=30))
    observation = postgresql.backup(recorded(recovered), previous_archiver())
    assert measure(observation, "db.backup.archiver").value == "archiving"
    assert measure(observation, "db.backup.archive_failures").value == 1
    assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.CRITICAL
    tolerant = DbCheckConfig.model_validate(
        {"thresholds": {"db.backup.archive_failures": {"warn": "0", "crit": "10"}}}
    )
    assert judge(observation, tolerant, "", "postgresql").state is State.WARNING
    healthy = postgresql.backup(recorded(archiver_rows()), previous_archiver())
    assert measure(healthy, "db.backup.archive_failures").value == 0
    assert judge(healthy, DbCheckConfig(), "", "postgresql").state is State.OK
    assert healthy.counters == {
        "archiver_failed_count": 3,
        "archiver_stats_reset": RESET.isoformat(timespec="microseconds"),
    }


def test_recorded_archiver_baselines_on_first_run_and_after_a_reset() -> None:
    first = postgresql.backup(recorded(), None)
    failures = measure(first, "db.backup.archive_failures")
    assert failures.value is None and failures.display == postgresql.BASELINE
    assert first.notes == ["first run: baseline recorded; rates from the next run"]
    after_reset = postgresql.backup(
        recorded(archiver_rows(failed_count=0, stats_reset=T0)), previous_archiver(failed=3)
    )
    assert measure(after_reset, "db.backup.archive_failures").value is None
    assert after_reset.notes == [postgresql._BACKWARDS]


def test_recorded_last_archived_a_day_ago_is_a_warning() -> None:
    stale = archiver_rows(last_archived_age=2 * 86400.0)
    observation = postgresql.backup(recorded(stale), previous_archiver())
    assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.WARNING
    wal = measure(observation, "db.backup.last_archived")
    assert wal.display.startswith("00000001000000000000007A at 2026-11-23T01:50:00")


@pytest.mark.parametrize(
    ("archive_mode", "in_recovery", "reason"),
    [
        ("off", False, "archive_mode is off"),
        ("on", True, "a standby with archive_mode = on does not archive"),
    ],
)
def test_recorded_archiver_not_applicable(
    archive_mode: str, in_recovery: bool, reason: str
) -> None:
    connection = recorded(archive_mode=archive_mode, in_recovery=in_recovery)
    for item in ("logs", "backup"):
        observation = getattr(postgresql, item)(connection, previous_archiver())
        assert keys(observation) == KEYS[item]
        status = measure(observation, f"db.{item}.archiver")
        assert status.verdict == 0 and status.display.startswith(f"not applicable: {reason}")
        assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.OK
    assert not any("pg_ls_archive_statusdir" in sql for sql in connection.asked)


def test_recorded_standby_with_archive_mode_always_archives() -> None:
    observation = postgresql.logs(recorded(archive_mode="always", in_recovery=True), None)
    assert measure(observation, "db.logs.archiver").value == "archiving"
    assert measure(observation, "db.logs.wal_bytes_per_hour").label == "WAL / replayed per hour"


def test_recorded_wal_beyond_max_wal_size() -> None:
    connection = recorded(wal_bytes=int(2.5 * 1024**3))
    observation = postgresql.logs(connection, previous_archiver())
    percent = measure(observation, "db.logs.wal_size_percent")
    assert percent.value == 250.0
    assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.CRITICAL
    per_hour = measure(observation, "db.logs.wal_bytes_per_hour")
    assert per_hour.value == 3600 * 1000  # 3.6 MB in the hour between the two readings


def test_recorded_version_aware_sql() -> None:
    old = recorded(version=120000)
    postgresql.logs(old, None)
    assert any("wal_keep_segments" in sql for sql in old.asked)
    checkpointer = RecordedConnection(
        "postgresql",
        {
            "server_version_num": [{"server_version_num": 170002}],
            "pg_control_checkpoint": [
                {
                    "checkpoint_time": T0,
                    "redo_wal_file": "000000010000000000000001",
                    "timeline_id": 1,
                    "checkpoint_age": 42.0,
                }
            ],
            "pg_control_system": [
                {"pg_control_version": 1700, "catalog_version_no": 1, "system_identifier": 7}
            ],
            "checksum_failures": [{"data_checksums": "on", "failures": 3, "databases": "his: 3"}],
            "pg_stat_checkpointer": [{"timed": 10, "requested": 30}],
        },
    )
    observation = postgresql.controlfile(checkpointer, None)
    assert not any("pg_stat_bgwriter" in sql for sql in checkpointer.asked)
    failures = measure(observation, "db.controlfile.checksum_failures")
    assert (failures.value, failures.display) == (3, "3 (his: 3)")
    assert measure(observation, "db.controlfile.checkpoints_requested_percent").value == 75.0
    assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.CRITICAL
    sessions = RecordedConnection(
        "postgresql",
        {
            "server_version_num": [{"server_version_num": 160000}],
            "pg_has_role": [{"sees_all": True}],
            "superuser_reserved_connections": [
                {"max_connections": 100, "superuser_reserved": 3, "reserved": 7}
            ],
            "pg_stat_activity": [
                {
                    "sessions": 85,
                    "long_transactions": 0,
                    "longest_transaction": None,
                    "lock_waits": 0,
                    "idle_in_transaction": 0,
                }
            ],
        },
    )
    observation = postgresql.sessions(sessions, None)
    assert any("current_setting('reserved_connections')" in sql for sql in sessions.asked)
    assert measure(observation, "db.sessions.max").value == 90
    assert measure(observation, "db.sessions.used_percent").value == 94.4
    assert judge(observation, DbCheckConfig(), "db.sessions.used_percent", "postgresql").state is (
        State.WARNING
    )
    assert measure(observation, "db.sessions.longest_transaction").display == "no open transaction"


def test_recorded_fsync_off_is_critical() -> None:
    settings = [{"name": name, "value": "on"} for name in ("fsync", "autovacuum", "wal_level")]
    settings[0]["value"] = "off"
    connection = RecordedConnection(
        "postgresql",
        {
            "server_version_num": [{"server_version_num": 120000}],
            "pg_settings": settings,
            "datcollate": [{"datcollate": "zh_CN.UTF-8", "datctype": "zh_CN.UTF-8"}],
        },
    )
    observation = postgresql.config(connection, None)
    rows = {m.labels["name"]: m for m in observation.measures}
    assert rows["fsync"].verdict == 2 and rows["autovacuum"].verdict is None
    assert rows["lc_collate"].value == "zh_CN.UTF-8"
    assert rows["shared_buffers"].display == "not available in PostgreSQL 12"
    assert "archive_library" not in rows  # 15+ only
    assert not any("datlocprovider" in sql for sql in connection.asked)
    assert judge(observation, DbCheckConfig(), "", "postgresql").state is State.CRITICAL


def test_privileges_text_names_pg_monitor_and_connect() -> None:
    assert "GRANT pg_monitor TO monitor;  -- PostgreSQL 10+" in postgresql.PRIVILEGES
    assert "GRANT CONNECT ON DATABASE" in postgresql.PRIVILEGES
