"""The incident log on SQLite and PostgreSQL: moments in order, the first reply kept,
personal data masked before it is stored, and out-of-order changes refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.incidents import (
    IncidentError,
    acknowledge,
    add_note,
    get,
    incidents,
    open_incident,
    resolve,
)
from opsctl.store import Store

T0 = datetime(2026, 10, 9, 9, 40, tzinfo=UTC)


def opened(store: Store, **overrides: object) -> int:
    values = {
        "site": "zj",
        "system": "预约平台",
        "severity": "major",
        "title": "预约接口超时",
        "reporter": "张工",
        "opened": T0,
    }
    values.update(overrides)
    return open_incident(store, **values).id  # type: ignore[arg-type]


def test_an_incident_keeps_its_moments_notes_and_first_reply(store: Store) -> None:
    number = opened(store, description="患者 13812345678 反映无法预约")
    acknowledge(store, number, "张工", T0 + timedelta(minutes=8))
    acknowledge(store, number, "李工", T0 + timedelta(minutes=20))  # the first reply stands
    add_note(store, number, "张工", "重启 appointment-api 后恢复", T0 + timedelta(minutes=30))
    resolve(
        store,
        number,
        root_cause="数据库连接池耗尽",
        actions="连接池上限 50→200",
        at=T0 + timedelta(hours=1),
    )
    incident = get(store, number)
    assert (incident.acknowledged, incident.acknowledged_by) == (T0 + timedelta(minutes=8), "张工")
    assert incident.resolved == T0 + timedelta(hours=1)
    assert incident.root_cause == "数据库连接池耗尽"
    assert [note.text for note in incident.notes] == ["重启 appointment-api 后恢复"]
    assert "13812345678" not in incident.description
    assert "138****5678" in incident.description


def test_out_of_order_moments_are_refused(store: Store) -> None:
    number = opened(store)
    with pytest.raises(IncidentError, match="cannot be resolved at .* before it was opened"):
        resolve(store, number, at=T0 - timedelta(minutes=1))
    with pytest.raises(IncidentError, match="cannot be acknowledged"):
        acknowledge(store, number, "张工", T0 - timedelta(seconds=1))
    resolve(store, number, at=T0 + timedelta(minutes=5), by="张工")
    with pytest.raises(IncidentError, match="already resolved"):
        resolve(store, number, at=T0 + timedelta(minutes=6))
    assert get(store, number).acknowledged == T0 + timedelta(minutes=5)


def test_bad_input_is_refused_with_the_reason(store: Store) -> None:
    with pytest.raises(IncidentError, match="severity must be one of critical, major"):
        opened(store, severity="urgent")
    with pytest.raises(IncidentError, match="needs a title"):
        opened(store, title="  ")
    with pytest.raises(IncidentError, match="must have a time zone"):
        opened(store, opened=datetime(2026, 10, 9, 9, 40))  # noqa: DTZ001
    with pytest.raises(IncidentError, match="no incident 999"):
        get(store, 999)


def test_listing_filters_by_site_period_and_open(store: Store) -> None:
    first = opened(store)
    second = opened(store, site="hz", opened=T0 + timedelta(days=1))
    third = opened(store, opened=T0 + timedelta(days=2))
    resolve(store, third, at=T0 + timedelta(days=2, hours=1))
    assert [i.id for i in incidents(store)] == [third, second, first]
    assert [i.id for i in incidents(store, site="zj")] == [third, first]
    assert [i.id for i in incidents(store, open_only=True)] == [second, first]
    assert [
        i.id for i in incidents(store, since=T0 + timedelta(hours=1), until=T0 + timedelta(days=2))
    ] == [second]
