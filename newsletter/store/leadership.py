"""Leases on a role that one process at a time may hold: the scheduler's leader among daemons sharing a store.

A row per role names its holder and when the lease runs out. The holder renews it well before then;
another process takes the role when the lease has run out, when the holder gave it up, or when the
caller knows the holder to be dead (a process on this machine whose pid is gone). One mechanism on
SQLite and PostgreSQL, under the store's write lock; times are the processes' clocks, which must
agree (NTP), as the delivery log's leases already need.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, delete, insert, select, update

from newsletter.clock import as_utc
from newsletter.store.locking import take_write_lock
from newsletter.store.schema import leader_leases

SCHEDULE_LEADER = "schedule"
"""The role of the `newsletter schedule` daemon that runs the jobs."""


class LeadershipStore:
    engine: Engine

    def hold_role(self, role: str, owner: str, now: dt.datetime, until: dt.datetime,
                  dead_holder: str | None = None) -> str:
        """Take or renew ``role`` for ``owner`` until ``until`` when it is free, ours, past its lease or held
        by ``dead_holder``; returns who holds it afterwards (``owner`` when it worked)."""
        with self.engine.begin() as conn:
            take_write_lock(conn, "roles")
            row = conn.execute(select(leader_leases.c.owner, leader_leases.c.expires_at)
                               .where(leader_leases.c.role == role)).first()
            if row is None:
                conn.execute(insert(leader_leases).values(role=role, owner=owner, expires_at=until, since=now))
                return owner
            if row.owner not in (owner, dead_holder) and as_utc(row.expires_at) > now:
                return str(row.owner)
            since = {} if row.owner == owner else {"since": now}
            conn.execute(update(leader_leases).where(leader_leases.c.role == role)
                         .values(owner=owner, expires_at=until, **since))
            return owner

    def role_holder(self, role: str) -> tuple[str, dt.datetime] | None:
        """(holder, lease end) of ``role``, or None when nobody holds it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(leader_leases.c.owner, leader_leases.c.expires_at)
                               .where(leader_leases.c.role == role)).first()
        return None if row is None else (str(row.owner), as_utc(row.expires_at))

    def give_up_role(self, role: str, owner: str) -> None:
        """Let another process take ``role`` at once (a clean shutdown)."""
        with self.engine.begin() as conn:
            conn.execute(delete(leader_leases).where(leader_leases.c.role == role, leader_leases.c.owner == owner))
