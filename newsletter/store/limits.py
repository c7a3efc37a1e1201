"""What every send to one relay shares, whichever process or machine it runs on: the rate limit, the
count of refusals in a row, and the last pause.

One row per relay (``host:port``). The rate limit is a schedule of send slots (GCRA): ``next_slot_at``
is the earliest time the next message may go, and taking a slot moves it on by ``1 / rate`` in one
atomic ``UPDATE ... RETURNING``; however many processes take slots, they are ``1 / rate`` apart.
Times are seconds since the epoch on the processes' clocks, which must agree (NTP).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Float, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.clock import as_utc
from newsletter.store.deliveries import MARK_SENT, SentMark
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


_WALL = bindparam("wall", type_=Float)
# Built once: a sender runs one of these per message, and building one costs more than running it.
_TAKE_SLOT = (update(relay_limits).where(relay_limits.c.relay == bindparam("relay_key"))
              .values(next_slot_at=case((relay_limits.c.next_slot_at > _WALL, relay_limits.c.next_slot_at),
                                        else_=_WALL) + bindparam("interval", type_=Float))
              .returning(relay_limits.c.next_slot_at, relay_limits.c.refused_in_a_row, relay_limits.c.paused_at,
                         relay_limits.c.pause_reason))
_LOOK = (select(relay_limits.c.refused_in_a_row, relay_limits.c.paused_at, relay_limits.c.pause_reason)
         .where(relay_limits.c.relay == bindparam("relay_key")))
# On PostgreSQL a message's "sent" mark rides along in the same statement (a data-modifying WITH):
# one round trip for both. SQLite has no such WITH; its statements cost no round trip anyway.
_TAKE_SLOT_MARKING = _TAKE_SLOT.add_cte(MARK_SENT.cte("sent"))
_LOOK_MARKING = _LOOK.add_cte(MARK_SENT.cte("sent"))


def _run(conn: Connection, stmt: Any, marking: Any, params: dict[str, object], sent: SentMark | None) -> Any:
    """``stmt`` with ``params``, and first ``sent`` recorded (``marking``: both in one statement, PostgreSQL)."""
    if sent is None:
        return conn.execute(stmt, params).first()
    if conn.dialect.name == "postgresql":
        return conn.execute(marking, {**params, **sent.params()}).first()
    conn.execute(MARK_SENT, sent.params())
    return conn.execute(stmt, params).first()


class LimitStore:
    engine: Engine

    def take_send_slot(self, relay: str, interval: float, now: float, conn: Connection | None = None,
                       sent: SentMark | None = None) -> RelayState:
        """Reserve the next send slot to ``relay``, ``interval`` seconds after the one before it (or now).
        ``conn``: a sender's own connection (see SenderConnection); ``sent``: a message to mark sent with it."""
        params: dict[str, object] = {"relay_key": relay, "wall": now, "interval": interval}
        with self._transaction(conn) as tx:
            row = _run(tx, _TAKE_SLOT, _TAKE_SLOT_MARKING, params, sent)
            if row is None:  # the relay's first message
                _ensure_row(tx, relay)
                row = tx.execute(_TAKE_SLOT, params).one()
        return _state(row, float(row.next_slot_at) - interval)

    def relay_state(self, relay: str, now: float, conn: Connection | None = None,
                    sent: SentMark | None = None) -> RelayState:
        """The relay's refusals in a row and last pause, reserving nothing (no rate limit)."""
        with self._transaction(conn) as tx:
            row = _run(tx, _LOOK, _LOOK_MARKING, {"relay_key": relay}, sent)
        return _state(row, now)

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        """A transaction on ``conn`` when given, else on a connection of the pool."""
        if conn is None:
            with self.engine.begin() as own:
                yield own
            return
        with conn.begin():
            yield conn

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

    def end_relay_pause(self, relay: str, before: dt.datetime) -> None:
        """Forget ``relay``'s pause if it was recorded before ``before``: a send started after it got a
        message through, so the pause is over and `newsletter status` no longer shows it as current."""
        c = relay_limits.c
        with self.engine.begin() as conn:
            conn.execute(update(relay_limits).where(c.relay == relay, c.paused_at < before)
                         .values(paused_at=None, pause_reason=None))

    def relay_pauses(self, since: dt.datetime) -> list[tuple[str, dt.datetime, str]]:
        """(relay, when, why) of the pauses since ``since``, newest first, for `newsletter status`."""
        c = relay_limits.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.relay, c.paused_at, c.pause_reason).where(c.paused_at >= since)
                                .order_by(c.paused_at.desc())).all()
        return [(row.relay, as_utc(row.paused_at), row.pause_reason or "") for row in rows]
