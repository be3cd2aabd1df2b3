"""The interface_log check on recorded log fixtures (tests/fixtures/logs/interface/), on files
written by the tests (incremental runs, silence), and over SSH against the loopback sshd."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import need
from pydantic import ValidationError
from sshd_fixtures import ClientKeys, SshServer

import checks.interface_log as interface_log
from checks.interface_log import (
    Clock,
    InterfaceLogCheck,
    InterfaceLogConfig,
    Scan,
    active_time,
    make_scanner,
)
from opsctl import registry
from opsctl.contract import CheckResult, State
from opsctl.inventory import LogSource, load
from opsctl.masking import id_check_digit
from opsctl.ssh import SshPool

FIXTURES = Path(__file__).parent / "fixtures" / "logs" / "interface"


def at(text: str) -> datetime:
    """A time written in Asia/Shanghai (UTC+8, no DST), as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the check's clock: ``now("2026-11-01 09:40")`` (Asia/Shanghai)."""

    def set_now(text: str) -> None:
        monkeypatch.setattr(interface_log, "utc_now", lambda: at(text))

    return set_now


def source(path: Path | str, name: str = "upload", encoding: str = "utf-8") -> LogSource:
    return LogSource(name=name, path=str(path), encoding=encoding)


def run(target: LogSource, previous: CheckResult | None = None, **options: Any) -> CheckResult:
    options.setdefault("start_at_end", False)
    config = InterfaceLogConfig(**options)
    result = InterfaceLogCheck(config, timeout=30, previous=previous).run(target)
    json.dumps(result.to_dict())  # everything in it is JSON
    return result


def metric(result: CheckResult, name: str, target: str) -> float:
    found = [m for m in result.metrics if m.name == name and m.labels == {"target": target}]
    assert len(found) == 1, (name, target, result.metrics)
    return found[0].value


def item(result: CheckResult, key: str, target: str) -> Any:
    found = [i for i in result.items if i.key == key and f" {target} /" in i.item]
    assert len(found) == 1, (key, target, result.items)
    return found[0]


# --------------------------------------------------------------------------- parsers, statistics


def test_the_kv_fixture_gives_exact_statistics(now: Any) -> None:
    now("2026-11-01 09:40")
    result = run(source(FIXTURES / "kv.log"), silence=None)
    national = result.details["targets"]["NATIONAL"]
    assert national == {
        "lines": 5,
        "failed": 1,
        "success_rate": 80.0,
        "records": 150,
        "latency_p50": 300,
        "latency_p95": 3000,
        "latency_max": 3000,
        "latency_sum": 4000,
        "latency_count": 5,
        "latency_rounded": False,
        "errors": [["E101 timeout waiting for reply", 1]],
        "excerpts": [
            "2026-11-01 08:10:00.000 INFO  [upload] target=NATIONAL batch=100003 records=10 "
            "status=FAIL latency_ms=3000 error=E101 timeout waiting for reply"
        ],
        "last_seen": "2026-11-01T01:30:00+00:00",
    }
    vendor = result.details["targets"]["VENDOR_A"]
    assert (vendor["lines"], vendor["failed"], vendor["records"]) == (2, 1, 12)
    assert (vendor["latency_p50"], vendor["latency_p95"], vendor["latency_max"]) == (50, 60, 60)
    dispenser = result.details["targets"]["DISP_01"]
    assert (dispenser["lines"], dispenser["failed"], dispenser["records"]) == (1, 0, 1)
    assert "latency_p95" not in dispenser
    assert result.details["unparsed"] == 2

    assert metric(result, "success_rate", "NATIONAL") == 80.0
    assert metric(result, "lines", "NATIONAL") == 5
    assert metric(result, "failed", "VENDOR_A") == 1
    assert metric(result, "records", "VENDOR_A") == 12
    assert metric(result, "latency_p95", "NATIONAL") == 3000
    assert metric(result, "latency_p50", "NATIONAL") == 300
    assert metric(result, "latency_max", "VENDOR_A") == 60
    assert item(result, "interface_log.success", "NATIONAL").verdict == State.CRITICAL
    assert item(result, "interface_log.success", "DISP_01").verdict == State.OK
    assert "E101" in item(result, "interface_log.success", "NATIONAL").advice
    assert result.state == State.CRITICAL
    assert result.summary.startswith("NATIONAL: 80.00% ok (1 of 5 failed)")


def test_hourly_aggregates_are_per_target_and_utc_hour(now: Any) -> None:
    now("2026-11-01 09:40")
    hourly = run(source(FIXTURES / "kv.log")).details["hourly"]
    assert hourly["NATIONAL"] == {
        "2026-11-01T00": {"lines": 3, "failed": 1, "records": 80, "latency_sum": 3300},
        "2026-11-01T01": {"lines": 2, "failed": 0, "records": 70, "latency_sum": 700},
    }
    assert hourly["VENDOR_A"] == {
        "2026-11-01T00": {"lines": 1, "failed": 0, "records": 5, "latency_sum": 50},
        "2026-11-01T01": {"lines": 1, "failed": 1, "records": 7, "latency_sum": 60},
    }
    assert hourly["DISP_01"] == {
        "2026-11-01T01": {"lines": 1, "failed": 0, "records": 1, "latency_sum": 0}
    }


def test_json_lines_with_their_own_field_names(now: Any) -> None:
    now("2026-11-01 09:50")
    fields = {
        "ts": "time",
        "target": "dest",
        "status": "result",
        "latency_ms": "cost",
        "records": "count",
        "error": "msg",
    }
    result = run(source(FIXTURES / "json.log"), format="json", fields=fields)
    national = result.details["targets"]["NATIONAL"]
    assert (national["lines"], national["failed"], national["records"]) == (2, 1, 10)
    assert national["errors"] == [['{"code": "E7", "text": "gateway timeout"}', 1]]
    vendor = result.details["targets"]["VENDOR_B"]
    assert (vendor["lines"], vendor["failed"], vendor["records"]) == (2, 1, 3)
    assert (vendor["latency_p50"], vendor["latency_max"]) == (80.5, 90)
    assert vendor["errors"] == [["HTTP 500", 1]]
    assert vendor["last_seen"] == "2026-11-01T01:45:00+00:00"  # epoch seconds
    assert result.details["hourly"]["VENDOR_B"] == {
        "2026-11-01T00": {"lines": 1, "failed": 0, "records": 3, "latency_sum": 80.5},
        "2026-11-01T01": {"lines": 1, "failed": 1, "records": 0, "latency_sum": 90},
    }
    assert result.details["unparsed"] == 2


def test_a_user_regex(now: Any) -> None:
    now("2026-11-01 08:05")
    pattern = (
        r"^\[(?P<ts>[^\]]+)\] (?P<target>\S+) -> (?P<status>\w+) \((?P<latency_ms>\d+)ms, "
        r"(?P<records>\d+) records\)(?: error: (?P<error>.*))?"
    )
    result = run(source(FIXTURES / "regex.log"), format="regex", pattern=pattern)
    assert result.details["targets"]["NATIONAL"]["records"] == 55
    assert result.details["targets"]["NATIONAL"]["latency_p95"] == 231
    assert result.details["targets"]["DISP_02"]["errors"] == [["E403 forbidden", 1]]
    assert result.details["unparsed"] == 1
    # the pattern given as the format itself
    same = run(source(FIXTURES / "regex.log"), format=pattern)
    assert same.details["targets"] == result.details["targets"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "regex"}, "format regex needs a pattern"),
        ({"format": "regex", "pattern": "(?P<ts>x"}, "does not compile"),
        ({"format": "regex", "pattern": r"(?P<ts>\S+) (?P<target>\S+)"}, "no named group status"),
        ({"format": r"(?P<status>\S+)"}, "no named group ts"),
        ({"format": "regex", "pattern": r"(?P<ts>\S+) (?P<status>\S+) (?P<who>\S+)"}, "who"),
        ({"pattern": r"(?P<ts>\S+) (?P<status>\S+)"}, "pattern is for format regex"),
        ({"fields": {"ts": "time"}}, "fields is for format json"),
        ({"format": "json", "fields": {"when": "time"}}, "unknown when"),
        ({"active_hours": "7-22"}, "07:00-22:00"),
        ({"timezone": "Mars/Base"}, "IANA time zone"),
        ({"mask_patterns": ["("]}, "does not compile"),
        ({"success_warn": "500ms"}, "percentage"),
        ({"latency_warn": "80%"}, "expected a value in ms"),
    ],
)
def test_config_errors_are_clear(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InterfaceLogConfig(**options)


def test_latency_thresholds_judge_the_p95_in_milliseconds(now: Any) -> None:
    now("2026-11-01 09:40")
    result = run(source(FIXTURES / "kv.log"), latency_warn="1s", latency_crit=5000)
    latency = item(result, "interface_log.latency", "NATIONAL")
    assert latency.verdict == State.WARNING
    assert latency.value == "p50 300 ms, p95 3000 ms, max 3000 ms"
    assert item(result, "interface_log.latency", "VENDOR_A").verdict == State.OK


def test_gbk_content_is_decoded(now: Any) -> None:
    now("2026-11-01 08:10")
    result = run(source(FIXTURES / "gbk.log", encoding="gbk"), ok_status=["OK"])
    national = result.details["targets"]["NATIONAL"]
    assert national["errors"] == [["上传失败：网络超时", 1]]
    assert "status=失败" in national["excerpts"][0]
    assert result.details["targets"]["发药机01"]["lines"] == 1


def test_invalid_bytes_are_replaced_never_fatal(now: Any) -> None:
    now("2026-11-01 08:10")
    result = run(source(FIXTURES / "invalid.log"))
    assert result.state != State.UNKNOWN
    targets = result.details["targets"]
    assert targets["NATIONAL"]["lines"] == 2
    assert targets["NATIONAL"]["errors"] == [["bad \ufffd\ufffd\ufffd bytes", 1]]
    assert targets["NAT\ufffdONAL"]["lines"] == 1  # the CRLF line's status is "OK", not "OK\r"
    assert targets["NAT\ufffdONAL"]["failed"] == 0
    assert result.details["unparsed"] == 1


# --------------------------------------------------------------------------- silence


def write_kv(path: Path, *lines: tuple[str, str, str], mode: str = "w") -> None:
    """Write kv lines (time in Asia/Shanghai, target, status)."""
    with path.open(mode) as file:
        for when, target, status in lines:
            file.write(
                f"{when}.000 INFO  [upload] target={target} batch=1 records=1 status={status} "
                "latency_ms=10\n"
            )


def test_a_target_silent_for_40_minutes_is_critical(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(
        log, ("2026-11-01 09:13:00", "NATIONAL", "OK"), ("2026-11-01 09:50:00", "VENDOR_A", "OK")
    )
    now("2026-11-01 09:53")
    result = run(source(log))
    silence = item(result, "interface_log.silence", "NATIONAL")
    assert silence.verdict == State.CRITICAL
    assert silence.value == "silent for 40 min since 09:13"
    assert silence.advice
    assert item(result, "interface_log.silence", "VENDOR_A").verdict == State.OK
    assert result.state == State.CRITICAL
    assert result.summary.startswith("NATIONAL: silent for 40 min since 09:13")


def test_silence_is_not_judged_outside_active_hours(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(log, ("2026-11-01 21:30:00", "NATIONAL", "OK"))
    now("2026-11-01 23:30")
    result = run(source(log), active_hours="07:00-22:00")
    silence = item(result, "interface_log.silence", "NATIONAL")
    assert silence.verdict == State.OK
    assert "not judged outside active hours 07:00-22:00" in silence.value
    # next morning: only the active time since 21:30 counts (21:30-22:00 and 07:00-07:20)
    now("2026-11-02 07:20")
    result = run(source(log), active_hours="07:00-22:00", silence="1h")
    assert item(result, "interface_log.silence", "NATIONAL").verdict == State.OK
    now("2026-11-02 07:31")
    result = run(source(log), active_hours="07:00-22:00", silence="1h")
    assert item(result, "interface_log.silence", "NATIONAL").value.startswith(
        "silent for 61 min since 2026-11-01 21:30"
    )


def test_active_time_counts_only_the_window() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    start, end = at("2026-11-01 21:00"), at("2026-11-02 08:00")
    assert active_time(start, end, (7 * 60, 22 * 60), zone) == timedelta(hours=2)
    assert active_time(start, end, None, zone) == timedelta(hours=11)
    # a window past midnight
    assert active_time(start, end, (22 * 60, 6 * 60), zone) == timedelta(hours=8)


def test_an_expected_target_with_no_line_is_silent(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(log, ("2026-11-01 09:50:00", "NATIONAL", "OK"))
    now("2026-11-01 09:53")
    result = run(source(log), targets=["NATIONAL", "DISP_07"])
    silence = item(result, "interface_log.silence", "DISP_07")
    assert (silence.verdict, silence.value) == (State.CRITICAL, "no line seen")
    assert result.state == State.CRITICAL
    assert "DISP_07: no line seen" in result.summary


def test_silence_carries_over_runs_through_the_counters(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(
        log, ("2026-11-01 09:00:00", "NATIONAL", "OK"), ("2026-11-01 09:00:00", "VENDOR_A", "OK")
    )
    now("2026-11-01 09:05")
    first = run(source(log))
    assert first.state == State.OK
    write_kv(log, ("2026-11-01 09:40:00", "VENDOR_A", "OK"), mode="a")
    now("2026-11-01 09:45")
    second = run(source(log), previous=first)
    assert second.details["targets"]["NATIONAL"]["lines"] == 0
    assert (
        item(second, "interface_log.silence", "NATIONAL").value == "silent for 45 min since 09:00"
    )
    assert second.details["counters"]["last_seen"]["NATIONAL"] == "2026-11-01T01:00:00+00:00"


# --------------------------------------------------------------------------- masking


def random_id(rng: random.Random) -> str:
    region = rng.choice(["110105", "330102", "440303", "510104"])
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
    first17 = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_check_digit(first17)


def random_mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def test_personal_data_is_masked_everywhere_in_the_result(tmp_path: Path, now: Any) -> None:
    rng = random.Random(20261101)
    log = tmp_path / "upload.log"
    secrets: list[str] = []
    with log.open("w") as file:
        for n in range(40):
            person, mobile = random_id(rng), random_mobile(rng)
            secrets += [person, mobile]
            file.write(
                f"2026-11-01 09:{n:02d}:00.000 INFO target=NATIONAL records=1 status=FAIL "
                f"latency_ms=5 error=rejected patient {person} tel {mobile} card MRN-{n:06d}X\n"
            )
    now("2026-11-01 09:50")
    result = run(source(log), mask_patterns=[r"MRN-\d+X"], excerpts=40)
    text = json.dumps(result.to_dict(), ensure_ascii=False)
    for secret in secrets:
        assert secret not in text
    assert "MRN-" not in text
    national = result.details["targets"]["NATIONAL"]
    assert len(national["excerpts"]) == 40
    assert "rejected patient" in national["excerpts"][0]
    assert national["failed"] == 40


# --------------------------------------------------------------------------- incremental runs


def test_a_second_run_counts_only_new_lines(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(log, *[("2026-11-01 09:00:00", "NATIONAL", "OK")] * 3)
    now("2026-11-01 09:05")
    first = run(source(log))
    assert first.details["targets"]["NATIONAL"]["lines"] == 3
    write_kv(log, ("2026-11-01 09:01:00", "NATIONAL", "FAIL"), mode="a")
    with log.open("a") as file:
        file.write("2026-11-01 09:02:00.000 INFO target=NATIONAL status=O")  # half written
    second = run(source(log), previous=first)
    assert (
        second.details["targets"]["NATIONAL"]["lines"],
        second.details["targets"]["NATIONAL"]["failed"],
    ) == (1, 1)
    with log.open("a") as file:
        file.write("K\n")
    third = run(source(log), previous=second)
    assert third.details["targets"]["NATIONAL"]["lines"] == 1
    assert third.details["targets"]["NATIONAL"]["failed"] == 0
    fourth = run(source(log), previous=third)
    assert fourth.details["targets"]["NATIONAL"]["lines"] == 0
    assert fourth.summary == "1 target(s) OK: no new lines"


def test_a_first_run_starts_at_the_end_but_knows_when_targets_were_last_seen(
    tmp_path: Path, now: Any
) -> None:
    log = tmp_path / "upload.log"
    write_kv(
        log, ("2026-11-01 09:00:00", "NATIONAL", "FAIL"), ("2026-11-01 09:20:00", "VENDOR_A", "OK")
    )
    now("2026-11-01 09:45")
    first = run(source(log), start_at_end=True)
    assert first.details["targets"]["NATIONAL"]["lines"] == 0
    assert any("first run" in note for note in first.details["notes"])
    assert item(first, "interface_log.silence", "NATIONAL").verdict == State.CRITICAL
    assert item(first, "interface_log.silence", "VENDOR_A").verdict == State.OK
    write_kv(log, ("2026-11-01 09:46:00", "NATIONAL", "OK"), mode="a")
    now("2026-11-01 09:47")
    second = run(source(log), previous=first, start_at_end=True)
    assert second.details["targets"]["NATIONAL"]["lines"] == 1
    assert second.state == State.OK


def test_no_matching_file_is_unknown_and_keeps_the_counters(tmp_path: Path, now: Any) -> None:
    log = tmp_path / "upload.log"
    write_kv(log, ("2026-11-01 09:00:00", "NATIONAL", "OK"))
    now("2026-11-01 09:05")
    first = run(source(log))
    log.unlink()
    missing = run(source(log), previous=first)
    assert missing.state == State.UNKNOWN
    assert f"no file matches {log}" in missing.summary
    assert missing.details["counters"] == first.details["counters"]


def test_an_unreadable_file_is_unknown_with_the_reason(
    tmp_path: Path, now: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "upload.log"
    write_kv(log, ("2026-11-01 09:00:00", "NATIONAL", "OK"))

    def refuse(self: Any, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("opsctl.files.LocalFiles.read", refuse)
    now("2026-11-01 09:05")
    result = run(source(log))
    assert result.state == State.UNKNOWN
    assert "Permission denied" in result.summary


def test_the_kind_is_registered() -> None:
    assert registry.load("interface_log") is InterfaceLogCheck
    assert InterfaceLogCheck.targets == frozenset({"log"})


# --------------------------------------------------------------------------- the fast scanner


def need_numpy() -> None:
    """Skip without numpy (the fast scanner's library); under CI=true, fail."""
    need(importlib.util.find_spec("numpy") is not None, "numpy is not installed")


def scan_with(config: InterfaceLogConfig, data: bytes, fast: bool, block_size: int) -> Scan:
    scan = Scan(
        "src",
        Clock(ZoneInfo(config.timezone)),
        frozenset(config.ok_status),
        3,
        "utf-8",
    )
    scanner = make_scanner(config, scan, fast=fast)
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + block_size) + 1 or len(data)
        if end <= start:
            end = data.find(b"\n", start) + 1 or len(data)
        scanner.feed(data[start:end])
        start = end
    scanner.finish()
    return scan


def summary_of(scan: Scan) -> dict[str, Any]:
    return {
        name: {
            "lines": s.lines,
            "failed": s.failed,
            "records": s.records,
            "latency_count": s.latency_count,
            "latency_sum": s.latency_sum,
            "latency_max": s.latency_max,
            "histogram": dict(s.histogram),
            "errors": dict(s.errors),
            "excerpts": list(s.excerpts),
            "last_seen": s.last_seen,
            "hourly": s.hourly,
        }
        for name, s in scan.targets.items()
    } | {"unparsed": scan.unparsed}


def awkward_kv_lines(rng: random.Random, count: int) -> bytes:
    """kv lines with everything the fast scanner must agree on: keys in any order, keys
    missing, repeated keys, tabs, CRLF, long and short values, non-matching lines."""
    out = []
    for n in range(count):
        kind = rng.random()
        ts = f"2026-11-{1 + n // 5000:02d} {n // 200 % 24:02d}:{n % 60:02d}:{n * 7 % 60:02d}"
        if rng.random() < 0.5:
            ts += f".{rng.randrange(1000):03d}"
        if rng.random() < 0.1:
            ts = ts.replace(" ", "T", 1)
        target = rng.choice(["NATIONAL", "VENDOR_A", "DISP_01", "A", "PROVINCE_PLATFORM_UPLOAD_X"])
        status = rng.choice(["OK", "OK", "OK", "FAIL", "200", "ERROR_TIMEOUT", "0"])
        fields = [
            f"target={target}",
            f"status={status}",
            f"records={rng.randrange(0, 10 ** rng.randrange(1, 8))}",
        ]
        if rng.random() < 0.9:
            fields.append(f"latency_ms={rng.randrange(0, 10 ** rng.randrange(1, 6))}")
        rng.shuffle(fields)
        line = f"{ts} INFO  [upload] batch={n} " + " ".join(fields)
        if status not in ("OK", "200", "0"):
            line += f" error=E{rng.randrange(5)} failed status=LATE target=X"
        if kind < 0.03:
            line = f"{ts} WARN nothing to see"
        elif kind < 0.05:
            line = line.replace(" target=", "\ttarget=")
        elif kind < 0.07:
            line = "no timestamp " + line
        elif kind < 0.08:
            line = line.replace("status=", "status=", 1) + " status=SECOND"
        elif kind < 0.09:
            line = line.replace(f"target={target}", "target=")
        out.append(line + ("\r\n" if kind > 0.98 else "\n"))
    return "".join(out).encode()


@pytest.mark.parametrize("block_size", [16384, 1 << 20])
def test_the_fast_kv_scanner_agrees_with_the_python_one(block_size: int) -> None:
    need_numpy()
    data = awkward_kv_lines(random.Random(5), 20000)
    config = InterfaceLogConfig()
    fast = scan_with(config, data, True, block_size)
    slow = scan_with(config, data, False, block_size)
    assert summary_of(fast) == summary_of(slow)
    assert sum(s.lines for s in fast.targets.values()) > 15000


def test_the_fast_kv_scanner_agrees_on_the_fixtures() -> None:
    need_numpy()
    config = InterfaceLogConfig()
    for name in ("kv.log", "invalid.log"):
        data = (FIXTURES / name).read_bytes()
        assert summary_of(scan_with(config, data, True, 1 << 20)) == summary_of(
            scan_with(config, data, False, 1 << 20)
        ), name


# --------------------------------------------------------------------------- over SSH


@pytest.fixture
def ssh_log_source(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> Iterator[tuple[LogSource, Path]]:
    """A log source on an SSH host (the loopback sshd) whose files the test writes."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pool = SshPool(known_hosts=tmp_path / "known_hosts", user_known_hosts=tmp_path / "user_kh")
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: pool)
    directory = tmp_path / "remote"
    directory.mkdir()
    ssh = {"user": "root", "port": sshd.port, "key": f"file:{ssh_client_keys.key}"}
    site = {
        "name": "s",
        "hosts": [{"name": "far", "address": "127.0.0.1", "transport": "ssh", "ssh": ssh}],
        "logs": [
            {"name": "upload", "host": "far", "path": f"{directory}/upload*.log", "encoding": "gbk"}
        ],
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"sites": [site]}))
    log = load(inventory).inventory.sites[0].logs[0]
    assert log.on_host is not None and log.on_host.transport == "ssh"
    yield log, directory
    pool.close_all()


def test_a_log_source_over_ssh(ssh_log_source: tuple[LogSource, Path], now: Any) -> None:
    log, directory = ssh_log_source
    shutil.copy(FIXTURES / "gbk.log", directory / "upload.log")
    now("2026-11-01 08:10")
    first = run(log, ok_status=["OK"])
    assert first.details["targets"]["NATIONAL"]["errors"] == [["上传失败：网络超时", 1]]
    assert first.details["targets"]["NATIONAL"]["lines"] == 2
    with (directory / "upload.log").open("ab") as file:
        file.write(
            "2026-11-01 08:05:00.000 INFO target=NATIONAL status=OK latency_ms=7\n".encode("gbk")
        )
    second = run(log, previous=first, ok_status=["OK"])
    assert second.details["targets"]["NATIONAL"]["lines"] == 1
    assert second.details["targets"]["NATIONAL"]["latency_max"] == 7
    assert second.state == State.OK


def test_an_unreachable_ssh_host_is_unknown_and_keeps_the_counters(
    ssh_log_source: tuple[LogSource, Path], now: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, directory = ssh_log_source
    write_kv(directory / "upload.log", ("2026-11-01 08:00:00", "NATIONAL", "OK"))
    now("2026-11-01 08:10")
    first = run(log)
    refused = SshPool(known_hosts=directory / "none", user_known_hosts=directory / "none2")
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: refused)
    second = run(log, previous=first)
    assert second.state == State.UNKNOWN
    assert "host key" in second.summary
    assert second.details["counters"] == first.details["counters"]
