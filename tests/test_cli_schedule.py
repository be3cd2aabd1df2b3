"""``opsctl schedule list`` and ``opsctl schedule runs`` end to end, on a real SQLite file
and a real PostgreSQL database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.server.jobs import begin_run, end_run
from opsctl.server.lease import Lease
from opsctl.store import Store

runner = CliRunner()

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai, a Monday

INVENTORY = """
sites:
  - name: clinic
  - name: london-office
    timezone: Europe/London
schedules:
  - {name: morning, cron: "0 10 * * *", site: clinic}
  - {name: weekly, cron: "0 7 * * 1", job: report, site: london-office}
  - {name: tokyo, cron: "30 9 * * 1-5", job: export, timezone: Asia/Tokyo, catch_up: 1h}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str]:
    with time_machine.travel(NOW, tick=False):
        result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def cells(line: str) -> list[str]:
    """The cells of a row of a plain table (two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def record(
    url: str,
    schedule: str,
    job: str,
    outcome: str,
    message: str,
    started: datetime,
    scheduled_for: datetime | None = None,
) -> None:
    with Store.open(url) as store:
        run_id = begin_run(
            store,
            schedule=schedule,
            job=job,
            site=None,
            holder="ops-1:4242",
            started=started,
            scheduled_for=scheduled_for,
        )
        end_run(
            store,
            run_id,
            outcome=outcome,
            message=message,
            details={},
            finished=started + timedelta(seconds=75),
        )


def test_list_shows_next_runs_in_each_zone_without_a_server(
    store_url: str, inventory: Path
) -> None:
    code, output = invoke("--db", store_url, "schedule", "list", "-i", str(inventory))
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "scheduler: no server has run it yet"
    assert cells(lines[1]) == [
        "SCHEDULE",
        "JOB",
        "SITE",
        "CRON",
        "TIME ZONE",
        "NEXT RUN",
        "LAST RUN",
    ]
    rows = {cells(line)[0]: cells(line) for line in lines[2:]}
    # 09:30 in Shanghai: morning's 10:00 is today; in London (01:30) Monday's 07:00 is still
    # to come; in Tokyo (10:30) the 09:30 run is tomorrow's.
    assert rows == {
        "morning": [
            "morning",
            "inspect",
            "clinic",
            "0 10 * * *",
            "Asia/Shanghai",
            "2026-03-02 10:00:00",
            "-",
        ],
        "weekly": [
            "weekly",
            "report",
            "london-office",
            "0 7 * * 1",
            "Europe/London",
            "2026-03-02 07:00:00",
            "-",
        ],
        "tokyo": ["tokyo", "export", "-", "30 9 * * 1-5", "Asia/Tokyo", "2026-03-03 09:30:00", "-"],
    }


def test_list_shows_the_last_run_and_the_scheduler_holder(store_url: str, inventory: Path) -> None:
    record(store_url, "morning", "inspect", "ok", "older run", NOW - timedelta(days=1, hours=1))
    record(store_url, "morning", "inspect", "failed", "site gone", NOW - timedelta(hours=1))
    with Store.open(store_url) as store:
        lease = Lease(store, holder="ops-1:4242", clock=lambda: NOW - timedelta(seconds=10))
        assert lease.acquire()
    code, output = invoke("--db", store_url, "schedule", "list", "-i", str(inventory))
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == (
        "scheduler: run by ops-1:4242 since 2026-03-02 09:29:50, "
        "renewed 2026-03-02 09:29:50 (10s ago)"
    )
    [morning] = [line for line in lines if line.startswith("morning")]
    assert morning.endswith("2026-03-02 08:30:00 failed: site gone")

    code, output = invoke("--db", store_url, "schedule", "list", "-i", str(inventory), "--json")
    assert code == 0, output
    data = json.loads(output)
    assert data["scheduler"] == {
        "holder": "ops-1:4242",
        "acquired": "2026-03-02T01:29:50+00:00",
        "renewed": "2026-03-02T01:29:50+00:00",
        "expires": "2026-03-02T01:30:35+00:00",
        "live": True,
    }
    by_name = {entry["name"]: entry for entry in data["schedules"]}
    assert by_name["tokyo"] == {
        "name": "tokyo",
        "job": "export",
        "site": None,
        "cron": "30 9 * * 1-5",
        "timezone": "Asia/Tokyo",
        "catch_up": "1h",
        "next_run": "2026-03-03T09:30:00+09:00",
        "last_run": None,
    }
    assert by_name["morning"]["last_run"]["outcome"] == "failed"
    assert by_name["morning"]["last_run"]["started"] == "2026-03-02T08:30:00+08:00"


def test_list_says_when_no_server_holds_the_lease_any_more(store_url: str, inventory: Path) -> None:
    with Store.open(store_url) as store:
        lease = Lease(store, holder="ops-2:7", clock=lambda: NOW - timedelta(minutes=5))
        assert lease.acquire()
    code, output = invoke("--db", store_url, "schedule", "list", "-i", str(inventory))
    assert code == 0, output
    assert output.splitlines()[0] == (
        "scheduler: no server runs it now (last run by ops-2:7 until 2026-03-02 09:25:45)"
    )


def test_runs_lists_newest_first_with_filters(store_url: str, inventory: Path) -> None:
    record(
        store_url,
        "weekly",
        "report",
        "ok",
        "12 pages",
        NOW - timedelta(hours=2),
        scheduled_for=NOW - timedelta(hours=2, minutes=30),
    )
    record(store_url, "morning", "inspect", "failed", "site gone", NOW - timedelta(hours=1))
    record(store_url, "morning", "inspect", "ok", "too old", NOW - timedelta(days=8))
    base = ("--db", store_url, "schedule", "runs")

    code, output = invoke(*base, "-i", str(inventory))
    assert code == 0, output
    lines = output.splitlines()
    assert [cells(line) for line in lines] == [
        ["STARTED", "SCHEDULE", "JOB", "DUE", "OUTCOME", "TOOK", "MESSAGE"],
        ["2026-03-02 08:30:00", "morning", "inspect", "-", "failed", "1m 15s", "site gone"],
        # Each run in its schedule's time zone: weekly is London's.
        [
            "2026-03-01 23:30:00",
            "weekly",
            "report",
            "2026-03-01 23:00:00",
            "ok",
            "1m 15s",
            "12 pages",
        ],
    ]

    code, output = invoke(*base, "--schedule", "morning", "--since", "30d", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert [run["message"] for run in data["runs"]] == ["site gone", "too old"]
    assert data["runs"][0]["started"] == "2026-03-02T00:30:00+00:00"
    assert data["runs"][0]["holder"] == "ops-1:4242"

    code, output = invoke(*base, "--schedule", "tokyo", "-i", str(inventory))
    assert (code, output.strip()) == (0, "no runs of tokyo in the last 7d")


def test_runs_refuses_an_unknown_schedule_and_a_bad_since(store_url: str, inventory: Path) -> None:
    record(store_url, "retired", "inspect", "ok", "", NOW - timedelta(days=30))
    base = ("--db", store_url, "schedule", "runs")
    code, output = invoke(*base, "--schedule", "nope", "-i", str(inventory))
    assert code == 2
    assert "--schedule: no schedule named 'nope' (known: morning, retired, tokyo, weekly)" in output
    # A schedule no longer in the inventory, with runs recorded, is known.
    code, output = invoke(*base, "--schedule", "retired", "--since", "60d")
    assert code == 0 and "retired" in output
    code, output = invoke(*base, "--since", "a week")
    assert code == 2
    assert "--since: expected a duration" in output


def test_list_needs_a_valid_inventory(tmp_path: Path) -> None:
    code, output = invoke("schedule", "list", "-i", str(tmp_path / "missing.yaml"))
    assert code == 2 and "inventory file not found" in output
    broken = tmp_path / "broken.yaml"
    broken.write_text('schedules:\n  - {name: x, cron: "61 * * * *"}\n', encoding="utf-8")
    code, output = invoke("schedule", "list", "-i", str(broken))
    assert code == 2 and "broken.yaml:2 schedules[0].cron" in output


def test_list_with_no_schedules(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("sites:\n  - name: clinic\n", encoding="utf-8")
    code, output = invoke("--db", str(tmp_path / "opsctl.db"), "schedule", "list", "-i", str(path))
    assert code == 0
    assert output.splitlines()[1] == f"no schedules in {path}"


def test_an_unreachable_store_is_unknown_not_a_traceback(inventory: Path) -> None:
    url = "postgresql+psycopg://ops:secret@127.0.0.1:1/opsctl"
    code, output = invoke("--db", url, "schedule", "list", "-i", str(inventory))
    assert code == 3
    assert "opsctl: store:" in output and "secret" not in output
