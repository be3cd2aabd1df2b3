"""Real OpenSSH servers for the SSH tests: sshd processes on 127.0.0.1 with generated host
and client keys, and a throwaway local user for password logins.

Imported by conftest.py, so the fixtures are available to every test module.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
PASSWORD_USER = "opsctl-sshtest"
# Marks the user as ours: a user of that name with another comment is left alone.
PASSWORD_USER_COMMENT = "opsctl ssh tests (safe to delete)"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (at this moment)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def generate_key(path: Path, passphrase: str = "") -> Path:
    """Generate an ed25519 key pair at path (and path.pub); return path."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def fingerprint(public_key: Path) -> str:
    """Return OpenSSH's SHA256 fingerprint of a public key file (``ssh-keygen -lf``)."""
    output = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True
    ).stdout
    return output.split()[1]


@dataclass
class SshServer:
    """One sshd on 127.0.0.1: its files live in ``directory``, its log in ``log``."""

    name: str
    directory: Path
    authorized_keys: Path
    port: int = field(default_factory=free_port)
    log_level: str = "INFO"
    process: subprocess.Popen | None = None

    @property
    def host_key(self) -> Path:
        return self.directory / "host_ed25519"

    @property
    def host_public_key(self) -> Path:
        return self.directory / "host_ed25519.pub"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def fingerprint(self) -> str:
        return fingerprint(self.host_public_key)

    def known_hosts_line(self) -> str:
        """The line that trusts this server's key in a known_hosts file."""
        key_type, key_base64 = self.host_public_key.read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key_base64}\n"

    def new_host_key(self) -> None:
        """Replace the host key by a newly generated one (takes effect at the next start)."""
        self.host_key.unlink(missing_ok=True)
        self.host_public_key.unlink(missing_ok=True)
        generate_key(self.host_key)

    def start(self) -> None:
        if not self.host_key.exists():
            generate_key(self.host_key)
        config = self.directory / "sshd_config"
        config.write_text(
            f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.directory / "sshd.pid"}
AuthorizedKeysFile {self.authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel {self.log_level}
"""
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd {self.name} exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd {self.name} did not listen in 10s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@dataclass(frozen=True)
class ClientKeys:
    """Client key files: ``key`` and ``encrypted_key`` are authorized, ``wrong_key`` is not."""

    key: Path
    encrypted_key: Path
    passphrase: str
    wrong_key: Path
    authorized_keys: Path


@pytest.fixture(scope="session")
def ssh_client_keys(tmp_path_factory: pytest.TempPathFactory) -> ClientKeys:
    """Generated client keys and the authorized_keys file every test sshd uses."""
    from conftest import need_executable

    need_executable("ssh-keygen", "openssh-client")
    directory = tmp_path_factory.mktemp("ssh-client")
    passphrase = secrets.token_urlsafe(12)
    keys = ClientKeys(
        key=generate_key(directory / "id_ed25519"),
        encrypted_key=generate_key(directory / "id_encrypted", passphrase),
        passphrase=passphrase,
        wrong_key=generate_key(directory / "id_wrong"),
        authorized_keys=directory / "authorized_keys",
    )
    keys.authorized_keys.write_text(
        Path(f"{keys.key}.pub").read_text() + Path(f"{keys.encrypted_key}.pub").read_text()
    )
    return keys


@pytest.fixture(scope="session")
def sshd_factory(
    tmp_path_factory: pytest.TempPathFactory, ssh_client_keys: ClientKeys
) -> Iterator[Callable[..., SshServer]]:
    """A function that starts an sshd (``name``, ``log_level``) and returns its SshServer;
    every server it started is stopped at the end of the session."""
    from conftest import need, need_executable

    need_executable(SSHD, "openssh-server")
    need_executable("ssh-keygen", "openssh-client")
    # sshd refuses to start without its privilege separation directory.
    privsep = Path("/run/sshd")
    if not privsep.is_dir():
        try:
            privsep.mkdir(mode=0o755, parents=True)
        except OSError as error:
            need(False, f"{privsep} is missing and cannot be created: {error.strerror}")
    servers: list[SshServer] = []

    def start(name: str, log_level: str = "INFO") -> SshServer:
        server = SshServer(
            name=name,
            directory=tmp_path_factory.mktemp(f"sshd-{name}"),
            authorized_keys=ssh_client_keys.authorized_keys,
            log_level=log_level,
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def sshd(sshd_factory: Callable[..., SshServer]) -> SshServer:
    """The target sshd."""
    return sshd_factory("target")


@pytest.fixture(scope="session")
def bastion_sshd(sshd_factory: Callable[..., SshServer]) -> SshServer:
    """A jump host; it logs at DEBUG so that tests can see the forwards it made."""
    return sshd_factory("bastion", log_level="DEBUG")


@pytest.fixture(scope="session")
def inner_bastion_sshd(sshd_factory: Callable[..., SshServer]) -> SshServer:
    """A second jump host, reached through the first."""
    return sshd_factory("inner-bastion", log_level="DEBUG")


@pytest.fixture(scope="session")
def ssh_password_user() -> Iterator[tuple[str, str]]:
    """(user name, password) of a local user made for password logins; removed at the end.

    Skipped unless running as root, and when a user of that name exists that these tests
    did not make.
    """
    if os.geteuid() != 0:
        pytest.skip(f"password login needs a test user; creating {PASSWORD_USER} needs root")
    try:
        existing = pwd.getpwnam(PASSWORD_USER)
    except KeyError:
        existing = None
    if existing is not None and existing.pw_gecos != PASSWORD_USER_COMMENT:
        pytest.skip(f"user {PASSWORD_USER} exists and was not made by these tests")
    if existing is None:
        subprocess.run(
            ["useradd", "-m", "-s", "/bin/sh", "-c", PASSWORD_USER_COMMENT, PASSWORD_USER],
            check=True,
            capture_output=True,
        )
    password = secrets.token_urlsafe(18)
    subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{password}\n", text=True, check=True)
    try:
        yield PASSWORD_USER, password
    finally:
        subprocess.run(["userdel", "-r", PASSWORD_USER], capture_output=True)
