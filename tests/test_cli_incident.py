"""``opsctl incident`` through CliRunner on SQLite and PostgreSQL: the whole life of an
incident, shown in the site's time zone; each incident judged on its site's SLA (a business
calendar to 20:00 with an 18:00 cut-off across the 2026 holidays and make-up working days,
and a 24x7 one); ``list --breaching`` as a monitoring check; bad input refused clearly."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests_support_alerts import record
from typer.testing import CliRunner

from opsctl.alerts import alerts, evaluate, link_incident
from opsctl.cli import app
from opsctl.contract import State
from opsctl.incidents import acknowledge, open_incident, resolve
from opsctl.store import Store

runner = CliRunner()

# zj: business hours 08:00-20:00 on China's workdays; an incident opened from 18:00 until
# 08:00 starts its clocks at 08:00 on the next workday. xj: every minute counts, in Urumqi
# time (UTC+6). sh: no SLA.
INVENTORY = """
sites:
  - name: zj
    sla:
      calendar: business
      business_hours: "08:00-20:00"
      cutoff: "18:00"
      severities:
        critical: {respond: 15m, resolve: 4h, onsite: 2h}
        major: {respond: 30m, resolve: 8h}
        minor: {respond: 2h, resolve: 24h}
  - name: xj
    timezone: Asia/Urumqi
    sla:
      severities:
        critical: {respond: 15m, resolve: 4h}
        major: {respond: 30m, resolve: 8h}
  - name: sh
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def invoke(url: str, *args: str) -> Any:
    return runner.invoke(app, ["--db", url, "incident", *args])


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def add(
    url: str,
    site: str,
    severity: str,
    opened: str,
    acknowledged: str | None = None,
    resolved: str | None = None,
    title: str = "挂号系统无法出号",
) -> int:
    """Record an incident as the incident commands would; return its id."""
    with Store.open(url) as store:
        incident = open_incident(
            store, site=site, system="HIS", severity=severity, title=title,
            reporter="门诊部", opened=moment(opened),
        )  # fmt: skip
        if acknowledged is not None:
            acknowledge(store, incident.id, "张工", moment(acknowledged))
        if resolved is not None:
            resolve(store, incident.id, root_cause="连接池耗尽", at=moment(resolved))
        return incident.id


def clock(
    due: str | None,
    state: str,
    remaining: int | None = None,
    overdue: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "due": due,
        "state": state,
        "remaining_seconds": remaining,
        "overdue_seconds": overdue,
        "reason": reason,
    }


def cells(line: str) -> list[str]:
    """The cells of a row of a plain table (two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


# --------------------------------------------------------------------------- the incident log


def test_an_incident_from_open_to_resolved(store_url: str) -> None:
    opened = invoke(
        store_url, "open", "--site", "zj", "--system", "预约平台", "--title", "预约接口超时",
        "--reporter", "医院信息科", "--severity", "major", "--at", "2026-11-23T09:40+08:00", "--json",
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    number = str(json.loads(opened.stdout)["id"])
    acked = invoke(store_url, "ack", number, "--by", "张工", "--at", "2026-11-23T09:48+08:00")
    assert acked.exit_code == 0
    noted = invoke(
        store_url, "note", number, "重启接口服务", "--by", "张工", "--at", "2026-11-23T10:00+08:00"
    )
    assert noted.exit_code == 0
    resolved = invoke(store_url, "resolve", number, "--cause", "连接池耗尽", "--actions",
                      "扩大连接池", "--at", "2026-11-23T10:20+08:00")  # fmt: skip
    assert resolved.exit_code == 0
    shown = invoke(store_url, "show", number)
    assert "opened       2026-11-23 09:40:00" in shown.stdout
    assert "acknowledged 2026-11-23 09:48:00 by 张工" in shown.stdout
    assert "2026-11-23 10:00:00 张工: 重启接口服务" in shown.stdout
    assert "root cause: 连接池耗尽" in shown.stdout
    assert "  SLA: no SLA" in shown.stdout
    listed = json.loads(invoke(store_url, "list", "--json").stdout)
    assert [i["resolved"] for i in listed] == ["2026-11-23T02:20:00+00:00"]
    assert [i["sla"] for i in listed] == [None]
    assert json.loads(invoke(store_url, "list", "--open", "--json").stdout) == []


def test_bad_input_is_refused_clearly(store_url: str, inventory: Path) -> None:
    opened = invoke(store_url, "open", "--site", "zj", "--system", "HIS", "--title", "t",
                    "--reporter", "r", "--at", "2026-11-23T09:40+08:00", "--json")  # fmt: skip
    number = str(json.loads(opened.stdout)["id"])
    refused = [
        (("resolve", number, "--at", "2026-11-23T09:00+08:00"), "before it was opened"),
        (("ack", number, "--by", "张工", "--at", "2026-11-23T09:50"), "give a zone offset"),
        (
            (
                "open",
                "--site",
                "zj",
                "--system",
                "HIS",
                "--title",
                "t",
                "--reporter",
                "r",
                "--severity",
                "urgent",
            ),
            "severity must be one of",
        ),  # fmt: skip
        (("show", "42"), "opsctl: no incident 42"),
        (("list", "--now", "tomorrow"), "opsctl: --now: expected an ISO 8601 time like"),
        (("list", "--now", "2026-11-23T09:00"), "opsctl: --now: give a zone offset"),
        (("show", number, "--within", "soon"), "opsctl: --within: expected a duration like"),
        (
            ("list", "--breaching"),
            "opsctl: --breaching judges incidents on their site's SLA: give the inventory",
        ),
    ]
    for args, message in refused:
        result = invoke(store_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
    unknown = invoke(store_url, "list", "-i", str(inventory.parent / "missing.yaml"))
    assert unknown.exit_code == 2
    assert "inventory file not found" in unknown.stderr


# --------------------------------------------------------------------------- SLA verdicts

NO_ONSITE = None

# site, severity, opened, acknowledged, resolved, judged at → respond, resolve, onsite.
SLA_CASES = {
    # 国庆节 2026: 1-7 Oct off. Opened after the 18:00 cut-off on the eve, the clocks start
    # at 08:00 on Thursday 8 Oct.
    "national day, after the cut-off": (
        "zj", "major", "2026-09-30T19:00+08:00", None, None, "2026-10-08T09:00+08:00",
        clock("2026-10-08T08:30:00+08:00", "breached", overdue=30 * 60),
        clock("2026-10-08T16:00:00+08:00", "running", remaining=7 * 3600),
        NO_ONSITE,
    ),
    # Before the cut-off the evening counts: 17:00-20:00 is 3h of the 4h, the last hour on
    # 8 Oct; twenty minutes before it, the resolve clock is breaching soon.
    "national day, before the cut-off": (
        "zj", "critical", "2026-09-30T17:00+08:00", "2026-09-30T17:10+08:00", None,
        "2026-10-08T08:40+08:00",
        clock("2026-09-30T17:15:00+08:00", "met", remaining=5 * 60),
        clock("2026-10-08T09:00:00+08:00", "breaching soon", remaining=20 * 60),
        clock("2026-09-30T19:00:00+08:00", "not recorded"),
    ),
    # Friday 9 Oct 18:30 → Saturday 10 Oct, a make-up working day (调休), 08:00. The 24h run
    # 12h on Saturday, none on Sunday, 12h on Monday: due at Monday's close, 20:00.
    "make-up saturday 10 oct": (
        "zj", "minor", "2026-10-09T18:30+08:00", "2026-10-10T09:00+08:00",
        "2026-10-13T09:00+08:00", "2026-10-13T10:00+08:00",
        clock("2026-10-10T10:00:00+08:00", "met", remaining=3600),
        clock("2026-10-12T20:00:00+08:00", "breached", overdue=3600),
        NO_ONSITE,
    ),
    # Resolved (and so first answered) at 21:00 on Monday: the respond clock is 10h on
    # Saturday plus 12h on Monday late; the resolve clock is late by no business time.
    "resolved after hours on the due day": (
        "zj", "minor", "2026-10-09T18:30+08:00", None, "2026-10-12T21:00+08:00",
        "2026-10-13T10:00+08:00",
        clock("2026-10-10T10:00:00+08:00", "breached", overdue=22 * 3600),
        clock("2026-10-12T20:00:00+08:00", "breached", overdue=0),
        NO_ONSITE,
    ),
    # 春节 2026: 15-23 Feb off; Saturday 14 Feb is a make-up working day.
    "spring festival, make-up saturday 14 feb": (
        "zj", "major", "2026-02-13T18:05+08:00", None, None, "2026-02-14T08:10+08:00",
        clock("2026-02-14T08:30:00+08:00", "breaching soon", remaining=20 * 60),
        clock("2026-02-14T16:00:00+08:00", "running", remaining=7 * 3600 + 50 * 60),
        NO_ONSITE,
    ),
    # After the cut-off on 14 Feb the next workday is Tuesday 24 Feb: mid-holiday, only the
    # 30 minutes of that morning are left.
    "spring festival holiday": (
        "zj", "major", "2026-02-14T19:00+08:00", None, None, "2026-02-20T12:00+08:00",
        clock("2026-02-24T08:30:00+08:00", "breaching soon", remaining=30 * 60),
        clock("2026-02-24T16:00:00+08:00", "running", remaining=8 * 3600),
        NO_ONSITE,
    ),
    # Saturday 28 Feb is the other make-up working day; resolving answers the incident too.
    "spring festival, make-up saturday 28 feb": (
        "zj", "major", "2026-02-27T19:30+08:00", None, "2026-02-28T15:00+08:00",
        "2026-03-02T09:00+08:00",
        clock("2026-02-28T08:30:00+08:00", "breached", overdue=6 * 3600 + 30 * 60),
        clock("2026-02-28T16:00:00+08:00", "met", remaining=3600),
        NO_ONSITE,
    ),
    # An ordinary Saturday counts nothing: Monday 9 Mar from 08:00.
    "weekend": (
        "zj", "major", "2026-03-07T10:00+08:00", None, None, "2026-03-09T08:45+08:00",
        clock("2026-03-09T08:30:00+08:00", "breached", overdue=15 * 60),
        clock("2026-03-09T16:00:00+08:00", "running", remaining=7 * 3600 + 15 * 60),
        NO_ONSITE,
    ),
    # Friday 17:50, before the cut-off: 2h10m that evening, the other 1h50m on Monday.
    "friday before the cut-off": (
        "zj", "critical", "2026-03-06T17:50+08:00", "2026-03-06T18:00+08:00", None,
        "2026-03-09T09:30+08:00",
        clock("2026-03-06T18:05:00+08:00", "met", remaining=5 * 60),
        clock("2026-03-09T09:50:00+08:00", "breaching soon", remaining=20 * 60),
        clock("2026-03-06T19:50:00+08:00", "not recorded"),
    ),
    # 24x7: National Day counts like any day; due times in the site's time (UTC+6).
    "24x7 in urumqi time": (
        "xj", "critical", "2026-10-01T10:00+08:00", "2026-10-01T10:20+08:00", None,
        "2026-10-01T11:00+08:00",
        clock("2026-10-01T08:15:00+06:00", "breached", overdue=5 * 60),
        clock("2026-10-01T12:00:00+06:00", "running", remaining=3 * 3600),
        NO_ONSITE,
    ),
    "24x7 overnight": (
        "xj", "major", "2026-10-03T22:00+06:00", None, None, "2026-10-04T07:00+06:00",
        clock("2026-10-03T22:30:00+06:00", "breached", overdue=8 * 3600 + 30 * 60),
        clock("2026-10-04T06:00:00+06:00", "breached", overdue=3600),
        NO_ONSITE,
    ),
    # After the cut-off on New Year's Eve the clock waits for a 2027 workday, a year the
    # holiday calendar does not know.
    "holiday calendar ends": (
        "zj", "major", "2026-12-31T19:00+08:00", None, None, "2026-12-31T20:00+08:00",
        clock(None, "unknown", reason="holiday calendar has no data for 2027"),
        clock(None, "unknown", reason="holiday calendar has no data for 2027"),
        NO_ONSITE,
    ),
    "judged before it was opened": (
        "zj", "major", "2026-03-09T10:00+08:00", None, None, "2026-03-09T09:00+08:00",
        clock("2026-03-09T10:30:00+08:00", "not opened yet"),
        clock("2026-03-09T18:00:00+08:00", "not opened yet"),
        NO_ONSITE,
    ),
    # Judged at 10:20, an answer recorded at 10:40 had not come yet.
    "a step recorded later is not done yet": (
        "zj", "major", "2026-03-09T10:00+08:00", "2026-03-09T10:40+08:00", None,
        "2026-03-09T10:20+08:00",
        clock("2026-03-09T10:30:00+08:00", "breaching soon", remaining=10 * 60),
        clock("2026-03-09T18:00:00+08:00", "running", remaining=7 * 3600 + 40 * 60),
        NO_ONSITE,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("site", "severity", "opened", "acked", "resolved", "now", "respond", "fix", "onsite"),
    list(SLA_CASES.values()),
    ids=list(SLA_CASES),
)
def test_show_judges_the_sla_clocks(
    store_url: str,
    inventory: Path,
    site: str,
    severity: str,
    opened: str,
    acked: str | None,
    resolved: str | None,
    now: str,
    respond: dict[str, Any],
    fix: dict[str, Any],
    onsite: dict[str, Any] | None,
) -> None:
    number = add(store_url, site, severity, opened, acked, resolved)
    shown = invoke(store_url, "show", str(number), "-i", str(inventory), "--now", now, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["sla"] == {"respond": respond, "resolve": fix, "onsite": onsite}
    listed = invoke(store_url, "list", "-i", str(inventory), "--now", now, "--json")
    assert [i["sla"] for i in json.loads(listed.stdout)] == [json.loads(shown.stdout)["sla"]]


def test_show_says_each_clock_in_words(store_url: str, inventory: Path) -> None:
    late = add(store_url, "zj", "minor", "2026-10-09T18:30+08:00", None, "2026-10-12T21:00+08:00")
    open_one = add(store_url, "zj", "critical", "2026-09-30T17:00+08:00", "2026-09-30T17:10+08:00")
    past_the_data = add(store_url, "zj", "major", "2026-12-31T19:00+08:00")
    far = add(store_url, "xj", "critical", "2026-10-01T10:00+08:00")
    at = "2026-10-08T08:40+08:00"

    def sla_lines(number: int, now: str = at) -> list[str]:
        shown = invoke(store_url, "show", str(number), "-i", str(inventory), "--now", now)
        assert shown.exit_code == 0, shown.output
        lines = shown.stdout.splitlines()
        start = next(n for n, line in enumerate(lines) if line.startswith("  SLA"))
        return [line for line in lines[start:] if line.startswith(("  SLA", "    "))]

    assert sla_lines(open_one) == [
        "  SLA at 2026-10-08 08:40:00:",
        "    respond  due 2026-09-30 17:15  met",
        "    resolve  due 2026-10-08 09:00  breaching soon, 20m left",
        "    onsite   due 2026-09-30 19:00  on-site arrival is not recorded",
    ]
    assert sla_lines(late, "2026-10-13T10:00+08:00") == [
        "  SLA at 2026-10-13 10:00:00:",
        "    respond  due 2026-10-10 10:00  breached by 22h",
        "    resolve  due 2026-10-12 20:00  breached",
    ]
    assert sla_lines(past_the_data, "2026-12-31T20:00+08:00") == [
        "  SLA at 2026-12-31 20:00:00:",
        "    respond  due unknown  unknown: holiday calendar has no data for 2027",
        "    resolve  due unknown  unknown: holiday calendar has no data for 2027",
    ]
    # In the site's time: 10:00 in Shanghai is 08:00 in Urumqi.
    assert sla_lines(far, "2026-10-01T11:00+08:00") == [
        "  SLA at 2026-10-01 09:00:00:",
        "    respond  due 2026-10-01 08:15  breached by 45m",
        "    resolve  due 2026-10-01 12:00  running, 3h left",
    ]


def test_list_shows_the_clocks_in_columns(store_url: str, inventory: Path) -> None:
    add(store_url, "zj", "major", "2026-09-30T19:00+08:00", title="挂号系统无法出号")
    add(store_url, "zj", "critical", "2026-09-30T17:00+08:00", "2026-09-30T17:10+08:00",
        title="影像调阅慢")  # fmt: skip
    add(store_url, "sh", "major", "2026-10-08T08:00+08:00", title="检验报告打印失败")
    listed = invoke(store_url, "list", "-i", str(inventory), "--now", "2026-10-08T08:40+08:00")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert cells(header) == [
        "ID", "SEVERITY", "SITE", "SYSTEM", "OPENED", "ACKNOWLEDGED", "RESOLVED", "RESPOND",
        "RESOLVE", "ONSITE DUE", "TITLE",
    ]  # fmt: skip
    assert [cells(row)[7:] for row in rows] == [
        ["no SLA", "no SLA", "no SLA", "检验报告打印失败"],
        [
            "breached by 10m (due 2026-10-08 08:30)",
            "running, 7h 20m left (due 2026-10-08 16:00)",
            "no target",
            "挂号系统无法出号",
        ],
        [
            "met (due 2026-09-30 17:15)",
            "breaching soon, 20m left (due 2026-10-08 09:00)",
            "2026-09-30 19:00",
            "影像调阅慢",
        ],
    ]
    # Without the inventory nothing is known of any SLA.
    bare = invoke(store_url, "list", "--now", "2026-10-08T08:40+08:00")
    assert [cells(row)[7:9] for row in bare.stdout.splitlines()[1:]] == [["no SLA", "no SLA"]] * 3
    assert "ONSITE DUE" not in bare.stdout


def test_show_lists_the_linked_alerts(store_url: str, inventory: Path) -> None:
    t0 = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    number = add(store_url, "zj", "critical", "2026-10-08T09:05+08:00")
    with Store.open(store_url) as store:
        record(store, "zj/his-db/tcp", State.CRITICAL, t0)
        record(store, "zj/his-app/http", State.WARNING, t0)
        evaluate(store, {}, t0, lambda notice: None)
        found = {row.check_id: row.id for row in alerts(store)}
        link_incident(store, found["zj/his-db/tcp"], number)
        link_incident(store, found["zj/his-app/http"], number)
        record(store, "zj/his-app/http", State.OK, t0.replace(hour=2))
        evaluate(store, {}, t0.replace(hour=2), lambda notice: None)
    now = "2026-10-08T10:30+08:00"
    shown = invoke(store_url, "show", str(number), "-i", str(inventory), "--now", now)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    start = lines.index("  alerts:")
    # Listed by alert id.
    expected = {
        found["zj/his-db/tcp"]: f"    alert {found['zj/his-db/tcp']} zj/his-db/tcp CRITICAL "
        "since 2026-10-08 09:00:00: CRITICAL at 01:00",
        found["zj/his-app/http"]: f"    alert {found['zj/his-app/http']} zj/his-app/http WARNING "
        "since 2026-10-08 09:00:00, cleared 2026-10-08 10:00:00: WARNING at 01:00",
    }
    assert lines[start + 1 :] == [expected[key] for key in sorted(expected)]
    as_json = json.loads(
        invoke(store_url, "show", str(number), "-i", str(inventory), "--now", now, "--json").stdout
    )
    assert sorted(
        (a["id"], a["check_id"], a["state"], a["cleared"]) for a in as_json["alerts"]
    ) == sorted(
        [
            (found["zj/his-db/tcp"], "zj/his-db/tcp", "CRITICAL", None),
            (found["zj/his-app/http"], "zj/his-app/http", "WARNING", "2026-10-08T02:00:00+00:00"),
        ]
    )
    assert [a["id"] for a in as_json["alerts"]] == sorted(expected)
    alone = add(store_url, "zj", "minor", "2026-10-08T09:10+08:00")
    assert "alerts" not in invoke(store_url, "show", str(alone)).stdout


# --------------------------------------------------------------------------- --breaching


@pytest.fixture
def watched(store_url: str) -> dict[str, int]:
    """Five incidents around Saturday 10 Oct 2026, a make-up working day, by name."""
    return {
        # Clocks start Saturday 08:00: respond 08:30, resolve 16:00; answered late, 09:30.
        "A": add(store_url, "zj", "major", "2026-10-09T18:30+08:00", "2026-10-10T09:30+08:00"),
        # Respond 09:15, resolve 13:00 (onsite 11:00, never watched).
        "B": add(store_url, "zj", "critical", "2026-10-10T09:00+08:00", "2026-10-10T09:05+08:00"),
        # 24x7: respond 10:15, resolve 14:00; resolved at 11:00.
        "C": add(
            store_url,
            "xj",
            "critical",
            "2026-10-10T10:00+08:00",
            "2026-10-10T10:10+08:00",
            "2026-10-10T11:00+08:00",
        ),  # fmt: skip
        # No SLA: never breaching.
        "D": add(store_url, "sh", "critical", "2026-10-10T08:00+08:00"),
        # Respond 14:00; resolve 8h on Saturday, 12h on Monday, the last 4h on Tuesday 12:00.
        "E": add(store_url, "zj", "minor", "2026-10-10T12:00+08:00"),
    }


BREACHING = {
    "A's respond clock 10m from its end": ("2026-10-10T08:20+08:00", "30m", ["A"], 1),
    "more than --within left": ("2026-10-10T08:20+08:00", "5m", [], 0),
    "A's respond clock run out": ("2026-10-10T09:10+08:00", "30m", ["A"], 2),
    # A was answered at 09:30, so only its resolve clock (16:00) is watched from then on.
    "B's resolve clock 20m from its end": ("2026-10-10T12:40+08:00", "30m", ["B"], 1),
    "E soon, B run out": ("2026-10-10T13:50+08:00", "30m", ["E", "B"], 2),
    # C was not resolved yet at 10:30: its 24x7 resolve clock had 3h30m left.
    "a wide margin": ("2026-10-10T10:30+08:00", "4h", ["C", "B"], 1),
}


@pytest.mark.parametrize(
    ("now", "within", "expected", "code"), list(BREACHING.values()), ids=list(BREACHING)
)
def test_breaching_lists_open_incidents_near_or_past_their_clocks(
    store_url: str,
    inventory: Path,
    watched: dict[str, int],
    now: str,
    within: str,
    expected: list[str],
    code: int,
) -> None:
    names = {number: name for name, number in watched.items()}
    args = ("list", "--breaching", "--within", within, "--now", now, "-i", str(inventory))
    as_json = invoke(store_url, *args, "--json")
    assert as_json.exit_code == code, as_json.output
    assert [names[i["id"]] for i in json.loads(as_json.stdout)] == expected
    table = invoke(store_url, *args)
    assert table.exit_code == code
    if expected:
        assert [names[int(cells(row)[0])] for row in table.stdout.splitlines()[1:]] == expected
    else:
        assert table.stdout == "no incident is breaching its SLA\n"


def test_breaching_past_the_holiday_calendar_is_unknown(store_url: str, inventory: Path) -> None:
    add(store_url, "zj", "major", "2026-12-31T19:00+08:00")
    result = invoke(
        store_url, "list", "--breaching", "--now", "2026-12-31T20:00+08:00", "-i", str(inventory)
    )
    assert result.exit_code == 3, result.output
    (row,) = result.stdout.splitlines()[1:]
    assert cells(row)[7:9] == ["unknown: holiday calendar has no data for 2027"] * 2
    # A breach elsewhere outweighs it.
    add(store_url, "xj", "major", "2026-12-31T10:00+08:00")
    result = invoke(
        store_url, "list", "--breaching", "--now", "2026-12-31T20:00+08:00", "-i", str(inventory)
    )
    assert result.exit_code == 2, result.output
    assert len(result.stdout.splitlines()) == 3


def test_breaching_is_documented_in_the_help() -> None:
    result = runner.invoke(app, ["incident", "list", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "2 if an SLA clock is already breached" in text
    assert "1 if one is breaching soon, else 0" in text
