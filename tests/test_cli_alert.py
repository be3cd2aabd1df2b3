"""``opsctl alert list`` and ``opsctl alert ack`` on a SQLite store in tmp_path; ``opsctl
alert run`` against a real robot receiver on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from notify_receivers import RobotServer
from tests_support_alerts import record
from typer.testing import CliRunner

from opsctl.alerts import evaluate
from opsctl.cli import app
from opsctl.contract import State
from opsctl.oncall import notifications
from opsctl.store import Store

runner = CliRunner()
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_list_and_acknowledge(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    with Store.open(str(db)) as store:
        record(store, "zj/web/http", State.CRITICAL, T0)
        evaluate(store, {}, T0, lambda notice: None)
    listed = runner.invoke(app, ["--db", str(db), "alert", "list", "--json"])
    assert listed.exit_code == 2
    (alert,) = json.loads(listed.stdout)
    assert (alert["check_id"], alert["state"], alert["notified"]) == (
        "zj/web/http",
        "CRITICAL",
        "duty A",
    )
    acked = runner.invoke(app, ["--db", str(db), "alert", "ack", str(alert["id"]), "--by", "张工"])
    assert acked.exit_code == 0
    assert acked.stdout.strip() == f"alert {alert['id']} (zj/web/http) acknowledged by 张工"
    table = runner.invoke(app, ["--db", str(db), "alert", "list"])
    assert "张工" in table.stdout and "zj/web/http" in table.stdout
    missing = runner.invoke(app, ["--db", str(db), "alert", "ack", "999", "--by", "张工"])
    assert missing.exit_code == 2
    assert "no alert 999" in missing.stderr


# --------------------------------------------------------------------------- alert run
#
# One on-call pass per invocation, as cron runs it: against the real WeCom receiver on
# 127.0.0.1, on a SQLite and a PostgreSQL store, time travelled with time-machine.

CST = ZoneInfo("Asia/Shanghai")
#: Wednesday 30 September 2026, 18:30: after the 18:00 cut-off, on the eve of National Day.
EVE = datetime(2026, 9, 30, 18, 30, tzinfo=CST)
CHECK = "zj/app-01/data-disk"


@pytest.fixture
def inventory(tmp_path: Path, robots: RobotServer) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            channels:
              - {{name: ops-wecom, type: wecom, key: "env:T_WECOM_KEY", base_url: "{robots.base_url}"}}
            sites:
              - name: zj
                contacts:
                  - {{name: 王主任, role: hospital IT, phone: "13700000003"}}
                sla:
                  calendar: business
                  business_hours: "08:30-17:30"
                  cutoff: "18:00"
                  severities:
                    critical: {{respond: 30m, resolve: 4h}}
                alerts:
                  channels: [ops-wecom]
                  escalate_after: 10m
                  escalate_to: [王主任]
                  auto_incident: true
                  sla_warning: 15m
                duty:
                  people: {{张工: "13800000001", 李工: "13800000002"}}
                  weekly:
                    mon: {{A: 张工, B: 李工}}
                    tue: {{A: 李工, B: 张工}}
                    wed: {{A: 张工, B: 李工}}
                    thu: {{A: 李工, B: 张工}}
                    fri: {{A: 张工, B: 李工}}
                    sat: {{A: 李工, B: 张工}}
                    sun: {{A: 张工, B: 李工}}
            """
        ),
        encoding="utf-8",
    )
    return path


def run_pass(store_url: str, inventory: Path, at: datetime, *options: str):
    with time_machine.travel(at, tick=False):
        return runner.invoke(
            app, ["--db", store_url, "alert", "run", "-i", str(inventory), *options]
        )


def test_run_notifies_opens_an_incident_escalates_and_warns_of_the_sla(
    store_url: str, inventory: Path, robots: RobotServer
) -> None:
    with Store.open(store_url) as store:
        record(store, CHECK, State.CRITICAL, EVE - timedelta(minutes=1))

    first = run_pass(store_url, inventory, EVE, "--json")
    assert first.exit_code == 2, first.output
    done = json.loads(first.stdout)
    (delivery,) = done.pop("deliveries")
    assert done == {
        "at": "2026-09-30T10:30:00+00:00",
        "notices": [
            {
                "alert_id": 1,
                "check_id": CHECK,
                "site": "zj",
                "state": "CRITICAL",
                "reason": "problem",
                "level": 0,
                "notified": "duty A",
            }
        ],
        "incidents": [1],
        "sla_warnings": [],
        "queued": 1,
        "delivered": {"sent": 1, "failed": 0, "broken": 0},
        "complete": True,
        "worst": "CRITICAL",
    }
    assert (delivery["channel"], delivery["status"], delivery["title"]) == (
        "ops-wecom", "sent", "【严重】zj app-01 data-disk",
    )  # fmt: skip
    markdown, mention = robots.bodies("wecom")
    assert "> 已建事件 #1（紧急），响应时限 2026-10-08 09:00" in markdown["markdown"]["content"]
    assert mention["text"]["mentioned_mobile_list"] == ["13800000001"]

    quiet = run_pass(store_url, inventory, EVE + timedelta(minutes=5))
    assert quiet.exit_code == 2
    assert quiet.stdout == (
        "nothing to notify\n"
        "0 messages queued: 0 sent, 0 failed, 0 broken\n"
        "1 open alert, worst CRITICAL\n"
    )

    escalated = run_pass(store_url, inventory, EVE + timedelta(minutes=10))
    assert escalated.exit_code == 2
    assert escalated.stdout == (
        f"alert 1 {CHECK} CRITICAL: escalation, to duty B\n"
        "1 message queued: 1 sent, 0 failed, 0 broken\n"
        "1 open alert, worst CRITICAL\n"
    )
    assert robots.bodies("wecom")[-1]["text"]["mentioned_mobile_list"] == [
        "13800000001", "13800000002",
    ]  # fmt: skip

    with Store.open(store_url) as store:
        record(store, CHECK, State.OK, EVE + timedelta(minutes=12))
    recovered = run_pass(store_url, inventory, EVE + timedelta(minutes=12))
    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout == (
        f"alert 1 {CHECK} OK: recovery, to duty B\n"
        "1 message queued: 1 sent, 0 failed, 0 broken\n"
        "0 open alerts\n"
    )

    # The incident stays open: 14 minutes before its response is due (09:00 on Thursday
    # 8 October, the first workday after the holiday), the people on duty are warned.
    warned = run_pass(store_url, inventory, datetime(2026, 10, 8, 8, 46, tzinfo=CST))
    assert warned.exit_code == 0
    assert warned.stdout == (
        "incident 1: SLA respond clock running out, people on duty warned\n"
        "1 message queued: 1 sent, 0 failed, 0 broken\n"
        "0 open alerts\n"
    )
    assert "【SLA】zj 事件 #1 响应即将超时" in robots.bodies("wecom")[-2]["markdown"]["content"]
    with Store.open(store_url) as store:
        reasons = [row.reason for row in notifications(store)]
    assert reasons == ["sla-respond", "recovery", "escalation", "problem"]


def test_run_reports_a_broken_channel(
    store_url: str, inventory: Path, robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_WECOM_KEY", "wk-Revoked-0000")
    with Store.open(store_url) as store:
        record(store, CHECK, State.WARNING, EVE - timedelta(minutes=1))
    done = run_pass(store_url, inventory, EVE)
    assert done.exit_code == 1, done.output
    assert done.stdout == (
        f"alert 1 {CHECK} WARNING: problem, to duty A\n"
        "1 message queued: 0 sent, 0 failed, 1 broken\n"
        "  ops-wecom: broken: errcode 93000 invalid webhook key: invalid webhook url, hint: "
        "[1700000000]\n"
        "1 open alert, worst WARNING\n"
    )
    assert "wk-Revoked-0000" not in done.output
    with Store.open(store_url) as store:
        (row,) = notifications(store)
    assert (row.status, row.reason, row.alert_id) == ("broken", "problem", 1)


def test_run_refuses_bad_input_and_reports_an_unreachable_store(
    tmp_path: Path, inventory: Path
) -> None:
    missing = runner.invoke(app, ["--db", str(tmp_path / "o.db"), "alert", "run"])
    assert missing.exit_code == 2
    assert "--inventory" in missing.stderr
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("sites:\n  - name: zj\n    alerts: {channels: [ops-sms]}\n")
    refused = runner.invoke(
        app, ["--db", str(tmp_path / "o.db"), "alert", "run", "-i", str(invalid)]
    )
    assert refused.exit_code == 2
    assert "no channel named 'ops-sms'" in refused.stderr
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    down = f"postgresql://postgres@127.0.0.1:{port}/opsctl"
    unreachable = runner.invoke(app, ["--db", down, "alert", "run", "-i", str(inventory)])
    assert unreachable.exit_code == 3
    assert unreachable.stderr.startswith("opsctl: store: ")
    assert "Traceback" not in unreachable.output
