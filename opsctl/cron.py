"""Cron expressions as cron reads them, for APScheduler 3.

APScheduler numbers the weekdays from Monday = 0, cron from Sunday = 0 (and 7); and when
both the day of month and the weekday are restricted, cron fires on either, APScheduler only
on both. ``cron_trigger`` undoes both, so a schedule written for crontab runs when crontab
would run it. The inventory validates schedules with it too.
"""

from __future__ import annotations

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, zone: str) -> BaseTrigger:
    """Given a crontab expression (minute hour day month weekday) and an IANA time zone,
    return the APScheduler trigger that fires when cron would.

    Two differences between APScheduler 3 and cron are undone here: APScheduler numbers the
    weekdays from Monday = 0, cron from Sunday = 0 (and 7); and when both the day of month
    and the weekday are restricted, cron fires on either (``0 8 1 * mon``: the 1st and every
    Monday), APScheduler only on both. Raise ValueError naming what is wrong.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day month weekday), got {len(fields)}: {expression!r}"
        )
    minute, hour, day, month, weekday = fields
    days = _weekdays(weekday)

    def cron(day_field: str, weekday_field: str) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day_field,
            month=month,
            day_of_week=weekday_field,
            timezone=zone,
        )

    if day not in ("*", "?") and days != "*":
        return OrTrigger([cron(day, "*"), cron("*", days)])
    return cron(day, days)


def _weekdays(field: str) -> str:
    """Turn a crontab weekday field into APScheduler's, with the days named."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        body, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"expected a positive step after '/' in the weekday field {field!r}")
        step = int(step_text) if slash else 1
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            low, high = body.split("-", 1)
            first, last = _day(low, field), _day(high, field)
        else:
            first = _day(body, field)
            last = 6 if slash else first
        if first > last:
            raise ValueError(
                f"a weekday range must go from Sunday (0) to Saturday (6 or 7): {field!r}"
            )
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


def _day(text: str, field: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    raise ValueError(
        f"expected weekdays as 0-7 (0 and 7 are Sunday) or sun..sat in {field!r}, got {text!r}"
    )
