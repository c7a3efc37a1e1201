"""The publish trigger over a whole simulated year: exactly one fire per local date, DST days included.

Only the clock is simulated: the trigger is asked for its next fire time the way the scheduler asks
after each run (``get_next_fire_time(previous, now)`` with now at the previous fire time).
"""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from helpers import run, write_config
from newsletter.calendar import WallClockCronTrigger

UTC = dt.UTC


def year_of_fires(trigger: WallClockCronTrigger, year: int) -> list[dt.datetime]:
    tz = trigger.timezone
    end = dt.datetime(year + 1, 1, 1, tzinfo=tz)
    fires: list[dt.datetime] = []
    previous: dt.datetime | None = None
    now = dt.datetime(year, 1, 1, tzinfo=tz)
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire < end:
        assert previous is None or fire.astimezone(UTC) > previous.astimezone(UTC)
        fires.append(fire)
        previous = now = fire
    return fires


def transition_dates(tz: ZoneInfo, year: int) -> list[dt.date]:
    day, found = dt.date(year, 1, 1), []
    while day.year == year:
        if (dt.datetime.combine(day, dt.time(23, 59), tz).utcoffset()
                != dt.datetime.combine(day, dt.time(0, 0), tz).utcoffset()):
            found.append(day)
        day += dt.timedelta(days=1)
    return found


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize(("hour", "minute"), [(7, 0), (2, 30), (1, 30)])
@pytest.mark.parametrize("year", [2025, 2026])
def test_one_publish_per_local_date_over_a_year(zone_name: str, hour: int, minute: int, year: int) -> None:
    tz = ZoneInfo(zone_name)
    fires = year_of_fires(WallClockCronTrigger(f"{minute} {hour} * * *", tz), year)
    per_date = collections.Counter(f.astimezone(tz).date() for f in fires)
    days_in_year = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
    assert len(per_date) == days_in_year
    assert set(per_date.values()) == {1}
    spring, _autumn = transition_dates(tz, year)
    for fire in fires:
        local = fire.astimezone(tz)
        if local.date() == spring and hour == 2:
            # 02:30 does not exist that night: fire when the clock jumps, at 03:00.
            assert (local.hour, local.minute) == (3, 0)
        else:
            assert (local.hour, local.minute) == (hour, minute)
        # A time that happens twice (Berlin 02:30, New York 01:30 on the autumn date): the first one.
        assert local.fold == 0


def test_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    # APScheduler 3.x reads 0 as Monday; in a crontab 1-5 is Monday to Friday and 0 and 7 are Sunday.
    tz = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2025, 6, 2, tzinfo=tz)  # a Monday
    weekdays = WallClockCronTrigger("0 7 * * 1-5", tz)
    assert [f.strftime("%a") for f in weekdays.fire_times(start, start + dt.timedelta(days=7))] == [
        "Mon", "Tue", "Wed", "Thu", "Fri"]
    sundays = WallClockCronTrigger("0 7 * * 0,7", tz)
    assert [f.strftime("%a") for f in sundays.fire_times(start, start + dt.timedelta(days=14))] == ["Sun", "Sun"]
    even = WallClockCronTrigger("0 7 * * */2", tz)
    assert [f.strftime("%a") for f in even.fire_times(start, start + dt.timedelta(days=7))] == ["Tue", "Thu", "Sat",
                                                                                              "Sun"]


def test_missed_fire_times_are_listed_for_the_scheduler_to_coalesce() -> None:
    trigger = WallClockCronTrigger("0 * * * *", ZoneInfo("UTC"))
    last_run = dt.datetime(2025, 5, 1, 7, 0, tzinfo=UTC)
    now = dt.datetime(2025, 5, 1, 10, 20, tzinfo=UTC)
    assert trigger.get_next_fire_time(last_run, now) == dt.datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2025, 5, 1, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(("line", "key"), [
    ('timezone = "Europe/Berlinn"', "schedule.timezone"),
    ('publish = "0 7 * *"', "schedule.publish"),
    ('publish = "61 7 * * *"', "schedule.publish"),
    ('ingest = "*/15 * * * mon-funday"', "schedule.ingest"),
    ('deadline = "noon"', "schedule.deadline"),
    ('log_level = "chatty"', "schedule.log_level"),
    ('misfire_grace_time = 0', "schedule.misfire_grace_time"),
    ('publish = ""', "schedule.publish"),
    ('publish = "0 7 30 2 *"', "schedule.publish"),
    ('send = "0 9 31 4,6,9,11 *"', "schedule.send"),
])
def test_a_bad_schedule_key_exits_2_naming_it(tmp_path: Path, line: str, key: str) -> None:
    config = write_config(tmp_path, f"[schedule]\n{line}\n")
    result = run(config, "status")
    assert result.exit_code == 2
    assert key in result.output


@pytest.mark.usefixtures("store_backend")
def test_a_cron_on_29_february_is_a_date_that_comes(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[schedule]\npublish = "0 7 29 2 *"\n')
    assert run(config, "status").exit_code == 0


def test_a_local_date_the_zone_skipped_fires_nothing_and_the_next_date_fires_once() -> None:
    """Samoa skipped 30 December 2011 whole (UTC-10 to UTC+14): there was no 07:00 that day. The gap
    ends at midnight of the 31st, which has a 07:00 of its own; the skipped day must not fire there too."""
    tz = ZoneInfo("Pacific/Apia")
    trigger = WallClockCronTrigger("0 7 * * *", tz)
    fires = [f.astimezone(tz) for f in trigger.fire_times(dt.datetime(2011, 12, 27, tzinfo=tz),
                                                          dt.datetime(2012, 1, 3, tzinfo=tz))]
    per_date = collections.Counter(f.date() for f in fires)
    assert dt.date(2011, 12, 30) not in per_date
    assert set(per_date.values()) == {1}
    assert sorted(per_date) == [dt.date(2011, 12, d) for d in (27, 28, 29, 31)] + [dt.date(2012, 1, d) for d in (1, 2)]
    assert all((f.hour, f.minute) == (7, 0) for f in fires)
    # Asked the way the scheduler asks, one run after another, over the whole year: 364 dates, once each.
    yearly = collections.Counter(f.astimezone(tz).date() for f in year_of_fires(trigger, 2011))
    assert len(yearly) == 364 and set(yearly.values()) == {1} and dt.date(2011, 12, 30) not in yearly
