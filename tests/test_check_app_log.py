"""The app_log check: grouping lines into events, signatures, new-signature alerts, rates, and
reading for real through opsctl.logread, locally and over SSH against the loopback sshd.

The recorded logs under fixtures/logs/app/ are a Spring Boot (logback) registration service,
a Python sync job (logging with chained tracebacks), nginx's error.log and a GBK-encoded
payment service log (see the README there).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sshd_fixtures import ClientKeys, SshServer
from typer.testing import CliRunner

import opsctl.logread
from checks.app_log import (
    DEFAULT_LEVEL_REGEX,
    DEFAULT_START_REGEX,
    KNOWN_SIGNATURES_KEPT,
    AppLogCheck,
    AppLogConfig,
    Event,
    EventScanner,
    evaluate_events,
    mask_text,
    normalize,
    scan,
    signature_of,
)
from opsctl.cli import app
from opsctl.contract import CheckResult, State
from opsctl.inventory import Host, LogSource, load
from opsctl.registry import load as load_kind
from opsctl.ssh import SshPool

FIXTURES = Path(__file__).parent / "fixtures" / "logs" / "app"
NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LEVEL = re.compile(DEFAULT_LEVEL_REGEX, re.MULTILINE)
START = re.compile(DEFAULT_START_REGEX)
# The personal data in the recorded logs: it must never come out of the check.
PERSONAL = [
    "110101199003074514",
    "330102198511230017",
    "13812345678",
    "13998765432",
    "张三丰",
]


def fixture(name: str, encoding: str = "utf-8") -> str:
    return (FIXTURES / name).read_bytes().decode(encoding, errors="replace")


def events_of(text: str, path: str = "app.log") -> list[Event]:
    return scan([(path, text)], DEFAULT_START_REGEX, DEFAULT_LEVEL_REGEX)


def keys_of(text: str) -> list[str]:
    return [signature_of(event, LEVEL, START).key for event in events_of(text)]


def judge(
    text: str, counters: dict[str, Any] | None, now: datetime = NOW, **config: Any
) -> CheckResult:
    return evaluate_events(events_of(text), AppLogConfig(**config), counters, now, name="his-reg")


def known(result: CheckResult) -> dict[str, Any]:
    """The counters of a result as the store gives them back: through JSON."""
    return json.loads(json.dumps(result.details["counters"]))


def metric(result: CheckResult, name: str, **labels: str) -> float:
    (value,) = [m.value for m in result.metrics if m.name == name and dict(m.labels) == labels]
    return value


def items(result: CheckResult, key: str) -> list[Any]:
    return [item for item in result.items if item.key == key]


# --------------------------------------------------------------------------- grouping


def test_a_java_stack_trace_with_caused_by_and_more_is_one_event() -> None:
    events = events_of(fixture("his-reg.log"))
    assert len(events) == 4  # two NPE bookings, the ORA-00942 upload, the uncaught OOM
    booking = events[0].lines
    assert booking[0].startswith("2026-11-01 08:00:01.123 ERROR")
    assert booking[1].startswith("org.springframework.web.util.NestedServletException")
    assert "Caused by: java.lang.NullPointerException: slot 20261101-0931 is null" in booking
    assert booking[-1] == "\t... 48 more"
    upload = events[2].lines
    assert upload[0].endswith("upload to 10.8.1.30:1521 failed")
    assert "" in upload and upload[-1] == "\t... 9 more"  # a blank line inside a trace
    # an INFO line with a raw uncaught exception under it is an error event
    assert events[3].lines[1].startswith('Exception in thread "pool-9-thread-2"')
    # INFO and WARN lines are not error events
    assert not any("slot sync slow" in line for event in events for line in event.lines)


def test_python_tracebacks_are_grouped_and_the_last_exception_signs() -> None:
    events = events_of(fixture("his-sync.py.log"))
    assert [len(event.lines) for event in events[:2]] == [17, 16]
    assert events[0].lines[-2] == "his.sync.errors.SyncError: order 88123 unreachable"
    first, second, disk, root = (signature_of(event, LEVEL, START) for event in events)
    # the chained traceback's last exception, at its innermost frame of the application's
    # own code (not requests' in dist-packages)
    assert first.text == "his.sync.errors.SyncError: order <n> unreachable at client.py in fetch"
    assert first.label == "SyncError at client.py in fetch"
    assert second.key == first.key
    assert disk.text == "database disk full: <n> bytes left on /data"  # CRITICAL, no traceback
    assert root.text == "root:could not write /var/spool/his/<n>.json"  # basicConfig format
    assert len(events) == 4  # the WARNING retry is not an error


def test_nginx_error_lines() -> None:
    events = events_of(fixture("nginx-error.log"))
    assert [event.lines[0].split()[2] for event in events] == [
        "[error]",
        "[error]",
        "[crit]",
        "[emerg]",
    ]
    refused, refused_again, denied, bind = (signature_of(e, LEVEL, START) for e in events)
    assert refused.key == refused_again.key  # other pid, connection, client and request
    assert refused.text.startswith("connect() failed (<n>: Connection refused) while connecting")
    assert "client: <ip>" in refused.text and 'request: "<str>"' in refused.text
    assert denied.text.startswith('open() "<str>" failed (<n>: Permission denied)')
    assert bind.text == "bind() to <ip> failed (<n>: Address already in use)"


def test_an_event_split_across_blocks_is_still_one_event() -> None:
    text = fixture("his-reg.log")
    whole = events_of(text)
    lines = text.splitlines(keepends=True)
    # cut inside the first trace, between "Caused by" and its frames
    cut = next(i for i, line in enumerate(lines) if line.startswith("Caused by")) + 1
    scanner = EventScanner(DEFAULT_START_REGEX, DEFAULT_LEVEL_REGEX)
    before = scanner.feed("app.log", "".join(lines[:cut]))
    after = scanner.feed("app.log", "".join(lines[cut:]))
    last = scanner.finish()
    assert before == []  # the event is not closed while its trace may go on
    assert before + after + last == whole


def naive_events(text: str) -> list[tuple[str, ...]]:
    """The lines of the error events of a text, grouped the plain way: line by line."""
    groups: list[list[str]] = []
    for line in text.splitlines():
        if START.match(line) or not groups:
            groups.append([line])
        else:
            groups[-1].append(line)
    return [tuple(group) for group in groups if any(LEVEL.search(line) for line in group)]


def test_random_block_cuts_give_the_same_events() -> None:
    # Blocks without an error line take a fast path that skips their middle: wherever the
    # blocks are cut, the events must be the ones of the whole text read at once.
    text = "".join(fixture(name) for name in ("his-reg.log", "his-sync.py.log", "nginx-error.log"))
    quiet = "".join(
        f"2026-11-01 10:{minute:02d}:00.000 INFO  [main] c.h.App - heartbeat {minute}\n"
        for minute in range(60)
    )
    text = quiet + text + quiet + text
    whole = events_of(text)
    assert [event.lines for event in whole] == naive_events(text)
    lines = text.splitlines(keepends=True)
    generator = random.Random(20261101)
    # the default level regex is searched by its keywords first; any other as it is
    for level in (DEFAULT_LEVEL_REGEX, DEFAULT_LEVEL_REGEX + "|(?!)"):
        for _ in range(300):
            cuts = sorted(generator.sample(range(1, len(lines)), generator.randint(1, 40)))
            edges = [0, *cuts, len(lines)]
            blocks = [
                ("app.log", "".join(lines[a:b])) for a, b in zip(edges, edges[1:], strict=False)
            ]
            assert scan(blocks, DEFAULT_START_REGEX, level) == whole, cuts


def test_an_event_does_not_run_from_one_file_into_the_next() -> None:
    events = scan(
        [
            ("app.log.1", "2026-11-01 08:00:00.000 ERROR [main] c.h.App - disk full\n"),
            ("app.log", "\tat com.his.App.main(App.java:1)\n2026-11-01 08:00:01 INFO ok\n"),
        ],
        DEFAULT_START_REGEX,
        DEFAULT_LEVEL_REGEX,
    )
    assert [event.lines for event in events] == [
        ("2026-11-01 08:00:00.000 ERROR [main] c.h.App - disk full",)
    ]


def test_a_runaway_event_is_cut() -> None:
    # a log whose lines never match start_regex must not make one endless event
    text = "ERROR boom\n" + "".join(f"    line {n}\n" for n in range(5000))
    scanner = EventScanner(r"^\d{4}-", DEFAULT_LEVEL_REGEX)
    (event,) = scanner.feed("app.log", text) + scanner.finish()
    assert len(event.lines) == 300 and event.omitted == 4701
    assert scanner.cut_events == 1


# --------------------------------------------------------------------------- signatures


def test_events_differing_only_in_ids_numbers_and_times_share_a_signature() -> None:
    first, second, upload, oom = keys_of(fixture("his-reg.log"))
    assert first == second  # other slot, patient, phone, thread, time, CGLIB class hash
    assert len({first, upload, oom}) == 3
    one = "2026-11-01 08:00:01.123 ERROR [exec-1] c.h.Api - call 7d3f1c2a-9b1e-4c6f-8a2d-1e5b7c9d0f33 to 10.8.1.30:8080 took 5230 ms at 2026-11-01T08:00:01+08:00, buffer 0x7f3a2b1c, trace a3f9e2c1d4b5, id 'P000123'\n"
    two = "2026-11-02 17:45:09.999 ERROR [exec-7] c.h.Api - call 0b9e8d7c-6a5f-4e3d-2c1b-0a9f8e7d6c5b to 192.168.10.2:9090 took 17 ms at 2026-11-02T17:45:09+08:00, buffer 0x1, trace 00ff00ff00ff11, id 'Q9'\n"
    assert keys_of(one) == keys_of(two)
    assert signature_of(events_of(one)[0], LEVEL, START).text == (
        "c.h.Api - call <uuid> to <ip> took <n> ms at <ts>, buffer <hex>, trace <hex>, id '<str>'"
    )


def test_different_exceptions_and_codes_differ() -> None:
    def java(exception: str, frame: str = "com.his.reg.RegService.book") -> str:
        return (
            f"2026-11-01 08:00:01.123 ERROR [main] c.h.Foo - failed\n{exception}\n"
            f"\tat {frame}(RegService.java:42)\n"
        )

    keys = {
        keys_of(java("java.lang.NullPointerException: null"))[0],
        keys_of(java("java.lang.IllegalStateException: null"))[0],
        keys_of(java("java.sql.SQLException: ORA-00942: table or view does not exist"))[0],
        keys_of(java("java.sql.SQLException: ORA-01017: invalid username/password"))[0],
        keys_of(java("java.lang.NullPointerException: null", "com.his.reg.RegService.cancel"))[0],
    }
    assert len(keys) == 5
    # a line number is not part of the signature: a new release must not renew every one
    moved = java("java.lang.NullPointerException: null").replace(":42)", ":57)")
    assert keys_of(moved) == keys_of(java("java.lang.NullPointerException: null"))


def test_the_top_frame_is_the_applications_own() -> None:
    event = events_of(fixture("his-reg.log"))[2]
    signature = signature_of(event, LEVEL, START)
    # not oracle.jdbc (a library) but the application's DAO
    assert signature.text.endswith(" at com.his.reg.upload.UploadDao.pending")
    assert signature.label == "OracleDatabaseException at c.h.r.u.UploadDao.pending(...)"
    chosen = signature_of(event, LEVEL, START, app_packages=["com.his.reg.upload.UploadJob"])
    assert chosen.text.endswith(" at com.his.reg.upload.UploadJob.run")


def test_normalize() -> None:
    assert normalize("read 1024 bytes in 3.5 s from /orders/88123, line 42") == (
        "read <n> bytes in <n> s from /orders/<n>, line <n>"
    )
    assert normalize("at Foo.java:42 and job.py:7") == "at Foo.java:<line> and job.py:<line>"
    assert normalize('ORA-00942 for user "HIS" on 2026/11/01 08:00:01') == (
        'ORA-00942 for user "<str>" on <ts>'
    )
    assert normalize("object Foo@1a2b3c4d order ORD20261101000123 utf8 log4j") == (
        "object Foo@<hex> order ORD<n> utf8 log4j"
    )
    assert normalize("can't read 'x.cfg' at 10:20:30.5") == "can't read '<str>' at <ts>"


# --------------------------------------------------------------------------- judging


def test_a_first_run_records_the_signatures_as_known_and_says_so() -> None:
    result = judge(fixture("his-reg.log"), None)
    assert result.state == State.OK
    assert result.summary.startswith("first run: 4 error event(s) in 3 signature(s)")
    assert any(
        note.startswith("first run: 3 error signature(s)") for note in result.details["notes"]
    )
    assert len(known(result)["signatures"]) == 3
    assert metric(result, "new_signatures") == 0 and not items(result, "app_log.new_signature")


def test_a_new_signature_warns_with_its_first_sample_masked() -> None:
    counters = known(judge(fixture("nginx-error.log"), None))
    result = judge(fixture("his-reg.log"), counters)
    assert result.state == State.WARNING
    assert result.summary == (
        "3 new error signatures: NullPointerException at c.h.r.s.RegService.book(...), "
        "OracleDatabaseException at c.h.r.u.UploadDao.pending(...), "
        "OutOfMemoryError at c.h.r.r.DailyReport.build(...); 4 error event(s) in 3 signature(s)"
    )
    new = items(result, "app_log.new_signature")
    assert [item.verdict for item in new] == [State.WARNING] * 3
    sample = new[0].value
    assert sample.startswith("2026-11-01 08:00:01.123 ERROR [http-nio-8080-exec-3]")
    assert "patient 110101********4514, phone 138****5678" in sample
    assert "Caused by: java.lang.NullPointerException" in sample
    assert new[0].advice.startswith("2 event(s) of an error not seen before")
    assert metric(result, "new_signatures") == 3
    assert metric(result, "events") == 4 and metric(result, "signatures") == 3
    # the first sample, not the second, and nothing personal anywhere in the result
    dumped = json.dumps(result.to_dict(), ensure_ascii=False)
    for value in PERSONAL:
        assert value not in dumped
    # every signature seen so far is known now, with its count
    signatures = known(result)["signatures"]
    assert len(signatures) == 6
    booking = next(v for v in signatures.values() if "RegService.book" in v["text"])
    assert booking["count"] == 2 and booking["first_seen"] == NOW.isoformat()


def test_the_same_errors_again_are_ok_but_counted() -> None:
    first = judge(fixture("his-reg.log"), {"signatures": {}})
    assert first.state == State.WARNING
    later = NOW + timedelta(minutes=5)
    second = judge(fixture("his-reg.log"), known(first), later)
    assert second.state == State.OK
    assert second.summary == "no new signatures; 4 error event(s) in 3 signature(s)"
    assert not items(second, "app_log.new_signature")
    top = items(second, "app_log.signature")
    assert top[0].value.startswith("2 event(s), 0.4/min [")
    (booking,) = [k for k, v in known(second)["signatures"].items() if "book" in v["text"]]
    assert metric(second, "signature_events", signature=booking) == 2
    assert known(second)["signatures"][booking]["count"] == 4
    assert known(second)["signatures"][booking]["first_seen"] == NOW.isoformat()
    assert known(second)["signatures"][booking]["last_seen"] == later.isoformat()


def test_rate_thresholds_per_signature() -> None:
    error = "2026-11-01 08:00:{:02d}.000 ERROR [main] c.h.Api - upstream 10.8.1.{} timed out\n"
    other = "2026-11-01 08:00:00.000 ERROR [main] c.h.Api - disk full\n"
    text = "".join(error.format(n % 60, n % 200) for n in range(120)) + other
    counters = {"signatures": {}, "read_at": (NOW - timedelta(minutes=10)).isoformat()}
    calm = judge(text, counters, new_signature_state="OK", rate_warn="20", rate_crit="50")
    assert calm.state == State.OK
    (timeout,) = [k for k, v in known(calm)["signatures"].items() if "timed out" in v["text"]]
    assert metric(calm, "signature_rate", signature=timeout) == 12.0
    warned = judge(text, counters, new_signature_state="OK", rate_warn="10", rate_crit="50")
    assert warned.state == State.WARNING
    assert warned.summary.endswith("; c.h.Api - upstream <ip> timed out 12/min")
    verdicts = {
        item.value.split("] ")[-1]: item.verdict for item in items(warned, "app_log.signature")
    }
    assert verdicts == {
        "c.h.Api - upstream <ip> timed out": State.WARNING,
        "c.h.Api - disk full": State.OK,
    }
    critical = judge(text, counters, new_signature_state="OK", rate_warn="5", rate_crit="10")
    assert critical.state == State.CRITICAL
    # two runs a few seconds apart: the window is at least a minute
    soon = {**counters, "read_at": (NOW - timedelta(seconds=5)).isoformat()}
    assert metric(judge(text, soon, rate_warn="500"), "signature_rate", signature=timeout) == 120


def test_total_thresholds_and_ignore() -> None:
    text = fixture("his-reg.log")
    counters = known(judge(text, None))
    assert judge(text, counters, total_warn="3").state == State.WARNING
    assert judge(text, counters, total_warn="3", total_crit="3").state == State.CRITICAL
    assert judge(text, counters, total_warn="4").state == State.OK
    ignoring = judge(text, counters, total_warn="3", ignore=["OutOfMemoryError", "ORA-00942"])
    assert ignoring.state == State.OK
    assert metric(ignoring, "events") == 2 and metric(ignoring, "ignored") == 2
    assert ignoring.summary == "no new signatures; 2 error event(s) in 1 signature(s), 2 ignored"


def test_new_signature_state_and_mask_patterns() -> None:
    text = "2026-11-01 08:00:01 ERROR [main] c.h.Pay - refund to card_no=6222020200112233 of 王小明 failed\n"
    counters: dict[str, Any] = {"signatures": {}}
    assert judge(text, counters, new_signature_state="crit").state == State.CRITICAL
    assert judge(text, counters, new_signature_state="OK").state == State.OK
    masked = judge(text, counters, mask_patterns=[r"card_no=(\w+)", "王小明"])
    (item,) = items(masked, "app_log.new_signature")
    assert item.value.endswith("refund to card_no=*** of *** failed")
    dumped = json.dumps(masked.to_dict(), ensure_ascii=False)
    assert "6222020200112233" not in dumped and "王小明" not in dumped
    # the signature text is masked too, before it is normalized and stored
    named = "2026-11-01 08:00:01 ERROR [main] c.h.Reg - no slot for 患者姓名：张三丰\n"
    (signature,) = judge(named, counters).details["counters"]["signatures"].values()
    assert signature["text"] == "c.h.Reg - no slot for 患者姓名：<masked>"
    assert mask_text("a b=12 c=34", [re.compile(r"b=(\d+) c=(\d+)")]) == "a b=*** c=***"


def test_many_new_signatures_are_counted_and_the_first_shown() -> None:
    words = [f"{chr(97 + n % 26)}{chr(97 + n // 26)}{chr(122 - n % 26)}" for n in range(30)]
    text = "".join(
        f"2026-11-01 08:00:01 ERROR [main] c.h.Job - step {word} failed\n" for word in words
    )
    result = judge(text, {"signatures": {}})
    assert metric(result, "new_signatures") == 30
    shown = items(result, "app_log.new_signature")
    assert len(shown) == 20 and shown[0].value.endswith("step aaz failed")
    assert "10 more new signatures are counted but not shown" in result.details["notes"]
    assert result.summary.startswith("30 new error signatures: c.h.Job - step aaz failed, ")
    assert "(+27 more); 30 error event(s) in 30 signature(s)" in result.summary
    assert len(items(result, "app_log.signature")) == 10


def test_the_known_signatures_are_capped_to_the_most_recently_seen() -> None:
    old = {
        f"{n:012x}": {
            "text": f"old {n}",
            "first_seen": "2026-01-01T00:00:00+00:00",
            "last_seen": f"2026-10-{1 + n % 28:02d}T00:00:00+00:00",
            "count": 1,
        }
        for n in range(KNOWN_SIGNATURES_KEPT)
    }
    result = judge(fixture("nginx-error.log"), {"signatures": old})
    signatures = known(result)["signatures"]
    assert len(signatures) == KNOWN_SIGNATURES_KEPT
    assert sum(1 for value in signatures.values() if value["last_seen"] == NOW.isoformat()) == 3
    assert "000000000000" not in signatures  # seen on 1 October: among the oldest
    assert "00000000001b" in signatures  # seen on 28 October


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        AppLogConfig(ignore=["(unclosed"])
    with pytest.raises(ValidationError, match="expected OK, WARNING, CRITICAL or UNKNOWN"):
        AppLogConfig(new_signature_state="loud")
    with pytest.raises(ValidationError, match="events per minute"):
        AppLogConfig(rate_warn="10%")
    with pytest.raises(ValidationError):
        AppLogConfig(levels="ERROR")
    assert AppLogConfig(new_signature_state="crit").new_signature_state == "CRITICAL"
    kind = load_kind("app_log")
    assert kind is AppLogCheck and kind.targets == frozenset({"log"})


# --------------------------------------------------------------------------- reading for real


def source(path: Path | str, encoding: str = "utf-8") -> LogSource:
    return LogSource(name="his-reg", path=str(path), encoding=encoding)


def run(target: LogSource, previous: CheckResult | None = None, **config: Any) -> CheckResult:
    result = AppLogCheck(AppLogConfig(**config), timeout=10, previous=previous).run(target)
    # what the store keeps and gives back as the next run's previous result
    details = json.loads(json.dumps(result.details))
    return replace(result, details=details)


def test_reading_a_growing_log_between_runs(tmp_path: Path) -> None:
    log = tmp_path / "his-reg.log"
    text = fixture("his-reg.log")
    log.write_text(text)  # a year of history: not reported on the first run
    first = run(source(log))
    assert first.state == State.OK
    assert first.summary == "first run: 0 error event(s) in 0 signature(s), recorded as known"
    assert any("first run" in note for note in first.details["notes"])

    with log.open("a") as file:
        file.write(text)
    second = run(source(log), first)
    assert second.state == State.WARNING
    assert second.summary.startswith("3 new error signatures: NullPointerException at")
    assert metric(second, "events") == 4
    assert second.details["counters"]["cursors"] != first.details["counters"]["cursors"]

    with log.open("a") as file:
        file.write(text.replace("0931", "1550").replace("08:0", "09:1"))
    third = run(source(log), second)
    assert third.state == State.OK
    assert third.summary == "no new signatures; 4 error event(s) in 3 signature(s)"

    fourth = run(source(log), third)
    assert (fourth.state, metric(fourth, "events")) == (State.OK, 0)
    assert fourth.summary == "no new signatures; 0 error event(s) in 0 signature(s)"


def test_a_trace_still_being_written_is_counted_once(tmp_path: Path) -> None:
    log = tmp_path / "his-reg.log"
    log.write_text("2026-11-01 08:00:00.000 INFO  [main] c.h.App - started\n")
    first = run(source(log))
    lines = fixture("his-reg.log").splitlines(keepends=True)
    with log.open("a") as file:
        file.writelines(lines[1:2])  # the ERROR line of the NPE, its trace not yet written
    second = run(source(log), first)
    assert metric(second, "events") == 1 and second.state == State.WARNING
    assert second.details["counters"]["open_event"] == str(log)
    with log.open("a") as file:
        # the trace (its first line alone would read as an error) and an INFO line
        file.writelines(lines[2:14])
    third = run(source(log), second)
    assert (third.state, metric(third, "events")) == (State.OK, 0)
    assert "open_event" not in third.details["counters"]


def test_an_event_split_across_reader_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "his-reg.log"
    log.write_text("2026-11-01 08:00:00.000 INFO  [main] c.h.App - started\n")
    first = run(source(log))
    with log.open("a") as file:
        file.write(fixture("his-reg.log"))
    sizes: list[int] = []

    class SmallBlocks(opsctl.logread.LogReader):
        def __init__(self, files: Any, pattern: str, **options: Any) -> None:
            super().__init__(files, pattern, **{**options, "block_size": 300})

        def blocks(self, state: Any) -> Iterator[opsctl.logread.Block]:
            for block in super().blocks(state):
                sizes.append(len(block.data))
                yield block

    monkeypatch.setattr(opsctl.logread, "LogReader", SmallBlocks)
    result = run(source(log), first)
    assert len(sizes) > 10 and max(sizes) < 1000  # each trace is cut across blocks
    assert metric(result, "events") == 4 and metric(result, "signatures") == 3
    booking = items(result, "app_log.new_signature")[0].value
    assert booking.splitlines()[-1] == "\t... 48 more"


def test_a_gbk_log(tmp_path: Path) -> None:
    log = tmp_path / "his-pay.log"
    log.write_bytes(b"")
    first = run(source(log, "gbk"))
    log.write_bytes((FIXTURES / "his-pay.gbk.log").read_bytes())  # with an invalid byte pair
    result = run(source(log, "gbk"), first)
    assert result.state == State.WARNING
    (item,) = items(result, "app_log.new_signature")
    assert "医保结算失败：患者姓名：张** 身份证 110101********4514 手机 138****5678" in item.value
    (signature,) = result.details["counters"]["signatures"].values()
    assert signature["text"] == (
        "com.his.pay.SettleException: 医保中心返回错误 代码 E<n>：交易流水 <n> 不存在 "
        "at com.his.pay.PayService.settle"
    )
    dumped = json.dumps(result.to_dict(), ensure_ascii=False)
    assert all(value not in dumped for value in PERSONAL)


def test_no_file_or_an_unreadable_host_is_unknown_and_keeps_the_counters(tmp_path: Path) -> None:
    log = tmp_path / "his-reg.log"
    log.write_text("2026-11-01 08:00:00.000 ERROR [main] c.h.App - disk full\n")
    first = run(source(log))
    missing = run(source(tmp_path / "nothing-*.log"), first)
    assert missing.state == State.UNKNOWN
    assert missing.summary == f"no file matches {tmp_path}/nothing-*.log"
    assert missing.details["counters"] == first.details["counters"]

    agent = Host(name="his-app-02", transport="agent")
    remote = source("/var/log/his/reg.log")
    remote._host = agent
    failed = run(remote, first)
    assert failed.state == State.UNKNOWN
    assert failed.summary.startswith("cannot read /var/log/his/reg.log on his-app-02:")
    assert failed.details["counters"] == first.details["counters"]


def test_check_run_from_an_inventory(tmp_path: Path) -> None:
    log = tmp_path / "nginx" / "error.log"
    log.parent.mkdir()
    log.write_text(fixture("nginx-error.log"))
    inventory = tmp_path / "inventory.yaml"
    site = {
        "name": "s",
        "logs": [
            {
                "name": "nginx-error",
                "path": str(tmp_path / "nginx" / "*.log"),
                "checks": [{"kind": "app_log", "new_signature_state": "critical"}],
            }
        ],
    }
    inventory.write_text(yaml.safe_dump({"sites": [site]}))
    result = CliRunner().invoke(app, ["check", "run", "--no-store", "--json", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    (checked,) = json.loads(result.output)["results"]
    assert checked["state"] == "OK" and checked["summary"].startswith("first run: 0 error event")


# --------------------------------------------------------------------------- over SSH


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SshPool]:
    """The pool the check uses, with known_hosts files of the test's own."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pool = SshPool(
        known_hosts=tmp_path / "opsctl_known_hosts", user_known_hosts=tmp_path / "known_hosts"
    )
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: pool)
    yield pool
    pool.close_all()


def test_over_ssh(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    logs = tmp_path / "his"
    logs.mkdir()
    log = logs / "reg.log"
    log.write_text(fixture("his-reg.log"))  # the sshd is this machine: written here, read there
    inventory = tmp_path / "inventory.yaml"
    site = {
        "name": "s",
        "hosts": [
            {
                "name": "his-app-01",
                "address": "127.0.0.1",
                "transport": "ssh",
                "ssh": {"user": "root", "port": sshd.port, "key": f"file:{ssh_client_keys.key}"},
            }
        ],
        "logs": [{"name": "his-reg", "path": str(logs / "reg*.log"), "host": "his-app-01"}],
    }
    inventory.write_text(yaml.safe_dump({"sites": [site]}))
    (target,) = load(inventory).inventory.sites[0].logs
    assert target.on_host is not None and target.on_host.transport == "ssh"

    first = run(target)
    assert first.state == State.OK and metric(first, "events") == 0
    with log.open("a") as file:
        file.write(fixture("his-reg.log"))
    second = run(target, first)
    assert second.state == State.WARNING
    assert second.summary.startswith("3 new error signatures: NullPointerException at")
    assert metric(second, "events") == 4
    dumped = json.dumps(second.to_dict(), ensure_ascii=False)
    assert all(value not in dumped for value in PERSONAL)
    with log.open("a") as file:
        file.write(fixture("his-reg.log"))
    third = run(target, second)
    assert third.state == State.OK and metric(third, "events") == 4
