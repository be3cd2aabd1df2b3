"""Sustained intake through the HTTP API: agents pushing batches of 500 samples to a real
``opsctl server`` process, into SQLite and into PostgreSQL, each beside the raw bulk insert
of the same rows into the same table (SQLite ``executemany``; PostgreSQL ``COPY``).

Target: the API stores at least 20 % of the raw rate. Two raw rates are printed: committing
every 500 rows, as the API must (each push is committed before its answer), and one
transaction of 100,000 rows (the table's ceiling). Both insert into ``metric_samples`` with
its indexes; a bare table without indexes takes rows several times faster still.
Run: python bench/intake.py [--seconds 10] [--clients 4] [--batch 500] [--postgres URL|none]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

from opsctl.store import Store
from opsctl.store.tokens import create_token

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
INVENTORY = "sites:\n  - name: bench\n    hosts:\n{hosts}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rows(batch: int) -> list[tuple[str, str, float, str, datetime]]:
    now = datetime.now(UTC)
    return [
        ("bench/raw/agent", f"metric_{i % 50}", float(i), json.dumps({"n": str(i % 8)}), now)
        for i in range(batch)
    ]


def raw_rate(url: str, batch: int, seconds: float) -> float:
    """Rows per second of the driver's own bulk path into metric_samples, one transaction
    per batch (what the server does per push)."""
    store = Store.open(url)
    try:
        data = rows(batch)
        sqlite_rows = [
            (c, n, v, label, at.strftime("%Y-%m-%d %H:%M:%S.%f")) for c, n, v, label, at in data
        ]
        written = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        with store.engine.connect() as connection:
            raw = connection.connection.driver_connection
            while time.perf_counter() < deadline:
                if store.engine.dialect.name == "postgresql":
                    with raw.cursor() as cursor:
                        copy_sql = "COPY metric_samples (check_id, name, value, unit, labels, at) FROM STDIN"
                        with cursor.copy(copy_sql) as copy:
                            for c, n, v, label, at in data:
                                copy.write_row((c, n, v, "", label, at))
                    raw.commit()
                else:
                    cursor = raw.cursor()
                    cursor.executemany(
                        "INSERT INTO metric_samples (result_id, check_id, name, value, unit, labels, at) "
                        "VALUES (NULL, ?, ?, ?, '', ?, ?)",
                        sqlite_rows,
                    )
                    cursor.close()
                    raw.commit()
                written += batch
        return written / (time.perf_counter() - started)
    finally:
        store.close()


def bulk_rate(url: str, total: int = 100_000) -> float:
    """Rows per second of one bulk insert of ``total`` rows in a single transaction into the
    same table: the ceiling of the database itself, with no per-batch commit."""
    store = Store.open(url)
    try:
        data = rows(total)
        started = time.perf_counter()
        with store.engine.connect() as connection:
            raw = connection.connection.driver_connection
            if store.engine.dialect.name == "postgresql":
                with raw.cursor() as cursor:
                    copy_sql = (
                        "COPY metric_samples (check_id, name, value, unit, labels, at) FROM STDIN"
                    )
                    with cursor.copy(copy_sql) as copy:
                        for c, n, v, label, at in data:
                            copy.write_row((c, n, v, "", label, at))
            else:
                cursor = raw.cursor()
                cursor.executemany(
                    "INSERT INTO metric_samples (result_id, check_id, name, value, unit, labels, at) "
                    "VALUES (NULL, ?, ?, ?, '', ?, ?)",
                    [
                        (c, n, v, label, at.strftime("%Y-%m-%d %H:%M:%S.%f"))
                        for c, n, v, label, at in data
                    ],
                )
                cursor.close()
            raw.commit()
        return total / (time.perf_counter() - started)
    finally:
        store.close()


def api_rate(url: str, folder: Path, clients: int, batch: int, seconds: float) -> tuple[float, int]:
    """Rows per second stored through POST /api/v1/agent/push by ``clients`` concurrent
    agents; also the number of requests that failed."""
    hosts = "".join(f"      - name: agent{i}\n        transport: agent\n" for i in range(clients))
    inventory = folder / "inventory.yaml"
    inventory.write_text(INVENTORY.format(hosts=hosts), encoding="utf-8")
    store = Store.open(url)
    tokens = [create_token(store, "agent", f"agent{i}", site="bench")[0] for i in range(clients)]
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsctl",
            "--db",
            url,
            "server",
            "-i",
            str(inventory),
            "--listen",
            f"127.0.0.1:{port}",
            "--no-scheduler",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        at = datetime.now(UTC).isoformat()
        samples = [
            {"name": f"metric_{i % 50}", "labels": {"n": str(i % 8)}, "value": float(i), "at": at}
            for i in range(batch)
        ]
        stored = [0] * clients
        failed = [0] * clients
        stop = threading.Event()

        def agent(index: int) -> None:
            session = requests.Session()
            headers = {
                "Authorization": f"Bearer {tokens[index]}",
                "Content-Type": "application/json",
            }
            template = json.dumps(
                {
                    "batch_id": "BATCH",
                    "agent": f"agent{index}",
                    "sent_at": at,
                    "interval": 30,
                    "samples": samples,
                }
            )
            while not stop.is_set():
                body = template.replace("BATCH", uuid.uuid4().hex, 1)
                response = session.post(
                    f"{base}/api/v1/agent/push", data=body, headers=headers, timeout=30
                )
                if response.status_code == 200:
                    stored[index] += response.json()["samples"]
                else:
                    failed[index] += 1

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        return sum(stored) / elapsed, sum(failed)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", default=os.environ.get("OPSCTL_BENCH_PG", POSTGRES))
    args = parser.parse_args()
    print(
        f"intake: {args.clients} agents pushing batches of {args.batch} samples for {args.seconds:.0f} s"
    )
    targets = [("SQLite", "sqlite")]
    if args.postgres != "none":
        targets.append(("PostgreSQL", "postgresql"))
    for label, kind in targets:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            if kind == "sqlite":
                url = f"sqlite:///{folder / 'bench.db'}"
                raw_url = f"sqlite:///{folder / 'raw.db'}"
            else:
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                import psycopg

                conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
                try:
                    with psycopg.connect(conninfo, autocommit=True) as connection:
                        connection.execute(f'CREATE SCHEMA "{schema}"')
                        connection.execute(f'CREATE SCHEMA "{schema}_raw"')
                except psycopg.OperationalError as error:
                    print(f"{label}: not reachable ({error}); skipped")
                    continue
                url = f"{args.postgres}?options=-csearch_path%3D{schema}"
                raw_url = f"{args.postgres}?options=-csearch_path%3D{schema}_raw"
            try:
                raw = raw_rate(raw_url, args.batch, args.seconds)
                bulk = bulk_rate(raw_url)
                api, failed = api_rate(url, folder, args.clients, args.batch, args.seconds)
            finally:
                if kind == "postgresql":
                    with psycopg.connect(conninfo, autocommit=True) as connection:
                        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
                        connection.execute(f'DROP SCHEMA "{schema}_raw" CASCADE')
            ratio = api / raw if raw else 0.0
            verdict = "meets" if ratio >= 0.20 else "MISSES"
            print(
                f"{label:10}  raw bulk insert, a transaction per {args.batch} rows {raw:>9,.0f} rows/s   "
                f"API {api:>9,.0f} rows/s = {ratio:.0%} of raw ({verdict} the 20 % target)"
                f"{f'; {failed} failed requests' if failed else ''}"
            )
            print(
                f"{'':10}  raw bulk insert, 100,000 rows in one transaction {bulk:>9,.0f} rows/s   "
                f"API = {api / bulk:.0%} of it"
            )


if __name__ == "__main__":
    main()
