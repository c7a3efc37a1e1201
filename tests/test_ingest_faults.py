"""Ingest under damaged, hostile and odd files (issue 11, points 7, 8 and 10): the real CLI in a
subprocess, a real SQLite file, real files on disk."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from newsletter.config import load_settings
from newsletter.store import Store
from tests.helpers import write_config
from tests.test_ingest import row, write_day
from tests.test_parsing_cards import cards_html, make_card


def newsletter(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def stored_ids(config: Path, date: dt.date) -> list[str]:
    with Store.from_settings(load_settings(config)) as store:
        day = store.get_day(date)
    return [] if day is None else [p.arxiv_id for p in day.papers]


# --- 7: a fault inside a parser is that file's error -------------------------------------------


def test_a_page_the_html_parser_chokes_on_is_that_files_error_and_the_good_files_are_stored(tmp_path):
    digests = tmp_path / "digests"
    write_day(digests, "good.md", "2026-01-05", [row("2601.00001", "One", "x"), row("2601.00002", "Two", "y")])
    page = cards_html("2026-01-06", [make_card(1)]).replace("<nav>", "<p>Note <![ draft ]></p><nav>")
    (digests / "page.html").write_text(page, encoding="utf-8")
    config = write_config(tmp_path)
    done = newsletter(config, "ingest", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    assert stored_ids(config, dt.date(2026, 1, 5)) == ["2601.00001", "2601.00002"]
    if done.returncode == 1:  # the page could not be read: its error names it and says what to do
        assert "page.html" in done.stderr and "hint:" in done.stderr
    else:  # a parser that takes `<![` in its stride stores the page too
        assert done.returncode == 0 and stored_ids(config, dt.date(2026, 1, 6)) == [make_card(1).arxiv_id]
    report = json.loads(done.stdout)
    assert report["days"] >= 1

    parsed = newsletter(config, "parse", str(digests / "good.md"), str(digests / "page.html"))
    assert "Traceback" not in parsed.stderr and "2601.00002" in parsed.stdout
