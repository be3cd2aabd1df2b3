"""The host check, judged on recorded host facts (tests/fixtures/host/)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from checks.host import HostCheck, HostConfig, evaluate_host
from opsctl.contract import CheckError, State
from opsctl.sources import HostFacts

FIXTURES = Path(__file__).parent / "fixtures" / "host"


def facts(name: str) -> HostFacts:
    return HostFacts.from_dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def item(result, key: str):
    (found,) = [i for i in result.items if i.key == key]
    return found


def metric(result, name: str):
    (found,) = [m for m in result.metrics if m.name == name]
    return found


@pytest.mark.parametrize(
    ("fixture", "config", "state", "summary"),
    [
        (
            "debian12-vm-local",
            {},
            State.OK,
            "Debian GNU/Linux 12 (bookworm), 2 CPU, load 0.71, memory 3% used, no swap, up 20m 2s",
        ),
        (
            "centos7-db-64cpu-loaded",
            {},
            State.CRITICAL,
            "CentOS Linux 7 (Core), 64 CPU, load 230.40, 3.60 per CPU (CRITICAL), "
            "memory 96% used (CRITICAL), swap 30% used, up 412d 5h",
        ),
        (
            "kylin-v10-kunpeng-swapping",
            {},
            State.WARNING,
            "Kylin Linux Advanced Server V10 (Sword), 96 CPU, load 12.48, memory 75% used, "
            "swap 65% used (WARNING), up 20m",
        ),
        (
            # Thresholds raised for a database server sized to run hot.
            "centos7-db-64cpu-loaded",
            {"load_warn": "4", "load_crit": "8", "memory_warn": "97%", "memory_crit": "99%"},
            State.OK,
            "CentOS Linux 7 (Core), 64 CPU, load 230.40, memory 96% used, swap 30% used, "
            "up 412d 5h",
        ),
        (
            "kylin-v10-kunpeng-swapping",
            {"swap_warn": "70%", "min_uptime": "1h"},
            State.WARNING,
            "Kylin Linux Advanced Server V10 (Sword), 96 CPU, load 12.48, memory 75% used, "
            "swap 65% used, up 20m (WARNING)",
        ),
        (
            "centos7-db-64cpu-loaded",
            {"load_crit": None, "memory_crit": None, "cpu_warn": "90%", "cpu_crit": "99%"},
            State.WARNING,
            "CentOS Linux 7 (Core), 64 CPU, load 230.40, 3.60 per CPU (WARNING), "
            "memory 96% used (WARNING), swap 30% used, CPU 97% (WARNING), up 412d 5h",
        ),
    ],
)
def test_state_and_summary(fixture: str, config: dict, state: State, summary: str) -> None:
    result = evaluate_host(facts(fixture), HostConfig(**config))
    assert result.state == state
    assert result.summary == summary


def test_fact_items_are_report_rows_with_verdict_ok_and_no_threshold() -> None:
    result = evaluate_host(facts("kylin-v10-kunpeng-swapping"), HostConfig())
    rows = {i.key: i for i in result.items}
    assert [i.key for i in result.items] == [
        "host.hostname",
        "host.os",
        "host.kernel",
        "host.architecture",
        "host.cpu",
        "host.memory_total",
        "host.memory_used",
        "host.swap_used",
        "host.load",
        "host.cpu_used",
        "host.uptime",
    ]
    assert rows["host.os"].value == "Kylin Linux Advanced Server V10 (Sword)"
    assert rows["host.kernel"].value == "4.19.90-24.4.v2101.ky10.aarch64"
    assert rows["host.architecture"].value == "aarch64"
    assert rows["host.cpu"].value == "96 × HiSilicon Kunpeng-920"
    assert rows["host.memory_total"].value == "127 GB"
    assert rows["host.uptime"].value == "20m (booted 2025-04-02 08:10 UTC)"
    assert rows["host.cpu_used"].value == "not measured"
    for key in ("host.hostname", "host.os", "host.kernel", "host.architecture", "host.cpu"):
        assert rows[key].verdict == State.OK
        assert rows[key].threshold == ""
        assert rows[key].advice == ""


def test_judged_items_carry_threshold_and_advice_only_when_not_ok() -> None:
    result = evaluate_host(facts("centos7-db-64cpu-loaded"), HostConfig())
    memory = item(result, "host.memory_used")
    assert memory.value == "96.0% (484 GB of 504 GB, 20 GB available)"
    assert memory.verdict == State.CRITICAL
    assert memory.threshold == "warning > 90%, critical > 95%"
    assert memory.advice.startswith("memory used 96%: find the largest processes")
    load = item(result, "host.load")
    assert load.value == "230.40 / 198.72 / 150.18 (3.60 per CPU, 64 CPU)"
    assert load.threshold == "warning > 1.5 per CPU, critical > 3 per CPU"
    assert load.verdict == State.CRITICAL
    assert "slow disks" in load.advice
    swap = item(result, "host.swap_used")
    assert (swap.value, swap.verdict, swap.advice) == ("30.0% (4.8 GB of 16 GB)", State.OK, "")


def test_metrics_carry_units_and_thresholds() -> None:
    result = evaluate_host(facts("centos7-db-64cpu-loaded"), HostConfig())
    names = [m.name for m in result.metrics]
    assert names == [
        "load1",
        "load5",
        "load15",
        "load1_per_cpu",
        "memory_total",
        "memory_used_percent",
        "swap_used_percent",
        "cpu_percent",
        "uptime",
    ]
    per_cpu = metric(result, "load1_per_cpu")
    assert per_cpu.value == pytest.approx(3.6)
    assert (str(per_cpu.warn), str(per_cpu.crit)) == ("1.5", "3")
    memory = metric(result, "memory_used_percent")
    assert memory.unit == "%"
    assert memory.value == pytest.approx(96.0)
    assert (memory.min, memory.max, str(memory.warn), str(memory.crit)) == (0, 100, "90", "95")
    assert metric(result, "memory_total").value == 540861521920
    assert metric(result, "memory_total").unit == "B"
    assert metric(result, "uptime").value == 412 * 86400 + 5 * 3600
    assert metric(result, "uptime").unit == "s"
    assert metric(result, "cpu_percent").value == pytest.approx(97.3)


def test_host_without_swap_or_cpu_sample_has_no_such_metrics() -> None:
    result = evaluate_host(facts("kylin-v10-kunpeng-swapping"), HostConfig())
    assert "cpu_percent" not in [m.name for m in result.metrics]
    result = evaluate_host(facts("debian12-vm-local"), HostConfig())
    assert "swap_used_percent" not in [m.name for m in result.metrics]
    assert item(result, "host.swap_used").value == "no swap configured"


def test_cpu_threshold_without_a_sample_is_unknown() -> None:
    result = evaluate_host(facts("kylin-v10-kunpeng-swapping"), HostConfig(cpu_warn="90%"))
    assert item(result, "host.cpu_used").verdict == State.UNKNOWN
    assert result.state == State.UNKNOWN


def test_min_uptime_warns_after_a_restart_with_advice() -> None:
    result = evaluate_host(facts("kylin-v10-kunpeng-swapping"), HostConfig(min_uptime="1h"))
    uptime = item(result, "host.uptime")
    assert uptime.verdict == State.WARNING
    assert uptime.threshold == "warning < 1h"
    assert uptime.advice.startswith("the host restarted 20m ago")
    assert str(metric(result, "uptime").warn) == "3600:"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("load_warn", "150%", "load per CPU"),
        ("memory_warn", "2GB", "percentage"),
        ("swap_crit", "80s", "percentage"),
        ("min_uptime", "soon", "duration"),
        ("memory_limit", "90%", "Extra inputs are not permitted"),
    ],
)
def test_config_errors_say_what_is_expected(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HostConfig(**{field: value})


def test_defaults() -> None:
    assert HostConfig().model_dump(mode="json") == {
        "load_warn": "1.5",
        "load_crit": "3",
        "memory_warn": "90%",
        "memory_crit": "95%",
        "swap_warn": "50%",
        "swap_crit": "80%",
        "cpu_warn": None,
        "cpu_crit": None,
        "min_uptime": None,
    }


def test_every_config_field_is_described() -> None:
    for name, field in HostConfig.model_fields.items():
        assert field.description, name


def test_run_on_an_agent_host_says_where_its_data_comes_from() -> None:
    check = HostCheck(HostConfig())
    target = SimpleNamespace(name="his-db01", address="10.0.0.5", transport="agent")
    with pytest.raises(CheckError, match="his-db01 reports through opsctl-agent"):
        check.run(target)


def test_run_on_the_local_host_returns_its_facts() -> None:
    result = HostCheck(HostConfig()).run(SimpleNamespace(name="local", transport="local"))
    keys = [i.key for i in result.items]
    assert keys[:2] == ["host.hostname", "host.os"]
    assert "memory_used_percent" in [m.name for m in result.metrics]
    assert HostCheck.kind == "host"
    assert HostCheck.targets == frozenset({"host"})
