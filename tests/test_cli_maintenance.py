"""``opsctl maintenance list``: one-off, cron and dated windows as the spans they open in a
period, in each site's time, which of them is open now, and bad input refused."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from typer.testing import CliRunner

from opsctl.cli import app

runner = CliRunner()

CST = ZoneInfo("Asia/Shanghai")

INVENTORY = """\
sites:
  - name: zj
    maintenance:
      - name: db-migration
        start: 2026-12-05 22:00
        end: 2026-12-06 02:00
        reason: HIS 数据库迁移
      - name: weekly-patch
        cron: "0 2 * * 6"
        duration: 2h
        checks: ["app-01/*", "app-02/*"]
        reason: 操作系统补丁
      - name: network-upgrade
        dates: [2026-12-02, 2026-12-20]
        at: "23:00"
        duration: 3h
  - name: xj
    timezone: Asia/Urumqi
    maintenance:
      - name: ups-test
        start: 2026-12-03T09:00:00+06:00
        end: 2026-12-03T10:00:00+06:00
        checks: ["xj/*"]
  - name: hz
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def listed(inventory: Path, *args: str, at: datetime = datetime(2026, 11, 30, 12, 0, tzinfo=CST)):
    with time_machine.travel(at, tick=False):
        return runner.invoke(app, ["maintenance", "list", "-i", str(inventory), *args])


def window(site: str, name: str, start: str, end: str, checks: list[str], reason: str = "",
           active: bool = False) -> dict:  # fmt: skip
    return {
        "site": site,
        "name": name,
        "start": start,
        "end": end,
        "checks": checks,
        "reason": reason,
        "active": active,
    }


def test_a_week_of_windows_in_each_sites_time(inventory: Path) -> None:
    shown = listed(inventory, "--from", "2026-12-01", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == [
        window("zj", "network-upgrade", "2026-12-02T23:00:00+08:00", "2026-12-03T02:00:00+08:00",
               ["*"]),
        # 09:00 in Urumqi is 11:00 in Zhejiang: after the network upgrade, in start order.
        window("xj", "ups-test", "2026-12-03T09:00:00+06:00", "2026-12-03T10:00:00+06:00",
               ["xj/*"]),
        window("zj", "weekly-patch", "2026-12-05T02:00:00+08:00", "2026-12-05T04:00:00+08:00",
               ["app-01/*", "app-02/*"], "操作系统补丁"),
        window("zj", "db-migration", "2026-12-05T22:00:00+08:00", "2026-12-06T02:00:00+08:00",
               ["*"], "HIS 数据库迁移"),
    ]  # fmt: skip
    # The dated window's second date (20 December) and the next Saturday's patch (12
    # December) fall after the seven days.


def test_a_window_open_now_is_marked_active(inventory: Path) -> None:
    during = datetime(2026, 12, 5, 23, 0, tzinfo=CST)
    shown = listed(inventory, "--site", "zj", at=during)
    assert shown.exit_code == 0, shown.output
    rows = [re.split(r"\s{2,}", line.strip()) for line in shown.stdout.splitlines()]
    assert rows == [
        ["SITE", "WINDOW", "START", "END", "ACTIVE", "CHECKS", "REASON"],
        ["zj", "weekly-patch", "2026-12-05 02:00", "2026-12-05 04:00", "-",
         "app-01/*, app-02/*", "操作系统补丁"],
        ["zj", "db-migration", "2026-12-05 22:00", "2026-12-06 02:00", "now", "*",
         "HIS 数据库迁移"],
    ]  # fmt: skip
    # Without --from the period starts today in the site's time: the migration that began
    # yesterday evening is still listed the next morning, no longer open.
    morning = listed(
        inventory, "--site", "zj", "--json", at=datetime(2026, 12, 6, 9, 0, tzinfo=CST)
    )
    assert [(w["name"], w["active"]) for w in json.loads(morning.stdout)] == [
        ("db-migration", False),
        ("weekly-patch", False),
    ]


def test_a_window_that_began_before_the_period_is_listed(inventory: Path) -> None:
    shown = listed(inventory, "--from", "2026-12-06", "--days", "1", "--json")
    assert [(w["name"], w["start"]) for w in json.loads(shown.stdout)] == [
        ("db-migration", "2026-12-05T22:00:00+08:00")
    ]
    dated = listed(inventory, "--from", "2026-12-20", "--days", "1", "--site", "zj", "--json")
    assert json.loads(dated.stdout) == [
        window("zj", "network-upgrade", "2026-12-20T23:00:00+08:00", "2026-12-21T02:00:00+08:00",
               ["*"]),
    ]  # fmt: skip


def test_nothing_in_the_period(inventory: Path) -> None:
    quiet = listed(inventory, "--site", "hz", "--from", "2026-12-01")
    assert (quiet.exit_code, quiet.stdout) == (
        0,
        "no maintenance windows from 2026-12-01 for 7 days\n",
    )
    assert json.loads(listed(inventory, "--site", "hz", "--json").stdout) == []


def test_bad_input_is_refused_naming_the_option(inventory: Path) -> None:
    bad_from = listed(inventory, "--from", "12/01/2026")
    assert bad_from.exit_code == 2
    assert bad_from.stderr == "opsctl: --from: expected a date like 2026-10-01, got '12/01/2026'\n"
    bad_site = listed(inventory, "--site", "gz")
    assert bad_site.exit_code == 2
    assert bad_site.stderr == (
        f"opsctl: --site: no site named 'gz' in {inventory} (sites: zj, xj, hz)\n"
    )
    bad_days = listed(inventory, "--days", "0")
    assert bad_days.exit_code == 2
    assert "--days" in bad_days.stderr
