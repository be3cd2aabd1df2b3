"""On call: the pass that turns check states into people being told, run by the scheduler's
leader every minute (``opsctl server``) or once by ``opsctl alert run``.

One ``OnCall.run(now)``:

1. evaluates the alerts (``opsctl.alerts.evaluate``) with each site's policy and the
   maintenance windows open now;
2. opens an incident for each new CRITICAL alert of a site with ``auto_incident`` and links it;
3. turns each notice into a message — site, target, check, state, since when, the summary,
   who is on duty (from the site's roster, holiday-aware), how to acknowledge — and queues it
   on each of the site's channels. Level 0 rings duty A, level 1 (escalation) A and B, level 2
   A, B and the site's ``escalate_to`` contacts;
4. warns the people on duty (A and B) once per clock when an open incident's SLA response or
   resolution clock has at most the site's ``sla_warning`` left (or half the target, if that
   is shorter) — before the breach.

Sending is the dispatcher's (``opsctl.notify.Dispatcher``): queued, rate-limited, retried.
Every final delivery is recorded in the store's ``notifications`` table (``opsctl notify
log``), one row per message, with the alert or incident it was about.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from opsctl.alerts import AlertRow, Notice, evaluate, link_incident
from opsctl.calendar import UnknownYear
from opsctl.contract import State, utc_now
from opsctl.maintenance import Window, active, occurrences
from opsctl.notify.channels import ChannelConfig, Delivery
from opsctl.notify.message import Lang, Message, title_for
from opsctl.notify.queue import Dispatcher
from opsctl.roster import RosterError
from opsctl.sla import SlaError, verdict
from opsctl.store.models import NotificationModel

if TYPE_CHECKING:
    from opsctl.incidents import Incident
    from opsctl.inventory import LoadedInventory, Site
    from opsctl.store import Store

log = logging.getLogger(__name__)

#: The SLA clocks warned of before they run out (an on-site time is not recorded by opsctl).
WARNED_CLOCKS = ("respond", "resolve")


@dataclass(frozen=True, slots=True)
class Meta:
    """What a queued message is about, recorded with its delivery."""

    site: str | None
    reason: str
    alert_id: int | None = None
    incident_id: int | None = None


@dataclass
class PassResult:
    """What one pass did."""

    notices: list[Notice] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)
    sla_warnings: list[tuple[int, str]] = field(default_factory=list)
    queued: int = 0


# --------------------------------------------------------------------------- wording

_WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "ack": "确认：opsctl alert ack {id} --by 姓名",
        "renotify": "重复提醒：已持续 {duration}，尚无人确认",
        "escalation1": "升级：{minutes} 分钟无人确认，已通知 B 岗",
        "escalation2": "再次升级：仍无人确认，已通知 {names}",
        "flapping": "状态频繁变化（{window} 内多次），暂停通知直到稳定",
        "incident": "已建事件 #{id}（{severity}）{due}",
        "respond_due": "，响应时限 {at}",
        "sla_title": "【SLA】{site} 事件 #{id} {clock}即将超时",
        "sla_line": "{clock}时限 {due}，剩余 {left}",
        "sla_overdue": "{clock}时限 {due}，已超时 {over}",
        "respond": "响应",
        "resolve": "解决",
        "opened": "开立 {at}，级别 {severity}",
        "hours": "{h} 小时 {m} 分钟",
        "whole_hours": "{h} 小时",
        "minutes": "{m} 分钟",
    },
    "en": {
        "ack": "Acknowledge: opsctl alert ack {id} --by NAME",
        "renotify": "Reminder: going on for {duration}, not acknowledged",
        "escalation1": "Escalated: unacknowledged for {minutes} min, duty B notified",
        "escalation2": "Escalated again: still unacknowledged, {names} notified",
        "flapping": "Flapping (many changes within {window}): quiet until it settles",
        "incident": "Incident #{id} opened ({severity}){due}",
        "respond_due": ", respond by {at}",
        "sla_title": "[SLA] {site} incident #{id}: {clock} due soon",
        "sla_line": "{clock} due {due}, {left} left",
        "sla_overdue": "{clock} was due {due}, {over} overdue",
        "respond": "response",
        "resolve": "resolution",
        "opened": "opened {at}, severity {severity}",
        "hours": "{h} h {m} min",
        "whole_hours": "{h} h",
        "minutes": "{m} min",
    },
}


#: Incident severities as the Chinese messages say them.
SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "一般", "complaint": "投诉"}


def _severity(severity: str, lang: Lang) -> str:
    return SEVERITY_ZH.get(severity, severity) if lang == "zh" else severity


def _span(amount: timedelta, lang: Lang) -> str:
    minutes = max(0, int(amount.total_seconds() // 60))
    words = _WORDS[lang]
    if minutes >= 60:
        key = "hours" if minutes % 60 else "whole_hours"
        return words[key].format(h=minutes // 60, m=minutes % 60)
    return words["minutes"].format(m=minutes)


def _local(at: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- the pass


class OnCall:
    """The on-call pass of one inventory over one store.

    ``dispatcher`` sends the messages; without one, a Dispatcher over the inventory's channels
    is made (and closed by ``close``). Its deliveries are recorded through ``record``.
    ``clock`` gives the current time when ``run`` is given none.
    """

    def __init__(
        self,
        store: Store,
        loaded: LoadedInventory,
        *,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        self._meta: dict[int, tuple[Message, Meta]] = {}
        self._lock = threading.Lock()
        self._own_dispatcher = dispatcher is None
        if dispatcher is None:
            dispatcher = Dispatcher(loaded.channels.values(), on_delivery=self.record)
        elif dispatcher.on_delivery is None:
            dispatcher.on_delivery = self.record
        self.dispatcher = dispatcher
        self._sites = {site.name: site for site in loaded.inventory.sites}

    # ------------------------------------------------------------------ the pass

    def run(self, now: datetime | None = None) -> PassResult:
        """One pass (see the module docstring). Raise StoreError if the store fails."""
        now = (now or self.clock()).astimezone(UTC)
        result = PassResult()
        policies = {name: site.alerts for name, site in self._sites.items()}
        found: list[Notice] = []
        result.notices = evaluate(self.store, policies, now, found.append, self.windows(now))
        for notice in found:
            incident = None
            if self._opens_incident(notice):
                incident = self._open_incident(notice.alert, now)
                if incident is not None:
                    result.incidents.append(incident.id)
            result.queued += self._send_notice(notice, now, incident)
        for incident_id, kind, queued in self._sla_warnings(now):
            result.sla_warnings.append((incident_id, kind))
            result.queued += queued
        return result

    def windows(self, now: datetime) -> list[Window]:
        """The maintenance windows open now, each scoped to its site."""
        found: list[Window] = []
        for site in self._sites.values():
            for window in active(site.maintenance, site.timezone, now):
                found.append(
                    Window(window.name, window.start, window.end, window.checks, site.name)
                )
        return found

    def close(self, timeout: float = 30.0) -> bool:
        """Wait up to ``timeout`` seconds for queued messages and stop the dispatcher if this
        object made it. Return True if everything queued was delivered (or given up)."""
        if self._own_dispatcher:
            return self.dispatcher.close(timeout)
        return self.dispatcher.flush(timeout)

    # ------------------------------------------------------------------ who is on duty

    def on_duty(self, site: Site, at: datetime, level: int) -> list[tuple[str, str]]:
        """The people to ring for a notice of ``level`` at a site: duty A; A and B; A, B and
        the escalation contacts. A site without a roster rings its contacts of role A岗/B岗
        (or A/B), if any."""
        people: list[tuple[str, str]] = []
        roster = self.loaded.rosters.get(site.name)
        if roster is not None:
            try:
                duty = roster.on_duty(at)
                people.append((duty.a.name, duty.a.phone))
                if level >= 1:
                    people.append((duty.b.name, duty.b.phone))
            except (RosterError, UnknownYear) as error:
                log.warning("site %s: no duty known at %s: %s", site.name, at.isoformat(), error)
        else:
            for post in ("A", "B")[: 1 if level == 0 else 2]:
                for contact in site.contacts:
                    if contact.role.strip().upper().removesuffix("岗") == post:
                        people.append((contact.name, contact.phone))
        if level >= 2:
            for contact in site.contacts:
                if contact.name in site.alerts.escalate_to:
                    people.append((contact.name, contact.phone))
        unique: list[tuple[str, str]] = []
        for person in people:
            if person not in unique:
                unique.append(person)
        return unique

    # ------------------------------------------------------------------ alerts

    def _opens_incident(self, notice: Notice) -> bool:
        site = self._sites.get(notice.alert.site)
        return (
            site is not None
            and site.alerts.auto_incident
            and notice.reason == "problem"
            and notice.alert.state == State.CRITICAL
            and notice.alert.incident_id is None
        )

    def _open_incident(self, alert: AlertRow, now: datetime) -> Incident | None:
        from opsctl.incidents import IncidentError, open_incident

        site = self._sites[alert.site]
        check = alert.check_id.rsplit("/", 1)[-1]
        try:
            incident = open_incident(
                self.store,
                site=alert.site,
                system=alert.target,
                severity=site.alerts.incident_severity,
                category=alert.kind,
                title=f"{alert.target} {check}: {alert.summary}",
                description=f"alert #{alert.id} {alert.check_id}: {alert.summary}",
                reporter="opsctl",
                opened=self._clock_start(alert, now),
                source="alert",
            )
        except IncidentError as error:
            log.error("alert %d: cannot open an incident: %s", alert.id, error)
            return None
        link_incident(self.store, alert.id, incident.id)
        return incident

    def _clock_start(self, alert: AlertRow, now: datetime) -> datetime:
        """When an incident opened from the alert starts its SLA clocks: when the problem
        began, or, if it began inside a maintenance window, when the window closed."""
        site = self._sites[alert.site]
        start = min(alert.opened, now)
        spans = sorted(
            (
                span
                for window in site.maintenance
                for span in occurrences(window, site.timezone, start, now)
            ),
            key=lambda span: span.start,
        )
        for span in spans:
            scoped = Window(span.name, span.start, span.end, span.checks, site.name)
            if scoped.covers(alert.check_id, start):
                start = min(span.end, now)
        return start

    def _send_notice(self, notice: Notice, now: datetime, incident: Incident | None) -> int:
        alert = notice.alert
        site = self._sites.get(alert.site)
        if site is None:
            return 0
        people = self.on_duty(site, now, notice.level)
        meta = Meta(site.name, notice.reason, alert.id, incident.id if incident else None)
        return self._broadcast(
            site, meta, lambda lang: self.alert_message(notice, site, people, now, incident, lang)
        )

    def alert_message(
        self,
        notice: Notice,
        site: Site,
        people: Iterable[tuple[str, str]],
        now: datetime,
        incident: Incident | None = None,
        lang: Lang = "zh",
    ) -> Message:
        """Given a notice, its site, the people to ring, the time, the incident opened for it
        (if any) and a language, return the message."""
        alert = notice.alert
        words = _WORDS[lang]
        check = alert.check_id.rsplit("/", 1)[-1]
        recovered = notice.reason == "recovery"
        lines: list[str] = []
        if notice.reason == "renotify":
            lines.append(words["renotify"].format(duration=_span(now - alert.opened, lang)))
        elif notice.reason == "escalation" and notice.level == 1:
            minutes = int((site.alerts.escalate_after or timedelta(0)).total_seconds() // 60)
            lines.append(words["escalation1"].format(minutes=minutes))
        elif notice.reason == "escalation":
            names = "、" if lang == "zh" else ", "
            told = [c.name for c in site.contacts if c.name in site.alerts.escalate_to]
            lines.append(words["escalation2"].format(names=names.join(told) or "-"))
        elif notice.reason == "flapping":
            lines.append(words["flapping"].format(window=_span(site.alerts.flap_window, lang)))
        if incident is not None:
            due = ""
            if site.sla is not None:
                try:
                    found = verdict(
                        site.sla, incident.severity, "respond", incident.opened, None,
                        max(now, incident.opened),
                    )  # fmt: skip
                except (SlaError, UnknownYear):
                    found = None
                if found is not None:
                    due = words["respond_due"].format(at=_local(found.due, site.timezone))
            lines.append(
                words["incident"].format(
                    id=incident.id, severity=_severity(incident.severity, lang), due=due
                )
            )
        if not recovered:
            lines.append(words["ack"].format(id=alert.id))
        return Message(
            title=title_for(
                alert.state, site.name, alert.target, check, recovered=recovered, lang=lang
            ),
            lines=tuple(lines),
            level="recovery" if recovered else "alert",
            site=site.title or site.name,
            target=alert.target,
            check=check,
            state=State.OK if recovered else alert.state,
            since=now if recovered else alert.opened,
            summary=alert.summary,
            on_duty=tuple(people),
            timezone=site.timezone,
        )

    # ------------------------------------------------------------------ SLA warnings

    def _sla_warnings(self, now: datetime) -> list[tuple[int, str, int]]:
        from opsctl.incidents import incidents, mark_sla_warned

        sent: list[tuple[int, str, int]] = []
        for incident in incidents(self.store, open_only=True):
            site = self._sites.get(incident.site)
            if site is None or site.sla is None:
                continue
            for kind in WARNED_CLOCKS:
                if kind in incident.sla_warned:
                    continue
                if kind == "respond" and incident.acknowledged is not None:
                    continue
                try:
                    target = site.sla.target(incident.severity, kind)
                    if target is None:
                        continue
                    # A short target is warned of at half of it, not at once.
                    soon = min(site.alerts.sla_warning, target / 2)
                    found = verdict(
                        site.sla, incident.severity, kind, incident.opened, None,
                        max(now, incident.opened), soon=soon,
                    )  # fmt: skip
                except (SlaError, UnknownYear) as error:
                    log.warning("incident %d: no SLA clock: %s", incident.id, error)
                    continue
                if found is None or found.state not in ("breaching soon", "breached"):
                    continue
                if not mark_sla_warned(self.store, incident.id, kind):
                    continue
                people = self.on_duty(site, now, 1)
                meta = Meta(site.name, f"sla-{kind}", None, incident.id)
                build = partial(self.sla_message, incident, site, kind, found, people)
                queued = self._broadcast(site, meta, build)
                sent.append((incident.id, kind, queued))
        return sent

    def sla_message(
        self,
        incident: Incident,
        site: Site,
        kind: str,
        found: Any,
        people: Iterable[tuple[str, str]],
        lang: Lang = "zh",
    ) -> Message:
        """Given an open incident, its site, the clock (respond or resolve), its verdict and
        the people to ring, return the warning."""
        words = _WORDS[lang]
        clock = words[kind]
        due = _local(found.due, site.timezone)
        if found.overdue is not None:
            line = words["sla_overdue"].format(
                clock=clock, due=due, over=_span(found.overdue, lang)
            )
        else:
            line = words["sla_line"].format(clock=clock, due=due, left=_span(found.remaining, lang))
        return Message(
            title=words["sla_title"].format(site=site.name, id=incident.id, clock=clock),
            lines=(
                line,
                words["opened"].format(
                    at=_local(incident.opened, site.timezone),
                    severity=_severity(incident.severity, lang),
                ),
            ),
            level="alert",
            site=site.title or site.name,
            target=incident.system,
            check="",
            state=State.WARNING if found.overdue is None else State.CRITICAL,
            since=incident.opened,
            summary=incident.title,
            on_duty=tuple(people),
            timezone=site.timezone,
        )

    # ------------------------------------------------------------------ delivery

    def _broadcast(self, site: Site, meta: Meta, build: Callable[[Lang], Message]) -> int:
        """Queue a message on each of the site's channels, built in the channel's language;
        return how many were queued."""
        queued = 0
        for name in site.alerts.channels:
            channel = self.loaded.channels.get(name)
            if channel is not None:
                queued += self._queue(channel, build(channel.lang), meta)
        return queued

    def _queue(self, channel: ChannelConfig, message: Message, meta: Meta) -> int:
        with self._lock:
            self._meta[id(message)] = (message, meta)
        try:
            self.dispatcher.submit(channel.name, message)
        except (KeyError, RuntimeError) as error:
            with self._lock:
                self._meta.pop(id(message), None)
            log.error("channel %s: message not queued: %s", channel.name, error)
            return 0
        return 1

    def record(self, delivery: Delivery) -> None:
        """Record a final delivery (called by the dispatcher's workers): one row per message
        it carried. Never raises: a store failure is logged."""
        message = delivery.message
        carried = () if message is None else (message.merged or (message,))
        rows = []
        for original in carried:
            with self._lock:
                _kept, meta = self._meta.pop(id(original), (None, Meta(None, "")))
            rows.append(
                NotificationModel(
                    alert_id=meta.alert_id,
                    incident_id=meta.incident_id,
                    site=meta.site,
                    reason=meta.reason or None,
                    channel=delivery.channel,
                    at=delivery.sent_at or utc_now(),
                    status=delivery.status,
                    attempts=delivery.attempts,
                    title=original.title,
                    detail=delivery.detail,
                )
            )
        try:
            record_notifications(self.store, rows)
        except Exception:
            log.exception("channel %s: delivery not recorded", delivery.channel)


# --------------------------------------------------------------------------- the log


def record_notifications(store: Store, rows: Iterable[NotificationModel]) -> None:
    """Store notification rows. Raise StoreError if the database fails."""
    rows = list(rows)
    if not rows:
        return
    with store._guard("record notifications in"), store._sessions.begin() as session:
        session.add_all(rows)


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    at: datetime
    channel: str
    status: str
    attempts: int
    title: str
    detail: str
    site: str | None
    reason: str | None
    alert_id: int | None
    incident_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "title": self.title,
            "detail": self.detail,
            "site": self.site,
            "reason": self.reason,
            "alert_id": self.alert_id,
            "incident_id": self.incident_id,
        }


def notifications(
    store: Store,
    *,
    since: datetime | None = None,
    channel: str | None = None,
    site: str | None = None,
    failed_only: bool = False,
    limit: int = 50,
) -> list[NotificationRow]:
    """Return recorded deliveries, newest first: optionally since a time, of one channel or
    site, or only those not sent. Raise StoreError if the database fails."""
    statement = select(NotificationModel).order_by(
        NotificationModel.at.desc(), NotificationModel.id.desc()
    )
    if since is not None:
        statement = statement.where(NotificationModel.at >= since)
    if channel is not None:
        statement = statement.where(NotificationModel.channel == channel)
    if site is not None:
        statement = statement.where(NotificationModel.site == site)
    if failed_only:
        statement = statement.where(NotificationModel.status != "sent")
    with store._guard("read notifications from"), store._sessions() as session:
        return [
            NotificationRow(
                id=row.id,
                at=row.at,
                channel=row.channel,
                status=row.status,
                attempts=row.attempts,
                title=row.title,
                detail=row.detail,
                site=row.site,
                reason=row.reason,
                alert_id=row.alert_id,
                incident_id=row.incident_id,
            )  # fmt: skip
            for row in session.scalars(statement.limit(limit))
        ]


__all__ = [
    "Meta",
    "NotificationRow",
    "OnCall",
    "PassResult",
    "notifications",
    "record_notifications",
]
