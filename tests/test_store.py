"""The store, on a real SQLite file and a real PostgreSQL database (each test runs on both)."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from platformdirs import user_data_dir
from sqlalchemy import create_engine, inspect, make_url, text

from opsctl.contract import CheckResult, Item, Metric, State
from opsctl.store import Recorded, Store, StoreError, api as store_api, default_url, resolve_url
from opsctl.store.models import SCHEMA_REVISION, Base

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TABLES = {"check_results", "metric_samples", "check_status", "state_changes"}


# --------------------------------------------------------------------------- fixtures


def recorded(
    check_id: str = "hq/web1/filesystem",
    state: State = State.OK,
    started: datetime = T0,
    *,
    site: str | None = None,
    target: str | None = None,
    kind: str | None = None,
    summary: str | None = None,
    state_type: str = "hard",
    attempt: int = 1,
    since: datetime | None = None,
    changed: bool = True,
    previous: State | None = None,
    metrics: tuple[Metric, ...] = (),
    items: tuple[Item, ...] = (),
    details: dict | None = None,
) -> Recorded:
    """Return a Recorded for ``check_id`` ("site/target/kind"); site, target and kind
    default to its parts, since and last_hard_change to ``started``."""
    parts = check_id.split("/")
    result = CheckResult(
        state,
        summary if summary is not None else f"{state.name} at {started.isoformat()}",
        metrics=metrics,
        items=items,
        details=details or {},
        started=started,
        duration=0.25,
    )
    return Recorded(
        check_id=check_id,
        site=site or parts[0],
        target=target or parts[1],
        kind=kind or parts[2],
        result=result,
        state_type=state_type,
        attempt=attempt,
        since=since or started,
        last_hard_state=state,
        last_hard_change=since or started,
        changed=changed,
        previous_state=previous,
    )


def count(store: Store, table: str) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(text(f"SELECT count(*) FROM {table}"))


# --------------------------------------------------------------------------- schema


def test_open_creates_the_schema_at_head(store: Store) -> None:
    with store.engine.connect() as connection:
        inspector = inspect(connection)
        assert TABLES <= set(inspector.get_table_names())
        indexes = {
            tuple(index["column_names"])
            for table in TABLES
            for index in inspector.get_indexes(table)
        }
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert {
        ("check_id", "started"),
        ("target", "started"),
        ("site", "started"),
        ("check_id", "name", "at"),
        ("check_id", "at"),
        ("at",),
    } <= indexes
    assert revision == SCHEMA_REVISION


def test_reopen_keeps_data_and_does_not_migrate(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record([recorded()])

    def refuse(*args: object) -> None:
        raise AssertionError("an up-to-date store must not be migrated again")

    monkeypatch.setattr(store_api, "_upgrade", refuse)
    with Store.open(store_url) as again:
        assert set(again.statuses()) == {"hq/web1/filesystem"}


def test_schema_revision_is_the_alembic_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(store_api.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


def test_migrations_match_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_a_newer_schema_is_refused(store: Store, store_url: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="9999.*upgrade opsctl"):
        Store.open(store_url)


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            Store.open(store_url).close()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_sqlite_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "opsctl.db"
    with Store.open(str(path)) as store, store.engine.connect() as connection:
        assert path.exists()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        plain.close()


# --------------------------------------------------------------------------- record and status


def test_record_then_statuses(store: Store) -> None:
    store.record([recorded(state=State.WARNING, state_type="soft", attempt=1)])
    first = store.statuses()["hq/web1/filesystem"]
    assert (first.state, first.state_type, first.attempt) == (State.WARNING, "soft", 1)
    assert (first.site, first.target, first.kind) == ("hq", "web1", "filesystem")
    assert first.last_checked == T0

    later = T0 + timedelta(minutes=1)
    store.record([recorded(state=State.WARNING, started=later, since=T0, attempt=2)])
    status = store.statuses()["hq/web1/filesystem"]
    assert (status.state_type, status.attempt, status.since, status.last_checked) == (
        "hard",
        2,
        T0,
        later,
    )
    assert status.last_hard_state is State.WARNING
    newest = store.history("web1", T0)[0]
    assert status.last_result_id == newest.id
    assert status.summary == newest.summary


def test_statuses_for_given_check_ids(store: Store) -> None:
    store.record([recorded(f"hq/web{n}/tcp") for n in range(3)])
    assert set(store.statuses()) == {"hq/web0/tcp", "hq/web1/tcp", "hq/web2/tcp"}
    assert set(store.statuses(["hq/web1/tcp", "hq/nowhere/tcp"])) == {"hq/web1/tcp"}
    assert store.statuses([]) == {}
    many = [f"hq/web{n}/tcp" for n in range(1200)]  # more than one IN (...) chunk
    assert set(store.statuses(iter(many))) == {"hq/web0/tcp", "hq/web1/tcp", "hq/web2/tcp"}


def test_status_never_moves_back_in_time(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    store.record([recorded(state=State.CRITICAL, started=later)])
    # Another process flushes an older result afterwards: it is history, not the status.
    store.record([recorded(state=State.OK, started=T0)])
    assert store.statuses()["hq/web1/filesystem"].state is State.CRITICAL
    assert len(store.history("web1", T0)) == 2


def test_one_batch_with_several_results_of_one_check(store: Store) -> None:
    batch = [
        recorded(state=State.CRITICAL, started=T0, state_type="soft", attempt=1),
        recorded(state=State.CRITICAL, started=T0 + timedelta(seconds=30), attempt=2),
        recorded(state=State.OK, started=T0 + timedelta(seconds=60), changed=True),
    ]
    store.record(batch)
    status = store.statuses()["hq/web1/filesystem"]
    assert status.state is State.OK
    assert status.last_checked == T0 + timedelta(seconds=60)
    assert len(store.history("web1", T0)) == 3


def test_problems_worst_first_then_oldest(store: Store) -> None:
    store.record(
        [
            recorded("hq/a/tcp", State.WARNING, since=T0 - timedelta(hours=3)),
            recorded("hq/b/tcp", State.CRITICAL, since=T0 - timedelta(hours=1)),
            recorded("hq/c/tcp", State.CRITICAL, since=T0 - timedelta(hours=2)),
            recorded("hq/d/tcp", State.UNKNOWN, since=T0),
            recorded("hq/e/tcp", State.OK, since=T0 - timedelta(days=9)),
            recorded("branch/f/tcp", State.CRITICAL, since=T0 - timedelta(days=1)),
        ]
    )
    assert [row.check_id for row in store.problems()] == [
        "hq/d/tcp",
        "branch/f/tcp",
        "hq/c/tcp",
        "hq/b/tcp",
        "hq/a/tcp",
    ]
    assert [row.check_id for row in store.problems(site="hq")] == [
        "hq/d/tcp",
        "hq/c/tcp",
        "hq/b/tcp",
        "hq/a/tcp",
    ]
    assert store.problems(site="nowhere") == []


def test_all_statuses_ordered_and_by_site(store: Store) -> None:
    store.record(
        [
            recorded("hq/web2/tcp"),
            recorded("hq/web1/tcp"),
            recorded("hq/web1/http"),
            recorded("branch/db1/tcp", State.CRITICAL),
        ]
    )
    assert [row.check_id for row in store.all_statuses()] == [
        "branch/db1/tcp",
        "hq/web1/http",
        "hq/web1/tcp",
        "hq/web2/tcp",
    ]
    assert [row.check_id for row in store.all_statuses(site="branch")] == ["branch/db1/tcp"]


# --------------------------------------------------------------------------- reading back


def test_history_newest_first_with_filters(store: Store) -> None:
    store.record(
        [
            recorded("hq/web1/tcp", started=T0 + timedelta(minutes=minute))
            for minute in (0, 10, 20, 30)
        ]
        + [
            recorded("hq/web1/http", started=T0 + timedelta(minutes=5)),
            recorded("branch/web1/tcp", started=T0 + timedelta(minutes=15)),
            recorded("hq/web2/tcp", started=T0 + timedelta(minutes=25)),
        ]
    )
    rows = store.history("web1", T0 + timedelta(minutes=10))
    assert [row.started for row in rows] == [
        T0 + timedelta(minutes=30),
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=15),
        T0 + timedelta(minutes=10),  # since is inclusive
    ]
    assert [row.check_id for row in store.history("web1", T0, site="hq", kind="http")] == [
        "hq/web1/http"
    ]
    assert len(store.history("web1", T0, site="hq")) == 5
    assert len(store.history("web1", T0, limit=2)) == 2
    assert store.history("web3", T0) == []


def test_history_round_trips_items_details_and_metrics(store: Store) -> None:
    metrics = (
        Metric("used", 91.5, "%", labels={"mount": "/data"}),
        Metric("free", 12.0, "GB"),
    )
    items = (
        Item("filesystem.used", "Filesystem / used", "91.5%", State.CRITICAL, "> 90%", "扩容"),
    )
    store.record(
        [
            recorded(
                state=State.CRITICAL,
                summary="/data 已用 91.5%",
                metrics=metrics,
                items=items,
                details={"mounts": ["/data"], "checked_at": T0, "ratio": float("nan")},
            )
        ]
    )
    plain = store.history("web1", T0)[0]
    assert plain.metrics == []
    row = store.history("web1", T0, metrics=True)[0]
    assert row.summary == "/data 已用 91.5%"
    assert row.state is State.CRITICAL
    assert row.duration == 0.25
    assert row.items == [items[0].to_dict()]
    # JSON cannot hold a datetime or NaN: the first becomes ISO text, the second null.
    assert row.details == {"mounts": ["/data"], "checked_at": T0.isoformat(), "ratio": None}
    assert row.metrics == [
        {"name": "used", "value": 91.5, "unit": "%", "labels": {"mount": "/data"}},
        {"name": "free", "value": 12.0, "unit": "GB", "labels": {}},
    ]


def test_changes_newest_first_with_filters(store: Store) -> None:
    store.record(
        [
            recorded("hq/web1/tcp", State.OK, T0, changed=True, previous=None),
            recorded("hq/web1/tcp", State.OK, T0 + timedelta(minutes=1), changed=False),
            recorded("hq/web1/tcp", State.CRITICAL, T0 + timedelta(minutes=2), previous=State.OK),
            recorded("branch/db1/tcp", State.WARNING, T0 + timedelta(minutes=3)),
        ]
    )
    rows = store.changes(T0)
    assert [(row.check_id, row.from_state, row.to_state) for row in rows] == [
        ("branch/db1/tcp", None, State.WARNING),
        ("hq/web1/tcp", State.OK, State.CRITICAL),
        ("hq/web1/tcp", None, State.OK),
    ]
    assert rows[1].at == T0 + timedelta(minutes=2)
    assert rows[1].summary.startswith("CRITICAL")
    assert [row.to_state for row in store.changes(T0, target="web1")] == [
        State.CRITICAL,
        State.OK,
    ]
    assert [row.check_id for row in store.changes(T0, site="branch")] == ["branch/db1/tcp"]
    assert len(store.changes(T0 + timedelta(minutes=2))) == 2


def test_samples_oldest_first_without_nan(store: Store) -> None:
    store.record(
        [
            recorded(
                started=T0 + timedelta(minutes=minute),
                metrics=(Metric("used", value, "%"), Metric("inodes", 3.0)),
            )
            for minute, value in ((0, 50.0), (1, float("nan")), (2, 52.0), (3, float("inf")))
        ]
    )
    assert store.samples("hq/web1/filesystem", "used", T0) == [
        (T0, 50.0),
        (T0 + timedelta(minutes=2), 52.0),
    ]
    assert store.samples("hq/web1/filesystem", "used", T0 + timedelta(minutes=1)) == [
        (T0 + timedelta(minutes=2), 52.0)
    ]
    assert len(store.samples("hq/web1/filesystem", "inodes", T0)) == 4
    assert store.samples("hq/web2/filesystem", "used", T0) == []


# --------------------------------------------------------------------------- time zones


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    local = datetime(2026, 3, 1, 16, 30, 15, 123456, tzinfo=SHANGHAI)  # 08:30:15 UTC
    store.record([recorded(started=local, metrics=(Metric("used", 1.0),))])
    status = store.statuses()["hq/web1/filesystem"]
    row = store.history("web1", local)[0]
    change = store.changes(local)[0]
    (at, _value) = store.samples("hq/web1/filesystem", "used", local)[0]
    for value in (
        status.since,
        status.last_checked,
        status.last_hard_change,
        row.started,
        change.at,
        at,
    ):
        assert value == local
        assert value.utcoffset() == timedelta(0)
        assert value.tzinfo is UTC
        assert value.hour == 8
    # A bound given in another zone compares as the instant it is.
    assert store.history("web1", local.astimezone(ZoneInfo("America/New_York"))) != []
    assert store.history("web1", local + timedelta(microseconds=1)) == []


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2026, 3, 1, 8, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        store.record([recorded(), recorded("hq/web2/tcp", started=naive)])
    assert count(store, "check_results") == 0  # nothing of the batch was written
    with pytest.raises(ValueError, match="naive"):
        store.record([recorded(since=naive)])
    with pytest.raises(ValueError, match="naive"):
        store.history("web1", naive)
    with pytest.raises(ValueError, match="naive"):
        store.changes(naive)
    with pytest.raises(ValueError, match="naive"):
        store.samples("hq/web1/filesystem", "used", naive)


def test_unknown_state_type_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="state_type"):
        store.record([recorded(state_type="firm")])


# --------------------------------------------------------------------------- volume and concurrency


def test_a_batch_of_a_thousand_results(store: Store) -> None:
    batch = [
        recorded(
            f"hq/host{n % 100}/check{n % 7}",
            State(n % 4),
            T0 + timedelta(seconds=n),
            metrics=(Metric("latency", n / 10, "ms"), Metric("errors", float(n % 3))),
            items=(Item("latency", "Latency", f"{n / 10}ms"),),
            changed=n % 5 == 0,
        )
        for n in range(1000)
    ]
    clock = time.perf_counter()
    store.record(batch)
    elapsed = time.perf_counter() - clock
    assert count(store, "check_results") == 1000
    assert count(store, "metric_samples") == 2000
    assert count(store, "state_changes") == 200
    assert len(store.statuses()) == 700
    # Takes about 0.2 s on either engine; the bound leaves room for a loaded CI machine.
    budget = 1.0 if store.engine.dialect.name == "sqlite" else 3.0
    assert elapsed < budget, f"recording 1,000 results took {elapsed:.2f}s"


def test_two_writers_recording_the_same_checks(store_url: str) -> None:
    Store.open(store_url).close()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            with Store.open(store_url) as store:
                for round_ in range(15):
                    started = T0 + timedelta(seconds=2 * round_ + offset)
                    store.record([recorded(f"hq/web{n}/tcp", started=started) for n in range(20)])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(store_url) as store:
        statuses = store.statuses()
        assert len(statuses) == 20
        # The newest result (writer 1's last round) holds every status.
        assert {row.last_checked for row in statuses.values()} == {T0 + timedelta(seconds=29)}
        assert count(store, "check_results") == 600


# --------------------------------------------------------------------------- URLs


def test_resolve_url_precedence(tmp_path: Path) -> None:
    cli = "sqlite:////cli.db"
    env = {"OPSCTL_DB": "sqlite:////env.db"}
    inventory = "sqlite:////inventory.db"
    assert resolve_url(cli, env, inventory) == cli
    assert resolve_url(None, env, inventory) == "sqlite:////env.db"
    assert resolve_url(None, {}, inventory) == inventory
    assert resolve_url("  ", {"OPSCTL_DB": ""}, None) == default_url()
    assert resolve_url(None, {}, None) == default_url()


def test_default_url_is_in_the_user_data_dir() -> None:
    expected = Path(user_data_dir("opsctl")) / "opsctl.db"
    assert make_url(default_url()).database == expected.as_posix()


def test_resolve_url_turns_bare_paths_into_absolute_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_url("data/opsctl.db", {}, None) == f"sqlite:///{tmp_path}/data/opsctl.db"
    assert resolve_url(None, {}, "~/x.db") == f"sqlite:///{tmp_path}/home/x.db"
    assert resolve_url(f"{tmp_path}/a.db", {}, None) == f"sqlite:///{tmp_path}/a.db"


def test_a_path_with_spaces_chinese_and_percent_opens(tmp_path: Path) -> None:
    path = tmp_path / "运维 数据 100%" / "opsctl.db"
    url = resolve_url(str(path), {}, None)
    assert make_url(url).database == str(path)
    with Store.open(url) as store:
        store.record([recorded()])
    assert path.exists()


def test_resolve_url_picks_the_psycopg_driver() -> None:
    assert (
        resolve_url("postgresql://opsctl:pw@db.hospital.local/opsctl", {}, None)
        == "postgresql+psycopg://opsctl:pw@db.hospital.local/opsctl"
    )
    assert (
        resolve_url(None, {"OPSCTL_DB": "postgres://u@h/d"}, None) == "postgresql+psycopg://u@h/d"
    )
    assert resolve_url("postgresql+psycopg://u@h/d", {}, None) == "postgresql+psycopg://u@h/d"
    assert resolve_url("sqlite:///relative.db", {}, None) == "sqlite:///relative.db"


# --------------------------------------------------------------------------- failures


def test_unreachable_server_gives_store_error_with_the_password_masked() -> None:
    # Port 1 on the loopback: nothing listens, so the connection is refused at once.
    with pytest.raises(StoreError) as raised:
        Store.open("postgresql://opsctl:s3cret-pw@127.0.0.1:1/opsctl")
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "opsctl:***@127.0.0.1:1/opsctl" in message
    assert "refused" in message.lower() or "connect" in message.lower()


def test_missing_database_gives_store_error_with_the_password_masked(postgres_url: str) -> None:
    url = make_url(postgres_url).set(password="s3cret-pw", database="opsctl_no_such_database")
    with pytest.raises(StoreError) as raised:
        Store.open(url.render_as_string(hide_password=False))
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "***" in message
    assert "opsctl_no_such_database" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root:s3cret-pw@localhost/opsctl", "unsupported"),
        ("nosuchdb+driver://root:s3cret-pw@localhost/opsctl", "cannot open|unsupported"),
        ("postgresql://root:s3cret-pw@[bad/opsctl", "not a database URL|cannot open"),
        ("", "no store URL"),
    ],
)
def test_bad_urls_give_store_error(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as raised:
        Store.open(url)
    assert "s3cret-pw" not in str(raised.value)


def test_unwritable_sqlite_location_gives_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(str(blocker / "opsctl.db"))


def test_a_failure_while_reading_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "opsctl.db"
    with Store.open(str(path)) as store:
        # Drop a table behind the store's back: the failure must still be a StoreError.
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE state_changes"))
        engine.dispose()
        with pytest.raises(StoreError, match="state_changes"):
            store.changes(T0)
