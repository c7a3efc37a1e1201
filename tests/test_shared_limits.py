"""The rate limit and the pause hold across concurrent `newsletter send` and `newsletter worker`
processes (real processes, a real aiosmtpd server, a real SQLite file and a real PostgreSQL server)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import write_config
from newsletter.clock import utc_now
from newsletter.config import load_settings
from newsletter.dispatch.relay_limits import RelayLimits
from newsletter.errors import DeliveryError
from newsletter.store import Store
from smtp_helpers import Recorder, smtp_server, smtp_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"
DAY = "2026-11-19"


@dataclass
class TimedRecorder(Recorder):
    """Also notes when each message was accepted."""

    times: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            with self.lock:
                self.times.append(time.monotonic())
        return answer


def site(folder: Path, store_url: str, port: int, readers: int, smtp: str) -> Path:
    config = write_config(folder, store_url=store_url, digests=json.dumps([str(EXAMPLES / f"{DAY}.md")]), extra=f"""
[smtp]
host = "127.0.0.1"
port = {port}
timeout = 10
{smtp}
""")
    csv = folder / "readers.csv"
    csv.write_text("email,name\n" + "".join(f"reader{i:04d}@example.com,\n" for i in range(readers)), encoding="utf-8")
    for args in (("ingest",), ("subscribers", "import", str(csv))):
        done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    return config


def sends(config: Path, count: int) -> list[tuple[int, dict[str, Any], str]]:
    """``count`` `newsletter send --json` processes at once: (exit code, report, stderr) of each."""
    processes = [subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "send", "--date", DAY,
                                   "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(count)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append((process.returncode, json.loads(out), err))
    return results


def test_three_sends_share_one_rate_limit(tmp_path: Path, store_url: str) -> None:
    handler = TimedRecorder()
    with smtp_server(handler) as server:
        config = site(tmp_path, store_url, server.port, 400, "rate_limit = 50\nconnections = 2")
        results = sends(config, 3)

    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    assert sorted(handler.per_recipient().values()) == [1] * 400
    assert sum(report["sent"] for _, report, _ in results) == 400
    assert sum(1 for _, report, _ in results if report["sent"]) >= 2  # they did send side by side
    times = sorted(handler.times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 40 <= rate <= 50 * 1.05, rate


def test_a_pause_in_one_send_stops_the_others(tmp_path: Path, store_url: str) -> None:
    blocked = "reader0060@example.com"
    accepted_when_blocked: list[int] = []

    def block_once(recipient: str, seen: int) -> str | None:
        if recipient != blocked or seen:
            return None
        accepted_when_blocked.append(handler.count())
        return "554 5.7.1 sending blocked"  # at DATA: the provider blocks the account, not one mailbox

    handler = Recorder(data_fault=block_once)
    with smtp_server(handler) as server:
        config = site(tmp_path, store_url, server.port, 300, "rate_limit = 30")
        results = sends(config, 2)
        after_pause = handler.count()
        status = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "status"],
                                capture_output=True, text=True, check=True).stdout
        rerun = sends(config, 1)

    assert [code for code, _, _ in results] == [1, 1], [json.dumps(r) for _, r, _ in results]
    reasons = sorted(report["paused"] for _, report, _ in results)
    assert "5.7.1 sending blocked" in reasons[0] or "5.7.1 sending blocked" in reasons[1]
    assert any("another send to 127.0.0.1" in reason for reason in reasons), reasons
    # The other send stopped before its next message: at most the one in flight and one more got through.
    assert after_pause - accepted_when_blocked[0] <= 2, (accepted_when_blocked, after_pause)
    assert f"sending to 127.0.0.1:{server.port} paused at " in status
    assert "the server answered DATA: 554 5.7.1 sending blocked for reader0060@example.com" in status
    assert rerun[0][0] == 0 and handler.count() == 300
    assert sorted(handler.per_recipient().values()) == [1] * 300


def test_refusals_in_a_row_and_pauses_are_shared_by_every_send(tmp_path: Path, store_url: str) -> None:
    settings = load_settings(write_config(tmp_path, store_url=store_url))
    seconds = itertools.count()  # each look a second later: without a rate limit they are CHECK_EVERY apart

    def limits(port: int = 2525) -> RelayLimits:
        return RelayLimits(store, smtp_settings(port), utc_now, wall=lambda: float(next(seconds)))

    with Store.from_settings(settings) as store:
        first, second = limits(), limits()
        counts = [first.refused(), second.refused(), first.refused()]
        assert second.before_send() is None
        second.sent()  # a message went through: the count starts again
        after_success = first.refused()
        other_relay = limits(2526).refused()
        first.paused(DeliveryError("sending paused: 10 messages in a row were not accepted"))
        stopped = second.before_send()
        started_later = limits().before_send()  # a rerun tries again

    assert counts == [1, 2, 3]
    assert (after_success, other_relay) == (1, 1)
    assert stopped is not None and "another send to 127.0.0.1:2525 paused" in stopped.message
    assert "10 messages in a row" in stopped.message
    assert started_later is None


def test_a_success_after_a_refusal_starts_the_count_again_between_looks(tmp_path: Path, store_url: str) -> None:
    settings = load_settings(write_config(tmp_path, store_url=store_url))
    with Store.from_settings(settings) as store:
        limits = RelayLimits(store, smtp_settings(2525), utc_now, wall=lambda: 1000.0)  # no time passes
        assert limits.before_send() is None  # the first look
        for _ in range(3):
            limits.refused()
            assert limits.before_send() is None  # within CHECK_EVERY: no look at the store
            limits.sent()
        in_a_row = limits.refused()
    assert in_a_row == 1


def test_three_workers_share_one_rate_limit(tmp_path: Path, store_url: str) -> None:
    handler = TimedRecorder()
    with smtp_server(handler) as server:
        config = site(tmp_path, store_url, server.port, 400, "rate_limit = 50\nconnections = 2")
        command = [sys.executable, "-m", "newsletter", "--config", str(config)]
        planned = subprocess.run([*command, "send", "--plan-only", "--date", DAY], capture_output=True, text=True,
                                 check=False)
        assert planned.returncode == 0, planned.stderr
        workers = [subprocess.Popen([*command, "worker", "--exit-when-idle"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(3)]
        results = [(*worker.communicate(timeout=300), worker.returncode) for worker in workers]

    assert [code for _, _, code in results] == [0, 0, 0], [err for _, err, _ in results]
    assert sorted(handler.per_recipient().values()) == [1] * 400
    times = sorted(handler.times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 40 <= rate <= 50 * 1.05, rate
