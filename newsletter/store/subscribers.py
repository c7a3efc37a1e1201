"""Subscribers: who gets the daily email, with which filter, and in which status.

``remove_subscriber`` deletes the row: it is the operator's tool (a typo, an erasure request).
Unsubscribe links and bounces call ``set_subscriber_status`` instead, so that the address stays
known as unsubscribed and an import or a resend cannot mail it again.

Every write validates first (control characters, address syntax, status) and runs in one
transaction, so a refused subscriber leaves nothing behind. Categories are checked against the
taxonomy by the callers that know the config (CLI, importer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.clock import as_utc, utc_now
from newsletter.errors import SubscriberExistsError, SubscriberNotFoundError
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.store.locking import take_write_lock
from newsletter.store.papers import content_marker_columns
from newsletter.store.schema import feed_tokens, status_changes
from newsletter.store.schema import subscribers as table
from newsletter.subscribers import check_status, email_key, lookup_key, validated

# Stored by upsert and update; id, token and created_at are set once, status only on purpose.
_PROFILE_FIELDS = ("email", "name", "categories", "keywords", "excluded_keywords", "authors", "cadence", "weekday")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def feed_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_token_row(subscriber_id: int, now: dt.datetime, token: str = "") -> dict[str, Any]:
    """A feed_tokens row: a new 256-bit token unless one is given, and the hash it is looked up by."""
    token = token or secrets.token_urlsafe(32)
    return {"subscriber_id": subscriber_id, "token": token, "token_hash": feed_token_hash(token), "created_at": now}


# Every read of a subscriber brings its feed token along (absent only between an old store's open and
# its migration, which gives every subscriber one).
_SELECT = select(table, feed_tokens.c.token.label("feed_token")).join_from(
    table, feed_tokens, feed_tokens.c.subscriber_id == table.c.id, isouter=True)


def _row(sub: Subscriber) -> dict[str, Any]:
    return {
        "email": sub.email,
        "email_key": email_key(sub.email),
        "name": sub.name,
        "categories": list(sub.categories),
        "keywords": list(sub.keywords),
        "excluded": list(sub.excluded_keywords),
        "authors": list(sub.authors),
        "cadence": sub.cadence,
        "weekday": sub.weekday,
        "status": sub.status,
        "token": sub.token,
        "created_at": sub.created_at,
    }


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        categories=list(row.categories),
        keywords=list(row.keywords),
        excluded_keywords=list(row.excluded),
        authors=list(row.authors),
        cadence=row.cadence,
        weekday=row.weekday,
        status=row.status,
        token=row.token,
        feed_token=row.feed_token or "",
        created_at=as_utc(row.created_at) if row.created_at is not None else None,
    )


def _exists(sub: Subscriber) -> SubscriberExistsError:
    return SubscriberExistsError(f"{sub.email} is already subscribed",
                                 "use `newsletter subscribers list` to see it, or `remove` it first")


class SubscriberStore:
    engine: Engine

    def add_subscriber(self, sub: Subscriber, now: dt.datetime | None = None) -> Subscriber:
        """Store a new subscriber; gives it a token and a creation time when it has none.

        Raises InvalidSubscriberError for bad fields and SubscriberExistsError when the address is
        taken (case-insensitively).
        """
        sub = self._prepare_new(validated(sub), now)
        try:
            with self.engine.begin() as conn:
                if self._find(conn, email_key(sub.email)) is not None:
                    raise _exists(sub)
                sub.id = self._insert(conn, sub)
        except IntegrityError as exc:  # a concurrent add of the same address won the race
            raise _exists(sub) from exc
        return sub

    def upsert_subscribers(
        self, subs: Sequence[Subscriber], now: dt.datetime | None = None
    ) -> list[tuple[Subscriber, bool]]:
        """Add each subscriber, or update the profile of the one with its address; True where anything
        changed. All are validated first and written in one transaction.

        An existing subscriber gets the given address spelling, name, categories and keywords;
        its status, token and creation time are kept, so an import never resubscribes anyone.
        """
        checked = [validated(s) for s in subs]
        results: list[tuple[Subscriber, bool]] = []
        with self.engine.begin() as conn:
            for sub in checked:
                stored = self._find(conn, email_key(sub.email))
                if stored is None:
                    sub = self._prepare_new(sub, now)
                    sub.id = self._insert(conn, sub)
                    results.append((sub, True))
                    continue
                merged = replace(stored, **{f: getattr(sub, f) for f in _PROFILE_FIELDS})
                changed = merged != stored
                if changed:
                    self._write(conn, merged)
                results.append((merged, changed))
        return results

    def get_subscriber(self, email: str) -> Subscriber | None:
        """The subscriber with this address, compared case-insensitively."""
        with self.engine.connect() as conn:
            return self._find(conn, lookup_key(email))

    def get_subscriber_by_token(self, token: str) -> Subscriber | None:
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT.where(table.c.token == token)).one_or_none()
        return _subscriber(row) if row is not None else None

    def feed_reader(self, token: str) -> tuple[Subscriber, str] | None:
        """The subscriber whose private feed this token opens (whatever their status: the caller
        decides), with the store's content marker, in one query (a feed poll costs one); else None."""
        if not token:
            return None
        marker = content_marker_columns()
        query = _SELECT.add_columns(*marker).where(feed_tokens.c.token_hash == feed_token_hash(token))
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else (_subscriber(row), repr(tuple(row)[-len(marker):]))

    def rotate_feed_token(self, subscriber_id: int) -> str:
        """Give the subscriber a new private feed token (the old one then opens nothing); returns it."""
        row = feed_token_row(subscriber_id, utc_now())
        with self.engine.begin() as conn:
            take_write_lock(conn)
            if self._find_id(conn, subscriber_id) is None:
                raise SubscriberNotFoundError(f"no subscriber has id {subscriber_id}")
            conn.execute(delete(feed_tokens).where(feed_tokens.c.subscriber_id == subscriber_id))
            conn.execute(feed_tokens.insert().values(row))
        return str(row["token"])

    def update_subscriber(self, sub: Subscriber) -> Subscriber:
        """Write every field of ``sub`` (found by id) except its creation time."""
        if sub.id is None:
            raise SubscriberNotFoundError(f"{sub.email} has no id", "load it with get_subscriber first")
        subscriber_id = sub.id
        sub = validated(sub)
        if not sub.token:
            sub.token = new_token()
        try:
            with self.engine.begin() as conn:
                take_write_lock(conn)
                other = self._find(conn, email_key(sub.email))
                if other is not None and other.id != sub.id:
                    raise _exists(sub)
                before = self._status(conn, table.c.id == subscriber_id)
                if before is None or not self._write(conn, sub):
                    raise SubscriberNotFoundError(f"no subscriber has id {subscriber_id}")
                if before != sub.status:
                    self._count_status_change(conn, subscriber_id)
        except IntegrityError as exc:
            raise _exists(sub) from exc
        return sub

    def set_subscriber_status(self, email_or_id: str | int, status: SubscriberStatus) -> bool:
        """Set the status of the subscriber with this address or id; False when there is none."""
        check_status(status)
        where = (table.c.id == email_or_id if isinstance(email_or_id, int)
                 else table.c.email_key == lookup_key(email_or_id))
        with self.engine.begin() as conn:
            take_write_lock(conn)
            row = conn.execute(select(table.c.id, table.c.status).where(where)).one_or_none()
            if row is None:
                return False
            if row.status != status:
                conn.execute(update(table).where(table.c.id == row.id).values(status=status))
                self._count_status_change(conn, row.id)
            return True

    def status_change_count(self, subscriber_id: int) -> int:
        """How many times the subscriber's status changed (see schema.status_changes)."""
        with self.engine.connect() as conn:
            return self._change_count(conn, subscriber_id)

    def confirm_subscriber(self, sub: Subscriber, changes_seen: int) -> Subscriber | None:
        """Make ``sub`` (its name, categories and cadence as given) active, if its status has not changed since
        ``changes_seen`` was read; else None. One transaction, so a link confirms at most once."""
        with self.engine.begin() as conn:
            take_write_lock(conn)
            stored = self._find_id(conn, sub.id)
            if stored is None or stored.id is None or stored.status == "active" \
                    or self._change_count(conn, stored.id) != changes_seen:
                return None
            confirmed = validated(replace(stored, name=sub.name, categories=sub.categories, cadence=sub.cadence,
                                          weekday=sub.weekday, status="active"))
            self._write(conn, confirmed)
            self._count_status_change(conn, stored.id)
        return confirmed

    def renew_pending(self, sub: Subscriber, now: dt.datetime | None = None) -> Subscriber:
        """A pending subscriber asked again: keep the new name and categories, and count its waiting
        time (``created_at``) from now, so that ``remove_pending_before`` does not cut a fresh link short."""
        renewed = validated(replace(sub, created_at=as_utc(now or utc_now())))
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == sub.id, table.c.status == "pending").values(
                name=renewed.name, categories=list(renewed.categories), created_at=renewed.created_at))
        return renewed

    def remove_pending_before(self, cutoff: dt.datetime) -> int:
        """Delete the subscribers still pending that asked before ``cutoff``; returns how many."""
        with self.engine.begin() as conn:
            stale = select(table.c.id).where(table.c.status == "pending", table.c.created_at < as_utc(cutoff))
            conn.execute(delete(status_changes).where(status_changes.c.subscriber_id.in_(stale)))
            conn.execute(delete(feed_tokens).where(feed_tokens.c.subscriber_id.in_(stale)))
            return conn.execute(delete(table).where(table.c.id.in_(stale))).rowcount

    def remove_subscriber(self, email: str) -> bool:
        """Delete the subscriber (see the module docstring); False when there was none."""
        with self.engine.begin() as conn:
            found = select(table.c.id).where(table.c.email_key == lookup_key(email))
            conn.execute(delete(status_changes).where(status_changes.c.subscriber_id.in_(found)))
            conn.execute(delete(feed_tokens).where(feed_tokens.c.subscriber_id.in_(found)))
            return conn.execute(delete(table).where(table.c.email_key == lookup_key(email))).rowcount > 0

    def subscribers(self, status: SubscriberStatus | None = "active") -> list[Subscriber]:
        """Subscribers with ``status`` (every one when None), oldest first: plans list them in this order."""
        query = _SELECT.order_by(table.c.id)
        if status is not None:
            query = query.where(table.c.status == check_status(status))
        with self.engine.connect() as conn:
            return [_subscriber(row) for row in conn.execute(query)]

    def subscribers_by_id(self, ids: Collection[int]) -> dict[int, Subscriber]:
        """The subscribers with these ids that exist, whatever their status."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            return {row.id: _subscriber(row) for row in conn.execute(_SELECT.where(table.c.id.in_(list(ids))))}

    @staticmethod
    def _prepare_new(sub: Subscriber, now: dt.datetime | None) -> Subscriber:
        return replace(sub, id=None, token=sub.token or new_token(),
                       created_at=as_utc(sub.created_at or now or utc_now()))  # SQLite would drop another offset

    @staticmethod
    def _insert(conn: Connection, sub: Subscriber) -> int:
        """Insert the subscriber and its feed token (``sub.feed_token`` is set to it); returns the id."""
        subscriber_id = int(conn.execute(table.insert().values(_row(sub)).returning(table.c.id)).scalar_one())
        row = feed_token_row(subscriber_id, sub.created_at or utc_now())
        conn.execute(feed_tokens.insert().values(row))
        sub.feed_token = row["token"]
        return subscriber_id

    @staticmethod
    def _find(conn: Connection, key: str) -> Subscriber | None:
        row = conn.execute(_SELECT.where(table.c.email_key == key)).one_or_none()
        return _subscriber(row) if row is not None else None

    @staticmethod
    def _find_id(conn: Connection, subscriber_id: int | None) -> Subscriber | None:
        row = conn.execute(_SELECT.where(table.c.id == subscriber_id)).one_or_none()
        return _subscriber(row) if row is not None else None

    @staticmethod
    def _status(conn: Connection, where: Any) -> str | None:
        return conn.execute(select(table.c.status).where(where)).scalar_one_or_none()

    @staticmethod
    def _change_count(conn: Connection, subscriber_id: int) -> int:
        query = select(status_changes.c.count).where(status_changes.c.subscriber_id == subscriber_id)
        return conn.execute(query).scalar_one_or_none() or 0

    @staticmethod
    def _count_status_change(conn: Connection, subscriber_id: int) -> None:
        """Called inside a transaction that holds the write lock, so the read and the write cannot race."""
        bumped = update(status_changes).where(status_changes.c.subscriber_id == subscriber_id).values(
            count=status_changes.c.count + 1)
        if conn.execute(bumped).rowcount == 0:
            conn.execute(status_changes.insert().values(subscriber_id=subscriber_id, count=1))

    @staticmethod
    def _write(conn: Connection, sub: Subscriber) -> bool:
        values = _row(sub)
        del values["created_at"]
        return conn.execute(update(table).where(table.c.id == sub.id).values(values)).rowcount > 0
