"""The scheduler's jobs: what a schedule of the inventory does when it fires, and the
``job_runs`` rows that record every run.

APScheduler stores each schedule's job in the store (it serialises the job itself), so the
job function, ``run_schedule``, takes only plain strings: the schedule's name, the inventory's
path and the store's URL with its password masked (a password never lands in the job table).
In a running server it finds the server's open store and loaded inventory by those two (see
``register_runtime``); anywhere else it loads the inventory and opens a store whose URL needs
no password.

Each run writes a ``job_runs`` row when it starts (``running``) and completes it (``ok`` or
``failed``, with a message and details); a run never raises into APScheduler. ``inspect``
runs the schedule's checks into the store; ``report``, ``export`` and ``runbook`` are
dispatched through ``JOB_RUNNERS``, which the modules doing that work fill in. A job kind
without a runner fails with a message that says so.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from opsctl.contract import State, utc_now, worst
from opsctl.duration import format_duration
from opsctl.store.models import JobRunModel

if TYPE_CHECKING:
    from opsctl.inventory import LoadedInventory, Schedule
    from opsctl.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: The outcomes of a run, as ``job_runs.outcome`` holds them.
RUNNING, OK, FAILED = "running", "ok", "failed"

#: How many problem checks an inspect run lists in its details.
PROBLEMS_LISTED = 50


# --------------------------------------------------------------------------- job_runs rows


@dataclass(frozen=True, slots=True)
class JobRunRow:
    """One run of a schedule (a row of ``job_runs``)."""

    id: int
    schedule: str
    job: str
    site: str | None
    scheduled_for: datetime | None
    started: datetime
    finished: datetime | None
    outcome: str  # running | ok | failed
    message: str
    details: dict[str, Any]
    holder: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this run (times as ISO 8601 in UTC)."""
        return {
            "id": self.id,
            "schedule": self.schedule,
            "job": self.job,
            "site": self.site,
            "scheduled_for": _iso(self.scheduled_for),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "outcome": self.outcome,
            "message": self.message,
            "details": self.details,
            "holder": self.holder,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def begin_run(
    store: Store,
    *,
    schedule: str,
    job: str,
    site: str | None,
    holder: str,
    started: datetime,
    scheduled_for: datetime | None = None,
) -> int:
    """Given an open store and a run about to start, write its ``running`` row and return
    its id. Raise ValueError if a datetime is naive, StoreError if the database fails."""
    values = {
        "schedule": schedule,
        "job": job,
        "site": site,
        "scheduled_for": scheduled_for,
        "started": started,
        "finished": None,
        "outcome": RUNNING,
        "message": "",
        "details": {},
        "holder": holder,
    }
    with store._guard("record a job run"), store._sessions.begin() as session:
        return session.scalar(insert(JobRunModel).values(**values).returning(JobRunModel.id))


def end_run(
    store: Store,
    run_id: int,
    *,
    outcome: str,
    message: str,
    details: dict[str, Any],
    finished: datetime,
) -> None:
    """Given an open store and a run's id, record how it ended (``ok`` or ``failed``).
    Raise ValueError if the outcome is unknown or ``finished`` naive, StoreError if the
    database fails."""
    if outcome not in (OK, FAILED):
        raise ValueError(f"a run ends ok or failed, not {outcome!r}")
    statement = (
        update(JobRunModel)
        .where(JobRunModel.id == run_id)
        .values(outcome=outcome, message=message, details=details, finished=finished)
    )
    with store._guard("record a job run"), store._sessions.begin() as session:
        session.execute(statement)


def record_missed(
    store: Store,
    *,
    schedule: str,
    job: str,
    site: str | None,
    holder: str,
    scheduled_for: datetime,
    now: datetime,
    catch_up: timedelta,
) -> int:
    """Given a run that was due at ``scheduled_for`` while no server ran the scheduler and
    is now later than its ``catch_up``, write a ``failed`` row saying it was missed; return
    its id. Raise StoreError if the database fails."""
    late = now - scheduled_for
    run_id = begin_run(
        store,
        schedule=schedule,
        job=job,
        site=site,
        holder=holder,
        started=now,
        scheduled_for=scheduled_for,
    )
    end_run(
        store,
        run_id,
        outcome=FAILED,
        message=(
            f"missed: no server ran the scheduler when it was due, and {format_duration(late)} "
            f"late is more than its catch_up of {format_duration(catch_up)}"
        ),
        details={"missed": True, "late_seconds": late.total_seconds()},
        finished=now,
    )
    return run_id


def job_runs(
    store: Store,
    *,
    schedule: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[JobRunRow]:
    """Given an open store, return the runs started at or after ``since`` (all if None),
    newest first, at most ``limit``; optionally only one schedule's. Raise StoreError if the
    database fails."""
    statement = (
        select(JobRunModel).order_by(JobRunModel.started.desc(), JobRunModel.id.desc()).limit(limit)
    )
    if schedule is not None:
        statement = statement.where(JobRunModel.schedule == schedule)
    if since is not None:
        statement = statement.where(JobRunModel.started >= since)
    with store._guard("read job runs"), store._sessions() as session:
        return [_row(model) for model in session.scalars(statement)]


def last_runs(store: Store) -> dict[str, JobRunRow]:
    """Given an open store, return the latest run of every schedule that has one, by
    schedule name. Raise StoreError if the database fails."""
    latest = select(func.max(JobRunModel.id)).group_by(JobRunModel.schedule)
    statement = select(JobRunModel).where(JobRunModel.id.in_(latest))
    with store._guard("read job runs"), store._sessions() as session:
        return {model.schedule: _row(model) for model in session.scalars(statement)}


def schedule_names_with_runs(store: Store) -> set[str]:
    """Given an open store, return the names of the schedules that have any recorded run.
    Raise StoreError if the database fails."""
    with store._guard("read job runs"), store._sessions() as session:
        return set(session.scalars(select(JobRunModel.schedule).distinct()))


def _row(model: JobRunModel) -> JobRunRow:
    return JobRunRow(
        id=model.id,
        schedule=model.schedule,
        job=model.job,
        site=model.site,
        scheduled_for=model.scheduled_for,
        started=model.started,
        finished=model.finished,
        outcome=model.outcome,
        message=model.message,
        details=dict(model.details or {}),
        holder=model.holder,
    )


# --------------------------------------------------------------------------- job kinds


@dataclass(frozen=True)
class JobContext:
    """What a job runner is given: the schedule, the loaded inventory, the open store, who
    runs it, when it was due (None when run by hand) and when it started."""

    schedule: Schedule
    loaded: LoadedInventory
    store: Store
    holder: str
    scheduled_for: datetime | None
    started: datetime
    run_id: int


@dataclass(frozen=True)
class JobOutcome:
    """What a job runner returns: whether the job did its work, a one-line message a person
    reads, and details (JSON-ready) kept with the run."""

    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def run_inspect(context: JobContext) -> JobOutcome:
    """The ``inspect`` job: run the schedule's checks (its site and kinds filters; every
    enabled check without them) into the store, retrying soft problems as ``opsctl check run``
    does. Succeeds when the checks ran, whatever their states; the message gives the worst."""
    schedule = context.schedule
    sites = {site.name for site in context.loaded.inventory.sites}
    if schedule.site is not None and schedule.site not in sites:
        return JobOutcome(False, f"site {schedule.site!r} is not in the inventory")
    checks = context.loaded.select(
        sites=[schedule.site] if schedule.site else (), kinds=schedule.kinds
    )
    if not checks:
        filters = []
        if schedule.site:
            filters.append(f"site {schedule.site}")
        if schedule.kinds:
            filters.append(f"kinds {', '.join(schedule.kinds)}")
        return JobOutcome(
            False,
            "no enabled check matches " + (" and ".join(filters) if filters else "(none enabled)"),
        )
    from opsctl.runner import run_into_store

    outcomes = run_into_store(context.store, checks, retry=True)
    counts = Counter(outcome.result.state for outcome in outcomes)
    worst_state = worst(outcome.result.state for outcome in outcomes)
    tally = ", ".join(f"{counts[state]} {state.name}" for state in State if counts[state])
    problems = [
        {"check_id": o.check.id, "state": o.result.state.name, "summary": o.result.summary}
        for o in outcomes
        if o.result.state != State.OK
    ]
    return JobOutcome(
        True,
        f"{len(outcomes)} check{'s' if len(outcomes) != 1 else ''} run, "
        f"worst {worst_state.name} ({tally})",
        {
            "checks": len(outcomes),
            "worst": worst_state.name,
            "states": {state.name: counts[state] for state in State if counts[state]},
            "problems": problems[:PROBLEMS_LISTED],
        },
    )


#: The runner of each job kind. ``inspect`` is built in; the modules that make reports,
#: exports and runbooks register theirs here.
JOB_RUNNERS: dict[str, Callable[[JobContext], JobOutcome]] = {"inspect": run_inspect}


def find_schedule(loaded: LoadedInventory, name: str) -> Schedule | None:
    """Given a loaded inventory and a schedule name, return the schedule, or None."""
    return next((s for s in loaded.inventory.schedules if s.name == name), None)


def run_schedule_now(
    store: Store,
    loaded: LoadedInventory,
    name: str,
    *,
    holder: str,
    scheduled_for: datetime | None = None,
    clock: Clock = utc_now,
) -> int | None:
    """Given an open store, the loaded inventory and a schedule's name, run it now and
    record the run; return the run's id (None if not even its row could be written, which is
    logged). Whatever the job does, this never raises: a failure is the run's outcome."""
    schedule = find_schedule(loaded, name)
    started = clock()
    try:
        run_id = begin_run(
            store,
            schedule=name,
            job=schedule.job if schedule is not None else "unknown",
            site=schedule.site if schedule is not None else None,
            holder=holder,
            started=started,
            scheduled_for=scheduled_for,
        )
    except Exception:
        log.exception("schedule %s: cannot record its run; not run", name)
        return None
    if schedule is None:
        outcome = JobOutcome(False, f"no schedule named {name!r} in {loaded.path}")
    else:
        outcome = _run_job(
            JobContext(schedule, loaded, store, holder, scheduled_for, started, run_id)
        )
    try:
        end_run(
            store,
            run_id,
            outcome=OK if outcome.ok else FAILED,
            message=outcome.message,
            details=outcome.details,
            finished=clock(),
        )
    except Exception:
        log.exception("schedule %s: cannot record the end of run %s", name, run_id)
    return run_id


def _run_job(context: JobContext) -> JobOutcome:
    kind = context.schedule.job
    runner = JOB_RUNNERS.get(kind)
    if runner is None:
        return JobOutcome(False, f"no runner for job kind {kind!r} in this version of opsctl")
    try:
        outcome = runner(context)
    except Exception as error:  # a job's failure is its run's outcome, never the scheduler's
        log.exception("schedule %s (%s) failed", context.schedule.name, kind)
        return JobOutcome(
            False,
            f"{kind} failed: {str(error) or type(error).__name__}",
            {"error": type(error).__name__},
        )
    if not isinstance(outcome, JobOutcome):
        return JobOutcome(
            False, f"the {kind} runner returned {type(outcome).__name__}, not a JobOutcome"
        )
    log.info("schedule %s (%s): %s", context.schedule.name, kind, outcome.message)
    return outcome


# --------------------------------------------------------------------------- the job function


@dataclass(frozen=True, eq=False)
class Runtime:
    """A running server's open store and loaded inventory, which its jobs use."""

    store: Store
    loaded: LoadedInventory
    holder: str
    clock: Clock = utc_now
    leading: Callable[[], bool] = lambda: True


_runtimes: dict[tuple[str, str], list[Runtime]] = {}
_runtimes_lock = threading.Lock()
_scheduled = threading.local()


def runtime_key(store_url: str, inventory: str | Path) -> tuple[str, str]:
    """Given a store URL (masked or not; a bare SQLite path too) and an inventory path,
    return the key a runtime is registered under: the masked URL, normalised as the store
    opens it, and the inventory's absolute path."""
    return job_store_url(store_url), str(Path(inventory).resolve())


def job_store_url(store_url: str) -> str:
    """Given a store URL, return it as a schedule's job keeps it: normalised as the store
    opens it (a bare path made an absolute SQLite URL), its password masked."""
    from opsctl.store import mask_url, resolve_url

    return mask_url(resolve_url(store_url, {}, None))


def register_runtime(store_url: str, runtime: Runtime) -> None:
    """Make a server's open store and inventory the ones its jobs use."""
    key = runtime_key(store_url, runtime.loaded.path)
    with _runtimes_lock:
        _runtimes.setdefault(key, []).append(runtime)


def unregister_runtime(store_url: str, runtime: Runtime) -> None:
    """Forget a runtime registered with ``register_runtime`` (when its server stops)."""
    key = runtime_key(store_url, runtime.loaded.path)
    with _runtimes_lock:
        held = _runtimes.get(key, [])
        if runtime in held:
            held.remove(runtime)
        if not held:
            _runtimes.pop(key, None)


def _registered(key: tuple[str, str]) -> Runtime | None:
    with _runtimes_lock:
        held = list(_runtimes.get(key, []))
    leading = [runtime for runtime in held if runtime.leading()]
    return (leading or held or [None])[0]


@contextmanager
def scheduled_for(run_time: datetime | None) -> Iterator[None]:
    """Within this block, ``scheduled_time()`` in this thread returns ``run_time``: how the
    scheduler's executor tells a job when it was due."""
    previous = getattr(_scheduled, "value", None)
    _scheduled.value = run_time
    try:
        yield
    finally:
        _scheduled.value = previous


def scheduled_time() -> datetime | None:
    """The time the job running in this thread was due (None outside the scheduler)."""
    return getattr(_scheduled, "value", None)


def run_schedule(schedule: str, inventory: str, store: str) -> None:
    """The job APScheduler stores for each schedule. Given the schedule's name, the
    inventory's path and the store's URL (password masked), run the schedule and record the
    run. Never raises: whatever fails is logged, and recorded when the store can be reached.
    """
    due = scheduled_time()
    key = runtime_key(store, inventory)
    runtime = _registered(key)
    if runtime is not None:
        run_schedule_now(
            runtime.store,
            runtime.loaded,
            schedule,
            holder=runtime.holder,
            scheduled_for=due,
            clock=runtime.clock,
        )
        return
    try:
        _run_standalone(schedule, inventory, store, due)
    except Exception:
        log.exception("schedule %s: cannot run it", schedule)


def _run_standalone(schedule: str, inventory: str, url: str, due: datetime | None) -> None:
    """Run a schedule outside a server: load the inventory, open the store."""
    from opsctl.inventory import load
    from opsctl.server.lease import default_holder
    from opsctl.store import Store

    if "***" in url:
        log.error(
            "schedule %s: no server in this process has the store %s open, and its password "
            "is not kept with the job; not run",
            schedule,
            url,
        )
        return
    loaded = load(inventory)
    with Store.open(url) as opened:
        run_schedule_now(opened, loaded, schedule, holder=default_holder(), scheduled_for=due)


__all__ = [
    "FAILED",
    "JOB_RUNNERS",
    "OK",
    "RUNNING",
    "JobContext",
    "JobOutcome",
    "JobRunRow",
    "Runtime",
    "begin_run",
    "end_run",
    "find_schedule",
    "job_runs",
    "job_store_url",
    "last_runs",
    "record_missed",
    "register_runtime",
    "run_inspect",
    "run_schedule",
    "run_schedule_now",
    "runtime_key",
    "schedule_names_with_runs",
    "scheduled_for",
    "scheduled_time",
    "unregister_runtime",
]
