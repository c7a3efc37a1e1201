"""Fires per local date over a year, near DST changes: APScheduler's CronTrigger vs WallClockCronTrigger.

Walks ``get_next_fire_time(previous, previous)`` the way the scheduler does after each run and
counts, per local date, how often a daily cron fired. Prints, per zone and time, the dates that
got no fire or more than one, and the local times of the fires on DST-change days.

    .venv/bin/python bench/dst_cron.py [YEAR]
"""

from __future__ import annotations

import collections
import datetime as dt
import sys
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from newsletter.calendar import WallClockCronTrigger

ZONES = ["Europe/Berlin", "America/New_York", "America/Santiago", "America/Havana"]
TIMES = [(7, 0), (2, 30), (0, 30), (1, 30), (23, 30)]


def walk(trigger: BaseTrigger, tz: ZoneInfo, year: int
         ) -> tuple[collections.Counter[dt.date], list[dt.datetime], list[dt.datetime]]:
    start = dt.datetime(year, 1, 1, tzinfo=tz)
    end = dt.datetime(year + 1, 1, 1, tzinfo=tz)
    counts: collections.Counter[dt.date] = collections.Counter()
    fires: list[dt.datetime] = []
    stuck: list[dt.datetime] = []
    previous: dt.datetime | None = None
    now = start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire.astimezone(dt.UTC) >= end.astimezone(dt.UTC):
            break
        if previous is not None and fire.astimezone(dt.UTC) <= previous.astimezone(dt.UTC):
            stuck.append(fire)  # the scheduler would run this job again and again at the same time
            fire = trigger.get_next_fire_time(None, fire + dt.timedelta(minutes=1))
            if fire is None:
                break
        counts[fire.astimezone(tz).date()] += 1
        fires.append(fire)
        previous = now = fire
    return counts, fires, stuck


def dst_days(tz: ZoneInfo, year: int) -> set[dt.date]:
    days = set()
    day = dt.date(year, 1, 1)
    while day.year == year:
        noon = dt.datetime.combine(day, dt.time(12), tz)
        before = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12), tz)
        if noon.utcoffset() != before.utcoffset():
            days.update({day - dt.timedelta(days=1), day})
        day += dt.timedelta(days=1)
    return days


def main() -> None:
    year = int(sys.argv[1]) if len(sys.argv) > 1 else 2025
    first = dt.date(year, 1, 1)
    dates = [first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)]
    print(f"{'zone':<18} {'time':<5} {'trigger':<12} {'fires':>5} {'0-fire dates':>12} {'2+-fire dates':>13}  "
          "fires on DST-change days")
    for name in ZONES:
        tz = ZoneInfo(name)
        changes = dst_days(tz, year)
        for hour, minute in TIMES:
            triggers: dict[str, BaseTrigger] = {
                "CronTrigger": CronTrigger(hour=hour, minute=minute, timezone=tz),
                "WallClock": WallClockCronTrigger(f"{minute} {hour} * * *", tz),
            }
            for label, trigger in triggers.items():
                counts, fires, stuck = walk(trigger, tz, year)
                missing = [d for d in dates if counts[d] == 0]
                doubled = [d for d in dates if counts[d] > 1]
                shown = ", ".join(f.astimezone(tz).strftime("%m-%d %H:%M%z") for f in fires
                                  if f.astimezone(tz).date() in changes)
                extra = f"  not after the previous fire: {len(stuck)}" if stuck else ""
                if missing:
                    extra += f"  missing: {missing[0]}..{missing[-1]}" if len(missing) > 3 else f"  missing: {missing}"
                print(f"{name:<18} {hour:02d}:{minute:02d} {label:<12} {len(fires):>5} {len(missing):>12} "
                      f"{len(doubled):>13}  {shown}{extra}")


if __name__ == "__main__":
    main()
