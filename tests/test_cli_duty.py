"""``opsctl duty show`` across the 2026 National Day block (1–7 October off, Saturday
10 October a make-up workday), with a roster of weekly pairs, holiday pairs taken in turn and
a make-up workday pair; phones masked unless asked for; bad input refused."""

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
    duty:
      people: {张工: "13800000001", 李工: "13800000002", 王工: "13800000003", 赵工: "13800000004"}
      weekly:
        mon: {A: 张工, B: 李工}
        tue: {A: 李工, B: 张工}
        wed: {A: 张工, B: 李工}
        thu: {A: 李工, B: 张工}
        fri: {A: 张工, B: 李工}
        sat: {A: 王工, B: 赵工}
        sun: {A: 赵工, B: 王工}
      holidays:
        - {A: 王工, B: 赵工}
        - {A: 赵工, B: 王工}
      workday: {A: 李工, B: 王工}
  - name: xy
    contacts:
      - {name: 孙工, role: A岗, phone: "13900000001"}
      - {name: 周工, role: B, phone: "13900000002"}
      - {name: 钱主任, role: hospital IT, phone: "13900000003"}
"""

PHONES = {
    "张工": "13800000001",
    "李工": "13800000002",
    "王工": "13800000003",
    "赵工": "13800000004",
}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def show(inventory: Path, *args: str, at: datetime | None = None):
    command = ["duty", "show", "-i", str(inventory), *args]
    if at is None:
        return runner.invoke(app, command)
    with time_machine.travel(at, tick=False):
        return runner.invoke(app, command)


def day(when: str, weekday: str, holiday: str | None, basis: str, a: str, b: str, end: str) -> dict:
    def person(name: str) -> dict[str, str]:
        phone = PHONES[name]
        return {"name": name, "phone": f"{phone[:3]}****{phone[-4:]}"}

    return {
        "day": when,
        "weekday": weekday,
        "holiday": holiday,
        "basis": basis,
        "start": f"{when}T08:30:00+08:00",
        "end": f"{end}T08:30:00+08:00",
        "a": person(a),
        "b": person(b),
    }


def test_the_national_day_block_and_its_make_up_workday(inventory: Path) -> None:
    shown = show(inventory, "--site", "zj", "--date", "2026-09-30", "--days", "12", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == [
        {
            "site": "zj",
            "roster": True,
            "timezone": "Asia/Shanghai",
            "days": [
                day("2026-09-30", "wed", None, "weekly.wed", "张工", "李工", "2026-10-01"),
                # The block's pairs are taken in turn from its first day, weekend included.
                day("2026-10-01", "thu", "国庆节", "holidays", "王工", "赵工", "2026-10-02"),
                day("2026-10-02", "fri", "国庆节", "holidays", "赵工", "王工", "2026-10-03"),
                day("2026-10-03", "sat", "国庆节", "holidays", "王工", "赵工", "2026-10-04"),
                day("2026-10-04", "sun", "国庆节", "holidays", "赵工", "王工", "2026-10-05"),
                day("2026-10-05", "mon", "国庆节", "holidays", "王工", "赵工", "2026-10-06"),
                day("2026-10-06", "tue", "国庆节", "holidays", "赵工", "王工", "2026-10-07"),
                day("2026-10-07", "wed", "国庆节", "holidays", "王工", "赵工", "2026-10-08"),
                day("2026-10-08", "thu", None, "weekly.thu", "李工", "张工", "2026-10-09"),
                day("2026-10-09", "fri", None, "weekly.fri", "张工", "李工", "2026-10-10"),
                # Saturday 10 October is worked (调休): the workday pair, not Saturday's.
                day("2026-10-10", "sat", None, "workday", "李工", "王工", "2026-10-11"),
                day("2026-10-11", "sun", None, "weekly.sun", "赵工", "王工", "2026-10-12"),
            ],
        }
    ]


def test_the_table_masks_phones_unless_asked(inventory: Path) -> None:
    shown = show(inventory, "--date", "2026-10-10", "--days", "2")
    assert shown.exit_code == 0, shown.output
    lines = [re.split(r"\s{2,}", line.strip()) for line in shown.stdout.splitlines()]
    assert lines == [
        ["SITE", "DAY", "HOLIDAY", "A", "B", "FROM", "TO", "BASIS"],
        ["zj", "2026-10-10 Sat", "-", "李工 138****0002", "王工 138****0003",
         "2026-10-10 08:30", "2026-10-11 08:30", "workday"],
        ["zj", "2026-10-11 Sun", "-", "赵工 138****0004", "王工 138****0003",
         "2026-10-11 08:30", "2026-10-12 08:30", "weekly.sun"],
    ]  # fmt: skip
    full = show(inventory, "--date", "2026-10-10", "--phones", "--json")
    (entry,) = json.loads(full.stdout)
    assert entry["days"][0]["a"] == {"name": "李工", "phone": "13800000002"}
    assert "13800000002" not in shown.stdout


def test_without_a_date_the_duty_day_under_way_is_shown(inventory: Path) -> None:
    # 07:00 on 1 October is still the duty day of 30 September (shifts change at 08:30).
    early = show(inventory, "--json", at=datetime(2026, 10, 1, 7, 0, tzinfo=CST))
    assert early.exit_code == 0, early.output
    (entry,) = json.loads(early.stdout)  # only the site with a roster
    assert [(d["day"], d["basis"]) for d in entry["days"]] == [("2026-09-30", "weekly.wed")]
    later = show(inventory, "--json", "--days", "2", at=datetime(2026, 10, 1, 9, 0, tzinfo=CST))
    (entry,) = json.loads(later.stdout)
    assert [(d["day"], d["holiday"]) for d in entry["days"]] == [
        ("2026-10-01", "国庆节"),
        ("2026-10-02", "国庆节"),
    ]


def test_a_site_without_a_roster_says_who_is_rung_instead(inventory: Path) -> None:
    shown = show(inventory, "--site", "xy")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == (
        "site xy has no duty roster; alerts ring its contacts of role A岗/B岗: "
        "孙工 (A岗 139****0001), 周工 (B岗 139****0002)\n"
    )
    as_json = show(inventory, "--site", "xy", "--json")
    assert json.loads(as_json.stdout) == [
        {
            "site": "xy",
            "roster": False,
            "contacts": [
                {"post": "A", "name": "孙工", "phone": "139****0001"},
                {"post": "B", "name": "周工", "phone": "139****0002"},
            ],
        }
    ]


def test_a_year_the_calendar_does_not_know_is_unknown(inventory: Path) -> None:
    shown = show(inventory, "--date", "2027-01-04")
    assert shown.exit_code == 3
    assert shown.stdout == ""
    assert re.fullmatch(
        r"opsctl: site zj: China's holiday arrangement for 2027 is not known to "
        r"chinesecalendar \S+ \(it knows 2004-2026\): upgrade it\n",
        shown.stderr,
    )
    as_json = show(inventory, "--date", "2027-01-04", "--json")
    assert as_json.exit_code == 3
    (entry,) = json.loads(as_json.stdout)
    assert entry["days"] == [] and "2027 is not known" in entry["error"]


def test_bad_input_is_refused_naming_the_option(inventory: Path, tmp_path: Path) -> None:
    bad_date = show(inventory, "--date", "2026-10-32")
    assert bad_date.exit_code == 2
    assert bad_date.stderr == "opsctl: --date: expected a date like 2026-10-01, got '2026-10-32'\n"
    bad_site = show(inventory, "--site", "gz")
    assert bad_site.exit_code == 2
    assert bad_site.stderr == f"opsctl: --site: no site named 'gz' in {inventory} (sites: zj, xy)\n"
    bad_days = show(inventory, "--days", "0")
    assert bad_days.exit_code == 2
    assert "--days" in bad_days.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("sites:\n  - name: xy\n", encoding="utf-8")
    none = runner.invoke(app, ["duty", "show", "-i", str(empty)])
    assert none.exit_code == 0
    assert none.stdout == f"no site in {empty} has a duty roster (give a site one under duty:)\n"
