"""The scheduler of ``opsctl server``: the leader lease, cron schedules with their misfire
semantics, the watch that runs due checks, and the job_runs rows — on a real SQLite file and
a real PostgreSQL database, with real TCP listeners as the checks' targets."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import make_url, select, text

from opsctl.contract import State
from opsctl.inventory import LoadedInventory, load
from opsctl.server import jobs
from opsctl.server.jobs import (
    JOB_RUNNERS,
    JobContext,
    JobOutcome,
    job_runs,
    last_runs,
    run_schedule,
    run_schedule_now,
)
from opsctl.server.lease import Lease, LeaseKeeper, default_holder, read_lease
from opsctl.server.scheduler import (
    JOB_TABLE,
    SchedulerService,
    Watcher,
    cron_trigger,
    due,
    next_run,
)
from opsctl.store import StatusRow, Store, StoreError
from opsctl.store.models import JobRunModel

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and closes them."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def write_inventory(tmp_path: Path, body: str, name: str = "inventory.yaml") -> LoadedInventory:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return load(path)


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` is true, for a background thread; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(0.02)


def finished_runs(store: Store, schedule: str | None = None) -> list[jobs.JobRunRow]:
    return [run for run in job_runs(store, schedule=schedule) if run.outcome != "running"]


def service(url: str, loaded: LoadedInventory, holder: str, **options: object) -> SchedulerService:
    options.setdefault("watch_every", None)
    options.setdefault("sweep_every", None)
    options.setdefault("alert_every", None)
    return SchedulerService(url, loaded, holder, **options)  # type: ignore[arg-type]


@pytest.fixture
def report_runner(monkeypatch: pytest.MonkeyPatch) -> list[JobContext]:
    """Register a ``report`` runner that records what it was given."""
    calls: list[JobContext] = []

    def make_report(context: JobContext) -> JobOutcome:
        calls.append(context)
        due_at = context.scheduled_for.isoformat() if context.scheduled_for else "by hand"
        return JobOutcome(True, f"report made for {due_at}", {"pages": 3})

    monkeypatch.setitem(JOB_RUNNERS, "report", make_report)
    return calls


# --------------------------------------------------------------------------- cron


def fire_times(expression: str, start: datetime, count: int) -> list[datetime]:
    trigger = cron_trigger(expression, "Asia/Shanghai")
    times, previous = [], None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire.astimezone(SHANGHAI))
        previous, now = fire, fire
    return times


# 2026-03-01 is a Sunday.
SUNDAY = datetime(2026, 3, 1, 0, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("expression", "weekdays"),
    [
        # Python's weekday(): Monday 0 .. Sunday 6.
        ("0 8 * * 1-5", [0, 1, 2, 3, 4, 0]),
        ("0 8 * * 0", [6, 6]),
        ("0 8 * * 7", [6, 6]),
        ("0 8 * * 5-7", [6, 4, 5, 6]),
        ("0 8 * * */2", [6, 1, 3, 5, 6]),
        ("0 8 * * mon,wed", [0, 2, 0]),
        ("0 8 * * *", [6, 0, 1]),
    ],
)
def test_cron_weekdays_are_crontab_s(expression: str, weekdays: list[int]) -> None:
    times = fire_times(expression, SUNDAY, len(weekdays))
    assert [t.weekday() for t in times] == weekdays
    assert {(t.hour, t.minute) for t in times} == {(8, 0)}


def test_cron_day_and_weekday_both_given_fire_on_either() -> None:
    # The 1st of the month, and every Monday.
    times = fire_times("0 8 1 * mon", datetime(2026, 3, 20, tzinfo=SHANGHAI), 3)
    assert [t.date().isoformat() for t in times] == ["2026-03-23", "2026-03-30", "2026-04-01"]


def test_cron_is_judged_in_its_time_zone() -> None:
    trigger = cron_trigger("0 2 * * *", "Europe/London")
    fire = trigger.get_next_fire_time(None, datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
    assert fire is not None and fire.astimezone(UTC) == datetime(2026, 7, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 8 * * 8", "0-7"),
        ("0 8 * * 5-2", "from Sunday"),
        ("0 8 * * */0", "positive step"),
        ("0 8 * *", "5 fields"),
    ],
)
def test_bad_cron_is_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_trigger(expression, "Asia/Shanghai")


def test_next_run_uses_the_schedule_then_the_site_time_zone(tmp_path: Path) -> None:
    loaded = write_inventory(
        tmp_path,
        """
sites:
  - {name: london, timezone: Europe/London}
schedules:
  - {name: site-zone, cron: "0 9 * * *", site: london}
  - {name: own-zone, cron: "0 9 * * *", site: london, timezone: Asia/Tokyo}
  - {name: default-zone, cron: "0 9 * * *"}
""",
    )
    now = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    by_name = {s.name: next_run(s, loaded, now) for s in loaded.inventory.schedules}
    assert by_name == {
        "site-zone": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "own-zone": datetime(2026, 3, 3, 0, 0, tzinfo=UTC),
        "default-zone": datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
    }


def test_catch_up_defaults_to_twelve_hours_and_is_a_duration(tmp_path: Path) -> None:
    loaded = write_inventory(
        tmp_path,
        """
schedules:
  - {name: a, cron: "0 8 * * *"}
  - {name: b, cron: "0 8 * * *", catch_up: 30m}
""",
    )
    assert [s.catch_up for s in loaded.inventory.schedules] == [
        timedelta(hours=12),
        timedelta(minutes=30),
    ]


# --------------------------------------------------------------------------- the lease


def test_lease_acquire_renew_release(store: Store) -> None:
    clock = Clock()
    mine = Lease(store, "lease-basic", holder="a", clock=clock)
    theirs = Lease(store, "lease-basic", holder="b", clock=clock)
    assert mine.holder_info() is None
    assert mine.acquire()
    assert not theirs.acquire()
    assert not theirs.renew()
    clock.advance(timedelta(seconds=15))
    assert mine.renew()
    assert mine.acquire()  # already ours: renewed, first acquisition kept
    info = theirs.holder_info()
    assert info is not None
    assert (info.holder, info.acquired, info.renewed) == ("a", T0, T0 + timedelta(seconds=15))
    assert info.expires == T0 + timedelta(seconds=60)
    mine.release()
    assert not mine.renew()  # released: not ours to renew any more
    clock.advance(timedelta(seconds=1))
    assert theirs.acquire()
    info = read_lease(store, "lease-basic")
    assert info is not None and info.holder == "b" and info.acquired == clock.now


def test_a_dead_leader_is_replaced_once_its_lease_expires(store_url: str) -> None:
    clock = Clock()
    with Store.open(store_url) as first, Store.open(store_url) as second:
        leader = Lease(first, "lease-takeover", holder="a", clock=clock)
        standby = Lease(second, "lease-takeover", holder="b", clock=clock)
        assert leader.acquire()
        clock.advance(timedelta(seconds=45))
        assert not standby.acquire()  # expires == now: not yet expired
        clock.advance(timedelta(seconds=1))
        assert standby.acquire()
        assert not leader.renew()
        assert not leader.acquire()
        info = standby.holder_info()
        assert info is not None and info.holder == "b" and info.acquired == clock.now


def race(lease: Lease, barrier: threading.Barrier, results: dict[str, bool]) -> None:
    """Wait for the other racer, then try to take the lease."""
    barrier.wait()
    results[lease.holder] = lease.acquire()


def test_of_two_racing_processes_exactly_one_takes_the_lease(store_url: str) -> None:
    clock = Clock()
    with Store.open(store_url) as first, Store.open(store_url) as second:
        for round_ in range(8):
            name = f"lease-race-{round_}"
            winners: list[str] = []
            for phase, holders in enumerate((("a", "b"), ("c", "d"))):
                barrier = threading.Barrier(2)
                leases = [
                    Lease(first, name, holder=holders[0], clock=clock),
                    Lease(second, name, holder=holders[1], clock=clock),
                ]
                results: dict[str, bool] = {}
                threads = [
                    threading.Thread(target=race, args=(lease, barrier, results))
                    for lease in leases
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
                assert sorted(results.values()) == [False, True], (round_, phase, results)
                winner = next(holder for holder, won in results.items() if won)
                info = read_lease(first, name)
                assert info is not None and info.holder == winner
                winners.append(winner)
                # The second phase races for the same lease once the winner's has expired.
                clock.advance(timedelta(seconds=46))
            assert winners[0] in "ab" and winners[1] in "cd"


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def gain(self, who: str) -> Callable[[], None]:
        return lambda: self.seen.append(f"{who} gained")

    def loss(self, who: str) -> Callable[[], None]:
        return lambda: self.seen.append(f"{who} lost")


def test_a_standby_takes_over_within_ttl_and_a_third(store: Store) -> None:
    clock = Clock()
    events = Events()
    keepers = {
        who: LeaseKeeper(
            Lease(store, "lease-keepers", holder=who, clock=clock),
            on_gain=events.gain(who),
            on_loss=events.loss(who),
        )
        for who in ("a", "b")
    }
    assert keepers["a"].every == timedelta(seconds=15)
    # Both try every 15 s, b 5 s after a; a dies after its renewal at 90 s.
    last_renewal = None
    gained_at = None
    for second in range(0, 300, 5):
        clock.now = T0 + timedelta(seconds=second)
        if second % 15 == 0 and second <= 90:
            assert keepers["a"].tick()
            last_renewal = clock.now
        if second % 15 == 5 and keepers["b"].tick() and gained_at is None:
            gained_at = clock.now
    assert last_renewal is not None and gained_at is not None
    assert last_renewal + timedelta(seconds=45) < gained_at <= last_renewal + timedelta(seconds=60)
    assert events.seen == ["a gained", "b gained"]
    # The old leader notices at its next try.
    assert not keepers["a"].tick()
    assert events.seen == ["a gained", "b gained", "a lost"]


def test_a_leader_that_cannot_reach_the_store_steps_down_before_its_lease_expires(
    tmp_path: Path,
) -> None:
    clock = Clock()
    events = Events()
    with Store.open(str(tmp_path / "opsctl.db")) as opened:
        keeper = LeaseKeeper(
            Lease(opened, holder="a", clock=clock),
            on_gain=events.gain("a"),
            on_loss=events.loss("a"),
        )
        assert keeper.tick()
        with opened.engine.begin() as connection:
            connection.execute(text("DROP TABLE scheduler_lease"))
        with pytest.raises(StoreError, match="renew the lease"):
            keeper.lease.renew()
        clock.advance(timedelta(seconds=15))
        assert keeper.tick()  # expires at 45 s; the next try (30 s) is still in time
        clock.advance(timedelta(seconds=15))
        assert not keeper.tick()  # the try after would come at 45 s: no longer certain
        assert events.seen == ["a gained", "a lost"]


def test_keeper_threads_hand_the_lease_over_when_the_leader_stops(store: Store) -> None:
    events = Events()
    ttl = timedelta(seconds=0.9)

    def keeper(who: str) -> LeaseKeeper:
        return LeaseKeeper(
            Lease(store, "lease-threads", holder=who, ttl=ttl),
            on_gain=events.gain(who),
            on_loss=events.loss(who),
        )

    first, second = keeper("a"), keeper("b")
    first.start()
    wait_for(lambda: first.held)
    second.start()
    try:
        second.tick()
        assert not second.held and first.alive() and second.alive()
        first.stop()
        assert not first.alive()
        wait_for(lambda: second.held)
        assert events.seen == ["a gained", "a lost", "b gained"]
    finally:
        second.stop()
    assert events.seen[-1] == "b lost"
    info = read_lease(store, "lease-threads")
    assert info is not None and info.holder == "b" and not info.live(datetime.now(UTC))


def test_a_lease_needs_a_holder_and_a_positive_ttl(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "opsctl.db")) as opened:
        with pytest.raises(ValueError, match="holder"):
            Lease(opened, holder=" ")
        with pytest.raises(ValueError, match="ttl"):
            Lease(opened, holder="a", ttl=timedelta(0))
    assert default_holder() == f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- the service


SCHEDULE_INVENTORY = """
sites:
  - name: clinic
    hosts:
      - name: app
        address: 127.0.0.1
        checks:
          - {{kind: tcp, name: web, port: {port}}}
          - {{kind: tcp, name: his, port: {port}}}
schedules:
{schedules}
"""


def schedule_inventory(tmp_path: Path, schedules: str, port: int = 1) -> LoadedInventory:
    listed = schedules.strip("\n") or "  []"
    return write_inventory(tmp_path, SCHEDULE_INVENTORY.format(port=port, schedules=listed))


def test_two_servers_exactly_one_leads_and_the_other_takes_over(
    store_url: str, tmp_path: Path
) -> None:
    loaded = schedule_inventory(tmp_path, '  - {name: nightly, cron: "0 2 * * *"}')
    ttl = timedelta(seconds=1.2)
    servers = [service(store_url, loaded, who, ttl=ttl) for who in ("a", "b")]
    for server in servers:
        server.start()
    try:
        wait_for(lambda: any(s.is_leader for s in servers))
        for server in servers:
            server._keeper.tick()  # type: ignore[union-attr]
        assert [s.is_leader for s in servers].count(True) == 1
        assert all(s.alive() for s in servers)
        leader = next(s for s in servers if s.is_leader)
        standby = next(s for s in servers if not s.is_leader)
        leader.stop()
        assert not leader.alive() and not leader.is_leader
        wait_for(lambda: standby.is_leader)
        assert standby.alive()
        with Store.open(store_url) as opened:
            info = read_lease(opened)
            assert info is not None and info.holder == standby.holder
    finally:
        for server in servers:
            server.stop()


def test_a_cron_schedule_runs_its_checks_and_records_the_run(
    store_url: str, tmp_path: Path, listener: int
) -> None:
    loaded = schedule_inventory(
        tmp_path, '  - {name: every-minute, cron: "* * * * *", site: clinic}', port=listener
    )
    server = service(store_url, loaded, "a")
    with time_machine.travel(datetime(2026, 3, 2, 8, 59, 30, tzinfo=SHANGHAI)) as traveller:
        server.start()
        try:
            wait_for(lambda: server.is_leader)
            assert server.next_runs() == [("every-minute", datetime(2026, 3, 2, 1, 0, tzinfo=UTC))]
            traveller.shift(timedelta(seconds=31))
            server.wakeup()
            with Store.open(store_url) as opened:
                wait_for(lambda: finished_runs(opened))
                [run] = job_runs(opened)
                statuses = opened.statuses()
        finally:
            server.stop()
    assert (run.schedule, run.job, run.site, run.outcome, run.holder) == (
        "every-minute",
        "inspect",
        "clinic",
        "ok",
        "a",
    )
    assert run.scheduled_for == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert run.started >= run.scheduled_for and run.finished is not None
    assert run.message == "2 checks run, worst OK (2 OK)"
    assert run.details == {"checks": 2, "worst": "OK", "states": {"OK": 2}, "problems": []}
    assert set(statuses) == {"clinic/app/web", "clinic/app/his"}
    assert {row.state for row in statuses.values()} == {State.OK}


def start_and_lead(url: str, loaded: LoadedInventory, holder: str) -> SchedulerService:
    server = service(url, loaded, holder)
    server.start()
    wait_for(lambda: server.is_leader)
    return server


def test_a_run_missed_while_no_server_ran_is_made_once_within_catch_up(
    store_url: str, tmp_path: Path, report_runner: list[JobContext]
) -> None:
    loaded = schedule_inventory(
        tmp_path,
        """
  - {name: half-hourly, cron: "0,30 * * * *", job: report}
  - {name: daily, cron: "0 7 * * *", job: report}
""",
    )
    with time_machine.travel(datetime(2026, 3, 2, 6, 40, tzinfo=SHANGHAI)):
        first = start_and_lead(store_url, loaded, "a")
        assert dict(first.next_runs()) == {
            "half-hourly": datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
            "daily": datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
        }
        first.stop()
    # No server from 06:40 to 09:10: five half-hourly times and the daily 07:00 passed.
    with time_machine.travel(datetime(2026, 3, 2, 9, 10, tzinfo=SHANGHAI)):
        second = start_and_lead(store_url, loaded, "b")
        try:
            with Store.open(store_url) as opened:
                wait_for(lambda: len(finished_runs(opened)) == 2)
                runs = {run.schedule: run for run in job_runs(opened)}
            pending = dict(second.next_runs())
        finally:
            second.stop()
    assert {name: run.outcome for name, run in runs.items()} == {
        "half-hourly": "ok",
        "daily": "ok",
    }
    # Once each, for the latest time that passed: coalesced.
    assert runs["half-hourly"].scheduled_for == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert runs["daily"].scheduled_for == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert runs["daily"].message == "report made for 2026-03-01T23:00:00+00:00"
    assert runs["daily"].details == {"pages": 3} and runs["daily"].holder == "b"
    assert len(report_runner) == 2
    assert pending == {
        "half-hourly": datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
        "daily": datetime(2026, 3, 2, 23, 0, tzinfo=UTC),
    }


def test_a_run_later_than_catch_up_is_recorded_as_missed_not_run(
    store_url: str, tmp_path: Path, report_runner: list[JobContext]
) -> None:
    loaded = schedule_inventory(
        tmp_path, '  - {name: monday-report, cron: "0 7 * * 1", job: report, catch_up: 12h}'
    )
    with time_machine.travel(datetime(2026, 3, 2, 6, 30, tzinfo=SHANGHAI)):  # a Monday
        start_and_lead(store_url, loaded, "a").stop()
    with time_machine.travel(datetime(2026, 3, 4, 7, 0, tzinfo=SHANGHAI)):  # two days on
        second = start_and_lead(store_url, loaded, "b")
        try:
            with Store.open(store_url) as opened:
                wait_for(lambda: finished_runs(opened))
                [run] = job_runs(opened)
            pending = dict(second.next_runs())
        finally:
            second.stop()
    assert report_runner == []
    assert run.outcome == "failed" and run.schedule == "monday-report" and run.job == "report"
    assert run.scheduled_for == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert run.message.startswith("missed: ")
    assert "2d late is more than its catch_up of 12h" in run.message
    assert run.details["missed"] is True
    assert pending == {"monday-report": datetime(2026, 3, 8, 23, 0, tzinfo=UTC)}


def stored_jobs(url: str) -> dict[str, float | None]:
    with Store.open(url) as opened, opened.engine.connect() as connection:
        rows = connection.execute(text(f"SELECT id, next_run_time FROM {JOB_TABLE}"))
        return {row.id: row.next_run_time for row in rows}


def test_changed_schedules_are_rescheduled_and_deleted_ones_removed(
    store_url: str, tmp_path: Path, report_runner: list[JobContext]
) -> None:
    before = schedule_inventory(
        tmp_path,
        """
  - {name: kept, cron: "0 7 * * *", job: report}
  - {name: moved, cron: "0 7 * * *", job: report}
  - {name: dropped, cron: "0 7 * * *", job: report}
""",
    )
    with time_machine.travel(datetime(2026, 3, 2, 6, 30, tzinfo=SHANGHAI)):
        start_and_lead(store_url, before, "a").stop()
    assert set(stored_jobs(store_url)) == {"schedule:kept", "schedule:moved", "schedule:dropped"}
    after = schedule_inventory(
        tmp_path,
        """
  - {name: kept, cron: "0 7 * * *", job: report, catch_up: 6h}
  - {name: moved, cron: "0 20 * * *", job: report}
""",
    )
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)):
        server = start_and_lead(store_url, after, "b")
        try:
            with Store.open(store_url) as opened:
                wait_for(lambda: finished_runs(opened))
                runs = job_runs(opened)
            pending = dict(server.next_runs())
        finally:
            server.stop()
    # "kept" kept its pending 07:00 run (a new catch_up does not reschedule it); "moved" was
    # rescheduled from now, so its 07:00 run is neither made nor missed.
    assert [(run.schedule, run.outcome) for run in runs] == [("kept", "ok")]
    assert pending == {
        "kept": datetime(2026, 3, 2, 23, 0, tzinfo=UTC),
        "moved": datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    }
    assert set(stored_jobs(store_url)) == {"schedule:kept", "schedule:moved"}


# --------------------------------------------------------------------------- job runs


def test_a_job_kind_without_a_runner_fails_with_a_clear_message(
    store: Store, tmp_path: Path
) -> None:
    loaded = schedule_inventory(tmp_path, '  - {name: excel, cron: "0 8 * * *", job: export}')
    run_id = run_schedule_now(store, loaded, "excel", holder="a")
    [run] = job_runs(store, schedule="excel")
    assert run.id == run_id and run.outcome == "failed"
    assert run.message == "no runner for job kind 'export' in this version of opsctl"


def test_a_runner_that_raises_fails_its_run_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(context: JobContext) -> JobOutcome:
        raise OSError("template directory /srv/reports is missing")

    monkeypatch.setitem(JOB_RUNNERS, "runbook", broken)
    loaded = schedule_inventory(tmp_path, '  - {name: rb, cron: "0 8 * * *", job: runbook}')
    clock = Clock()
    run_schedule_now(store, loaded, "rb", holder="a", clock=clock, scheduled_for=T0)
    [run] = job_runs(store)
    assert run.outcome == "failed"
    assert run.message == "runbook failed: template directory /srv/reports is missing"
    assert run.details == {"error": "OSError"}
    assert (run.scheduled_for, run.started, run.finished) == (T0, T0, T0)


def test_an_inspect_schedule_whose_filters_match_nothing_fails(
    store: Store, tmp_path: Path
) -> None:
    loaded = schedule_inventory(
        tmp_path,
        """
  - {name: wrong-kind, cron: "0 8 * * *", site: clinic, kinds: ["db.*"]}
""",
    )
    run_schedule_now(store, loaded, "wrong-kind", holder="a")
    run_schedule_now(store, loaded, "gone", holder="a")
    messages = {run.schedule: (run.outcome, run.message) for run in job_runs(store)}
    assert messages == {
        "wrong-kind": ("failed", "no enabled check matches site clinic and kinds db.*"),
        "gone": ("failed", f"no schedule named 'gone' in {loaded.path}"),
    }


def test_an_inspect_run_reports_its_worst_state_and_problems(
    store: Store, tmp_path: Path, listener: int
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    loaded = write_inventory(
        tmp_path,
        f"""
sites:
  - name: clinic
    hosts:
      - name: app
        checks:
          - {{kind: tcp, name: up, port: {listener}}}
          - {{kind: tcp, name: down, port: {closed_port}}}
schedules:
  - {{name: morning, cron: "0 8 * * *"}}
""",
    )
    run_schedule_now(store, loaded, "morning", holder="a")
    [run] = job_runs(store)
    assert run.outcome == "ok"
    assert run.message == "2 checks run, worst CRITICAL (1 OK, 1 CRITICAL)"
    assert run.details["states"] == {"OK": 1, "CRITICAL": 1}
    [problem] = run.details["problems"]
    assert problem["check_id"] == "clinic/app/down" and problem["state"] == "CRITICAL"


def test_the_job_function_runs_outside_a_server_with_plain_strings(
    tmp_path: Path, report_runner: list[JobContext], caplog: pytest.LogCaptureFixture
) -> None:
    loaded = schedule_inventory(tmp_path, '  - {name: r, cron: "0 8 * * *", job: report}')
    url = f"sqlite:///{tmp_path / 'opsctl.db'}"
    run_schedule("r", str(loaded.path), url)
    with Store.open(url) as opened:
        [run] = job_runs(opened)
    assert run.outcome == "ok" and run.holder == default_holder() and run.scheduled_for is None
    # A masked password cannot be used: logged, never raised.
    with caplog.at_level(logging.ERROR, logger="opsctl.server.jobs"):
        run_schedule("r", str(loaded.path), "postgresql+psycopg://ops:***@127.0.0.1/opsctl")
    assert "password is not kept with the job" in caplog.text


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_stored_job_keeps_no_password_and_still_runs(
    store_url: str, tmp_path: Path, report_runner: list[JobContext]
) -> None:
    # The test server trusts local connections, so any password opens the store.
    url = make_url(store_url).set(password="s3cret-word").render_as_string(hide_password=False)
    loaded = schedule_inventory(tmp_path, '  - {name: r, cron: "* * * * *", job: report}')
    with time_machine.travel(datetime(2026, 3, 2, 6, 29, 50, tzinfo=SHANGHAI)) as traveller:
        server = start_and_lead(url, loaded, "a")
        try:
            [job] = server._scheduler.get_jobs("default")  # type: ignore[union-attr]
            traveller.shift(timedelta(seconds=11))
            server.wakeup()
            with Store.open(url) as opened:
                wait_for(lambda: finished_runs(opened))
                [run] = job_runs(opened)
                with opened.engine.connect() as connection:
                    stored = connection.scalar(text(f"SELECT job_state FROM {JOB_TABLE}"))
        finally:
            server.stop()
    masked = make_url(url).render_as_string(hide_password=True)
    assert "***" in masked and job.args == ("r", str(loaded.path.resolve()), masked)
    assert b"s3cret-word" not in bytes(stored)
    assert job.misfire_grace_time == 12 * 3600 and job.coalesce and job.max_instances == 1
    assert run.outcome == "ok" and run.scheduled_for == datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


def test_last_runs_and_job_runs_filters(store: Store) -> None:
    for index, (name, outcome) in enumerate([("a", "ok"), ("b", "failed"), ("a", "failed")]):
        started = T0 + timedelta(hours=index)
        run_id = jobs.begin_run(
            store, schedule=name, job="report", site=None, holder="h", started=started
        )
        jobs.end_run(
            store,
            run_id,
            outcome=outcome,
            message=f"run {index}",
            details={},
            finished=started + timedelta(seconds=5),
        )
    latest = last_runs(store)
    assert {name: run.message for name, run in latest.items()} == {"a": "run 2", "b": "run 1"}
    assert [run.message for run in job_runs(store, schedule="a")] == ["run 2", "run 0"]
    since = T0 + timedelta(minutes=30)
    assert [run.message for run in job_runs(store, since=since)] == ["run 2", "run 1"]
    with pytest.raises(ValueError, match="ok or failed"):
        jobs.end_run(store, 1, outcome="running", message="", details={}, finished=T0)
    with store._sessions() as session:
        assert session.scalar(select(JobRunModel.outcome).where(JobRunModel.id == 1)) == "ok"


# --------------------------------------------------------------------------- the watch


WATCH_INVENTORY = """
sites:
  - name: clinic
    hosts:
      - name: app
        checks:
          - {kind: tcp, name: fresh, port: 1}
          - {kind: tcp, name: ok-due, port: 1, interval: 5m}
          - {kind: tcp, name: ok-not-due, port: 1, interval: 5m}
          - {kind: tcp, name: hard-critical, port: 1, interval: 5m, retry_interval: 1m}
          - {kind: tcp, name: soft-due, port: 1, interval: 5m, retry_interval: 1m, max_attempts: 3}
          - {kind: tcp, name: soft-not-due, port: 1, retry_interval: 1m, max_attempts: 3}
          - {kind: tcp, name: warning-due, port: 1, interval: 5m}
"""


def status(check_id: str, state: State, state_type: str, ago: timedelta) -> StatusRow:
    at = T0 - ago
    return StatusRow(
        check_id=check_id,
        site="clinic",
        target="app",
        kind="tcp",
        state=state,
        state_type=state_type,
        attempt=1,
        since=at,
        last_hard_state=State.OK,
        last_hard_change=at,
        last_checked=at,
        summary="",
        last_result_id=None,
    )


@pytest.mark.parametrize(
    ("name", "state", "state_type", "ago", "expected"),
    [
        ("fresh", None, None, None, True),
        ("ok-due", State.OK, "hard", timedelta(minutes=5), True),
        ("ok-not-due", State.OK, "hard", timedelta(minutes=4, seconds=59), False),
        ("hard-critical", State.CRITICAL, "hard", timedelta(minutes=2), False),
        ("soft-due", State.CRITICAL, "soft", timedelta(minutes=1), True),
        ("soft-not-due", State.WARNING, "soft", timedelta(seconds=59), False),
        ("warning-due", State.WARNING, "hard", timedelta(minutes=6), True),
    ],
)
def test_due(
    tmp_path: Path,
    name: str,
    state: State | None,
    state_type: str | None,
    ago: timedelta | None,
    expected: bool,
) -> None:
    loaded = write_inventory(tmp_path, WATCH_INVENTORY)
    [check] = [c for c in loaded.checks if c.name == name]
    statuses = {} if state is None else {check.id: status(check.id, state, state_type, ago)}  # type: ignore[arg-type]
    assert (due([check], statuses, T0) == [check]) is expected


def test_due_keeps_the_order_given(tmp_path: Path) -> None:
    loaded = write_inventory(tmp_path, WATCH_INVENTORY)
    checks = list(reversed(loaded.checks))
    assert due(checks, {}, T0) == checks


def test_the_watch_runs_due_checks_once_at_a_time_into_the_store(
    store: Store, tmp_path: Path
) -> None:
    release = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            release.wait(20)
            connection.sendall(b"hello\n")

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    loaded = write_inventory(
        tmp_path,
        f"""
sites:
  - name: clinic
    hosts:
      - name: app
        checks:
          - {{kind: tcp, name: banner, port: {port}, expect: hello, timeout: 20s, interval: 1m}}
          - {{kind: tcp, name: plain, port: {port}, interval: 1m, enabled: false}}
""",
    )
    watcher = Watcher(store, loaded, concurrency=2)
    try:
        assert watcher.tick() == ["clinic/app/banner"]  # the disabled check is not watched
        wait_for(lambda: held)
        assert watcher.tick() == []  # still running: not started again
        assert watcher.in_flight() == {"clinic/app/banner"}
        release.set()
        assert watcher.wait_idle(20)
        assert watcher.tick() == []  # just ran: due again in a minute
    finally:
        watcher.close(wait=True)
        server.close()
        for connection in held:
            connection.close()
    statuses = store.statuses()
    assert set(statuses) == {"clinic/app/banner"}
    assert statuses["clinic/app/banner"].state == State.OK
    [result] = store.history("app", T0 - timedelta(days=3650))
    assert result.check_id == "clinic/app/banner"


def test_the_leader_runs_the_watch(store_url: str, tmp_path: Path, listener: int) -> None:
    loaded = schedule_inventory(tmp_path, "", port=listener)
    server = service(store_url, loaded, "a", watch_every=timedelta(seconds=15))
    server.start()
    try:
        with Store.open(store_url) as opened:
            wait_for(lambda: len(opened.statuses()) == 2)
            assert {row.state for row in opened.statuses().values()} == {State.OK}
    finally:
        server.stop()


def test_the_fleet_sweep_judges_silent_devices_on_the_server_s_clock(
    store_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("opsctl.store.fleet")
    from opsctl.fleet import Rules
    from opsctl.server.schemas import HeartbeatBatch
    from opsctl.store.fleet import device, ingest

    loaded = schedule_inventory(tmp_path, "")
    with Store.open(store_url) as opened:
        batch = HeartbeatBatch.model_validate(
            {
                "vendor": "acme",
                "heartbeats": [{"device_id": "D-001", "timestamp": T0.isoformat(), "status": "ok"}],
            }
        )
        ingest(opened, batch, Rules.from_inventory(loaded.inventory), T0)
    clock = Clock(T0 + timedelta(hours=1))
    server = service(store_url, loaded, "a", clock=clock)
    server.start()
    try:
        assert server.sweep_fleet() == 2  # late, then offline
        assert server.sweep_fleet() == 0
        found = device(server.store, "D-001")  # type: ignore[arg-type]
        assert found is not None and found.status == "offline"
    finally:
        server.stop()


def test_the_leader_runs_the_on_call_pass(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notify_receivers import RobotServer
    from tests_support_alerts import record

    from opsctl.alerts import alerts
    from opsctl.oncall import notifications

    with RobotServer() as robots:
        monkeypatch.setenv("T_WH_SECRET", robots.webhook_secret)
        loaded = write_inventory(
            tmp_path,
            f"""
channels:
  - {{name: itsm, type: webhook, url: "{robots.base_url}/hook", secret: "env:T_WH_SECRET"}}
sites:
  - name: clinic
    alerts: {{channels: [itsm]}}
    contacts: [{{name: 张工, role: A岗, phone: "13800000001"}}]
""",
        )
        with Store.open(store_url) as opened:
            record(opened, "clinic/app/http", State.CRITICAL, T0)
        server = service(store_url, loaded, "a", alert_every=timedelta(seconds=1))
        server.start()
        try:
            wait_for(lambda: robots.bodies("webhook"))
            (body,) = robots.bodies("webhook")
            assert body["check"] == "http" and body["state"] == "CRITICAL"
            assert body["on_duty"] == [{"name": "张工"}]  # phones are not sent to a webhook
            assert [a.check_id for a in alerts(server.store)] == ["clinic/app/http"]  # type: ignore[arg-type]
            wait_for(lambda: notifications(server.store))  # type: ignore[arg-type]
            (row,) = notifications(server.store)  # type: ignore[arg-type]
            assert (row.channel, row.status, row.reason) == ("itsm", "sent", "problem")
        finally:
            server.stop()
