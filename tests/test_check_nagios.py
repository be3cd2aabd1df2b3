"""The ``nagios`` check kind against the real Monitoring Plugins and small scripts."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import need_executable
from pydantic import ValidationError

from checks.nagios import PLUGIN_DIRECTORIES, NagiosCheck, NagiosConfig, find_plugin
from opsctl import registry
from opsctl.contract import CheckError, Item, Range, State

HOST = SimpleNamespace(name="his-db-01", address="10.0.0.5")


@pytest.fixture
def plugins() -> Path:
    """The directory of the real Monitoring Plugins; skip (fail under CI) if absent."""
    path = need_executable("/usr/lib/nagios/plugins/check_dummy", "monitoring-plugins-basic")
    return Path(path).parent


def run(command: list[str], target: object = HOST, timeout: float = 10.0, **config: object):
    check = NagiosCheck(NagiosConfig(command=command, **config), timeout=timeout)
    return check.run(target)


def script(tmp_path: Path, body: str, name: str = "check_script") -> str:
    """Write an executable shell script into tmp_path and return its path."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_registered_as_nagios() -> None:
    assert registry.load("nagios") is NagiosCheck
    assert NagiosCheck.targets == frozenset({"host", "database", "log", "endpoint"})
    assert NagiosCheck.__doc__.splitlines()[0].startswith("Run a Nagios plugin")


@pytest.mark.usefixtures("plugins")
def test_check_dummy_ok() -> None:
    result = run(["check_dummy", "0", "all good"])
    assert result.state == State.OK
    assert result.summary == "OK: all good"
    assert result.metrics == ()
    assert result.items == (
        Item(key="nagios.result", item="check_dummy", value="OK: all good", verdict=State.OK),
    )
    assert result.details["exit_code"] == 0
    assert result.details["plugin"] == "/usr/lib/nagios/plugins/check_dummy"
    assert "all good" not in str(result.details)


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("code", "state", "summary"),
    [
        ("1", State.WARNING, "WARNING: hmm"),
        ("2", State.CRITICAL, "CRITICAL: hmm"),
        ("3", State.UNKNOWN, "UNKNOWN: hmm"),
    ],
)
def test_check_dummy_states(code: str, state: State, summary: str) -> None:
    result = run(["check_dummy", code, "hmm"])
    assert (result.state, result.summary) == (state, summary)
    assert result.items[0].verdict == state


def test_absolute_plugin_path(plugins: Path) -> None:
    result = run([str(plugins / "check_dummy"), "0", "by path"])
    assert (result.state, result.summary) == (State.OK, "OK: by path")


@pytest.mark.usefixtures("plugins")
def test_check_load_metrics() -> None:
    result = run(["check_load", "-w", "5,4,3", "-c", "10,8,6"])
    assert result.summary.startswith("LOAD ")
    assert [(m.name, m.warn, m.crit, m.min) for m in result.metrics] == [
        ("load1", Range(0, 5), Range(0, 10), 0.0),
        ("load5", Range(0, 4), Range(0, 8), 0.0),
        ("load15", Range(0, 3), Range(0, 6), 0.0),
    ]
    assert all(math.isfinite(m.value) for m in result.metrics)


@pytest.mark.usefixtures("plugins")
def test_check_disk_metrics_with_unit() -> None:
    result = run(["check_disk", "-w", "20%", "-c", "10%", "-p", "/"])
    assert result.summary.startswith("DISK ")
    (metric,) = result.metrics
    assert (metric.name, metric.unit, metric.min) == ("/", "B", 0.0)
    assert metric.max is not None and metric.warn is not None and metric.crit is not None
    # check_disk turns "20% free" into a byte threshold: 80% and 90% of the size.
    assert metric.warn.end == pytest.approx(metric.max * 0.8, rel=0.01)
    assert metric.crit.end == pytest.approx(metric.max * 0.9, rel=0.01)


@pytest.mark.usefixtures("plugins")
def test_macros_from_the_target() -> None:
    result = run(["check_dummy", "0", "{name} at {address} {other}"])
    assert result.summary == "OK: his-db-01 at 10.0.0.5 {other}"


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("target", "address"),
    [
        (SimpleNamespace(name="emr", engine="oracle", host="10.1.1.1"), "10.1.1.1"),
        (
            SimpleNamespace(name="pacs", url="https://pacs.example:8443/x", address=None),
            "pacs.example",
        ),
    ],
)
def test_address_of_databases_and_endpoints(target: object, address: str) -> None:
    assert run(["check_dummy", "0", "{address}"], target=target).summary == f"OK: {address}"


def test_macro_the_target_lacks_is_a_check_error() -> None:
    log = SimpleNamespace(name="his-log", path="/var/log/his.log", host=None)
    with pytest.raises(CheckError, match=r"\{address\} but his-log has no address"):
        run(["check_dummy", "0", "{address}"], target=log)


def test_missing_plugin_is_unknown() -> None:
    result = run(["check_does_not_exist_anywhere", "-w", "1"])
    assert result.state == State.UNKNOWN
    assert result.items[0].verdict == State.UNKNOWN
    assert result.summary == (
        "plugin not found: check_does_not_exist_anywhere (searched PATH, "
        + ", ".join(PLUGIN_DIRECTORIES)
        + ")"
    )


def test_missing_plugin_path_is_unknown(tmp_path: Path) -> None:
    result = run([str(tmp_path / "check_gone")])
    assert (result.state, result.summary) == (
        State.UNKNOWN,
        f"plugin not found: {tmp_path}/check_gone",
    )


def test_plugin_found_in_the_configured_path(tmp_path: Path) -> None:
    script(tmp_path, 'echo "LOCAL OK - $SITE | x=1"', name="check_local")
    result = run(["check_local"], env={"PATH": str(tmp_path), "SITE": "北京"})
    assert (result.state, result.summary) == (State.OK, "LOCAL OK - 北京")
    assert [m.name for m in result.metrics] == ["x"]


def test_empty_path_entry_is_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(tmp_path, "echo OK", name="check_here_only")
    monkeypatch.chdir(tmp_path)
    assert find_plugin("check_here_only", path="") is None


def test_not_executable_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "check_plain"
    path.write_text("#!/bin/sh\necho OK\n")
    result = run([str(path)])
    assert result.state == State.UNKNOWN
    assert result.summary == "plugin check_plain cannot be run: Permission denied"


def test_timeout_kills_the_plugin_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    plugin = script(tmp_path, f'sleep 60 &\necho "$$ $!" > {pids}\necho "started"\nwait')
    started = time.monotonic()
    result = run([plugin], timeout=1.5)
    assert time.monotonic() - started < 5
    assert result.state == State.UNKNOWN
    assert result.summary == "plugin check_script timed out after 1.5 s"
    assert result.details["partial_output"] == "started\n"
    for pid in map(int, pids.read_text().split()):
        assert _gone(pid), f"process {pid} survived the timeout"


def _gone(pid: int) -> bool:
    """True once the process no longer exists or is a zombie waiting for its reaper."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_exit_127_is_unknown_with_stderr(tmp_path: Path) -> None:
    result = run([script(tmp_path, "no_such_command_opsctl_test")])
    assert result.state == State.UNKNOWN
    assert result.summary.startswith("exit code 127: command not found: ")
    assert "no_such_command_opsctl_test" in result.summary
    assert "no_such_command_opsctl_test" in result.details["stderr"]


@pytest.mark.parametrize(
    ("body", "state", "summary"),
    [
        ("exit 0", State.OK, "(no output returned from plugin)"),
        ("exit 2", State.CRITICAL, "(no output returned from plugin)"),
        (
            "echo 'NOT A PLUGIN ;;; ===' ; exit 5",
            State.UNKNOWN,
            "exit code 5 is not a Nagios state",
        ),
        ("kill -9 $$", State.UNKNOWN, "killed by signal SIGKILL: (no output returned from plugin)"),
        ("printf 'OK \\377\\376 bytes | a=\\377 b=1'", State.OK, "OK \ufffd\ufffd bytes"),
    ],
)
def test_garbage_or_no_output(tmp_path: Path, body: str, state: State, summary: str) -> None:
    result = run([script(tmp_path, body)])
    assert result.state == state
    assert result.summary.startswith(summary)
    assert result.items[0].verdict == state


def test_invalid_utf8_perfdata_token_is_skipped(tmp_path: Path) -> None:
    result = run([script(tmp_path, "printf 'OK | a=\\377 b=1'")])
    assert [m.name for m in result.metrics] == ["b"]


def test_output_is_capped(tmp_path: Path) -> None:
    result = run([script(tmp_path, "echo 'OK - big | a=1'; head -c 200000 /dev/zero | tr '\\0' x")])
    assert (result.state, result.summary) == (State.OK, "OK - big")
    assert result.details["output_truncated_at_bytes"] == 64 * 1024
    assert len(result.details["long_output"]) < 64 * 1024


def test_stdin_is_empty(tmp_path: Path) -> None:
    result = run([script(tmp_path, 'read line; echo "OK - read [$line]"')], timeout=5)
    assert result.summary == "OK - read []"


def test_environment_is_inherited_and_extended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCTL_TEST_INHERITED", "yes")
    body = 'echo "OK - $OPSCTL_TEST_INHERITED $ORACLE_SID"'
    result = run([script(tmp_path, body)], env={"ORACLE_SID": "HIS"})
    assert result.summary == "OK - yes HIS"
    assert "ORACLE_SID" not in os.environ


@pytest.mark.parametrize(
    "config",
    [
        {"command": "check_load -w 5 -c 10"},
        {"command": []},
        {"command": [" "]},
        {"command": ["check_load"], "shell": True},
        {"command": ["check_load"], "env": {"A": 1}},
    ],
)
def test_config_refuses(config: dict) -> None:
    with pytest.raises(ValidationError):
        NagiosConfig(**config)


def test_config_fields_are_described() -> None:
    for name, field in NagiosConfig.model_fields.items():
        assert field.description, name
