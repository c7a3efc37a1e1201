"""Private feed tokens (issue 16): one per subscriber, and one for every subscriber already stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from alembic import op
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    feed_tokens = op.create_table(
        "feed_tokens",
        Column("subscriber_id", Integer, primary_key=True),
        Column("token", String(64), nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    subscribers = Table("subscribers", MetaData(), Column("id", Integer, primary_key=True))
    now = dt.datetime.now(dt.UTC)
    rows = []
    for subscriber_id in op.get_bind().execute(select(subscribers.c.id)).scalars():
        token = secrets.token_urlsafe(32)  # as the store makes them: 256 bits, looked up by SHA-256
        rows.append({"subscriber_id": subscriber_id, "token": token,
                     "token_hash": hashlib.sha256(token.encode()).hexdigest(), "created_at": now})
    if rows:
        op.bulk_insert(feed_tokens, rows)
