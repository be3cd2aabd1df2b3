"""The SSH client for agentless inspection: commands and remote file access on hosts that the
team may only reach over SSH, often through a bastion.

One ``SshPool`` per run keeps one authenticated paramiko ``Transport`` per host and lets every
thread of the run open channels on it (SSH multiplexes many channels on one connection).
Host keys are always verified: a key must be in the user's ``~/.ssh/known_hosts`` or in
opsctl's own ``known_hosts``; an unknown key is recorded only when the host opts in with
``ssh.accept_new_host_key``, and a changed key is always refused. Every failure becomes an
``SshError`` naming the host and the stage that failed, never a traceback.

paramiko is imported here and nowhere else; the CLI imports this module only when it needs it.
"""

from __future__ import annotations

import atexit
import getpass
import ipaddress
import logging
import os
import posixpath
import re
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry
from paramiko.ssh_exception import (
    AuthenticationException,
    BadAuthenticationType,
    ChannelException,
    PasswordRequiredException,
    SSHException,
)

from opsctl.contract import CheckError
from opsctl.inventory import Host, Secret, SecretError, SshSettings

log = logging.getLogger(__name__)

# paramiko's transport thread logs failures (with tracebacks) at ERROR. Without a handler
# anywhere, Python's last-resort handler would print them on the terminal next to our own
# one-line message; a NullHandler stops that while records still reach any handler the
# application configures on the root logger.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: Output kept per stream of one command; the rest is read and dropped, so that the remote
#: command never blocks on a full SSH window.
MAX_OUTPUT = 8 * 1024 * 1024

#: Commands run at once on one connection. OpenSSH's ``MaxSessions`` defaults to 10 and
#: counts the SFTP session too; staying below it avoids "open failed" under load.
MAX_SESSIONS = 8

#: Time limit of one SFTP operation when the caller gives none.
SFTP_TIMEOUT = 30.0

#: Seconds between keepalive messages: hospital firewalls drop idle connections silently.
KEEPALIVE_INTERVAL = 30

DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

STAGES = ("dns", "tcp", "hostkey", "auth", "command", "channel")


class SshError(CheckError):
    """Raised when a host cannot be reached, trusted, logged in to or commanded over SSH.

    ``host`` is the host's label (``his-db-01 (10.8.1.21:22)``), ``stage`` one of
    ``STAGES``, ``detail`` what went wrong, and ``via`` the label of the jump host that
    failed when the failure happened on the way.
    """

    def __init__(self, host: str, stage: str, detail: str, *, via: str | None = None) -> None:
        self.host = host
        self.stage = stage
        self.detail = detail
        self.via = via
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.via:
            return f"{self.host}: via {self.via}: {self.detail}"
        return f"{self.host}: {self.detail}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error intact when it crosses a process boundary (pickling).
        return (SshError, (self.host, self.stage, self.detail), {"via": self.via})


@dataclass(frozen=True)
class CommandResult:
    """What a remote command gave: its exit status (-1 if it ended without one, e.g. killed
    by a signal), and its output decoded as text. ``truncated`` is set when an output was
    longer than the limit and its end was dropped."""

    exit_status: int
    stdout: str
    stderr: str
    truncated: bool = False


@dataclass(frozen=True)
class RemoteFile:
    """One remote file or directory as SFTP describes it; ``mtime`` is aware UTC."""

    path: str
    size: int
    mtime: datetime
    is_dir: bool


# --------------------------------------------------------------------------- helpers


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def host_label(host: Host) -> str:
    """Given a host, return how messages name it: ``his-db-01 (10.8.1.21:22)``."""
    return f"{host.name} ({_endpoint(host.address, host.ssh_settings.port)})"


def known_hosts_name(address: str, port: int) -> str:
    """Given an address and a port, return the name OpenSSH files the host key under:
    the address for port 22, ``[address]:port`` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def _shown_path(path: Path) -> str:
    """A path as a person types it: under the home directory as ``~/...``."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _timeout_for(host: Host, timeout: float | None) -> float:
    configured = host.ssh_settings.connect_timeout.total_seconds()
    return configured if timeout is None else min(configured, timeout)


def _username(host: Host) -> str:
    return host.ssh_settings.user or getpass.getuser()


def _key_path(secret: Secret) -> Path:
    """The private key file a ``key`` reference names: ``file:`` gives the path itself (the
    key file is read by the key loader, not as a secret value), ``env:`` a variable holding
    the path. Raise SecretError if the variable is not set."""
    if secret.scheme == "file":
        return Path(secret.target).expanduser()
    return Path(secret.reveal()).expanduser()


# --------------------------------------------------------------------------- known hosts


@dataclass(frozen=True)
class _KnownKey:
    key: paramiko.PKey
    file: Path
    line: int
    marker: str  # "" or "@revoked"


def _pattern_matches(name: str, pattern: str) -> bool:
    """Match a host name against one known_hosts pattern: hashed (``|1|salt|hash``), or
    plain with OpenSSH's ``*`` and ``?`` wildcards (brackets are literal: ``[host]:port``)."""
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(name, pattern) == pattern
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _names_match(name: str, patterns: list[str]) -> bool:
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _pattern_matches(name, pattern[1:] if negated else pattern):
            if negated:
                return False  # as in OpenSSH, a matching negation excludes the line
            matched = True
    return matched


def _read_known_keys(path: Path, name: str) -> list[_KnownKey]:
    """Given a known_hosts file and a host name, return the keys recorded for the name.

    A missing or unreadable file has no keys; lines paramiko cannot parse (unknown key
    types, ``@cert-authority``) are skipped, as ssh skips what it does not understand.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    keys = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker != "@revoked":
                continue
        try:
            entry = HostKeyEntry.from_line(line, number)
        except Exception:  # noqa: BLE001 - a corrupt line must not stop the others
            continue
        if entry is None or not entry.valid or not _names_match(name, entry.hostnames):
            continue
        keys.append(_KnownKey(entry.key, path, number, marker))
    return keys


def _same_key(first: paramiko.PKey, second: paramiko.PKey) -> bool:
    return first.get_name() == second.get_name() and first.asbytes() == second.asbytes()


def _describe_key(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


# --------------------------------------------------------------------------- connection


class SshConnection:
    """One authenticated SSH connection to one host, maybe through jump hosts; shared by
    threads (each command gets its own channel).

    ``host_key``, ``host_key_source`` and ``auth_method`` describe how the connection was
    made (for ``opsctl ssh test``).
    """

    def __init__(
        self,
        host: Host,
        transport: paramiko.Transport,
        *,
        host_key: paramiko.PKey,
        host_key_source: str,
        auth_method: str,
        user: str,
        parent: SshConnection | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.host = host
        self.label = host_label(host)
        self.transport = transport
        self.host_key = host_key
        self.host_key_source = host_key_source
        self.auth_method = auth_method
        self.user = user
        self.parent = parent
        self._sessions = threading.BoundedSemaphore(max_sessions)
        self._sftp: paramiko.SFTPClient | None = None
        # paramiko's SFTPClient lets only one thread wait for replies at a time (a second
        # reader may swallow the first one's reply), so SFTP operations take turns.
        self._sftp_lock = threading.Lock()

    def is_alive(self) -> bool:
        """Return True if the connection can still open channels."""
        return self.transport.is_active() and self.transport.is_authenticated()

    def _error(self, stage: str, detail: str) -> SshError:
        return SshError(self.label, stage, detail)

    def run(
        self,
        command: str,
        timeout: float,
        *,
        encoding: str = "utf-8",
        max_output: int = MAX_OUTPUT,
    ) -> CommandResult:
        """Given a shell command and a time limit in seconds, run it with stdin closed and
        return its CommandResult (a non-zero exit status is returned, not raised).

        Each output keeps its first ``max_output`` bytes and is decoded with ``encoding``,
        undecodable bytes replaced. Raise SshError (stage "command") if the command does not
        finish in time, (stage "channel") if the connection cannot run it.
        """
        deadline = time.monotonic() + timeout
        if not self._sessions.acquire(timeout=max(timeout, 0)):
            raise self._error(
                "command",
                f"command timed out after {_seconds(timeout)} waiting for a free session",
            )
        try:
            channel = self._open_session(deadline)
            try:
                try:
                    channel.exec_command(command)
                except SSHException as error:
                    raise self._error("channel", f"cannot start the command: {error}") from None
                # Commands that read stdin (a pager, a password prompt) must not wait for us.
                channel.shutdown_write()
                stdout, stderr = _Capped(max_output), _Capped(max_output)
                self._collect(channel, stdout, stderr, deadline, timeout)
                status = channel.recv_exit_status() if channel.exit_status_ready() else -1
            finally:
                # Closing the channel makes sshd close the command's pipes; a command that
                # timed out gets SIGPIPE on its next write (sshd does not kill it outright).
                channel.close()
        finally:
            self._sessions.release()
        return CommandResult(
            status,
            stdout.text(encoding),
            stderr.text(encoding),
            stdout.truncated or stderr.truncated,
        )

    def _open_session(self, deadline: float) -> paramiko.Channel:
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            return self.transport.open_session(timeout=remaining)
        except ChannelException as error:
            raise self._error(
                "channel", f"the server refused a new session: {error.text}"
            ) from None
        except (SSHException, EOFError, OSError) as error:
            raise self._error(
                "channel", f"cannot open a session: {error or 'connection lost'}"
            ) from None

    def _collect(
        self,
        channel: paramiko.Channel,
        stdout: _Capped,
        stderr: _Capped,
        deadline: float,
        timeout: float,
    ) -> None:
        while True:
            # Read the flags before draining, so that data arriving just before the close
            # is still read on this pass.
            finished = channel.closed or (channel.eof_received and channel.exit_status_ready())
            while channel.recv_ready():
                stdout.add(channel.recv(65536))
            while channel.recv_stderr_ready():
                stderr.add(channel.recv_stderr(65536))
            if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error("command", f"command timed out after {_seconds(timeout)}")
            wait = min(remaining, 1.0)
            if channel.eof_received:
                # After EOF the channel's pipe stays readable; wait for the exit status.
                channel.status_event.wait(wait)
            else:
                select.select([channel], [], [], wait)

    # ----------------------------------------------------------------- SFTP

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                client = paramiko.SFTPClient.from_transport(self.transport)
            except ChannelException as error:
                raise self._error("channel", f"cannot start SFTP: {error.text}") from None
            except (SSHException, EOFError, OSError) as error:
                raise self._error(
                    "channel",
                    f"cannot start SFTP ({error or 'refused'}); is the sftp subsystem enabled?",
                ) from None
            if client is None:
                raise self._error("channel", "cannot start SFTP: the server refused")
            self._sftp = client
        return self._sftp

    def _sftp_call(self, what: str, path: str, timeout: float | None, call: Callable) -> Any:
        """Run ``call(sftp)`` under the SFTP lock with a time limit; map its failures."""
        limit = SFTP_TIMEOUT if timeout is None else timeout
        with self._sftp_lock:
            sftp = self._sftp_client()
            sftp.get_channel().settimeout(limit)
            try:
                return call(sftp)
            except TimeoutError:
                self._drop_sftp()  # a reply may still be on its way: start afresh next time
                raise self._error(
                    "command", f"SFTP {what} {path} timed out after {_seconds(limit)}"
                ) from None
            except OSError as error:
                # FileNotFoundError, PermissionError ...: the file's problem, not the link's.
                raise OSError(
                    error.errno, f"{error.strerror or error} (on {self.label})", path
                ) from None
            except (SSHException, EOFError) as error:
                self._drop_sftp()
                raise self._error(
                    "channel", f"SFTP {what} {path} failed: {error or 'connection lost'}"
                ) from None

    def _drop_sftp(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - closing a broken session may fail; it is gone
                pass
            self._sftp = None

    def stat(self, path: str, *, timeout: float | None = None) -> RemoteFile:
        """Given a remote path, return its RemoteFile (symbolic links followed).

        Raise FileNotFoundError or PermissionError (OSError) if the server says so, SshError
        if the connection fails or the server does not answer within ``timeout`` seconds.
        """
        attributes = self._sftp_call("stat", path, timeout, lambda sftp: sftp.stat(path))
        return _remote_file(path, attributes)

    def listdir(self, path: str, *, timeout: float | None = None) -> list[RemoteFile]:
        """Given a remote directory, return its entries sorted by name (symbolic links are
        described, not followed). Raise as ``stat`` does."""
        entries = self._sftp_call("listdir", path, timeout, lambda sftp: sftp.listdir_attr(path))
        return sorted(
            (_remote_file(posixpath.join(path, entry.filename), entry) for entry in entries),
            key=lambda remote: remote.path,
        )

    def read(
        self,
        path: str,
        offset: int = 0,
        limit: int | None = None,
        *,
        timeout: float | None = None,
    ) -> bytes:
        """Given a remote file, return up to ``limit`` bytes (all if None) from ``offset``
        on; fewer at the end of the file. Raise as ``stat`` does."""

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as remote:
                remote.seek(offset)
                return remote.read(limit) if limit is not None else remote.read()

        return self._sftp_call("read", path, timeout, read)

    def close(self) -> None:
        """Close the connection (its jump hosts' connections stay with the pool)."""
        with self._sftp_lock:
            self._drop_sftp()
        self.transport.close()


def _remote_file(path: str, attributes: paramiko.SFTPAttributes) -> RemoteFile:
    mode = attributes.st_mode or 0
    return RemoteFile(
        path=path,
        size=attributes.st_size or 0,
        mtime=datetime.fromtimestamp(attributes.st_mtime or 0, UTC),
        is_dir=stat.S_ISDIR(mode),
    )


class _Capped:
    """Bytes kept up to a limit; the rest is counted and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def text(self, encoding: str) -> str:
        return b"".join(self.parts).decode(encoding, errors="replace")


# --------------------------------------------------------------------------- the pool


def _pool_key(host: Host, jumps: tuple[Host, ...]) -> tuple:
    """What makes two connections interchangeable: where, as whom, with which credentials,
    and by which way."""
    settings = host.ssh_settings
    parent = _pool_key(jumps[-1], jumps[:-1]) if jumps else None
    return (
        host.address,
        settings.port,
        _username(host),
        str(settings.key),
        str(settings.password),
        parent,
    )


class SshPool:
    """The SSH connections of one run: one per host, shared by threads, reconnected when
    dead; connections to jump hosts are pooled too.

    ``known_hosts`` is opsctl's own file (default: ``known_hosts`` in opsctl's user data
    directory), where keys accepted on first use are recorded; ``user_known_hosts`` (default
    ``~/.ssh/known_hosts``) is only read. A host key must be in one of them.
    """

    def __init__(
        self,
        *,
        known_hosts: Path | None = None,
        user_known_hosts: Path | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        if known_hosts is None:
            import platformdirs

            known_hosts = Path(platformdirs.user_data_dir("opsctl")) / "known_hosts"
        self.known_hosts = Path(known_hosts)
        self.user_known_hosts = (
            Path("~/.ssh/known_hosts").expanduser()
            if user_known_hosts is None
            else Path(user_known_hosts)
        )
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._host_locks: dict[tuple, threading.Lock] = {}
        self._connections: dict[tuple, SshConnection] = {}
        # The last failed connect per host and when it ended (see _pooled).
        self._failures: dict[tuple, tuple[float, SshError]] = {}
        # Recording a key re-reads the file under this lock, so that two connections that
        # accept the same new host at once write it once.
        self._record_lock = threading.Lock()

    def connection(self, host: Host, timeout: float | None = None) -> SshConnection:
        """Given a host, return an authenticated SshConnection to it, reusing the pool's if
        it is alive. ``timeout`` (seconds) caps each hop's ``ssh.connect_timeout``.

        Thread-safe: concurrent callers for one host wait for a single connect and share it.
        Raise SshError naming the host and the stage that failed.
        """
        return self._pooled(host, tuple(host.jump_hosts), timeout)

    def _pooled(self, host: Host, jumps: tuple[Host, ...], timeout: float | None) -> SshConnection:
        key = _pool_key(host, jumps)
        arrived = time.monotonic()
        with self._lock:
            host_lock = self._host_locks.setdefault(key, threading.Lock())
        # Only callers for the same host wait here; a slow host does not hold up the others.
        with host_lock:
            failed = self._failures.get(key)
            if failed is not None and failed[0] >= arrived:
                # The connect this caller waited for has just failed: share its answer
                # instead of waiting out the same timeout again, once per thread.
                error = failed[1]
                raise SshError(error.host, error.stage, error.detail, via=error.via)
            existing = self._connections.get(key)
            if existing is not None and existing.is_alive():
                return existing
            if existing is not None:
                existing.close()
            try:
                connection = self._open(host, jumps, timeout)
            except SshError as error:
                self._failures[key] = (time.monotonic(), error)
                raise
            self._failures.pop(key, None)
            with self._lock:
                self._connections[key] = connection
            return connection

    def _open(self, host: Host, jumps: tuple[Host, ...], timeout: float | None) -> SshConnection:
        """Make a new connection to host through jumps (whose connections are pooled)."""
        label = host_label(host)
        limit = _timeout_for(host, timeout)
        settings = host.ssh_settings
        parent = None
        if jumps:
            try:
                parent = self._pooled(jumps[-1], jumps[:-1], timeout)
            except SshError as error:
                raise SshError(
                    label, error.stage, error.detail, via=error.via or error.host
                ) from None
            sock: Any = _forward(parent, host, limit)
        else:
            sock = _open_socket(label, host.address, settings.port, limit)
        try:
            transport = paramiko.Transport(sock)
        except BaseException:
            sock.close()
            raise
        try:
            return self._handshake(host, transport, limit, parent)
        except BaseException:
            # A transport whose thread never started does not close its socket itself.
            transport.close()
            sock.close()
            raise

    def _handshake(
        self,
        host: Host,
        transport: paramiko.Transport,
        limit: float,
        parent: SshConnection | None,
    ) -> SshConnection:
        label = host_label(host)
        settings = host.ssh_settings
        name = known_hosts_name(host.address, settings.port)
        known = self._known_keys(name)
        transport.banner_timeout = limit
        transport.handshake_timeout = limit
        transport.auth_timeout = limit
        # Opening a channel (SFTP, forwards) waits an hour by default.
        transport.channel_timeout = limit
        _prefer_key_types(transport, [entry.key for entry in known if not entry.marker])

        done = threading.Event()
        transport.start_client(event=done)
        # A moment beyond the banner timeout, so that a silent peer is reported as such
        # by paramiko rather than as a handshake timeout.
        if not done.wait(limit + 0.5) or not transport.is_active():
            raise _negotiation_error(label, transport, limit, finished=done.is_set())

        host_key = transport.get_remote_server_key()
        source = self._verify_host_key(host, label, name, host_key, known)
        user = _username(host)
        method = _authenticate(transport, host, label, user)
        transport.set_keepalive(KEEPALIVE_INTERVAL)
        log.debug("connected to %s as %s with %s", label, user, method)
        return SshConnection(
            host,
            transport,
            host_key=host_key,
            host_key_source=source,
            auth_method=method,
            user=user,
            parent=parent,
            max_sessions=self.max_sessions,
        )

    # ----------------------------------------------------------------- host keys

    def _known_keys(self, name: str) -> list[_KnownKey]:
        return _read_known_keys(self.user_known_hosts, name) + _read_known_keys(
            self.known_hosts, name
        )

    def _verify_host_key(
        self,
        host: Host,
        label: str,
        name: str,
        key: paramiko.PKey,
        known: list[_KnownKey],
    ) -> str:
        """Return where the host's key is known from; record it first if the host is new
        and opts in. Raise SshError (stage "hostkey") if the key is unknown or changed."""
        for entry in known:
            if entry.marker == "@revoked" and _same_key(entry.key, key):
                raise SshError(
                    label,
                    "hostkey",
                    f"host key {_describe_key(key)} is marked @revoked in "
                    f"{_shown_path(entry.file)}:{entry.line}; refusing to connect",
                )
        trusted = [entry for entry in known if not entry.marker]
        for entry in trusted:
            if _same_key(entry.key, key):
                return _shown_path(entry.file)
        if trusted:
            raise _changed(label, key, trusted)
        if not host.ssh_settings.accept_new_host_key:
            raise SshError(
                label,
                "hostkey",
                f"host key not known ({_describe_key(key)}); verify it and add it to "
                f"{_shown_path(self.user_known_hosts)}, or set ssh.accept_new_host_key: true",
            )
        with self._record_lock:
            # Another thread or process may have recorded this host since we looked.
            recorded = [e for e in _read_known_keys(self.known_hosts, name) if not e.marker]
            if any(_same_key(entry.key, key) for entry in recorded):
                return _shown_path(self.known_hosts)
            if recorded:
                raise _changed(label, key, recorded)
            try:
                _append_known_host(self.known_hosts, name, key)
            except OSError as error:
                raise SshError(
                    label,
                    "hostkey",
                    f"cannot record the new host key in {self.known_hosts}: "
                    f"{error.strerror or error}",
                ) from None
        log.warning("recorded new host key of %s: %s", label, _describe_key(key))
        return f"{_shown_path(self.known_hosts)} (recorded now)"

    def close_all(self) -> None:
        """Close every connection of the pool, innermost hops first."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        # A connection through a jump host is closed before the jump host's own.
        for connection in sorted(connections, key=_depth, reverse=True):
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                log.debug("closing %s failed", connection.label, exc_info=True)


def _depth(connection: SshConnection) -> int:
    depth, parent = 0, connection.parent
    while parent is not None:
        depth, parent = depth + 1, parent.parent
    return depth


def _changed(label: str, key: paramiko.PKey, trusted: list[_KnownKey]) -> SshError:
    same_type = [entry for entry in trusted if entry.key.get_name() == key.get_name()]
    old = (same_type or trusted)[0]
    was = old.key.fingerprint if same_type else _describe_key(old.key)
    now = key.fingerprint if same_type else _describe_key(key)
    return SshError(
        label,
        "hostkey",
        f"HOST KEY CHANGED (was {was}, now {now}); refusing to connect. If the host was "
        f"reinstalled, verify the new key and remove line {old.line} of {_shown_path(old.file)}",
    )


def _append_known_host(path: Path, name: str, key: paramiko.PKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "r+b") as file:
        size = os.fstat(file.fileno()).st_size
        prefix = b""
        if size:
            # A file edited by hand may lack its final newline.
            file.seek(size - 1)
            prefix = b"" if file.read(1) == b"\n" else b"\n"
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        file.write(prefix + line.encode("ascii"))


def _prefer_key_types(transport: paramiko.Transport, keys: list[paramiko.PKey]) -> None:
    """Ask the server for a key of a type we already know, as ssh does; otherwise a server
    with several host keys could show one we have never seen and look unknown or changed."""
    if not keys:
        return
    options = transport.get_security_options()
    available = list(options.key_types)
    wanted: list[str] = []
    for key in keys:
        name = key.get_name()
        # An RSA key is filed as ssh-rsa but signs with the SHA-2 algorithms.
        names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if name == "ssh-rsa" else [name]
        wanted.extend(n for n in names if n in available and n not in wanted)
    options.key_types = wanted + [n for n in available if n not in wanted]


# --------------------------------------------------------------------------- network


def _resolve(label: str, address: str, port: int, limit: float) -> list[tuple]:
    """Return the socket addresses of address:port. Raise SshError (stage "dns")."""
    try:
        ipaddress.ip_address(address)
        literal = True
    except ValueError:
        literal = False
    outcome: dict[str, Any] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        except OSError as error:
            outcome["error"] = error

    if literal:
        lookup()
    else:
        # getaddrinfo has no time limit of its own; a dead DNS server would hold us for
        # the resolver's retries. The thread is left to finish on its own.
        worker = threading.Thread(target=lookup, name=f"ssh-dns-{address}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            raise SshError(
                label, "dns", f"cannot resolve {address}: no answer in {_seconds(limit)}"
            )
    error = outcome.get("error")
    if error is not None:
        reason = error.strerror if isinstance(error, socket.gaierror) else str(error)
        raise SshError(label, "dns", f"cannot resolve {address}: {reason or error}")
    return outcome["infos"]


def _open_socket(label: str, address: str, port: int, limit: float) -> socket.socket:
    """Return a TCP socket connected to address:port. Raise SshError (stage "dns" or "tcp")."""
    infos = _resolve(label, address, port, limit)
    deadline = time.monotonic() + limit
    failure = "no address to connect to"
    for family, kind, protocol, _, sockaddr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, protocol)
        sock.settimeout(remaining)
        try:
            sock.connect(sockaddr)
        except ConnectionRefusedError:
            failure = "connection refused"
        except TimeoutError:
            failure = f"connection timed out after {_seconds(limit)}"
        except OSError as error:
            failure = f"cannot connect: {error.strerror or error}"
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock.close()
    if time.monotonic() >= deadline and "refused" not in failure:
        failure = f"connection timed out after {_seconds(limit)}"
    raise SshError(label, "tcp", failure)


def _forward(parent: SshConnection, host: Host, limit: float) -> paramiko.Channel:
    """Return a channel from the jump host to host's SSH port. Raise SshError (stage "tcp",
    via the jump host) if the jump host cannot or will not connect."""
    destination = (host.address, host.ssh_settings.port)
    label = host_label(host)
    try:
        return parent.transport.open_channel(
            "direct-tcpip", dest_addr=destination, src_addr=("127.0.0.1", 0), timeout=limit
        )
    except ChannelException as error:
        reasons = {
            1: "forwarding is not allowed there (AllowTcpForwarding?)",
            2: f"it cannot connect to {_endpoint(*destination)} ({error.text})",
        }
        detail = reasons.get(error.code, f"channel refused: {error.text}")
    except (SSHException, EOFError, OSError) as error:
        text = str(error) or "connection lost"
        detail = f"no answer from the jump host in {_seconds(limit)}" if "Timeout" in text else text
    raise SshError(label, "tcp", detail, via=parent.label)


def _negotiation_error(
    label: str, transport: paramiko.Transport, limit: float, *, finished: bool
) -> SshError:
    """Describe why the SSH protocol exchange (banner, key exchange) failed."""
    error = transport.get_exception()
    transport.close()
    if not finished and error is None:
        return SshError(label, "tcp", f"SSH handshake timed out after {_seconds(limit)}")
    text = str(error) if error is not None else ""
    if "banner" in text:
        if isinstance(error.__context__, TimeoutError):
            return SshError(label, "tcp", f"not an SSH server (no SSH banner in {_seconds(limit)})")
        return SshError(
            label,
            "tcp",
            "connection closed before the SSH banner (not an SSH server, or sshd refused us: "
            "MaxStartups, tcp wrappers, fail2ban?)",
        )
    if "protocol version" in text:
        return SshError(label, "tcp", f"not an SSH server ({text})")
    return SshError(label, "tcp", f"SSH negotiation failed: {text or type(error).__name__}")


# --------------------------------------------------------------------------- authentication


def _load_key(path: Path, passphrase: str | None) -> paramiko.PKey:
    """Given a private key file and its passphrase, return the key. Raise ValueError with a
    reason that holds no secret."""
    password = passphrase.encode("utf-8") if passphrase is not None else None
    try:
        return paramiko.PKey.from_path(path, password=password)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except PermissionError:
        raise ValueError("not readable") from None
    except OSError as error:
        raise ValueError(error.strerror or "cannot read it") from None
    except (PasswordRequiredException, TypeError):
        # cryptography says TypeError both for "encrypted, no passphrase" and for "not
        # encrypted, passphrase given"; ssh ignores a passphrase a key does not need.
        if password is None:
            raise ValueError("encrypted; set ssh.key_passphrase") from None
        return _load_key(path, None)
    except (ValueError, SSHException):
        if password is not None:
            raise ValueError("cannot decrypt it with ssh.key_passphrase") from None
        raise ValueError("not a private key in OpenSSH or PEM format") from None
    except Exception as error:  # noqa: BLE001 - e.g. UnknownKeyType (DSA): one line, no trace
        raise ValueError(f"cannot load it ({type(error).__name__})") from None


def _authenticate(transport: paramiko.Transport, host: Host, label: str, user: str) -> str:
    """Log in as user with the host's key, the agent, its password or the default keys, as
    ssh would; return the method that worked. Raise SshError (stage "auth")."""
    settings = host.ssh_settings
    tried: list[str] = []
    accepted_by_server: list[str] = []

    def attempt(description: str, login: Callable[[], object]) -> bool:
        try:
            login()
        except BadAuthenticationType as error:
            accepted_by_server[:] = list(error.allowed_types)
            tried.append(f"{description} (not accepted)")
            return False
        except AuthenticationException as error:
            if "timeout" in str(error).lower():
                raise SshError(label, "auth", f"authentication as {user} timed out") from None
            tried.append(description)
            return False
        except (SSHException, EOFError, OSError) as error:
            raise SshError(
                label, "auth", f"connection lost while logging in as {user}: {error}"
            ) from None
        return transport.is_authenticated()

    for description, key in _keys_to_try(settings, tried):
        if attempt(description, lambda key=key: transport.auth_publickey(user, key)):
            return description
    if settings.password is not None:
        try:
            password = settings.password.reveal()
        except SecretError as error:
            tried.append(f"password ({error})")
        else:
            # fallback: servers with PasswordAuthentication off often ask the same question
            # through keyboard-interactive.
            if attempt("password", lambda: transport.auth_password(user, password)):
                return "password"
    if not tried:
        reason = "nothing to try: set ssh.key or ssh.password, or load a key into ssh-agent"
    else:
        reason = f"tried: {', '.join(tried)}"
    hint = f"; the server accepts: {', '.join(accepted_by_server)}" if accepted_by_server else ""
    raise SshError(label, "auth", f"authentication failed for user {user} ({reason}){hint}")


def _keys_to_try(settings: SshSettings, tried: list[str]) -> Iterator[tuple[str, paramiko.PKey]]:
    """Yield (description, key) in ssh's order; record keys that cannot be used in tried."""
    if settings.key is not None:
        try:
            path = _key_path(settings.key)
            passphrase = (
                settings.key_passphrase.reveal() if settings.key_passphrase is not None else None
            )
        except SecretError as error:
            tried.append(f"publickey ({error})")
            return
        try:
            yield f"publickey {path}", _load_key(path, passphrase)
        except ValueError as error:
            tried.append(f"publickey {path} ({error})")
        return
    agent = None
    try:
        agent = paramiko.Agent()
        agent_keys = agent.get_keys()
    except (SSHException, OSError):
        agent_keys = ()
    try:
        for agent_key in agent_keys:
            yield f"publickey agent {agent_key.fingerprint}", agent_key
    finally:
        if agent is not None:
            agent.close()
    if settings.password is not None:
        return
    for name in DEFAULT_KEY_FILES:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        try:
            yield f"publickey {path}", _load_key(path, None)
        except ValueError as error:
            tried.append(f"publickey {path} ({error})")


# --------------------------------------------------------------------------- process-wide pool

_default_pool: SshPool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> SshPool:
    """Return the process-wide SshPool (created on first use, closed at exit)."""
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = SshPool()
            atexit.register(_default_pool.close_all)
        return _default_pool


# --------------------------------------------------------------------------- diagnosis


@dataclass(frozen=True)
class Step:
    """One step of ``diagnose``: ``ok`` is None when it was not tried because an earlier
    step failed."""

    name: str
    ok: bool | None
    message: str


STEP_OF_STAGE = {
    "dns": "dns",
    "tcp": "tcp",
    "hostkey": "host key",
    "auth": "auth",
    "command": "command",
    "channel": "command",
}
STEP_NAMES = ("dns", "tcp", "host key", "auth", "command")


def diagnose(host: Host, pool: SshPool, timeout: float = 10) -> list[Step]:
    """Given a host, a pool and a time limit per step, try each step of an SSH login in
    order and return one Step per step: "dns", "tcp", "host key", "auth", "command".

    For a host behind jump hosts, "dns" and "tcp" concern the first hop. The connection to
    the host itself is made afresh (not taken from the pool) and closed afterwards; the jump
    hosts' connections come from the pool. Raise nothing: failures are steps.
    """
    first = host.jump_hosts[0] if host.jump_hosts else host
    via = f" (via {host_label(first)})" if host.jump_hosts else ""
    label = host_label(first)
    port = first.ssh_settings.port
    limit = _timeout_for(first, timeout)
    results: dict[str, Step] = {}

    def finish(failed: str, message: str) -> list[Step]:
        results[failed] = Step(failed, False, message)
        later = STEP_NAMES[STEP_NAMES.index(failed) + 1 :]
        for name in later:
            results[name] = Step(name, None, "not tried")
        return [results[name] for name in STEP_NAMES]

    try:
        infos = _resolve(label, first.address, port, limit)
    except SshError as error:
        return finish("dns", str(error))
    addresses = ", ".join(dict.fromkeys(info[4][0] for info in infos))
    results["dns"] = Step("dns", True, f"{first.address} is {addresses}{via}")

    started = time.monotonic()
    try:
        _open_socket(label, first.address, port, limit).close()
    except SshError as error:
        return finish("tcp", str(error))
    took = (time.monotonic() - started) * 1000
    results["tcp"] = Step(
        "tcp", True, f"{_endpoint(first.address, port)} accepts connections ({took:.0f} ms){via}"
    )

    try:
        connection = pool._open(host, tuple(host.jump_hosts), timeout)
    except SshError as error:
        return finish(STEP_OF_STAGE.get(error.stage, "auth"), str(error))
    try:
        results["host key"] = Step(
            "host key",
            True,
            f"{_describe_key(connection.host_key)} found in {connection.host_key_source}",
        )
        results["auth"] = Step(
            "auth", True, f"logged in as {connection.user} with {connection.auth_method}"
        )
        try:
            result = connection.run("uname -n", timeout)
        except SshError as error:
            return finish("command", str(error))
        output = (result.stdout.strip() or result.stderr.strip()).splitlines()
        shown = output[0] if output else "(no output)"
        if result.exit_status != 0:
            return finish("command", f"uname -n exited with {result.exit_status}: {shown}")
        results["command"] = Step("command", True, f"uname -n: {shown}")
        return [results[name] for name in STEP_NAMES]
    finally:
        connection.close()
