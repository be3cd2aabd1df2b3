"""Alerts: raised from checks' hard problem states, cleared on recovery, re-sent only at the
re-notify interval, summarised while flapping, silenced in maintenance, escalated from the
duty A to B and then to the site's contact while nobody acknowledges.

``evaluate(store, policies, now, send)`` is one pass, run by the scheduler every minute and
safe to run as often as wanted: it reads the current check statuses and the open alerts, and
decides, as a function of them and ``now``, what to open, clear, send and escalate. ``send``
is given each notice (a ``Notice``) and returns nothing: delivery is the notifier's business
(queued, retried, recorded), so a slow robot never holds up the checks.

Flapping follows Nagios in spirit: a check whose state changed ``flap_changes`` times or more
within ``flap_window`` is flapping; its alert says so once and stays quiet until it settles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select

from opsctl.contract import State
from opsctl.maintenance import Window
from opsctl.policy import AlertPolicy
from opsctl.store import Store
from opsctl.store.models import AlertModel, ChangeModel, IncidentModel, StatusModel

#: What a notice is about.
Reason = Literal["problem", "recovery", "renotify", "escalation", "flapping", "acknowledged"]


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    check_id: str
    site: str
    target: str
    kind: str
    state: State
    summary: str
    opened: datetime
    cleared: datetime | None
    acknowledged: datetime | None
    acknowledged_by: str | None
    escalation: int
    flapping: bool
    silenced: str | None
    notifications: int
    announced: datetime | None = None
    incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell people: ``level`` 0 is duty A, 1 duty B, 2 the escalation contact."""

    alert: AlertRow
    reason: Reason
    level: int


class AlertError(ValueError):
    """An alert change that cannot be made; the message says why."""


def evaluate(
    store: Store,
    policies: Mapping[str, AlertPolicy],
    now: datetime,
    send: Callable[[Notice], None],
    windows: Iterable[Window] = (),
) -> list[Notice]:
    """One pass over the statuses and the open alerts (see the module docstring); return
    the notices given to ``send``. ``policies`` are by site (a site without one gets the
    defaults). Raise StoreError if the database fails."""
    windows = list(windows)
    notices: list[Notice] = []
    with store._guard("evaluate alerts in"), store._sessions.begin() as session:
        statuses = {s.check_id: s for s in session.scalars(select(StatusModel))}
        open_alerts = {
            a.check_id: a
            for a in session.scalars(select(AlertModel).where(AlertModel.cleared.is_(None)))
        }
        for check_id, status in statuses.items():
            policy = policies.get(status.site) or AlertPolicy()
            alert = open_alerts.get(check_id)
            raising = _raises(status, policy)
            if alert is None and raising:
                silenced = _window(windows, check_id, now)
                alert = AlertModel(
                    check_id=check_id,
                    site=status.site,
                    target=status.target,
                    kind=status.kind,
                    state=status.state,
                    summary=status.summary,
                    opened=status.last_hard_change,
                    changed=status.last_hard_change,
                    cleared=None,
                    acknowledged=None,
                    acknowledged_by=None,
                    last_notified=None,
                    announced=None,
                    notifications=0,
                    escalation=0,
                    flapping=False,
                    silenced=silenced,
                    incident_id=None,
                )
                session.add(alert)
                session.flush()
                if silenced is None:
                    notices.append(_announce(alert, now))
                continue
            if alert is None:
                continue
            if not raising and status.state_type == "hard" or status.state == State.OK:
                alert.cleared = now
                if alert.silenced is None and alert.notifications:
                    notice = _notify(alert, "recovery", alert.escalation, now)
                    # The recovery tells what the check says now; the alert keeps the problem.
                    notices.append(
                        replace(notice, alert=replace(notice.alert, summary=status.summary))
                    )
                continue
            if status.state_type == "hard" and status.state != alert.state:
                alert.state = status.state
                alert.changed = status.last_hard_change
            alert.summary = status.summary
            # A maintenance window that opens over a problem silences it too; when the last
            # window over it closes with the problem still there, people are told.
            window = _window(windows, check_id, now)
            if window is not None:
                alert.silenced = window
                continue
            if alert.silenced is not None:
                alert.silenced = None
                if alert.announced is None and alert.acknowledged is None:
                    notices.append(_announce(alert, now))
                    continue
            if alert.acknowledged is not None:
                continue
            changes = session.scalar(
                select(func.count())
                .select_from(ChangeModel)
                .where(ChangeModel.check_id == check_id, ChangeModel.at >= now - policy.flap_window)
            )
            if changes >= policy.flap_changes:
                if not alert.flapping:
                    alert.flapping = True
                    notices.append(_notify(alert, "flapping", alert.escalation, now))
                continue
            alert.flapping = False
            if policy.escalate_after is not None and alert.escalation < 2:
                base = alert.announced or alert.opened
                due = base + policy.escalate_after * (alert.escalation + 1)
                if now >= due:
                    alert.escalation += 1
                    notices.append(_notify(alert, "escalation", alert.escalation, now))
                    continue
            if (
                policy.renotify is not None
                and alert.last_notified is not None
                and now - alert.last_notified >= policy.renotify
            ):
                notices.append(_notify(alert, "renotify", alert.escalation, now))
        for check_id, alert in open_alerts.items():
            if check_id not in statuses:  # the check left the inventory and its status went
                alert.cleared = now
    for notice in notices:
        send(notice)
    return notices


def acknowledge(store: Store, alert_id: int, by: str, at: datetime) -> AlertRow:
    """Acknowledge an open alert: no more re-sending or escalation. Raise AlertError if it
    is unknown or already cleared."""
    with store._guard("acknowledge an alert in"), store._sessions.begin() as session:
        alert = session.get(AlertModel, alert_id)
        if alert is None:
            raise AlertError(f"no alert {alert_id}")
        if alert.cleared is not None:
            raise AlertError(f"alert {alert_id} was cleared at {alert.cleared.isoformat()}")
        if alert.acknowledged is None:
            alert.acknowledged = at
            alert.acknowledged_by = by
        # Acknowledging is the first reply: it answers the incident opened from the alert.
        if alert.incident_id is not None:
            incident = session.get(IncidentModel, alert.incident_id)
            if incident is not None and incident.acknowledged is None and at >= incident.opened:
                incident.acknowledged = at
                incident.acknowledged_by = by
        return _row(alert)


def link_incident(store: Store, alert_id: int, incident_id: int) -> None:
    """Record that an incident was opened for an alert. Raise AlertError if it is unknown."""
    with store._guard("link an alert in"), store._sessions.begin() as session:
        alert = session.get(AlertModel, alert_id)
        if alert is None:
            raise AlertError(f"no alert {alert_id}")
        alert.incident_id = incident_id


def alerts(store: Store, *, open_only: bool = True, site: str | None = None) -> list[AlertRow]:
    """Return alerts, newest first: the open ones, or all."""
    statement = select(AlertModel).order_by(AlertModel.opened.desc(), AlertModel.id.desc())
    if open_only:
        statement = statement.where(AlertModel.cleared.is_(None))
    if site is not None:
        statement = statement.where(AlertModel.site == site)
    with store._guard("read alerts from"), store._sessions() as session:
        return [_row(alert) for alert in session.scalars(statement)]


def _raises(status: StatusModel, policy: AlertPolicy) -> bool:
    if status.state_type != "hard" or status.state == State.OK:
        return False
    if status.state == State.UNKNOWN:
        return policy.unknown_alerts
    return status.state >= State[policy.min_state]


def _window(windows: list[Window], check_id: str, now: datetime) -> str | None:
    """The name of the first window covering the check now, or None."""
    return next((w.name for w in windows if w.covers(check_id, now)), None)


def _announce(alert: AlertModel, now: datetime) -> Notice:
    """The first problem notice: escalation is timed from it."""
    alert.announced = now
    return _notify(alert, "problem", 0, now)


def _notify(alert: AlertModel, reason: Reason, level: int, now: datetime) -> Notice:
    alert.last_notified = now
    alert.notifications += 1
    return Notice(_row(alert), reason, level)


def _row(alert: AlertModel) -> AlertRow:
    return AlertRow(
        id=alert.id,
        check_id=alert.check_id,
        site=alert.site,
        target=alert.target,
        kind=alert.kind,
        state=State(alert.state),
        summary=alert.summary,
        opened=alert.opened,
        cleared=alert.cleared,
        acknowledged=alert.acknowledged,
        acknowledged_by=alert.acknowledged_by,
        escalation=alert.escalation,
        flapping=alert.flapping,
        silenced=alert.silenced,
        notifications=alert.notifications,
        announced=alert.announced,
        incident_id=alert.incident_id,
    )
