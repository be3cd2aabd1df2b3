"""The process check: how many processes match, and how much memory and CPU they use."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator, model_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    describe_thresholds,
    evaluate,
    percent_range,
    worst,
)
from opsctl.sources import PS_STATES, ProcessInfo, format_bytes, source_for

_STATE_WORDS = frozenset(PS_STATES.values()) | {"locked", "waiting", "suspended"}
_PIDS_SHOWN = 10


def _count_range(value: Range | None) -> Range | None:
    if value is not None and value.unit:
        raise ValueError(
            f'expected a number of processes like "1:" or "500", got a value in {value.unit}'
        )
    return value


def _size_range(value: Range | None) -> Range | None:
    if value is None:
        return None
    try:
        if not value.unit:
            raise ValueError
        value.to_unit("B")
    except ValueError:
        raise ValueError('expected a size with its unit, like "2GB" or "512MB"') from None
    return value


class ProcessConfig(CheckConfig):
    """Configuration of the ``process`` check."""

    process: str | None = Field(
        None,
        description='Process name, exact ("nginx") or a pattern ("ora_pmon_*"), as ps -e and '
        "top show it.",
    )
    match: str | None = Field(
        None,
        description='Regular expression searched in the full command line ("java .*his\\.jar").',
    )
    user: str | None = Field(None, description="Only processes of this user.")
    state: str | None = Field(
        None, description='Only processes in this state: a ps letter ("Z") or a word ("zombie").'
    )
    count: RangeField | None = Field(
        None,
        description="Critical unless the number of matching processes is within this range. "
        'Defaults to "1:" (at least one must run) when process or match is given; null disables.',
    )
    warn: RangeField | None = Field(
        None, description='Warning on the number of matching processes, as check_procs -w ("500").'
    )
    crit: RangeField | None = Field(
        None,
        description='Critical on the number of matching processes, as check_procs -c ("1000").',
    )
    rss_warn: RangeField | None = Field(
        None, description='Warning on the total resident memory of the matches ("4GB").'
    )
    rss_crit: RangeField | None = Field(
        None, description='Critical on the total resident memory of the matches ("8GB").'
    )
    cpu_warn: RangeField | None = Field(
        None,
        description='Warning on the total CPU use of the matches, 100% being one CPU ("200%").',
    )
    cpu_crit: RangeField | None = Field(
        None,
        description='Critical on the total CPU use of the matches, 100% being one CPU ("400%").',
    )

    @model_validator(mode="before")
    @classmethod
    def _expect_one(cls, data: Any) -> Any:
        # A check that names a process is there to see it run: expect at least one, unless
        # the inventory says otherwise (count: null keeps it off).
        if (
            isinstance(data, dict)
            and "count" not in data
            and (data.get("process") or data.get("match"))
        ):
            return {**data, "count": "1:"}
        return data

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str | None) -> str | None:
        if value is None:
            return None
        word = PS_STATES.get(value.strip(), value.strip().lower())
        if word not in _STATE_WORDS:
            letters = ", ".join(f"{letter} ({name})" for letter, name in PS_STATES.items())
            raise ValueError(f"unknown process state {value!r}; known: {letters}")
        return word

    _counts = field_validator("count", "warn", "crit")(_count_range)
    _sizes = field_validator("rss_warn", "rss_crit")(_size_range)
    _percents = field_validator("cpu_warn", "cpu_crit")(percent_range)


def matching(
    processes: Iterable[ProcessInfo], config: ProcessConfig, exclude_pids: Iterable[int] = ()
) -> list[ProcessInfo]:
    """Given processes, return those the configuration selects (all filters must hold), in
    pid order, leaving out ``exclude_pids``.
    """
    excluded = set(exclude_pids)
    pattern = None if config.match is None else re.compile(config.match)
    selected = []
    for process in processes:
        if process.pid in excluded:
            continue
        if config.process is not None and not (
            process.name == config.process or fnmatchcase(process.name, config.process)
        ):
            continue
        if pattern is not None and not pattern.search(process.cmdline):
            continue
        if config.user is not None and process.username != config.user:
            continue
        if config.state is not None and process.status != config.state:
            continue
        selected.append(process)
    return sorted(selected, key=lambda p: p.pid)


def _intersect(count: Range | None, crit: Range | None) -> Range | None:
    """Return one critical range for perfdata that alerts when either range does."""
    if count is None or crit is None:
        return count or crit
    if count.inside or crit.inside:
        return crit  # no single Nagios range says both; the item's verdict still does
    start, end = max(count.start, crit.start), min(count.end, crit.end)
    # Ranges that leave no acceptable count ("5:" with "3") cannot be written as one.
    return Range(start, end) if start <= end else crit


def _expectation(value: Range) -> str:
    """The non-alerting values of a count range, as a person says them: ``at least 1``."""

    def number(x: float) -> str:
        return str(int(x)) if x == int(x) else f"{x:g}"

    if value.inside:
        return f"fewer than {number(value.start)} or more than {number(value.end)}"
    low = None if math.isinf(value.start) or value.start <= 0 else number(value.start)
    high = None if math.isinf(value.end) else number(value.end)
    if low and high:
        return f"between {low} and {high}" if low != high else f"exactly {low}"
    if high == "0" and not low:
        return "none"
    if low:
        return f"at least {low}"
    if high:
        return f"at most {high}"
    return "any number"


def _subject(config: ProcessConfig) -> str:
    """What the check looks for, for summaries: ``matching 'nginx' of user www``."""
    parts = []
    if config.process is not None:
        parts.append(f"matching '{config.process}'")
    if config.match is not None:
        parts.append(f"with command line matching /{config.match}/")
    if config.user is not None:
        parts.append(f"of user {config.user}")
    if config.state is not None:
        parts.append(f"in state {config.state}")
    return " ".join(parts)


def _label(config: ProcessConfig) -> str:
    """The process named in item labels: ``Process nginx / count``."""
    base = config.process or (f"/{config.match}/" if config.match else "all")
    extras = [f"user {config.user}" if config.user else "", config.state or ""]
    extra = ", ".join(e for e in extras if e)
    return f"{base} ({extra})" if extra else base


def _pid_list(processes: list[ProcessInfo]) -> str:
    pids = [str(p.pid) for p in processes[:_PIDS_SHOWN]]
    more = len(processes) - _PIDS_SHOWN
    return ", ".join(pids) + (f", … {more} more" if more > 0 else "")


def _total(values: list[float | None] | list[int | None]) -> float | None:
    """The sum of the known values; None if every value is unknown (0 if there are none)."""
    known = [v for v in values if v is not None]
    return None if values and not known else sum(known)


def _measure(
    metrics: list[Metric],
    name: str,
    value: float | None,
    unit: str,
    warn: Range | None,
    crit: Range | None,
) -> State:
    """Append the metric for ``value`` if it is known; return its state (UNKNOWN if it is
    not known but thresholds ask for it, OK if nobody asked).
    """
    if value is None:
        return State.UNKNOWN if warn is not None or crit is not None else State.OK
    metric = Metric(
        name,
        value,
        unit,
        None if warn is None else warn.to_unit(unit),
        None if crit is None else crit.to_unit(unit),
        0,
    )
    metrics.append(metric)
    return metric.state


def _advice(state: State, text: str) -> str:
    return text if state in (State.WARNING, State.CRITICAL) else ""


def _mark(text: str, state: State) -> str:
    return text if state == State.OK else f"{text} ({state.name})"


def evaluate_processes(
    processes: list[ProcessInfo], config: ProcessConfig, exclude_pids: Iterable[int] = ()
) -> CheckResult:
    """Given every process of a host and the check's configuration, return the result:
    the number of matching processes judged by ``count``, ``warn`` and ``crit``, their
    total RSS and CPU judged by ``rss_*`` and ``cpu_*``, with items and metrics.

    ``exclude_pids`` are left out (opsctl's own process and its parent, whose command
    lines may contain the pattern looked for).
    """
    found = matching(processes, config, exclude_pids)
    number = len(found)
    label = _label(config)
    subject = _subject(config)
    count_state = worst(
        [evaluate(number, None, config.count), evaluate(number, config.warn, config.crit)]
    )

    rss_total = _total([p.rss_bytes for p in found])
    cpu_total = _total([p.cpu_percent for p in found])
    metrics = [Metric("count", number, "", config.warn, _intersect(config.count, config.crit), 0)]
    rss_state = _measure(metrics, "rss", rss_total, "B", config.rss_warn, config.rss_crit)
    cpu_state = _measure(metrics, "cpu_percent", cpu_total, "%", config.cpu_warn, config.cpu_crit)

    count_threshold = ", ".join(
        part
        for part in (
            "" if config.warn is None else f"warning {config.warn.describe()}",
            "" if config.count is None else f"critical unless {_expectation(config.count)}",
            "" if config.crit is None else f"critical {config.crit.describe()}",
        )
        if part
    )
    items = [
        Item(
            key="process.count",
            item=f"Process {label} / count",
            value=f"{number} {config.state or 'running'}"
            + (f" (pids {_pid_list(found)})" if found else ""),
            verdict=count_state,
            threshold=count_threshold,
            advice=_count_advice(count_state, number, config, found),
        )
    ]
    if config.rss_warn is not None or config.rss_crit is not None:
        items.append(
            Item(
                key="process.rss",
                item=f"Process {label} / memory",
                value="not readable"
                if rss_total is None
                else f"{format_bytes(rss_total)} resident",
                verdict=rss_state,
                threshold=describe_thresholds(config.rss_warn, config.rss_crit),
                advice=_advice(
                    rss_state,
                    f"{label} uses {format_bytes(rss_total or 0)}: compare with its configured "
                    "heap or cache size, look for a leak, and restart it in a maintenance "
                    "window if it keeps growing",
                ),
            )
        )
    if config.cpu_warn is not None or config.cpu_crit is not None:
        items.append(
            Item(
                key="process.cpu",
                item=f"Process {label} / CPU",
                value="not measured" if cpu_total is None else f"{cpu_total:.1f}%",
                verdict=cpu_state,
                threshold=describe_thresholds(config.cpu_warn, config.cpu_crit),
                advice=_advice(
                    cpu_state,
                    f"{label} is using {cpu_total or 0:.0f}% CPU: see which of its threads "
                    "are busy (top -H -p PID) and whether a job or a query loop explains it",
                ),
            )
        )

    noun = "process" if number == 1 else "processes"
    summary = (f"{number} {noun}" if number else "no process") + (f" {subject}" if subject else "")
    if count_state != State.OK:
        candidates = (
            (config.count, config.crit) if count_state == State.CRITICAL else (config.warn,)
        )
        broken = next(r for r in candidates if r is not None and r.alerts(number))
        summary += f" ({count_state.name}: expected {_expectation(broken)})"
    if rss_total or rss_state != State.OK:
        rss_text = "RSS not readable" if rss_total is None else f"{format_bytes(rss_total)} RSS"
        summary += f", {_mark(rss_text, rss_state)}"
    if cpu_state != State.OK:
        cpu_text = "CPU not measured" if cpu_total is None else f"CPU {cpu_total:.0f}%"
        summary += f", {_mark(cpu_text, cpu_state)}"
    return CheckResult.from_metrics(
        metrics,
        summary,
        items,
        details={"pids": [p.pid for p in found]},
    )


def _count_advice(
    state: State, number: int, config: ProcessConfig, found: list[ProcessInfo]
) -> str:
    if state == State.OK:
        return ""
    too_few = any(
        r is not None and not r.inside and number < r.start
        for r in (config.count, config.warn, config.crit)
    )
    if too_few:
        what = config.process or (
            f"the process matching /{config.match}/" if config.match else "it"
        )
        return f"start {what} and find why it stopped: check its log and the system log"
    if config.state == "zombie":
        parents = ", ".join(str(pid) for pid in sorted({p.ppid for p in found})[:_PIDS_SHOWN])
        return (
            f"zombie processes are not reaped by their parents (pids {parents}): "
            "restart the parent if their number keeps growing"
        )
    return (
        "more processes than expected: look for a runaway fork, piled-up cron jobs or "
        "stuck clients (ps -ef --forest)"
    )


class ProcessCheck(Check):
    """Processes by name, command line, user or state: how many run, their memory and CPU.

    With a name or a command-line pattern, at least one must run unless ``count`` says
    otherwise; without, it counts every process (as check_procs does).
    """

    kind: ClassVar[str] = "process"
    Config: ClassVar[type[CheckConfig]] = ProcessConfig
    targets: ClassVar[frozenset[str]] = frozenset({"host"})

    def run(self, target: Any) -> CheckResult:
        """Given a host target, return the state of the processes the check looks for."""
        source = source_for(target, self.timeout, self.store)
        return evaluate_processes(
            source.processes(), cast(ProcessConfig, self.config), source.own_pids()
        )
