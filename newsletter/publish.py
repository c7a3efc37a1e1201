"""The publish pipeline: ingest the configured digests, write the feeds, send one day's email.

Used by `newsletter publish` (once, for cron or systemd timers) and by each firing of the
scheduler's jobs. The send step only ever sends the day it is asked for (today in
``[schedule] timezone``); when that day has no digest yet, it never falls back to an older day:
it reports "waiting" until ``[schedule] deadline``, and at the deadline sends the weekly editions
due that day (from the days before) or, when there are none, records
"no issue for D (reason)" in the store, which `newsletter status` shows. A day whose digest lists
no papers, or whose plan has no recipient, sends nothing and records that too. Such a note settles
the day for the scheduler; only an explicit ``override_note`` (``newsletter publish --date D``)
sends it anyway.

A run that did not finish -- messages deferred or the send paused, or a stage that raised an
unexpected exception (a locked database, a full disk) -- is "incomplete" and carries the time to try
again (``next_check``) until the deadline, so that the scheduler's recheck finishes the day. A send
that leaves rows to another send's live lease is "sent" (that send delivers them) but also carries
a ``next_check``, when the lease runs out: if that send died, the recheck takes its rows over.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from newsletter.calendar import WallClockCronTrigger, parse_deadline
from newsletter.clock import Clock, utc_now
from newsletter.config import Settings
from newsletter.dispatch.delivery import DeliveryReport, summary_line
from newsletter.dispatch.plan import weekly_due
from newsletter.dispatch.send import DaySend
from newsletter.errors import NewsletterError
from newsletter.feeds import build_feeds
from newsletter.ingest import ingest_files, resolve_inputs
from newsletter.models import Day, plural
from newsletter.store import Store
from newsletter.store.deliveries import DeliveryState
from newsletter.store.failures import first_line, store_failure

log = logging.getLogger("newsletter.publish")

Stage = Literal["ingest", "feeds", "send"]
ALL_STAGES: tuple[Stage, ...] = get_args(Stage)
OPEN_STATES: tuple[DeliveryState, ...] = ("pending", "retry", "sending")
"""Delivery states that still have work: a day with rows in them is not settled."""


PublishOutcome = Literal["done", "sent", "no-issue", "waiting", "incomplete", "stopped"]
"""done: the stages ran (the send, if any, finished); sent: the day's issue went out; no-issue: nothing to
send that day; waiting: no digest yet; incomplete: the send left work to retry; stopped: asked to stop."""
SETTLED_OUTCOMES: tuple[PublishOutcome, ...] = ("done", "sent", "no-issue")
"""Outcomes after which the day needs no further run (unless errors were reported)."""


@dataclass
class PublishResult:
    date: dt.date
    outcome: PublishOutcome = "done"
    details: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Stage failures (a bad digest file, an unwritable feeds folder); later stages still ran."""
    next_check: dt.datetime | None = None
    """When to run again (None: not again): waiting, incomplete, or sent with rows left to another send."""
    sent: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome in SETTLED_OUTCOMES and not self.errors

    def summary(self) -> str:
        """The outcome in words: the details say it, so the outcome's name leads only when they do not
        (no details) or it qualifies them (incomplete, stopped)."""
        named = [self.outcome] if not self.details or self.outcome in ("incomplete", "stopped") else []
        return "; ".join([*named, *self.details, *(f"error: {e}" for e in self.errors)])


class Publisher:
    """Runs the pipeline; ``stop()`` (from any thread) ends it after the message in flight."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.timezone = ZoneInfo(settings.schedule.timezone)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sends: set[DaySend] = set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sends = list(self._sends)
        for send in sends:
            send.stop()

    def today(self) -> dt.date:
        return self.clock().astimezone(self.timezone).date()

    def deadline(self, date: dt.date, scheduled_at: dt.datetime | None) -> dt.datetime:
        """When to give up waiting for ``date``'s digest."""
        parsed = parse_deadline(self.settings.schedule.deadline)
        if isinstance(parsed, int):
            return (scheduled_at or self.scheduled_time(date)) + dt.timedelta(minutes=parsed)
        wall = dt.datetime.combine(date, dt.time(*parsed))
        return WallClockCronTrigger("* * * * *", self.timezone).instant(wall)

    def scheduled_time(self, date: dt.date) -> dt.datetime:
        """When ``date``'s issue is due: the first [schedule] publish (else send) time that day, else its start."""
        start = WallClockCronTrigger("* * * * *", self.timezone).instant(dt.datetime.combine(date, dt.time()))
        cfg = self.settings.schedule
        for key, expr in (("publish", cfg.publish), ("send", cfg.send)):
            if expr:
                fire = WallClockCronTrigger(expr, self.timezone, key).first_at_or_after(start)
                if fire is not None and fire.astimezone(self.timezone).date() == date:
                    return fire
        return start

    def day_settled(self, store: Store, date: dt.date) -> bool:
        """True when ``date`` has a no-issue note, or delivery rows none of which still waits to be sent."""
        if store.no_issue_notes([date]):
            return True
        counts = store.delivery_counts([date]).get(date, {})
        return bool(counts) and not any(counts.get(state) for state in OPEN_STATES)

    def publish(self, date: dt.date | None = None, stages: Sequence[Stage] = ALL_STAGES,
                scheduled_at: dt.datetime | None = None, override_note: bool = False) -> PublishResult:
        """Run ``stages`` in order for ``date`` (default: today in [schedule] timezone).

        ``override_note``: send even if the day was noted as having no issue (the operator asked for it).
        """
        date = date or self.today()
        result = PublishResult(date)
        try:
            store = Store.from_settings(self.settings)
        except Exception as exc:  # a locked or unreachable store: try again later
            self._failed("store", exc, result)
            self._retry_later(result, scheduled_at)
            return result
        crashed = False
        with store:
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
                        self._send(store, result, scheduled_at, override_note)
                except Exception as exc:  # one stage's failure never skips the others
                    self._failed(stage, exc, result)
                    # An unfinished send, or an unexpected error anywhere, may pass (a locked
                    # database); a bad digest file or feeds folder waits for the operator.
                    crashed = crashed or stage == "send" or not isinstance(exc, NewsletterError)
        if crashed and not self.stopping and result.outcome != "incomplete":  # else _send has planned it
            self._retry_later(result, scheduled_at)
        return result

    def _failed(self, stage: Stage | Literal["store"], exc: Exception, result: PublishResult) -> None:
        if isinstance(exc, NewsletterError):
            log.error("%s failed: %s", stage, exc)
            result.errors.append(f"{stage}: {exc.message}")
            return
        failure = store_failure(exc)
        if failure is not None:  # a database error: what failed and what to check, on one line
            log.error("%s failed: %s", stage, failure.one_line())
            result.errors.append(f"{stage}: {failure.one_line()}")
        else:
            said = first_line(str(exc))
            log.error("%s failed unexpectedly: %s: %s", stage, type(exc).__name__, said)
            result.errors.append(f"{stage}: unexpected {type(exc).__name__}: {said} (log_level DEBUG shows where)")
        log.debug("%s traceback", stage, exc_info=exc)

    def _retry_later(self, result: PublishResult, scheduled_at: dt.datetime | None,
                     next_retry: dt.datetime | None = None) -> None:
        """Mark the run incomplete and, before the day's deadline, say when to run it again: after
        recheck_minutes, or at the delivery log's next retry time if that is later, but not after the
        deadline. Past the deadline nothing more is tried or noted; `newsletter status` shows what is left."""
        result.outcome = "incomplete"
        self._look_again(result, scheduled_at, next_retry)

    def _look_again(self, result: PublishResult, scheduled_at: dt.datetime | None,
                    next_retry: dt.datetime | None) -> None:
        """Set ``result.next_check`` as _retry_later describes, leaving the outcome alone."""
        now = self.clock()
        deadline = self.deadline(result.date, scheduled_at)
        local_deadline = deadline.astimezone(self.timezone)
        if now >= deadline:
            result.next_check = None
            result.details.append(f"not retried: the deadline, {local_deadline:%Y-%m-%d %H:%M} {self.timezone.key}, "
                                  "has passed; `newsletter status` shows what is left")
            return
        later = now + dt.timedelta(minutes=self.settings.schedule.recheck_minutes)
        if next_retry is not None and next_retry > later:
            later = next_retry
        result.next_check = min(later, deadline)
        result.details.append(f"run again at or after {result.next_check.astimezone(self.timezone):%H:%M} "
                              f"{self.timezone.key}")

    def _ingest(self, store: Store, result: PublishResult) -> None:
        files = resolve_inputs(self.settings, ())
        report = ingest_files(self.settings, store, files)
        c = report.counts
        log.info("ingest: %s, %s: %d new, %d updated, %d unchanged papers, %s", plural(len(files), "file"),
                 plural(c.days, "day"), c.new, c.updated, c.unchanged, plural(len(report.warnings), "warning"))
        for error in report.errors:  # one bad file never stops the others, nor the send
            log.error("ingest: %s", error)
            result.errors.append(f"ingest: {error.message}")

    def _feeds(self, store: Store, result: PublishResult) -> None:
        report = build_feeds(self.settings, store)
        log.info("feeds: %d written, %d unchanged (%s over %s)",
                 len(report.written), len(report.unchanged), plural(report.papers, "paper"), plural(report.days, "day"))

    def _send(self, store: Store, result: PublishResult, scheduled_at: dt.datetime | None,
              override_note: bool) -> None:
        date = result.date
        noted = store.no_issue_notes([date])
        if noted and not override_note:
            result.outcome = "no-issue"
            result.details.append(f"already noted: no issue for {date.isoformat()} ({noted[date]}); "
                                  f"`newsletter publish --date {date.isoformat()}` sends it anyway")
            return
        if noted:
            log.warning("sending %s despite its note \"no issue (%s)\", as asked", date.isoformat(), noted[date])
            result.details.append(f"note overridden: no issue for {date.isoformat()} ({noted[date]})")
        day = store.get_day(date)
        late = self.clock() >= self.deadline(date, scheduled_at)
        if day is None and not (late and any(weekly_due(s, date) for s in store.subscribers(status="active"))):
            self._no_digest(store, result, scheduled_at)
            return
        # Past the deadline without a digest, the weekly editions due today still go out, from the days before.
        send = DaySend(self.settings, store, date, without_digest=day is None)
        plan = send.plan
        for warning in plan.warnings:
            log.warning("plan: %s", warning)
        if not plan.messages and not store.delivery_counts([date]):
            self._nothing_planned(store, result, scheduled_at, day)
            return
        if noted and plan.messages:
            store.clear_no_issue(date)  # it has an issue now; `newsletter status` should not say otherwise
        report = self._deliver(send, result)
        if report is not None:
            self._conclude(store, result, scheduled_at, send, report)

    def _deliver(self, send: DaySend, result: PublishResult) -> DeliveryReport | None:
        """Run the send where stop() can reach it; None when stop() came before it started."""
        with self._lock:
            self._sends.add(send)
        try:
            if self.stopping:  # stop() came before the send was registered
                result.outcome = "stopped"
                return None
            send.prepare()
            return send.deliver()
        finally:
            with self._lock:
                self._sends.discard(send)

    def _conclude(self, store: Store, result: PublishResult, scheduled_at: dt.datetime | None, send: DaySend,
                  report: DeliveryReport) -> None:
        """Set the outcome from the send's report, and when to look again if rows are left."""
        date = result.date
        result.sent = report.sent
        result.details.append(summary_line(report, dated=False))
        if report.paused is not None:
            log.error("send: %s", report.paused)
            result.errors.append(f"send: {report.paused.message}")
        if self.stopping:
            result.outcome = "stopped"
        elif report.ok:
            result.outcome = "sent"
            if report.leased_elsewhere:  # another send holds them; should it have died, look again
                self._look_again(result, scheduled_at, report.leased_until)  # once their lease ran out
        else:
            counts = store.delivery_counts([date]).get(date, {})
            if any(counts.get(state) for state in OPEN_STATES):  # deferred 4xx, a pause, expired leases
                times = [t for t in (store.open_work(date, send.run.owner).next_retry_at, report.leased_until) if t]
                self._retry_later(result, scheduled_at, min(times, default=None))
            else:  # only final failures: nothing a later run could add
                result.outcome = "incomplete"

    def _nothing_planned(self, store: Store, result: PublishResult, scheduled_at: dt.datetime | None,
                         day: Day | None) -> None:
        if day is None:
            self._no_digest(store, result, scheduled_at)
            return
        if not day.papers:
            reason = "the digest lists no papers"
        elif not store.subscribers(status="active"):
            reason = "no active subscribers"
        else:
            reason = "no subscriber's filter matched any of the day's papers"
        self._note(store, result, reason)

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
        said = f"no issue for {result.date.isoformat()} ({reason})"
        if result.details and result.details[-1] == f"note overridden: {said}":  # nothing changed since
            result.details[-1] = f"{said}, as noted before: sending it anyway found nothing to send"
        else:
            result.details.append(said)
