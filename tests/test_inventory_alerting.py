"""The inventory's alerting sections: notification channels, each site's alert policy, duty
roster and SLA — every error with its file, line and path, and the rosters and policies
that load."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opsctl.inventory import InventoryInvalid, load
from opsctl.sla import due

KEY = "OPSCTL_TEST_ALERTING_KEY"
UNSET = "OPSCTL_TEST_ALERTING_UNSET"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY, "0123456789abcdef")
    monkeypatch.delenv(UNSET, raising=False)


def errors_of(path: Path) -> list[str]:
    with pytest.raises(InventoryInvalid) as caught:
        load(path)
    return [str(error) for error in caught.value.errors]


# Each inventory and the errors it gives, ``{path}`` standing for its file.
INVALID = {
    "unknown channel type": (
        """channels:
  - name: pager
    type: pager
    url: https://pager.example.cn
""",
        [
            "{path}:3 channels[0].type: unknown type 'pager'; expected wecom, dingtalk, feishu, "
            "email or webhook"
        ],
    ),
    "channel without a type": (
        """channels:
  - name: pager
    url: https://pager.example.cn
""",
        ["{path}:2 channels[0].type: required: type (wecom, dingtalk, feishu, email or webhook)"],
    ),
    "unknown channel key": (
        f"""channels:
  - name: ops-wecom
    type: wecom
    key: env:{KEY}
    mentions: [张工]
""",
        [
            "{path}:5 channels[0].mentions: unknown key 'mentions'; expected one of: name, lang, "
            "timeout, per_minute, ca_file, type, key, url, base_url, msgtype"
        ],
    ),
    "unknown e-mail channel key": (
        """channels:
  - name: ops-mail
    type: email
    host: smtp.example.cn
    from: ops@example.cn
    to: [it@example.cn]
    cc: [director@example.cn]
""",
        [
            "{path}:7 channels[0].cc: unknown key 'cc'; expected one of: name, lang, timeout, "
            "per_minute, type, host, port, starttls, ca_file, user, password, from, to"
        ],
    ),
    "duplicate channel name": (
        f"""channels:
  - {{name: ops, type: wecom, key: "env:{KEY}"}}
  - {{name: ops, type: email, host: smtp.example.cn, from: ops@example.cn, to: [it@example.cn]}}
""",
        ["{path}:3 channels[1].name: duplicate channel name 'ops' (also channels[0])"],
    ),
    "channel secret not set": (
        f"""channels:
  - name: ops-dingtalk
    type: dingtalk
    access_token: env:{KEY}
    secret: env:{UNSET}
""",
        [
            f"{{path}}:5 channels[0].secret: secret env:{UNSET}: environment variable {UNSET} "
            "is not set"
        ],
    ),
    "alerts naming a missing channel and contact": (
        f"""channels:
  - {{name: ops-wecom, type: wecom, key: "env:{KEY}"}}
sites:
  - name: zj
    contacts:
      - {{name: 张工, phone: "13800000001"}}
      - {{name: 李主任, phone: "13800000009"}}
    alerts:
      channels: [ops-wecom, ops-dingtalk]
      escalate_to:
        - 李主任
        - 王院长
""",
        [
            "{path}:9 sites[0].alerts.channels[1]: no channel named 'ops-dingtalk' "
            "(channels: ops-wecom)",
            "{path}:12 sites[0].alerts.escalate_to[1]: no contact named '王院长' in site 'zj' "
            "(contacts: 张工, 李主任)",
        ],
    ),
    "alerts with no channels defined": (
        """sites:
  - name: zj
    alerts: {channels: [ops-wecom], escalate_to: [李主任]}
""",
        [
            "{path}:3 sites[0].alerts.channels[0]: no channel named 'ops-wecom' "
            "(channels: none; add them under channels:)",
            "{path}:3 sites[0].alerts.escalate_to[0]: no contact named '李主任' in site 'zj' "
            "(contacts: none)",
        ],
    ),
    "roster with a missing weekday and the same person twice": (
        """sites:
  - name: zj
    duty:
      people: {张工: "13800000001", 李工: "13800000002"}
      weekly:
        mon: {A: 张工, B: 李工}
        tue: {A: 李工, B: 张工}
        wed: {A: 张工, B: 张工}
        thu: {A: 李工, B: 张工}
        fri: {A: 张工, B: 李工}
      holidays:
        - {A: 张工, B: 李工}
        - {A: 李工, B: 李工}
""",
        [
            "{path}:5 sites[0].duty.weekly: no duty on sat, sun: every weekday needs an entry "
            "(or give no weekly pattern and list every day under dates)",
            "{path}:8 sites[0].duty.weekly.wed: 张工 is both A and B",
            "{path}:13 sites[0].duty.holidays[1]: 李工 is both A and B",
        ],
    ),
    "dated roster with a gap": (
        """sites:
  - name: zj
    duty:
      people: {张工: "13800000001", 李工: "13800000002"}
      dates:
        2026-10-01: {A: 张工, B: 李工}
        2026-10-02: {A: 李工, B: 张工}
        2026-10-05: {A: 张工, B: 王工}
""",
        [
            "{path}:3 sites[0].duty: no duty on 2026-10-03..2026-10-04: a dated roster needs "
            "every day",
            "{path}:8 sites[0].duty.dates.2026-10-05: 王工 has no phone (add them to people)",
        ],
    ),
    "old-style sla": (
        """sites:
  - name: zj
    sla:
      respond_within: 30m
""",
        [
            "{path}:3 sites[0].sla.severities: required, but missing",
            "{path}:4 sites[0].sla.respond_within: unknown key 'respond_within'; expected one "
            "of: severities, calendar, business_hours, cutoff, next_day_start, timezone",
        ],
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(INVALID.values()), ids=list(INVALID))
def test_alerting_errors_carry_file_line_and_path(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    assert errors_of(path) == [line.format(path=path) for line in expected]


# --------------------------------------------------------------------------- roster files

WEEKLY_CSV = """weekday,A,B,备注
mon,张工,李工,
tue,李工,王工,
wed,王工,张工,
thu,张工,李工,
fri,李工,王工,
sat,王工,张工,周末
sun,张工,李工,周末
"""

DATED_CSV = """日期,A岗,B岗,A电话,B电话
2026-10-01,王工,张工,13800000003,13800000001
2026-10-02,李工,王工,13800000002,13800000003
2026-10-03,张工,李工,13800000001,13800000002
"""


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_duty_csv_files_are_read_relative_to_the_file_that_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    conf = tmp_path / "conf"
    (conf / "duty").mkdir(parents=True)
    (conf / "sites").mkdir()
    (conf / "duty" / "october.csv").write_text(DATED_CSV, encoding=encoding)
    (conf / "sites" / "weekly.csv").write_text(WEEKLY_CSV, encoding=encoding)
    (conf / "inventory.yaml").write_text(
        "include: [sites/*.yaml]\nsites:\n  - name: zj\n    duty: {file: duty/october.csv}\n",
        encoding="utf-8",
    )
    (conf / "sites" / "sh.yaml").write_text(
        "sites:\n"
        "  - name: sh\n"
        "    duty:\n"
        "      file: weekly.csv\n"
        '      people: {张工: "13800000001", 李工: "13800000002", 王工: "13800000003"}\n'
        '      shift_start: "09:00"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    loaded = load(conf / "inventory.yaml")

    dated = loaded.rosters["zj"].duty(date(2026, 10, 2))
    assert (dated.a.name, dated.a.phone, dated.b.name, dated.b.phone, dated.basis) == (
        "李工", "13800000002", "王工", "13800000003", "dates",
    )  # fmt: skip
    weekly = loaded.rosters["sh"]
    # Friday 2 Oct 2026, 08:30: still Thursday's duty until the 09:00 shift change.
    duty = weekly.on_duty(datetime(2026, 10, 2, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai")))
    assert (duty.day, duty.a.name, duty.b.name, duty.basis) == (
        date(2026, 10, 1), "张工", "李工", "weekly.thu",
    )  # fmt: skip
    assert duty.start == datetime(2026, 10, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_a_missing_or_broken_duty_csv_is_an_inventory_error(tmp_path: Path) -> None:
    (tmp_path / "duty").mkdir()
    (tmp_path / "duty" / "twice.csv").write_text(
        "date,A,B\n2026-10-01,张工,张工\n", encoding="utf-8"
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n"
        "  - name: zj\n"
        "    duty: {file: duty/missing.csv}\n"
        "  - name: sh\n"
        "    duty:\n"
        "      file: duty/twice.csv\n"
        '      people: {张工: "13800000001"}\n',
        encoding="utf-8",
    )
    assert errors_of(path) == [
        f"{path}:3 sites[0].duty: {tmp_path / 'duty' / 'missing.csv'}: cannot read: "
        "No such file or directory",
        f"{path}:5 sites[1].duty: {tmp_path / 'duty' / 'twice.csv'}:2: 张工 is both A and B",
    ]


# --------------------------------------------------------------------------- SLA time zone


def test_the_sla_is_counted_in_the_site_s_time_zone_unless_it_names_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n"
        "  - name: xj\n"
        "    timezone: Asia/Urumqi\n"
        "    sla: {severities: {critical: {respond: 15m}}}\n"
        "  - name: kashgar\n"
        "    timezone: Asia/Urumqi\n"
        "    sla: {timezone: Asia/Shanghai, severities: {critical: {respond: 15m}}}\n"
        "  - name: zj\n"
        "    sla: {severities: {critical: {respond: 15m}}}\n",
        encoding="utf-8",
    )
    loaded = load(path)
    zones = {site.name: site.sla.timezone for site in loaded.inventory.sites if site.sla}
    assert zones == {"xj": "Asia/Urumqi", "kashgar": "Asia/Shanghai", "zj": "Asia/Shanghai"}
    xj = loaded.site("xj")
    assert xj is not None and xj.sla is not None
    deadline = due(xj.sla, "critical", "respond", datetime.fromisoformat("2026-10-01T10:00+08:00"))
    assert deadline is not None
    assert (deadline.isoformat(), deadline.utcoffset()) == (
        "2026-10-01T08:15:00+06:00",
        timedelta(hours=6),
    )
