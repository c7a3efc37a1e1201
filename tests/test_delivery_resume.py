"""`newsletter send` for real, as separate processes: kill -9 mid-send, two sends at once, reruns.

The server is a real aiosmtpd in this process; each send is the real CLI in a subprocess, so a
kill is a real SIGKILL with rows left leased. The messages are the renderer's, from the example
digest in the project.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import run, write_config
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.store.schema import deliveries
from smtp_helpers import Recorder, smtp_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"
DAY = "2026-11-19"


def setup_project(folder: Path, store_url: str, port: int, subscribers: int, connections: int = 1) -> Path:
    config = write_config(folder, digests=f'["{EXAMPLES / (DAY + ".md")}"]', store_url=store_url, extra=f"""
[smtp]
host = "127.0.0.1"
port = {port}
timeout = 10
connections = {connections}
retry_delay = 0.05
""")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        store.upsert_subscribers([Subscriber(email=f"reader{i:05d}@example.com") for i in range(subscribers)])
    return config


def start_send(config: Path, folder: Path, name: str) -> subprocess.Popen[bytes]:
    log = (folder / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "send", "--date", DAY],
                            stdout=log, stderr=subprocess.STDOUT, cwd=folder)


def logged(config: Path) -> dict[str, tuple[str, str]]:
    """Address -> (state, Message-ID) from the delivery log."""
    with Store.from_settings(load_settings(config)) as store, store.engine.connect() as conn:
        return {r.email: (r.state, r.message_id) for r in conn.execute(
            select(deliveries).where(deliveries.c.date == dt.date.fromisoformat(DAY)))}


def test_kill_9_mid_send_then_rerun_delivers_everyone_once(tmp_path: Path, store_url: str) -> None:
    total = 2000
    # The server queues message 1,000 but holds back its reply; the kill lands then, so the dead
    # send leaves it in flight: accepted by the server, still leased and unrecorded in the log.
    handler = Recorder(hold_at=total // 2)
    with smtp_server(handler) as server:
        config = setup_project(tmp_path, store_url, server.port, total)
        proc = start_send(config, tmp_path, "killed")
        while not handler.held.wait(0.05):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = handler.count()
        states_after_kill = {email: state for email, (state, _) in logged(config).items()}
        handler.release.set()
        rerun = start_send(config, tmp_path, "rerun")
        rerun.wait(timeout=120)
        after_rerun = handler.count()
        again = run(config, "send", "--date", DAY)

    assert proc.returncode == -signal.SIGKILL
    assert at_kill == total // 2, "the kill must land mid-send, on the held message"
    assert "sending" in states_after_kill.values()  # the dead send left leased rows behind
    assert rerun.returncode == 0, (tmp_path / "rerun.log").read_text()
    received = handler.per_recipient()
    assert set(received) == {f"reader{i:05d}@example.com" for i in range(total)}
    repeated = {r: n for r, n in received.items() if n > 1}
    # One connection: only the message in flight at the kill arrives twice, under one Message-ID.
    assert len(repeated) == 1 and all(n == 2 and states_after_kill[r] == "sending" for r, n in repeated.items())
    server_ids = handler.message_ids()
    assert all(len(server_ids[r]) == 1 for r in repeated)
    log = logged(config)
    assert {state for state, _ in log.values()} == {"sent"}
    assert {r: {mid} for r, (_, mid) in log.items()} == server_ids
    assert after_rerun == total + len(repeated)
    # A run after completion sends nothing and says so.
    assert again.exit_code == 0 and "Nothing to send" in again.output
    assert handler.count() == after_rerun
    print(f"\nkill -9 after {at_kill} accepted (the last one's reply held back); rerun sent {after_rerun - at_kill}; "
          f"{len(repeated)} delivered twice (same Message-ID)")


@pytest.mark.parametrize("connections", [1, 2])
def test_two_sends_at_once_never_mail_anyone_twice(tmp_path: Path, store_url: str, connections: int) -> None:
    total = 300
    handler = Recorder()
    with smtp_server(handler) as server:
        config = setup_project(tmp_path, store_url, server.port, total, connections)
        procs = [start_send(config, tmp_path, f"send{n}") for n in (1, 2)]
        for proc in procs:
            proc.wait(timeout=120)
    outputs = [(tmp_path / f"send{n}.log").read_text() for n in (1, 2)]
    assert [p.returncode for p in procs] == [0, 0], outputs
    received = handler.per_recipient()
    assert len(received) == total and set(received.values()) == {1}
    assert {state for state, _ in logged(config).values()} == {"sent"}
    print(f"\n{connections} connection(s) each: {outputs[0].strip().splitlines()[-1]} | "
          f"{outputs[1].strip().splitlines()[-1]}")


def test_a_send_on_more_connections_than_the_default_pool_mails_everyone_once(tmp_path: Path,
                                                                              store_url: str) -> None:
    # Each sending thread keeps one store connection for the run, and claims its rows with the store
    # too: 15 threads used to hold every connection of SQLAlchemy's default pool (5 + 10 overflow),
    # so that their next claims waited out the pool's 30 s timeout and the send failed.
    connections, total = 15, 400  # 400: every thread's first claim (20 rows) finds rows
    handler = Recorder()
    with smtp_server(handler) as server:
        config = setup_project(tmp_path, store_url, server.port, total, connections)
        proc = start_send(config, tmp_path, "send")
        proc.wait(timeout=120)
    output = (tmp_path / "send.log").read_text()
    assert proc.returncode == 0, output
    assert "QueuePool" not in output and "timed out" not in output
    received = handler.per_recipient()
    assert len(received) == total and set(received.values()) == {1}
    assert {state for state, _ in logged(config).values()} == {"sent"}


def test_dry_run_records_nothing_then_send_and_status_report_failures(tmp_path: Path, store_url: str) -> None:
    handler = Recorder(rcpt_fault=lambda rcpt, _n: {"reader00001@example.com": "550 5.1.1 no such user",
                                                    "reader00002@example.com": "554 5.0.0 refused"}.get(rcpt))
    with smtp_server(handler) as server:
        config = setup_project(tmp_path, store_url, server.port, 5)
        assert run(config, "send", "--dry-run", "--date", DAY).exit_code == 0
        assert logged(config) == {} and handler.count() == 0
        sent = run(config, "send", "--date", DAY)
    assert sent.exit_code == 1  # a message failed
    assert "sent 3, retried 0, failed 1, bounced 1" in sent.output
    assert "reader00002@example.com: RCPT TO: 554 5.0.0 refused" in sent.output
    shown = run(config, "status", "--date", DAY)
    assert f"{DAY}  3 sent, 1 failed, 1 bounced" in shown.output
    assert "bounced   reader00001@example.com  (attempts 1) RCPT TO: 550 5.1.1 no such user" in shown.output
    (day,) = json.loads(run(config, "status", "--json").stdout)["days"]
    assert day["counts"]["sent"] == 3 and day["counts"]["pending"] == 0
    assert {p["email"]: p["state"] for p in day["problems"]} == {
        "reader00001@example.com": "bounced", "reader00002@example.com": "failed"}
    with Store.from_settings(load_settings(config)) as store:
        store.record_no_issue(dt.date(2026, 11, 18), "no digest for this day")
    assert "2026-11-18  no issue: no digest for this day" in run(config, "status").output


def test_send_json_prints_the_report_with_the_same_exit_codes(tmp_path: Path, store_url: str) -> None:
    handler = Recorder(rcpt_fault=lambda rcpt, _n: {"reader00001@example.com": "550 5.1.1 no such user",
                                                    "reader00002@example.com": "554 5.0.0 refused"}.get(rcpt))
    with smtp_server(handler) as server:
        config = setup_project(tmp_path, store_url, server.port, 5)
        first = run(config, "send", "--date", DAY, "--json")
        again = run(config, "send", "--date", DAY, "--json")
    assert first.exit_code == 1  # a message failed
    report = json.loads(first.stdout)
    assert {k: report[k] for k in ("date", "ok", "planned", "due", "sent", "failed", "bounced", "paused")} == {
        "date": DAY, "ok": False, "planned": 5, "due": 5, "sent": 3, "failed": 1, "bounced": 1, "paused": None}
    assert sorted(report["problems"], key=lambda problem: problem["email"]) == [
        {"email": "reader00001@example.com", "reply": "RCPT TO: 550 5.1.1 no such user"},
        {"email": "reader00002@example.com", "reply": "RCPT TO: 554 5.0.0 refused"},
    ]
    assert again.exit_code == 0
    rerun = json.loads(again.stdout)
    assert (rerun["due"], rerun["sent"], rerun["already_sent"], rerun["ok"]) == (0, 0, 3, True)
    assert handler.count() == 3
    assert run(config, "send", "--dry-run", "--json").exit_code == 2
