"""The host source of a host that runs opsctl-agent: the facts its agent last pushed.

The agent pushes ``HostFacts`` and ``MountUsage`` records as JSON with every batch; the
server keeps the latest in the ``agents`` table. Judging them here means an agent host gets
the same host and filesystem checks, thresholds and report items as a local or SSH host.
Facts older than three of the agent's intervals are refused: a silent agent is the ``agent``
check's CRITICAL, not a stale green.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opsctl.contract import CheckError, utc_now
from opsctl.sources import HostFacts, MountUsage, ProcessInfo

#: Pushed facts older than this many agent intervals are not judged.
STALE_AFTER_INTERVALS = 3


class PushedSource:
    """A HostSource reading the facts an agent last pushed (see the module docstring)."""

    def __init__(self, store: Any, agent: str) -> None:
        self.store = store
        self.agent = agent

    def _facts(self) -> dict[str, Any]:
        from opsctl.duration import format_duration
        from opsctl.store.intake import agent

        row = agent(self.store, self.agent)
        if row is None:
            raise CheckError(
                f"agent {self.agent} has never pushed (create its token with "
                f"`opsctl token create --agent {self.agent}` and start opsctl-agent there)"
            )
        age = utc_now() - row.last_push
        if age > timedelta(seconds=row.interval * STALE_AFTER_INTERVALS):
            raise CheckError(
                f"agent {self.agent} last pushed {format_duration(age)} ago: its facts are stale"
            )
        return row.facts

    def facts(self) -> HostFacts:
        host = self._facts().get("host")
        if not host:
            raise CheckError(f"agent {self.agent} pushed no host facts")
        try:
            return HostFacts.from_dict(host)
        except ValueError as error:
            raise CheckError(f"agent {self.agent} pushed malformed host facts: {error}") from None

    def mounts(self) -> list[MountUsage]:
        try:
            return [MountUsage.from_dict(m) for m in self._facts().get("mounts", [])]
        except ValueError as error:
            raise CheckError(f"agent {self.agent} pushed a malformed mount: {error}") from None

    def processes(self) -> list[ProcessInfo]:
        raise CheckError(
            f"agent {self.agent} does not push its process list: watch processes with the "
            "agent's local checks (checks: in its configuration)"
        )

    def own_pids(self) -> frozenset[int]:
        return frozenset()
