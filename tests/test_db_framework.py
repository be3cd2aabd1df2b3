"""The engine-independent part of database inspection: measures judged with the user's
thresholds, rates between runs, the connection pool, and the down/unknown distinction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from opsctl import databases
from opsctl.contract import CheckResult, Range, State
from opsctl.databases import (
    ConnectionPool,
    DbError,
    Measure,
    Observation,
    RecordedConnection,
    mask_credentials,
    rate,
)
from opsctl.databases.check import DbCheck, DbCheckConfig, judge, previous_snapshot

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def tablespaces() -> Observation:
    return Observation(
        [
            Measure(
                "db.tablespace.used_percent",
                "Tablespace USERS / used",
                91.5,
                "%",
                Range.parse("90"),
                Range.parse("98"),
                {"name": "USERS"},
                advice="add a datafile",
            ),
            Measure(
                "db.tablespace.used_percent",
                "Tablespace SYSAUX / used",
                40.0,
                "%",
                Range.parse("90"),
                Range.parse("98"),
                {"name": "SYSAUX"},
            ),
            Measure(
                "db.tablespace.size",
                "Tablespace USERS / size",
                10 * 1024**3,
                "B",
                labels={"name": "USERS"},
            ),
            Measure(
                "db.logs.member_status",
                "Redo group 2 / member",
                "INVALID",
                verdict=2,
                labels={"name": "group 2"},
                advice="drop and re-add the member",
            ),
        ],
        counters={"sizes": {"USERS": 1}},
    )


def test_judge_turns_measures_into_items_and_metrics() -> None:
    result = judge(tablespaces(), DbCheckConfig(), "db.tablespace.used_percent", "oracle")
    assert result.state is State.CRITICAL  # the INVALID redo member
    verdicts = {item.item: item.verdict for item in result.items}
    assert verdicts["Tablespace USERS / used"] is State.WARNING
    assert verdicts["Tablespace SYSAUX / used"] is State.OK
    users = next(i for i in result.items if i.item == "Tablespace USERS / used")
    assert (users.value, users.threshold, users.advice) == (
        "91.5%",
        "warning > 90, critical > 98",
        "add a datafile",
    )
    assert next(i for i in result.items if i.item == "Tablespace SYSAUX / used").advice == ""
    assert next(i for i in result.items if i.key == "db.tablespace.size").value == "10 GB"
    metric = next(
        m for m in result.metrics if m.labels == {"name": "USERS"} and m.name == "used_percent"
    )
    assert (metric.value, metric.unit, str(metric.warn)) == (91.5, "%", "90")
    assert len(result.metrics) == 3  # the text measure is an item only
    assert result.details["counters"] == {"sizes": {"USERS": 1}}
    assert result.summary.startswith(
        "Tablespace USERS / used: 91.5%; Redo group 2 / member: INVALID"
    )


def test_user_thresholds_override_by_main_key_and_by_measure_key() -> None:
    config = DbCheckConfig.model_validate(
        {"warn": "95", "crit": "99", "thresholds": {"db.tablespace.size": {"crit": "5GB"}}}
    )
    result = judge(tablespaces(), config, "db.tablespace.used_percent", "oracle")
    verdicts = {item.item: item.verdict for item in result.items}
    assert verdicts["Tablespace USERS / used"] is State.OK
    assert verdicts["Tablespace USERS / size"] is State.CRITICAL


def test_include_and_exclude_select_objects_by_name() -> None:
    only = judge(tablespaces(), DbCheckConfig(include=["SYS*"]), "", "oracle")
    assert [item.item for item in only.items] == ["Tablespace SYSAUX / used"]
    without = judge(tablespaces(), DbCheckConfig(exclude=["USERS", "group *"]), "", "oracle")
    assert [item.item for item in without.items] == ["Tablespace SYSAUX / used"]
    assert without.state is State.OK


def test_notes_are_added_to_the_summary() -> None:
    observation = Observation(
        [
            Measure(
                "db.io.reads_per_second",
                "Reads per second",
                None,
                display="baseline recorded; rates from the next run",
            )
        ],
        notes=["first run: baseline recorded"],
    )
    result = judge(observation, DbCheckConfig(), "", "postgresql")
    assert result.state is State.OK
    assert (
        result.summary
        == "baseline recorded; rates from the next run — first run: baseline recorded"
    )


def test_previous_snapshot_and_rates() -> None:
    assert previous_snapshot(None) is None
    assert previous_snapshot(CheckResult(State.OK, "x", started=T0)) is None
    snapshot = previous_snapshot(
        CheckResult(State.OK, "x", details={"counters": {"reads": 10}}, started=T0)
    )
    assert snapshot is not None and snapshot.taken == T0 and snapshot.counters == {"reads": 10}
    assert rate(110, 10, 50) == 2.0
    assert rate(5, 10, 50) is None  # a restart reset the counter
    assert rate(10, None, 50) is None


def test_mask_credentials() -> None:
    assert mask_credentials('connection to "postgresql://monitor:s3cret@db/x" failed') == (
        'connection to "postgresql://monitor:***@db/x" failed'
    )


def test_recorded_connection_answers_by_marker_and_keeps_the_sql() -> None:
    connection = RecordedConnection("oracle", {"v$instance": [{"VERSION": "19.0.0.0.0"}]})
    assert connection.value("select version from v$instance") == "19.0.0.0.0"
    with pytest.raises(DbError, match="no recorded rows"):
        connection.rows("select * from v$log")
    assert connection.asked == ["select version from v$instance", "select * from v$log"]


class FakeEngine:
    """An engine module whose connect and item functions the tests control."""

    def __init__(self) -> None:
        self.connects = 0
        self.fail_connect: DbError | None = None

    def connect(self, target: Any, timeout: float) -> RecordedConnection:
        if self.fail_connect is not None:
            raise self.fail_connect
        self.connects += 1
        return RecordedConnection("postgresql", {"select 1": [{"one": 1}]})

    def availability(self, connection: Any, previous: Any) -> Observation:
        return Observation([Measure("db.availability.version", "Database / version", "15.4")])

    def sessions(self, connection: Any, previous: Any) -> Observation:
        connection.value("select 1")
        return Observation(
            [
                Measure(
                    "db.sessions.used_percent",
                    "Sessions / used",
                    96.0,
                    "%",
                    Range.parse("90"),
                    Range.parse("95"),
                )
            ]
        )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(databases, "engine_module", lambda name: fake)
    monkeypatch.setattr("opsctl.databases.check.engine_module", lambda name: fake)
    pool = ConnectionPool()
    monkeypatch.setattr("opsctl.databases.check.default_pool", lambda: pool)
    return fake


class Availability(DbCheck):
    kind, item, main = "db.availability", "availability", "db.availability.connect_time"


class Sessions(DbCheck):
    kind, item, main = "db.sessions", "sessions", "db.sessions.used_percent"


TARGET = SimpleNamespace(name="his-db", engine="postgresql")


def test_checks_of_one_database_share_its_connection(engine: FakeEngine) -> None:
    for _ in range(3):
        result = Sessions(DbCheckConfig(), timeout=5).run(TARGET)
        assert result.state is State.CRITICAL
    assert engine.connects == 1


def test_availability_measures_its_own_connect_time(engine: FakeEngine) -> None:
    result = Availability(DbCheckConfig(), timeout=5).run(TARGET)
    assert [item.key for item in result.items] == [
        "db.availability.connect_time",
        "db.availability.version",
    ]
    assert result.metrics[0].name == "connect_time" and result.metrics[0].unit == "s"


def test_a_database_that_cannot_be_reached_is_down_for_availability_unknown_elsewhere(
    engine: FakeEngine,
) -> None:
    engine.fail_connect = DbError("his-db (10.0.0.5:5432): connection refused", "connect")
    result = Availability(DbCheckConfig(), timeout=5).run(TARGET)
    assert result.state is State.CRITICAL
    assert result.summary == "database down: his-db (10.0.0.5:5432): connection refused"
    with pytest.raises(DbError, match="connection refused"):
        Sessions(DbCheckConfig(), timeout=5).run(TARGET)
    engine.fail_connect = DbError("password authentication failed for user monitor", "auth")
    with pytest.raises(DbError, match="authentication"):
        Availability(DbCheckConfig(), timeout=5).run(TARGET)


def test_previous_result_reaches_the_engine_module(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    monkeypatch.setattr(
        engine, "sessions", lambda connection, previous: seen.append(previous) or Observation([])
    )
    previous = CheckResult(
        State.OK, "x", details={"counters": {"n": 1}}, started=T0 - timedelta(minutes=5)
    )
    Sessions(DbCheckConfig(), timeout=5, previous=previous).run(TARGET)
    assert seen[0].counters == {"n": 1} and seen[0].taken == T0 - timedelta(minutes=5)
