"""Delivery under the faults of issue 11 (points 1-6), against a real aiosmtpd server with scripted
replies, a real SQLite file and the real `newsletter send` (in-process through click, or as a
process killed with SIGKILL where the case is a crash).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import smtp_helpers
from helpers import run, write_config
from newsletter.clock import utc_now
from newsletter.config import Settings, load_settings
from newsletter.dispatch.delivery import (
    DeliveryReport,
    DeliveryRun,
    Owner,
    classify,
    leases_statement,
    make_owner,
    retry_delay,
)
from newsletter.dispatch.plan import build_plan
from newsletter.dispatch.transport import Reply
from newsletter.models import Subscriber
from newsletter.publish import Publisher
from newsletter.schedule import Daemon
from newsletter.store import Store
from newsletter.store.schema import deliveries
from schedule_helpers import make_site, write_digest
from smtp_helpers import (
    DeliveryProject,
    Recorder,
    add_subscribers,
    delivery_project,
    free_port,
    smtp_server,
    smtp_settings,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"
DAY = "2026-11-19"
DATE = dt.date.fromisoformat(DAY)
TINY_DAY = dt.date(2025, 3, 4)


def site(folder: Path, port: int, readers: list[str], smtp: str = "timeout = 5\n",
         store_url: str = "sqlite:///var/test.db") -> Path:
    """A config sending the example digest of DAY to ``readers`` over 127.0.0.1:``port``."""
    config = write_config(folder, digests=f'["{EXAMPLES / (DAY + ".md")}"]', store_url=store_url, extra=f"""
[smtp]
host = "127.0.0.1"
port = {port}
retry_delay = 0.05
{smtp}""")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        store.upsert_subscribers([Subscriber(email=email) for email in readers])
    return config


def readers(count: int, domains: int = 1) -> list[str]:
    return [f"reader{i:03d}@{'example.com' if domains == 1 else f'mail{i % domains}.example'}"
            for i in range(count)]


def states(settings: Settings, date: dt.date = DATE) -> dict[str, int]:
    with Store.from_settings(settings) as store:
        return store.delivery_counts([date]).get(date, {})


def send_json(config: Path) -> tuple[int, dict[str, Any]]:
    result = run(config, "send", "--date", DAY, "--json")
    return result.exit_code, json.loads(result.stdout)


def foreign_owner() -> str:
    """A send in another pid namespace or on another host: its pid cannot be checked from here."""
    return str(Owner("container", f"{uuid.uuid4()}:4026532999", 1, "0badf00d"))


def leave_rows_leased(settings: Settings, held: int, lease_until: dt.datetime) -> list[str]:
    """The log as a send leaves it that was killed where we cannot look: ``held`` rows leased to it
    until ``lease_until``, every other row sent. Returns the held addresses."""
    now = utc_now()
    with Store.from_settings(settings) as store:
        total = store.create_deliveries(build_plan(settings, store, DATE).messages, now)
        for row in store.claim_deliveries(DATE, "an earlier send", now, now + dt.timedelta(minutes=5), total - held):
            store.mark_sent(row.id, "250 2.0.0 Ok: queued", now)
        leased = store.claim_deliveries(DATE, foreign_owner(), now, lease_until, held)
    return [row.email for row in leased]


# -- 1. expired leases ------------------------------------------------------------------------


def test_an_expired_lease_is_taken_over_even_when_nothing_else_is_due(tmp_path: Path, store_url: str) -> None:
    handler = Recorder()
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, readers(40), store_url=store_url)
        held = leave_rows_leased(load_settings(config), 17, utc_now() - dt.timedelta(seconds=5))
        code, report = send_json(config)
    assert code == 0, report
    assert (report["due"], report["sent"], report["leased_elsewhere"], report["ok"]) == (17, 17, 0, True)
    assert handler.per_recipient() == {email: 1 for email in held}
    assert states(load_settings(config)) == {"sent": 40}


@pytest.mark.usefixtures("store_backend")
def test_rows_another_send_still_holds_are_named_with_their_lease_and_publish_rechecks(tmp_path: Path) -> None:
    handler = Recorder()
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, readers(10))
        settings = load_settings(config)
        lease_until = utc_now() + dt.timedelta(minutes=40)
        leave_rows_leased(settings, 3, lease_until)
        shown = run(config, "send", "--date", DAY)
        now = utc_now()
        result = Publisher(settings).publish(DATE, stages=("send",), scheduled_at=now)
    assert shown.exit_code == 0  # a live send holds them: it delivers them
    assert "3 are held by another send (container, pid 1)" in shown.output
    assert f"until {lease_until:%Y-%m-%d %H:%M:%S} UTC" in shown.output
    # Its rows are that send's to deliver, but should it be gone, a run after its lease takes them over.
    assert result.ok and "3 are held by another send (container, pid 1)" in result.summary()
    assert result.next_check is not None and abs(result.next_check - lease_until) < dt.timedelta(seconds=2)
    assert handler.count() == 0


@pytest.mark.usefixtures("store_backend")
def test_the_daemon_looks_again_when_the_lease_of_another_send_runs_out(tmp_path: Path) -> None:
    handler = Recorder()
    with smtp_server(handler) as server:
        settings = make_site(tmp_path, server.port, 'timezone = "UTC"\ndeadline = 600\n', subscribers=6)
        daemon = Daemon(settings)
        now = utc_now()
        today = daemon.local_date(now)
        write_digest(settings, today)
        lease_until = now + dt.timedelta(minutes=40)
        with Store.from_settings(settings) as store:
            assert run(settings.path, "ingest").exit_code == 0
            store.create_deliveries(build_plan(settings, store, today).messages, now)
            store.claim_deliveries(today, foreign_owner(), now, lease_until, 2)
        daemon.scheduler.start(paused=True)
        try:
            daemon.run_job("publish", today, scheduled_at=now)
            recheck = daemon.scheduler.get_job("publish-recheck")
        finally:
            daemon.scheduler.shutdown(wait=False)
    assert handler.count() == 4
    assert recheck is not None and abs(recheck.next_run_time - lease_until) < dt.timedelta(seconds=2)


@pytest.mark.usefixtures("store_backend")
def test_rows_left_past_their_lease_make_the_report_fail_with_a_statement(tmp_path: Path) -> None:
    """A lease that runs out while a send finishes (after its last claim) cannot be taken over by
    it any more: the run must not end "ok" then."""
    config = site(tmp_path, free_port(), readers(5))
    settings = load_settings(config)
    lease_until = utc_now() + dt.timedelta(minutes=1)
    leave_rows_leased(settings, 2, lease_until)
    report = DeliveryReport(DATE)
    with Store.from_settings(settings) as store:
        report.note_leases(store.open_work(DATE, make_owner(), now=lease_until - dt.timedelta(seconds=1)))
        assert report.ok and (report.leased_elsewhere, report.expired_elsewhere) == (2, 0)
        report.note_leases(store.open_work(DATE, make_owner(), now=lease_until + dt.timedelta(seconds=1)))
    assert not report.ok and (report.leased_elsewhere, report.expired_elsewhere) == (2, 2)
    assert leases_statement(report) == ("2 are held by another send (container, pid 1), 2 of them past their lease: "
                                        "that send may have died; run `newsletter send` again to take them over")
    assert not report.as_dict()["ok"]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.usefixtures("store_backend")
@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare --pid --fork --mount-proc` (root) to make a "
                                                 "pid namespace; the test above covers the same leases without it")
def test_a_send_killed_as_pid_1_of_a_container_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    total = 60
    handler = Recorder(reply_delay=0.02)
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, readers(total), smtp="timeout = 2\nlease_seconds = 8\n")
        log = (tmp_path / "container.log").open("wb")
        contained = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
             sys.executable, "-m", "newsletter", "--config", str(config), "send", "--date", DAY],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while handler.count() < 30:
            assert contained.poll() is None and time.monotonic() < deadline, (tmp_path / "container.log").read_text()
            time.sleep(0.01)
        os.kill(contained.pid, signal.SIGKILL)  # --kill-child: the send, pid 1 inside, dies with it
        contained.wait()
        killed_at = time.monotonic()
        left = states(load_settings(config))
        # From the host its pid means nothing: a send now sends what is pending and names the rest.
        host_code, host_send = send_json(config)
        time.sleep(max(0.0, killed_at + 8.5 - time.monotonic()))  # the lease runs out
        code, report = send_json(config)
    assert left.get("sending"), left  # the dead send left leased rows
    assert host_code == 0 and host_send["leased_elsewhere"] == left["sending"], host_send
    assert code == 0 and report["ok"] and report["leased_elsewhere"] == 0, report
    assert report["sent"] == left["sending"]
    received = handler.per_recipient()
    assert set(received) == set(readers(total))
    assert sum(n - 1 for n in received.values()) <= 1  # at most the one message in flight, twice
    assert states(load_settings(config)) == {"sent": total}


# -- 2. per-recipient refusals never block the others ----------------------------------------


@dataclasses.dataclass
class OrderRecorder(Recorder):
    rcpt_order: list[str] = dataclasses.field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.rcpt_order.append(address)
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def project(tmp_path: Path, store_url: str) -> Any:
    """On SQLite and on PostgreSQL: the claims' order and the refusal rules are SQL."""
    with delivery_project(tmp_path, TINY_DAY, store_url) as opened:
        yield opened


def deliver(project: DeliveryProject, port: int, **smtp: Any) -> DeliveryRun:
    return smtp_helpers.deliver(project, TINY_DAY, port, **smtp)


def log_rows(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {r.email: r for r in conn.execute(select(deliveries).where(deliveries.c.date == TINY_DAY))}


def test_full_mailboxes_never_starve_the_other_readers(project: DeliveryProject) -> None:
    subs = add_subscribers(project.store, 20)
    full = {s.email for s in subs[:10]}  # the lowest ids
    handler = OrderRecorder(rcpt_fault=lambda rcpt, _n: "452 4.2.2 mailbox full" if rcpt in full else None)
    with smtp_server(handler) as server:
        first = deliver(project, server.port).report
        fresh = add_subscribers(project.store, 25)[20:]  # new readers before the next run
        handler.rcpt_order.clear()
        second = deliver(project, server.port).report
        for _ in range(3):
            deliver(project, server.port)
    assert first.paused is None and (first.sent, first.deferred) == (10, 10)
    assert set(handler.per_recipient()) == {s.email for s in subs + fresh} - full
    # Fresh rows come before due retries: a few failing addresses cannot fill every batch.
    assert handler.rcpt_order[:5] == [s.email for s in fresh]
    assert second.paused is None and second.sent == 5


def test_a_wave_of_connection_level_refusals_still_pauses(project: DeliveryProject) -> None:
    add_subscribers(project.store, 12)
    handler = Recorder(rcpt_fault=lambda _rcpt, _n: "451 4.3.0 local error in processing")
    with smtp_server(handler) as server:
        report = deliver(project, server.port, pause_after_failures=4, max_attempts=1).report
    assert report.paused is not None and "4 messages in a row" in str(report.paused)


def test_retries_are_spread_by_a_bounded_random_part() -> None:
    smtp = smtp_settings(25, retry_delay=1.0, retry_backoff=2.0)
    first = [retry_delay(smtp, 1) for _ in range(50)]
    assert all(1.0 <= d <= 1.5 for d in first) and len(set(first)) > 1
    assert all(3600.0 <= retry_delay(dataclasses.replace(smtp, retry_delay=3600.0), 1) <= 3601.0 for _ in range(20))
    assert all(4.0 <= retry_delay(smtp, 3) <= 5.0 for _ in range(20))


# -- 3. a 5.7.x about one recipient --------------------------------------------------------------


def test_a_recipient_refused_on_policy_fails_alone_and_the_list_goes_on(project: DeliveryProject) -> None:
    subs = add_subscribers(project.store, 8)
    refused = subs[2].email
    reply = f"554 5.7.1 <{refused}>: Recipient address rejected"
    handler = Recorder(rcpt_fault=lambda rcpt, _n: reply if rcpt == refused else None)
    with smtp_server(handler) as server:
        first = deliver(project, server.port).report
        again = deliver(project, server.port).report
    assert first.paused is None and (first.sent, first.failed) == (7, 1)
    assert first.problems == [(refused, f"RCPT TO: {reply}")]
    assert log_rows(project.store)[refused].state == "failed"
    assert (again.due, again.sent, again.paused) == (0, 0, None)
    assert handler.rcpt_seen[refused] == 1


@pytest.mark.parametrize(("code", "text", "stage", "action"), [
    (554, "5.7.1 <a@example.com>: Recipient address rejected", "RCPT TO", "fail"),
    (550, "5.7.1 Recipient not authorized", "RCPT TO", "fail"),
    (554, "5.7.1 <a@example.com>: Relay access denied", "RCPT TO", "pause"),
    (550, "5.7.1 sender address rejected", "MAIL FROM", "pause"),
    (554, "5.7.1 message refused", "DATA", "pause"),
])
def test_a_policy_refusal_pauses_unless_it_concerns_one_recipient(code: int, text: str, stage: str,
                                                                   action: str) -> None:
    assert classify(Reply(code, text), stage).action == action


# -- 4. unknown outcome ------------------------------------------------------------------------


@pytest.mark.usefixtures("store_backend")
def test_a_server_slower_than_the_timeout_gets_at_most_one_extra_copy(tmp_path: Path) -> None:
    handler = Recorder(reply_delay=1.2)  # keeps each message, answers after the client gave up
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, readers(2), smtp="timeout = 0.4\nlease_seconds = 30\n")
        runs = [send_json(config) for _ in range(4)]
        shown = run(config, "status", "--date", DAY)
    copies = handler.message_ids()
    assert set(copies) == set(readers(2))
    assert all(n <= 2 for n in handler.per_recipient().values()), handler.per_recipient()
    assert states(load_settings(config)) == {"unknown": 2}
    first_code, first = runs[0]
    assert first_code == 1 and not first["ok"] and first["unknown"] == 2
    assert all(report["due"] == 0 for _code, report in runs[1:])
    assert "2 unknown" in shown.output
    assert "unknown   reader000@example.com  (attempts 2)" in shown.output


# -- 5. a wave of 5.1.1 ------------------------------------------------------------------------


@pytest.mark.usefixtures("store_backend")
def test_a_wave_of_unknown_user_replies_on_many_domains_pauses_without_bouncing(tmp_path: Path) -> None:
    everyone = readers(20, domains=20)
    broken = [True]
    handler = Recorder(rcpt_fault=lambda _rcpt, _n: "550 5.1.1 User unknown in relay recipient table"
                       if broken[0] else None)
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, everyone)
        code, first = send_json(config)
        after_wave = states(load_settings(config))
        with Store.from_settings(load_settings(config)) as store:
            active = {s.email for s in store.subscribers(status="active")}
        broken[0] = False  # the relay is mended
        again_code, again = send_json(config)
    assert code == 1 and first["paused"] and "5.1.1" in first["paused"] and first["bounced"] == 0, first
    assert "nobody was marked bounced" in first["paused"]
    assert active == set(everyone)
    assert after_wave == {"retry": 10, "pending": 10}
    assert again_code == 0 and again["sent"] == 20
    assert set(handler.per_recipient()) == set(everyone)


@pytest.mark.usefixtures("store_backend")
def test_scattered_unknown_users_are_still_bounced(tmp_path: Path) -> None:
    everyone = readers(12, domains=12)
    gone = {everyone[3], everyone[4], everyone[9]}
    handler = Recorder(rcpt_fault=lambda rcpt, _n: "550 5.1.1 no such user" if rcpt in gone else None)
    with smtp_server(handler) as server:
        config = site(tmp_path, server.port, everyone)
        code, report = send_json(config)
    assert code == 0 and (report["sent"], report["bounced"], report["paused"]) == (9, 3, None)
    with Store.from_settings(load_settings(config)) as store:
        assert {s.email for s in store.subscribers(status="bounced")} == gone


@pytest.mark.usefixtures("store_backend")
def test_subscribers_update_changes_the_filter_and_reactivate_undoes_a_bounce(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run(config, "subscribers", "add", "ada@example.org", "--category", "Computer Vision").exit_code == 0
    again = run(config, "subscribers", "add", "ada@example.org")
    assert again.exit_code == 1 and "newsletter subscribers update ada@example.org" in again.output
    changed = run(config, "subscribers", "update", "Ada@Example.org", "--name", "Ada", "--keyword", "diffusion",
                  "--exclude", "survey", "--category", "Reinforcement Learning", "--category", "Multi-Modal")
    assert changed.exit_code == 0, changed.output
    assert "updated ada@example.org" in changed.output
    (listed,) = json.loads(run(config, "subscribers", "list", "--json").stdout)["subscribers"]
    assert {k: listed[k] for k in ("name", "categories", "keywords", "excluded", "status")} == {
        "name": "Ada", "categories": ["Multi-Modal", "Reinforcement Learning"], "keywords": ["diffusion"],
        "excluded": ["survey"], "status": "active"}
    cleared = run(config, "subscribers", "update", "ada@example.org", "--all-categories", "--no-keywords")
    assert cleared.exit_code == 0 and "all categories" in cleared.output
    with Store.from_settings(load_settings(config)) as store:
        store.set_subscriber_status("ada@example.org", "bounced")
    revived = run(config, "subscribers", "update", "ada@example.org", "--reactivate")
    assert revived.exit_code == 0
    assert "reactivated ada@example.org (was bounced)" in revived.output
    assert run(config, "subscribers", "unsubscribe", "ada@example.org").exit_code == 0
    back = run(config, "subscribers", "update", "ada@example.org", "--reactivate")
    assert "re-subscribed ada@example.org (was unsubscribed)" in back.output
    (listed,) = json.loads(run(config, "subscribers", "list", "--json").stdout)["subscribers"]
    assert (listed["status"], listed["categories"], listed["keywords"], listed["excluded"]) == (
        "active", [], [], ["survey"])
    assert "nothing to change" in run(config, "subscribers", "update", "ada@example.org", "--reactivate").output
    assert run(config, "subscribers", "update", "bob@example.org", "--name", "Bob").exit_code == 1
    assert run(config, "subscribers", "update", "ada@example.org", "--category", "Alchemy").exit_code == 2
    both = run(config, "subscribers", "update", "ada@example.org", "--reactivate", "--status", "bounced")
    assert both.exit_code == 2


# -- 6. counters, and a server that cannot be reached ---------------------------------------------


def test_a_dropped_connection_whose_message_is_resent_counts_as_a_retry(project: DeliveryProject) -> None:
    subs = add_subscribers(project.store, 6)
    dropped = subs[3].email
    handler = Recorder(rcpt_fault=lambda rcpt, seen: "drop" if rcpt == dropped and seen == 0 else None)
    with smtp_server(handler) as server:
        report = deliver(project, server.port).report
    assert (report.sent, report.retried, report.ok) == (6, 1, True)
    assert handler.per_recipient() == {s.email: 1 for s in subs}


@pytest.mark.usefixtures("store_backend")
def test_a_send_that_cannot_reach_the_server_says_so_once(tmp_path: Path) -> None:
    port = free_port()
    config = site(tmp_path, port, readers(6))
    result = run(config, "send", "--date", DAY)
    assert result.exit_code == 1
    assert result.output.count(f"could not connect to 127.0.0.1:{port}") == 1, result.output
    assert "in a row" not in result.output and "not accepted" not in result.output
    assert states(load_settings(config)) == {"pending": 6}
