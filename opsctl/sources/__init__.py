"""What a host check observes, and where it gets it from.

The host, filesystem and process checks never talk to psutil, ``/proc`` or SSH
themselves. They ask a ``HostSource`` for ``HostFacts``, ``MountUsage`` and
``ProcessInfo`` records and judge those with pure functions, so that:

- the same check code runs on the local host (``opsctl.sources.local``, psutil) and on a
  remote host over SSH (``opsctl.sources.remote`` parses ``/proc/*``, ``df -P`` and ``ps``
  text into the same records);
- an agent can push these records as JSON (``to_dict``/``from_dict``) and the server
  can judge them with the same functions;
- tests feed recorded records from ``tests/fixtures/`` instead of the live host.

Importing this module is cheap: psutil is only imported when a local source observes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from opsctl.contract import CheckError


@dataclass(frozen=True, slots=True)
class HostFacts:
    """The configuration and the load of one host at one moment.

    Sizes are bytes; ``boot_time`` is timezone-aware UTC; ``uptime_seconds`` is measured at
    the moment of observation (so that judging recorded facts does not depend on the
    clock). ``cpu_percent`` is None when the source did not measure it.
    """

    hostname: str
    os_name: str
    os_version: str
    os_pretty_name: str
    kernel: str
    architecture: str
    cpu_count: int
    cpu_model: str
    memory_total: int
    memory_available: int
    swap_total: int
    swap_used: int
    uptime_seconds: float
    boot_time: datetime
    load1: float
    load5: float
    load15: float
    cpu_percent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of these facts (``boot_time`` as ISO 8601)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        """Given a dict as written by ``to_dict``, return the facts.

        Raise ValueError if a field is missing or unknown, or ``boot_time`` is not an aware
        ISO 8601 time.
        """
        return _from_dict(cls, data)


@dataclass(frozen=True, slots=True)
class MountUsage:
    """The usage of one mounted filesystem, as ``df -P -k`` and ``df -P -i`` report it.

    ``used_bytes`` is the size minus all free blocks; ``free_bytes`` is what an unprivileged
    user may still write (it excludes the blocks reserved for root, like df's "Available").
    ``inodes_total``/``inodes_used`` are None when the filesystem has no fixed inode table
    (vfat, btrfs report 0). ``error`` is set, and the sizes are 0, when the mount could not
    be measured (a network share that does not answer, a mount point we may not read).
    """

    mount: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    inodes_total: int | None = None
    inodes_used: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this mount."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MountUsage:
        """Given a dict as written by ``to_dict``, return the mount.

        Raise ValueError if a field is missing or unknown.
        """
        return _from_dict(cls, data)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process. ``status`` uses psutil's words (``running``, ``sleeping``, ``zombie``;
    see ``PS_STATES`` for the ``ps`` letters). ``cpu_percent`` is the share of one CPU over
    the observation interval (a process busy on 3 CPUs shows 300), None when not measured;
    ``username`` and ``rss_bytes`` are None when the source may not read them.
    """

    pid: int
    ppid: int
    name: str
    cmdline: str
    username: str | None
    status: str
    rss_bytes: int | None
    cpu_percent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this process."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessInfo:
        """Given a dict as written by ``to_dict``, return the process.

        Raise ValueError if a field is missing or unknown.
        """
        return _from_dict(cls, data)


#: The state letters of ``ps -o stat`` (first letter) and their psutil status words, so that
#: a source parsing ``ps`` text and a check configured with ``state: Z`` agree with psutil.
PS_STATES: dict[str, str] = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": "zombie",
    "X": "dead",
    "I": "idle",
    "W": "waking",
    "K": "wake-kill",
    "P": "parked",
}


class HostSource(Protocol):
    """Where a host check gets its observations from: the local host or a remote one."""

    def facts(self) -> HostFacts:
        """Return the host's configuration and load now. Raise CheckError if unobservable."""
        ...

    def mounts(self) -> list[MountUsage]:
        """Return every mounted filesystem, pseudo filesystems included (checks filter)."""
        ...

    def processes(self) -> list[ProcessInfo]:
        """Return every process the source may see."""
        ...

    def own_pids(self) -> frozenset[int]:
        """Return the pids of opsctl's own work on that host (our process and its parent
        locally; the remote shell over SSH), which a process count must leave out.
        """
        ...


def source_for(target: Any, timeout: float = 30.0, store: Any = None) -> HostSource:
    """Given a host target (an inventory model with ``name``, ``address``, ``transport``),
    the time budget of one observation in seconds and the open store (if any), return the
    source that observes it: psutil for ``local``, commands over SSH for ``ssh`` (one pooled
    connection per host), the facts its agent last pushed for ``agent``.

    Raise CheckError if an agent host is judged without a store or the transport is unknown.
    """
    name = getattr(target, "name", None) or getattr(target, "address", None) or "host"
    transport = getattr(target, "transport", "local") or "local"
    if transport == "local":
        from opsctl.sources.local import LocalSource

        return LocalSource()
    if transport == "ssh":
        from opsctl.sources.remote import RemoteSource
        from opsctl.ssh import default_pool

        pool = default_pool()

        def run_over_ssh(command: str, seconds: float) -> Any:
            return pool.connection(target, seconds).run(command, seconds)

        return RemoteSource(run_over_ssh, name=name, timeout=timeout)
    if transport == "agent":
        if store is None:
            raise CheckError(
                f"{name} reports through opsctl-agent: its checks are judged from what it "
                "pushed to the store, and this run has no store"
            )
        from opsctl.sources.pushed import PushedSource

        return PushedSource(store, name)
    raise CheckError(f"{name}: unknown transport {transport!r} (expected local, ssh or agent)")


def format_bytes(size: float) -> str:
    """Given a size in bytes, return it as a person reads it: ``512 B``, ``7.8 GB``, ``170 GB``.

    Units are powers of 1024, named as the threshold units of ``opsctl.contract`` are
    (``GB`` is 1024³ bytes there too), so a value and its threshold read alike.
    """
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            if unit == "B":
                return f"{value:.0f} B"
            return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_Record = TypeVar("_Record", HostFacts, MountUsage, ProcessInfo)


def _to_dict(record: Any) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def _from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {', '.join(unknown)}")
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{cls.__name__}: missing fields {', '.join(missing)}")
    values = dict(data)
    for name, value in values.items():
        if fields[name].type in ("datetime", datetime) and isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            # A naive time from a pushed record would be read in the server's zone and
            # shift every uptime by hours; refuse it instead of guessing.
            if parsed.tzinfo is None:
                raise ValueError(f"{cls.__name__}.{name}: {value!r} has no time zone")
            values[name] = parsed
    return cls(**values)
