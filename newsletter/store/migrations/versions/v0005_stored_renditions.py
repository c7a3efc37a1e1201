"""Renditions stored in the database (issue 15): each delivery references its rendition's message
template, so that any worker can build any row's message without the day's plan.

Rows planned before keep ``rendition_id`` NULL: only a send of their day, which plans them again,
can build them.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, Date, DateTime, Integer, Text, UniqueConstraint

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "renditions",
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("date", Date, nullable=False),
        Column("key", Text, nullable=False),
        Column("template", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("date", "key", name="uq_renditions_date_key"),
    )
    op.add_column("deliveries", Column("rendition_id", Integer))
    op.add_column("deliveries", Column("followed_note", Text, nullable=False, server_default=""))
    op.create_index("ix_deliveries_state_id", "deliveries", ["state", "id"])
