"""Drift through the real CLI, on a real SQLite file and a real PostgreSQL server: `ingest --json` counts
per file, `status` shows the last ingest's health, and the day's note is stored per (day, file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cards_pages_2026 import make_card, page_html, page_text
from helpers import row, run, run_json, write_config
from legacy_schema import back_to_day_keyed
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.store.migrations import VERSION_TABLE
from newsletter.store.migrations.versions.v0001_baseline import metadata as previous_release
from newsletter.store.schema import metadata

pytestmark = pytest.mark.usefixtures("store_backend")

TIPS = ("Read paper 2 first.", "先读第二篇。")


def write_week(folder: Path, broken_day: int | None = None) -> list[Path]:
    """Six cards pages of six papers; on ``broken_day`` four cards have no arXiv link."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(1, 7):
        cards = [make_card(day * 10 + n) for n in range(6)]
        if day == broken_day:
            for card in cards[:4]:
                card.arxiv_id = "missing"
        path = folder / f"2031-04-{day:02d}.html"
        path.write_text(page_html(f"2031-04-{day:02d}", cards, TIPS), encoding="utf-8")
        paths.append(path)
    return paths


def test_ingest_json_counts_drift_per_file_and_status_shows_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    paths = write_week(tmp_path / "digests", broken_day=4)
    broken = str(paths[3].resolve())  # files are named as in the warnings
    report = run_json(config, "ingest")
    files = {f["file"]: f for f in report["files"]}
    assert set(files) == {str(p.resolve()) for p in paths}
    assert files[broken]["drift"]["skipped_card"] == 4
    assert files[broken]["drift"]["short_day"] == 1
    assert (files[broken]["blocks"], files[broken]["papers"]) == (6, 2)
    assert all(sum(f["drift"].values()) == 0 and f["papers"] == 6 for name, f in files.items() if name != broken)
    messages = [w for w in report["warnings"] if w["file"] == broken]
    assert any(w["message"].startswith("2 of about 6 papers a cards-html digest") for w in messages)
    assert files[broken]["warnings"] == len(messages) == 5
    assert all(w["line"] > 1 for w in messages)

    again = run_json(config, "ingest")  # unchanged files: the stored health and warnings again
    assert {f["file"]: f["drift"] for f in again["files"]} == {name: f["drift"] for name, f in files.items()}
    assert len([w for w in again["warnings"] if w["file"] == broken]) == 5

    status = run(config, "status")
    assert status.exit_code == 0, status.output
    assert "last ingest" in status.stdout and "6 files" in status.stdout
    assert f"layout drift: 1 short day, 4 skipped card in {broken}" in status.stdout


def test_the_day_note_is_stored_per_file_and_read_with_the_day(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    folder = tmp_path / "digests"
    folder.mkdir()
    (folder / "a.html").write_text(page_html("2031-05-01", [make_card(1)], TIPS), encoding="utf-8")
    (folder / "b.txt").write_text(page_text("2031-05-01", [make_card(2)], ("Then paper 2.", "然后")), "utf-8")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        day = store.get_day(dt.date(2031, 5, 1))
    assert day is not None
    assert day.note == "Read paper 2 first.\n\nThen paper 2."
    assert day.note_translations == {"zh": "先读第二篇。\n\n然后"}
    first_points = [p.translations["zh"].points[0].text for p in day.papers]
    assert first_points == ["论文1的第1点中文说明。", "论文2的第1点中文说明。"]

    # The tips removed from one file: its note goes, the other file's stays.
    (folder / "a.html").write_text(page_html("2031-05-01", [make_card(1)]), encoding="utf-8")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        day = store.get_day(dt.date(2031, 5, 1))
    assert day is not None and day.note == "Then paper 2."


def test_a_store_made_before_notes_and_health_opens_once_upgraded(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    write_week(tmp_path / "digests")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store, store.engine.begin() as conn:
        back_to_day_keyed(conn)  # the tables revision 0003 changed, as they were before it
        # Then as a store of a release before revisions had it.
        later = set(metadata.tables) - set(previous_release.tables)  # added by revisions since
        for table in ("source_notes", "source_health", "ingest_runs", VERSION_TABLE, *later):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO schema_version VALUES (2)")
    assert "run `newsletter db upgrade`" in run(config, "status").output
    assert run(config, "db", "upgrade").exit_code == 0
    status = run(config, "status")
    assert status.exit_code == 0 and "nothing sent yet" in status.stdout
    report = run_json(config, "ingest")
    assert report["papers"]["unchanged"] == 36
    with Store.from_settings(load_settings(config)) as store:
        assert store.get_day(dt.date(2031, 4, 1)) is not None


def test_a_small_day_is_not_drift_but_a_full_page_with_few_papers_is(tmp_path: Path) -> None:
    paths = write_week(tmp_path / "digests", broken_day=4)
    paths[1].write_text(page_html("2031-04-02", [make_card(99)], TIPS), encoding="utf-8")  # a quiet day
    result = run(None, "parse", *map(str, paths))
    assert result.exit_code == 0, result.output
    short = [line for line in result.stderr.splitlines() if "usually has" in line]
    assert len(short) == 1 and "2031-04-04.html" in short[0]


def test_a_renamed_table_header_is_drift_in_ingest_json_and_status(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rows = "\n".join(row(f"3101.{n:05d}", f"Paper {n}", "Text.", authors="Ann Lee, Bo Chen") for n in range(1, 7))
    renamed = tmp_path / "digests" / "renamed.md"
    renamed.parent.mkdir()
    renamed.write_text(f"## Papers for 2031-06-01\n\n| Paper | Who | Abstract |\n|---|---|---|\n{rows}\n", "utf-8")
    report = run_json(config, "ingest")
    (warning,) = report["warnings"]
    assert (warning["file"], warning["line"]) == (str(renamed.resolve()), 3)
    assert "header 'Who' is not a known column" in warning["message"]
    (health,) = report["files"]
    assert health["drift"]["unknown_column"] == 1 and health["papers"] == 6
    assert report["papers"]["new"] == 6

    status = run(config, "status")
    assert status.exit_code == 0, status.output
    assert f"layout drift: 1 unknown column in {renamed.resolve()}; `newsletter parse FILE` shows the warnings" \
        in status.stdout
