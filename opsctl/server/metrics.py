"""What ``GET /metrics`` of ``opsctl server`` exposes, in the Prometheus text format.

Two sources feed one ``prometheus_client`` registry:

- ``IngestMetrics``: the server's own counters and request durations, which the app
  increments as it handles pushes and heartbeats.
- ``StoreCollector``: read from the store at scrape time, in a few aggregate queries
  (the checks' states and their last metric values, the agents and their latest samples,
  the dispenser fleet by site, vendor, region and status, and the scheduler's last runs).
  A store that cannot be read makes ``opsctl_store_up`` 0 and leaves the store's families
  out; the exposition itself never fails.

``render(registry, accept)`` returns the body and its content type (OpenMetrics when the
scraper asks for it). Every name follows the Prometheus conventions (``_total`` counters,
base units, ``_timestamp_seconds`` for Unix times), so that ``promtool check metrics``
finds nothing to report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.orm import aliased

from opsctl.contract import State
from opsctl.store import Store, StoreError
from opsctl.store.models import (
    AgentModel,
    DeviceFlipModel,
    DeviceModel,
    JobRunModel,
    SampleModel,
    StatusModel,
)

log = logging.getLogger(__name__)

#: Request duration buckets, in seconds: from 1 ms to 5 s.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: Distinct ``endpoint`` label values kept; requests to further paths count as ``other``, so
#: that a scanner probing random URLs cannot grow the exposition without bound.
MAX_ENDPOINTS = 50

#: An agent is up while its last push is at most this many of its intervals old; an agent
#: sample name not collected within as many intervals before the agent's last push is gone.
AGENT_UP_INTERVALS = 3

#: Seconds after which a ``device_flips`` id seen in a scrape is taken as settled: every
#: transaction that took a lower id has committed by then, so rows up to it are counted
#: once and never read again.
FLIP_SETTLE_SECONDS = 60.0

# Bound parameters per statement when listing agents' sample names.
_PARAMETERS = 400

STATE_NAMES = {state: state.name.lower() for state in State}
CHECK_LABELS = ["site", "target", "check", "kind"]


# --------------------------------------------------------------------------- the server's own


class IngestMetrics:
    """The server's own counters and request durations, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Given a registry, create and register the ingest families in it.

        Raise ValueError if the registry already holds families of these names.
        """
        self._endpoints: set[str] = set()
        self._lock = threading.Lock()
        self.requests = Counter(
            "opsctl_ingest_requests",
            "API requests answered, by endpoint and HTTP status code.",
            ["endpoint", "code"],
            registry=registry,
        )
        self.samples = Counter(
            "opsctl_ingest_samples",
            "Agent samples stored (a duplicate batch stores none).",
            registry=registry,
        )
        self.results = Counter(
            "opsctl_ingest_results",
            "Agent check results stored (a duplicate batch stores none).",
            registry=registry,
        )
        self.heartbeat_count = Counter(
            "opsctl_ingest_heartbeats",
            "Dispenser heartbeats stored, by vendor.",
            ["vendor"],
            registry=registry,
        )
        self.duplicates = Counter(
            "opsctl_ingest_duplicate_batches",
            "Agent batches received again after they were stored, and not stored twice.",
            registry=registry,
        )
        self.rejections = Counter(
            "opsctl_ingest_rejected",
            "API requests refused, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.durations = Histogram(
            "opsctl_ingest_request_duration_seconds",
            "Time taken to answer an API request, by endpoint.",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def observe_request(self, endpoint: str, code: int | str, seconds: float) -> None:
        """Given the path (or route) of an answered request, its HTTP status code and the
        seconds it took, count it and record its duration."""
        endpoint = self._endpoint(endpoint)
        self.requests.labels(endpoint, str(code)).inc()
        self.durations.labels(endpoint).observe(max(seconds, 0.0))

    def pushed(self, samples: int, results: int, duplicate: bool) -> None:
        """Given what one agent push stored (its samples and results; ``duplicate`` when the
        batch had been stored before), count it."""
        if duplicate:
            self.duplicates.inc()
        if samples > 0:
            self.samples.inc(samples)
        if results > 0:
            self.results.inc(results)

    def heartbeats(self, vendor: str, count: int) -> None:
        """Given a vendor and how many of its heartbeats were stored, count them."""
        counter = self.heartbeat_count.labels(vendor)
        if count > 0:
            counter.inc(count)

    def rejected(self, endpoint: str, reason: str) -> None:
        """Given the path of a refused request and a short reason (``unauthorized``,
        ``invalid``...), count it."""
        self.rejections.labels(self._endpoint(endpoint), reason).inc()

    def _endpoint(self, endpoint: str) -> str:
        with self._lock:
            if endpoint in self._endpoints:
                return endpoint
            if len(self._endpoints) < MAX_ENDPOINTS:
                self._endpoints.add(endpoint)
                return endpoint
        return "other"


# --------------------------------------------------------------------------- the store


def fold_labels(labels: Mapping[str, Any] | None) -> str:
    """Given a sample's labels, return them as one label value: ``key=value`` pairs sorted by
    key and joined by commas (``device=sda,mount=/data``); ``\\``, ``,`` and ``=`` inside a
    key or value are escaped with a backslash, so that two label sets never fold alike."""
    if not labels:
        return ""
    return ",".join(
        f"{_escape_pair(str(key))}={_escape_pair(str(value))}"
        for key, value in sorted(labels.items(), key=lambda pair: str(pair[0]))
    )


def _escape_pair(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def agent_check_id(site: str, agent: str) -> str:
    """Given an agent's site and name, return the ``check_id`` its pushed samples carry."""
    return f"{site}/{agent}/agent"


class StoreCollector(Collector):
    """A custom collector reading the store at scrape time. Register it in a registry;
    ``describe`` returns nothing, so registering does not query the store."""

    def __init__(self, store: Store, *, site_zone: Mapping[str, str] | None = None) -> None:
        """Given an open store and, optionally, each site's IANA time zone (exposed as
        ``opsctl_site_info{site,timezone} 1`` for dashboards), return the collector."""
        self.store = store
        self.site_zone = dict(site_zone or {})
        self._flips = _FlipCounter()

    def describe(self) -> list[Metric]:
        """Return no descriptions: the families depend on the store's rows."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the store's metric families, then ``opsctl_store_up`` (1, or 0 with none of
        the store's families when the store cannot be read) and the time the reading took."""
        started = time.perf_counter()
        try:
            families = self._read(datetime.now(UTC))
            up = 1
        except StoreError as error:
            log.error("metrics: %s", error)
            families, up = [], 0
        elapsed = time.perf_counter() - started
        yield from families
        if self.site_zone:
            info = GaugeMetricFamily(
                "opsctl_site_info",
                "Each site and its time zone (always 1).",
                labels=["site", "timezone"],
            )
            for site, zone in sorted(self.site_zone.items()):
                info.add_metric([site, zone], 1)
            yield info
        yield GaugeMetricFamily(
            "opsctl_store_up", "1 if the store could be read for this scrape, else 0.", value=up
        )
        yield GaugeMetricFamily(
            "opsctl_store_scrape_duration_seconds",
            "Time taken to read the store for this scrape.",
            value=elapsed,
        )

    def _read(self, now: datetime) -> list[Metric]:
        """Read every store family in one connection; raise StoreError if the store fails."""
        with self.store._guard("read metrics from"), self.store.engine.connect() as connection:
            families: list[Metric] = []
            families.extend(_check_families(connection))
            families.extend(_agent_families(connection, now))
            families.extend(_fleet_families(connection))
            families.append(self._flips.family(connection))
            families.extend(_job_families(connection))
            return families


def _check_families(connection: Connection) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "opsctl_check_state",
        "Current state of each check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        labels=CHECK_LABELS,
    )
    hard = GaugeMetricFamily(
        "opsctl_check_hard",
        "1 if the check's current state is hard (confirmed), 0 if soft (being retried).",
        labels=CHECK_LABELS,
    )
    last_run = GaugeMetricFamily(
        "opsctl_check_last_run_timestamp_seconds",
        "Unix time the check's last result started.",
        labels=CHECK_LABELS,
    )
    since = GaugeMetricFamily(
        "opsctl_check_state_since_timestamp_seconds",
        "Unix time the check's current state began.",
        labels=CHECK_LABELS,
    )
    counts = dict.fromkeys(STATE_NAMES.values(), 0)
    statuses = connection.execute(
        select(
            StatusModel.site,
            StatusModel.target,
            StatusModel.check_id,
            StatusModel.kind,
            StatusModel.state,
            StatusModel.state_type,
            StatusModel.last_checked,
            StatusModel.since,
        ).order_by(StatusModel.check_id)
    )
    for site, target, check_id, kind, code, state_type, last_checked, began in statuses:
        labels = [site, target, check_id, kind]
        state.add_metric(labels, int(code))
        hard.add_metric(labels, 1 if state_type == "hard" else 0)
        last_run.add_metric(labels, last_checked.timestamp())
        since.add_metric(labels, began.timestamp())
        counts[STATE_NAMES[State(code)]] += 1
    checks = GaugeMetricFamily("opsctl_checks", "Checks in each state.", labels=["state"])
    for name, count in counts.items():
        checks.add_metric([name], count)
    yield from (state, hard, last_run, since, checks)

    # The metric values of each check's last result; for a repeated name and label set
    # within one result, the last one stored.
    values: dict[tuple[str, ...], float] = {}
    rows = connection.execute(
        select(
            StatusModel.site,
            StatusModel.target,
            StatusModel.check_id,
            StatusModel.kind,
            SampleModel.name,
            SampleModel.unit,
            SampleModel.labels,
            SampleModel.value,
        )
        .join(SampleModel, SampleModel.result_id == StatusModel.last_result_id)
        .order_by(StatusModel.check_id, SampleModel.id)
    )
    for site, target, check_id, kind, name, unit, labels, value in rows:
        values[(site, target, check_id, kind, name, unit, fold_labels(labels))] = value
    metric = GaugeMetricFamily(
        "opsctl_check_metric",
        "Each metric of each check's last result; the sample's own labels folded into "
        "'labels' as sorted key=value pairs.",
        labels=[*CHECK_LABELS, "metric", "unit", "labels"],
    )
    for key, value in values.items():
        metric.add_metric(list(key), value)
    yield metric


def _agent_families(connection: Connection, now: datetime) -> Iterator[Metric]:
    agent_labels = ["agent", "site"]
    last_push = GaugeMetricFamily(
        "opsctl_agent_last_push_timestamp_seconds",
        "Unix time of the agent's last push, by the server's clock.",
        labels=agent_labels,
    )
    up = GaugeMetricFamily(
        "opsctl_agent_up",
        f"1 if the agent pushed within {AGENT_UP_INTERVALS} of its intervals, else 0.",
        labels=agent_labels,
    )
    pushes = CounterMetricFamily(
        "opsctl_agent_pushes",
        "Batches the agent pushed and the server stored.",
        labels=agent_labels,
    )
    samples = CounterMetricFamily(
        "opsctl_agent_samples",
        "Samples the agent pushed and the server stored.",
        labels=agent_labels,
    )
    queued = GaugeMetricFamily(
        "opsctl_agent_spool_queued_batches",
        "Batches waiting in the agent's spool, as it last said.",
        labels=agent_labels,
    )
    dropped_samples = CounterMetricFamily(
        "opsctl_agent_dropped_samples",
        "Samples the agent had to drop (spool full), as it last said.",
        labels=agent_labels,
    )
    dropped_batches = CounterMetricFamily(
        "opsctl_agent_dropped_batches",
        "Batches the agent had to drop (spool full), as it last said.",
        labels=agent_labels,
    )
    agents = connection.execute(
        select(
            AgentModel.name,
            AgentModel.site,
            AgentModel.interval,
            AgentModel.last_push,
            AgentModel.last_sent,
            AgentModel.pushes,
            AgentModel.samples,
            AgentModel.spooled,
            AgentModel.dropped_samples,
            AgentModel.dropped_batches,
        ).order_by(AgentModel.name)
    ).all()
    for agent in agents:
        labels = [agent.name, agent.site]
        interval = max(float(agent.interval), 1.0)
        last_push.add_metric(labels, agent.last_push.timestamp())
        fresh = (now - agent.last_push).total_seconds() <= AGENT_UP_INTERVALS * interval
        up.add_metric(labels, 1 if fresh else 0)
        pushes.add_metric(labels, agent.pushes)
        samples.add_metric(labels, agent.samples)
        queued.add_metric(labels, agent.spooled)
        dropped_samples.add_metric(labels, agent.dropped_samples)
        dropped_batches.add_metric(labels, agent.dropped_batches)
    yield from (last_push, up, pushes, samples, queued, dropped_samples, dropped_batches)
    yield _agent_samples(connection, agents)


def _agent_samples(connection: Connection, agents: list[Any]) -> Metric:
    """Each agent's latest samples: for each sample name, the values of its latest collection
    (samples at most half an interval older than the name's newest), among the samples taken
    within ``AGENT_UP_INTERVALS`` intervals before the agent's last push (by its clock).

    Two index-bound queries: the distinct sample names of every agent (a skip scan of the
    ``(check_id, name, at)`` index, a few probes per name whatever the history holds), then
    the recent window of those names only.
    """
    family = GaugeMetricFamily(
        "opsctl_agent_sample",
        "Each agent's latest pushed samples; the sample's own labels folded into 'labels' as "
        "sorted key=value pairs.",
        labels=["agent", "site", "name", "labels"],
    )
    by_check = {agent_check_id(agent.site, agent.name): agent for agent in agents}
    if not by_check:
        return family
    names: dict[str, list[str]] = {}
    for check_id, name in connection.execute(_sample_names()):
        if check_id in by_check:
            names.setdefault(check_id, []).append(name)

    window: dict[tuple[str, str], list[Any]] = {}
    for clauses in _batched_windows(names, by_check):
        rows = connection.execute(
            select(
                SampleModel.check_id,
                SampleModel.name,
                SampleModel.at,
                SampleModel.labels,
                SampleModel.value,
            )
            .where(SampleModel.result_id.is_(None), or_(*clauses))
            .order_by(SampleModel.at, SampleModel.id)
        ).all()
        for row in rows:
            window.setdefault((row[0], row[1]), []).append(row)

    latest: dict[tuple[str, str, str, str], float] = {}
    for (check_id, name), rows in window.items():
        agent = by_check[check_id]
        cutoff = rows[-1][2] - timedelta(seconds=max(float(agent.interval), 1.0) / 2)
        for _, _, at, labels, value in rows:  # oldest first: a label set's newest value wins
            if at >= cutoff:
                latest[(agent.name, agent.site, name, fold_labels(labels))] = value
    for key, value in sorted(latest.items()):
        family.add_metric(list(key), value)
    return family


def _sample_names() -> Any:
    """The distinct (check_id, name) pairs of the agents' samples, by a recursive skip scan
    of the ``(check_id, name, at)`` index (each step one index probe)."""
    check_ids = select(
        (AgentModel.site + "/" + AgentModel.name + "/agent").label("check_id")
    ).subquery()
    first = aliased(SampleModel)
    following = aliased(SampleModel)
    seed = select(
        check_ids.c.check_id,
        select(func.min(first.name))
        .where(first.check_id == check_ids.c.check_id)
        .scalar_subquery()
        .label("name"),
    )
    names = seed.cte("agent_sample_names", recursive=True)
    step = select(
        names.c.check_id,
        select(func.min(following.name))
        .where(following.check_id == names.c.check_id, following.name > names.c.name)
        .scalar_subquery()
        .label("name"),
    ).where(names.c.name.is_not(None))
    names = names.union_all(step)
    return select(names.c.check_id, names.c.name).where(names.c.name.is_not(None))


def _batched_windows(
    names: Mapping[str, list[str]], agents: Mapping[str, Any]
) -> Iterator[list[Any]]:
    """Yield lists of per-agent conditions (its check id, its names, samples taken within
    ``AGENT_UP_INTERVALS`` intervals before its last push), each list small enough for one
    statement."""
    batch: list[Any] = []
    size = 0
    for check_id, agent_names in sorted(names.items()):
        agent = agents[check_id]
        start = agent.last_sent.timestamp() - AGENT_UP_INTERVALS * max(float(agent.interval), 1.0)
        for offset in range(0, len(agent_names), _PARAMETERS):
            chunk = agent_names[offset : offset + _PARAMETERS]
            batch.append(
                and_(
                    SampleModel.check_id == check_id,
                    SampleModel.name.in_(chunk),
                    SampleModel.at >= datetime.fromtimestamp(start, UTC),
                )
            )
            size += len(chunk) + 2
            if size >= _PARAMETERS:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _fleet_families(connection: Connection) -> Iterator[Metric]:
    devices = GaugeMetricFamily(
        "opsctl_fleet_devices",
        "Dispensers by site, vendor, region and current status.",
        labels=["site", "vendor", "region", "status"],
    )
    rows = connection.execute(
        select(
            DeviceModel.site,
            DeviceModel.vendor,
            DeviceModel.region,
            DeviceModel.status,
            func.count(),
        )
        .group_by(DeviceModel.site, DeviceModel.vendor, DeviceModel.region, DeviceModel.status)
        .order_by(DeviceModel.site, DeviceModel.vendor, DeviceModel.region, DeviceModel.status)
    )
    for site, vendor, region, status, count in rows:
        devices.add_metric([site, vendor, region, status], count)
    yield devices

    heartbeat = GaugeMetricFamily(
        "opsctl_fleet_vendor_last_heartbeat_timestamp_seconds",
        "Unix time of the latest heartbeat of any of the vendor's dispensers, by the server's clock.",
        labels=["vendor"],
    )
    rows = connection.execute(
        select(DeviceModel.vendor, func.max(DeviceModel.last_heartbeat))
        .where(DeviceModel.last_heartbeat.is_not(None))
        .group_by(DeviceModel.vendor)
        .order_by(DeviceModel.vendor)
    )
    for vendor, latest in rows:
        heartbeat.add_metric([vendor], latest.timestamp())
    yield heartbeat


class _FlipCounter:
    """The ``device_flips`` rows per vendor, counted incrementally by id, so that a scrape
    reads only the rows added lately, and the counts never fall when old rows are deleted.

    Rows with ids up to ``mark`` are counted in ``settled``. Each scrape counts the rows
    above it (the tail) and remembers the highest id it saw; once that observation is
    ``FLIP_SETTLE_SECONDS`` old (every transaction holding a lower id has committed by then),
    the rows up to it are added to ``settled``. Should the newest rows vanish (the table
    emptied, after which SQLite reuses ids), the tail last seen is kept in ``settled`` and
    counting resumes above the highest id left.
    """

    def __init__(self) -> None:
        self.settled: dict[str, int] = {}
        self.mark = 0
        self.tail: dict[str, int] = {}
        self.top = 0
        self.seen: deque[tuple[float, int]] = deque()
        self.lock = threading.Lock()

    def family(self, connection: Connection) -> Metric:
        """Given a connection to the store, return ``opsctl_fleet_flips_total`` by vendor."""
        with self.lock:
            counts = self._count(connection, time.monotonic())
        family = CounterMetricFamily(
            "opsctl_fleet_flips", "Changes of a dispenser's status, by vendor.", labels=["vendor"]
        )
        for vendor, count in sorted(counts.items()):
            family.add_metric([vendor], count)
        return family

    def _count(self, connection: Connection, now: float) -> dict[str, int]:
        highest = connection.scalar(select(func.max(DeviceFlipModel.id))) or 0
        if highest < self.top:
            _add(self.settled, self.tail)
            self.mark = highest
            self.seen.clear()
        settle = None
        while self.seen and self.seen[0][0] <= now - FLIP_SETTLE_SECONDS:
            settle = self.seen.popleft()[1]
        if settle is not None and settle > self.mark:
            _add(self.settled, self._range(connection, self.mark, settle))
            self.mark = settle
        self.tail = self._range(connection, self.mark, None)
        self.top = max(self.mark, highest)
        self.seen.append((now, self.top))
        counts = dict(self.settled)
        _add(counts, self.tail)
        return counts

    @staticmethod
    def _range(connection: Connection, above: int, upto: int | None) -> dict[str, int]:
        statement = select(DeviceFlipModel.vendor, func.count()).where(DeviceFlipModel.id > above)
        if upto is not None:
            statement = statement.where(DeviceFlipModel.id <= upto)
        rows = connection.execute(statement.group_by(DeviceFlipModel.vendor))
        return {vendor: count for vendor, count in rows}


def _add(counts: dict[str, int], more: Mapping[str, int]) -> None:
    for vendor, count in more.items():
        counts[vendor] = counts.get(vendor, 0) + count


def _job_families(connection: Connection) -> Iterator[Metric]:
    labels = ["schedule", "job"]
    last_run = GaugeMetricFamily(
        "opsctl_job_last_run_timestamp_seconds",
        "Unix time the scheduled job's last completed run ended.",
        labels=labels,
    )
    outcome = GaugeMetricFamily(
        "opsctl_job_last_outcome",
        "1 if the scheduled job's last completed run succeeded, 0 if it failed.",
        labels=labels,
    )
    done = JobRunModel.outcome.in_(("ok", "failed"))
    latest = (
        select(
            JobRunModel.schedule, JobRunModel.job, func.max(JobRunModel.started).label("started")
        )
        .where(done)
        .group_by(JobRunModel.schedule, JobRunModel.job)
        .subquery()
    )
    rows = connection.execute(
        select(
            JobRunModel.schedule,
            JobRunModel.job,
            JobRunModel.started,
            JobRunModel.finished,
            JobRunModel.outcome,
        )
        .join(
            latest,
            and_(
                JobRunModel.schedule == latest.c.schedule,
                JobRunModel.job == latest.c.job,
                JobRunModel.started == latest.c.started,
            ),
        )
        .where(done)
        .order_by(JobRunModel.schedule, JobRunModel.job, JobRunModel.id)
    )
    runs: dict[tuple[str, str], tuple[datetime, str]] = {}
    for schedule, job, started, finished, result in rows:
        runs[(schedule, job)] = (finished or started, result)  # of equal starts, the last id
    for key, (ended, result) in runs.items():
        last_run.add_metric(list(key), ended.timestamp())
        outcome.add_metric(list(key), 1 if result == "ok" else 0)
    yield last_run
    yield outcome


# --------------------------------------------------------------------------- exposition


def render(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """Given a registry and the scrape's ``Accept`` header (None if absent), return the
    exposition and its content type: the Prometheus text format 0.0.4, or OpenMetrics when
    the header asks for ``application/openmetrics-text``."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


__all__ = [
    "AGENT_UP_INTERVALS",
    "DURATION_BUCKETS",
    "IngestMetrics",
    "StoreCollector",
    "agent_check_id",
    "fold_labels",
    "render",
]
