"""The store under concurrency and file moves, on a real SQLite file and a real PostgreSQL server, by real processes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, table

from helpers import row, run, run_json, write_config, write_day
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.store.migrations import VERSION_TABLE
from newsletter.store.schema import papers


def newsletter_cli(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.usefixtures("store_backend")
def test_ingests_at_once_into_a_new_store_all_succeed(tmp_path, corpus_dir):
    folders = [str(corpus_dir / "seeds"), str(corpus_dir / "daily-ai-papers")]
    config = write_config(tmp_path, digests=json.dumps(folders))
    runs = [newsletter_cli(config, "ingest", "--json") for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in runs]
    for process, (_, err) in zip(runs, outputs, strict=True):
        assert process.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]
    # Whoever came first stored the papers; the others found them unchanged: each is new once.
    with Store.from_settings(load_settings(config)) as store, store.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(papers))
        revisions = conn.scalar(select(func.count()).select_from(table(VERSION_TABLE)))
    assert stored is not None and stored > 2000
    assert sum(r["papers"]["new"] for r in reports) == stored
    assert revisions == 1  # created once


def test_opening_a_new_store_waits_for_another_writer(tmp_path):  # SQLite only: its WAL switch is the subject
    # SQLite refuses at once, without waiting busy_timeout, to switch a new file to WAL while
    # another connection writes to it; three ingests starting together on CI hit exactly that.
    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_tool (x)")
    threading.Timer(0.3, writer.execute, ["COMMIT"]).start()
    with Store(f"sqlite:///{path}") as store:
        assert store.dates() == []
    writer.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.usefixtures("store_backend")
def test_moving_the_project_folder_keeps_each_file_one_source(tmp_path):
    first = tmp_path / "one"
    write_day(first / "digests", "day.md", "2026-01-05", [row("2601.00001", "Old title", "x")])
    run_json(write_config(first), "ingest")
    moved = tmp_path / "two"
    shutil.move(first, moved)
    day_file = moved / "digests" / "day.md"
    day_file.write_text(day_file.read_text().replace("Old title", "New title"))
    assert run_json(moved / "config.toml", "ingest")["papers"] == {"new": 0, "updated": 1, "unchanged": 0}
    with Store.from_settings(load_settings(moved / "config.toml")) as store:
        day = store.get_day(dt.date(2026, 1, 5))
    assert day is not None and day.source == "digests/day.md"
    assert [p.title for p in day.papers] == ["New title"]


@pytest.mark.usefixtures("store_backend")
def test_a_renamed_and_corrected_file_overrides_its_old_listing(tmp_path):
    digests = tmp_path / "digests"
    old = write_day(digests, "a-day.md", "2026-01-05", [row("2601.00001", "Old title", "x")])
    config = write_config(tmp_path)
    run_json(config, "ingest")
    old.rename(digests / "z-day.md")
    (digests / "z-day.md").write_text(old.name and (digests / "z-day.md").read_text().replace("Old", "New"))
    assert run_json(config, "ingest")["papers"]["updated"] == 1
    with Store.from_settings(load_settings(config)) as store:
        assert [p.title for p in store.get_day(dt.date(2026, 1, 5)).papers] == ["New title"]  # type: ignore[union-attr]


def test_a_store_folder_that_cannot_be_created_is_a_clear_error(tmp_path):  # SQLite only: a store file's folder
    (tmp_path / "var").write_text("a file where the store's folder should be")
    config = write_config(tmp_path)
    write_day(tmp_path / "digests", "day.md", "2026-01-05", [row("2601.00001", "One", "x")])
    result = run(config, "ingest")
    assert result.exit_code == 1
    assert "cannot create the folder of the store" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.usefixtures("store_backend")
def test_latest_date_is_the_newest_day(tmp_path):
    digests = tmp_path / "digests"
    write_day(digests, "a.md", "2026-01-05", [row("2601.00001", "One", "x")])
    write_day(digests, "b.md", "2026-01-07", [row("2601.00002", "Two", "y")])
    config = write_config(tmp_path)
    with Store.from_settings(load_settings(config)) as empty:
        assert empty.latest_date() is None
    run_json(config, "ingest")
    with Store.from_settings(load_settings(config)) as store:
        assert store.latest_date() == dt.date(2026, 1, 7)


def test_a_locked_sqlite_file_is_blamed_on_the_file_and_a_missing_table_on_the_schema(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, exc, text

    from newsletter.store.failures import store_failure

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the file
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    failures = []
    for statement in ("INSERT INTO t VALUES (1)", "SELECT * FROM nowhere"):
        if statement.startswith("SELECT"):
            holder.execute("ROLLBACK")
        with pytest.raises(exc.OperationalError) as raised, engine.begin() as conn:
            conn.execute(text(statement))
        failures.append(store_failure(raised.value))
    engine.dispose()
    holder.close()

    locked, missing = (str(failure) for failure in failures if failure is not None)
    assert "database is locked" in locked and "disk is not full" in locked and "locks it" in locked
    assert "no such table: nowhere" in missing and "`newsletter db current`" in missing
    assert "server" not in locked + missing
