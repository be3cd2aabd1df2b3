"""The host check: what a host is (OS, kernel, CPU, memory) and how loaded it is."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator

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
    percent_range,
)
from opsctl.duration import Duration, format_duration
from opsctl.sources import HostFacts, format_bytes, source_for


def _plain_range(value: Range | None) -> Range | None:
    if value is not None and value.unit:
        raise ValueError(f'expected a load per CPU like "1.5", without a unit (got {value.unit})')
    return value


class HostConfig(CheckConfig):
    """Configuration of the ``host`` check."""

    load_warn: RangeField | None = Field(
        Range.parse("1.5"),
        description="Warning when the 1-minute load divided by the number of CPUs exceeds "
        "this (Zabbix's Linux template calls 1.5 per CPU the sustainable limit).",
    )
    load_crit: RangeField | None = Field(
        Range.parse("3"),
        description="Critical when the 1-minute load per CPU exceeds this: twice as many "
        "runnable or disk-waiting tasks as the sustainable limit.",
    )
    memory_warn: RangeField | None = Field(
        Range.parse("90%"),
        description="Warning when memory used (total minus available) exceeds this percentage.",
    )
    memory_crit: RangeField | None = Field(
        Range.parse("95%"),
        description="Critical when memory used (total minus available) exceeds this percentage.",
    )
    swap_warn: RangeField | None = Field(
        Range.parse("50%"), description="Warning when swap used exceeds this percentage."
    )
    swap_crit: RangeField | None = Field(
        Range.parse("80%"), description="Critical when swap used exceeds this percentage."
    )
    cpu_warn: RangeField | None = Field(
        None,
        description='Warning when CPU used exceeds this percentage ("90%"). Off by default: '
        "the check samples CPU for 0.2 s, too short to alert on; load per CPU is the "
        "saturation signal.",
    )
    cpu_crit: RangeField | None = Field(
        None, description='Critical when CPU used exceeds this percentage ("95%"). Off by default.'
    )
    min_uptime: Duration | None = Field(
        None,
        description='Warning when the host has been up for less than this ("1h"): it '
        "restarted recently. Off by default.",
    )

    _load = field_validator("load_warn", "load_crit")(_plain_range)
    _percent = field_validator(
        "memory_warn", "memory_crit", "swap_warn", "swap_crit", "cpu_warn", "cpu_crit"
    )(percent_range)


def _percent(value: Range | None) -> Range | None:
    return None if value is None else value.to_unit("%")


def _advice(state: State, text: str) -> str:
    return text if state in (State.WARNING, State.CRITICAL) else ""


def _mark(text: str, state: State) -> str:
    return text if state == State.OK else f"{text} ({state.name})"


def evaluate_host(facts: HostFacts, config: HostConfig) -> CheckResult:
    """Given a host's facts and the check's configuration, return the result: fact items
    (OS, kernel, CPU, memory size) with verdict OK, judged items for memory, swap, load,
    CPU and uptime, and their metrics.
    """
    cpus = max(facts.cpu_count, 1)
    load_per_cpu = facts.load1 / cpus
    memory_used = max(facts.memory_total - facts.memory_available, 0)
    memory_percent = memory_used / facts.memory_total * 100 if facts.memory_total > 0 else math.nan
    swap_percent = facts.swap_used / facts.swap_total * 100 if facts.swap_total > 0 else None

    metrics = [
        Metric("load1", facts.load1, min=0),
        Metric("load5", facts.load5, min=0),
        Metric("load15", facts.load15, min=0),
        Metric("load1_per_cpu", load_per_cpu, "", config.load_warn, config.load_crit, min=0),
        Metric("memory_total", facts.memory_total, "B", min=0),
    ]
    memory_metric = Metric(
        "memory_used_percent",
        memory_percent,
        "%",
        _percent(config.memory_warn),
        _percent(config.memory_crit),
        0,
        100,
    )
    metrics.append(memory_metric)
    swap_state = State.OK
    if swap_percent is not None:
        swap_metric = Metric(
            "swap_used_percent",
            swap_percent,
            "%",
            _percent(config.swap_warn),
            _percent(config.swap_crit),
            0,
            100,
        )
        metrics.append(swap_metric)
        swap_state = swap_metric.state
    cpu_state = State.OK
    if facts.cpu_percent is not None:
        cpu_metric = Metric(
            "cpu_percent",
            facts.cpu_percent,
            "%",
            _percent(config.cpu_warn),
            _percent(config.cpu_crit),
            0,
            100,
        )
        metrics.append(cpu_metric)
        cpu_state = cpu_metric.state
    elif config.cpu_warn is not None or config.cpu_crit is not None:
        cpu_state = State.UNKNOWN
    minimum_uptime = None if config.min_uptime is None else config.min_uptime.total_seconds()
    uptime_metric = Metric(
        "uptime",
        facts.uptime_seconds,
        "s",
        None if minimum_uptime is None else Range(minimum_uptime, math.inf, unit="s"),
        min=0,
    )
    metrics.append(uptime_metric)
    load_state, memory_state, uptime_state = (
        metrics[3].state,
        memory_metric.state,
        uptime_metric.state,
    )

    uptime_text = format_duration(facts.uptime_seconds)
    booted = facts.boot_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    items = [
        Item("host.hostname", "Hostname", facts.hostname),
        Item("host.os", "Operating system", facts.os_pretty_name),
        Item("host.kernel", "Kernel", facts.kernel),
        Item("host.architecture", "Architecture", facts.architecture),
        Item(
            "host.cpu",
            "CPU",
            f"{facts.cpu_count} × {facts.cpu_model}" if facts.cpu_model else str(facts.cpu_count),
        ),
        Item("host.memory_total", "Memory total", format_bytes(facts.memory_total)),
        Item(
            "host.memory_used",
            "Memory used",
            f"{memory_percent:.1f}% ({format_bytes(memory_used)} of "
            f"{format_bytes(facts.memory_total)}, "
            f"{format_bytes(facts.memory_available)} available)",
            memory_state,
            describe_thresholds(_percent(config.memory_warn), _percent(config.memory_crit)),
            _advice(
                memory_state,
                f"memory used {memory_percent:.0f}%: find the largest processes "
                "(ps aux --sort=-rss | head, or a process check with rss thresholds), look "
                "for a leak or an oversized cache or SGA, and consider adding memory",
            ),
        ),
        Item(
            "host.swap_used",
            "Swap used",
            "no swap configured"
            if swap_percent is None
            else f"{swap_percent:.1f}% ({format_bytes(facts.swap_used)} of "
            f"{format_bytes(facts.swap_total)})",
            swap_state,
            ""
            if swap_percent is None
            else describe_thresholds(_percent(config.swap_warn), _percent(config.swap_crit)),
            _advice(
                swap_state,
                f"swap {0 if swap_percent is None else swap_percent:.0f}% used: memory is "
                "short; see whether the host is paging now (vmstat 1: si/so above 0) and "
                "which processes are largest, then reduce them or add memory",
            ),
        ),
        Item(
            "host.load",
            "Load average (1/5/15 min)",
            f"{facts.load1:.2f} / {facts.load5:.2f} / {facts.load15:.2f} "
            f"({load_per_cpu:.2f} per CPU, {facts.cpu_count} CPU)",
            load_state,
            describe_thresholds(config.load_warn, config.load_crit, " per CPU"),
            _advice(
                load_state,
                f"load {load_per_cpu:.2f} per CPU: find what runs or waits (top, vmstat 1); "
                "a high 'wa' or many processes in state D point at slow disks or a stuck "
                "network share rather than at the CPUs",
            ),
        ),
        Item(
            "host.cpu_used",
            "CPU used",
            "not measured" if facts.cpu_percent is None else f"{facts.cpu_percent:.1f}%",
            cpu_state,
            describe_thresholds(_percent(config.cpu_warn), _percent(config.cpu_crit)),
            _advice(
                cpu_state,
                "CPU busy: find the top consumers (top, pidstat 5) and whether the load is "
                "expected at this hour (batch jobs, backups, reports)",
            ),
        ),
        Item(
            "host.uptime",
            "Uptime",
            f"{uptime_text} (booted {booted})",
            uptime_state,
            "" if minimum_uptime is None else f"warning < {format_duration(minimum_uptime)}",
            _advice(
                uptime_state,
                f"the host restarted {uptime_text} ago: find out why (last -x reboot, "
                "journalctl --list-boots, /var/log/messages) and whether it was planned",
            ),
        ),
    ]

    summary_parts = [
        facts.os_pretty_name,
        f"{facts.cpu_count} CPU",
        _mark(
            f"load {facts.load1:.2f}"
            + ("" if load_state == State.OK else f", {load_per_cpu:.2f} per CPU"),
            load_state,
        ),
        _mark(f"memory {memory_percent:.0f}% used", memory_state),
        "no swap" if swap_percent is None else _mark(f"swap {swap_percent:.0f}% used", swap_state),
    ]
    if facts.cpu_percent is not None and cpu_state != State.OK:
        summary_parts.append(_mark(f"CPU {facts.cpu_percent:.0f}%", cpu_state))
    summary_parts.append(_mark(f"up {uptime_text}", uptime_state))
    return CheckResult.from_metrics(
        metrics,
        ", ".join(summary_parts),
        items,
        details={"hostname": facts.hostname, "facts": facts.to_dict()},
    )


class HostCheck(Check):
    """Host configuration and load: OS, kernel, CPU, memory, swap, load average, uptime.

    Its items are the host rows of an inspection report; memory, swap and load per CPU
    are judged against thresholds (CPU % and a minimum uptime on request).
    """

    kind: ClassVar[str] = "host"
    Config: ClassVar[type[CheckConfig]] = HostConfig
    targets: ClassVar[frozenset[str]] = frozenset({"host"})

    def run(self, target: Any) -> CheckResult:
        """Given a host target, return its configuration and load."""
        return evaluate_host(
            source_for(target, self.timeout, self.store).facts(), cast(HostConfig, self.config)
        )
