"""Dispenser heartbeat intake: 10,000 simulated devices of three vendors, one heartbeat a
minute each, posted by the fleet simulator to a real ``opsctl server`` process, into SQLite
and into PostgreSQL. Prints the intake latency of each batch (p50/p95/p99/max), the first
burst (every device at once, in batches of 1,000) apart from the steady state, beside the
latency of ``GET /healthz`` on the same server (the floor of any request).

Target: steady-state p99 under 100 ms.
Run: python bench/heartbeats.py [--devices 10000] [--minutes 2] [--postgres URL|none]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests

from opsctl.fleet_sim import LiveReport, Simulator, drive
from opsctl.store import Store
from opsctl.store.tokens import create_token

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
INVENTORY = """sites:
  - name: bench
    fleets:
      - name: dispensers
        vendors: [vendor-a, vendor-b, vendor-c]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def milliseconds(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)] * 1000


def run(label: str, url: str, folder: Path, devices: int, minutes: float) -> None:
    inventory = folder / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    simulator = Simulator(devices=devices, vendors=3, seed=7, interval=60)
    with Store.open(url) as store:
        tokens = {vendor: create_token(store, "vendor", vendor)[0] for vendor in simulator.vendors}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "opsctl", "--db", url, "server", "-i", str(inventory),
         "--listen", f"127.0.0.1:{port}", "--no-scheduler", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        session = requests.Session()
        floor = []
        for _ in range(50):
            started = time.perf_counter()
            session.get(f"{base}/healthz", timeout=5)
            floor.append(time.perf_counter() - started)
        burst: list[float] = []

        def progress(report: LiveReport) -> None:
            if not burst:
                burst.extend(report.latencies)

        report = drive(
            simulator, base, tokens, timedelta(minutes=minutes), session=session,
            tick=timedelta(seconds=5), progress=progress,
        )  # fmt: skip
        steady = report.latencies[len(burst) :]
        rate = report.sent / (minutes * 60)
        print(
            f"{label:10}  {report.sent:,} heartbeats ({rate:,.0f}/s) in {report.batches} batches, "
            f"{sum(report.errors.values())} failed"
        )
        print(
            f"{'':10}  first burst: {len(burst)} batches of up to 1,000, "
            f"p50 {milliseconds(burst, 0.5):.0f} ms, max {max(burst) * 1000:.0f} ms"
        )
        p99 = milliseconds(steady, 0.99)
        verdict = "meets" if p99 < 100 else "MISSES"
        print(
            f"{'':10}  steady state: {len(steady)} batches, "
            f"p50 {milliseconds(steady, 0.5):.0f} ms, p95 {milliseconds(steady, 0.95):.0f} ms, "
            f"p99 {p99:.0f} ms, max {max(steady) * 1000:.0f} ms ({verdict} the 100 ms p99 target)"
        )
        print(f"{'':10}  GET /healthz on the same server: p50 {milliseconds(floor, 0.5):.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--postgres", default=os.environ.get("OPSCTL_BENCH_PG", POSTGRES))
    args = parser.parse_args()
    print(f"heartbeats: {args.devices:,} devices, one heartbeat a minute, for {args.minutes} min")
    with tempfile.TemporaryDirectory() as scratch:
        run(
            "SQLite",
            f"sqlite:///{Path(scratch) / 'bench.db'}",
            Path(scratch),
            args.devices,
            args.minutes,
        )
    if args.postgres == "none":
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as error:
        print(f"PostgreSQL: not reachable ({error}); skipped")
        return
    try:
        with tempfile.TemporaryDirectory() as scratch:
            run("PostgreSQL", f"{args.postgres}?options=-csearch_path%3D{schema}", Path(scratch),
                args.devices, args.minutes)  # fmt: skip
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
