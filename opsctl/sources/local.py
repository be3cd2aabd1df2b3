"""The local host, observed with psutil, ``platform`` and ``/etc/os-release``.

psutil is imported inside the methods: the CLI imports check modules to list them, and
must start without paying for psutil. The text parsers (``parse_os_release``,
``parse_cpu_model``) are pure so that tests feed them recorded files and an SSH source can
parse the same files read remotely.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from opsctl.contract import CheckError
from opsctl.sources import HostFacts, MountUsage, ProcessInfo

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
# Hosts too old for os-release (CentOS 6, still found in hospitals) have only these.
RELEASE_FILE_PATHS = ("/etc/redhat-release", "/etc/system-release")

# statvfs on a network share whose server is gone blocks (NFS "hard" mounts block for
# ever, in an uninterruptible sleep). These types are measured in a helper thread with a
# time limit, so one dead share makes one row CRITICAL instead of hanging the check.
NETWORK_FSTYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "davfs", "afs"}
)

_OS_RELEASE_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

# ARM servers (Kunpeng, Phytium: common under Kylin and UOS) have no "model name" in
# /proc/cpuinfo, only implementer and part numbers; names as util-linux lscpu gives them.
_ARM_IMPLEMENTERS: dict[int, tuple[str, dict[int, str]]] = {
    0x41: ("ARM", {0xD08: "Cortex-A72", 0xD0C: "Neoverse-N1", 0xD40: "Neoverse-V1"}),
    0x48: ("HiSilicon", {0xD01: "Kunpeng-920"}),
    0x70: ("Phytium", {0x660: "FTC660", 0x661: "FTC661", 0x662: "FTC662", 0x663: "FTC663"}),
}


def parse_os_release(text: str) -> dict[str, str]:
    """Given the text of an os-release file, return its variables (``NAME``, ``VERSION_ID``,
    ``PRETTY_NAME`` ...) with quotes removed.

    Follows os-release(5): one ``KEY=value`` per line, values optionally in single or double
    quotes with backslash escapes, ``#`` comments and blank lines ignored. Malformed lines
    are skipped rather than refused: a vendor's odd file must not stop an inspection.
    """
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
    """Given the text of ``/proc/cpuinfo``, return the CPU model of the first processor.

    x86 and LoongArch name it (``model name``); ARM gives implementer and part numbers,
    turned into ``HiSilicon Kunpeng-920``. Return "" if the text names no model.
    """
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


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _os_identity() -> tuple[str, str, str]:
    """Return (name, version, pretty name) of the running operating system."""
    for path in OS_RELEASE_PATHS:
        text = _read_text(path)
        if text is not None:
            values = parse_os_release(text)
            name = values.get("NAME", platform.system())
            version = values.get("VERSION_ID", "")
            pretty = values.get("PRETTY_NAME") or f"{name} {version}".strip()
            return name, version, pretty
    for path in RELEASE_FILE_PATHS:
        text = _read_text(path)
        if text and text.strip():
            line = text.strip().splitlines()[0]
            name, _, version = line.partition(" release ")
            return name.strip(), version.split()[0] if version else "", line
    system, release = platform.system(), platform.release()
    if system == "Windows":
        return "Windows", platform.version(), f"Windows {release}"
    if system == "Darwin":
        return "macOS", platform.mac_ver()[0], f"macOS {platform.mac_ver()[0]}"
    return system, release, f"{system} {release}"


def _statvfs(path: str, timeout: float | None) -> os.statvfs_result:
    """Return os.statvfs(path), giving up after ``timeout`` seconds if one is given.

    Raise OSError if the call fails, TimeoutError if it does not return in time.
    """
    if timeout is None:
        return os.statvfs(path)
    outcome: list[os.statvfs_result | OSError] = []

    def measure() -> None:
        try:
            outcome.append(os.statvfs(path))
        except OSError as error:
            outcome.append(error)

    # A daemon thread: if the share never answers, the thread is left behind blocked in
    # the kernel, and must not keep the process from exiting.
    worker = threading.Thread(target=measure, name=f"statvfs {path}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout:g}s")
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result


class LocalSource:
    """The host opsctl runs on.

    ``cpu_interval`` is how long CPU use is sampled (seconds; 0 skips the measurement and
    reports None). ``network_timeout`` limits how long a network share may take to answer.
    """

    def __init__(self, cpu_interval: float = 0.2, network_timeout: float = 5.0) -> None:
        self.cpu_interval = cpu_interval
        self.network_timeout = network_timeout

    def facts(self) -> HostFacts:
        """Return the local host's configuration and load now."""
        import psutil

        name, version, pretty = _os_identity()
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        boot_timestamp = psutil.boot_time()
        load1, load5, load15 = psutil.getloadavg()
        cpu_percent = (
            psutil.cpu_percent(interval=self.cpu_interval) if self.cpu_interval > 0 else None
        )
        cpuinfo = _read_text("/proc/cpuinfo")
        cpu_model = (parse_cpu_model(cpuinfo) if cpuinfo else "") or platform.processor()
        return HostFacts(
            hostname=socket.gethostname(),
            os_name=name,
            os_version=version,
            os_pretty_name=pretty,
            kernel=platform.release(),
            architecture=platform.machine(),
            cpu_count=psutil.cpu_count(logical=True) or 1,
            cpu_model=cpu_model,
            memory_total=int(memory.total),
            memory_available=int(memory.available),
            swap_total=int(swap.total),
            swap_used=int(swap.used),
            uptime_seconds=max(0.0, time.time() - boot_timestamp),
            boot_time=datetime.fromtimestamp(boot_timestamp, UTC),
            load1=float(load1),
            load5=float(load5),
            load15=float(load15),
            cpu_percent=None if cpu_percent is None else float(cpu_percent),
        )

    def mounts(self) -> list[MountUsage]:
        """Return every mounted filesystem with its usage, pseudo filesystems included.

        A mount point listed twice (a filesystem mounted over another) is reported once,
        as the last mount, which is the one visible at that path.
        """
        import psutil

        partitions = {}
        for partition in psutil.disk_partitions(all=True):
            partitions[partition.mountpoint] = partition
        mounts = []
        for mountpoint, partition in partitions.items():
            timeout = self.network_timeout if partition.fstype in NETWORK_FSTYPES else None
            base = {"mount": mountpoint, "device": partition.device, "fstype": partition.fstype}
            try:
                mounts.append(MountUsage(**base, **self._usage(mountpoint, timeout)))
            except TimeoutError as error:
                mounts.append(MountUsage(**base, **_NO_USAGE, error=f"not responding: {error}"))
            except PermissionError:
                # A mount point below a directory we may not enter (another user's FUSE
                # mount, a container's private tree): its owner's checks cover it.
                continue
            except OSError as error:
                mounts.append(
                    MountUsage(
                        **base, **_NO_USAGE, error=f"not accessible: {error.strerror or error}"
                    )
                )
        return mounts

    @staticmethod
    def _usage(mountpoint: str, timeout: float | None) -> dict[str, int | None]:
        if not hasattr(os, "statvfs"):  # Windows: psutil knows sizes, not inodes
            import psutil

            usage = psutil.disk_usage(mountpoint)
            return {
                "total_bytes": int(usage.total),
                "used_bytes": int(usage.used),
                "free_bytes": int(usage.free),
                "inodes_total": None,
                "inodes_used": None,
            }
        stat = _statvfs(mountpoint, timeout)
        # The same arithmetic as df: used counts blocks reserved for root as free, and
        # "free" is what an unprivileged user may still write.
        has_inodes = stat.f_files > 0
        return {
            "total_bytes": stat.f_blocks * stat.f_frsize,
            "used_bytes": (stat.f_blocks - stat.f_bfree) * stat.f_frsize,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "inodes_total": stat.f_files if has_inodes else None,
            "inodes_used": stat.f_files - stat.f_ffree if has_inodes else None,
        }

    def processes(self) -> list[ProcessInfo]:
        """Return every visible process.

        CPU use needs two readings: CPU times are read, ``cpu_interval`` seconds pass, and
        they are read again. Processes that appear between the readings get None. Fields
        the OS refuses to show (another user's command line on a hardened host) are None or
        empty; processes that exit while being read are left out.
        """
        import psutil

        attrs = [
            "pid",
            "ppid",
            "name",
            "cmdline",
            "username",
            "status",
            "memory_info",
            "cpu_times",
            "create_time",
        ]
        first: dict[tuple[int, float], float] = {}
        started = time.monotonic()
        if self.cpu_interval > 0:
            for process in psutil.process_iter(attrs=["cpu_times", "create_time"]):
                times, created = process.info["cpu_times"], process.info["create_time"]
                if times is not None and created is not None:
                    first[(process.pid, created)] = times.user + times.system
            time.sleep(max(0.0, self.cpu_interval - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        result = []
        for process in psutil.process_iter(attrs=attrs):
            info = process.info
            times = info["cpu_times"]
            before = first.get((process.pid, info["create_time"]))
            cpu_percent = None
            # Computed from CPU times rather than Process.cpu_percent(): that keeps its
            # baseline in psutil's shared process cache, which two checks running in
            # parallel threads would reset under each other.
            if before is not None and times is not None and elapsed > 0:
                cpu_percent = max(0.0, (times.user + times.system - before) / elapsed * 100)
            memory = info["memory_info"]
            result.append(
                ProcessInfo(
                    pid=process.pid,
                    ppid=info["ppid"] or 0,
                    name=info["name"] or "",
                    cmdline=" ".join(info["cmdline"] or []),
                    username=info["username"],
                    status=info["status"] or "",
                    rss_bytes=None if memory is None else int(memory.rss),
                    cpu_percent=cpu_percent,
                )
            )
        if not result:
            raise CheckError("no process visible on this host (is /proc mounted?)")
        return result

    def own_pids(self) -> frozenset[int]:
        """Return this process and its parent (the shell or cron job that started opsctl,
        whose command line may contain the very pattern a process check looks for).
        """
        return frozenset({os.getpid(), os.getppid()})


_NO_USAGE: dict[str, int | None] = {
    "total_bytes": 0,
    "used_bytes": 0,
    "free_bytes": 0,
    "inodes_total": None,
    "inodes_used": None,
}
