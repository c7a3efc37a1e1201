"""What `publish` and `worker` print for an operator, on the README's quick-start project: no
Alembic chatter, and each outcome said once, in words that fit it."""

from __future__ import annotations

from pathlib import Path

from helpers import run
from shipped_project import shipped_project
from smtp_helpers import Recorder, smtp_server

DAY = "2026-11-20"


def test_publish_and_worker_say_each_outcome_once(tmp_path: Path, store_backend: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        config = shipped_project(tmp_path, server.port)
        first = run(config, "publish", "--date", DAY)
        again = run(config, "publish", "--date", DAY)
        idle = run(config, "worker", "--exit-when-idle")
        assert run(config, "subscribers", "add", "newcomer@example.net").exit_code == 0
        assert run(config, "send", "--date", "2026-11-19", "--plan-only").exit_code == 0
        working = run(config, "worker", "--exit-when-idle")
    assert (first.exit_code, again.exit_code, idle.exit_code, working.exit_code) == (0, 0, 0, 0)
    for result in (first, again, idle, working):
        assert "alembic" not in result.output, result.output
    assert f"{DAY}: sent 5, retried 0, failed 0, bounced 0\n" in first.stdout
    assert again.stdout == f"{DAY}: nothing to send, 5 sent by earlier runs\n"
    assert idle.stdout == "worker: sent 0: no message of any open edition was due\n"
    assert working.stdout == "worker: sent 6, retried 0, failed 0, bounced 0\n"
    assert recorder.count() == 5 + 6
