"""``opsctl notify``: the notification channels, a test message on one of them, and the log of
every delivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_UNKNOWN,
    InventoryOption,
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store_for,
    options,
    print_table,
    store_url,
)

if TYPE_CHECKING:
    from opsctl.inventory import LoadedInventory
    from opsctl.notify.channels import ChannelConfig, Delivery
    from opsctl.notify.message import Message

app = typer.Typer(
    help="Notification channels: list them, send a test message, show what was sent.",
    no_args_is_help=True,
)

#: A test message is tried at most this many times when the receiver asks to retry.
TEST_ATTEMPTS = 3
#: The first wait between attempts, in seconds; doubled at each retry.
TEST_BACKOFF = 0.5
#: The longest wait between attempts, in seconds, whatever the receiver asks for (a robot's
#: rate limit asks for a minute; a person at a terminal should not wait that long).
TEST_MAX_WAIT = 5.0


class Language(StrEnum):
    zh = "zh"
    en = "en"


_TEST_WORDS = {
    "zh": {
        "title": "【测试】opsctl 通知测试",
        "line": "这是通道 {channel} 的测试消息，无需处理。",
        "sites": "使用该通道的站点：{sites}",
        "no_sites": "尚无站点使用该通道。",
        "sep": "、",
    },
    "en": {
        "title": "[TEST] opsctl notification test",
        "line": "A test message on channel {channel}; nothing to do.",
        "sites": "Sites using this channel: {sites}",
        "no_sites": "No site uses this channel yet.",
        "sep": ", ",
    },
}


def sites_using(loaded: LoadedInventory, channel: str) -> list[str]:
    """Given an inventory and a channel's name, return the names of the sites whose alerts
    go to it, in inventory order."""
    return [site.name for site in loaded.inventory.sites if channel in site.alerts.channels]


def probe_message(channel: str, sites: list[str], lang: str, timezone: str) -> Message:
    """Given a channel's name, the sites using it, a language (zh or en) and a time zone,
    return the test message: a notice that rings nobody."""
    from opsctl.contract import State
    from opsctl.notify.message import Message

    words = _TEST_WORDS[lang]
    used = words["sites"].format(sites=words["sep"].join(sites)) if sites else words["no_sites"]
    return Message(
        title=words["title"],
        lines=(words["line"].format(channel=channel), used),
        level="notice",
        site="",
        target="",
        check="",
        state=State.OK,
        since=None,
        summary="",
        on_duty=(),
        timezone=timezone,
    )


def send_with_retries(
    channel: ChannelConfig,
    message: Message,
    *,
    attempts: int = TEST_ATTEMPTS,
    sleep: Callable[[float], object] = time.sleep,
) -> Delivery:
    """Given a channel and a message, send it, trying again after a ``retry`` outcome (after
    the wait the receiver asks for, else a doubling backoff, at most ``TEST_MAX_WAIT``
    seconds), at most ``attempts`` times. Return the final Delivery, its ``attempts`` the
    number made; a ``retry`` still unresolved becomes ``failed``. Never raises."""
    from dataclasses import replace

    made = 0
    while True:
        delivery = channel.send(message)
        made += 1
        if delivery.status != "retry" or made >= attempts:
            break
        wait = delivery.retry_after
        if wait is None:
            wait = TEST_BACKOFF * 2 ** (made - 1)
        sleep(min(wait, TEST_MAX_WAIT))
    if delivery.status == "retry":
        delivery = replace(
            delivery, status="failed", detail=f"gave up after {made} attempts: {delivery.detail}"
        )
    return replace(delivery, attempts=made, retry_after=None)


def _record_test(
    ctx: typer.Context, loaded: LoadedInventory, delivery: Delivery, site: str | None
) -> str | None:
    """Record the test delivery in the store; return why it could not be, or None."""
    from opsctl.contract import utc_now
    from opsctl.oncall import record_notifications
    from opsctl.store import Store, StoreError
    from opsctl.store.models import NotificationModel

    try:
        database = Store.open(store_url(ctx, loaded))
    except StoreError as error:
        return str(error)
    try:
        record_notifications(
            database,
            [
                NotificationModel(
                    alert_id=None,
                    incident_id=None,
                    site=site,
                    reason="test",
                    channel=delivery.channel,
                    at=delivery.sent_at or utc_now(),
                    status=delivery.status,
                    attempts=delivery.attempts,
                    title=delivery.message.title if delivery.message is not None else "",
                    detail=delivery.detail,
                )
            ],
        )
    except StoreError as error:
        return str(error)
    finally:
        database.close()
    return None


def _unknown_channel(loaded: LoadedInventory, name: str) -> typer.Exit:
    known = ", ".join(sorted(loaded.channels)) or "none; add them under channels:"
    return fail(f"{loaded.path}: no channel named {name!r} (channels: {known})")


@app.command("test")
def send_test(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="The channel's name (opsctl notify channels).")],
    inventory: InventoryOption,
    lang: Annotated[
        Language | None,
        typer.Option("--lang", help="Language of the message (default: the channel's, zh)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send a test message on one channel now and record the delivery.

    A receiver that asks to retry is tried again, at most 3 times. Exit code 0 if the
    message was sent, 2 if it failed or the channel is broken.
    """
    loaded = load_inventory(inventory, as_json=as_json)
    chosen = loaded.channels.get(channel)
    if chosen is None:
        raise _unknown_channel(loaded, channel)
    if lang is not None and lang.value != chosen.lang:
        chosen = chosen.model_copy(update={"lang": lang.value})
    sites = sites_using(loaded, channel)
    zone = options(ctx).tz
    if len(sites) == 1:
        site = loaded.site(sites[0])
        zone = site.timezone if site is not None else zone
    message = probe_message(channel, sites, chosen.lang, zone)
    delivery = send_with_retries(chosen, message)
    problem = _record_test(ctx, loaded, delivery, sites[0] if len(sites) == 1 else None)
    if problem is not None:
        typer.echo(f"opsctl: warning: the delivery was not recorded: store: {problem}", err=True)
    code = 0 if delivery.ok else EXIT_BAD_INPUT
    if as_json:
        emit_json(
            {
                **delivery.to_dict(),
                "type": chosen.kind,
                "lang": chosen.lang,
                "sites": sites,
                "recorded": problem is None,
            }
        )
        raise typer.Exit(code)
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    typer.echo(f"{channel}: {delivery.status} ({tries}): {delivery.detail}")
    raise typer.Exit(code)


def _address(channel: ChannelConfig) -> str:
    """Where a channel sends, without any secret: a robot's base URL (or the reference of
    its whole URL), a webhook's host and path, a mail server and its recipients."""
    from urllib.parse import urlsplit

    from opsctl.fields import Secret
    from opsctl.notify.channels import EmailChannel, WebhookChannel

    if isinstance(channel, EmailChannel):
        return f"smtp {channel.host}:{channel.port} to {', '.join(channel.to)}"
    if isinstance(channel, WebhookChannel):
        # The query string and a user:password may carry a token: show neither.
        parts = urlsplit(channel.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    url = getattr(channel, "url", None)
    if isinstance(url, Secret):
        return f"url {url.reference}"
    return str(getattr(channel, "base_url", ""))


@app.command("channels")
def channels(
    inventory: InventoryOption,
    as_json: JsonOption = False,
) -> None:
    """List the inventory's channels: type, language, the sites using each, where it sends
    and the references of its secrets (never their values)."""
    loaded = load_inventory(inventory, as_json=as_json)
    entries = [
        (
            channel,
            sites_using(loaded, channel.name),
            {field: secret.reference for field, secret in channel.secrets().items()},
        )
        for channel in loaded.channels.values()
    ]
    if as_json:
        emit_json(
            [
                {
                    "name": channel.name,
                    "type": channel.kind,
                    "lang": channel.lang,
                    "sites": sites,
                    "address": _address(channel),
                    "secrets": secrets,
                    "per_minute": channel.per_minute,
                    "timeout": channel.timeout,
                }
                for channel, sites, secrets in entries
            ]
        )
        return
    if not entries:
        typer.echo(f"no channels in {inventory} (add them under channels:)")
        return
    print_table(
        "opsctl notification channels",
        ["CHANNEL", "TYPE", "LANG", "SITES", "ADDRESS", "SECRETS"],
        [
            [
                channel.name,
                channel.kind,
                channel.lang,
                ", ".join(sites) or "-",
                _address(channel),
                ", ".join(f"{field}={reference}" for field, reference in secrets.items()) or "-",
            ]
            for channel, sites, secrets in entries
        ],
    )


def parse_since(text: str, zone: str, now: datetime) -> datetime:
    """Given ``--since`` as a duration back from ``now`` (``24h``, ``7d``) or an ISO 8601
    time (``2026-10-01T08:00+08:00``; a date or a time without an offset is in ``zone``),
    return the aware moment. Raise ValueError with what was expected."""
    from zoneinfo import ZoneInfo

    from opsctl.duration import DURATION_HINT, parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected {DURATION_HINT}, or an ISO 8601 time like 2026-10-01T08:00+08:00, "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


@app.command("log")
def show_log(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="How far back: 30m, 24h, 7d, or an ISO time like 2026-10-01T08:00."
        ),
    ] = "24h",
    channel: Annotated[
        str | None, typer.Option("--channel", "-c", help="Only this channel.")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only deliveries that were not sent.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List the recorded deliveries, newest first, times in each site's time zone."""
    from zoneinfo import ZoneInfo

    from opsctl.contract import utc_now
    from opsctl.oncall import notifications
    from opsctl.store import StoreError

    default_tz = options(ctx).tz
    try:
        start = parse_since(since, default_tz, utc_now())
    except ValueError as error:
        raise fail(f"--since: {error}") from None
    database, zones = open_store_for(ctx, inventory)
    try:
        if site is not None and zones and site not in zones:
            raise fail(f"--site: no site named {site!r} (sites: {', '.join(sorted(zones))})")
        rows = notifications(
            database, since=start, channel=channel, site=site, failed_only=failed, limit=limit
        )
    except StoreError as error:
        raise fail(f"store: {error}", EXIT_UNKNOWN) from None
    finally:
        database.close()

    def zone_of(row: Any) -> str:
        return zones.get(row.site, default_tz) if row.site else default_tz

    if as_json:
        emit_json(
            {
                "since": start.isoformat(),
                "notifications": [
                    {**row.to_dict(), "at": row.at.astimezone(ZoneInfo(zone_of(row))).isoformat()}
                    for row in rows
                ],
            }
        )
        return
    if not rows:
        which = " failed" if failed else ""
        typer.echo(f"no{which} notifications since {local_time(start, default_tz)}")
        return
    print_table(
        f"notifications since {local_time(start, default_tz)}",
        ["AT", "CHANNEL", "SITE", "STATUS", "TRIES", "REASON", "ABOUT", "TITLE", "DETAIL"],
        [
            [
                local_time(row.at, zone_of(row)),
                row.channel,
                row.site or "-",
                row.status,
                str(row.attempts),
                row.reason or "-",
                _about(row),
                row.title,
                row.detail,
            ]
            for row in rows
        ],
    )


def _about(row: Any) -> str:
    parts = []
    if row.alert_id is not None:
        parts.append(f"alert {row.alert_id}")
    if row.incident_id is not None:
        parts.append(f"incident {row.incident_id}")
    return ", ".join(parts) or "-"
