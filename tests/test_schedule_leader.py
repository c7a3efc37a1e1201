"""Several `newsletter schedule` daemons on one store: one leader publishes, the others take over when it dies.

The end-to-end case runs two real daemons publishing every minute against a real aiosmtpd server, on a real
SQLite file and a real PostgreSQL server at the same time (``tests/simultaneous.py``), and waits for real cron
minutes (up to ~2.5 min).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from helpers import run
from newsletter.clock import utc_now
from newsletter.config import Settings
from newsletter.dispatch.delivery import Owner
from newsletter.schedule import Daemon
from newsletter.store import Store
from newsletter.store.leadership import SCHEDULE_LEADER
from schedule_helpers import make_site, newsletter_process, write_digest
from simultaneous import BACKENDS, Simultaneous, scenario_fixture
from smtp_helpers import Recorder, free_port, smtp_server

LEASE = 6


def leader_pid(settings: Settings) -> int | None:
    with Store.from_settings(settings) as store:
        held = store.role_holder(SCHEDULE_LEADER)
    owner = Owner.parse(held[0]) if held else None
    return owner.pid if owner else None


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.2)


def stop(daemon: subprocess.Popen[str]) -> str:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    _out, err = daemon.communicate(timeout=30)
    return err


@dataclass(frozen=True)
class TakenOver:
    leader: int
    follower: int
    after_first_run: list[int]
    """Messages per reader a moment after the first run: a second publish by the follower would show."""
    added_late: tuple[str, int]
    """What `subscribers add` printed on stderr while the leader was dead, and its exit code."""
    took_over: float
    """Seconds from killing the leader to the follower holding the role."""
    per_recipient: dict[str, int]
    logs: dict[int, str]
    follower_returncode: int | None


def kill_the_leader(folder: Path, store_url: str) -> TakenOver:
    """Two daemons publishing every minute: the first run, the leader killed, the next minute's run."""
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(folder, server.port, f'timezone = "UTC"\npublish = "* * * * *"\n'
                                                  f"leader_lease_seconds = {LEASE}\n", subscribers=4,
                             store_url=store_url)
        write_digest(settings, utc_now().date())
        write_digest(settings, utc_now().date() + dt.timedelta(days=1))  # should the run cross midnight
        daemons = [newsletter_process(settings, "schedule") for _ in range(2)]
        try:
            wait_for(lambda: recorder.count() >= 4, 90)
            first = leader_pid(settings)
            assert first in [d.pid for d in daemons]
            (leader,) = [d for d in daemons if d.pid == first]
            (follower,) = [d for d in daemons if d.pid != first]
            time.sleep(2)  # a second publish, if the follower made one, would show up here
            after_first_run = sorted(recorder.per_recipient().values())

            leader.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            adding = newsletter_process(settings, "subscribers", "add", "late@example.org")
            added_late = (adding.communicate(timeout=60)[1], adding.returncode)
            wait_for(lambda: leader_pid(settings) == follower.pid, 60)
            took_over = time.monotonic() - killed_at
            wait_for(lambda: recorder.count() >= 5, 75)  # the next minute's run
        finally:
            logs = {d.pid: stop(d) for d in daemons}
    return TakenOver(leader.pid, follower.pid, after_first_run, added_late,
                     took_over, dict(recorder.per_recipient()), logs, follower.returncode)


taken_over = scenario_fixture(kill_the_leader)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_leader_publishes_and_another_takes_over_when_it_is_killed(taken_over: Simultaneous[TakenOver],
                                                                       backend: str) -> None:
    outcome = taken_over.outcome(backend)
    assert outcome.after_first_run == [1] * 4
    assert outcome.added_late[1] == 0, outcome.added_late[0]
    assert outcome.took_over < 60
    assert outcome.per_recipient["late@example.org"] == 1
    assert sorted(outcome.per_recipient.values()) == [1] * 5
    assert "job publish for" in outcome.logs[outcome.leader]
    before, _, after = outcome.logs[outcome.follower].partition("leading the schedule")
    assert "job publish for" not in before and "job publish for" in after
    assert outcome.follower_returncode == 0


def test_a_live_leader_keeps_the_role_and_a_lapsed_one_loses_it(tmp_path: Path, store_url: str) -> None:
    settings = make_site(tmp_path, free_port(), 'publish = "0 7 * * *"\nleader_lease_seconds = 30\n', subscribers=0,
                         store_url=store_url)
    elsewhere = "otherhost/another-machine/4242/cafe"  # a daemon on another machine: its pid cannot be checked
    now = utc_now()
    with Store.from_settings(settings) as store:
        store.hold_role(SCHEDULE_LEADER, elsewhere, now, now + dt.timedelta(seconds=30))
        daemon = Daemon(settings)
        while_held = daemon.campaign(store, now + dt.timedelta(seconds=29))
        shown_while_held = run(settings.path, "status").stdout
        lapsed = daemon.campaign(store, now + dt.timedelta(seconds=31))
        renewed = store.role_holder(SCHEDULE_LEADER)
        other_then = store.hold_role(SCHEDULE_LEADER, elsewhere, now + dt.timedelta(seconds=40),
                                     now + dt.timedelta(seconds=70))
        jobs_while_leading = sorted(job.id for job in daemon.scheduler.get_jobs())
        daemon.resign(store)
        after_resigning = store.role_holder(SCHEDULE_LEADER)
        assert daemon.campaign(store, now + dt.timedelta(seconds=41))  # free again: taken at once
        # This daemon stalls past its lease (until 71 s) and the other takes the role: its jobs go.
        taken = store.hold_role(SCHEDULE_LEADER, elsewhere, now + dt.timedelta(seconds=72),
                                now + dt.timedelta(seconds=102))
        deposed = daemon.campaign(store, now + dt.timedelta(seconds=73))

    assert (while_held, lapsed) == (False, True)
    assert shown_while_held.startswith("schedule: led by otherhost, pid 4242, lease until ")
    assert renewed is not None and Owner.parse(renewed[0]).pid == os.getpid()  # type: ignore[union-attr]
    assert renewed[1] == now + dt.timedelta(seconds=31 + 30)
    assert other_then != elsewhere  # still ours: renewed until 61 s
    assert jobs_while_leading == ["publish"]
    assert after_resigning is None
    assert (taken, deposed, daemon.scheduler.get_jobs()) == (elsewhere, False, [])


def test_a_store_failure_while_holding_the_lead_is_logged_as_one_line_with_what_to_check(
        tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_site(tmp_path, free_port(), 'publish = "0 7 * * *"\n', subscribers=0, store_url=store_url)
    with Store.from_settings(settings) as store:
        daemon = Daemon(settings)
        assert daemon.campaign(store, utc_now())
        with store.engine.begin() as conn:  # the store breaks under the daemon (here: its table is gone)
            conn.execute(text("DROP TABLE leader_leases"))
        with caplog.at_level("ERROR", logger="newsletter.schedule"):
            daemon._campaign_or_step_down(store)

    (logged,) = [r.getMessage() for r in caplog.records if r.name == "newsletter.schedule" and r.levelname == "ERROR"]
    assert logged.startswith("cannot reach the store to hold the schedule's lead: the database ")
    assert "leader_leases" in logged and "; hint: check " in logged
    assert "`newsletter db current`" in logged and "disk" not in logged and "server" not in logged  # a missing table
    assert "\n" not in logged and "[SQL:" not in logged and "sqlalche.me" not in logged
    assert not daemon.leading and daemon.scheduler.get_jobs() == []
