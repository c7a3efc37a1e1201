"""The archive's day pages are kept in memory: no store read per request, a re-ingest shown after
ARCHIVE_RECHECK_SECONDS. The app under waitress in a thread, its clock faked; a real SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from sqlalchemy import event

from helpers import run
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.web import create_app
from newsletter.web.archive import ARCHIVE_RECHECK_SECONDS
from smtp_helpers import free_port
from web_support import EXAMPLE_DIGESTS, SECRET, SECRET_ENV, check_page, thread_server, web_config

DAY = "2026-11-20"
TITLE = "Gaussian Splats That Age Well"


@pytest.mark.usefixtures("store_backend")
def test_a_day_page_is_served_from_memory_until_it_is_due_for_a_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    digests = tmp_path / "digests"
    shutil.copytree(EXAMPLE_DIGESTS, digests)
    config = web_config(tmp_path, free_port(), digests=digests)  # nothing here sends email
    assert run(config, "ingest").exit_code == 0
    settings = load_settings(config)
    now = [1_750_000_000.0]
    with Store.from_settings(settings) as store, \
            thread_server(create_app(settings, store=store, clock=lambda: now[0]), settings) as base:
        statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda _conn, _cursor, statement, *_rest: statements.append(statement))
        url = f"{base}/archive/{DAY}"
        first = requests.get(url, timeout=10)
        check_page(first)
        assert statements and TITLE in first.text

        statements.clear()
        for _ in range(3):
            again = requests.get(url, timeout=10)
            assert (again.status_code, again.content, again.headers["ETag"]) == (200, first.content,
                                                                                  first.headers["ETag"])
        assert statements == []

        corrected = digests / f"{DAY}.md"
        corrected.write_text(corrected.read_text(encoding="utf-8").replace(TITLE, "Splats Corrected"),
                             encoding="utf-8")
        assert run(config, "ingest").exit_code == 0
        now[0] += ARCHIVE_RECHECK_SECONDS - 1
        assert requests.get(url, timeout=10).content == first.content  # not due yet
        now[0] += 1
        fresh = requests.get(url, timeout=10)
        assert "Splats Corrected" in fresh.text and TITLE not in fresh.text
        assert fresh.headers["ETag"] != first.headers["ETag"]
        stale = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
        assert stale.status_code == 200
