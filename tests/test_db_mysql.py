"""The MySQL/MariaDB engine module, against the real MariaDB at 127.0.0.1:3306 (root, no
password), driven into the states it reports: a scratch schema, a monitoring user with only
the minimum grants and a user with none, on-disk temporary tables, an open transaction and a
session blocked on its lock, failed logins, a statement past its timeout. MySQL 8 and the
binary-log and replica branches that this server cannot show are fed recorded rows."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import need, port_open

from checks.db_availability import DbAvailabilityCheck
from checks.db_backup import DbBackupCheck
from checks.db_config import DbConfigCheck
from checks.db_controlfile import DbControlfileCheck
from checks.db_io import DbIoCheck
from checks.db_logs import DbLogsCheck
from checks.db_sessions import DbSessionsCheck
from checks.db_tablespace import DbTablespaceCheck
from checks.db_temp import DbTempCheck
from opsctl.contract import CheckResult, Range, State, evaluate
from opsctl.databases import (
    ConnectionPool,
    DbError,
    Observation,
    RecordedConnection,
    Snapshot,
    mysql,
)
from opsctl.databases.check import DbCheckConfig, judge
from opsctl.inventory import Database, Secret

HOST, PORT = "127.0.0.1", 3306
PASSWORD_VARIABLE = "OPSCTL_TEST_MYSQL_PASSWORD"
MONITOR, BARE = "opsctl_monitor", "opsctl_nogrant"

# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server() -> Iterator[SimpleNamespace]:
    """A scratch schema with a table of rows, a monitoring user with only PROCESS, BINLOG
    MONITOR and SLAVE MONITOR, and a user with no grant at all; all dropped afterwards."""
    need(port_open(HOST, PORT), f"MariaDB not reachable at {HOST}:{PORT}")
    import pymysql

    root = pymysql.connect(host=HOST, port=PORT, user="root", password="", autocommit=True)
    schema = f"opsctl_test_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(18)
    users = [f"'{name}'@'{host}'" for name in (MONITOR, BARE) for host in ("localhost", HOST)]
    with root.cursor() as cursor:
        for user in users:
            cursor.execute(f"DROP USER IF EXISTS {user}")
            cursor.execute(f"CREATE USER {user} IDENTIFIED BY %s", (password,))
            if MONITOR in user:
                cursor.execute(f"GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO {user}")
        cursor.execute(f"CREATE DATABASE `{schema}`")
        cursor.execute(
            f"CREATE TABLE `{schema}`.items (id INT PRIMARY KEY, note TEXT, amount INT)"
            " ENGINE=InnoDB"
        )
        cursor.executemany(
            f"INSERT INTO `{schema}`.items VALUES (%s, %s, %s)",
            [(number, f"note {number % 7}", number) for number in range(1, 201)],
        )
    try:
        yield SimpleNamespace(root=root, schema=schema, password=password)
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{schema}`")
            for user in users:
                cursor.execute(f"DROP USER IF EXISTS {user}")
        root.close()


def query(server: SimpleNamespace, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
    """Run a statement as root and return its rows."""
    with server.root.cursor() as cursor:
        cursor.execute(sql, parameters)
        return list(cursor.fetchall())


def variable(server: SimpleNamespace, name: str) -> str:
    return str(query(server, "SHOW GLOBAL VARIABLES LIKE %s", (name,))[0][1])


def status(server: SimpleNamespace, name: str) -> int:
    return int(query(server, "SHOW GLOBAL STATUS LIKE %s", (name,))[0][1])


def target(user: str, name: str = "his-mariadb") -> Database:
    return Database(
        name=name,
        engine="mariadb",
        host=HOST,
        port=PORT,
        user=user,
        password=Secret(f"env:{PASSWORD_VARIABLE}"),
    )


@pytest.fixture
def monitor(server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv(PASSWORD_VARIABLE, server.password)
    return target(MONITOR, f"his-mariadb-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def connection(monitor: Database) -> Iterator[mysql.MySQLConnection]:
    opened = mysql.connect(monitor, 10)
    yield opened
    opened.close()


@pytest.fixture
def bare(server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(PASSWORD_VARIABLE, server.password)
    opened = mysql.connect(target(BARE), 10)
    yield opened
    opened.close()


@pytest.fixture
def as_root(server: SimpleNamespace) -> Iterator[mysql.MySQLConnection]:
    opened = mysql.connect(
        Database(name="root", engine="mariadb", host=HOST, port=PORT, user="root"), 10
    )
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionPool]:
    """A connection pool of this test's own for the checks it runs."""
    own = ConnectionPool()
    monkeypatch.setattr("opsctl.databases.check.default_pool", lambda: own)
    yield own
    own.close_all()


def keys(observation: Observation) -> list[str]:
    return [measure.key for measure in observation.measures]


def measure(observation: Observation, key: str, name: str | None = None) -> mysql.Measure:
    found = [
        m
        for m in observation.measures
        if m.key == key and (name is None or m.labels.get("name") == name)
    ]
    assert len(found) == 1, f"{key} {name}: {found}"
    return found[0]


def again(observation: Observation, taken: datetime) -> Snapshot:
    """The snapshot a run taken at ``taken`` leaves for the next."""
    return Snapshot(taken, dict(observation.counters))


# --------------------------------------------------------------------------- every item

EXPECTED_KEYS = {
    "availability": [
        "db.availability.connect_time",
        "db.availability.version",
        "db.availability.started",
        "db.availability.uptime",
        "db.availability.restarted",
        "db.availability.open_mode",
        "db.availability.role",
        "db.availability.replication",
        "db.availability.replication_lag",
        "db.availability.archive_mode",
    ],
    "config": ["db.config.parameter"] * len(mysql._CONFIG),
    "logs": [
        "db.logs.binlog_files",
        "db.logs.binlog_size",
        "db.logs.binlog_expire",
        "db.logs.binlog_cache_disk_ratio",
        "db.logs.innodb_log_waits",
    ],
    "controlfile": ["db.controlfile.applicable", "db.controlfile.redo_log_capacity"],
    "temp": [
        "db.temp.disk_tables_ratio",
        "db.temp.files_per_second",
        "db.temp.bytes_per_second",
        "db.temp.size",
        "db.temp.max",
        "db.temp.used_percent",
    ],
    "io": [
        "db.io.hit_ratio",
        "db.io.reads_per_second",
        "db.io.writes_per_second",
        "db.io.transactions_per_second",
        "db.io.queries_per_second",
    ],
    "sessions": [
        "db.sessions.count",
        "db.sessions.max",
        "db.sessions.used_percent",
        "db.sessions.long_transactions",
        "db.sessions.longest_transaction",
        "db.sessions.lock_waits",
        "db.sessions.aborted_connects_per_second",
    ],
    "backup": ["db.backup.applicable", "db.backup.point_in_time_recovery"],
}


@pytest.mark.parametrize("item", list(EXPECTED_KEYS))
def test_every_item_returns_its_keys_on_first_and_later_runs(
    connection: mysql.MySQLConnection, server: SimpleNamespace, item: str
) -> None:
    assert variable(server, "log_bin") == "OFF", "these keys are those of a server without binlog"
    function = getattr(mysql, item)
    taken = datetime.now(UTC)
    first_run = function(connection, None)
    assert keys(first_run) == EXPECTED_KEYS[item]
    assert all(m.label for m in first_run.measures)
    later = function(connection, again(first_run, taken))
    assert keys(later) == EXPECTED_KEYS[item]
    # The counters are stored as JSON between runs.
    import json

    assert json.loads(json.dumps(later.counters)) == dict(later.counters)


def test_tablespace_keys_of_the_monitoring_user(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.tablespace(connection, None)
    # Without SELECT it sees in information_schema.tables only performance_schema's; the
    # sizes of the other schemas come from the InnoDB tablespace files that PROCESS shows.
    assert set(keys(observation)) == {
        "db.tablespace.database_size",
        "db.tablespace.data_free",
        "db.tablespace.size",
        "db.tablespace.max",
        "db.tablespace.used_percent",
        "db.tablespace.filesystem_free",
    }
    assert [
        m.labels["name"] for m in observation.measures if m.key == "db.tablespace.data_free"
    ] == ["performance_schema"]
    assert server.schema in observation.counters["sizes"]


def test_connect_asks_what_the_server_is(connection: mysql.MySQLConnection) -> None:
    assert connection.server is not None
    assert connection.server.mariadb
    assert connection.server.number >= (10, 11, 0)
    assert connection.server.binlog_privilege == "BINLOG MONITOR"
    assert connection.server.replica_status_sql == "SHOW REPLICA STATUS"
    assert connection.connect_seconds is not None and 0 < connection.connect_seconds < 5


# --------------------------------------------------------------------------- availability


def test_availability_against_what_root_sees(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.availability(connection, None)
    version = query(server, "SELECT VERSION()")[0][0]
    assert measure(observation, "db.availability.version").value == version
    assert measure(observation, "db.availability.version").display.startswith("MariaDB 10.")
    uptime = status(server, "Uptime")
    started = datetime.fromisoformat(measure(observation, "db.availability.started").value)
    expected = datetime.now(UTC) - timedelta(seconds=uptime)
    assert abs((started - expected).total_seconds()) <= 2
    assert started.microsecond == 0
    assert abs(measure(observation, "db.availability.uptime").value - uptime) <= 2
    assert observation.counters["started"] == started.isoformat()
    assert measure(observation, "db.availability.open_mode").value == "read write"
    assert measure(observation, "db.availability.role").value == "primary"
    assert measure(observation, "db.availability.replication").display == (
        "not applicable: not a replica"
    )
    assert measure(observation, "db.availability.archive_mode").value == "off"
    restarted = measure(observation, "db.availability.restarted")
    assert (restarted.value, restarted.display) == (False, "no previous run to compare with")
    result = judge(observation, DbCheckConfig(), "db.availability.connect_time", "mariadb")
    assert result.state is State.OK, result.summary
    assert result.summary.startswith(f"{connection.server.describe}, up ")
    assert result.summary.endswith(", primary, read write")


def test_a_restart_is_seen_through_the_previous_start_time(
    connection: mysql.MySQLConnection,
) -> None:
    first_run = mysql.availability(connection, None)
    started = datetime.fromisoformat(first_run.counters["started"])
    same = mysql.availability(connection, again(first_run, datetime.now(UTC)))
    assert measure(same, "db.availability.restarted").value is False
    # Start times a couple of seconds apart are the same start (whole-second uptime).
    jitter = Snapshot(datetime.now(UTC), {"started": (started + timedelta(seconds=2)).isoformat()})
    assert (
        measure(mysql.availability(connection, jitter), "db.availability.restarted").value is False
    )
    before = Snapshot(datetime.now(UTC), {"started": (started - timedelta(days=1)).isoformat()})
    observation = mysql.availability(connection, before)
    restarted = measure(observation, "db.availability.restarted")
    assert restarted.value is True and restarted.verdict == State.WARNING
    assert "was " + (started - timedelta(days=1)).isoformat(timespec="seconds") in restarted.display
    result = judge(observation, DbCheckConfig(), "db.availability.connect_time", "mariadb")
    assert result.state is State.WARNING
    assert "restarted" in result.summary


def test_no_replica_privilege_is_flagged_naming_it(bare: Any) -> None:
    observation = mysql.availability(bare, None)
    role = measure(observation, "db.availability.role")
    assert role.value is None and role.verdict == State.WARNING
    assert "SLAVE MONITOR" in role.display
    assert "grant SLAVE MONITOR ON *.*" in role.display
    # The rest of the item is still observed.
    assert measure(observation, "db.availability.uptime").value > 0


def recorded(version: str, comment: str, **answers: Any) -> RecordedConnection:
    return RecordedConnection(
        "mysql",
        {"@@version_comment": [{"version": version, "version_comment": comment}], **answers},
    )


def test_a_mysql8_replica_whose_sql_thread_stopped_is_critical() -> None:
    connection = recorded(
        "8.0.36",
        "MySQL Community Server - GPL",
        **{
            "show global variables": [
                {"Variable_name": "read_only", "Value": "ON"},
                {"Variable_name": "super_read_only", "Value": "ON"},
                {"Variable_name": "log_bin", "Value": "ON"},
            ],
            "show global status": [{"Variable_name": "Uptime", "Value": "86400"}],
            "show replica status": [
                {
                    "Source_Host": "10.8.1.21",
                    "Source_Port": 3306,
                    "Replica_IO_Running": "Yes",
                    "Replica_SQL_Running": "No",
                    "Seconds_Behind_Source": None,
                    "Last_IO_Error": "",
                    "Last_SQL_Error": "Error 'Duplicate entry '7' for key 'PRIMARY'' on query",
                }
            ],
        },
    )
    observation = mysql.availability(connection, None)
    assert "SHOW REPLICA STATUS" in connection.asked
    assert measure(observation, "db.availability.version").display.startswith("MySQL 8.0.36")
    assert measure(observation, "db.availability.role").value == "standby"
    assert "10.8.1.21:3306" in measure(observation, "db.availability.role").display
    assert measure(observation, "db.availability.open_mode").display == (
        "read only (super_read_only)"
    )
    threads = measure(observation, "db.availability.replication")
    assert (threads.value, threads.verdict) == ("stopped", State.CRITICAL)
    assert "Duplicate entry" in threads.display
    lag = measure(observation, "db.availability.replication_lag")
    assert lag.value is None and lag.display == "unknown (SQL thread not running)"
    assert measure(observation, "db.availability.archive_mode").value == "on"
    assert judge(observation, DbCheckConfig(), "", "mysql").state is State.CRITICAL


def test_an_old_mariadb_replica_lagging_warns() -> None:
    connection = recorded(
        "10.4.32-MariaDB",
        "MariaDB Server",
        **{
            "show global variables": [{"Variable_name": "read_only", "Value": "OFF"}],
            "show global status": [{"Variable_name": "Uptime", "Value": "100"}],
            "show slave status": [
                {
                    "Master_Host": "10.8.1.22",
                    "Master_Port": 3306,
                    "Slave_IO_Running": "Yes",
                    "Slave_SQL_Running": "Yes",
                    "Seconds_Behind_Master": 15,
                }
            ],
        },
    )
    observation = mysql.availability(connection, None)
    assert "SHOW SLAVE STATUS" in connection.asked  # SHOW REPLICA STATUS came with 10.5.1
    assert measure(observation, "db.availability.replication").verdict == State.OK
    result = judge(observation, DbCheckConfig(), "", "mariadb")
    lag = next(item for item in result.items if item.key == "db.availability.replication_lag")
    assert (lag.value, lag.verdict) == ("15s", State.WARNING)  # check_mysql_health: 10/20


# --------------------------------------------------------------------------- config


def test_config_reports_the_server_variables(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.config(connection, None)
    reported = {m.labels["name"]: m for m in observation.measures}
    assert list(reported) == [name for name, _ in mysql._CONFIG]
    for name in reported:
        assert reported[name].value == variable(server, name), name
    pool = int(variable(server, "innodb_buffer_pool_size"))
    assert reported["innodb_buffer_pool_size"].display.startswith(f"{pool} B (")
    sql_mode = reported["sql_mode"]
    if len(sql_mode.value) > mysql.CONFIG_DISPLAY_LENGTH:
        assert sql_mode.display.endswith("…")
        assert len(sql_mode.display) == mysql.CONFIG_DISPLAY_LENGTH
    assert judge(observation, DbCheckConfig(), "", "mariadb").state is State.OK


def test_a_variable_this_version_lacks_is_not_applicable() -> None:
    connection = recorded(
        "8.4.0",
        "MySQL Community Server - GPL",
        **{"show global variables": [{"Variable_name": "max_connections", "Value": "500"}]},
    )
    observation = mysql.config(connection, None)
    expire = measure(observation, "db.config.parameter", "expire_logs_days")
    assert expire.display == "not applicable: no such variable in MySQL 8.4.0"
    assert measure(observation, "db.config.parameter", "max_connections").value == "500"


# --------------------------------------------------------------------------- tablespace


def test_schema_sizes_are_those_of_the_innodb_files(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.tablespace(connection, None)
    files = query(
        server,
        "SELECT SUM(file_size) FROM information_schema.innodb_sys_tablespaces WHERE name LIKE %s",
        (f"{server.schema}/%",),
    )[0][0]
    size = measure(observation, "db.tablespace.database_size", server.schema)
    assert size.value == int(files) > 0
    assert size.label == f"Schema {server.schema} / size"
    assert size.display.endswith("(InnoDB files)")
    assert observation.counters["sizes"][server.schema] == int(files)
    sizes = observation.counters["sizes"]
    assert observation.summary.startswith(f"{len(sizes)} schemas, ")
    system = measure(observation, "db.tablespace.database_size", "mysql")
    assert system.label == "System schema mysql / size"
    ibdata = query(
        server,
        "SELECT file_size FROM information_schema.innodb_sys_tablespaces"
        " WHERE name = 'innodb_system'",
    )[0][0]
    assert measure(observation, "db.tablespace.size", "innodb_system").value == ibdata
    path = variable(server, "innodb_data_file_path")
    assert path.endswith(":autoextend")  # this server: no maximum
    assert measure(observation, "db.tablespace.max", "innodb_system").display == (
        "unlimited (autoextend)"
    )
    assert measure(observation, "db.tablespace.used_percent", "innodb_system").display.startswith(
        f"not applicable: it grows without a maximum (innodb_data_file_path = {path})"
    )
    free = measure(observation, "db.tablespace.filesystem_free")
    assert variable(server, "datadir") in free.display
    assert free.display.startswith("not applicable:") and free.verdict == State.OK


def test_root_also_sees_free_space_inside_the_files(
    as_root: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.tablespace(as_root, None)
    free = query(
        server,
        "SELECT SUM(data_free) FROM information_schema.tables WHERE table_schema = %s",
        (server.schema,),
    )[0][0]
    assert measure(observation, "db.tablespace.data_free", server.schema).value == int(free)


def test_tablespace_without_process_names_the_grant(bare: Any) -> None:
    observation = mysql.tablespace(bare, None)
    files = measure(observation, "db.tablespace.innodb_files")
    assert files.verdict == State.WARNING and "grant PROCESS ON *.*" in files.display
    assert measure(observation, "db.tablespace.size", "innodb_system").display == (
        "unknown: needs PROCESS"
    )
    assert observation.notes == [
        "InnoDB file sizes need PROCESS: schema sizes are those of visible tables only"
    ]


@pytest.mark.parametrize(
    ("text", "fixed", "autoextend", "maximum"),
    [
        ("ibdata1:12M:autoextend", 12 * 2**20, True, None),
        ("ibdata1:12M:autoextend:max:500M", 12 * 2**20, True, 500 * 2**20),
        ("ibdata1:50M;ibdata2:50M:autoextend:max:1G", 100 * 2**20, True, 50 * 2**20 + 2**30),
        ("ibdata1:1G", 2**30, False, 2**30),
        ("ibtmp1:12M:autoextend:max:5G", 12 * 2**20, True, 5 * 2**30),
    ],
)
def test_data_file_paths_are_read(
    text: str, fixed: int, autoextend: bool, maximum: int | None
) -> None:
    assert mysql.DataFilePath.parse(text) == mysql.DataFilePath(fixed, autoextend, maximum)


@pytest.mark.parametrize("text", ["", "ibdata1", "ibdata1:lots:autoextend"])
def test_unreadable_data_file_paths_are_none(text: str) -> None:
    assert mysql.DataFilePath.parse(text) is None


def test_mysql8_tablespaces_with_a_maximum_and_encoded_names() -> None:
    connection = recorded(
        "8.0.36",
        "MySQL Community Server - GPL",
        **{
            "information_schema.tables": [
                {"name": "his-prod", "tables": 40, "used": 900, "free": 4194304, "other": 0},
                {"name": "lis", "tables": 3, "used": 2048, "free": 0, "other": 2048},
            ],
            "innodb_tablespaces": [
                {"name": "innodb_system", "file_size": 972 * 2**20},
                {"name": "mysql", "file_size": 25 * 2**20},  # the data dictionary
                {"name": "his@002dprod/orders", "file_size": 3 * 2**30},
                {"name": "his@002dprod/patients#p#p0", "file_size": 2**30},
            ],
            "show global variables": [
                {
                    "Variable_name": "innodb_data_file_path",
                    "Value": "ibdata1:12M:autoextend:max:1G",
                },
                {"Variable_name": "datadir", "Value": "/data/mysql/"},
            ],
        },
    )
    observation = mysql.tablespace(connection, None)
    assert any("information_schema.INNODB_TABLESPACES" in sql for sql in connection.asked)
    assert measure(observation, "db.tablespace.database_size", "his-prod").value == 4 * 2**30
    lis = measure(observation, "db.tablespace.database_size", "lis")
    assert (lis.value, lis.display) == (2048, "2.0 KB (data and indexes)")
    assert measure(observation, "db.tablespace.data_free", "his-prod").value == 4194304
    used = measure(observation, "db.tablespace.used_percent", "innodb_system")
    assert used.value == round(100 * 972 / 1024, 2)
    result = judge(observation, DbCheckConfig(), "db.tablespace.used_percent", "mysql")
    assert result.state is State.WARNING  # 94.9% of the maximum: check_oracle_health 90/98
    overridden = judge(
        observation,
        DbCheckConfig(crit="94"),
        "db.tablespace.used_percent",
        "mysql",
    )
    assert overridden.state is State.CRITICAL


# --------------------------------------------------------------------------- logs


def test_logs_with_binary_logging_off(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    assert variable(server, "log_bin") == "OFF"
    taken = datetime.now(UTC)
    first_run = mysql.logs(connection, None)
    for key in EXPECTED_KEYS["logs"][:4]:
        found = measure(first_run, key)
        assert found.display == "not applicable: binary logging is off" and found.verdict == 0
    waits = measure(first_run, "db.logs.innodb_log_waits")
    assert waits.value is None and waits.display == mysql._BASELINE
    assert first_run.notes == ["first run: baseline recorded"]
    before = status(server, "Innodb_log_waits")
    later = mysql.logs(connection, again(first_run, taken))
    waits = measure(later, "db.logs.innodb_log_waits")
    assert (
        waits.value == status(server, "Innodb_log_waits") - first_run.counters["Innodb_log_waits"]
    )
    assert before >= first_run.counters["Innodb_log_waits"]
    assert later.notes == []
    result = judge(later, DbCheckConfig(), "", "mariadb")
    assert (result.state, result.summary) == (State.OK, "binary logging off")


def binlog_server(expire: str = "0", **answers: Any) -> RecordedConnection:
    return recorded(
        "10.11.6-MariaDB-log",
        "MariaDB Server",
        **{
            "show global variables": [
                {"Variable_name": "log_bin", "Value": "ON"},
                {"Variable_name": "expire_logs_days", "Value": "0.000000"},
                {"Variable_name": "binlog_expire_logs_seconds", "Value": expire},
            ],
            "show global status": [
                {"Variable_name": "Uptime", "Value": "7200"},
                {"Variable_name": "Innodb_log_waits", "Value": "3"},
                {"Variable_name": "Binlog_cache_use", "Value": "1000"},
                {"Variable_name": "Binlog_cache_disk_use", "Value": "20"},
            ],
            **answers,
        },
    )


BINARY_LOGS = [
    {"Log_name": "mysql-bin.000007", "File_size": 1073741824},
    {"Log_name": "mysql-bin.000008", "File_size": 1073741824},
    {"Log_name": "mysql-bin.000009", "File_size": 52428800},
]


def test_logs_with_binary_logging_on_and_never_purged() -> None:
    connection = binlog_server(**{"show binary logs": BINARY_LOGS})
    observation = mysql.logs(connection, None)
    files = measure(observation, "db.logs.binlog_files")
    assert (files.value, files.display) == (3, "3 (mysql-bin.000007 .. mysql-bin.000009)")
    assert measure(observation, "db.logs.binlog_size").value == 2 * 1073741824 + 52428800
    assert observation.summary == "3 binary logs, 2.0 GB"
    expire = measure(observation, "db.logs.binlog_expire")
    assert (expire.value, expire.display) == (0, "never (0)")
    ratio = measure(observation, "db.logs.binlog_cache_disk_ratio")
    assert (ratio.value, ratio.display) == (
        2.0,
        "2% (20 of 1000 transactions since the server started)",
    )
    result = judge(observation, DbCheckConfig(), "", "mariadb")
    assert result.state is State.WARNING
    item = next(item for item in result.items if item.key == "db.logs.binlog_expire")
    assert item.verdict is State.WARNING and "binlog_expire_logs_seconds" in item.advice


def test_binlog_expiry_and_log_waits_between_runs() -> None:
    connection = binlog_server(expire="604800", **{"show binary logs": BINARY_LOGS[:1]})
    previous = Snapshot(
        datetime.now(UTC) - timedelta(seconds=300),
        {
            "Uptime": 6900,
            "Innodb_log_waits": 1,
            "Binlog_cache_use": 900,
            "Binlog_cache_disk_use": 10,
        },
    )
    observation = mysql.logs(connection, previous)
    assert measure(observation, "db.logs.binlog_expire").display == "7 d"
    assert measure(observation, "db.logs.binlog_files").display == "1 (mysql-bin.000007)"
    ratio = measure(observation, "db.logs.binlog_cache_disk_ratio")
    assert (ratio.value, ratio.display) == (10.0, "10% (10 of 100 transactions since the last run)")
    waits = measure(observation, "db.logs.innodb_log_waits")
    assert (waits.value, waits.display) == (2, "2 since the last run")
    result = judge(observation, DbCheckConfig(), "", "mariadb")
    assert result.state is State.WARNING and "InnoDB redo log" in result.summary


def test_binary_logs_without_the_privilege_name_it() -> None:
    import pymysql

    denied = mysql._db_error(
        pymysql.err.OperationalError(
            1227,
            "Access denied; you need (at least one of) the SUPER, BINLOG MONITOR privilege(s) for this operation",
        ),
        user="monitor",
    )
    observation = mysql.logs(binlog_server(**{"show binary logs": denied}), None)
    files = measure(observation, "db.logs.binlog_files")
    assert files.verdict == State.WARNING
    assert "grant BINLOG MONITOR ON *.* to 'monitor'" in files.display
    assert measure(observation, "db.logs.binlog_size").display == (
        "unknown: SHOW BINARY LOGS needs BINLOG MONITOR"
    )


# --------------------------------------------------------------------------- controlfile


def test_controlfile_is_not_applicable_and_redo_capacity_is_recorded(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.controlfile(connection, None)
    applicable = measure(observation, "db.controlfile.applicable")
    assert applicable.verdict == 0 and applicable.display.startswith(
        "not applicable: MySQL/MariaDB keep no control file"
    )
    redo = measure(observation, "db.controlfile.redo_log_capacity")
    assert redo.value == int(variable(server, "innodb_log_file_size"))
    assert judge(observation, DbCheckConfig(), "", "mariadb").state is State.OK


def test_mysql_redo_capacity_variable_wins() -> None:
    connection = recorded(
        "8.0.36",
        "MySQL",
        **{
            "show global variables": [
                {"Variable_name": "innodb_redo_log_capacity", "Value": str(2**30)},
                {"Variable_name": "innodb_log_file_size", "Value": str(2**26)},
                {"Variable_name": "innodb_log_files_in_group", "Value": "2"},
            ]
        },
    )
    redo = measure(mysql.controlfile(connection, None), "db.controlfile.redo_log_capacity")
    assert (redo.value, redo.display) == (2**30, "1.0 GB (innodb_redo_log_capacity)")


# --------------------------------------------------------------------------- temp


def test_on_disk_temporary_tables_move_the_ratio(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    taken = datetime.now(UTC)
    first_run = mysql.temp(connection, None)
    ratio = measure(first_run, "db.temp.disk_tables_ratio")
    assert "since the server started" in ratio.display
    assert measure(first_run, "db.temp.files_per_second").display == mysql._BASELINE
    for _ in range(5):  # GROUP BY a TEXT column: MEMORY cannot hold it, the table goes to disk
        query(server, f"SELECT note, COUNT(*) FROM `{server.schema}`.items GROUP BY note")
    later = mysql.temp(connection, again(first_run, taken))
    disk = later.counters["Created_tmp_disk_tables"] - first_run.counters["Created_tmp_disk_tables"]
    created = later.counters["Created_tmp_tables"] - first_run.counters["Created_tmp_tables"]
    assert disk >= 5
    ratio = measure(later, "db.temp.disk_tables_ratio")
    assert ratio.value == round(100 * disk / created, 2) > 0
    assert ratio.display == f"{ratio.value:g}% ({disk} of {created} since the last run)"
    files = measure(later, "db.temp.files_per_second")
    assert files.value is not None and files.value >= 0
    result = judge(later, DbCheckConfig(), "db.temp.used_percent", "mariadb")
    item = next(item for item in result.items if item.key == "db.temp.disk_tables_ratio")
    assert item.verdict is evaluate(ratio.value, Range.parse("25"), Range.parse("50"))
    assert item.threshold == "warning > 25, critical > 50"
    assert measure(later, "db.temp.used_percent", "innodb_temporary").display.startswith(
        "not applicable: it grows without a maximum"
    )
    ibtmp = query(
        server,
        "SELECT file_size FROM information_schema.innodb_sys_tablespaces"
        " WHERE name = 'innodb_temporary'",
    )[0][0]
    assert measure(later, "db.temp.size", "innodb_temporary").value == ibtmp


def test_no_temporary_table_at_all_is_zero_percent() -> None:
    connection = recorded(
        "10.11.6-MariaDB",
        "MariaDB Server",
        **{
            "show global status": [
                {"Variable_name": "Uptime", "Value": "10"},
                {"Variable_name": "Created_tmp_tables", "Value": "0"},
                {"Variable_name": "Created_tmp_disk_tables", "Value": "0"},
                {"Variable_name": "Created_tmp_files", "Value": "0"},
            ],
            "show global variables": [
                {
                    "Variable_name": "innodb_temp_data_file_path",
                    "Value": "ibtmp1:12M:autoextend:max:1G",
                }
            ],
            "innodb_sys_tablespaces": [{"name": "innodb_temporary", "file_size": 950 * 2**20}],
        },
    )
    observation = mysql.temp(connection, None)
    ratio = measure(observation, "db.temp.disk_tables_ratio")
    assert (ratio.value, ratio.display) == (0.0, "0% (0 of 0 since the server started)")
    used = measure(observation, "db.temp.used_percent", "innodb_temporary")
    assert used.value == round(100 * 950 / 1024, 2)
    assert judge(observation, DbCheckConfig(), "db.temp.used_percent", "mariadb").state is (
        State.WARNING
    )


# --------------------------------------------------------------------------- io


def test_io_records_a_baseline_then_rates(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    taken = datetime.now(UTC)
    first_run = mysql.io(connection, None)
    assert first_run.notes == ["first run: baseline recorded"]
    for key in EXPECTED_KEYS["io"][1:]:
        found = measure(first_run, key)
        assert found.value is None and found.display == mysql._BASELINE
    assert "since the server started" in measure(first_run, "db.io.hit_ratio").display
    for number in range(3):  # three committed transactions, and some reads
        query(server, "START TRANSACTION")
        query(
            server,
            f"UPDATE `{server.schema}`.items SET amount = amount + 1 WHERE id = %s",
            (number + 1,),
        )
        query(server, "COMMIT")
    query(server, f"SELECT SUM(amount) FROM `{server.schema}`.items")
    time.sleep(1.1)
    later = mysql.io(connection, again(first_run, taken))
    assert later.notes == []
    commits = sum(
        later.counters[name] - first_run.counters[name] for name in ("Com_commit", "Com_rollback")
    )
    assert commits >= 3
    tps = measure(later, "db.io.transactions_per_second")
    assert tps.value is not None and tps.value > 0
    assert f"({commits} in " in tps.display
    questions = later.counters["Questions"] - first_run.counters["Questions"]
    assert f"({questions} in " in measure(later, "db.io.queries_per_second").display
    for key in ("db.io.reads_per_second", "db.io.writes_per_second"):
        assert measure(later, key).value is not None
    requests = (
        later.counters["Innodb_buffer_pool_read_requests"]
        - first_run.counters["Innodb_buffer_pool_read_requests"]
    )
    misses = (
        later.counters["Innodb_buffer_pool_reads"] - first_run.counters["Innodb_buffer_pool_reads"]
    )
    assert requests > 0
    assert measure(later, "db.io.hit_ratio").value == round(
        100 - round(100 * misses / requests, 2), 2
    )


def test_io_after_a_restart_records_a_new_baseline(connection: mysql.MySQLConnection) -> None:
    taken = datetime.now(UTC)
    first_run = mysql.io(connection, None)
    counters = dict(first_run.counters)
    counters["Uptime"] = counters["Uptime"] + 86400  # the server was up longer before
    later = mysql.io(connection, Snapshot(taken - timedelta(seconds=60), counters))
    assert later.notes == ["the server restarted since the last run: baseline recorded"]
    assert measure(later, "db.io.reads_per_second").value is None


# --------------------------------------------------------------------------- sessions


def test_sessions_against_max_connections(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    observation = mysql.sessions(connection, None)
    count = measure(observation, "db.sessions.count").value
    limit = measure(observation, "db.sessions.max").value
    assert limit == int(variable(server, "max_connections"))
    assert count >= 2  # root's and ours
    assert measure(observation, "db.sessions.used_percent").value == round(100 * count / limit, 2)
    assert measure(observation, "db.sessions.long_transactions").value == 0
    assert measure(observation, "db.sessions.lock_waits").value == 0
    assert observation.summary == f"{count} of {limit} sessions"
    longest = measure(observation, "db.sessions.longest_transaction")
    assert (longest.value, longest.display) == (None, "no open transaction")


def test_an_open_transaction_and_a_session_blocked_on_its_lock(
    monitor: Database, server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pymysql

    holder = pymysql.connect(host=HOST, port=PORT, user="root", password="", autocommit=True)
    waiter = pymysql.connect(host=HOST, port=PORT, user="root", password="", autocommit=True)
    table = f"`{server.schema}`.items"
    outcome: list[BaseException | None] = []

    def wait_for_the_row() -> None:
        try:
            with waiter.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 30")
                cursor.execute(f"UPDATE {table} SET amount = amount + 1 WHERE id = 100")
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome.append(error)

    thread = threading.Thread(target=wait_for_the_row, daemon=True)
    try:
        with holder.cursor() as cursor:
            cursor.execute("START TRANSACTION")
            cursor.execute(f"UPDATE {table} SET amount = amount + 1 WHERE id = 100")
        time.sleep(2.2)
        monkeypatch.setattr(mysql, "LONG_TRANSACTION_SECONDS", 1)
        check = DbSessionsCheck(
            DbCheckConfig(thresholds={"db.sessions.longest_transaction": {"warn": "1"}}),
            timeout=10,
        )
        result = check.run(monitor)
        items = {item.key: item for item in result.items}
        assert items["db.sessions.long_transactions"].value == "1"
        assert items["db.sessions.long_transactions"].verdict is State.WARNING
        assert items["db.sessions.long_transactions"].item == "Transactions / open longer than 1 s"
        longest = items["db.sessions.longest_transaction"]
        assert longest.verdict is State.WARNING and longest.threshold == "warning > 1"
        assert longest.value.startswith(("2 s", "3 s", "4 s"))
        assert result.state is State.WARNING

        thread.start()
        waits = 0
        deadline = time.monotonic() + 10
        with monitoring(monitor) as connection:
            while time.monotonic() < deadline:
                observation = mysql.sessions(connection, None)
                waits = measure(observation, "db.sessions.lock_waits").value
                if waits >= 1:
                    break
                time.sleep(0.2)
        assert waits >= 1
        assert measure(observation, "db.sessions.lock_waits").display.startswith(
            f"{waits} (longest "
        )
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=35)
        waiter.close()
    assert outcome == [None]  # the waiter got its lock once the holder rolled back


@contextmanager
def monitoring(database: Database) -> Iterator[mysql.MySQLConnection]:
    """A connection of the monitoring user, closed afterwards."""
    opened = mysql.connect(database, 10)
    try:
        yield opened
    finally:
        opened.close()


def test_failed_logins_count_as_aborted_connects(
    connection: mysql.MySQLConnection, monitor: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = datetime.now(UTC)
    first_run = mysql.sessions(connection, None)
    assert measure(first_run, "db.sessions.aborted_connects_per_second").display == mysql._BASELINE
    monkeypatch.setenv("OPSCTL_TEST_WRONG_PASSWORD", "not-the-password")
    wrong = Secret("env:OPSCTL_TEST_WRONG_PASSWORD")
    with pytest.raises(DbError) as caught:
        mysql.connect(monitor.model_copy(update={"password": wrong}), 5)
    assert caught.value.stage == "auth"
    later = mysql.sessions(connection, again(first_run, taken))
    failed = later.counters["Aborted_connects"] - first_run.counters["Aborted_connects"]
    assert failed >= 1
    aborted = measure(later, "db.sessions.aborted_connects_per_second")
    assert aborted.value > 0 and f"({failed} in " in aborted.display


def test_sessions_without_process_name_the_grant(bare: Any) -> None:
    observation = mysql.sessions(bare, None)
    long_transactions = measure(observation, "db.sessions.long_transactions")
    assert long_transactions.verdict == State.WARNING
    assert "PROCESS" in long_transactions.display
    assert f"grant PROCESS ON *.* to '{BARE}'" in long_transactions.display
    assert measure(observation, "db.sessions.lock_waits").display == "unknown: needs PROCESS"
    assert measure(observation, "db.sessions.count").value >= 1  # SHOW STATUS needs no grant
    result = judge(observation, DbCheckConfig(), "db.sessions.used_percent", "mariadb")
    assert result.state is State.WARNING and "PROCESS" in result.summary


# --------------------------------------------------------------------------- backup


def test_backup_points_to_the_dump_check_and_warns_without_binlog(
    connection: mysql.MySQLConnection,
) -> None:
    observation = mysql.backup(connection, None)
    applicable = measure(observation, "db.backup.applicable")
    assert (
        applicable.verdict == 0 and "use the backup check on the dump files" in applicable.display
    )
    recovery = measure(observation, "db.backup.point_in_time_recovery")
    assert (recovery.value, recovery.verdict) == ("off", State.WARNING)
    assert recovery.display == "impossible: binary logging is off"
    result = judge(observation, DbCheckConfig(), "", "mariadb")
    assert result.state is State.WARNING
    assert "log_bin" in next(i.advice for i in result.items if i.verdict is State.WARNING)


# --------------------------------------------------------------------------- errors


def test_a_wrong_password_is_an_auth_error_without_the_password(
    monitor: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_VARIABLE, wrong)
    with pytest.raises(DbError) as caught:
        mysql.connect(monitor, 5)
    assert caught.value.stage == "auth"
    assert wrong not in str(caught.value)
    assert f"Access denied for user '{MONITOR}'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_closed_port_is_a_connect_error(monitor: Database) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        closed = probe.getsockname()[1]
    with pytest.raises(DbError) as caught:
        mysql.connect(monitor.model_copy(update={"port": closed}), 3)
    assert caught.value.stage == "connect"
    assert "Connection refused" in str(caught.value)


def test_a_missing_secret_is_an_auth_error(
    monitor: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_VARIABLE)
    with pytest.raises(DbError) as caught:
        mysql.connect(monitor, 5)
    assert caught.value.stage == "auth" and PASSWORD_VARIABLE in str(caught.value)


def test_a_missing_driver_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pymysql", None)
    database = Database(name="x", engine="mysql", host=HOST, user="monitor")
    with pytest.raises(DbError) as caught:
        mysql.connect(database, 1)
    assert caught.value.stage == "driver" and "pip install pymysql" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "message", "stage", "expected"),
    [
        (1045, "Access denied for user 'm'@'h' (using password: YES)", "auth", "login refused"),
        (
            1227,
            "Access denied; you need (at least one of) the PROCESS privilege(s) for this operation",
            "privilege",
            "grant PROCESS ON *.* to 'm'",
        ),
        (
            1142,
            "SELECT command denied to user 'm'@'h' for table `his`.`orders`",
            "privilege",
            "grant SELECT ON his.orders to 'm'",
        ),
        (
            1969,
            "Query execution was interrupted (max_statement_time exceeded)",
            "timeout",
            "statement timed out",
        ),
        (
            3024,
            "Query execution was interrupted, maximum statement execution time exceeded",
            "timeout",
            "statement timed out",
        ),
        (
            1792,
            "Cannot execute statement in a READ ONLY transaction",
            "readonly",
            "the sql check only reads",
        ),
        (2013, "Lost connection to MySQL server during query (timed out)", "timeout", "no answer"),
        (2006, "MySQL server has gone away", "connect", "gone away"),
        (1064, "You have an error in your SQL syntax", "query", "(error 1064)"),
    ],
)
def test_driver_errors_map_to_stages(code: int, message: str, stage: str, expected: str) -> None:
    import pymysql

    error = mysql._db_error(pymysql.err.OperationalError(code, message), user="m")
    assert error.stage == stage
    assert expected in str(error)


# --------------------------------------------------------------------------- the sql check


def test_read_only_returns_columns_and_at_most_max_rows(
    as_root: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    columns, rows = mysql.read_only(
        as_root, f"SELECT id, note FROM `{server.schema}`.items ORDER BY id;", 5, 3
    )
    assert columns == ["id", "note"]
    assert rows == [(1, "note 1"), (2, "note 2"), (3, "note 3")]
    assert as_root.value("SELECT @@in_transaction") == 0
    columns, rows = mysql.read_only(as_root, "/* report */ SHOW GLOBAL STATUS LIKE 'Uptime'", 5, 10)
    assert columns == ["Variable_name", "Value"] and rows[0][0] == "Uptime"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {table} VALUES (9999, 'x', 1)",
        "UPDATE {table} SET amount = 0",
        "  /* tidy */ DELETE FROM {table}",
        "-- maintenance\nCREATE TABLE {schema}.extra (a INT)",
        "DROP TABLE {table}",
        "SELECT * FROM {table} INTO OUTFILE '/tmp/opsctl-leak.csv'",
        "/*!50000 DROP TABLE {table} */",
        "",
    ],
)
def test_read_only_refuses_writes(
    as_root: mysql.MySQLConnection, server: SimpleNamespace, statement: str
) -> None:
    table = f"`{server.schema}`.items"
    before = query(server, f"SELECT COUNT(*), SUM(amount) FROM {table}")
    with pytest.raises(DbError) as caught:
        mysql.read_only(as_root, statement.format(table=table, schema=f"`{server.schema}`"), 5, 10)
    assert caught.value.stage == "readonly"
    assert str(caught.value).startswith("the sql check only reads:")
    assert query(server, f"SELECT COUNT(*), SUM(amount) FROM {table}") == before
    assert query(server, f"SHOW TABLES FROM `{server.schema}`") == [("items",)]


def test_a_write_hidden_in_a_function_is_stopped_by_the_read_only_transaction(
    as_root: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    table = f"`{server.schema}`.items"
    query(
        server,
        f"CREATE FUNCTION `{server.schema}`.bump() RETURNS INT MODIFIES SQL DATA"
        f" BEGIN UPDATE {table} SET amount = amount + 1 WHERE id = 1; RETURN 1; END",
    )
    before = query(server, f"SELECT amount FROM {table} WHERE id = 1")
    with pytest.raises(DbError) as caught:
        mysql.read_only(as_root, f"SELECT `{server.schema}`.bump()", 5, 1)
    assert caught.value.stage == "readonly"
    assert "READ ONLY transaction" in str(caught.value)
    assert query(server, f"SELECT amount FROM {table} WHERE id = 1") == before
    assert mysql.read_only(as_root, "SELECT 1 AS one", 5, 1) == (["one"], [(1,)])


def test_read_only_times_out_with_max_statement_time(as_root: mysql.MySQLConnection) -> None:
    began = time.monotonic()
    with pytest.raises(DbError) as caught:
        mysql.read_only(as_root, "SELECT SLEEP(5)", 1, 1)
    assert caught.value.stage == "timeout"
    assert "max_statement_time" in str(caught.value)
    assert time.monotonic() - began < 3
    # The connection is usable afterwards, without the limit.
    assert as_root.value("SELECT @@session.max_statement_time") == as_root.value(
        "SELECT @@global.max_statement_time"
    )
    assert as_root.value("SELECT @@in_transaction") == 0


def test_read_only_without_the_grant_names_it(
    connection: mysql.MySQLConnection, server: SimpleNamespace
) -> None:
    with pytest.raises(DbError) as caught:
        mysql.read_only(connection, f"SELECT * FROM `{server.schema}`.items", 5, 1)
    assert caught.value.stage == "privilege"
    assert f"grant SELECT ON {server.schema}" in str(caught.value)


def test_privileges_cover_mysql_and_mariadb() -> None:
    assert "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'monitor'@'%';" in mysql.PRIVILEGES
    assert (
        "GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'monitor'@'%';" in mysql.PRIVILEGES
    )


# --------------------------------------------------------------------------- end to end

CHECKS = [
    (DbAvailabilityCheck, State.OK),
    (DbConfigCheck, State.OK),
    (DbTablespaceCheck, State.OK),
    (DbLogsCheck, State.OK),
    (DbControlfileCheck, State.OK),
    (DbTempCheck, None),  # judged by the server's history: see below
    (DbIoCheck, None),
    (DbSessionsCheck, State.OK),
    (DbBackupCheck, State.WARNING),  # binary logging is off
]


@pytest.mark.parametrize(("kind", "expected"), CHECKS, ids=[kind.kind for kind, _ in CHECKS])
def test_each_db_check_end_to_end(monitor: Database, kind: type, expected: State | None) -> None:
    began = datetime.now(UTC)
    result = kind(DbCheckConfig(), timeout=10).run(monitor)
    assert result.details["engine"] == "mariadb"
    item_keys = [item.key for item in result.items]
    if kind.item == "tablespace":
        assert "db.tablespace.database_size" in item_keys
    else:
        assert item_keys == EXPECTED_KEYS[kind.item]
    if expected is None:  # the ratios since the server started: judged by their anchors
        main, warn, crit = {
            "temp": ("disk_tables_ratio", "25", "50"),
            "io": ("hit_ratio", "99:", "95:"),
        }[kind.item]
        metric = next(metric for metric in result.metrics if metric.name == main)
        item = next(item for item in result.items if item.key.endswith(main))
        assert item.verdict is evaluate(metric.value, Range.parse(warn), Range.parse(crit))
    else:
        assert result.state is expected, result.summary
    # The next run finds the counters of this one.
    time.sleep(1.1)
    previous = dataclasses.replace(result, started=began)
    later = kind(DbCheckConfig(), timeout=10, previous=previous).run(monitor)
    assert "baseline recorded" not in later.summary
    if kind is DbIoCheck:
        assert {metric.name for metric in later.metrics} >= {
            "reads_per_second",
            "writes_per_second",
            "transactions_per_second",
        }


def test_a_down_server_is_critical_for_availability_and_unknown_for_the_rest(
    monitor: Database,
) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        closed = probe.getsockname()[1]
    down = monitor.model_copy(update={"port": closed})
    result = DbAvailabilityCheck(DbCheckConfig(), timeout=3).run(down)
    assert result.state is State.CRITICAL
    assert result.summary.startswith("database down: Can't connect to MySQL server")
    with pytest.raises(DbError) as caught:  # the engine reports it UNKNOWN with the reason
        DbSessionsCheck(DbCheckConfig(), timeout=3).run(down)
    assert caught.value.stage == "connect"


def test_a_first_run_result_is_a_check_result(monitor: Database) -> None:
    result = DbIoCheck(DbCheckConfig(), timeout=10).run(monitor)
    assert isinstance(result, CheckResult)
    assert "first run: baseline recorded" in result.summary
