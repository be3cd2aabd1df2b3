"""The ``dispenser`` check: how a fleet of contraceptive dispensers is doing, from the
heartbeats its vendors' systems sent to ``opsctl server``.

A device belongs to the fleet when its vendor is listed in the fleet's ``vendors``. Its
status is judged now, on the server's clock, by the rules of ``opsctl.fleet`` (online, late,
low-stock, faulty, offline; unknown until its first heartbeat), so the check is right even
if the server's sweep has not run yet. The check reports:

- the share of the fleet that is offline (WARNING 5 %, CRITICAL 10 % by default), and the
  same per vendor and per region (a vendor or region with fewer than ``min_devices`` devices
  is shown, not judged: one machine of three is not a regional outage);
- vendor silence, a dead man's switch for a vendor's whole system: a vendor listed in the
  fleet with no heartbeat at all for the fleet's ``vendor_silence`` is CRITICAL;
- devices flapping (``flapping_flips`` status changes within ``flapping_window``: WARNING);
- faulty and low-stock devices (counted; judged only when ``faulty_warn`` or
  ``low_stock_warn`` is set).

The offline share is taken over the devices that have reported at least once: a registered
device never heard from is counted as unknown, not offline.

Every fleet gets this check unless it lists its own. It reads the store (``self.store``)
and answers UNKNOWN without one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import Field, field_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckError,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    describe_thresholds,
    evaluate,
    percent_range,
    utc_now,
)
from opsctl.duration import Duration, format_duration
from opsctl.fleet import STATUSES, Rule, Rules, describe_counts, offline_percent


class DispenserConfig(CheckConfig):
    """Configuration of the ``dispenser`` check kind."""

    offline_warn: RangeField | None = Field(
        Range.parse("5%"), description="WARNING when this share of the fleet is offline"
    )
    offline_crit: RangeField | None = Field(
        Range.parse("10%"), description="CRITICAL when this share of the fleet is offline"
    )
    vendor_offline_warn: RangeField | None = Field(
        None, description="the same for one vendor's devices (default: offline_warn)"
    )
    vendor_offline_crit: RangeField | None = Field(
        None, description="the same for one vendor's devices (default: offline_crit)"
    )
    region_offline_warn: RangeField | None = Field(
        None, description="the same for one region's devices (default: offline_warn)"
    )
    region_offline_crit: RangeField | None = Field(
        None, description="the same for one region's devices (default: offline_crit)"
    )
    min_devices: int = Field(
        10, ge=1, description="a vendor or region with fewer devices is shown but not judged"
    )
    flapping_flips: int = Field(
        6, ge=2, description="WARNING for a device whose status changed this often ..."
    )
    flapping_window: Duration = Field(timedelta(hours=1), description="... within this window")
    faulty_warn: int | None = Field(
        None, ge=0, description="WARNING when more devices than this are faulty (unset: not judged)"
    )
    low_stock_warn: int | None = Field(
        None,
        ge=0,
        description="WARNING when more devices than this are low on stock (unset: not judged)",
    )

    _percent = field_validator(
        "offline_warn",
        "offline_crit",
        "vendor_offline_warn",
        "vendor_offline_crit",
        "region_offline_warn",
        "region_offline_crit",
    )(percent_range)


class Counts:
    """How many devices of a group are in each status."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()

    def add(self, status: str) -> None:
        """Count one device in ``status``."""
        self.by_status[status] += 1

    @property
    def total(self) -> int:
        """All devices counted."""
        return sum(self.by_status.values())

    @property
    def known(self) -> int:
        """Devices that have reported at least once."""
        return self.total - self.by_status["unknown"]

    @property
    def offline_percent(self) -> float:
        """Offline devices over known ones, in percent (0 when none is known)."""
        return offline_percent(self.by_status)

    def describe(self) -> str:
        """``1,200 devices: 1,150 online, 3 late, 30 offline (2.5%), 10 faulty, 7 low stock``."""
        return describe_counts(self.by_status)

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON: devices, one count per status, and the offline percentage."""
        return {
            "devices": self.total,
            **{status: self.by_status[status] for status in STATUSES},
            "offline_percent": round(self.offline_percent, 2),
        }


#: Flapping devices listed in an item and in the details.
FLAPPING_SHOWN = 10


class DispenserCheck(Check):
    """Dispenser fleet: offline share per fleet, vendor and region; vendor silence; flapping."""

    kind = "dispenser"
    Config = DispenserConfig
    targets = frozenset({"fleet"})

    def run(self, target: Any) -> CheckResult:
        """Given a ``Fleet`` target, judge its devices now from the store and return the
        result (UNKNOWN without a store; CheckError if the store cannot be read)."""
        config = cast(DispenserConfig, self.config)
        if self.store is None:
            return CheckResult.unknown(
                "the dispenser check reads the heartbeats opsctl server received from the "
                "store; run it with a store (not --no-store)"
            )
        from opsctl.store import StoreError
        from opsctl.store.fleet import current, flapping, vendor_last_heartbeat

        now = utc_now()
        vendors = list(dict.fromkeys(target.vendors))
        rules = Rules({vendor: Rule.from_fleet(target) for vendor in vendors})
        try:
            devices = current(self.store, rules, now, vendors=vendors)
            flappers = flapping(
                self.store, now - config.flapping_window, config.flapping_flips, vendors=vendors
            )
            last_heard = vendor_last_heartbeat(self.store)
        except StoreError as error:
            raise CheckError(str(error)) from None

        fleet = Counts()
        by_vendor: dict[str, Counts] = {vendor: Counts() for vendor in vendors}
        by_region: dict[str, Counts] = defaultdict(Counts)
        for device in devices:
            fleet.add(device.status)
            by_vendor[device.vendor].add(device.status)
            by_region[device.region or "(no region)"].add(device.status)
        # None: never heard from at all.
        silent: dict[str, timedelta | None] = {}
        for vendor in vendors:
            heard = last_heard.get(vendor)
            if heard is None or now - heard >= target.vendor_silence:
                silent[vendor] = None if heard is None else now - heard

        warn, crit = config.offline_warn, config.offline_crit
        items = [
            _group_item("dispenser.fleet", "Fleet / offline", fleet, warn, crit, 1, _FLEET_ADVICE)
        ]
        for vendor in vendors:
            items.append(
                _vendor_item(
                    vendor,
                    by_vendor[vendor],
                    config,
                    silent=vendor in silent,
                    heard=last_heard.get(vendor),
                    now=now,
                    limit=target.vendor_silence,
                )
            )
        for region in sorted(by_region):
            items.append(
                _group_item(
                    "dispenser.region",
                    f"Region {region}",
                    by_region[region],
                    config.region_offline_warn or warn,
                    config.region_offline_crit or crit,
                    config.min_devices,
                    f"Devices in {region} are offline: a regional network or power outage is "
                    "likely; check with the vendors which sites are affected.",
                )
            )
        if flappers:
            items.append(_flapping_item(flappers, config))
        faulty, low = fleet.by_status["faulty"], fleet.by_status["low-stock"]
        items.append(
            _count_item(
                "dispenser.faulty",
                "Fleet / faulty devices",
                faulty,
                config.faulty_warn,
                "Faulty devices do not dispense: ask the vendors for their repair times.",
            )
        )
        items.append(
            _count_item(
                "dispenser.low_stock",
                "Fleet / low stock",
                low,
                config.low_stock_warn,
                "Ask the vendors (or the refilling staff) to refill these devices.",
            )
        )

        summary = fleet.describe() if fleet.total else "no devices reported yet"
        silences = [
            f"{vendor} never heard from"
            if gap is None
            else f"{vendor} silent {format_duration(gap)}"
            for vendor, gap in silent.items()
        ]
        if silences:
            summary += "; " + ", ".join(silences)
        if flappers:
            summary += f"; {len(flappers)} flapping"
        details = {
            "fleet": fleet.to_dict(),
            "vendors": {vendor: counts.to_dict() for vendor, counts in by_vendor.items()},
            "regions": {region: counts.to_dict() for region, counts in sorted(by_region.items())},
            "silent_vendors": {
                vendor: None if gap is None else gap.total_seconds()
                for vendor, gap in silent.items()
            },
            "flapping": [
                {"device_id": r.device_id, "vendor": r.vendor, "region": r.region, "flips": r.flips}
                for r in flappers[:50]
            ],
        }
        metrics = _metrics(fleet, by_vendor, len(flappers), config)
        return CheckResult.from_metrics(metrics, summary, items, details)


_FLEET_ADVICE = (
    "Many devices are offline: look for what they share (a vendor, a region, the network to "
    "the server) in the rows below."
)


def _metrics(
    fleet: Counts, by_vendor: dict[str, Counts], flapping: int, config: DispenserConfig
) -> list[Metric]:
    """The fleet's counts, its offline share (judged) and each vendor's (shown)."""
    faulty, low = fleet.by_status["faulty"], fleet.by_status["low-stock"]
    metrics = [
        Metric("devices", float(fleet.total), min=0),
        Metric("online", float(fleet.by_status["online"]), min=0),
        Metric("late", float(fleet.by_status["late"]), min=0),
        Metric("offline", float(fleet.by_status["offline"]), min=0),
        Metric(
            "faulty",
            float(faulty),
            warn=None if config.faulty_warn is None else Range(0, config.faulty_warn),
            min=0,
        ),
        Metric(
            "low_stock",
            float(low),
            warn=None if config.low_stock_warn is None else Range(0, config.low_stock_warn),
            min=0,
        ),
        Metric("unknown", float(fleet.by_status["unknown"]), min=0),
        Metric("flapping", float(flapping), min=0),
    ]
    if fleet.known:
        # Without a device heard from, there is no share to judge (not an UNKNOWN result:
        # a silent vendor is CRITICAL, and says so).
        metrics.append(
            Metric(
                "offline_percent",
                fleet.offline_percent,
                "%",
                warn=_in_percent(config.offline_warn),
                crit=_in_percent(config.offline_crit),
                min=0,
                max=100,
            )
        )
    for vendor, counts in by_vendor.items():
        if counts.known:
            metrics.append(
                Metric(
                    "vendor_offline_percent",
                    counts.offline_percent,
                    "%",
                    min=0,
                    max=100,
                    labels={"vendor": vendor},
                )
            )
    return metrics


def _vendor_item(
    vendor: str,
    counts: Counts,
    config: DispenserConfig,
    *,
    silent: bool,
    heard: datetime | None,
    now: datetime,
    limit: timedelta,
) -> Item:
    """One vendor's row: its devices' offline share, and its silence (a dead man's switch)."""
    item = _group_item(
        "dispenser.vendor",
        f"Vendor {vendor}",
        counts,
        config.vendor_offline_warn or config.offline_warn,
        config.vendor_offline_crit or config.offline_crit,
        config.min_devices,
        f"Devices of {vendor} are offline: ask {vendor} whether their system or the "
        "sites' network is down.",
    )
    threshold = "; ".join(
        part
        for part in (item.threshold, f"critical when silent ≥ {format_duration(limit)}")
        if part
    )
    if not silent:
        ago = (
            ""
            if heard is None
            else f"; last heartbeat {format_duration(max(now - heard, timedelta(0)))} ago"
        )
        return Item(item.key, item.item, item.value + ago, item.verdict, threshold, item.advice)
    gap = None if heard is None else now - heard
    value = "no heartbeat ever" if gap is None else f"no heartbeat for {format_duration(gap)}"
    if counts.total:
        value += f"; {item.value}"
    advice = (
        f"{vendor}'s system has not sent a single heartbeat"
        + ("" if gap is None else f" for {format_duration(gap)}")
        + f": call {vendor}'s support, and check that its token is valid "
        f"(opsctl token create --vendor {vendor}) and that it can reach the server."
    )
    return Item(item.key, item.item, value, State.CRITICAL, threshold, advice)


def _flapping_item(flappers: list[Any], config: DispenserConfig) -> Item:
    shown = ", ".join(f"{row.device_id} ({row.flips})" for row in flappers[:FLAPPING_SHOWN])
    if len(flappers) > FLAPPING_SHOWN:
        shown += f" and {len(flappers) - FLAPPING_SHOWN} more"
    return Item(
        "dispenser.flapping",
        "Fleet / flapping devices",
        f"{len(flappers)} device(s): {shown}",
        State.WARNING,
        f"warning ≥ {config.flapping_flips} changes in {format_duration(config.flapping_window)}",
        "A device that keeps changing status has an unstable network link or power supply, or "
        "a recurring fault: ask the vendor to inspect it on site.",
    )


def _in_percent(value: Range | None) -> Range | None:
    return None if value is None else value.to_unit("%")


def _group_item(
    key: str,
    label: str,
    counts: Counts,
    warn: Range | None,
    crit: Range | None,
    min_devices: int,
    advice: str,
) -> Item:
    threshold = describe_thresholds(_in_percent(warn), _in_percent(crit), " offline")
    if not counts.total:
        return Item(key, label, "no devices", State.OK, threshold)
    value = counts.describe()
    if counts.known < min_devices:
        return Item(
            key, label, value + f" (fewer than {min_devices}: not judged)", State.OK, threshold
        )
    verdict = evaluate(counts.offline_percent, _in_percent(warn), _in_percent(crit))
    return Item(key, label, value, verdict, threshold, advice if verdict else "")


def _count_item(key: str, label: str, count: int, warn: int | None, advice: str) -> Item:
    if warn is None:
        return Item(key, label, f"{count:,}", State.OK, "not judged")
    verdict = State.WARNING if count > warn else State.OK
    return Item(key, label, f"{count:,}", verdict, f"warning > {warn:,}", advice if verdict else "")


__all__ = ["DispenserCheck", "DispenserConfig"]
