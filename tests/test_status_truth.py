"""`newsletter status` after the README quick start: one JSON object carrying all that the text
shows, the last ingest's files counted once, and a relay pause shown only while it lasts."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run
from shipped_project import shipped_project
from smtp_helpers import Recorder, smtp_server

DAY = "2026-11-20"


def test_a_shrink_refused_ingest_of_one_file_counts_one_file(tmp_path: Path, store_backend: str) -> None:
    config = shipped_project(tmp_path)
    digest = tmp_path / "examples" / "digests" / f"{DAY}.md"
    lines = digest.read_text(encoding="utf-8").splitlines(keepends=True)
    digest.write_text("".join(lines[:5]), encoding="utf-8")  # the heading and one of five papers
    refused = run(config, "ingest", str(digest))
    assert refused.exit_code == 1 and "--accept-shrink" in refused.output
    assert "1 file, 0 days" in refused.stdout

    shown = run(config, "status")
    assert ": 1 file, 0 new, 0 updated, 0 unchanged papers; 0 warnings, 1 error" in shown.stdout, shown.stdout
    found = json.loads(run(config, "status", "--json").stdout)
    assert (found["last_ingest"]["files"], found["last_ingest"]["errors"]) == (1, 1)
    assert found["last_ingest"]["finished_at"].endswith("+00:00")


def test_status_json_carries_the_pause_the_text_shows_and_neither_shows_it_once_sending_works(
        tmp_path: Path, store_backend: str) -> None:
    blocked = {"on": True}

    def block_while_on(_recipient: str, _seen: int) -> str | None:
        return "554 5.7.1 sending blocked" if blocked["on"] else None  # the provider blocks the account

    recorder = Recorder(data_fault=block_while_on)
    with smtp_server(recorder) as server:
        config = shipped_project(tmp_path, server.port)
        relay = f"127.0.0.1:{server.port}"
        assert run(config, "send").exit_code == 1
        shown = run(config, "status").stdout
        assert f"sending to {relay} paused at " in shown and "5.7.1 sending blocked" in shown
        found = json.loads(run(config, "status", "--json").stdout)
        (pause,) = found["paused"]
        assert pause["relay"] == relay and "5.7.1 sending blocked" in pause["reason"]
        assert pause["paused_at"].endswith("+00:00") and pause["configured"] is True
        assert found["schedule"] is None
        assert [day["date"] for day in found["days"]] == [DAY]

        blocked["on"] = False  # fixed at the provider: the next send gets through
        assert run(config, "send").exit_code == 0
        assert run(config, "send", "--date", "2026-11-19").exit_code == 0
    assert recorder.count() == 10
    for args in ((), ("--date", "2026-11-19")):
        shown = run(config, "status", *args).stdout
        assert "paused" not in shown, shown
        assert json.loads(run(config, "status", *args, "--json").stdout)["paused"] == []


def test_a_pause_of_a_relay_the_config_no_longer_names_is_marked_so(tmp_path: Path, store_backend: str) -> None:
    def refuse(_recipient: str, _seen: int) -> str | None:
        return "554 5.7.1 sending blocked"

    with smtp_server(Recorder(data_fault=refuse)) as wrong:
        config = shipped_project(tmp_path, wrong.port)
        assert run(config, "send").exit_code == 1
    paused = f"127.0.0.1:{wrong.port}"
    with smtp_server(Recorder()) as right:  # the operator fixes the port in [smtp]
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace(f"port = {wrong.port}\n", f"port = {right.port}\n"), encoding="utf-8")
        assert run(config, "send").exit_code == 0

    shown = run(config, "status").stdout
    assert f"sending to {paused} paused at " in shown
    assert "(not the relay [smtp] names now: sends there do not end this pause)" in shown, shown
    (pause,) = json.loads(run(config, "status", "--json").stdout)["paused"]
    assert (pause["relay"], pause["configured"]) == (paused, False)
