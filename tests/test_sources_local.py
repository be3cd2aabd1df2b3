"""Host sources: the text parsers on recorded files, records as JSON, ``source_for``, and
one pass of the real psutil path on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from opsctl.contract import CheckError
from opsctl.sources import HostFacts, MountUsage, ProcessInfo, format_bytes, source_for
from opsctl.sources.local import LocalSource, parse_cpu_model, parse_os_release

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("fixture", "name", "version", "pretty", "identifier"),
    [
        ("debian-12", "Debian GNU/Linux", "12", "Debian GNU/Linux 12 (bookworm)", "debian"),
        ("centos-7", "CentOS Linux", "7", "CentOS Linux 7 (Core)", "centos"),
        (
            "kylin-v10",
            "Kylin Linux Advanced Server",
            "V10",
            "Kylin Linux Advanced Server V10 (Sword)",
            "kylin",
        ),
        ("uos-server-20", "UnionTech OS Server 20", "20", "UnionTech OS Server 20", "uos"),
    ],
)
def test_parse_os_release_on_recorded_files(
    fixture: str, name: str, version: str, pretty: str, identifier: str
) -> None:
    values = parse_os_release((FIXTURES / "os-release" / fixture).read_text())
    assert values["NAME"] == name
    assert values["VERSION_ID"] == version
    assert values["PRETTY_NAME"] == pretty
    assert values["ID"] == identifier


def test_parse_os_release_quotes_escapes_and_comments() -> None:
    text = (
        "# written by hand\n"
        "\n"
        "NAME='Single Quoted'\n"
        'PRETTY_NAME="Say \\"hi\\" for \\$5"\n'
        "ID=bare\n"
        "  VERSION_ID = broken\n"
        "not a variable line\n"
        'EMPTY=""\n'
    )
    assert parse_os_release(text) == {
        "NAME": "Single Quoted",
        "PRETTY_NAME": 'Say "hi" for $5',
        "ID": "bare",
        "EMPTY": "",
    }


def test_centos_7_keeps_every_variable() -> None:
    values = parse_os_release((FIXTURES / "os-release" / "centos-7").read_text())
    assert values["CPE_NAME"] == "cpe:/o:centos:centos:7"
    assert values["REDHAT_SUPPORT_PRODUCT_VERSION"] == "7"
    assert len(values) == 14


@pytest.mark.parametrize(
    ("fixture", "model"),
    [("amd-epyc-vm.txt", "AMD EPYC"), ("kunpeng-920.txt", "HiSilicon Kunpeng-920")],
)
def test_parse_cpu_model_on_recorded_cpuinfo(fixture: str, model: str) -> None:
    assert parse_cpu_model((FIXTURES / "cpuinfo" / fixture).read_text()) == model


def test_parse_cpu_model_names_unknown_arm_parts_by_number() -> None:
    text = "processor\t: 0\nCPU implementer\t: 0x70\nCPU part\t: 0x999\n"
    assert parse_cpu_model(text) == "Phytium part 0x999"
    assert parse_cpu_model("processor\t: 0\n") == ""


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (1536, "1.5 KB"), (26214400, "25 MB"), (2 * 1024**4, "2.0 TB")],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_records_round_trip_through_json() -> None:
    data = json.loads((FIXTURES / "host" / "kylin-v10-kunpeng-swapping.json").read_text())
    facts = HostFacts.from_dict(data)
    assert facts.boot_time == datetime(2025, 4, 2, 8, 10, tzinfo=UTC)
    assert HostFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts
    mount = MountUsage("/data", "/dev/sdb1", "xfs", 100, 60, 40, 10, 2)
    assert MountUsage.from_dict(mount.to_dict()) == mount
    process = ProcessInfo(1, 0, "systemd", "/sbin/init", "root", "sleeping", 4096)
    assert ProcessInfo.from_dict(process.to_dict()) == process


def test_from_dict_refuses_missing_unknown_and_naive_times() -> None:
    data = json.loads((FIXTURES / "host" / "kylin-v10-kunpeng-swapping.json").read_text())
    with pytest.raises(ValueError, match="missing fields hostname"):
        HostFacts.from_dict({k: v for k, v in data.items() if k != "hostname"})
    with pytest.raises(ValueError, match="unknown fields temperature"):
        HostFacts.from_dict({**data, "temperature": 41})
    with pytest.raises(ValueError, match="has no time zone"):
        HostFacts.from_dict({**data, "boot_time": "2025-04-02T08:10:00"})


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        (
            "agent",
            "his-db01 reports through opsctl-agent: its checks are judged from what it "
            "pushed to the store, and this run has no store",
        ),
        ("telnet", "his-db01: unknown transport 'telnet'"),
    ],
)
def test_source_for_remote_transports_raises_check_error(transport: str, message: str) -> None:
    target = SimpleNamespace(name="his-db01", address="10.1.2.3", transport=transport)
    with pytest.raises(CheckError) as raised:
        source_for(target)
    assert str(raised.value).startswith(message)


def test_source_for_local_and_for_a_target_without_transport() -> None:
    assert isinstance(source_for(SimpleNamespace(name="here", transport="local")), LocalSource)
    assert isinstance(source_for(SimpleNamespace(name="here")), LocalSource)


# The one place the real psutil path runs: assertions are about structure and
# consistency, never about how busy this machine happens to be.


def test_local_facts_are_consistent() -> None:
    facts = LocalSource(cpu_interval=0.05).facts()
    assert isinstance(facts.hostname, str) and facts.hostname
    assert facts.cpu_count == os.cpu_count()
    assert 0 < facts.memory_available <= facts.memory_total
    assert facts.swap_used <= facts.swap_total
    assert facts.boot_time.tzinfo is not None
    assert facts.boot_time < datetime.now(UTC)
    assert isinstance(facts.cpu_percent, float)
    assert facts.kernel == os.uname().release
    assert facts.architecture == os.uname().machine
    assert HostFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_local_facts_without_a_cpu_sample() -> None:
    assert LocalSource(cpu_interval=0).facts().cpu_percent is None


def test_local_mounts_include_root_and_add_up() -> None:
    mounts = {m.mount: m for m in LocalSource().mounts()}
    root = mounts["/"]
    assert root.error is None
    assert root.total_bytes > 0
    assert root.used_bytes + root.free_bytes <= root.total_bytes
    for usage in mounts.values():
        assert usage.used_bytes <= usage.total_bytes
        if usage.inodes_total is not None:
            assert 0 <= usage.inodes_used <= usage.inodes_total


def test_local_processes_include_this_one() -> None:
    source = LocalSource(cpu_interval=0.05)
    processes = {p.pid: p for p in source.processes()}
    me = processes[os.getpid()]
    assert me.ppid == os.getppid()
    assert "python" in me.name or "pytest" in me.name
    assert "pytest" in me.cmdline or "py.test" in me.cmdline or "python" in me.cmdline
    assert me.rss_bytes and me.rss_bytes > 0
    assert me.status in {"running", "sleeping"}
    assert source.own_pids() == {os.getpid(), os.getppid()}


def test_check_modules_do_not_import_psutil() -> None:
    # The CLI imports every check kind to list them; psutil must wait until one observes.
    code = (
        "import sys, checks.host, checks.filesystem, checks.process, opsctl.sources.local; "
        "print('psutil' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_registry_finds_the_three_kinds_with_their_descriptions() -> None:
    from opsctl.registry import load

    descriptions = {
        kind: (load(kind).__doc__ or "").splitlines()[0]
        for kind in ("host", "filesystem", "process")
    }
    assert descriptions == {
        "host": "Host configuration and load: OS, kernel, CPU, memory, swap, load average, uptime.",
        "filesystem": "Space and inodes used on each mounted filesystem, against % used or a "
        "free-space floor.",
        "process": "Processes by name, command line, user or state: how many run, their memory "
        "and CPU.",
    }


def test_a_share_that_does_not_answer_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsctl.sources import local

    released = threading.Event()

    def hanging_statvfs(path: str) -> os.statvfs_result:
        released.wait(5)  # stands for a dead NFS server: statvfs blocks in the kernel
        raise OSError("gone")

    monkeypatch.setattr(local.os, "statvfs", hanging_statvfs)
    try:
        with pytest.raises(TimeoutError, match="no answer within 0.05s"):
            local._statvfs("/backup", 0.05)
    finally:
        released.set()
    monkeypatch.undo()
    assert local._statvfs("/", 1.0).f_blocks > 0
