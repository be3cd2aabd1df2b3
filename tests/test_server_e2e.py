"""End to end on loopback: a real ``opsctl server`` process, real ``opsctl-agent``
processes, and the store on SQLite and on the real PostgreSQL. Faults are real too: the
server and the agent are killed with SIGKILL, and every batch an agent created is then
counted in the store exactly once.

An agent numbers the batches it creates in its spool (SQLite AUTOINCREMENT, never reused),
so ``sqlite_sequence`` says how many it ever made; the store's ``ingest_batches`` says how
many arrived, and ``metric_samples`` must hold exactly the samples those batches declared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from opsctl.store import Store
from opsctl.store.models import BatchModel, SampleModel
from opsctl.store.tokens import create_token

INVENTORY = """
sites:
  - name: zj
    hosts:
      - name: web1
        transport: agent
        checks:
          - kind: host
      - name: web2
        transport: agent
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


class Server:
    """An ``opsctl server`` process on a fixed port, which can be killed and restarted."""

    def __init__(self, url: str, inventory: Path, port: int) -> None:
        self.url, self.inventory, self.port = url, inventory, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsctl",
                "--db",
                self.url,
                "server",
                "-i",
                str(self.inventory),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--no-scheduler",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stderr.read().decode()}")
            try:
                return requests.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(healthy, 30, "the server to answer /healthz")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


@pytest.fixture
def server(store_url: str, inventory: Path) -> Iterator[Server]:
    running = Server(store_url, inventory, free_port())
    try:
        yield running
    finally:
        running.stop()


def tokens(url: str) -> dict[str, str]:
    with Store.open(url) as store:
        return {name: create_token(store, "agent", name)[0] for name in ("web1", "web2")}


def agent_command(server: Server, name: str, spool: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agents.cli",
        "--server",
        server.base,
        "--name",
        name,
        "--spool",
        str(spool),
        "--log-level",
        "warning",
        *extra,
    ]


def agent_env(token: str) -> dict[str, str]:
    return {**os.environ, "OPSCTL_AGENT_TOKEN": token}


def created_batches(spool: Path) -> int:
    """How many batches the agent ever created (its spool's AUTOINCREMENT counter)."""
    with sqlite3.connect(spool) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        queued = db.execute("SELECT count(*) FROM batches").fetchone()[0]
        dropped = db.execute("SELECT coalesce(sum(batches), 0) FROM drops").fetchone()[0]
    assert dropped == 0, f"the agent dropped {dropped} batches"
    assert queued == 0, f"{queued} batches still spooled"
    return 0 if row is None else int(row[0])


def stored(url: str, agent: str) -> tuple[int, int, int]:
    """The batches stored for an agent, the samples they declared, and the samples stored."""
    with Store.open(url) as store, store._sessions() as session:
        batches, declared = session.execute(
            select(func.count(), func.coalesce(func.sum(BatchModel.samples), 0)).where(
                BatchModel.agent == agent
            )
        ).one()
        samples = session.scalar(
            select(func.count())
            .select_from(SampleModel)
            .where(SampleModel.check_id == f"zj/{agent}/agent")
        )
    return int(batches), int(declared), int(samples)


def drain(server: Server, name: str, spool: Path, token: str) -> None:
    """Deliver whatever the agent still holds: ``--once`` exits 0 only when its spool is empty."""
    done = subprocess.run(
        agent_command(server, name, spool, "--once"),
        env=agent_env(token),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()


def test_killing_the_server_mid_stream_loses_and_doubles_nothing(
    server: Server, store_url: str, tmp_path: Path
) -> None:
    keys = tokens(store_url)
    server.start()
    spools = {name: tmp_path / f"{name}.spool" for name in keys}
    agents = {
        name: subprocess.Popen(
            agent_command(server, name, spools[name], "--interval", "0.2"),
            env=agent_env(keys[name]),
            stderr=subprocess.DEVNULL,
        )
        for name in keys
    }
    try:
        wait_for(lambda: all(stored(store_url, n)[0] >= 3 for n in keys), 60, "first pushes")
        server.kill()
        time.sleep(1.5)  # the agents keep collecting into their spools meanwhile
        server.start()
        wait_for(lambda: all(stored(store_url, n)[0] >= 12 for n in keys), 60, "replay")
    finally:
        for process in agents.values():
            process.terminate()
            process.wait(timeout=30)
    for name in keys:
        drain(server, name, spools[name], keys[name])
        batches, declared, samples = stored(store_url, name)
        assert batches == created_batches(spools[name])
        assert samples == declared
        assert samples > batches  # every batch carried its samples, not an empty shell


def test_killing_an_agent_mid_replay_loses_and_doubles_nothing(
    server: Server, store_url: str, tmp_path: Path
) -> None:
    keys = tokens(store_url)
    spool = tmp_path / "web1.spool"
    # No server yet: the agent builds a backlog.
    backlog = subprocess.Popen(
        agent_command(server, "web1", spool, "--interval", "0.05"),
        env=agent_env(keys["web1"]),
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3)
    backlog.terminate()
    backlog.wait(timeout=30)
    with sqlite3.connect(spool) as db:
        queued = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    assert queued >= 10
    server.start()
    replaying = subprocess.Popen(
        agent_command(server, "web1", spool, "--interval", "0.05"),
        env=agent_env(keys["web1"]),
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: stored(store_url, "web1")[0] >= 1, 60, "the replay to start")
    replaying.send_signal(signal.SIGKILL)
    replaying.wait(timeout=10)
    drain(server, "web1", spool, keys["web1"])
    batches, declared, samples = stored(store_url, "web1")
    assert batches == created_batches(spool)
    assert batches >= queued
    assert samples == declared


def test_an_agent_hosts_checks_run_from_what_it_pushed(
    server: Server, store_url: str, inventory: Path, tmp_path: Path
) -> None:
    keys = tokens(store_url)
    server.start()
    drain(server, "web1", tmp_path / "web1.spool", keys["web1"])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsctl",
            "--db",
            store_url,
            "check",
            "run",
            "-i",
            str(inventory),
            "--target",
            "web1",
            "--json",
        ],
        capture_output=True,
        timeout=120,
    )
    results = {r["id"]: r for r in json.loads(run.stdout)["results"]}
    assert results["zj/web1/agent"]["state"] == "OK"
    # The host check judged the facts this machine's agent pushed: its OS name is in them.
    assert results["zj/web1/host"]["state"] != "UNKNOWN", results["zj/web1/host"]["summary"]
    assert " CPU, load " in results["zj/web1/host"]["summary"]


FLEET_INVENTORY = """
sites:
  - name: zj
    fleets:
      - name: dispensers
        vendors: [vendor-a, vendor-b, vendor-c]
"""


def test_the_simulated_fleet_reaches_the_store_through_the_vendor_interface(
    store_url: str, tmp_path: Path
) -> None:
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(FLEET_INVENTORY, encoding="utf-8")
    with Store.open(store_url) as store:
        keys = {
            v: create_token(store, "vendor", v)[0] for v in ("vendor-a", "vendor-b", "vendor-c")
        }
    server = Server(store_url, inventory, free_port())
    server.start()
    opsctl = [sys.executable, "-m", "opsctl", "--db", store_url]
    try:
        simulate = subprocess.run(
            [*opsctl, "fleet", "simulate", "--server", server.base, "--devices", "300",
             "--duration", "0s", "--json"],
            env={**os.environ, "OPSCTL_VENDOR_TOKENS": ",".join(f"{v}={t}" for v, t in keys.items())},
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        assert simulate.returncode == 0, simulate.stderr.decode()
        sent = json.loads(simulate.stdout)
        assert (
            sent["accepted"] == sent["sent"] > 250
        )  # the few devices down at the start send nothing
        assert all(token not in simulate.stdout.decode() for token in keys.values())

        # vendor-b may not write a vendor-a device: refused whole, nothing stored.
        status = json.loads(
            subprocess.run(
                [*opsctl, "fleet", "status", "-i", str(inventory), "--json"],
                capture_output=True,
                timeout=60,
            ).stdout  # fmt: skip
        )
        assert status["devices"] == sent["accepted"]
        device = next(g for g in status["groups"] if g["vendor"] == "vendor-a")
        with Store.open(store_url) as store, store._sessions() as session:
            from opsctl.store.models import DeviceModel

            victim = session.scalars(
                select(DeviceModel.device_id).where(DeviceModel.vendor == "vendor-a").limit(1)
            ).one()
        answer = requests.post(
            f"{server.base}/api/v1/dispensers/heartbeats",
            json={
                "vendor": "vendor-b",
                "heartbeats": [
                    {
                        "device_id": victim,
                        "timestamp": "2030-01-01T08:00:00+08:00",
                        "status": "fault",
                    }
                ],
            },
            headers={"Authorization": f"Bearer {keys['vendor-b']}"},
            timeout=10,
        )
        assert answer.status_code == 403
        assert victim in answer.json()["detail"]
        with Store.open(store_url) as store, store._sessions() as session:
            from opsctl.store.models import DeviceModel

            row = session.get(DeviceModel, victim)
            assert row.vendor == "vendor-a"
            assert row.last_reported.year < 2030
        assert device["devices"] >= 1

        check = subprocess.run(
            [*opsctl, "check", "run", "-i", str(inventory), "--json"],
            capture_output=True,
            timeout=60,
        )
        (result,) = json.loads(check.stdout)["results"]
        assert result["id"] == "zj/dispensers/dispenser"
        assert result["summary"].startswith(f"{sent['accepted']} devices: ")
    finally:
        server.stop()


def test_the_server_registers_the_fleets_device_lists_on_start(
    store_url: str, tmp_path: Path
) -> None:
    registry = Path(__file__).parent / "fixtures" / "fleet" / "registry-utf8.csv"
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        FLEET_INVENTORY.replace(
            "vendors: [vendor-a, vendor-b, vendor-c]",
            f"vendors: [vendor-a, vendor-b, vendor-c]\n        registry: [{registry}]",
        ),
        encoding="utf-8",
    )
    expected = {
        line.split(",", 1)[0] for line in registry.read_text(encoding="utf-8").splitlines()[1:]
    }
    server = Server(store_url, inventory, free_port())
    server.start()
    server.stop()
    from opsctl.store.models import DeviceModel

    with Store.open(store_url) as store, store._sessions() as session:
        registered = set(
            session.scalars(select(DeviceModel.device_id).where(DeviceModel.registered)).all()
        )
    assert registered == expected
