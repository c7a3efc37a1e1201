"""Serialising writers that read before they write (ingest, schema creation)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Connection

LockTopic = Literal["data", "roles"]
# Any constants work; they name the locks among this database's advisory locks. On PostgreSQL writers of
# different topics do not wait for each other: a leader's heartbeat need not wait out an ingest.
_PG_LOCK_KEYS: dict[LockTopic, int] = {"data": 0x6E6C7374, "roles": 0x6E6C726C}  # "nlst", "nlrl"


def take_write_lock(conn: Connection, topic: LockTopic = "data") -> None:
    """Make the transaction on ``conn`` a writer from its first statement.

    Call it first thing in a transaction that reads and then writes what it read. Without it, two
    such transactions at once both read, then the second one's inserts hit unique constraints
    (PostgreSQL) or fail with "database is locked" because its snapshot went stale (SQLite WAL).
    With it, the second waits (``busy_timeout``, or the advisory lock) until the first commits.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEYS[topic]})")
