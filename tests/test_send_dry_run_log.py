"""`send --dry-run` after real sends: it shows what a send would deliver now, leaving out (and saying
so) what the delivery log shows as already sent, and still writes nothing to the store."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import run
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from shipped_project import shipped_project
from smtp_helpers import Recorder, smtp_server

DAY = "2026-11-20"
EXAMPLE_READERS = 5


def delivery_rows(config: Path) -> dict[object, dict[str, int]]:
    with Store.from_settings(load_settings(config)) as store:
        return dict(store.delivery_counts())


def test_a_dry_run_after_a_send_leaves_out_what_went_out(tmp_path: Path, store_backend: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        config = shipped_project(tmp_path, server.port)
        outbox = tmp_path / "var" / "outbox" / DAY
        assert run(config, "send").exit_code == 0
        assert recorder.count() == EXAMPLE_READERS

        before = delivery_rows(config)
        result = run(config, "send", "--dry-run")
        assert result.exit_code == 0, result.output
        assert f"{EXAMPLE_READERS} planned, {EXAMPLE_READERS} already sent: nothing would go out" in result.stdout
        assert "Wrote 0 .eml files." in result.stdout
        assert re.search(r"\n  Going out now +0\n", result.stdout), result.stdout
        assert not list(outbox.glob("*.eml"))
        messages = json.loads((outbox / "plan.json").read_text(encoding="utf-8"))["messages"]
        assert len(messages) == EXAMPLE_READERS
        assert all(m["goes_out"] is False and m["log_state"] == "sent" and m["file"] is None for m in messages)

        # A new reader: the dry run shows exactly the one message a send delivers now.
        with Store.from_settings(load_settings(config)) as store:
            store.add_subscriber(Subscriber(email="newcomer@example.net", token="tok-newcomer"))
        result = run(config, "send", "--dry-run")
        assert result.exit_code == 0, result.output
        assert f"{EXAMPLE_READERS + 1} planned, {EXAMPLE_READERS} already sent: 1 would go out now" in result.stdout
        assert "newcomer@example.net (daily/2026-11-20)\n" in result.stdout
        assert re.search(r"\n  Going out now +1\n", result.stdout), result.stdout
        assert "ada@example.org (daily/2026-11-20): already sent" in result.stdout
        files = list(outbox.glob("*.eml"))
        assert [f.name.split("-", 1)[1] for f in files] == ["newcomer@example.net.eml"]
        going = [m["to"] for m in json.loads((outbox / "plan.json").read_text(encoding="utf-8"))["messages"]
                 if m["goes_out"]]
        assert going == ["newcomer@example.net"]
        assert delivery_rows(config) == before, "a dry run must write nothing to the store"

        assert run(config, "send").exit_code == 0
    assert recorder.count() == EXAMPLE_READERS + 1
    assert recorder.per_recipient()["newcomer@example.net"] == 1
