"""Maintenance windows: the spans of one-off, cron and dated windows, which are open at a
moment (start included, end excluded), how much of a period they cover, their site scope,
and the windows the inventory refuses, each with its file, line and path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from opsctl.inventory import InventoryInvalid, load
from opsctl.maintenance import Maintenance, Window, active, covered, occurrences

CST = ZoneInfo("Asia/Shanghai")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def cst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CST)


def window(**fields: Any) -> Maintenance:
    return Maintenance.model_validate({"name": "w", **fields})


def spans(found: list[Window]) -> list[tuple[datetime, datetime]]:
    return [(span.start, span.end) for span in found]


# --------------------------------------------------------------------------- occurrences


@pytest.mark.parametrize(
    ("fields", "zone", "expected"),
    [
        # Written without an offset: the site's time.
        (
            {"start": "2026-12-05 22:00", "end": "2026-12-06 02:00"},
            "Asia/Shanghai",
            (utc(2026, 12, 5, 14), utc(2026, 12, 5, 18)),
        ),
        (
            {"start": "2026-12-05 22:00", "end": "2026-12-06 02:00"},
            "Asia/Urumqi",
            (utc(2026, 12, 5, 16), utc(2026, 12, 5, 20)),
        ),
        # With an offset the site's zone plays no part.
        (
            {"start": "2026-12-05T22:00+08:00", "end": "2026-12-06T02:00+08:00"},
            "Asia/Urumqi",
            (utc(2026, 12, 5, 14), utc(2026, 12, 5, 18)),
        ),
        # One side with an offset, the other in site time.
        (
            {"start": "2026-12-05 22:00", "end": "2026-12-05T23:00+08:00"},
            "Asia/Shanghai",
            (utc(2026, 12, 5, 14), utc(2026, 12, 5, 15)),
        ),
    ],
)
def test_a_one_off_window(fields: dict[str, str], zone: str, expected: tuple) -> None:
    found = occurrences(window(**fields), zone, utc(2026, 12, 1), utc(2026, 12, 31))
    assert found == [Window("w", *expected)]


def test_a_one_off_window_outside_the_period_has_no_span() -> None:
    one_off = window(start="2026-12-05 22:00", end="2026-12-06 02:00")
    # The period ends where the window begins, or begins where it ends.
    assert occurrences(one_off, "Asia/Shanghai", utc(2026, 12, 5), utc(2026, 12, 5, 14)) == []
    assert occurrences(one_off, "Asia/Shanghai", utc(2026, 12, 5, 18), utc(2026, 12, 6)) == []
    assert len(occurrences(one_off, "Asia/Shanghai", utc(2026, 12, 5, 17), utc(2026, 12, 6))) == 1


def test_a_cron_window_in_a_zone_without_daylight_saving() -> None:
    # 02:00 every Saturday in Shanghai is 18:00 UTC on Friday all year: the clocks changed in
    # Europe (29 March) and North America (8 March) move nothing here.
    weekly = window(cron="0 2 * * 6", duration="2h", checks=["his-app-01/*"])
    found = occurrences(weekly, "Asia/Shanghai", cst(2026, 3, 1), cst(2026, 4, 1))
    assert spans(found) == [
        (utc(2026, 3, day, 18), utc(2026, 3, day, 20)) for day in (6, 13, 20, 27)
    ]
    assert {span.checks for span in found} == {("his-app-01/*",)}


def test_a_cron_window_across_month_ends() -> None:
    # 23:00 on the 31st, for two hours: only the months that have one, each window ending in
    # the next month. February and April have no 31st. The period starts at midnight on
    # 1 January, inside the window of 31 December, which is found too.
    monthly = window(cron="0 23 31 * *", duration="2h")
    found = occurrences(monthly, "Asia/Shanghai", cst(2026, 1, 1), cst(2026, 6, 1))
    assert spans(found) == [
        (cst(2025, 12, 31, 23), cst(2026, 1, 1, 1)),
        (cst(2026, 1, 31, 23), cst(2026, 2, 1, 1)),
        (cst(2026, 3, 31, 23), cst(2026, 4, 1, 1)),
        (cst(2026, 5, 31, 23), cst(2026, 6, 1, 1)),
    ]
    february = occurrences(monthly, "Asia/Shanghai", cst(2026, 2, 1, 0, 30), cst(2026, 3, 1))
    assert spans(february) == [(cst(2026, 1, 31, 23), cst(2026, 2, 1, 1))]
    assert occurrences(monthly, "Asia/Shanghai", cst(2026, 2, 1, 1), cst(2026, 3, 1)) == []


def test_a_window_on_listed_dates() -> None:
    dated = window(dates=["2026-12-19", "2026-12-12", "2026-12-19"], at="23:00", duration="3h")
    found = occurrences(dated, "Asia/Shanghai", cst(2026, 12, 1), cst(2027, 1, 1))
    assert spans(found) == [
        (utc(2026, 12, 12, 15), utc(2026, 12, 12, 18)),
        (utc(2026, 12, 19, 15), utc(2026, 12, 19, 18)),
    ]
    # An unquoted 23:00 is YAML 1.1's 1380 (minutes): the same time of day.
    assert window(dates=["2026-12-12"], at=1380, duration="3h").at == dated.at


# --------------------------------------------------------------------------- active


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (cst(2026, 12, 5, 21, 59, 59), False),
        (cst(2026, 12, 5, 22, 0), True),  # the start is included
        (cst(2026, 12, 6, 1, 59, 59), True),
        (cst(2026, 12, 6, 2, 0), False),  # the end is not
    ],
)
def test_a_one_off_window_is_active_from_its_start_until_before_its_end(
    at: datetime, open_: bool
) -> None:
    one_off = window(start="2026-12-05 22:00", end="2026-12-06 02:00")
    expected = [Window("w", utc(2026, 12, 5, 14), utc(2026, 12, 5, 18))] if open_ else []
    assert active([one_off], "Asia/Shanghai", at) == expected


@pytest.mark.parametrize(
    ("at", "starts"),
    [
        (cst(2026, 3, 7, 1, 59), []),
        (cst(2026, 3, 7, 2, 0), [utc(2026, 3, 6, 18)]),
        (cst(2026, 3, 7, 3, 59, 59), [utc(2026, 3, 6, 18)]),
        (cst(2026, 3, 7, 4, 0), []),
        (cst(2026, 3, 14, 2, 0), [utc(2026, 3, 13, 18)]),
    ],
)
def test_a_cron_window_is_active_from_each_firing(at: datetime, starts: list[datetime]) -> None:
    weekly = window(cron="0 2 * * 6", duration="2h")
    assert [span.start for span in active([weekly], "Asia/Shanghai", at)] == starts


def test_active_gives_every_window_open_at_the_moment() -> None:
    patch = Maintenance.model_validate({"name": "patch", "cron": "0 22 * * *", "duration": "4h"})
    migration = Maintenance.model_validate(
        {"name": "migration", "start": "2026-12-05 23:00", "end": "2026-12-06 01:00"}
    )
    network = Maintenance.model_validate(
        {"name": "network", "dates": ["2026-12-12"], "at": "23:00", "duration": "3h"}
    )
    found = active([patch, migration, network], "Asia/Shanghai", cst(2026, 12, 6, 0, 30))
    assert [(span.name, span.start, span.end) for span in found] == [
        ("patch", utc(2026, 12, 5, 14), utc(2026, 12, 5, 18)),
        ("migration", utc(2026, 12, 5, 15), utc(2026, 12, 5, 17)),
    ]


# --------------------------------------------------------------------------- covered and scope


def test_covered_counts_overlapping_spans_once() -> None:
    spans_ = [
        Window("all", utc(2026, 12, 5, 10), utc(2026, 12, 5, 12)),
        Window("app", utc(2026, 12, 5, 11), utc(2026, 12, 5, 13), ("his-app-01/*",)),
        Window("touching", utc(2026, 12, 5, 13), utc(2026, 12, 5, 14), ("his-app-01/*",)),
        Window("db", utc(2026, 12, 5, 15), utc(2026, 12, 5, 16), ("zj/his-db/*",)),
    ]
    since, until = utc(2026, 12, 5, 9), utc(2026, 12, 5, 15, 30)
    # 10:00-12:00 and 11:00-13:00 overlap, 13:00-14:00 touches: 10:00-14:00.
    assert covered(spans_, "zj/his-app-01/tcp", since, until) == timedelta(hours=4)
    # 10:00-12:00, and 15:00-16:00 cut at the period's end.
    assert covered(spans_, "zj/his-db/tablespace", since, until) == timedelta(hours=2, minutes=30)
    # The period cuts the spans too.
    assert covered(spans_, "zj/his-app-01/tcp", utc(2026, 12, 5, 11, 30), utc(2026, 12, 5, 12)) == (
        timedelta(minutes=30)
    )
    assert covered([], "zj/his-app-01/tcp", since, until) == timedelta(0)


def test_a_window_scoped_to_a_site_takes_in_only_its_checks() -> None:
    scoped = Window("patch", utc(2026, 12, 5, 10), utc(2026, 12, 5, 12), ("his-app-01/*",), "zj")
    unscoped = Window("patch", utc(2026, 12, 5, 10), utc(2026, 12, 5, 12), ("his-app-01/*",))
    cases = [
        ("zj/his-app-01/tcp", True, True),
        ("sh/his-app-01/tcp", False, True),  # another site's host of the same name
        ("zj/his-db/tcp", False, False),
    ]
    for check_id, in_scoped, in_unscoped in cases:
        assert scoped.matches(check_id) is in_scoped, check_id
        assert unscoped.matches(check_id) is in_unscoped, check_id
    whole = Window("site", utc(2026, 12, 5, 10), utc(2026, 12, 5, 12), ("zj/*",), "zj")
    assert whole.matches("zj/his-db/tcp") and not whole.matches("sh/his-db/tcp")
    assert scoped.covers("zj/his-app-01/tcp", utc(2026, 12, 5, 10))
    assert not scoped.covers("zj/his-app-01/tcp", utc(2026, 12, 5, 12))
    assert not scoped.covers("sh/his-app-01/tcp", utc(2026, 12, 5, 11))
    period = (utc(2026, 12, 5), utc(2026, 12, 6))
    assert covered([scoped], "sh/his-app-01/tcp", *period) == timedelta(0)
    assert covered([scoped], "zj/his-app-01/tcp", *period) == timedelta(hours=2)


# --------------------------------------------------------------------------- validation


def test_the_inventory_refuses_malformed_windows_with_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        """sites:
  - name: zj
    maintenance:
      - name: both
        start: 2026-12-05 22:00
        end: 2026-12-06 02:00
        cron: "0 2 * * 6"
        duration: 2h
      - name: no-duration
        cron: "0 2 * * 6"
      - name: backwards
        start: 2026-12-05 22:00
        end: 2026-12-05 21:00
      - name: bad-cron
        cron: "0 25 * * 6"
        duration: 1h
      - name: no-at
        dates: [2026-12-12]
        duration: 3h
      - name: too-long
        cron: "0 2 * * 6"
        duration: 8d
      - name: half
        start: 2026-12-05 22:00
      - name: nothing
""",
        encoding="utf-8",
    )
    with pytest.raises(InventoryInvalid) as caught:
        load(path)
    errors = [str(error) for error in caught.value.errors]
    assert errors == [
        f"{path}:4 sites[0].maintenance[0]: give exactly one of: start and end (one-off), cron "
        "and duration, or dates, at and duration (found start/end and cron)",
        f"{path}:9 sites[0].maintenance[1]: a recurring window needs a duration",
        f"{path}:11 sites[0].maintenance[2]: end must be later than start",
        f'{path}:15 sites[0].maintenance[3].cron: expected a cron expression like "0 2 * * 6" '
        "(minute hour day month weekday): Error validating expression '25': the last value (25) "
        "is higher than the maximum value (23) (got '0 25 * * 6')",
        f"{path}:17 sites[0].maintenance[4]: a window on dates needs at (a time of day like "
        '"23:00")',
        f"{path}:20 sites[0].maintenance[5]: duration must be longer than 0 and at most 7 days",
        f"{path}:23 sites[0].maintenance[6]: a one-off window needs start and end",
        f"{path}:25 sites[0].maintenance[7]: give exactly one of: start and end (one-off), cron "
        "and duration, or dates, at and duration",
    ]


def test_the_inventory_reads_a_site_s_windows(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n"
        "  - name: zj\n"
        "    maintenance:\n"
        "      - {name: db-migration, start: 2026-12-05 22:00, end: 2026-12-06 02:00}\n"
        "      - {name: weekly-patch, cron: '0 2 * * 6', duration: 2h, checks: [his-app-01/*]}\n",
        encoding="utf-8",
    )
    site = load(path).site("zj")
    assert site is not None
    assert [
        span.name for span in active(site.maintenance, site.timezone, cst(2026, 12, 5, 23))
    ] == ["db-migration"]
