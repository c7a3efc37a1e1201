"""The delivery loop against a real aiosmtpd server: replies, retries, bounces, pauses and leases.

These drive ``DeliveryRun`` with small stdlib-built messages (smtp_helpers.plan_for); the crash and
concurrency tests in test_delivery_resume.py go through the real `newsletter send`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from smtp_helpers import SENDER, Recorder, add_subscribers, free_port, plan_for, smtp_server, smtp_settings
from sqlalchemy import select

from newsletter.delivery import DeliveryRun, classify, make_owner
from newsletter.store import Store
from newsletter.store.schema import deliveries
from newsletter.transport import Reply

DAY = dt.date(2025, 3, 4)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(f"sqlite:///{tmp_path / 'test.db'}") as opened:
        yield opened


def rows(store: Store, date: dt.date = DAY) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {r.email: r for r in conn.execute(select(deliveries).where(deliveries.c.date == date))}


def states(store: Store) -> dict[str, int]:
    return store.delivery_counts([DAY]).get(DAY, {})


def send(store: Store, port: int, **smtp: Any) -> DeliveryRun:
    run = DeliveryRun(store, plan_for(store, DAY), smtp_settings(port, **smtp), SENDER)
    run.prepare()
    run.run()
    return run


def test_happy_path_sends_each_once_records_the_reply_and_a_rerun_sends_nothing(store: Store) -> None:
    subs = add_subscribers(store, 30)
    handler = Recorder()
    with smtp_server(handler) as server:
        first = send(store, server.port).report
        again = send(store, server.port)
    assert (first.sent, first.retried, first.failed, first.bounced, first.ok) == (30, 0, 0, 0, True)
    assert handler.per_recipient() == {s.email: 1 for s in subs}
    logged = rows(store)
    assert {email: {row.message_id} for email, row in logged.items()} == handler.message_ids()
    assert all(r.state == "sent" and r.attempts == 1 and r.sent_at and "250 2.0.0" in r.last_reply
               for r in logged.values())
    assert (again.report.due, again.report.sent, again.report.already_sent) == (0, 0, 30)
    assert handler.count() == 30


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


def test_faulty_server_retries_bounces_fails_and_reconnects(store: Store) -> None:
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
        report = send(store, server.port).report
        counts_after_first_run = dict(states(store))
        received_after_first_run = handler.per_recipient()
        rerun = send(store, server.port).report

    bounced = {s.email for i, s in enumerate(subs) if _faulty(i)[0] and _faulty(i)[0].startswith("550")}
    failed = {s.email for i, s in enumerate(subs) if _faulty(i)[1] and _faulty(i)[1].startswith("554")}
    dropped = {s.email for i, s in enumerate(subs) if _faulty(i)[1] == "drop"}
    refused_once = {s.email for i, s in enumerate(subs) if any(_faulty(i))} - bounced - failed - dropped
    assert (len(bounced), len(failed), len(dropped), len(refused_once)) == (5, 5, 20, 35)
    assert (report.sent, report.bounced, report.failed, report.deferred) == (200 - 10 - 1, 5, 5, 1)
    # A drop is resent at once on a new connection; a 4xx waits for its retry; the stubborn one
    # is retried twice, then left for the next run.
    assert report.retried == len(refused_once) + 2
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
    assert not any(m.subscriber.email in bounced for m in plan_for(store, DAY).messages)


def test_policy_refusal_pauses_the_run_and_unsubscribes_nobody(store: Store) -> None:
    subs = add_subscribers(store, 20)
    blocked = subs[5].email
    handler = Recorder(data_fault=lambda rcpt, _n: "550 5.7.1 sender blocked by policy" if rcpt == blocked else None)
    with smtp_server(handler) as server:
        report = send(store, server.port).report
    assert report.paused is not None and "5.7.1" in str(report.paused)
    assert report.paused.hint is not None and "SPF" in report.paused.hint
    assert report.sent == 5 and not report.ok
    assert states(store) == {"sent": 5, "pending": 15}
    assert len(store.subscribers(status="active")) == 20


def test_failures_in_a_row_pause_the_run(store: Store) -> None:
    add_subscribers(store, 30)
    handler = Recorder(data_fault=lambda _rcpt, _n: "451 4.3.2 system not accepting messages")
    with smtp_server(handler) as server:
        report = send(store, server.port, pause_after_failures=4, max_attempts=1).report
    assert report.paused is not None and "4 messages in a row" in str(report.paused)
    assert (report.sent, report.deferred) == (0, 4)
    assert states(store) == {"retry": 4, "pending": 26}
    assert len(store.subscribers(status="active")) == 30


def test_no_server_pauses_after_failures_in_a_row(store: Store) -> None:
    add_subscribers(store, 5)
    report = send(store, free_port(), pause_after_failures=3, max_attempts=1, timeout=2.0).report
    assert report.paused is not None and "cannot connect to 127.0.0.1" in str(report.paused)
    assert states(store) == {"retry": 3, "pending": 2}


def test_parallel_connections_and_rate_limit_send_each_once(store: Store) -> None:
    subs = add_subscribers(store, 60)
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(store, server.port, connections=3, rate_limit=400.0).report
    assert report.sent == 60
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_unsubscribed_before_the_rerun_is_cancelled_not_sent(store: Store) -> None:
    subs = add_subscribers(store, 10)
    plan = plan_for(store, DAY)
    store.create_deliveries(plan.messages, dt.datetime.now(dt.UTC))
    store.set_subscriber_status(subs[0].email, "unsubscribed")
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(store, server.port).report
    assert (report.sent, report.cancelled) == (9, 1)
    assert subs[0].email not in handler.per_recipient()
    assert rows(store)[subs[0].email].state == "cancelled"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_rows_of_a_send_killed_on_this_host_are_taken_over_at_once(store: Store) -> None:
    import socket

    subs = add_subscribers(store, 10)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(plan_for(store, DAY).messages, now)
    dead = f"{socket.gethostname()}/{_dead_pid()}/abcd"
    store.claim_deliveries(DAY, dead, now, now + dt.timedelta(hours=1), 4)
    handler = Recorder()
    with smtp_server(handler) as server:
        report = send(store, server.port).report
    assert (report.sent, report.leased_elsewhere) == (10, 0)
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_rows_leased_by_another_host_wait_for_the_lease_to_run_out(store: Store) -> None:
    subs = add_subscribers(store, 10)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(plan_for(store, DAY).messages, now)
    claimed = store.claim_deliveries(DAY, "elsewhere.example/123/beef", now, now + dt.timedelta(seconds=1.5), 4)
    handler = Recorder()
    with smtp_server(handler) as server:
        first = send(store, server.port).report
        assert (first.sent, first.leased_elsewhere) == (6, 4)
        assert not {c.email for c in claimed} & set(handler.per_recipient())
        import time

        time.sleep(1.6)
        second = send(store, server.port).report
    assert (second.sent, second.leased_elsewhere) == (4, 0)
    assert handler.per_recipient() == {s.email: 1 for s in subs}


def test_claims_never_overlap(store: Store) -> None:
    add_subscribers(store, 50)
    now = dt.datetime.now(dt.UTC)
    store.create_deliveries(plan_for(store, DAY).messages, now)
    store.create_deliveries(plan_for(store, DAY).messages, now)  # repeating it adds nothing
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
