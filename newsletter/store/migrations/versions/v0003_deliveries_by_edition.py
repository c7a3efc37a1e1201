"""Editions (issue 14): subscribers gain a cadence, a weekday and followed authors; the delivery log
and the "no issue" notes are keyed by edition.

Every existing delivery becomes its day's daily edition (``daily/DAY``) with its Message-ID
unchanged, so that a resend after the upgrade is recognised as the same message; each day's note
becomes its daily edition's note.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

revision = "0003"
down_revision = "0002"

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("date", Date, nullable=False),
    Column("edition", String(80), nullable=False),
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
    UniqueConstraint("edition", "subscriber_id", name="uq_deliveries_edition_subscriber"),
    Index("ix_deliveries_date_state", "date", "state"),
    Index("ix_deliveries_subscriber", "subscriber_id"),
)


def upgrade() -> None:
    for column, kind, default in (("authors", JSON, "[]"), ("cadence", String(10), "daily"),
                                  ("weekday", String(3), "mon")):
        op.add_column("subscribers", Column(column, kind, nullable=False, server_default=default))
    with op.batch_alter_table("subscribers") as batch:  # the defaults only served the existing rows
        for column in ("authors", "cadence", "weekday"):
            batch.alter_column(column, server_default=None)
    op.create_table(
        "editions",
        Column("key", String(80), primary_key=True),
        Column("kind", String(10), nullable=False),
        Column("first_day", Date, nullable=False),
        Column("last_day", Date, nullable=False),
    )
    op.create_table(
        "edition_notes",
        Column("edition", String(80), primary_key=True),
        Column("date", Date, nullable=False),
        Column("reason", Text, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_edition_notes_date", "edition_notes", ["date"])
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    daily_key = "'daily/' || " + ("to_char(date, 'YYYY-MM-DD')" if postgres else "date")
    if postgres:
        op.add_column("deliveries", Column("edition", String(80)))
        conn.execute(text(f"UPDATE deliveries SET edition = {daily_key}"))
        op.alter_column("deliveries", "edition", nullable=False)
        op.drop_constraint("uq_deliveries_date_subscriber", "deliveries")
        op.create_unique_constraint("uq_deliveries_edition_subscriber", "deliveries", ["edition", "subscriber_id"])
        op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])
    else:  # SQLite cannot drop a constraint: copy the rows into the new table
        kept = ", ".join(c.name for c in deliveries.columns if c.name != "edition")
        op.drop_index("ix_deliveries_date_state", "deliveries")
        op.rename_table("deliveries", "deliveries_by_day")
        deliveries.create(conn)
        conn.execute(text(f"INSERT INTO deliveries ({kept}, edition) SELECT {kept}, {daily_key} "
                          "FROM deliveries_by_day ORDER BY id"))
        op.drop_table("deliveries_by_day")
    conn.execute(text(f"INSERT INTO editions (key, kind, first_day, last_day) "
                      f"SELECT DISTINCT {daily_key}, 'daily', date, date FROM deliveries"))
    conn.execute(text(f"INSERT INTO edition_notes (edition, date, reason, recorded_at) "
                      f"SELECT {daily_key}, date, reason, recorded_at FROM day_notes"))
    op.drop_table("day_notes")
