"""The scheduler of ``opsctl server``: the inventory's cron schedules, the watch that runs
checks when they are due, and the dispenser fleet's sweep — run by exactly one of the
servers sharing a store, the holder of the ``scheduler`` lease (see ``opsctl.server.lease``).

The leader runs an APScheduler ``BackgroundScheduler``. Each schedule of the inventory is a
job ``schedule:NAME`` kept in the store's ``apscheduler_jobs`` table, so that a run due while
no server was up is still known when one starts: it is made once (however many cron times
passed) if it is at most the schedule's ``catch_up`` late, and otherwise recorded as missed.
That is why a starting leader keeps each stored job whose cron, time zone and job kind are
unchanged (with its pending run time), replaces only the changed ones and removes the jobs
of deleted schedules.

Two jobs live only in memory, on the leader: ``watch`` runs the enabled checks that are due
(see ``due``), ``fleet-sweep`` judges the dispenser fleet's devices on the server's clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor as Pool
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from opsctl.contract import State, utc_now
from opsctl.cron import cron_trigger
from opsctl.server.jobs import (
    Runtime,
    find_schedule,
    job_store_url,
    record_missed,
    register_runtime,
    run_schedule,
    scheduled_for,
    unregister_runtime,
)
from opsctl.server.lease import DEFAULT_TTL, Lease, LeaseKeeper

if TYPE_CHECKING:
    from apscheduler.events import JobExecutionEvent
    from apscheduler.schedulers.background import BackgroundScheduler

    from opsctl.inventory import CheckInstance, LoadedInventory, Schedule
    from opsctl.oncall import OnCall, PassResult
    from opsctl.store import StatusRow, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: The table APScheduler keeps the schedules' jobs in, in the store's database.
JOB_TABLE = "apscheduler_jobs"

#: The time zone of a schedule whose own and whose site's are not given.
DEFAULT_ZONE = "Asia/Shanghai"

#: The prefix of a schedule's job id.
JOB_PREFIX = "schedule:"

_RUN_SCHEDULE = f"{run_schedule.__module__}:{run_schedule.__qualname__}"


# --------------------------------------------------------------------------- cron


def schedule_zone(schedule: Schedule, loaded: LoadedInventory) -> str:
    """Given a schedule and its inventory, return its time zone: its own, else its site's,
    else Asia/Shanghai."""
    if schedule.timezone:
        return schedule.timezone
    for site in loaded.inventory.sites:
        if site.name == schedule.site:
            return site.timezone
    return DEFAULT_ZONE


def next_run(schedule: Schedule, loaded: LoadedInventory, now: datetime) -> datetime | None:
    """Given a schedule, its inventory and the time, return when its cron fires next (at
    or after ``now``), in UTC; None if never. Needs no server."""
    trigger = cron_trigger(schedule.cron, schedule_zone(schedule, loaded))
    when = trigger.get_next_fire_time(None, now)
    return None if when is None else when.astimezone(UTC)


def job_id(schedule: str) -> str:
    """Given a schedule's name, return the id of its job."""
    return f"{JOB_PREFIX}{schedule}"


def _label(schedule: Schedule, zone: str) -> str:
    """The job's name: what identifies an unchanged job across restarts."""
    return f"{schedule.name}: {schedule.job} at '{schedule.cron}' {zone}"


# --------------------------------------------------------------------------- the watch


def due(
    checks: Iterable[CheckInstance], statuses: Mapping[str, StatusRow], now: datetime
) -> list[CheckInstance]:
    """Given checks, their stored statuses by check id and the time, return the checks due
    to run, in the order given: those never run; those in a soft problem state whose last run
    is at least their ``retry_interval`` ago (Nagios's re-check before a state turns hard);
    and the others whose last run is at least their ``interval`` ago.
    """
    chosen = []
    for check in checks:
        status = statuses.get(check.id)
        if status is None:
            chosen.append(check)
            continue
        soft_problem = status.state_type == "soft" and State(status.state) != State.OK
        wait = check.spec.retry_interval if soft_problem else check.spec.interval
        if status.last_checked + wait <= now:
            chosen.append(check)
    return chosen


class Watcher:
    """Runs the inventory's enabled checks when they are due, each on its own into the store,
    at most ``concurrency`` at a time. A check still running (or waiting for a free slot) is
    not started again."""

    def __init__(
        self,
        store: Store,
        loaded: LoadedInventory,
        *,
        clock: Clock = utc_now,
        concurrency: int = 8,
    ) -> None:
        """Given an open store, the loaded inventory, a clock and the number of checks that
        may run at once."""
        self.store = store
        self.loaded = loaded
        self.clock = clock
        self._pool = Pool(max_workers=max(1, concurrency), thread_name_prefix="opsctl-watch")
        self._in_flight: set[str] = set()
        self._changed = threading.Condition()
        self._closed = False

    def tick(self) -> list[str]:
        """Start the due checks that are not running; return their ids. Never raises (a
        store that cannot be read is logged, and the next tick tries again)."""
        with self._changed:
            if self._closed:
                return []
            running = set(self._in_flight)
        candidates = [check for check in self.loaded.select() if check.id not in running]
        if not candidates:
            return []
        try:
            statuses = self.store.statuses([check.id for check in candidates])
        except Exception as error:
            log.warning("watch: cannot read the checks' statuses: %s", error)
            return []
        chosen = due(candidates, statuses, self.clock())
        started = []
        with self._changed:
            for check in chosen:
                if self._closed or check.id in self._in_flight:
                    continue
                self._in_flight.add(check.id)
                self._pool.submit(self._run, check)
                started.append(check.id)
        return started

    def in_flight(self) -> set[str]:
        """The ids of the checks running or waiting for a slot now."""
        with self._changed:
            return set(self._in_flight)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no check is in flight; return True if none is."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._in_flight, timeout)

    def close(self, wait: bool = False) -> None:
        """Start no more checks; drop those waiting for a slot. With ``wait``, wait for the
        running ones to finish (each is bounded by its timeout)."""
        with self._changed:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _run(self, check: CheckInstance) -> None:
        from opsctl.runner import run_into_store

        try:
            run_into_store(self.store, [check], concurrency=1, retry=False)
        except Exception:
            log.exception("watch: running %s failed", check.id)
        finally:
            with self._changed:
                self._in_flight.discard(check.id)
                self._changed.notify_all()


# --------------------------------------------------------------------------- the executor


class _Executor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling each run (through ``jobs.scheduled_time``) the
    time it was due."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def done(future: Future[Any]) -> None:
            if future.cancelled():
                error: BaseException | None = RuntimeError("cancelled at shutdown")
            else:
                error = future.exception()
            if error is not None:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(_run_at, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(done)


def _run_at(job: Any, alias: str, run_times: list[datetime], logger_name: str) -> list[Any]:
    events: list[Any] = []
    for run_time in run_times:
        with scheduled_for(run_time.astimezone(UTC)):
            events.extend(run_job(job, alias, [run_time], logger_name))
    return events


def _add_internal(
    scheduler: BackgroundScheduler,
    function: Callable[[], Any],
    name: str,
    every: timedelta,
    now: datetime,
) -> None:
    """Add one of the leader's in-memory interval jobs, first run at ``now``."""
    seconds = max(1.0, every.total_seconds())
    scheduler.add_job(
        function,
        IntervalTrigger(seconds=seconds, timezone=UTC),
        id=name,
        name=name,
        jobstore="internal",
        executor="internal",
        next_run_time=now,
        # A tick that could not start in time is skipped: the next one does its work.
        misfire_grace_time=max(1, int(seconds)),
    )


# --------------------------------------------------------------------------- the service


class SchedulerService:
    """The scheduler of one ``opsctl server`` process: a lease keeper that, while this
    process holds the ``scheduler`` lease, runs the schedules, the watch and the fleet sweep.
    """

    def __init__(
        self,
        store_url: str,
        loaded: LoadedInventory,
        holder: str,
        *,
        clock: Clock = utc_now,
        watch_every: timedelta | None = timedelta(seconds=15),
        sweep_every: timedelta | None = timedelta(seconds=30),
        alert_every: timedelta | None = timedelta(minutes=1),
        ttl: timedelta = DEFAULT_TTL,
        workers: int = 4,
        watch_concurrency: int = 8,
    ) -> None:
        """Given the store's URL, the loaded inventory, this process's holder name (unique
        among the servers sharing the store, e.g. ``default_holder()``) and a clock.
        ``watch_every``, ``sweep_every`` and ``alert_every`` are the intervals of the watch,
        of the fleet sweep and of the on-call pass (alerts, notifications, SLA warnings;
        ``opsctl.oncall``) (None: not run by this server); ``ttl`` the lease's; ``workers`` the threads
        running schedules; ``watch_concurrency`` the checks the watch runs at once.
        """
        self.store_url = store_url
        self.loaded = loaded
        self.holder = holder
        self.clock = clock
        self.watch_every = watch_every
        self.sweep_every = sweep_every
        self.alert_every = alert_every
        self.ttl = ttl
        self.workers = workers
        self.watch_concurrency = watch_concurrency
        self.store: Store | None = None
        self._keeper: LeaseKeeper | None = None
        self._runtime: Runtime | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._jobs_db: Store | None = None
        self._watcher: Watcher | None = None
        self._oncall: OnCall | None = None
        self._lock = threading.RLock()
        self._wait_on_stop = False
        self._warned_fleet = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the store and start the lease keeper, which starts the scheduler whenever
        this process leads. Raise StoreError if the store cannot be opened, RuntimeError if
        already started."""
        from opsctl.store import Store

        if self._keeper is not None:
            raise RuntimeError("the scheduler is already started")
        self.store = Store.open(self.store_url)
        self._runtime = Runtime(
            self.store, self.loaded, self.holder, self.clock, leading=lambda: self.is_leader
        )
        register_runtime(self.store_url, self._runtime)
        lease = Lease(self.store, holder=self.holder, ttl=self.ttl, clock=self.clock)
        self._keeper = LeaseKeeper(lease, on_gain=self._lead, on_loss=self._step_down)
        self._keeper.start()

    def stop(self, wait: bool = True) -> None:
        """Stop leading (releasing the lease for a standby) and close the store. With
        ``wait``, wait for running jobs and checks to finish first."""
        self._wait_on_stop = wait
        if self._keeper is not None:
            self._keeper.stop()
        if self._runtime is not None:
            unregister_runtime(self.store_url, self._runtime)
            self._runtime = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def alive(self) -> bool:
        """True while the lease keeper runs and, when leading, the scheduler too (/healthz)."""
        if self._keeper is None or not self._keeper.alive():
            return False
        with self._lock:
            return self._scheduler is None or bool(self._scheduler.running)

    @property
    def is_leader(self) -> bool:
        """True while this process holds the lease and its scheduler runs."""
        return self._keeper is not None and self._keeper.held and self._scheduler is not None

    def wakeup(self) -> None:
        """Make the leader's scheduler look for due jobs now (it otherwise sleeps until the
        next one is due)."""
        with self._lock:
            if self._scheduler is not None:
                self._scheduler.wakeup()

    def next_runs(self) -> list[tuple[str, datetime | None]]:
        """Return each schedule's name and its next run time in UTC (None if it has none):
        the pending one stored by the leader's scheduler when this process leads, else
        computed from the cron expression."""
        now = self.clock()
        stored: dict[str, datetime | None] = {}
        with self._lock:
            scheduler = self._scheduler
        if scheduler is not None:
            try:
                stored = {job.id: job.next_run_time for job in scheduler.get_jobs("default")}
            except Exception as error:
                log.warning("cannot read the scheduler's jobs: %s", error)
        runs = []
        for schedule in self.loaded.inventory.schedules:
            key = job_id(schedule.name)
            if key in stored:
                when = stored[key]
            else:
                try:
                    when = next_run(schedule, self.loaded, now)
                except ValueError:
                    when = None  # not run either; _sync logged why
            runs.append((schedule.name, None if when is None else when.astimezone(UTC)))
        return runs

    # ------------------------------------------------------------------ leader's work

    def _lead(self) -> None:
        """Called when the lease is taken: start the scheduler with the synced jobs."""
        from apscheduler.events import EVENT_JOB_MISSED
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        from opsctl.store import Store

        assert self.store is not None
        with self._lock:
            # The job store gets an engine of its own: APScheduler disposes of it at shutdown.
            jobs_db = Store.open(self.store_url)
            scheduler = BackgroundScheduler(
                jobstores={
                    "default": SQLAlchemyJobStore(engine=jobs_db.engine, tablename=JOB_TABLE),
                    "internal": MemoryJobStore(),
                },
                executors={"default": _Executor(self.workers), "internal": _Executor(3)},
                job_defaults={"coalesce": True, "max_instances": 1},
                timezone=UTC,
            )
            scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
            watcher = None
            oncall: OnCall | None = None
            try:
                scheduler.start(paused=True)
                self._sync(scheduler)
                now = utc_now()
                if self.watch_every is not None:
                    watcher = Watcher(
                        self.store,
                        self.loaded,
                        clock=self.clock,
                        concurrency=self.watch_concurrency,
                    )
                    _add_internal(scheduler, watcher.tick, "watch", self.watch_every, now)
                if self.sweep_every is not None:
                    _add_internal(scheduler, self.sweep_fleet, "fleet-sweep", self.sweep_every, now)
                if self.alert_every is not None:
                    from opsctl.oncall import OnCall

                    oncall = OnCall(self.store, self.loaded, clock=self.clock)
                    _add_internal(scheduler, self.run_oncall, "oncall", self.alert_every, now)
                scheduler.resume()
            except BaseException:
                if scheduler.running:
                    scheduler.shutdown(wait=False)
                if watcher is not None:
                    watcher.close()
                if oncall is not None:
                    oncall.close(timeout=0)
                jobs_db.close()
                raise
            self._scheduler, self._jobs_db, self._watcher = scheduler, jobs_db, watcher
            self._oncall = oncall
        log.info(
            "%s leads the scheduler: %d schedules",
            self.holder,
            len(self.loaded.inventory.schedules),
        )

    def _sync(self, scheduler: BackgroundScheduler) -> None:
        """Make the stored jobs those of the inventory's schedules, keeping unchanged ones
        (and so their pending run times)."""
        inventory_path = str(self.loaded.path.resolve())
        masked_url = job_store_url(self.store_url)
        wanted: dict[str, tuple[Schedule, BaseTrigger, str]] = {}
        for schedule in self.loaded.inventory.schedules:
            key = job_id(schedule.name)
            if key in wanted:
                log.error("two schedules are named %r: only the first is run", schedule.name)
                continue
            zone = schedule_zone(schedule, self.loaded)
            try:
                trigger = cron_trigger(schedule.cron, zone)
            except ValueError as error:
                log.error("schedule %s is not run: %s", schedule.name, error)
                continue
            wanted[key] = (schedule, trigger, _label(schedule, zone))
        existing = {job.id: job for job in scheduler.get_jobs("default")}
        for key in existing.keys() - wanted.keys():
            scheduler.remove_job(key, "default")
            log.info("job %s removed: its schedule is no longer in the inventory", key)
        for key, (schedule, trigger, label) in wanted.items():
            args = (schedule.name, inventory_path, masked_url)
            grace = max(1, int(schedule.catch_up.total_seconds()))
            job = existing.get(key)
            if job is not None and job.name == label and job.func_ref == _RUN_SCHEDULE:
                changes: dict[str, Any] = {}
                if tuple(job.args) != args:
                    changes["args"] = args
                if job.misfire_grace_time != grace:
                    changes["misfire_grace_time"] = grace
                if changes:
                    scheduler.modify_job(key, "default", **changes)
                continue
            if job is not None:
                log.info("job %s changed (%s, was %s): rescheduled", key, label, job.name)
            scheduler.add_job(
                run_schedule,
                trigger,
                args=args,
                id=key,
                name=label,
                jobstore="default",
                executor="default",
                misfire_grace_time=grace,
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )

    def _on_missed(self, event: JobExecutionEvent) -> None:
        """A schedule's run came later than its catch_up: log it and record it as missed."""
        if not event.job_id.startswith(JOB_PREFIX) or self.store is None:
            return
        name = event.job_id.removeprefix(JOB_PREFIX)
        schedule = find_schedule(self.loaded, name)
        due_at = event.scheduled_run_time.astimezone(UTC)
        now = self.clock()
        catch_up = schedule.catch_up if schedule is not None else timedelta(0)
        log.warning(
            "schedule %s: the run due at %s was missed (%s late, catch_up %s)",
            name,
            due_at.isoformat(),
            now - due_at,
            catch_up,
        )
        try:
            record_missed(
                self.store,
                schedule=name,
                job=schedule.job if schedule is not None else "unknown",
                site=schedule.site if schedule is not None else None,
                holder=self.holder,
                scheduled_for=due_at,
                now=now,
                catch_up=catch_up,
            )
        except Exception:
            log.exception("schedule %s: cannot record the missed run", name)

    def sweep_fleet(self) -> int | None:
        """The ``fleet-sweep`` job: judge the dispenser fleet's devices on this server's
        clock, writing the flips their silence brought about. Return the number of flips
        written; None if the sweep did not run (the fleet modules are not installed, or it
        failed: logged). Needs ``start()`` first."""
        try:
            from opsctl.fleet import Rules
            from opsctl.store.fleet import sweep
        except ImportError as error:
            if not self._warned_fleet:
                log.warning("fleet sweep not run: %s", error)
                self._warned_fleet = True
            return None
        if self.store is None:
            raise RuntimeError("the scheduler is not started")
        try:
            return sweep(self.store, Rules.from_inventory(self.loaded.inventory), self.clock())
        except Exception:
            log.exception("fleet sweep failed")
            return None

    def run_oncall(self) -> PassResult | None:
        """The ``oncall`` job: evaluate the alerts, send and escalate notifications, open
        incidents and warn of SLA clocks running out (``opsctl.oncall``). Return what the pass
        did; None if it failed (logged) or this process does not lead."""
        with self._lock:
            oncall = self._oncall
        if oncall is None:
            return None
        try:
            return oncall.run()
        except Exception:
            log.exception("on-call pass failed")
            return None

    def _step_down(self) -> None:
        """Called when the lease is lost or given up: stop the scheduler. Running jobs are not
        killed; they finish (waited for only when the server stops with ``wait``)."""
        from apscheduler.schedulers import SchedulerNotRunningError

        with self._lock:
            scheduler, watcher, jobs_db = self._scheduler, self._watcher, self._jobs_db
            oncall = self._oncall
            self._scheduler = self._watcher = self._jobs_db = self._oncall = None
        wait = self._wait_on_stop
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=wait)
            except SchedulerNotRunningError:
                pass
        if watcher is not None:
            watcher.close(wait=wait)
        if oncall is not None:
            oncall.close(timeout=10.0 if wait else 0.0)
        if jobs_db is not None:
            jobs_db.close()
        log.info("%s no longer leads the scheduler", self.holder)


__all__ = [
    "DEFAULT_ZONE",
    "JOB_TABLE",
    "SchedulerService",
    "Watcher",
    "cron_trigger",
    "due",
    "job_id",
    "next_run",
    "schedule_zone",
]
