"""The process check, judged on a recorded process list (tests/fixtures/processes/)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from checks.process import ProcessCheck, ProcessConfig, evaluate_processes, matching
from opsctl.contract import CheckError, State
from opsctl.sources import ProcessInfo

FIXTURES = Path(__file__).parent / "fixtures" / "processes"
# In the fixture, cron's shell (4100) runs opsctl (4101) with "--match nginx" on its
# command line: exactly what check_procs leaves out when it counts.
OPSCTL = frozenset({4100, 4101})


def processes() -> list[ProcessInfo]:
    data = json.loads((FIXTURES / "centos7-his-app.json").read_text())
    return [ProcessInfo.from_dict(d) for d in data]


def item(result, key: str):
    (found,) = [i for i in result.items if i.key == key]
    return found


def metric(result, name: str):
    (found,) = [m for m in result.metrics if m.name == name]
    return found


@pytest.mark.parametrize(
    ("config", "state", "summary"),
    [
        ({"process": "nginx"}, State.OK, "3 processes matching 'nginx', 25 MB RSS"),
        ({"process": "ora_pmon_*"}, State.OK, "1 process matching 'ora_pmon_*', 21 MB RSS"),
        (
            {"process": "ora_pmon_EMR"},
            State.CRITICAL,
            "no process matching 'ora_pmon_EMR' (CRITICAL: expected at least 1)",
        ),
        (
            {"match": r"catalina\.startup\.Bootstrap", "user": "tomcat"},
            State.OK,
            "1 process with command line matching /catalina\\.startup\\.Bootstrap/ of user "
            "tomcat, 5.5 GB RSS",
        ),
        ({"process": "nginx", "count": "2:4"}, State.OK, "3 processes matching 'nginx', 25 MB RSS"),
        (
            {"process": "nginx", "crit": "2"},
            State.CRITICAL,
            "3 processes matching 'nginx' (CRITICAL: expected at most 2), 25 MB RSS",
        ),
        (
            {"state": "Z", "warn": "0", "crit": "5"},
            State.WARNING,
            "3 processes in state zombie (WARNING: expected none)",
        ),
        ({"warn": "500", "crit": "1000"}, State.OK, "16 processes, 5.7 GB RSS"),
        (
            {"warn": "10", "crit": "20"},
            State.WARNING,
            "16 processes (WARNING: expected at most 10), 5.7 GB RSS",
        ),
        (
            {
                "process": "java",
                "user": "tomcat",
                "rss_warn": "4GB",
                "rss_crit": "8GB",
                "cpu_warn": "150%",
            },
            State.WARNING,
            "1 process matching 'java' of user tomcat, 5.5 GB RSS (WARNING), CPU 180% (WARNING)",
        ),
        (
            # his-sync runs under hidepid: its memory and CPU could not be read.
            {"process": "his-sync", "rss_warn": "1GB", "cpu_warn": "50%"},
            State.UNKNOWN,
            "1 process matching 'his-sync', RSS not readable (UNKNOWN), CPU not measured (UNKNOWN)",
        ),
    ],
)
def test_state_and_summary(config: dict, state: State, summary: str) -> None:
    result = evaluate_processes(processes(), ProcessConfig(**config), OPSCTL)
    assert result.state == state
    assert result.summary == summary


def test_opsctl_and_its_parent_are_not_counted() -> None:
    config = ProcessConfig(match="nginx")
    assert [p.pid for p in matching(processes(), config)] == [1350, 1351, 1352, 4100, 4101]
    assert [p.pid for p in matching(processes(), config, OPSCTL)] == [1350, 1351, 1352]


@pytest.mark.parametrize(
    ("config", "pids"),
    [
        ({"process": "nginx", "user": "nginx"}, [1351, 1352]),
        ({"process": "ora_*_HISDB"}, [2601, 2603, 2605]),
        ({"match": "^ora_"}, [2601, 2603, 2605]),
        ({"state": "zombie"}, [3001, 3002, 3003]),
        ({"process": "sh", "state": "sleeping"}, []),
        ({"user": "oracle"}, [2450, 2601, 2603, 2605]),
    ],
)
def test_filters_all_must_hold(config: dict, pids: list[int]) -> None:
    assert [p.pid for p in matching(processes(), ProcessConfig(**config), OPSCTL)] == pids


def test_count_item_lists_pids_and_advises_when_missing() -> None:
    result = evaluate_processes(processes(), ProcessConfig(process="nginx"), OPSCTL)
    count = item(result, "process.count")
    assert count.item == "Process nginx / count"
    assert count.value == "3 running (pids 1350, 1351, 1352)"
    assert count.threshold == "critical unless at least 1"
    assert (count.verdict, count.advice) == (State.OK, "")

    result = evaluate_processes(processes(), ProcessConfig(process="ora_pmon_EMR"), OPSCTL)
    count = item(result, "process.count")
    assert count.value == "0 running"
    assert count.verdict == State.CRITICAL
    assert count.advice.startswith("start ora_pmon_EMR and find why it stopped: check its log")


def test_zombie_advice_names_the_parent() -> None:
    result = evaluate_processes(processes(), ProcessConfig(state="Z", warn="0"), OPSCTL)
    count = item(result, "process.count")
    assert count.item == "Process all (zombie) / count"
    assert count.value == "3 zombie (pids 3001, 3002, 3003)"
    assert "(pids 1020)" in count.advice


def test_long_pid_lists_are_cut() -> None:
    result = evaluate_processes(processes(), ProcessConfig(), OPSCTL)
    assert item(result, "process.count").value == (
        "16 running (pids 1, 2, 812, 1020, 1350, 1351, 1352, 2101, 2450, 2601, … 6 more)"
    )


def test_metrics() -> None:
    config = ProcessConfig(
        process="java", rss_warn="4GB", rss_crit="8GB", cpu_crit="300%", warn="3"
    )
    result = evaluate_processes(processes(), config, OPSCTL)
    count = metric(result, "count")
    assert (count.value, count.unit, str(count.warn), str(count.crit)) == (1, "", "3", "1:")
    rss = metric(result, "rss")
    assert (rss.value, rss.unit) == (int(5.5 * 1024**3), "B")
    assert (str(rss.warn), str(rss.crit)) == (str(4 * 1024**3), str(8 * 1024**3))
    cpu = metric(result, "cpu_percent")
    assert (cpu.value, cpu.unit, cpu.warn, str(cpu.crit)) == (180.0, "%", None, "300")
    items = {i.key: i for i in result.items}
    assert items["process.rss"].value == "5.5 GB resident"
    assert items["process.rss"].threshold == "warning > 4GB, critical > 8GB"
    assert items["process.cpu"].value == "180.0%"


def test_count_and_crit_combine_into_one_perfdata_range() -> None:
    result = evaluate_processes(processes(), ProcessConfig(process="nginx", crit="2"), OPSCTL)
    assert str(metric(result, "count").crit) == "1:2"


def test_expect_one_by_default_only_when_a_process_is_named() -> None:
    assert str(ProcessConfig(process="nginx").count) == "1:"
    assert str(ProcessConfig.model_validate({"match": "java"}).count) == "1:"
    assert ProcessConfig().count is None
    assert ProcessConfig(state="zombie").count is None
    assert ProcessConfig.model_validate({"process": "nginx", "count": None}).count is None
    result = evaluate_processes(
        processes(), ProcessConfig(process="ora_pmon_EMR", count=None), OPSCTL
    )
    assert result.state == State.OK


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"match": "java ("}, "not a valid regular expression"),
        ({"state": "Q"}, "unknown process state 'Q'"),
        ({"rss_warn": "500"}, 'a size with its unit, like "2GB"'),
        ({"rss_warn": "50%"}, "a size with its unit"),
        ({"cpu_warn": "2GB"}, "percentage"),
        ({"warn": "10%"}, "number of processes"),
        ({"command": "nginx"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_say_what_is_expected(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProcessConfig(**config)


@pytest.mark.parametrize(
    ("given", "stored"), [("Z", "zombie"), ("zombie", "zombie"), ("D", "disk-sleep")]
)
def test_states_are_stored_as_psutil_words(given: str, stored: str) -> None:
    assert ProcessConfig(state=given).state == stored


def test_every_config_field_is_described() -> None:
    for name, field in ProcessConfig.model_fields.items():
        assert field.description, name


def test_run_finds_this_test_process_on_the_local_host() -> None:
    # The test runner itself is opsctl's process here, so it is left out; its children
    # are not. A check for a process that cannot exist must be CRITICAL.
    result = ProcessCheck(ProcessConfig(process="no-such-process-opsctl")).run(
        SimpleNamespace(name="local")
    )
    assert result.state == State.CRITICAL
    result = ProcessCheck(ProcessConfig(match="pytest")).run(SimpleNamespace(name="local"))
    assert os.getpid() not in result.details["pids"]


def test_run_on_an_agent_host_raises() -> None:
    with pytest.raises(CheckError, match="opsctl-agent"):
        ProcessCheck(ProcessConfig()).run(SimpleNamespace(name="h", transport="agent"))
