"""Baseline: the schema of the last release before Alembic (its ``schema_version`` 2), frozen here.

On an empty database it creates every table. On a database of those releases (a ``schema_version``
table, version 1 or 2) it adopts it, rows intact: it creates the tables that release had not made
yet, adds the column version 2 added, and drops ``schema_version``, whose job the revision table
takes over. A copy of schema.py as it was, not an import of it: this revision must keep creating
this schema when schema.py moves on.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)

revision = "0001"
down_revision = None

metadata = MetaData()

Table(
    "papers",
    metadata,
    Column("arxiv_id", String(64), primary_key=True),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("category", String(200)),
    Column("published", Date),
    Column("first_seen", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

Table(
    "days",
    metadata,
    Column("date", Date, primary_key=True),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

Table(
    "appearances",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("arxiv_id", String(64), primary_key=True, index=True),
    Column("position", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("excluded", JSON, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

Table(
    "deliveries",
    metadata,
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
    "day_notes",
    metadata,
    Column("date", Date, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

Table(
    "sources",
    metadata,
    Column("path", Text, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("dates", JSON, nullable=False),
    Column("arxiv_ids", JSON, nullable=False),
    Column("warnings", JSON, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

Table(
    "source_notes",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("note", Text, nullable=False),
    Column("translations", JSON, nullable=False),
)

Table(
    "source_health",
    metadata,
    Column("path", Text, primary_key=True),
    Column("format", String(20), nullable=False),
    Column("line", Integer, nullable=False),
    Column("blocks", Integer, nullable=False),
    Column("papers", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("drift", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

Table(
    "ingest_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("summary", JSON, nullable=False),
)

Table(
    "status_changes",
    metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)


def upgrade() -> None:
    bind = op.get_bind()
    legacy = inspect(bind).has_table("schema_version")
    metadata.create_all(bind)  # only the tables not there yet
    if not legacy:
        return
    # Version 1 lacked this column; asked of the table rather than of schema_version, which is all it says.
    if "unknown_outcomes" not in {c["name"] for c in inspect(bind).get_columns("deliveries")}:
        op.add_column("deliveries", Column("unknown_outcomes", Integer, nullable=False, server_default="0"))
    op.drop_table("schema_version")
