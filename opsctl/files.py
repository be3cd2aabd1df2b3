"""Read access to files on this machine or on a host reached over SSH, behind one protocol.

The log and backup checks need four things of the files they inspect: which files a glob
matches, a file's size, time and identity, a few bytes of it, and a stream from an offset.
``files_for(host, timeout)`` returns ``LocalFiles`` for the local machine and ``SshFiles``
(SFTP over the pooled SSH connection of ``opsctl.ssh``) for an SSH host; the checks never
know which one they hold.

Over SFTP there is no inode (the protocol does not carry it), so ``FileInfo.inode`` is None
there; readers tell files apart by their first line instead.
"""

from __future__ import annotations

import glob as globbing
import io
import os
import posixpath
import stat as stat_module
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, BinaryIO, Protocol

from opsctl.contract import CheckError

if TYPE_CHECKING:
    from opsctl.inventory import Host
    from opsctl.ssh import SshConnection

#: Bytes asked for in one SFTP read of a stream: large enough that a log is read in few
#: round trips, small enough that one read stays well inside an SFTP time limit.
SFTP_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileInfo:
    """One regular file: its path, size in bytes, modification time (aware UTC) and inode
    (None where the transport does not tell it, as over SFTP)."""

    path: str
    size: int
    mtime: datetime
    inode: int | None = None


class Files(Protocol):
    """Read-only access to the files of one machine."""

    def glob(self, pattern: str) -> list[FileInfo]:
        """Given a glob (``*``, ``?``, ``[...]`` in any path part), return the regular files it
        matches, oldest modification time first (then by path); [] if none."""
        ...

    def stat(self, path: str) -> FileInfo:
        """Given a path, return its FileInfo. Raise FileNotFoundError if it is missing."""
        ...

    def read(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Given a path, return up to ``limit`` bytes (all if None) from ``offset`` on."""
        ...

    def open(self, path: str, offset: int = 0) -> BinaryIO:
        """Given a path, return a binary stream positioned at ``offset``; the caller closes it."""
        ...


def _sorted(found: list[FileInfo]) -> list[FileInfo]:
    return sorted(found, key=lambda info: (info.mtime, info.path))


class LocalFiles:
    """The files of this machine."""

    def glob(self, pattern: str) -> list[FileInfo]:
        found = []
        for path in globbing.glob(os.path.expanduser(pattern)):
            try:
                result = os.stat(path)
            except OSError:
                continue  # removed (rotated away) between the listing and the stat
            if stat_module.S_ISREG(result.st_mode):
                found.append(_local_info(path, result))
        return _sorted(found)

    def stat(self, path: str) -> FileInfo:
        return _local_info(path, os.stat(path))

    def read(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read() if limit is None else file.read(limit)

    def open(self, path: str, offset: int = 0) -> BinaryIO:
        file = open(path, "rb")  # noqa: SIM115 - the caller closes it
        try:
            file.seek(offset)
        except BaseException:
            file.close()
            raise
        return file


def _local_info(path: str, result: os.stat_result) -> FileInfo:
    return FileInfo(
        path=path,
        size=result.st_size,
        mtime=datetime.fromtimestamp(result.st_mtime, UTC),
        inode=result.st_ino,
    )


class SshFiles:
    """The files of a host reached over SSH, through SFTP on the pooled connection.

    ``timeout`` (seconds) limits each SFTP operation and the connect. A relative path is
    relative to the login's home directory, as with ``sftp``.
    """

    def __init__(self, host: Host, timeout: float) -> None:
        self.host = host
        self.timeout = timeout

    def _connection(self) -> SshConnection:
        from opsctl.ssh import default_pool

        return default_pool().connection(self.host, self.timeout)

    def glob(self, pattern: str) -> list[FileInfo]:
        connection = self._connection()
        if pattern.startswith("~/"):
            pattern = pattern[2:]  # SFTP paths are relative to the home directory already
        absolute = pattern.startswith("/")
        parts = [part for part in pattern.split("/") if part not in ("", ".")]
        if not parts:
            return []
        directories = ["/" if absolute else "."]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following: list[str] = []
            for directory in directories:
                if not _has_magic(part):
                    following.append(posixpath.join(directory, part))
                    continue
                try:
                    entries = connection.listdir(directory, timeout=self.timeout)
                except OSError:
                    continue  # missing or unreadable: it holds no matches
                for entry in entries:
                    name = posixpath.basename(entry.path)
                    if name.startswith(".") and not part.startswith("."):
                        continue  # as shell globs do
                    if fnmatchcase(name, part) and (last or entry.is_dir):
                        following.append(entry.path)
            directories = following
        found = []
        for path in directories:
            try:
                remote = connection.stat(path, timeout=self.timeout)
            except OSError:
                continue
            if not remote.is_dir:
                found.append(FileInfo(_display(path, absolute), remote.size, remote.mtime))
        return _sorted(found)

    def stat(self, path: str) -> FileInfo:
        remote = self._connection().stat(path, timeout=self.timeout)
        return FileInfo(path, remote.size, remote.mtime)

    def read(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        return self._connection().read(path, offset, limit, timeout=self.timeout)

    def open(self, path: str, offset: int = 0) -> BinaryIO:
        raw = _SftpStream(self, path, offset)
        return io.BufferedReader(raw, buffer_size=SFTP_CHUNK)  # type: ignore[return-value]


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*?[")


def _display(path: str, absolute: bool) -> str:
    # listdir on "." gives "./name"; show the path as it was written.
    if not absolute and path.startswith("./"):
        return path[2:]
    return path


class _SftpStream(io.RawIOBase):
    """A remote file read in chunks with ``SshConnection.read``, each under the connection's
    SFTP lock, so that a stream never holds the shared SFTP session between reads."""

    def __init__(self, files: SshFiles, path: str, offset: int) -> None:
        self._files = files
        self._path = path
        self._position = offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), SFTP_CHUNK)
        data = self._files.read(self._path, self._position, wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position


def files_for(host: Host | None, timeout: float) -> Files:
    """Given the host the files are on (None: this machine) and a time limit in seconds for
    each remote operation, return its Files.

    Raise CheckError if the host is reached by other means than local or ssh (``agent``).
    """
    if host is None or host.transport == "local":
        return LocalFiles()
    if host.transport == "ssh":
        return SshFiles(host, timeout)
    raise CheckError(
        f"{host.name} is reached through opsctl-agent; its files cannot be read from here"
    )


__all__ = ["FileInfo", "Files", "LocalFiles", "SshFiles", "files_for"]
