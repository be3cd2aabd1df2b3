"""A Linux host observed over SSH: three fixed shell commands, and pure parsers of their text.

``RemoteSource`` gives the host, filesystem and process checks the same records as
``LocalSource`` does, from the output of commands that any Linux with a POSIX shell has
(GNU coreutils and procps, or BusyBox): ``/proc`` files, ``df -P`` and ``ps``.

How the commands are built, and why:

- They are module constants (``FACTS_COMMAND``, ``MOUNTS_COMMAND``, ``PROCESSES_COMMAND``).
  No inventory value is ever put into them. The only thing filled in is the sampling
  time, written by ``render_command`` from a float it has checked (digits and one dot).
- Each observation is one round trip: one command prints several sections, each started
  by a marker line ``@@opsctl NONCE NAME``. The remote shell draws the nonce from
  ``/dev/urandom`` and prints it first (``@@opsctl NONCE``), so that nothing in the data
  (a FUSE device name, a process that renames itself to ``\\n@@opsctl x ps``) can forge a
  marker: it cannot know the nonce. Text printed before the nonce line (a chatty
  ``.bashrc``) is ignored.
- The account's login shell must be POSIX (sh, bash, dash, ksh, BusyBox ash).

What is measured, and how it compares with the local source:

- CPU %: two ``cpu`` lines of ``/proc/stat`` around a ``sleep``, busy time counted as
  psutil counts it (iowait is idle time, guest time is already inside user time).
- Memory: ``/proc/meminfo``; kernels before 3.14 (CentOS 6) have no ``MemAvailable``,
  estimated as ``MemFree + Buffers + Cached`` (the "-/+ buffers/cache" line of their
  ``free``).
- Boot time: this machine's clock minus the remote ``/proc/uptime``, so that a remote
  clock that is wrong does not shift it.
- Mounts: ``df -P -k`` and ``df -P -i`` (plain ``df -k``/``df -i`` where ``-P`` is not
  supported), joined by mount point with ``/proc/mounts`` for device and type. Like GNU
  df, kernel filesystems with no blocks are not listed; the checks leave them out anyway.
  Mounts df may not read (EACCES) are left out, as the local source leaves them out; one
  that fails otherwise (``df: /mnt/nfs: Stale file handle``) is a row with ``error``.
  Unlike the local source, which measures each network share in a thread with a time
  limit, df waits for a hard-mounted NFS share that is gone: the command then runs into
  the runner's timeout and the check is UNKNOWN.
- Processes: ``ps`` for the user (the real user, ``ruser``, as psutil's ``username``),
  resident memory and command line; ``/proc/PID/stat``, read twice around the ``sleep``,
  for the name (``comm``, extended as psutil does), the CPU use over that interval, and
  the parent and state where a BusyBox ``ps`` does not show them. BusyBox cuts user
  names to 8 characters; a BusyBox ``ps`` without ``-o`` shows no memory (None).
- Our own work: the processes command prints ``$$`` first; ``own_pids()`` is that shell
  and its children (the ``ps``), which a process count must leave out.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opsctl.contract import CheckError
from opsctl.sources import PS_STATES, HostFacts, MountUsage, ProcessInfo
from opsctl.sources.local import parse_cpu_model, parse_os_release

#: Where ``render_command`` writes the sampling time (seconds) into a command.
INTERVAL_PLACEHOLDER = "@INTERVAL@"
#: The longest sampling time accepted, in seconds: a source must not hold a session long.
MAX_CPU_INTERVAL = 10.0

_MARKER = "@@opsctl"

# Messages in English (df's "Stale file handle", as the local source words them) while
# LC_CTYPE keeps the session's character set, so that Chinese mount points and command
# lines are not turned into "?". LC_ALL would override both: its value moves to LC_CTYPE.
# The nonce: 8 random bytes in hex; where od or /dev/urandom is missing, the shell's pid
# and the time, which data written before the command ran cannot know either.
_PREAMBLE = (
    'if [ -n "${LC_ALL:-}" ]; then export LC_CTYPE="$LC_ALL"; unset LC_ALL; fi; '
    "export LC_MESSAGES=C; "
    "n=$(od -An -N8 -tx1 /dev/urandom 2>/dev/null | tr -d ' \\n'); "
    '[ -n "$n" ] || n=$$.$(date +%s); '
    f'echo "{_MARKER} $n"; '
)


def _section(name: str, command: str) -> str:
    return f'echo "{_MARKER} $n {name}"; {command}; '


_END = f'echo "{_MARKER} $n end"'
# Fractional sleeps are not in POSIX; an old BusyBox refuses them and sleeps a second.
_SLEEP = f"sleep {INTERVAL_PLACEHOLDER} 2>/dev/null || sleep 1; "

#: Host facts: identity, CPU count and model, memory, load, uptime, two /proc/stat samples.
FACTS_COMMAND = (
    _PREAMBLE
    + _section("uname", "uname -n -r -m")
    + _section(
        "os-release", "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null"
    )
    + _section(
        "release", "cat /etc/redhat-release 2>/dev/null || cat /etc/system-release 2>/dev/null"
    )
    # Online CPUs, as psutil counts them; BusyBox has no getconf, old hosts no nproc.
    + _section(
        "cpus",
        "getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || "
        "grep -c '^processor' /proc/cpuinfo",
    )
    # Only the first processor's block: a 96-CPU host's whole file is 100 KB.
    + _section("cpuinfo", "sed '/^$/q' /proc/cpuinfo")
    + _section("meminfo", "cat /proc/meminfo")
    + _section("loadavg", "cat /proc/loadavg")
    + _section("uptime", "cat /proc/uptime")
    + _section("stat1", "head -n 1 /proc/stat")
    + _SLEEP
    + _section("stat2", "head -n 1 /proc/stat")
    + _END
)

#: Mounts: usage in KiB and in inodes, then the mount table. ``-P`` is tested on ``/``
#: first rather than retried after a failure: df also fails when one share is stale, and
#: a retry would print every other mount twice. Errors of the second df are the first's.
MOUNTS_COMMAND = (
    _PREAMBLE
    + _section("df-k", "if df -P -k / >/dev/null 2>&1; then df -P -k; else df -k; fi")
    + _section(
        "df-i",
        "if df -P -i / >/dev/null 2>&1; then df -P -i 2>/dev/null; else df -i 2>/dev/null; fi",
    )
    + _section("mounts", "cat /proc/mounts")
    + _END
)

#: Processes: the shell's own pid, the clock tick, two samples of every /proc/PID/stat (each
#: after /proc/uptime, to time the interval), then ps: GNU procps first, then BusyBox with
#: ``-o``, then a BusyBox that knows no ``-o`` at all.
PROCESSES_COMMAND = (
    _PREAMBLE
    + _section("shell", "echo $$")
    + _section("clock", "getconf CLK_TCK 2>/dev/null")
    + _section("stat1", "cat /proc/uptime /proc/[0-9]*/stat 2>/dev/null")
    + _SLEEP
    + _section("stat2", "cat /proc/uptime /proc/[0-9]*/stat 2>/dev/null")
    + _section(
        "ps",
        "ps -ww -eo pid=,ppid=,ruser:32=,stat=,rss=,args= 2>/dev/null || "
        "ps -o pid,ppid,user,stat,rss,comm,args 2>/dev/null || ps",
    )
    + _END
)

#: The three command templates; ``render_command`` makes each the command that is sent.
COMMANDS: tuple[str, ...] = (FACTS_COMMAND, MOUNTS_COMMAND, PROCESSES_COMMAND)


def render_command(template: str, cpu_interval: float) -> str:
    """Given one of the command constants and a sampling time in seconds, return the
    command to send, with the time written in (``0.5``, ``2``, ``0``).

    Raise ValueError if the time is not a number from 0 to ``MAX_CPU_INTERVAL``.
    """
    if not isinstance(cpu_interval, int | float) or not math.isfinite(cpu_interval):
        raise ValueError(f"cpu_interval must be a number of seconds, got {cpu_interval!r}")
    if not 0 <= cpu_interval <= MAX_CPU_INTERVAL:
        raise ValueError(f"cpu_interval must be from 0 to {MAX_CPU_INTERVAL:g} s")
    # Two decimals at most, no exponent: "0.5", "2", "0" are what every sleep reads.
    text = f"{float(cpu_interval):.2f}".rstrip("0").rstrip(".")
    return template.replace(INTERVAL_PLACEHOLDER, text)


# --- sections ------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Split at newlines only: str.splitlines also splits at \\x1c, \\x85 or \\u2028, which
    a process or a mount point may hold in its name."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


_NONCE_LINE = re.compile(rf"^{_MARKER} ([0-9a-f]{{6,32}}|\d+\.\d+)$")


def split_sections(text: str) -> dict[str, str]:
    """Given the output of one of the commands, return its sections by name (``"meminfo"``:
    the text of /proc/meminfo), each ending with a newline unless empty.

    Lines before the nonce line are ignored; only lines that carry the nonce start a
    section. Return an empty dict if the text has no nonce line (not our command's output).
    """
    lines = _lines(text)
    start = next((i for i, line in enumerate(lines) if _NONCE_LINE.match(line.rstrip("\r"))), None)
    if start is None:
        return {}
    prefix = lines[start].rstrip("\r") + " "
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[start + 1 :]:
        stripped = line.rstrip("\r")
        if stripped.startswith(prefix):
            name = stripped[len(prefix) :]
            # A name can only come once from our command; a repeat is not ours.
            current = sections.setdefault(name, []) if name not in sections else None
            continue
        if current is not None:
            current.append(line)
    return {name: "".join(f"{line}\n" for line in body) for name, body in sections.items()}


# --- facts ---------------------------------------------------------------------------------


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """Given the text of ``/proc/loadavg``, return the load averages over 1, 5 and 15 minutes.

    Raise ValueError if the text does not start with three numbers.
    """
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"not a load average: {text.strip()[:80]!r}")
    try:
        return float(fields[0]), float(fields[1]), float(fields[2])
    except ValueError:
        raise ValueError(f"not a load average: {text.strip()[:80]!r}") from None


def parse_meminfo(text: str) -> dict[str, int]:
    """Given the text of ``/proc/meminfo``, return its values by name, in bytes for the
    lines in kB (``MemTotal``, ``SwapFree`` ...) and as counts for the others
    (``HugePages_Total``).

    Kernels before 3.14 (CentOS 6's 2.6.32) have no ``MemAvailable``: it is then added as
    ``MemFree + Buffers + Cached``, what their ``free`` shows as "-/+ buffers/cache". That
    overstates a little (tmpfs pages count as cache), as that ``free`` did. Lines that are
    not ``Name: number [kB]`` are skipped.
    """
    values: dict[str, int] = {}
    for line in _lines(text):
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or not fields[0].isdigit():
            continue
        number = int(fields[0])
        if len(fields) > 1 and fields[1].lower() == "kb":
            number *= 1024
        values[name.strip()] = number
    if "MemAvailable" not in values and "MemFree" in values:
        estimate = values["MemFree"] + values.get("Buffers", 0) + values.get("Cached", 0)
        values["MemAvailable"] = min(estimate, values.get("MemTotal", estimate))
    return values


def _cpu_line(text: str) -> list[int] | None:
    for line in _lines(text):
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                return [int(field) for field in fields[1:]]
            except ValueError:
                return None
    return None


def parse_proc_stat_cpu(first: str, second: str) -> float | None:
    """Given two samples of ``/proc/stat`` (or of its ``cpu`` line), return the share of
    CPU time that was busy between them, in % of all CPUs (0 to 100, one decimal).

    Counted as psutil counts it, so that a remote host reads like the local one: iowait
    is idle time (a CPU waiting for a disk could run something else), and guest time is
    left out of the total because the kernel already counts it in user time. Return None
    if either sample has no ``cpu`` line or no time passed between them.
    """
    before, after = _cpu_line(first), _cpu_line(second)
    if not before or not after or len(before) < 4 or len(before) != len(after):
        return None

    def busy_and_total(times: list[int]) -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal guest guest_nice; old kernels
        # stop earlier (2.6.32 has no guest_nice).
        total = sum(times) - sum(times[8:10])
        idle = times[3] + (times[4] if len(times) > 4 else 0)
        return total - idle, total

    busy1, total1 = busy_and_total(before)
    busy2, total2 = busy_and_total(after)
    if total2 <= total1:
        return None
    percent = (busy2 - busy1) / (total2 - total1) * 100
    return round(min(max(percent, 0.0), 100.0), 1)


def parse_uptime(text: str) -> float:
    """Given the text of ``/proc/uptime``, return the seconds since boot.

    Raise ValueError if the text does not start with a number.
    """
    fields = text.split()
    try:
        value = float(fields[0])
    except (IndexError, ValueError):
        raise ValueError(f"not an uptime: {text.strip()[:80]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not an uptime: {text.strip()[:80]!r}")
    return value


def parse_uname(text: str) -> tuple[str, str, str]:
    """Given the output of ``uname -n -r -m`` (one line: node name, kernel release,
    machine), return (hostname, kernel, architecture).

    ``uname -a`` output is read too (``Linux NAME RELEASE #1 SMP ... MACHINE GNU/Linux``):
    its version field has spaces, so the machine is taken from the end. Missing parts
    are "".
    """
    line = next((line for line in _lines(text) if line.strip()), "")
    fields = line.split()
    if len(fields) <= 3:
        fields += [""] * (3 - len(fields))
        return fields[0], fields[1], fields[2]
    machine = fields[-2] if fields[-1] in ("GNU/Linux", "Linux") else fields[-1]
    return fields[1], fields[2], machine


def parse_os_identity(os_release: str, release_file: str, kernel: str) -> tuple[str, str, str]:
    """Given the text of ``/etc/os-release`` and of ``/etc/redhat-release`` (either may be
    empty) and the kernel release, return (name, version, pretty name) of the OS, as the
    local source names it: os-release first, then the release file's first line
    (``CentOS release 6.10 (Final)``), then ``Linux`` and the kernel.
    """
    values = parse_os_release(os_release)
    if values.get("NAME") or values.get("PRETTY_NAME"):
        name = values.get("NAME", "Linux")
        version = values.get("VERSION_ID", "")
        return name, version, values.get("PRETTY_NAME") or f"{name} {version}".strip()
    line = next((line.strip() for line in _lines(release_file) if line.strip()), "")
    if line:
        name, _, version = line.partition(" release ")
        return name.strip(), version.split()[0] if version else "", line
    return "Linux", kernel, f"Linux {kernel}".strip()


def _first_line(text: str) -> str:
    return next((line.strip() for line in _lines(text) if line.strip()), "")


def _failure(host: str, what: str, exit_status: int, stderr: str) -> CheckError:
    reason = _first_line(stderr)
    detail = f"exit {exit_status}" + (f": {reason}" if reason else "")
    return CheckError(f"{host}: {what} ({detail})")


def facts_from_output(
    stdout: str,
    *,
    host: str,
    now: datetime,
    exit_status: int = 0,
    stderr: str = "",
    measure_cpu: bool = True,
) -> HostFacts:
    """Given the output of ``FACTS_COMMAND`` on ``host`` and the time it was received
    (aware), return the host's facts.

    Pieces that are missing get defaults (the OS becomes ``Linux`` and the kernel, an
    unknown CPU count 1, a missing model "", no CPU % when the samples are unusable).
    Raise CheckError, naming the host and the first line of stderr, if the output lacks
    what no Linux lacks: ``/proc/meminfo``, ``/proc/loadavg`` or ``/proc/uptime``.
    """
    sections = split_sections(stdout)
    if not sections:
        raise _failure(host, "no answer from the facts command", exit_status, stderr)
    memory = parse_meminfo(sections.get("meminfo", ""))
    if "MemTotal" not in memory:
        raise _failure(host, "no /proc/meminfo in the facts command's output", exit_status, stderr)
    try:
        load1, load5, load15 = parse_loadavg(sections.get("loadavg", ""))
        uptime = parse_uptime(sections.get("uptime", ""))
    except ValueError as error:
        raise _failure(host, f"unreadable /proc: {error}", exit_status, stderr) from None

    hostname, kernel, architecture = parse_uname(sections.get("uname", ""))
    name, version, pretty = parse_os_identity(
        sections.get("os-release", ""), sections.get("release", ""), kernel
    )
    cpus_text = _first_line(sections.get("cpus", ""))
    cpu_count = int(cpus_text) if cpus_text.isdigit() and int(cpus_text) > 0 else 1
    swap_total = memory.get("SwapTotal", 0)
    cpu_percent = None
    if measure_cpu:
        cpu_percent = parse_proc_stat_cpu(sections.get("stat1", ""), sections.get("stat2", ""))
    return HostFacts(
        hostname=hostname or host,
        os_name=name,
        os_version=version,
        os_pretty_name=pretty,
        kernel=kernel,
        architecture=architecture,
        cpu_count=cpu_count,
        cpu_model=parse_cpu_model(sections.get("cpuinfo", "")),
        memory_total=memory["MemTotal"],
        memory_available=memory.get("MemAvailable", 0),
        swap_total=swap_total,
        swap_used=max(swap_total - memory.get("SwapFree", swap_total), 0),
        uptime_seconds=uptime,
        boot_time=now.astimezone(UTC) - timedelta(seconds=uptime),
        load1=load1,
        load5=load5,
        load15=load15,
        cpu_percent=cpu_percent,
    )


# --- mounts --------------------------------------------------------------------------------

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# A df row: device, four numbers (or "-"), the capacity, and the mount point to the end of
# the line (it may hold spaces). The device is the shortest prefix that fits, so a mount
# point made to look like numbers ("/mnt/1 2 3 4% /x") stays the mount point.
_DF_ROW = re.compile(
    r"^(?P<device>\S.*?)\s+(?P<total>-?\d+|-)\s+(?P<used>-?\d+|-)\s+(?P<free>-?\d+|-)"
    r"\s+(?P<percent>\d+%|-)\s+(?P<mount>/.*)$"
)
_DF_CONTINUATION = re.compile(r"^\s+(-?\d+|-)\s+(-?\d+|-)\s+(-?\d+|-)\s+(\d+%|-)\s+/")


def _decode_mount_field(field: str) -> str:
    """Undo the kernel's octal escapes in /proc/mounts (``\\040`` space, ``\\011`` tab,
    ``\\012`` newline, ``\\134`` backslash)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_proc_mounts(text: str) -> dict[str, tuple[str, str]]:
    """Given the text of ``/proc/mounts``, return {mount point: (device, fstype)} in the
    order of the table, escapes decoded. A mount point listed twice (a filesystem mounted
    over another) keeps its first place and its last (visible) device and type.
    """
    table: dict[str, tuple[str, str]] = {}
    for line in _lines(text):
        fields = line.split(" ")
        if len(fields) < 3 or not fields[1].startswith("/"):
            continue
        device, mount, fstype = (_decode_mount_field(f) for f in fields[:3])
        table[mount] = (device, fstype)
    return table


def _number(text: str) -> int:
    return 0 if text == "-" else int(text)


@dataclass(frozen=True, slots=True)
class _DfRow:
    device: str
    total: int
    used: int
    free: int


def _df_rows(text: str, known: Collection[str] = ()) -> dict[str, _DfRow]:
    """Return the rows of one df listing by mount point (the last row of a mount wins).

    ``known`` are the mount points of /proc/mounts: BusyBox prints a newline in a mount
    point as it is, so a row whose mount point is unknown is joined with the lines after
    it when that gives a known one.
    """
    rows: dict[str, _DfRow] = {}
    lines = [line.rstrip("\r") for line in _lines(text)]
    pending: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.startswith(("df: ", "Filesystem ")):
            pending = None
            continue
        if pending is not None and _DF_CONTINUATION.match(line):
            # Without -P, BusyBox (and old GNU df) put a long device name on a line of its
            # own and the numbers, indented, on the next.
            line = f"{pending} {line.strip()}"
        pending = None
        match = _DF_ROW.match(line)
        if match is None:
            if not line[0].isspace():
                pending = line.strip()
            continue
        mount = match["mount"]
        if known and mount not in known:
            for extra in range(1, 4):
                candidate = "\n".join([mount, *lines[index : index + extra]])
                if candidate in known:
                    mount, index = candidate, index + extra
                    break
        rows[mount] = _DfRow(
            match["device"],
            _number(match["total"]),
            _number(match["used"]),
            _number(match["free"]),
        )
    return rows


def _unquote_path(text: str) -> str:
    """Undo the quoting of file names in GNU df's messages: shell style since coreutils
    8.25 (``'/mnt/my share'``, ``'/mnt/it'\\''s'``, ``'/mnt/a'$'\\n''b'``), the locale's
    quotes before (CentOS 7: ``‘/mnt/nfs’``, or ```/mnt/nfs'`` in the C locale). Text that
    is not quoted is returned as is.
    """
    for left, right in (("\u2018", "\u2019"), ("`", "'"), ('"', '"')):
        if len(text) >= 2 and text.startswith(left) and text.endswith(right):
            return text[1:-1]
    if not text or text[0] not in "'$":
        return text
    result: list[str] = []
    index = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a"}
    while index < len(text):
        if text.startswith("$'", index):
            index += 2
            while index < len(text) and text[index] != "'":
                if text[index] == "\\" and index + 1 < len(text):
                    octal = re.match(r"[0-7]{1,3}", text[index + 1 :])
                    if octal:
                        result.append(chr(int(octal.group(0), 8)))
                        index += 1 + len(octal.group(0))
                        continue
                    result.append(escapes.get(text[index + 1], text[index + 1]))
                    index += 2
                    continue
                result.append(text[index])
                index += 1
            index += 1
        elif text[index] == "'":
            end = text.find("'", index + 1)
            if end < 0:
                return text
            result.append(text[index + 1 : end])
            index = end + 1
        elif text[index] == "\\" and index + 1 < len(text):
            result.append(text[index + 1])
            index += 2
        else:
            result.append(text[index])
            index += 1
    return "".join(result)


def _df_errors(text: str) -> dict[str, str]:
    """Return {path: reason} for df's error lines (``df: /mnt/nfs: Stale file handle``)."""
    errors: dict[str, str] = {}
    for line in _lines(text):
        if not line.startswith("df: "):
            continue
        # The reason (strerror) has no ": ", the path may: split at the last one.
        path, sep, reason = line[4:].rstrip("\r").rpartition(": ")
        if sep and path:
            errors.setdefault(_unquote_path(path), reason.strip())
    return errors


def _control_to_question_mark(text: str) -> str:
    # GNU df 9 prints control characters of mount points as "?".
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def parse_df(
    text_kb: str, text_inodes: str, proc_mounts: str, stderr: str = ""
) -> list[MountUsage]:
    """Given the output of ``df -P -k`` and ``df -P -i`` (or of plain ``df -k``/``df -i``),
    the text of ``/proc/mounts`` and df's error lines (in ``stderr`` or mixed into
    ``text_kb``), return the usage of every mount df measured or failed to measure.

    Rows are joined by mount point; device and type come from /proc/mounts (escapes like
    ``\\040`` decoded), else the device from df and type "". Mount points may contain
    spaces; a device wrapped onto a line of its own is joined with its numbers; inodes
    shown as 0 or ``-`` (vfat, btrfs) become None. An error line such as
    ``df: /mnt/nfs: Stale file handle`` for a mount of /proc/mounts gives a row with
    ``error`` set and sizes 0. Order: that of /proc/mounts, then mounts it does not list.
    """
    table = parse_proc_mounts(proc_mounts)
    by_question_marks = {_control_to_question_mark(mount): mount for mount in table}

    def canonical(mount: str) -> str:
        if mount in table:
            return mount
        return by_question_marks.get(mount, mount)

    sizes = {canonical(mount): row for mount, row in _df_rows(text_kb, table).items()}
    inodes = {canonical(mount): row for mount, row in _df_rows(text_inodes, table).items()}
    errors = _df_errors(f"{text_kb}\n{stderr}")

    result: list[MountUsage] = []
    for mount in [*table, *(m for m in sizes if m not in table)]:
        device, fstype = table.get(mount, ("", ""))
        row = sizes.get(mount)
        if row is None:
            if mount in table and mount in errors:
                result.append(
                    MountUsage(
                        mount, device, fstype, 0, 0, 0, error=f"not accessible: {errors[mount]}"
                    )
                )
            continue
        inode_row = inodes.get(mount)
        has_inodes = inode_row is not None and inode_row.total > 0
        result.append(
            MountUsage(
                mount=mount,
                device=device or row.device,
                fstype=fstype,
                total_bytes=max(row.total, 0) * 1024,
                used_bytes=max(row.used, 0) * 1024,
                # GNU df shows a negative "Available" when root has used its reserve.
                free_bytes=max(row.free, 0) * 1024,
                inodes_total=inode_row.total if has_inodes and inode_row else None,
                inodes_used=max(inode_row.used, 0) if has_inodes and inode_row else None,
            )
        )
    return result


def mounts_from_output(
    stdout: str, *, host: str, exit_status: int = 0, stderr: str = ""
) -> list[MountUsage]:
    """Given the output of ``MOUNTS_COMMAND`` on ``host``, return its mounts.

    A non-zero exit is expected when one mount is stale (df says so and goes on); the
    rows that were measured are returned with it. Raise CheckError, naming the host and
    the first line of stderr, if df listed nothing at all.
    """
    sections = split_sections(stdout)
    if not sections:
        raise _failure(host, "no answer from the mounts command", exit_status, stderr)
    mounts = parse_df(
        sections.get("df-k", ""), sections.get("df-i", ""), sections.get("mounts", ""), stderr
    )
    if not mounts:
        raise _failure(host, "df listed no filesystem", exit_status, stderr)
    return mounts


# --- processes -----------------------------------------------------------------------------

# ps wraps kernel threads' names in brackets (they have no command line), and zombies'.
_BRACKETED = re.compile(r"^\[(?P<name>.*)\]( <defunct>)?$", re.DOTALL)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmgtpe]?)$", re.IGNORECASE)


def _rss_bytes(text: str) -> int | None:
    """KiB as ps shows them; BusyBox shortens large values to ``35m`` or ``2g``."""
    match = _SIZE.match(text)
    if match is None:
        return None
    power = "kmgtpe".find(match.group(2).lower()) if match.group(2) else 0
    return int(float(match.group(1)) * 1024 ** max(power, 0) * 1024)


def _name_and_cmdline(args: str, comm: str | None) -> tuple[str, str]:
    """Return (name, command line) for a ps ``args`` column, as psutil gives them."""
    bracketed = _BRACKETED.match(args)
    if bracketed and (comm is None or bracketed["name"].startswith(comm)):
        return comm or bracketed["name"], ""
    if comm:
        args = strip_comm_prefix(args, comm)
        return extend_name(comm, args), args
    first = args.split(maxsplit=1)[0] if args.strip() else ""
    # setproctitle style ("nginx: master process", "sshd: ops@notty"): the name ends at ":".
    return posixpath.basename(first).rstrip(":") or first, args


def strip_comm_prefix(args: str, comm: str) -> str:
    """Given a BusyBox ps command line and the process's comm, return the command line
    without the ``{comm} `` that BusyBox puts in front when the comm differs from the
    program's name (``{his worker (1)} /usr/bin/python3 ...``).
    """
    prefix = f"{{{comm[:15]}}} "
    return args[len(prefix) :] if comm and args.startswith(prefix) else args


def extend_name(comm: str, cmdline: str) -> str:
    """Given a process's ``comm`` (truncated by the kernel to 15 bytes) and its command
    line, return its name as psutil does: the base name of the first word of the command
    line when it starts with the truncated comm (``ora_pmon_EMRPROD``), else the comm.
    """
    if len(comm) >= 15 and cmdline.strip():
        first = posixpath.basename(cmdline.split(maxsplit=1)[0])
        if first.startswith(comm):
            return first
    return comm


def _status(stat: str) -> str:
    return PS_STATES.get(stat[:1], "") if stat else ""


def _parse_procps(lines: list[str]) -> list[ProcessInfo]:
    result = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        args = parts[5].rstrip("\r") if len(parts) > 5 else ""
        name, cmdline = _name_and_cmdline(args, None)
        result.append(
            ProcessInfo(
                pid=int(parts[0]),
                ppid=int(parts[1]),
                name=name,
                cmdline=cmdline,
                username=parts[2],
                status=_status(parts[3]),
                rss_bytes=_rss_bytes(parts[4]),
            )
        )
    return result


def _parse_with_header(lines: list[str]) -> list[ProcessInfo]:
    header = lines[0].split()
    commands = [i for i, column in enumerate(header) if column in ("COMMAND", "CMD")]
    if not commands:
        return []
    fixed = header[: commands[0]]
    has_comm = len(commands) > 1
    result = []
    for line in lines[1:]:
        parts = line.rstrip("\r").split(None, len(fixed))
        if len(parts) < len(fixed) or not parts[0].isdigit():
            continue
        values = dict(zip(fixed, parts, strict=False))
        rest = parts[len(fixed)] if len(parts) > len(fixed) else ""
        comm = None
        if has_comm:
            # BusyBox pads COMMAND (comm, which may hold spaces) to 16 columns, then one
            # space, then the command line.
            comm, rest = rest[:16].rstrip(), rest[17:]
        name, cmdline = _name_and_cmdline(rest, comm or None)
        ppid = values.get("PPID", "0")
        result.append(
            ProcessInfo(
                pid=int(values["PID"]) if "PID" in values else int(parts[0]),
                ppid=int(ppid) if ppid.isdigit() else 0,
                name=name,
                cmdline=cmdline,
                username=values.get("USER"),
                status=_status(values.get("STAT", "")),
                rss_bytes=_rss_bytes(values["RSS"]) if "RSS" in values else None,
            )
        )
    return result


def parse_ps(text: str) -> list[ProcessInfo]:
    """Given the output of the processes command's ``ps``, return its processes.

    Three formats are read: GNU procps ``ps -ww -eo pid=,ppid=,ruser:32=,stat=,rss=,args=``
    (no header; the command line is the rest of the line), BusyBox
    ``ps -o pid,ppid,user,stat,rss,comm,args`` and plain BusyBox ``ps``
    (``PID   USER     TIME  COMMAND``), both read by their header. The name is the
    command's base name (BusyBox's ``comm`` where shown; ``RemoteSource`` replaces it with
    the kernel's ``comm`` from /proc); kernel threads and zombies (``[kthreadd]``) have an
    empty command line, as in psutil. The state is the first letter of STAT through
    ``PS_STATES``; RSS (KiB) becomes bytes. What a format lacks is 0 (ppid), None (user,
    RSS) or "" (state). Lines that do not parse are skipped.
    """
    lines = [line for line in _lines(text) if line.strip()]
    if not lines:
        return []
    if lines[0].split()[0] == "PID":
        return _parse_with_header(lines)
    return _parse_procps(lines)


@dataclass(frozen=True, slots=True)
class PidStat:
    """The fields of one ``/proc/PID/stat`` line that a process record needs."""

    pid: int
    comm: str
    state: str
    ppid: int
    cpu_ticks: int
    start_ticks: int


# pid (comm) state, then at least 20 numbers: comm may hold spaces, ")" and newlines, but
# a process's own comm is 15 bytes at most, too short to forge a whole record.
_PID_STAT = re.compile(
    r"(?P<pid>\d+) \((?P<comm>.*?)\) (?P<state>[A-Za-z]) (?P<numbers>-?\d+(?: -?\d+){19,})[ ]*(?:\n|$)",
    re.DOTALL,
)


def parse_proc_pid_stat(text: str) -> dict[int, PidStat]:
    """Given ``/proc/PID/stat`` lines of many processes (``cat /proc/[0-9]*/stat``),
    return their fields by pid. Text that is not such a line (the uptime line before
    them) is skipped; a pid seen twice is dropped, since one of the two is forged.
    """
    records: dict[int, PidStat] = {}
    doubled: set[int] = set()
    position = 0
    while position < len(text):
        match = _PID_STAT.match(text, position)
        if match is None:
            newline = text.find("\n", position)
            if newline < 0:
                break
            position = newline + 1
            continue
        position = match.end()
        numbers = match["numbers"].split()
        # Fields 4 (ppid), 14 and 15 (utime, stime) and 22 (starttime) of proc(5).
        record = PidStat(
            pid=int(match["pid"]),
            comm=match["comm"],
            state=match["state"],
            ppid=int(numbers[0]),
            cpu_ticks=int(numbers[10]) + int(numbers[11]),
            start_ticks=int(numbers[18]),
        )
        if record.pid in records:
            doubled.add(record.pid)
        records[record.pid] = record
    for pid in doubled:
        del records[pid]
    return records


def _first_float(text: str) -> float | None:
    fields = text.split(maxsplit=1)
    try:
        value = float(fields[0]) if fields else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def processes_from_output(
    stdout: str,
    *,
    host: str,
    exit_status: int = 0,
    stderr: str = "",
    measure_cpu: bool = True,
) -> tuple[list[ProcessInfo], frozenset[int]]:
    """Given the output of ``PROCESSES_COMMAND`` on ``host``, return its processes and the
    pids of our own work there: the shell that ran the command (``$$``) and its children
    (the ps; a plain BusyBox ps, which shows no parents, by its bare ``ps`` command line).

    Each process of ``ps`` takes its name from /proc/PID/stat's comm (extended as psutil
    does), its parent and state from there where ps did not show them, and its CPU use
    from the two samples: CPU ticks over the elapsed uptime, 100 being one CPU; None when
    not measured, or when the process was not in both samples (matched by pid and start
    time, so that a reused pid is not mistaken). Raise CheckError, naming the host and the
    first line of stderr, if no process could be read.
    """
    sections = split_sections(stdout)
    if not sections:
        raise _failure(host, "no answer from the processes command", exit_status, stderr)
    listed = parse_ps(sections.get("ps", ""))
    if not listed:
        raise _failure(host, "ps listed no process", exit_status, stderr)
    before = parse_proc_pid_stat(sections.get("stat1", ""))
    after = parse_proc_pid_stat(sections.get("stat2", ""))
    clock_text = _first_line(sections.get("clock", ""))
    # USER_HZ is 100 on every architecture Linux servers use; getconf is not on BusyBox.
    clock = int(clock_text) if clock_text.isdigit() and int(clock_text) > 0 else 100
    uptime1 = _first_float(sections.get("stat1", ""))
    uptime2 = _first_float(sections.get("stat2", ""))
    elapsed = None
    if measure_cpu and uptime1 is not None and uptime2 is not None and uptime2 > uptime1:
        elapsed = uptime2 - uptime1

    processes = []
    for process in listed:
        stat = after.get(process.pid)
        if stat is None:
            processes.append(process)
            continue
        cpu_percent = None
        first = before.get(process.pid)
        if elapsed is not None and first is not None and first.start_ticks == stat.start_ticks:
            cpu_percent = max(0.0, (stat.cpu_ticks - first.cpu_ticks) / clock / elapsed * 100)
        # Kernel threads and zombies have no command line: their comm is their name.
        cmdline = strip_comm_prefix(process.cmdline, stat.comm)
        name = extend_name(stat.comm, cmdline) if cmdline else stat.comm
        processes.append(
            replace(
                process,
                name=name or process.name,
                cmdline=cmdline,
                ppid=process.ppid or stat.ppid,
                status=process.status or PS_STATES.get(stat.state, ""),
                cpu_percent=cpu_percent,
            )
        )

    shell_text = _first_line(sections.get("shell", ""))
    own: set[int] = set()
    if shell_text.isdigit():
        shell = int(shell_text)
        own = {shell} | {p.pid for p in processes if p.ppid == shell}
    # A plain BusyBox ps shows no parent, and started after the last /proc sample: it is
    # known by its command line, the bare "ps" of the command's last fallback.
    own |= {p.pid for p in processes if p.ppid == 0 and p.cmdline == "ps" and p.pid not in after}
    return processes, frozenset(own)


# --- the source ----------------------------------------------------------------------------


class CommandResult(Protocol):
    """What a runner returns for one command."""

    @property
    def exit_status(self) -> int: ...

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


class Runner(Protocol):
    """Runs one shell command on the remote host (over SSH) and returns its result.

    Raise CheckError if the host cannot be reached or the command does not end within
    ``timeout`` seconds.
    """

    def __call__(self, command: str, timeout: float) -> CommandResult: ...


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """A plain ``CommandResult``, for runners and tests that need one."""

    exit_status: int
    stdout: str
    stderr: str = ""


class RemoteSource:
    """A Linux host observed through ``runner``, which runs a shell command there.

    ``name`` names the host in error messages; ``timeout`` is how long each command may
    take, on top of the ``cpu_interval`` seconds it sleeps between its two CPU samples
    (0 skips the measurement: CPU % is then None). Only the three command constants of
    this module are ever sent, with the interval written in.
    """

    def __init__(
        self, runner: Runner, *, name: str, timeout: float, cpu_interval: float = 0.5
    ) -> None:
        self.runner = runner
        self.name = name
        self.timeout = timeout
        self.cpu_interval = cpu_interval
        self.facts_command = render_command(FACTS_COMMAND, cpu_interval)
        self.mounts_command = MOUNTS_COMMAND
        self.processes_command = render_command(PROCESSES_COMMAND, cpu_interval)
        self._own_pids: frozenset[int] = frozenset()

    def _run(self, command: str, timeout: float) -> CommandResult:
        try:
            return self.runner(command, timeout)
        except CheckError:
            raise
        except OSError as error:
            raise CheckError(f"{self.name}: {error.strerror or error}") from error

    def facts(self) -> HostFacts:
        """Return the host's configuration and load now.

        Raise CheckError if the runner does, or the output lacks /proc's basics.
        """
        result = self._run(self.facts_command, self.timeout + self.cpu_interval)
        return facts_from_output(
            result.stdout,
            host=self.name,
            now=datetime.now(UTC),
            exit_status=result.exit_status,
            stderr=result.stderr,
            measure_cpu=self.cpu_interval > 0,
        )

    def mounts(self) -> list[MountUsage]:
        """Return every filesystem df lists, and those it could not measure (with error).

        Raise CheckError if the runner does, or df listed nothing.
        """
        result = self._run(self.mounts_command, self.timeout)
        return mounts_from_output(
            result.stdout, host=self.name, exit_status=result.exit_status, stderr=result.stderr
        )

    def processes(self) -> list[ProcessInfo]:
        """Return every process ps shows, and remember our own for ``own_pids``.

        Raise CheckError if the runner does, or no process could be read.
        """
        result = self._run(self.processes_command, self.timeout + self.cpu_interval)
        processes, self._own_pids = processes_from_output(
            result.stdout,
            host=self.name,
            exit_status=result.exit_status,
            stderr=result.stderr,
            measure_cpu=self.cpu_interval > 0,
        )
        return processes

    def own_pids(self) -> frozenset[int]:
        """Return the pids of our own work seen by the last ``processes()``: the remote
        shell that ran the command (its ``$$``) and its children (the ``ps``). Empty
        before the first ``processes()``.
        """
        return self._own_pids


__all__ = [
    "COMMANDS",
    "FACTS_COMMAND",
    "INTERVAL_PLACEHOLDER",
    "MOUNTS_COMMAND",
    "PROCESSES_COMMAND",
    "CommandOutput",
    "CommandResult",
    "PidStat",
    "RemoteSource",
    "Runner",
    "extend_name",
    "facts_from_output",
    "mounts_from_output",
    "parse_df",
    "parse_loadavg",
    "parse_meminfo",
    "parse_os_identity",
    "parse_proc_mounts",
    "parse_proc_pid_stat",
    "parse_proc_stat_cpu",
    "parse_ps",
    "parse_uname",
    "parse_uptime",
    "processes_from_output",
    "render_command",
    "split_sections",
    "strip_comm_prefix",
]
