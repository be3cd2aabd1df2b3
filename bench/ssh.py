"""Remote inspections over SSH: 50 hosts (one loopback sshd under 50 addresses,
127.0.0.2 ... 127.0.0.51) inspected with the host, filesystem and process checks, all in
parallel through the engine, against the same inspections one host after the other.

Needs /usr/sbin/sshd (Debian openssh-server) and root (sshd's privilege separation).
Run: python bench/ssh.py [--hosts N] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sshd(folder: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start sshd listening on every loopback address; return it, its port and a client key."""
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = folder / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 0.0.0.0\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nPasswordAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nMaxStartups 200\nMaxSessions 50\n"
        "LogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port, client_key
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("sshd did not start")


def write_inventory(folder: Path, hosts: int, port: int, key: Path) -> Path:
    lines = ["sites:", "  - name: bench", "    hosts:"]
    for index in range(hosts):
        lines += [
            f"      - name: host-{index:02d}",
            f"        address: 127.0.0.{index + 2}",
            "        transport: ssh",
            f"        ssh: {{user: root, port: {port}, key: 'file:{key}', accept_new_host_key: true}}",
            "        checks: [{kind: host}, {kind: filesystem}, {kind: process, process: sshd}]",
        ]
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16)
    options = parser.parse_args()
    if not os.path.exists(SSHD):
        raise SystemExit(f"{SSHD} not found: install Debian's openssh-server")

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        # opsctl's own known_hosts lives in the user data directory: keep the bench's apart.
        os.environ["XDG_DATA_HOME"] = str(folder / "data")
        import logging

        # Trust on first use announces each recorded key; 50 of them would bury the figures.
        logging.getLogger("opsctl.ssh").setLevel(logging.ERROR)
        from opsctl.contract import State
        from opsctl.engine import Engine
        from opsctl.inventory import load
        from opsctl.ssh import default_pool

        sshd, port, key = start_sshd(folder)
        try:
            checks = load(write_inventory(folder, options.hosts, port, key)).checks
            pool = default_pool()
            figures = {}
            for label, workers in (
                ("one host after the other", 1),
                ("in parallel", options.workers),
            ):
                pool.close_all()
                start = time.perf_counter()
                outcomes = Engine(concurrency=workers, retry=False).run(checks)
                figures[label] = time.perf_counter() - start
                bad = [o for o in outcomes if o.result.state is State.UNKNOWN]
                if bad:
                    print(
                        f"  {len(bad)} UNKNOWN, e.g. {bad[0].check.id}: {bad[0].result.summary}",
                        file=sys.stderr,
                    )
            pool.close_all()
        finally:
            sshd.kill()
    serial, parallel = figures["one host after the other"], figures["in parallel"]
    print(
        f"{options.hosts} hosts x 3 checks over SSH (loopback sshd), {options.workers} workers in parallel"
    )
    print(f"  one host after the other  {serial:7.2f} s")
    print(f"  in parallel               {parallel:7.2f} s   ({serial / parallel:.1f}x faster)")
    print(
        f"  per host: {serial / options.hosts:.2f} s one after the other, {parallel / options.hosts:.2f} s in parallel"
    )


if __name__ == "__main__":
    main()
