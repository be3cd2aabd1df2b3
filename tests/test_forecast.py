"""Capacity forecasts: daily maxima in local days, the least-squares line and its cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from opsctl.forecast import daily_maxima, forecast

TODAY = date(2026, 10, 1)


def line(start: float, per_day: float, days: int, today: date = TODAY) -> list[tuple[date, float]]:
    """The points of an exact line: ``days`` days ending with ``today``, ``start`` at today."""
    return [(today - timedelta(days=back), start - per_day * back) for back in range(days)]


def series(values: list[float], today: date = TODAY) -> list[tuple[date, float]]:
    """The values as points on consecutive days, the last one on ``today``."""
    return [
        (today - timedelta(days=len(values) - 1 - index), value)
        for index, value in enumerate(values)
    ]


def test_daily_maxima_by_local_day() -> None:
    samples = [
        (datetime(2026, 10, 2, 3, 0, tzinfo=UTC), 7.0),  # 2 October 11:00 in Shanghai
        (datetime(2026, 10, 1, 16, 30, tzinfo=UTC), 5.0),  # 2 October 00:30 in Shanghai
        (datetime(2026, 10, 1, 15, 59, tzinfo=UTC), 10.0),  # 1 October 23:59 in Shanghai
        (datetime(2026, 10, 1, 8, 0, tzinfo=UTC), 12.0),
        (datetime(2026, 10, 1, 9, 0, tzinfo=UTC), 3.0),
    ]
    assert daily_maxima(samples, "Asia/Shanghai") == [
        (date(2026, 10, 1), 12.0),
        (date(2026, 10, 2), 7.0),
    ]


def test_daily_maxima_across_local_midnight() -> None:
    samples = [
        (datetime(2026, 10, 1, 16, 30, tzinfo=UTC), 9.0),
        (datetime(2026, 10, 1, 15, 30, tzinfo=UTC), 4.0),
    ]
    assert daily_maxima(samples, "Asia/Shanghai") == [
        (date(2026, 10, 1), 4.0),
        (date(2026, 10, 2), 9.0),
    ]
    # In Urumqi (UTC+6) both samples fall on 1 October: 21:30 and 22:30.
    assert daily_maxima(samples, "Asia/Urumqi") == [(date(2026, 10, 1), 9.0)]


def test_daily_maxima_accepts_any_aware_time_and_skips_nan() -> None:
    plus_eight = timezone(timedelta(hours=8))
    samples = [
        (datetime(2026, 10, 2, 0, 30, tzinfo=plus_eight), 5.0),
        (datetime(2026, 10, 2, 9, 0, tzinfo=plus_eight), float("nan")),
    ]
    assert daily_maxima(samples, "Asia/Shanghai") == [(date(2026, 10, 2), 5.0)]
    assert daily_maxima([], "Asia/Shanghai") == []


def test_daily_maxima_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="2026-10-01T16:30:00 has no time zone"):
        daily_maxima([(datetime(2026, 10, 1, 16, 30), 1.0)], "Asia/Shanghai")  # noqa: DTZ001


def test_exact_line() -> None:
    # 50 % today, +0.5 % a day over 30 days: 100 % in (100 - 50) / 0.5 = 100 days.
    result = forecast(line(50.0, 0.5, 30), 100.0, today=TODAY)
    assert result.slope_per_day == pytest.approx(0.5)
    assert result.intercept == pytest.approx(50.0)
    assert result.r2 == pytest.approx(1.0)
    assert result.points == 30
    assert result.current == 50.0
    assert result.days_to_full == pytest.approx(100.0)
    # 1 October + 100 days: 30 to 31 October, 61 to 30 November, 92 to 31 December, then 9.
    assert result.full_on == date(2027, 1, 9)
    assert result.confidence == "high"
    assert result.note_key == "full_on"
    assert result.note() == "按近30天趋势（每天增长0.50%，R²=1.00），预计2027年1月9日用满"
    assert result.note("en") == (
        "at the trend of the last 30 days (+0.50 % a day, R² = 1.00), full on 9 January 2027"
    )


def test_units_are_those_of_the_points() -> None:
    # 400 GiB of 1000 today, +3 GiB a day: 0.30 % of the capacity, full in 200 days.
    result = forecast(line(400.0, 3.0, 20), 1000.0, today=TODAY)
    assert result.days_to_full == pytest.approx(200.0)
    assert result.full_on == TODAY + timedelta(days=200)
    assert "每天增长0.30%" in result.note()


def test_a_fractional_day_rounds_up_to_the_day_the_line_reaches_the_capacity() -> None:
    # 50 today, +0.3 a day: (100 - 50) / 0.3 = 166.67 days; day 166 is at 99.8, day 167 at 100.1.
    result = forecast(line(50.0, 0.3, 30), 100.0, today=TODAY)
    assert result.days_to_full == pytest.approx(500 / 3)
    assert result.full_on == TODAY + timedelta(days=167)


def test_noisy_series_with_known_slope() -> None:
    # x = -6..0 (days from today), mean -3; y = 60 63 61 65 64 68 67, mean 448 / 7 = 64.
    # Sxx = 9 + 4 + 1 + 0 + 1 + 4 + 9 = 28
    # Sxy = -3*60 - 2*63 - 61 + 0 + 64 + 2*68 + 3*67 = 34 (the mean of y drops out)
    # slope = 34 / 28 = 17 / 14; value at today = 64 + 3 * 17 / 14 = 947 / 14
    # SStot = 16 + 1 + 9 + 1 + 0 + 16 + 9 = 52; SSreg = slope² * Sxx = 289 / 7
    # R² = (289 / 7) / 52 = 289 / 364
    # days to 100 = (100 - 947 / 14) / (17 / 14) = 453 / 17 = 26.65, so full on day 27.
    result = forecast(series([60, 63, 61, 65, 64, 68, 67]), 100.0, today=TODAY)
    assert result.slope_per_day == pytest.approx(17 / 14)
    assert result.intercept == pytest.approx(947 / 14)
    assert result.r2 == pytest.approx(289 / 364)
    assert result.points == 7
    assert result.current == 67
    assert result.days_to_full == pytest.approx(453 / 17)
    assert result.full_on == date(2026, 10, 28)
    assert result.confidence == "medium"  # R² 0.79
    assert result.note_key == "full_on"
    assert result.note() == "按近30天趋势（每天增长1.21%，R²=0.79），预计2026年10月28日用满"


def test_very_noisy_series_is_estimated_but_called_uncertain() -> None:
    # x = -6..0, y = 60 66 59 64 62 67 63, mean 441 / 7 = 63.
    # Sxy = -180 - 132 - 59 + 0 + 62 + 134 + 189 = 14, Sxx = 28: slope 0.5
    # value at today = 63 + 3 * 0.5 = 64.5; SStot = 9+9+16+1+1+16+0 = 52, SSreg = 0.25 * 28 = 7
    # R² = 7 / 52 = 0.13; days to 100 = 35.5 / 0.5 = 71.
    result = forecast(series([60, 66, 59, 64, 62, 67, 63]), 100.0, today=TODAY)
    assert result.slope_per_day == pytest.approx(0.5)
    assert result.intercept == pytest.approx(64.5)
    assert result.r2 == pytest.approx(7 / 52)
    assert result.days_to_full == pytest.approx(71.0)
    assert result.full_on == date(2026, 12, 11)
    assert result.confidence == "low"
    assert result.note_key == "full_on_uncertain"
    assert result.note() == (
        "按近30天趋势（每天增长0.50%，R²=0.13），预计2026年12月11日用满，但数据波动大，预测不可靠"
    )
    assert result.note("en") == (
        "at the trend of the last 30 days (+0.50 % a day, R² = 0.13), full on 11 December 2026,"
        " but the data are too noisy to be sure"
    )


@pytest.mark.parametrize(("days", "confidence"), [(14, "high"), (13, "medium")])
def test_confidence_needs_fourteen_points_for_high(days: int, confidence: str) -> None:
    # An exact line (R² = 1) is high only over at least 14 points.
    assert forecast(line(50.0, 0.5, days), 100.0, today=TODAY).confidence == confidence


def test_flat_trend() -> None:
    result = forecast(line(70.0, 0.0, 14), 100.0, today=TODAY)
    assert result.slope_per_day == 0.0
    assert result.r2 == 1.0  # every value equal: the flat line fits them all
    assert result.days_to_full is None
    assert result.full_on is None
    assert result.confidence == "high"
    assert result.note_key == "flat"
    assert result.note() == "趋势平稳或下降，近期不会用满"
    assert result.note("en") == "flat or falling trend, not filling up soon"


def test_growth_below_a_hundredth_of_a_percent_a_day_is_flat() -> None:
    # Capacity 1000: 0.01 % a day is 0.1. At 0.09 a day the trend is flat; at 0.11 it is not.
    assert forecast(line(500.0, 0.09, 30), 1000.0, today=TODAY).note_key == "flat"
    growing = forecast(line(500.0, 0.11, 30), 1000.0, today=TODAY)
    assert growing.days_to_full == pytest.approx(500 / 0.11)
    assert growing.note_key == "beyond_three_years"


def test_shrinking_trend() -> None:
    result = forecast(line(60.0, -1.0, 30), 100.0, today=TODAY)
    assert result.slope_per_day == pytest.approx(-1.0)
    assert result.days_to_full is None
    assert result.full_on is None
    assert result.note_key == "flat"


def test_already_full() -> None:
    result = forecast(line(100.5, 0.5, 30), 100.0, today=TODAY)
    assert result.days_to_full == 0.0
    assert result.full_on == TODAY
    assert result.current == 100.5
    assert result.confidence == "high"
    assert result.note_key == "already_full"
    assert result.note() == "已用满（当前为容量的100.5%）"
    assert result.note("en") == "already full (100.5 % of capacity)"


def test_already_full_even_with_few_points() -> None:
    result = forecast([(TODAY, 100.0)], 100.0, today=TODAY)
    assert result.days_to_full == 0.0
    assert result.slope_per_day is None
    assert result.note_key == "already_full"


def test_too_few_points() -> None:
    result = forecast(line(50.0, 0.5, 6), 100.0, today=TODAY)
    assert result.points == 6
    assert result.current == 50.0
    assert (result.slope_per_day, result.intercept, result.r2) == (None, None, None)
    assert result.days_to_full is None
    assert result.full_on is None
    assert result.confidence == "none"
    assert result.note_key == "too_few_points"
    assert result.note() == "数据不足 7 天，无法预测"
    assert result.note("en") == "fewer than 7 days of data, no forecast"
    assert forecast(
        line(50.0, 0.5, 6), 100.0, today=TODAY, min_points=5
    ).days_to_full == pytest.approx(100.0)


def test_too_few_points_counts_distinct_days() -> None:
    points = line(50.0, 0.5, 6) + [(TODAY, 49.0)]
    result = forecast(points, 100.0, today=TODAY)
    assert result.points == 7
    assert result.confidence == "none"


def test_no_points() -> None:
    result = forecast([], 100.0, today=TODAY)
    assert (result.points, result.current, result.confidence) == (0, None, "none")


def test_far_future_gives_no_date() -> None:
    # 50 today, +0.04 a day: (100 - 50) / 0.04 = 1250 days, more than 3 * 365.
    result = forecast(line(50.0, 0.04, 30), 100.0, today=TODAY)
    assert result.days_to_full == pytest.approx(1250.0)
    assert result.full_on is None
    assert result.note_key == "beyond_three_years"
    assert result.note() == "按近30天趋势（每天增长0.04%，R²=1.00），预计3年以上才会用满"
    assert result.note("en") == (
        "at the trend of the last 30 days (+0.04 % a day, R² = 1.00), full in > 3 years"
    )


def test_three_years_is_still_a_date() -> None:
    # 50 today, +50 / 1095 a day: full in exactly 1095 days.
    result = forecast(line(50.0, 50 / 1095, 30), 100.0, today=TODAY)
    assert result.days_to_full == pytest.approx(1095.0)
    assert result.full_on == date(2029, 9, 30)


def test_lookback_leaves_out_old_and_future_points() -> None:
    old = [(TODAY - timedelta(days=30), 99.0), (TODAY - timedelta(days=90), 0.0)]
    future = [(TODAY + timedelta(days=1), 99.0)]
    result = forecast(old + line(50.0, 0.5, 30) + future, 100.0, today=TODAY)
    assert result.points == 30  # today - 29 .. today
    assert result.slope_per_day == pytest.approx(0.5)
    assert result.intercept == pytest.approx(50.0)
    assert result.current == 50.0
    assert result.full_on == date(2027, 1, 9)


def test_shorter_lookback() -> None:
    # A month of flat use, then a week climbing 1 a day from 60 to 66.
    points = line(60.0, 0.0, 30, today=TODAY - timedelta(days=7)) + [
        (TODAY - timedelta(days=6 - index), 60.0 + index) for index in range(7)
    ]
    recent = forecast(points, 100.0, today=TODAY, lookback_days=7)
    assert recent.points == 7
    assert recent.slope_per_day == pytest.approx(1.0)
    assert recent.days_to_full == pytest.approx(34.0)
    assert recent.note().startswith("按近7天趋势（每天增长1.00%")


def test_line_above_capacity_with_the_latest_point_below() -> None:
    # x = -6..0, y = 90 92 94 96 98 100 99.5: the line passes 100 at today, the last value not.
    result = forecast(series([90, 92, 94, 96, 98, 100, 99.5]), 100.0, today=TODAY)
    assert result.intercept is not None and result.intercept > 100.0
    assert result.days_to_full == 0.0
    assert result.full_on == TODAY
    assert result.note_key == "full_on"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"capacity": 0.0}, "capacity must be a positive number, got 0.0"),
        ({"capacity": float("inf")}, "capacity must be a positive number, got inf"),
        ({"lookback_days": 0}, "lookback_days must be at least 1, got 0"),
        ({"min_points": 1}, "min_points must be at least 2, got 1"),
    ],
)
def test_invalid_arguments(arguments: dict[str, float], message: str) -> None:
    given = {"capacity": 100.0, **arguments}
    with pytest.raises(ValueError, match=message):
        forecast(line(50.0, 0.5, 10), today=TODAY, **given)  # type: ignore[arg-type]


def test_non_finite_value_in_the_window() -> None:
    points = line(50.0, 0.5, 10) + [(TODAY - timedelta(days=40), float("nan"))]
    assert forecast(points, 100.0, today=TODAY).points == 10
    with pytest.raises(ValueError, match="the value for 2026-09-30 is not a finite number"):
        forecast(points + [(TODAY - timedelta(days=1), float("nan"))], 100.0, today=TODAY)


def test_unknown_language() -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        forecast(line(50.0, 0.5, 10), 100.0, today=TODAY).note("fr")  # type: ignore[arg-type]
