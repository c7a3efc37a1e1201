"""Calendar rules: 5-field cron expressions, the DST-exact wall-clock trigger, and send deadlines.

A leaf module: config validates ``[schedule]`` with it, the publish pipeline computes deadlines with it,
and the scheduler fires its jobs with it. Cron expressions are read on the local wall clock of
``[schedule] timezone``, because APScheduler 3.11's CronTrigger does not fire exactly once per local
day near DST changes (bench/dst_cron.py measures it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from newsletter.errors import ConfigError

UTC = dt.UTC
_WEEKDAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
"""Crontab numbering: 0 and 7 are Sunday."""
_SCAN_BACK = dt.timedelta(hours=3)
"""Longer than any DST shift, so that a local time moved forward by a gap is still found."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"schedule.timezone: unknown time zone {name!r}",
                          "use an IANA name such as \"Europe/Berlin\" or \"America/New_York\"") from exc


def _weekdays(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday, names allowed) as APScheduler 3.x day names.

    APScheduler's from_crontab reads 0 as Monday, so ``1-5`` would mean Tuesday to Saturday.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday_number(low)
            last = _weekday_number(high) if high else (6 if step_text else first)
        if step < 1 or last < first:
            raise ValueError(f"bad day-of-week range {item!r}")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_WEEKDAY_NAMES[d] for d in sorted(days))


def _weekday_number(text: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def parse_cron(expr: str, key: str) -> CronTrigger:
    """A 5-field crontab expression as a CronTrigger over UTC (used as a plain wall clock)."""
    fields = expr.split()
    hint = ("5 fields: minute hour day-of-month month day-of-week, e.g. \"0 7 * * 1-5\" "
            "for 07:00 Monday to Friday")
    if len(fields) != 5:
        raise ConfigError(f"schedule.{key}: {expr!r} has {len(fields)} fields, not 5", hint)
    minute, hour, day, month, day_of_week = fields
    try:
        trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(day_of_week),
                              timezone=UTC)
    except ValueError as exc:
        raise ConfigError(f"schedule.{key}: {expr!r} is not a valid cron expression: {exc}", hint) from exc
    # Searched from a leap year's start, so that 29 February counts as a date that comes.
    if trigger.get_next_fire_time(None, dt.datetime(2028, 1, 1, tzinfo=UTC)) is None:
        raise ConfigError(f"schedule.{key}: {expr!r} names a date that never comes, so it would never run",
                          "check the day-of-month and month fields (30 February does not exist)")
    return trigger


class WallClockCronTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """Fires at the local wall-clock times a cron expression names, once each, across DST changes.

    The cron is matched against local wall time; each match becomes the instant when the local
    clock first shows that time:
    - a time skipped by a spring-forward gap (02:30 in Europe/Berlin on the last Sunday of March)
      fires at the end of the gap, 03:00 local: the first instant whose local time is past it;
    - a time that occurs twice at a fall-back (02:30 on the last Sunday of October) fires once,
      at its first occurrence (fold=0).
    So a daily cron fires exactly once per local date.
    """

    def __init__(self, expr: str, timezone: ZoneInfo, key: str = "publish") -> None:
        self.expr = expr
        self.timezone = timezone
        self._wall = parse_cron(expr, key)

    def instant(self, wall: dt.datetime) -> dt.datetime:
        """The first instant whose local time is ``wall`` (naive), or the end of the gap that skips it."""
        first = wall.replace(tzinfo=self.timezone, fold=0)
        if first.astimezone(UTC).astimezone(self.timezone).replace(tzinfo=None) == wall:
            return first
        # In a gap: fold=1 applies the offset after the change, fold=0 the one before, so the change
        # lies between the two readings. Find its exact second.
        second = wall.replace(tzinfo=self.timezone, fold=1)
        low, high = int(second.timestamp()), int(first.timestamp())
        after = second.utcoffset()
        while low + 1 < high:
            middle = (low + high) // 2
            if dt.datetime.fromtimestamp(middle, self.timezone).utcoffset() == after:
                high = middle
            else:
                low = middle
        return dt.datetime.fromtimestamp(high, self.timezone)

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        if previous_fire_time is None:
            return self.first_at_or_after(now)
        # As CronTrigger does: the first fire time after the previous one, even if it is already past
        # (the scheduler collects missed run times this way, then coalesces them).
        return self.first_at_or_after(previous_fire_time + dt.timedelta(microseconds=1))

    def first_at_or_after(self, start: dt.datetime) -> dt.datetime | None:
        wall_start = start.astimezone(self.timezone).replace(tzinfo=None) - _SCAN_BACK
        candidate = self._wall.get_next_fire_time(None, wall_start.replace(tzinfo=UTC))
        while candidate is not None:
            wall = candidate.replace(tzinfo=None)
            fire = self.instant(wall)
            # A gap that runs past midnight (Pacific/Apia skipped all of 2011-12-30) would move the
            # time to the next date, which has its own fire time: a date that never was gets none.
            if fire >= start and fire.astimezone(self.timezone).date() == wall.date():
                return fire
            candidate = self._wall.get_next_fire_time(None, candidate + dt.timedelta(seconds=1))
        return None

    def fire_times(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Fire times in [start, end]."""
        fire = self.first_at_or_after(start)
        while fire is not None and fire <= end:
            yield fire
            fire = self.first_at_or_after(fire + dt.timedelta(microseconds=1))

    def __str__(self) -> str:
        return f"cron[{self.expr}] {self.timezone.key} wall clock"

    def __repr__(self) -> str:
        return f"<WallClockCronTrigger ({self.expr!r}, timezone={self.timezone.key!r})>"


_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def parse_deadline(value: str | int) -> tuple[int, int] | int:
    """``"HH:MM"`` -> (hour, minute); a number -> minutes after the scheduled publish time."""
    if isinstance(value, int):
        return value
    match = _HH_MM.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is neither HH:MM nor a number of minutes")
    return int(match.group(1)), int(match.group(2))
