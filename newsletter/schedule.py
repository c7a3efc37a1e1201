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
time the publisher names, until the deadline.

Several daemons may share one store (on several machines): they elect a leader through a lease in
the store (store/leadership.py), and only the leader has jobs. It renews the lease every third of
``[schedule] leader_lease_seconds``; the others try at the same pace and take over once the lease has
run out, or at once when the leader was a process on their machine that is gone. A new leader adds
the jobs as a restarted daemon does, so it catches up a run the old one missed. Should two daemons
ever run a job at once (a leader stalled past its lease), nobody gets mail twice: the delivery log
leases each message.

Cron expressions are read on the local wall clock of ``[schedule] timezone`` by WallClockCronTrigger
(newsletter/calendar.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from newsletter.calendar import WallClockCronTrigger, zone
from newsletter.clock import Clock, utc_now
from newsletter.config import Settings
from newsletter.dispatch.delivery import describe_owner, make_owner, owner_is_dead
from newsletter.publish import Publisher, PublishResult, Stage
from newsletter.shutdown import POLL_SECONDS, StopSignals
from newsletter.store import Store
from newsletter.store.failures import store_failure
from newsletter.store.leadership import SCHEDULE_LEADER

log = logging.getLogger("newsletter.schedule")

JOB_STAGES: dict[str, tuple[Stage, ...]] = {
    "publish": ("ingest", "feeds", "send"),
    "ingest": ("ingest",),
    "feeds": ("feeds",),
    "send": ("send",),
}
"""Job id (= the [schedule] key holding its cron) -> the stages it runs, in order."""
SENDING_JOBS = ("publish", "send")

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
        self.owner = make_owner()
        self.lease = dt.timedelta(seconds=cfg.leader_lease_seconds)
        self.leading = False
        self._leader_seen: str | None = None

    # -- leadership ---------------------------------------------------------------------------

    def campaign(self, store: Store, now: dt.datetime) -> bool:
        """Hold the leader's lease, or take it when it is free, has run out, or its holder's process on
        this machine is gone. Becoming leader adds the jobs; losing the lease removes them. Whether this
        daemon leads."""
        holder = store.hold_role(SCHEDULE_LEADER, self.owner, now, now + self.lease)
        if holder != self.owner and owner_is_dead(holder):
            holder = store.hold_role(SCHEDULE_LEADER, self.owner, now, now + self.lease, dead_holder=holder)
        leading = holder == self.owner
        if leading and not self.leading:
            log.info("leading the schedule (lease %ss)", self.settings.schedule.leader_lease_seconds)
            self.add_jobs(store)
            self._log_jobs()
        elif not leading and self.leading:
            log.warning("%s took over the schedule: this daemon's jobs are removed", describe_owner(holder))
            self.scheduler.remove_all_jobs()
        elif not leading and holder != self._leader_seen:
            log.info("%s leads the schedule; standing by to take over", describe_owner(holder))
        self.leading, self._leader_seen = leading, holder
        return leading

    def resign(self, store: Store) -> None:
        """Give up the lead at shutdown, so that another daemon takes over at its next try."""
        if self.leading:
            store.give_up_role(SCHEDULE_LEADER, self.owner)
            self.leading = False

    def _campaign_or_step_down(self, store: Store) -> None:
        try:
            self.campaign(store, self.clock())
        except Exception as exc:  # the store is unreachable: another daemon may take over, so stop leading
            failure = store_failure(exc)
            log.error("cannot reach the store to hold the schedule's lead: %s", failure.one_line() if failure else exc)
            if self.leading:
                self.scheduler.remove_all_jobs()
                self.leading = False

    # -- jobs ---------------------------------------------------------------------------------

    def add_jobs(self, store: Store | None = None) -> None:
        """Add (or replace) one job per configured cron; safe to call again, e.g. after a restart."""
        if store is None:
            with Store.from_settings(self.settings) as opened:  # one store for every job's start-up check
                self.add_jobs(opened)
            return
        now = self.clock()
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
            log.warning("job %s: today's run at %s was missed and its deadline, %s, has passed: %s is not "
                        "settled and nothing is caught up; `newsletter publish --date %s` runs it by hand",
                        job_id, fired[-1].astimezone(self.timezone).isoformat(),
                        deadline.astimezone(self.timezone).isoformat(), today.isoformat(), today.isoformat())
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

    def run(self) -> int:
        """Run in the foreground until SIGTERM or SIGINT; returns the exit status (0)."""
        renew_every = self.lease.total_seconds() / 3
        with StopSignals() as stop, Store.from_settings(self.settings) as store:
            self.scheduler.start()
            self._campaign_or_step_down(store)
            while stop.wait(renew_every) is None:
                self._campaign_or_step_down(store)
            log.info("received %s: finishing the message in flight, then exiting", stop.name)
            self.shutdown()
            self.resign(store)
        return 0

    def _log_jobs(self) -> None:
        for job in self.scheduler.get_jobs():
            next_run = getattr(job, "next_run_time", None)  # unset until the scheduler has started
            log.info("job %s: %s, next run %s", job.id, job.trigger, next_run.isoformat() if next_run else "never")

    def shutdown(self) -> None:
        self.publisher.stop()
        self.scheduler.shutdown(wait=True)
        log.info("stopped")


class Stoppable(Protocol):
    def stop(self) -> None: ...


def run_in_foreground_thread(publisher: Stoppable, target: Any) -> Any:
    """Run ``target()`` in a worker thread; SIGTERM/SIGINT stop ``publisher`` (a Publisher, a sender
    worker) and the result still comes back."""
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=worker, name="publish")
    with StopSignals() as stop:
        thread.start()
        stopped = False
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if stop.received is not None and not stopped:
                log.info("received %s: finishing the message in flight, then exiting", stop.name)
                publisher.stop()
                stopped = True
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
