"""What the agent measures: samples and host facts, read with psutil.

Samples are dicts exactly as the server's ``Sample`` wire format defines them (``name``,
``labels``, ``value``, ``at``); counters that only grow end in ``_total``. Facts are
``host`` (the fields of ``opsctl.sources.HostFacts``) and ``mounts`` (of ``MountUsage``),
filled the way the server's local source fills them, so that the server judges a pushed host
with the same functions as a local or SSH one. Nothing here imports opsctl.

Samples (labels in braces):

- ``cpu_percent`` (all CPUs, since the previous collection), ``load1``, ``load5``,
  ``load15``, ``uptime_seconds``
- ``memory_total_bytes``, ``memory_available_bytes``, ``memory_used_percent``,
  ``swap_total_bytes``, ``swap_used_bytes``
- per real filesystem ``{mount}``: ``fs_total_bytes``, ``fs_used_bytes``, ``fs_free_bytes``,
  ``fs_used_percent`` (as df: used / (used + free)), ``fs_inodes_total``,
  ``fs_inodes_used``, ``fs_inodes_used_percent``
- per physical disk ``{device}``: ``disk_read_bytes_total``, ``disk_write_bytes_total``,
  ``disk_reads_total``, ``disk_writes_total``
- per network interface except lo ``{interface}``: ``net_{rx,tx}_bytes_total``,
  ``net_{rx,tx}_packets_total``, ``net_{rx,tx}_errors_total``, ``net_{rx,tx}_drops_total``
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

#: What one push may carry (the server's limits).
MAX_SAMPLES = 5000
MAX_MOUNTS = 500
MAX_LABELS = 16
MAX_LABEL_VALUE = 200

#: Filesystems that hold no data of their own, or are read-only images (always 100% used):
#: no samples. Patterns as fnmatch.
PSEUDO_FSTYPES: tuple[str, ...] = (
    "autofs", "binfmt_misc", "bpf", "cgroup*", "configfs", "debugfs", "devpts", "devtmpfs",
    "efivarfs", "erofs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal", "fuse.snapfuse",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nfsd", "nsfs", "overlay", "proc", "pstore",
    "ramfs", "rootfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs",
    "tracefs", "udf",
)  # fmt: skip

#: Mount points container runtimes make for each container (each shows the host's disk
#: again): left out of the facts and the samples.
CONTAINER_MOUNTS: tuple[str, ...] = (
    "/var/lib/docker/*", "/var/lib/containers/*", "/run/containerd/*", "/run/docker/*",
    "/run/k3s/*", "/var/lib/kubelet/pods/*", "/run/netns/*", "/run/user/*/netns/*",
)  # fmt: skip

#: Network filesystems, measured in a helper thread with a time limit: statvfs on a hard
#: NFS mount whose server is gone blocks for ever.
NETWORK_FSTYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "davfs", "afs"}
)

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
RELEASE_FILE_PATHS = ("/etc/redhat-release", "/etc/system-release")
#: Seconds the OS name and CPU model are kept before being read again.
STATIC_FACTS_TTL = 3600.0

_OS_RELEASE_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# ARM servers (Kunpeng, Phytium) name no model in /proc/cpuinfo, only numbers.
_ARM_IMPLEMENTERS: dict[int, tuple[str, dict[int, str]]] = {
    0x41: ("ARM", {0xD08: "Cortex-A72", 0xD0C: "Neoverse-N1", 0xD40: "Neoverse-V1"}),
    0x48: ("HiSilicon", {0xD01: "Kunpeng-920"}),
    0x70: ("Phytium", {0x660: "FTC660", 0x661: "FTC661", 0x662: "FTC662", 0x663: "FTC663"}),
}


@dataclass(slots=True)
class Collection:
    """One collection: samples, host facts (``{"host": ..., "mounts": [...]}``) and what
    had to be left out to stay within the server's limits (``notes``, for the log)."""

    samples: list[dict[str, Any]]
    facts: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def parse_os_release(text: str) -> dict[str, str]:
    """Given the text of an os-release file, return its variables with quotes removed
    (os-release(5); malformed lines are skipped)."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        match = _OS_RELEASE_LINE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\([\\"$`])', r"\1", value)
        values[key] = value
    return values


def parse_cpu_model(text: str) -> str:
    """Given the text of ``/proc/cpuinfo``, return the first processor's model (``model
    name`` on x86 and LoongArch, ``HiSilicon Kunpeng-920`` from ARM numbers), or ""."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key not in fields:
            fields[key] = value.strip()
    for key in ("model name", "cpu model", "hardware"):
        if fields.get(key):
            return fields[key]
    implementer, part = fields.get("cpu implementer"), fields.get("cpu part")
    if implementer and part:
        try:
            implementer_id, part_id = int(implementer, 16), int(part, 16)
        except ValueError:
            return f"ARM implementer {implementer} part {part}"
        vendor, parts = _ARM_IMPLEMENTERS.get(implementer_id, (f"implementer {implementer}", {}))
        return f"{vendor} {parts.get(part_id, f'part {part}')}"
    return ""


def os_identity(
    os_release_paths: Iterable[str] = OS_RELEASE_PATHS,
    release_file_paths: Iterable[str] = RELEASE_FILE_PATHS,
) -> tuple[str, str, str]:
    """Return (name, version, pretty name) of the running OS, from os-release, else from
    ``/etc/redhat-release`` (CentOS 6), else from uname."""
    for path in os_release_paths:
        text = _read_text(path)
        if text is not None:
            values = parse_os_release(text)
            name = values.get("NAME", os.uname().sysname)
            version = values.get("VERSION_ID", "")
            pretty = values.get("PRETTY_NAME") or f"{name} {version}".strip()
            return name, version, pretty
    for path in release_file_paths:
        text = _read_text(path)
        if text and text.strip():
            line = text.strip().splitlines()[0]
            name, _, version = line.partition(" release ")
            return name.strip(), version.split()[0] if version else "", line
    uname = os.uname()
    return uname.sysname, uname.release, f"{uname.sysname} {uname.release}"


def is_pseudo(fstype: str, mount: str) -> bool:
    """Return True if a filesystem of this type at this mount point gets no samples."""
    return any(fnmatchcase(fstype, pattern) for pattern in PSEUDO_FSTYPES) or is_container_mount(
        mount
    )


def is_container_mount(mount: str) -> bool:
    """Return True if the mount point is a container runtime's own (one per container)."""
    return any(fnmatchcase(mount, pattern) for pattern in CONTAINER_MOUNTS)


def physical_disks(names: Iterable[str], sys_block: str | Path = "/sys/block") -> set[str]:
    """Given block device names (as psutil's disk counters list them: disks and their
    partitions), return those that are physical disks: listed in ``sys_block`` with a
    ``device`` link (not partitions, loop, ram, zram, device-mapper or md devices).

    If ``sys_block`` does not exist (not Linux), return every name.
    """
    root = Path(sys_block)
    if not root.is_dir():
        return set(names)
    return {name for name in names if (root / name / "device").exists()}


def choose_mounts(partitions: Iterable[Any], limit: int = MAX_MOUNTS) -> tuple[dict[str, Any], str]:
    """Given psutil's partitions (``mountpoint``, ``device``, ``fstype``), return those to
    measure by mount point, and a note for the log if some had to be left out.

    Container runtimes' mounts are left out; a mount point listed twice is the last mount
    (the one visible there). Beyond ``limit`` (what a push may carry), pseudo filesystems
    are left out first.
    """
    chosen: dict[str, Any] = {}
    for partition in partitions:
        if not is_container_mount(partition.mountpoint):
            chosen[partition.mountpoint] = partition
    if len(chosen) <= limit:
        return chosen, ""
    real = [m for m, p in chosen.items() if not is_pseudo(p.fstype, m)]
    pseudo = [m for m, p in chosen.items() if is_pseudo(p.fstype, m)]
    keep = set((real + pseudo)[:limit])
    note = (
        f"{len(chosen)} mounts, more than a push may carry: left out "
        f"{len(chosen) - limit} (pseudo filesystems first)"
    )
    return {m: p for m, p in chosen.items() if m in keep}, note


def sample(name: str, value: float, at: str, **labels: str) -> dict[str, Any]:
    """Return one sample as the wire format has it (label values cut to 200 characters)."""
    return {
        "name": name,
        "labels": {key: str(text)[:MAX_LABEL_VALUE] for key, text in labels.items()},
        "value": float(value),
        "at": at,
    }


class Collector:
    """Collects samples and facts. Create it once: CPU use is measured between one
    collection and the next (the first one measures from the collector's creation).

    ``clock`` gives the wall time in seconds (time.time), ``sys_block`` is where physical
    disks are told from partitions, ``network_timeout`` limits a network share's statvfs.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        sys_block: str | Path = "/sys/block",
        network_timeout: float = 5.0,
    ) -> None:
        import psutil

        self._psutil = psutil
        self.clock = clock
        self.sys_block = sys_block
        self.network_timeout = network_timeout
        self._static: tuple[float, tuple[str, str, str], str] | None = None
        # statvfs helpers still blocked in a dead share, by mount point: not started again.
        self._stuck: dict[str, threading.Thread] = {}
        psutil.cpu_percent(None)
        self._cpu_since = time.monotonic()

    def collect(self) -> Collection:
        """Return one collection, stamped with the clock's time now.

        Never raises for one unreadable item: a mount that cannot be measured is a mount
        with ``error`` set, a failing counter group is left out and named in ``notes``.
        """
        psutil = self._psutil
        # psutil measures CPU use between calls; right after creation there is too little
        # to measure, so the first collection waits a moment (as the local source does).
        waited = time.monotonic() - self._cpu_since
        if waited < 0.2:
            time.sleep(0.2 - waited)
        cpu_percent = float(psutil.cpu_percent(None))
        self._cpu_since = time.monotonic()
        now = self.clock()
        at = datetime.fromtimestamp(now, UTC).isoformat()
        notes: list[str] = []
        samples: list[dict[str, Any]] = []
        add = samples.append

        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        load1, load5, load15 = (float(value) for value in psutil.getloadavg())
        boot = psutil.boot_time()
        uptime = max(0.0, now - boot)
        add(sample("cpu_percent", cpu_percent, at))
        add(sample("load1", load1, at))
        add(sample("load5", load5, at))
        add(sample("load15", load15, at))
        add(sample("uptime_seconds", uptime, at))
        add(sample("memory_total_bytes", memory.total, at))
        add(sample("memory_available_bytes", memory.available, at))
        add(sample("memory_used_percent", memory.percent, at))
        add(sample("swap_total_bytes", swap.total, at))
        add(sample("swap_used_bytes", swap.used, at))

        mounts = self._mounts(notes)
        samples.extend(self._fs_samples(mounts, at))
        samples.extend(self._disk_samples(at, notes))
        samples.extend(self._net_samples(at, notes))
        samples = [s for s in samples if math.isfinite(s["value"])]
        if len(samples) > MAX_SAMPLES:
            notes.append(
                f"{len(samples)} samples, more than a push may carry: kept the first {MAX_SAMPLES}"
            )
            del samples[MAX_SAMPLES:]

        (os_name, os_version, os_pretty), cpu_model = self._static_facts()
        uname = os.uname()
        host = {
            "hostname": socket.gethostname(),
            "os_name": os_name,
            "os_version": os_version,
            "os_pretty_name": os_pretty,
            "kernel": uname.release,
            "architecture": uname.machine,
            "cpu_count": psutil.cpu_count(logical=True) or 1,
            "cpu_model": cpu_model,
            "memory_total": int(memory.total),
            "memory_available": int(memory.available),
            "swap_total": int(swap.total),
            "swap_used": int(swap.used),
            "uptime_seconds": uptime,
            "boot_time": datetime.fromtimestamp(boot, UTC).isoformat(),
            "load1": load1,
            "load5": load5,
            "load15": load15,
            "cpu_percent": cpu_percent,
        }
        return Collection(samples, {"host": host, "mounts": mounts}, notes)

    def _static_facts(self) -> tuple[tuple[str, str, str], str]:
        now = time.monotonic()
        if self._static is None or now - self._static[0] > STATIC_FACTS_TTL:
            cpuinfo = _read_text("/proc/cpuinfo")
            self._static = (now, os_identity(), parse_cpu_model(cpuinfo) if cpuinfo else "")
        return self._static[1], self._static[2]

    def _mounts(self, notes: list[str]) -> list[dict[str, Any]]:
        """Every mounted filesystem but the container runtimes' own, as MountUsage dicts
        (pseudo filesystems included, as the local source gives them; checks filter)."""
        partitions, note = choose_mounts(self._psutil.disk_partitions(all=True))
        if note:
            notes.append(note)
        mounts = []
        for mountpoint, partition in partitions.items():
            base = {"mount": mountpoint, "device": partition.device, "fstype": partition.fstype}
            try:
                usage = self._usage(mountpoint, partition.fstype in NETWORK_FSTYPES)
            except TimeoutError as error:
                mounts.append({**base, **_NO_USAGE, "error": f"not responding: {error}"})
                continue
            except PermissionError:
                continue  # another user's private mount: its owner's checks cover it
            except OSError as error:
                reason = f"not accessible: {error.strerror or error}"
                mounts.append({**base, **_NO_USAGE, "error": reason})
                continue
            mounts.append({**base, **usage, "error": None})
        return mounts

    def _usage(self, mountpoint: str, network: bool) -> dict[str, int | None]:
        stat = self._statvfs(mountpoint) if network else os.statvfs(mountpoint)
        has_inodes = stat.f_files > 0
        return {
            "total_bytes": stat.f_blocks * stat.f_frsize,
            "used_bytes": (stat.f_blocks - stat.f_bfree) * stat.f_frsize,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "inodes_total": stat.f_files if has_inodes else None,
            "inodes_used": stat.f_files - stat.f_ffree if has_inodes else None,
        }

    def _statvfs(self, path: str) -> os.statvfs_result:
        stuck = self._stuck.get(path)
        if stuck is not None:
            if stuck.is_alive():
                raise TimeoutError("still no answer to an earlier request")
            del self._stuck[path]
        outcome: list[os.statvfs_result | OSError] = []

        def measure() -> None:
            try:
                outcome.append(os.statvfs(path))
            except OSError as error:
                outcome.append(error)

        worker = threading.Thread(target=measure, name=f"statvfs {path}", daemon=True)
        worker.start()
        worker.join(self.network_timeout)
        if not outcome:
            self._stuck[path] = worker
            raise TimeoutError(f"no answer within {self.network_timeout:g}s")
        if isinstance(outcome[0], OSError):
            raise outcome[0]
        return outcome[0]

    @staticmethod
    def _fs_samples(mounts: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
        """Samples of the real filesystems; a filesystem mounted at several places (bind
        mounts) is measured once, at its shortest mount point."""
        chosen: dict[tuple[str, str], dict[str, Any]] = {}
        for mount in mounts:
            if mount["error"] or not mount["total_bytes"]:
                continue
            if is_pseudo(mount["fstype"], mount["mount"]):
                continue
            device = mount["device"]
            key = (device, mount["fstype"]) if device not in ("", "none") else (mount["mount"], "")
            kept = chosen.get(key)
            if kept is None or len(mount["mount"]) < len(kept["mount"]):
                chosen[key] = mount
        samples = []
        for mount in sorted(chosen.values(), key=lambda m: m["mount"]):
            where = mount["mount"]
            used, free = mount["used_bytes"], mount["free_bytes"]
            samples.append(sample("fs_total_bytes", mount["total_bytes"], at, mount=where))
            samples.append(sample("fs_used_bytes", used, at, mount=where))
            samples.append(sample("fs_free_bytes", free, at, mount=where))
            percent = 100.0 * used / (used + free) if used + free else 0.0
            samples.append(sample("fs_used_percent", percent, at, mount=where))
            if mount["inodes_total"]:
                inodes_total, inodes_used = mount["inodes_total"], mount["inodes_used"]
                samples.append(sample("fs_inodes_total", inodes_total, at, mount=where))
                samples.append(sample("fs_inodes_used", inodes_used, at, mount=where))
                inode_percent = 100.0 * inodes_used / inodes_total
                samples.append(sample("fs_inodes_used_percent", inode_percent, at, mount=where))
        return samples

    def _disk_samples(self, at: str, notes: list[str]) -> list[dict[str, Any]]:
        try:
            counters = self._psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
        except (OSError, RuntimeError) as error:
            notes.append(f"disk counters not readable: {error}")
            return []
        samples = []
        for device in sorted(physical_disks(counters, self.sys_block)):
            c = counters[device]
            samples.append(sample("disk_read_bytes_total", c.read_bytes, at, device=device))
            samples.append(sample("disk_write_bytes_total", c.write_bytes, at, device=device))
            samples.append(sample("disk_reads_total", c.read_count, at, device=device))
            samples.append(sample("disk_writes_total", c.write_count, at, device=device))
        return samples

    def _net_samples(self, at: str, notes: list[str]) -> list[dict[str, Any]]:
        try:
            counters = self._psutil.net_io_counters(pernic=True, nowrap=True) or {}
        except (OSError, RuntimeError) as error:
            notes.append(f"network counters not readable: {error}")
            return []
        samples = []
        for interface in sorted(counters):
            if interface == "lo":
                continue
            c = counters[interface]
            for name, value in (
                ("net_rx_bytes_total", c.bytes_recv),
                ("net_tx_bytes_total", c.bytes_sent),
                ("net_rx_packets_total", c.packets_recv),
                ("net_tx_packets_total", c.packets_sent),
                ("net_rx_errors_total", c.errin),
                ("net_tx_errors_total", c.errout),
                ("net_rx_drops_total", c.dropin),
                ("net_tx_drops_total", c.dropout),
            ):
                samples.append(sample(name, value, at, interface=interface))
        return samples


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


_NO_USAGE: dict[str, int | None] = {
    "total_bytes": 0,
    "used_bytes": 0,
    "free_bytes": 0,
    "inodes_total": None,
    "inodes_used": None,
}
