"""SLA clocks: when an incident must be answered, resolved or attended on site, and whether
it was — pure functions of a policy and the incident's moments.

A policy (configuration, per site) gives each severity (``critical``, ``major``, ``minor``,
``complaint``) up to three targets, ``respond``, ``resolve`` and ``onsite``, and the calendar
they are counted on:

- ``24x7``: every minute counts; the due time is the start plus the target.
- ``business``: only minutes inside ``business_hours`` (``"08:30-17:30"``, in the policy's
  time zone) on China's workdays count: weekends are off unless they are make-up working
  days (调休), statutory holidays are off (``opsctl.calendar``).

A ``cutoff`` (``"18:00"``) opens a quiet window each evening that lasts until
``next_day_start`` the next morning (the start of business hours unless set): a clock opened
in it, at or after the cut-off or before the morning start, starts at ``next_day_start`` on
the first China workday after the evening it belongs to. It applies to both calendars.

Every datetime given must be timezone-aware; due times are returned in the policy's zone.
A day of a year the holiday calendar does not know raises ``opsctl.calendar.UnknownYear``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from opsctl.calendar import TimeOfDay, TimeZoneName, is_workday
from opsctl.duration import Duration

SEVERITIES = ("critical", "major", "minor", "complaint")
KINDS = ("respond", "resolve", "onsite")

Kind = Literal["respond", "resolve", "onsite"]
State = Literal["met", "breached", "running", "breaching soon"]


class SlaError(ValueError):
    """Raised for moments or names an SLA clock refuses; the message says which and why."""


# --------------------------------------------------------------------------- policy

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

HOURS_HINT = 'business hours like "08:30-17:30" (start before end, within one day)'


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """The working part of a workday, ``start`` to ``end`` (local wall-clock times)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> BusinessHours:
        """Given ``"08:30-17:30"``, return the hours. Raise ValueError if malformed, out of
        range, or if the start is not before the end."""
        match = _HOURS.match(str(text))
        if not match:
            raise ValueError(f"expected {HOURS_HINT}, got {text!r}")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"expected {HOURS_HINT}, got {text!r}")
        start, end = time(h1, m1), time(h2, m2)
        if start >= end:
            raise ValueError(
                f"expected {HOURS_HINT}, got {text!r}: the start is not before the end"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _business_hours(value: Any) -> BusinessHours:
    if isinstance(value, BusinessHours):
        return value
    try:
        return BusinessHours.parse(value)
    except ValueError as error:
        raise PydanticCustomError("business_hours", "{reason}", {"reason": str(error)}) from None


BusinessHoursField = Annotated[
    BusinessHours, BeforeValidator(_business_hours), PlainSerializer(str, return_type=str)
]


class _Model(BaseModel):
    # As opsctl.inventory.Model, kept here so that the inventory can hold an SlaPolicy.
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlaTargets(_Model):
    """The targets of one severity; a target left out is not measured."""

    respond: Duration | None = None
    resolve: Duration | None = None
    onsite: Duration | None = None

    @field_validator("respond", "resolve", "onsite")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise PydanticCustomError("sla_target", "a target must be longer than 0")
        return value


class SlaPolicy(_Model):
    """A site's SLA: targets per severity and the calendar they are counted on."""

    severities: dict[str, SlaTargets]
    calendar: Literal["24x7", "business"] = "24x7"
    business_hours: BusinessHoursField = BusinessHours(time(8, 30), time(17, 30))
    cutoff: TimeOfDay | None = None
    next_day_start: TimeOfDay | None = None
    timezone: TimeZoneName = "Asia/Shanghai"

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: dict[str, SlaTargets]) -> dict[str, SlaTargets]:
        unknown = [name for name in value if name not in SEVERITIES]
        if unknown:
            raise PydanticCustomError(
                "severity",
                "unknown severity {names} (expected critical, major, minor or complaint)",
                {"names": ", ".join(repr(name) for name in unknown)},
            )
        return value

    @model_validator(mode="after")
    def _quiet_window(self) -> SlaPolicy:
        if self.next_day_start is not None and self.cutoff is None:
            raise PydanticCustomError(
                "sla_cutoff", "next_day_start is only used with a cutoff: set cutoff too"
            )
        if self.cutoff is not None and self.cutoff <= self.morning:
            raise PydanticCustomError(
                "sla_cutoff",
                "cutoff {cutoff} must be later than the morning start {morning}",
                {"cutoff": f"{self.cutoff:%H:%M}", "morning": f"{self.morning:%H:%M}"},
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The policy's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def morning(self) -> time:
        """When a clock held back by the cut-off starts: ``next_day_start`` or the start of
        business hours."""
        return self.next_day_start or self.business_hours.start

    def target(self, severity: str, kind: str) -> timedelta | None:
        """Given a severity and a kind, return its target, or None if the policy sets none.

        Raise SlaError for a severity or kind that does not exist.
        """
        if severity not in SEVERITIES:
            raise SlaError(
                f"unknown severity {severity!r} (expected critical, major, minor or complaint)"
            )
        if kind not in KINDS:
            raise SlaError(f"unknown SLA kind {kind!r} (expected respond, resolve or onsite)")
        targets = self.severities.get(severity)
        return None if targets is None else getattr(targets, kind)


# --------------------------------------------------------------------------- clocks


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise SlaError(f"{name} must be timezone-aware, got the naive {value.isoformat()}")
    return value


def _next_workday(day: date) -> date:
    """The first China workday after ``day``."""
    day += timedelta(days=1)
    while not is_workday(day):
        day += timedelta(days=1)
    return day


def clock_start(policy: SlaPolicy, opened: datetime) -> datetime:
    """Given a policy and when an incident was opened, return when its clocks start, in the
    policy's zone: ``opened`` itself, unless the cut-off holds it back to ``next_day_start``
    of the next workday.

    Raise SlaError for a naive datetime, UnknownYear past the holiday calendar's data.
    """
    local = _aware("opened", opened).astimezone(policy.zone)
    if policy.cutoff is None:
        return local
    wall = local.time()
    if wall >= policy.cutoff:
        evening = local.date()
    elif wall < policy.morning:
        evening = local.date() - timedelta(days=1)
    else:
        return local
    return datetime.combine(_next_workday(evening), policy.morning, tzinfo=policy.zone)


def _business_spans(policy: SlaPolicy, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Yield the business spans (UTC) of every workday from the local day of ``since`` on,
    clipped to begin no earlier than ``since``. Endless: the caller stops."""
    zone, hours = policy.zone, policy.business_hours
    since = since.astimezone(UTC)
    day = since.astimezone(zone).date()
    while True:
        if is_workday(day):
            start = datetime.combine(day, hours.start, tzinfo=zone).astimezone(UTC)
            end = datetime.combine(day, hours.end, tzinfo=zone).astimezone(UTC)
            if end > since:
                yield max(start, since), end
        day += timedelta(days=1)


def _add(policy: SlaPolicy, start: datetime, amount: timedelta) -> datetime:
    """The instant ``amount`` of clock time after ``start``, in the policy's zone."""
    if policy.calendar == "24x7":
        return (start.astimezone(UTC) + amount).astimezone(policy.zone)
    left = amount
    for begin, end in _business_spans(policy, start):
        if left <= end - begin:
            return (begin + left).astimezone(policy.zone)
        left -= end - begin
    raise AssertionError("unreachable: business spans never end")


def due(policy: SlaPolicy, severity: str, kind: Kind, opened: datetime) -> datetime | None:
    """Given a policy, a severity, a kind and when the incident was opened, return when the
    clock runs out (in the policy's zone), or None if the policy sets no such target.

    A business clock that runs out exactly at the end of business hours is due then, not at
    the next morning's start.

    Raise SlaError for an unknown severity or kind or a naive datetime; UnknownYear if the
    count reaches a year the holiday calendar does not know.
    """
    target = policy.target(severity, kind)
    if target is None:
        _aware("opened", opened)
        return None
    return _add(policy, clock_start(policy, opened), target)


def elapsed(policy: SlaPolicy, start: datetime, end: datetime) -> timedelta:
    """Given a policy and two instants, return the clock time between them: all of it on a
    24x7 calendar, the business time on a business calendar (the cut-off plays no part).

    Raise SlaError for a naive datetime or an end before the start; UnknownYear if the span
    reaches a year the holiday calendar does not know.
    """
    _aware("start", start)
    _aware("end", end)
    if end < start:
        raise SlaError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if policy.calendar == "24x7":
        return end.astimezone(UTC) - start.astimezone(UTC)
    end = end.astimezone(UTC)
    total = timedelta(0)
    for begin, finish in _business_spans(policy, start):
        if begin >= end:
            break
        total += min(finish, end) - begin
    return total


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one clock stands.

    ``state`` is ``met`` (done by the due time), ``breached`` (done late, or still open past
    it), ``breaching soon`` (open, with at most ``soon`` left) or ``running``. ``met`` is
    True or False once the outcome is settled, None while the clock runs. ``remaining`` is the
    clock time left (at ``done`` for a met clock), ``overdue`` the clock time past the due
    time; each is None when the other applies. Both are measured on the policy's calendar.
    """

    due: datetime
    state: State
    met: bool | None
    remaining: timedelta | None
    overdue: timedelta | None


def verdict(
    policy: SlaPolicy,
    severity: str,
    kind: Kind,
    opened: datetime,
    done: datetime | None,
    now: datetime,
    *,
    soon: timedelta = timedelta(minutes=30),
) -> Verdict | None:
    """Given a policy, a severity, a kind, when the incident was opened, when that step was
    done (None if not yet) and the present, return the clock's verdict, or None if the policy
    sets no such target. ``soon`` is how little time left counts as ``breaching soon``.

    Raise SlaError for an unknown severity or kind, a naive datetime, ``done`` before
    ``opened``, or (while not done) ``now`` before ``opened``; UnknownYear past the holiday
    calendar's data.
    """
    _aware("opened", opened)
    _aware("now", now)
    if done is not None:
        _aware("done", done)
        if done < opened:
            raise SlaError(
                f"done {done.isoformat()} is before opened {opened.isoformat()}: "
                "a step cannot be done before the incident was opened"
            )
    elif now < opened:
        raise SlaError(f"now {now.isoformat()} is before opened {opened.isoformat()}")
    deadline = due(policy, severity, kind, opened)
    if deadline is None:
        return None
    if done is not None:
        if done <= deadline:
            return Verdict(deadline, "met", True, elapsed(policy, done, deadline), None)
        return Verdict(deadline, "breached", False, None, elapsed(policy, deadline, done))
    if now > deadline:
        return Verdict(deadline, "breached", False, None, elapsed(policy, deadline, now))
    left = elapsed(policy, now, deadline)
    return Verdict(deadline, "breaching soon" if left <= soon else "running", None, left, None)


def breaching(
    policy: SlaPolicy,
    severity: str,
    kind: Kind,
    opened: datetime,
    now: datetime,
    within: timedelta,
) -> bool:
    """Given a policy, a severity, a kind, when a still-open incident was opened, the present
    and a margin, return True if that clock has run out or has at most ``within`` clock time
    left; False if it has more, or if the policy sets no such target.

    Raise as ``verdict`` does.
    """
    found = verdict(policy, severity, kind, opened, None, now, soon=within)
    return found is not None and found.state in ("breached", "breaching soon")
