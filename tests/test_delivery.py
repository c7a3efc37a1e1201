"""The delivery loop against a real aiosmtpd server: replies, retries, bounces, pauses and leases.

These drive ``DeliveryRun`` with the real planner's messages for a one-paper digest in a real store
(smtp_helpers.delivery_project); the crash and concurrency tests in test_delivery_resume.py go
through the real `newsletter send`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.dispatch.delivery import LOCAL_MACHINE, DeliveryRun, Owner, classify, make_owner, owner_is_dead
from newsletter.dispatch.transport import Reply
from newsletter.store import Store
from newsletter.store.schema import deliveries
from smtp_helpers import (
    SENDER,
    DeliveryProject,
    Recorder,
    add_subscribers,
    deliver,
    delivery_project,
    free_port,
    smtp_server,
    smtp_settings,
)

DAY = dt.date(2025, 3, 4)


@pytest.fixture
def project(tmp_path: Path, store_url: str) -> Any:
    with delivery_project(tmp_path, DAY, store_url) as opened:
        yield opened


def rows(store: Store, date: dt.date = DAY) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {r.email: r for r in conn.execute(select(deliveries).where(deliveries.c.date == date))}


def states(store: Store) -> dict[str, int]:
    return store.delivery_counts([DAY]).get(DAY, {})


def send(project: DeliveryProject, port: int, **smtp: Any) -> DeliveryRun:
    return deliver(project, DAY, port, **smtp)


def test_happy_path_sends_each_once_records_the_reply_and_a_rerun_sends_nothing(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 30)
    handler = Recorder()
    with smtp_server(handler) as server:
        first = send(project, server.port).report
        again = send(project, server.port)
    assert (first.sent, first.retried, first.failed, first.bounced, first.ok) == (30, 0, 0, 0, True)
    assert handler.per_recipient() == {s.email: 1 for s in subs}
    logged = rows(store)
    assert {email: {row.message_id} for email, row in logged.items()} == handler.message_ids()
    assert all(r.state == "sent" and r.attempts == 1 and r.sent_at and "250 2.0.0" in r.last_reply
               for r in logged.values())
    assert (again.report.due, again.report.sent, again.report.already_sent) == (0, 0, 30)
    assert handler.count() == 30


def sent_in_log(store: Store) -> int:
    """Rows marked sent as any other connection sees them: committed ones."""
    return store.delivery_counts([DAY]).get(DAY, {}).get("sent", 0)


@dataclasses.dataclass
class LogWatcher(Recorder):
    """Notes, as each RCPT TO arrives, how many rows the log marks sent."""

    store: Store | None = None
    sent_at_rcpt: list[int] = dataclasses.field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        assert self.store is not None
        self.sent_at_rcpt.append(sent_in_log(self.store))
        return await super().handle_RCPT(server, session, envelope, address, options)


def test_each_accepted_message_is_recorded_before_the_next_goes_out(project: DeliveryProject) -> None:
    """The exactly-once rule: the k messages accepted so far are marked sent before message k's
    content goes out. The mark is committed while the server reads MAIL FROM, so by RCPT TO."""
    add_subscribers(project.store, 12)
    handler = LogWatcher(store=project.store)
    with smtp_server(handler) as server:
        assert send(project, server.port).report.sent == 12
    assert handler.sent_at_rcpt == list(range(12))


def test_a_rate_limit_wait_comes_after_the_last_message_is_recorded(project: DeliveryProject) -> None:
    """A long wait must not leave an accepted message unrecorded: its lease would run out meanwhile,
    and another send could take it over and mail it again."""
    add_subscribers(project.store, 6)
    sent_at_wait: list[int] = []
    with smtp_server(Recorder()) as server:
        run = DeliveryRun(project.store, project.plan(DAY), smtp_settings(server.port, rate_limit=0.001), SENDER,
                          sleep=lambda _seconds: sent_at_wait.append(sent_in_log(project.store)))
        run.prepare()
        assert run.run().sent == 6
    assert sent_at_wait == [1, 2, 3, 4, 5]  # the first message needs no wait


def _faulty(i: int) -> tuple[str | None, str | None]:
    """What the faulty server does to reader i: (RCPT fault on first try, DATA fault on first try)."""
    if i % 40 == 7:
        return "550 5.1.1 <mailbox> unknown", None
    if i % 40 == 13:
        return None, "554 5.6.0 message refused"
    if i % 10 == 3:
        return None, "451 4.3.0 try again later"
    if i % 10 == 5:
        return "421 4.7.0 too busy, closing", None
    if i % 10 == 9:
        return None, "drop"
    return None, None


def test_faulty_server_retries_bounces_fails_and_reconnects(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 200)
    index = {s.email: i for i, s in enumerate(subs)}
    stubborn = subs[1].email  # answers 451 to every attempt of this run

    def rcpt_fault(rcpt: str, seen: int) -> str | None:
        fault = _faulty(index[rcpt])[0]
        return fault if fault and (seen == 0 or fault.startswith("5")) else None

    def data_fault(rcpt: str, seen: int) -> str | None:
        if rcpt == stubborn:
            return "451 4.3.0 still busy" if seen < 3 else None
        fault = _faulty(index[rcpt])[1]
        return fault if fault and (seen == 0 or fault.startswith("5")) else None

    handler = Recorder(rcpt_fault=rcpt_fault, data_fault=data_fault)
    with smtp_server(handler) as server:
        report = send(project, server.port).report
        counts_after_first_run = dict(states(store))
        received_after_first_run = handler.per_recipient()
        rerun = send(project, server.port).report

    bounced = {s.email for i, s in enumerate(subs) if (_faulty(i)[0] or "").startswith("550")}
    failed = {s.email for i, s in enumerate(subs) if (_faulty(i)[1] or "").startswith("554")}
    dropped = {s.email for i, s in enumerate(subs) if _faulty(i)[1] == "drop"}
    refused_once = {s.email for i, s in enumerate(subs) if any(_faulty(i))} - bounced - failed - dropped
    assert (len(bounced), len(failed), len(dropped), len(refused_once)) == (5, 5, 20, 35)
    assert (report.sent, report.bounced, report.failed, report.deferred) == (200 - 10 - 1, 5, 5, 1)
    # A drop after the message (outcome unknown) and a 4xx wait for their retry, and each counts as
    # one; the stubborn one is retried twice, then left for the next run.
    assert report.retried == len(refused_once) + len(dropped) + 2
    assert {r for r, n in handler.data_seen.items() if n > 1} >= dropped
    assert counts_after_first_run == {"sent": 189, "bounced": 5, "failed": 5, "retry": 1}
    assert stubborn not in received_after_first_run
    # Nobody got two copies: a dropped connection's message was not accepted, so its retry is the only copy.
    assert received_after_first_run == {s.email: 1 for s in subs if s.email not in bounced | failed | {stubborn}}
    # The next run retries what was left, and only that.
    assert (rerun.sent, rerun.due) == (1, 1)
    assert handler.per_recipient()[stubborn] == 1
    assert states(store) == {"sent": 190, "bounced": 5, "failed": 5}
    assert {s.email for s in store.subscribers(status="bounced")} == bounced
    logged = rows(store)
    assert all("5.1.1" in logged[e].last_reply and logged[e].attempts == 1 for e in bounced)
    assert all("554 5.6.0" in logged[e].last_reply for e in failed)
    assert logged[stubborn].attempts == 4
    # A bounced subscriber leaves the plan; their row stays as it was.
    assert not any(m.subscriber.email in bounced for m in project.plan(DAY).messages)


def test_policy_refusal_pauses_the_run_and_unsubscribes_nobody(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 20)
    blocked = subs[5].email
    handler = Recorder(data_fault=lambda rcpt, _n: "550 5.7.1 sender blocked by policy" if rcpt == blocked else None)
    with smtp_server(handler) as server:
        report = send(project, server.port).report
    assert report.paused is not None and "5.7.1" in str(report.paused)
    assert report.paused.hint is not None and "SPF" in report.paused.hint
    assert report.sent == 5 and not report.ok
    assert states(store) == {"sent": 5, "pending": 15}
    assert len(store.subscribers(status="active")) == 20


def test_failures_in_a_row_pause_the_run(project: DeliveryProject) -> None:
    store = project.store
    add_subscribers(store, 30)
    handler = Recorder(data_fault=lambda _rcpt, _n: "451 4.3.2 system not accepting messages")
    with smtp_server(handler) as server:
        report = send(project, server.port, pause_after_failures=4, max_attempts=1).report
    assert report.paused is not None and "4 messages in a row" in str(report.paused)
    assert (report.sent, report.deferred) == (0, 4)
    assert states(store) == {"retry": 4, "pending": 26}
    assert len(store.subscribers(status="active")) == 30


def test_no_server_pauses_at_once_and_leaves_every_message_pending(project: DeliveryProject) -> None:
    store = project.store
    add_subscribers(store, 5)
    report = send(project, free_port(), pause_after_failures=3, max_attempts=1, timeout=2.0).report
    assert report.paused is not None and "could not connect to 127.0.0.1" in str(report.paused)
    assert states(store) == {"pending": 5}  # no message is at fault


def test_parallel_connections_and_rate_limit_send_each_once(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 60)
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(project, server.port, connections=3, rate_limit=400.0).report
    assert report.sent == 60
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_unsubscribed_before_the_rerun_is_cancelled_not_sent(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 10)
    plan = project.plan(DAY)
    store.create_deliveries(plan.messages, dt.datetime.now(dt.UTC))
    store.set_subscriber_status(subs[0].email, "unsubscribed")
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(project, server.port).report
    assert (report.sent, report.cancelled) == (9, 1)
    assert subs[0].email not in handler.per_recipient()
    assert rows(store)[subs[0].email].state == "cancelled"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owner_with(**changes: Any) -> str:
    """A real owner string of this process, with some parts changed."""
    parsed = Owner.parse(make_owner())
    assert parsed is not None
    return str(dataclasses.replace(parsed, **changes))


def test_rows_of_a_send_killed_on_this_machine_are_taken_over_at_once(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 10)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(project.plan(DAY).messages, now)
    store.claim_deliveries(DAY, owner_with(pid=_dead_pid()), now, now + dt.timedelta(hours=1), 4)
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(project, server.port).report
    assert (report.sent, report.leased_elsewhere) == (10, 0)
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_a_reader_who_left_after_a_crash_is_cancelled_not_left_pending(project: DeliveryProject) -> None:
    store = project.store
    subs = add_subscribers(store, 10)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(project.plan(DAY).messages, now)
    crashed = store.claim_deliveries(DAY, owner_with(pid=_dead_pid()), now, now + dt.timedelta(hours=1), 4)
    leaver = crashed[0].email
    store.set_subscriber_status(leaver, "unsubscribed")
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(project, server.port).report
        again = send(project, server.port).report
    assert (report.sent, report.cancelled) == (9, 1)
    assert states(store) == {"sent": 9, "cancelled": 1}  # settled: nothing pending that no run would send
    assert leaver not in handler.per_recipient()
    assert (again.due, again.sent, again.already_sent) == (0, 0, 9)
    assert handler.per_recipient() == {s.email: 1 for s in subs if s.email != leaver}


def test_owner_strings_name_this_machine_and_only_a_dead_local_pid_counts_as_dead() -> None:
    mine = Owner.parse(make_owner())
    assert mine is not None and mine.pid == os.getpid() and mine.machine == LOCAL_MACHINE
    assert mine.host == socket.gethostname()[:100]
    boot_id = Path("/proc/sys/kernel/random/boot_id")
    if boot_id.is_file():
        assert LOCAL_MACHINE.startswith(boot_id.read_text().strip() + ":")
    dead = _dead_pid()
    assert owner_is_dead(owner_with(pid=dead))
    assert not owner_is_dead(owner_with(pid=os.getppid()))  # alive
    assert not owner_is_dead(make_owner())  # this process
    # Same host name, but another machine or boot, or another container on this boot: its pids are
    # not ours to check.
    boot, _, namespace = LOCAL_MACHINE.partition(":")
    assert not owner_is_dead(owner_with(pid=dead, machine=f"{uuid.uuid4()}:{namespace}"))
    assert not owner_is_dead(owner_with(pid=dead, machine=f"{boot}:{namespace}1"))
    # Nothing known about this machine: wait for leases to run out rather than guess.
    assert not owner_is_dead(owner_with(pid=dead), local_machine="")
    # Owners in another format (the older host/pid/random) are never taken for local ones.
    assert Owner.parse(f"{socket.gethostname()}/{dead}/abcd") is None
    assert not owner_is_dead(f"{socket.gethostname()}/{dead}/abcd")
    assert not owner_is_dead("")


def test_rows_leased_elsewhere_under_the_same_host_name_wait_for_the_lease_to_run_out(
    project: DeliveryProject,
) -> None:
    store = project.store
    subs = add_subscribers(store, 10)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(project.plan(DAY).messages, now)
    twin = owner_with(machine=str(uuid.uuid4()), pid=_dead_pid())
    claimed = store.claim_deliveries(DAY, twin, now, now + dt.timedelta(seconds=1.5), 4)
    handler = Recorder()
    with smtp_server(handler) as server:
        first = send(project, server.port).report
        assert (first.sent, first.leased_elsewhere) == (6, 4)
        assert not {c.email for c in claimed} & set(handler.per_recipient())
        import time

        time.sleep(1.6)
        second = send(project, server.port).report
    assert (second.sent, second.leased_elsewhere) == (4, 0)
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_claims_never_overlap(project: DeliveryProject) -> None:
    store = project.store
    add_subscribers(store, 50)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(project.plan(DAY).messages, now)
    store.create_deliveries(project.plan(DAY).messages, now)  # repeating it adds nothing
    later = now + dt.timedelta(minutes=5)
    a = store.claim_deliveries(DAY, make_owner(), now, later, 30)
    b = store.claim_deliveries(DAY, make_owner(), now, later, 30)
    assert (len(a), len(b)) == (30, 20)
    assert not {c.id for c in a} & {c.id for c in b}
    assert store.claim_deliveries(DAY, make_owner(), now, later, 30) == []


@pytest.mark.parametrize(("code", "text", "stage", "action"), [
    (421, "4.7.0 too busy", "RCPT TO", "retry"),
    (451, "4.3.0 later", "DATA", "retry"),
    (450, "mailbox busy", "RCPT TO", "retry"),
    (550, "5.1.1 no such user", "RCPT TO", "bounce"),
    (553, "5.1.3 bad address syntax", "RCPT TO", "bounce"),
    (550, "5.1.8 sender domain does not exist", "RCPT TO", "pause"),
    (550, "5.1.1 unknown", "MAIL FROM", "pause"),
    (553, "sender refused", "MAIL FROM", "pause"),
    (550, "5.7.1 relaying denied", "RCPT TO", "pause"),
    (554, "5.7.1 rejected as spam", "DATA", "pause"),
    (535, "5.7.8 bad credentials", "RCPT TO", "pause"),
    (530, "authentication required", "MAIL FROM", "pause"),
    (550, "mailbox unavailable", "RCPT TO", "fail"),
    (552, "5.3.4 message too big", "DATA", "fail"),
    (554, "transaction failed", "DATA", "fail"),
])
def test_classify(code: int, text: str, stage: str, action: str) -> None:
    assert classify(Reply(code, text), stage).action == action
