"""Maintenance windows: planned work during which a site's matching checks raise no alerts,
and whose time is left out of availability and SLA figures (the reports list them).

A window is configuration (a site's ``maintenance:`` in the inventory), in one of three
shapes, each with the check ids it covers (``checks``: glob patterns of ``site/target/check``
ids, or of ``target/check`` within the site; every check of the site by default)::

    - name: db-migration              # one-off: start and end
      start: 2026-12-05 22:00         # site time unless an offset is given
      end: 2026-12-06 02:00
    - name: weekly-patch              # recurring, cron: each firing opens a window
      cron: "0 2 * * 6"               # 02:00 every Saturday, site time
      duration: 2h
      checks: ["his-app-01/*"]
    - name: network-upgrade           # recurring, listed dates at a time of day
      dates: [2026-12-12, 2026-12-19]
      at: "23:00"
      duration: 3h

``occurrences(window, zone, since, until)`` lists the concrete spans (``Window``) that overlap
a period; ``active(windows, zone, at)`` those open at a moment. Both are pure functions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from opsctl.calendar import TimeOfDay
from opsctl.duration import Duration

#: The longest a recurring window may last: longer is a one-off with start and end.
MAX_RECURRING = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Window:
    """One concrete maintenance span: the checks matching ``checks`` (globs of check ids)
    are in maintenance from ``start`` (included) to ``end`` (excluded), both in UTC. With a
    ``site``, only that site's checks are matched, by their id within the site
    (``target/check``) or whole."""

    name: str
    start: datetime
    end: datetime
    checks: tuple[str, ...] = ("*",)
    site: str | None = None

    def covers(self, check_id: str, at: datetime) -> bool:
        """True if the check is in this window at that moment."""
        return self.start <= at < self.end and self.matches(check_id)

    def matches(self, check_id: str) -> bool:
        """True if the window's patterns take in the check."""
        site, _, local = check_id.partition("/")
        if self.site is not None and site != self.site:
            return False
        return any(
            fnmatch.fnmatchcase(check_id, pattern) or fnmatch.fnmatchcase(local, pattern)
            for pattern in self.checks
        )


class Maintenance(BaseModel):
    """A maintenance window of a site: one-off (``start``/``end``), recurring by ``cron`` or
    on listed ``dates`` (``at`` a time of day), each recurring one lasting ``duration``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    checks: list[str] = Field(
        default_factory=lambda: ["*"],
        description="glob patterns of check ids (site/target/check or target/check)",
    )
    reason: str = ""
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    dates: list[date] | None = None
    at: TimeOfDay | None = None
    duration: Duration | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from opsctl.cron import cron_trigger

        if value is None:
            return None
        try:
            cron_trigger(value, "UTC")
        except ValueError as error:
            raise PydanticCustomError(
                "cron",
                'expected a cron expression like "0 2 * * 6" (minute hour day month weekday): '
                "{reason}",
                {"reason": str(error)},
            ) from None
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Maintenance:
        shapes = [
            name
            for name, given in (
                ("start/end", self.start is not None or self.end is not None),
                ("cron", self.cron is not None),
                ("dates", self.dates is not None),
            )
            if given
        ]
        if len(shapes) != 1:
            raise PydanticCustomError(
                "maintenance",
                "give exactly one of: start and end (one-off), cron and duration, or dates, "
                "at and duration{found}",
                {"found": f" (found {' and '.join(shapes)})" if shapes else ""},
            )
        if shapes == ["start/end"]:
            if self.start is None or self.end is None:
                raise PydanticCustomError("maintenance", "a one-off window needs start and end")
            if self.duration is not None or self.at is not None:
                raise PydanticCustomError(
                    "maintenance", "a one-off window takes start and end, not duration or at"
                )
            if not _in_order(self.start, self.end):
                raise PydanticCustomError("maintenance", "end must be later than start")
            return self
        if self.duration is None:
            raise PydanticCustomError("maintenance", "a recurring window needs a duration")
        if not timedelta(0) < self.duration <= MAX_RECURRING:
            raise PydanticCustomError(
                "maintenance", "duration must be longer than 0 and at most 7 days"
            )
        if shapes == ["dates"]:
            if self.at is None:
                raise PydanticCustomError(
                    "maintenance", 'a window on dates needs at (a time of day like "23:00")'
                )
            if not self.dates:
                raise PydanticCustomError("maintenance", "dates is empty")
        elif self.at is not None:
            raise PydanticCustomError("maintenance", "at is for dates; cron gives the time itself")
        return self


def _in_order(start: datetime, end: datetime) -> bool:
    """True if ``end`` is later than ``start``. The site's zone, which a time written without
    an offset is in, is not known here: when only one side has an offset, compare the wall
    clocks as written."""
    if (start.tzinfo is None) != (end.tzinfo is None):
        return end.replace(tzinfo=None) > start.replace(tzinfo=None)
    return end > start


def _utc(value: datetime, zone: ZoneInfo) -> datetime:
    return (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(UTC)


def occurrences(window: Maintenance, zone: str, since: datetime, until: datetime) -> list[Window]:
    """Given a window, the site's time zone (for times written without an offset, and for
    cron and dates) and a period (timezone-aware), return the window's spans that overlap the
    period, in order."""
    info = ZoneInfo(zone)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    checks = tuple(window.checks)
    spans: list[tuple[datetime, datetime]] = []
    if window.start is not None and window.end is not None:
        spans.append((_utc(window.start, info), _utc(window.end, info)))
    elif window.dates is not None and window.at is not None and window.duration is not None:
        for day in sorted(set(window.dates)):
            begin = datetime.combine(day, window.at, info).astimezone(UTC)
            spans.append((begin, begin + window.duration))
    elif window.cron is not None and window.duration is not None:
        spans.extend(_cron_spans(window.cron, window.duration, info, since, until))
    return [
        Window(window.name, start, end, checks)
        for start, end in spans
        if start < until and end > since
    ]


def _cron_spans(
    expression: str, duration: timedelta, zone: ZoneInfo, since: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    from opsctl.cron import cron_trigger

    trigger = cron_trigger(expression, str(zone))
    # A span that began up to ``duration`` before the period may still be open in it.
    cursor = since - duration
    previous: datetime | None = None
    while True:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None:
            return
        fire = fire.astimezone(UTC)
        if fire >= until:
            return
        yield fire, fire + duration
        previous = fire
        cursor = fire + timedelta(seconds=1)


def active(windows: Iterable[Maintenance], zone: str, at: datetime) -> list[Window]:
    """Given a site's windows, its time zone and a moment, return the spans open then."""
    found: list[Window] = []
    moment = at.astimezone(UTC)
    for window in windows:
        found.extend(
            span
            for span in occurrences(window, zone, moment, moment + timedelta(seconds=1))
            if span.start <= moment < span.end
        )
    return found


def covered(spans: Iterable[Window], check_id: str, since: datetime, until: datetime) -> timedelta:
    """Given spans, a check id and a period, return how much of the period the check spent in
    maintenance (overlapping spans counted once): what availability and SLA figures leave
    out."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    pieces = sorted(
        (max(span.start, since), min(span.end, until))
        for span in spans
        if span.matches(check_id) and span.start < until and span.end > since
    )
    total = timedelta(0)
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in pieces:
        if current_end is None or start > current_end:
            if current_start is not None and current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None and current_end is not None:
        total += current_end - current_start
    return total


__all__ = ["MAX_RECURRING", "Maintenance", "Window", "active", "covered", "occurrences"]
