"""A notification message and its renderings for each channel.

A ``Message`` says, in a few lines, what happened: the site, the target and the check, the
state (严重/警告/未知/恢复), since when in the site's time zone, the one-line summary, and who is
on duty. The renderers turn it into what each channel takes:

- ``wecom_payloads``: the WeCom group robot's ``markdown`` or ``text`` message(s);
- ``dingtalk_payload``: the DingTalk custom robot's ``markdown`` message with ``at``;
- ``feishu_payload``: the Feishu custom bot's ``post`` or ``text`` message (unsigned);
- ``email_parts``: the subject, plain text and HTML of a mail;
- ``json_payload``: the generic webhook's JSON document.

Chinese is the default language (``lang="zh"``); ``lang="en"`` gives English labels. Every
text a message carries (title, summary, lines) is masked with ``opsctl.masking.mask`` when
rendered, so ID-card and mobile numbers in a summary never leave opsctl. The on-duty phones
are used only where a channel mentions people by phone (WeCom ``mentioned_mobile_list``,
DingTalk ``atMobiles``) and never appear in a message's text, with one exception that the
platform requires: DingTalk only rings a person whose ``@phone`` is in the text, and renders
that token as the member's display name (and masks numbers of non-members).

How mentions are sent:

- WeCom markdown cannot mention by phone (only ``<@userid>``), so an alert with people on
  duty is sent as the markdown message followed by a short text message whose
  ``mentioned_mobile_list`` rings them; with ``msgtype="text"`` one text message does both.
- Feishu custom bots mention only by Feishu user id, never by phone: the text names the
  people on duty and nobody is rung.
- Only alerts ring people (``level="alert"``); recoveries and notices name them quietly.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opsctl.contract import State, worst
from opsctl.masking import mask

Lang = Literal["zh", "en"]
Level = Literal["alert", "recovery", "notice"]

#: A merged message lists at most this many messages, one line each, and counts the rest.
MERGED_LINES = 50

#: The WeCom group robot's limits on ``content``, in UTF-8 bytes.
WECOM_MARKDOWN_LIMIT = 4096
WECOM_TEXT_LIMIT = 2048

_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "site": "站点",
        "target": "对象",
        "check": "检查",
        "state": "状态",
        "since": "开始",
        "recovered": "恢复",
        "summary": "摘要",
        "on_duty": "值班",
        "link": "详情",
        "truncated": "(内容过长，已截断)",
        "mention": "↑ 请值班处理：",
        "more": "另有 {count} 条告警",
        "more_one": "另有 1 条告警",
        "unlisted": "…… 另有 {count} 条未列出",
        "sep": "、",
    },
    "en": {
        "site": "Site",
        "target": "Target",
        "check": "Check",
        "state": "State",
        "since": "Since",
        "recovered": "Recovered",
        "summary": "Summary",
        "on_duty": "On duty",
        "link": "Details",
        "truncated": "(too long, truncated)",
        "mention": "↑ On duty, please handle: ",
        "more": "{count} more alerts",
        "more_one": "1 more alert",
        "unlisted": "… and {count} more not listed",
        "sep": ", ",
    },
}

_STATE_LABELS: dict[str, dict[State | str, str]] = {
    "zh": {
        State.CRITICAL: "严重",
        State.WARNING: "警告",
        State.UNKNOWN: "未知",
        "recovery": "恢复",
    },
    "en": {
        State.CRITICAL: "CRITICAL",
        State.WARNING: "WARNING",
        State.UNKNOWN: "UNKNOWN",
        "recovery": "RECOVERED",
    },
}

# WeCom markdown's three colours; DingTalk and mail take hex colours.
_WECOM_COLOURS = {"recovery": "info", State.WARNING: "warning", State.CRITICAL: "warning"}
_HEX_COLOURS = {
    "recovery": "#2e7d32",
    State.WARNING: "#e65100",
    State.CRITICAL: "#c62828",
    State.UNKNOWN: "#616161",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One notification.

    ``title`` heads the message (``title_for`` makes the usual one); ``lines`` are extra
    detail lines shown after the summary; ``level`` is ``alert`` (rings the people on duty),
    ``recovery`` (the check is OK again) or ``notice`` (informs, rings nobody). ``state`` is
    the check's state; ``since`` (timezone-aware) when it began, shown in ``timezone`` (the
    site's). ``on_duty`` lists ``(name, phone)`` of the people on duty. Empty fields (and a
    ``since`` of None) are left out of every rendering.

    Raises ValueError if ``since`` is naive or ``timezone`` is not an IANA zone.
    """

    title: str
    lines: tuple[str, ...]
    level: Level
    site: str
    target: str
    check: str
    state: State
    since: datetime | None
    summary: str
    on_duty: tuple[tuple[str, str], ...]
    link: str | None = None
    timezone: str = "Asia/Shanghai"
    merged: tuple[Message, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "on_duty", tuple((n, p) for n, p in self.on_duty))
        object.__setattr__(self, "state", State.parse(self.state))
        if self.level not in ("alert", "recovery", "notice"):
            raise ValueError(f"level must be alert, recovery or notice, got {self.level!r}")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {self.timezone!r}") from None

    @property
    def recovered(self) -> bool:
        """True if this message tells of a recovery (level recovery, or state OK)."""
        return self.level == "recovery" or self.state == State.OK

    @property
    def count(self) -> int:
        """How many messages this one carries: 1, or the number merged into it."""
        return len(self.merged) or 1

    def mobiles(self) -> list[str]:
        """The phones to ring: those of the people on duty for an alert (normalized to
        digits, ``+86`` dropped, duplicates removed), none for any other level."""
        if self.level != "alert":
            return []
        found: list[str] = []
        for _name, phone in self.on_duty:
            number = normalize_mobile(phone)
            if number and number not in found:
                found.append(number)
        return found


def normalize_mobile(phone: str) -> str:
    """Given a phone as written (``+86 138-0000-0001``), return its digits without the
    country prefix (``13800000001``); empty if there are none."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def state_label(message: Message, lang: Lang = "zh") -> str:
    """Given a message, return its state as shown: 严重/警告/未知/恢复 (or English)."""
    labels = _STATE_LABELS[lang]
    return labels["recovery"] if message.recovered else labels[message.state]


def title_for(
    state: State, site: str, target: str, check: str, *, recovered: bool = False, lang: Lang = "zh"
) -> str:
    """Given a state and what it concerns, return the usual title: ``【严重】site target check``
    (``[CRITICAL] site target check`` in English)."""
    labels = _STATE_LABELS[lang]
    label = labels["recovery"] if recovered or state == State.OK else labels[State(state)]
    subject = " ".join(part for part in (site, target, check) if part)
    return f"【{label}】{subject}" if lang == "zh" else f"[{label}] {subject}"


def format_since(message: Message) -> str:
    """Given a message, return its ``since`` in the site's time zone (``2024-05-01 08:30``),
    or an empty string if it has none."""
    if message.since is None:
        return ""
    return message.since.astimezone(ZoneInfo(message.timezone)).strftime("%Y-%m-%d %H:%M")


def merge(messages: Sequence[Message], lang: Lang = "zh") -> Message:
    """Given waiting messages, return one that carries them all (in ``merged``): titled
    ``另有 N 条告警`` (``N more alerts``), one line per message (the first ``MERGED_LINES``,
    then how many more), ringing everyone any of them rings. Its state is the worst alert state (OK if all are recoveries).

    Raises ValueError if ``messages`` is empty.
    """
    if not messages:
        raise ValueError("nothing to merge")
    flat = [inner for message in messages for inner in (message.merged or (message,))]
    alerts = [m for m in flat if not m.recovered]
    sites = {m.site for m in flat}
    on_duty: list[tuple[str, str]] = []
    for message in alerts or flat:
        for person in message.on_duty:
            if person not in on_duty:
                on_duty.append(person)
    lines = [_one_line(m, lang) for m in flat[:MERGED_LINES]]
    if len(flat) > MERGED_LINES:
        lines.append(_LABELS[lang]["unlisted"].format(count=len(flat) - MERGED_LINES))
    title = _LABELS[lang]["more_one" if len(flat) == 1 else "more"].format(count=len(flat))
    return Message(
        title=title,
        lines=tuple(lines),
        level="alert" if any(m.level == "alert" for m in flat) else flat[0].level,
        site=flat[0].site if len(sites) == 1 else "",
        target="",
        check="",
        state=worst(m.state for m in alerts) if alerts else State.OK,
        since=None,
        summary="",
        on_duty=tuple(on_duty),
        link=None,
        timezone=flat[0].timezone,
        merged=tuple(flat),
    )


def _one_line(message: Message, lang: Lang) -> str:
    subject = mask("/".join(p for p in (message.site, message.target, message.check) if p))
    text = " ".join(mask(message.summary or message.title).split())
    if len(text) > 80:
        text = text[:79] + "…"
    when = format_since(message)[-5:]
    stamp = f" ({when})" if when else ""
    return f"[{state_label(message, lang)}] {subject}: {text}{stamp}"


# --------------------------------------------------------------------------- fields


def _fields(message: Message, lang: Lang) -> list[tuple[str, str]]:
    labels = _LABELS[lang]
    since_label = labels["recovered"] if message.recovered else labels["since"]
    rows = [
        (labels["site"], message.site),
        (labels["target"], message.target),
        (labels["check"], message.check),
        # A notice about nothing in particular (a test) has no state to show.
        (labels["state"], "" if _stateless(message) else state_label(message, lang)),
        (since_label, format_since(message)),
        (labels["summary"], message.summary),
    ]
    return [(label, mask(value)) for label, value in rows if value]


def _stateless(message: Message) -> bool:
    return message.level == "notice" and message.state == State.OK and not message.check


def _names(message: Message, lang: Lang) -> str:
    return _LABELS[lang]["sep"].join(name for name, _phone in message.on_duty if name)


def _lines(message: Message) -> list[str]:
    return [mask(line) for line in message.lines]


def cut_utf8(text: str, limit: int) -> str:
    """Given text and a limit in UTF-8 bytes, return the longest prefix of whole characters
    that fits in the limit."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    end = max(limit, 0)
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end].decode("utf-8")


def fit(body: str, footer: str, limit: int, lang: Lang = "zh") -> str:
    """Given a body, a footer that must survive (the people on duty, the link) and a limit in
    UTF-8 bytes, return ``body + footer`` if it fits; else the body cut at a character
    boundary, the note ``(内容过长，已截断)`` and the footer, together within the limit."""
    whole = body + footer
    if len(whole.encode("utf-8")) <= limit:
        return whole
    note = "\n" + _LABELS[lang]["truncated"]
    footer = cut_utf8(footer, limit // 4)
    room = limit - len(note.encode("utf-8")) - len(footer.encode("utf-8"))
    return cut_utf8(body, room) + note + footer


# --------------------------------------------------------------------------- plain text


def render_text(message: Message, lang: Lang = "zh") -> tuple[str, str]:
    """Given a message, return its plain-text rendering as (body, footer): the title, one
    ``label：value`` line per field and the detail lines; then the people on duty (by name)
    and the link."""
    colon = "：" if lang == "zh" else ": "
    body = [mask(message.title)]
    body += [f"{label}{colon}{value}" for label, value in _fields(message, lang)]
    body += _lines(message)
    footer = []
    if message.on_duty:
        footer.append(f"{_LABELS[lang]['on_duty']}{colon}{_names(message, lang)}")
    if message.link:
        footer.append(f"{_LABELS[lang]['link']}{colon}{message.link}")
    return "\n".join(body), "".join("\n" + line for line in footer)


def plain_text(message: Message, lang: Lang = "zh") -> str:
    """Given a message, return its whole plain-text rendering (see ``render_text``)."""
    body, footer = render_text(message, lang)
    return body + footer


# --------------------------------------------------------------------------- WeCom


def wecom_markdown(message: Message, lang: Lang = "zh") -> tuple[str, str]:
    """Given a message, return its WeCom markdown as (body, footer)."""
    colon = "：" if lang == "zh" else ": "
    colour = _WECOM_COLOURS.get("recovery" if message.recovered else message.state, "comment")
    body = [f'**<font color="{colour}">{_md(mask(message.title))}</font>**']
    body += [f"> {label}{colon}{_md(value)}" for label, value in _fields(message, lang)]
    body += [f"> {_md(line)}" for line in _lines(message)]
    footer = []
    if message.on_duty:
        footer.append(f"{_LABELS[lang]['on_duty']}{colon}{_md(_names(message, lang))}")
    if message.link:
        footer.append(f"[{_LABELS[lang]['link']}]({message.link})")
    # A blank line ends the quote before the footer.
    return "\n".join(body), ("\n" if footer else "") + "".join("\n" + line for line in footer)


def wecom_payloads(
    message: Message, msgtype: Literal["markdown", "text"] = "markdown", lang: Lang = "zh"
) -> list[dict[str, Any]]:
    """Given a message, return the WeCom robot request bodies that send it, in order.

    ``markdown``: the markdown message (content within 4,096 bytes), then, if the message
    rings people, a text message whose ``mentioned_mobile_list`` rings them. ``text``: one text
    message (content within 2,048 bytes) with the ``mentioned_mobile_list``.
    """
    mobiles = message.mobiles()
    if msgtype == "text":
        text: dict[str, Any] = {"content": fit(*render_text(message, lang), WECOM_TEXT_LIMIT, lang)}
        if mobiles:
            text["mentioned_mobile_list"] = mobiles
        return [{"msgtype": "text", "text": text}]
    content = fit(*wecom_markdown(message, lang), WECOM_MARKDOWN_LIMIT, lang)
    payloads: list[dict[str, Any]] = [{"msgtype": "markdown", "markdown": {"content": content}}]
    if mobiles:
        names = _names(message, lang) or " ".join(mobiles)
        payloads.append(
            {
                "msgtype": "text",
                "text": {
                    "content": cut_utf8(_LABELS[lang]["mention"] + names, WECOM_TEXT_LIMIT),
                    "mentioned_mobile_list": mobiles,
                },
            }
        )
    return payloads


# --------------------------------------------------------------------------- DingTalk


def dingtalk_payload(message: Message, lang: Lang = "zh", at_all: bool = False) -> dict[str, Any]:
    """Given a message, return the DingTalk robot's markdown request body: ``title`` (the
    conversation list preview), ``text``, and ``at`` with the ``atMobiles`` to ring (each as
    ``@phone`` in the text, which DingTalk shows as the member's name) and ``isAtAll`` (only
    for an alert, and only if ``at_all``)."""
    colon = "：" if lang == "zh" else ": "
    colour = _HEX_COLOURS.get("recovery" if message.recovered else message.state, "#616161")
    title = mask(message.title)
    items = [f"- {label}{colon}{_md(value)}" for label, value in _fields(message, lang)]
    items += [f"- {_md(line)}" for line in _lines(message)]
    text = [f'#### <font color="{colour}">{_md(title)}</font>', "\n".join(items)]
    mobiles = message.mobiles()
    if mobiles:
        text.append(f"{_LABELS[lang]['on_duty']}{colon}" + " ".join(f"@{m}" for m in mobiles))
    elif message.on_duty:
        text.append(f"{_LABELS[lang]['on_duty']}{colon}{_md(_names(message, lang))}")
    if message.link:
        text.append(f"[{_LABELS[lang]['link']}]({message.link})")
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": "\n\n".join(text)},
        "at": {"atMobiles": mobiles, "isAtAll": bool(at_all and message.level == "alert")},
    }


# --------------------------------------------------------------------------- Feishu


def feishu_payload(
    message: Message, msgtype: Literal["post", "text"] = "post", lang: Lang = "zh"
) -> dict[str, Any]:
    """Given a message, return the Feishu custom bot's request body without ``timestamp``
    and ``sign``: a ``post`` (rich text: title, then one paragraph per line, the link as an
    ``a`` element) or a ``text`` message. Feishu cannot mention by phone: names only."""
    if msgtype == "text":
        return {"msg_type": "text", "content": {"text": plain_text(message, lang)}}
    colon = "：" if lang == "zh" else ": "
    rows = [f"{label}{colon}{value}" for label, value in _fields(message, lang)]
    rows += _lines(message)
    if message.on_duty:
        rows.append(f"{_LABELS[lang]['on_duty']}{colon}{_names(message, lang)}")
    paragraphs: list[list[dict[str, str]]] = [[{"tag": "text", "text": row}] for row in rows]
    if message.link:
        paragraphs.append([{"tag": "a", "text": _LABELS[lang]["link"], "href": message.link}])
    post = {"title": mask(message.title), "content": paragraphs}
    return {"msg_type": "post", "content": {"post": {"zh_cn" if lang == "zh" else "en_us": post}}}


# --------------------------------------------------------------------------- mail


def email_parts(message: Message, lang: Lang = "zh") -> tuple[str, str, str]:
    """Given a message, return (subject, plain text, HTML) of its mail."""
    subject = " ".join(mask(message.title).split())
    text = plain_text(message, lang) + "\n"
    colour = _HEX_COLOURS.get("recovery" if message.recovered else message.state, "#616161")
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f"<title>{esc(subject)}</title></head><body>",
        f'<h3 style="color:{colour}">{esc(subject)}</h3>',
        "<table>",
    ]
    parts += [
        f'<tr><th align="left">{esc(label)}</th><td>{esc(value)}</td></tr>'
        for label, value in _fields(message, lang)
    ]
    if message.on_duty:
        parts.append(
            f'<tr><th align="left">{esc(_LABELS[lang]["on_duty"])}</th>'
            f"<td>{esc(_names(message, lang))}</td></tr>"
        )
    parts.append("</table>")
    lines = _lines(message)
    if lines:
        parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
    if message.link:
        parts.append(f'<p><a href="{esc(message.link)}">{esc(_LABELS[lang]["link"])}</a></p>')
    parts.append("</body></html>")
    return subject, text, "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- JSON


def json_payload(message: Message, sent_at: datetime, lang: Lang = "zh") -> dict[str, Any]:
    """Given a message and when it is sent, return the generic webhook's JSON document: every
    field (text masked), the state as a name and as shown, the people on duty with the
    mobiles to ring, and the messages merged into it. ``sent_at`` is inside the signed body,
    so a receiver can refuse a replayed request."""
    document: dict[str, Any] = {
        "version": 1,
        "title": mask(message.title),
        "level": message.level,
        "state": message.state.name,
        "state_label": state_label(message, lang),
        "site": mask(message.site),
        "target": mask(message.target),
        "check": mask(message.check),
        "since": None if message.since is None else message.since.isoformat(),
        "summary": mask(message.summary),
        "lines": _lines(message),
        "on_duty": [{"name": name} for name, _phone in message.on_duty],
        "mentions": message.mobiles(),
        "link": message.link,
        "sent_at": sent_at.astimezone(UTC).isoformat(),
    }
    if message.merged:
        document["merged"] = [json_payload(m, sent_at, lang) for m in message.merged]
        for inner in document["merged"]:
            del inner["sent_at"]
    return document


def _md(text: str) -> str:
    # One value, one line: a line break inside a value would end its quote or list item.
    return " ".join(text.splitlines())


__all__ = [
    "WECOM_MARKDOWN_LIMIT",
    "WECOM_TEXT_LIMIT",
    "Lang",
    "Level",
    "Message",
    "cut_utf8",
    "dingtalk_payload",
    "email_parts",
    "feishu_payload",
    "fit",
    "format_since",
    "json_payload",
    "merge",
    "normalize_mobile",
    "plain_text",
    "render_text",
    "state_label",
    "title_for",
    "wecom_payloads",
]
