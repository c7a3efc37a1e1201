"""The schema's history as Alembic revisions, shipped in the package and run without an alembic.ini.

Every command opens the store through ``check_schema``: an empty database (no table of ours yet) is
created by running every revision, so a first command on a new file or server just works; a database
at the newest revision (head) is used as it is; any other is refused, with a hint to run
``newsletter db upgrade`` (older) or to upgrade newsletter (newer). Upgrades are explicit because an
operator backs up first, and because several machines may share one database: the first newer
release to start must not change the schema under the older ones still running.

Databases made by the releases before Alembic carry a ``schema_version`` table (version 1 or 2); the
baseline revision adopts them (see ``versions/v0001_baseline.py``).

To change the schema:

1. Edit ``schema.py`` (the head, which the code uses).
2. Add ``versions/vNNNN_what_it_does.py`` with ``revision = "NNNN"``, ``down_revision`` = the
   previous revision's id, and an ``upgrade()`` made of ``alembic.op`` calls that bring a database at
   the previous revision to the new ``schema.py`` (``op.add_column``, ``op.create_table``,
   ``op.create_index``; on SQLite, change or drop a column inside ``with op.batch_alter_table(...)``).
   Copy the table definition into the revision rather than importing it from ``schema.py``: a revision
   must keep doing what it did when ``schema.py`` moves on.
3. ``tests/test_migrations.py`` checks that a database upgraded through every revision matches
   ``schema.py`` exactly, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from newsletter.errors import StoreError
from newsletter.store.locking import take_write_lock
from newsletter.store.schema import metadata

# Our own name rather than Alembic's default, so that a PostgreSQL database shared with another
# Alembic-managed application keeps the two histories apart.
VERSION_TABLE = "newsletter_schema_revision"
LEGACY_VERSION_TABLE = "schema_version"  # the releases before Alembic
SCRIPTS = ScriptDirectory(Path(__file__).parent)

# Alembic runs revisions through module-level proxies (alembic.op, alembic.context): two threads of one
# process upgrading at once would each find the other's migration context there.
_ALEMBIC_PROXIES = threading.Lock()

SchemaStatus = Literal["empty", "current", "older", "newer"]


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this release's (``head``)."""

    status: SchemaStatus
    head: str
    revision: str | None = None  # the database's Alembic revision
    legacy_version: int | None = None  # schema_version of a database from a release before Alembic

    def describe(self) -> str:
        if self.status == "empty":
            return f"empty: no newsletter tables yet (the first command creates them at revision {self.head})"
        if self.legacy_version is not None:
            return (f"schema_version {self.legacy_version}, from a release before revisions; "
                    f"this newsletter needs revision {self.head}")
        if self.revision is None:
            return f"newsletter tables without a revision; this newsletter needs revision {self.head}"
        if self.status == "current":
            return f"revision {self.revision} (head): up to date"
        if self.status == "older":
            return f"revision {self.revision}, older than this newsletter's head {self.head}"
        return f"revision {self.revision}, unknown to this newsletter (head {self.head}): a newer release wrote it"


def head() -> str:
    revision = SCRIPTS.get_current_head()
    assert revision is not None, "the package ships at least the baseline revision"
    return revision


def read_state(conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    latest = head()
    if VERSION_TABLE in tables:
        revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        return SchemaState(_compare(revision, latest), latest, revision=revision)
    if LEGACY_VERSION_TABLE in tables:
        version = conn.execute(text(f"SELECT MAX(version) FROM {LEGACY_VERSION_TABLE}")).scalar()
        return SchemaState("older", latest, legacy_version=int(version or 0))
    if tables & set(metadata.tables):
        return SchemaState("older", latest)
    return SchemaState("empty", latest)


def _compare(revision: str | None, latest: str) -> SchemaStatus:
    if revision == latest:
        return "current"
    if revision is None:
        return "older"
    try:
        SCRIPTS.get_revision(revision)
    except CommandError:
        return "newer"  # a revision this release does not ship: a newer release wrote it
    return "older"


def check_schema(engine: Engine, shown_url: str) -> None:
    """Create an empty database at head; refuse one whose schema is older or newer than the code's."""
    with engine.connect() as conn:
        state = read_state(conn)
    if state.status == "empty":
        with engine.begin() as conn:
            take_write_lock(conn)  # two commands opening a new store at once: one creates it
            state = read_state(conn)
            if state.status == "empty":
                _upgrade(conn)
                return
    if state.status == "older":
        raise StoreError(f"the store at {shown_url} has an older schema: {state.describe()}",
                         "back it up, then run `newsletter db upgrade`")
    if state.status == "newer":
        raise _newer(state, shown_url)


def _newer(state: SchemaState, shown_url: str) -> StoreError:
    return StoreError(f"the store at {shown_url} has a newer schema: {state.describe()}",
                      "upgrade newsletter to the release that wrote it (on every machine that shares the store)")


def upgrade(engine: Engine, shown_url: str) -> tuple[SchemaState, SchemaState]:
    """Bring the database to head (creating it when empty); returns the state before and after."""
    with engine.begin() as conn:
        take_write_lock(conn)  # one upgrade at a time, and no command creating the store meanwhile
        before = read_state(conn)
        if before.status == "newer":
            raise _newer(before, shown_url)
        if before.status != "current":
            _upgrade(conn)
        after = read_state(conn)
    return before, after


def _upgrade(conn: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", SCRIPTS.dir)
    config.attributes["connection"] = conn
    with _ALEMBIC_PROXIES:
        command.upgrade(config, "head")
