"""The scheduler inside real ``opsctl server`` processes: the server runs the inventory's
checks on their own, and of two servers sharing one store exactly one runs the scheduler;
when that one is killed (SIGKILL), the other takes over."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from opsctl.server.lease import read_lease
from opsctl.store import Store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def inventory(tmp_path: Path, listener: int) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"""
sites:
  - name: zj
    endpoints:
      - name: his
        address: 127.0.0.1
        port: {listener}
        checks:
          - {{kind: tcp, interval: 1m}}
""",
        encoding="utf-8",
    )
    return path


def start(url: str, inventory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "opsctl", "--db", url, "server", "-i", str(inventory), "--listen",
         f"127.0.0.1:{port}", "--lease-ttl", "3", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(healthy, 30, "a server to answer /healthz")
    return process, base


def leader_of(url: str) -> str | None:
    with Store.open(url) as store:
        lease = read_lease(store, "scheduler")
    return None if lease is None else lease.holder


def test_the_server_runs_due_checks_and_one_of_two_leads(store_url: str, inventory: Path) -> None:
    first, first_base = start(store_url, inventory)
    second, second_base = start(store_url, inventory)
    processes = {first.pid: (first, first_base), second.pid: (second, second_base)}
    try:
        # Never run before, the tcp check is due at once: the leading server runs it.
        def checked() -> bool:
            with Store.open(store_url) as store:
                return "zj/his/tcp" in store.statuses(["zj/his/tcp"])

        wait_for(checked, 60, "the leader to run the tcp check")
        wait_for(lambda: leader_of(store_url) is not None, 30, "a leader")
        holder = leader_of(store_url)
        assert holder is not None
        pid = int(holder.rsplit(":", 1)[1])
        assert pid in processes
        leaders = [
            requests.get(f"{base}/healthz", timeout=5).json()["scheduler_leader"]
            for _, base in processes.values()
        ]
        assert sorted(leaders) == [False, True]

        dead, _ = processes.pop(pid)
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=10)
        ((survivor, survivor_base),) = processes.values()
        wait_for(
            lambda: leader_of(store_url) == holder.rsplit(":", 1)[0] + f":{survivor.pid}",
            20,
            "the standby to take the lease over",
        )
        wait_for(
            lambda: requests.get(f"{survivor_base}/healthz", timeout=5).json()["scheduler_leader"],
            10,
            "the survivor to run the scheduler",
        )
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
