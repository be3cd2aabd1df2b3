"""Capacity forecasts: when will a filesystem, a tablespace or a disk group be full?

As Zabbix's ``timeleft()`` and check_oracle_health's tablespace remaining time do, fit a
least-squares line to the usage of recent days and extend it to the capacity.

- ``daily_maxima(samples, timezone)``: the highest sample of each local day. A day of many
  samples then weighs no more than a day of few, and the nightly dip after a purge does not hide
  the daytime peak that fills the disk.
- ``forecast(points, capacity, today=...)``: the line over the last ``lookback_days`` days, the
  days left until it reaches the capacity, the date, how far to trust it, and a sentence
  (``Forecast.note(lang)``) in Chinese or English for reports and messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from opsctl.reports.periods import Lang, format_date

Confidence = Literal["high", "medium", "low", "none"]
NoteKey = Literal[
    "already_full",
    "too_few_points",
    "flat",
    "full_on",
    "full_on_uncertain",
    "beyond_three_years",
    "beyond_three_years_uncertain",
]

#: A growth below this fraction of the capacity a day (0.01 %) counts as flat.
FLAT_FRACTION_PER_DAY = 0.0001
#: Below this R² the estimate is still given, but said to be uncertain.
NOISY_R2 = 0.5
#: Further away than this, a forecast names no date.
FAR_DAYS = 3 * 365


@dataclass(frozen=True)
class Forecast:
    """When a resource will be full, from the trend of its daily maxima.

    ``slope_per_day`` and ``intercept`` (the line's value at ``today``) are in the unit of the
    points; they and ``r2`` are None when there were too few days to fit a line. ``points``
    counts the points used and ``current`` is the latest of them (None if there were none).
    ``days_to_full`` counts from ``today``: 0 when already full, None when the trend is flat or
    falling or cannot be fitted; ``full_on`` is the first day the line reaches the capacity,
    None also when that is more than three years away. ``confidence`` is ``high`` for a full
    resource, since that is observed rather than projected, and ``none`` with too few days.
    """

    slope_per_day: float | None
    intercept: float | None
    r2: float | None
    points: int
    current: float | None
    days_to_full: float | None
    full_on: date | None
    confidence: Confidence
    note_key: NoteKey
    capacity: float
    lookback_days: int
    min_points: int

    def note(self, lang: Lang = "zh") -> str:
        """Return a short sentence on the forecast in Chinese (``zh``) or English (``en``).

        Raise ValueError for another language.
        """
        if lang not in ("zh", "en"):
            raise ValueError(f"unknown language {lang!r}; expected 'zh' or 'en'")
        zh = lang == "zh"
        if self.note_key == "already_full":
            used = 100 * (self.current or 0.0) / self.capacity
            return (
                f"已用满（当前为容量的{used:.1f}%）"
                if zh
                else f"already full ({used:.1f} % of capacity)"
            )
        if self.note_key == "too_few_points":
            if zh:
                return f"数据不足 {self.min_points} 天，无法预测"
            return f"fewer than {self.min_points} days of data, no forecast"
        if self.note_key == "flat":
            return (
                "趋势平稳或下降，近期不会用满"
                if zh
                else "flat or falling trend, not filling up soon"
            )
        growth = 100 * (self.slope_per_day or 0.0) / self.capacity
        r2 = self.r2 or 0.0
        if zh:
            trend = f"按近{self.lookback_days}天趋势（每天增长{growth:.2f}%，R²={r2:.2f}）"
        else:
            trend = f"at the trend of the last {self.lookback_days} days (+{growth:.2f} % a day, R² = {r2:.2f})"
        if self.full_on is not None:
            outcome = (
                f"，预计{format_date(self.full_on, 'zh')}用满"
                if zh
                else f", full on {format_date(self.full_on, 'en')}"
            )
        else:
            outcome = "，预计3年以上才会用满" if zh else ", full in > 3 years"
        if self.note_key.endswith("_uncertain"):
            outcome += (
                "，但数据波动大，预测不可靠" if zh else ", but the data are too noisy to be sure"
            )
        return trend + outcome


def daily_maxima(
    samples: Iterable[tuple[datetime, float]], timezone: str = "Asia/Shanghai"
) -> list[tuple[date, float]]:
    """Given (time, value) samples with time-zone-aware times, return the highest value of each
    local day of ``timezone``, sorted by day. Samples whose value is NaN are left out.

    Raise ValueError for a sample with a naive time; ZoneInfoNotFoundError for an unknown zone.
    """
    zone = ZoneInfo(timezone)
    highest: dict[date, float] = {}
    for moment, value in samples:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"sample time {moment.isoformat()} has no time zone")
        if math.isnan(value):
            continue
        day = moment.astimezone(zone).date()
        if day not in highest or value > highest[day]:
            highest[day] = value
    return sorted(highest.items())


def forecast(
    points: Sequence[tuple[date, float]],
    capacity: float,
    *,
    today: date,
    lookback_days: int = 30,
    min_points: int = 7,
) -> Forecast:
    """Given (day, value) points such as ``daily_maxima`` returns and the capacity in the same
    unit, return the forecast from a least-squares line over the points of the
    ``lookback_days`` days ending with ``today`` (``today`` included; later points are ignored).

    With fewer than ``min_points`` distinct days there is no estimate (confidence ``none``),
    unless the latest value already reaches the capacity. Confidence is ``high`` when R² is at
    least 0.9 over at least 14 points, ``medium`` when R² is at least 0.7, ``low`` otherwise.

    Raise ValueError if the capacity is not a positive number, ``lookback_days`` is below 1,
    ``min_points`` below 2, or a value in the window is not a finite number.
    """
    if not math.isfinite(capacity) or capacity <= 0:
        raise ValueError(f"capacity must be a positive number, got {capacity!r}")
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
    if min_points < 2:
        raise ValueError(f"min_points must be at least 2, got {min_points}")
    window_start = today - timedelta(days=lookback_days - 1)
    used = sorted((day, value) for day, value in points if window_start <= day <= today)
    for day, value in used:
        if not math.isfinite(value):
            raise ValueError(f"the value for {day.isoformat()} is not a finite number: {value!r}")
    current = used[-1][1] if used else None
    enough = len({day for day, _ in used}) >= min_points
    slope, intercept, r2 = _fit(used, today) if enough else (None, None, None)

    def result(
        days_to_full: float | None, full_on: date | None, confidence: Confidence, key: NoteKey
    ) -> Forecast:
        return Forecast(
            slope_per_day=slope,
            intercept=intercept,
            r2=r2,
            points=len(used),
            current=current,
            days_to_full=days_to_full,
            full_on=full_on,
            confidence=confidence,
            note_key=key,
            capacity=capacity,
            lookback_days=lookback_days,
            min_points=min_points,
        )

    if current is not None and current >= capacity:
        return result(0.0, today, "high", "already_full")
    if slope is None or intercept is None or r2 is None:
        return result(None, None, "none", "too_few_points")
    if r2 >= 0.9 and len(used) >= 14:
        confidence: Confidence = "high"
    elif r2 >= 0.7:
        confidence = "medium"
    else:
        confidence = "low"
    if slope <= FLAT_FRACTION_PER_DAY * capacity:
        return result(None, None, confidence, "flat")
    # The line may already be above the capacity while the latest point is below it.
    days_to_full = max(0.0, (capacity - intercept) / slope)
    uncertain = r2 < NOISY_R2
    # Rounding keeps a float error from turning exactly 100 days into 100.0000000001.
    if round(days_to_full, 9) > FAR_DAYS:
        key: NoteKey = "beyond_three_years_uncertain" if uncertain else "beyond_three_years"
        return result(days_to_full, None, confidence, key)
    # Daily maxima sit at whole days: the first one at or over the capacity is the full day.
    full_on = today + timedelta(days=math.ceil(round(days_to_full, 9)))
    return result(
        days_to_full, full_on, confidence, "full_on_uncertain" if uncertain else "full_on"
    )


def _fit(points: Sequence[tuple[date, float]], today: date) -> tuple[float, float, float]:
    """Given points on at least two days, return the least-squares slope per day, the line's
    value at ``today`` and R² (1.0 when all values are equal, which the flat line fits)."""
    xs = [(day - today).days for day, _ in points]
    ys = [value for _, value in points]
    count = len(points)
    mean_x, mean_y = sum(xs) / count, sum(ys) / count
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 if total == 0 else min(1.0, max(0.0, 1 - residual / total))
    return slope, intercept, r2
