"""Tests of opsctl.databases.oracle: recorded result rows (Oracle cannot run here), the SQL it
sends, error-code mapping with exceptions shaped like python-oracledb's, the real driver against
a closed port, and the db.* check kinds end to end through the connection pool."""

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
from checks.db_controlfile import DbControlfileCheck
from checks.db_logs import DbLogsCheck
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
    oracle as module,
)
from opsctl.databases.check import DbCheckConfig, judge
from opsctl.inventory import Database

FIXTURES = Path(__file__).parent / "fixtures" / "db" / "oracle"

# The main measure of each item, as the check kinds in checks/db_*.py name them.
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
        super().__init__("oracle", answers)
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
    return judge(observe(item, scenario, previous), DbCheckConfig(), MAIN.get(item, ""), "oracle")


def rows_of(result: CheckResult, key: str) -> dict[str, Any]:
    """Return the result's items of one key by label."""
    return {item.item: item for item in result.items if item.key == key}


def only(result: CheckResult, key: str) -> Any:
    found = list(rows_of(result, key).values())
    assert len(found) == 1, found
    return found[0]


def measures_of(observation: Observation, key: str) -> list[Measure]:
    return [m for m in observation.measures if m.key == key]


# --- statement of verification -------------------------------------------------------------


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
    assert result.items, "an item is never silently empty"


def test_availability_reports_version_start_uptime_role_and_archive_mode() -> None:
    result = judged("availability")
    values = {item.key: item.value for item in result.items}

    assert values["db.availability.version"] == "19.0.0.0.0"
    assert values["db.availability.started"] == "2026-10-02T03:12:45"
    assert values["db.availability.uptime"] == "52 d 7 h"
    assert values["db.availability.open_mode"] == "READ WRITE"
    assert values["db.availability.role"] == "primary"
    assert values["db.availability.archive_mode"] == "on (ARCHIVELOG)"
    assert values["db.availability.restarted"] == "no (first run)"
    assert result.details["counters"] == {"started": "2026-10-02T03:12:45"}


def test_a_restart_since_the_previous_run_is_a_warning() -> None:
    previous = Snapshot(datetime.now(UTC), {"started": "2026-09-14T22:01:10"})

    result = judged("availability", previous=previous)

    restarted = only(result, "db.availability.restarted")
    assert result.state == State.WARNING
    assert restarted.verdict == State.WARNING
    assert "previously 2026-09-14T22:01:10" in restarted.value
    assert "alert log" in restarted.advice


def test_the_same_start_time_as_before_is_no_restart() -> None:
    previous = Snapshot(datetime.now(UTC), {"started": "2026-10-02T03:12:45"})

    assert (
        only(judged("availability", previous=previous), "db.availability.restarted").value == "no"
    )


def test_a_slow_login_raises_the_connect_time() -> None:
    connection = Recording(answers())
    connection.connect_seconds = 6.2  # type: ignore[attr-defined]

    result = judge(
        module.availability(connection, None), DbCheckConfig(), MAIN["availability"], "oracle"
    )

    assert only(result, "db.availability.connect_time").verdict == State.CRITICAL


def test_config_records_each_key_parameter_and_the_character_sets() -> None:
    observation = observe("config")
    by_name = {m.labels["name"]: m for m in observation.measures}

    assert set(module.CONFIG_PARAMETERS) <= set(by_name)
    assert by_name["sga_target"].value == "34359738368"
    assert by_name["sga_target"].display == "32G"
    assert by_name["undo_retention"].display == "10800 s"
    assert by_name["log_archive_dest_1"].display == "not set"
    assert by_name["NLS_CHARACTERSET"].value == "ZHS16GBK"
    assert by_name["NLS_NCHAR_CHARACTERSET"].value == "AL16UTF16"
    assert {m.key for m in observation.measures} == {"db.config.parameter"}


# --- tablespaces --------------------------------------------------------------------------


def test_tablespace_use_is_measured_against_the_autoextend_ceiling() -> None:
    result = judged("tablespace", "tablespace_autoextend")
    used = rows_of(result, "db.tablespace.used_percent")

    # 97% of its autoextend ceiling: near the end of what it can grow to.
    assert used["Tablespace HIS_DATA / used"].verdict == State.WARNING
    assert used["Tablespace HIS_DATA / used"].value.startswith("97.0% of 64 GB (autoextend")
    # 97% of its current size but far from its ceiling: it will simply grow.
    assert used["Tablespace HIS_INDEX / used"].verdict == State.OK
    assert used["Tablespace HIS_INDEX / used"].value.startswith("15.2% of 128 GB (autoextend")
    # A fixed-size tablespace is judged against its size.
    assert used["Tablespace HIS_ARCH / used"].verdict == State.CRITICAL
    assert "fixed size" in used["Tablespace HIS_ARCH / used"].value
    # Undo: 95% of its current size, 30% of its ceiling.
    assert used["Tablespace UNDOTBS1 / used"].verdict == State.OK
    assert used["Tablespace TEMP / used"].verdict == State.WARNING
    assert used["Tablespace HIS_OLD / used"].verdict == State.WARNING
    assert used["Tablespace HIS_OLD / used"].value == "offline: use unknown"
    assert result.state == State.CRITICAL


def test_tablespace_measures_carry_contents_and_sizes() -> None:
    observation = observe("tablespace")
    percent = {m.labels["name"]: m for m in measures_of(observation, "db.tablespace.used_percent")}

    assert percent["TEMP"].labels["contents"] == "TEMPORARY"
    assert percent["UNDOTBS1"].labels["contents"] == "UNDO"
    assert percent["HIS_DATA"].value == 56.25
    assert percent["HIS_DATA"].warn is not None and percent["HIS_DATA"].warn.end == 90
    assert percent["HIS_DATA"].crit is not None and percent["HIS_DATA"].crit.end == 98
    sizes = {m.labels["name"]: m.value for m in measures_of(observation, "db.tablespace.size")}
    ceilings = {m.labels["name"]: m.value for m in measures_of(observation, "db.tablespace.max")}
    used = {m.labels["name"]: m.value for m in measures_of(observation, "db.tablespace.used")}
    assert sizes["HIS_DATA"] == 42949672960
    assert ceilings["HIS_DATA"] == 68719476736
    assert used["HIS_DATA"] == 38654705664
    assert observation.counters["tablespace_used"]["HIS_DATA"] == 38654705664


# --- logs ---------------------------------------------------------------------------------


def test_an_invalid_redo_member_is_critical_and_a_stale_one_a_warning() -> None:
    result = judged("logs", "redo_member_invalid")
    members = rows_of(result, "db.logs.redo_member_status")

    assert members["Redo member /u02/oradata/HISDB/redo01b.log / status"].verdict == State.CRITICAL
    assert members["Redo member /u02/oradata/HISDB/redo02b.log / status"].verdict == State.WARNING
    assert members["Redo member /u01/oradata/HISDB/redo01a.log / status"].value == "VALID"
    assert result.state == State.CRITICAL


def test_single_member_redo_groups_are_a_warning_to_multiplex() -> None:
    result = judged("logs", "redo_single_member")
    groups = rows_of(result, "db.logs.redo_group_members")

    assert len(groups) == 3
    assert {item.verdict for item in groups.values()} == {State.WARNING}
    assert "Multiplex your redo logs" in groups["Redo group 1 / members"].advice


def test_redo_groups_with_two_members_are_ok() -> None:
    groups = rows_of(judged("logs"), "db.logs.redo_group_members")

    assert {item.verdict for item in groups.values()} == {State.OK}
    assert groups["Redo group 3 / members"].value == "2 members, CURRENT, 1.0 GB"


def test_log_switches_are_judged_on_the_busiest_hour() -> None:
    healthy = only(judged("logs"), "db.logs.switches_peak_per_hour")
    busy = only(judged("logs", "redo_single_member"), "db.logs.switches_peak_per_hour")

    assert healthy.verdict == State.OK
    assert healthy.value == "9 in the hour 2026-11-22 02:00 (26 in 24 h)"
    assert busy.verdict == State.CRITICAL  # 74 switches in one hour


def test_an_archive_destination_in_error_is_critical() -> None:
    result = judged("logs", "archive_dest_error")
    dest = rows_of(result, "db.logs.archive_dest_status")[
        "Archive destination LOG_ARCHIVE_DEST_2 / status"
    ]

    assert dest.verdict == State.CRITICAL
    assert "ORA-12541" in dest.value
    assert result.state == State.CRITICAL


def test_archive_destinations_do_not_apply_in_noarchivelog_mode() -> None:
    recorded = answers()
    recorded["v$instance"] = [dict(recorded["v$instance"][0], LOG_MODE="NOARCHIVELOG")]

    observation = module.logs(Recording(recorded), None)

    (dest,) = measures_of(observation, "db.logs.archive_dest_status")
    assert dest.display == "not applicable: the database runs in NOARCHIVELOG mode"
    assert dest.verdict == 0


def test_a_nearly_full_recovery_area_is_critical_net_of_reclaimable_space() -> None:
    result = judged("logs", "fra_nearly_full")
    fra = only(result, "db.logs.fra_used_percent")

    assert fra.verdict == State.CRITICAL
    assert fra.value.startswith("99.0% of 200 GB not reclaimable (ARCHIVED LOG 85%")
    assert "DB_RECOVERY_FILE_DEST_SIZE" in fra.advice


def test_the_healthy_recovery_area_counts_reclaimable_space_as_free() -> None:
    (fra,) = measures_of(observe("logs"), "db.logs.fra_used_percent")

    assert fra.value == 35.0  # (90 GB used - 20 GB reclaimable) / 200 GB


# --- control files ------------------------------------------------------------------------


def test_a_single_control_file_is_a_warning() -> None:
    result = judged("controlfile", "controlfile_single")

    assert only(result, "db.controlfile.count").verdict == State.WARNING
    assert result.state == State.WARNING


def test_an_invalid_control_file_is_critical_and_each_path_is_an_item() -> None:
    result = judged("controlfile", "controlfile_invalid")
    files = rows_of(result, "db.controlfile.status")

    assert files["Control file /u02/oradata/HISDB/control02.ctl / status"].verdict == State.CRITICAL
    assert files["Control file /u01/oradata/HISDB/control01.ctl / status"].verdict == State.OK
    assert result.state == State.CRITICAL


# --- temp and io --------------------------------------------------------------------------


def test_temp_reports_temporary_tablespaces_and_a_baseline_for_rates() -> None:
    observation = observe("temp")
    (used,) = measures_of(observation, "db.temp.used_percent")

    assert used.labels == {"name": "TEMP", "contents": "TEMPORARY"}
    assert used.value == pytest.approx(0.31, abs=0.01)
    (sorts,) = measures_of(observation, "db.temp.disk_sorts_per_second")
    assert sorts.value is None
    assert sorts.display == "baseline recorded; rates from the next run"


def test_io_first_run_records_a_baseline_and_the_hit_ratio_since_startup() -> None:
    observation = observe("io")
    reads = measures_of(observation, "db.io.reads_per_second")[0]
    hit = measures_of(observation, "db.io.hit_ratio")[0]

    assert reads.value is None
    assert reads.display == "baseline recorded; rates from the next run"
    assert observation.notes == ["first run: baseline recorded; rates from the next run"]
    assert hit.value == pytest.approx(99.37, abs=0.01)
    assert hit.display is not None and "since instance startup" in hit.display
    assert observation.counters["physical reads"] == 812345678
    assert observation.counters["started"] == "2026-10-02T03:12:45"


def test_io_second_run_gives_rates_from_the_difference_of_counters() -> None:
    first_run = observe("io")
    previous = Snapshot(datetime.now(UTC) - timedelta(seconds=600), first_run.counters)

    observation = observe("io", "io_later", previous)
    value = {m.key: m.value for m in observation.measures}

    assert value["db.io.reads_per_second"] == pytest.approx(100, rel=0.01)
    assert value["db.io.writes_per_second"] == pytest.approx(50, rel=0.01)
    assert value["db.io.transactions_per_second"] == pytest.approx(201, rel=0.01)
    assert value["db.io.hit_ratio"] == pytest.approx(99.17, abs=0.01)
    assert observation.notes == []


def test_io_after_a_restart_records_a_new_baseline() -> None:
    previous = Snapshot(
        datetime.now(UTC) - timedelta(seconds=600),
        {**observe("io").counters, "started": "2026-09-14T22:01:10"},
    )

    observation = observe("io", "io_later", previous)

    assert measures_of(observation, "db.io.reads_per_second")[0].value is None
    assert observation.notes == [
        "instance restarted since the last run: baseline recorded; rates from the next run"
    ]


def test_temp_second_run_gives_sorts_and_bytes_per_second() -> None:
    previous = Snapshot(datetime.now(UTC) - timedelta(seconds=600), observe("temp").counters)

    observation = observe("temp", "io_later", previous)
    value = {m.key: m.value for m in observation.measures}

    assert value["db.temp.disk_sorts_per_second"] == pytest.approx(0.1, abs=0.01)
    assert value["db.temp.bytes_per_second"] == pytest.approx(10 * 8192, rel=0.01)


# --- sessions -----------------------------------------------------------------------------


def test_sessions_and_processes_near_their_limits() -> None:
    result = judged("sessions", "sessions_near_max")

    assert only(result, "db.sessions.used_percent").verdict == State.CRITICAL
    assert only(result, "db.sessions.used_percent").value == "96.4% (1480 of 1536)"
    assert only(result, "db.sessions.processes_used_percent").verdict == State.WARNING
    assert result.state == State.CRITICAL


def test_long_transactions_and_blocked_sessions_are_warnings() -> None:
    result = judged("sessions", "blocked_sessions")
    long_transactions = only(result, "db.sessions.long_transactions")
    lock_waits = only(result, "db.sessions.lock_waits")

    assert long_transactions.verdict == State.WARNING
    assert long_transactions.value == "1 (oldest: SID 1234 HIS JDBC Thin Client, open 2 h 3 min)"
    assert lock_waits.verdict == State.WARNING
    assert lock_waits.value.startswith("2 (longest: SID 877 waits 31 min on SID 1234")


# --- backups ------------------------------------------------------------------------------


def test_an_rman_job_failed_in_the_last_three_days_is_critical() -> None:
    result = judged("backup", "rman_failed")

    failed = only(result, "db.backup.failed_jobs")
    assert failed.verdict == State.CRITICAL
    assert failed.value == "1 (latest started 2026-11-22T01:00:03)"
    assert only(result, "db.backup.jobs_with_errors").verdict == State.WARNING
    assert only(result, "db.backup.last_incremental_age").verdict == State.WARNING
    assert result.state == State.CRITICAL


def test_a_last_full_backup_too_old_is_a_warning_and_missing_logs_backups_too() -> None:
    result = judged("backup", "full_backup_old")

    full = only(result, "db.backup.last_full_age")
    assert full.verdict == State.WARNING
    assert full.value == "10.3 days ago (ended 2026-11-13T02:05:44)"
    # ARCHIVELOG mode without any archived-log backup.
    assert only(result, "db.backup.last_archivelog_age").verdict == State.WARNING
    # No incremental backups: a full-only schedule is fine.
    assert only(result, "db.backup.last_incremental_age").verdict == State.OK


def test_no_full_backup_at_all_is_critical() -> None:
    recorded = answers("full_backup_old")
    recorded["v$rman_backup_job_details"] = [
        dict(recorded["v$rman_backup_job_details"][0], LAST_FULL_AGE_DAYS=None, LAST_FULL_END=None)
    ]

    observation = module.backup(Recording(recorded), None)

    (full,) = measures_of(observation, "db.backup.last_full_age")
    assert full.verdict == 2
    assert full.labels == {"name": "full"}


def test_block_corruption_is_critical() -> None:
    result = judged("backup", "block_corruption")

    corrupt = only(result, "db.backup.corrupt_blocks")
    assert corrupt.verdict == State.CRITICAL
    assert corrupt.value.startswith("17 blocks in 2 ranges")


# --- the SQL sent ---------------------------------------------------------------------------

EXPECTED_VIEWS = {
    "availability": {"v$instance", "v$database"},
    "config": {"v$parameter", "nls_database_parameters"},
    "tablespace": {
        "dba_tablespaces",
        "dba_data_files",
        "dba_free_space",
        "dba_undo_extents",
        "dba_temp_files",
        "dba_temp_free_space",
    },
    "logs": {
        "v$log",
        "v$logfile",
        "v$log_history",
        "v$archive_dest",
        "v$recovery_file_dest",
        "v$recovery_area_usage",
    },
    "controlfile": {"v$controlfile"},
    "temp": {"dba_temp_free_space", "v$sysstat", "v$parameter"},
    "io": {"v$sysstat", "v$instance"},
    "sessions": {"v$session", "v$process", "v$parameter", "v$transaction"},
    "backup": {"v$rman_backup_job_details", "v$backup_set_details", "v$database_block_corruption"},
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
    named = set(re.findall(r"\b((?:v\$|dba_|nls_)[a-z_$#]+)", sent))
    assert EXPECTED_VIEWS[item] <= named
    for statement in connection.asked:
        assert not WRITES.search(statement), statement
        # Static text: values reach the server as bind parameters, never formatted in.
        assert statement in STATEMENTS


def test_values_are_bound_by_name() -> None:
    connection = Recording(answers())
    for item in ITEMS:
        getattr(module, item)(connection, None)

    bound = {sql: parameters for sql, parameters in connection.parameters if parameters}
    assert bound == {
        module.LOG_HISTORY_SQL: {"hours": 24},
        module.LONG_TRANSACTIONS_SQL: {"seconds": 3600},
        module.LOCK_WAITS_SQL: {"seconds": 60},
        module.BACKUP_JOBS_SQL: {"days": 3},
    }
    for sql, parameters in bound.items():
        assert set(re.findall(r"(?<![\w'])\:(\w+)", sql)) == set(parameters)


def test_privileges_name_the_grants() -> None:
    assert "GRANT CREATE SESSION, SELECT_CATALOG_ROLE TO opsmon;" in module.PRIVILEGES
    assert "SELECT ANY DICTIONARY" in module.PRIVILEGES


# --- driver and errors ----------------------------------------------------------------------


class FakeOracleError(Exception):
    """Shaped like oracledb.DatabaseError: args[0] carries code, full_code and message."""

    def __init__(self, code: int, full_code: str, message: str) -> None:
        super().__init__(SimpleNamespace(code=code, full_code=full_code, message=message))


def target(**changes: Any) -> Database:
    fields: dict[str, Any] = {
        "name": "his",
        "engine": "oracle",
        "host": "10.0.0.1",
        "database": "HISDB",
        "user": "opsmon",
        "password": "env:OPSCTL_TEST_ORACLE_PASSWORD",
    }
    return Database(**{**fields, **changes})


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oracledb", None)

    with pytest.raises(DbError) as raised:
        module.connect(target(), 5)

    assert raised.value.stage == "driver"
    assert str(raised.value) == "the Oracle driver is not installed: pip install 'opsctl[oracle]'"


@pytest.mark.parametrize(
    ("code", "full_code", "message", "stage"),
    [
        (
            1017,
            "ORA-01017",
            "ORA-01017: invalid credential or not authorized; logon denied",
            "auth",
        ),
        (28000, "ORA-28000", "ORA-28000: The account is locked.", "auth"),
        (
            12541,
            "ORA-12541",
            "ORA-12541: Cannot connect. No listener at host 10.0.0.1 port 1521.",
            "connect",
        ),
        (
            12514,
            "ORA-12514",
            "ORA-12514: Cannot connect to database. Service HISDB is not registered",
            "connect",
        ),
        (12170, "ORA-12170", "ORA-12170: Cannot connect. TCP connect timeout of 10s", "connect"),
        (
            0,
            "DPY-6005",
            "DPY-6005: cannot connect to database (CONNECTION_ID=x).\n[Errno 113] No route to host",
            "connect",
        ),
        (3113, "DPY-4011", "DPY-4011: the database or network closed the connection", "connect"),
        (942, "ORA-00942", "ORA-00942: table or view does not exist", "privilege"),
        (1031, "ORA-01031", "ORA-01031: insufficient privileges", "privilege"),
        (1013, "ORA-01013", "ORA-01013: user requested cancel of current operation", "timeout"),
        (0, "DPY-4024", "DPY-4024: call timeout of 10000 ms exceeded", "timeout"),
        (
            1456,
            "ORA-01456",
            "ORA-01456: may not perform insert/delete/update operation inside a READ ONLY transaction",
            "readonly",
        ),
        (904, "ORA-00904", 'ORA-00904: "VERSION_FULL": invalid identifier', "query"),
    ],
)
def test_driver_errors_map_to_stages_by_code(
    code: int, full_code: str, message: str, stage: str
) -> None:
    error = module.error_from_driver(
        FakeOracleError(code, full_code, message), "opsmon", module.REDO_SQL, 10
    )

    assert error.stage == stage
    assert "\n" not in str(error)


def test_a_missing_dictionary_grant_names_the_view_and_the_role() -> None:
    error = module.error_from_driver(
        FakeOracleError(942, "ORA-00942", "ORA-00942: table or view does not exist"),
        "opsmon",
        module.CONTROLFILE_SQL,
    )

    assert error.stage == "privilege"
    assert str(error).startswith(
        "opsmon cannot read v$controlfile: GRANT SELECT_CATALOG_ROLE TO opsmon"
    )


def test_an_error_message_never_holds_the_password() -> None:
    error = module.error_from_driver(
        FakeOracleError(0, "DPY-4000", "cannot resolve oracle://opsmon:s3cret@10.0.0.1/HISDB")
    )

    assert "s3cret" not in str(error)


class FakeCursor:
    def __init__(self, raw: FakeRaw) -> None:
        self.raw = raw
        self.description: list[tuple[str]] = []

    def execute(self, sql: str, parameters: Any = None) -> None:
        self.raw.executed.append(sql)
        if self.raw.fail_with is not None and sql not in self.raw.allowed:
            raise self.raw.fail_with
        self.description = [("NAME",), ("VALUE",)]

    def fetchall(self) -> list[tuple]:
        return [("sessions", 1536)]

    def fetchmany(self, size: int) -> list[tuple]:
        self.raw.fetched = size
        return [("sessions", 1536), ("processes", 1000)][:size]

    def close(self) -> None:
        pass


class FakeRaw:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.executed: list[str] = []
        self.allowed = {"SET TRANSACTION READ ONLY"}
        self.fail_with = fail_with
        self.call_timeout = 30000
        self.rollbacks = 0
        self.fetched: int | None = None

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        pass


def fake_driver(raw: FakeRaw | None = None, error: Exception | None = None) -> Any:
    calls: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> FakeRaw:
        calls.append(kwargs)
        if error is not None:
            raise error
        return raw or FakeRaw()

    return SimpleNamespace(connect=connect, Error=FakeOracleError, calls=calls)


def test_connect_uses_the_service_name_and_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_TEST_ORACLE_PASSWORD", "s3cret")
    driver = fake_driver()
    monkeypatch.setitem(sys.modules, "oracledb", driver)

    connection = module.connect(target(), 7.5)

    (call,) = driver.calls
    assert call["user"] == "opsmon"
    assert call["password"] == "s3cret"
    assert (call["host"], call["port"], call["service_name"]) == ("10.0.0.1", 1521, "HISDB")
    assert call["tcp_connect_timeout"] == 7.5
    assert connection.raw.call_timeout == 7500
    assert connection.rows("SELECT name, value FROM v$parameter") == [
        {"name": "sessions", "value": 1536}
    ]


def test_a_refused_login_is_an_auth_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSCTL_TEST_ORACLE_PASSWORD", "s3cret")
    error = FakeOracleError(1017, "ORA-01017", "ORA-01017: invalid credential or not authorized")
    monkeypatch.setitem(sys.modules, "oracledb", fake_driver(error=error))

    with pytest.raises(DbError) as raised:
        module.connect(target(), 5)

    assert raised.value.stage == "auth"
    assert "s3cret" not in str(raised.value)


def test_a_query_error_is_mapped_by_the_connection() -> None:
    raw = FakeRaw(FakeOracleError(942, "ORA-00942", "ORA-00942: table or view does not exist"))
    connection = module.OracleConnection(raw, SimpleNamespace(Error=FakeOracleError), "opsmon")

    with pytest.raises(DbError) as raised:
        connection.rows(module.CORRUPTION_SQL)

    assert raised.value.stage == "privilege"
    assert "v$database_block_corruption" in str(raised.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_real_driver_reports_a_closed_port_as_a_connect_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("oracledb")
    monkeypatch.setenv("OPSCTL_TEST_ORACLE_PASSWORD", "s3cret")

    with pytest.raises(DbError) as raised:
        module.connect(target(host="127.0.0.1", port=free_port()), 3)

    assert raised.value.stage == "connect"
    assert "DPY-6005" in str(raised.value)
    assert "s3cret" not in str(raised.value)


# --- read_only for the sql check --------------------------------------------------------------


def read_only_connection(raw: FakeRaw) -> module.OracleConnection:
    return module.OracleConnection(raw, SimpleNamespace(Error=FakeOracleError), "opsmon")


def test_read_only_runs_in_a_read_only_transaction_and_rolls_back() -> None:
    raw = FakeRaw()

    columns, rows = module.read_only(
        read_only_connection(raw), "SELECT name, value FROM v$parameter;", 4, 1
    )

    assert raw.executed == ["SET TRANSACTION READ ONLY", "SELECT name, value FROM v$parameter"]
    assert (columns, rows) == (["NAME", "VALUE"], [("sessions", 1536)])
    assert raw.fetched == 1
    assert raw.rollbacks == 2  # before (a clean transaction start) and after
    assert raw.call_timeout == 30000  # restored


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM his.patients",
        "CREATE TABLE t AS SELECT * FROM dual",
        "BEGIN NULL; END;",
        "SELECT * FROM his.beds FOR UPDATE",
    ],
)
def test_read_only_refuses_anything_but_a_query_before_sending_it(sql: str) -> None:
    raw = FakeRaw()

    with pytest.raises(DbError) as raised:
        module.read_only(read_only_connection(raw), sql, 4, 10)

    assert raised.value.stage == "readonly"
    assert str(raised.value).startswith("the sql check only reads")
    assert raw.executed == []


def test_a_write_refused_by_the_read_only_transaction_is_a_readonly_error() -> None:
    raw = FakeRaw(
        FakeOracleError(1456, "ORA-01456", "ORA-01456: may not perform insert/delete/update")
    )

    with pytest.raises(DbError) as raised:
        module.read_only(
            read_only_connection(raw), "WITH x AS (SELECT 1 FROM dual) SELECT * FROM x", 4, 10
        )

    assert raised.value.stage == "readonly"
    assert raw.rollbacks == 2


# --- end to end through the check kinds and the pool -------------------------------------------


@pytest.fixture
def recorded_oracle(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make opsctl.databases.oracle.connect return a RecordedConnection of a scenario, with a
    fresh connection pool for the test."""
    state: dict[str, Any] = {"scenario": "healthy", "connects": 0}

    def connect(target: Any, timeout: float) -> RecordedConnection:
        state["connects"] += 1
        return RecordedConnection("oracle", answers(state["scenario"]))

    pool = ConnectionPool()
    monkeypatch.setattr(module, "connect", connect)
    monkeypatch.setattr("opsctl.databases.check.default_pool", lambda: pool)
    return state


HIS = Database(name="his", engine="oracle", host="10.0.0.1", database="HISDB", user="opsmon")


def test_the_tablespace_check_runs_through_the_pool(recorded_oracle: dict[str, Any]) -> None:
    recorded_oracle["scenario"] = "tablespace_autoextend"

    result = DbTablespaceCheck(DbCheckConfig(), timeout=10).run(HIS)

    assert result.state == State.CRITICAL
    metrics = {m.labels["name"]: m for m in result.metrics if m.name == "used_percent"}
    assert metrics["HIS_DATA"].value == pytest.approx(97.0, abs=0.01)
    assert metrics["HIS_DATA"].unit == "%"
    assert result.details["engine"] == "oracle"
    assert "HIS_ARCH" in result.summary


def test_the_checks_of_a_database_share_one_pooled_connection(
    recorded_oracle: dict[str, Any],
) -> None:
    kinds = (DbLogsCheck, DbControlfileCheck, DbSessionsCheck, DbBackupCheck)

    results = [kind(DbCheckConfig(), timeout=10).run(HIS) for kind in kinds]

    assert [r.state for r in results] == [State.OK] * len(kinds)
    assert recorded_oracle["connects"] == 1


def test_availability_times_a_connection_of_its_own(recorded_oracle: dict[str, Any]) -> None:
    DbLogsCheck(DbCheckConfig(), timeout=10).run(HIS)

    result = DbAvailabilityCheck(DbCheckConfig(), timeout=10).run(HIS)

    assert result.state == State.OK
    assert recorded_oracle["connects"] == 2
    assert only(result, "db.availability.version").value == "19.0.0.0.0"


def test_an_unreachable_database_is_critical_for_availability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("oracledb")
    monkeypatch.setenv("OPSCTL_TEST_ORACLE_PASSWORD", "s3cret")
    down = target(host="127.0.0.1", port=free_port())

    result = DbAvailabilityCheck(DbCheckConfig(), timeout=3).run(down)

    assert result.state == State.CRITICAL
    assert result.summary.startswith("database down: cannot reach the database: DPY-6005")


def test_thresholds_are_overridden_by_measure_key(recorded_oracle: dict[str, Any]) -> None:
    config = DbCheckConfig.model_validate(
        {"thresholds": {"db.tablespace.used_percent": {"warn": "50%"}}, "exclude": ["TEMP"]}
    )

    result = DbTablespaceCheck(config, timeout=10).run(HIS)

    used = rows_of(result, "db.tablespace.used_percent")
    assert used["Tablespace HIS_DATA / used"].verdict == State.WARNING  # 56% > 50%
    assert "Tablespace TEMP / used" not in used
    assert result.state == State.WARNING


def test_a_restart_is_seen_through_the_previous_result(recorded_oracle: dict[str, Any]) -> None:
    previous = CheckResult(
        State.OK,
        "OPEN read write",
        details={"counters": {"started": "2026-09-14T22:01:10"}},
        started=datetime.now(UTC) - timedelta(minutes=5),
    )

    result = DbAvailabilityCheck(DbCheckConfig(), timeout=10, previous=previous).run(HIS)

    assert result.state == State.WARNING
    assert only(result, "db.availability.restarted").verdict == State.WARNING
