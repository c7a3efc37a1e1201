"""The daemon's jobs: one per id across restarts, exactly one catch-up after downtime, rechecks.

These run the real BackgroundScheduler on the real clock, a real SQLite store and a real aiosmtpd
server; "downtime" is a publish time that passed before the daemon started.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent

from newsletter.schedule import Daemon
from newsletter.store import Store
from schedule_helpers import make_site, write_digest
from smtp_helpers import Recorder, free_port, smtp_server

pytestmark = pytest.mark.usefixtures("store_backend")

UTC = dt.UTC
ZONE = "Europe/Berlin"


def cron_at(instant: dt.datetime, daemon_zone: str = ZONE) -> str:
    local = instant.astimezone(ZoneInfo(daemon_zone))
    return f"{local.minute} {local.hour} * * *"


class Runs:
    """Counts the job runs the scheduler finished (and the ones it dropped as missed)."""

    def __init__(self, daemon: Daemon) -> None:
        self.executed: list[str] = []
        self.missed: list[str] = []
        self.event = threading.Event()
        daemon.scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)

    def _on_event(self, event: JobEvent) -> None:
        (self.missed if event.code == EVENT_JOB_MISSED else self.executed).append(event.job_id)
        self.event.set()


def start(daemon: Daemon) -> Runs:
    runs = Runs(daemon)
    daemon.add_jobs()
    daemon.scheduler.start()
    return runs


def settle(runs: Runs, expected: int, quiet: float = 1.5, timeout: float = 30) -> None:
    """Wait for ``expected`` runs, then a quiet spell in which no further run may start."""
    deadline = time.monotonic() + timeout
    while len(runs.executed) < expected and time.monotonic() < deadline:
        runs.event.wait(0.1)
        runs.event.clear()
    time.sleep(quiet)


@pytest.mark.parametrize(("grace_hours", "catch_ups"), [(4, 1), (1, 0)])
def test_three_hours_of_downtime_give_one_catch_up_within_the_grace_time(
        tmp_path: Path, grace_hours: int, catch_ups: int) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        missed_at = dt.datetime.now(UTC) - dt.timedelta(hours=3)
        # The deadline passed too: before it, a restart rechecks an unsettled day whatever the grace time.
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\npublish = "{cron_at(missed_at)}"\n'
                                                    f"misfire_grace_time = {grace_hours * 3600}\ndeadline = 120\n")
        daemon = Daemon(settings)
        write_digest(settings, daemon.local_date(missed_at))
        runs = start(daemon)
        try:
            settle(runs, catch_ups)
            assert runs.executed == ["publish"] * catch_ups
            assert sorted(recorder.per_recipient().values()) == [1] * 5 * catch_ups
            next_run = daemon.scheduler.get_job("publish").next_run_time
            assert next_run > dt.datetime.now(UTC) + dt.timedelta(hours=20)  # tomorrow's, not another catch-up
        finally:
            daemon.shutdown()


def test_missed_hourly_runs_coalesce_into_one(tmp_path: Path) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        minute = (dt.datetime.now(UTC) - dt.timedelta(minutes=5)).minute
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\npublish = "{minute} * * * *"\n')
        daemon = Daemon(settings)
        now = dt.datetime.now(UTC)
        missed = list(daemon.triggers["publish"].fire_times(now - daemon.grace, now))
        assert len(missed) == 4  # four hourly times within the 4-hour grace
        write_digest(settings, daemon.local_date(missed[-1]))
        runs = start(daemon)
        try:
            settle(runs, 1)
            assert runs.executed == ["publish"]
            assert sorted(recorder.per_recipient().values()) == [1] * 5
        finally:
            daemon.shutdown()


def test_a_settled_day_is_not_caught_up_again(tmp_path: Path) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        missed_at = dt.datetime.now(UTC) - dt.timedelta(hours=1)
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\npublish = "{cron_at(missed_at)}"\n')
        daemon = Daemon(settings)
        write_digest(settings, daemon.local_date(daemon.last_fire_time("publish", dt.datetime.now(UTC))))
        runs = start(daemon)
        try:
            settle(runs, 1)
        finally:
            daemon.shutdown()
        assert recorder.count() == 5
        restarted = Daemon(settings)
        runs = start(restarted)  # the day's issue went out: a restart has nothing to catch up
        try:
            settle(runs, 0, quiet=1.0)
            assert runs.executed == [] and recorder.count() == 5
        finally:
            restarted.shutdown()


def test_a_restart_keeps_one_job_per_id(tmp_path: Path) -> None:
    settings = make_site(tmp_path, free_port(), f'timezone = "{ZONE}"\npublish = "0 7 * * *"\n'
                                                'ingest = "*/15 * * * *"\nfeeds = "5 * * * *"\n'
                                                "misfire_grace_time = 7200\n")
    # Started before the day's publish time, whatever the real time of day: a start after it would
    # rightly add a publish-recheck for the unsettled day (see test_schedule_recheck.py).
    zone = ZoneInfo(ZONE)
    started = dt.datetime.now(zone).replace(hour=5, minute=0, second=0, microsecond=0).astimezone(UTC)
    daemon = Daemon(settings, clock=lambda: started)
    daemon.add_jobs()
    daemon.add_jobs()  # what a restart or a reload does
    daemon.scheduler.start(paused=True)
    try:
        daemon.add_jobs()
        jobs = daemon.scheduler.get_jobs()
        assert sorted(job.id for job in jobs) == ["feeds", "ingest", "publish"]
        for job in jobs:
            assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 7200)
        local = daemon.scheduler.get_job("publish").next_run_time.astimezone(daemon.timezone)
        assert (local.hour, local.minute) == (7, 0)
    finally:
        daemon.scheduler.shutdown(wait=False)


def test_a_missing_digest_is_rechecked_and_no_older_day_is_sent(tmp_path: Path) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\nrecheck_minutes = 10\n'
                                                    "deadline = 600\n")
        daemon = Daemon(settings)
        now = dt.datetime.now(UTC)
        today = daemon.local_date(now)
        write_digest(settings, today - dt.timedelta(days=1))
        daemon.scheduler.start(paused=True)
        try:
            daemon.run_job("publish", today, scheduled_at=now)
            recheck = daemon.scheduler.get_job("publish-recheck")
            assert abs(recheck.next_run_time - (now + dt.timedelta(minutes=10))) < dt.timedelta(seconds=5)
            assert recheck.args == ("publish", today, now)
        finally:
            daemon.scheduler.shutdown(wait=False)
        assert recorder.count() == 0  # yesterday's digest is there, and is not sent again
        with Store.from_settings(settings) as store:
            assert store.no_issue_notes([today]) == {}
            assert store.delivery_counts() == {}


@pytest.mark.parametrize("deadline", ['"00:00"', "0"])
def test_at_the_deadline_the_day_is_noted_without_an_issue(tmp_path: Path, deadline: str) -> None:
    settings = make_site(tmp_path, free_port(), f'timezone = "{ZONE}"\ndeadline = {deadline}\n')
    daemon = Daemon(settings)
    now = dt.datetime.now(UTC)
    today = daemon.local_date(now)
    write_digest(settings, today - dt.timedelta(days=1))
    daemon.run_job("publish", today, scheduled_at=now - dt.timedelta(minutes=1))
    assert daemon.scheduler.get_job("publish-recheck") is None
    with Store.from_settings(settings) as store:
        (reason,) = store.no_issue_notes([today]).values()
    assert reason.startswith(f"no digest for {today.isoformat()} by the deadline")
