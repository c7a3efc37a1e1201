"""`newsletter schedule`: the APScheduler 3.x daemon that runs the publish pipeline on time.

Each job has a fixed id (``publish``, ``ingest``, ``feeds``, ``send``) and is added with
``replace_existing``, ``max_instances=1``, ``coalesce=True`` and ``[schedule] misfire_grace_time``.
Jobs live in memory; the store is the memory across restarts. At start, a job whose fire time
passed within the grace time gets that missed time as its first run time when its day is not
settled yet (no note, and nothing left pending in the delivery log), so APScheduler runs exactly
one catch-up: coalescing folds every missed time into one run, and the grace time drops runs that
are too old. When today's sending time passed longer ago than that but today is not settled and its
deadline is still ahead, the start runs the day's recheck at once instead, so a digest that comes
late is still sent after a restart. A run that comes back "waiting" (no digest yet) or "incomplete"
(messages deferred, the send paused, a stage failed) is run again by a ``{job}-recheck`` job at the
time the publisher names, until the deadline. Two daemons by mistake cannot mail anyone twice: the
delivery log leases each message.

Cron expressions are read on the local wall clock of ``[schedule] timezone`` by WallClockCronTrigger,
because APScheduler 3.11's CronTrigger does not fire exactly once per local day near DST changes
(bench/dst_cron.py measures it).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from newsletter.clock import Clock, utc_now
from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.publish import Publisher, PublishResult, Stage
from newsletter.store import Store

log = logging.getLogger("newsletter.schedule")

UTC = dt.UTC
JOB_STAGES: dict[str, tuple[Stage, ...]] = {
    "publish": ("ingest", "feeds", "send"),
    "ingest": ("ingest",),
    "feeds": ("feeds",),
    "send": ("send",),
}
"""Job id (= the [schedule] key holding its cron) -> the stages it runs, in order."""
SENDING_JOBS = ("publish", "send")

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


class Daemon:
    """The scheduler, its jobs, and the shutdown that lets the message in flight finish."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        cfg = settings.schedule
        self.timezone = zone(cfg.timezone)
        self.triggers = {job_id: WallClockCronTrigger(expr, self.timezone, job_id)
                         for job_id, expr in cfg.crons().items() if expr}
        self.grace = dt.timedelta(seconds=cfg.misfire_grace_time)
        self.publisher = Publisher(settings, clock=clock)
        self.scheduler = BackgroundScheduler(timezone=self.timezone, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": cfg.misfire_grace_time})
        self.scheduler.add_listener(self._job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self._signal: int | None = None

    # -- jobs ---------------------------------------------------------------------------------

    def add_jobs(self) -> None:
        """Add (or replace) one job per configured cron; safe to call again, e.g. after a restart."""
        now = self.clock()
        with Store.from_settings(self.settings) as store:  # one store for every job's start-up check
            for job_id, trigger in self.triggers.items():
                options: dict[str, Any] = {}
                missed = self.catch_up_time(store, job_id, now)
                if missed is not None:
                    options["next_run_time"] = missed
                    log.warning("job %s missed its run at %s (within misfire_grace_time); catching up once now",
                                job_id, missed.isoformat())
                self.scheduler.add_job(self.run_job, trigger, args=(job_id,), id=job_id, name=f"newsletter {job_id}",
                                       replace_existing=True, max_instances=1, coalesce=True,
                                       misfire_grace_time=self.settings.schedule.misfire_grace_time, **options)
                if missed is None:
                    self.recheck_unsettled_today(store, job_id, now)

    def catch_up_time(self, store: Store, job_id: str, now: dt.datetime) -> dt.datetime | None:
        """The earliest fire time missed within the grace time, unless that day's issue is settled."""
        missed = list(self.triggers[job_id].fire_times(now - self.grace, now))
        if not missed:
            return None
        if job_id in SENDING_JOBS and self.publisher.day_settled(store, self.local_date(missed[-1])):
            return None
        return missed[0]

    def recheck_unsettled_today(self, store: Store, job_id: str, now: dt.datetime) -> None:
        """At start, recheck today at once when its sending time passed (beyond the grace time, or the
        catch-up would have run it), it is not settled and its deadline is ahead: the rechecks that were
        waiting for its digest, or retrying its messages, lived in the memory of the stopped daemon."""
        if job_id not in SENDING_JOBS:
            return
        today = self.local_date(now)
        start_of_today = self.triggers[job_id].instant(dt.datetime.combine(today, dt.time()))
        fired = list(self.triggers[job_id].fire_times(start_of_today, now))
        if not fired or self.publisher.day_settled(store, today):
            return
        deadline = self.publisher.deadline(today, fired[-1])
        if now >= deadline:
            return
        log.warning("job %s: today's run at %s was missed and %s is not settled; rechecking now, until %s",
                    job_id, fired[-1].isoformat(), today.isoformat(), deadline.astimezone(self.timezone).isoformat())
        self._add_recheck(job_id, today, fired[-1], now)

    def local_date(self, instant: dt.datetime) -> dt.date:
        return instant.astimezone(self.timezone).date()

    def last_fire_time(self, job_id: str, now: dt.datetime) -> dt.datetime:
        """The fire time this run stands for: the latest one not after now (coalesced runs stand for the last)."""
        fires = list(self.triggers[job_id].fire_times(now - self.grace - dt.timedelta(minutes=1), now))
        return fires[-1] if fires else now

    def run_job(self, job_id: str, date: dt.date | None = None, scheduled_at: dt.datetime | None = None) -> None:
        if scheduled_at is None:
            scheduled_at = self.last_fire_time(job_id, self.clock())
        if date is None:
            date = self.local_date(scheduled_at)
        result = self.publisher.publish(date, JOB_STAGES[job_id], scheduled_at=scheduled_at)
        log.info("job %s for %s: %s", job_id, date.isoformat(), result.summary())
        if result.next_check is not None and not self.publisher.stopping:
            self._recheck(job_id, date, scheduled_at, result)

    def _recheck(self, job_id: str, date: dt.date, scheduled_at: dt.datetime, result: PublishResult) -> None:
        assert result.next_check is not None
        self._add_recheck(job_id, date, scheduled_at, result.next_check)
        why = "no digest yet" if result.outcome == "waiting" else "not finished"
        log.info("job %s for %s: %s; running it again at %s", job_id, date.isoformat(), why,
                 result.next_check.astimezone(self.timezone).isoformat())

    def _add_recheck(self, job_id: str, date: dt.date, scheduled_at: dt.datetime, when: dt.datetime) -> None:
        self.scheduler.add_job(self.run_job, DateTrigger(run_date=when), args=(job_id, date, scheduled_at),
                               id=f"{job_id}-recheck", name=f"newsletter {job_id} recheck {date.isoformat()}",
                               replace_existing=True, max_instances=1, coalesce=True,
                               misfire_grace_time=self.settings.schedule.misfire_grace_time)

    def _job_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("job %s: run time %s was missed by more than misfire_grace_time; skipped",
                        event.job_id, event.scheduled_run_time)
        elif event.exception is not None:
            log.error("job %s failed: %s", event.job_id, event.exception)

    # -- running ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a plain assignment: taking a lock here could deadlock with the interrupted main thread.
        self._signal = signum

    def run(self) -> int:
        """Run in the foreground until SIGTERM or SIGINT; returns the exit status (0)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.add_jobs()
            self.scheduler.start()
            for job in self.scheduler.get_jobs():
                log.info("job %s: %s, next run %s", job.id, job.trigger,
                         job.next_run_time.isoformat() if job.next_run_time else "never")
            while self._signal is None:
                time.sleep(0.2)
            log.info("received %s: finishing the message in flight, then exiting", signal.Signals(self._signal).name)
            self.shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def shutdown(self) -> None:
        self.publisher.stop()
        self.scheduler.shutdown(wait=True)
        log.info("stopped")


def run_in_foreground_thread(publisher: Publisher, target: Any) -> Any:
    """Run ``target()`` in a worker thread; SIGTERM/SIGINT stop ``publisher`` and the result still comes back."""
    outcome: dict[str, Any] = {}
    received: list[int] = []

    def worker() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=worker, name="publish")
    try:
        thread.start()
        stopped = False
        while thread.is_alive():
            thread.join(0.2)
            if received and not stopped:
                log.info("received %s: finishing the message in flight, then exiting",
                         signal.Signals(received[0]).name)
                publisher.stop()
                stopped = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
