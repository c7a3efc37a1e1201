"""`newsletter worker`: real processes, a real aiosmtpd server, a real PostgreSQL server (and SQLite where one
machine is enough), the editions planned by `newsletter send --plan-only` or the real planner."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import run, write_config
from newsletter.config import load_settings
from newsletter.dispatch.delivery import DeliveryRun
from newsletter.dispatch.plan import build_plan
from newsletter.models import Subscriber
from newsletter.store import Store
from smtp_helpers import SENDER, Recorder, delivery_project, smtp_server, smtp_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"
DAY = "2026-11-19"
_DATE = re.compile(rb"^Date: [^\r\n]*\r\n", re.MULTILINE)


def planned_site(folder: Path, store_url: str, port: int, readers: int, smtp: str = "") -> Path:
    """A site with ``readers`` subscribers and DAY's editions planned (rows and renditions), none sent."""
    config = write_config(folder, store_url=store_url, digests=json.dumps([str(EXAMPLES / f"{DAY}.md")]), extra=f"""
[smtp]
host = "127.0.0.1"
port = {port}
timeout = 10
lease_seconds = 40
{smtp}
""")
    csv = folder / "readers.csv"
    csv.write_text("email,name\n" + "".join(f"reader{i:04d}@example.com,\n" for i in range(readers)), encoding="utf-8")
    for args in (("ingest",), ("subscribers", "import", str(csv)), ("send", "--plan-only", "--date", DAY)):
        done = subprocess.run(newsletter(config, *args), capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    return config


def newsletter(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "--config", str(config), *args]


def workers(config: Path, count: int, *args: str) -> list[subprocess.Popen[str]]:
    return [subprocess.Popen(newsletter(config, "worker", *args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(count)]


@dataclass
class ContentRecorder(Recorder):
    """Also keeps each accepted message's bytes."""

    contents: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            with self.lock:
                self.contents.append((envelope.rcpt_tos[0], envelope.content))
        return answer


def test_four_workers_two_killed_mid_send_then_a_rerun_mail_everyone_once(tmp_path: Path, postgres_url: str) -> None:
    readers = 2000
    handler = Recorder(reply_delay=0.004)
    with smtp_server(handler) as server:
        config = planned_site(tmp_path, postgres_url, server.port, readers)
        started = workers(config, 4, "--exit-when-idle")
        deadline = time.monotonic() + 120
        while handler.count() < readers // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = started[:2]
        for process in killed:
            os.kill(process.pid, signal.SIGKILL)
        sent_when_killed = handler.count()
        survivors = [(*process.communicate(timeout=300), process.returncode) for process in started[2:]]
        for process in killed:
            process.wait(timeout=10)
        rerun = subprocess.run(newsletter(config, "worker", "--exit-when-idle"), capture_output=True, text=True,
                               timeout=120, check=False)
        status = subprocess.run(newsletter(config, "status", "--date", DAY, "--json"), capture_output=True, text=True,
                                check=True).stdout

    assert readers // 4 <= sent_when_killed < readers, sent_when_killed  # killed mid-send
    assert [code for *_, code in survivors] == [0, 0], survivors
    assert rerun.returncode == 0, rerun.stderr
    per_reader = handler.per_recipient()
    assert len(per_reader) == readers
    twice = {reader: n for reader, n in per_reader.items() if n != 1}
    assert len(twice) <= len(killed) and set(twice.values()) <= {2}, twice
    ids = handler.message_ids()
    assert all(len(ids[reader]) == 1 for reader in twice)  # a repeat is the same message
    counts = json.loads(status)["days"][0]["counts"]
    assert counts["sent"] == sum(counts.values()) == readers


def test_a_worker_on_more_connections_than_the_default_pool_mails_everyone_once(tmp_path: Path,
                                                                               store_url: str) -> None:
    # As `newsletter send` (test_delivery_resume.py): 15 threads, each with a connection of its own,
    # used to hold all of SQLAlchemy's default pool, and their claims timed out after 30 s.
    readers = 400
    handler = Recorder()
    with smtp_server(handler) as server:
        config = planned_site(tmp_path, store_url, server.port, readers, "connections = 15")
        done = subprocess.run(newsletter(config, "worker", "--exit-when-idle"), capture_output=True, text=True,
                              timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "QueuePool" not in done.stderr
    received = handler.per_recipient()
    assert len(received) == readers and set(received.values()) == {1}


def test_a_worker_builds_the_message_send_would(tmp_path: Path, store_url: str) -> None:
    date = dt.date.fromisoformat(DAY)
    handler = ContentRecorder()
    with delivery_project(tmp_path, date, store_url) as project, smtp_server(handler) as server:
        project.store.upsert_subscribers([
            Subscriber(email="ada@example.com", name="Ada Lovelace"),
            Subscriber(email="bob@example.com", name="Bob", authors=["Test Author"]),  # a marked paper
        ])
        config = write_config(tmp_path, store_url=project.settings.store.url, extra=f"""
[smtp]
host = "127.0.0.1"
port = {server.port}
""")
        plan = build_plan(load_settings(config), project.store, date)  # as `newsletter send` plans it
        expected = {m.subscriber.email: plan.message_bytes(m) for m in plan.messages}
        DeliveryRun(project.store, plan, smtp_settings(server.port), SENDER).prepare()
        result = run(config, "worker", "--exit-when-idle")
    assert result.exit_code == 0, result.output
    got = {recipient: content for recipient, content in handler.contents}
    assert set(got) == set(expected) == {"ada@example.com", "bob@example.com"}
    for address, message in expected.items():
        assert _DATE.sub(b"", got[address]) == _DATE.sub(b"", message), address
    bob = email.message_from_bytes(got["bob@example.com"])
    assert b"Test Author" in got["bob@example.com"] and bob["To"] == "Bob <bob@example.com>"


def test_exit_when_idle_exits_0_with_nothing_due_and_1_when_a_message_failed(tmp_path: Path, store_url: str) -> None:
    def refuse(recipient: str, _seen: int) -> str | None:
        return "550 5.2.0 message refused" if recipient == "reader0003@example.com" else None

    handler = Recorder(data_fault=refuse)
    with smtp_server(handler) as server:
        config = planned_site(tmp_path, store_url, server.port, 5)
        first = run(config, "worker", "--exit-when-idle")
        idle = run(config, "worker", "--exit-when-idle")
    assert first.exit_code == 1, first.output
    assert "sent 4" in first.output and "failed 1" in first.output
    assert "reader0003@example.com: DATA: 550 5.2.0 message refused" in first.output
    assert idle.exit_code == 0 and "sent 0" in idle.output
    assert sorted(handler.per_recipient().values()) == [1] * 4


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_finishes_the_message_in_flight_and_exits_0(tmp_path: Path, postgres_url: str,
                                                                    stop: signal.Signals) -> None:
    handler = Recorder(hold_at=5)
    with smtp_server(handler) as server:
        config = planned_site(tmp_path, postgres_url, server.port, 50)
        (worker,) = workers(config, 1)  # runs until stopped
        assert handler.held.wait(60)
        worker.send_signal(stop)
        time.sleep(0.3)
        handler.release.set()
        out, err = worker.communicate(timeout=60)
        with Store(postgres_url) as store:
            counts = store.delivery_counts()
    assert worker.returncode == 0, err
    assert "sent 5" in out
    assert handler.count() == 5 and counts[dt.date.fromisoformat(DAY)] == {"sent": 5, "pending": 45}


def test_a_replan_replaces_a_rendition_under_its_id_and_workers_claim_only_buildable_rows(
        tmp_path: Path, store_url: str) -> None:
    date = dt.date.fromisoformat(DAY)
    with delivery_project(tmp_path, date, store_url) as project:
        project.store.upsert_subscribers([Subscriber(email="ada@example.com"), Subscriber(email="bob@example.com")])
        plan = project.plan(date)
        now = dt.datetime(2026, 11, 19, 7, tzinfo=dt.UTC)
        first = project.store.store_renditions(date, {"k": "old"}, now)
        again = project.store.store_renditions(date, {"k": "new"}, now)
        ada, bob = plan.messages
        project.store.create_deliveries([ada], now, first)  # no rendition "k" in the plan: no id
        project.store.create_deliveries([bob], now, {bob.rendition_key: first["k"]})
        claimed = project.store.claim_deliveries(None, "me", now, now + dt.timedelta(minutes=1), 10)
        stored = project.store.rendition_template(first["k"])
    assert first == again and stored == "new"
    assert [(c.email, c.rendition_id) for c in claimed] == [("bob@example.com", first["k"])]
