"""Stores as an older version left them, to test the migrations on: built from today's schema and
taken back, since an older version of the code is not at hand."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from newsletter.store.migrations import VERSION_TABLE

# The delivery log of schema version 2: one row per (day, subscriber), no edition.
_day_keyed = MetaData()
Table(
    "deliveries", _day_keyed,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("date", Date, nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("unknown_outcomes", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_owner", String(255)),
    Column("last_reply", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("date", "subscriber_id", name="uq_deliveries_date_subscriber"),
    Index("ix_deliveries_date_state", "date", "state"),
)
Table(
    "day_notes", _day_keyed,
    Column("date", Date, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def back_to_day_keyed(conn: Connection) -> None:
    """Revision 0002: the delivery log and notes keyed by day, subscribers without cadence, weekday or
    authors."""
    for table in ("deliveries", "editions", "edition_notes", "renditions"):
        conn.exec_driver_sql(f"DROP TABLE {table}")
    for column in ("authors", "cadence", "weekday"):
        conn.exec_driver_sql(f"ALTER TABLE subscribers DROP COLUMN {column}")
    _day_keyed.create_all(conn)
    conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0002'")
