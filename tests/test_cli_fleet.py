"""``opsctl fleet``: status, show and import against a store filled through ``ingest`` at
travelled times (SQLite and PostgreSQL), and simulate against a real HTTP server on
127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import time_machine
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.fleet import Rule, Rules
from opsctl.fleet_sim import HEARTBEATS_PATH, Simulator, drive, parse_tokens
from opsctl.server.schemas import Heartbeat, HeartbeatBatch
from opsctl.store import Store
from opsctl.store.fleet import ingest

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
RULE = Rule("zj", "dispensers")  # 1m interval, 30s grace, offline after 5m
RULES = Rules({"vendor-a": RULE, "vendor-b": RULE})
runner = CliRunner()


def beat(store: Store, vendor: str, device_id: str, at: datetime, **fields: Any) -> None:
    fields.setdefault("status", "ok")
    heartbeat = Heartbeat(device_id=device_id, timestamp=at, **fields)
    ingest(store, HeartbeatBatch(vendor=vendor, heartbeats=[heartbeat]), RULES, at)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        """
sites:
  - name: zj
    timezone: Asia/Shanghai
    fleets:
      - name: dispensers
        vendors: [vendor-a, vendor-b]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def fleet(store_url: str) -> str:
    """15 devices: vendor-a in 杭州市 (8 online, A-09 silent since 15:30, A-10 faulty since
    15:40), vendor-b in 宁波市 (4 online, B-05 low on stock)."""
    with Store.open(store_url) as store:
        for n in range(1, 9):
            beat(store, "vendor-a", f"A-{n:02d}", NOW - timedelta(seconds=10), region="杭州市")
        for minute in range(60, 29, -1):
            beat(
                store,
                "vendor-a",
                "A-09",
                NOW - timedelta(minutes=minute),
                region="杭州市",
                address="杭州市西湖区文三路118号社区卫生服务中心门口",
                stock=[
                    {"item": "LNG", "name": "左炔诺孕酮片", "level": 40, "capacity": 60, "low": 6}
                ],
                temperature=23.5,
                door="closed",
                firmware="A-3.1.2",
                interval=60,
            )
        fault = {"status": "fault", "fault_code": "E01", "fault_message": "出药口卡住"}
        for minute in range(20, 0, -1):
            beat(
                store, "vendor-a", "A-10", NOW - timedelta(minutes=minute), region="杭州市", **fault
            )
        for n in range(1, 5):
            beat(store, "vendor-b", f"B-{n:02d}", NOW - timedelta(seconds=10), region="宁波市")
        low = [{"item": "C-M", "name": "避孕套(中号)", "level": 3, "low": 5}]
        beat(store, "vendor-b", "B-05", NOW - timedelta(seconds=10), region="宁波市", stock=low)
    return store_url


def invoke(*args: str, at: datetime = NOW, env: dict[str, str] | None = None) -> Any:
    with time_machine.travel(at, tick=False):
        return runner.invoke(app, list(args), env=env)


# --------------------------------------------------------------------------- status


def test_status_counts_per_vendor_and_region_and_the_worst_offenders(
    fleet: str, inventory: Path
) -> None:
    result = invoke("--db", fleet, "fleet", "status", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "VENDOR", "REGION", "DEVICES", "ONLINE", "LATE", "LOW", "STOCK", "FAULTY", "OFFLINE",
        "UNKNOWN", "OFFLINE", "%",
    ]  # fmt: skip
    assert lines[1].split() == ["vendor-a", "杭州市", "10", "8", "0", "0", "1", "1", "0", "10.0%"]
    assert lines[2].split() == ["vendor-b", "宁波市", "5", "4", "0", "1", "0", "0", "0", "0.0%"]
    assert "15 devices: 12 online, 1 offline (6.7%), 1 faulty, 1 low stock" in lines
    offenders = lines[
        lines.index("15 devices: 12 online, 1 offline (6.7%), 1 faulty, 1 low stock") + 2 :
    ]
    assert offenders[1].split()[:6] == [
        "A-09",
        "vendor-a",
        "杭州市",
        "offline",
        "2026-03-02",
        "15:35:00",
    ]
    assert offenders[1].endswith("(25m)  no heartbeat for 5m (offline after 5m)")
    assert offenders[2].split()[:6] == [
        "A-10",
        "vendor-a",
        "杭州市",
        "faulty",
        "2026-03-02",
        "15:40:00",
    ]
    assert offenders[2].endswith("(20m)  fault E01: 出药口卡住")


def test_status_as_json_with_filters(fleet: str) -> None:
    result = invoke("--db", fleet, "fleet", "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["devices"] == 15
    assert data["totals"] == {
        "online": 12, "late": 0, "low-stock": 1, "faulty": 1, "offline": 1, "unknown": 0
    }  # fmt: skip
    assert data["offline_percent"] == 6.67
    assert [(g["vendor"], g["region"], g["devices"]) for g in data["groups"]] == [
        ("vendor-a", "杭州市", 10),
        ("vendor-b", "宁波市", 5),
    ]
    assert [(o["device_id"], o["status"], o["since"]) for o in data["offenders"]] == [
        ("A-09", "offline", "2026-03-02T07:35:00+00:00"),
        ("A-10", "faulty", "2026-03-02T07:40:00+00:00"),
    ]
    only_b = json.loads(
        invoke("--db", fleet, "fleet", "status", "--json", "--vendor", "vendor-b").stdout
    )
    assert (only_b["devices"], only_b["offenders"]) == (5, [])
    region = json.loads(
        invoke(
            "--db", fleet, "fleet", "status", "--json", "--region", "杭州市", "--top", "1"
        ).stdout
    )
    assert (region["devices"], [o["device_id"] for o in region["offenders"]]) == (10, ["A-09"])
    # Later, the offline device is still offline and everyone else has gone silent too.
    later = json.loads(
        invoke("--db", fleet, "fleet", "status", "--json", at=NOW + timedelta(hours=1)).stdout
    )
    assert later["totals"]["offline"] == 15


def test_status_of_an_empty_store(tmp_path: Path) -> None:
    result = invoke("--db", str(tmp_path / "empty.db"), "fleet", "status")
    assert (result.exit_code, result.stdout.strip()) == (0, "no devices in the store")
    filtered = invoke("--db", str(tmp_path / "empty.db"), "fleet", "status", "--site", "x")
    assert filtered.stdout.strip() == "no devices in the store matching the filters"


# --------------------------------------------------------------------------- show


def test_show_a_device_in_its_sites_time_zone(fleet: str, inventory: Path) -> None:
    result = invoke("--db", fleet, "fleet", "show", "A-09", "--since", "1h", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0] == "A-09 (vendor-a, 杭州市, site zj)"
    assert "  address:        杭州市西湖区文三路118号社区卫生服务中心门口" in out
    assert (
        "registered:     no (learned from its heartbeats); first heard 2026-03-02 15:00:00" in out
    )
    assert "status:         offline since 2026-03-02 15:35:00 (25m)" in out
    assert (
        "last heartbeat: 2026-03-02 15:30:00 (30m ago; device clock 2026-03-02 15:30:00), 31 in all"
        in out
    )
    assert "reported ok, 23.5°C, door closed, firmware A-3.1.2, every 1m" in out
    assert "  stock:          左炔诺孕酮片 40/60 (low ≤ 6)" in out
    assert "availability:   58.33% over 1h (down 25m)" in out
    timeline = [line.split(None, 4) for line in out.splitlines()[-3:]]
    assert timeline == [
        ["2026-03-02", "15:00:00", "-", "online", "first heartbeat"],
        [
            "2026-03-02",
            "15:31:30",
            "online",
            "late",
            "no heartbeat for 1m 30s (late after 1m + 30s grace)",
        ],
        ["2026-03-02", "15:35:00", "late", "offline", "no heartbeat for 5m (offline after 5m)"],
    ]


def test_show_as_json(fleet: str) -> None:
    result = invoke("--db", fleet, "fleet", "show", "A-10", "--since", "30m", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"]["vendor"] == "vendor-a"
    assert (data["status"], data["since"]) == ("faulty", "2026-03-02T07:40:00+00:00")
    assert data["heartbeat"]["fault_code"] == "E01"
    assert [(f["from"], f["to"]) for f in data["flips"]] == [(None, "faulty")]
    # The window: 10 minutes before the first heartbeat unknown, then 20 minutes faulty.
    availability = data["availability"]
    assert (
        availability["up_seconds"],
        availability["down_seconds"],
        availability["unknown_seconds"],
    ) == (0, 1200, 600)
    assert availability["ratio"] == 0


def test_show_refuses_an_unknown_device_and_a_bad_window(fleet: str) -> None:
    missing = invoke("--db", fleet, "fleet", "show", "NOPE")
    assert missing.exit_code == 2
    assert "no device 'NOPE'" in missing.stderr
    bad = invoke("--db", fleet, "fleet", "show", "A-01", "--since", "a week")
    assert bad.exit_code == 2
    assert "--since: expected a duration" in bad.stderr


# --------------------------------------------------------------------------- import


def test_import_a_registry(store_url: str, inventory: Path) -> None:
    result = invoke(
        "--db",
        store_url,
        "fleet",
        "import",
        str(FIXTURES / "registry-gbk.csv"),
        "-i",
        str(inventory),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"imported 3 devices from {FIXTURES / 'registry-gbk.csv'}"
    status = json.loads(invoke("--db", store_url, "fleet", "status", "--json").stdout)
    assert status["totals"]["unknown"] == 3
    assert [(g["vendor"], g["region"]) for g in status["groups"]] == [
        ("vendor-c", "绍兴市"),
        ("vendor-c", "金华市"),
    ]


def test_import_reports_every_error_and_imports_nothing(store_url: str) -> None:
    result = invoke("--db", store_url, "fleet", "import", str(FIXTURES / "registry-errors.csv"))
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert errors[0] == "registry-errors.csv:3 vendor: required"
    assert errors[-1] == f"{FIXTURES / 'registry-errors.csv'}: 6 errors; nothing imported"
    as_json = invoke(
        "--db", store_url, "fleet", "import", str(FIXTURES / "registry-errors.csv"), "--json"
    )
    assert json.loads(as_json.stdout)["imported"] == 0
    assert json.loads(invoke("--db", store_url, "fleet", "status", "--json").stdout)["devices"] == 0


# --------------------------------------------------------------------------- simulate


class Recorder(ThreadingHTTPServer):
    """A vendor endpoint on 127.0.0.1 that records each request and answers from a script."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []  # status codes to give first, in order; then 200
        self.refuse: dict[str, int] = {}  # token -> status code
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "token": token, "body": json.loads(body)}
            )
            code = (
                self.server.answers.pop(0)
                if self.server.answers
                else self.server.refuse.get(token, 200)
            )
        if code == 200:
            count = len(json.loads(body)["heartbeats"])
            answer: dict[str, Any] = {"accepted": count, "stale": 0, "flips": 1}
        else:
            answer = {
                "error": "forbidden" if code == 403 else "unavailable",
                "detail": "",
                "fields": [],
            }
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def test_simulate_posts_every_vendors_batch_with_its_own_token(server: Recorder) -> None:
    result = runner.invoke(
        app,
        ["fleet", "simulate", "--server", server.url, "--devices", "30", "--vendors", "2",
         "--duration", "0s", "--token", "vendor-a=secret-token-a", "--token", "vendor-b=secret-token-b"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "secret-token" not in result.output
    assert {r["path"] for r in server.requests} == {HEARTBEATS_PATH}
    tokens = {r["body"]["vendor"]: r["token"] for r in server.requests}
    assert tokens == {"vendor-a": "secret-token-a", "vendor-b": "secret-token-b"}
    sent = 0
    for request in server.requests:
        batch = HeartbeatBatch.model_validate(request["body"])
        assert all(hb.device_id.startswith("ZJ-33") for hb in batch.heartbeats)
        sent += len(batch.heartbeats)
    assert 20 <= sent <= 30
    assert result.stdout.splitlines()[-1].startswith(
        f"sent {sent} heartbeats in 2 batches: {sent} accepted, 0 stale"
    )


def test_simulate_takes_tokens_from_the_environment_and_reports_refusals(server: Recorder) -> None:
    server.refuse = {"token-b": 403}
    result = runner.invoke(
        app,
        [
            "fleet",
            "simulate",
            "--server",
            server.url,
            "--devices",
            "20",
            "--vendors",
            "2",
            "--duration",
            "0s",
            "--json",
        ],
        env={"OPSCTL_VENDOR_TOKENS": "vendor-a=token-a,vendor-b=token-b"},
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["errors"] == {"HTTP 403: forbidden": 1}
    assert report["batches"] == 2 and report["accepted"] < report["sent"]
    assert "token-" not in result.output


def test_simulate_refuses_to_start_without_every_token(server: Recorder) -> None:
    result = runner.invoke(
        app,
        [
            "fleet",
            "simulate",
            "--server",
            server.url,
            "--vendors",
            "3",
            "--token",
            "vendor-a=xyz-secret",
        ],
        env={"OPSCTL_VENDOR_TOKENS": ""},
    )
    assert result.exit_code == 2
    assert "no token for vendor-b, vendor-c" in result.stderr
    assert "xyz-secret" not in result.output
    assert server.requests == []
    malformed = runner.invoke(
        app, ["fleet", "simulate", "--server", server.url, "--token", "vendor-a"]
    )
    assert malformed.exit_code == 2 and "expected VENDOR=TOKEN" in malformed.stderr
    assert runner.invoke(app, ["fleet", "simulate", "--server", "127.0.0.1:8080"]).exit_code == 2


def test_parse_tokens_lets_options_win_over_the_environment() -> None:
    tokens = parse_tokens(
        ["vendor-b=option"], {"OPSCTL_VENDOR_TOKENS": " vendor-a=env-a , vendor-b=env-b "}
    )
    assert tokens == {"vendor-a": "env-a", "vendor-b": "option"}
    with pytest.raises(ValueError, match="OPSCTL_VENDOR_TOKENS: expected VENDOR=TOKEN") as raised:
        parse_tokens([], {"OPSCTL_VENDOR_TOKENS": "vendor-a=ok,vendor-b"})
    assert "ok" not in str(raised.value)


def test_drive_sends_heartbeats_as_they_fall_due_and_retries_a_failing_server(
    server: Recorder,
) -> None:
    simulator = Simulator(12, 2, seed=5, interval=60)
    server.answers = [503]  # the first request fails once
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    clock_now = [start]
    pauses: list[float] = []

    def clock() -> datetime:
        return clock_now[0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock_now[0] += timedelta(seconds=seconds)

    seen: list[int] = []
    report = drive(
        simulator,
        server.url,
        {"vendor-a": "ta", "vendor-b": "tb"},
        timedelta(minutes=3),
        clock=clock,
        sleep=sleep,
        tick=timedelta(seconds=30),
        progress=lambda r: seen.append(r.sent),
    )
    # The retry's pause (which the clock counts too), then a tick at a time up to 3 minutes.
    assert pauses == [0.5, 30.0, 30.0, 30.0, 30.0, 30.0, 29.5]
    expected = len(list(simulator.snapshot(start))) + len(
        list(simulator.heartbeats_between(start, start + timedelta(minutes=3)))
    )
    assert report.sent == report.accepted == expected
    assert not report.errors
    assert seen == sorted(seen) and seen[-1] == expected
    # Each device beat about once a minute: its first heartbeat, then three more.
    per_device = Counter(hb["device_id"] for r in server.requests for hb in r["body"]["heartbeats"])
    assert len(server.requests) >= 1 + 2 * 6
    assert sorted(set(per_device.values())) in ([4], [3, 4], [4, 5], [3, 4, 5])
    assert report.percentile(0.5) is not None and report.to_dict()["latency_ms"]["p99"] is not None


def test_drive_counts_an_unreachable_server_as_failed_batches() -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    report = drive(
        Simulator(5, 1, seed=1),
        f"http://127.0.0.1:{port}",
        {"vendor-a": "t"},
        timedelta(0),
        sleep=lambda seconds: None,
        timeout=2,
    )
    assert report.sent > 0 and report.accepted == 0
    assert list(report.errors) == ["cannot connect: ConnectionError"]
