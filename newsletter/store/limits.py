"""What every send to one relay shares, whichever process or machine it runs on: the rate limit, the
count of refusals in a row, and the last pause.

One row per relay (``host:port``). The rate limit is a schedule of send slots (GCRA): ``next_slot_at``
is the earliest time the next message may go, and taking a slot moves it on by ``1 / rate`` in one
atomic ``UPDATE ... RETURNING``; however many processes take slots, they are ``1 / rate`` apart.
Times are seconds since the epoch on the processes' clocks, which must agree (NTP).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, case, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.clock import as_utc
from newsletter.store.schema import relay_limits


@dataclass(frozen=True)
class RelayState:
    slot_at: float
    """When this process may send its message (seconds since the epoch); now or earlier: at once."""
    refused_in_a_row: int
    paused_at: dt.datetime | None
    pause_reason: str


def _ensure_row(conn: Connection, relay: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(relay_limits).values(relay=relay, next_slot_at=0.0, refused_in_a_row=0)
                 .on_conflict_do_nothing(index_elements=["relay"]))


def _state(row: Any, slot_at: float) -> RelayState:
    """``row``: the relay's row (refused_in_a_row, paused_at, pause_reason), None before its first message."""
    if row is None:
        return RelayState(slot_at, 0, None, "")
    paused_at = as_utc(row.paused_at) if row.paused_at is not None else None
    return RelayState(slot_at, int(row.refused_in_a_row), paused_at, row.pause_reason or "")


class LimitStore:
    engine: Engine

    def take_send_slot(self, relay: str, interval: float, now: float) -> RelayState:
        """Reserve the next send slot to ``relay``, ``interval`` seconds after the one before it (or now)."""
        c = relay_limits.c
        start = case((c.next_slot_at > now, c.next_slot_at), else_=literal(now))
        take = (update(relay_limits).where(c.relay == relay).values(next_slot_at=start + interval)
                .returning(c.next_slot_at, c.refused_in_a_row, c.paused_at, c.pause_reason))
        with self.engine.begin() as conn:
            row = conn.execute(take).first()
            if row is None:  # the relay's first message
                _ensure_row(conn, relay)
                row = conn.execute(take).one()
        return _state(row, float(row.next_slot_at) - interval)

    def relay_state(self, relay: str, now: float) -> RelayState:
        """The relay's refusals in a row and last pause, reserving nothing (no rate limit)."""
        c = relay_limits.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.refused_in_a_row, c.paused_at, c.pause_reason)
                               .where(c.relay == relay)).first()
        return _state(row, now)

    def count_refusal(self, relay: str) -> int:
        """One more refusal in a row at ``relay`` (by any process); the count now."""
        c = relay_limits.c
        with self.engine.begin() as conn:
            _ensure_row(conn, relay)
            return int(conn.execute(update(relay_limits).where(c.relay == relay)
                                    .values(refused_in_a_row=c.refused_in_a_row + 1)
                                    .returning(c.refused_in_a_row)).scalar_one())

    def reset_refusals(self, relay: str) -> None:
        """A message went through: the refusals in a row start again from 0."""
        c = relay_limits.c
        with self.engine.begin() as conn:
            conn.execute(update(relay_limits).where(c.relay == relay, c.refused_in_a_row > 0)
                         .values(refused_in_a_row=0))

    def pause_relay(self, relay: str, now: dt.datetime, reason: str) -> None:
        """Record that a send paused at ``now``: the sends running then stop too."""
        c = relay_limits.c
        with self.engine.begin() as conn:
            _ensure_row(conn, relay)
            conn.execute(update(relay_limits).where(c.relay == relay)
                         .values(paused_at=now, pause_reason=reason, refused_in_a_row=0))

    def relay_pauses(self, since: dt.datetime) -> list[tuple[str, dt.datetime, str]]:
        """(relay, when, why) of the pauses since ``since``, newest first, for `newsletter status`."""
        c = relay_limits.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.relay, c.paused_at, c.pause_reason).where(c.paused_at >= since)
                                .order_by(c.paused_at.desc())).all()
        return [(row.relay, as_utc(row.paused_at), row.pause_reason or "") for row in rows]
