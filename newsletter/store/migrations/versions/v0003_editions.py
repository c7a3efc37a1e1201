"""Editions (issue 14): subscribers' cadence, weekday and followed authors; the delivery log and the
"no issue" notes keyed by edition. Every delivery becomes its day's daily edition (key daily/DAY), its
Message-ID unchanged, so that a resend after the upgrade is recognised as the same message; each day's
note becomes its daily edition's. Tables copied here, not imported from schema.py (see __init__)."""

from __future__ import annotations

from alembic import op
from sqlalchemy import JSON, Column, Date, DateTime, String, Text

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    for column in (Column("authors", JSON, nullable=False, server_default="[]"),
                   Column("cadence", String(10), nullable=False, server_default="daily"),
                   Column("weekday", String(3), nullable=False, server_default="mon")):
        op.add_column("subscribers", column)
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
    postgres = op.get_bind().dialect.name == "postgresql"
    daily_key = "'daily/' || " + ("to_char(date, 'YYYY-MM-DD')" if postgres else "date")
    op.add_column("deliveries", Column("edition", String(80)))
    op.execute(f"UPDATE deliveries SET edition = {daily_key}")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("edition", existing_type=String(80), nullable=False)
        batch.drop_constraint("uq_deliveries_date_subscriber", type_="unique")
        batch.create_unique_constraint("uq_deliveries_edition_subscriber", ["edition", "subscriber_id"])
        batch.create_index("ix_deliveries_subscriber", ["subscriber_id"])
    op.execute(f"INSERT INTO editions (key, kind, first_day, last_day) "
               f"SELECT DISTINCT {daily_key}, 'daily', date, date FROM deliveries")
    op.execute(f"INSERT INTO edition_notes (edition, date, reason, recorded_at) "
               f"SELECT {daily_key}, date, reason, recorded_at FROM day_notes")
    op.drop_table("day_notes")
