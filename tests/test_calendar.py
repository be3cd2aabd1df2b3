"""China's holiday calendar: workdays, make-up working days, holiday blocks, unknown years."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError

from opsctl.calendar import (
    ENGLISH,
    LIBRARY_VERSION,
    HolidayBlock,
    TimeOfDay,
    TimeZoneName,
    UnknownYear,
    block_of,
    blocks,
    holiday_name,
    is_holiday,
    is_workday,
    known_years,
    next_block,
    parse_time_of_day,
)


@pytest.mark.parametrize(
    ("day", "workday", "holiday", "name"),
    [
        (date(2026, 3, 4), True, False, None),  # an ordinary Wednesday
        (date(2026, 3, 7), False, False, None),  # an ordinary Saturday
        (date(2026, 3, 8), False, False, None),  # an ordinary Sunday
        (date(2026, 1, 1), False, True, "元旦"),
        (date(2026, 1, 4), True, False, None),  # Sunday, make-up working day for 元旦
        (date(2026, 2, 14), True, False, None),  # Saturday, make-up working day for 春节
        (date(2026, 2, 15), False, True, "春节"),  # Sunday inside the block
        (date(2026, 2, 16), False, True, "春节"),  # Monday
        (date(2026, 2, 23), False, True, "春节"),  # Monday, the block's last day
        (date(2026, 2, 24), True, False, None),
        (date(2026, 2, 28), True, False, None),  # Saturday, make-up working day for 春节
        (date(2026, 5, 9), True, False, None),  # Saturday, make-up working day for 劳动节
        (date(2026, 9, 20), True, False, None),  # Sunday, make-up working day for 国庆节
        (date(2026, 10, 1), False, True, "国庆节"),
        (date(2026, 10, 7), False, True, "国庆节"),  # Wednesday, the block's last day
        (date(2026, 10, 8), True, False, None),
        (date(2026, 10, 10), True, False, None),  # Saturday, make-up working day
        (date(2024, 6, 8), False, True, "端午节"),  # a weekend joined to Monday's 端午节
        (date(2025, 10, 6), False, True, "国庆节、中秋节"),  # 中秋节 inside 国庆节's block
    ],
)
def test_days(day: date, workday: bool, holiday: bool, name: str | None) -> None:
    assert (is_workday(day), is_holiday(day), holiday_name(day)) == (workday, holiday, name)


@pytest.mark.parametrize(
    ("day", "english"),
    [
        (date(2026, 2, 17), "Spring Festival"),
        (date(2026, 10, 3), "National Day"),
        (date(2023, 9, 29), "Mid-Autumn Festival and National Day"),
        (date(2026, 3, 4), None),
    ],
)
def test_holiday_name_in_english(day: date, english: str | None) -> None:
    assert holiday_name(day, english=True) == english


def test_english_names_of_every_festival() -> None:
    assert ENGLISH == {
        "元旦": "New Year's Day",
        "春节": "Spring Festival",
        "清明节": "Tomb-Sweeping Day",
        "劳动节": "Labour Day",
        "端午节": "Dragon Boat Festival",
        "中秋节": "Mid-Autumn Festival",
        "国庆节": "National Day",
        "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日": (
            "70th Anniversary of the Victory of the Chinese People's War of Resistance"
        ),
    }


def test_blocks_of_2026_as_the_state_council_announced() -> None:
    assert blocks(2026) == [
        HolidayBlock(
            "元旦", "New Year's Day", date(2026, 1, 1), date(2026, 1, 3), (date(2026, 1, 4),)
        ),
        HolidayBlock(
            "春节",
            "Spring Festival",
            date(2026, 2, 15),
            date(2026, 2, 23),
            (date(2026, 2, 14), date(2026, 2, 28)),
        ),
        HolidayBlock("清明节", "Tomb-Sweeping Day", date(2026, 4, 4), date(2026, 4, 6), ()),
        HolidayBlock(
            "劳动节", "Labour Day", date(2026, 5, 1), date(2026, 5, 5), (date(2026, 5, 9),)
        ),
        HolidayBlock("端午节", "Dragon Boat Festival", date(2026, 6, 19), date(2026, 6, 21), ()),
        HolidayBlock("中秋节", "Mid-Autumn Festival", date(2026, 9, 25), date(2026, 9, 27), ()),
        HolidayBlock(
            "国庆节",
            "National Day",
            date(2026, 10, 1),
            date(2026, 10, 7),
            (date(2026, 9, 20), date(2026, 10, 10)),
        ),
    ]


@pytest.mark.parametrize(
    ("year", "index", "expected"),
    [
        # A New Year's block that begins in December belongs to the year it ends in.
        (2023, 0, HolidayBlock("元旦", "New Year's Day", date(2022, 12, 31), date(2023, 1, 2), ())),
        (2024, 0, HolidayBlock("元旦", "New Year's Day", date(2023, 12, 30), date(2024, 1, 1), ())),
        # Two festivals sharing one block, in the order their days come.
        (
            2023,
            5,
            HolidayBlock(
                "中秋节、国庆节",
                "Mid-Autumn Festival and National Day",
                date(2023, 9, 29),
                date(2023, 10, 6),
                (date(2023, 10, 7), date(2023, 10, 8)),
            ),
        ),
        # The weekend before a Monday holiday joins its block.
        (
            2024,
            4,
            HolidayBlock("端午节", "Dragon Boat Festival", date(2024, 6, 8), date(2024, 6, 10), ()),
        ),
    ],
)
def test_blocks_across_years_and_shared_festivals(
    year: int, index: int, expected: HolidayBlock
) -> None:
    assert blocks(year)[index] == expected


def test_a_block_lists_its_days() -> None:
    national_day = blocks(2026)[-1]
    assert len(national_day) == 7
    assert national_day.days() == [date(2026, 10, day) for day in range(1, 8)]
    assert (date(2026, 10, 7) in national_day, date(2026, 10, 8) in national_day) == (True, False)


@pytest.mark.parametrize(
    ("after", "first"),
    [
        (date(2026, 1, 5), date(2026, 2, 15)),
        (date(2026, 2, 15), date(2026, 4, 4)),  # a block under way is not the next one
        (date(2026, 9, 30), date(2026, 10, 1)),
        (date(2025, 12, 31), date(2026, 1, 1)),
    ],
)
def test_next_block(after: date, first: date) -> None:
    found = next_block(after)
    assert found is not None and found.first == first


def test_next_block_is_none_where_the_data_ends() -> None:
    assert next_block(date(2026, 10, 1)) is None


def test_block_of() -> None:
    assert block_of(date(2026, 10, 4)) == blocks(2026)[-1]
    assert block_of(date(2026, 10, 10)) is None


@pytest.mark.parametrize(
    ("call", "year"),
    [
        (lambda: is_workday(date(2031, 5, 6)), 2031),
        (lambda: is_holiday(date(2027, 1, 1)), 2027),
        (lambda: holiday_name(date(2003, 10, 1)), 2003),
        (lambda: blocks(2031), 2031),
        (lambda: next_block(date(2027, 1, 1)), 2027),
    ],
)
def test_a_year_the_library_does_not_know_is_never_guessed(call, year: int) -> None:
    with pytest.raises(UnknownYear) as caught:
        call()
    assert caught.value.year == year


@pytest.mark.parametrize("call", [is_workday, is_holiday, holiday_name, block_of, next_block])
def test_a_datetime_is_refused(call) -> None:
    moment = datetime(2026, 10, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with pytest.raises(TypeError) as caught:
        call(moment)
    assert str(caught.value) == (
        "expected a date, got the datetime 2026-10-01T09:00:00+08:00: take its date in the "
        "site's time zone first"
    )


def test_unknown_year_message() -> None:
    first, last = known_years()
    assert (first, last) == (2004, 2026)
    assert str(UnknownYear(2031)) == (
        "China's holiday arrangement for 2031 is not known to chinesecalendar "
        f"{LIBRARY_VERSION} (it knows 2004-2026): upgrade it"
    )
    assert str(UnknownYear(2003)).endswith("(it knows 2004-2026): it starts in 2004")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("08:30", time(8, 30)),
        ("8:30", time(8, 30)),
        (" 18:00 ", time(18, 0)),
        (510, time(8, 30)),  # YAML 1.1 reads an unquoted 8:30 as 510
        (1080, time(18, 0)),
        (time(7, 15), time(7, 15)),
    ],
)
def test_parse_time_of_day(value: str | int | time, expected: time) -> None:
    assert parse_time_of_day(value) == expected


@pytest.mark.parametrize("value", ["24:00", "8.30", "08:60", "", "eight", 1440, -1, True])
def test_parse_time_of_day_refuses(value: object) -> None:
    with pytest.raises(ValueError, match='expected a time of day like "08:30"'):
        parse_time_of_day(value)  # type: ignore[arg-type]


class _Times(BaseModel):
    at: TimeOfDay
    zone: TimeZoneName = "Asia/Shanghai"


def test_pydantic_types() -> None:
    model = _Times.model_validate({"at": "17:30", "zone": "Asia/Urumqi"})
    assert (model.at, model.zone) == (time(17, 30), "Asia/Urumqi")
    assert model.model_dump() == {"at": "17:30", "zone": "Asia/Urumqi"}
    with pytest.raises(ValidationError) as caught:
        _Times.model_validate({"at": "25:00", "zone": "Asia/Beijing"})
    messages = [error["msg"] for error in caught.value.errors()]
    assert messages == [
        'expected a time of day like "08:30" or "18:00", got \'25:00\'',
        "expected an IANA time zone like \"Asia/Shanghai\", got 'Asia/Beijing'",
    ]
