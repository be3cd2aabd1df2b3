"""Engine overhead: 1,000 ``tcp`` checks against a local listener and 200 ``http`` checks
against a local server, each against the same connections made by a bare thread-pool loop
with the same number of workers.

Target: the engine at most 2x the bare loop's wall time.
Run: python bench/engine.py [--tcp N] [--http N] [--workers N]
"""

from __future__ import annotations

import argparse
import http.server
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from opsctl.contract import State
from opsctl.engine import Engine
from opsctl.inventory import load


def tcp_listener() -> tuple[socket.socket, int]:
    """Start a listener on 127.0.0.1 that accepts and closes connections; return it and its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def inventory(folder: Path, tcp_port: int, tcp_count: int, http_port: int, http_count: int) -> Path:
    """Write an inventory with the given numbers of tcp and http checks; return its path."""
    lines = ["sites:", "  - name: bench", "    hosts:", "      - name: local", "        checks:"]
    lines += [f"          - {{kind: tcp, name: t{i}, port: {tcp_port}}}" for i in range(tcp_count)]
    lines += [
        "    endpoints:",
        "      - name: web",
        f"        url: http://127.0.0.1:{http_port}/health",
        "        checks:",
    ]
    lines += [f"          - {{kind: http, name: h{i}, contains: UP}}" for i in range(http_count)]
    path = folder / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bare_tcp(port: int, count: int, workers: int) -> float:
    def connect(_: int) -> float:
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(connect, range(count)))
    return time.perf_counter() - start


def bare_http(url: str, count: int, workers: int) -> float:
    def get(_: int) -> bool:
        response = requests.get(url, timeout=10)
        return response.status_code == 200 and "UP" in response.text

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, range(count)))
    return time.perf_counter() - start


def engine_run(checks: list, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    outcomes = Engine(concurrency=workers).run(checks)
    elapsed = time.perf_counter() - start
    return elapsed, sum(1 for o in outcomes if o.result.state is State.OK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", type=int, default=1000)
    parser.add_argument("--http", type=int, default=200)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    options = parser.parse_args()

    listener, tcp_port = tcp_listener()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http_port = server.server_address[1]
    url = f"http://127.0.0.1:{http_port}/health"

    with tempfile.TemporaryDirectory() as folder:
        loaded = load(inventory(Path(folder), tcp_port, options.tcp, http_port, options.http))
    tcp_checks = loaded.select(kinds=["tcp"])
    http_checks = loaded.select(kinds=["http"])

    print(f"workers: {options.workers}; best of {options.rounds} rounds, wall time")
    for label, checks, bare in (
        (
            f"{options.tcp} tcp checks",
            tcp_checks,
            lambda: bare_tcp(tcp_port, options.tcp, options.workers),
        ),
        (
            f"{options.http} http checks",
            http_checks,
            lambda: bare_http(url, options.http, options.workers),
        ),
    ):
        bare_times, engine_times, ok = [], [], 0
        for _ in range(options.rounds):
            bare_times.append(bare())
            elapsed, ok = engine_run(checks, options.workers)
            engine_times.append(elapsed)
        base, ours = min(bare_times), min(engine_times)
        verdict = "OK" if ours <= 2 * base else "OVER TARGET"
        print(
            f"  {label:<18} bare loop {base * 1000:8.1f} ms   engine {ours * 1000:8.1f} ms   "
            f"{ours / base:4.2f}x  (target <= 2.00x: {verdict}); {ok}/{len(checks)} OK"
        )
    server.shutdown()
    listener.close()


if __name__ == "__main__":
    main()
