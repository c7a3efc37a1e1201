"""The schema's Alembic revisions, on a real SQLite file and a real PostgreSQL server.

A database made by a release before Alembic is built here the way that release built it: every table of
its schema.py (frozen in the baseline revision) plus its ``schema_version`` table (version 1 also lacked a
column), with rows in it.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from helpers import run, write_config
from legacy_schema import back_to_day_keyed
from newsletter.models import Subscriber
from newsletter.store import Store, schema_state
from newsletter.store.migrations import VERSION_TABLE, head
from newsletter.store.migrations.versions.v0001_baseline import metadata as previous_release
from newsletter.store.schema import deliveries, metadata, papers

NOW = dt.datetime(2026, 11, 20, 7, 0, tzinfo=dt.UTC)


def differences(url: str) -> list[object]:
    """What Alembic's autogenerate would change to make the database match schema.py: nothing, at head."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def build_previous_release(url: str, version: int) -> None:
    """The tables as the releases before Alembic made them, stamped ``schema_version`` = ``version``."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            previous_release.create_all(conn)
            conn.execute(text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
            if version < 2:
                conn.execute(text("ALTER TABLE deliveries DROP COLUMN unknown_outcomes"))
            old = previous_release.tables
            conn.execute(insert(old["papers"]).values(arxiv_id="2611.00001", content="{}", content_hash="h",
                                                      title="Kept", first_seen=NOW.date(), updated_at=NOW))
            conn.execute(insert(old["subscribers"]).values(email="Ada@example.org", email_key="ada@example.org",
                                                           name="Ada", categories=[], keywords=["diffusion"],
                                                           excluded=[], status="active", token="t" * 32,
                                                           created_at=NOW))
            conn.execute(text("INSERT INTO deliveries (date, subscriber_id, email, message_id, state, attempts, "
                              "updated_at) VALUES (:d, 1, 'Ada@example.org', '<m@example.org>', 'sent', 1, :now)"),
                         {"d": NOW.date(), "now": NOW})
    finally:
        engine.dispose()


def test_a_new_store_is_created_at_head_exactly_as_schema_py_says(store_url: str) -> None:
    assert schema_state(store_url).status == "empty"
    Store(store_url).close()

    state = schema_state(store_url)
    assert (state.status, state.revision) == ("current", head())
    assert differences(store_url) == []


@pytest.mark.parametrize("version", [1, 2])
def test_a_store_of_the_previous_release_is_refused_until_upgraded_with_its_rows(
        tmp_path: Path, store_url: str, version: int) -> None:
    build_previous_release(store_url, version)
    config = write_config(tmp_path, store_url=store_url)

    refused = run(config, "status")
    current = run(config, "db", "current")
    upgraded = run(config, "db", "upgrade")
    again = run(config, "db", "upgrade")
    status = run(config, "status", "--date", NOW.date().isoformat())

    assert refused.exit_code == 1
    assert "older schema" in refused.output and "run `newsletter db upgrade`" in refused.output
    assert current.exit_code == 0 and f"schema_version {version}, from a release before revisions" in current.output
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from schema_version {version}" in upgraded.output
    assert f"now at revision {head()} (head): up to date" in upgraded.output
    assert again.stdout.startswith(f"already at revision {head()}")
    assert status.exit_code == 0 and "1 sent" in status.output
    assert differences(store_url) == []
    with Store(store_url) as store:
        (ada,) = store.subscribers()
        with store.engine.connect() as conn:
            titles = conn.execute(select(papers.c.title)).scalars().all()
            log = conn.execute(select(deliveries.c.message_id, deliveries.c.unknown_outcomes)).all()
            tables = set(inspect(conn).get_table_names())
    assert (ada.email, ada.keywords) == ("Ada@example.org", ["diffusion"])
    assert titles == ["Kept"]
    assert [tuple(row) for row in log] == [("<m@example.org>", 0)]
    assert "schema_version" not in tables


def test_a_store_written_by_a_newer_release_is_refused(tmp_path: Path, store_url: str) -> None:
    with Store(store_url) as store, store.engine.begin() as conn:
        store.add_subscriber(Subscriber(email="ada@example.org"))
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
    config = write_config(tmp_path, store_url=store_url)

    refused = run(config, "subscribers", "list")
    not_upgraded = run(config, "db", "upgrade")
    current = run(config, "db", "current")

    for result in (refused, not_upgraded):
        assert result.exit_code == 1
        assert "newer schema: revision f00d, unknown to this newsletter" in result.output
        assert "upgrade newsletter" in result.output
    assert "revision f00d, unknown to this newsletter" in current.output


def test_db_upgrade_creates_a_missing_store(tmp_path: Path, store_backend: str) -> None:
    config = write_config(tmp_path)
    result = run(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    # It said "upgraded from empty: no newsletter tables yet (the first command creates them ...)".
    assert result.stdout == f"created the newsletter tables: now at revision {head()} (head): up to date\n"
    assert (tmp_path / "var" / "test.db").is_file() == (store_backend == "sqlite")  # PostgreSQL: an empty database
    assert f"revision {head()} (head): up to date" in run(config, "db", "current").output


def test_a_store_at_an_older_revision_is_refused_until_upgraded(tmp_path: Path, store_url: str) -> None:
    with Store(store_url) as store, store.engine.begin() as conn:  # back to the baseline, as its release left it
        store.add_subscriber(Subscriber(email="ada@example.org"))
        back_to_day_keyed(conn)
        for table in ("leader_leases", "relay_limits"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0001'"))
    config = write_config(tmp_path, store_url=store_url)

    refused = run(config, "subscribers", "list")
    upgraded = run(config, "db", "upgrade")
    listed = run(config, "subscribers", "list")

    assert refused.exit_code == 1
    assert f"older schema: revision 0001, older than this newsletter's head {head()}" in refused.output
    assert upgraded.exit_code == 0 and "upgraded from revision 0001" in upgraded.output
    assert listed.exit_code == 0 and "ada@example.org" in listed.output
    assert differences(store_url) == []


def test_threads_of_one_process_create_new_stores_at_the_same_time(tmp_path: Path, store_url: str) -> None:
    # Alembic runs revisions through module-level proxies (alembic.op, alembic.context): threads creating
    # stores at once (a threaded server, a test running both backends side by side) must not share them.
    urls = [store_url, *(f"sqlite:///{tmp_path / f'store{i}.db'}" for i in range(3))]
    start = threading.Barrier(len(urls))

    def create(url: str) -> str:
        start.wait()
        Store(url).close()
        return schema_state(url).status

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        assert list(pool.map(create, urls)) == ["current"] * len(urls)
