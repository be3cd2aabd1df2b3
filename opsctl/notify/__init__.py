"""Notifications: messages, the channels that carry them (WeCom, DingTalk and Feishu group
robots, e-mail, a generic JSON webhook) and the dispatcher that sends them without blocking.

- ``message``: ``Message`` and its renderings for each channel (Chinese by default, masked).
- ``channels``: the channel settings (pydantic, told apart by ``type``), each with
  ``send(message) -> Delivery``.
- ``queue``: ``Dispatcher``, one worker per channel, rate-limited, merging, retrying.
"""

from __future__ import annotations

from opsctl.notify.channels import (
    Channel,
    ChannelConfig,
    Delivery,
    DingTalkRobot,
    EmailChannel,
    FeishuBot,
    Status,
    WebhookChannel,
    WeComRobot,
    parse_channel,
    preview,
)
from opsctl.notify.message import Message, merge, title_for
from opsctl.notify.queue import Dispatcher

__all__ = [
    "Channel",
    "ChannelConfig",
    "Delivery",
    "DingTalkRobot",
    "Dispatcher",
    "EmailChannel",
    "FeishuBot",
    "Message",
    "Status",
    "WeComRobot",
    "WebhookChannel",
    "merge",
    "parse_channel",
    "preview",
    "title_for",
]
