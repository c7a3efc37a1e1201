"""The database schema: every table, on one MetaData, in SQLAlchemy Core.

Types are portable (JSON, Date, DateTime) so that a PostgreSQL URL works as well as SQLite.
Add a table here and it is created on the next open; changing an existing table needs a step in
``migrations.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
)

papers = Table(
    "papers",
    metadata,
    Column("arxiv_id", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("authors", JSON, nullable=False),
    Column("summary", Text, nullable=False),
    Column("category", String(200)),
    Column("categories", JSON, nullable=False),
    Column("links", JSON, nullable=False),
    Column("published", Date),
    Column("points", JSON, nullable=False),
    Column("quiz", JSON, nullable=False),
    # Hash of the fields above: the row is derived from the paper's listings (see appearances)
    # and rewritten only when this changes.
    Column("content_hash", String(64), nullable=False),
    Column("first_seen", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

days = Table(
    "days",
    metadata,
    Column("date", Date, primary_key=True),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# One row per listing of a paper: a day, the file it came from, its place there and the text that
# file gave. A paper's row in ``papers`` merges its listings of the newest day, so the result does
# not depend on the order files are ingested in, and re-ingesting one file changes only its rows.
appearances = Table(
    "appearances",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("arxiv_id", String(64), primary_key=True, index=True),
    Column("position", Integer, nullable=False),
    Column("content", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The address as the subscriber gave it (local part's case kept); ``email_key`` is its
    # lower-cased form, which is what makes Ada@example.org and ada@example.org one subscriber.
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
