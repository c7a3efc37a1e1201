"""The scheduler leader's lease and the limits every send to one relay shares (issue 15)."""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, DateTime, Float, Integer, String, Text

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        Column("role", String(64), primary_key=True),
        Column("owner", String(255), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("since", DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "relay_limits",
        Column("relay", String(300), primary_key=True),
        Column("next_slot_at", Float, nullable=False),
        Column("refused_in_a_row", Integer, nullable=False),
        Column("paused_at", DateTime(timezone=True)),
        Column("pause_reason", Text),
    )
