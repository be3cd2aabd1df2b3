"""Metric rollups, on a real SQLite file and a real PostgreSQL database (each test runs on both).

The figures expected are worked out by hand from the samples below.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from opsctl.store import Store
from opsctl.store.models import RollupModel, SampleModel
from opsctl.store.rollups import (
    RollupPoint,
    daily_maxima,
    labels_key,
    prune_raw,
    rollup,
    series,
)

CHECK = "hq/db1/host"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


# Hour 1 Mar 22:00: 10, 30, 20 (20 is the latest, though stored before 30).
# Hour 1 Mar 23:00: 50, 40.  Hour 2 Mar 00:00: 5.  Hour 2 Mar 01:00: 15, 25.
CPU = [
    (at(1, 22, 10), 10.0),
    (at(1, 22, 50), 20.0),
    (at(1, 22, 40), 30.0),
    (at(1, 23, 5), 50.0),
    (at(1, 23, 55), 40.0),
    (at(2, 0, 15), 5.0),
    (at(2, 1, 30), 15.0),
    (at(2, 1, 45), 25.0),
]


def add(
    store: Store,
    samples: list[tuple[datetime, float]],
    *,
    name: str = "cpu",
    labels: dict[str, str] | None = None,
    check_id: str = CHECK,
    unit: str = "%",
) -> None:
    rows = [
        {
            "result_id": None,
            "check_id": check_id,
            "name": name,
            "value": value,
            "unit": unit,
            "labels": labels or {},
            "at": moment,
        }
        for moment, value in samples
    ]
    with store._sessions.begin() as session:
        session.execute(insert(SampleModel), rows)


def rollups(store: Store, resolution: str | None = None) -> list[tuple[Any, ...]]:
    """Every rollup row as (name, labels_key, labels, unit, resolution, bucket, count, min,
    max, sum, last, last_at), in order."""
    model = RollupModel
    query = select(
        model.name,
        model.labels_key,
        model.labels,
        model.unit,
        model.resolution,
        model.bucket,
        model.count,
        model.min,
        model.max,
        model.sum,
        model.last,
        model.last_at,
    ).order_by(model.resolution, model.name, model.labels_key, model.bucket)
    if resolution is not None:
        query = query.where(model.resolution == resolution)
    with store._sessions() as session:
        return [tuple(row) for row in session.execute(query)]


def raw_count(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM metric_samples"))


HOURLY = [
    ("cpu", "{}", {}, "%", "hour", at(1, 22), 3, 10.0, 30.0, 60.0, 20.0, at(1, 22, 50)),
    ("cpu", "{}", {}, "%", "hour", at(1, 23), 2, 40.0, 50.0, 90.0, 40.0, at(1, 23, 55)),
    ("cpu", "{}", {}, "%", "hour", at(2, 0), 1, 5.0, 5.0, 5.0, 5.0, at(2, 0, 15)),
    ("cpu", "{}", {}, "%", "hour", at(2, 1), 2, 15.0, 25.0, 40.0, 25.0, at(2, 1, 45)),
]
DAILY = [
    ("cpu", "{}", {}, "%", "day", at(1, 0), 5, 10.0, 50.0, 150.0, 40.0, at(1, 23, 55)),
    ("cpu", "{}", {}, "%", "day", at(2, 0), 3, 5.0, 25.0, 45.0, 25.0, at(2, 1, 45)),
]


# --------------------------------------------------------------------------- rollup


def test_rollup_computes_hourly_and_daily_figures(store: Store) -> None:
    add(store, CPU)
    assert rollup(store, until=at(3, 0)) == 6
    assert rollups(store, "hour") == HOURLY
    assert rollups(store, "day") == DAILY


def test_rollup_twice_gives_the_same_rows(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(3, 0))
    first = rollups(store)
    # Continuing from the watermark rolls the latest hour and the latest day up again.
    assert rollup(store, until=at(3, 0)) == 2
    assert rollups(store) == first
    assert rollup(store, until=at(3, 0), since=at(1, 0)) == 6
    assert rollups(store) == first


def test_rollup_takes_whole_buckets_only(store: Store) -> None:
    add(store, CPU)
    # 01:00-02:00 on 2 March is not over at 01:50, nor is 2 March.
    assert rollup(store, until=at(2, 1, 50)) == 4
    assert rollups(store, "hour") == HOURLY[:3]
    assert rollups(store, "day") == DAILY[:1]


def test_rollup_continues_from_the_watermark(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(2, 1, 0))
    # A slow check's sample lands in the latest hour rolled up after it was rolled up.
    add(store, [(at(2, 0, 30), 100.0)])
    # Again: the hour 00:00 and 1 March (the watermarks), then 01:00 and 2 March.
    assert rollup(store, until=at(3, 0)) == 4
    assert rollups(store, "hour") == [
        *HOURLY[:2],
        ("cpu", "{}", {}, "%", "hour", at(2, 0), 2, 5.0, 100.0, 105.0, 100.0, at(2, 0, 30)),
        HOURLY[3],
    ]
    assert rollups(store, "day") == [
        DAILY[0],
        ("cpu", "{}", {}, "%", "day", at(2, 0), 4, 5.0, 100.0, 145.0, 25.0, at(2, 1, 45)),
    ]


def test_samples_older_than_the_watermark_need_since(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(3, 0))
    add(store, [(at(1, 22, 5), 1.0)])
    rollup(store, until=at(3, 0))
    assert rollups(store, "hour")[0] == HOURLY[0]
    rollup(store, until=at(3, 0), since=at(1, 22))
    assert rollups(store, "hour")[0] == (
        "cpu", "{}", {}, "%", "hour", at(1, 22), 4, 1.0, 30.0, 61.0, 20.0, at(1, 22, 50)
    )  # fmt: skip
    assert rollups(store, "day")[0] == (
        "cpu", "{}", {}, "%", "day", at(1, 0), 6, 1.0, 50.0, 151.0, 40.0, at(1, 23, 55)
    )  # fmt: skip


def test_series_with_different_labels_stay_apart(store: Store) -> None:
    root = {"mount": "/", "device": "sda1"}
    data = {"mount": "/data", "device": "sdb1"}
    add(store, [(at(1, 10, 0), 50.0)], name="fs.used", labels=root)
    # The same labels in another order are the same series.
    add(store, [(at(1, 10, 30), 52.0)], name="fs.used", labels=dict(reversed(root.items())))
    add(store, [(at(1, 10, 20), 80.0)], name="fs.used", labels=data)
    add(store, [(at(1, 10, 10), 7.0)], name="fs.used", labels={"掛載點": '"引號"\\'})
    rollup(store, until=at(1, 11))
    assert rollups(store, "hour") == [
        ("fs.used", '{"device":"sda1","mount":"/"}', root, "%", "hour", at(1, 10),
         2, 50.0, 52.0, 102.0, 52.0, at(1, 10, 30)),
        ("fs.used", '{"device":"sdb1","mount":"/data"}', data, "%", "hour", at(1, 10),
         1, 80.0, 80.0, 80.0, 80.0, at(1, 10, 20)),
        ("fs.used", '{"掛載點":"\\"引號\\"\\\\"}', {"掛載點": '"引號"\\'}, "%", "hour", at(1, 10),
         1, 7.0, 7.0, 7.0, 7.0, at(1, 10, 10)),
    ]  # fmt: skip
    assert labels_key({"掛載點": '"引號"\\'}) == '{"掛載點":"\\"引號\\"\\\\"}'
    assert labels_key(root) == '{"device":"sda1","mount":"/"}'


def test_rollup_refuses_naive_times(store: Store) -> None:
    with pytest.raises(ValueError, match="until"):
        rollup(store, until=datetime(2026, 3, 1))  # noqa: DTZ001


# --------------------------------------------------------------------------- series


def test_series_reads_rollups_and_the_raw_samples_after_them(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(2, 1))
    # The raw samples of the hours rolled up are gone: those points must come from rollups.
    assert prune_raw(store, at(2, 1)) == 6
    points = series(store, CHECK, "cpu", since=at(1, 22), until=at(2, 2))
    assert points == [
        RollupPoint(at(1, 22), 3, 10.0, 30.0, 20.0, 20.0),
        RollupPoint(at(1, 23), 2, 40.0, 50.0, 45.0, 40.0),
        RollupPoint(at(2, 0), 1, 5.0, 5.0, 5.0, 5.0),
        RollupPoint(at(2, 1), 2, 15.0, 25.0, 20.0, 25.0),  # not rolled up yet: raw
    ]
    # The raw part stops at until.
    assert series(store, CHECK, "cpu", since=at(2, 0, 30), until=at(2, 1, 40)) == [
        RollupPoint(at(2, 0), 1, 5.0, 5.0, 5.0, 5.0),
        RollupPoint(at(2, 1), 1, 15.0, 15.0, 15.0, 15.0),
    ]
    # 1 March is rolled up; 2 March is made of a rolled-up hour and a raw one.
    assert series(store, CHECK, "cpu", since=at(1, 0), until=at(3, 0), resolution="day") == [
        RollupPoint(at(1, 0), 5, 10.0, 50.0, 30.0, 40.0),
        RollupPoint(at(2, 0), 3, 5.0, 25.0, 15.0, 25.0),
    ]


def test_series_without_rollups_comes_from_raw_samples(store: Store) -> None:
    add(store, CPU)
    assert series(store, CHECK, "cpu", since=at(1, 0), until=at(3, 0), resolution="day") == [
        RollupPoint(at(1, 0), 5, 10.0, 50.0, 30.0, 40.0),
        RollupPoint(at(2, 0), 3, 5.0, 25.0, 15.0, 25.0),
    ]
    assert series(store, "hq/db2/host", "cpu", since=at(1, 0), until=at(3, 0)) == []


def test_series_by_labels_or_merged(store: Store) -> None:
    add(store, [(at(1, 10, 0), 50.0), (at(1, 11, 0), 60.0)], name="fs.used", labels={"mount": "/"})
    add(store, [(at(1, 10, 20), 80.0)], name="fs.used", labels={"mount": "/data"})
    add(store, [(at(1, 10, 40), 1.0)], name="fs.used")
    rollup(store, until=at(1, 11))
    period = {"since": at(1, 0), "until": at(2, 0)}
    assert series(store, CHECK, "fs.used", labels={"mount": "/data"}, **period) == [
        RollupPoint(at(1, 10), 1, 80.0, 80.0, 80.0, 80.0),
    ]
    assert series(store, CHECK, "fs.used", labels={"mount": "/"}, **period) == [
        RollupPoint(at(1, 10), 1, 50.0, 50.0, 50.0, 50.0),
        RollupPoint(at(1, 11), 1, 60.0, 60.0, 60.0, 60.0),
    ]
    assert series(store, CHECK, "fs.used", labels={}, **period) == [
        RollupPoint(at(1, 10), 1, 1.0, 1.0, 1.0, 1.0),
    ]
    # Every label set merged: the latest value of any, the average of all.
    assert series(store, CHECK, "fs.used", **period) == [
        RollupPoint(at(1, 10), 3, 1.0, 80.0, 131.0 / 3, 1.0),
        RollupPoint(at(1, 11), 1, 60.0, 60.0, 60.0, 60.0),
    ]


def test_series_refuses_an_unknown_resolution(store: Store) -> None:
    with pytest.raises(ValueError, match="resolution"):
        series(store, CHECK, "cpu", since=at(1, 0), until=at(2, 0), resolution="week")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- daily maxima


def test_daily_maxima_by_shanghai_days_across_utc_midnight(store: Store) -> None:
    add(
        store,
        [
            (at(1, 15, 30), 70.0),  # 23:30 on 1 March in Shanghai
            (at(1, 16, 30), 90.0),  # 00:30 on 2 March in Shanghai, still 1 March in UTC
            (at(2, 10, 0), 60.0),  # 18:00 on 2 March
            (at(2, 17, 0), 20.0),  # 01:00 on 3 March
        ],
    )
    rollup(store, until=at(2, 12))  # the last two hours stay raw
    since = datetime(2026, 2, 28, 16, tzinfo=UTC)  # 1 March, 00:00 in Shanghai
    assert daily_maxima(store, CHECK, "cpu", since=since, until=at(3, 16)) == [
        (date(2026, 3, 1), 70.0),
        (date(2026, 3, 2), 90.0),
        (date(2026, 3, 3), 20.0),
    ]
    # UTC days would put 90 on 1 March.
    assert series(store, CHECK, "cpu", since=at(1, 0), until=at(3, 0), resolution="day") == [
        RollupPoint(at(1, 0), 2, 70.0, 90.0, 80.0, 90.0),
        RollupPoint(at(2, 0), 2, 20.0, 60.0, 40.0, 20.0),
    ]


def test_daily_maxima_follow_daylight_saving_time(store: Store) -> None:
    # New York moves from UTC-5 to UTC-4 at 07:00 UTC on 8 March 2026.
    add(
        store,
        [
            (at(8, 4, 30), 1.0),  # 23:30 EST on 7 March
            (at(8, 5, 30), 2.0),  # 00:30 EST on 8 March
            (at(9, 3, 30), 3.0),  # 23:30 EDT on 8 March
            (at(9, 4, 30), 4.0),  # 00:30 EDT on 9 March
        ],
    )
    rollup(store, until=at(10, 0))
    maxima = daily_maxima(
        store, CHECK, "cpu", since=at(7, 0), until=at(10, 0), timezone="America/New_York"
    )
    assert maxima == [(date(2026, 3, 7), 1.0), (date(2026, 3, 8), 3.0), (date(2026, 3, 9), 4.0)]


def test_daily_maxima_refuses_an_unknown_zone(store: Store) -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        daily_maxima(store, CHECK, "cpu", since=at(1, 0), until=at(2, 0), timezone="Mars/Olympus")


# --------------------------------------------------------------------------- pruning


def test_prune_raw_keeps_samples_not_rolled_up(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(2, 0))  # 22:00 and 23:00 on 1 March only
    add(store, [(at(1, 22, 5), 1.0)])  # too late for its hour's rollup
    # 23:00 goes (2 samples); 22:00's rollup lacks a sample, and 2 March is not rolled up.
    assert prune_raw(store, at(2, 2)) == 2
    assert raw_count(store) == 7
    rollup(store, until=at(3, 0), since=at(1, 0))
    assert prune_raw(store, at(2, 2)) == 7
    assert raw_count(store) == 0
    expected = rollups(store)
    assert expected[0] == (
        "cpu", "{}", {}, "%", "day", at(1, 0), 6, 1.0, 50.0, 151.0, 40.0, at(1, 23, 55)
    )  # fmt: skip
    # Rolling up again after pruning keeps the figures of the pruned hours.
    rollup(store, until=at(3, 0), since=at(1, 0))
    assert rollups(store) == expected


def test_prune_raw_stops_at_whole_hours(store: Store) -> None:
    add(store, CPU)
    rollup(store, until=at(3, 0))
    # 23:30 is inside the hour 23:00: that hour stays.
    assert prune_raw(store, at(1, 23, 30)) == 3
    assert raw_count(store) == 5
