"""The store: SQLAlchemy 2 Core over SQLite by default, any SQLAlchemy URL (PostgreSQL) later.

``Store`` gathers one mixin per kind of data (papers; subscribers and deliveries join it as their
stages land), all sharing one engine and the schema in ``schema.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from newsletter.config import Settings
from newsletter.errors import StoreError
from newsletter.store.deliveries import DeliveryStore
from newsletter.store.health import HealthStore
from newsletter.store.migrations import migrate
from newsletter.store.papers import IngestCounts, PaperStore, PrunedSource, SourceRecord
from newsletter.store.subscribers import SubscriberStore

__all__ = ["IngestCounts", "PrunedSource", "SourceRecord", "Store", "resolve_url"]


def resolve_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir`` and create its folder."""
    parsed = make_url(url)
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


class Store(PaperStore, SubscriberStore, DeliveryStore, HealthStore):
    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StoreError(f"cannot use store URL {url!r}: {exc}", "check [store] url in the config") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store at {url}: {getattr(exc, 'orig', None) or exc}",
                "check that the file or server is reachable and writable",
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(resolve_url(settings.store.url, settings.base_dir))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
