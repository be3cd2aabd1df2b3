"""The dispenser fleet's rules, as pure functions: what status a device is in at a given
moment, when that status will change if no heartbeat comes, and how available a device
was over a period, from its flips.

A device's status is one of:

- ``online``: heartbeats arrive and the last one reported nothing wrong;
- ``low-stock``: as online, but an item's level is at or below its low mark (the item's own
  ``low`` if the heartbeat gave one, else the fleet's ``low_stock``);
- ``faulty``: the last heartbeat reported ``status: fault`` or a fault code, or
  ``status: maintenance`` (the machine does not dispense while it is serviced; the flip's
  reason says ``maintenance`` so that reports can tell planned work from breakdowns);
- ``late``: an online or low-stock device whose next heartbeat is overdue by more than the
  grace; it still counts as dispensing;
- ``offline``: silent for longer than ``offline_after``, whatever it last reported;
- ``unknown``: listed in a registry, never heard from.

A faulty device stays faulty while its heartbeat is overdue (nothing says it was repaired)
until it is offline. Silence is judged on the server's clock, never the device's: a device
whose last heartbeat came at ``t`` is ``late`` once silent for longer than its interval plus
the grace, that is right after ``t + interval + grace``, and ``offline`` right after
``t + offline_after``; its flips are stamped at exactly those instants (a heartbeat arriving
at the very instant is in time), so that the availability computed from flips over any
period is exact.

A device that announces its own interval (the heartbeat's ``interval``) is judged on it:
late after its interval plus the grace, offline once it has missed its announced heartbeat by
as long as the fleet allows (``offline_after - interval``), and never sooner than
``offline_after``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from opsctl.duration import format_duration

#: The statuses in which a device dispenses.
AVAILABLE = frozenset({"online", "late", "low-stock"})
#: The statuses in which it does not.
DOWN = frozenset({"offline", "faulty"})
#: Every status, best first (the order tables and summaries use).
STATUSES = ("online", "late", "low-stock", "faulty", "offline", "unknown")
#: The statuses a device reaches by silence alone.
TIME_BASED = frozenset({"late", "offline"})
_SILENCE_RANK = {"late": 1, "offline": 2}


#: The smallest interval a heartbeat may announce (the wire format's lower bound).
MIN_DEVICE_INTERVAL = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Rule:
    """How the devices of one vendor are judged: the fleet (and its site) that lists the
    vendor, and its timings. Raise ValueError if ``offline_after`` is not longer than
    ``interval + grace`` (the device would never be late) or a duration is not positive."""

    site: str
    fleet: str
    interval: timedelta = timedelta(minutes=1)
    grace: timedelta = timedelta(seconds=30)
    offline_after: timedelta = timedelta(minutes=5)
    low_stock: int = 10
    vendor_silence: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.grace < timedelta(0):
            raise ValueError("a fleet's interval must be positive and its grace not negative")
        if self.offline_after <= self.interval + self.grace:
            raise ValueError(
                f"offline_after ({format_duration(self.offline_after)}) must be longer than "
                f"interval + grace ({format_duration(self.interval + self.grace)})"
            )
        if self.low_stock < 0:
            raise ValueError("low_stock must not be negative")

    @classmethod
    def from_fleet(cls, fleet: Any, site: str = "") -> Rule:
        """Given an inventory ``Fleet`` target (and the name of its site), return its rule."""
        return cls(
            site=site,
            fleet=fleet.name,
            interval=fleet.interval,
            grace=fleet.grace,
            offline_after=fleet.offline_after,
            low_stock=fleet.low_stock,
            vendor_silence=fleet.vendor_silence,
        )


#: The rule of a vendor that no fleet lists: the inventory's defaults, no site.
DEFAULT_RULE = Rule(site="", fleet="")


class Rules:
    """The rule of each vendor (vendor name → Rule); vendors no fleet lists get ``default``."""

    def __init__(self, by_vendor: Mapping[str, Rule] | None = None, default: Rule = DEFAULT_RULE):
        self._by_vendor = dict(by_vendor or {})
        self.default = default

    @classmethod
    def from_inventory(cls, inventory: Any) -> Rules:
        """Given an ``Inventory`` (or a ``LoadedInventory``), return the rules of every fleet
        of every enabled site, enabled fleets only. A vendor listed by several fleets is
        judged by the first one in the inventory's order."""
        inventory = getattr(inventory, "inventory", inventory)
        by_vendor: dict[str, Rule] = {}
        for site in inventory.sites:
            if not site.enabled:
                continue
            for fleet in site.fleets:
                if not fleet.enabled:
                    continue
                rule = Rule.from_fleet(fleet, site.name)
                for vendor in fleet.vendors:
                    by_vendor.setdefault(vendor, rule)
        return cls(by_vendor)

    def rule_for(self, vendor: str) -> Rule:
        """Given a vendor's name, return its rule (the default one, site "", if none lists it)."""
        return self._by_vendor.get(vendor, self.default)

    @property
    def vendors(self) -> list[str]:
        """The vendors some fleet lists, sorted."""
        return sorted(self._by_vendor)

    def shortest_late(self) -> timedelta:
        """The shortest silence after which any device can be late: the smallest heartbeat
        interval a device may announce (10 s) plus the smallest grace."""
        graces = [rule.grace for rule in [self.default, *self._by_vendor.values()]]
        return MIN_DEVICE_INTERVAL + min(graces)

    def __contains__(self, vendor: object) -> bool:
        return vendor in self._by_vendor

    def __repr__(self) -> str:
        return f"Rules({self._by_vendor!r})"


class DeviceState(NamedTuple):
    """What the rules need to know of a device: its stored status, its last heartbeat (the
    server's clock) and what that heartbeat reported. ``stock`` holds one mapping per item
    (``item``, ``name``, ``level``, ``low``), as the store keeps it. (A named tuple: the
    store builds one per device of every batch.)"""

    device_id: str
    vendor: str
    status: str = "unknown"
    last_heartbeat: datetime | None = None
    interval: float | None = None
    reported_status: str = "ok"
    fault_code: str | None = None
    fault_message: str | None = None
    stock: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Flip:
    """A change of a device's status at an exact moment, with the reason in plain words."""

    at: datetime
    from_status: str | None
    to_status: str
    reason: str


def late_after(device: DeviceState, rule: Rule) -> timedelta:
    """Given a device and its rule, return the silence after which it is late: its own
    interval if it announced one (else the rule's) plus the grace."""
    return _interval(device, rule) + rule.grace


def offline_after(device: DeviceState, rule: Rule) -> timedelta:
    """Given a device and its rule, return the silence after which it is offline: the rule's
    ``offline_after``, stretched for a device that announced a longer interval."""
    own = _interval(device, rule)
    return max(rule.offline_after, own + rule.offline_after - rule.interval)


def _interval(device: DeviceState, rule: Rule) -> timedelta:
    if device.interval is not None and device.interval > 0:
        return timedelta(seconds=device.interval)
    return rule.interval


def condition(device: DeviceState, rule: Rule) -> tuple[str, str]:
    """Given a device, return what its last heartbeat says, ignoring silence: ``faulty``,
    ``low-stock`` or ``online``, with the reason (``fault E12: 出药口卡住``,
    ``maintenance``, ``stock low: 左炔诺孕酮 3 ≤ 5``, ``heartbeat received``)."""
    code = (device.fault_code or "").strip()
    message = (device.fault_message or "").strip()
    if device.reported_status == "maintenance":
        return "faulty", "maintenance" + (f": {message}" if message else "")
    if device.reported_status == "fault" or code:
        words = " ".join(part for part in ("fault", code) if part)
        return "faulty", words + (f": {message}" if message else "")
    low = low_items(device.stock, rule.low_stock)
    if low:
        return "low-stock", "stock low: " + ", ".join(low)
    return "online", "heartbeat received"


def _faulty(device: DeviceState) -> bool:
    """True if the device's last heartbeat reported a fault or maintenance."""
    return device.reported_status in ("fault", "maintenance") or bool(
        (device.fault_code or "").strip()
    )


def low_items(stock: Iterable[Any], default_low: int) -> list[str]:
    """Given a device's stock (mappings or ``StockLevel``s) and the fleet's low mark, return
    each item at or below its low mark as ``名称 3 ≤ 5``, in the order given."""
    found = []
    for entry in stock:
        item = _field(entry, "item")
        level = _field(entry, "level")
        low = _field(entry, "low")
        mark = default_low if low is None else low
        if level is not None and level <= mark:
            found.append(f"{_field(entry, 'name') or item} {level} ≤ {mark}")
    return found


def _field(entry: Any, name: str) -> Any:
    if type(entry) is dict or isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


def judge(device: DeviceState, rule: Rule, now: datetime) -> tuple[str, str]:
    """Given a device, its rule and a moment, return its status at that moment and why.

    ``unknown`` without any heartbeat; ``offline`` once silent for longer than
    ``offline_after``; ``late`` once an online or low-stock device is silent for longer than
    its interval plus the grace; else what the last heartbeat reported (see ``condition``).
    """
    if device.last_heartbeat is None:
        return "unknown", "no heartbeat yet"
    silence = now - device.last_heartbeat
    off = offline_after(device, rule)
    if silence > off:
        return "offline", _offline_reason(silence, off)
    reported, reason = condition(device, rule)
    late = late_after(device, rule)
    if silence > late and reported != "faulty":
        return "late", _late_reason(silence, device, rule)
    return reported, reason


def _offline_reason(silence: timedelta, limit: timedelta) -> str:
    return f"no heartbeat for {format_duration(silence)} (offline after {format_duration(limit)})"


def _late_reason(silence: timedelta, device: DeviceState, rule: Rule) -> str:
    return (
        f"no heartbeat for {format_duration(silence)} (late after "
        f"{format_duration(_interval(device, rule))} + {format_duration(rule.grace)} grace)"
    )


def status(device: DeviceState, rule: Rule, now: datetime) -> str:
    """Given a device, its rule and a moment, return its status then (see ``judge``)."""
    return judge(device, rule, now)[0]


def transitions(device: DeviceState, rule: Rule, until: datetime | None = None) -> list[Flip]:
    """Given a device with its stored status, return the flips that silence alone brings
    about from that status on, each stamped at its exact moment (the last heartbeat plus
    interval plus grace, plus ``offline_after``), those before ``until`` only (all of them
    when None): an online device silent for long enough gets ``online → late`` and
    ``late → offline``; a faulty one only ``faulty → offline``. Silence only ever moves a
    device on, never back."""
    last = device.last_heartbeat
    if last is None:
        return []
    late, off = late_after(device, rule), offline_after(device, rule)
    steps = [(off, "offline")] if _faulty(device) else [(late, "late"), (off, "offline")]
    current = device.status
    found = []
    for boundary, new in steps:
        at = last + boundary
        if until is not None and at >= until:
            break
        if _SILENCE_RANK[new] > _SILENCE_RANK.get(current, 0):
            if new == "late":
                reason = _late_reason(boundary, device, rule)
            else:
                reason = _offline_reason(boundary, boundary)
            found.append(Flip(at, current, new, reason))
            current = new
    return found


def next_transition(device: DeviceState, rule: Rule) -> datetime | None:
    """Given a device with its stored status, return the exact moment its status will change
    if no heartbeat comes (late, then offline), or None if silence changes nothing more."""
    pending = transitions(device, rule)
    return pending[0].at if pending else None


def status_at(device: DeviceState, rule: Rule, now: datetime) -> tuple[str, datetime | None]:
    """Given a device with its stored status and a moment, return the status silence has
    brought it to by then and when that began (None: it is still the stored status)."""
    pending = transitions(device, rule, now)
    if not pending:
        return device.status, None
    return pending[-1].to_status, pending[-1].at


def offline_percent(counts: Mapping[str, int]) -> float:
    """Given device counts by status, return the offline ones as a percentage of those that
    have reported at least once (0 when none has)."""
    known = sum(number for name, number in counts.items() if name != "unknown")
    return 100.0 * counts.get("offline", 0) / known if known else 0.0


def describe_counts(counts: Mapping[str, int]) -> str:
    """Given device counts by status, return them as a person reads them:
    ``2,000 devices: 1,925 online, 6 late, 41 offline (2.1%), 12 faulty, 16 low stock``
    (late and never-heard-from devices only when there are some)."""
    total = sum(counts.values())
    parts = [f"{counts.get('online', 0):,} online"]
    if counts.get("late"):
        parts.append(f"{counts['late']:,} late")
    parts.append(f"{counts.get('offline', 0):,} offline ({offline_percent(counts):.1f}%)")
    parts.append(f"{counts.get('faulty', 0):,} faulty")
    parts.append(f"{counts.get('low-stock', 0):,} low stock")
    if counts.get("unknown"):
        parts.append(f"{counts['unknown']:,} never heard from")
    return f"{total:,} {'device' if total == 1 else 'devices'}: " + ", ".join(parts)


# --------------------------------------------------------------------------- availability


@dataclass(frozen=True, slots=True)
class Availability:
    """Seconds of a period a device (or a group) dispensed (``up``), did not (``down``), and
    had no status (``unknown``: before its first heartbeat, or never heard from)."""

    up: float = 0.0
    down: float = 0.0
    unknown: float = 0.0

    @property
    def ratio(self) -> float:
        """Up time over known time, from 0 to 1; NaN when nothing of the period is known."""
        known = self.up + self.down
        return self.up / known if known > 0 else math.nan

    def __add__(self, other: Availability) -> Availability:
        return Availability(
            self.up + other.up, self.down + other.down, self.unknown + other.unknown
        )


def measure(flips: Iterable[Any], start: datetime, end: datetime) -> Availability:
    """Given one device's flips (objects or mappings with ``at`` and ``to_status``; the last
    one at or before ``start`` gives its status at ``start``) and a period [start, end),
    return the seconds up, down and unknown. Raise ValueError if ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(
            f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    ordered = sorted(((_field(f, "at"), _field(f, "to_status")) for f in flips), key=lambda f: f[0])
    totals = {"up": 0.0, "down": 0.0, "unknown": 0.0}
    current, since = "unknown", start
    for at, to_status in ordered:
        if at <= start:
            current = to_status
            continue
        if at >= end:
            break
        totals[_bucket(current)] += (at - since).total_seconds()
        current, since = to_status, at
    totals[_bucket(current)] += (end - since).total_seconds()
    return Availability(**totals)


def availability(flips: Iterable[Any], start: datetime, end: datetime) -> float:
    """Given one device's flips and a period [start, end), return the share of its known time
    it dispensed, from 0 to 1 (NaN if its status is unknown for the whole period)."""
    return measure(flips, start, end).ratio


def down_seconds(flips: Iterable[Any], start: datetime, end: datetime) -> float:
    """Given one device's flips and a period [start, end), return the seconds it did not
    dispense (offline or faulty)."""
    return measure(flips, start, end).down


def _bucket(status_name: str) -> str:
    if status_name in AVAILABLE:
        return "up"
    if status_name in DOWN:
        return "down"
    return "unknown"


__all__ = [
    "AVAILABLE",
    "DEFAULT_RULE",
    "DOWN",
    "STATUSES",
    "Availability",
    "DeviceState",
    "Flip",
    "Rule",
    "Rules",
    "availability",
    "condition",
    "describe_counts",
    "down_seconds",
    "judge",
    "late_after",
    "low_items",
    "measure",
    "next_transition",
    "offline_after",
    "offline_percent",
    "status",
    "status_at",
    "transitions",
]
