"""``opsctl notify test``, ``notify channels`` and ``notify log`` against the real robot
receivers on 127.0.0.1, on a SQLite and a PostgreSQL store: what reaches the receiver, what
is retried, what is recorded, and what is refused."""

from __future__ import annotations

import json
import socket
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from notify_receivers import RobotServer
from tests_support_alerts import record
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.contract import State
from opsctl.oncall import notifications
from opsctl.store import Store

runner = CliRunner()

CST = ZoneInfo("Asia/Shanghai")
#: Wednesday 30 September 2026, 18:30 in Zhejiang.
T0 = datetime(2026, 9, 30, 18, 30, tzinfo=CST)

TEST_MARKDOWN = (
    '**<font color="info">【测试】opsctl 通知测试</font>**\n'
    "> 这是通道 ops-wecom 的测试消息，无需处理。\n"
    "> 使用该通道的站点：zj"
)


@pytest.fixture
def inventory(tmp_path: Path, robots: RobotServer) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            channels:
              - {{name: ops-wecom, type: wecom, key: "env:T_WECOM_KEY", base_url: "{robots.base_url}"}}
              - name: ops-dingtalk
                type: dingtalk
                access_token: "env:T_DT_TOKEN"
                secret: "env:T_DT_SECRET"
                base_url: "{robots.base_url}"
              - name: ops-hook
                type: webhook
                url: "{robots.base_url}/hook?tenant=his"
                secret: "env:T_WH_SECRET"
                lang: en
            sites:
              - name: zj
                title: 浙江药具发放
                alerts: {{channels: [ops-wecom]}}
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
              - name: xj
                timezone: Asia/Urumqi
                alerts: {{channels: [ops-dingtalk]}}
            """
        ),
        encoding="utf-8",
    )
    return path


def invoke(store_url: str, *args: str, at: datetime | None = None):
    if at is None:
        return runner.invoke(app, ["--db", store_url, *args])
    with time_machine.travel(at, tick=False):
        return runner.invoke(app, ["--db", store_url, *args])


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# --------------------------------------------------------------------------- notify test


def test_a_test_message_reaches_the_robot_and_is_recorded(
    store_url: str, inventory: Path, robots: RobotServer
) -> None:
    sent = invoke(store_url, "notify", "test", "ops-wecom", "-i", str(inventory), at=T0)
    assert sent.exit_code == 0, sent.output
    assert sent.stdout == "ops-wecom: sent (1 attempt): sent\n"
    assert robots.bodies("wecom") == [
        {"msgtype": "markdown", "markdown": {"content": TEST_MARKDOWN}}
    ]
    with Store.open(store_url) as store:
        (row,) = notifications(store)
    assert (row.channel, row.site, row.reason, row.status, row.attempts) == (
        "ops-wecom", "zj", "test", "sent", 1,
    )  # fmt: skip
    assert (row.title, row.detail, row.at) == ("【测试】opsctl 通知测试", "sent", T0)
    assert (row.alert_id, row.incident_id) == (None, None)


def test_a_test_message_in_english_on_a_signed_webhook(
    store_url: str, inventory: Path, robots: RobotServer
) -> None:
    sent = invoke(store_url, "notify", "test", "ops-hook", "-i", str(inventory), "--json", at=T0)
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout) == {
        "channel": "ops-hook",
        "ok": True,
        "status": "sent",
        "detail": "sent",
        "attempts": 1,
        "sent_at": "2026-09-30T10:30:00+00:00",
        "title": "[TEST] opsctl notification test",
        "count": 1,
        "type": "webhook",
        "lang": "en",
        "sites": [],
        "recorded": True,
    }
    (request,) = robots.of("webhook")
    assert request.accepted and request.query == {"tenant": "his"}
    body = request.json
    assert (body["title"], body["level"], body["lines"], body["mentions"]) == (
        "[TEST] opsctl notification test",
        "notice",
        ["A test message on channel ops-hook; nothing to do.", "No site uses this channel yet."],
        [],
    )
    # --lang zh on an English channel: the whole message is Chinese.
    chinese = invoke(store_url, "notify", "test", "ops-hook", "-i", str(inventory), "--lang", "zh")
    assert chinese.exit_code == 0, chinese.output
    last = robots.of("webhook")[-1].json
    assert (last["title"], last["state_label"]) == ("【测试】opsctl 通知测试", "恢复")
    assert last["lines"] == ["这是通道 ops-hook 的测试消息，无需处理。", "尚无站点使用该通道。"]


def test_an_invalid_wecom_key_is_a_broken_channel(
    store_url: str, inventory: Path, robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_WECOM_KEY", "wk-Revoked-0000")
    broken = invoke(store_url, "notify", "test", "ops-wecom", "-i", str(inventory), "--json", at=T0)
    assert broken.exit_code == 2
    outcome = json.loads(broken.stdout)
    detail = "errcode 93000 invalid webhook key: invalid webhook url, hint: [1700000000]"
    assert (outcome["status"], outcome["ok"], outcome["attempts"], outcome["detail"]) == (
        "broken", False, 1, detail,
    )  # fmt: skip
    assert len(robots.of("wecom")) == 1  # not retried: retrying cannot fix a key
    assert "wk-Revoked-0000" not in broken.output
    with Store.open(store_url) as store:
        (row,) = notifications(store, failed_only=True)
    assert (row.channel, row.status, row.detail, row.reason) == (
        "ops-wecom",
        "broken",
        detail,
        "test",
    )


def test_a_passing_server_error_is_retried(
    store_url: str, inventory: Path, robots: RobotServer
) -> None:
    robots.fail_next("wecom", 500)
    sent = invoke(store_url, "notify", "test", "ops-wecom", "-i", str(inventory))
    assert sent.exit_code == 0, sent.output
    assert sent.stdout == "ops-wecom: sent (2 attempts): sent\n"
    assert [r.answer for r in robots.of("wecom")] == [500, {"errcode": 0, "errmsg": "ok"}]
    assert robots.bodies("wecom")[0]["markdown"]["content"] == TEST_MARKDOWN
    with Store.open(store_url) as store:
        (row,) = notifications(store)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_receiver_that_keeps_failing_is_given_up_after_three_attempts(
    store_url: str, inventory: Path, robots: RobotServer
) -> None:
    robots.fail_next("wecom", 503, 503, 503)
    failed = invoke(store_url, "notify", "test", "ops-wecom", "-i", str(inventory))
    assert failed.exit_code == 2
    where = robots.base_url.removeprefix("http://")
    assert failed.stdout == (
        f"ops-wecom: failed (3 attempts): gave up after 3 attempts: HTTP 503 from {where}\n"
    )
    assert len(robots.of("wecom")) == 3


def test_the_message_is_sent_even_when_the_store_is_down(
    inventory: Path, robots: RobotServer
) -> None:
    down = f"postgresql://postgres@127.0.0.1:{closed_port()}/opsctl"
    sent = invoke(down, "notify", "test", "ops-wecom", "-i", str(inventory), "--json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["recorded"] is False
    assert sent.stderr.startswith("opsctl: warning: the delivery was not recorded: store: ")
    assert "Traceback" not in sent.output
    assert robots.bodies("wecom")[0]["markdown"]["content"] == TEST_MARKDOWN


def test_an_unknown_channel_is_refused_with_the_known_ones(
    tmp_path: Path, inventory: Path, robots: RobotServer
) -> None:
    db = str(tmp_path / "opsctl.db")
    unknown = invoke(db, "notify", "test", "ops-sms", "-i", str(inventory))
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        f"opsctl: {inventory}: no channel named 'ops-sms' "
        "(channels: ops-dingtalk, ops-hook, ops-wecom)\n"
    )
    bad_lang = invoke(db, "notify", "test", "ops-wecom", "-i", str(inventory), "--lang", "fr")
    assert bad_lang.exit_code == 2
    assert "--lang" in bad_lang.stderr
    missing = invoke(db, "notify", "test", "ops-wecom", "-i", str(tmp_path / "nowhere.yaml"))
    assert missing.exit_code == 2
    assert "inventory file not found" in missing.stderr
    assert robots.received == []


# --------------------------------------------------------------------------- notify channels


def test_channels_are_listed_with_secret_references_only(
    tmp_path: Path, inventory: Path, robots: RobotServer
) -> None:
    db = str(tmp_path / "opsctl.db")
    listed = invoke(db, "notify", "channels", "-i", str(inventory), "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [
        {
            "name": "ops-wecom",
            "type": "wecom",
            "lang": "zh",
            "sites": ["zj"],
            "address": robots.base_url,
            "secrets": {"key": "env:T_WECOM_KEY"},
            "per_minute": 20,
            "timeout": 10.0,
        },
        {
            "name": "ops-dingtalk",
            "type": "dingtalk",
            "lang": "zh",
            "sites": ["xj"],
            "address": robots.base_url,
            "secrets": {"access_token": "env:T_DT_TOKEN", "secret": "env:T_DT_SECRET"},
            "per_minute": 20,
            "timeout": 10.0,
        },
        {
            "name": "ops-hook",
            "type": "webhook",
            "lang": "en",
            "sites": [],
            "address": f"{robots.base_url}/hook",
            "secrets": {"secret": "env:T_WH_SECRET"},
            "per_minute": 20,
            "timeout": 10.0,
        },
    ]
    table = invoke(db, "notify", "channels", "-i", str(inventory))
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CHANNEL", "TYPE", "LANG", "SITES", "ADDRESS", "SECRETS"]
    assert lines[1].split() == [
        "ops-wecom",
        "wecom",
        "zh",
        "zj",
        robots.base_url,
        "key=env:T_WECOM_KEY",
    ]
    for secret in (robots.wecom_key, robots.dingtalk_token, robots.dingtalk_secret, "tenant=his"):
        assert secret not in table.stdout and secret not in listed.stdout


# --------------------------------------------------------------------------- notify log


def test_the_log_shows_what_a_pass_and_a_test_sent_in_site_time(
    store_url: str, inventory: Path, robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(store_url) as store:
        record(store, "zj/app-01/data-disk", State.CRITICAL, T0 - timedelta(minutes=1))
    passed = invoke(store_url, "alert", "run", "-i", str(inventory), at=T0)
    assert passed.exit_code == 2, passed.output
    assert [b["msgtype"] for b in robots.bodies("wecom")] == ["markdown", "text"]
    # DingTalk refuses an unknown token (errcode 300001): the message failed, not the channel.
    monkeypatch.setenv("T_DT_TOKEN", "dt-Unknown")
    refused = invoke(
        store_url, "notify", "test", "ops-dingtalk", "-i", str(inventory),
        at=T0 + timedelta(minutes=5),
    )  # fmt: skip
    assert refused.exit_code == 2
    assert (
        refused.stdout == "ops-dingtalk: failed (1 attempt): errcode 300001: token is not exist\n"
    )

    later = T0 + timedelta(minutes=10)
    log = invoke(store_url, "notify", "log", "-i", str(inventory), "--json", at=later)
    assert log.exit_code == 0, log.output
    shown = json.loads(log.stdout)
    assert shown["since"] == "2026-09-29T10:40:00+00:00"
    for entry in shown["notifications"]:
        del entry["id"]
    assert shown["notifications"] == [
        {
            "at": "2026-09-30T16:35:00+06:00",  # xj keeps Urumqi time
            "channel": "ops-dingtalk",
            "status": "failed",
            "attempts": 1,
            "title": "【测试】opsctl 通知测试",
            "detail": "errcode 300001: token is not exist",
            "site": "xj",
            "reason": "test",
            "alert_id": None,
            "incident_id": None,
        },
        {
            "at": "2026-09-30T18:30:00+08:00",
            "channel": "ops-wecom",
            "status": "sent",
            "attempts": 1,
            "title": "【严重】zj app-01 data-disk",
            "detail": "sent",
            "site": "zj",
            "reason": "problem",
            "alert_id": 1,
            "incident_id": None,
        },
    ]

    def channels(*options: str) -> list[str]:
        found = invoke(
            store_url, "notify", "log", "-i", str(inventory), "--json", *options, at=later
        )
        assert found.exit_code == 0, found.output
        return [row["channel"] for row in json.loads(found.stdout)["notifications"]]

    assert channels("--failed") == ["ops-dingtalk"]
    assert channels("--site", "zj") == ["ops-wecom"]
    assert channels("--channel", "ops-wecom") == ["ops-wecom"]
    assert channels("--limit", "1") == ["ops-dingtalk"]
    assert channels("--since", "7m") == ["ops-dingtalk"]
    assert channels("--since", "2026-09-30T18:31") == ["ops-dingtalk"]  # site-less: --tz time
    assert channels("--since", "2026-09-30T10:29:00+00:00") == ["ops-dingtalk", "ops-wecom"]

    table = invoke(store_url, "notify", "log", "-i", str(inventory), at=later)
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "AT", "CHANNEL", "SITE", "STATUS", "TRIES", "REASON", "ABOUT", "TITLE", "DETAIL",
    ]  # fmt: skip
    assert lines[1].startswith("2026-09-30 16:35:00  ops-dingtalk  xj")
    assert lines[2].startswith("2026-09-30 18:30:00  ops-wecom     zj")
    assert "alert 1" in lines[2]

    quiet = invoke(store_url, "notify", "log", "--since", "1m", at=later)
    assert (quiet.exit_code, quiet.stdout) == (0, "no notifications since 2026-09-30 18:39:00\n")


def test_the_log_refuses_bad_options(tmp_path: Path, inventory: Path) -> None:
    db = str(tmp_path / "opsctl.db")
    since = invoke(db, "notify", "log", "--since", "yesterday")
    assert since.exit_code == 2
    assert since.stderr.startswith("opsctl: --since: expected a duration like")
    site = invoke(db, "notify", "log", "-i", str(inventory), "--site", "gz")
    assert site.exit_code == 2
    assert site.stderr == "opsctl: --site: no site named 'gz' (sites: xj, zj)\n"
    limit = invoke(db, "notify", "log", "--limit", "0")
    assert limit.exit_code == 2
    assert "--limit" in limit.stderr
