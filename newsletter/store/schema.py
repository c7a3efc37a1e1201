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
    Column("content_hash", String(64), nullable=False),
    # The digest day whose text the row holds: a paper listed on several days keeps the newest
    # day's text, whatever order the files are ingested in, so that re-ingesting is idempotent.
    Column("content_date", Date, nullable=False),
    Column("first_seen", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

days = Table(
    "days",
    metadata,
    Column("date", Date, primary_key=True),
    Column("source", Text, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

appearances = Table(
    "appearances",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("arxiv_id", String(64), ForeignKey("papers.arxiv_id"), primary_key=True),
    Column("position", Integer, nullable=False),
)
