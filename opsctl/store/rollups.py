"""Rollups of metric samples: each series' samples summed up per UTC hour and per UTC day, so
that a quarter of data reports in seconds and raw samples can be pruned once rolled up.

A series is one check's metric name with one set of labels (``{"mount": "/"}`` and
``{"mount": "/data"}`` are two series). Each rollup row holds the count, min, max and sum of
the series' samples in its bucket and the value of the latest one; averages are sum / count,
so rollups of rollups stay exact. Hourly rows are computed from the raw samples, daily rows
from the hourly rows: a day stays right after its raw samples are pruned.

``rollup`` runs from the scheduler every few minutes: without ``since`` it starts again at the
latest bucket already rolled up (the watermark), so each run reads about an hour of samples.
``series`` and ``daily_maxima`` read the rollups and compute the part after the watermark from
the raw samples, so that their answers are complete up to the moment asked. ``prune_raw``
deletes raw samples only once a rollup holds every one of them.

Every aggregation runs in the database (GROUP BY, window functions); Python only merges the
aggregated rows of a few series.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Subquery,
    and_,
    case,
    cast,
    delete,
    func,
    literal_column,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB

from opsctl.store.api import Store, _require_aware
from opsctl.store.models import RollupModel, SampleModel, UTCDateTime

Resolution = Literal["hour", "day"]

HOUR: Resolution = "hour"
DAY: Resolution = "day"
RESOLUTIONS: dict[str, timedelta] = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}

ROLLUPS = RollupModel.__table__
SAMPLES = SampleModel.__table__

# Any fixed 64-bit number, shared by every opsctl process: the advisory lock that keeps two
# servers (or a server and `opsctl`) from rolling up or pruning at the same time.
ROLLUP_LOCK_KEY = 0x6F7073_6374_6C05

_SERIES = ("check_id", "name", "labels_key", "resolution", "bucket")
_VALUES = ("labels", "unit", "count", "min", "max", "sum", "last", "last_at")


@dataclass(frozen=True, slots=True)
class RollupPoint:
    """One bucket of a series: how many samples, their min, max and average, and the value
    of the latest one."""

    bucket: datetime
    count: int
    min: float
    max: float
    avg: float
    last: float


@dataclass(slots=True)
class _Partial:
    """A bucket's figures while rows of several series or hours are merged into it."""

    count: int
    min: float
    max: float
    sum: float
    last: float
    last_at: datetime

    def add(self, other: _Partial) -> None:
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sum += other.sum
        if other.last_at > self.last_at:
            self.last, self.last_at = other.last, other.last_at


def labels_key(labels: Mapping[str, str]) -> str:
    """Given a series' labels, return the key its rollups are stored under: the labels as
    JSON with sorted keys and no spaces (what the database computes from stored samples)."""
    return json.dumps(dict(labels), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- writing


def rollup(store: Store, *, until: datetime, since: datetime | None = None) -> int:
    """Given a moment (no later than now), roll the raw samples up into every whole hour and
    every whole UTC day ending at or before it, in one transaction, and return how many
    rollup rows were written (inserted or replaced).

    Without ``since``, continue from the watermark: the latest hour and the latest day already
    rolled up are rolled up again (samples recorded late, by a slow check, reach them), and
    every later whole bucket for the first time; the first run takes every sample. With
    ``since``, roll up again from the start of its UTC day, for samples that arrived later
    than that. Running twice gives the same rows. A rollup is only replaced by one that counts
    at least as many samples, so that buckets whose raw samples were pruned keep their figures.
    Raise ValueError if a time is naive, StoreError if the database fails.
    """
    _require_aware(until, "until")
    if since is not None:
        _require_aware(since, "since")
    hours_end, days_end = _floor(until, HOUR), _floor(until, DAY)
    written = 0
    with store._guard("roll up the samples of"), store.engine.begin() as connection:
        _lock(connection)
        if since is None:
            hours_start = _watermark(connection, HOUR)
            days_start = _watermark(connection, DAY)
        else:
            # Whole days, so that the days rolled up again find all their hours.
            hours_start = days_start = _floor(since, DAY)
        if hours_start is None or hours_start < hours_end:
            hourly = _aggregated(_keyed_samples(connection, HOUR, hours_start, hours_end))
            written += _upsert(store, connection, HOUR, hourly)
        if days_start is None or days_start < days_end:
            daily = _aggregated(_keyed_hours(connection, days_start, days_end))
            written += _upsert(store, connection, DAY, daily)
    return written


def prune_raw(store: Store, older_than: datetime) -> int:
    """Given a moment, delete the raw samples of the whole hours before it whose hourly rollup
    holds every one of them (as many samples as the hour has), and return how many were
    deleted. Samples not rolled up yet, or recorded after their hour was rolled up, stay until
    a later ``rollup`` takes them in. Raise ValueError if the moment is naive, StoreError if
    the database fails.
    """
    _require_aware(older_than, "older_than")
    cutoff = _floor(older_than, HOUR)
    with store._guard("prune the raw samples of"), store.engine.begin() as connection:
        _lock(connection)
        dialect = connection.dialect.name
        keyed = (
            select(
                SAMPLES.c.id,
                SAMPLES.c.check_id,
                SAMPLES.c.name,
                _labels_key(dialect).label("labels_key"),
                _bucket(dialect, SAMPLES.c.at, HOUR).label("bucket"),
            )
            .where(SAMPLES.c.at < cutoff)
            .subquery("keyed")
        )
        series = (keyed.c.check_id, keyed.c.name, keyed.c.labels_key, keyed.c.bucket)
        counted = select(keyed, func.count().over(partition_by=series).label("samples")).subquery(
            "counted"
        )
        doomed = select(counted.c.id).join(
            ROLLUPS,
            and_(
                ROLLUPS.c.check_id == counted.c.check_id,
                ROLLUPS.c.name == counted.c.name,
                ROLLUPS.c.labels_key == counted.c.labels_key,
                ROLLUPS.c.resolution == HOUR,
                ROLLUPS.c.bucket == counted.c.bucket,
                ROLLUPS.c.count == counted.c.samples,
            ),
        )
        return connection.execute(delete(SAMPLES).where(SAMPLES.c.id.in_(doomed))).rowcount


# --------------------------------------------------------------------------- reading


def series(
    store: Store,
    check_id: str,
    name: str,
    *,
    since: datetime,
    until: datetime,
    resolution: Resolution = HOUR,
    labels: Mapping[str, str] | None = None,
) -> list[RollupPoint]:
    """Given a check id, a metric name and a period, return one point per hour or UTC day
    (``resolution``) with samples, from the bucket holding ``since`` to the last one starting
    before ``until``, oldest first.

    The buckets rolled up come from the rollups; those after the watermark are computed from
    the raw samples (before ``until``), so the answer is complete. With ``labels``, only that
    series (``{}``: the series without labels); without, every label set of the metric merged
    into one point per bucket (the max of any, the average of all). Raise ValueError if a
    time is naive or the resolution unknown, StoreError if the database fails.
    """
    _require_aware(since, "since")
    _require_aware(until, "until")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution {resolution!r}: expected 'hour' or 'day'")
    key = None if labels is None else labels_key(labels)
    with store._guard("read a metric series from"), store.engine.connect() as connection:
        if resolution == HOUR:
            rows = _hours(connection, check_id, name, key, _floor(since, HOUR), until)
        else:
            start = _floor(since, DAY)
            latest = _series_watermark(connection, check_id, name, DAY)
            boundary = start if latest is None else max(start, latest + RESOLUTIONS[DAY])
            rows = _rolled(connection, check_id, name, key, DAY, start, min(boundary, until))
            if boundary < until:
                hours = _hours(connection, check_id, name, key, boundary, until)
                rows.extend((_floor(bucket, DAY), partial) for bucket, partial in hours)
    return [
        RollupPoint(bucket, part.count, part.min, part.max, part.sum / part.count, part.last)
        for bucket, part in sorted(_merged(rows).items())
    ]


def daily_maxima(
    store: Store,
    check_id: str,
    name: str,
    *,
    since: datetime,
    until: datetime,
    labels: Mapping[str, str] | None = None,
    timezone: str = "Asia/Shanghai",
) -> list[tuple[date, float]]:
    """Given a check id, a metric name, a period and a time zone, return the highest value of
    each local day with samples, oldest first: (local date, max).

    Daily rollups are UTC days, so local days are made of hourly buckets, each counted in the
    local day its start falls in (exact for every zone whose offsets are whole hours). The
    hours come from the rollups, and after the watermark from the raw samples (before
    ``until``). ``labels`` as for ``series``. Raise ValueError if a time is naive or the zone
    unknown, StoreError if the database fails.
    """
    _require_aware(since, "since")
    _require_aware(until, "until")
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError) as error:
        raise ValueError(f"unknown time zone {timezone!r}") from error
    key = None if labels is None else labels_key(labels)
    with store._guard("read a metric series from"), store.engine.connect() as connection:
        hours = _hours(connection, check_id, name, key, _floor(since, HOUR), until)
    maxima: dict[date, float] = {}
    for bucket, partial in hours:
        day = bucket.astimezone(zone).date()
        maxima[day] = max(maxima.get(day, partial.max), partial.max)
    return sorted(maxima.items())


def _hours(
    connection: Connection,
    check_id: str,
    name: str,
    key: str | None,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, _Partial]]:
    """The hourly rows of a metric in [start, end): rolled up before the series' watermark,
    computed from the raw samples after it."""
    latest = _series_watermark(connection, check_id, name, HOUR)
    boundary = start if latest is None else max(start, latest + RESOLUTIONS[HOUR])
    rows = _rolled(connection, check_id, name, key, HOUR, start, min(boundary, end))
    if boundary < end:
        keyed = _keyed_samples(connection, HOUR, boundary, end, check_id=check_id, name=name)
        tail = _aggregated(keyed).subquery("tail")
        query = select(tail).order_by(tail.c.bucket, tail.c.labels_key)
        if key is not None:
            query = query.where(tail.c.labels_key == key)
        rows.extend((row.bucket, _partial(row)) for row in connection.execute(query))
    return rows


def _rolled(
    connection: Connection,
    check_id: str,
    name: str,
    key: str | None,
    resolution: Resolution,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, _Partial]]:
    if end <= start:
        return []
    query = (
        select(ROLLUPS)
        .where(
            ROLLUPS.c.check_id == check_id,
            ROLLUPS.c.name == name,
            ROLLUPS.c.resolution == resolution,
            ROLLUPS.c.bucket >= start,
            ROLLUPS.c.bucket < end,
        )
        .order_by(ROLLUPS.c.bucket, ROLLUPS.c.labels_key)
    )
    if key is not None:
        query = query.where(ROLLUPS.c.labels_key == key)
    return [(row.bucket, _partial(row)) for row in connection.execute(query)]


def _partial(row: Any) -> _Partial:
    return _Partial(row.count, row.min, row.max, row.sum, row.last, row.last_at)


def _merged(rows: Iterable[tuple[datetime, _Partial]]) -> dict[datetime, _Partial]:
    """Rows of several series (or hours of one day) merged into one per bucket."""
    merged: dict[datetime, _Partial] = {}
    for bucket, partial in rows:
        held = merged.get(bucket)
        if held is None:
            merged[bucket] = _Partial(
                partial.count, partial.min, partial.max, partial.sum, partial.last, partial.last_at
            )
        else:
            held.add(partial)
    return merged


# --------------------------------------------------------------------------- SQL


def _floor(moment: datetime, resolution: Resolution) -> datetime:
    """The UTC start of the hour or day holding ``moment``."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if resolution == DAY else moment


def _lock(connection: Connection) -> None:
    """Serialise rollups and prunes between processes. On SQLite, also take the write lock up
    front: a transaction that reads and then writes would otherwise fail, not wait, when
    another process wrote in between."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK_KEY})
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _watermark(connection: Connection, resolution: Resolution) -> datetime | None:
    """The latest bucket rolled up at this resolution, of any series."""
    query = select(func.max(ROLLUPS.c.bucket)).where(ROLLUPS.c.resolution == resolution)
    return connection.scalar(query)


def _series_watermark(
    connection: Connection, check_id: str, name: str, resolution: Resolution
) -> datetime | None:
    """The latest bucket rolled up at this resolution of a metric, whatever its labels."""
    query = select(func.max(ROLLUPS.c.bucket)).where(
        ROLLUPS.c.check_id == check_id,
        ROLLUPS.c.name == name,
        ROLLUPS.c.resolution == resolution,
    )
    return connection.scalar(query)


def _bucket(dialect: str, at: Any, resolution: Resolution) -> ColumnElement[datetime]:
    """The SQL of the UTC start of the hour or day holding the timestamp ``at``, stored as
    the store stores timestamps."""
    if dialect == "postgresql":
        # date_trunc on a timestamptz truncates in the session's TimeZone: truncate the UTC
        # wall time instead, and read it back as UTC.
        utc = func.timezone(literal_column("'UTC'"), at)
        truncated = func.date_trunc(literal_column(f"'{resolution}'"), utc)
        return type_coerce(func.timezone(literal_column("'UTC'"), truncated), UTCDateTime())
    # SQLite keeps UTC wall times as text in SQLAlchemy's format (microseconds included):
    # the bucket must be the same text for comparisons and the primary key to match.
    form = "%Y-%m-%d %H:00:00.000000" if resolution == HOUR else "%Y-%m-%d 00:00:00.000000"
    return type_coerce(func.strftime(literal_column(f"'{form}'"), at), UTCDateTime())


def _labels_key(dialect: str) -> ColumnElement[str]:
    """The SQL of ``labels_key(metric_samples.labels)``: the stored text differs (the ORM
    writes ``{"a": "b"}``, bulk intake ``{"a":"b"}``, PostgreSQL's JSONB its own order), so
    the key is built from the labels' items, sorted by code point."""
    if dialect == "postgresql":
        sql = (
            "CASE WHEN jsonb_typeof(metric_samples.labels) <> 'object' "
            "OR metric_samples.labels = '{}'::jsonb THEN '{}' ELSE coalesce(("
            "SELECT '{' || string_agg(to_json(item.key)::text || ':' || item.value::text, ','"
            " ORDER BY item.key COLLATE \"C\") || '}' "
            "FROM jsonb_each(metric_samples.labels) AS item), '{}') END"
        )
    else:
        # Before SQLite 3.44 an aggregate takes no ORDER BY: an ordered subquery feeds it,
        # which SQLite does not flatten into an aggregate query, so the order holds.
        sql = (
            "CASE WHEN metric_samples.labels = '{}' THEN '{}' ELSE coalesce(("
            "SELECT '{' || group_concat(item, ',') || '}' FROM ("
            "SELECT json_quote(key) || ':' || json_quote(value) AS item "
            "FROM json_each(metric_samples.labels) ORDER BY key)), '{}') END"
        )
    return literal_column(sql)


def _keyed_samples(
    connection: Connection,
    resolution: Resolution,
    start: datetime | None,
    end: datetime,
    *,
    check_id: str | None = None,
    name: str | None = None,
) -> Subquery:
    """Raw samples in [start, end) as one-sample buckets: the shape ``_aggregated`` sums up."""
    dialect = connection.dialect.name
    value = SAMPLES.c.value
    query = select(
        SAMPLES.c.check_id,
        SAMPLES.c.name,
        _labels_key(dialect).label("labels_key"),
        SAMPLES.c.unit,
        _bucket(dialect, SAMPLES.c.at, resolution).label("bucket"),
        literal_column("1").label("count"),
        value.label("min"),
        value.label("max"),
        value.label("sum"),
        value.label("last"),
        SAMPLES.c.at.label("last_at"),
        SAMPLES.c.id.label("tiebreak"),
    ).where(SAMPLES.c.at < end)
    if start is not None:
        query = query.where(SAMPLES.c.at >= start)
    if check_id is not None:
        query = query.where(SAMPLES.c.check_id == check_id)
    if name is not None:
        query = query.where(SAMPLES.c.name == name)
    return query.subquery("keyed")


def _keyed_hours(connection: Connection, start: datetime | None, end: datetime) -> Subquery:
    """Hourly rollups in [start, end) in the shape ``_aggregated`` sums up, by UTC day."""
    hours = ROLLUPS.alias("hours")
    query = select(
        hours.c.check_id,
        hours.c.name,
        hours.c.labels_key,
        hours.c.unit,
        _bucket(connection.dialect.name, hours.c.bucket, DAY).label("bucket"),
        hours.c.count,
        hours.c.min,
        hours.c.max,
        hours.c.sum,
        hours.c.last,
        hours.c.last_at,
        hours.c.bucket.label("tiebreak"),
    ).where(hours.c.resolution == HOUR, hours.c.bucket < end)
    if start is not None:
        query = query.where(hours.c.bucket >= start)
    return query.subquery("keyed")


def _aggregated(keyed: Subquery) -> Select[Any]:
    """Given buckets of any size in ``keyed`` (one sample each, or hours), return the query
    summing them up per series and bucket, in the columns of ``metric_rollups``: the latest
    one's value and unit are picked by a window function, not by Python."""
    series = (keyed.c.check_id, keyed.c.name, keyed.c.labels_key, keyed.c.bucket)
    ranked = select(
        keyed,
        func.row_number()
        .over(partition_by=series, order_by=(keyed.c.last_at.desc(), keyed.c.tiebreak.desc()))
        .label("rank"),
    ).subquery("ranked")
    latest = ranked.c.rank == 1
    return select(
        ranked.c.check_id,
        ranked.c.name,
        ranked.c.labels_key,
        func.max(case((latest, ranked.c.unit))).label("unit"),
        ranked.c.bucket,
        func.sum(ranked.c.count).label("count"),
        func.min(ranked.c.min).label("min"),
        func.max(ranked.c.max).label("max"),
        func.sum(ranked.c.sum).label("sum"),
        func.max(case((latest, ranked.c.last))).label("last"),
        func.max(ranked.c.last_at).label("last_at"),
    ).group_by(ranked.c.check_id, ranked.c.name, ranked.c.labels_key, ranked.c.bucket)


def _upsert(
    store: Store, connection: Connection, resolution: Resolution, aggregated: Select[Any]
) -> int:
    """Insert the aggregated rows as rollups of ``resolution``, replacing those of the same
    series and bucket unless they count more samples (their raw samples were pruned since)."""
    source = aggregated.subquery("rolled")
    labels: Any = source.c.labels_key
    if connection.dialect.name == "postgresql":
        labels = cast(source.c.labels_key, JSONB)
    rows = select(
        source.c.check_id,
        source.c.name,
        source.c.labels_key,
        literal_column(f"'{resolution}'").label("resolution"),
        source.c.bucket,
        labels.label("labels"),
        source.c.unit,
        source.c.count,
        source.c.min,
        source.c.max,
        source.c.sum,
        source.c.last,
        source.c.last_at,
    ).where(true())  # SQLite: without a WHERE, "ON CONFLICT" would parse as a join's ON
    names = [column.name for column in rows.selected_columns]
    statement = store._insert(ROLLUPS).from_select(names, rows)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[ROLLUPS.c[name] for name in _SERIES],
        set_={name: excluded[name] for name in _VALUES},
        where=ROLLUPS.c.count <= excluded.count,
    )
    # An INSERT's rowcount is read from the cursor only when asked for.
    return connection.execute(statement.execution_options(preserve_rowcount=True)).rowcount


__all__ = [
    "DAY",
    "HOUR",
    "RESOLUTIONS",
    "RollupPoint",
    "daily_maxima",
    "labels_key",
    "prune_raw",
    "rollup",
    "series",
]
