"""The incident log: what happened to which system, and when it was answered and solved.

An incident has a site, a system, a severity (``critical``, ``major``, ``minor`` or
``complaint``), a category, a title and description, a reporter, and three moments: opened,
acknowledged (the first reply) and resolved, plus the root cause and the actions taken.
Notes record the work in between. The SLA clocks (``opsctl.sla``) are computed from these
moments, never stored, so a corrected policy re-judges the past the same way.

Personal data (ID-card and mobile numbers) is masked before anything is stored.
Moments out of order are refused: an incident cannot be answered or resolved before it was
opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from opsctl.calendar import UnknownYear
from opsctl.contract import utc_now
from opsctl.masking import mask
from opsctl.sla import SEVERITIES, Kind, SlaError, SlaPolicy, due, verdict
from opsctl.store import Store
from opsctl.store.models import AlertModel, IncidentModel, IncidentNoteModel


class IncidentError(ValueError):
    """An incident change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class Note:
    at: datetime
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident as stored, with its notes when read with ``get``."""

    id: int
    site: str
    system: str
    severity: str
    category: str
    title: str
    description: str
    reporter: str
    source: str
    opened: datetime
    acknowledged: datetime | None
    acknowledged_by: str | None
    resolved: datetime | None
    root_cause: str
    actions: str
    notes: tuple[Note, ...] = field(default=())
    #: The SLA clocks whose coming breach the people on duty were already told of.
    sla_warned: tuple[str, ...] = ()
    #: The alerts linked to it (ids), when read with ``get``.
    alerts: tuple[int, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.resolved is None


ClockState = Literal[
    "met", "breached", "running", "breaching soon", "not opened yet", "not recorded", "unknown"
]


@dataclass(frozen=True, slots=True)
class Clock:
    """How one SLA clock of an incident stands at the moment judged.

    ``state`` is a verdict's (``met``, ``breached``, ``running``, ``breaching soon``), or
    ``not opened yet`` (the incident was opened after that moment), ``not recorded`` (the
    on-site clock: opsctl records no arrival, so only its due time is known) or ``unknown``
    (``reason`` says why). ``due`` is None only when it could not be computed.
    """

    due: datetime | None
    state: ClockState
    remaining: timedelta | None = None
    overdue: timedelta | None = None
    reason: str | None = None


SLA_KINDS: tuple[Kind, ...] = ("respond", "resolve", "onsite")


def sla_clock(
    policy: SlaPolicy, incident: Incident, kind: Kind, now: datetime, soon: timedelta
) -> Clock | None:
    """Given a site's policy, an incident, a kind (respond, resolve, onsite), the moment to
    judge at and the breaching-soon margin, return the clock, or None if the policy sets no
    such target for the incident's severity. Never raises for the holiday calendar's limits:
    a year it does not know makes the clock ``unknown``."""
    deadline: datetime | None = None
    try:
        deadline = due(policy, incident.severity, kind, incident.opened)
        if deadline is None:
            return None
        if kind == "onsite":
            return Clock(deadline, "not recorded")
        if now < incident.opened:
            return Clock(deadline, "not opened yet")
        done = incident.acknowledged if kind == "respond" else incident.resolved
        if done is not None and done > now:
            done = None
        found = verdict(policy, incident.severity, kind, incident.opened, done, now, soon=soon)
    except UnknownYear as error:
        return Clock(deadline, "unknown", reason=f"holiday calendar has no data for {error.year}")
    except SlaError as error:
        return Clock(deadline, "unknown", reason=str(error))
    if found is None:  # not so: the target exists, so there is a verdict
        return None
    return Clock(found.due, found.state, found.remaining, found.overdue)


def sla_clocks(
    policy: SlaPolicy, incident: Incident, now: datetime, soon: timedelta = timedelta(minutes=30)
) -> dict[str, Clock | None]:
    """Given a site's policy, an incident, the moment to judge at and the breaching-soon
    margin, return its respond, resolve and onsite clocks (None where the policy sets no
    target for the incident's severity)."""
    return {kind: sla_clock(policy, incident, kind, now, soon) for kind in SLA_KINDS}


def open_incident(
    store: Store,
    *,
    site: str,
    system: str,
    severity: str,
    title: str,
    reporter: str,
    category: str = "",
    description: str = "",
    opened: datetime | None = None,
    source: str = "manual",
) -> Incident:
    """Record a new incident and return it. Raise IncidentError for an unknown severity, an
    empty title or a naive time; StoreError if the database fails."""
    if severity not in SEVERITIES:
        raise IncidentError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not title.strip():
        raise IncidentError("an incident needs a title")
    opened = _aware(opened or utc_now(), "opened")
    model = IncidentModel(
        site=site,
        system=system,
        severity=severity,
        category=category,
        title=mask(title.strip()),
        description=mask(description),
        reporter=reporter,
        source=source,
        opened=opened,
        acknowledged=None,
        acknowledged_by=None,
        resolved=None,
        root_cause="",
        actions="",
    )
    with store._guard("open an incident in"), store._sessions.begin() as session:
        session.add(model)
        session.flush()
        return _incident(model, ())


def acknowledge(store: Store, incident_id: int, by: str, at: datetime | None = None) -> Incident:
    """Record the first reply to an incident (a later one keeps the first). Raise
    IncidentError if it is unknown or ``at`` is before it was opened."""
    at = _aware(at or utc_now(), "at")
    with store._guard("acknowledge an incident in"), store._sessions.begin() as session:
        model = _find(session, incident_id)
        if at < model.opened:
            raise IncidentError(
                f"incident {incident_id} cannot be acknowledged at {at.isoformat()}, before it "
                f"was opened ({model.opened.isoformat()})"
            )
        if model.acknowledged is None:
            model.acknowledged = at
            model.acknowledged_by = by
        return _incident(model, _notes(session, incident_id))


def add_note(
    store: Store, incident_id: int, author: str, text: str, at: datetime | None = None
) -> Incident:
    """Add a note to an incident. Raise IncidentError if it is unknown or the text empty."""
    if not text.strip():
        raise IncidentError("a note needs text")
    at = _aware(at or utc_now(), "at")
    with store._guard("add a note to an incident in"), store._sessions.begin() as session:
        model = _find(session, incident_id)
        session.add(
            IncidentNoteModel(incident_id=incident_id, at=at, author=author, text=mask(text))
        )
        session.flush()
        return _incident(model, _notes(session, incident_id))


def resolve(
    store: Store,
    incident_id: int,
    *,
    root_cause: str = "",
    actions: str = "",
    at: datetime | None = None,
    by: str | None = None,
) -> Incident:
    """Record that an incident is solved, with its cause and the actions taken. An incident
    never acknowledged is acknowledged at the same moment. Raise IncidentError if it is
    unknown, already resolved, or ``at`` is before it was opened."""
    at = _aware(at or utc_now(), "at")
    with store._guard("resolve an incident in"), store._sessions.begin() as session:
        model = _find(session, incident_id)
        if model.resolved is not None:
            raise IncidentError(
                f"incident {incident_id} was already resolved at {model.resolved.isoformat()}"
            )
        if at < model.opened:
            raise IncidentError(
                f"incident {incident_id} cannot be resolved at {at.isoformat()}, before it was "
                f"opened ({model.opened.isoformat()})"
            )
        if model.acknowledged is None:
            model.acknowledged = at
            model.acknowledged_by = by
        model.resolved = at
        model.root_cause = mask(root_cause)
        model.actions = mask(actions)
        return _incident(model, _notes(session, incident_id))


def get(store: Store, incident_id: int) -> Incident:
    """Return one incident with its notes. Raise IncidentError if it is unknown."""
    with store._guard("read an incident from"), store._sessions() as session:
        linked = session.scalars(
            select(AlertModel.id)
            .where(AlertModel.incident_id == incident_id)
            .order_by(AlertModel.id)
        )
        return _incident(_find(session, incident_id), _notes(session, incident_id), tuple(linked))


def mark_sla_warned(store: Store, incident_id: int, kind: str) -> bool:
    """Record that the people on duty were told that the incident's ``kind`` clock (respond,
    resolve) is about to run out. Return True if it was not recorded before (so the warning
    is to be sent), False if it was. Raise IncidentError if the incident is unknown."""
    with store._guard("mark an SLA warning in"), store._sessions.begin() as session:
        model = _find(session, incident_id)
        warned = (model.sla_warned or "").split()
        if kind in warned:
            return False
        model.sla_warned = " ".join([*warned, kind])
        return True


def incidents(
    store: Store,
    *,
    site: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    open_only: bool = False,
) -> list[Incident]:
    """Return incidents (without notes), newest first: optionally one site's, opened in
    [since, until), or only those not yet resolved."""
    statement = select(IncidentModel).order_by(IncidentModel.opened.desc(), IncidentModel.id.desc())
    if site is not None:
        statement = statement.where(IncidentModel.site == site)
    if since is not None:
        statement = statement.where(IncidentModel.opened >= _aware(since, "since"))
    if until is not None:
        statement = statement.where(IncidentModel.opened < _aware(until, "until"))
    if open_only:
        statement = statement.where(IncidentModel.resolved.is_(None))
    with store._guard("read incidents from"), store._sessions() as session:
        return [_incident(model, ()) for model in session.scalars(statement)]


def _find(session: object, incident_id: int) -> IncidentModel:
    model = session.get(IncidentModel, incident_id)  # type: ignore[attr-defined]
    if model is None:
        raise IncidentError(f"no incident {incident_id}")
    return model


def _notes(session: object, incident_id: int) -> tuple[Note, ...]:
    rows = session.scalars(  # type: ignore[attr-defined]
        select(IncidentNoteModel)
        .where(IncidentNoteModel.incident_id == incident_id)
        .order_by(IncidentNoteModel.at, IncidentNoteModel.id)
    )
    return tuple(Note(row.at, row.author, row.text) for row in rows)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise IncidentError(f"{name} must have a time zone, got {value.isoformat()}")
    return value


def _incident(
    model: IncidentModel, notes: tuple[Note, ...], alerts: tuple[int, ...] = ()
) -> Incident:
    return Incident(
        id=model.id,
        site=model.site,
        system=model.system,
        severity=model.severity,
        category=model.category,
        title=model.title,
        description=model.description,
        reporter=model.reporter,
        source=model.source,
        opened=model.opened,
        acknowledged=model.acknowledged,
        acknowledged_by=model.acknowledged_by,
        resolved=model.resolved,
        root_cause=model.root_cause,
        actions=model.actions,
        notes=notes,
        sla_warned=tuple((model.sla_warned or "").split()),
        alerts=alerts,
    )
