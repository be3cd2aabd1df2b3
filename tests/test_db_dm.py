"""Tests of opsctl.databases.dm: recorded result rows (DM8 cannot run here), the SQL it sends,
error-code mapping with exceptions shaped like dmPython's, the real driver against a closed
port, and the db.* check kinds end to end through the connection pool."""

from __future__ import annotations

import json
import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checks.db_availability import DbAvailabilityCheck
from checks.db_backup import DbBackupCheck
from checks.db_sessions import DbSessionsCheck
from checks.db_tablespace import DbTablespaceCheck
from opsctl.contract import CheckResult, State
from opsctl.databases import (
    ITEMS,
    ConnectionPool,
    DbError,
    Measure,
    Observation,
    RecordedConnection,
    Snapshot,
    dm as module,
)
from opsctl.databases.check import DbCheckConfig, judge
from opsctl.inventory import Database

FIXTURES = Path(__file__).parent / "fixtures" / "db" / "dm"

MAIN = {
    "availability": "db.availability.connect_time",
    "tablespace": "db.tablespace.used_percent",
    "io": "db.io.hit_ratio",
    "sessions": "db.sessions.used_percent",
    "temp": "db.temp.used_percent",
}


class Recording(RecordedConnection):
    """A RecordedConnection that also keeps the bind parameters of each statement."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__("dm", answers)
        self.parameters: list[tuple[str, Any]] = []

    def rows(self, sql: str, parameters: Any = None) -> list[dict[str, Any]]:
        self.parameters.append((sql, parameters))
        return super().rows(sql, parameters)


def answers(scenario: str = "healthy") -> dict[str, Any]:
    """Return the scenario's recorded rows, its markers first, then the healthy ones."""
    merged = json.loads((FIXTURES / f"{scenario}.json").read_text(encoding="utf-8"))
    for marker, rows in json.loads((FIXTURES / "healthy.json").read_text(encoding="utf-8")).items():
        merged.setdefault(marker, rows)
    return merged


def observe(item: str, scenario: str = "healthy", previous: Snapshot | None = None) -> Observation:
    return getattr(module, item)(Recording(answers(scenario)), previous)


def judged(item: str, scenario: str = "healthy", previous: Snapshot | None = None) -> CheckResult:
    return judge(observe(item, scenario, previous), DbCheckConfig(), MAIN.get(item, ""), "dm")


def rows_of(result: CheckResult, key: str) -> dict[str, Any]:
    return {item.item: item for item in result.items if item.key == key}


def only(result: CheckResult, key: str) -> Any:
    found = list(rows_of(result, key).values())
    assert len(found) == 1, found
    return found[0]


def measures_of(observation: Observation, key: str) -> list[Measure]:
    return [m for m in observation.measures if m.key == key]


def test_the_module_says_it_is_verified_without_a_live_server() -> None:
    assert (
        "verified by sql review and recorded result rows, not against a live server"
        in " ".join((module.__doc__ or "").split()).lower()
    )


# --- healthy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ITEMS)
def test_a_healthy_database_is_ok_on_every_item(item: str) -> None:
    result = judged(item)

    assert result.state == State.OK, result.summary
    assert result.items


def test_availability_maps_dm_status_mode_and_archive_mode() -> None:
    values = {item.key: item.value for item in judged("availability").items}

    assert values["db.availability.version"] == "DM Database Server 64 V8"
    assert values["db.availability.status"] == "OPEN"
    assert values["db.availability.started"] == "2026-11-01T22:15:03"
    assert values["db.availability.uptime"] == "21 d 22 h"
    assert values["db.availability.open_mode"] == "read write"
    assert values["db.availability.role"] == "primary (PRIMARY)"
    assert values["db.availability.archive_mode"] == "on"


def test_a_standby_is_read_only_and_a_mounted_instance_critical() -> None:
    recorded = answers()
    recorded["v$instance"] = [dict(recorded["v$instance"][0], **{"MODE$": "STANDBY"})]
    standby = judge(module.availability(Recording(recorded), None), DbCheckConfig(), "", "dm")
    recorded["v$instance"] = [dict(recorded["v$instance"][0], **{"STATUS$": "MOUNT"})]
    mounted = judge(module.availability(Recording(recorded), None), DbCheckConfig(), "", "dm")

    assert only(standby, "db.availability.open_mode").value == "read only"
    assert only(standby, "db.availability.role").value == "standby (STANDBY)"
    assert standby.state == State.OK
    assert only(mounted, "db.availability.status").verdict == State.CRITICAL


def test_a_restart_since_the_previous_run_is_a_warning() -> None:
    previous = Snapshot(datetime.now(UTC), {"started": "2026-10-20T03:00:00"})

    result = judged("availability", previous=previous)

    assert only(result, "db.availability.restarted").verdict == State.WARNING
    assert result.state == State.WARNING


def test_archiving_off_is_a_warning_and_archive_destinations_do_not_apply() -> None:
    availability = judged("availability", "archive_off")
    logs = observe("logs", "archive_off")

    assert only(availability, "db.availability.archive_mode").verdict == State.WARNING
    (dest,) = measures_of(logs, "db.logs.archive_dest_status")
    assert dest.display == "not applicable: archiving is off (V$DATABASE.ARCH_MODE = N)"


def test_config_records_dm_ini_parameters_and_creation_settings() -> None:
    by_name = {m.labels["name"]: m for m in observe("config").measures}

    assert set(module.CONFIG_PARAMETERS) <= set(by_name)
    assert by_name["BUFFER"].display == "16000 MB"
    assert by_name["MAX_SESSIONS"].value == "1500"
    assert by_name["CHARSET"].value == "UTF-8"
    assert by_name["CASE_SENSITIVE"].display == "yes"
    assert by_name["PAGE_SIZE"].display == "32 KB"


# --- tablespaces --------------------------------------------------------------------------


def test_tablespace_use_is_measured_against_the_autoextend_ceiling() -> None:
    result = judged("tablespace", "tablespace_autoextend")
    used = rows_of(result, "db.tablespace.used_percent")

    assert used["Tablespace EMR / used"].verdict == State.WARNING  # 97% of its MAXSIZE
    assert used["Tablespace EMR_IDX / used"].verdict == State.OK  # 97% of its size, 10% of max
    assert used["Tablespace EMR_IDX / used"].value.startswith("9.7% of 200 GB (autoextend")
    # Autoextend without MAXSIZE: the file system is the limit, watched by the filesystem check.
    assert used["Tablespace MAIN / used"].verdict == State.OK
    assert "file system is the limit" in used["Tablespace MAIN / used"].value
    assert used["Tablespace SYSTEM / used"].verdict == State.CRITICAL  # fixed size, 99%
    assert result.state == State.CRITICAL


def test_tablespace_contents_and_unlimited_ceilings() -> None:
    observation = observe("tablespace")
    percent = {m.labels["name"]: m for m in measures_of(observation, "db.tablespace.used_percent")}
    ceilings = {m.labels["name"]: m for m in measures_of(observation, "db.tablespace.max")}

    assert percent["ROLL"].labels["contents"] == "UNDO"
    assert percent["EMR"].value == 39.0
    assert ceilings["EMR"].value == 107374182400
    assert ceilings["MAIN"].value is None
    assert ceilings["MAIN"].display is not None and ceilings["MAIN"].display.startswith("unlimited")


def test_temp_uses_the_temp_tablespace_and_says_rates_do_not_apply() -> None:
    observation = observe("temp")
    (used,) = measures_of(observation, "db.temp.used_percent")
    (rates,) = measures_of(observation, "db.temp.bytes_per_second")

    assert used.labels == {"name": "TEMP", "contents": "TEMPORARY"}
    assert used.value == pytest.approx(3.12, abs=0.01)
    assert rates.display is not None and rates.display.startswith("not applicable:")


# --- logs and control files -------------------------------------------------------------------


def test_redo_files_and_archive_destinations() -> None:
    result = judged("logs")

    assert only(result, "db.logs.redo_files").value.startswith("2 files (used in rotation")
    sizes = rows_of(result, "db.logs.redo_file_size")
    assert sizes["Redo file /dm8/data/DAMENG/DAMENG01.log / size"].value == "2.0 GB"
    dests = rows_of(result, "db.logs.archive_dest_status")
    assert dests["Archive destination /dm8/arch / status"].value == (
        "VALID (LOCAL, space limit 100 GB)"
    )
    assert only(result, "db.logs.archive_files_peak_per_hour").value == (
        "4 in the hour 2026-11-23 01:00"
    )


def test_an_invalid_archive_destination_is_critical() -> None:
    result = judged("logs", "archive_invalid")

    dest = rows_of(result, "db.logs.archive_dest_status")["Archive destination DMSTBY / status"]
    assert dest.verdict == State.CRITICAL
    assert result.state == State.CRITICAL


def test_control_file_paths_and_backups() -> None:
    result = judged("controlfile")

    assert only(result, "db.controlfile.count").value == "1 in CTL_PATH"
    assert list(rows_of(result, "db.controlfile.status")) == [
        "Control file /dm8/data/DAMENG/dm.ctl / status"
    ]
    assert only(result, "db.controlfile.backup_path").value == (
        "/dm8/data/DAMENG/ctl_bak, keeping 10 copies (CTL_BAK_NUM)"
    )


def test_control_file_without_backups_is_a_warning() -> None:
    result = judged("controlfile", "controlfile_no_backup")

    assert only(result, "db.controlfile.backup_path").verdict == State.WARNING
    assert result.state == State.WARNING


# --- io and sessions ------------------------------------------------------------------------


def test_io_first_run_is_a_baseline_then_rates() -> None:
    first_run = observe("io")
    previous = Snapshot(datetime.now(UTC) - timedelta(seconds=600), first_run.counters)

    later = observe("io", "io_later", previous)
    value = {m.key: m.value for m in later.measures}

    assert measures_of(first_run, "db.io.reads_per_second")[0].value is None
    assert first_run.notes == ["first run: baseline recorded; rates from the next run"]
    assert measures_of(first_run, "db.io.hit_ratio")[0].value == pytest.approx(99.56, abs=0.01)
    assert value["db.io.reads_per_second"] == pytest.approx(100, rel=0.01)
    assert value["db.io.writes_per_second"] == pytest.approx(50, rel=0.01)
    assert value["db.io.transactions_per_second"] == pytest.approx(200, rel=0.01)
    assert value["db.io.hit_ratio"] == pytest.approx(99.0, abs=0.01)


def test_sessions_near_max_sessions_are_critical() -> None:
    result = judged("sessions", "sessions_near_max")

    used = only(result, "db.sessions.used_percent")
    assert used.verdict == State.CRITICAL
    assert used.value == "97.3% (1460 of 1500)"


def test_long_transactions_and_blocked_locks_are_warnings() -> None:
    result = judged("sessions", "blocked_sessions")

    long_transactions = only(result, "db.sessions.long_transactions")
    assert long_transactions.verdict == State.WARNING
    assert long_transactions.value == (
        "1 (oldest: session 140212331577456 EMR ::ffff:10.8.2.41, open at least 2 h 35 min)"
    )
    assert only(result, "db.sessions.lock_waits").verdict == State.WARNING


# --- backups ------------------------------------------------------------------------------


def test_backup_sets_give_the_age_of_each_kind() -> None:
    observation = observe("backup")
    ages = {m.labels.get("name"): m for m in observation.measures if m.key.endswith("_age")}

    assert ages["full"].value == pytest.approx(1.38, abs=0.01)
    assert ages["incremental"].value == pytest.approx(0.38, abs=0.01)
    assert ages["archivelog"].value == pytest.approx(0.4, abs=0.01)
    (failed,) = measures_of(observation, "db.backup.failed_jobs")
    (corrupt,) = measures_of(observation, "db.backup.corrupt_blocks")
    assert failed.display is not None and failed.display.startswith("not applicable:")
    assert corrupt.display is not None and corrupt.display.startswith("not applicable:")


def test_a_last_full_backup_too_old_is_a_warning() -> None:
    result = judged("backup", "full_backup_old")

    full = only(result, "db.backup.last_full_age")
    assert full.verdict == State.WARNING
    assert full.value.startswith("10.4 days ago (DB_EMR_FULL_20261113_010002")


def test_no_backup_set_at_all_is_a_warning_naming_the_backup_directory() -> None:
    result = judged("backup", "no_backups")

    full = only(result, "db.backup.last_full_age")
    assert full.verdict == State.WARNING
    assert "BAK_PATH" in full.value


# --- the SQL sent ---------------------------------------------------------------------------

EXPECTED_VIEWS = {
    "availability": {"v$instance", "v$database"},
    "config": {"v$dm_ini"},
    "tablespace": {"dba_data_files", "dba_free_space"},
    "logs": {"v$rlogfile", "v$arch_status", "v$dm_arch_ini", "v$arch_file", "v$instance"},
    "controlfile": {"v$dm_ini"},
    "temp": {"v$tablespace", "v$datafile"},
    "io": {"v$sysstat", "v$instance"},
    "sessions": {"v$sessions", "v$trx", "v$lock", "v$dm_ini"},
    "backup": {"v$backupset"},
}
WRITES = re.compile(
    r"\b(insert|update|delete|merge|create|alter|drop|truncate|grant|revoke|commit|begin|"
    r"execute|lock\s+table)\b",
    re.IGNORECASE,
)
STATEMENTS = {
    value
    for name, value in vars(module).items()
    if name.endswith("_SQL") and isinstance(value, str)
}


@pytest.mark.parametrize("item", ITEMS)
def test_each_item_reads_the_expected_views_with_static_statements(item: str) -> None:
    connection = Recording(answers())

    getattr(module, item)(connection, None)

    sent = " ".join(connection.asked).lower()
    named = set(re.findall(r"\b((?:v\$|dba_)[a-z_$#]+)", sent))
    assert EXPECTED_VIEWS[item] <= named
    for statement in connection.asked:
        assert not WRITES.search(statement), statement
        assert statement in STATEMENTS


def test_values_are_bound_as_parameters() -> None:
    connection = Recording(answers())
    for item in ITEMS:
        getattr(module, item)(connection, None)

    bound = {sql: parameters for sql, parameters in connection.parameters if parameters}
    assert bound == {
        module.ARCHIVE_FILES_SQL: (-24,),
        module.LONG_TRANSACTIONS_SQL: (3600,),
    }
    for sql, parameters in bound.items():
        assert sql.count("?") == len(parameters)


def test_privileges_name_the_system_roles() -> None:
    assert "GRANT VTI, SOI TO opsmon;" in module.PRIVILEGES
    assert "VTI: query the dynamic performance views" in module.PRIVILEGES


# --- driver and errors ----------------------------------------------------------------------


class FakeDmError(Exception):
    """Shaped like dmPython.DatabaseError: args[0] is a DmError with code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(
            SimpleNamespace(code=code, message=f"[CODE:{code}]{message}", context="", offset=0)
        )


def target(**changes: Any) -> Database:
    fields: dict[str, Any] = {
        "name": "emr",
        "engine": "dm",
        "host": "10.0.0.2",
        "user": "OPSMON",
        "password": "env:OPSCTL_TEST_DM_PASSWORD",
    }
    return Database(**{**fields, **changes})


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dmPython", None)

    with pytest.raises(DbError) as raised:
        module.connect(target(), 5)

    assert raised.value.stage == "driver"
    assert str(raised.value) == "the DM8 driver is not installed: pip install 'opsctl[dm]'"


@pytest.mark.parametrize(
    ("code", "message", "stage"),
    [
        (-2501, "Invalid username or password", "auth"),
        (-2503, "Login password expired", "auth"),
        (-2508, "Too many login fail times", "auth"),
        (-70028, "Create SOCKET connection failure", "connect"),
        (-70019, "Network communication failure", "connect"),
        (-6029, "Connection timeout", "connect"),
        (-6001, "Exceed maximum session limitation", "connect"),
        (-5504, "No select privilege on object [V$BACKUPSET]", "privilege"),
        (-5669, "Insufficient privileges", "privilege"),
        (-7049, "Executing timeout", "timeout"),
        (-6407, "Lock timeout", "timeout"),
        (-6506, "Readonly transaction", "readonly"),
        (-2106, "Invalid table or view name [V$ARCH_STATUS]", "query"),
        (-2007, "Syntax error", "query"),
    ],
)
def test_driver_errors_map_to_stages_by_code(code: int, message: str, stage: str) -> None:
    error = module.error_from_driver(FakeDmError(code, message), "OPSMON", module.BACKUPSET_SQL)

    assert error.stage == stage
    assert f"[CODE:{code}]" in str(error)


def test_a_code_only_in_the_message_is_found_too() -> None:
    error = module.error_from_driver(Exception("[CODE:-2501]用户名或密码错误"))

    assert error.stage == "auth"


def test_a_missing_privilege_names_the_view_and_the_roles() -> None:
    error = module.error_from_driver(
        FakeDmError(-5504, "No select privilege on object [V$BACKUPSET]"),
        "OPSMON",
        module.BACKUPSET_SQL,
    )

    assert str(error).startswith("OPSMON cannot read V$BACKUPSET: GRANT VTI, SOI TO OPSMON")


class FakeCursor:
    def __init__(self, raw: FakeRaw) -> None:
        self.raw = raw
        self.description: list[tuple[str]] = []

    def execute(self, sql: str, parameters: Any = None) -> None:
        self.raw.executed.append((sql, parameters, self.raw.autocommit))
        if self.raw.fail_with is not None and sql != "SET TRANSACTION READ ONLY":
            raise self.raw.fail_with
        self.description = [("PARA_NAME",), ("PARA_VALUE",)]

    def fetchall(self) -> list[tuple]:
        return [("MAX_SESSIONS", "1500")]

    def fetchmany(self, size: int) -> list[tuple]:
        self.raw.fetched = size
        return [("MAX_SESSIONS", "1500"), ("BUFFER", "16000")][:size]

    def close(self) -> None:
        pass


class FakeRaw:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.executed: list[tuple[str, Any, bool]] = []
        self.fail_with = fail_with
        self.autocommit = True
        self.connection_timeout = 30
        self.rollbacks = 0
        self.fetched: int | None = None

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        pass


def fake_driver(error: Exception | None = None) -> Any:
    calls: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> FakeRaw:
        calls.append(kwargs)
        if error is not None:
            raise error
        return FakeRaw()

    return SimpleNamespace(
        connect=connect, Error=FakeDmError, LANGUAGE_EN=1, PG_UTF8=1, calls=calls
    )


def test_connect_passes_server_port_and_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_TEST_DM_PASSWORD", "s3cret")
    driver = fake_driver()
    monkeypatch.setitem(sys.modules, "dmPython", driver)

    connection = module.connect(target(), 7.5)

    (call,) = driver.calls
    assert (call["user"], call["password"]) == ("OPSMON", "s3cret")
    assert (call["server"], call["port"]) == ("10.0.0.2", 5236)
    assert (call["login_timeout"], call["connection_timeout"]) == (8, 8)
    assert connection.rows(module.PARAMETERS_SQL) == [
        {"para_name": "MAX_SESSIONS", "para_value": "1500"}
    ]
    assert connection.rows(module.LONG_TRANSACTIONS_SQL, (3600,)) == [
        {"para_name": "MAX_SESSIONS", "para_value": "1500"}
    ]
    assert connection.raw.executed[-1][1] == (3600,)


def test_a_refused_login_is_an_auth_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSCTL_TEST_DM_PASSWORD", "s3cret")
    monkeypatch.setitem(
        sys.modules, "dmPython", fake_driver(FakeDmError(-2501, "Invalid username or password"))
    )

    with pytest.raises(DbError) as raised:
        module.connect(target(), 5)

    assert raised.value.stage == "auth"
    assert "s3cret" not in str(raised.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_real_driver_reports_a_closed_port_as_a_connect_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("dmPython")
    monkeypatch.setenv("OPSCTL_TEST_DM_PASSWORD", "s3cret")

    with pytest.raises(DbError) as raised:
        module.connect(target(host="127.0.0.1", port=free_port()), 2)

    assert raised.value.stage == "connect"
    assert "[CODE:-70028]" in str(raised.value)
    assert "s3cret" not in str(raised.value)


# --- read_only for the sql check --------------------------------------------------------------


def read_only_connection(raw: FakeRaw) -> module.DmConnection:
    return module.DmConnection(raw, SimpleNamespace(Error=FakeDmError), "OPSMON")


def test_read_only_runs_in_a_read_only_transaction_without_autocommit() -> None:
    raw = FakeRaw()

    columns, rows = module.read_only(
        read_only_connection(raw), "select para_name, para_value from v$dm_ini", 4.2, 1
    )

    assert [(sql, autocommit) for sql, _, autocommit in raw.executed] == [
        ("SET TRANSACTION READ ONLY", False),
        ("select para_name, para_value from v$dm_ini", False),
    ]
    assert (columns, rows) == (["PARA_NAME", "PARA_VALUE"], [("MAX_SESSIONS", "1500")])
    assert raw.fetched == 1
    assert raw.rollbacks == 1
    assert (raw.autocommit, raw.connection_timeout) == (True, 30)  # restored


@pytest.mark.parametrize(
    "sql", ["UPDATE emr.beds SET free = 1", "DROP TABLE emr.t", "SELECT * FROM t FOR UPDATE"]
)
def test_read_only_refuses_anything_but_a_query_before_sending_it(sql: str) -> None:
    raw = FakeRaw()

    with pytest.raises(DbError) as raised:
        module.read_only(read_only_connection(raw), sql, 4, 10)

    assert raised.value.stage == "readonly"
    assert raw.executed == []


def test_a_write_refused_by_the_read_only_transaction_is_a_readonly_error() -> None:
    raw = FakeRaw(FakeDmError(-6506, "Readonly transaction"))

    with pytest.raises(DbError) as raised:
        module.read_only(read_only_connection(raw), "SELECT f_writes() FROM DUAL", 4, 10)

    assert raised.value.stage == "readonly"
    assert raw.rollbacks == 1


# --- end to end through the check kinds and the pool -------------------------------------------


@pytest.fixture
def recorded_dm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"scenario": "healthy", "connects": 0}

    def connect(target: Any, timeout: float) -> RecordedConnection:
        state["connects"] += 1
        return RecordedConnection("dm", answers(state["scenario"]))

    pool = ConnectionPool()
    monkeypatch.setattr(module, "connect", connect)
    monkeypatch.setattr("opsctl.databases.check.default_pool", lambda: pool)
    return state


EMR = Database(name="emr", engine="dm", host="10.0.0.2", user="OPSMON")


def test_the_checks_run_through_the_pool(recorded_dm: dict[str, Any]) -> None:
    recorded_dm["scenario"] = "tablespace_autoextend"

    tablespace = DbTablespaceCheck(DbCheckConfig(), timeout=10).run(EMR)
    sessions = DbSessionsCheck(DbCheckConfig(), timeout=10).run(EMR)
    backup = DbBackupCheck(DbCheckConfig(), timeout=10).run(EMR)

    assert tablespace.state == State.CRITICAL
    assert {m.labels["name"] for m in tablespace.metrics if m.name == "used_percent"} == {
        "EMR",
        "EMR_IDX",
        "MAIN",
        "SYSTEM",
    }
    assert (sessions.state, backup.state) == (State.OK, State.OK)
    assert recorded_dm["connects"] == 1


def test_a_restart_is_seen_through_the_previous_result(recorded_dm: dict[str, Any]) -> None:
    previous = CheckResult(
        State.OK,
        "OPEN read write",
        details={"counters": {"started": "2026-10-20T03:00:00"}},
        started=datetime.now(UTC) - timedelta(minutes=5),
    )

    result = DbAvailabilityCheck(DbCheckConfig(), timeout=10, previous=previous).run(EMR)

    assert result.state == State.WARNING
    assert only(result, "db.availability.restarted").verdict == State.WARNING


def test_an_unreachable_database_is_critical_for_availability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("dmPython")
    monkeypatch.setenv("OPSCTL_TEST_DM_PASSWORD", "s3cret")

    result = DbAvailabilityCheck(DbCheckConfig(), timeout=2).run(
        target(host="127.0.0.1", port=free_port())
    )

    assert result.state == State.CRITICAL
    assert "[CODE:-70028]" in result.summary
