"""The check contract: states, Nagios ranges (every example of the Monitoring Plugins
development guidelines), evaluation, and result serialisation."""

from __future__ import annotations

import math

import pytest

from opsctl.contract import CheckResult, Item, Metric, Range, State, evaluate, worst

# "Threshold and ranges" table of the Monitoring Plugins development guidelines:
# (range, values that alert, values that do not).
RANGE_TABLE = [
    ("10", [-1, -0.001, 10.001, 11, 1e9], [0, 5, 10]),
    ("10:", [-1, 0, 9.999], [10, 11, 1e9]),
    ("~:10", [10.001, 11, 1e9], [-1e9, -1, 0, 10]),
    ("10:20", [-1, 9.99, 20.01, 100], [10, 15, 20]),
    ("@10:20", [10, 15, 20], [9.99, 20.01, -5, 100]),
    # bounds with fractions, negatives and units
    ("0.5", [0.51, -0.1], [0, 0.5]),
    ("-10:-5", [-11, -4.9, 0], [-10, -7, -5]),
    ("@~:0", [-100, 0], [0.001, 5]),
    ("80%", [80.1, 100], [0, 79.9, 80]),
    ("10:20GB", [9, 21], [10, 20]),
]


@pytest.mark.parametrize(("text", "alerting", "quiet"), RANGE_TABLE)
def test_range_alerts_as_the_guidelines_define(
    text: str, alerting: list[float], quiet: list[float]
) -> None:
    parsed = Range.parse(text)
    for value in alerting:
        assert parsed.alerts(value), f"{text!r} should alert on {value}"
    for value in quiet:
        assert not parsed.alerts(value), f"{text!r} should not alert on {value}"


# Command-line examples of the guidelines: (-w, -c, value, expected state).
GUIDELINE_EXAMPLES = [
    # -w10 -c20: critical over 20, else warning over 10; critical below 0
    ("10", "20", 5, State.OK),
    ("10", "20", 15, State.WARNING),
    ("10", "20", 25, State.CRITICAL),
    ("10", "20", -1, State.CRITICAL),
    # -w~:10 -c~:20: the same, but negative values are OK
    ("~:10", "~:20", -1, State.OK),
    ("~:10", "~:20", 15, State.WARNING),
    ("~:10", "~:20", 25, State.CRITICAL),
    # -w10: -c20: critical over 20, else warning below 10
    ("10:", "20", 5, State.WARNING),
    ("10:", "20", 15, State.OK),
    ("10:", "20", 21, State.CRITICAL),
    ("10:", "20", -1, State.CRITICAL),
    # -c1: critical below 1
    (None, "1:", 0, State.CRITICAL),
    (None, "1:", 1, State.OK),
    # -w~:0 -c10: critical above 10, warning above 0, critical below 0
    ("~:0", "10", 0, State.OK),
    ("~:0", "10", 5, State.WARNING),
    ("~:0", "10", 11, State.CRITICAL),
    ("~:0", "10", -1, State.CRITICAL),
    # -c5:6: critical below 5 or above 6
    (None, "5:6", 4, State.CRITICAL),
    (None, "5:6", 5.5, State.OK),
    (None, "5:6", 7, State.CRITICAL),
    # -c@10:20: OK below 10 or above 20, otherwise critical
    (None, "@10:20", 9, State.OK),
    (None, "@10:20", 10, State.CRITICAL),
    (None, "@10:20", 20, State.CRITICAL),
    (None, "@10:20", 21, State.OK),
]


@pytest.mark.parametrize(("warn", "crit", "value", "expected"), GUIDELINE_EXAMPLES)
def test_evaluate_guideline_examples(
    warn: str | None, crit: str | None, value: float, expected: State
) -> None:
    warn_range = Range.parse(warn) if warn else None
    crit_range = Range.parse(crit) if crit else None
    assert evaluate(value, warn_range, crit_range) is expected


def test_missing_value_is_unknown() -> None:
    assert evaluate(None, Range.parse("1"), None) is State.UNKNOWN
    assert evaluate(math.nan, None, Range.parse("1")) is State.UNKNOWN


@pytest.mark.parametrize(
    "text",
    ["", "@", "abc", "10:20:30", "20:10", "1e", "10:x", "5%:10ms", "80 percent", "12 parsecs"],
)
def test_malformed_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Range.parse(text)


def test_range_units_convert_within_a_dimension_only() -> None:
    assert Range.parse("500ms").to_unit("s") == Range(0, 0.5, False, "s")
    assert Range.parse("2GB:").to_unit("B").start == 2 * 1024**3
    assert Range.parse("3").to_unit("s") == Range(0, 3, False, "s")
    with pytest.raises(ValueError, match="expected a value in s"):
        Range.parse("80%").to_unit("s")


@pytest.mark.parametrize(
    "text", ["10", "10:", "~:10", "10:20", "@10:20", "@~:0", "0.5:1.5", "-3:4"]
)
def test_range_prints_back_in_nagios_syntax(text: str) -> None:
    parsed = Range.parse(text)
    assert Range.parse(str(parsed)) == parsed
    assert str(parsed) == text


def test_range_describe_reads_like_a_report() -> None:
    assert Range.parse("80%").describe() == "> 80%"
    assert Range.parse("10:").describe() == "< 10"
    assert Range.parse("@10:20").describe() == "10..20"
    assert Range.parse("10:20").describe() == "outside 10..20"


def test_state_parse_and_worst() -> None:
    assert State.parse("warn") is State.WARNING
    assert State.parse("CRITICAL") is State.CRITICAL
    assert State.parse("3") is State.UNKNOWN
    with pytest.raises(ValueError):
        State.parse("bad")
    assert worst([]) is State.OK
    assert worst([State.OK, State.CRITICAL, State.WARNING]) is State.CRITICAL
    assert worst([State.CRITICAL, State.UNKNOWN]) is State.UNKNOWN


def test_result_from_metrics_takes_the_worst() -> None:
    metrics = [
        Metric("used", 85, "%", warn=Range.parse("80"), crit=Range.parse("90")),
        Metric("inodes", 10, "%", warn=Range.parse("80"), crit=Range.parse("90")),
    ]
    result = CheckResult.from_metrics(metrics, "85% used")
    assert result.state is State.WARNING
    items = [Item("x", "X", "1", verdict=State.CRITICAL)]
    assert CheckResult.from_metrics(metrics, "s", items=items).state is State.CRITICAL
    data = result.to_dict()
    assert data["state"] == "WARNING" and data["code"] == 1
    assert data["metrics"][0] == {
        "name": "used",
        "value": 85,
        "unit": "%",
        "warn": "80",
        "crit": "90",
        "min": None,
        "max": None,
        "labels": {},
    }
