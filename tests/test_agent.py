"""opsctl-agent: what it collects, its spool, its backoff, and pushes to real HTTP servers on
127.0.0.1 (in-process, and as real ``opsctl-agent`` processes, one of them killed with -9).

The agent must not import opsctl; these tests may, to hold its output against the server's
wire formats (``AgentPush``) and the host records (``HostFacts``, ``MountUsage``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
import trustme
from pydantic import ValidationError

import agents
from agents.cli import main
from agents.collect import Collector, choose_mounts, is_pseudo, physical_disks
from agents.config import (
    AgentConfig,
    CheckSpec,
    ConfigError,
    Token,
    default_name,
    default_spool,
    load,
    parse_duration,
    parse_size,
)
from agents.local_checks import parse_perfdata, run_check
from agents.loop import Agent, build_batch, new_batch_id, push_body
from agents.push import (
    DELIVERED,
    REJECTED,
    RETRY,
    UNAUTHORIZED,
    Backoff,
    Pusher,
    outcome_of,
    server_message,
)
from agents.spool import Spool, SpoolError
from opsctl.server.schemas import AgentPush
from opsctl.sources import HostFacts, MountUsage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-agent-token"


def agent_command() -> list[str]:
    script = Path(sys.executable).parent / "opsctl-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agents.cli"]


# --------------------------------------------------------------------------- a push server


class Recorder:
    """What the test server received and how it answers: ``answers`` first (one status
    per request), then ``default``. It validates bodies as the server does (422 if invalid)
    and stores each batch id once (a repeat is answered ``duplicate``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.default = 200
        self.stored: list[dict[str, Any]] = []
        self.close_silently = False

    def stored_ids(self) -> list[str]:
        with self.lock:
            return [body["batch_id"] for body in self.stored]

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            status = self.answers.pop(0) if self.answers else self.default
            if 200 <= status < 300:
                try:
                    AgentPush.model_validate(body)
                except ValidationError as error:
                    return 422, {"error": "invalid", "detail": str(error), "fields": []}
                duplicate = body["batch_id"] in {b["batch_id"] for b in self.stored}
                if not duplicate:
                    self.stored.append(body)
                return status, {
                    "batch_id": body["batch_id"],
                    "duplicate": duplicate,
                    "samples": 0 if duplicate else len(body["samples"]),
                    "results": 0 if duplicate else len(body["results"]),
                }
            fields = [{"loc": ["body", "samples", 0, "value"], "msg": "not finite"}]
            return status, {
                "error": f"http_{status}",
                "detail": f"test server answers {status}",
                "fields": fields if status == 422 else [],
            }


class PushHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        recorder: Recorder = self.server.recorder  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with recorder.lock:
            recorder.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "body": body,
                    "client": self.client_address,
                }
            )
        status, answer = recorder.answer(body)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if recorder.close_silently:
            # Hang up without saying so, as a server dropping an idle kept-alive connection.
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def start_server(server: ThreadingHTTPServer) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    server.recorder = recorder  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def push_server() -> Iterator[tuple[str, Recorder]]:
    """A real HTTP server on 127.0.0.1 playing the opsctl server's push endpoint."""
    yield from start_server(ThreadingHTTPServer(("127.0.0.1", 0), PushHandler))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Testing Hospital CA")


@pytest.fixture
def tls_push_server(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, Recorder]]:
    """The push server over TLS, with a certificate the test CA issued for 127.0.0.1."""
    pem = tmp_path / "server.pem"
    pem.write_bytes(ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    server = ThreadingHTTPServer(("127.0.0.1", 0), PushHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from start_server(server)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def make_config(
    tmp_path: Path, server: str | None, token_file: Path, **changes: Any
) -> AgentConfig:
    values: dict[str, Any] = {
        "name": "ward-3.hospital",
        "spool": tmp_path / "spool" / "spool.db",
        "server": server,
        "token": Token("file", str(token_file), "test"),
        "interval": 30.0,
    }
    values.update(changes)
    return AgentConfig(**values)


@pytest.fixture(scope="module")
def collector() -> Collector:
    return Collector()


def spooled_agent(config: AgentConfig, collector: Collector, batches: int) -> Agent:
    """An agent on a fresh spool holding ``batches`` collected batches."""
    spool = Spool(config.spool, config.spool_max_bytes, config.spool_max_age)
    assert config.server is not None and config.token is not None
    agent = Agent(config, spool, collector, Pusher(config.server, config.token, timeout=5))
    for _ in range(batches):
        assert agent.collect() is not None
    return agent


def spool_rows(path: Path) -> list[tuple[str, int]]:
    """(batch_id, samples) of every spooled batch, oldest first, read beside the agent."""
    db = sqlite3.connect(path, timeout=10)
    try:
        return [
            tuple(row) for row in db.execute("SELECT batch_id, samples FROM batches ORDER BY id")
        ]
    finally:
        db.close()


# --------------------------------------------------------------------------- small and light


def test_agent_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "import agents.cli, agents.collect, agents.config, agents.local_checks, agents.loop\n"
        "import agents.push, agents.spool\n"
        "with contextlib.redirect_stdout(io.StringIO()) as printed:\n"
        "    code = agents.cli.main(['--print'])\n"
        "assert code == 0 and json.loads(printed.getvalue())['samples']\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    heavy = ("opsctl", "pydantic", "sqlalchemy", "typer", "rich", "requests", "uuid")
    assert [m for m in loaded if m.split(".")[0] in heavy] == []
    assert "yaml" not in loaded  # PyYAML only when a config file is given
    assert "psutil" in loaded and "agents.collect" in loaded


def test_version_is_the_projects() -> None:
    assert agents.__version__ == version("opsctl")


def test_batch_ids_are_uuid4_hex() -> None:
    ids = {new_batch_id() for _ in range(1000)}
    assert len(ids) == 1000
    for batch_id in list(ids)[:50]:
        parsed = uuid.UUID(hex=batch_id)
        assert parsed.version == 4 and parsed.hex == batch_id


# --------------------------------------------------------------------------- collection


def test_collected_batch_is_a_valid_push(collector: Collector, tmp_path: Path) -> None:
    plugin = tmp_path / "check_ok"
    plugin.write_text(
        f"#!{sys.executable}\nprint('DISK OK - 12% used | used=12%;80;90;0;100 free=30GB')\n"
    )
    plugin.chmod(0o755)
    config = AgentConfig(
        name="ward-3",
        spool=tmp_path / "unused.db",
        checks=(CheckSpec("disk", (str(plugin),), 5),),
    )
    batch = build_batch(config, collector)
    body = {
        "sent_at": "2026-11-23T08:00:00+00:00",
        "spool": {"queued_batches": 1, "dropped_batches": 0, "dropped_samples": 0},
        **batch,
    }
    push = AgentPush.model_validate(json.loads(json.dumps(body)))
    assert push.agent == "ward-3" and uuid.UUID(hex=push.batch_id).version == 4
    assert push.facts is not None and push.facts.version == agents.__version__
    HostFacts.from_dict(batch["facts"]["host"])
    assert batch["facts"]["mounts"]
    for mount in batch["facts"]["mounts"]:
        MountUsage.from_dict(mount)
    [result] = push.results
    assert (result.name, result.kind, result.state) == ("disk", "agent.local", 0)
    assert result.summary == "DISK OK - 12% used"
    assert [(m["name"], m["value"], m["unit"]) for m in result.metrics] == [
        ("used", 12.0, "%"),
        ("free", 30.0, "GB"),
    ]
    assert not (tmp_path / "unused.db").exists()  # collecting alone touches no spool


def samples_by(batch: dict[str, Any]) -> dict[tuple[str, tuple], float]:
    return {(s["name"], tuple(sorted(s["labels"].items()))): s["value"] for s in batch["samples"]}


def test_samples_match_the_host(collector: Collector) -> None:
    first = collector.collect()
    second = collector.collect()
    values = samples_by({"samples": second.samples})
    name_pattern = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.]*$")
    assert all(name_pattern.match(name) for name, _ in values)
    for name in ("cpu_percent", "memory_used_percent"):
        assert 0 <= values[(name, ())] <= 100
    for name in ("load1", "load5", "load15", "swap_total_bytes", "swap_used_bytes"):
        assert values[(name, ())] >= 0
    assert values[("memory_total_bytes", ())] == psutil.virtual_memory().total
    assert second.facts["host"]["cpu_count"] == psutil.cpu_count()

    # Every real filesystem psutil knows of is measured (once per device), as df measures.
    fs = {dict(labels)["mount"]: v for (n, labels), v in values.items() if n == "fs_used_percent"}
    assert fs, "no real filesystem measured"
    devices = {}
    for partition in psutil.disk_partitions(all=False):
        if not is_pseudo(partition.fstype, partition.mountpoint):
            devices.setdefault(partition.device, []).append(partition.mountpoint)
    for device, mounts in devices.items():
        measured = [m for m in mounts if m in fs]
        assert len(measured) == 1, (device, mounts)
        stat = os.statvfs(measured[0])
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        expected = 100 * used / (used + stat.f_bavail * stat.f_frsize)
        assert fs[measured[0]] == pytest.approx(expected, abs=1.0)
    pseudo = [m["mount"] for m in second.facts["mounts"] if is_pseudo(m["fstype"], m["mount"])]
    assert pseudo and not set(pseudo) & set(fs)

    # Every interface but lo; counters only grow.
    interfaces = {dict(labels)["interface"] for (n, labels) in values if n == "net_rx_bytes_total"}
    assert interfaces == set(psutil.net_io_counters(pernic=True)) - {"lo"}
    before = samples_by({"samples": first.samples})
    for key, value in values.items():
        if key[0].endswith("_total") and key in before:
            assert value >= before[key], key
    disks = {dict(labels)["device"] for (n, labels) in values if n == "disk_read_bytes_total"}
    assert disks == physical_disks(psutil.disk_io_counters(perdisk=True) or {})
    for device in disks:
        assert (values[("disk_reads_total", (("device", device),))]) >= 0


def test_physical_disks_leave_out_partitions_and_virtual_devices(tmp_path: Path) -> None:
    for name, physical in (("sda", True), ("nvme0n1", True), ("loop0", False), ("dm-0", False)):
        (tmp_path / name).mkdir()
        if physical:
            (tmp_path / name / "device").mkdir()
    names = ["sda", "sda1", "nvme0n1", "nvme0n1p2", "loop0", "dm-0", "zram0"]
    assert physical_disks(names, tmp_path) == {"sda", "nvme0n1"}
    assert physical_disks(names, tmp_path / "absent") == set(names)


def test_mounts_beyond_a_push_leave_pseudo_filesystems_out_first() -> None:
    def part(mount: str, fstype: str) -> SimpleNamespace:
        return SimpleNamespace(mountpoint=mount, device=f"dev{mount}", fstype=fstype)

    partitions = [part(f"/run/user/{i}", "tmpfs") for i in range(500)]
    partitions += [part(f"/data{i}", "xfs") for i in range(100)]
    partitions += [part("/var/lib/docker/overlay2/abc/merged", "overlay"), part("/data0", "ext4")]
    chosen, note = choose_mounts(partitions)
    assert len(chosen) == 500
    assert {f"/data{i}" for i in range(100)} <= set(chosen)
    assert chosen["/data0"].fstype == "ext4"  # the last mount at a mount point is the visible one
    assert note == "600 mounts, more than a push may carry: left out 100 (pseudo filesystems first)"
    assert choose_mounts(partitions[:10]) == ({p.mountpoint: p for p in partitions[:10]}, "")


def test_host_facts_are_the_local_sources(collector: Collector) -> None:
    from opsctl.sources.local import LocalSource

    source = LocalSource(cpu_interval=0)
    theirs = source.facts().to_dict()
    ours = collector.collect().facts
    same = ("hostname", "os_name", "os_version", "os_pretty_name", "kernel", "architecture")
    assert {k: ours["host"][k] for k in same} == {k: theirs[k] for k in same}
    assert ours["host"]["cpu_model"] == theirs["cpu_model"]
    assert ours["host"]["cpu_count"] == theirs["cpu_count"]
    assert ours["host"]["boot_time"] == theirs["boot_time"]
    assert set(ours["host"]) == set(theirs)
    assert {m["mount"] for m in ours["mounts"]} == {m.mount for m in source.mounts()}


# --------------------------------------------------------------------------- local checks


def plugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_local_checks_nagios_semantics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_AGENT_TOKEN", TOKEN)
    critical = plugin(
        tmp_path, "crit", "print('LOAD CRITICAL - 9.1|load1=9.1;4;8;0\\nmore')\nsys.exit(2)"
    )
    odd = plugin(tmp_path, "odd", "print('half done')\nsys.exit(7)")
    quiet = plugin(
        tmp_path, "quiet", "sys.stderr.write('cannot read /proc/loadavg\\n')\nsys.exit(3)"
    )
    env = plugin(tmp_path, "env", "print(os.environ.get('OPSCTL_AGENT_TOKEN', 'no token'))")

    result = run_check(CheckSpec("load", (critical,), 5))
    assert (result["state"], result["summary"]) == (2, "LOAD CRITICAL - 9.1")
    assert result["metrics"][0]["name"] == "load1" and result["metrics"][0]["crit"] == "8"
    result = run_check(CheckSpec("odd", (odd,), 5))
    assert result["state"] == 3
    assert result["summary"] == "exit code 7 is not a Nagios state (0 to 3): half done"
    result = run_check(CheckSpec("quiet", (quiet,), 5))
    assert (result["state"], result["summary"]) == (3, "cannot read /proc/loadavg")
    assert run_check(CheckSpec("env", (env,), 5))["summary"] == "no token"
    result = run_check(CheckSpec("missing", (str(tmp_path / "absent"),), 5))
    assert result["state"] == 3 and "cannot run" in result["summary"]
    assert "No such file" in result["summary"]


def test_local_check_timeout_kills_its_children(tmp_path: Path) -> None:
    # The child sleep keeps the pipe open: without killing the session this would hang.
    slow = plugin(
        tmp_path,
        "slow",
        "import subprocess\nsubprocess.Popen(['sleep', '30'])\ntime.sleep(30)",
    )
    started = time.monotonic()
    result = run_check(CheckSpec("slow", (slow,), 0.5))
    assert time.monotonic() - started < 10
    assert (result["state"], result["summary"]) == (3, "timed out after 0.5s")


def test_perfdata_parsing() -> None:
    metrics = parse_perfdata("'disk /data'=81.5%;80;90;0;100 time=0.2s bad=x u=U count=3c")
    assert [(m["name"], m["value"], m["unit"], m["warn"], m["max"]) for m in metrics] == [
        ("disk /data", 81.5, "%", "80", 100.0),
        ("time", 0.2, "s", None, None),
        ("count", 3.0, "c", None, None),
    ]


# --------------------------------------------------------------------------- spool


def fake_batch(samples: int = 3) -> dict[str, Any]:
    return {
        "batch_id": new_batch_id(),
        "agent": "ward-3",
        "interval": 30.0,
        "facts": None,
        "samples": [
            {
                "name": "load1",
                "labels": {"n": str(i)},
                "value": random.random(),
                "at": "2026-11-23T08:00:00+00:00",
            }
            for i in range(samples)
        ],
        "results": [],
    }


def test_spool_keeps_order_and_bodies_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spool.db"
    batches = [fake_batch(i + 1) for i in range(5)]
    with Spool(path) as spool:
        for batch in batches:
            assert spool.add(batch) == []
        assert spool.queued == 5
    with Spool(path) as spool:
        queued = spool.oldest(10)
        assert [q.batch_id for q in queued] == [b["batch_id"] for b in batches]
        assert [q.samples for q in queued] == [1, 2, 3, 4, 5]
        assert [json.loads(q.body) for q in queued] == batches
        spool.delete(queued[0])
        assert spool.oldest(1)[0].batch_id == batches[1]["batch_id"]
    with Spool(path) as spool:
        assert spool.queued == 4


def test_spool_is_bounded_by_size_and_counts_drops(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=10_000) as spool:
        sizes = []
        added = []
        dropped = []
        while not dropped:
            batch = fake_batch(10)
            added.append(batch)
            before = spool.size
            dropped = spool.add(batch)
            sizes.append(spool.size - before)
        assert spool.size <= 10_000
        [drop] = dropped
        assert (drop.reason, drop.batches, drop.samples) == ("full", 1, 10)
        assert spool.oldest(1)[0].batch_id == added[1]["batch_id"]  # the oldest went
        counters = spool.counters()
    assert counters == {
        "queued_batches": len(added) - 1,
        "dropped_batches": 1,
        "dropped_samples": 10,
    }
    with Spool(path, max_bytes=10_000) as spool:
        assert spool.counters() == counters
        assert spool.drops()["full"] == (1, 10)
        # A batch larger than the whole spool cannot be kept either: counted, not silent.
        big = fake_batch(2000)
        drops = spool.add(big)
        assert sum(d.batches for d in drops) == counters["queued_batches"] + 1
        assert spool.queued == 0
        assert spool.counters()["dropped_samples"] == 10 + 10 * counters["queued_batches"] + 2000


def test_spool_expires_old_batches(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    path = tmp_path / "spool.db"
    with Spool(path, max_age=3600, clock=lambda: now[0]) as spool:
        old = [fake_batch(2), fake_batch(2)]
        for batch in old:
            spool.add(batch)
        now[0] += 1800
        fresh = fake_batch(4)
        spool.add(fresh)
        now[0] += 1801
        assert [(d.reason, d.batches, d.samples) for d in spool.enforce()] == [("expired", 2, 4)]
        assert [q.batch_id for q in spool.oldest(5)] == [fresh["batch_id"]]
        [queued] = spool.oldest(1)
        rejected = spool.reject(queued)
        assert (rejected.reason, rejected.samples) == ("rejected", 4)
    with Spool(path, max_age=3600, clock=lambda: now[0]) as spool:
        assert spool.drops() == {"full": (0, 0), "expired": (2, 4), "rejected": (1, 4)}
        assert spool.counters() == {"queued_batches": 0, "dropped_batches": 3, "dropped_samples": 8}


def test_spool_refuses_a_second_agent_and_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path), pytest.raises(SpoolError, match="in use by another opsctl-agent"):
        Spool(path)
    other = tmp_path / "notes.db"
    other.write_text("not a database, just notes\n" * 100)
    with pytest.raises(SpoolError, match=r"notes\.db: not a usable spool file"):
        Spool(other)


# --------------------------------------------------------------------------- backoff


def test_backoff_full_jitter_within_bounds() -> None:
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(42))
    delays = [backoff.next_delay() for _ in range(30)]
    for failures, delay in enumerate(delays):
        assert 0 <= delay <= min(300.0, 2.0**failures)
    assert max(delays[10:]) > 150  # reaches far toward the cap
    assert len({round(d, 6) for d in delays}) == 30  # jittered, never in lockstep
    assert Backoff(rng=random.Random(42)).next_delay() == delays[0]  # seeded: reproducible
    backoff.reset()
    assert backoff.ceiling() == 1.0 and backoff.next_delay() <= 1.0


# --------------------------------------------------------------------------- push


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, DELIVERED), (202, DELIVERED), (401, UNAUTHORIZED), (403, UNAUTHORIZED),
        (400, REJECTED), (404, REJECTED), (413, REJECTED), (422, REJECTED),
        (408, RETRY), (429, RETRY), (500, RETRY), (502, RETRY), (503, RETRY), (301, RETRY),
    ],
)  # fmt: skip
def test_what_an_answer_means(status: int, outcome: str) -> None:
    assert outcome_of(status) == outcome


def test_server_message_reads_problems() -> None:
    problem = {
        "error": "invalid",
        "detail": "invalid push",
        "fields": [{"loc": ["samples", 3], "msg": "bad"}],
    }
    assert server_message(422, json.dumps(problem).encode()) == "invalid push: samples.3: bad"
    assert server_message(502, b"<html>\n Bad   Gateway</html>") == "<html> Bad Gateway</html>"
    assert server_message(500, b"") == "HTTP 500 with an empty body"


def test_failed_pushes_are_replayed_oldest_first_with_their_ids(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path, collector: Collector
) -> None:
    url, recorder = push_server
    recorder.answers = [500, 500]
    agent = spooled_agent(make_config(tmp_path, url, token_file), collector, 3)
    created = [q.batch_id for q in agent.spool.oldest(10)]

    for attempt in (1, 2):
        answer = agent.deliver()
        assert answer is not None and (answer.outcome, answer.status) == (RETRY, 500)
        assert answer.message == "test server answers 500"
        assert agent.spool.queued == 3 and len(recorder.requests) == attempt
    assert agent.deliver() is None
    assert agent.spool.queued == 0
    assert [r["body"]["batch_id"] for r in recorder.requests] == [created[0], created[0], *created]
    assert recorder.stored_ids() == created
    for request in recorder.requests:
        assert request["path"] == "/api/v1/agent/push"
        assert request["authorization"] == f"Bearer {TOKEN}"
    assert recorder.requests[2]["body"]["spool"]["queued_batches"] == 3
    assert recorder.requests[-1]["body"]["spool"]["queued_batches"] == 1
    agent.spool.close()


def test_a_resent_batch_is_a_duplicate_not_a_new_one(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path, collector: Collector
) -> None:
    url, recorder = push_server
    agent = spooled_agent(make_config(tmp_path, url, token_file), collector, 1)
    [queued] = agent.spool.oldest(1)
    body = push_body(queued, agent.spool.counters(), "2026-11-23T08:00:00+00:00")
    first, again = agent.sender.push(body), agent.sender.push(body)  # an answer "lost"
    assert (first.outcome, first.duplicate, again.outcome, again.duplicate) == (
        DELIVERED, False, DELIVERED, True,
    )  # fmt: skip
    assert recorder.stored_ids() == [queued.batch_id]
    agent.spool.close()


def test_rejected_batch_is_dropped_and_counted(
    push_server: tuple[str, Recorder],
    tmp_path: Path,
    token_file: Path,
    collector: Collector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, recorder = push_server
    recorder.answers = [422]
    agent = spooled_agent(make_config(tmp_path, url, token_file), collector, 2)
    first, second = agent.spool.oldest(2)
    with caplog.at_level("WARNING", logger="opsctl-agent"):
        assert agent.deliver() is None
    assert agent.spool.queued == 0
    assert recorder.stored_ids() == [second.batch_id]
    assert recorder.requests[1]["body"]["spool"] == {
        "queued_batches": 1,
        "dropped_batches": 1,
        "dropped_samples": first.samples,
    }
    assert (
        f"server refused batch {first.batch_id} (HTTP 422): test server answers 422" in caplog.text
    )
    assert "body.samples.0.value: not finite" in caplog.text
    assert f"dropped 1 batches ({first.samples} samples): refused by the server" in caplog.text
    agent.spool.close()


def test_unauthorized_keeps_the_batches(
    push_server: tuple[str, Recorder],
    tmp_path: Path,
    token_file: Path,
    collector: Collector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, recorder = push_server
    recorder.default = 401
    agent = spooled_agent(make_config(tmp_path, url, token_file), collector, 2)
    with caplog.at_level("ERROR", logger="opsctl-agent"):
        answer = agent.deliver()
    assert answer is not None and answer.outcome == UNAUTHORIZED
    assert agent.spool.queued == 2 and len(recorder.requests) == 1
    assert "server refused the token (HTTP 401: test server answers 401)" in caplog.text
    # The operator fixes the token file: the next push reads it, no restart needed.
    token_file.unlink()
    assert "cannot read token file" in agent.deliver().message  # type: ignore[union-attr]
    token_file.write_text(TOKEN)
    recorder.default = 200
    assert agent.deliver() is None and agent.spool.queued == 0
    agent.spool.close()


@pytest.mark.parametrize("status", [408, 429, 503])
def test_transient_answers_keep_the_batch(
    push_server: tuple[str, Recorder],
    tmp_path: Path,
    token_file: Path,
    collector: Collector,
    status: int,
) -> None:
    url, recorder = push_server
    recorder.default = status
    agent = spooled_agent(make_config(tmp_path, url, token_file), collector, 1)
    answer = agent.deliver()
    assert answer is not None and (answer.outcome, answer.status) == (RETRY, status)
    assert agent.spool.queued == 1 and agent.spool.counters()["dropped_batches"] == 0
    agent.spool.close()


def test_connection_refused_keeps_the_batch(
    tmp_path: Path, token_file: Path, collector: Collector
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = spooled_agent(
        make_config(tmp_path, f"http://127.0.0.1:{port}", token_file), collector, 1
    )
    answer = agent.deliver()
    assert answer is not None and answer.outcome == RETRY and answer.status is None
    assert answer.message == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert agent.spool.queued == 1
    agent.spool.close()


def test_kept_alive_connection_is_reused_and_reopened(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path
) -> None:
    url, recorder = push_server
    pusher = Pusher(url, Token("file", str(token_file), "test"), timeout=5)
    body = json.dumps({"sent_at": "2026-11-23T08:00:00+00:00", **fake_batch()}).encode()
    assert pusher.push(body).outcome == DELIVERED
    assert pusher.push(body).duplicate
    assert len({r["client"] for r in recorder.requests}) == 1  # one connection
    recorder.close_silently = True
    assert pusher.push(body).outcome == DELIVERED  # the server hangs up after this answer
    assert pusher.push(body).outcome == DELIVERED  # reconnected
    assert len({r["client"] for r in recorder.requests}) == 2
    pusher.close()


def test_tls_is_verified_against_the_ca_bundle(
    tls_push_server: tuple[str, Recorder], ca: trustme.CA, tmp_path: Path, token_file: Path
) -> None:
    url, recorder = tls_push_server
    body = json.dumps({"sent_at": "2026-11-23T08:00:00+00:00", **fake_batch()}).encode()
    token = Token("file", str(token_file), "test")
    answer = Pusher(url, token, timeout=5).push(body)
    assert answer.outcome == RETRY and answer.message == (
        f"TLS: {url.removeprefix('https://')}: certificate verify failed: unable to get local "
        "issuer certificate; for a private CA set ca_bundle:"
    )
    assert recorder.requests == []
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    answer = Pusher(url, token, timeout=5, ca_bundle=str(bundle)).push(body)
    assert answer.outcome == DELIVERED and len(recorder.stored) == 1


# --------------------------------------------------------------------------- the loop


class RecordingBackoff(Backoff):
    """A Backoff that remembers each delay it gave, with the ceiling it was drawn under."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.given: list[tuple[float, float]] = []

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        delay = super().next_delay()
        self.given.append((delay, ceiling))
        return delay


def test_loop_collects_while_backing_off_then_drains_in_order(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path, collector: Collector
) -> None:
    url, recorder = push_server
    recorder.answers = [503] * 6
    config = make_config(tmp_path, url, token_file, interval=30.0)
    spool = Spool(config.spool)
    now = [1000.0]
    pauses: list[float] = []
    queued_seen: list[int] = []

    def wait(seconds: float) -> bool:
        pauses.append(seconds)
        queued_seen.append(spool.queued)
        now[0] += seconds
        if (agent.collections >= 12 and spool.queued == 0) or now[0] > 100_000:
            agent.stop()
        return agent.stopped.is_set()

    assert config.token is not None
    backoff = RecordingBackoff(base=10.0, cap=120.0, rng=random.Random(7))
    agent = Agent(
        config,
        spool,
        collector,
        Pusher(url, config.token, timeout=5),
        clock=lambda: now[0],
        wait=wait,
        backoff=backoff,
    )
    agent.run()
    assert now[0] < 100_000
    created = [r["body"]["batch_id"] for r in recorder.requests]
    assert recorder.stored_ids() == list(dict.fromkeys(created))  # oldest first, once each
    assert len(recorder.stored) == agent.collections
    assert max(queued_seen) >= 3  # collection went on while the server was down
    assert spool.queued == 0
    # Six failures, each followed by a jittered delay under a doubling ceiling.
    assert len(recorder.requests) == agent.collections + 6
    assert [ceiling for _, ceiling in backoff.given] == [10, 20, 40, 80, 120, 120]
    assert all(0 <= delay <= ceiling for delay, ceiling in backoff.given)
    assert backoff.failures == 0  # reset by the success
    spool.close()


# --------------------------------------------------------------------------- the command


def run_agent(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*agent_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def test_once_delivers_and_exits_0(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path
) -> None:
    url, recorder = push_server
    spool = tmp_path / "spool.db"
    done = run_agent(
        "--once",
        "--server",
        url,
        "--token-file",
        str(token_file),
        "--spool",
        str(spool),
        "--name",
        "ward-3",
    )
    assert done.returncode == 0, done.stderr
    [body] = recorder.stored
    assert recorder.requests[0]["authorization"] == f"Bearer {TOKEN}"
    push = AgentPush.model_validate(body)
    assert push.agent == "ward-3" and push.interval == 30.0 and push.samples
    assert spool_rows(spool) == []
    assert "Traceback" not in done.stderr


def test_once_with_the_server_down_exits_1_and_keeps_the_batch(
    push_server: tuple[str, Recorder], tmp_path: Path
) -> None:
    url, recorder = push_server
    recorder.default = 503
    spool = tmp_path / "spool.db"
    config = tmp_path / "agent.yaml"
    config.write_text(f"server: {url}\ntoken: env:HOSPITAL_TOKEN\nspool: {spool}\n")
    done = run_agent("--once", "--config", str(config), HOSPITAL_TOKEN=TOKEN)
    assert done.returncode == 1, done.stderr
    assert (
        "push failed (HTTP 503: test server answers 503); 1 batches kept in the spool"
        in done.stderr
    )
    assert [batch_id for batch_id, _ in spool_rows(spool)] == [
        r["body"]["batch_id"] for r in recorder.requests
    ]


def test_print_shows_a_batch_and_sends_nothing(tmp_path: Path) -> None:
    done = run_agent("--print", "--spool", str(tmp_path / "spool.db"), "--interval", "15")
    assert done.returncode == 0, done.stderr
    push = AgentPush.model_validate_json(done.stdout)
    assert push.interval == 15.0 and push.agent == default_name()
    assert not (tmp_path / "spool.db").exists()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def spooled_count(path: Path) -> int:
    """Batches in the spool of a running agent; 0 until it has created its tables."""
    try:
        return len(spool_rows(path)) if path.exists() else 0
    except sqlite3.OperationalError:  # no such table yet
        return 0


def test_kill_9_loses_nothing_and_stores_each_batch_once(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path
) -> None:
    url, recorder = push_server
    recorder.default = 503
    spool = tmp_path / "state" / "spool.db"
    args = ["--server", url, "--token-file", str(token_file), "--spool", str(spool)]
    with (tmp_path / "agent.log").open("w") as log:
        process = subprocess.Popen(
            [*agent_command(), *args, "--interval", "0.2", "--log-level", "debug"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_for(lambda: spooled_count(spool) >= 8, 60, "8 batches")
            wait_for(lambda: len(recorder.requests) >= 2, 60, "two tries")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    assert process.returncode == -signal.SIGKILL
    spooled = spool_rows(spool)
    tried = {r["body"]["batch_id"] for r in recorder.requests}
    assert tried <= {batch_id for batch_id, _ in spooled}  # nothing tried was lost

    recorder.default = 200
    done = run_agent("--once", *args)
    assert done.returncode == 0, done.stderr
    stored = recorder.stored_ids()
    assert stored[: len(spooled)] == [batch_id for batch_id, _ in spooled]
    assert len(stored) == len(spooled) + 1  # and the batch --once collected
    assert set(Counter(stored).values()) == {1}
    samples = {b["batch_id"]: len(b["samples"]) for b in recorder.stored}
    assert [samples[batch_id] for batch_id, _ in spooled] == [count for _, count in spooled]
    assert spool_rows(spool) == []


def test_sigterm_stops_cleanly(
    push_server: tuple[str, Recorder], tmp_path: Path, token_file: Path
) -> None:
    url, recorder = push_server
    spool = tmp_path / "spool.db"
    process = subprocess.Popen(
        [
            *agent_command(),
            "--server",
            url,
            "--token-file",
            str(token_file),
            "--spool",
            str(spool),
            "--interval",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(recorder.stored) >= 3, 60, "three deliveries")
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "SIGTERM: stopping" in errors and "Traceback" not in errors
    left = {batch_id for batch_id, _ in spool_rows(spool)}
    assert left.isdisjoint(recorder.stored_ids())  # delivered ones were deleted
    with Spool(spool) as reopened:  # intact, and unlocked
        assert reopened.queued == len(left)


# --------------------------------------------------------------------------- configuration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server: https://opsctl.example.org\ninterval: fast\n", "agent.yaml:2: interval: expected seconds > 0 (at most a day) (got 'fast')"),
        ("interval: -5\n", "agent.yaml:1: interval: expected seconds > 0 (at most a day) (got -5)"),
        ("token: abc123\n", "agent.yaml:1: token: expected env:NAME or file:/path (the token itself is never written in the config) (got 'abc123')"),
        ("server: opsctl.example.org\n", "agent.yaml:1: server: expected the server's address, e.g. https://opsctl.example.org (got 'opsctl.example.org')"),
        ("name: ward 3\n", "agent.yaml:1: name: expected a name of letters, digits and _ . : - (at most 64) (got 'ward 3')"),
        ("spool_max_bytes: lots\n", "agent.yaml:1: spool_max_bytes: expected bytes > 0 or a size like 64MiB (got 'lots')"),
        ("spool_max_age: 0\n", "agent.yaml:1: spool_max_age: expected a duration like 7d, 12h or seconds > 0 (got 0)"),
        ("ca_bundle: /nonexistent/ca.pem\n", "agent.yaml:1: ca_bundle: expected the path of a PEM file of CA certificates that exists (got '/nonexistent/ca.pem')"),
        ("\n\nintervall: 30\n", "agent.yaml:3: unknown key 'intervall' (expected one of server, token, name"),
        ("server: [unclosed\n", "agent.yaml:2: not valid YAML:"),
        ("- server\n", "agent.yaml: expected a mapping of settings"),
        ("checks:\n  - name: load\n    command: check_load -w 5\n", "agent.yaml:2: checks[0].command: expected a list of arguments"),
        ("checks:\n  - name: load\n    command: [check_load]\n  - {name: bad name, command: [x]}\n", "agent.yaml:4: checks[1].name: expected a name"),
        ("checks:\n  - {name: load, command: [x], timeout: soon}\n", "agent.yaml:2: checks[0].timeout: expected seconds > 0 (got 'soon')"),
        ("checks:\n  - {name: load, command: [x], shell: true}\n", "agent.yaml:2: checks[0]: unknown key 'shell'"),
    ],
)  # fmt: skip
def test_config_errors_name_file_line_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load(path, environ={})
    shown = str(raised.value).replace(str(path), "agent.yaml")
    assert shown.startswith(message)
    assert main(["--config", str(path), "--print"]) == 2
    assert f"opsctl-agent: {raised.value}" in capsys.readouterr().err


def test_config_error_from_the_command_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "server: https://opsctl.example.org\ninterval: fast\n")
    done = run_agent("--config", str(path))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"opsctl-agent: {path}:2: interval: expected seconds > 0 (at most a day) (got 'fast')\n"
    )


def test_flags_and_environment_errors(
    tmp_path: Path,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["--interval", "fast", "--print"]) == 2
    assert (
        "--interval: expected seconds > 0 (at most a day) (got 'fast')" in capsys.readouterr().err
    )
    monkeypatch.setenv("OPSCTL_AGENT_SERVER", "ftp://files")
    assert main(["--print"]) == 2
    assert "OPSCTL_AGENT_SERVER: expected the server's address" in capsys.readouterr().err
    monkeypatch.delenv("OPSCTL_AGENT_SERVER")
    monkeypatch.delenv("OPSCTL_AGENT_TOKEN", raising=False)
    assert main(["--once", "--spool", str(tmp_path / "s.db")]) == 2
    assert (
        "no server: set server: in the config, --server or OPSCTL_AGENT_SERVER"
        in capsys.readouterr().err
    )
    assert (
        main(["--once", "--server", "https://x.example.org", "--spool", str(tmp_path / "s.db")])
        == 2
    )
    assert "no token:" in capsys.readouterr().err
    missing = tmp_path / "missing-token"
    args = ["--once", "--server", "https://x.example.org", "--token-file", str(missing)]
    assert main(args) == 2
    assert (
        f"--token-file: cannot read token file {missing}: No such file" in capsys.readouterr().err
    )
    config = write(tmp_path, "token: env:WARD_TOKEN\n")
    assert main(["--config", str(config), "--once", "--server", "https://x.example.org"]) == 2
    assert (
        f"{config}:1: token: environment variable WARD_TOKEN is not set" in capsys.readouterr().err
    )
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database\n" * 200)
    args = ["--once", "--server", "https://x.example.org", "--token-file", str(token_file)]
    assert main([*args, "--spool", str(foreign)]) == 2
    assert "foreign.db: not a usable spool file" in capsys.readouterr().err


def test_flags_override_environment_override_file(tmp_path: Path, token_file: Path) -> None:
    path = write(
        tmp_path,
        "server: https://file.example.org/opsctl/\ntoken: env:FILE_TOKEN\nname: from-file\n"
        "interval: 1m\nspool_max_bytes: 16MiB\nspool_max_age: 2d\ntimeout: 5\n"
        "checks:\n  - {name: load, command: [/usr/lib/nagios/plugins/check_load, -w, '5,4,3']}\n",
    )
    config = load(path, environ={})
    assert config.server == "https://file.example.org/opsctl"
    assert config.token == Token("env", "FILE_TOKEN", f"{path}:2: token")
    assert (config.name, config.interval, config.timeout) == ("from-file", 60.0, 5.0)
    assert (config.spool_max_bytes, config.spool_max_age) == (16 * 1024 * 1024, 2 * 86400.0)
    assert config.checks == (
        CheckSpec("load", ("/usr/lib/nagios/plugins/check_load", "-w", "5,4,3"), 10.0),
    )
    environ = {"OPSCTL_AGENT_SERVER": "https://env.example.org", "OPSCTL_AGENT_TOKEN": "t"}
    config = load(path, environ=environ)
    assert config.server == "https://env.example.org"
    assert config.token is not None and config.token.read(environ) == "t"
    flags = {
        "server": "http://127.0.0.1:9",
        "token_file": str(token_file),
        "interval": "0.5",
        "name": None,
    }
    config = load(path, flags, environ)
    assert (config.server, config.interval, config.name) == ("http://127.0.0.1:9", 0.5, "from-file")
    assert config.token is not None and config.token.read() == TOKEN


def test_defaults() -> None:
    assert default_name("ward 3/ICU_pc.local") == "ward-3-ICU_pc.local"
    assert default_name("-x") == "x" and default_name("---") == "agent"
    assert len(default_name("h" * 100)) == 64
    assert default_spool({"STATE_DIRECTORY": "/var/lib/opsctl-agent:/x"}) == Path(
        "/var/lib/opsctl-agent/spool.db"
    )
    assert default_spool({}, home=Path("/home/ops")) == Path(
        "/home/ops/.local/state/opsctl-agent/spool.db"
    )
    assert [parse_duration(v) for v in (30, "30s", "5m", "1.5h", "7d", "0", "fast", True)] == [
        30.0, 30.0, 300.0, 5400.0, 604800.0, None, None, None,
    ]  # fmt: skip
    assert [parse_size(v) for v in (1024, "64MiB", "500MB", "1GiB", "-1", "lots")] == [
        1024, 64 * 1024**2, 500 * 1000**2, 1024**3, None, None,
    ]  # fmt: skip


def test_packaged_samples_are_valid() -> None:
    config = load(ROOT / "agents" / "agent.example.yaml", environ={})
    assert config.server is not None and config.token is not None and config.checks
    unit = (ROOT / "agents" / "opsctl-agent.service").read_text()
    for line in (
        "User=opsctl",
        "Restart=on-failure",
        "StateDirectory=opsctl-agent",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in unit.splitlines()
    assert re.search(r"^ExecStart=\S*opsctl-agent --config \S+$", unit, re.MULTILINE)
