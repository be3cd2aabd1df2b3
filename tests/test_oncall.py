"""On call, end to end: a failing check becomes an alert, a WeCom and a DingTalk message at
real receivers on 127.0.0.1, escalates to duty B and then to the site's contact while nobody
acknowledges, opens an incident whose SLA clock counts China's holidays and the 18:00 cut-off,
warns before that clock runs out, and tells of the recovery. Time is travelled with
time-machine; the check is a real Nagios-style plugin run by the engine."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from notify_receivers import RobotServer

from opsctl.alerts import acknowledge, alerts
from opsctl.incidents import get, incidents
from opsctl.inventory import LoadedInventory, load
from opsctl.oncall import OnCall, notifications
from opsctl.runner import run_into_store
from opsctl.sla import verdict
from opsctl.store import Store

CST = ZoneInfo("Asia/Shanghai")

#: Wednesday 30 September 2026, 18:30: after the 18:00 cut-off, on the eve of National Day
#: (1–7 October 2026 off, Saturday 10 October a make-up workday).
T0 = datetime(2026, 9, 30, 18, 30, tzinfo=CST)

PLUGIN = """\
#!/bin/sh
state=$(cat "$(dirname "$0")/state")
if [ "$state" = ok ]; then echo "OK - /data 41% used"; exit 0; fi
echo "CRITICAL - /data 97% used (13800001234 的上传目录)"; exit 2
"""


def inventory_text(base_url: str, plugin: Path) -> str:
    return textwrap.dedent(
        f"""\
        channels:
          - {{name: ops-wecom, type: wecom, key: "env:T_WECOM_KEY", base_url: "{base_url}"}}
          - name: ops-dingtalk
            type: dingtalk
            access_token: "env:T_DT_TOKEN"
            secret: "env:T_DT_SECRET"
            base_url: "{base_url}"
        sites:
          - name: zj
            title: 浙江药具发放
            contacts:
              - {{name: 王主任, role: hospital IT, phone: "13700000003"}}
            sla:
              calendar: business
              business_hours: "08:30-17:30"
              cutoff: "18:00"
              severities:
                critical: {{respond: 30m, resolve: 4h}}
            alerts:
              channels: [ops-wecom, ops-dingtalk]
              escalate_after: 10m
              escalate_to: [王主任]
              auto_incident: true
              sla_warning: 15m
            duty:
              people: {{张工: "13800000001", 李工: "13800000002", 赵工: "13800000004"}}
              weekly:
                mon: {{A: 张工, B: 李工}}
                tue: {{A: 李工, B: 张工}}
                wed: {{A: 张工, B: 李工}}
                thu: {{A: 李工, B: 张工}}
                fri: {{A: 张工, B: 李工}}
                sat: {{A: 李工, B: 张工}}
                sun: {{A: 张工, B: 李工}}
              holidays: [{{A: 赵工, B: 张工}}]
            hosts:
              - name: app-01
                address: 127.0.0.1
                transport: local
                checks:
                  - kind: nagios
                    name: data-disk
                    command: ["/bin/sh", "{plugin}"]
                    max_attempts: 1
        """
    )


@pytest.fixture
def site(tmp_path: Path, robots: RobotServer) -> tuple[LoadedInventory, Path]:
    plugin = tmp_path / "check_data.sh"
    plugin.write_text(PLUGIN)
    (tmp_path / "state").write_text("critical")
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text(robots.base_url, plugin), encoding="utf-8")
    return load(path), tmp_path


def check(store: Store, loaded: LoadedInventory, at: datetime) -> None:
    with time_machine.travel(at, tick=False):
        (outcome,) = run_into_store(store, loaded.checks, retry=False)
    assert outcome.result is not None


def one_pass(oncall: OnCall, at: datetime) -> list[tuple[str, int]]:
    result = oncall.run(at)
    assert oncall.dispatcher.flush(timeout=30)
    return [(notice.reason, notice.level) for notice in result.notices]


def mentioned(robots: RobotServer) -> list[list[str]]:
    """The phones each WeCom text message rang."""
    return [
        body["text"]["mentioned_mobile_list"]
        for body in robots.bodies("wecom")
        if body["msgtype"] == "text"
    ]


def test_a_failing_check_reaches_the_robots_escalates_and_is_judged_on_the_sla(
    store: Store, site: tuple[LoadedInventory, Path], robots: RobotServer
) -> None:
    loaded, folder = site
    oncall = OnCall(store, loaded)
    try:
        # 18:30 on 30 September: the check fails; duty A of that Wednesday (张工) is told.
        check(store, loaded, T0)
        assert one_pass(oncall, T0) == [("problem", 0)]
        (alert,) = alerts(store)
        markdown = robots.bodies("wecom")[0]
        assert markdown == {
            "msgtype": "markdown",
            "markdown": {
                "content": "\n".join(
                    [
                        '**<font color="warning">【严重】zj app-01 data-disk</font>**',
                        "> 站点：浙江药具发放",
                        "> 对象：app-01",
                        "> 检查：data-disk",
                        "> 状态：严重",
                        "> 开始：2026-09-30 18:30",
                        "> 摘要：CRITICAL - /data 97% used (138****1234 的上传目录)",
                        f"> 已建事件 #{alert.incident_id}（紧急），响应时限 2026-10-08 09:00",
                        f"> 确认：opsctl alert ack {alert.id} --by 姓名",
                        "",
                        "值班：张工",
                    ]
                )
            },
        }
        assert mentioned(robots) == [["13800000001"]]
        (ding,) = robots.bodies("dingtalk")
        assert ding["msgtype"] == "markdown"
        assert ding["at"] == {"atMobiles": ["13800000001"], "isAtAll": False}
        assert "@13800000001" in ding["markdown"]["text"]
        signed = robots.of("dingtalk")[0]
        assert signed.accepted and signed.query["timestamp"] and signed.query["sign"]

        # Nobody acknowledges: at 10 minutes duty B (李工) is rung, at 20 the site's contact.
        check(store, loaded, T0 + timedelta(minutes=9))
        assert one_pass(oncall, T0 + timedelta(minutes=9)) == []
        assert one_pass(oncall, T0 + timedelta(minutes=10)) == [("escalation", 1)]
        assert mentioned(robots)[-1] == ["13800000001", "13800000002"]
        assert (
            "升级：10 分钟无人确认，已通知 B 岗"
            in robots.bodies("wecom")[-2]["markdown"]["content"]
        )
        assert one_pass(oncall, T0 + timedelta(minutes=20)) == [("escalation", 2)]
        assert mentioned(robots)[-1] == ["13800000001", "13800000002", "13700000003"]
        assert one_pass(oncall, T0 + timedelta(minutes=30)) == []

        # The incident's response clock: raised after 18:00, on the eve of a seven-day
        # holiday, it starts at 08:30 on Thursday 8 October, the first workday after.
        incident = get(store, alert.incident_id)
        assert incident.source == "alert" and incident.severity == "critical"
        assert incident.alerts == (alert.id,)
        respond = verdict(
            loaded.site("zj").sla, "critical", "respond", incident.opened, None,
            T0 + timedelta(hours=1), soon=timedelta(minutes=15),
        )  # fmt: skip
        assert respond.due == datetime(2026, 10, 8, 9, 0, tzinfo=CST)
        assert respond.state == "running" and respond.remaining == timedelta(minutes=30)

        # During the holiday the unacknowledged problem is sent again (every 2 hours by
        # default) to the holiday's duty pair (赵工 and 张工) and the contact.
        holiday = datetime(2026, 10, 3, 10, 0, tzinfo=CST)
        assert one_pass(oncall, holiday) == [("renotify", 2)]
        assert mentioned(robots)[-1] == ["13800000004", "13800000001", "13700000003"]
        assert (
            "重复提醒：已持续 63 小时 30 分钟，尚无人确认"
            in robots.bodies("wecom")[-2]["markdown"]["content"]
        )

        # 15 minutes before the response is due, the people on duty of Thursday 8 October
        # (李工 and 张工) are warned, once.
        before = datetime(2026, 10, 8, 8, 45, tzinfo=CST)
        sent_before = len(robots.bodies("wecom"))
        result = oncall.run(before)
        assert oncall.dispatcher.flush(timeout=30)
        assert result.sla_warnings == [(incident.id, "respond")]
        (warning,) = [
            body["markdown"]["content"]
            for body in robots.bodies("wecom")[sent_before:]
            if body["msgtype"] == "markdown" and "【SLA】" in body["markdown"]["content"]
        ]
        assert f"【SLA】zj 事件 #{incident.id} 响应即将超时" in warning
        assert "响应时限 2026-10-08 09:00，剩余 15 分钟" in warning
        assert ["13800000002", "13800000001"] in mentioned(robots)[-2:]
        assert oncall.run(before + timedelta(minutes=5)).sla_warnings == []

        # 张工 acknowledges at 08:55: the alert stops escalating and the incident's response
        # is met; the resolution clock (4 business hours from 08:30) runs until 12:30.
        acknowledge(store, alert.id, "张工", datetime(2026, 10, 8, 8, 55, tzinfo=CST))
        incident = get(store, alert.incident_id)
        assert incident.acknowledged_by == "张工"
        met = verdict(
            loaded.site("zj").sla, "critical", "respond", incident.opened,
            incident.acknowledged, incident.acknowledged,
        )  # fmt: skip
        assert met.state == "met" and met.remaining == timedelta(minutes=5)

        # The disk is cleaned up: the recovery goes to the group, ringing nobody.
        (folder / "state").write_text("ok")
        recovered_at = datetime(2026, 10, 8, 9, 10, tzinfo=CST)
        sent_before = len(robots.bodies("wecom"))
        check(store, loaded, recovered_at)
        assert one_pass(oncall, recovered_at) == [("recovery", 2)]
        recovery = robots.bodies("wecom")[sent_before:]
        assert len(recovery) == 1 and recovery[0]["msgtype"] == "markdown"
        assert recovery[0]["markdown"]["content"].startswith(
            '**<font color="info">【恢复】zj app-01 data-disk</font>**'
        )
        assert "> 摘要：OK - /data 41% used" in recovery[0]["markdown"]["content"]
        assert alerts(store) == []
    finally:
        oncall.close()

    # Every delivery is on record, with what it was about.
    log = notifications(store, limit=100)
    assert all(row.status == "sent" for row in log)
    reasons = sorted({(row.channel, row.reason) for row in log})
    assert reasons == [
        (channel, reason)
        for channel in ("ops-dingtalk", "ops-wecom")
        for reason in ("escalation", "problem", "recovery", "renotify", "sla-respond")
    ]
    assert {row.incident_id for row in log if row.reason == "sla-respond"} == {incident.id}
    assert [i.id for i in incidents(store, open_only=True)] == [incident.id]
    json.dumps([row.to_dict() for row in log])  # the log is JSON-ready


def test_a_problem_begun_in_maintenance_is_told_and_clocked_when_the_window_closes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RobotServer() as robots:
        monkeypatch.setenv("T_WH_SECRET", robots.webhook_secret)
        plugin = tmp_path / "check_data.sh"
        plugin.write_text(PLUGIN)
        (tmp_path / "state").write_text("critical")
        path = tmp_path / "inventory.yaml"
        path.write_text(
            textwrap.dedent(
                f"""\
                channels:
                  - {{name: itsm, type: webhook, url: "{robots.base_url}/hook",
                     secret: "env:T_WH_SECRET"}}
                sites:
                  - name: zj
                    sla: {{severities: {{critical: {{respond: 10m}}}}}}
                    alerts: {{channels: [itsm], auto_incident: true}}
                    maintenance:
                      - {{name: 系统割接, start: "2026-11-21 22:00", end: "2026-11-22 02:00",
                         checks: ["app-01/*"]}}
                    hosts:
                      - name: app-01
                        address: 127.0.0.1
                        transport: local
                        checks:
                          - {{kind: nagios, name: data-disk, command: ["/bin/sh", "{plugin}"]}}
                """
            ),
            encoding="utf-8",
        )
        loaded = load(path)
        oncall = OnCall(store, loaded)
        try:
            during = datetime(2026, 11, 21, 23, 0, tzinfo=CST)
            check(store, loaded, during)
            assert one_pass(oncall, during) == []
            assert robots.bodies("webhook") == [] and incidents(store) == []
            (alert,) = alerts(store)
            assert alert.silenced == "系统割接"

            closed = datetime(2026, 11, 22, 2, 0, tzinfo=CST)
            check(store, loaded, closed)
            assert one_pass(oncall, closed) == [("problem", 0)]
            (body,) = robots.bodies("webhook")
            assert body["state"] == "CRITICAL" and body["check"] == "data-disk"
            (incident,) = incidents(store)
            # The clock starts when the window closed, not when the problem began inside it.
            assert incident.opened == closed
            respond = verdict(
                loaded.site("zj").sla, "critical", "respond", incident.opened, None, closed
            )
            assert respond.due == datetime(2026, 11, 22, 2, 10, tzinfo=CST)
            # A 10-minute target is warned of at half of it, not at once (sla_warning is 15m).
            assert oncall.run(closed + timedelta(minutes=4)).sla_warnings == []
            assert oncall.run(closed + timedelta(minutes=5)).sla_warnings == [
                (incident.id, "respond")
            ]
        finally:
            oncall.close()
