"""Stores as an older revision left them, to test the revisions on: built at head and taken back, since an
older version of the code is not at hand."""

from __future__ import annotations

from sqlalchemy import Connection, text

from newsletter.store.migrations import VERSION_TABLE
from newsletter.store.migrations.versions.v0001_baseline import metadata as before_editions


def back_to_day_keyed(conn: Connection) -> None:
    """Revision 0002: the delivery log and notes keyed by day, subscribers without cadence, weekday or
    authors (the tables as the baseline made them), and without the tables of later revisions."""
    for table in ("deliveries", "editions", "edition_notes", "feed_tokens", "renditions"):
        conn.execute(text(f"DROP TABLE {table}"))
    for column in ("authors", "cadence", "weekday"):
        conn.execute(text(f"ALTER TABLE subscribers DROP COLUMN {column}"))
    for table in ("deliveries", "day_notes"):
        before_editions.tables[table].create(conn)
    conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0002'"))


def back_before_stored_renditions(conn: Connection) -> None:
    """Undo revision 0005: no renditions table, delivery rows without their rendition."""
    conn.execute(text("DROP TABLE renditions"))
    conn.execute(text("DROP INDEX ix_deliveries_state_id"))
    for column in ("rendition_id", "followed_note"):
        conn.execute(text(f"ALTER TABLE deliveries DROP COLUMN {column}"))
