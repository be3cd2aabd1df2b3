"""The Nagios plugin output format: perfdata and plugin output parsed from the guidelines'
examples and recorded real outputs, and written back for ``--format nagios``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from opsctl.contract import CheckResult, Metric, Range, State
from opsctl.nagios import (
    format_perfdata,
    format_result,
    format_results,
    parse_perfdata,
    parse_plugin_output,
    quote_label,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nagios"
INF = math.inf


def row(metric: Metric) -> tuple:
    """A metric as comparable values, NaN shown as "U" (NaN never equals itself)."""
    value = "U" if math.isnan(metric.value) else metric.value
    return (metric.name, value, metric.unit, metric.warn, metric.crit, metric.min, metric.max)


PERFDATA_CASES = [
    # The guidelines' own example.
    (
        "/=2643MB;5948;5958;0;5968",
        [("/", 2643.0, "MB", Range(0, 5948, unit="MB"), Range(0, 5958, unit="MB"), 0.0, 5968.0)],
    ),
    # check_load's trailing ";" (empty max) and a trailing space.
    (
        "load1=0.020;5.000;10.000;0; load5=0.060;4.000;8.000;0; ",
        [
            ("load1", 0.02, "", Range(0, 5), Range(0, 10), 0.0, None),
            ("load5", 0.06, "", Range(0, 4), Range(0, 8), 0.0, None),
        ],
    ),
    ("procs=87;;;0;", [("procs", 87.0, "", None, None, 0.0, None)]),
    ("a=1;;;;", [("a", 1.0, "", None, None, None, None)]),
    ("a=1", [("a", 1.0, "", None, None, None, None)]),
    # Every UOM of the guidelines.
    *[
        (f"x=5{uom}", [("x", 5.0, uom, None, None, None, None)])
        for uom in ["s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"]
    ],
    # Quoted labels: spaces, an escaped quote, an equals sign, Chinese.
    (
        "'C:\\ used'=85%;80;90;0;100",
        [("C:\\ used", 85.0, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0.0, 100.0)],
    ),
    ("'it''s'=1", [("it's", 1.0, "", None, None, None, None)]),
    ("''''=1", [("'", 1.0, "", None, None, None, None)]),
    ("'a=b'=2c", [("a=b", 2.0, "c", None, None, None, None)]),
    ("'USERS 表空间'=95%", [("USERS 表空间", 95.0, "%", None, None, None, None)]),
    # Every form of range.
    (
        "a=5;10:;~:20",
        [("a", 5.0, "", Range(10, INF), Range(-INF, 20), None, None)],
    ),
    ("a=5;@10:20;10:20", [("a", 5.0, "", Range(10, 20, inside=True), Range(10, 20), None, None)]),
    (
        "time=0.5s;0.3:;1:;0",
        [("time", 0.5, "s", Range(0.3, INF, unit="s"), Range(1, INF, unit="s"), 0.0, None)],
    ),
    # A range that names its own unit keeps it.
    ("time=0.5s;500ms", [("time", 0.5, "s", Range(0, 500, unit="ms"), None, None, None)]),
    # Numbers: negative, exponent, no leading digit.
    ("a=-5;~:0", [("a", -5.0, "", Range(-INF, 0), None, None, None)]),
    ("a=1e3ms;;;-1.5;.5", [("a", 1000.0, "ms", None, None, -1.5, 0.5)]),
    # Undetermined.
    (
        "rta=U;@10:20;~:30",
        [("rta", "U", "", Range(10, 20, inside=True), Range(-INF, 30), None, None)],
    ),
    # A unit the guidelines do not list is kept as read.
    ("mem=512MiB", [("mem", 512.0, "MiB", None, None, None, None)]),
    # An unparsable range, min or max is None; the metric stays.
    ("a=1;bad;20:10;zero;10", [("a", 1.0, "", None, None, None, 10.0)]),
    # Tokens may be separated by several spaces or newlines.
    (
        "a=1  \n b=2",
        [("a", 1.0, "", None, None, None, None), ("b", 2.0, "", None, None, None, None)],
    ),
    # Malformed tokens are skipped, the good ones around them kept.
    ("garbage a=1", [("a", 1.0, "", None, None, None, None)]),
    ("x=1,5 y=abc z=", []),
    ("=1", []),
    ("'label' =1 b=2", [("b", 2.0, "", None, None, None, None)]),
    ("a=1 'unterminated=2 b=3", [("a", 1.0, "", None, None, None, None)]),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), PERFDATA_CASES)
def test_parse_perfdata(text: str, expected: list[tuple]) -> None:
    assert [row(m) for m in parse_perfdata(text)] == expected


def test_undetermined_value_is_nan_and_unknown() -> None:
    (metric,) = parse_perfdata("rta=U;1;2")
    assert math.isnan(metric.value)
    assert metric.state == State.UNKNOWN


# (fixture, exit code, state, summary, long output, metrics)
RECORDED = [
    (
        "check_disk.txt",
        0,
        State.OK,
        "DISK OK - free space: / 81188MiB (78% inode=97%);",
        None,
        [
            (
                "/",
                23811063808.0,
                "B",
                Range(0, 216442024755, unit="B"),
                Range(0, 243497277849, unit="B"),
                0.0,
                270552530944.0,
            )
        ],
    ),
    (
        "check_load.txt",
        0,
        State.OK,
        "LOAD OK - total load average: 0.00, 0.03, 0.02",
        None,
        [
            ("load1", 0.0, "", Range(0, 5), Range(0, 10), 0.0, None),
            ("load5", 0.03, "", Range(0, 4), Range(0, 8), 0.0, None),
            ("load15", 0.02, "", Range(0, 3), Range(0, 6), 0.0, None),
        ],
    ),
    (
        "check_procs.txt",
        0,
        State.OK,
        "PROCS OK: 87 processes",
        None,
        [("procs", 87.0, "", None, None, 0.0, None)],
    ),
    (
        "check_procs_thresholds.txt",
        0,
        State.OK,
        "PROCS OK: 87 processes",
        None,
        [("procs", 87.0, "", Range(0, 150), Range(0, 200), 0.0, None)],
    ),
    (
        "check_swap.txt",
        2,
        State.CRITICAL,
        "SWAP CRITICAL - 0% free (0MB out of 0MB) - "
        "Swap is either disabled, not present, or of zero size.",
        None,
        [("swap", 0.0, "B", Range(0, 0, unit="B"), Range(0, 0, unit="B"), 0.0, 0.0)],
    ),
    (
        "check_users.txt",
        0,
        State.OK,
        "USERS OK - 0 users currently logged in",
        None,
        [("users", 0.0, "", Range(0, 5), Range(0, 10), 0.0, None)],
    ),
    (
        "guidelines_multiline.txt",
        0,
        State.OK,
        "DISK OK - free space: / 3326 MB (56%);",
        "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);",
        [
            ("/", 2643.0, "MB", Range(0, 5948, unit="MB"), Range(0, 5958, unit="MB"), 0.0, 5968.0),
            ("/boot", 68.0, "MB", Range(0, 88, unit="MB"), Range(0, 93, unit="MB"), 0.0, 98.0),
            (
                "/home",
                69357.0,
                "MB",
                Range(0, 253404, unit="MB"),
                Range(0, 253409, unit="MB"),
                0.0,
                253414.0,
            ),
            (
                "/var/log",
                818.0,
                "MB",
                Range(0, 970, unit="MB"),
                Range(0, 975, unit="MB"),
                0.0,
                980.0,
            ),
        ],
    ),
    (
        "quoted_labels.txt",
        1,
        State.WARNING,
        "WINDISK WARNING - C:\\ 85% used",
        None,
        [
            ("C:\\ used", 85.0, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0.0, 100.0),
            ("D:\\ Daten", 120.0, "GB", None, None, 0.0, 500.0),
            ("it's", 1.0, "", None, None, None, None),
            ("a=b", 2.0, "c", None, None, None, None),
        ],
    ),
    (
        "ranges_and_undetermined.txt",
        3,
        State.UNKNOWN,
        "PING UNKNOWN - host did not answer",
        None,
        [
            ("rta", "U", "", Range(10, 20, inside=True), Range(-INF, 30), 0.0, None),
            ("pl", 100.0, "%", Range(0, 20, unit="%"), Range(0, 60, unit="%"), 0.0, 100.0),
            ("time", 0.5, "s", Range(0.3, INF, unit="s"), Range(1, INF, unit="s"), 0.0, None),
        ],
    ),
    (
        "chinese_output.txt",
        2,
        State.CRITICAL,
        "表空间 CRITICAL - USERS 表空间使用率 95%",
        "USERS: 95%\nSYSTEM: 60%",
        [
            ("USERS 表空间", 95.0, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0.0, 100.0),
            (
                "SYSTEM 表空间",
                60.0,
                "%",
                Range(0, 80, unit="%"),
                Range(0, 90, unit="%"),
                0.0,
                100.0,
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("fixture", "exit_code", "state", "summary", "long_output", "metrics"),
    RECORDED,
    ids=[case[0] for case in RECORDED],
)
def test_parse_recorded_output(
    fixture: str,
    exit_code: int,
    state: State,
    summary: str,
    long_output: str | None,
    metrics: list[tuple],
) -> None:
    stdout = (FIXTURES / fixture).read_text(encoding="utf-8")
    result = parse_plugin_output(stdout, exit_code)
    assert result.state == state
    assert result.summary == summary
    assert result.details.get("long_output") == long_output
    assert result.details["exit_code"] == exit_code
    assert [row(m) for m in result.metrics] == metrics


@pytest.mark.parametrize(
    ("exit_code", "summary"),
    [
        (127, "exit code 127: command not found: sh: 1: check_foo: not found"),
        (126, "exit code 126: plugin not executable (permission denied or not a program): "),
        (-9, "killed by signal SIGKILL: "),
        (-15, "killed by signal SIGTERM: "),
        (137, "exit code 137: probably killed by signal SIGKILL: "),
        (4, "exit code 4 is not a Nagios state (0 to 3): "),
        (255, "exit code 255 is not a Nagios state (0 to 3): "),
    ],
)
def test_exit_code_outside_states_is_unknown_with_reason(exit_code: int, summary: str) -> None:
    stdout = "sh: 1: check_foo: not found\n" if exit_code == 127 else "OK - fine | a=1\n"
    result = parse_plugin_output(stdout, exit_code)
    assert result.state == State.UNKNOWN
    assert result.summary.startswith(summary)
    assert result.details["exit_code"] == exit_code


@pytest.mark.parametrize("exit_code", [0, 1, 2, 3])
def test_exit_code_is_the_state(exit_code: int) -> None:
    assert parse_plugin_output("text\n", exit_code).state == State(exit_code)


@pytest.mark.parametrize("stdout", ["", "\n", "   \n\n", "| a=1"])
def test_no_output_keeps_the_state_of_the_exit_code(stdout: str) -> None:
    result = parse_plugin_output(stdout, 1)
    assert result.state == State.WARNING
    assert result.summary == "(no output returned from plugin)"


def test_crlf_and_perfdata_only_in_long_text() -> None:
    result = parse_plugin_output("OK - fine\r\nline one\r\nline two | a=1\r\nb=2s\r\n", 0)
    assert result.summary == "OK - fine"
    assert result.details["long_output"] == "line one\nline two"
    assert [(m.name, m.value, m.unit) for m in result.metrics] == [("a", 1.0, ""), ("b", 2.0, "s")]


@pytest.mark.parametrize(
    ("label", "quoted"),
    [
        ("load1", "load1"),
        ("/var/log", "/var/log"),
        ("C:\\ used", "'C:\\ used'"),
        ("a=b", "'a=b'"),
        ("it's", "'it''s'"),
        ("数据库::表空间", "数据库::表空间"),
        ("USERS 表空间", "'USERS 表空间'"),
    ],
)
def test_quote_label(label: str, quoted: str) -> None:
    assert quote_label(label) == quoted


FORMAT_CASES = [
    (Metric("load1", 0.02, warn=Range(0, 5), crit=Range(0, 10), min=0), "load1=0.02;5;10;0"),
    (Metric("procs", 87, min=0), "procs=87;;;0"),
    (Metric("a", 1), "a=1"),
    (Metric("rta", math.nan, "ms", crit=Range(-INF, 30)), "rta=Ums;;~:30"),
    (
        Metric("used", 85, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0, 100),
        "used=85%;80;90;0;100",
    ),
    (Metric("r", 5, warn=Range(10, 20, inside=True), crit=Range(10, INF)), "r=5;@10:20;10:"),
    # The range converted to the metric's unit: 500ms on a value in seconds is 0.5.
    (Metric("time", 0.2, "s", warn=Range(0, 500, unit="ms")), "time=0.2s;0.5"),
    # Units the contract knows but perfdata does not are converted.
    (Metric("uptime", 2, "h", warn=Range(1, INF, unit="h")), "uptime=7200s;3600:"),
    (Metric("mem", 512, "MiB", max=1024), "mem=512MB;;;;1024"),
    # Units nobody knows are left out.
    (Metric("rate", 3, "req/s"), "rate=3"),
    # Labels keep metrics of the same name apart.
    (Metric("used", 85, "%", labels={"mount": "/var/log"}), "used[/var/log]=85%"),
    (Metric("it's", 1), "'it''s'=1"),
    (Metric("big", 1.5e20), "big=1.5e+20"),
]


@pytest.mark.parametrize(("metric", "perfdata"), FORMAT_CASES)
def test_format_perfdata(metric: Metric, perfdata: str) -> None:
    assert format_perfdata([metric]) == perfdata


def test_format_result() -> None:
    result = CheckResult(
        State.WARNING,
        "filesystem /var 85% used",
        (Metric("used", 85, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0, 100),),
        details={"long_output": "/var 85%\n/ 40%"},
    )
    assert format_result("filesystem", result) == (
        "filesystem WARNING - filesystem /var 85% used | used=85%;80;90;0;100\n/var 85%\n/ 40%"
    )


def test_format_result_keeps_text_from_breaking_the_format() -> None:
    result = CheckResult(State.OK, "a | b\nsecond line", details={"long_output": ["x | y", "z"]})
    assert format_result("my check", result) == "my check OK - a / b second line\nx / y\nz"


def test_format_results() -> None:
    results = [
        ("load", CheckResult(State.OK, "load 0.5", (Metric("load1", 0.5),))),
        ("db tablespace", CheckResult(State.CRITICAL, "USERS 95%", (Metric("USERS", 95, "%"),))),
        ("backup", CheckResult(State.UNKNOWN, "cannot read backup log")),
        ("disk", CheckResult(State.WARNING, "/var 85%", (Metric("/var", 85, "%", Range(0, 80)),))),
        ("ping", CheckResult(State.OK, "rta 1ms")),
    ]
    assert format_results(results) == (
        "OPSCTL UNKNOWN - 5 checks: 1 critical, 1 warning, 1 unknown, 2 ok"
        " | load::load1=0.5 'db tablespace::USERS'=95% disk::/var=85%;80\n"
        "[CRITICAL] db tablespace: USERS 95%\n"
        "[WARNING] disk: /var 85%\n"
        "[UNKNOWN] backup: cannot read backup log\n"
        "[OK] load: load 0.5\n"
        "[OK] ping: rta 1ms"
    )


def test_format_results_of_one_check_is_format_result() -> None:
    result = CheckResult(State.OK, "fine", (Metric("a", 1),))
    assert format_results([("only", result)]) == "only OK - fine | a=1"


def test_format_results_of_no_check() -> None:
    assert format_results([]) == "OPSCTL OK - 0 checks: 0 critical, 0 warning, 0 unknown, 0 ok"


ROUND_TRIP_METRICS = [
    Metric("load1", 0.02, warn=Range(0, 5), crit=Range(0, 10), min=0),
    Metric("used", 85.5, "%", Range(0, 80, unit="%"), Range(0, 90, unit="%"), 0, 100),
    Metric("C:\\ used", 1.0, "GB", min=0, max=500),
    Metric("it's = odd", -3.25, "c", Range(-INF, 0, unit="c"), Range(-10, 10, True, unit="c")),
    Metric("time", 0.000123, "s", Range(0.5, INF, unit="s")),
    Metric("USERS 表空间", 1e-9, "ms"),
    Metric("bytes", 2.5e12, "B", max=4e12),
    Metric("kb", 3, "KB"),
    Metric("mb", 3, "MB"),
    Metric("tb", 3, "TB"),
    Metric("us", 3, "us"),
]


def test_round_trip_one_check() -> None:
    result = CheckResult(State.CRITICAL, "many metrics", tuple(ROUND_TRIP_METRICS))
    parsed = parse_plugin_output(format_result("x", result), 2)
    assert parsed.state == State.CRITICAL
    assert parsed.summary == "x CRITICAL - many metrics"
    assert list(parsed.metrics) == ROUND_TRIP_METRICS


def test_round_trip_undetermined() -> None:
    result = CheckResult(State.UNKNOWN, "no answer", (Metric("rta", math.nan, "ms"),))
    (metric,) = parse_plugin_output(format_result("ping", result), 3).metrics
    assert (metric.name, metric.unit, math.isnan(metric.value)) == ("rta", "ms", True)


def test_round_trip_many_checks() -> None:
    results = [
        ("web 01", CheckResult(State.OK, "fine", tuple(ROUND_TRIP_METRICS[:3]))),
        ("db", CheckResult(State.WARNING, "hmm", tuple(ROUND_TRIP_METRICS[3:]))),
    ]
    parsed = parse_plugin_output(format_results(results), 1)
    expected = [
        *(replace(m, name=f"web 01::{m.name}") for m in ROUND_TRIP_METRICS[:3]),
        *(replace(m, name=f"db::{m.name}") for m in ROUND_TRIP_METRICS[3:]),
    ]
    assert list(parsed.metrics) == expected
    assert parsed.details["long_output"] == "[WARNING] db: hmm\n[OK] web 01: fine"
