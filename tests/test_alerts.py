"""Alerts from check statuses, on SQLite and PostgreSQL, at chosen moments: raised on a hard
problem only, sent once, re-sent at the interval, escalated A → B → contact while nobody
acknowledges, quiet while flapping or in maintenance, and a recovery said once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests_support_alerts import record

from opsctl.alerts import AlertError, AlertPolicy, Notice, Window, acknowledge, alerts, evaluate
from opsctl.contract import State
from opsctl.store import Store

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICY = {"zj": AlertPolicy(renotify="1h", escalate_after="10m")}


def run(store: Store, at: datetime, windows: tuple[Window, ...] = ()) -> list[tuple[str, str, int]]:
    sent: list[Notice] = []
    evaluate(store, POLICY, at, sent.append, windows)
    return [(n.alert.check_id, n.reason, n.level) for n in sent]


def test_a_soft_problem_raises_nothing_a_hard_one_raises_one_alert(store: Store) -> None:
    record(store, "zj/db1/db.sessions", State.CRITICAL, T0, state_type="soft")
    assert run(store, T0) == []
    record(store, "zj/db1/db.sessions", State.CRITICAL, T0 + timedelta(minutes=1))
    assert run(store, T0 + timedelta(minutes=1)) == [("zj/db1/db.sessions", "problem", 0)]
    assert run(store, T0 + timedelta(minutes=2)) == []  # not sent again
    (alert,) = alerts(store)
    assert (alert.state, alert.notifications) == (State.CRITICAL, 1)


def test_escalation_goes_to_b_then_the_contact_unless_acknowledged(store: Store) -> None:
    record(store, "zj/web/http", State.CRITICAL, T0)
    assert run(store, T0) == [("zj/web/http", "problem", 0)]
    assert run(store, T0 + timedelta(minutes=9)) == []
    assert run(store, T0 + timedelta(minutes=10)) == [("zj/web/http", "escalation", 1)]
    assert run(store, T0 + timedelta(minutes=20)) == [("zj/web/http", "escalation", 2)]
    assert run(store, T0 + timedelta(minutes=30)) == []
    assert run(store, T0 + timedelta(minutes=80)) == [("zj/web/http", "renotify", 2)]


def test_acknowledging_stops_escalation_and_re_sending(store: Store) -> None:
    record(store, "zj/web/http", State.CRITICAL, T0)
    run(store, T0)
    (alert,) = alerts(store)
    acknowledge(store, alert.id, "张工", T0 + timedelta(minutes=5))
    assert run(store, T0 + timedelta(hours=3)) == []
    assert alerts(store)[0].acknowledged_by == "张工"
    record(store, "zj/web/http", State.OK, T0 + timedelta(hours=4))
    assert run(store, T0 + timedelta(hours=4)) == [("zj/web/http", "recovery", 0)]
    assert alerts(store) == []
    with pytest.raises(AlertError, match="was cleared"):
        acknowledge(store, alert.id, "李工", T0 + timedelta(hours=5))
    with pytest.raises(AlertError, match="no alert 999"):
        acknowledge(store, 999, "李工", T0)


def test_warnings_below_the_sites_minimum_raise_nothing(store: Store) -> None:
    policies = {"zj": AlertPolicy(min_state="CRITICAL")}
    record(store, "zj/host1/filesystem", State.WARNING, T0)
    sent: list[Notice] = []
    evaluate(store, policies, T0, sent.append)
    assert sent == [] and alerts(store) == []


def test_a_flapping_check_is_said_once_and_then_quiet(store: Store) -> None:
    at = T0
    for state in [State.CRITICAL, State.OK, State.CRITICAL, State.OK, State.CRITICAL]:
        record(store, "zj/his/tcp", state, at)
        at += timedelta(minutes=2)
    record(store, "zj/his/tcp", State.OK, at)
    at += timedelta(minutes=1)
    record(store, "zj/his/tcp", State.CRITICAL, at)
    assert run(store, at) == [("zj/his/tcp", "problem", 0)]
    assert run(store, at + timedelta(minutes=1)) == [("zj/his/tcp", "flapping", 0)]
    assert run(store, at + timedelta(minutes=30)) == []


def test_maintenance_silences_what_it_covers_and_nothing_else(store: Store) -> None:
    window = Window("升级", T0 - timedelta(hours=1), T0 + timedelta(hours=1), ("zj/db1/*",))
    record(store, "zj/db1/db.availability", State.CRITICAL, T0)
    record(store, "zj/web/http", State.CRITICAL, T0)
    assert run(store, T0, (window,)) == [("zj/web/http", "problem", 0)]
    silenced = next(a for a in alerts(store) if a.check_id == "zj/db1/db.availability")
    assert silenced.silenced == "升级" and silenced.announced is None
    assert run(store, T0 + timedelta(minutes=10), (window,)) == [("zj/web/http", "escalation", 1)]
    record(store, "zj/db1/db.availability", State.OK, T0 + timedelta(minutes=15))
    # A problem nobody was told of recovers silently.
    assert run(store, T0 + timedelta(minutes=15), (window,)) == []
    assert [a.check_id for a in alerts(store)] == ["zj/web/http"]


def test_a_problem_outlasting_its_window_is_told_when_the_window_closes(store: Store) -> None:
    window = Window("升级", T0 - timedelta(hours=1), T0 + timedelta(hours=1), ("db1/*",))
    record(store, "zj/db1/db.availability", State.CRITICAL, T0)
    assert run(store, T0, (window,)) == []
    assert run(store, T0 + timedelta(hours=1), (window,)) == [
        ("zj/db1/db.availability", "problem", 0)
    ]
    # Escalation is timed from that first notice, not from when the problem began.
    assert run(store, T0 + timedelta(hours=1, minutes=9), (window,)) == []
    assert run(store, T0 + timedelta(hours=1, minutes=10), (window,)) == [
        ("zj/db1/db.availability", "escalation", 1)
    ]


def test_a_window_opening_over_a_told_problem_quietens_it(store: Store) -> None:
    window = Window("割接", T0 + timedelta(minutes=5), T0 + timedelta(hours=3))
    record(store, "zj/web/http", State.CRITICAL, T0)
    assert run(store, T0, (window,)) == [("zj/web/http", "problem", 0)]
    # No escalation or re-notice inside the window...
    assert run(store, T0 + timedelta(hours=2, minutes=30), (window,)) == []
    assert alerts(store)[0].silenced == "割接"
    # ...and after it, the problem already told goes on as before: escalation is due.
    assert run(store, T0 + timedelta(hours=3), (window,)) == [("zj/web/http", "escalation", 1)]
