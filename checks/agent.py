"""The ``agent`` check: is a host's opsctl-agent still pushing? A dead man's switch.

An agent pushes every ``interval`` seconds (it says which in each push). No push for
``silent_after`` (default: three of its intervals) is CRITICAL: the host, the agent or the
network between them is down, and nothing else would say so, since an agent that does not
push raises no alarm of its own. The check also reports what the agent's spool holds, data
the agent had to drop (WARNING: counted by the agent, never silent), and a clock on the host
that disagrees with the server's.

Every host with ``transport: agent`` gets this check unless it lists its own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from pydantic import Field

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckError,
    CheckResult,
    Item,
    Metric,
    State,
    utc_now,
    worst,
)
from opsctl.duration import Duration, format_duration


class AgentConfig(CheckConfig):
    """Configuration of the ``agent`` check kind."""

    silent_after: Duration | None = Field(
        None, description="no push for this long is CRITICAL; default: 3 of the agent's intervals"
    )
    clock_skew_warn: Duration = Field(
        timedelta(minutes=2), description="WARNING when the host's clock is this far off"
    )


class AgentCheck(Check):
    """Is the host's opsctl-agent pushing (dead man's switch), and has it dropped data?"""

    kind = "agent"
    Config = AgentConfig
    targets = frozenset({"host"})

    def run(self, target: Any) -> CheckResult:
        config = cast(AgentConfig, self.config)
        if getattr(target, "transport", None) != "agent":
            raise CheckError(
                f"{target.name} does not report through opsctl-agent (set transport: agent)"
            )
        if self.store is None:
            raise CheckError(
                "the agent check reads the agents' pushes from the store; run it with a store"
            )
        from opsctl.store.intake import agent

        row = agent(self.store, target.name)
        if row is None:
            return CheckResult(
                State.CRITICAL,
                f"agent {target.name} has never pushed",
                items=(
                    Item(
                        "agent.push",
                        "Agent push",
                        "never",
                        State.CRITICAL,
                        advice=f"create a token (opsctl token create --agent {target.name}) "
                        "and start opsctl-agent on the host",
                    ),
                ),
            )
        now = utc_now()
        interval = timedelta(seconds=row.interval)
        silent_after = config.silent_after or interval * 3
        age = max(now - row.last_push, timedelta(0))
        skew = row.last_sent - row.last_push
        previous_dropped = _previous_dropped(self.previous)
        new_drops = max(row.dropped_samples - previous_dropped, 0) if previous_dropped >= 0 else 0

        silent = age > silent_after
        push_state = State.CRITICAL if silent else State.OK
        skew_state = State.WARNING if abs(skew) > config.clock_skew_warn else State.OK
        drop_state = State.WARNING if new_drops else State.OK
        items = (
            Item(
                "agent.push",
                "Agent push",
                f"last {format_duration(age)} ago (every {format_duration(interval)})",
                push_state,
                threshold=f"critical > {format_duration(silent_after)}",
                advice="check the host, the agent service (systemctl status opsctl-agent) and "
                "the network to the server"
                if silent
                else "",
            ),
            Item(
                "agent.spool",
                "Agent spool",
                f"{row.spooled} batches queued, {row.dropped_samples} samples dropped in all",
                drop_state,
                advice=f"{new_drops} samples dropped since the last check: the spool was full "
                "or too old; raise spool_max_bytes/spool_max_age or restore the link sooner"
                if new_drops
                else "",
            ),
            Item(
                "agent.clock",
                "Host clock",
                f"{'+' if skew >= timedelta(0) else '-'}{format_duration(abs(skew))} "
                "against the server",
                skew_state,
                threshold=f"warning > {format_duration(config.clock_skew_warn)}",
                advice="synchronise the host's clock (chrony/ntp)" if skew_state else "",
            ),
        )
        metrics = (
            Metric("push_age", age.total_seconds(), "s"),
            Metric("spooled_batches", float(row.spooled)),
            Metric("dropped_samples", float(row.dropped_samples)),
            Metric("clock_skew", skew.total_seconds(), "s"),
        )
        if silent:
            summary = (
                f"no push from agent {row.name} for {format_duration(age)} "
                f"(expected every {format_duration(interval)})"
            )
        else:
            summary = f"agent {row.name} pushed {format_duration(age)} ago"
            if new_drops:
                summary += f"; dropped {new_drops} samples since the last check"
            if row.spooled:
                summary += f"; replaying {row.spooled} spooled batches"
            if skew_state:
                summary += f"; host clock off by {format_duration(abs(skew))}"
        return CheckResult(
            worst(item.verdict for item in items),
            summary,
            metrics,
            items,
            details={"counters": {"dropped_samples": row.dropped_samples}},
        )


def _previous_dropped(previous: CheckResult | None) -> int:
    """The agent's dropped-samples count at the last check, or -1 if unknown (a first run
    reports nothing as new: what was dropped before opsctl watched is in the total)."""
    if previous is None:
        return -1
    counters = previous.details.get("counters") or {}
    value = counters.get("dropped_samples")
    return int(value) if isinstance(value, int | float) else -1
