"""opsctl.ssh against real OpenSSH servers (see sshd_fixtures.py): commands, host keys,
authentication, jump hosts, pooling, SFTP and the step-by-step diagnosis."""

from __future__ import annotations

import getpass
import os
import socket
import stat
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sshd_fixtures import ClientKeys, SshServer, free_port

from opsctl.inventory import Host, load
from opsctl.ssh import CommandResult, SshError, SshPool, diagnose

SITE = "test-site"


def hosts_from_yaml(tmp_path: Path, hosts: list[dict[str, Any]]) -> dict[str, Host]:
    """Load hosts through the inventory loader (so ``ssh.via`` chains are resolved as in real
    use) and return them by name."""
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"sites": [{"name": SITE, "hosts": hosts}]}))
    loaded = load(path)
    return {host.name: host for host in loaded.inventory.sites[0].hosts}


def ssh_host(name: str, server_or_port: SshServer | int, **ssh: Any) -> dict[str, Any]:
    port = server_or_port if isinstance(server_or_port, int) else server_or_port.port
    address = ssh.pop("address", "127.0.0.1")
    return {"name": name, "address": address, "transport": "ssh", "ssh": {"port": port, **ssh}}


def one_host(tmp_path: Path, name: str, server: SshServer | int, **ssh: Any) -> Host:
    return hosts_from_yaml(tmp_path, [ssh_host(name, server, **ssh)])[name]


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's ssh-agent out of the tests: its keys would be tried first."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def pool(tmp_path: Path) -> Any:
    """A pool with its own empty known_hosts files (never the real ~/.ssh/known_hosts)."""
    pool = SshPool(
        known_hosts=tmp_path / "opsctl" / "known_hosts",
        user_known_hosts=tmp_path / "user_known_hosts",
    )
    yield pool
    pool.close_all()


def trust(pool: SshPool, *servers: SshServer) -> None:
    """Put the servers' host keys in the pool's user known_hosts, as a user would."""
    with pool.user_known_hosts.open("a") as file:
        for server in servers:
            file.write(server.known_hosts_line())


def key_settings(keys: ClientKeys) -> dict[str, Any]:
    return {"key": f"file:{keys.key}"}


# --------------------------------------------------------------------------- commands


def test_key_login_runs_a_command(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    # No user: the local user name, as ssh does.
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    connection = pool.connection(host)

    assert connection.run("echo hello", timeout=10) == CommandResult(0, "hello\n", "")
    assert connection.user == getpass.getuser()
    assert connection.auth_method == f"publickey {ssh_client_keys.key}"


def test_non_zero_exit_is_returned_with_stderr(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    result = pool.connection(host).run("echo out; echo oops >&2; exit 3", timeout=10)

    assert result == CommandResult(3, "out\n", "oops\n")


def test_stdin_is_closed_and_output_is_capped_and_decoded(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    connection = pool.connection(
        one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))
    )

    # cat would wait for ever on an open stdin.
    assert connection.run("cat; echo done", timeout=5) == CommandResult(0, "done\n", "")
    # 200 kB of output, of which 1000 bytes are kept; \377 is not UTF-8.
    result = connection.run(
        r"printf '\377\345\214\273'; head -c 200000 /dev/zero | tr '\0' x",
        timeout=10,
        max_output=1000,
    )
    assert result.exit_status == 0
    assert result.truncated
    assert result.stdout == "\ufffd医" + "x" * 996


def test_command_timeout(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    connection = pool.connection(
        one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))
    )
    started = time.monotonic()

    with pytest.raises(SshError) as caught:
        connection.run("sleep 30", timeout=1)

    assert time.monotonic() - started < 5
    assert caught.value.stage == "command"
    assert str(caught.value) == f"his-db-01 (127.0.0.1:{sshd.port}): command timed out after 1s"
    # The connection survives a command that timed out.
    assert connection.run("echo still here", timeout=10).stdout == "still here\n"


# --------------------------------------------------------------------------- authentication


def test_password_login(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    ssh_password_user: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = ssh_password_user
    monkeypatch.setenv("OPSCTL_TEST_SSH_PASSWORD", password)
    trust(pool, sshd)
    host = one_host(tmp_path, "his-db-01", sshd, user=user, password="env:OPSCTL_TEST_SSH_PASSWORD")

    connection = pool.connection(host)

    assert connection.run("id -un", timeout=10).stdout == f"{user}\n"
    assert connection.auth_method == "password"


def test_wrong_password_is_refused_without_showing_it(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    ssh_password_user: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, _ = ssh_password_user
    monkeypatch.setenv("OPSCTL_TEST_SSH_PASSWORD", "Wrong-Password-4711")
    trust(pool, sshd)
    host = one_host(tmp_path, "his-db-01", sshd, user=user, password="env:OPSCTL_TEST_SSH_PASSWORD")

    with pytest.raises(SshError) as caught:
        pool.connection(host)

    assert caught.value.stage == "auth"
    assert str(caught.value) == (
        f"his-db-01 (127.0.0.1:{sshd.port}): authentication failed for user {user} "
        "(tried: password)"
    )


def test_wrong_client_key_is_refused(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    host = one_host(
        tmp_path, "his-db-01", sshd, user="root", key=f"file:{ssh_client_keys.wrong_key}"
    )

    with pytest.raises(SshError) as caught:
        pool.connection(host)

    assert caught.value.stage == "auth"
    assert str(caught.value) == (
        f"his-db-01 (127.0.0.1:{sshd.port}): authentication failed for user root "
        f"(tried: publickey {ssh_client_keys.wrong_key})"
    )


def test_encrypted_key_needs_its_passphrase(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    ssh_client_keys: ClientKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trust(pool, sshd)
    key = ssh_client_keys.encrypted_key
    # The key path itself may come from an environment variable.
    monkeypatch.setenv("OPSCTL_TEST_SSH_KEY", str(key))
    monkeypatch.setenv("OPSCTL_TEST_SSH_PASSPHRASE", ssh_client_keys.passphrase)
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("without", sshd, key="env:OPSCTL_TEST_SSH_KEY"),
            ssh_host(
                "with",
                sshd,
                key="env:OPSCTL_TEST_SSH_KEY",
                key_passphrase="env:OPSCTL_TEST_SSH_PASSPHRASE",
            ),
        ],
    )

    with pytest.raises(SshError) as caught:
        pool.connection(hosts["without"])
    assert caught.value.stage == "auth"
    assert f"publickey {key} (encrypted; set ssh.key_passphrase)" in str(caught.value)

    assert pool.connection(hosts["with"]).run("echo ok", timeout=10).stdout == "ok\n"


# --------------------------------------------------------------------------- host keys


def test_unknown_host_key_is_refused_with_its_fingerprint(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    with pytest.raises(SshError) as caught:
        pool.connection(host)

    assert caught.value.stage == "hostkey"
    assert str(caught.value).startswith(
        f"his-db-01 (127.0.0.1:{sshd.port}): host key not known "
        f"(ssh-ed25519 {sshd.fingerprint()}); verify it and add it to "
    )
    assert "set ssh.accept_new_host_key: true" in str(caught.value)
    assert not pool.known_hosts.exists()


def test_hashed_known_hosts_entry_is_trusted(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    subprocess.run(
        ["ssh-keygen", "-H", "-f", str(pool.user_known_hosts)], check=True, capture_output=True
    )
    assert pool.user_known_hosts.read_text().startswith("|1|")
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    assert pool.connection(host).run("true", timeout=10).exit_status == 0


def test_entry_for_another_port_does_not_trust(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    # The same key filed under plain 127.0.0.1 means port 22, not this port.
    pool.user_known_hosts.write_text(
        sshd.known_hosts_line().replace(f"[127.0.0.1]:{sshd.port}", "127.0.0.1")
    )
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    with pytest.raises(SshError, match="host key not known"):
        pool.connection(host)


def test_new_host_key_is_recorded_then_a_changed_key_refused(
    tmp_path: Path, sshd_factory: Any, ssh_client_keys: ClientKeys
) -> None:
    server = sshd_factory("reinstalled")
    host = one_host(
        tmp_path, "his-pacs-01", server, accept_new_host_key=True, **key_settings(ssh_client_keys)
    )
    files = {
        "known_hosts": tmp_path / "opsctl" / "known_hosts",
        "user_known_hosts": tmp_path / "user",
    }
    first = SshPool(**files)
    try:
        connection = first.connection(host)
        assert connection.run("echo first", timeout=10).stdout == "first\n"
        assert "(recorded now)" in connection.host_key_source
    finally:
        first.close_all()
    recorded = files["known_hosts"].read_text()
    assert recorded == server.known_hosts_line()
    assert stat.S_IMODE(files["known_hosts"].stat().st_mode) == 0o600
    old_fingerprint = server.fingerprint()

    # The same address and port, a different host key: a reinstalled host, or an impostor.
    server.stop()
    server.new_host_key()
    server.start()
    second = SshPool(**files)
    try:
        with pytest.raises(SshError) as caught:
            second.connection(host)
    finally:
        second.close_all()

    assert caught.value.stage == "hostkey"
    assert str(caught.value).startswith(
        f"his-pacs-01 (127.0.0.1:{server.port}): HOST KEY CHANGED "
        f"(was {old_fingerprint}, now {server.fingerprint()}); refusing to connect"
    )
    assert files["known_hosts"].read_text() == recorded


# --------------------------------------------------------------------------- network failures


def test_connection_refused(tmp_path: Path, pool: SshPool, ssh_client_keys: ClientKeys) -> None:
    port = free_port()
    host = one_host(tmp_path, "his-db-01", port, **key_settings(ssh_client_keys))

    with pytest.raises(SshError) as caught:
        pool.connection(host)

    assert caught.value.stage == "tcp"
    assert str(caught.value) == f"his-db-01 (127.0.0.1:{port}): connection refused"


def test_unresolvable_name(tmp_path: Path, pool: SshPool, ssh_client_keys: ClientKeys) -> None:
    host = one_host(
        tmp_path, "his-db-01", 22, address="his-db-01.invalid", **key_settings(ssh_client_keys)
    )

    with pytest.raises(SshError) as caught:
        pool.connection(host, timeout=5)

    assert caught.value.stage == "dns"
    assert str(caught.value).startswith(
        "his-db-01 (his-db-01.invalid:22): cannot resolve his-db-01.invalid: "
    )


def test_silent_server_is_not_an_ssh_server(
    tmp_path: Path, pool: SshPool, ssh_client_keys: ClientKeys
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        host = one_host(
            tmp_path, "his-db-01", port, connect_timeout="1s", **key_settings(ssh_client_keys)
        )
        started = time.monotonic()
        with pytest.raises(SshError) as caught:
            pool.connection(host)

    assert time.monotonic() - started < 5
    assert caught.value.stage == "tcp"
    assert (
        str(caught.value)
        == f"his-db-01 (127.0.0.1:{port}): not an SSH server (no SSH banner in 1s)"
    )


def test_callers_waiting_for_a_failed_connect_share_its_error(
    tmp_path: Path, pool: SshPool, ssh_client_keys: ClientKeys
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        host = one_host(
            tmp_path, "his-db-01", port, connect_timeout="1s", **key_settings(ssh_client_keys)
        )
        errors: list[SshError] = []

        def connect() -> None:
            try:
                pool.connection(host)
            except SshError as error:
                errors.append(error)

        started = time.monotonic()
        threads = [threading.Thread(target=connect) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - started

    assert [error.stage for error in errors] == ["tcp"] * 5
    assert len({str(error) for error in errors}) == 1
    # One banner timeout for all, not five in a row.
    assert elapsed < 4


# --------------------------------------------------------------------------- jump hosts


def test_through_a_jump_host(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    bastion_sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> None:
    trust(pool, sshd, bastion_sshd)
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("bastion-01", bastion_sshd, **key_settings(ssh_client_keys)),
            ssh_host("his-db-01", sshd, via="bastion-01", **key_settings(ssh_client_keys)),
        ],
    )

    connection = pool.connection(hosts["his-db-01"])
    seen = connection.run("echo $SSH_CONNECTION", timeout=10).stdout.split()

    assert seen[2:] == ["127.0.0.1", str(sshd.port)]
    # The bastion made the connection: it logged the forward to the target's port.
    assert f"target 127.0.0.1 port {sshd.port}" in bastion_sshd.log.read_text()
    # The jump connection is pooled and is the one the target's connection runs through.
    assert connection.parent is pool.connection(hosts["bastion-01"])


def test_through_two_jump_hosts(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    bastion_sshd: SshServer,
    inner_bastion_sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> None:
    trust(pool, sshd, bastion_sshd, inner_bastion_sshd)
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("bastion-01", bastion_sshd, **key_settings(ssh_client_keys)),
            ssh_host(
                "bastion-02", inner_bastion_sshd, via="bastion-01", **key_settings(ssh_client_keys)
            ),
            ssh_host("his-db-01", sshd, via="bastion-02", **key_settings(ssh_client_keys)),
        ],
    )
    assert [jump.name for jump in hosts["his-db-01"].jump_hosts] == ["bastion-01", "bastion-02"]

    connection = pool.connection(hosts["his-db-01"])

    assert connection.run("echo through", timeout=10).stdout == "through\n"
    assert f"target 127.0.0.1 port {inner_bastion_sshd.port}" in bastion_sshd.log.read_text()
    assert f"target 127.0.0.1 port {sshd.port}" in inner_bastion_sshd.log.read_text()
    assert connection.parent is not None and connection.parent.parent is not None
    assert connection.parent.parent.label == f"bastion-01 (127.0.0.1:{bastion_sshd.port})"


def test_failing_jump_host_is_named(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    bastion_sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> None:
    trust(pool, sshd)  # but not the bastion
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("bastion-01", bastion_sshd, **key_settings(ssh_client_keys)),
            ssh_host("his-db-01", sshd, via="bastion-01", **key_settings(ssh_client_keys)),
        ],
    )

    with pytest.raises(SshError) as caught:
        pool.connection(hosts["his-db-01"])

    assert caught.value.stage == "hostkey"
    assert str(caught.value).startswith(
        f"his-db-01 (127.0.0.1:{sshd.port}): via bastion-01 (127.0.0.1:{bastion_sshd.port}): "
        f"host key not known (ssh-ed25519 {bastion_sshd.fingerprint()})"
    )


def test_jump_host_that_cannot_reach_the_target(
    tmp_path: Path, pool: SshPool, bastion_sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, bastion_sshd)
    closed = free_port()
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("bastion-01", bastion_sshd, **key_settings(ssh_client_keys)),
            ssh_host("his-db-01", closed, via="bastion-01", **key_settings(ssh_client_keys)),
        ],
    )

    with pytest.raises(SshError) as caught:
        pool.connection(hosts["his-db-01"])

    assert caught.value.stage == "tcp"
    assert str(caught.value).startswith(
        f"his-db-01 (127.0.0.1:{closed}): via bastion-01 (127.0.0.1:{bastion_sshd.port}): "
        f"it cannot connect to 127.0.0.1:{closed}"
    )


# --------------------------------------------------------------------------- pooling


def test_connections_are_shared_and_reconnected(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    # Ten threads ask at once: one connect, one connection for all.
    barrier = threading.Barrier(10)
    connections: list[Any] = []

    def connect() -> None:
        barrier.wait()
        connections.append(pool.connection(host))

    threads = [threading.Thread(target=connect) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(connections) == 10
    assert len({id(connection) for connection in connections}) == 1
    connection = connections[0]
    assert pool.connection(host) is connection

    # Ten commands at once on the one transport: the server sees one TCP connection.
    outputs: list[str] = []

    def run() -> None:
        outputs.append(connection.run("sleep 0.5; echo $SSH_CONNECTION", timeout=20).stdout)

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outputs) == 10
    assert len(set(outputs)) == 1  # the same client port every time
    assert time.monotonic() - started < 4  # in parallel, not one after the other

    connection.transport.close()
    fresh = pool.connection(host)
    assert fresh is not connection
    assert fresh.run("echo again", timeout=10).stdout == "again\n"


# --------------------------------------------------------------------------- SFTP


def test_remote_files(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    connection = pool.connection(
        one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))
    )
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "interface.log").write_bytes(b"0123456789")
    (directory / "archive").mkdir()
    os.utime(directory / "interface.log", (1_700_000_000, 1_700_000_000))

    described = connection.stat(str(directory / "interface.log"))
    assert described.size == 10
    assert not described.is_dir
    assert described.mtime == datetime.fromtimestamp(1_700_000_000, UTC)

    entries = connection.listdir(str(directory))
    assert [(entry.path, entry.is_dir) for entry in entries] == [
        (str(directory / "archive"), True),
        (str(directory / "interface.log"), False),
    ]

    assert connection.read(str(directory / "interface.log"), offset=3, limit=4) == b"3456"
    assert connection.read(str(directory / "interface.log"), offset=8) == b"89"
    assert connection.read(str(directory / "interface.log")) == b"0123456789"
    with pytest.raises(FileNotFoundError):
        connection.stat(str(directory / "missing.log"))


# --------------------------------------------------------------------------- diagnose


def test_diagnose_a_good_host(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    trust(pool, sshd)
    host = one_host(tmp_path, "his-db-01", sshd, **key_settings(ssh_client_keys))

    steps = diagnose(host, pool, timeout=10)

    assert [(step.name, step.ok) for step in steps] == [
        ("dns", True),
        ("tcp", True),
        ("host key", True),
        ("auth", True),
        ("command", True),
    ]
    assert sshd.fingerprint() in steps[2].message
    assert steps[4].message == f"uname -n: {socket.gethostname()}"
    assert all("\n" not in step.message for step in steps)


def test_diagnose_a_refused_port(
    tmp_path: Path, pool: SshPool, ssh_client_keys: ClientKeys
) -> None:
    port = free_port()
    host = one_host(tmp_path, "his-db-01", port, **key_settings(ssh_client_keys))

    steps = diagnose(host, pool, timeout=5)

    assert [(step.name, step.ok) for step in steps] == [
        ("dns", True),
        ("tcp", False),
        ("host key", None),
        ("auth", None),
        ("command", None),
    ]
    assert steps[1].message == f"his-db-01 (127.0.0.1:{port}): connection refused"


def test_diagnose_through_a_jump_host(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    bastion_sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> None:
    trust(pool, bastion_sshd)  # the target's key is unknown
    hosts = hosts_from_yaml(
        tmp_path,
        [
            ssh_host("bastion-01", bastion_sshd, **key_settings(ssh_client_keys)),
            ssh_host("his-db-01", sshd, via="bastion-01", **key_settings(ssh_client_keys)),
        ],
    )

    steps = diagnose(hosts["his-db-01"], pool, timeout=10)

    assert [(step.name, step.ok) for step in steps] == [
        ("dns", True),
        ("tcp", True),
        ("host key", False),
        ("auth", None),
        ("command", None),
    ]
    assert f"via bastion-01 (127.0.0.1:{bastion_sshd.port})" in steps[1].message
    assert steps[2].message.startswith(f"his-db-01 (127.0.0.1:{sshd.port}): host key not known")
