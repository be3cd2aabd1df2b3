"""Notifications: the messages, each channel against a real receiver on 127.0.0.1 (the robots'
documented request checks, a signed webhook, SMTP with STARTTLS), and the dispatcher's rate
limit, merging, retries and broken channels under an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

import pytest
import trustme
from notify_receivers import MailServer, RobotServer, free_port
from pydantic import ValidationError

from opsctl.contract import State
from opsctl.notify import (
    Delivery,
    DingTalkRobot,
    Dispatcher,
    EmailChannel,
    FeishuBot,
    Message,
    WebhookChannel,
    WeComRobot,
    merge,
    parse_channel,
    title_for,
)
from opsctl.notify.channels import dingtalk_sign, feishu_sign, webhook_signature
from opsctl.notify.message import (
    cut_utf8,
    dingtalk_payload,
    email_parts,
    json_payload,
    plain_text,
    wecom_payloads,
)

SINCE = datetime(2024, 5, 1, 0, 30, tzinfo=UTC)  # 08:30 in Asia/Shanghai
LINK = "https://ops.example.cn/i/42"
ON_DUTY = (("张三", "+86 138-0000-0001"), ("李四", "13900000002"))
SUMMARY = "患者 13812345678 挂号失败，身份证 110101199003071234"
MASKED_SUMMARY = "患者 138****5678 挂号失败，身份证 110101********1234"
TITLE = "【严重】协和医院 his-db db.tablespace"


def alert(**changes: object) -> Message:
    fields: dict[str, object] = {
        "title": TITLE,
        "lines": ("USERS 表空间 95%",),
        "level": "alert",
        "site": "协和医院",
        "target": "his-db",
        "check": "db.tablespace",
        "state": State.CRITICAL,
        "since": SINCE,
        "summary": SUMMARY,
        "on_duty": ON_DUTY,
        "link": LINK,
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


WECOM_MARKDOWN = (
    '**<font color="warning">【严重】协和医院 his-db db.tablespace</font>**\n'
    "> 站点：协和医院\n"
    "> 对象：his-db\n"
    "> 检查：db.tablespace\n"
    "> 状态：严重\n"
    "> 开始：2024-05-01 08:30\n"
    f"> 摘要：{MASKED_SUMMARY}\n"
    "> USERS 表空间 95%\n"
    "\n"
    "值班：张三、李四\n"
    f"[详情]({LINK})"
)
MENTION = {
    "msgtype": "text",
    "text": {
        "content": "↑ 请值班处理：张三、李四",
        "mentioned_mobile_list": ["13800000001", "13900000002"],
    },
}
PLAIN = (
    f"{TITLE}\n"
    "站点：协和医院\n"
    "对象：his-db\n"
    "检查：db.tablespace\n"
    "状态：严重\n"
    "开始：2024-05-01 08:30\n"
    f"摘要：{MASKED_SUMMARY}\n"
    "USERS 表空间 95%\n"
    "值班：张三、李四\n"
    f"详情：{LINK}"
)


class FakeClock:
    """Unix time that moves only when something sleeps; records every sleep."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 3))
            self.now += seconds


def wecom(robots: RobotServer, **changes: object) -> WeComRobot:
    return WeComRobot(name="wecom", key="env:T_WECOM_KEY", base_url=robots.base_url, **changes)


def dingtalk(robots: RobotServer, **changes: object) -> DingTalkRobot:
    return DingTalkRobot(
        name="dingtalk",
        access_token="env:T_DT_TOKEN",
        secret="env:T_DT_SECRET",
        base_url=robots.base_url,
        **changes,
    )


def feishu(robots: RobotServer, **changes: object) -> FeishuBot:
    return FeishuBot(
        name="feishu",
        hook="env:T_FS_HOOK",
        secret="env:T_FS_SECRET",
        base_url=robots.base_url,
        **changes,
    )


def webhook(robots: RobotServer) -> WebhookChannel:
    return WebhookChannel(name="hook", url=f"{robots.base_url}/hook", secret="env:T_WH_SECRET")


# --------------------------------------------------------------------------- messages


def test_plain_text_masks_personal_data_and_names_the_people_on_duty() -> None:
    assert plain_text(alert()) == PLAIN


def test_english_rendering_of_a_recovery_rings_nobody() -> None:
    message = alert(
        title=title_for(State.OK, "PUMCH", "his-db", "db.tablespace", lang="en"),
        level="recovery",
        state=State.OK,
        lines=(),
        summary="USERS 71%",
        link=None,
        timezone="UTC",
    )
    assert plain_text(message, "en") == (
        "[RECOVERED] PUMCH his-db db.tablespace\n"
        "Site: 协和医院\n"
        "Target: his-db\n"
        "Check: db.tablespace\n"
        "State: RECOVERED\n"
        "Recovered: 2024-05-01 00:30\n"
        "Summary: USERS 71%\n"
        "On duty: 张三, 李四"
    )
    assert message.mobiles() == []
    assert len(wecom_payloads(message)) == 1
    assert dingtalk_payload(message)["at"] == {"atMobiles": [], "isAtAll": False}


def test_title_for_each_state() -> None:
    assert (
        title_for(State.CRITICAL, "协和医院", "his-db", "db.io") == "【严重】协和医院 his-db db.io"
    )
    assert title_for(State.WARNING, "a", "b", "c") == "【警告】a b c"
    assert title_for(State.UNKNOWN, "a", "b", "c") == "【未知】a b c"
    assert title_for(State.OK, "a", "b", "c") == "【恢复】a b c"
    assert title_for(State.WARNING, "a", "b", "c", lang="en") == "[WARNING] a b c"


def test_message_refuses_a_naive_time_and_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        alert(since=datetime(2024, 5, 1, 8, 30))  # noqa: DTZ001
    with pytest.raises(ValueError, match="level"):
        alert(level="page")
    with pytest.raises(ValueError, match="IANA"):
        alert(timezone="Mars/Olympus")


def test_phones_ring_but_never_show_where_the_platform_does_not_need_them() -> None:
    message = alert()
    markdown, mention = wecom_payloads(message)
    for text in (markdown["markdown"]["content"], plain_text(message), *email_parts(message)):
        assert "13800000001" not in text and "0001" not in text
        assert "13812345678" not in text and "199003071234" not in text
    assert mention == MENTION


def test_merge_lists_each_message_on_one_line() -> None:
    merged = merge([alert(summary=f"第 {i} 条，联系 13812345678") for i in range(3)])
    assert merged.title == "另有 3 条告警"
    assert merged.count == 3
    assert merged.lines == tuple(
        f"[严重] 协和医院/his-db/db.tablespace: 第 {i} 条，联系 138****5678 (08:30)"
        for i in range(3)
    )
    assert merged.on_duty == ON_DUTY
    assert merge([merged, alert()]).count == 4
    assert merge([alert()], "en").title == "1 more alert"
    many = merge([alert(summary=f"第 {i} 条") for i in range(60)])
    assert many.title == "另有 60 条告警" and many.count == 60
    assert len(many.lines) == 51
    assert many.lines[-2].endswith("第 49 条 (08:30)")
    assert many.lines[-1] == "…… 另有 10 条未列出"


def test_cut_utf8_never_splits_a_character() -> None:
    assert cut_utf8("磁盘满了", 7) == "磁盘"
    assert cut_utf8("磁盘满了", 6) == "磁盘"
    assert cut_utf8("a磁盘", 3) == "a"
    assert cut_utf8("a磁盘", 4) == "a磁"
    assert cut_utf8("ok", 10) == "ok"


def test_json_payload() -> None:
    sent = datetime(2024, 5, 1, 0, 31, tzinfo=UTC)
    assert json_payload(alert(), sent) == {
        "version": 1,
        "title": TITLE,
        "level": "alert",
        "state": "CRITICAL",
        "state_label": "严重",
        "site": "协和医院",
        "target": "his-db",
        "check": "db.tablespace",
        "since": "2024-05-01T00:30:00+00:00",
        "summary": MASKED_SUMMARY,
        "lines": ["USERS 表空间 95%"],
        "on_duty": [{"name": "张三"}, {"name": "李四"}],
        "mentions": ["13800000001", "13900000002"],
        "link": LINK,
        "sent_at": "2024-05-01T00:31:00+00:00",
    }


# --------------------------------------------------------------------------- settings


def test_channel_settings_are_strict() -> None:
    channel = parse_channel({"type": "wecom", "name": "ops-group", "key": "env:K"})
    assert isinstance(channel, WeComRobot)
    with pytest.raises(ValidationError, match="secret reference"):
        WeComRobot(name="w", key="plain-key-typed-in")
    with pytest.raises(ValidationError, match="exactly one of key and url"):
        WeComRobot(name="w", key="env:K", url="env:U")
    with pytest.raises(ValidationError, match="extra"):
        parse_channel({"type": "dingtalk", "name": "d", "access_token": "env:T", "colour": 1})
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_channel({"type": "sms", "name": "x"})
    with pytest.raises(ValidationError, match="only over TLS"):
        parse_channel(
            {
                "type": "email",
                "name": "m",
                "host": "mail",
                "from": "ops@h.cn",
                "to": ["a@h.cn"],
                "starttls": False,
                "user": "ops",
                "password": "env:P",
            }
        )
    with pytest.raises(ValidationError):
        channel.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- WeCom


def test_wecom_markdown_then_a_text_that_rings_the_people_on_duty(robots: RobotServer) -> None:
    delivery = wecom(robots).send(alert())
    assert (delivery.status, delivery.ok, delivery.detail) == ("sent", True, "sent")
    assert robots.bodies("wecom") == [
        {"msgtype": "markdown", "markdown": {"content": WECOM_MARKDOWN}},
        MENTION,
    ]


def test_wecom_text_rings_in_the_same_message(robots: RobotServer) -> None:
    delivery = wecom(robots, msgtype="text").send(alert())
    assert delivery.ok
    assert robots.bodies("wecom") == [
        {
            "msgtype": "text",
            "text": {
                "content": PLAIN,
                "mentioned_mobile_list": ["13800000001", "13900000002"],
            },
        }
    ]


@pytest.mark.parametrize("offset", ["", "a", "ab"])
def test_wecom_markdown_is_cut_to_4096_bytes(robots: RobotServer, offset: str) -> None:
    summary = offset + "数据库连接池耗尽" * 400
    delivery = wecom(robots).send(alert(summary=summary, on_duty=()))
    assert delivery.ok, delivery.detail
    (body,) = robots.bodies("wecom")
    content = body["markdown"]["content"]
    footer = f"\n(内容过长，已截断)\n\n[详情]({LINK})"
    assert content.endswith(footer)
    kept = content[: -len(footer)]
    full = WECOM_MARKDOWN.replace(MASKED_SUMMARY, summary).split("\n\n")[0]
    assert full.startswith(kept) and len(kept) > 100
    size = len(content.encode("utf-8"))
    assert size <= 4096
    # Not a byte more would fit: the next character of the full text does not.
    assert size + len(full[len(kept)].encode("utf-8")) > 4096


def test_wecom_text_is_cut_to_2048_bytes_keeping_the_mentions(robots: RobotServer) -> None:
    delivery = wecom(robots, msgtype="text").send(alert(summary="接口超时" * 300, link=None))
    assert delivery.ok, delivery.detail
    (body,) = robots.bodies("wecom")
    content = body["text"]["content"]
    assert 2045 <= len(content.encode("utf-8")) <= 2048
    assert content.endswith("接口超时\n(内容过长，已截断)\n值班：张三、李四")
    assert body["text"]["mentioned_mobile_list"] == ["13800000001", "13900000002"]


def test_wecom_too_long_without_cutting_is_refused_by_the_receiver(robots: RobotServer) -> None:
    # The receiver enforces the limit: a body over 4,096 bytes is answered with 40058.
    from opsctl.notify.channels import post_json

    body = json.dumps({"msgtype": "markdown", "markdown": {"content": "满" * 1400}}).encode()
    answer = post_json(
        f"{robots.base_url}/cgi-bin/webhook/send?key={robots.wecom_key}", body, timeout=5
    )
    assert answer["errcode"] == 40058


def test_wecom_invalid_key_breaks_the_channel(
    robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_WECOM_KEY", "wk-Wrong-0000")
    delivery = wecom(robots).send(alert())
    assert (delivery.status, delivery.ok) == ("broken", False)
    assert delivery.detail == (
        "errcode 93000 invalid webhook key: invalid webhook url, hint: [1700000000]"
    )
    assert "wk-Wrong-0000" not in repr(delivery) + delivery.detail


def test_wecom_rate_limited_and_other_errors(robots: RobotServer) -> None:
    robots.fail_next("wecom", 45009, 40008)
    channel = wecom(robots, msgtype="text")
    limited = channel.send(alert())
    assert (limited.status, limited.retry_after) == ("retry", 60.0)
    assert limited.detail == "errcode 45009 rate limited: api freq out of limit"
    other = channel.send(alert())
    assert (other.status, other.detail) == ("failed", "errcode 40008: scripted error")


def test_wecom_mention_failing_after_the_alert_is_still_sent(robots: RobotServer) -> None:
    robots.fail_next("wecom", 0, 45009)
    delivery = wecom(robots).send(alert())
    assert delivery.status == "sent"
    assert delivery.detail == (
        "sent; the mention was not delivered: errcode 45009 rate limited: api freq out of limit"
    )


def test_wecom_http_500_and_refused_connection_are_retried(robots: RobotServer) -> None:
    robots.fail_next("wecom", 500)
    delivery = wecom(robots).send(alert())
    port = robots.base_url.rsplit(":", 1)[1]
    assert (delivery.status, delivery.detail) == ("retry", f"HTTP 500 from 127.0.0.1:{port}")
    closed = free_port()
    refused = WeComRobot(
        name="w", key="env:T_WECOM_KEY", base_url=f"http://127.0.0.1:{closed}"
    ).send(alert())
    assert (refused.status, refused.detail) == (
        "retry",
        f"connection to 127.0.0.1:{closed} refused",
    )


# --------------------------------------------------------------------------- DingTalk


def test_dingtalk_signed_markdown_with_at_mobiles(robots: RobotServer) -> None:
    now = time.time()
    delivery = dingtalk(robots).send(alert(), now=now)
    assert delivery.ok, delivery.detail
    (request,) = robots.of("dingtalk")
    timestamp = str(int(now * 1000))
    assert request.query["timestamp"] == timestamp
    assert request.query["access_token"] == robots.dingtalk_token
    assert unquote(dingtalk_sign(int(timestamp), robots.dingtalk_secret)) == request.query["sign"]
    assert request.json == {
        "msgtype": "markdown",
        "markdown": {
            "title": TITLE,
            "text": '#### <font color="#c62828">【严重】协和医院 his-db db.tablespace</font>\n\n'
            "- 站点：协和医院\n"
            "- 对象：his-db\n"
            "- 检查：db.tablespace\n"
            "- 状态：严重\n"
            "- 开始：2024-05-01 08:30\n"
            f"- 摘要：{MASKED_SUMMARY}\n"
            "- USERS 表空间 95%\n\n"
            "值班：@13800000001 @13900000002\n\n"
            f"[详情]({LINK})",
        },
        "at": {"atMobiles": ["13800000001", "13900000002"], "isAtAll": False},
    }


def test_dingtalk_sign_matches_the_documented_formula() -> None:
    digest = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode().replace("+", "%2B").replace("/", "%2F")
    assert dingtalk_sign(1700000000000, "SECabc") == expected.replace("=", "%3D")


def test_dingtalk_wrong_secret_or_stale_timestamp_breaks(
    robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = dingtalk(robots).send(alert(), now=time.time() - 2 * 3600)
    assert (stale.status, stale.detail) == (
        "broken",
        "errcode 310000 signature, keyword or IP refused: sign not match",
    )
    monkeypatch.setenv("T_DT_SECRET", "SECnot-the-one")
    wrong = dingtalk(robots).send(alert())
    assert wrong.status == "broken"
    assert "SECnot-the-one" not in wrong.detail


def test_dingtalk_too_fast_is_retried(robots: RobotServer) -> None:
    robots.fail_next("dingtalk", 130101)
    delivery = dingtalk(robots).send(alert())
    assert (delivery.status, delivery.retry_after) == ("retry", 60.0)
    assert delivery.detail == (
        "errcode 130101 sending too fast: send too fast, exceed 20 times per minute"
    )


# --------------------------------------------------------------------------- Feishu


def test_feishu_signed_post(robots: RobotServer) -> None:
    now = time.time()
    assert feishu(robots).send(alert(), now=now).ok
    (body,) = robots.bodies("feishu")
    assert body["timestamp"] == str(int(now))
    assert body["sign"] == feishu_sign(int(now), robots.feishu_secret)
    rows = [line for line in PLAIN.split("\n")[1:-1]]
    assert body["msg_type"] == "post"
    assert body["content"] == {
        "post": {
            "zh_cn": {
                "title": TITLE,
                "content": [[{"tag": "text", "text": row}] for row in rows]
                + [[{"tag": "a", "text": "详情", "href": LINK}]],
            }
        }
    }


def test_feishu_text_and_its_errors(robots: RobotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = feishu(robots, msgtype="text")
    assert channel.send(alert()).ok
    assert robots.bodies("feishu")[0]["content"] == {"text": PLAIN}
    robots.fail_next("feishu", 11232, 9499)
    assert channel.send(alert()).status == "retry"
    assert channel.send(alert()).detail == "code 9499 rate limited: Too Many Request"
    monkeypatch.setenv("T_FS_SECRET", "fs-wrong-secret")
    broken = channel.send(alert())
    assert (broken.status, broken.detail) == (
        "broken",
        "code 19021 signature refused: sign match fail or timestamp is not within one hour "
        "from current time",
    )


# --------------------------------------------------------------------------- webhook


def test_webhook_posts_signed_json(robots: RobotServer) -> None:
    now = 1_714_523_460.0  # 2024-05-01 00:31:00 UTC
    robots.clock = lambda: now
    assert webhook(robots).send(alert(), now=now).ok
    (request,) = robots.of("webhook")
    assert request.accepted
    assert request.headers["X-Opsctl-Timestamp"] == "1714523460"
    assert request.headers["X-Opsctl-Signature"] == webhook_signature(
        robots.webhook_secret, request.body
    )
    assert request.json == json_payload(alert(), datetime.fromtimestamp(now, UTC))


def test_webhook_with_the_wrong_secret_is_broken(
    robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_WH_SECRET", "wh-wrong")
    delivery = webhook(robots).send(alert())
    port = robots.base_url.rsplit(":", 1)[1]
    assert (delivery.status, delivery.detail) == (
        "broken",
        f"HTTP 401: 127.0.0.1:{port} refused the credentials",
    )


def test_an_unset_secret_breaks_the_channel_naming_only_the_reference(
    robots: RobotServer,
) -> None:
    channel = WeComRobot(name="w", key="env:T_NOT_SET_ANYWHERE", base_url=robots.base_url)
    delivery = channel.send(alert())
    assert (delivery.status, delivery.detail) == (
        "broken",
        "secret env:T_NOT_SET_ANYWHERE: environment variable T_NOT_SET_ANYWHERE is not set",
    )
    assert robots.received == []


# --------------------------------------------------------------------------- mail


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Testing Hospital CA")


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def email(port: int, ca_file: str | None, **changes: object) -> EmailChannel:
    settings: dict[str, object] = {
        "name": "mail",
        "host": "127.0.0.1",
        "port": port,
        "ca_file": ca_file,
        "user": "opsctl",
        "password": "env:T_MAIL_PASSWORD",
        "from": "opsctl@hospital.example.cn",
        "to": ["it-duty@hospital.example.cn", "dba@hospital.example.cn"],
        "timeout": 5,
    }
    settings.update(changes)
    return EmailChannel.model_validate(settings)


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None and part.get_content_charset() == "utf-8"
    return part.get_content().replace("\r\n", "\n")


def test_mail_over_starttls_with_html_and_text(
    ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_MAIL_PASSWORD", "Mail-Pass-19d0")
    with MailServer(ca) as server:
        delivery = email(server.port, ca_file).send(alert(), now=1_714_523_460.0)
    assert delivery.ok, delivery.detail
    (mail,) = server.mails
    assert server.logins == ["opsctl"]
    assert mail.mail_from == "opsctl@hospital.example.cn"
    assert mail.rcpt_tos == ["it-duty@hospital.example.cn", "dba@hospital.example.cn"]
    message = mail.message
    assert message["Subject"] == TITLE
    assert message["Date"] == "Wed, 01 May 2024 00:31:00 +0000"
    assert message["To"] == "it-duty@hospital.example.cn, dba@hospital.example.cn"
    # On the wire every line ends in CRLF.
    assert body(message, "plain") == PLAIN + "\n"
    assert body(message, "html") == (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN"><head><meta charset="utf-8"><title>'
        f"{TITLE}</title></head><body>\n"
        f'<h3 style="color:#c62828">{TITLE}</h3>\n'
        "<table>\n"
        '<tr><th align="left">站点</th><td>协和医院</td></tr>\n'
        '<tr><th align="left">对象</th><td>his-db</td></tr>\n'
        '<tr><th align="left">检查</th><td>db.tablespace</td></tr>\n'
        '<tr><th align="left">状态</th><td>严重</td></tr>\n'
        '<tr><th align="left">开始</th><td>2024-05-01 08:30</td></tr>\n'
        f'<tr><th align="left">摘要</th><td>{MASKED_SUMMARY}</td></tr>\n'
        '<tr><th align="left">值班</th><td>张三、李四</td></tr>\n'
        "</table>\n"
        "<ul><li>USERS 表空间 95%</li></ul>\n"
        f'<p><a href="{LINK}">详情</a></p>\n'
        "</body></html>\n"
    )


def test_mail_refused_login_untrusted_certificate_and_no_starttls_break(
    ca: trustme.CA, ca_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_MAIL_PASSWORD", "not-the-password")
    with MailServer(ca) as server:
        refused = email(server.port, ca_file).send(alert())
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        untrusted = email(server.port, str(other)).send(alert())
    assert refused.status == "broken"
    assert refused.detail.startswith(f"127.0.0.1:{server.port} refused the login of opsctl: 535")
    assert "not-the-password" not in refused.detail
    assert untrusted.status == "broken"
    assert untrusted.detail.startswith(f"TLS: certificate of 127.0.0.1:{server.port} not trusted")
    assert server.mails == []
    with MailServer(None, user=None) as plain:
        delivery = email(plain.port, ca_file, user=None, password=None).send(alert())
    assert (delivery.status, delivery.detail) == (
        "broken",
        f"127.0.0.1:{plain.port} does not offer STARTTLS",
    )
    assert plain.mails == []


def test_unreachable_mail_server_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_MAIL_PASSWORD", "Mail-Pass-19d0")
    port = free_port()
    clock = FakeClock(time.time())
    deliveries: list[Delivery] = []
    with Dispatcher(
        [email(port, None)], clock=clock, sleep=clock.sleep, on_delivery=deliveries.append
    ) as dispatcher:
        dispatcher.submit("mail", alert())
        assert dispatcher.flush(30)
    (delivery,) = deliveries
    assert (delivery.status, delivery.ok, delivery.attempts) == ("failed", False, 5)
    assert delivery.detail == f"gave up after 5 attempts: connection to 127.0.0.1:{port} refused"
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0]


# --------------------------------------------------------------------------- the dispatcher


def test_http_500_is_retried_with_backoff_then_sent(robots: RobotServer) -> None:
    robots.fail_next("wecom", 500, 500)
    clock = FakeClock(time.time())
    deliveries: list[Delivery] = []
    with Dispatcher(
        [wecom(robots, msgtype="text")],
        clock=clock,
        sleep=clock.sleep,
        on_delivery=deliveries.append,
    ) as dispatcher:
        dispatcher.submit("wecom", alert())
        assert dispatcher.flush(10)
    (delivery,) = deliveries
    assert (delivery.status, delivery.attempts, delivery.detail) == ("sent", 3, "sent")
    assert clock.sleeps == [2.0, 4.0]
    requests = robots.of("wecom")
    assert [r.answer for r in requests] == [500, 500, {"errcode": 0, "errmsg": "ok"}]
    assert len({r.body for r in requests}) == 1


def test_rate_limit_answer_waits_a_minute(robots: RobotServer) -> None:
    robots.fail_next("dingtalk", 130101)
    clock = FakeClock(time.time())
    deliveries: list[Delivery] = []
    with Dispatcher(
        [dingtalk(robots)], clock=clock, sleep=clock.sleep, on_delivery=deliveries.append
    ) as dispatcher:
        dispatcher.submit("dingtalk", alert())
        assert dispatcher.flush(10)
    assert [(d.status, d.attempts) for d in deliveries] == [("sent", 2)]
    assert clock.sleeps == [60.0]


def test_retries_are_bounded(robots: RobotServer) -> None:
    robots.fail_next("webhook", 503, 503, 503, 503, 503, 503)
    clock = FakeClock(time.time())
    robots.clock = clock
    deliveries: list[Delivery] = []
    with Dispatcher(
        [webhook(robots)],
        clock=clock,
        sleep=clock.sleep,
        on_delivery=deliveries.append,
        max_attempts=3,
    ) as dispatcher:
        dispatcher.submit("hook", alert())
        assert dispatcher.flush(10)
    port = robots.base_url.rsplit(":", 1)[1]
    (delivery,) = deliveries
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.detail == f"gave up after 3 attempts: HTTP 503 from 127.0.0.1:{port}"
    assert len(robots.of("webhook")) == 3


def test_a_burst_of_25_is_20_requests_with_the_rest_merged(robots: RobotServer) -> None:
    clock = FakeClock(time.time())
    robots.clock, robots.per_minute = clock, 20
    deliveries: list[Delivery] = []
    dispatcher = Dispatcher(
        [dingtalk(robots)],
        clock=clock,
        sleep=clock.sleep,
        on_delivery=deliveries.append,
        start=False,
    )
    for i in range(25):
        dispatcher.submit("dingtalk", alert(title=f"告警 {i}", summary=f"第 {i} 条"))
    dispatcher.start()
    assert dispatcher.flush(10)
    requests = robots.of("dingtalk")
    assert len(requests) == 20 and all(r.accepted for r in requests)
    titles = [r.json["markdown"]["title"] for r in requests]
    assert titles == [f"告警 {i}" for i in range(19)] + ["另有 6 条告警"]
    assert requests[-1].json["markdown"]["text"] == (
        '#### <font color="#c62828">另有 6 条告警</font>\n\n'
        "- 站点：协和医院\n"
        "- 状态：严重\n"
        + "\n".join(
            f"- [严重] 协和医院/his-db/db.tablespace: 第 {i} 条 (08:30)" for i in range(19, 25)
        )
        + "\n\n值班：@13800000001 @13900000002"
    )
    assert [d.status for d in deliveries] == ["sent"] * 20
    assert deliveries[-1].message is not None and deliveries[-1].message.count == 6
    assert clock.sleeps == []

    # The window is full: the next alerts wait (on the injected clock) until it slides.
    start = clock()
    for i in range(25, 28):
        dispatcher.submit("dingtalk", alert(title=f"告警 {i}"))
    assert dispatcher.flush(10)
    dispatcher.close()
    later = robots.of("dingtalk")[20:]
    assert [r.json["markdown"]["title"] for r in later] == ["告警 25", "告警 26", "告警 27"]
    assert all(r.accepted for r in later)
    assert sum(clock.sleeps) == pytest.approx(60.0)
    assert all(d.sent_at is not None for d in deliveries[20:])
    assert min(d.sent_at for d in deliveries[20:]) >= datetime.fromtimestamp(  # type: ignore[type-var]
        start, UTC
    ) + timedelta(seconds=60)


def test_wecom_mentions_count_against_the_window(robots: RobotServer) -> None:
    clock = FakeClock(time.time())
    robots.clock, robots.per_minute = clock, 20
    dispatcher = Dispatcher([wecom(robots)], clock=clock, sleep=clock.sleep, start=False)
    for i in range(25):
        dispatcher.submit("wecom", alert(title=f"告警 {i}"))
    dispatcher.start()
    assert dispatcher.close(10)
    requests = robots.of("wecom")
    assert len(requests) == 20 and all(r.accepted for r in requests)
    markdown = [r.json["markdown"]["content"] for r in requests if r.json["msgtype"] == "markdown"]
    assert len(markdown) == 10
    assert markdown[-1].startswith('**<font color="warning">另有 16 条告警</font>**\n')
    assert [r.json for r in requests if r.json["msgtype"] == "text"] == [MENTION] * 10


def test_a_broken_channel_sends_nothing_more(
    robots: RobotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_WECOM_KEY", "wk-Wrong-0000")
    deliveries: list[Delivery] = []
    dispatcher = Dispatcher(
        [wecom(robots), dingtalk(robots)], on_delivery=deliveries.append, start=False
    )
    dispatcher.submit("wecom", alert(title="一"))
    dispatcher.submit("wecom", alert(title="二"))
    dispatcher.submit("dingtalk", alert(title="三"))
    dispatcher.start()
    assert dispatcher.flush(10)
    by_title = {d.message.title: d for d in deliveries if d.message is not None}
    reason = "errcode 93000 invalid webhook key: invalid webhook url, hint: [1700000000]"
    assert (by_title["一"].status, by_title["一"].attempts, by_title["一"].detail) == (
        "broken",
        1,
        reason,
    )
    assert (by_title["二"].status, by_title["二"].attempts, by_title["二"].detail) == (
        "broken",
        0,
        f"not sent: the channel is broken ({reason})",
    )
    assert by_title["三"].ok
    assert len(robots.of("wecom")) == 1
    assert dispatcher.broken() == {"wecom": reason}
    monkeypatch.setenv("T_WECOM_KEY", robots.wecom_key)
    dispatcher.repair("wecom")
    dispatcher.submit("wecom", alert(title="四"))
    assert dispatcher.close(10)
    assert deliveries[-1].ok and deliveries[-1].message.title == "四"  # type: ignore[union-attr]


def test_submit_never_waits_for_the_channel(robots: RobotServer) -> None:
    robots.fail_next("wecom", 500)
    in_backoff, release = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        in_backoff.set()
        release.wait(10)

    deliveries: list[Delivery] = []
    dispatcher = Dispatcher(
        [wecom(robots, msgtype="text")], sleep=sleep, on_delivery=deliveries.append
    )
    dispatcher.submit("wecom", alert(title="first"))
    assert in_backoff.wait(10)
    for i in range(5):
        dispatcher.submit("wecom", alert(title=f"next {i}"))
    assert dispatcher.pending() == 6 and deliveries == []
    release.set()
    assert dispatcher.close(10)
    assert [d.message.title for d in deliveries] == ["first"] + [f"next {i}" for i in range(5)]  # type: ignore[union-attr]
    assert all(d.ok for d in deliveries)


def test_close_cuts_a_backoff_short(robots: RobotServer) -> None:
    robots.fail_next("wecom", 500)
    deliveries: list[Delivery] = []
    dispatcher = Dispatcher(
        [wecom(robots, msgtype="text")], on_delivery=deliveries.append, backoff=300.0
    )
    dispatcher.submit("wecom", alert())
    assert dispatcher.close(0.2) is False
    port = robots.base_url.rsplit(":", 1)[1]
    assert [(d.status, d.attempts, d.detail) for d in deliveries] == [
        (
            "failed",
            1,
            f"not sent: the dispatcher was closed after 1 attempt(s): HTTP 500 from 127.0.0.1:{port}",
        )
    ]
    assert len(robots.of("wecom")) == 1


def test_close_reports_what_was_never_sent(robots: RobotServer) -> None:
    deliveries: list[Delivery] = []
    dispatcher = Dispatcher([wecom(robots)], on_delivery=deliveries.append, start=False)
    dispatcher.submit("wecom", alert())
    assert dispatcher.close(0.1) is False
    assert [(d.status, d.detail, d.sent_at) for d in deliveries] == [
        ("failed", "not sent: the dispatcher was closed", None)
    ]
    with pytest.raises(RuntimeError):
        dispatcher.submit("wecom", alert())
    with pytest.raises(KeyError):
        Dispatcher([wecom(robots)], start=False).submit("nope", alert())
    with pytest.raises(ValueError, match="two notification channels"):
        Dispatcher([wecom(robots), wecom(robots)], start=False)


def test_secrets_never_appear_in_deliveries_or_logs(
    robots: RobotServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    ca: trustme.CA,
    ca_file: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="opsctl.notify")
    secrets = [
        robots.wecom_key,
        robots.dingtalk_token,
        robots.dingtalk_secret,
        robots.feishu_hook,
        robots.feishu_secret,
        robots.webhook_secret,
        "Mail-Pass-19d0",
        "not-the-password",
    ]
    monkeypatch.setenv("T_MAIL_PASSWORD", "not-the-password")
    closed = free_port()
    robots.fail_next("wecom", 500, 500)
    robots.fail_next("feishu", 19021)
    robots.fail_next("webhook", 401)
    clock = FakeClock(time.time())
    deliveries: list[Delivery] = []
    with MailServer(ca) as mail:
        channels = [
            wecom(robots),
            dingtalk(robots, at_all=True),
            feishu(robots),
            webhook(robots),
            DingTalkRobot(
                name="dead",
                access_token="env:T_DT_TOKEN",
                secret="env:T_DT_SECRET",
                base_url=f"http://127.0.0.1:{closed}",
            ),
            email(mail.port, ca_file),
        ]
        with Dispatcher(
            channels,
            clock=clock,
            sleep=clock.sleep,
            on_delivery=deliveries.append,
            max_attempts=2,
        ) as dispatcher:
            for channel in channels:
                dispatcher.submit(channel.name, alert())
            assert dispatcher.flush(30)
    statuses = {d.channel: d.status for d in deliveries}
    assert statuses == {
        "wecom": "failed",
        "dingtalk": "sent",
        "feishu": "broken",
        "hook": "broken",
        "dead": "failed",
        "mail": "broken",
    }
    text = caplog.text + "".join(repr(d) + d.detail + json.dumps(d.to_dict()) for d in deliveries)
    assert "gave up after 2 attempts" in text
    for secret in secrets:
        assert secret not in text
