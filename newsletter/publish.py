"""The publish pipeline: ingest the configured digests, write the feeds, send one day's email.

Used by `newsletter publish` (once, for cron or systemd timers) and by each firing of the
scheduler's jobs. The send step only ever sends the day it is asked for (today in
``[schedule] timezone``); when that day has no digest yet, it never falls back to an older day:
it reports "waiting" until ``[schedule] deadline``, and at the deadline records
"no issue for D (reason)" in the store, which `newsletter status` shows. A day whose digest lists
no papers, or whose plan has no recipient, sends nothing and records that too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from newsletter.config import Settings
from newsletter.delivery import DeliveryRun, envelope_sender, summary_line
from newsletter.errors import NewsletterError
from newsletter.feeds import build_feeds
from newsletter.ingest import ingest_files, resolve_inputs
from newsletter.plan import build_plan
from newsletter.store import Store

log = logging.getLogger("newsletter.publish")

Clock = Callable[[], dt.datetime]
ALL_STAGES = ("ingest", "feeds", "send")
OPEN_STATES = ("pending", "retry", "sending")
"""Delivery states that still have work: a day with rows in them is not settled."""
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class PublishResult:
    date: dt.date
    outcome: str = "done"
    """done (the stages ran; the send, if any, finished), sent, no-issue, waiting, incomplete or stopped."""
    details: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Stage failures (a bad digest file, an unwritable feeds folder); later stages still ran."""
    next_check: dt.datetime | None = None
    """When outcome is waiting: when to look for the digest again."""
    sent: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome in ("done", "sent", "no-issue") and not self.errors

    def summary(self) -> str:
        return "; ".join([self.outcome, *self.details, *(f"error: {e}" for e in self.errors)])


def parse_deadline(value: str | int) -> tuple[int, int] | int:
    """``"HH:MM"`` -> (hour, minute); a number -> minutes after the scheduled publish time."""
    if isinstance(value, int):
        return value
    match = _HH_MM.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is neither HH:MM nor a number of minutes")
    return int(match.group(1)), int(match.group(2))


class Publisher:
    """Runs the pipeline; ``stop()`` (from any thread) ends it after the message in flight."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.timezone = ZoneInfo(settings.schedule.timezone)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runs: set[DeliveryRun] = set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.stop()

    def today(self) -> dt.date:
        return self.clock().astimezone(self.timezone).date()

    def deadline(self, date: dt.date, scheduled_at: dt.datetime | None) -> dt.datetime:
        """When to give up waiting for ``date``'s digest."""
        from newsletter.schedule import WallClockCronTrigger

        parsed = parse_deadline(self.settings.schedule.deadline)
        if isinstance(parsed, int):
            return (scheduled_at or self.scheduled_time(date)) + dt.timedelta(minutes=parsed)
        wall = dt.datetime.combine(date, dt.time(*parsed))
        return WallClockCronTrigger("* * * * *", self.timezone).instant(wall)

    def scheduled_time(self, date: dt.date) -> dt.datetime:
        """When ``date``'s issue is due: the first [schedule] publish (else send) time that day, else its start."""
        from newsletter.schedule import WallClockCronTrigger

        start = WallClockCronTrigger("* * * * *", self.timezone).instant(dt.datetime.combine(date, dt.time()))
        cfg = self.settings.schedule
        for key, expr in (("publish", cfg.publish), ("send", cfg.send)):
            if expr:
                fire = WallClockCronTrigger(expr, self.timezone, key).first_at_or_after(start)
                if fire is not None and fire.astimezone(self.timezone).date() == date:
                    return fire
        return start

    def day_settled(self, date: dt.date) -> bool:
        """True when ``date`` has a no-issue note, or delivery rows none of which still waits to be sent."""
        with Store.from_settings(self.settings) as store:
            if store.no_issue_notes([date]):
                return True
            counts = store.delivery_counts([date]).get(date, {})
        return bool(counts) and not any(counts.get(state) for state in OPEN_STATES)

    def publish(self, date: dt.date | None = None, stages: Sequence[str] = ALL_STAGES,
                scheduled_at: dt.datetime | None = None) -> PublishResult:
        """Run ``stages`` in order for ``date`` (default: today in [schedule] timezone)."""
        date = date or self.today()
        result = PublishResult(date)
        with Store.from_settings(self.settings) as store:
            for stage in stages:
                if self.stopping:
                    result.outcome = "stopped"
                    return result
                try:
                    if stage == "ingest":
                        self._ingest(store, result)
                    elif stage == "feeds":
                        self._feeds(store, result)
                    else:
                        self._send(store, result, scheduled_at)
                except NewsletterError as exc:
                    log.error("%s failed: %s", stage, exc)
                    result.errors.append(f"{stage}: {exc.message}")
        return result

    def _ingest(self, store: Store, result: PublishResult) -> None:
        files = resolve_inputs(self.settings, ())
        report = ingest_files(self.settings, store, files)
        c = report.counts
        log.info("ingest: %d files, %d days: %d new, %d updated, %d unchanged papers, %d warnings",
                 len(files), c.days, c.new, c.updated, c.unchanged, len(report.warnings))
        for error in report.errors:  # one bad file never stops the others, nor the send
            log.error("ingest: %s", error)
            result.errors.append(f"ingest: {error.message}")

    def _feeds(self, store: Store, result: PublishResult) -> None:
        report = build_feeds(self.settings, store)
        log.info("feeds: %d written, %d unchanged (%d papers over %d days)",
                 len(report.written), len(report.unchanged), report.papers, report.days)

    def _send(self, store: Store, result: PublishResult, scheduled_at: dt.datetime | None) -> None:
        date = result.date
        noted = store.no_issue_notes([date])
        if noted:
            result.outcome = "no-issue"
            result.details.append(f"already noted: no issue for {date.isoformat()} ({noted[date]})")
            return
        day = store.get_day(date)
        if day is None:
            self._no_digest(store, result, scheduled_at)
            return
        plan = build_plan(self.settings, store, date)
        for warning in plan.warnings:
            log.warning("plan: %s", warning)
        if not plan.messages and not store.delivery_counts([date]):
            if not day.papers:
                reason = "the digest lists no papers"
            elif not store.subscribers(status="active"):
                reason = "no active subscribers"
            else:
                reason = "no subscriber's filter matched any of the day's papers"
            self._note(store, result, reason)
            return
        run = DeliveryRun(store, plan, self.settings.smtp, envelope_sender(self.settings))
        with self._lock:
            self._runs.add(run)
        try:
            if self.stopping:  # stop() came before the run was registered
                result.outcome = "stopped"
                return
            due = run.prepare()
            report = run.run() if due else run.report
        finally:
            with self._lock:
                self._runs.discard(run)
        result.sent = report.sent
        result.details.append(summary_line(report))
        if report.paused is not None:
            log.error("send: %s", report.paused)
            result.errors.append(f"send: {report.paused.message}")
        if self.stopping:
            result.outcome = "stopped"
        elif report.ok:  # rows another live send holds are its to deliver
            result.outcome = "sent"
        else:
            result.outcome = "incomplete"

    def _no_digest(self, store: Store, result: PublishResult, scheduled_at: dt.datetime | None) -> None:
        date = result.date
        deadline = self.deadline(date, scheduled_at)
        now = self.clock()
        local_deadline = deadline.astimezone(self.timezone)
        if now >= deadline:
            reason = (f"no digest for {date.isoformat()} by the deadline, "
                      f"{local_deadline:%Y-%m-%d %H:%M} {self.timezone.key}")
            self._note(store, result, reason)
            return
        recheck = dt.timedelta(minutes=self.settings.schedule.recheck_minutes)
        result.outcome = "waiting"
        result.next_check = min(now + recheck, deadline)
        result.details.append(f"no digest for {date.isoformat()} yet; an older day is never sent instead; "
                              f"waiting until {local_deadline:%Y-%m-%d %H:%M} {self.timezone.key}")

    def _note(self, store: Store, result: PublishResult, reason: str) -> None:
        store.record_no_issue(result.date, reason, self.clock())
        log.warning("no issue for %s (%s)", result.date.isoformat(), reason)
        result.outcome = "no-issue"
        result.details.append(f"no issue for {result.date.isoformat()} ({reason})")
