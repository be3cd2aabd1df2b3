"""Local checks: Nagios plugins the agent runs on its own host, without a shell.

A plugin's exit code 0..3 is its state; anything else, a timeout or a program that cannot be
started is UNKNOWN (3) with the reason. The first line of output, before ``|``, is the
summary; perfdata (``'label'=value[UOM];warn;crit;min;max``) becomes the result's metrics.
Each result is a dict as the server's ``AgentCheckResult`` defines it.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agents.config import TOKEN_VARIABLE, CheckSpec

KIND = "agent.local"
MAX_SUMMARY = 1000
MAX_METRICS = 50
#: Most output read from one plugin; the rest is discarded.
MAX_OUTPUT = 64 * 1024

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PERF_VALUE = re.compile(rf"^(?P<number>{_NUMBER})(?P<unit>(?:[^\W\d_]|[%°])\S*)?$")
_PERF_BOUND = re.compile(rf"^(?P<number>{_NUMBER})[A-Za-z%]*$")
_PERF_TOKEN = re.compile(r"(?:'((?:[^']|'')*)'|([^\s=']+))=(\S*)")


def exit_code_reason(code: int) -> str:
    """Given a plugin's exit code outside 0..3 (negative: killed by that signal), return why
    it is not a state."""
    if code < 0:
        return f"killed by signal {_signal_name(-code)}"
    if code == 126:
        return "exit code 126: plugin not executable (permission denied or not a program)"
    if code == 127:
        return "exit code 127: command not found"
    if code > 128 and (code - 128) in signal.valid_signals():
        return f"exit code {code}: probably killed by signal {_signal_name(code - 128)}"
    return f"exit code {code} is not a Nagios state (0 to 3)"


def parse_perfdata(text: str) -> list[dict[str, Any]]:
    """Given perfdata text, return its metrics as dicts (``name``, ``value``, ``unit``,
    ``warn``, ``crit`` as the plugin wrote them, ``min``, ``max``, ``labels``).

    Malformed tokens and undetermined values (``U``) are left out.
    """
    metrics = []
    for match in _PERF_TOKEN.finditer(text):
        label = match.group(1).replace("''", "'") if match.group(1) is not None else match.group(2)
        fields = (match.group(3).split(";") + ["", "", "", ""])[:5]
        value = _PERF_VALUE.match(fields[0])
        if not label or value is None:
            continue
        metrics.append(
            {
                "name": label[:128],
                "value": float(value.group("number")),
                "unit": value.group("unit") or "",
                "warn": fields[1].strip() or None,
                "crit": fields[2].strip() or None,
                "min": _bound(fields[3]),
                "max": _bound(fields[4]),
                "labels": {},
            }
        )
    return metrics


def parse_output(name: str, output: str, code: int, at: str, duration: float) -> dict[str, Any]:
    """Given a plugin's name, standard output, exit code, start time (ISO 8601) and
    duration in seconds, return its result dict."""
    lines = output.replace("\r\n", "\n").split("\n")
    summary, _, perfdata = lines[0].partition("|")
    for position, line in enumerate(lines[1:], start=1):
        if "|" in line:
            perfdata = " ".join([perfdata, line.partition("|")[2], *lines[position + 1 :]])
            break
    summary = summary.strip() or "(no output returned from plugin)"
    state = code
    if not 0 <= code <= 3:
        state, summary = 3, f"{exit_code_reason(code)}: {summary}"
    return result(name, state, summary, at, duration, parse_perfdata(perfdata))


def result(
    name: str,
    state: int,
    summary: str,
    at: str,
    duration: float,
    metrics: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return one result dict, its summary and metrics cut to what the server accepts."""
    return {
        "name": name,
        "kind": KIND,
        "state": state,
        "summary": summary[:MAX_SUMMARY],
        "at": at,
        "duration": max(0.0, duration),
        "metrics": (metrics or [])[:MAX_METRICS],
    }


def run_check(spec: CheckSpec, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one plugin and return its result dict.

    The plugin runs in its own session (so a timeout kills its children too), with stdin
    closed and the agent's environment minus the push token. Its standard output is read
    (its standard error when that is empty). Never raises.
    """
    import subprocess

    environment = dict(os.environ if environ is None else environ)
    environment.pop(TOKEN_VARIABLE, None)
    at = datetime.now(UTC).isoformat()
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(spec.command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
    except OSError as error:
        reason = error.strerror or str(error)
        return result(spec.name, 3, f"cannot run {spec.command[0]}: {reason}", at, 0.0)
    try:
        output, errors = process.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        duration = time.monotonic() - started
        return result(spec.name, 3, f"timed out after {spec.timeout:g}s", at, duration)
    duration = time.monotonic() - started
    text = output[:MAX_OUTPUT].decode("utf-8", errors="replace")
    if not text.strip():
        # Scripts that fail before printing (a missing command) say why on stderr.
        text = errors[:MAX_OUTPUT].decode("utf-8", errors="replace").strip()
    return parse_output(spec.name, text, process.returncode, at, duration)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _bound(text: str) -> float | None:
    match = _PERF_BOUND.match(text.strip())
    return None if match is None else float(match.group("number"))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
