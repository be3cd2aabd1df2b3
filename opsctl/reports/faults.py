"""Fault handling (故障处理记录) for the reports: every incident of a period with its times,
its response and resolution durations and its SLA verdicts, the SLA compliance they add up
to, and the grouping by category and system the quarterly issue optimisation plan starts
from.

Clocks are judged as they stood at the end of the period (or at ``as_of`` if earlier), so
the same store and period always give the same report: an incident still open then is
``running`` or ``breached``, never judged on what happened after.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opsctl.incidents import Clock, Incident, incidents, sla_clocks
from opsctl.sla import SEVERITIES

if TYPE_CHECKING:
    from opsctl.inventory import Site
    from opsctl.reports.periods import Period
    from opsctl.store import Store


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One incident as a report prints it. ``response`` and ``resolution`` are wall-clock
    durations from opening to the first reply and to resolution (None while not done by the
    moment judged); ``respond``/``resolve``/``onsite`` the SLA clocks (None without a target,
    or when the site has no SLA)."""

    id: int
    system: str
    severity: str
    category: str
    title: str
    source: str
    opened: datetime
    acknowledged: datetime | None
    resolved: datetime | None
    response: timedelta | None
    resolution: timedelta | None
    respond: Clock | None
    resolve: Clock | None
    onsite: Clock | None
    root_cause: str
    actions: str


@dataclass(frozen=True, slots=True)
class Compliance:
    """How one SLA clock fared over some incidents: ``met`` and ``breached`` are settled or
    already overdue; ``running`` still had time; ``unknown`` could not be judged. ``ratio`` is
    met / (met + breached), None when nothing was judged."""

    met: int = 0
    breached: int = 0
    running: int = 0
    unknown: int = 0

    @property
    def judged(self) -> int:
        return self.met + self.breached

    @property
    def ratio(self) -> float | None:
        return self.met / self.judged if self.judged else None


@dataclass(frozen=True, slots=True)
class IssueGroup:
    """The incidents of one category on one system: how many, how many were repeats of an
    earlier one in the group (same title), how many breached a clock, the most common causes,
    and the ids."""

    category: str
    system: str
    count: int
    recurrences: int
    breached: int
    causes: tuple[tuple[str, int], ...]
    ids: tuple[int, ...]


def fault_records(
    store: Store, site: Site, period: Period, *, as_of: datetime | None = None
) -> list[FaultRecord]:
    """Given the store, a site, a period and optionally a moment to judge at (default and at
    most the end of the period), return the incidents opened in the period by that moment,
    oldest first.
    Raise StoreError if the database fails."""
    moment = period.end if as_of is None else min(as_of, period.end)
    found = incidents(store, site=site.name, since=period.start, until=period.end)
    return [
        _record(incident, site, moment)
        for incident in sorted(found, key=_opened_order)
        if incident.opened <= moment
    ]


def _opened_order(incident: Incident) -> tuple[datetime, int]:
    return incident.opened, incident.id


def _record(incident: Incident, site: Site, moment: datetime) -> FaultRecord:
    # A report says running or breached; "breaching soon" is for the people on duty.
    clocks = sla_clocks(site.sla, incident, moment, timedelta(0)) if site.sla is not None else {}
    acknowledged = _by(incident.acknowledged, moment)
    resolved = _by(incident.resolved, moment)
    return FaultRecord(
        id=incident.id,
        system=incident.system,
        severity=incident.severity,
        category=incident.category,
        title=incident.title,
        source=incident.source,
        opened=incident.opened,
        acknowledged=acknowledged,
        resolved=resolved,
        response=None if acknowledged is None else acknowledged - incident.opened,
        resolution=None if resolved is None else resolved - incident.opened,
        respond=clocks.get("respond"),
        resolve=clocks.get("resolve"),
        onsite=clocks.get("onsite"),
        root_cause=incident.root_cause,
        actions=incident.actions,
    )


def _by(value: datetime | None, moment: datetime) -> datetime | None:
    """A step recorded after the moment judged counts as not done yet."""
    return value if value is not None and value <= moment else None


def compliance(records: Iterable[FaultRecord], kind: str) -> Compliance:
    """Given fault records and a clock (respond, resolve), return how it fared."""
    counts: Counter[str] = Counter()
    for record in records:
        clock: Clock | None = getattr(record, kind)
        if clock is None:
            continue
        if clock.state == "met":
            counts["met"] += 1
        elif clock.state == "breached":
            counts["breached"] += 1
        elif clock.state in ("running", "breaching soon"):
            counts["running"] += 1
        elif clock.state == "unknown":
            counts["unknown"] += 1
    return Compliance(counts["met"], counts["breached"], counts["running"], counts["unknown"])


def by_severity(records: Sequence[FaultRecord]) -> dict[str, int]:
    """Given fault records, return how many there are of each severity, in the order of
    severity (critical first), every severity present."""
    counts = Counter(record.severity for record in records)
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


def issue_groups(records: Sequence[FaultRecord]) -> list[IssueGroup]:
    """Given fault records, return them grouped by category and system, the largest groups
    first (then by category and system for a stable order). A record whose title was seen
    before in its group is a recurrence. Causes are the records' root causes, most common
    first, blank ones left out."""
    groups: dict[tuple[str, str], list[FaultRecord]] = defaultdict(list)
    for record in records:
        groups[(record.category or "-", record.system or "-")].append(record)
    found = []
    for (category, system), members in groups.items():
        members.sort(key=lambda r: (r.opened, r.id))
        titles = Counter(_normal(record.title) for record in members)
        causes = Counter(
            record.root_cause.strip() for record in members if record.root_cause.strip()
        )
        breached = sum(
            1
            for record in members
            if any(
                clock is not None and clock.state == "breached"
                for clock in (record.respond, record.resolve)
            )
        )
        found.append(
            IssueGroup(
                category=category,
                system=system,
                count=len(members),
                recurrences=sum(count - 1 for count in titles.values()),
                breached=breached,
                causes=tuple(sorted(causes.items(), key=lambda item: (-item[1], item[0]))),
                ids=tuple(record.id for record in members),
            )
        )
    found.sort(key=lambda group: (-group.count, group.category, group.system))
    return found


def _normal(title: str) -> str:
    return " ".join(title.lower().split())


__all__ = [
    "Compliance",
    "FaultRecord",
    "IssueGroup",
    "by_severity",
    "compliance",
    "fault_records",
    "issue_groups",
]
