"""The agent's footprint beside Prometheus' node_exporter on the same host, in the same run.

Started side by side: ``prometheus-node-exporter`` on 127.0.0.1 (Debian package
prometheus-node-exporter), and ``opsctl-agent`` collecting every ``--interval`` seconds and
pushing to a small HTTP sink in this process that answers 200. After a warm-up, for
``--collections`` of the agent's collections, node_exporter is scraped once per agent
collection (as Prometheus would), and both processes' CPU times and RSS are read (psutil).

Figures: RSS of each (at the end, and the peak seen), the agent's CPU seconds per collection
(CPU time delta / collections the sink counted) and node_exporter's per scrape.
Targets: agent RSS <= 1.5x node_exporter's; agent CPU per collection <= node_exporter's CPU
per scrape.

Run: python bench/agent.py [--interval 1] [--collections 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


class Sink(http.server.BaseHTTPRequestHandler):
    """Answers every push 200, as the server does, and counts the batches."""

    protocol_version = "HTTP/1.1"
    batches: set[str] = set()
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            duplicate = body["batch_id"] in self.batches
            self.batches.add(body["batch_id"])
        answer = json.dumps(
            {
                "batch_id": body["batch_id"],
                "duplicate": duplicate,
                "samples": len(body["samples"]),
                "results": len(body["results"]),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def agent_command() -> list[str]:
    script = Path(sys.executable).parent / "opsctl-agent"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "agents.cli"]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="agent interval (s)")
    parser.add_argument("--collections", type=int, default=30, help="collections measured")
    parser.add_argument("--warmup", type=int, default=5, help="collections before measuring")
    options = parser.parse_args()
    if not shutil.which(NODE_EXPORTER):
        sys.exit(f"{NODE_EXPORTER} not found (Debian package prometheus-node-exporter)")

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    node_port = free_port()
    metrics_url = f"http://127.0.0.1:{node_port}/metrics"

    with tempfile.TemporaryDirectory(prefix="agent-bench-") as folder:
        token = Path(folder) / "token"
        token.write_text("bench-token\n")
        node = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        agent = subprocess.Popen(
            [
                *agent_command(),
                "--server",
                f"http://127.0.0.1:{sink.server_address[1]}",
                "--token-file",
                str(token),
                "--spool",
                str(Path(folder) / "spool.db"),
                "--interval",
                str(options.interval),
                "--name",
                "bench",
                "--log-level",
                "warning",
            ],
            env={**os.environ, "STATE_DIRECTORY": folder},
        )
        try:
            measure(options, node, agent, metrics_url)
        finally:
            for process in (agent, node):
                process.terminate()
                process.wait(10)
            sink.shutdown()


def measure(options, node: subprocess.Popen, agent: subprocess.Popen, metrics_url: str) -> None:
    def scrape() -> None:
        response = requests.get(metrics_url, timeout=10)
        response.raise_for_status()

    wait_until(lambda: _answers(metrics_url), 10, "node_exporter")
    wait_until(lambda: len(Sink.batches) >= options.warmup, 60, "the agent's first pushes")
    for _ in range(options.warmup):
        scrape()

    node_process, agent_process = psutil.Process(node.pid), psutil.Process(agent.pid)
    node_rss_peak = agent_rss_peak = 0
    node_cpu, agent_cpu = cpu_seconds(node_process), cpu_seconds(agent_process)
    collected = len(Sink.batches)
    scrapes = 0
    started = time.monotonic()
    while len(Sink.batches) - collected < options.collections:
        seen = len(Sink.batches)
        wait_until(lambda seen=seen: len(Sink.batches) > seen, 60, "the agent's next push")
        scrape()
        scrapes += 1
        node_rss_peak = max(node_rss_peak, node_process.memory_info().rss)
        agent_rss_peak = max(agent_rss_peak, agent_process.memory_info().rss)
    agent_collections = len(Sink.batches) - collected
    agent_per = (cpu_seconds(agent_process) - agent_cpu) / agent_collections
    node_per = (cpu_seconds(node_process) - node_cpu) / scrapes
    node_rss, agent_rss = node_process.memory_info().rss, agent_process.memory_info().rss
    elapsed = time.monotonic() - started

    mib = 1024 * 1024
    print(
        f"{agent_collections} agent collections (interval {options.interval:g}s) and "
        f"{scrapes} node_exporter scrapes side by side, {elapsed:.0f}s"
    )
    print(
        f"  RSS          node_exporter {node_rss / mib:6.1f} MiB (peak {node_rss_peak / mib:.1f})"
        f"   agent {agent_rss / mib:6.1f} MiB (peak {agent_rss_peak / mib:.1f})"
        f"   {agent_rss / node_rss:4.2f}x  (target <= 1.50x: "
        f"{'OK' if agent_rss <= 1.5 * node_rss else 'OVER TARGET'})"
    )
    print(
        f"  CPU / round  node_exporter {node_per * 1000:6.2f} ms per scrape"
        f"   agent {agent_per * 1000:6.2f} ms per collection   {agent_per / node_per:4.2f}x"
        f"  (target <= 1.00x: {'OK' if agent_per <= node_per else 'OVER TARGET'})"
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
