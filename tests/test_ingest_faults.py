"""Ingest under damaged, hostile and odd files (issue 11, points 7, 8 and 10): the real CLI in a
subprocess, a real SQLite file and a real PostgreSQL server, real files on disk."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from cards_pages_2025 import cards_html, cards_text, make_card
from helpers import row, write_config, write_day
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.store.schema import papers


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


@pytest.mark.usefixtures("store_backend")
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


# --- 8: a damaged re-ingest never deletes stored papers silently -------------------------------

TEN = [row(f"2601.{n:05d}", f"Paper {n}", f"Summary {n}.") for n in range(1, 11)]
DAY = dt.date(2026, 1, 5)


def ten_paper_day(tmp_path: Path) -> tuple[Path, Path]:
    path = write_day(tmp_path / "digests", "day.md", "2026-01-05", TEN)
    config = write_config(tmp_path)
    assert newsletter(config, "ingest").returncode == 0
    assert len(stored_ids(config, DAY)) == 10
    return config, path


@pytest.mark.usefixtures("store_backend")
def test_a_file_cut_to_half_keeps_the_stored_listing_until_the_shrink_is_accepted(tmp_path):
    config, path = ten_paper_day(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    done = newsletter(config, "ingest", "--json")
    assert done.returncode == 1
    assert "day.md" in done.stderr and "--accept-shrink" in done.stderr
    (shrunk,) = json.loads(done.stdout)["shrunk"]
    assert shrunk["file"].endswith("day.md") and shrunk["date"] == "2026-01-05"
    assert shrunk["stored"] == 10 and shrunk["parsed"] <= 5
    assert len(stored_ids(config, DAY)) == 10
    assert newsletter(config, "ingest").returncode == 1, "held again on the next run, not skipped as unchanged"

    accepted = newsletter(config, "ingest", "--accept-shrink", "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["shrunk"] == []
    assert len(stored_ids(config, DAY)) == shrunk["parsed"]


@pytest.mark.usefixtures("store_backend")
def test_a_file_replaced_by_a_heading_and_random_bytes_keeps_the_stored_listing(tmp_path):
    config, path = ten_paper_day(tmp_path)
    heading = b"## Papers for 2026-01-05\n\n| Title | Authors | Summary |\n|--|--|--|\n"
    path.write_bytes(heading + bytes(range(128, 256)) * 8)
    done = newsletter(config, "ingest")
    assert done.returncode == 1 and "day.md" in done.stderr and "kept" in done.stderr
    assert len(stored_ids(config, DAY)) == 10


@pytest.mark.usefixtures("store_backend")
def test_a_file_that_no_longer_lists_the_day_keeps_the_stored_listing(tmp_path):
    config, path = ten_paper_day(tmp_path)
    path.write_text(path.read_text().replace("2026-01-05", "2026-01-06"))  # re-dated, or the heading damaged
    done = newsletter(config, "ingest", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["shrunk"][0]["parsed"] == 0
    assert len(stored_ids(config, DAY)) == 10 and stored_ids(config, dt.date(2026, 1, 6)) == []
    assert newsletter(config, "ingest", "--accept-shrink").returncode == 0
    assert stored_ids(config, DAY) == [] and len(stored_ids(config, dt.date(2026, 1, 6))) == 10


@pytest.mark.usefixtures("store_backend")
def test_a_corrected_file_that_loses_one_row_is_not_held(tmp_path):
    config, path = ten_paper_day(tmp_path)
    write_day(path.parent, "day.md", "2026-01-05", TEN[:9])
    assert newsletter(config, "ingest").returncode == 0
    assert len(stored_ids(config, DAY)) == 9


# --- 10: encodings and odd files ---------------------------------------------------------------

ONE_ROW = "## Papers for 2026-01-05\n\n| Title | Authors | Summary |\n|---|---|---|\n" + row(
    "2601.00001", "Café théorie", "Résumé of the paper."
) + "\n"


@pytest.mark.usefixtures("store_backend")
def test_a_utf16_file_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / "digests").mkdir()
    (tmp_path / "digests" / "day.md").write_bytes(ONE_ROW.encode("utf-16"))
    config = write_config(tmp_path)
    done = newsletter(config, "ingest")
    own_warnings = [line for line in done.stderr.splitlines() if "example domain" not in line]
    assert done.returncode == 0 and not any("warning" in line for line in own_warnings), done.stderr
    with Store.from_settings(load_settings(config)) as store:
        (paper,) = store.get_day(DAY).papers  # type: ignore[union-attr]
    assert paper.title == "Café théorie"


@pytest.mark.usefixtures("store_backend")
def test_a_latin1_file_is_read_with_a_warning_naming_the_file(tmp_path):
    (tmp_path / "digests").mkdir()
    (tmp_path / "digests" / "day.md").write_bytes(ONE_ROW.encode("latin-1"))
    config = write_config(tmp_path)
    done = newsletter(config, "ingest", "--json")
    assert done.returncode == 0
    (warning,) = json.loads(done.stdout)["warnings"]
    assert warning["file"].endswith("day.md") and warning["line"] == 5 and "UTF-8" in warning["message"]
    with Store.from_settings(load_settings(config)) as store:
        (paper,) = store.get_day(DAY).papers  # type: ignore[union-attr]
    assert (paper.title, paper.summary) == ("Café théorie", "Résumé of the paper.")


def test_an_impossible_date_is_the_same_warning_in_every_format(tmp_path):
    card = make_card(1)
    (tmp_path / "table.md").write_text(ONE_ROW.replace("2026-01-05", "2025-02-30"), encoding="utf-8")
    (tmp_path / "cards.txt").write_text(cards_text("2025-02-30", [card]), encoding="utf-8")
    (tmp_path / "cards.html").write_text(cards_html("2025-02-30", [card]), encoding="utf-8")
    config = write_config(tmp_path, digests="[]")
    messages = set()
    for name in ("table.md", "cards.txt", "cards.html"):
        done = newsletter(config, "parse", "--json", str(tmp_path / name))
        # The file's only day is unreadable: nothing could be read from it, a failed file.
        assert done.returncode == 1 and f"{name}: nothing in this file could be read" in done.stderr, done.stderr
        parsed = json.loads(done.stdout)
        assert parsed["days"] == []
        (warning,) = parsed["warnings"]  # in the JSON, not on stderr
        assert warning["file"].endswith(name) and "2025-02-30" in warning["message"]
        messages.add(warning["message"])
    assert len(messages) == 1, messages


@pytest.mark.usefixtures("store_backend")
def test_a_day_with_more_papers_than_max_papers_per_day_is_refused_with_a_warning(tmp_path):
    write_day(tmp_path / "digests", "big.md", "2026-01-05", TEN[:4])
    write_day(tmp_path / "digests", "ok.md", "2026-01-06", TEN[4:7])
    config = write_config(tmp_path, digests='["digests"]\nmax_papers_per_day = 3')
    done = newsletter(config, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    (warning,) = json.loads(done.stdout)["warnings"]
    assert warning["file"].endswith("big.md") and "max_papers_per_day" in warning["message"]
    assert stored_ids(config, DAY) == [] and len(stored_ids(config, dt.date(2026, 1, 6))) == 3
    assert "max_papers_per_day" in newsletter(config, "ingest").stderr, "reported again on an unchanged run"

    write_day(tmp_path / "digests", "ok.md", "2026-01-06", TEN[4:8])  # grown past the limit
    again = newsletter(config, "ingest")
    assert again.returncode == 0 and "ok.md" in again.stderr, again.stderr
    assert len(stored_ids(config, dt.date(2026, 1, 6))) == 3, "the listing stored earlier stays"


def test_max_papers_per_day_is_validated(tmp_path):
    config = write_config(tmp_path, digests='["digests"]\nmax_papers_per_day = 0')
    done = newsletter(config, "ingest")
    assert done.returncode == 2 and "digests.max_papers_per_day must be at least 1" in done.stderr


@pytest.mark.usefixtures("store_backend")
def test_prune_removes_and_lists_the_listings_of_files_that_no_longer_exist(tmp_path):
    digests = tmp_path / "digests"
    gone = write_day(digests, "gone.md", "2026-01-05", [TEN[0], TEN[1]])
    write_day(digests, "kept.md", "2026-01-06", [TEN[1], TEN[2]])
    empty = write_day(digests, "empty.md", "2026-01-07", [])
    config = write_config(tmp_path)
    assert newsletter(config, "ingest").returncode == 0
    gone.unlink()
    empty.unlink()
    assert stored_ids(config, DAY) == ["2601.00001", "2601.00002"], "without --prune nothing is removed"

    done = newsletter(config, "ingest", "--prune", "--json")
    assert done.returncode == 0, done.stderr
    pruned = {p["file"]: p for p in json.loads(done.stdout)["pruned"]}
    assert pruned == {
        "digests/empty.md": {"file": "digests/empty.md", "dates": ["2026-01-07"], "papers": 0},
        "digests/gone.md": {"file": "digests/gone.md", "dates": ["2026-01-05"], "papers": 2},
    }
    with Store.from_settings(load_settings(config)) as store:
        assert store.dates() == [dt.date(2026, 1, 6)]
        assert store.appearances_of(["2601.00001", "2601.00002"]) == {"2601.00002": [dt.date(2026, 1, 6)]}
    with Store.from_settings(load_settings(config)) as store, store.engine.connect() as conn:
        kept = conn.scalars(select(papers.c.arxiv_id).order_by(papers.c.arxiv_id)).all()
    assert kept == ["2601.00002", "2601.00003"]
    assert newsletter(config, "ingest", "--prune", "--json").stdout.count("gone.md") == 0

    write_day(digests, "later.md", "2026-01-08", [TEN[3]])
    assert newsletter(config, "ingest").returncode == 0
    (digests / "later.md").rename(digests / "renamed.md")
    text = newsletter(config, "ingest", "--prune")
    assert text.returncode == 0
    assert "pruned digests/later.md (no longer exists): its 1 paper on 2026-01-08" in text.stdout
    assert stored_ids(config, dt.date(2026, 1, 8)) == ["2601.00004"], "the renamed file's listing is ingested"


# --- a file with nothing readable fails; a listing stored earlier stays ---------------------------

UNLINKED = [f"| Paper {n} without a link | A. Author | Summary {n}. |" for n in range(1, 16)]


@pytest.mark.usefixtures("store_backend")
def test_a_file_whose_every_row_is_unreadable_fails_and_keeps_the_stored_listing(tmp_path):
    path = write_day(tmp_path / "digests", "day.md", "2026-01-05", TEN[:1])
    write_day(tmp_path / "digests", "empty.md", "2026-01-06", [])  # a day without papers is no failure
    config = write_config(tmp_path)
    assert newsletter(config, "ingest").returncode == 0
    with Store.from_settings(load_settings(config)) as store:
        assert store.dates() == [dt.date(2026, 1, 6), DAY]

    write_day(path.parent, "day.md", "2026-01-05", UNLINKED)
    for _ in range(2):  # failed again on the next run, not skipped as unchanged
        done = newsletter(config, "ingest", "--json")
        assert done.returncode == 1, done.stderr
        assert "error: " + str(path.resolve()) + ": nothing in this file could be read" in done.stderr
        warnings = json.loads(done.stdout)["warnings"]
        assert len([w for w in warnings if "no arXiv link" in w["message"]]) == 15
        assert stored_ids(config, DAY) == ["2601.00001"]
    parsed = newsletter(config, "parse", str(path))
    assert parsed.returncode == 1 and "nothing in this file could be read" in parsed.stderr


@pytest.mark.usefixtures("store_backend")
def test_a_day_of_unreadable_rows_beside_a_good_day_is_left_out_and_its_stored_listing_stays(tmp_path):
    good = "## Papers for 2026-01-06\n\n| Title | Authors | Summary |\n|---|---|---|\n" + TEN[5] + "\n"
    path = write_day(tmp_path / "digests", "two.md", "2026-01-05", TEN[:1])
    path.write_text(path.read_text() + "\n" + good)
    config = write_config(tmp_path)
    assert newsletter(config, "ingest").returncode == 0

    path.write_text(path.read_text().replace(TEN[0], UNLINKED[0]))
    done = newsletter(config, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    (day_warning,) = [w for w in json.loads(done.stdout)["warnings"] if "could be read" in w["message"]]
    assert day_warning["line"] == 1 and "2026-01-05" in day_warning["message"]
    assert stored_ids(config, DAY) == ["2601.00001"]
    assert stored_ids(config, dt.date(2026, 1, 6)) == ["2601.00006"]


def test_a_cards_page_whose_every_card_is_unreadable_fails(tmp_path):
    cards = [make_card(n) for n in range(1, 4)]
    for card in cards:
        card.arxiv_id = "missing"
    (tmp_path / "page.html").write_text(cards_html("2026-01-05", cards), encoding="utf-8")
    config = write_config(tmp_path, digests="[]")
    done = newsletter(config, "parse", "--json", str(tmp_path / "page.html"))
    assert done.returncode == 1 and "page.html: nothing in this file could be read" in done.stderr
    parsed = json.loads(done.stdout)
    assert any("none of the 3 papers listed for 2026-01-05 could be read" in w["message"] for w in parsed["warnings"])
    assert parsed["days"] == []


@pytest.mark.usefixtures("store_backend")
def test_a_changed_max_papers_per_day_holds_for_files_read_before(tmp_path):
    digests = tmp_path / "digests"
    write_day(digests, "big.md", "2026-01-05", TEN[:4])
    config = write_config(tmp_path)
    assert newsletter(config, "ingest").returncode == 0

    write_config(tmp_path, digests='["digests"]\nmax_papers_per_day = 3')
    lowered = newsletter(config, "ingest", "--json")
    assert lowered.returncode == 0, lowered.stderr
    (warning,) = json.loads(lowered.stdout)["warnings"]
    assert warning["file"].endswith("big.md") and "more than [digests] max_papers_per_day (3)" in warning["message"]
    assert len(stored_ids(config, DAY)) == 4, "the listing stored earlier stays"

    write_day(digests, "new.md", "2026-01-06", TEN[4:8])  # refused at 3, stored once the limit is raised
    assert newsletter(config, "ingest").returncode == 0
    assert stored_ids(config, dt.date(2026, 1, 6)) == []
    write_config(tmp_path, digests='["digests"]\nmax_papers_per_day = 4')
    raised = newsletter(config, "ingest", "--json")
    assert raised.returncode == 0 and json.loads(raised.stdout)["warnings"] == []
    assert len(stored_ids(config, dt.date(2026, 1, 6))) == 4
