"""The dispenser check, against a store (a real SQLite file and a real PostgreSQL database)
filled through ``ingest`` at travelled times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from pydantic import ValidationError
from sqlalchemy import text

from checks.dispenser import DispenserCheck, DispenserConfig
from opsctl.contract import CheckError, CheckResult, State
from opsctl.fleet import Rule, Rules
from opsctl.inventory import Fleet, load
from opsctl.server.schemas import Heartbeat, HeartbeatBatch
from opsctl.store import Store
from opsctl.store.fleet import ingest

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FLEET = Fleet.model_validate(
    {
        "name": "dispensers",
        "vendors": ["vendor-a", "vendor-b"],
        "interval": "1m",
        "grace": "30s",
        "offline_after": "5m",
        "vendor_silence": "10m",
    }
)
ONLY_A = FLEET.model_copy(update={"vendors": ["vendor-a"]})
REGION_CODES = {"杭州市": "3301", "宁波市": "3302", "温州市": "3303", "舟山市": "3309"}
RULES = Rules(
    {vendor: Rule.from_fleet(FLEET, "zj") for vendor in ("vendor-a", "vendor-b", "vendor-c")}
)


def beat(
    store: Store,
    vendor: str,
    device_id: str,
    at: datetime,
    region: str = "杭州市",
    reported: str = "ok",
    **fields: Any,
) -> None:
    heartbeat = Heartbeat(
        device_id=device_id, timestamp=at, status=reported, region=region, **fields
    )
    ingest(store, HeartbeatBatch(vendor=vendor, heartbeats=[heartbeat]), RULES, at)


def fleet_of(
    store: Store, groups: dict[tuple[str, str], int], offline: dict[tuple[str, str], int]
) -> None:
    """Devices per (vendor, region), each beating 10 s before NOW, except ``offline`` of each
    group, silent for 10 minutes."""
    for (vendor, region), count in groups.items():
        beats = []
        for n in range(count):
            silent = n < offline.get((vendor, region), 0)
            beats.append(
                Heartbeat(
                    device_id=f"{vendor[-1].upper()}-{REGION_CODES[region]}-{n:03d}",
                    timestamp=NOW - timedelta(minutes=10 if silent else 0, seconds=10),
                    status="ok",
                    region=region,
                )
            )
        for at in sorted({b.timestamp for b in beats}):
            ingest(
                store,
                HeartbeatBatch(vendor=vendor, heartbeats=[b for b in beats if b.timestamp == at]),
                RULES,
                at,
            )


def run(
    store: Store | None, fleet: Fleet = FLEET, at: datetime = NOW, **config: Any
) -> CheckResult:
    check = DispenserCheck(DispenserConfig.model_validate(config), store=store)
    with time_machine.travel(at, tick=False):
        return check.run(fleet)


def item(result: CheckResult, label: str) -> Any:
    found = [i for i in result.items if i.item == label]
    assert len(found) == 1, [i.item for i in result.items]
    return found[0]


def metric(result: CheckResult, name: str, **labels: str) -> float:
    return next(m.value for m in result.metrics if m.name == name and dict(m.labels) == labels)


def test_without_a_store_the_check_is_unknown() -> None:
    result = run(None)
    assert result.state is State.UNKNOWN
    assert "store" in result.summary


def test_a_healthy_fleet_is_ok(store: Store) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 12, ("vendor-b", "宁波市"): 8}, {})
    result = run(store)
    assert result.state is State.OK
    assert result.summary == "20 devices: 20 online, 0 offline (0.0%), 0 faulty, 0 low stock"
    assert (
        metric(result, "devices"),
        metric(result, "online"),
        metric(result, "offline_percent"),
    ) == (20, 20, 0)
    assert metric(result, "vendor_offline_percent", vendor="vendor-b") == 0
    vendor_a = item(result, "Vendor vendor-a")
    assert (
        vendor_a.value
        == "12 devices: 12 online, 0 offline (0.0%), 0 faulty, 0 low stock; last heartbeat 10s ago"
    )
    assert (
        vendor_a.threshold
        == "warning > 5% offline, critical > 10% offline; critical when silent ≥ 10m"
    )
    assert (
        item(result, "Region 宁波市").value
        == "8 devices: 8 online, 0 offline (0.0%), 0 faulty, 0 low stock (fewer than 10: not judged)"
    )
    assert item(result, "Fleet / faulty devices").threshold == "not judged"
    assert result.details["fleet"]["devices"] == 20


@pytest.mark.parametrize(
    ("offline", "state", "share"),
    [
        ({("vendor-a", "杭州市"): 1, ("vendor-b", "宁波市"): 1}, State.OK, 5.0),
        (
            {
                key: 1
                for key in [
                    ("vendor-a", "杭州市"),
                    ("vendor-a", "宁波市"),
                    ("vendor-b", "杭州市"),
                    ("vendor-b", "宁波市"),
                ]
            },
            State.WARNING,
            10.0,
        ),
        (
            {
                ("vendor-a", "杭州市"): 2,
                ("vendor-a", "宁波市"): 1,
                ("vendor-b", "杭州市"): 1,
                ("vendor-b", "宁波市"): 2,
            },
            State.CRITICAL,
            15.0,
        ),
    ],
)
def test_the_offline_share_of_the_fleet(
    store: Store, offline: dict[tuple[str, str], int], state: State, share: float
) -> None:
    groups = {
        (vendor, region): 10
        for vendor in ("vendor-a", "vendor-b")
        for region in ("杭州市", "宁波市")
    }
    fleet_of(store, groups, offline)
    result = run(store)
    assert metric(result, "offline_percent") == share
    assert result.state is state
    assert f"offline ({share:.1f}%)" in result.summary
    assert item(result, "Vendor vendor-a").verdict is state
    assert item(result, "Region 杭州市").verdict is state
    fleet_row = item(result, "Fleet / offline")
    assert (fleet_row.verdict, fleet_row.threshold) == (
        state,
        "warning > 5% offline, critical > 10% offline",
    )
    assert fleet_row.value.startswith(f"40 devices: {40 - round(share * 0.4)} online")


def test_one_vendor_down_is_critical_while_the_fleet_is_not(store: Store) -> None:
    fleet_of(
        store,
        {("vendor-a", "杭州市"): 25, ("vendor-a", "宁波市"): 25, ("vendor-b", "温州市"): 10},
        {("vendor-b", "温州市"): 3},
    )
    result = run(store)
    assert metric(result, "offline_percent") == 5.0
    assert result.state is State.CRITICAL
    vendor_b = item(result, "Vendor vendor-b")
    assert vendor_b.verdict is State.CRITICAL
    assert vendor_b.value.startswith("10 devices: 7 online, 3 offline (30.0%)")
    assert "ask vendor-b" in vendor_b.advice
    assert item(result, "Vendor vendor-a").verdict is State.OK
    assert item(result, "Region 温州市").verdict is State.CRITICAL
    # Looser thresholds for vendors let it pass.
    relaxed = run(
        store,
        vendor_offline_warn="40%",
        vendor_offline_crit="50%",
        region_offline_crit="50%",
        region_offline_warn="40%",
    )
    assert relaxed.state is State.OK


def test_a_small_region_is_shown_not_judged(store: Store) -> None:
    fleet_of(
        store, {("vendor-a", "杭州市"): 30, ("vendor-a", "舟山市"): 3}, {("vendor-a", "舟山市"): 1}
    )
    result = run(store, ONLY_A)
    small = item(result, "Region 舟山市")
    assert small.verdict is State.OK
    assert small.value.endswith("(fewer than 10: not judged)")
    assert result.state is State.OK
    assert run(store, ONLY_A, min_devices=3).state is State.CRITICAL


def test_a_vendor_never_heard_from_is_critical(store: Store) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 20}, {})
    fleet = FLEET.model_copy(update={"vendors": ["vendor-a", "vendor-c"]})
    result = run(store, fleet)
    assert result.state is State.CRITICAL
    assert result.summary.endswith("; vendor-c never heard from")
    silent = item(result, "Vendor vendor-c")
    assert (silent.verdict, silent.value) == (State.CRITICAL, "no heartbeat ever")
    assert "opsctl token create --vendor vendor-c" in silent.advice
    assert result.details["silent_vendors"] == {"vendor-c": None}


@pytest.mark.parametrize(("minutes", "silent"), [(9, False), (10, True), (12, True)])
def test_a_silent_vendor_system_is_critical(store: Store, minutes: int, silent: bool) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 40}, {})
    for n in range(2):
        beat(store, "vendor-b", f"VB-{n}", NOW - timedelta(minutes=minutes), region="宁波市")
    result = run(store)
    vendor_b = item(result, "Vendor vendor-b")
    if silent:
        assert result.state is State.CRITICAL
        assert vendor_b.verdict is State.CRITICAL
        assert vendor_b.value.startswith(f"no heartbeat for {minutes}m; 2 devices:")
        assert result.summary.endswith(f"; vendor-b silent {minutes}m")
    else:
        assert vendor_b.verdict is State.OK  # 2 devices: too few to judge their offline share
        assert "silent" not in result.summary
        assert result.state is State.OK


def test_flapping_devices_warn(store: Store) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 20}, {})
    # Old changes do not count.
    for minute in (120, 119):
        beat(store, "vendor-a", "FLAP-1", NOW - timedelta(minutes=minute), reported="fault")
    # Back (offline -> online), then five more changes in the last six minutes.
    statuses = ["ok", "fault", "ok", "fault", "ok", "fault"]
    for n, reported in enumerate(statuses):
        beat(store, "vendor-a", "FLAP-1", NOW - timedelta(minutes=6 - n), reported=reported)
    result = run(store, ONLY_A)
    flapping = item(result, "Fleet / flapping devices")
    assert (flapping.verdict, flapping.value) == (State.WARNING, "1 device(s): FLAP-1 (6)")
    assert result.state is State.WARNING
    assert result.summary == (
        "21 devices: 20 online, 0 offline (0.0%), 1 faulty, 0 low stock; 1 flapping"
    )
    assert result.details["flapping"] == [
        {"device_id": "FLAP-1", "vendor": "vendor-a", "region": "杭州市", "flips": 6}
    ]
    assert run(store, ONLY_A, flapping_flips=7).state is State.OK
    assert run(store, ONLY_A, flapping_window="3m").state is State.OK


def test_faulty_and_low_stock_devices_are_judged_when_asked(store: Store) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 20}, {})
    beat(
        store,
        "vendor-a",
        "FAULTY-1",
        NOW - timedelta(seconds=5),
        reported="fault",
        fault_code="E01",
        fault_message="出药口卡住",
    )
    beat(
        store,
        "vendor-a",
        "LOW-1",
        NOW - timedelta(seconds=5),
        stock=[{"item": "LNG", "name": "左炔诺孕酮", "level": 2}],
    )
    beat(
        store,
        "vendor-a",
        "LOW-2",
        NOW - timedelta(seconds=5),
        stock=[{"item": "LNG", "level": 9, "low": 3}],
    )
    default = run(store, ONLY_A)
    assert default.state is State.OK
    assert default.summary == "23 devices: 21 online, 0 offline (0.0%), 1 faulty, 1 low stock"
    judged = run(store, ONLY_A, faulty_warn=0, low_stock_warn=1)
    assert judged.state is State.WARNING
    assert item(judged, "Fleet / faulty devices").verdict is State.WARNING
    assert item(judged, "Fleet / low stock").verdict is State.OK
    assert [m.state for m in judged.metrics if m.name == "faulty"] == [State.WARNING]


def test_late_and_never_heard_devices_are_counted(store: Store, tmp_path: Path) -> None:
    fleet_of(store, {("vendor-a", "杭州市"): 20}, {})
    beat(store, "vendor-a", "LATE-1", NOW - timedelta(seconds=100))
    registry = tmp_path / "devices.csv"
    registry.write_text(
        "device_id,vendor,region,site,address\nNEW-1,vendor-a,杭州市,zj,x\n", encoding="utf-8"
    )
    from opsctl.store.fleet import load_registry

    load_registry(store, registry, RULES, now=NOW - timedelta(days=1))
    result = run(store, ONLY_A)
    assert result.summary == (
        "22 devices: 20 online, 1 late, 0 offline (0.0%), 0 faulty, 0 low stock, 1 never heard from"
    )
    assert metric(result, "unknown") == 1 and metric(result, "late") == 1


def test_the_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="percentage"):
        DispenserConfig.model_validate({"offline_warn": "5GB"})
    with pytest.raises(ValidationError, match="extra"):
        DispenserConfig.model_validate({"offline_warning": "5%"})
    with pytest.raises(ValidationError):
        DispenserConfig.model_validate({"flapping_flips": 1})


def test_a_store_failure_is_a_check_error(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "broken.db")) as broken:
        with broken.engine.begin() as connection:
            connection.execute(text("DROP TABLE device_flips"))
        with pytest.raises(CheckError, match="device_flips"):
            run(broken, ONLY_A)


def test_every_fleet_of_an_inventory_gets_the_check(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        """
sites:
  - name: zj
    fleets:
      - name: dispensers
        vendors: [vendor-a, vendor-b]
        vendor_silence: 10m
      - name: pilot
        vendors: [vendor-c]
        checks:
          - {kind: dispenser, offline_warn: 20%, offline_crit: 50%}
""",
        encoding="utf-8",
    )
    loaded = load(path)
    checks = {check.id: check for check in loaded.checks}
    assert set(checks) == {"zj/dispensers/dispenser", "zj/pilot/dispenser"}
    fleet_of(store, {("vendor-a", "杭州市"): 20}, {("vendor-a", "杭州市"): 3})
    beat(store, "vendor-c", "C-1", NOW - timedelta(minutes=10), region="宁波市")
    with time_machine.travel(NOW, tick=False):
        main = checks["zj/dispensers/dispenser"]
        result = main.build(store=store).run(main.target)
        pilot = checks["zj/pilot/dispenser"]
        piloted = pilot.build(store=store).run(pilot.target)
    # vendor-a: 3 of 20 offline (15%); vendor-b never heard from.
    assert result.state is State.CRITICAL
    assert result.summary.startswith("20 devices: 17 online, 3 offline (15.0%)")
    assert "vendor-b never heard from" in result.summary
    # The pilot fleet: its one device offline, its vendor silent for 10 minutes.
    assert (
        piloted.summary
        == "1 device: 0 online, 1 offline (100.0%), 0 faulty, 0 low stock; vendor-c silent 10m"
    )
