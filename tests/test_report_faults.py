"""The fault handling records of a report: incidents of a month with their durations and
SLA verdicts judged at the period's end, the compliance they add up to, and the groups of the
issue optimisation plan — against hand-computed values on a business-hours SLA with the 18:00
cut-off around National Day 2026 (1–7 October off, Saturday 10 October a make-up workday)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from opsctl.incidents import acknowledge, open_incident, resolve
from opsctl.inventory import Site
from opsctl.reports.faults import (
    Compliance,
    by_severity,
    compliance,
    fault_records,
    issue_groups,
)
from opsctl.reports.periods import parse_period
from opsctl.store import Store

CST = ZoneInfo("Asia/Shanghai")

SITE = Site.model_validate(
    {
        "name": "zj",
        "sla": {
            "calendar": "business",
            "business_hours": "08:30-17:30",
            "cutoff": "18:00",
            "severities": {
                "critical": {"respond": "30m", "resolve": "4h"},
                "major": {"respond": "1h", "resolve": "8h"},
            },
        },
    }
)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def incident(store: Store, opened: datetime, severity: str, category: str, system: str,
             title: str) -> int:  # fmt: skip
    return open_incident(
        store, site="zj", system=system, severity=severity, category=category, title=title,
        reporter="信息科", opened=opened,
    ).id  # fmt: skip


@pytest.fixture
def month(store: Store) -> dict[str, int]:
    ids = {
        # Friday 9 October 10:00: answered in 20 minutes, solved at 13:00. Both met.
        "fast": incident(store, at(10, 9, 10), "critical", "接口", "预约平台", "预约接口超时"),
        # Friday 9 October 18:30, after the cut-off: the clocks start at 08:30 on Saturday
        # 10 October (a make-up workday). Answered at 10:00 (due 09:30: breached by 30 min),
        # never solved (due 16:30 the same day: breached).
        "late": incident(store, at(10, 9, 18, 30), "major", "网络", "预约平台", "专线中断"),
        # The same database problem twice in one week.
        "db1": incident(store, at(10, 20, 9), "critical", "数据库", "HIS", "HIS 数据库连接超时"),
        "db2": incident(store, at(10, 22, 14), "critical", "数据库", "HIS", "HIS 数据库连接超时"),
        # Saturday 31 October 17:00 (not a workday): the clocks start on Monday 2 November;
        # answered on 1 November, after the period. At the period's end it still runs.
        "eve": incident(store, at(10, 31, 17), "critical", "网络", "预约平台", "DNS 解析失败"),
        # Outside October: left out.
        "before": incident(store, at(9, 30, 23), "critical", "网络", "预约平台", "九月"),
        "after": incident(store, at(11, 1, 0, 0), "critical", "网络", "预约平台", "十一月"),
    }
    acknowledge(store, ids["fast"], "张工", at(10, 9, 10, 20))
    resolve(store, ids["fast"], root_cause="接口限流", actions="调整限流", at=at(10, 9, 13))
    acknowledge(store, ids["late"], "李工", at(10, 10, 10))
    for key, (ack, done) in {
        "db1": (at(10, 20, 9, 10), at(10, 20, 10)),
        "db2": (at(10, 22, 14, 5), at(10, 22, 15)),
    }.items():
        acknowledge(store, ids[key], "王工", ack)
        resolve(store, ids[key], root_cause="连接池耗尽", actions="扩大连接池", at=done)
    acknowledge(store, ids["eve"], "张工", at(11, 1, 9))
    return ids


def test_the_records_of_a_month_are_its_incidents_judged_at_its_end(
    store: Store, month: dict[str, int]
) -> None:
    records = fault_records(store, SITE, parse_period("2026-10"))
    assert [r.id for r in records] == [month[key] for key in ("fast", "late", "db1", "db2", "eve")]
    fast, late, db1, _db2, eve = records

    assert fast.response == timedelta(minutes=20) and fast.resolution == timedelta(hours=3)
    assert (fast.respond.state, fast.respond.due) == ("met", at(10, 9, 10, 30))
    assert fast.respond.remaining == timedelta(minutes=10)
    assert (fast.resolve.state, fast.resolve.due) == ("met", at(10, 9, 14))
    assert fast.onsite is None

    assert late.response == timedelta(hours=15, minutes=30) and late.resolution is None
    assert (late.respond.state, late.respond.due) == ("breached", at(10, 10, 9, 30))
    assert late.respond.overdue == timedelta(minutes=30)
    assert (late.resolve.state, late.resolve.due) == ("breached", at(10, 10, 16, 30))

    assert db1.root_cause == "连接池耗尽" and db1.resolve.state == "met"

    # Answered on 1 November: after the period, so not answered as the report sees it.
    assert eve.acknowledged is None and eve.response is None
    assert (eve.respond.state, eve.respond.due) == ("running", at(11, 2, 9))
    assert eve.resolve.due == at(11, 2, 12, 30)


def test_compliance_severities_and_issue_groups(store: Store, month: dict[str, int]) -> None:
    records = fault_records(store, SITE, parse_period("2026-10"))
    assert compliance(records, "respond") == Compliance(met=3, breached=1, running=1)
    assert compliance(records, "respond").ratio == 0.75
    assert compliance(records, "resolve") == Compliance(met=3, breached=1, running=1)
    assert compliance(records, "onsite") == Compliance()
    assert compliance(records, "onsite").ratio is None
    assert by_severity(records) == {"critical": 4, "major": 1, "minor": 0, "complaint": 0}

    groups = issue_groups(records)
    assert [(g.category, g.system, g.count, g.recurrences, g.breached) for g in groups] == [
        ("数据库", "HIS", 2, 1, 0),
        ("网络", "预约平台", 2, 0, 1),
        ("接口", "预约平台", 1, 0, 0),
    ]
    assert groups[0].causes == (("连接池耗尽", 2),)
    assert groups[0].ids == (month["db1"], month["db2"])
    assert groups[1].causes == ()


def test_judged_earlier_the_same_month_reads_as_it_stood_then(
    store: Store, month: dict[str, int]
) -> None:
    records = fault_records(store, SITE, parse_period("2026-10"), as_of=at(10, 10, 9))
    # Only what was opened by then, judged then: the late one's answer is still due at 09:30.
    assert [r.id for r in records] == [month["fast"], month["late"]]
    late = records[1]
    assert late.acknowledged is None
    assert (late.respond.state, late.respond.remaining) == ("running", timedelta(minutes=30))


def test_a_site_without_an_sla_has_records_but_no_clocks(
    store: Store, month: dict[str, int]
) -> None:
    plain = Site.model_validate({"name": "zj"})
    records = fault_records(store, plain, parse_period("2026-10"))
    assert len(records) == 5
    assert all(r.respond is None and r.resolve is None for r in records)
    assert compliance(records, "respond").ratio is None


def test_a_month_without_incidents_has_no_records(store: Store) -> None:
    assert fault_records(store, SITE, parse_period("2026-08")) == []
    assert issue_groups([]) == []
