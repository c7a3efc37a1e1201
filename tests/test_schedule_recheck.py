"""Days that do not finish at publish time are finished by the daemon's recheck, also after a restart.

Real BackgroundScheduler on the real clock, a real SQLite store and a real aiosmtpd server. Where
a recheck would be minutes away, the publisher's clock (the only thing faked) runs ``recheck_minutes``
behind the real one: "recheck_minutes from now" is then due at once for the scheduler, while the
delivery log's retry times, written on the real clock, still decide when the recheck runs.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy import event
from sqlalchemy.pool import Pool

from newsletter.config import Settings
from newsletter.schedule import Daemon
from newsletter.store import Store
from schedule_helpers import break_delivery_log, make_site, repair_delivery_log, write_digest
from smtp_helpers import Recorder, free_port, smtp_server

pytestmark = pytest.mark.usefixtures("store_backend")

UTC = dt.UTC
ZONE = "Europe/Berlin"
RECHECK_MINUTES = 15
GREYLIST = "451 4.7.1 Greylisted, please try again later"


def lagging_clock() -> dt.datetime:
    return dt.datetime.now(UTC) - dt.timedelta(minutes=RECHECK_MINUTES)


class FinishedRuns:
    """Records the runs the scheduler finishes; create it before the scheduler starts."""

    def __init__(self, daemon: Daemon) -> None:
        self.events: list[JobExecutionEvent] = []
        self.changed = threading.Condition()
        daemon.scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED)

    def _on_event(self, ev: JobExecutionEvent) -> None:
        with self.changed:
            self.events.append(ev)
            self.changed.notify_all()

    def wait(self, job_id: str, count: int, timeout: float = 15) -> list[JobExecutionEvent]:
        def runs() -> list[JobExecutionEvent]:
            return [ev for ev in self.events if ev.job_id == job_id]

        with self.changed:
            assert self.changed.wait_for(lambda: len(runs()) >= count, timeout), \
                f"{job_id} ran {len(runs())} times, expected {count}"
            return runs()


def noon_zone() -> str:
    """A zone without DST where it is now about noon, so that 'hours ago' is still today there."""
    offset = (12 - dt.datetime.now(UTC).hour + 12) % 24 - 12  # -11 .. +12 hours from UTC
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # POSIX sign: Etc/GMT-3 is UTC+3


def counts_for(settings: Settings, date: dt.date) -> dict[str, int]:
    with Store.from_settings(settings) as store:
        return store.delivery_counts([date]).get(date, {})


def late_restart_site(folder: Path, smtp_port: int, deadline_minutes: int) -> tuple[Settings, dt.date]:
    """A daemon restarted 4.5 h after today's publish time: beyond the 4 h grace time, so no catch-up."""
    zone_name = noon_zone()
    published = dt.datetime.now(ZoneInfo(zone_name)) - dt.timedelta(hours=4, minutes=30)
    settings = make_site(folder, smtp_port, f'timezone = "{zone_name}"\n'
                                            f'publish = "{published.minute} {published.hour} * * *"\n'
                                            f"misfire_grace_time = 14400\ndeadline = {deadline_minutes}\n")
    return settings, published.date()


def test_greylisted_readers_get_the_day_from_the_recheck(tmp_path: Path) -> None:
    # Every reader is refused with a 451 twice (all of this run's attempts), then accepted.
    recorder = Recorder(rcpt_fault=lambda _rcpt, seen: GREYLIST if seen < 2 else None)
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\nrecheck_minutes = {RECHECK_MINUTES}\n',
                             smtp="max_attempts = 2\nretry_delay = 0.3\npause_after_failures = 50\n")
        daemon = Daemon(settings, clock=lagging_clock)
        today = daemon.local_date(dt.datetime.now(UTC))
        write_digest(settings, today)
        finished = FinishedRuns(daemon)
        daemon.scheduler.start()
        try:
            daemon.run_job("publish", today, scheduled_at=lagging_clock())
            assert recorder.count() == 0 and counts_for(settings, today) == {"retry": 5}
            recheck = daemon.scheduler.get_job("publish-recheck")
            assert recheck is not None  # deferred messages are not left for tomorrow's run
            with Store.from_settings(settings) as store:
                next_retry = store.open_work(today, "").next_retry_at
            assert next_retry is not None
            # The later of recheck_minutes (now, on the real clock) and the log's next retry.
            assert abs(recheck.next_run_time - next_retry) < dt.timedelta(seconds=1)
            finished.wait("publish-recheck", 1)
        finally:
            daemon.shutdown()
    assert sorted(recorder.per_recipient().values()) == [1] * 5
    assert counts_for(settings, today) == {"sent": 5}
    assert daemon.scheduler.get_job("publish-recheck") is None  # finished: nothing more to check


@pytest.mark.parametrize(("retry_delay", "waits_for"), [(1.0, "recheck_minutes"), (3600.0, "next retry")])
def test_an_incomplete_day_is_rechecked_at_the_later_of_recheck_minutes_and_the_next_retry(
        tmp_path: Path, retry_delay: float, waits_for: str) -> None:
    recorder = Recorder(rcpt_fault=lambda _rcpt, _seen: GREYLIST)
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\nrecheck_minutes = {RECHECK_MINUTES}\n'
                                                    "deadline = 600\n",
                             smtp=f"max_attempts = 1\nretry_delay = {retry_delay}\n", subscribers=2)
        daemon = Daemon(settings)
        now = dt.datetime.now(UTC)
        today = daemon.local_date(now)
        write_digest(settings, today)
        daemon.scheduler.start(paused=True)
        try:
            daemon.run_job("publish", today, scheduled_at=now)
            recheck = daemon.scheduler.get_job("publish-recheck")
        finally:
            daemon.scheduler.shutdown(wait=False)
    expected = now + dt.timedelta(minutes=RECHECK_MINUTES) if waits_for == "recheck_minutes" else \
        now + dt.timedelta(seconds=retry_delay)
    assert abs(recheck.next_run_time - expected) < dt.timedelta(seconds=5)
    assert recheck.args == ("publish", today, now)


def test_after_the_deadline_an_incomplete_day_is_left_to_status(tmp_path: Path) -> None:
    recorder = Recorder(rcpt_fault=lambda _rcpt, _seen: GREYLIST)
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\ndeadline = 0\n',
                             smtp="max_attempts = 1\nretry_delay = 0\n", subscribers=2)
        daemon = Daemon(settings)
        now = dt.datetime.now(UTC)
        today = daemon.local_date(now)
        write_digest(settings, today)
        daemon.run_job("publish", today, scheduled_at=now - dt.timedelta(minutes=1))
    assert daemon.scheduler.get_job("publish-recheck") is None
    assert counts_for(settings, today) == {"retry": 2}
    with Store.from_settings(settings) as store:
        assert store.no_issue_notes([today]) == {}  # the day had an issue; status shows what is left


@pytest.mark.parametrize(("deadline_minutes", "sent"), [(300, 5), (240, 0)])
def test_a_restart_past_the_grace_time_still_sends_a_late_digest_before_the_deadline(
        tmp_path: Path, deadline_minutes: int, sent: int) -> None:
    # The rechecks that waited for the digest died with the old daemon; the digest is here now.
    # Deadline 300 min after publishing: 30 min from now; 240 min: 30 min ago.
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings, today = late_restart_site(tmp_path, server.port, deadline_minutes)
        daemon = Daemon(settings)
        assert daemon.local_date(dt.datetime.now(UTC)) == today
        write_digest(settings, today)
        daemon.add_jobs()
        recheck = daemon.scheduler.get_job("publish-recheck")
        assert (recheck is not None) == bool(sent)
        finished = FinishedRuns(daemon)
        daemon.scheduler.start()
        try:
            if sent:
                (run,) = finished.wait("publish-recheck", 1)
                assert run.exception is None
            else:
                time.sleep(1.0)  # a run, if there were one, would start at once
        finally:
            daemon.shutdown()
    assert sorted(recorder.per_recipient().values()) == [1] * sent
    assert counts_for(settings, today) == ({"sent": sent} if sent else {})


def test_a_restart_past_the_deadline_names_the_missed_run_and_the_command_that_sends_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings, today = late_restart_site(tmp_path, free_port(), 240)  # deadline 30 min ago
    daemon = Daemon(settings)
    with caplog.at_level("WARNING", logger="newsletter.schedule"):
        daemon.add_jobs()
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "newsletter.schedule"]
    assert logged.startswith("job publish: today's run at ")
    assert f"{today} is not settled and nothing is caught up; `newsletter publish --date {today}` runs it" in logged
    assert daemon.scheduler.get_job("publish-recheck") is None


def test_a_restart_while_waiting_for_the_digest_keeps_waiting_and_notes_nothing(tmp_path: Path) -> None:
    settings, _today = late_restart_site(tmp_path, free_port(), 300)
    daemon = Daemon(settings)
    daemon.add_jobs()
    finished = FinishedRuns(daemon)
    daemon.scheduler.start()
    try:
        finished.wait("publish-recheck", 1)
        again = daemon.scheduler.get_job("publish-recheck")
        now = dt.datetime.now(UTC)
        assert abs(again.next_run_time - (now + dt.timedelta(minutes=15))) < dt.timedelta(seconds=5)
    finally:
        daemon.shutdown()
    with Store.from_settings(settings) as store:
        assert store.no_issue_notes() == {}


def test_a_settled_day_is_not_rechecked_at_start(tmp_path: Path) -> None:
    settings, today = late_restart_site(tmp_path, free_port(), 300)
    with Store.from_settings(settings) as store:
        store.record_no_issue(today, "the digest lists no papers")
    daemon = Daemon(settings)
    daemon.add_jobs()
    assert daemon.scheduler.get_job("publish-recheck") is None


def test_the_start_up_checks_and_a_run_each_open_one_store(tmp_path: Path) -> None:
    engines: list[object] = []

    def on_first_connect(_dbapi_connection: object, record: object) -> None:
        engines.append(record)

    missed = dt.datetime.now(ZoneInfo(ZONE)) - dt.timedelta(hours=1)
    cron = f"{missed.minute} {missed.hour} * * *"
    settings = make_site(tmp_path, free_port(), f'timezone = "{ZONE}"\npublish = "{cron}"\nsend = "{cron}"\n'
                                                'ingest = "*/5 * * * *"\n')
    daemon = Daemon(settings)
    event.listen(Pool, "first_connect", on_first_connect)
    try:
        daemon.add_jobs()  # three jobs, two of them sending and missed: one store for all their checks
        assert len(engines) == 1
        daemon.publisher.publish(daemon.local_date(missed), ("ingest", "feeds"))
        assert len(engines) == 2
    finally:
        event.remove(Pool, "first_connect", on_first_connect)


def test_an_unexpected_error_in_a_stage_is_logged_and_rechecked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\nrecheck_minutes = {RECHECK_MINUTES}\n')
        daemon = Daemon(settings, clock=lagging_clock)
        today = daemon.local_date(dt.datetime.now(UTC))
        write_digest(settings, today)
        break_delivery_log(settings, "disk I/O error (simulated)")
        daemon.scheduler.start(paused=True)
        try:
            daemon.run_job("publish", today, scheduled_at=lagging_clock())
            # One line on both backends: what failed, the driver's first line, what to check.
            (logged,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("send failed")]
            assert logged.startswith("send failed: the database refused a change (table deliveries): "
                                     "disk I/O error (simulated); hint: check the constraints and triggers")
            assert "\n" not in logged
            assert daemon.scheduler.get_job("publish-recheck") is not None
            assert recorder.count() == 0
            repair_delivery_log(settings)
            finished = FinishedRuns(daemon)
            daemon.scheduler.resume()
            finished.wait("publish-recheck", 1)
        finally:
            daemon.shutdown()
    assert sorted(recorder.per_recipient().values()) == [1] * 5
