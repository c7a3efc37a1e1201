"""Serialising writers that read before they write (ingest, schema creation)."""

from __future__ import annotations

from sqlalchemy import Connection

# Any constant works; it names the lock among this database's advisory locks.
_PG_LOCK_KEY = 0x6E6C7374  # "nlst"


def take_write_lock(conn: Connection) -> None:
    """Make the transaction on ``conn`` a writer from its first statement.

    Call it first thing in a transaction that reads and then writes what it read. Without it, two
    such transactions at once both read, then the second one's inserts hit unique constraints
    (PostgreSQL) or fail with "database is locked" because its snapshot went stale (SQLite WAL).
    With it, the second waits (``busy_timeout``, or the advisory lock) until the first commits.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
