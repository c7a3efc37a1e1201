"""Schema versions, applied in order on open.

A new database gets every table from ``schema.metadata`` and is stamped with CURRENT_VERSION. An
older database runs each step above its version, in one transaction per step. To change a table:
edit schema.py, bump CURRENT_VERSION, and append a step that brings an existing database there.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from newsletter.store.locking import take_write_lock
from newsletter.store.schema import deliveries, metadata, schema_version

Step = Callable[[Connection], None]



def _add_unknown_outcomes(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN unknown_outcomes INTEGER NOT NULL DEFAULT 0"))


def _key_deliveries_by_edition(conn: Connection) -> None:
    """Subscribers gain a cadence, a weekday and followed authors; the delivery log and the "no issue"
    notes are keyed by edition. Every existing row becomes its day's daily edition, Message-ID
    unchanged, so that a resend after the upgrade is recognised as the same message. (``editions``
    and ``edition_notes`` exist already: migrate() creates new tables first.)"""
    for column, kind, default in (("authors", "JSON", "'[]'"), ("cadence", "VARCHAR(10)", "'daily'"),
                                  ("weekday", "VARCHAR(3)", "'mon'")):
        conn.execute(text(f"ALTER TABLE subscribers ADD COLUMN {column} {kind} NOT NULL DEFAULT {default}"))
    postgres = conn.dialect.name == "postgresql"
    daily_key = "'daily/' || " + ("to_char(date, 'YYYY-MM-DD')" if postgres else "date")
    if postgres:
        conn.execute(text("ALTER TABLE deliveries ADD COLUMN edition VARCHAR(80)"))
        conn.execute(text(f"UPDATE deliveries SET edition = {daily_key}"))
        conn.execute(text("ALTER TABLE deliveries ALTER COLUMN edition SET NOT NULL"))
        conn.execute(text("ALTER TABLE deliveries DROP CONSTRAINT uq_deliveries_date_subscriber"))
        conn.execute(text("ALTER TABLE deliveries ADD CONSTRAINT uq_deliveries_edition_subscriber "
                          "UNIQUE (edition, subscriber_id)"))
        conn.execute(text("CREATE INDEX ix_deliveries_subscriber ON deliveries (subscriber_id)"))
    else:  # SQLite cannot drop a constraint: copy the rows into the new table
        kept = ", ".join(c.name for c in deliveries.columns if c.name != "edition")
        conn.execute(text("DROP INDEX ix_deliveries_date_state"))
        conn.execute(text("ALTER TABLE deliveries RENAME TO deliveries_by_day"))
        deliveries.create(conn)
        conn.execute(text(f"INSERT INTO deliveries ({kept}, edition) SELECT {kept}, {daily_key} "
                          "FROM deliveries_by_day ORDER BY id"))
        conn.execute(text("DROP TABLE deliveries_by_day"))
    conn.execute(text(f"INSERT INTO editions (key, kind, first_day, last_day) "
                      f"SELECT DISTINCT {daily_key}, 'daily', date, date FROM deliveries"))
    conn.execute(text(f"INSERT INTO edition_notes (edition, date, reason, recorded_at) "
                      f"SELECT {daily_key}, date, reason, recorded_at FROM day_notes"))
    conn.execute(text("DROP TABLE day_notes"))


# version -> the step that upgrades a database from version-1 to version.
STEPS: dict[int, Step] = {2: _add_unknown_outcomes, 3: _key_deliveries_by_edition}
CURRENT_VERSION = 3


def migrate(engine: Engine) -> None:
    # Under the write lock, so that two processes opening a new store at once (serve and schedule
    # at boot) do not both find it fresh and both create it.
    with engine.begin() as conn:
        take_write_lock(conn)
        fresh = not inspect(conn).has_table(schema_version.name)
        metadata.create_all(conn)  # new tables are created as they are added to schema.py
        if fresh:
            conn.execute(schema_version.insert().values(version=CURRENT_VERSION))
            return
        version = conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0
    for target in range(version + 1, CURRENT_VERSION + 1):
        with engine.begin() as conn:
            take_write_lock(conn)
            if (conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0) >= target:
                continue  # another process got there first
            STEPS[target](conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=target))
