"""Schema versions, applied in order on open.

A new database gets every table from ``schema.metadata`` and is stamped with CURRENT_VERSION. An
older database runs each step above its version, in one transaction per step. To change a table:
edit schema.py, bump CURRENT_VERSION, and append a step that brings an existing database there.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from newsletter.clock import utc_now
from newsletter.store.locking import take_write_lock
from newsletter.store.schema import feed_tokens, metadata, schema_version, subscribers
from newsletter.store.subscribers import feed_token_row

Step = Callable[[Connection], None]



def _add_unknown_outcomes(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN unknown_outcomes INTEGER NOT NULL DEFAULT 0"))


def _give_feed_tokens(conn: Connection) -> None:
    """Every subscriber has a private feed token; those who subscribed before feeds had them get one."""
    missing = select(subscribers.c.id).where(subscribers.c.id.not_in(select(feed_tokens.c.subscriber_id)))
    now = utc_now()
    rows = [feed_token_row(subscriber_id, now) for subscriber_id in conn.execute(missing).scalars()]
    if rows:
        conn.execute(feed_tokens.insert(), rows)


# version -> the step that upgrades a database from version-1 to version.
STEPS: dict[int, Step] = {2: _add_unknown_outcomes, 3: _give_feed_tokens}
CURRENT_VERSION = 3


def migrate(engine: Engine) -> None:
    # Under the write lock, so that two processes opening a new store at once (serve and schedule
    # at boot) do not both find it fresh and both create it.
    with engine.begin() as conn:
        take_write_lock(conn)
        fresh = not inspect(conn).has_table(schema_version.name)
        metadata.create_all(conn)  # new tables are created as they are added to schema.py
        if fresh:
            conn.execute(schema_version.insert().values(version=CURRENT_VERSION))
            return
        version = conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0
    for target in range(version + 1, CURRENT_VERSION + 1):
        with engine.begin() as conn:
            take_write_lock(conn)
            if (conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0) >= target:
                continue  # another process got there first
            STEPS[target](conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=target))
