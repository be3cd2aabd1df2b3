"""The check contract: what a check is given, and what it must return.

Everything a check kind needs lives in this file:

- ``State``: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3 — the Nagios plugin exit codes.
- ``Range``: a Nagios threshold range (``10``, ``10:``, ``~:10``, ``10:20``, ``@10:20``),
  optionally with a unit (``80%``, ``500ms``, ``2GB``), and ``evaluate`` which turns a value
  and a warning/critical pair into a state.
- ``Metric``: one measured number with its thresholds (becomes Nagios perfdata and a sample).
- ``Item``: one row of an inspection report (item, observed value, threshold, verdict, advice).
- ``CheckResult``: state, a one-line summary, metrics, items, details, start time, duration.
- ``CheckConfig`` and ``Check``: the base classes of every check kind.

A check observes and returns a ``CheckResult``. It never prints, never writes to the store
and never sends a message; the engine owns timeouts, retries, exceptions and persistence.
A check that cannot observe raises ``CheckError`` (or anything else): the engine turns it
into UNKNOWN with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic_core import PydanticCustomError


class State(IntEnum):
    """The state of a check, numerically equal to the Nagios plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def parse(cls, text: str | int) -> State:
        """Given a name (``"warning"``, ``"WARN"``, ``"crit"``) or a code, return the state.

        Raise ValueError if it names no state.
        """
        if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
            return cls(int(text))
        key = text.strip().upper()
        key = {"WARN": "WARNING", "CRIT": "CRITICAL", "UNKN": "UNKNOWN"}.get(key, key)
        try:
            return cls[key]
        except KeyError:
            raise ValueError(
                f"not a state: {text!r} (expected OK, WARNING, CRITICAL or UNKNOWN)"
            ) from None


def worst(states: Any) -> State:
    """Given states, return the worst: the highest Nagios code (UNKNOWN 3 is the highest,
    so a run in which something could not be observed never looks healthier than it is).

    An empty input is OK.
    """
    return State(max((int(s) for s in states), default=0))


# Units a threshold or a metric may carry, with the base unit they convert to.
_UNITS: dict[str, tuple[str, float]] = {
    "%": ("%", 1.0),
    "us": ("s", 1e-6),
    "ms": ("s", 1e-3),
    "s": ("s", 1.0),
    "min": ("s", 60.0),
    "h": ("s", 3600.0),
    "d": ("s", 86400.0),
    "B": ("B", 1.0),
    "KB": ("B", 1024.0),
    "MB": ("B", 1024.0**2),
    "GB": ("B", 1024.0**3),
    "TB": ("B", 1024.0**4),
    "KiB": ("B", 1024.0),
    "MiB": ("B", 1024.0**2),
    "GiB": ("B", 1024.0**3),
    "TiB": ("B", 1024.0**4),
    "c": ("c", 1.0),
}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_BOUND = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z%]*)\s*$")

RANGE_HINT = (
    'a Nagios range like "80", "10:", "~:10", "10:20" or "@10:20" (a unit such as % is allowed)'
)


def _format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Range:
    """A Nagios threshold range: alert when a value is outside [start, end], or inside it
    if ``inside`` (the ``@`` prefix). ``start`` may be -inf (``~``), ``end`` +inf (empty).
    """

    start: float = 0.0
    end: float = math.inf
    inside: bool = False
    unit: str = ""

    @classmethod
    def parse(cls, text: str | float | int) -> Range:
        """Given a range in Nagios syntax, return the Range. Raise ValueError if malformed.

        ``10`` → alert outside 0..10; ``10:`` → alert below 10; ``~:10`` → alert above 10;
        ``10:20`` → alert outside 10..20; ``@10:20`` → alert inside 10..20. Each bound may
        carry a unit (``80%``, ``500ms``); both bounds must agree on it.
        """
        if isinstance(text, bool):
            raise ValueError(f"expected {RANGE_HINT}, got {text!r}")
        if isinstance(text, int | float):
            return cls(0.0, float(text))
        raw = str(text).strip()
        inside = raw.startswith("@")
        body = raw[1:] if inside else raw
        if not body:
            raise ValueError(f"expected {RANGE_HINT}, got {text!r}")
        units: set[str] = set()

        def bound(part: str, *, default: float) -> float:
            if part.strip() == "":
                return default
            match = _BOUND.match(part)
            if not match:
                raise ValueError(f"expected {RANGE_HINT}, got {text!r}")
            unit = match.group(2)
            if unit:
                if unit not in _UNITS:
                    known = ", ".join(_UNITS)
                    raise ValueError(f"unknown unit {unit!r} in {text!r} (known: {known})")
                units.add(unit)
            return float(match.group(1))

        if ":" in body:
            low_text, _, high_text = body.partition(":")
            if ":" in high_text:
                raise ValueError(f"expected {RANGE_HINT}, got {text!r}")
            start = -math.inf if low_text.strip() == "~" else bound(low_text, default=0.0)
            end = bound(high_text, default=math.inf)
        else:
            start, end = 0.0, bound(body, default=math.nan)
            if math.isnan(end):
                raise ValueError(f"expected {RANGE_HINT}, got {text!r}")
        if len(units) > 1:
            raise ValueError(f"the two bounds of {text!r} have different units")
        if start > end:
            raise ValueError(f"the start of {text!r} is greater than its end")
        return cls(start, end, inside, units.pop() if units else "")

    def alerts(self, value: float) -> bool:
        """Return True if ``value`` (in this range's unit) should raise an alert."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def to_unit(self, unit: str) -> Range:
        """Return this range expressed in ``unit`` (``500ms`` → ``0.5`` for ``s``).

        A range without a unit is taken to be in ``unit`` already. Raise ValueError if the
        units measure different things (``%`` against ``s``).
        """
        if not self.unit or self.unit == unit:
            return replace(self, unit=unit)
        mine, theirs = _UNITS[self.unit], _UNITS.get(unit)
        if theirs is None or mine[0] != theirs[0]:
            raise ValueError(f"expected a value in {unit or 'plain numbers'}, got {self.unit}")
        factor = mine[1] / theirs[1]
        return Range(self.start * factor, self.end * factor, self.inside, unit)

    def __str__(self) -> str:
        """The range in Nagios syntax, without its unit (as perfdata wants it)."""
        if self.start == 0 and not self.inside:
            return "" if math.isinf(self.end) else _format_number(self.end)
        low = "~" if math.isinf(self.start) else _format_number(self.start)
        high = "" if math.isinf(self.end) else _format_number(self.end)
        return f"{'@' if self.inside else ''}{low}:{high}"

    def describe(self) -> str:
        """The range as a person reads it in a report: ``> 80%``, ``< 10``, ``10..20``."""
        unit = self.unit
        low, high = _format_number(self.start), _format_number(self.end)
        if self.inside:
            return f"{low}{unit}..{high}{unit}"
        if math.isinf(self.start) and math.isinf(self.end):
            return "never"
        if math.isinf(self.end):
            return f"< {low}{unit}"
        if math.isinf(self.start) or self.start == 0:
            return f"> {high}{unit}"
        return f"outside {low}{unit}..{high}{unit}"


def describe_thresholds(warn: Range | None, crit: Range | None, suffix: str = "") -> str:
    """Given the warning and critical ranges, return the threshold column of a report row:
    ``warning > 80%, critical > 90%`` (``suffix`` follows each, e.g. `` per CPU``); empty if
    there are none.
    """
    return ", ".join(
        f"{level} {value.describe()}{suffix}"
        for level, value in (("warning", warn), ("critical", crit))
        if value is not None
    )


def evaluate(value: float | None, warn: Range | None, crit: Range | None) -> State:
    """Given a value and optional warning and critical ranges, return its state.

    Critical is tested first. A missing value (None or NaN) is UNKNOWN.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return State.UNKNOWN
    if crit is not None and crit.alerts(value):
        return State.CRITICAL
    if warn is not None and warn.alerts(value):
        return State.WARNING
    return State.OK


def percent_range(value: Range | None) -> Range | None:
    """Given a range from a check's config, return it if it is a percentage (``80%`` or a
    plain ``80``). Raise ValueError naming the unit otherwise. For use as a field validator.
    """
    if value is not None and value.unit not in ("", "%"):
        raise ValueError(f'expected a percentage like "80%", got a value in {value.unit}')
    return value


def _parse_range_field(value: Any) -> Any:
    if value is None or isinstance(value, Range):
        return value
    try:
        return Range.parse(value)
    except ValueError as error:
        raise PydanticCustomError("nagios_range", "{reason}", {"reason": str(error)}) from None


def _serialize_range(value: Range | None) -> str | None:
    if value is None:
        return None
    return f"{value}{value.unit}" if str(value) else str(value)


#: A pydantic field type: a Nagios range given as text in the inventory.
RangeField = Annotated[
    Range, BeforeValidator(_parse_range_field), PlainSerializer(_serialize_range, return_type=str)
]


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured number. ``warn``/``crit`` are the ranges it was judged by."""

    name: str
    value: float
    unit: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def state(self) -> State:
        """The state this metric alone would give."""
        return evaluate(self.value, self.warn, self.crit)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this metric."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "warn": None if self.warn is None else str(self.warn),
            "crit": None if self.crit is None else str(self.crit),
            "min": self.min,
            "max": self.max,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class Item:
    """One row of an inspection report.

    ``key`` is a stable identifier (``filesystem.used``) that reports translate; ``item`` is the
    English label with its subject (``Filesystem / used``).
    """

    key: str
    item: str
    value: str
    verdict: State = State.OK
    threshold: str = ""
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this item."""
        return {
            "key": self.key,
            "item": self.item,
            "value": self.value,
            "threshold": self.threshold,
            "verdict": self.verdict.name,
            "advice": self.advice,
        }


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check returns. ``started`` and ``duration`` are filled in by the engine."""

    state: State
    summary: str
    metrics: tuple[Metric, ...] = ()
    items: tuple[Item, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    duration: float | None = None

    @classmethod
    def unknown(cls, reason: str, **details: Any) -> CheckResult:
        """A result for a check that could not observe: UNKNOWN with the reason."""
        return cls(State.UNKNOWN, reason, details=details)

    @classmethod
    def from_metrics(
        cls,
        metrics: list[Metric] | tuple[Metric, ...],
        summary: str,
        items: list[Item] | tuple[Item, ...] = (),
        details: Mapping[str, Any] | None = None,
        floor: State = State.OK,
    ) -> CheckResult:
        """A result whose state is the worst of its metrics' and items' states and ``floor``."""
        state = worst([floor, *(m.state for m in metrics), *(i.verdict for i in items)])
        return cls(state, summary, tuple(metrics), tuple(items), dict(details or {}))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this result."""
        return {
            "state": self.state.name,
            "code": int(self.state),
            "summary": self.summary,
            "metrics": [m.to_dict() for m in self.metrics],
            "items": [i.to_dict() for i in self.items],
            "details": dict(self.details),
            "started": None if self.started is None else self.started.isoformat(),
            "duration": self.duration,
        }


class CheckError(Exception):
    """Raised by a check that cannot observe its target; becomes UNKNOWN with this message."""


class CheckConfig(BaseModel):
    """Base of every check kind's configuration: frozen, unknown keys refused.

    Fields common to every check instance (name, interval, timeout, retries) are not part of
    the kind's config; the inventory keeps them (see ``opsctl.inventory.CheckSpec``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class Check:
    """Base of every check kind.

    A subclass sets ``kind``, ``Config`` (a ``CheckConfig`` subclass) and ``targets`` (the
    target types it may be attached to: ``host``, ``database``, ``log``, ``endpoint``), and
    implements ``run``. Its docstring's first line is the description ``opsctl check list``
    shows. ``timeout`` is the time budget in seconds the engine will allow; a check passes it
    to sockets and subprocesses so that it can fail with a precise reason before the engine
    has to abandon it. ``previous`` is this check's last stored result (None on its first
    run): a check that reports rates or restarts keeps its counters in ``details["counters"]``
    and finds them there next time, without ever reading the store itself.

    ``store`` is the open store when the run has one (None with ``--no-store``). Only checks
    whose target is itself data the server receives (an agent's pushes, the dispenser fleet)
    read it; they answer UNKNOWN without one.
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[CheckConfig]] = CheckConfig
    targets: ClassVar[frozenset[str]] = frozenset({"host", "database", "log", "endpoint"})

    def __init__(
        self,
        config: CheckConfig,
        timeout: float = 30.0,
        previous: CheckResult | None = None,
        store: Any = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.previous = previous
        self.store = store

    def run(self, target: Any) -> CheckResult:
        """Given the target (an inventory model), observe it and return a CheckResult."""
        raise CheckError(f"check kind {self.kind!r} does not implement run()")
