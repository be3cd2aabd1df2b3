"""Remote inspection end to end: ``opsctl check run`` and ``opsctl ssh test`` against a real
sshd on loopback (see sshd_fixtures.py). The loopback host is this machine, so its remote
inspection must give the same items and metrics as the local one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sshd_fixtures import ClientKeys, SshServer, free_port
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.ssh import SshPool

runner = CliRunner()
CHECKS = [{"kind": "host"}, {"kind": "filesystem"}, {"kind": "process", "process": "sshd"}]


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SshPool]:
    """The pool the CLI uses, with known_hosts files of the test's own."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pool = SshPool(
        known_hosts=tmp_path / "opsctl_known_hosts", user_known_hosts=tmp_path / "known_hosts"
    )
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: pool)
    yield pool
    pool.close_all()


def write_inventory(tmp_path: Path, hosts: list[dict]) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"sites": [{"name": "s", "hosts": hosts}]}, allow_unicode=True))
    return path


def remote(name: str, port: int, keys: ClientKeys, **ssh: object) -> dict:
    settings = {"user": "root", "port": port, "key": f"file:{keys.key}", **ssh}
    return {
        "name": name,
        "address": "127.0.0.1",
        "transport": "ssh",
        "ssh": settings,
        "checks": CHECKS,
    }


def run_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["check", "run", "--no-store", "--json", *args])
    return result.exit_code, json.loads(result.output)


def test_a_remote_host_gives_the_same_items_and_metrics_as_the_local_one(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    path = write_inventory(
        tmp_path,
        [
            remote("far", sshd.port, ssh_client_keys),
            {"name": "near", "transport": "local", "checks": CHECKS},
        ],
    )
    logins_before = sshd.log.read_text().count("Accepted publickey")
    _, data = run_json("-i", str(path))
    results = {r["id"]: r for r in data["results"]}
    for kind in ("host", "filesystem", "process"):
        far, near = results[f"s/far/{kind}"], results[f"s/near/{kind}"]
        assert far["state"] != "UNKNOWN", far["summary"]
        assert [i["key"] for i in far["items"]] == [i["key"] for i in near["items"]], kind
        assert {(m["name"], m["unit"]) for m in far["metrics"]} == {
            (m["name"], m["unit"]) for m in near["metrics"]
        }
    far_facts = {i["key"]: i["value"] for i in results["s/far/host"]["items"]}
    near_facts = {i["key"]: i["value"] for i in results["s/near/host"]["items"]}
    assert far_facts["host.os"] == near_facts["host.os"]
    assert far_facts["host.kernel"] == near_facts["host.kernel"]
    # the sshd serving us is running, seen over SSH as locally
    assert results["s/far/process"]["state"] == "OK"
    # one login served all three checks
    assert sshd.log.read_text().count("Accepted publickey") == logins_before + 1


def test_an_unknown_host_key_is_unknown_with_the_fingerprint_and_the_run_goes_on(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    path = write_inventory(
        tmp_path,
        [
            remote("far", sshd.port, ssh_client_keys),
            {"name": "near", "checks": [{"kind": "filesystem"}]},
        ],
    )
    code, data = run_json("-i", str(path))
    results = {r["id"]: r for r in data["results"]}
    assert code == 3
    for kind in ("host", "filesystem", "process"):
        summary = results[f"s/far/{kind}"]["summary"]
        assert results[f"s/far/{kind}"]["state"] == "UNKNOWN"
        assert sshd.fingerprint() in summary and "host key not known" in summary
    assert results["s/near/filesystem"]["state"] != "UNKNOWN"


def test_ssh_test_says_each_step(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    path = write_inventory(
        tmp_path,
        [remote("far", sshd.port, ssh_client_keys), remote("gone", free_port(), ssh_client_keys)],
    )
    result = runner.invoke(app, ["ssh", "test", "far", "-i", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["dns", "tcp", "host", "auth", "command"]
    assert all("OK" in line.split()[1:3] for line in lines), result.output

    result = runner.invoke(app, ["ssh", "test", "gone", "-i", str(path), "--json"])
    assert result.exit_code == 2
    steps = {step["name"]: step for step in json.loads(result.output)["steps"]}
    assert steps["dns"]["ok"] is True
    assert steps["tcp"]["ok"] is False and "refused" in steps["tcp"]["message"]
    assert steps["auth"]["ok"] is None


def test_ssh_test_refuses_hosts_it_cannot_test(tmp_path: Path) -> None:
    path = write_inventory(tmp_path, [{"name": "near", "transport": "local"}])
    result = runner.invoke(app, ["ssh", "test", "near", "-i", str(path)])
    assert result.exit_code == 2 and "not ssh" in result.output
    result = runner.invoke(app, ["ssh", "test", "nowhere", "-i", str(path)])
    assert result.exit_code == 2 and "no host named 'nowhere'" in result.output


def test_a_silent_host_costs_its_timeout_and_does_not_hold_up_the_others(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never says a word
    try:
        pool.user_known_hosts.write_text(sshd.known_hosts_line())
        path = write_inventory(
            tmp_path,
            [
                remote("mute", silent.getsockname()[1], ssh_client_keys, connect_timeout="3s"),
                remote("far", sshd.port, ssh_client_keys),
            ],
        )
        code, data = run_json("-i", str(path), "--kind", "filesystem")
    finally:
        silent.close()
    results = {r["id"]: r for r in data["results"]}
    assert code == 3
    assert results["s/mute/filesystem"]["state"] == "UNKNOWN"
    assert "mute (127.0.0.1:" in results["s/mute/filesystem"]["summary"]
    assert results["s/far/filesystem"]["state"] in ("OK", "WARNING", "CRITICAL")
    # the good host did not wait for the silent one's timeout
    assert results["s/far/filesystem"]["duration"] < 3.0
