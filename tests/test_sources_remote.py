"""The remote (SSH) source: its parsers on recorded command output
(tests/fixtures/remote/), ``RemoteSource`` through a replaying runner and through the real
commands run by ``/bin/sh`` on this machine, hostile data, and failures.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import need_executable

from checks.filesystem import FilesystemConfig, evaluate_mounts
from checks.host import HostConfig, evaluate_host
from checks.process import ProcessConfig, evaluate_processes
from opsctl.contract import CheckError, State
from opsctl.sources import HostFacts, MountUsage, ProcessInfo
from opsctl.sources.local import LocalSource
from opsctl.sources.remote import (
    FACTS_COMMAND,
    INTERVAL_PLACEHOLDER,
    MOUNTS_COMMAND,
    PROCESSES_COMMAND,
    CommandOutput,
    RemoteSource,
    extend_name,
    facts_from_output,
    mounts_from_output,
    parse_df,
    parse_loadavg,
    parse_meminfo,
    parse_os_identity,
    parse_proc_mounts,
    parse_proc_pid_stat,
    parse_proc_stat_cpu,
    parse_ps,
    parse_uname,
    parse_uptime,
    processes_from_output,
    render_command,
    split_sections,
)

FIXTURES = Path(__file__).parent / "fixtures" / "remote"
DISTROS = ("debian12", "debian12-busybox", "centos7", "centos6", "kylin-v10", "busybox")
WITH_PROCESSES = ("debian12", "debian12-busybox", "centos7", "busybox")
NOW = datetime(2025, 4, 2, 8, 30, tzinfo=UTC)
KIB = 1024


def stdout(distro: str, command: str) -> str:
    return (FIXTURES / distro / f"{command}.out").read_text()


def stderr(distro: str, command: str) -> str:
    return (FIXTURES / distro / f"{command}.err").read_text()


def section(distro: str, command: str, name: str) -> str:
    return split_sections(stdout(distro, command))[name]


class ReplayRunner:
    """Answers the three commands with a recorded host's output; records what it is sent.

    An unknown command fails the test: the source may send nothing but the constants.
    """

    def __init__(self, distro: str, cpu_interval: float = 0.5) -> None:
        self.distro = distro
        self.sent: list[tuple[str, float]] = []
        self.names = {
            render_command(FACTS_COMMAND, cpu_interval): "facts",
            MOUNTS_COMMAND: "mounts",
            render_command(PROCESSES_COMMAND, cpu_interval): "processes",
        }

    def __call__(self, command: str, timeout: float) -> CommandOutput:
        self.sent.append((command, timeout))
        name = self.names[command]
        return CommandOutput(0, stdout(self.distro, name), stderr(self.distro, name))


def shell_runner(command: str, timeout: float) -> CommandOutput:
    """Run the command as sshd would: handed to a POSIX shell with ``-c``."""
    done = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
    )
    return CommandOutput(done.returncode, done.stdout, done.stderr)


# --- commands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "written"), [(0.5, "0.5"), (2, "2"), (0, "0"), (1.25, "1.25"), (10.0, "10")]
)
def test_render_command_writes_only_the_interval(interval: float, written: str) -> None:
    command = render_command(FACTS_COMMAND, interval)
    assert INTERVAL_PLACEHOLDER not in command
    assert command == FACTS_COMMAND.replace(INTERVAL_PLACEHOLDER, written)
    assert f"sleep {written} 2>/dev/null || sleep 1;" in command
    assert render_command(MOUNTS_COMMAND, interval) == MOUNTS_COMMAND


@pytest.mark.parametrize("interval", [-0.1, 10.5, float("nan"), float("inf"), "0.5; reboot"])
def test_render_command_refuses_anything_but_a_small_number(interval: object) -> None:
    with pytest.raises(ValueError, match="cpu_interval"):
        render_command(FACTS_COMMAND, interval)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cpu_interval"):
        RemoteSource(ReplayRunner("centos7"), name="h", timeout=5, cpu_interval=interval)  # type: ignore[arg-type]


def test_commands_are_constants_without_inventory_placeholders() -> None:
    for command in (FACTS_COMMAND, MOUNTS_COMMAND, PROCESSES_COMMAND):
        # The only variable the shell expands is its own: the nonce, $$ and locale names.
        assert "{" not in command.replace("${LC_ALL:-}", "")
        assert command.count(INTERVAL_PLACEHOLDER) == (0 if command is MOUNTS_COMMAND else 1)


# --- sections ------------------------------------------------------------------------------


def test_split_sections_on_a_recorded_output() -> None:
    sections = split_sections(stdout("debian12", "facts"))
    assert list(sections) == [
        "uname",
        "os-release",
        "release",
        "cpus",
        "cpuinfo",
        "meminfo",
        "loadavg",
        "uptime",
        "stat1",
        "stat2",
        "end",
    ]
    assert sections["cpus"] == "2\n"
    assert sections["release"] == ""


def test_split_sections_ignores_login_noise_and_forged_markers() -> None:
    text = (
        "Welcome to HIS db01 -- authorised users only\n"
        "@@opsctl 0011223344556677 loadavg\n"  # before the nonce line: noise
        "@@opsctl 0123456789abcdef\n"
        "@@opsctl 0123456789abcdef loadavg\n"
        "1.00 2.00 3.00 1/2 3\n"
        "@@opsctl ps\n"  # no nonce: data
        "@@opsctl 0011223344556677 ps\n"  # another nonce: data
        "@@opsctl 0123456789abcdef uptime\n"
        "12.5 20.0\n"
        "@@opsctl 0123456789abcdef loadavg\n"  # a name repeated: not ours, ignored
        "9.99 9.99 9.99 1/2 3\n"
    )
    assert split_sections(text) == {
        "loadavg": "1.00 2.00 3.00 1/2 3\n@@opsctl ps\n@@opsctl 0011223344556677 ps\n",
        "uptime": "12.5 20.0\n",
    }
    assert split_sections("This account is currently not available.\n") == {}
    assert split_sections("") == {}


# --- facts parsers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distro", "expected"),
    [
        ("debian12", (0.67, 0.27, 0.22)),
        ("centos7", (38.52, 35.10, 30.77)),
        ("centos6", (2.15, 1.98, 1.87)),
        ("kylin-v10", (52.30, 48.75, 45.02)),
        ("busybox", (0.42, 0.35, 0.30)),
    ],
)
def test_parse_loadavg(distro: str, expected: tuple[float, float, float]) -> None:
    assert parse_loadavg(section(distro, "facts", "loadavg")) == expected


@pytest.mark.parametrize("text", ["", "1.0 2.0", "high medium low 1/2 3"])
def test_parse_loadavg_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a load average"):
        parse_loadavg(text)


@pytest.mark.parametrize(
    ("distro", "total", "available", "swap_total", "swap_free"),
    [
        ("debian12", 24683656, 23996976, 0, 0),
        ("centos7", 131746616, 10512744, 16777212, 11744048),
        # CentOS 6 (2.6.32) has no MemAvailable: MemFree + Buffers + Cached.
        ("centos6", 16333804, 612340 + 204812 + 9876540, 8388600, 8126456),
        ("kylin-v10", 535351296, 98765440, 16777152, 5872000),
        ("busybox", 1011564, 701236, 0, 0),
    ],
)
def test_parse_meminfo(
    distro: str, total: int, available: int, swap_total: int, swap_free: int
) -> None:
    values = parse_meminfo(section(distro, "facts", "meminfo"))
    assert values["MemTotal"] == total * KIB
    assert values["MemAvailable"] == available * KIB
    assert values["SwapTotal"] == swap_total * KIB
    assert values["SwapFree"] == swap_free * KIB


def test_parse_meminfo_counts_skips_and_caps_the_estimate() -> None:
    values = parse_meminfo(
        "MemTotal: 1000 kB\nMemFree: 900 kB\nCached: 500 kB\nHugePages_Total:   16\n"
        "garbage line\nBroken: x kB\n"
    )
    assert values == {
        "MemTotal": 1000 * KIB,
        "MemFree": 900 * KIB,
        "Cached": 500 * KIB,
        "HugePages_Total": 16,
        "MemAvailable": 1000 * KIB,  # the estimate never exceeds the total
    }
    assert parse_meminfo("") == {}


@pytest.mark.parametrize(
    ("distro", "percent"),
    [
        # 10-field lines: busy = all - idle - iowait, as psutil counts it.
        ("centos7", 84.4),  # 1350 busy of 1600 ticks
        ("kylin-v10", 88.5),  # 230 of 260
        ("busybox", 15.0),  # 30 of 200
        # 2.6.32: 9 fields (no guest_nice).
        ("centos6", 30.9),  # 250 of 810
    ],
)
def test_parse_proc_stat_cpu(distro: str, percent: float) -> None:
    sections = split_sections(stdout(distro, "facts"))
    assert parse_proc_stat_cpu(sections["stat1"], sections["stat2"]) == percent


def test_parse_proc_stat_cpu_leaves_guest_time_out_and_gives_up_on_bad_samples() -> None:
    # 100 ticks of guest time are already inside the 100 ticks of user time.
    first = "cpu  1000 0 0 1000 0 0 0 0 500 0\ncpu0 1 2 3 4\n"
    second = "cpu  1100 0 0 1100 0 0 0 0 600 0\nintr 1\n"
    assert parse_proc_stat_cpu(first, second) == 50.0
    assert parse_proc_stat_cpu(first, first) is None
    assert parse_proc_stat_cpu("", second) is None
    assert parse_proc_stat_cpu("cpu  1 2 3 x", second) is None
    assert parse_proc_stat_cpu("cpu  1 2 3 4 5", second) is None


@pytest.mark.parametrize(
    ("distro", "seconds"),
    [("centos7", 35596800.12), ("centos6", 8640123.45), ("kylin-v10", 1200.55)],
)
def test_parse_uptime(distro: str, seconds: float) -> None:
    assert parse_uptime(section(distro, "facts", "uptime")) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5 3", "nan 1"])
def test_parse_uptime_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not an uptime"):
        parse_uptime(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "his-db01 3.10.0-1160.el7.x86_64 x86_64\n",
            ("his-db01", "3.10.0-1160.el7.x86_64", "x86_64"),
        ),
        (
            "Linux vm 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0 x86_64 GNU/Linux\n",
            ("vm", "6.18.44-fc-v782", "x86_64"),
        ),
        (
            "Linux queue-display-03 5.10.160 #1 SMP Tue Jun 6 10:00:00 CST 2023 armv7l\n",
            ("queue-display-03", "5.10.160", "armv7l"),
        ),
        ("lonely\n", ("lonely", "", "")),
        ("", ("", "", "")),
    ],
)
def test_parse_uname(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_uname(text) == expected


@pytest.mark.parametrize(
    ("distro", "identity"),
    [
        ("debian12", ("Debian GNU/Linux", "12", "Debian GNU/Linux 12 (bookworm)")),
        ("centos7", ("CentOS Linux", "7", "CentOS Linux 7 (Core)")),
        ("centos6", ("CentOS", "6.10", "CentOS release 6.10 (Final)")),
        (
            "kylin-v10",
            ("Kylin Linux Advanced Server", "V10", "Kylin Linux Advanced Server V10 (Sword)"),
        ),
        ("busybox", ("Buildroot", "2023.02.2", "Buildroot 2023.02.2")),
    ],
)
def test_parse_os_identity(distro: str, identity: tuple[str, str, str]) -> None:
    sections = split_sections(stdout(distro, "facts"))
    assert parse_os_identity(sections["os-release"], sections["release"], "k") == identity


def test_parse_os_identity_without_any_release_file() -> None:
    assert parse_os_identity("", "", "4.19.90") == ("Linux", "4.19.90", "Linux 4.19.90")


# --- facts ---------------------------------------------------------------------------------


def test_facts_of_a_centos_7_database_server() -> None:
    facts = facts_from_output(stdout("centos7", "facts"), host="db01", now=NOW)
    assert facts == HostFacts(
        hostname="his-db01",
        os_name="CentOS Linux",
        os_version="7",
        os_pretty_name="CentOS Linux 7 (Core)",
        kernel="3.10.0-1160.el7.x86_64",
        architecture="x86_64",
        cpu_count=32,
        cpu_model="Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
        memory_total=131746616 * KIB,
        memory_available=10512744 * KIB,
        swap_total=16777212 * KIB,
        swap_used=(16777212 - 11744048) * KIB,
        uptime_seconds=35596800.12,
        boot_time=NOW - timedelta(seconds=35596800.12),
        load1=38.52,
        load5=35.10,
        load15=30.77,
        cpu_percent=84.4,
    )


@pytest.mark.parametrize(
    ("distro", "hostname", "arch", "cpus", "model", "cpu_percent"),
    [
        ("debian12", "vm", "x86_64", 2, "AMD EPYC", 51.5),
        ("debian12-busybox", "vm", "x86_64", 2, "AMD EPYC", 75.5),
        (
            "centos6",
            "lis-app02",
            "x86_64",
            16,
            "Intel(R) Xeon(R) CPU           E5620  @ 2.40GHz",
            30.9,
        ),
        ("kylin-v10", "pacs-db01", "aarch64", 96, "HiSilicon Kunpeng-920", 88.5),
        ("busybox", "queue-display-03", "armv7l", 4, "ARMv7 Processor rev 5 (v7l)", 15.0),
    ],
)
def test_facts_of_each_recorded_host(
    distro: str, hostname: str, arch: str, cpus: int, model: str, cpu_percent: float
) -> None:
    facts = facts_from_output(stdout(distro, "facts"), host="h", now=NOW)
    assert (facts.hostname, facts.architecture, facts.cpu_count, facts.cpu_model) == (
        hostname,
        arch,
        cpus,
        model,
    )
    assert facts.cpu_percent == cpu_percent
    assert facts.boot_time == NOW - timedelta(seconds=facts.uptime_seconds)


def test_facts_without_cpu_measurement() -> None:
    facts = facts_from_output(stdout("centos7", "facts"), host="h", now=NOW, measure_cpu=False)
    assert facts.cpu_percent is None


def test_facts_fill_in_defaults_for_missing_pieces() -> None:
    sections = split_sections(stdout("centos7", "facts"))
    text = "@@opsctl 00aa11bb22cc\n" + "".join(
        f"@@opsctl 00aa11bb22cc {name}\n{sections[name]}"
        for name in ("meminfo", "loadavg", "uptime")
    )
    facts = facts_from_output(text, host="db01", now=NOW)
    assert (facts.hostname, facts.os_name, facts.os_pretty_name, facts.kernel) == (
        "db01",
        "Linux",
        "Linux",
        "",
    )
    assert (facts.cpu_count, facts.cpu_model, facts.cpu_percent) == (1, "", None)


# --- mounts --------------------------------------------------------------------------------


def test_parse_df_on_centos_7_with_a_stale_nfs_share() -> None:
    sections = split_sections(stdout("centos7", "mounts"))
    mounts = parse_df(
        sections["df-k"], sections["df-i"], sections["mounts"], stderr("centos7", "mounts")
    )
    rows = [
        (
            m.mount,
            m.device,
            m.fstype,
            m.total_bytes // KIB,
            m.used_bytes // KIB,
            m.free_bytes // KIB,
        )
        + (m.inodes_total, m.inodes_used, m.error)
        for m in mounts
    ]
    assert rows == [
        ("/", "/dev/mapper/centos-root", "xfs", 52403200, 12345678, 40057522, 26214400, 181234, None),
        ("/dev", "devtmpfs", "devtmpfs", 65861180, 0, 65861180, 16465295, 612, None),
        ("/dev/shm", "tmpfs", "tmpfs", 65873308, 0, 65873308, 16468327, 1, None),
        ("/run", "tmpfs", "tmpfs", 65873308, 1234567, 64638741, 16468327, 1021, None),
        ("/sys/fs/cgroup", "tmpfs", "tmpfs", 65873308, 0, 65873308, 16468327, 16, None),
        ("/boot", "/dev/sda2", "xfs", 1038336, 190524, 847812, 524288, 340, None),
        # vfat has no inode table: df -i says 0 and "-".
        ("/boot/efi", "/dev/sda1", "vfat", 204580, 11468, 193112, None, None, None),
        ("/data", "/dev/mapper/datavg-data", "xfs", 1073217536, 998087172, 75130364, 536608768, 412345, None),
        ("/u01", "/dev/mapper/datavg-u01", "xfs", 209612800, 178170880, 31441920, 104806400, 298765, None),
        ("/home", "/dev/mapper/centos-home", "ext4", 10475520, 2097152, 8378368, 5242880, 4980736, None),
        (
            "/mnt/pacs_backup",
            "10.20.1.50:/export/pacs_backup",
            "nfs4",
            0,
            0,
            0,
            None,
            None,
            "not accessible: Stale file handle",
        ),
        ("/mnt/cdrom", "/dev/sr0", "iso9660", 4600876, 4600876, 0, None, None, None),
        ("/run/user/0", "tmpfs", "tmpfs", 13174664, 0, 13174664, 16468327, 1, None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("distro", "mount", "device", "fstype", "total_kib", "inodes", "error"),
    [
        ("centos6", "/", "/dev/mapper/vg_lisapp02-lv_root", "ext4", 51606140, 3276800, None),
        # coreutils 8.4 quotes `like this' in the C locale, and says "Stale NFS file handle".
        ("centos6", "/mnt/lis_share", "10.20.1.60:/lis_share", "nfs", 0, None, "not accessible: Stale NFS file handle"),
        ("kylin-v10", "/mnt/影像 共享", "//10.1.1.20/影像 共享", "cifs", 2147483648, None, None),
        ("kylin-v10", "/mnt/backup", "10.1.1.30:/backup", "nfs4", 0, None, "not accessible: Stale file handle"),
        ("kylin-v10", "/pacs", "/dev/mapper/datavg-pacs", "xfs", 10737418240, 1073741824, None),
        ("busybox", "/", "/dev/root", "ext4", 1983056, 131072, None),
        ("busybox", "/boot", "/dev/mmcblk0p1", "vfat", 65390, None, None),
        ("debian12", "/", "/dev/vda", "ext4", 264212084, 16777216, None),
        ("debian12-busybox", "/", "/dev/vda", "ext4", 264212084, 16777216, None),
    ],
)  # fmt: skip
def test_parse_df_rows_of_each_recorded_host(
    distro: str,
    mount: str,
    device: str,
    fstype: str,
    total_kib: int,
    inodes: int | None,
    error: str | None,
) -> None:
    sections = split_sections(stdout(distro, "mounts"))
    mounts = parse_df(
        sections["df-k"], sections["df-i"], sections["mounts"], stderr(distro, "mounts")
    )
    (found,) = [m for m in mounts if m.mount == mount]
    assert (found.device, found.fstype, found.total_bytes, found.inodes_total, found.error) == (
        device,
        fstype,
        total_kib * KIB,
        inodes,
        error,
    )


def test_parse_df_lists_each_mount_once_in_mount_table_order() -> None:
    # BusyBox lists /dev/shm twice (it was mounted twice); GNU df once.
    for distro in ("debian12", "debian12-busybox"):
        sections = split_sections(stdout(distro, "mounts"))
        mounts = [m.mount for m in parse_df(sections["df-k"], sections["df-i"], sections["mounts"])]
        assert mounts[:4] == ["/dev", "/dev/shm", "/", "/sys/fs/cgroup"]
        assert len(mounts) == len(set(mounts)) == 12


def test_parse_df_joins_a_device_wrapped_onto_its_own_line() -> None:
    # BusyBox without -P (and GNU df before 8.11) print a long device on a line of its own.
    text_kb = (
        "Filesystem           1K-blocks      Used Available Use% Mounted on\n"
        "/dev/root              1983056    612340   1268316  33% /\n"
        "/dev/mapper/vg_appliance-lv_data\n"
        "                      27262456  13631228  13631228  50% /data\n"
        "10.1.1.30:/export/pacs_backup_2024\n"
        "                     104857600  52428800  52428800  50% /mnt/backup\n"
    )
    proc_mounts = (
        "/dev/root / ext4 rw 0 0\n/dev/mapper/vg_appliance-lv_data /data ext4 rw 0 0\n"
        "10.1.1.30:/export/pacs_backup_2024 /mnt/backup nfs rw 0 0\n"
    )
    mounts = parse_df(text_kb, "", proc_mounts)
    assert [(m.mount, m.device, m.total_bytes // KIB, m.inodes_total) for m in mounts] == [
        ("/", "/dev/root", 1983056, None),
        ("/data", "/dev/mapper/vg_appliance-lv_data", 27262456, None),
        ("/mnt/backup", "10.1.1.30:/export/pacs_backup_2024", 104857600, None),
    ]


@pytest.mark.parametrize(
    "error_line",
    [
        "df: /mnt/my share: Stale file handle",  # BusyBox, coreutils without quoting
        "df: '/mnt/my share': Stale file handle",  # coreutils 8.25+ (shell quoting)
        "df: \u2018/mnt/my share\u2019: Stale file handle",  # coreutils 8.22, UTF-8 locale
        "df: `/mnt/my share': Stale file handle",  # coreutils 8.4, C locale
    ],
)
def test_parse_df_reads_error_lines_however_df_quotes_the_path(error_line: str) -> None:
    proc_mounts = "/dev/sda1 / xfs rw 0 0\nnas:/share /mnt/my\\040share nfs rw 0 0\n"
    text_kb = (
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 40 60 40% /\n"
    )
    mounts = parse_df(text_kb, "", proc_mounts, error_line + "\n")
    assert mounts[1] == MountUsage(
        "/mnt/my share", "nas:/share", "nfs", 0, 0, 0, error="not accessible: Stale file handle"
    )


def test_parse_df_shell_quoted_control_characters_and_unknown_errors() -> None:
    proc_mounts = "/dev/sda1 / xfs rw 0 0\nnas:/a /mnt/a\\012b nfs rw 0 0\n"
    text_kb = "/dev/sda1 100 40 60 40% /\n"
    errors = "df: '/mnt/a'$'\\n''b': Stale file handle\ndf: /not/mounted: No such file\n"
    mounts = parse_df(text_kb, "", proc_mounts, errors)
    assert [(m.mount, m.error) for m in mounts] == [
        ("/", None),
        ("/mnt/a\nb", "not accessible: Stale file handle"),
    ]


def test_parse_df_without_mount_table_and_with_negative_available() -> None:
    mounts = parse_df("/dev/sdb1 1000 1000 -50 100% /full\n", "/dev/sdb1 - - - - /full\n", "")
    assert mounts == [MountUsage("/full", "/dev/sdb1", "", 1000 * KIB, 1000 * KIB, 0)]


def test_parse_proc_mounts_decodes_escapes_and_keeps_the_visible_mount() -> None:
    table = parse_proc_mounts(
        "rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
        "//nas/a\\040b /mnt/back\\134slash cifs rw 0 0\nshort line\n"
    )
    assert table == {"/": ("/dev/sda1", "ext4"), "/mnt/back\\slash": ("//nas/a b", "cifs")}


# --- processes -----------------------------------------------------------------------------


def test_parse_ps_procps_format() -> None:
    processes = {p.pid: p for p in parse_ps(section("centos7", "processes", "ps"))}
    assert len(processes) == 21
    assert processes[3310] == ProcessInfo(
        pid=3310,
        ppid=1,
        name="java",
        cmdline="/usr/bin/java -Xms4g -Xmx6g -Dcatalina.base=/opt/tomcat -classpath "
        "/opt/tomcat/bin/bootstrap.jar org.apache.catalina.startup.Bootstrap start",
        username="tomcat",
        status="sleeping",
        rss_bytes=5767168 * KIB,
    )
    # Kernel threads and zombies have no command line; setproctitle names end at ":".
    assert (processes[2].name, processes[2].cmdline) == ("kthreadd", "")
    assert (processes[5120].name, processes[5120].cmdline, processes[5120].status) == (
        "sh",
        "",
        "zombie",
    )
    assert processes[2102].name == "nginx"
    assert processes[6002].status == "disk-sleep"


def test_parse_ps_busybox_columns_with_scaled_rss() -> None:
    processes = {p.pid: p for p in parse_ps(section("debian12-busybox", "processes", "ps"))}
    assert processes[2184] == ProcessInfo(
        pid=2184,
        ppid=2183,
        name="postgres",
        cmdline="postgres: 15/main: checkpointer ",
        username="postgres",
        status="sleeping",
        rss_bytes=58 * 1024 * KIB,  # BusyBox shows "58m"
    )
    # BusyBox cuts user names to 8 characters, and its comm to 15.
    assert processes[2938].username == "mosquitt"
    assert processes[3].name == "pool_workqueue_"
    # "{comm} args" when comm is not the program's name: the prefix is not command line.
    assert processes[24291].name == "his worker (1)"
    assert processes[24291].cmdline.startswith("/usr/bin/python3 -c import ctypes")
    assert processes[24290].name == "ora_pmon_EMRPROD"


def test_parse_ps_plain_busybox_formats() -> None:
    desktop = parse_ps(section("busybox", "processes", "ps"))
    assert desktop[6] == ProcessInfo(
        pid=201,
        ppid=0,
        name="queue-display",
        cmdline="/usr/bin/queue-display --config /etc/queue/display.conf --window 叫号屏",
        username="root",
        status="",
        rss_bytes=None,
    )
    assert (desktop[1].name, desktop[1].cmdline) == ("kthreadd", "")
    # BusyBox built without CONFIG_DESKTOP (ps.c's other format).
    small = parse_ps(
        "  PID USER       VSZ STAT COMMAND\n"
        "    1 root      1528 S    init\n"
        "  214 root      1532 S    /usr/sbin/telnetd -F\n"
        "  301 nobody    9120 Z    [dnsmasq]\n"
    )
    assert [(p.pid, p.name, p.username, p.status, p.cmdline) for p in small] == [
        (1, "init", "root", "sleeping", "init"),
        (214, "telnetd", "root", "sleeping", "/usr/sbin/telnetd -F"),
        (301, "dnsmasq", "nobody", "zombie", ""),
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "garbage here\n", "PID USER\n1 root\n", "x y z\n"])
def test_parse_ps_skips_what_it_cannot_read(text: str) -> None:
    assert parse_ps(text) == []


def test_parse_proc_pid_stat_reads_awkward_comms_and_drops_forgeries() -> None:
    tail = " S 1 5 5 0 -1 4194304 10 0 0 0 7 3 0 0 20 0 1 0 999 1000 20"
    text = (
        "93790.02 360035.80\n"
        f"10 (his worker (1)){tail}\n"
        f"11 (a\nb) c){tail}\n"
        "12 garbage that is not a record\n"
        # a process naming itself like another's record cannot complete one in 15 bytes
        f"13 (\n14 (x)){tail}\n"
        f"14 (x){tail}\n"
    )
    records = parse_proc_pid_stat(text)
    assert sorted(records) == [10, 11, 13, 14]
    assert records[10].comm == "his worker (1)"
    assert records[11].comm == "a\nb) c"
    assert records[13].comm == "\n14 (x)"
    assert (records[10].ppid, records[10].cpu_ticks, records[10].start_ticks) == (1, 10, 999)
    doubled = parse_proc_pid_stat(f"14 (x){tail}\n14 (y){tail}\n15 (z){tail}")
    assert sorted(doubled) == [15]


def test_extend_name_as_psutil_does() -> None:
    assert extend_name("ora_pmon_EMRPRO", "ora_pmon_EMRPROD") == "ora_pmon_EMRPROD"
    assert extend_name("ora_pmon_EMRPRO", "/u01/bin/other x") == "ora_pmon_EMRPRO"
    assert extend_name("nginx", "nginx: master process") == "nginx"


def test_processes_of_centos_7_with_cpu_and_own_pids() -> None:
    processes, own = processes_from_output(stdout("centos7", "processes"), host="db01")
    by_pid = {p.pid: p for p in processes}
    assert own == {7004, 7020}
    # 45 ticks of 100 Hz in 0.5 s of uptime: 90% of one CPU.
    assert by_pid[3310].cpu_percent == pytest.approx(90.0)
    assert by_pid[2102].cpu_percent == pytest.approx(2.0)
    assert by_pid[7020].cpu_percent is None  # ps started after the samples
    assert by_pid[4410].name == "ora_pmon_EMRPROD"
    assert by_pid[6001].name == "backup.sh"  # a script's comm, not "bash"


def test_processes_of_a_busybox_appliance_take_parents_and_states_from_proc() -> None:
    processes, own = processes_from_output(stdout("busybox", "processes"), host="display")
    by_pid = {p.pid: p for p in processes}
    assert own == {1391, 1402}  # the shell and the plain "ps" that shows no parents
    assert by_pid[201] == ProcessInfo(
        pid=201,
        ppid=1,
        name="queue-display",
        cmdline="/usr/bin/queue-display --config /etc/queue/display.conf --window 叫号屏",
        username="root",
        status="sleeping",
        rss_bytes=None,
        cpu_percent=pytest.approx(42.0),  # type: ignore[arg-type]
    )
    assert by_pid[3].status == "idle"


def test_processes_recorded_here_with_gnu_and_busybox_agree() -> None:
    gnu, gnu_own = processes_from_output(stdout("debian12", "processes"), host="vm")
    busybox, busybox_own = processes_from_output(stdout("debian12-busybox", "processes"), host="vm")
    staged = range(24289, 24299)
    fields = [(p.pid, p.ppid, p.name, p.status) for p in gnu if p.pid in staged]
    assert fields == [(p.pid, p.ppid, p.name, p.status) for p in busybox if p.pid in staged]
    assert len(gnu) == len(busybox) == 85
    assert [p.name for p in gnu if p.pid in gnu_own] == ["sh", "ps"]
    assert [p.name for p in busybox if p.pid in busybox_own] == ["sh", "ps"]
    busy = {p.pid: p for p in gnu}[24295]
    assert (busy.cmdline, busy.status) == ("/usr/bin/python3 -c while True: pass", "running")
    assert busy.cpu_percent == pytest.approx(100.0, abs=5)


# --- the source and the checks -------------------------------------------------------------


@pytest.mark.parametrize("distro", DISTROS)
def test_remote_source_replays_each_host(distro: str) -> None:
    runner = ReplayRunner(distro)
    source = RemoteSource(runner, name="h", timeout=20)
    facts = source.facts()
    expected = facts_from_output(stdout(distro, "facts"), host="h", now=facts.boot_time)
    assert dataclasses.replace(facts, boot_time=expected.boot_time) == expected
    assert abs(datetime.now(UTC) - facts.boot_time - timedelta(seconds=facts.uptime_seconds)) < (
        timedelta(seconds=60)
    )
    assert source.mounts() == mounts_from_output(
        stdout(distro, "mounts"), host="h", stderr=stderr(distro, "mounts")
    )
    if distro in WITH_PROCESSES:
        processes, own = processes_from_output(stdout(distro, "processes"), host="h")
        assert source.own_pids() == frozenset()
        assert source.processes() == processes
        assert source.own_pids() == own
    # Only the constants were sent; the sampling commands get the sleep on top of timeout.
    allowed = set(runner.names)
    assert all(command in allowed for command, _ in runner.sent)
    assert [timeout for _, timeout in runner.sent][:2] == [20.5, 20]


def test_centos_7_through_the_checks() -> None:
    source = RemoteSource(ReplayRunner("centos7"), name="db01", timeout=20)
    host = evaluate_host(source.facts(), HostConfig())
    assert {i.key: i.verdict for i in host.items if i.verdict != State.OK} == {
        "host.memory_used": State.WARNING
    }
    filesystems = evaluate_mounts(source.mounts(), FilesystemConfig())
    troubled = {
        (i.key, i.item.split()[1]): i.verdict for i in filesystems.items if i.verdict != State.OK
    }
    assert troubled == {
        ("filesystem.used", "/data"): State.CRITICAL,
        ("filesystem.used", "/u01"): State.WARNING,
        ("filesystem.inodes_used", "/home"): State.CRITICAL,
        ("filesystem.used", "/mnt/pacs_backup"): State.CRITICAL,
    }
    assert filesystems.details["skipped"]["pseudo"]["/mnt/cdrom"] == "iso9660"
    processes = source.processes()
    own = source.own_pids()
    nginx = evaluate_processes(processes, ProcessConfig(process="nginx"), own)
    assert nginx.summary == "3 processes matching 'nginx', 27 MB RSS"
    pmon = evaluate_processes(processes, ProcessConfig(process="ora_pmon_EMRPROD"), own)
    assert pmon.state == State.OK
    zombies = evaluate_processes(processes, ProcessConfig(state="Z"), own)
    assert zombies.details["pids"] == [5120, 5121]
    # Our own shell's command line holds "LC_MESSAGES"; it is not counted.
    ours = evaluate_processes(processes, ProcessConfig(match="LC_MESSAGES", count=None), own)
    assert ours.details["pids"] == []
    java = evaluate_processes(
        processes, ProcessConfig(match="catalina", cpu_warn="80%", cpu_crit="95%"), own
    )
    assert (java.state, [i.value for i in java.items if i.key == "process.cpu"]) == (
        State.WARNING,
        ["90.0%"],
    )


def test_remote_and_local_records_give_the_same_item_keys() -> None:
    local_facts = LocalSource(cpu_interval=0).facts()
    for distro in DISTROS:
        source = RemoteSource(ReplayRunner(distro), name="h", timeout=20)
        remote = evaluate_host(source.facts(), HostConfig())
        local = evaluate_host(local_facts, HostConfig())
        assert [i.key for i in remote.items] == [i.key for i in local.items]


# --- the real commands on this machine -----------------------------------------------------


def test_commands_run_by_a_real_shell_match_the_local_source() -> None:
    source = RemoteSource(shell_runner, name="localhost", timeout=30, cpu_interval=0.2)
    local = LocalSource(cpu_interval=0)

    facts, local_facts = source.facts(), local.facts()
    assert facts.cpu_count == local_facts.cpu_count
    assert (facts.hostname, facts.kernel, facts.architecture) == (
        local_facts.hostname,
        local_facts.kernel,
        local_facts.architecture,
    )
    assert (facts.os_name, facts.os_pretty_name, facts.cpu_model) == (
        local_facts.os_name,
        local_facts.os_pretty_name,
        local_facts.cpu_model,
    )
    assert facts.memory_total == local_facts.memory_total
    assert facts.cpu_percent is not None
    assert abs(facts.boot_time - local_facts.boot_time) < timedelta(seconds=5)
    host_keys = [i.key for i in evaluate_host(facts, HostConfig()).items]
    assert host_keys == [i.key for i in evaluate_host(local_facts, HostConfig()).items]

    mounts = {m.mount: m for m in source.mounts()}
    local_mounts = {m.mount: m for m in local.mounts()}
    assert (mounts["/"].device, mounts["/"].fstype) == (
        local_mounts["/"].device,
        local_mounts["/"].fstype,
    )
    assert mounts["/"].total_bytes == local_mounts["/"].total_bytes
    remote_result = evaluate_mounts(list(mounts.values()), FilesystemConfig())
    local_result = evaluate_mounts(list(local_mounts.values()), FilesystemConfig())
    assert sorted(i.item for i in remote_result.items) == sorted(i.item for i in local_result.items)

    processes = {p.pid: p for p in source.processes()}
    own = source.own_pids()
    init_pid = 1
    assert init_pid in processes
    assert processes[init_pid].name == psutil_name(init_pid)
    shell = min(own)
    assert processes[shell].cmdline.startswith(("/bin/sh -c ", "sh -c "))
    assert any(processes[pid].name == "ps" and processes[pid].ppid == shell for pid in own)
    assert processes[os.getpid()].name == psutil_name(os.getpid())


def psutil_name(pid: int) -> str:
    import psutil

    return psutil.Process(pid).name()


@pytest.fixture
def busybox_path(tmp_path: Path) -> Path:
    """A PATH holding BusyBox applets only, like an appliance's."""
    busybox = need_executable("busybox", "busybox")
    for applet in ("sh", "df", "ps", "cat", "head", "sed", "od", "tr", "uname", "nproc", "sleep"):
        (tmp_path / applet).symlink_to(busybox)
    for applet in ("grep", "date", "echo"):
        (tmp_path / applet).symlink_to(busybox)
    return tmp_path


def test_commands_run_by_busybox_applets(busybox_path: Path) -> None:
    def runner(command: str, timeout: float) -> CommandOutput:
        done = subprocess.run(
            [str(busybox_path / "sh"), "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": str(busybox_path)},
            check=False,
        )
        return CommandOutput(done.returncode, done.stdout, done.stderr)

    source = RemoteSource(runner, name="appliance", timeout=30, cpu_interval=0.2)
    local = LocalSource(cpu_interval=0)
    assert source.facts().cpu_count == local.facts().cpu_count
    assert "/" in {m.mount for m in source.mounts()}
    processes = {p.pid: p for p in source.processes()}
    assert processes.get(1) is not None, "pid 1 (init) is missing"
    assert any(processes[pid].cmdline.startswith("ps -o") for pid in source.own_pids())


# --- hostile data --------------------------------------------------------------------------


def test_hostile_mount_points_and_devices_stay_data() -> None:
    # Recorded with tmpfs mounted at these paths (tests/fixtures/remote/README.md).
    for distro in ("debian12", "debian12-busybox"):
        source = RemoteSource(ReplayRunner(distro), name="h; reboot", timeout=5)
        mounts = {m.mount: m for m in source.mounts()}
        for name in ("my share", "x; rm -rf ~", "$(reboot)", "new\nline", "1 2 3 4% /fake"):
            assert mounts[f"/tmp/opsctl-rec/{name}"].total_bytes == 16 * 1024 * KIB
        assert mounts["/tmp/opsctl-rec/quote's"].fstype == "tmpfs"
        assert mounts["/tmp/opsctl-rec/dev"].device == "forged\n@@opsctl ps"


def test_hostile_process_names_and_arguments_stay_data() -> None:
    for distro in ("debian12", "debian12-busybox"):
        runner = ReplayRunner(distro)
        source = RemoteSource(runner, name="$(reboot)", timeout=5)
        processes = {p.pid: p for p in source.processes()}
        forged = processes[24289]
        # The process renamed itself "\n@@opsctl ps\n": a name, not a section marker.
        assert forged.name == "\n@@opsctl ps\n"
        assert forged.ppid == 1
        if distro == "debian12":
            assert forged.cmdline.endswith("@@opsctl ps  /mnt/x; rm -rf ~ $(reboot) two lines")
        assert len(processes) == 85
        assert [command for command, _ in runner.sent] == [render_command(PROCESSES_COMMAND, 0.5)]


def test_the_source_sends_nothing_but_the_constants() -> None:
    runner = ReplayRunner("kylin-v10", cpu_interval=1.0)
    source = RemoteSource(runner, name="/mnt/x; rm -rf ~ $(reboot)\n", timeout=5, cpu_interval=1.0)
    source.facts()
    source.mounts()
    sent = [command for command, _ in runner.sent]
    assert sent == [render_command(FACTS_COMMAND, 1.0), MOUNTS_COMMAND]
    assert all("reboot" not in command and "/mnt/x" not in command for command in sent)


# --- failures ------------------------------------------------------------------------------


def test_runner_errors_propagate_as_check_errors() -> None:
    def unreachable(command: str, timeout: float) -> CommandOutput:
        raise CheckError("db01: connection refused")

    def broken(command: str, timeout: float) -> CommandOutput:
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(CheckError, match="db01: connection refused"):
        RemoteSource(unreachable, name="db01", timeout=5).facts()
    with pytest.raises(CheckError, match="^db01: Connection reset by peer$"):
        RemoteSource(broken, name="db01", timeout=5).mounts()


@pytest.mark.parametrize("method", ["facts", "mounts", "processes"])
def test_an_account_without_a_shell_is_a_clear_check_error(method: str) -> None:
    def nologin(command: str, timeout: float) -> CommandOutput:
        return CommandOutput(1, "This account is currently not available.\n", "")

    def no_proc(command: str, timeout: float) -> CommandOutput:
        return CommandOutput(127, "", "sh: 1: od: not found\ncat: /proc/meminfo: denied\n")

    with pytest.raises(
        CheckError, match=rf"^db01: no answer from the {method} command \(exit 1\)$"
    ):
        getattr(RemoteSource(nologin, name="db01", timeout=5), method)()
    with pytest.raises(CheckError, match=r"^db01: .*\(exit 127: sh: 1: od: not found\)$"):
        getattr(RemoteSource(no_proc, name="db01", timeout=5), method)()


def test_output_without_the_essentials_is_a_check_error() -> None:
    text = "@@opsctl abcdef123456\n@@opsctl abcdef123456 meminfo\nMemTotal: 1000 kB\n"
    with pytest.raises(CheckError, match=r"^h: unreadable /proc: not a load average"):
        facts_from_output(text, host="h", now=NOW, stderr="cat: /proc/loadavg: No such file\n")
    with pytest.raises(CheckError, match="no /proc/meminfo"):
        facts_from_output(
            "@@opsctl abcdef123456\n@@opsctl abcdef123456 loadavg\n1 2 3\n", host="h", now=NOW
        )
    with pytest.raises(CheckError, match=r"^h: df listed no filesystem \(exit 1: df: no file"):
        mounts_from_output(
            "@@opsctl abcdef123456\n@@opsctl abcdef123456 df-k\n",
            host="h",
            exit_status=1,
            stderr="df: no file systems processed\n",
        )
    with pytest.raises(CheckError, match="ps listed no process"):
        processes_from_output("@@opsctl abcdef123456\n@@opsctl abcdef123456 ps\n", host="h")


@pytest.mark.parametrize("distro", DISTROS)
def test_truncated_output_gives_records_or_a_check_error(distro: str) -> None:
    # A connection cut at any point: never anything but data or CheckError.
    for command in ("facts", "mounts", "processes"):
        path = FIXTURES / distro / f"{command}.out"
        if not path.exists():
            continue
        text = path.read_text()
        for end in range(0, len(text), max(len(text) // 60, 1)):
            try:
                if command == "facts":
                    facts_from_output(text[:end], host="h", now=NOW)
                elif command == "mounts":
                    mounts_from_output(text[:end], host="h")
                else:
                    processes_from_output(text[:end], host="h")
            except CheckError:
                pass


def test_unicode_line_separators_in_data_do_not_split_lines() -> None:
    # str.splitlines would cut at U+2028 and U+0085; the parsers cut at newlines only.
    text = (
        "@@opsctl 0123456789abcdef\n@@opsctl 0123456789abcdef ps\n"
        "   10     1 root  S   100 /opt/his/bin/worker --name a\u2028b\x85c\n"
    )
    (process,) = parse_ps(split_sections(text)["ps"])
    assert process.cmdline == "/opt/his/bin/worker --name a\u2028b\x85c"
