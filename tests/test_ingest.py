"""Ingest through the real CLI into a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cards_pages_2025 import cards_text, make_card
from helpers import row, run, run_json, write_config, write_day
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.store.schema import papers


def stored(config: Path) -> Store:
    return Store.from_settings(load_settings(config))


def count_and_last_update(config: Path) -> tuple[int, dt.datetime]:
    with stored(config) as store, store.engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), func.max(papers.c.updated_at))).one())  # type: ignore[return-value]


@pytest.mark.usefixtures("store_backend")
def test_ingest_twice_changes_nothing(tmp_path, corpus_dir):
    config = write_config(tmp_path, digests=f'["{corpus_dir}/seeds", "{corpus_dir}/daily-ai-papers"]')
    first = run_json(config, "ingest")
    assert first["papers"]["new"] > 2000 and first["papers"]["updated"] == 0
    before = count_and_last_update(config)
    second = run_json(config, "ingest")
    assert second["papers"] == {"new": 0, "updated": 0, "unchanged": first["papers"]["new"]}
    assert second["days"] == first["days"]
    assert count_and_last_update(config) == before


def test_a_category_cell_longer_than_the_column_is_stored_and_read_whole(tmp_path, store_url):
    category = "Robotics and " * 30  # a digest's own Category cell has no length limit
    digests = tmp_path / "digests"
    digests.mkdir()
    (digests / "day.md").write_text(
        "## Papers for 2026-01-05\n\n| Title | Authors | Summary | Category |\n|---|---|---|---|\n"
        f"{row('2601.00001', 'One', 'x')} {category} |\n", encoding="utf-8")
    config = write_config(tmp_path, store_url=store_url)
    assert run_json(config, "ingest")["papers"]["new"] == 1
    with stored(config) as store:
        (paper,) = store.get_day(dt.date(2026, 1, 5)).papers  # type: ignore[union-attr]
    assert paper.category == category.strip()


def test_corrected_file_updates_its_papers(tmp_path, store_url):
    digests = tmp_path / "digests"
    path = write_day(digests, "day.md", "2026-01-05", [row("2601.00001", "One", "First text."),
                                                       row("2601.00002", "Two", "Second text.")])
    config = write_config(tmp_path, store_url=store_url)
    assert run_json(config, "ingest")["papers"] == {"new": 2, "updated": 0, "unchanged": 0}
    path.write_text(path.read_text().replace("Second text.", "Second text, corrected."))
    assert run_json(config, "ingest")["papers"] == {"new": 0, "updated": 1, "unchanged": 1}
    with stored(config) as store:
        day = store.get_day(dt.date(2026, 1, 5))
    assert day is not None
    assert [p.summary for p in day.papers] == ["First text.", "Second text, corrected."]


def test_removed_row_leaves_the_day(tmp_path, store_url):
    digests = tmp_path / "digests"
    write_day(digests, "day.md", "2026-01-05", [row("2601.00001", "One", "x"), row("2601.00002", "Two", "y")])
    config = write_config(tmp_path, store_url=store_url)
    run_json(config, "ingest")
    write_day(digests, "day.md", "2026-01-05", [row("2601.00002", "Two", "y")])
    run_json(config, "ingest")
    with stored(config) as store:
        assert [p.arxiv_id for p in store.get_day(dt.date(2026, 1, 5)).papers] == ["2601.00002"]  # type: ignore[union-attr]


def test_paper_on_two_days_is_one_paper_with_two_appearances(tmp_path, store_url):
    digests = tmp_path / "digests"
    write_day(digests, "a.md", "2026-01-05", [row("2601.00001", "Shared", "Early text.")])
    write_day(digests, "b.md", "2026-01-06", [row("2601.00001", "Shared", "Later text."),
                                              row("2601.00009", "Other", "z")])
    config = write_config(tmp_path, store_url=store_url)
    assert run_json(config, "ingest")["papers"]["new"] == 2
    with stored(config) as store:
        assert store.appearances_of(["2601.00001"]) == {"2601.00001": [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]}
        days = store.days_between()
    assert [d.date for d in days] == [dt.date(2026, 1, 6), dt.date(2026, 1, 5)]
    # The newest day's text stands on both days, whatever order the files were read in.
    assert {d.papers[0].summary for d in days} == {"Later text."}
    with stored(config) as store, store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(papers)).scalar_one() == 2


def test_table_and_cards_for_one_day_add_up(tmp_path, store_url, seed_files):
    config = write_config(tmp_path, digests="[]", store_url=store_url)
    table, cards = seed_files[0], seed_files[1]
    run_json(config, "ingest", str(table))
    run_json(config, "ingest", str(cards))
    with stored(config) as store:
        day = store.get_day(dt.date(2025, 4, 14))
    assert day is not None
    ids = [p.arxiv_id for p in day.papers]
    assert len(ids) == len(set(ids)) >= 13
    by_id = {p.arxiv_id: p for p in day.papers}
    overlap = [p for p in by_id.values() if p.points and p.authors]
    assert overlap, "a paper in both files keeps the table's authors and gains the cards' points"
    # Re-ingesting either file alone changes nothing.
    assert run_json(config, "ingest", str(table))["papers"]["updated"] == 0
    assert run_json(config, "ingest", str(cards))["papers"]["updated"] == 0


@pytest.mark.parametrize("cards_first", [True, False], ids=["cards-first", "table-first"])
def test_a_paper_in_a_table_and_on_a_card_keeps_the_tables_summary_and_the_cards_points(
        tmp_path, store_url, cards_first):
    card = make_card(1)
    table = write_day(tmp_path / "digests", "table.md", "2030-04-02",
                      [row(card.arxiv_id, "Card Paper 1", "The table's *own* summary.")])
    cards = tmp_path / "digests" / "cards.txt"
    cards.write_text(cards_text("2030-04-02", [card]), encoding="utf-8")
    config = write_config(tmp_path, digests="[]", store_url=store_url)
    for path in ([cards, table] if cards_first else [table, cards]):
        run_json(config, "ingest", str(path))
    with stored(config) as store:
        day = store.get_day(dt.date(2030, 4, 2))
    assert day is not None
    (paper,) = day.papers
    assert paper.summary == "The table's *own* summary."
    assert [p.text for p in paper.points] == card.points


def test_bad_file_is_reported_after_the_good_ones_are_stored(tmp_path, store_url):
    digests = tmp_path / "digests"
    write_day(digests, "good.md", "2026-01-05", [row("2601.00001", "One", "x")])
    (digests / "notes.txt").write_text("shopping list: milk, eggs\n")
    config = write_config(tmp_path, store_url=store_url)
    result = run(config, "ingest", "--json")
    assert result.exit_code == 1
    assert "notes.txt" in result.stderr and "not a digest" in result.stderr
    with stored(config) as store:
        assert store.dates() == [dt.date(2026, 1, 5)]


def test_malformed_row_warns_with_file_and_line_and_keeps_the_rest(tmp_path, store_url):
    digests = tmp_path / "digests"
    write_day(digests, "day.md", "2026-01-05", [
        row("2601.00001", "One", "x"),
        "| A title with no link | Someone | text |",
        row("2601.00003", "Three", "z"),
    ])
    config = write_config(tmp_path, store_url=store_url)
    report = run_json(config, "ingest")
    assert report["papers"]["new"] == 2
    (warning,) = report["warnings"]
    assert warning["file"].endswith("day.md") and warning["line"] == 6 and warning["message"]


def test_nothing_stored_earlier_is_lost_when_a_later_run_has_bad_input(tmp_path, store_url):
    digests = tmp_path / "digests"
    write_day(digests, "day.md", "2026-01-05", [row("2601.00001", "One", "x")])
    config = write_config(tmp_path, store_url=store_url)
    run_json(config, "ingest")
    (digests / "day.md").write_bytes(b"\x00\xff garbage")
    assert run(config, "ingest").exit_code == 1
    with stored(config) as store:
        assert [p.arxiv_id for p in store.get_day(dt.date(2026, 1, 5)).papers] == ["2601.00001"]  # type: ignore[union-attr]


def test_missing_path_on_the_command_line_is_a_usage_error(tmp_path):
    config = write_config(tmp_path)
    result = run(config, "ingest", str(tmp_path / "nope.md"))
    assert result.exit_code == 2
    assert "nope.md" in result.stderr


def test_parse_json_for_the_seeds_has_every_field(seed_files):
    data = run_json(None, "parse", *map(str, seed_files))
    papers = [p for d in data["days"] for p in d["papers"]]
    assert [len(d["papers"]) for d in data["days"]] == [13, 3, 19, 15, 22]
    fields = {"arxiv_id", "title", "authors", "summary", "category", "categories", "links", "published",
              "points", "quiz", "flowchart"}
    assert all(set(p) == fields for p in papers)
    assert all(p["categories"] for p in papers)
    assert all(p["links"]["arxiv"] == f"https://arxiv.org/abs/{p['arxiv_id']}" for p in papers)
    seed_002 = data["days"][2]["papers"]
    assert all(p["category"] and p["categories"] == [p["category"]] for p in seed_002)
    assert all(p["category"] is None for p in data["days"][0]["papers"])
    cards = data["days"][1]["papers"]
    assert all(len(p["points"]) == 5 and len(p["quiz"]) == 3 and p["published"] for p in cards)
    # A card has no summary: the digest's own field stays empty, its flowchart line is kept apart.
    assert all(p["summary"] == "" and p["flowchart"] for p in cards)
    assert all(p["flowchart"] == "" for d in data["days"] if d is not data["days"][1] for p in d["papers"])
