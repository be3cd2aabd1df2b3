"""``/metrics`` content: the server's counters and the store read at scrape time, on a real
SQLite file and a real PostgreSQL database, every exposition linted by the real promtool."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import need_executable
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, insert, make_url

from opsctl.contract import CheckResult, Metric, State
from opsctl.server import metrics
from opsctl.server.metrics import IngestMetrics, StoreCollector, fold_labels, render
from opsctl.store import Recorded, Store
from opsctl.store.models import (
    AgentModel,
    DeviceFlipModel,
    DeviceModel,
    JobRunModel,
    SampleModel,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# A mount point with a backslash, a quote and Chinese text: escaped twice (folded, exposed).
ODD_MOUNT = 'D:\\数据 "备份"'


# --------------------------------------------------------------------------- fixtures


def _admin(url: str) -> str:
    database = make_url(url)
    return f"host={database.host} port={database.port} user={database.username} dbname=postgres"


@pytest.fixture
def promtool() -> str:
    return need_executable("promtool", "prometheus")


# --------------------------------------------------------------------------- helpers


def recorded(
    check_id: str,
    state: State,
    started: datetime,
    *,
    metrics: tuple[Metric, ...] = (),
    state_type: str = "hard",
    since: datetime | None = None,
) -> Recorded:
    site, target, kind = check_id.split("/")
    return Recorded(
        check_id=check_id,
        site=site,
        target=target,
        kind=kind,
        result=CheckResult(
            state, f"{state.name} 摘要", metrics=metrics, started=started, duration=0.5
        ),
        state_type=state_type,
        attempt=1,
        since=since or started,
        last_hard_state=state,
        last_hard_change=since or started,
        changed=True,
        previous_state=None,
    )


def lint(promtool: str, body: bytes) -> None:
    """Pipe the exposition into ``promtool check metrics``: it must exit 0 and say nothing."""
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done


def scrape(*collectors: Any) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    body, _ = render(registry)
    return body, body.decode("utf-8")


def values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, by name and label set."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def series(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in values(text).items() if n == name}


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def device(device_id: str, vendor: str, region: str, status: str, heartbeat: datetime) -> dict:
    return {
        "device_id": device_id,
        "vendor": vendor,
        "site": "cdc",
        "region": region,
        "address": f"{region}某社区卫生服务中心",
        "registered": True,
        "first_seen": heartbeat - timedelta(days=30),
        "last_heartbeat": heartbeat,
        "last_reported": heartbeat,
        "heartbeats": 10,
        "reported_status": "ok",
        "fault_code": None,
        "fault_message": None,
        "stock": [],
        "temperature": 21.5,
        "door": "closed",
        "firmware": "1.2.0",
        "interval": 300.0,
        "status": status,
        "status_since": heartbeat,
    }


def agent_row(name: str, interval: float, last_push: datetime, **counts: int) -> dict:
    return {
        "name": name,
        "site": "hq",
        "interval": interval,
        "first_seen": last_push - timedelta(days=7),
        "last_push": last_push,
        "last_sent": last_push - timedelta(seconds=1),
        "address": "10.0.0.8",
        "version": "0.1.0",
        "facts": {},
        "pushes": counts.get("pushes", 0),
        "samples": counts.get("samples", 0),
        "spooled": counts.get("spooled", 0),
        "dropped_batches": counts.get("dropped_batches", 0),
        "dropped_samples": counts.get("dropped_samples", 0),
    }


def agent_sample(agent: str, name: str, value: float, at: datetime, **labels: str) -> dict:
    return {
        "result_id": None,
        "check_id": f"hq/{agent}/agent",
        "name": name,
        "value": value,
        "unit": "",
        "labels": labels,
        "at": at,
    }


def populate(store: Store, now: datetime) -> None:
    """Checks with metrics, three agents, a dispenser fleet with flips, and job runs."""
    store.record(
        [
            recorded(
                "hq/db1/filesystem",
                State.WARNING,
                T0 - timedelta(minutes=5),
                metrics=(Metric("fs_used_percent", 50.0, "%", labels={"mount": "/data"}),),
            ),
            recorded("hq/web1/http", State.OK, T0, metrics=(Metric("time", 0.12, "s"),)),
            recorded("hq/影像服务器/tcp", State.CRITICAL, T0, state_type="soft"),
        ]
    )
    store.record(
        [
            recorded(
                "hq/db1/filesystem",
                State.CRITICAL,
                T0,
                since=T0 - timedelta(minutes=5),
                metrics=(
                    Metric("fs_used_percent", 91.5, "%", labels={"mount": ODD_MOUNT}),
                    Metric("fs_used_percent", 40.0, "%", labels={"mount": "/", "device": "sda"}),
                ),
            ),
            # The server's own check of an agent: its metric shares the agent samples'
            # check id, but belongs to a result.
            recorded("hq/ws-01/agent", State.OK, now, metrics=(Metric("cpu_percent", 99.0, "%"),)),
        ]
    )

    fresh = now - timedelta(seconds=10)
    stale = now - timedelta(days=1)
    sent = fresh - timedelta(seconds=1)
    rows = [
        agent_sample("ws-01", "cpu_percent", 10.0 + i, sent - timedelta(seconds=30 * i))
        for i in range(50, 0, -1)
    ]
    rows += [
        agent_sample("ws-01", "cpu_percent", 42.5, sent - timedelta(seconds=1)),
        # Collected two seconds before the newest, in the same collection.
        agent_sample("ws-01", "fs_used_percent", 71.0, sent - timedelta(seconds=3), mount="/data"),
        agent_sample("ws-01", "fs_used_percent", 33.0, sent - timedelta(seconds=1), mount="/"),
        agent_sample("ws-01", "fs_used_percent", 30.0, sent - timedelta(seconds=31), mount="/"),
        # Unmounted since the previous collection: not a latest sample.
        agent_sample(
            "ws-01", "fs_used_percent", 5.0, sent - timedelta(seconds=31), mount="/backup"
        ),
        # Not collected any more: not a latest sample.
        agent_sample("ws-01", "old_gauge", 1.0, sent - timedelta(hours=1)),
        agent_sample("ws-02", "cpu_percent", 7.0, stale - timedelta(seconds=2)),
    ]
    with store._sessions.begin() as session:
        session.execute(
            insert(AgentModel),
            [
                agent_row(
                    "ws-01",
                    30.0,
                    fresh,
                    pushes=120,
                    samples=4000,
                    spooled=2,
                    dropped_batches=1,
                    dropped_samples=17,
                ),
                agent_row("ws-02", 60.0, stale, pushes=5, samples=50),
                agent_row("ws-03", 30.0, now - timedelta(seconds=100)),
            ],
        )
        session.execute(insert(SampleModel), rows)
        fleet = [
            device(f"A{i:03d}", "vendor-a", "杭州市", "online", now - timedelta(minutes=2))
            for i in range(4)
        ]
        fleet += [
            device(f"B{i:03d}", "vendor-b", "杭州市", "offline", now - timedelta(days=2))
            for i in range(3)
        ]
        fleet += [
            device("B100", "vendor-b", "杭州市", "online", now - timedelta(minutes=1)),
            device("B101", "vendor-b", "宁波市", "offline", now - timedelta(hours=3)),
            device("B102", "vendor-b", "宁波市", "low-stock", now - timedelta(minutes=3)),
        ]
        session.execute(insert(DeviceModel), fleet)
        session.execute(
            insert(DeviceFlipModel),
            [
                {
                    "device_id": device_id,
                    "vendor": vendor,
                    "site": "cdc",
                    "region": "杭州市",
                    "at": now - timedelta(hours=i),
                    "from_status": "online",
                    "to_status": "offline",
                    "reason": "no heartbeat",
                }
                for i, (device_id, vendor) in enumerate(
                    [("A000", "vendor-a")] * 3 + [("B000", "vendor-b")] * 2
                )
            ],
        )
        session.execute(
            insert(JobRunModel),
            [
                job_run("daily", "inspect", T0 - timedelta(days=2), "ok"),
                job_run("daily", "inspect", T0 - timedelta(days=1), "failed"),
                job_run("daily", "inspect", T0, "running"),
                job_run("weekly", "report", T0 - timedelta(days=3), "ok"),
            ],
        )


def job_run(schedule: str, job: str, started: datetime, outcome: str) -> dict:
    return {
        "schedule": schedule,
        "job": job,
        "site": "hq",
        "scheduled_for": started,
        "started": started,
        "finished": None if outcome == "running" else started + timedelta(minutes=5),
        "outcome": outcome,
        "message": "",
        "details": {},
        "holder": "server-1",
    }


def whole_seconds() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- the store


def test_the_store_is_exposed_and_passes_promtool(store: Store, promtool: str) -> None:
    now = whole_seconds()
    populate(store, now)
    body, text = scrape(StoreCollector(store))
    lint(promtool, body)
    lines = text.splitlines()

    db1 = {"site": "hq", "target": "db1", "check": "hq/db1/filesystem", "kind": "filesystem"}
    tcp = {"site": "hq", "target": "影像服务器", "check": "hq/影像服务器/tcp", "kind": "tcp"}
    assert (
        'opsctl_check_state{check="hq/db1/filesystem",kind="filesystem",site="hq",target="db1"} 2.0'
        in lines
    )
    assert series(text, "opsctl_check_state")[key(**tcp)] == 2
    assert series(text, "opsctl_check_hard") == {
        key(**db1): 1,
        key(**tcp): 0,
        key(site="hq", target="web1", check="hq/web1/http", kind="http"): 1,
        key(site="hq", target="ws-01", check="hq/ws-01/agent", kind="agent"): 1,
    }
    assert series(text, "opsctl_check_last_run_timestamp_seconds")[key(**db1)] == T0.timestamp()
    assert (
        series(text, "opsctl_check_state_since_timestamp_seconds")[key(**db1)]
        == (T0 - timedelta(minutes=5)).timestamp()
    )
    assert series(text, "opsctl_checks") == {
        key(state="ok"): 2,
        key(state="warning"): 0,
        key(state="critical"): 2,
        key(state="unknown"): 0,
    }

    # Only the last result's metrics, with the sample labels folded (and escaped twice).
    assert series(text, "opsctl_check_metric") == {
        key(**db1, metric="fs_used_percent", unit="%", labels=fold_labels({"mount": ODD_MOUNT})): 91.5,
        key(**db1, metric="fs_used_percent", unit="%", labels="device=sda,mount=/"): 40.0,
        key(site="hq", target="web1", check="hq/web1/http", kind="http", metric="time", unit="s", labels=""): 0.12,
        key(site="hq", target="ws-01", check="hq/ws-01/agent", kind="agent", metric="cpu_percent", unit="%", labels=""): 99.0,
    }  # fmt: skip
    assert (
        'opsctl_check_metric{check="hq/db1/filesystem",kind="filesystem",'
        'labels="mount=D:\\\\\\\\数据 \\"备份\\"",metric="fs_used_percent",site="hq",'
        'target="db1",unit="%"} 91.5'
    ) in lines

    ws01, ws02, ws03 = (key(agent=name, site="hq") for name in ("ws-01", "ws-02", "ws-03"))
    assert series(text, "opsctl_agent_up") == {ws01: 1, ws02: 0, ws03: 0}
    assert (
        series(text, "opsctl_agent_last_push_timestamp_seconds")[ws01]
        == (now - timedelta(seconds=10)).timestamp()
    )
    assert series(text, "opsctl_agent_pushes_total") == {ws01: 120, ws02: 5, ws03: 0}
    assert series(text, "opsctl_agent_samples_total")[ws01] == 4000
    assert series(text, "opsctl_agent_spool_queued_batches")[ws01] == 2
    assert series(text, "opsctl_agent_dropped_samples_total")[ws01] == 17
    assert series(text, "opsctl_agent_dropped_batches_total")[ws01] == 1
    assert series(text, "opsctl_agent_sample") == {
        key(agent="ws-01", site="hq", name="cpu_percent", labels=""): 42.5,
        key(agent="ws-01", site="hq", name="fs_used_percent", labels="mount=/data"): 71.0,
        key(agent="ws-01", site="hq", name="fs_used_percent", labels="mount=/"): 33.0,
        key(agent="ws-02", site="hq", name="cpu_percent", labels=""): 7.0,
    }
    assert 'opsctl_agent_sample{agent="ws-01",labels="",name="cpu_percent",site="hq"} 42.5' in lines

    assert series(text, "opsctl_fleet_devices") == {
        key(site="cdc", vendor="vendor-a", region="杭州市", status="online"): 4,
        key(site="cdc", vendor="vendor-b", region="杭州市", status="offline"): 3,
        key(site="cdc", vendor="vendor-b", region="杭州市", status="online"): 1,
        key(site="cdc", vendor="vendor-b", region="宁波市", status="offline"): 1,
        key(site="cdc", vendor="vendor-b", region="宁波市", status="low-stock"): 1,
    }
    assert (
        'opsctl_fleet_devices{region="杭州市",site="cdc",status="offline",vendor="vendor-b"} 3.0'
        in lines
    )
    assert series(text, "opsctl_fleet_vendor_last_heartbeat_timestamp_seconds") == {
        key(vendor="vendor-a"): (now - timedelta(minutes=2)).timestamp(),
        key(vendor="vendor-b"): (now - timedelta(minutes=1)).timestamp(),
    }
    assert series(text, "opsctl_fleet_flips_total") == {
        key(vendor="vendor-a"): 3,
        key(vendor="vendor-b"): 2,
    }

    # The running job does not count; its last completed run failed.
    daily, weekly = key(schedule="daily", job="inspect"), key(schedule="weekly", job="report")
    assert series(text, "opsctl_job_last_outcome") == {daily: 0, weekly: 1}
    assert series(text, "opsctl_job_last_run_timestamp_seconds") == {
        daily: (T0 - timedelta(days=1, minutes=-5)).timestamp(),
        weekly: (T0 - timedelta(days=3, minutes=-5)).timestamp(),
    }
    assert "opsctl_store_up 1.0" in lines


def test_an_empty_store_has_zero_counts_and_passes_promtool(store: Store, promtool: str) -> None:
    collector = StoreCollector(store, site_zone={"hq": "Asia/Shanghai", "乌鲁木齐": "Asia/Urumqi"})
    body, text = scrape(collector)
    lint(promtool, body)
    assert series(text, "opsctl_checks") == {
        key(state=state): 0 for state in ("ok", "warning", "critical", "unknown")
    }
    assert series(text, "opsctl_check_state") == {}
    assert series(text, "opsctl_site_info") == {
        key(site="hq", timezone="Asia/Shanghai"): 1,
        key(site="乌鲁木齐", timezone="Asia/Urumqi"): 1,
    }
    assert series(text, "opsctl_store_up") == {key(): 1}


def test_registering_the_collector_does_not_read_the_store(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "opsctl.db"))
    store.close()
    (tmp_path / "opsctl.db").unlink()
    (tmp_path / "opsctl.db-wal").unlink(missing_ok=True)
    (tmp_path / "opsctl.db-shm").unlink(missing_ok=True)
    CollectorRegistry().register(StoreCollector(store))
    assert not (tmp_path / "opsctl.db").exists()


def test_flip_counts_never_fall_when_old_flips_are_deleted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "FLIP_SETTLE_SECONDS", 0.0)
    now = whole_seconds()

    def flips(count: int, vendor: str, start: int) -> None:
        with store._sessions.begin() as session:
            session.execute(
                insert(DeviceFlipModel),
                [
                    {
                        "device_id": f"{vendor}-{start + i}",
                        "vendor": vendor,
                        "site": "cdc",
                        "region": "温州市",
                        "at": now + timedelta(seconds=start + i),
                        "from_status": "online",
                        "to_status": "late",
                        "reason": "",
                    }
                    for i in range(count)
                ],
            )

    collector = StoreCollector(store)

    def counted() -> dict[frozenset[tuple[str, str]], float]:
        return series(scrape(collector)[1], "opsctl_fleet_flips_total")

    flips(4, "vendor-c", 0)
    assert counted() == {key(vendor="vendor-c"): 4}
    flips(2, "vendor-d", 10)
    assert counted() == {key(vendor="vendor-c"): 4, key(vendor="vendor-d"): 2}
    with store._sessions.begin() as session:  # retention removes the oldest rows
        session.execute(delete(DeviceFlipModel).where(DeviceFlipModel.vendor == "vendor-c"))
    assert counted() == {key(vendor="vendor-c"): 4, key(vendor="vendor-d"): 2}
    flips(3, "vendor-c", 20)
    assert counted() == {key(vendor="vendor-c"): 7, key(vendor="vendor-d"): 2}
    # The table emptied (after which SQLite hands out ids from 1 again), then a new flip.
    with store._sessions.begin() as session:
        session.execute(delete(DeviceFlipModel))
    assert counted() == {key(vendor="vendor-c"): 7, key(vendor="vendor-d"): 2}
    flips(1, "vendor-d", 30)
    assert counted() == {key(vendor="vendor-c"): 7, key(vendor="vendor-d"): 3}
    # A fresh collector (a restarted server) counts what the table holds: a counter reset.
    assert series(scrape(StoreCollector(store))[1], "opsctl_fleet_flips_total") == {
        key(vendor="vendor-d"): 1
    }


def test_flips_are_counted_in_full_until_they_settle(store: Store) -> None:
    now = whole_seconds()
    collector = StoreCollector(store)
    for done in range(3):
        with store._sessions.begin() as session:
            session.execute(
                insert(DeviceFlipModel),
                {
                    "device_id": f"E{done}",
                    "vendor": "vendor-e",
                    "site": "cdc",
                    "region": "丽水市",
                    "at": now,
                    "from_status": None,
                    "to_status": "online",
                    "reason": "registered",
                },
            )
        counted = series(scrape(collector)[1], "opsctl_fleet_flips_total")
        assert counted == {key(vendor="vendor-e"): done + 1}


def test_a_large_fleet_is_scraped_well_under_a_second(store: Store, promtool: str) -> None:
    now = whole_seconds()
    regions = ["杭州市", "宁波市", "温州市", "嘉兴市", "湖州市"]
    statuses = ["online", "late", "offline", "faulty", "low-stock", "unknown"]
    with store._sessions.begin() as session:
        session.execute(
            insert(DeviceModel),
            [
                device(
                    f"D{i:05d}",
                    f"vendor-{i % 4}",
                    regions[i % 5],
                    statuses[i % 6],
                    now - timedelta(seconds=i),
                )
                for i in range(10_000)
            ],
        )
        session.execute(
            insert(AgentModel),
            [agent_row(f"host-{a:02d}", 30.0, now - timedelta(seconds=5)) for a in range(20)],
        )
        # An hour of history per agent: 20 agents x 10 names x 120 collections.
        sent = now - timedelta(seconds=6)
        session.execute(
            insert(SampleModel),
            [
                agent_sample(
                    f"host-{a:02d}", f"metric_{n}", float(c), sent - timedelta(seconds=30 * c)
                )
                for a in range(20)
                for n in range(10)
                for c in range(120)
            ],
        )
    store.record(
        [
            recorded(
                f"hq/host-{i:03d}/host",
                State(i % 4),
                T0,
                metrics=(Metric("load1", float(i)), Metric("mem_used_percent", 50.0, "%")),
            )
            for i in range(1000)
        ]
    )
    collector = StoreCollector(store)
    scrape(collector)  # the first scrape connects and reads the flips from the start
    started = time.perf_counter()
    body, text = scrape(collector)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"a scrape took {elapsed:.3f} s"
    lint(promtool, body)
    assert sum(series(text, "opsctl_fleet_devices").values()) == 10_000
    assert len(series(text, "opsctl_fleet_devices")) == 4 * 5 * 6 // 2  # i%4, i%5, i%6 co-vary
    latest = series(text, "opsctl_agent_sample")
    assert len(latest) == 20 * 10
    assert set(latest.values()) == {0.0}  # collection 0 is the newest
    assert len(series(text, "opsctl_check_metric")) == 2000
    assert series(text, "opsctl_checks")[key(state="unknown")] == 250


# --------------------------------------------------------------------------- failures


def test_an_unreadable_sqlite_store_says_store_up_0(tmp_path: Path, promtool: str) -> None:
    directory = tmp_path / "store"
    store = Store.open(str(directory / "opsctl.db"))
    populate(store, whole_seconds())
    collector = StoreCollector(store)
    assert series(scrape(collector)[1], "opsctl_store_up") == {key(): 1}
    store.close()
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()  # SQLite cannot even create a new file there
    body, text = scrape(collector)
    lint(promtool, body)
    assert series(text, "opsctl_store_up") == {key(): 0}
    assert [name for name, _ in values(text)] == [
        "opsctl_store_up",
        "opsctl_store_scrape_duration_seconds",
    ]


def test_a_dropped_postgresql_database_says_store_up_0(postgres_url: str, promtool: str) -> None:
    import psycopg

    name = f"opsctl_metrics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin(postgres_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    store = Store.open(make_url(postgres_url).set(database=name).render_as_string(False))
    try:
        populate(store, whole_seconds())
        collector = StoreCollector(store)
        registry = CollectorRegistry()
        registry.register(collector)
        ingest = IngestMetrics(registry)
        ingest.pushed(3, 0, False)
        assert "opsctl_store_up 1.0" in render(registry)[0].decode().splitlines()
        with psycopg.connect(_admin(postgres_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        body, _ = render(registry)
        lint(promtool, body)
        text = body.decode()
        assert series(text, "opsctl_store_up") == {key(): 0}
        assert series(text, "opsctl_check_state") == {}
        assert series(text, "opsctl_ingest_samples_total") == {key(): 3}
    finally:
        store.close()
        with psycopg.connect(_admin(postgres_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- the server's own


def test_ingest_metrics_count_what_the_app_reports(promtool: str) -> None:
    registry = CollectorRegistry()
    ingest = IngestMetrics(registry)
    ingest.observe_request("/api/v1/agent/push", 200, 0.004)
    ingest.observe_request("/api/v1/agent/push", 200, 0.3)
    ingest.observe_request("/api/v1/agent/push", 401, 0.0005)
    ingest.pushed(120, 2, False)
    ingest.pushed(0, 0, True)
    ingest.pushed(30, 0, False)
    ingest.heartbeats("vendor-a", 1000)
    ingest.heartbeats("vendor-a", 5)
    ingest.heartbeats("厂商乙", 0)
    ingest.rejected("/api/v1/agent/push", "unauthorized")
    ingest.rejected("/api/v1/agent/push", "unauthorized")
    ingest.rejected("/api/v1/dispensers/heartbeats", "invalid")

    get = registry.get_sample_value
    push = {"endpoint": "/api/v1/agent/push"}
    assert get("opsctl_ingest_requests_total", {**push, "code": "200"}) == 2
    assert get("opsctl_ingest_requests_total", {**push, "code": "401"}) == 1
    assert get("opsctl_ingest_samples_total") == 150
    assert get("opsctl_ingest_results_total") == 2
    assert get("opsctl_ingest_duplicate_batches_total") == 1
    assert get("opsctl_ingest_heartbeats_total", {"vendor": "vendor-a"}) == 1005
    assert get("opsctl_ingest_heartbeats_total", {"vendor": "厂商乙"}) == 0
    assert get("opsctl_ingest_rejected_total", {**push, "reason": "unauthorized"}) == 2
    assert get("opsctl_ingest_rejected_total", {"endpoint": "/api/v1/dispensers/heartbeats", "reason": "invalid"}) == 1  # fmt: skip
    assert get("opsctl_ingest_request_duration_seconds_count", push) == 3
    assert get("opsctl_ingest_request_duration_seconds_bucket", {**push, "le": "0.001"}) == 1
    assert get("opsctl_ingest_request_duration_seconds_bucket", {**push, "le": "0.005"}) == 2
    assert get("opsctl_ingest_request_duration_seconds_bucket", {**push, "le": "5.0"}) == 3
    assert get("opsctl_ingest_request_duration_seconds_sum", push) == pytest.approx(0.3045)
    lint(promtool, render(registry)[0])


def test_endpoints_beyond_the_limit_count_as_other() -> None:
    registry = CollectorRegistry()
    ingest = IngestMetrics(registry)
    for i in range(metrics.MAX_ENDPOINTS + 5):
        ingest.observe_request(f"/api/probe/{i}", 404, 0.001)
    ingest.observe_request("/api/probe/0", 404, 0.001)
    get = registry.get_sample_value
    assert get("opsctl_ingest_requests_total", {"endpoint": "/api/probe/0", "code": "404"}) == 2
    assert get("opsctl_ingest_requests_total", {"endpoint": "other", "code": "404"}) == 5
    last = f"/api/probe/{metrics.MAX_ENDPOINTS}"
    assert get("opsctl_ingest_requests_total", {"endpoint": last, "code": "404"}) is None


# --------------------------------------------------------------------------- exposition


def test_openmetrics_is_served_when_asked(store: Store) -> None:
    populate(store, whole_seconds())
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    IngestMetrics(registry).pushed(5, 1, False)

    plain, plain_type = render(registry)
    assert plain_type == "text/plain; version=0.0.4; charset=utf-8"
    assert plain.decode().endswith("\n") and "# EOF" not in plain.decode()

    body, content_type = render(
        registry, "application/openmetrics-text; version=1.0.0, text/plain;q=0.5"
    )
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in openmetrics_families(text)}
    assert families["opsctl_fleet_flips"].type == "counter"
    assert {
        sample.labels["vendor"]: sample.value for sample in families["opsctl_fleet_flips"].samples
    } == {"vendor-a": 3, "vendor-b": 2}
    assert [
        s.value for s in families["opsctl_ingest_samples"].samples if s.name.endswith("_total")
    ] == [5]


def test_fold_labels_sorts_and_escapes() -> None:
    assert fold_labels({}) == ""
    assert fold_labels(None) == ""
    assert fold_labels({"mount": "/data", "device": "sda"}) == "device=sda,mount=/data"
    assert fold_labels({"a": "x,b=y"}) != fold_labels({"a": "x", "b": "y"})
    assert fold_labels({"a": "x,b=y"}) == "a=x\\,b\\=y"
    assert fold_labels({"path": "C:\\", "n": 3}) == "n=3,path=C:\\\\"
