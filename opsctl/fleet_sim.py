"""A simulated dispenser fleet: N devices of V vendors across the cities of Zhejiang,
behaving as real machines do, deterministically for a seed.

Most devices send a heartbeat every interval, a few seconds of jitter late; some devices'
clocks are off. Now and then a device goes silent (a network outage of minutes to hours, or
a machine switched off for days), sometimes a whole city at once (a regional network
outage), sometimes a whole vendor (its central system down). Devices report faults (E01
出药口卡住, E07 温度过高, E12 通讯板异常 ...) and are repaired; stock runs down as people
take items and is refilled every few days, during a short ``maintenance`` visit. A few
devices are flaky: they fail ten times as often.

Every random choice is a hash of the seed, the device and the time slot it concerns, not a
draw from a shared generator: the heartbeats of any period are the same however the period
is cut up and in whatever order periods are asked for, so history can be generated in
pieces.

Two drivers: ``Simulator.heartbeats_between`` yields heartbeats in time order (to write
history into a store through ``opsctl.store.fleet.ingest``), and ``drive`` posts them live to
a server's ``/api/v1/dispensers/heartbeats``, reporting what was sent and accepted and the
latency of each request.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from opsctl.server.schemas import MAX_HEARTBEATS, Heartbeat, HeartbeatBatch, StockLevel

#: The path vendors post heartbeats to, under the server's URL.
HEARTBEATS_PATH = "/api/v1/dispensers/heartbeats"

#: Cities of Zhejiang: name, administrative code (in device ids), share of devices, districts.
REGIONS: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("杭州市", "3301", 0.22, ("上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区")),
    ("宁波市", "3302", 0.15, ("海曙区", "江北区", "鄞州区", "北仑区", "镇海区")),
    ("温州市", "3303", 0.14, ("鹿城区", "龙湾区", "瓯海区", "瑞安市", "乐清市")),
    ("嘉兴市", "3304", 0.07, ("南湖区", "秀洲区", "海宁市", "桐乡市")),
    ("湖州市", "3305", 0.05, ("吴兴区", "南浔区", "德清县", "长兴县")),
    ("绍兴市", "3306", 0.08, ("越城区", "柯桥区", "上虞区", "诸暨市")),
    ("金华市", "3307", 0.10, ("婺城区", "金东区", "义乌市", "东阳市")),
    ("衢州市", "3308", 0.04, ("柯城区", "衢江区", "江山市")),
    ("舟山市", "3309", 0.02, ("定海区", "普陀区")),
    ("台州市", "3310", 0.09, ("椒江区", "黄岩区", "路桥区", "温岭市")),
    ("丽水市", "3311", 0.04, ("莲都区", "龙泉市", "青田县")),
)
_ROADS = (
    "人民路",
    "解放路",
    "中山路",
    "文化路",
    "建设路",
    "新华路",
    "环城北路",
    "学院路",
    "江滨路",
)
_PLACES = (
    "社区卫生服务中心门口",
    "地铁站B出口",
    "大学生活区",
    "工业园区宿舍楼下",
    "计生服务站",
    "街道办事处大厅",
    "公园东门",
    "妇幼保健院一楼",
    "火车站南广场",
)
#: Fault codes and what devices say about them.
FAULTS: dict[str, str] = {
    "E01": "出药口卡住",
    "E03": "扫码模块异常",
    "E05": "身份证读卡器故障",
    "E07": "温度过高",
    "E09": "电源电压异常",
    "E12": "通讯板异常",
}
#: Items a dispenser may hold: channel code and product name.
PRODUCTS: tuple[tuple[str, str], ...] = (
    ("C-M", "避孕套(中号)"),
    ("C-L", "避孕套(大号)"),
    ("C-S", "避孕套(小号)"),
    ("LNG", "左炔诺孕酮片"),
    ("N9", "壬苯醇醚栓"),
    ("GEL", "避孕凝胶"),
)
#: Vendors' market shares, the first vendor largest.
_VENDOR_SHARES = (0.45, 0.3, 0.15, 0.1)
#: The zone vendors' systems write device clocks in.
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Rates:
    """How often things go wrong: chances per device-hour (outages, faults), per device-day
    (a machine switched off for days), per city-day and per vendor-day."""

    outage_per_hour: float = 0.002
    fault_per_hour: float = 0.001
    dead_per_day: float = 0.001
    region_outage_per_day: float = 0.02
    vendor_outage_per_day: float = 0.01
    flaky_share: float = 0.02
    flaky_factor: float = 10.0


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a simulated device."""

    code: str
    name: str
    capacity: int
    low: int | None
    per_day: float


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device."""

    index: int
    device_id: str
    vendor: str
    vendor_index: int
    region: str
    region_index: int
    address: str
    interval: int  # seconds between heartbeats
    announces_interval: bool
    phase: float  # seconds after the epoch of its first heartbeat
    skew: float  # seconds its clock is off
    items: tuple[Item, ...]
    refill_days: float
    refill_phase: float  # seconds
    flaky: bool
    firmware: str
    warmth: float  # degrees its site is warmer than the usual


# Tags that keep the hashes of different choices apart.
_DEVICE, _JITTER, _OUTAGE, _FAULT, _DEAD, _REGION, _VENDOR, _RATE, _TEMP = range(1, 10)
_MASK = (1 << 64) - 1


def _mix(value: int) -> int:
    """SplitMix64's finaliser: a well-spread 64-bit hash of a 64-bit number."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _uniform(*keys: int) -> float:
    """A number in [0, 1) that depends only on ``keys``."""
    value = 0
    for key in keys:
        value = _mix(value ^ (key & _MASK))
    return value / 2**64


def _log_uniform(low: float, high: float, u: float) -> float:
    return low * (high / low) ** u


def _pick(weights: Sequence[float], u: float) -> int:
    total = sum(weights)
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight / total
        if u < running:
            return index
    return len(weights) - 1


@dataclass(frozen=True, slots=True)
class _Episode:
    start: float  # seconds since the epoch
    end: float
    code: str = ""


class Simulator:
    """``devices`` devices of ``vendors`` vendors (``vendor-a``, ``vendor-b`` ...), the same
    for the same ``seed``. ``interval`` is the usual heartbeat interval in seconds (the last
    vendor's devices beat half as often and say so); ``epoch`` anchors every schedule.
    Raise ValueError if a count is out of range."""

    def __init__(
        self,
        devices: int = 100,
        vendors: int = 3,
        seed: int = 1,
        *,
        interval: int = 60,
        epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        rates: Rates | None = None,
    ) -> None:
        if not 1 <= vendors <= 26:
            raise ValueError(f"vendors must be between 1 and 26, got {vendors}")
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        if not 10 <= interval <= 86400:
            raise ValueError(f"interval must be 10 to 86400 seconds, got {interval}")
        self.seed = seed
        self.interval = interval
        self.epoch = epoch
        self.rates = rates or Rates()
        self.vendors = [f"vendor-{chr(ord('a') + i)}" for i in range(vendors)]
        self.regions = [region[0] for region in REGIONS]
        self.devices = [self._make_device(index) for index in range(devices)]
        self._cycles: dict[int, tuple[int, tuple[float, tuple[float, ...]]]] = {}
        self._levels: dict[tuple[Any, ...], StockLevel] = {}
        self._by_vendor: dict[int, list[SimDevice]] = defaultdict(list)
        self._by_region: dict[int, list[SimDevice]] = defaultdict(list)
        for device in self.devices:
            self._by_vendor[device.vendor_index].append(device)
            self._by_region[device.region_index].append(device)

    # ----------------------------------------------------------------------- devices

    def _u(self, *keys: int) -> float:
        return _uniform(self.seed, *keys)

    def _make_device(self, index: int) -> SimDevice:
        shares = [
            _VENDOR_SHARES[i] if i < len(_VENDOR_SHARES) else 0.05 for i in range(len(self.vendors))
        ]
        vendor_index = _pick(shares, self._u(_DEVICE, index, 1))
        region_index = _pick([r[2] for r in REGIONS], self._u(_DEVICE, index, 2))
        city, code, _, districts = REGIONS[region_index]
        district = districts[int(self._u(_DEVICE, index, 3) * len(districts))]
        road = _ROADS[int(self._u(_DEVICE, index, 4) * len(_ROADS))]
        place = _PLACES[int(self._u(_DEVICE, index, 5) * len(_PLACES))]
        number = 1 + int(self._u(_DEVICE, index, 6) * 400)
        last_vendor = vendor_index == len(self.vendors) - 1 and len(self.vendors) > 1
        interval = self.interval * 2 if last_vendor else self.interval
        letter = chr(ord("A") + vendor_index)
        count = 2 + int(self._u(_DEVICE, index, 7) * 3)
        first = int(self._u(_DEVICE, index, 8) * len(PRODUCTS))
        refill_days = 3 + self._u(_DEVICE, index, 9) * 11
        items = []
        for slot in range(count):
            product_code, name = PRODUCTS[(first + slot) % len(PRODUCTS)]
            capacity = 60 + int(self._u(_DEVICE, index, 20 + slot) * 140)
            low = {0: capacity // 10, 1: None}.get(vendor_index % 3, 5)
            per_day = capacity / refill_days * (0.4 + 0.6 * self._u(_DEVICE, index, 30 + slot))
            items.append(Item(product_code, name, capacity, low, per_day))
        skewed = self._u(_DEVICE, index, 10) < 0.1
        skew = (self._u(_DEVICE, index, 11) * 2 - 1) * (300 if skewed else 2)
        old_firmware = self._u(_DEVICE, index, 12) < 0.2
        return SimDevice(
            index=index,
            device_id=f"ZJ-{code}-{letter}-{index + 1:06d}",
            vendor=self.vendors[vendor_index],
            vendor_index=vendor_index,
            region=city,
            region_index=region_index,
            address=f"{city}{district}{road}{number}号{place}",
            interval=interval,
            # The last vendor's devices beat half as often and say so; vendor-b's devices
            # beat at the usual interval without saying it.
            announces_interval=last_vendor or vendor_index != 1,
            phase=self._u(_DEVICE, index, 13) * interval,
            skew=skew,
            items=tuple(items),
            refill_days=refill_days,
            refill_phase=self._u(_DEVICE, index, 14) * refill_days * 86400,
            flaky=self._u(_DEVICE, index, 15) < self.rates.flaky_share,
            firmware=f"{letter}-{2 if old_firmware else 3}.{index % 3}.{1 + index % 7}",
            warmth=(self._u(_TEMP, index) - 0.5) * 6,
        )

    def registry_csv(self, site: str = "") -> str:
        """Return the simulated devices as a registry CSV (``device_id,vendor,region,site,
        address``), as a vendor would hand it over."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["device_id", "vendor", "region", "site", "address"])
        for device in self.devices:
            writer.writerow([device.device_id, device.vendor, device.region, site, device.address])
        return out.getvalue()

    # ----------------------------------------------------------------------- episodes

    def _seconds(self, at: datetime) -> float:
        return (at - self.epoch).total_seconds()

    def _hourly(
        self, tag: int, key: int, rate: float, start: float, end: float, low: float, high: float
    ) -> list[_Episode]:
        """Episodes drawn per hour slot (at most one per slot) that overlap [start, end)."""
        found = []
        first = math.floor((start - high) / 3600)
        for slot in range(first, math.floor(end / 3600) + 1):
            if self._u(tag, key, slot, 0) >= rate:
                continue
            begin = slot * 3600 + self._u(tag, key, slot, 1) * 3600
            finish = begin + _log_uniform(low, high, self._u(tag, key, slot, 2))
            if finish > start and begin < end:
                code = list(FAULTS)[int(self._u(tag, key, slot, 3) * len(FAULTS))]
                found.append(_Episode(begin, finish, code))
        return found

    def _daily(
        self, tag: int, key: int, rate: float, start: float, end: float, low: float, high: float
    ) -> list[_Episode]:
        """Episodes drawn per day slot (at most one per slot) that overlap [start, end)."""
        found = []
        first = math.floor((start - high) / 86400)
        for slot in range(first, math.floor(end / 86400) + 1):
            if self._u(tag, key, slot, 0) >= rate:
                continue
            begin = slot * 86400 + self._u(tag, key, slot, 1) * 86400
            finish = begin + _log_uniform(low, high, self._u(tag, key, slot, 2))
            if finish > start and begin < end:
                found.append(_Episode(begin, finish))
        return found

    def _episodes(
        self, start: float, end: float
    ) -> tuple[dict[int, list[_Episode]], dict[int, list[_Episode]]]:
        """Each device's silences and faults overlapping [start, end), sorted by start."""
        rates = self.rates
        regions = {
            index: self._daily(_REGION, index, rates.region_outage_per_day, start, end, 600, 10800)
            for index in self._by_region
        }
        vendors = {
            index: self._daily(_VENDOR, index, rates.vendor_outage_per_day, start, end, 300, 7200)
            for index in self._by_vendor
        }
        silences: dict[int, list[_Episode]] = {}
        faults: dict[int, list[_Episode]] = {}
        for device in self.devices:
            factor = rates.flaky_factor if device.flaky else 1.0
            own = self._hourly(
                _OUTAGE, device.index, rates.outage_per_hour * factor, start, end, 120, 21600
            )
            dead = self._daily(
                _DEAD, device.index, rates.dead_per_day, start, end, 86400, 4 * 86400
            )
            silences[device.index] = sorted(
                [*own, *dead, *regions[device.region_index], *vendors[device.vendor_index]],
                key=lambda episode: episode.start,
            )
            faults[device.index] = self._hourly(
                _FAULT, device.index, rates.fault_per_hour * factor, start, end, 600, 28800
            )
        return silences, faults

    # ----------------------------------------------------------------------- heartbeats

    def heartbeats_between(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, str, Heartbeat]]:
        """Given a period [start, end), yield (arrival time, vendor, heartbeat) for every
        heartbeat sent in it, in time order. Raise ValueError if a time is naive."""
        for at in (start, end):
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError(f"expected a timezone-aware time, got {at.isoformat()}")
        begin, finish = self._seconds(start), self._seconds(end)
        chunk = 3600.0
        cursor = begin
        while cursor < finish:
            stop = min(cursor + chunk, finish)
            yield from self._chunk(cursor, stop)
            cursor = stop

    def _chunk(self, start: float, end: float) -> Iterator[tuple[datetime, str, Heartbeat]]:
        silences, faults = self._episodes(start, end)
        due: list[tuple[float, int]] = []
        for device in self.devices:
            first = math.ceil((start - device.phase) / device.interval) - 1
            beat = first
            while True:
                at = device.phase + beat * device.interval + self._jitter(device, beat)
                if at >= end:
                    break
                if at >= start and not _inside(silences[device.index], at):
                    due.append((at, device.index))
                beat += 1
        due.sort()
        for at, index in due:
            device = self.devices[index]
            when = self.epoch + timedelta(seconds=at)
            yield when, device.vendor, self._heartbeat(device, at, faults[index])

    def snapshot(self, at: datetime) -> Iterator[tuple[datetime, str, Heartbeat]]:
        """Given a moment, yield a heartbeat from every device that is not silent then (what
        a server hears first when the simulation starts)."""
        seconds = self._seconds(at)
        silences, faults = self._episodes(seconds, seconds + 1)
        for device in self.devices:
            if not _inside(silences[device.index], seconds):
                yield at, device.vendor, self._heartbeat(device, seconds, faults[device.index])

    def _jitter(self, device: SimDevice, beat: int) -> float:
        return self._u(_JITTER, device.index, beat) * min(5.0, device.interval / 10)

    def _cycle(self, device: SimDevice, cycle: int) -> tuple[float, tuple[float, ...]]:
        """A refill cycle's maintenance visit length (seconds) and each item's take rate."""
        held = self._cycles.get(device.index)
        if held is None or held[0] != cycle:
            visit = 900 + 900 * self._u(_RATE, device.index, cycle, 99)
            rates = tuple(
                item.per_day * (0.6 + 0.8 * self._u(_RATE, device.index, cycle, slot)) / 86400
                for slot, item in enumerate(device.items)
            )
            held = self._cycles[device.index] = (cycle, (visit, rates))
        return held[1]

    def _stock(self, item: Item, level: int) -> StockLevel:
        key = (item.code, item.name, level, item.capacity, item.low)
        found = self._levels.get(key)
        if found is None:
            found = self._levels[key] = StockLevel(
                item=item.code, name=item.name, level=level, capacity=item.capacity, low=item.low
            )
        return found

    def _heartbeat(self, device: SimDevice, at: float, faults: list[_Episode]) -> Heartbeat:
        fault = next((e for e in faults if e.start <= at < e.end), None) if faults else None
        cycle_length = device.refill_days * 86400
        cycle = math.floor((at - device.refill_phase) / cycle_length)
        since_refill = at - (device.refill_phase + cycle * cycle_length)
        visit, rates = self._cycle(device, cycle)
        maintenance = since_refill < visit
        stock = [
            self._stock(item, max(0, item.capacity - int(rate * since_refill)))
            for item, rate in zip(device.items, rates, strict=True)
        ]
        hour = ((at / 3600) + 8) % 24  # local time of day
        temperature = 22 + 6 * math.sin((hour - 9) / 24 * 2 * math.pi) + device.warmth
        status, code, message = "ok", None, None
        if fault is not None:
            status, code, message = "fault", fault.code, FAULTS[fault.code]
            if fault.code == "E07":
                temperature = 45 + 7 * self._u(_TEMP, device.index, int(at // 60))
        elif maintenance:
            status = "maintenance"
        timestamp = (self.epoch + timedelta(seconds=at + device.skew)).astimezone(CHINA)
        return Heartbeat(
            device_id=device.device_id,
            timestamp=timestamp,
            status=status,
            fault_code=code,
            fault_message=message,
            stock=stock,
            temperature=round(temperature, 1),
            door="open" if maintenance and fault is None else "closed",
            firmware=device.firmware,
            interval=device.interval if device.announces_interval else None,
            region=device.region,
            address=device.address,
        )


def _inside(episodes: list[_Episode], at: float) -> bool:
    """True if ``at`` falls in one of these episodes (sorted by start)."""
    for episode in episodes:
        if episode.start > at:
            return False
        if at < episode.end:
            return True
    return False


# --------------------------------------------------------------------------- the live driver


@dataclass
class LiveReport:
    """What a live run sent and what the server answered."""

    sent: int = 0
    accepted: int = 0
    stale: int = 0
    flips: int = 0
    batches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests

    def percentile(self, share: float) -> float | None:
        """Given a share (0.99), return that percentile of the latencies in seconds, or None
        without any (nearest rank)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(0, math.ceil(share * len(ordered)) - 1)
        return ordered[rank]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this report (latencies in milliseconds)."""
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "stale": self.stale,
            "flips": self.flips,
            "batches": self.batches,
            "errors": dict(self.errors),
            "latency_ms": {
                name: None if value is None else round(value * 1000, 1)
                for name, value in (
                    ("p50", self.percentile(0.5)),
                    ("p95", self.percentile(0.95)),
                    ("p99", self.percentile(0.99)),
                    ("max", max(self.latencies, default=None)),
                )
            },
        }

    def describe(self) -> str:
        """One line: ``sent 3000 heartbeats in 6 batches: 3000 accepted, 0 stale ...``."""
        latency = self.to_dict()["latency_ms"]
        text = (
            f"sent {self.sent} heartbeats in {self.batches} batches: {self.accepted} accepted, "
            f"{self.stale} stale, {self.flips} flips, "
            f"{sum(self.errors.values())} batches failed"
        )
        if latency["p50"] is not None:
            text += (
                f"; latency p50 {latency['p50']}ms, p95 {latency['p95']}ms, p99 {latency['p99']}ms"
            )
        return text


def parse_tokens(values: Sequence[str], environment: Mapping[str, str]) -> dict[str, str]:
    """Given ``VENDOR=TOKEN`` options and the environment (``OPSCTL_VENDOR_TOKENS``:
    ``vendor-a=...,vendor-b=...``), return each vendor's token, options winning. Raise
    ValueError naming the malformed entry (never its token)."""
    tokens: dict[str, str] = {}
    entries = [e for e in environment.get("OPSCTL_VENDOR_TOKENS", "").split(",") if e.strip()]
    for source, entry in [("OPSCTL_VENDOR_TOKENS", e) for e in entries] + [
        ("--token", v) for v in values
    ]:
        vendor, separator, token = entry.strip().partition("=")
        if not separator or not vendor.strip() or not token.strip():
            shown = vendor.strip() or "(empty)"
            raise ValueError(f"{source}: expected VENDOR=TOKEN, got an entry for {shown}")
        tokens[vendor.strip()] = token.strip()
    return tokens


def drive(
    simulator: Simulator,
    server: str,
    tokens: Mapping[str, str],
    duration: timedelta,
    *,
    session: Any = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timer: Callable[[], float] = time.perf_counter,
    tick: timedelta = timedelta(seconds=5),
    timeout: float = 10.0,
    batch_size: int = MAX_HEARTBEATS,
    attempts: int = 3,
    progress: Callable[[LiveReport], None] | None = None,
) -> LiveReport:
    """Run the simulation live against a server for ``duration``: first one heartbeat from
    every device that is up, then every heartbeat as it falls due, posted every ``tick`` in
    batches of up to ``batch_size`` per vendor with ``Authorization: Bearer TOKEN``.

    A batch that times out, cannot connect or gets a 5xx answer is retried (``attempts`` in
    all, with a growing pause); other answers are final. Return the report. Raise ValueError,
    before sending anything, if a vendor has no token.
    """
    import requests

    missing = [vendor for vendor in simulator.vendors if vendor not in tokens]
    if missing:
        raise ValueError(
            f"no token for {', '.join(missing)}: give --token VENDOR=TOKEN for each vendor "
            "(or OPSCTL_VENDOR_TOKENS)"
        )
    clock = clock or (lambda: datetime.now(UTC))
    http = session or requests.Session()
    url = server.rstrip("/") + HEARTBEATS_PATH
    report = LiveReport()
    started = clock()
    finish = started + duration

    def send(heartbeats: list[tuple[datetime, str, Heartbeat]]) -> None:
        by_vendor: dict[str, list[Heartbeat]] = defaultdict(list)
        for _, vendor, heartbeat in heartbeats:
            by_vendor[vendor].append(heartbeat)
        for vendor, pending in by_vendor.items():
            for first in range(0, len(pending), batch_size):
                part = pending[first : first + batch_size]
                body = HeartbeatBatch.model_construct(vendor=vendor, heartbeats=part)
                _post(http, url, tokens[vendor], body.model_dump_json(), part, report,
                      timeout=timeout, attempts=attempts, sleep=sleep, timer=timer)  # fmt: skip
        if progress is not None:
            progress(report)

    send(list(simulator.snapshot(started)))
    cursor = started
    while cursor < finish:
        sleep(min(tick, finish - cursor).total_seconds())
        now = min(clock(), finish)
        if now > cursor:
            send(list(simulator.heartbeats_between(cursor, now)))
            cursor = now
    return report


def _post(
    http: Any,
    url: str,
    token: str,
    body: str,
    part: list[Heartbeat],
    report: LiveReport,
    *,
    timeout: float,
    attempts: int,
    sleep: Callable[[float], None],
    timer: Callable[[], float],
) -> None:
    import requests

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    report.sent += len(part)
    report.batches += 1
    failure = ""
    for attempt in range(attempts):
        if attempt:
            sleep(0.5 * 2 ** (attempt - 1))
        began = timer()
        try:
            answer = http.post(url, data=body.encode("utf-8"), headers=headers, timeout=timeout)
        except requests.Timeout:
            failure = "timeout"
            continue
        except requests.ConnectionError as error:
            failure = f"cannot connect: {type(error).__name__}"
            continue
        report.latencies.append(timer() - began)
        if answer.status_code >= 500:
            failure = f"HTTP {answer.status_code}"
            continue
        if answer.status_code != 200:
            report.errors[f"HTTP {answer.status_code}: {_problem(answer)}"] += 1
            return
        try:
            counts = answer.json()
            report.accepted += int(counts["accepted"])
            report.stale += int(counts["stale"])
            report.flips += int(counts["flips"])
        except (ValueError, KeyError, TypeError):
            report.errors["HTTP 200 without accepted/stale/flips counts"] += 1
        return
    report.errors[failure] += 1


def _problem(answer: Any) -> str:
    try:
        problem = answer.json()
        return str(problem.get("error") or problem.get("detail") or answer.reason)[:200]
    except ValueError:
        return str(answer.reason or "")[:200]


__all__ = [
    "FAULTS",
    "HEARTBEATS_PATH",
    "PRODUCTS",
    "REGIONS",
    "LiveReport",
    "Rates",
    "SimDevice",
    "Simulator",
    "drive",
    "parse_tokens",
]
