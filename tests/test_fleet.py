"""The dispenser fleet: the pure rules (status, transitions, availability), the store's
ingest/sweep/registry/queries on a real SQLite file and a real PostgreSQL database, and the
simulator's determinism and realism."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from opsctl.fleet import (
    AVAILABLE,
    DeviceState,
    Rule,
    Rules,
    availability,
    describe_counts,
    down_seconds,
    judge,
    measure,
    next_transition,
    offline_after,
    status,
    status_at,
    transitions,
)
from opsctl.fleet_sim import FAULTS, REGIONS, Rates, Simulator
from opsctl.inventory import load
from opsctl.server.schemas import Heartbeat, HeartbeatBatch
from opsctl.store import Store, fleet as store_fleet
from opsctl.store.fleet import (
    ForeignDevice,
    RegistryInvalid,
    availability_by,
    current,
    device,
    flapping,
    flips,
    ingest,
    latest_reasons,
    load_registry,
    read_registry,
    summary,
    sweep,
    vendor_last_heartbeat,
)

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
RULE = Rule(
    site="zj-fleet",
    fleet="dispensers",
    interval=timedelta(minutes=1),
    grace=timedelta(seconds=30),
    offline_after=timedelta(minutes=5),
    low_stock=10,
)
RULES = Rules({"vendor-a": RULE, "vendor-b": RULE, "vendor-c": RULE})


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def state(
    *,
    status_: str = "online",
    last: datetime | None = T0,
    interval: float | None = None,
    reported: str = "ok",
    code: str | None = None,
    message: str | None = None,
    stock: tuple[dict[str, Any], ...] = (),
) -> DeviceState:
    return DeviceState(
        device_id="ZJ-3301-A-000001",
        vendor="vendor-a",
        status=status_,
        last_heartbeat=last,
        interval=interval,
        reported_status=reported,
        fault_code=code,
        fault_message=message,
        stock=stock,
    )


def item(level: int, low: int | None = None, name: str = "左炔诺孕酮") -> dict[str, Any]:
    return {"item": "LNG", "name": name, "level": level, "capacity": 100, "low": low}


# --------------------------------------------------------------------------- pure: status

STATUS_CASES = [
    # (silence, device, expected status, words in the reason)
    (s(0), state(), "online", "heartbeat received"),
    (s(89), state(), "online", "heartbeat received"),
    (s(90), state(), "online", "heartbeat received"),  # at the very instant: still in time
    (s(90.001), state(), "late", "late after 1m + 30s grace"),
    (s(300), state(), "late", "no heartbeat for 5m"),
    (s(300.001), state(), "offline", "offline after 5m"),
    (timedelta(hours=3), state(), "offline", "no heartbeat for 3h"),
    (
        s(0),
        state(reported="fault", code="E12", message="通讯板异常"),
        "faulty",
        "fault E12: 通讯板异常",
    ),
    (
        s(0),
        state(reported="ok", code="E01", message="出药口卡住"),
        "faulty",
        "fault E01: 出药口卡住",
    ),
    (s(0), state(reported="fault"), "faulty", "fault"),
    (s(0), state(reported="ok", code="  "), "online", "heartbeat received"),
    (s(200), state(reported="fault", code="E07"), "faulty", "fault E07"),  # faulty while overdue
    (s(301), state(reported="fault", code="E07"), "offline", "offline after 5m"),
    (s(0), state(reported="maintenance"), "faulty", "maintenance"),
    (s(0), state(stock=(item(10),)), "low-stock", "stock low: 左炔诺孕酮 10 ≤ 10"),
    (s(0), state(stock=(item(11),)), "online", "heartbeat received"),
    (s(0), state(stock=(item(3, low=5),)), "low-stock", "stock low: 左炔诺孕酮 3 ≤ 5"),
    (s(0), state(stock=(item(6, low=5),)), "online", "heartbeat received"),  # its own mark wins
    (s(0), state(stock=(item(0, name=""),)), "low-stock", "stock low: LNG 0 ≤ 10"),
    (s(100), state(stock=(item(1),)), "late", "late after"),
    (s(0), state(reported="fault", code="E01", stock=(item(0),)), "faulty", "fault E01"),
    # A device announcing a 10-minute interval: late after 10m30s, offline after 14m.
    (s(630), state(interval=600), "online", "heartbeat received"),
    (s(631), state(interval=600), "late", "late after 10m + 30s grace"),
    (s(840), state(interval=600), "late", "late after"),
    (s(841), state(interval=600), "offline", "offline after 14m"),
    # A 30-second interval: late after 60 s, never offline before offline_after.
    (s(61), state(interval=30), "late", "late after 30s + 30s grace"),
    (s(300), state(interval=30), "late", "late after"),
    (s(301), state(interval=30), "offline", "offline after 5m"),
]


@pytest.mark.parametrize(("silence", "device_", "expected", "words"), STATUS_CASES)
def test_status_at_the_boundaries(
    silence: timedelta, device_: DeviceState, expected: str, words: str
) -> None:
    found, reason = judge(device_, RULE, T0 + silence)
    assert found == expected
    assert words in reason
    assert status(device_, RULE, T0 + silence) == expected


def test_a_device_never_heard_from_is_unknown() -> None:
    assert judge(state(status_="unknown", last=None), RULE, T0) == ("unknown", "no heartbeat yet")
    assert next_transition(state(status_="unknown", last=None), RULE) is None


def test_offline_after_is_stretched_for_a_longer_announced_interval() -> None:
    assert offline_after(state(), RULE) == timedelta(minutes=5)
    assert offline_after(state(interval=600), RULE) == timedelta(minutes=14)
    assert offline_after(state(interval=20), RULE) == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("device_", "expected"),
    [
        (state(status_="online"), T0 + s(90)),
        (state(status_="low-stock", stock=(item(1),)), T0 + s(90)),
        (state(status_="late"), T0 + s(300)),
        (state(status_="faulty", reported="fault", code="E01"), T0 + s(300)),
        (state(status_="offline"), None),
        (state(status_="online", interval=600), T0 + s(630)),
    ],
)
def test_next_transition(device_: DeviceState, expected: datetime | None) -> None:
    assert next_transition(device_, RULE) == expected


def test_transitions_are_stamped_at_their_exact_moments() -> None:
    silent = state(status_="online")
    found = transitions(silent, RULE, T0 + timedelta(minutes=20))
    assert [(f.at, f.from_status, f.to_status) for f in found] == [
        (T0 + s(90), "online", "late"),
        (T0 + s(300), "late", "offline"),
    ]
    assert found[0].reason == "no heartbeat for 1m 30s (late after 1m + 30s grace)"
    assert found[1].reason == "no heartbeat for 5m (offline after 5m)"
    # Up to the boundary itself nothing has happened yet; just after it, it has.
    assert transitions(silent, RULE, T0 + s(90)) == []
    assert [f.to_status for f in transitions(silent, RULE, T0 + s(90.000001))] == ["late"]
    # Silence never moves a device back, whatever status it is stored with.
    assert transitions(state(status_="offline"), RULE, T0 + timedelta(hours=1)) == []
    late = transitions(state(status_="late"), RULE, T0 + timedelta(hours=1))
    assert [(f.from_status, f.to_status) for f in late] == [("late", "offline")]
    faulty = state(status_="faulty", reported="fault", code="E01")
    assert [(f.from_status, f.to_status) for f in transitions(faulty, RULE)] == [
        ("faulty", "offline")
    ]
    assert status_at(silent, RULE, T0 + s(200)) == ("late", T0 + s(90))
    assert status_at(silent, RULE, T0 + s(60)) == ("online", None)


def test_a_rule_whose_offline_after_is_too_short_is_refused() -> None:
    with pytest.raises(ValueError, match="offline_after"):
        Rule("s", "f", timedelta(minutes=1), timedelta(seconds=30), timedelta(seconds=90))


# --------------------------------------------------------------------------- pure: availability


def flip(minutes: float, to_status: str) -> dict[str, Any]:
    return {"at": T0 + timedelta(minutes=minutes), "to_status": to_status}


HISTORY = [
    flip(0, "online"),
    flip(10, "faulty"),
    flip(20, "late"),
    flip(25, "offline"),
    flip(30, "online"),
]


@pytest.mark.parametrize(
    ("start", "end", "up", "down", "unknown"),
    [
        (0, 40, 25 * 60, 15 * 60, 0),
        (5, 15, 5 * 60, 5 * 60, 0),  # status at the start is the last flip before it
        (10, 20, 0, 10 * 60, 0),  # a flip at the start counts from the start
        (-10, 10, 10 * 60, 0, 10 * 60),  # before the first flip: unknown
        (20, 25, 5 * 60, 0, 0),  # late dispenses; the flip at the end is not in the period
        (26, 26, 0, 0, 0),
    ],
)
def test_availability_over_a_period_is_exact(
    start: float, end: float, up: float, down: float, unknown: float
) -> None:
    window = (T0 + timedelta(minutes=start), T0 + timedelta(minutes=end))
    measured = measure(list(reversed(HISTORY)), *window)  # any order
    assert (measured.up, measured.down, measured.unknown) == (up, down, unknown)
    assert down_seconds(HISTORY, *window) == down
    ratio = availability(HISTORY, *window)
    if up + down:
        assert ratio == pytest.approx(up / (up + down))
    else:
        assert math.isnan(ratio)


def test_availability_of_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        measure(HISTORY, T0 + timedelta(minutes=5), T0)


def test_available_statuses_are_those_that_dispense() -> None:
    assert AVAILABLE == {"online", "late", "low-stock"}
    assert describe_counts({"online": 1930, "offline": 42, "faulty": 12, "low-stock": 16}) == (
        "2,000 devices: 1,930 online, 42 offline (2.1%), 12 faulty, 16 low stock"
    )


# --------------------------------------------------------------------------- rules from an inventory


def test_rules_from_an_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        """
sites:
  - name: hangzhou
    fleets:
      - name: city
        vendors: [vendor-a, vendor-b]
        interval: 2m
        grace: 1m
        offline_after: 10m
        low_stock: 4
  - name: ningbo
    fleets:
      - name: city
        vendors: [vendor-b, vendor-c]
      - name: retired
        enabled: false
        vendors: [vendor-d]
  - name: closed
    enabled: false
    fleets:
      - name: old
        vendors: [vendor-e]
""",
        encoding="utf-8",
    )
    rules = Rules.from_inventory(load(path))
    assert rules.vendors == ["vendor-a", "vendor-b", "vendor-c"]
    assert rules.rule_for("vendor-a") == Rule(
        "hangzhou", "city", timedelta(minutes=2), timedelta(minutes=1), timedelta(minutes=10), 4
    )
    assert rules.rule_for("vendor-b").site == "hangzhou"  # the first fleet listing it
    assert rules.rule_for("vendor-c").site == "ningbo"
    assert rules.rule_for("vendor-d").site == ""  # disabled fleet
    assert rules.rule_for("vendor-e") == rules.default


# --------------------------------------------------------------------------- the store


def heartbeat(
    device_id: str,
    at: datetime,
    reported: str = "ok",
    **fields: Any,
) -> Heartbeat:
    return Heartbeat(device_id=device_id, timestamp=at, status=reported, **fields)


def batch(vendor: str, *heartbeats: Heartbeat) -> HeartbeatBatch:
    return HeartbeatBatch(vendor=vendor, heartbeats=list(heartbeats))


def flip_list(store: Store, device_id: str) -> list[tuple[datetime, str | None, str]]:
    return [
        (f.at, f.from_status, f.to_status) for f in flips(store, device_id, T0 - timedelta(days=1))
    ]


def test_ingest_learns_new_devices(store: Store) -> None:
    accepted = ingest(
        store,
        batch(
            "vendor-a",
            heartbeat(
                "ZJ-3301-A-000001",
                T0,
                region="杭州市西湖区",
                address="文三路 118 号",
                stock=[{"item": "LNG", "name": "左炔诺孕酮", "level": 40, "low": 5}],
                temperature=23.5,
                door="closed",
                firmware="A-3.1.2",
                interval=60,
            ),
            heartbeat(
                "ZJ-3301-A-000002", T0, "fault", fault_code="E01", fault_message="出药口卡住"
            ),
        ),
        RULES,
        T0 + s(2),
    )
    assert (accepted.accepted, accepted.stale, accepted.flips) == (2, 0, 2)
    first = device(store, "ZJ-3301-A-000001")
    assert first is not None
    assert (first.vendor, first.site, first.region, first.address) == (
        "vendor-a",
        "zj-fleet",
        "杭州市西湖区",
        "文三路 118 号",
    )
    assert first.registered is False
    assert (first.first_seen, first.last_heartbeat, first.last_reported) == (
        T0 + s(2),
        T0 + s(2),
        T0,
    )
    assert (first.heartbeats, first.status, first.status_since) == (1, "online", T0 + s(2))
    assert first.stock == [
        {"item": "LNG", "name": "左炔诺孕酮", "level": 40, "capacity": None, "low": 5}
    ]
    assert (first.temperature, first.door, first.firmware, first.interval) == (
        23.5,
        "closed",
        "A-3.1.2",
        60.0,
    )
    second = flips(store, "ZJ-3301-A-000002", T0)
    assert [(f.from_status, f.to_status, f.reason) for f in second] == [
        (None, "faulty", "fault E01: 出药口卡住")
    ]
    assert flips(store, "ZJ-3301-A-000001", T0)[0].reason == "first heartbeat"
    assert device(store, "ZJ-NOPE") is None


def test_a_heartbeat_not_newer_than_the_last_one_is_stale(store: Store) -> None:
    ingest(store, batch("vendor-a", heartbeat("D-1", T0 + s(60))), RULES, T0 + s(61))
    again = ingest(
        store,
        batch("vendor-a", heartbeat("D-1", T0 + s(60), "fault"), heartbeat("D-1", T0, "fault")),
        RULES,
        T0 + s(120),
    )
    assert (again.accepted, again.stale, again.flips) == (0, 2, 0)
    row = device(store, "D-1")
    assert row is not None
    assert (row.heartbeats, row.last_heartbeat, row.reported_status, row.status) == (
        1,
        T0 + s(61),
        "ok",
        "online",
    )


def test_several_heartbeats_of_one_device_in_a_batch_apply_in_order(store: Store) -> None:
    accepted = ingest(
        store,
        batch(
            "vendor-a",
            heartbeat("D-2", T0 + s(20), "ok"),
            heartbeat("D-2", T0 + s(10), "fault", fault_code="E07", fault_message="温度过高"),
            heartbeat("D-2", T0, "ok"),
        ),
        RULES,
        T0 + s(30),
    )
    assert (accepted.accepted, accepted.stale, accepted.flips) == (3, 0, 3)
    assert [(f.from_status, f.to_status, f.reason) for f in flips(store, "D-2", T0)] == [
        (None, "online", "first heartbeat"),
        ("online", "faulty", "fault E07: 温度过高"),
        ("faulty", "online", "heartbeat received"),
    ]
    row = device(store, "D-2")
    assert row is not None and row.heartbeats == 3 and row.last_reported == T0 + s(20)


def test_a_device_of_another_vendor_is_refused_and_nothing_is_written(store: Store) -> None:
    ingest(store, batch("vendor-a", heartbeat("D-3", T0)), RULES, T0)
    with pytest.raises(ForeignDevice) as raised:
        ingest(
            store,
            batch("vendor-b", heartbeat("D-new", T0 + s(60)), heartbeat("D-3", T0 + s(60))),
            RULES,
            T0 + s(60),
        )
    assert raised.value.device_ids == ["D-3"]
    assert "D-3" in str(raised.value)
    assert device(store, "D-new") is None
    row = device(store, "D-3")
    assert row is not None and (row.vendor, row.heartbeats) == ("vendor-a", 1)


def test_ingest_writes_the_flips_of_a_silence_at_their_exact_moments(store: Store) -> None:
    ingest(store, batch("vendor-a", heartbeat("D-4", T0)), RULES, T0)
    result = ingest(
        store,
        batch("vendor-a", heartbeat("D-4", T0 + timedelta(minutes=20))),
        RULES,
        T0 + timedelta(minutes=20),
    )
    assert result.flips == 3
    assert flip_list(store, "D-4") == [
        (T0, None, "online"),
        (T0 + s(90), "online", "late"),
        (T0 + s(300), "late", "offline"),
        (T0 + timedelta(minutes=20), "offline", "online"),
    ]


def test_sweep_writes_late_and_offline_once(store: Store) -> None:
    now = T0 + timedelta(minutes=20)
    ingest(store, batch("vendor-a", heartbeat("S-silent", T0)), RULES, T0)
    ingest(store, batch("vendor-a", heartbeat("S-late", now - s(120))), RULES, now - s(120))
    ingest(store, batch("vendor-a", heartbeat("S-fresh", now - s(10))), RULES, now - s(10))
    ingest(
        store,
        batch("vendor-a", heartbeat("S-faulty", now - s(120), "fault", fault_code="E01")),
        RULES,
        now - s(120),
    )
    assert sweep(store, RULES, now) == 3
    assert sweep(store, RULES, now) == 0
    assert flip_list(store, "S-silent")[1:] == [
        (T0 + s(90), "online", "late"),
        (T0 + s(300), "late", "offline"),
    ]
    assert flip_list(store, "S-late")[1:] == [(now - s(30), "online", "late")]
    assert flip_list(store, "S-fresh")[1:] == []
    assert flip_list(store, "S-faulty")[1:] == []
    silent = device(store, "S-silent")
    assert silent is not None and (silent.status, silent.status_since) == ("offline", T0 + s(300))
    later = now + timedelta(minutes=10)
    # S-late and S-faulty go offline; S-fresh goes late, then offline.
    assert sweep(store, RULES, later) == 4
    assert flip_list(store, "S-faulty")[1:] == [(now + s(180), "faulty", "offline")]
    # The heartbeat after the sweep's flips writes only its own.
    result = ingest(store, batch("vendor-a", heartbeat("S-silent", later)), RULES, later)
    assert result.flips == 1
    assert flip_list(store, "S-silent")[-1] == (later, "offline", "online")


def test_two_servers_sweeping_at_once_write_each_flip_once(store_url: str) -> None:
    with Store.open(store_url) as first:
        beats = [heartbeat(f"R-{n:04d}", T0) for n in range(300)]
        ingest(first, HeartbeatBatch(vendor="vendor-a", heartbeats=beats), RULES, T0)
    stores = [Store.open(store_url) for _ in range(3)]
    written: list[int] = []
    barrier = threading.Barrier(len(stores))

    def run(each: Store) -> None:
        barrier.wait()
        written.append(sweep(each, RULES, T0 + timedelta(hours=1)))

    threads = [threading.Thread(target=run, args=(each,)) for each in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sum(written) == 600
        with stores[0].engine.connect() as connection:
            counts = connection.execute(
                text(
                    "SELECT to_status, count(*) FROM device_flips "
                    "WHERE device_id LIKE 'R-%' GROUP BY to_status ORDER BY to_status"
                )
            ).all()
        assert [tuple(row) for row in counts] == [("late", 300), ("offline", 300), ("online", 300)]
    finally:
        for each in stores:
            each.close()


def test_ingest_takes_the_same_few_statements_for_ten_or_a_thousand_heartbeats(
    store: Store,
) -> None:
    stock = [{"item": "LNG", "name": "左炔诺孕酮", "level": 40, "low": 5}]

    def statements(prefix: str, size: int) -> list[str]:
        ids = [f"{prefix}-{n:04d}" for n in range(size)]
        beats = [heartbeat(i, T0, stock=stock) for i in ids]
        ingest(store, HeartbeatBatch(vendor="vendor-a", heartbeats=beats), RULES, T0)
        seen: list[str] = []

        def count(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement.split()[0].upper())

        # Every device beats again: one of them with a fault (one flip), the rest unchanged.
        beats = [heartbeat(i, T0 + s(60), stock=stock) for i in ids[1:]]
        beats.append(heartbeat(ids[0], T0 + s(60), "fault", fault_code="E01"))
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            result = ingest(
                store, HeartbeatBatch(vendor="vendor-a", heartbeats=beats), RULES, T0 + s(60)
            )
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        assert (result.accepted, result.flips) == (size, 1)
        row = device(store, ids[-1])
        assert row is not None and row.heartbeats == 2
        return seen

    small, large = statements("small", 10), statements("large", 1000)
    assert small == large
    # The devices read in one query, written in one or two (PostgreSQL copies them in).
    assert large[0] in ("SELECT", "BEGIN") and len(large) <= 4, large


def test_ingest_keeps_up_with_ten_thousand_devices(store: Store) -> None:
    """10,000 devices beating once a minute arrive as 10 batches of 1000 a minute."""
    ids = [f"P-{n:05d}" for n in range(10_000)]
    stock = [
        {"item": "C-M", "name": "避孕套(中号)", "level": 80, "capacity": 120, "low": 12},
        {"item": "LNG", "name": "左炔诺孕酮片", "level": 40, "capacity": 60, "low": 6},
    ]

    def minute(n: int) -> list[HeartbeatBatch]:
        at = T0 + timedelta(minutes=n)
        return [
            HeartbeatBatch(
                vendor="vendor-a",
                heartbeats=[
                    heartbeat(
                        i, at, region="杭州市", address="文三路 118 号", stock=stock, interval=60
                    )
                    for i in ids[k : k + 1000]
                ],
            )
            for k in range(0, 10_000, 1000)
        ]

    for each in minute(0):
        ingest(store, each, RULES, T0)
    latencies = []
    for n in (1, 2, 3):
        for each in minute(n):
            began = time.perf_counter()
            result = ingest(store, each, RULES, T0 + timedelta(minutes=n, seconds=1))
            latencies.append(time.perf_counter() - began)
            assert result.accepted == 1000
    latencies.sort()
    # About 50-80 ms on two shared cores; the bound leaves room for a busy machine.
    assert latencies[len(latencies) // 2] < 0.25, latencies


def test_summary_judges_now_without_a_sweep(store: Store) -> None:
    ingest(
        store,
        batch(
            "vendor-a",
            heartbeat("Q-1", T0, region="杭州市"),
            heartbeat("Q-2", T0, region="杭州市"),
            heartbeat("Q-3", T0, region="宁波市", stock=[{"item": "LNG", "level": 1}]),
        ),
        RULES,
        T0,
    )
    ingest(store, batch("vendor-b", heartbeat("Q-4", T0, "fault", region="杭州市")), RULES, T0)
    ingest(
        store, batch("vendor-a", heartbeat("Q-1", T0 + s(200), region="杭州市")), RULES, T0 + s(200)
    )
    rows = summary(store, RULES, T0 + s(240))
    assert [(r.vendor, r.region, r.status, r.devices) for r in rows] == [
        ("vendor-a", "宁波市", "late", 1),
        ("vendor-a", "杭州市", "online", 1),
        ("vendor-a", "杭州市", "late", 1),
        ("vendor-b", "杭州市", "faulty", 1),
    ]
    later = summary(store, RULES, T0 + s(400), vendor="vendor-a")
    assert [(r.region, r.status, r.devices) for r in later] == [
        ("宁波市", "offline", 1),
        ("杭州市", "late", 1),
        ("杭州市", "offline", 1),
    ]
    assert [r.devices for r in summary(store, RULES, T0, region="宁波市")] == [1]
    assert summary(store, RULES, T0, site="elsewhere") == []
    now_rows = {r.device_id: r for r in current(store, RULES, T0 + s(400))}
    assert (now_rows["Q-2"].status, now_rows["Q-2"].since) == ("offline", T0 + s(300))
    assert now_rows["Q-2"].reason == "no heartbeat for 5m (offline after 5m)"
    earlier = {r.device_id: r for r in current(store, RULES, T0 + s(240))}
    assert (earlier["Q-1"].status, earlier["Q-1"].since, earlier["Q-1"].reason) == (
        "online",
        T0 + s(200),
        None,
    )
    assert latest_reasons(store, ["Q-4", "Q-9"]) == {"Q-4": "fault"}


def test_availability_by_device_vendor_and_region(store: Store) -> None:
    # A-1 (杭州市): online from T0, silent from T0+10m (offline from T0+15m), back at T0+30m.
    # A-2 (杭州市): faulty from T0+20m (a heartbeat every minute).
    # B-1 (宁波市): first heard at T0+30m.
    for minute in range(0, 60):
        at = T0 + timedelta(minutes=minute)
        beats = []
        if minute <= 10 or minute >= 30:
            beats.append(heartbeat("A-1", at, region="杭州市"))
        beats.append(heartbeat("A-2", at, "fault" if minute >= 20 else "ok", region="杭州市"))
        ingest(store, batch("vendor-a", *beats), RULES, at)
        if minute >= 30:
            ingest(store, batch("vendor-b", heartbeat("B-1", at, region="宁波市")), RULES, at)
    start, end = T0 + timedelta(minutes=5), T0 + timedelta(minutes=45)
    by_device = {r.key: r for r in availability_by(store, start, end, "device")}
    # A-1 offline from 10m + 5m = 15m to 30m.
    assert (by_device["A-1"].up, by_device["A-1"].down) == (25 * 60, 15 * 60)
    assert (by_device["A-2"].up, by_device["A-2"].down) == (15 * 60, 25 * 60)
    assert (by_device["B-1"].up, by_device["B-1"].unknown) == (15 * 60, 25 * 60)
    assert by_device["B-1"].ratio == 1.0
    by_vendor = {r.key: r for r in availability_by(store, start, end, "vendor")}
    assert by_vendor["vendor-a"].devices == 2
    assert by_vendor["vendor-a"].ratio == pytest.approx(40 / 80)
    by_region = {
        r.key: (r.devices, r.up, r.down) for r in availability_by(store, start, end, "region")
    }
    assert by_region == {"宁波市": (1, 900.0, 0.0), "杭州市": (2, 2400.0, 2400.0)}
    assert availability_by(store, start, end, "device", site="elsewhere") == []
    # Silence not yet swept counts when the rules and the time are given.
    after = T0 + timedelta(minutes=70)
    window = (T0 + timedelta(minutes=59), T0 + timedelta(minutes=80))
    unswept = {r.key: r for r in availability_by(store, *window, "device", rules=RULES, now=after)}
    # B-1's last heartbeat at 59m: offline from 64m; the period ends at now (70m).
    assert (unswept["B-1"].up, unswept["B-1"].down) == (5 * 60, 6 * 60)
    plain = {r.key: r for r in availability_by(store, *window, "device")}
    assert (plain["B-1"].up, plain["B-1"].down) == (21 * 60, 0)
    with pytest.raises(ValueError, match="device, vendor or region"):
        availability_by(store, start, end, "site")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        availability_by(store, datetime(2026, 3, 2), end, "device")  # noqa: DTZ001


def test_flapping_and_vendor_last_heartbeat(store: Store) -> None:
    at = T0
    for _ in range(4):
        ingest(store, batch("vendor-a", heartbeat("F-1", at, "fault")), RULES, at)
        at += s(30)
        ingest(store, batch("vendor-a", heartbeat("F-1", at)), RULES, at)
        at += s(30)
    ingest(store, batch("vendor-b", heartbeat("F-2", T0)), RULES, T0 + s(5))
    rows = flapping(store, T0, 6)
    assert [(r.device_id, r.vendor, r.flips) for r in rows] == [("F-1", "vendor-a", 8)]
    assert flapping(store, T0, 9) == []
    assert [r.device_id for r in flapping(store, T0, 1, vendors=["vendor-b"])] == ["F-2"]
    assert vendor_last_heartbeat(store) == {"vendor-a": at - s(30), "vendor-b": T0 + s(5)}


def test_naive_times_are_refused(store: Store) -> None:
    naive = datetime(2026, 3, 2, 8, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        ingest(store, batch("vendor-a", heartbeat("N-1", T0)), RULES, naive)
    with pytest.raises(ValueError, match="naive"):
        sweep(store, RULES, naive)
    with pytest.raises(ValueError, match="naive"):
        flips(store, "N-1", naive)


def test_the_documented_example_is_valid_and_stored(store: Store) -> None:
    document = (Path(__file__).parent.parent / "docs" / "dispenser-interface.md").read_text("utf-8")
    body = re.findall(r"```json\n(.*?)```", document, re.S)[2]
    example = HeartbeatBatch.model_validate_json(body)
    accepted = ingest(store, example, RULES, T0)
    assert (accepted.accepted, accepted.stale, accepted.flips) == (2, 0, 2)
    assert [r.status for r in current(store, RULES, T0)] == ["low-stock", "faulty"]


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "registry-utf8.csv",
            [
                ("ZJ-3301-A-000001", "vendor-a", "杭州市", "zj-fleet"),
                ("ZJ-3301-A-000002", "vendor-a", "杭州市", "from-rules"),
                ("ZJ-3302-A-000003", "vendor-a", "宁波市", "zj-fleet"),
            ],
        ),
        (
            "registry-utf8-bom.csv",
            [
                ("ZJ-3303-B-000010", "vendor-b", "温州市", "zj-fleet"),
                ("ZJ-3303-B-000011", "vendor-b", "温州市", "zj-fleet"),
            ],
        ),
        (
            "registry-gbk.csv",
            [
                ("ZJ-3306-C-000020", "vendor-c", "绍兴市", "zj-fleet"),
                ("ZJ-3306-C-000021", "vendor-c", "绍兴市", "zj-fleet"),
                ("ZJ-3307-C-000022", "vendor-c", "金华市", "zj-fleet"),
            ],
        ),
    ],
)
def test_read_registry_in_every_encoding(name: str, expected: list[tuple[str, ...]]) -> None:
    rules = Rules({"vendor-a": Rule("from-rules", "f")})
    entries = read_registry(FIXTURES / name, rules)
    assert [(e.device_id, e.vendor, e.region, e.site) for e in entries] == expected
    assert all(e.address for e in entries)


def test_read_registry_keeps_quoted_commas_and_line_numbers() -> None:
    entries = read_registry(FIXTURES / "registry-utf8.csv")
    assert entries[2].address == "宁波市鄞州区中山东路1号,计生服务站"
    assert [e.line for e in read_registry(FIXTURES / "registry-gbk.csv")] == [2, 3, 5]


def test_read_registry_names_file_line_and_column_of_every_error() -> None:
    with pytest.raises(RegistryInvalid) as raised:
        read_registry(FIXTURES / "registry-errors.csv")
    assert raised.value.errors == [
        "registry-errors.csv:3 vendor: required",
        "registry-errors.csv:4 device_id: 'ZJ 3301 A 000103' is not a device id (up to 64 "
        "letters, digits, '_', '.', ':' and '-', starting with a letter or digit)",
        "registry-errors.csv:5 device_id: ZJ-3301-A-000101 is listed twice (also line 2)",
        "registry-errors.csv:6 device_id: required",
        "registry-errors.csv:7 vendor: 'vendor a' is not a vendor name (letters, digits, '.', '_' and '-')",
        "registry-errors.csv:8: 6 values, but the header has 5 columns",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "registry.csv:1: empty; expected a header line device_id,vendor,region,site,address"),
        (b"id,name\nA,B\n", "registry.csv:1: the header has no device_id or vendor column"),
        (b"device_id,vendor\n\xff\xfe\xfa\xfb\n", "registry.csv: not UTF-8 or GBK text (byte"),
    ],
)
def test_read_registry_refuses_what_is_not_a_registry(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "registry.csv"
    path.write_bytes(content)
    with pytest.raises(RegistryInvalid) as raised:
        read_registry(path)
    assert raised.value.errors[0].startswith(message)


def test_load_registry_registers_devices_until_their_first_heartbeat(store: Store) -> None:
    assert load_registry(store, FIXTURES / "registry-utf8.csv", RULES, now=T0) == 3
    row = device(store, "ZJ-3301-A-000001")
    assert row is not None
    assert (row.registered, row.status, row.status_since, row.heartbeats) == (
        True,
        "unknown",
        T0,
        0,
    )
    assert row.address == "杭州市西湖区文三路118号社区卫生服务中心门口"
    assert [(r.region, r.status, r.devices) for r in summary(store, RULES, T0)] == [
        ("宁波市", "unknown", 1),
        ("杭州市", "unknown", 2),
    ]
    # The first heartbeat: unknown -> online; the registry's region and address stand.
    ingest(
        store,
        batch(
            "vendor-a", heartbeat("ZJ-3301-A-000001", T0, region="Hangzhou", address="elsewhere")
        ),
        RULES,
        T0 + s(5),
    )
    row = device(store, "ZJ-3301-A-000001")
    assert row is not None and (row.region, row.address, row.registered) == (
        "杭州市",
        "杭州市西湖区文三路118号社区卫生服务中心门口",
        True,
    )
    assert [
        (f.from_status, f.to_status, f.reason) for f in flips(store, "ZJ-3301-A-000001", T0)
    ] == [("unknown", "online", "first heartbeat")]
    # Importing again updates the registration and keeps the status.
    assert load_registry(store, FIXTURES / "registry-utf8.csv", RULES, now=T0 + s(60)) == 3
    row = device(store, "ZJ-3301-A-000001")
    assert row is not None and (row.status, row.heartbeats) == ("online", 1)
    # A device learned from a heartbeat becomes registered.
    ingest(store, batch("vendor-b", heartbeat("ZJ-3303-B-000010", T0)), RULES, T0)
    load_registry(store, FIXTURES / "registry-utf8-bom.csv", RULES)
    learned = device(store, "ZJ-3303-B-000010")
    assert learned is not None and (learned.registered, learned.region) == (True, "温州市")


def test_load_registry_refuses_a_device_of_another_vendor(store: Store, tmp_path: Path) -> None:
    ingest(store, batch("vendor-b", heartbeat("ZJ-3301-A-000002", T0)), RULES, T0)
    with pytest.raises(RegistryInvalid) as raised:
        load_registry(store, FIXTURES / "registry-utf8.csv", RULES)
    assert raised.value.errors == [
        "registry-utf8.csv:3 vendor: ZJ-3301-A-000002 is already registered under vendor "
        "vendor-b, not vendor-a"
    ]
    assert device(store, "ZJ-3301-A-000001") is None  # nothing imported


# --------------------------------------------------------------------------- the simulator

DAY = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


def dumped(items: Any) -> list[tuple[datetime, str, dict[str, Any]]]:
    return [(at, vendor, hb.model_dump()) for at, vendor, hb in items]


def test_the_same_seed_gives_the_same_heartbeats() -> None:
    start, end = DAY[0], DAY[0] + timedelta(hours=3)
    first = dumped(Simulator(40, 3, seed=7).heartbeats_between(start, end))
    again = dumped(Simulator(40, 3, seed=7).heartbeats_between(start, end))
    other = dumped(Simulator(40, 3, seed=8).heartbeats_between(start, end))
    assert first == again
    assert first != other
    # However the period is cut up.
    middle = start + timedelta(minutes=97, seconds=13)
    simulator = Simulator(40, 3, seed=7)
    pieces = dumped(simulator.heartbeats_between(middle, end))
    pieces = dumped(simulator.heartbeats_between(start, middle)) + pieces
    assert pieces == first
    assert [at for at, _, _ in first] == sorted(at for at, _, _ in first)


def test_simulated_devices_look_like_a_real_fleet() -> None:
    simulator = Simulator(300, 3, seed=1)
    ids = [d.device_id for d in simulator.devices]
    assert len(set(ids)) == 300
    assert all(re.fullmatch(r"ZJ-33\d\d-[ABC]-\d{6}", i) for i in ids)
    assert {d.vendor for d in simulator.devices} == {"vendor-a", "vendor-b", "vendor-c"}
    shares = Counter(d.vendor for d in simulator.devices)
    assert shares["vendor-a"] > shares["vendor-b"] > shares["vendor-c"]
    assert len({d.region for d in simulator.devices}) >= 8
    assert {d.region for d in simulator.devices} <= {r[0] for r in REGIONS}
    # A device beating at another interval than the usual one always says so.
    for vendors in (1, 2, 3, 4):
        others = Simulator(80, vendors, seed=1, interval=60).devices
        assert all(d.announces_interval for d in others if d.interval != 60)
        assert {d.interval for d in others} == ({60} if vendors == 1 else {60, 120})
    entries = read_registry_text(simulator.registry_csv(site="zj-fleet"))
    assert [e.device_id for e in entries] == ids


def read_registry_text(content: str) -> list[Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "devices.csv"
        path.write_text(content, encoding="utf-8")
        return read_registry(path)


def test_over_a_simulated_day_devices_go_silent_fault_and_recover() -> None:
    simulator = Simulator(200, 3, seed=1, interval=120)
    beats: dict[str, list[tuple[datetime, Heartbeat]]] = defaultdict(list)
    vendor_of = {d.device_id: d.vendor for d in simulator.devices}
    for at, vendor, hb in simulator.heartbeats_between(*DAY):
        assert vendor == vendor_of[hb.device_id]
        beats[hb.device_id].append((at, hb))
    # Every heartbeat is valid on the wire.
    sample = [hb for series in list(beats.values())[:20] for _, hb in series]
    for hb in sample:
        assert Heartbeat.model_validate_json(hb.model_dump_json()) == hb
    gaps = Counter()
    for device_id, series in beats.items():
        interval = next(d.interval for d in simulator.devices if d.device_id == device_id)
        times = [at for at, _ in series]
        for before, after in zip(times, times[1:], strict=False):
            gap = (after - before).total_seconds()
            assert gap > interval * 0.9  # never faster than the interval
            if gap > 600:
                gaps[device_id] += 1
    # Most devices beat all day; some were silent for a while and came back.
    assert len(beats) >= 190
    assert 5 <= len(gaps) <= 100
    statuses = Counter(hb.status for series in beats.values() for _, hb in series)
    total = sum(statuses.values())
    assert statuses["ok"] / total > 0.95
    assert statuses["fault"] > 0 and statuses["maintenance"] > 0
    recovered = [
        device_id
        for device_id, series in beats.items()
        if any(
            a.status == "fault" and b.status == "ok"
            for (_, a), (_, b) in zip(series, series[1:], strict=False)
        )
    ]
    assert recovered
    codes = {hb.fault_code for series in beats.values() for _, hb in series if hb.fault_code}
    assert codes <= set(FAULTS) and len(codes) >= 3
    assert all(
        hb.fault_message == FAULTS[hb.fault_code]
        for series in beats.values()
        for _, hb in series
        if hb.fault_code
    )
    # Stock runs down and is refilled: some device's level rises during the day.
    refilled = 0
    for series in beats.values():
        levels = [hb.stock[0].level for _, hb in series]
        refilled += any(b > a for a, b in zip(levels, levels[1:], strict=False))
    assert refilled > 0
    # Timestamps carry China's offset; a few device clocks are off by minutes.
    first = next(iter(beats.values()))[0][1]
    assert first.timestamp.utcoffset() == timedelta(hours=8)
    skews = [abs(d.skew) for d in simulator.devices]
    assert max(skews) > 60 and sorted(skews)[len(skews) // 2] < 2


def test_a_regional_outage_silences_a_whole_city() -> None:
    rates = Rates(
        outage_per_hour=0,
        fault_per_hour=0,
        dead_per_day=0,
        region_outage_per_day=1.0,
        vendor_outage_per_day=0,
    )
    simulator = Simulator(60, 2, seed=3, interval=60, rates=rates)
    heard: dict[str, set[int]] = defaultdict(set)
    region_of = {d.device_id: d.region for d in simulator.devices}
    start, end = DAY[0], DAY[0] + timedelta(days=2)
    for at, _, hb in simulator.heartbeats_between(start, end):
        heard[region_of[hb.device_id]].add(int((at - start).total_seconds() // 60))
    # Every city had an outage on the first day (of 10 minutes to 3 hours): minutes in a row
    # in which none of its devices was heard, while the other cities were.
    everyone = set().union(*heard.values())
    for region in {d.region for d in simulator.devices}:
        quiet = sorted(everyone - heard[region])
        longest = run = 1 if quiet else 0
        for before, after in zip(quiet, quiet[1:], strict=False):
            run = run + 1 if after == before + 1 else 1
            longest = max(longest, run)
        assert longest >= 9, region


def test_simulated_history_through_the_store(store: Store) -> None:
    """A simulated day written through ingest (now = the heartbeat's arrival) and a sweep
    every minute: devices go offline and come back, fault and are repaired."""
    simulator = Simulator(
        40, 3, seed=2, interval=300, rates=Rates(outage_per_hour=0.02, fault_per_hour=0.01)
    )
    rule = Rule(
        "zj-fleet", "dispensers", timedelta(minutes=5), timedelta(minutes=1), timedelta(minutes=15)
    )
    rules = Rules({vendor: rule for vendor in simulator.vendors})
    pending: dict[str, list[Heartbeat]] = defaultdict(list)
    minute: datetime | None = None
    for at, vendor, hb in simulator.heartbeats_between(DAY[0], DAY[0] + timedelta(hours=6)):
        this = at.replace(second=0, microsecond=0)
        if minute is not None and this != minute:
            for name, beats in pending.items():
                ingest(store, HeartbeatBatch(vendor=name, heartbeats=beats), rules, minute + s(59))
            pending.clear()
            sweep(store, rules, this)
        minute = this
        pending[vendor].append(hb)
    with store.engine.connect() as connection:
        changes = {
            (row[0], row[1])
            for row in connection.execute(text("SELECT from_status, to_status FROM device_flips"))
        }
    assert ("offline", "online") in changes or ("offline", "low-stock") in changes
    assert ("online", "faulty") in changes
    assert ("faulty", "online") in changes or ("faulty", "low-stock") in changes
    by_vendor = {
        r.key: r for r in availability_by(store, DAY[0], DAY[0] + timedelta(hours=6), "vendor")
    }
    assert set(by_vendor) == set(simulator.vendors)
    assert all(0.5 < r.ratio < 1.0 for r in by_vendor.values())
    assert store_fleet.ROWS_PER_STATEMENT >= 1000
