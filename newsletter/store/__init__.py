"""The store: SQLAlchemy 2 Core over SQLite by default, any SQLAlchemy URL (PostgreSQL) later.

``Store`` gathers one mixin per kind of data (papers; subscribers and deliveries join it as their
stages land), all sharing one engine and the schema in ``schema.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from newsletter.config import Settings, store_url_source
from newsletter.errors import ConfigError, StoreError
from newsletter.store.deliveries import DeliveryStore, SentMark
from newsletter.store.health import HealthStore
from newsletter.store.leadership import LeadershipStore
from newsletter.store.limits import LimitStore, RelayState
from newsletter.store.migrations import SchemaState, check_schema, read_state, upgrade
from newsletter.store.papers import IngestCounts, PaperStore, PrunedSource, SourceRecord
from newsletter.store.subscribers import SubscriberStore

__all__ = ["IngestCounts", "PrunedSource", "SchemaState", "SenderConnection", "SentMark", "SourceRecord", "Store",
           "resolve_url", "schema_state", "shown_url", "upgrade_schema"]


def resolve_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir`` and create its folder."""
    try:
        parsed = make_url(url)
    except (ValueError, SQLAlchemyError) as exc:
        raise ConfigError(f"cannot use store URL {shown_url(url)}: {exc}",
                          "check [store] url in the config (or NEWSLETTER_STORE_URL)") from exc
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return url
    path = Path(parsed.database)
    if not path.is_absolute():
        path = base_dir / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder of the store {path}: {exc.strerror or exc}",
            "check [store] url in the config: its folder must be creatable and writable",
        ) from exc
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


BUSY_TIMEOUT_SECONDS = 30


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, waiting out other processes that are writing to it.

    WAL lets the web server read while a send writes. Switching a new file reads its header, then
    asks for the write lock; when another process holds that lock, SQLite answers "database is
    locked" at once instead of waiting ``busy_timeout`` (it does not wait while holding a read lock).
    That happens when several commands open a new store at the same moment, so wait here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def shown_url(url: str) -> str:
    """The URL as it may be printed or logged: any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ValueError, SQLAlchemyError):
        return "(an unreadable store URL)"  # it could hold a password in a shape make_url cannot find


POOL_SIZE = 5
"""Connections the pool keeps for a process's own statements (SQLAlchemy's default), besides one for
each sending thread; up to POOL_OVERFLOW more are opened at busy moments and closed after."""
POOL_OVERFLOW = 10


def _pool_options(url: str, senders: int) -> dict[str, int]:
    """Each of ``senders`` sending threads keeps a connection for its whole run (SenderConnection) and
    also takes one from the pool for its claims: with SQLAlchemy's default pool, 15 threads held every
    connection and their claims waited for one until the pool's timeout. The pool opens connections
    only when asked, so sizing it for them costs nothing until they are used."""
    parsed = make_url(url)
    dialect = parsed.get_dialect()
    if issubclass(dialect, DefaultDialect) and not issubclass(dialect.get_pool_class(parsed), QueuePool):
        return {}  # an in-memory SQLite database: one connection per thread, no limit to size
    return {"pool_size": POOL_SIZE + senders, "max_overflow": POOL_OVERFLOW}


def _engine(url: str, senders: int = 0) -> Engine:
    """A database server closes every connection when it restarts: each pooled one is tested (a round
    trip per checkout, not per statement) so that the next request, claim or job does not fail on a
    dead one. A SQLite file has no server to lose."""
    try:
        engine = create_engine(url, pool_pre_ping=make_url(url).get_backend_name() != "sqlite",
                               **_pool_options(url, senders))
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot use store URL {shown_url(url)}: {_without_password(exc, url)}",
                          "check [store] url in the config (or NEWSLETTER_STORE_URL)") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _without_password(exc: BaseException, url: str) -> str:
    """A driver's message with the URL's password, should the driver quote it, replaced by ***."""
    said = str(getattr(exc, "orig", None) or exc)
    try:
        password = make_url(url).password
    except (ValueError, SQLAlchemyError):
        return said
    return said.replace(str(password), "***") if password else said


UNNAMED_SOURCE = "[store] url in the config (or $NEWSLETTER_STORE_URL, which replaces it)"
"""Where a store URL came from, for a caller that does not know (config.store_url_source knows)."""


def _unreachable(exc: SQLAlchemyError, url: str, source: str) -> StoreError:
    """The driver's reason, and what to check in the setting that holds the URL. The driver does not
    say which of host, login or database name is wrong in a form that survives translation, so the
    hint names them all."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        hint = f"check {source}: the file and its folder must be readable and writable"
    else:
        server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        hint = (f"check {source}: is the PostgreSQL server at {server} running and reachable, and are the "
                f"user, password and database name right? A new database: sudo -u postgres createdb --owner "
                f"{parsed.username or 'USER'} {parsed.database or 'DB'} (README: Several machines)")
    return StoreError(f"cannot open the store at {shown_url(url)}: {_without_password(exc, url)}", hint)


def schema_state(url: str, source: str = UNNAMED_SOURCE) -> SchemaState:
    """Where the database's schema stands against this release's; changes nothing."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return read_state(conn)
    except SQLAlchemyError as exc:
        raise _unreachable(exc, url, source) from exc
    finally:
        engine.dispose()


def upgrade_schema(url: str, source: str = UNNAMED_SOURCE) -> tuple[SchemaState, SchemaState]:
    """Run the revisions the database lacks; returns its state before and after."""
    engine = _engine(url)
    try:
        return upgrade(engine, shown_url(url))
    except SQLAlchemyError as exc:
        raise _unreachable(exc, url, source) from exc
    finally:
        engine.dispose()


class Store(PaperStore, SubscriberStore, DeliveryStore, HealthStore, LeadershipStore, LimitStore):
    def __init__(self, url: str, senders: int = 0, source: str = UNNAMED_SOURCE) -> None:
        """``senders``: the sending threads this store serves at most, each with its own connection
        (``sender_connection``), on top of the pool's usual POOL_SIZE; ``source``: the setting the URL
        came from, which an error names."""
        self.engine: Engine = _engine(url, senders)
        try:
            check_schema(self.engine, shown_url(url))
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise _unreachable(exc, url, source) from exc
        except StoreError:
            self.engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(resolve_url(settings.store.url, settings.base_dir), senders=settings.smtp.connections,
                   source=store_url_source(settings.path))

    def sender_connection(self) -> SenderConnection:
        """A connection for one sending thread's per-message statements (close it when done)."""
        return SenderConnection(self)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SenderConnection:
    """The connection one sending thread keeps for what it does per message: mark it sent, take its
    send slot or look at the relay's pause (with the mark of the message before: see store.limits).
    Each of these is one statement, so the connection is in autocommit: one round trip each, where a
    pooled connection costs a checkout and a BEGIN and a COMMIT (or ROLLBACK) around it, three round
    trips in all. Opened at first use."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def mark_sent(self, sent: SentMark) -> None:
        self._store.mark_sent(sent.delivery_id, sent.reply, sent.at, self._connection())

    def take_send_slot(self, relay: str, interval: float, now: float, sent: SentMark | None = None) -> RelayState:
        return self._store.take_send_slot(relay, interval, now, self._connection(), sent)

    def relay_state(self, relay: str, now: float, sent: SentMark | None = None) -> RelayState:
        return self._store.relay_state(relay, now, self._connection(), sent)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
