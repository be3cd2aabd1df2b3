"""The duty roster: weekly patterns, date overrides, holiday rotation, make-up working days,
the 08:30 shift boundary, CSV in UTF-8 and GBK, and every load error with its source."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from opsctl.calendar import UnknownYear
from opsctl.roster import Duty, Person, Roster, RosterError

FIXTURES = Path(__file__).parent / "fixtures" / "roster"
CST = ZoneInfo("Asia/Shanghai")

PHONES = {
    "张工": "13800000001",
    "李工": "13800000002",
    "王工": "13800000003",
    "赵工": "0571-87000004",
}


def load(name: str) -> Roster:
    path = FIXTURES / name
    if path.suffix == ".csv":
        return Roster.from_csv(path)
    return Roster.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def names(duty: Duty) -> tuple[date, str, str, str]:
    return duty.day, duty.a.name, duty.b.name, duty.basis


# 2026-09-28 to 2026-10-11 around the National Day block (1-7 Oct): the 1st by date, the
# block's other days by the three-pair rotation (day n of the block has pair n mod 3), the
# make-up Saturday 10 Oct by the workday entry.
NATIONAL_DAY = [
    (date(2026, 9, 28), "张工", "李工", "weekly.mon"),
    (date(2026, 9, 29), "李工", "王工", "weekly.tue"),
    (date(2026, 9, 30), "王工", "赵工", "weekly.wed"),
    (date(2026, 10, 1), "张工", "李工", "dates"),
    (date(2026, 10, 2), "李工", "赵工", "holidays"),
    (date(2026, 10, 3), "赵工", "王工", "holidays"),
    (date(2026, 10, 4), "王工", "张工", "holidays"),
    (date(2026, 10, 5), "李工", "赵工", "holidays"),
    (date(2026, 10, 6), "赵工", "王工", "holidays"),
    (date(2026, 10, 7), "王工", "张工", "holidays"),
    (date(2026, 10, 8), "赵工", "张工", "weekly.thu"),
    (date(2026, 10, 9), "张工", "王工", "weekly.fri"),
    (date(2026, 10, 10), "赵工", "李工", "workday"),
    (date(2026, 10, 11), "王工", "李工", "weekly.sun"),
]


def test_days_across_the_2026_national_day_block() -> None:
    roster = load("weekly.yaml")
    assert [names(duty) for duty in roster.days(date(2026, 9, 28), date(2026, 10, 11))] == (
        NATIONAL_DAY
    )


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 2, 13), ("张工", "王工", "weekly.fri")),
        (date(2026, 2, 14), ("赵工", "李工", "workday")),  # make-up Saturday
        (date(2026, 2, 15), ("张工", "赵工", "festivals.春节")),  # Sunday inside the block
        (date(2026, 2, 16), ("张工", "赵工", "festivals.春节")),  # Monday holiday
        (date(2026, 2, 24), ("李工", "王工", "weekly.tue")),
        (date(2026, 2, 28), ("赵工", "李工", "workday")),  # make-up Saturday
        (date(2026, 3, 7), ("李工", "赵工", "weekly.sat")),  # an ordinary Saturday
        (date(2026, 9, 20), ("赵工", "李工", "workday")),  # make-up Sunday
        (date(2026, 4, 6), ("赵工", "王工", "holidays")),  # 清明节 Monday, day 3 of its block
        (date(2026, 1, 1), ("王工", "张工", "holidays")),  # 元旦, day 1 of its block
    ],
)
def test_which_entry_decides(day: date, expected: tuple[str, str, str]) -> None:
    assert names(load("weekly.yaml").duty(day)) == (day, *expected)


def test_a_duty_carries_people_with_phones_and_its_shift() -> None:
    duty = load("weekly.yaml").duty(date(2026, 10, 8))
    assert duty == Duty(
        day=date(2026, 10, 8),
        a=Person("赵工", "0571-87000004"),
        b=Person("张工", "13800000001"),
        basis="weekly.thu",
        start=datetime(2026, 10, 8, 8, 30, tzinfo=CST),
        end=datetime(2026, 10, 9, 8, 30, tzinfo=CST),
    )


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (datetime(2026, 10, 2, 2, 0, tzinfo=CST), date(2026, 10, 1)),
        (datetime(2026, 10, 2, 8, 29, 59, tzinfo=CST), date(2026, 10, 1)),
        (datetime(2026, 10, 2, 8, 30, tzinfo=CST), date(2026, 10, 2)),
        (datetime(2026, 10, 2, 23, 59, tzinfo=CST), date(2026, 10, 2)),
        (datetime(2026, 10, 2, 0, 30, tzinfo=UTC), date(2026, 10, 2)),  # 08:30 in Shanghai
        (datetime(2026, 10, 2, 0, 29, tzinfo=UTC), date(2026, 10, 1)),
    ],
)
def test_on_duty_follows_the_shift_boundary(at: datetime, day: date) -> None:
    assert load("weekly.yaml").on_duty(at).day == day


def test_shift_start_of_its_own() -> None:
    data = yaml.safe_load((FIXTURES / "weekly.yaml").read_text(encoding="utf-8"))
    data["shift_start"] = 480  # YAML 1.1 reads an unquoted 8:00 as 480
    roster = Roster.from_mapping(data, "early")
    assert roster.shift_start == time(8, 0)
    assert roster.on_duty(datetime(2026, 10, 9, 8, 15, tzinfo=CST)).day == date(2026, 10, 9)


def test_the_gbk_fixture_is_not_utf8() -> None:
    raw = (FIXTURES / "october-gbk.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gbk").startswith("日期,A岗,B岗")


@pytest.mark.parametrize("name", ["october-utf8.csv", "october-gbk.csv"])
def test_dated_csv_in_utf8_and_gbk(name: str) -> None:
    roster = load(name)
    days = roster.days(date(2026, 9, 28), date(2026, 10, 11))
    assert [(d.day, d.a.name, d.b.name, d.basis) for d in days] == [
        (day, a, b, "dates") for day, a, b, _ in NATIONAL_DAY
    ]
    assert {person.name: person.phone for person in roster.people.values()} == PHONES


def test_a_dated_roster_refuses_days_it_does_not_cover() -> None:
    roster = load("october-utf8.csv")
    with pytest.raises(RosterError) as caught:
        roster.on_duty(datetime(2026, 10, 12, 9, 0, tzinfo=CST))
    assert caught.value.problems == [
        f"{FIXTURES / 'october-utf8.csv'}: no duty on 2026-10-12: "
        "the roster covers 2026-09-28 to 2026-10-11"
    ]


def test_weekly_csv_with_phones_given_apart() -> None:
    roster = Roster.from_csv(FIXTURES / "weekly.csv", people=PHONES)
    assert [names(duty) for duty in roster.days(date(2026, 10, 1), date(2026, 10, 3))] == [
        (date(2026, 10, 1), "赵工", "张工", "weekly.thu"),  # no holiday entries: weekly only
        (date(2026, 10, 2), "张工", "王工", "weekly.fri"),
        (date(2026, 10, 3), "李工", "赵工", "weekly.sat"),
    ]


def test_only_a_roster_with_holiday_entries_needs_the_calendar() -> None:
    plain = Roster.from_csv(FIXTURES / "weekly.csv", people=PHONES)
    assert names(plain.on_duty(datetime(2031, 5, 6, 9, 0, tzinfo=CST))) == (
        date(2031, 5, 6),
        "李工",
        "王工",
        "weekly.tue",
    )
    with pytest.raises(UnknownYear) as caught:
        load("weekly.yaml").on_duty(datetime(2031, 5, 6, 9, 0, tzinfo=CST))
    assert caught.value.year == 2031


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda roster: roster.on_duty(datetime(2026, 10, 2, 9, 0)),  # noqa: DTZ001
            "on_duty needs a timezone-aware time, got 2026-10-02T09:00:00",
        ),
        (
            lambda roster: roster.days(date(2026, 10, 2), date(2026, 10, 1)),
            "days: last 2026-10-01 is before first 2026-10-02",
        ),
    ],
)
def test_questions_refused(call: Any, message: str) -> None:
    with pytest.raises(RosterError) as caught:
        call(load("weekly.yaml"))
    assert str(caught.value) == message


def test_broken_yaml_reports_every_problem() -> None:
    source = str(FIXTURES / "broken.yaml")
    with pytest.raises(RosterError) as caught:
        load("broken.yaml")
    assert caught.value.problems == [
        f"{source}: unknown key 'shift'; expected one of: people, weekly, dates, holidays, "
        "festivals, workday, shift_start, timezone",
        f"{source} people.李工: 李工 has no phone",
        f"{source} people.王工: expected a phone number, got 'call me'",
        f"{source} weekly.thurs: unknown weekday 'thurs' (expected mon, tue, wed, thu, fri, "
        "sat, sun or 周一…周日)",
        f"{source} weekly.fri: expected exactly the keys A and B, got ['A']",
        f"{source} dates.2026-10-32: expected a date like 2026-10-01, got '2026-10-32'",
        f"{source} festivals.圣诞节: unknown festival '圣诞节' (expected 元旦, 春节, 清明节, "
        "劳动节, 端午节, 中秋节, 国庆节, 中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日)",
        f"{source} weekly.mon: 张工 is both A and B",
        f"{source} weekly.wed: 孙工 has no phone (add them to people)",
        f"{source} weekly: no duty on thu, fri, sat, sun: every weekday needs an entry (or "
        "give no weekly pattern and list every day under dates)",
    ]


WEEK = {
    day: {"A": "张工", "B": "李工"} for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
PEOPLE = {"张工": "13800000001", "李工": "13800000002"}


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ("weekly: mon", ["src: expected a mapping with keys such as people, weekly"]),
        ({"people": PEOPLE}, ["src: no duty at all: give weekly (every weekday) or dates"]),
        (
            {"people": PEOPLE, "weekly": {**WEEK, "monday": {"A": "李工", "B": "张工"}}},
            ["src weekly.monday: mon is given twice"],
        ),
        (
            {
                "people": PEOPLE,
                "dates": {date(2026, 10, 1): WEEK["mon"], "2026-10-01": WEEK["mon"]},
            },
            ["src dates.2026-10-01: 2026-10-01 is given twice"],
        ),
        (
            {
                "people": PEOPLE,
                "dates": {
                    "2026-10-01": WEEK["mon"],
                    "2026-10-04": WEEK["mon"],
                    "2026-10-06": WEEK["mon"],
                },
            },
            ["src: no duty on 2026-10-02..2026-10-03, 2026-10-05: a dated roster needs every day"],
        ),
        (
            {"people": PEOPLE, "weekly": WEEK, "holidays": []},
            ["src holidays: expected a pair or a list of pairs, got an empty list"],
        ),
        (
            {"people": PEOPLE, "weekly": WEEK, "holidays": {"A": "张工", "B": ""}},
            ["src holidays.B: expected a name, got ''"],
        ),
        (
            {
                "people": PEOPLE,
                "weekly": WEEK,
                "holidays": [WEEK["mon"], {"A": "李工", "B": "李工"}],
                "festivals": {"春节": {"A": "张工", "B": "钱工"}},
            },
            [
                "src holidays[1]: 李工 is both A and B",
                "src festivals.春节: 钱工 has no phone (add them to people)",
            ],
        ),
        (
            {
                "people": PEOPLE,
                "weekly": WEEK,
                "festivals": {"国庆": WEEK["mon"], "National Day": WEEK["mon"]},
            },
            ["src festivals.National Day: 国庆节 is given twice"],
        ),
        (
            {"people": PEOPLE, "weekly": WEEK, "workday": ["张工", "李工"]},
            ["src workday: expected {A: name, B: name}, got ['张工', '李工']"],
        ),
        (
            {"people": PEOPLE, "weekly": WEEK, "shift_start": "8.30", "timezone": "Beijing"},
            [
                'src shift_start: expected a time of day like "08:30" or "18:00", got \'8.30\'',
                "src timezone: expected an IANA time zone like \"Asia/Shanghai\", got 'Beijing'",
            ],
        ),
        (
            {"people": ["张工"], "weekly": WEEK},
            [
                'src people: expected a mapping of name to phone, like 张工: "138…"',
                *[
                    f"src weekly.{day}: {name} has no phone (add them to people)"
                    for day in WEEK
                    for name in ("张工", "李工")
                ],
            ],
        ),
    ],
)
def test_mapping_refused(data: Any, problems: list[str]) -> None:
    with pytest.raises(RosterError) as caught:
        Roster.from_mapping(data, "src")
    assert caught.value.problems == problems


@pytest.mark.parametrize(
    ("text", "people", "problems"),
    [
        (
            "date,A,B,A_phone,B_phone\n2026-10-01,张工,李工,13800000001,13800000002\n"
            "2026-10-02,李工,张工,13800000002,13800000001\n2026-10-01,李工,张工,,\n",
            None,
            ["{f}:4: 2026-10-01 is already on line 2"],
        ),
        (
            "date,A,B\n2026-10-01,张工,张工\n",
            PEOPLE,
            ["{f}:2: 张工 is both A and B"],
        ),
        (
            "date,A,B\n2026-10-01,张工,孙工\n",
            PEOPLE,
            ["{f}:2: 孙工 has no phone (add an A_phone or B_phone column, or pass people)"],
        ),
        (
            "date,A,B,A_phone\n2026-10-01,张工,李工,13900000000\n",
            PEOPLE,
            ["{f}:2: 张工's phone 13900000000 differs from 13800000001 given in the people given"],
        ),
        (
            "date,A,B\n2026-10-01,张工,李工\n2026-10-02,李工,张工\n2026-10-05,张工,李工\n",
            PEOPLE,
            ["{f}: no duty on 2026-10-03..2026-10-04: a dated roster needs every day"],
        ),
        (
            "weekday,A,B\n周一,张工,李工\n周八,张工,李工\nsun,李工,张工\n",
            PEOPLE,
            [
                "{f}:3: unknown weekday '周八' (expected mon, tue, wed, thu, fri, sat, sun or 周一…周日)",
                "{f}: no duty on tue, wed, thu, fri, sat: every weekday needs an entry (or give "
                "no weekly pattern and list every day under dates)",
            ],
        ),
        (
            "weekday,A,B\n周一,张工,李工\n星期一,李工,张工\n",
            PEOPLE,
            [
                "{f}:3: mon is already on line 2",
                "{f}: no duty on tue, wed, thu, fri, sat, sun: every weekday needs an entry (or "
                "give no weekly pattern and list every day under dates)",
            ],
        ),
        (
            "date,A,B\n2026-13-01,张工,李工\n2026-10-02,,李工\n",
            PEOPLE,
            [
                "{f}:2: expected a date like 2026-10-01, got '2026-13-01'",
                "{f}:3: no name in column A",
                "{f}: no duty at all: give weekly (every weekday) or dates",
            ],
        ),
        (
            "date,A\n2026-10-01,张工\n",
            PEOPLE,
            ["{f}:1: no column B (B岗) in the header ['date', 'A']"],
        ),
        (
            "日期,值班人\n2026-10-01,张工\n",
            PEOPLE,
            ["{f}:1: no column A (A岗), B (B岗) in the header ['日期', '值班人']"],
        ),
        (
            "\n\ndate,A,B\n",
            PEOPLE,
            [
                "{f}: no duty at all: expected a header such as date,A,B and a row for each "
                "day or weekday"
            ],
        ),
        (
            "date,A,B,A_phone,B_phone\n2026-10-01,张工,李工,13800000001,打我电话\n",
            None,
            ["{f}: 李工's phone '打我电话' in line 2 is not a number"],
        ),
    ],
)
def test_csv_refused(
    tmp_path: Path, text: str, people: dict[str, str] | None, problems: list[str]
) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RosterError) as caught:
        Roster.from_csv(path, people=people)
    assert caught.value.problems == [problem.format(f=path) for problem in problems]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"date,A,B\n\xff\xfe\xff\n", "neither UTF-8 nor GBK text (undecodable byte at 9)"),
        (None, "cannot read: No such file or directory"),
    ],
)
def test_csv_unreadable(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "roster.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RosterError) as caught:
        Roster.from_csv(path, people=PEOPLE)
    assert caught.value.problems == [f"{path}: {problem}"]
