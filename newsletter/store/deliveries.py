"""The delivery log: which subscriber got which edition, and where each message stands.

A row is keyed by (edition, subscriber); its ``date`` is the day whose send planned it, which
claims, leases and counts go by, since every edition planned on a day is due that day.

Each write is one short transaction. Claiming is a single ``UPDATE ... WHERE id IN (SELECT ...)``
so that two send processes can never lease the same row: SQLite runs it under its one write lock,
PostgreSQL skips rows another transaction has locked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Integer,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.clock import as_utc, utc_now
from newsletter.models import DIGEST_KINDS, Edition, PlannedMessage
from newsletter.store.schema import deliveries, edition_notes, editions, renditions

DeliveryState = Literal["pending", "sending", "sent", "retry", "failed", "bounced", "cancelled", "unknown"]
"""pending and retry wait to be sent; sending is leased to one process; the rest are final for the day.
unknown: twice the server took the message but never answered after it, so it may have arrived (twice);
it is not sent again."""
DELIVERY_STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)
FINAL_PROBLEM_STATES: tuple[DeliveryState, ...] = ("failed", "bounced", "cancelled", "unknown")
UnsentState = Literal["retry", "failed", "bounced", "unknown"]


@dataclass(frozen=True)
class Claimed:
    """A delivery row leased to this process."""

    id: int
    edition: str
    subscriber_id: int
    email: str
    message_id: str
    attempts: int
    unknown_outcomes: int = 0
    """Earlier attempts whose outcome is unknown (no reply after the message): one more copy at most."""
    rendition_id: int | None = None
    """The stored rendition its message is built from (None: planned before renditions were stored)."""
    followed_note: str = ""


@dataclass(frozen=True)
class DeliveryProblem:
    date: dt.date
    email: str
    state: DeliveryState
    attempts: int
    reply: str


@dataclass(frozen=True)
class OpenWork:
    """What is left for a day once nothing more can be claimed right now."""

    next_retry_at: dt.datetime | None
    """The earliest retry, among the rows the caller may still try."""
    leased_elsewhere: int
    lease_owners: tuple[str, ...]
    leased_until: dt.datetime | None = None
    """The latest lease among the rows others hold: by then each has been sent or can be taken over."""
    expired_elsewhere: int = 0
    """Rows others hold whose lease had run out at ``now``: their holder may be gone."""


def _release_state() -> Any:
    # A released row that was tried before goes back to retry, so `status` still shows its last reply.
    return case((deliveries.c.attempts > 0, "retry"), else_="pending")


@dataclass(frozen=True)
class SentMark:
    """The server's acceptance of a delivery, to record (see DeliveryStore.mark_sent)."""

    delivery_id: int
    reply: str
    at: dt.datetime

    def params(self) -> dict[str, object]:
        """The values of MARK_SENT's parameters."""
        return {"delivery_id": self.delivery_id, "reply": self.reply, "now": self.at}


# Built once: it runs once per message, and building the statement costs more than running it.
MARK_SENT = update(deliveries).where(deliveries.c.id == bindparam("delivery_id")).values(
    state="sent", attempts=deliveries.c.attempts + 1, sent_at=bindparam("now"), last_reply=bindparam("reply"),
    lease_owner=None, lease_until=None, next_attempt_at=None, updated_at=bindparam("now"))


def _claim(due: ColumnElement[bool], any_day: bool = False) -> Executable:
    """Lease the first ``max_rows`` rows of ``day`` that ``due`` selects, skipping the ids in ``skip``.
    ``any_day``: of every day instead, those whose message a worker can build (a stored rendition)."""
    c = deliveries.c
    scope = c.rendition_id.is_not(None) if any_day else c.date == bindparam("day")
    candidates = (select(c.id).where(scope, due, c.id.not_in(bindparam("skip", expanding=True)))
                  .order_by(c.id).limit(bindparam("max_rows", type_=Integer))
                  # SQLite ignores FOR UPDATE (its write lock already serialises this statement).
                  .with_for_update(skip_locked=True))
    return (update(deliveries).where(c.id.in_(candidates.scalar_subquery()))
            .values(state="sending", lease_owner=bindparam("owner"), lease_until=bindparam("until"),
                    updated_at=bindparam("now"))
            .returning(c.id, c.edition, c.subscriber_id, c.email, c.message_id, c.attempts, c.unknown_outcomes,
                       c.rendition_id, c.followed_note))


# One kind at a time: `state = X` walks the (date, state) index in id order, which an OR would not.
# Fresh rows first, retries last: a few addresses that are refused every time must never fill the
# batches and keep everyone else waiting.
# Built once: a send claims every CLAIM_BATCH messages, and building these cost more than running them.
_EXPIRED = and_(deliveries.c.state == "sending", deliveries.c.lease_until < bindparam("now"))
_DUE = (deliveries.c.state == "pending", _EXPIRED,
        and_(deliveries.c.state == "retry", deliveries.c.next_attempt_at <= bindparam("now")))
_CLAIMS = tuple(_claim(due) for due in _DUE)
_CLAIMS_ANY_DAY = tuple(_claim(due, any_day=True) for due in _DUE)


class DeliveryStore:
    engine: Engine

    def store_renditions(self, date: dt.date, templates: Mapping[str, str], now: dt.datetime) -> dict[str, int]:
        """Store the day's rendition templates (key -> MessageTemplate JSON), replacing those of an
        earlier plan of the day under the same key; returns key -> id."""
        if not templates:
            return {}
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        r = renditions.c
        stmt = dialect.insert(renditions)
        stmt = stmt.on_conflict_do_update(index_elements=["date", "key"],
                                          set_={"template": stmt.excluded.template, "updated_at": now})
        with self.engine.begin() as conn:
            conn.execute(stmt, [{"date": date, "key": key, "template": template, "updated_at": now}
                                for key, template in templates.items()])
            return {key: rid for key, rid in conn.execute(
                select(r.key, r.id).where(r.date == date, r.key.in_(list(templates))))}

    def rendition_template(self, rendition_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(renditions.c.template).where(renditions.c.id == rendition_id)).scalar()

    def create_deliveries(self, messages: Iterable[PlannedMessage], now: dt.datetime,
                          rendition_ids: Mapping[str, int] | None = None,
                          followed_note: Callable[[PlannedMessage], str] | None = None) -> int:
        """Add a pending row per planned message unless its (edition, subscriber) has one, and the
        editions they belong to; returns how many rows were added. ``rendition_ids`` (rendition key ->
        stored id) and ``followed_note`` give each row what a worker needs to build its message."""
        messages = list(messages)
        ids = rendition_ids or {}
        rows = [{
            "date": m.date, "edition": m.edition.key, "subscriber_id": m.subscriber.id, "email": m.subscriber.email,
            "message_id": m.message_id, "state": "pending", "attempts": 0, "updated_at": now,
            "rendition_id": ids.get(m.rendition_key), "followed_note": followed_note(m) if followed_note else "",
        } for m in messages]
        if any(r["subscriber_id"] is None for r in rows):
            raise ValueError("planned messages must carry stored subscribers (with an id)")
        if not rows:
            return 0
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        described = {m.edition.key: {"key": m.edition.key, "kind": m.edition.kind, "first_day": m.edition.first_day,
                                     "last_day": m.edition.last_day} for m in messages}
        added = 0
        with self.engine.begin() as conn:
            conn.execute(dialect.insert(editions).on_conflict_do_nothing(index_elements=["key"]),
                         list(described.values()))
            for start in range(0, len(rows), 500):
                # Counted by the ids returned: on PostgreSQL a batched insert reports no row count (-1).
                stmt = (dialect.insert(deliveries)
                        .on_conflict_do_nothing(index_elements=["edition", "subscriber_id"])
                        .returning(deliveries.c.id))
                added += len(conn.execute(stmt, rows[start:start + 500]).all())
        return added

    def cancel_deliveries(self, date: dt.date, keep: Collection[tuple[str, int]], reason: str,
                          now: dt.datetime) -> int:
        """Cancel the day's unsent rows whose (edition, subscriber) is no longer in the plan (unsubscribed,
        bounced, switched cadence, ...)."""
        with self.engine.begin() as conn:
            stale = [r.id for r in conn.execute(
                select(deliveries.c.id, deliveries.c.edition, deliveries.c.subscriber_id)
                .where(deliveries.c.date == date, deliveries.c.state.in_(("pending", "retry")))
            ) if (r.edition, r.subscriber_id) not in keep]
            for start in range(0, len(stale), 500):
                conn.execute(update(deliveries).where(deliveries.c.id.in_(stale[start:start + 500]))
                             .values(state="cancelled", last_reply=reason, lease_owner=None, lease_until=None,
                                     updated_at=now))
        return len(stale)

    def coverage_before(self, date: dt.date, since: dt.date | None = None) -> dict[int, tuple[dt.date, dt.date]]:
        """Per subscriber, the first and last digest day covered by the daily and weekly editions planned
        for them on days before ``date`` (since ``since``; cancelled rows aside): what their next editions
        must not repeat."""
        c, e = deliveries.c, editions.c
        query = (select(c.subscriber_id, func.min(e.first_day), func.max(e.last_day))
                 .join(editions, editions.c.key == c.edition)
                 .where(c.date < date, c.state != "cancelled", e.kind.in_(DIGEST_KINDS))
                 .group_by(c.subscriber_id))
        if since is not None:
            query = query.where(c.date >= since)
        with self.engine.connect() as conn:
            return {sid: (first, last) for sid, first, last in conn.execute(query)}

    def digests_out(self, date: dt.date) -> dict[int, set[str]]:
        """Per subscriber, the kinds of the day's digest editions already sent or in flight (a reader who
        switched cadence since): what a rerun of the day must not send again under the other kind."""
        c, e = deliveries.c, editions.c
        query = (select(c.subscriber_id, e.kind).join(editions, editions.c.key == c.edition)
                 .where(c.date == date, c.state.in_(("sent", "sending", "unknown")), e.kind.in_(DIGEST_KINDS)))
        found: dict[int, set[str]] = {}
        with self.engine.connect() as conn:
            for sid, kind in conn.execute(query):
                found.setdefault(sid, set()).add(kind)
        return found

    def alerted_before(self, date: dt.date, arxiv_ids: Collection[str]) -> dict[int, set[str]]:
        """Per subscriber, which of these papers an alert planned before ``date`` was about (cancelled aside)."""
        c = deliveries.c
        keys = [f"alert/{arxiv_id}" for arxiv_id in arxiv_ids]
        found: dict[int, set[str]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                for sid, key in conn.execute(select(c.subscriber_id, c.edition).where(
                        c.edition.in_(keys[start:start + 500]), c.date < date, c.state != "cancelled")):
                    found.setdefault(sid, set()).add(key.removeprefix("alert/"))
        return found

    def claim_deliveries(self, date: dt.date | None, owner: str, now: dt.datetime, lease_until: dt.datetime,
                         limit: int, exclude: Collection[int] = ()) -> list[Claimed]:
        """Lease up to ``limit`` due rows of the day to ``owner``, in this order: pending, expired leases,
        retries that are due. ``date`` None: of any day, among the rows with a stored rendition (a worker)."""
        claimed: list[Claimed] = []
        excluded = list(exclude)
        for stmt in _CLAIMS if date is not None else _CLAIMS_ANY_DAY:
            if len(claimed) >= limit:
                break
            with self.engine.begin() as conn:
                rows = sorted(conn.execute(stmt, {"day": date, "now": now, "owner": owner, "until": lease_until,
                                                  "max_rows": limit - len(claimed), "skip": excluded}),
                              key=lambda row: row.id)
                claimed += [Claimed(r.id, r.edition, r.subscriber_id, r.email, r.message_id, r.attempts,
                                    r.unknown_outcomes, r.rendition_id, r.followed_note) for r in rows]
        return claimed

    def renew_leases(self, owner: str, ids: Sequence[int], now: dt.datetime, lease_until: dt.datetime) -> set[int]:
        """Extend this owner's live leases on ``ids``; returns the ids it still holds."""
        if not ids:
            return set()
        c = deliveries.c
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(c.id.in_(list(ids)), c.lease_owner == owner, c.state == "sending", c.lease_until >= now)
                .values(lease_until=lease_until, updated_at=now).returning(c.id)
            ).scalars().all()
        return set(rows)

    def mark_sent(self, delivery_id: int, reply: str, now: dt.datetime, conn: Connection | None = None) -> None:
        """Record the server's acceptance. Unconditional: once the server said 250, the message is out.

        ``conn``: an open connection to commit on, for a caller that marks one message after another.
        """
        values = SentMark(delivery_id, reply, now).params()
        if conn is None:
            with self.engine.begin() as own:
                own.execute(MARK_SENT, values)
            return
        with conn.begin():
            conn.execute(MARK_SENT, values)

    def mark_unsent(self, delivery_id: int, owner: str, state: UnsentState, reply: str, now: dt.datetime,
                    next_attempt_at: dt.datetime | None = None, outcome_unknown: bool = False) -> bool:
        """Record an attempt that did not end in a 250: state retry (with ``next_attempt_at``), failed,
        bounced or unknown. ``outcome_unknown``: the server took the message but never answered.

        Only while ``owner`` still holds the lease; returns False if another process took it over.
        """
        if state not in get_args(UnsentState):
            raise ValueError(f"not an unsent state: {state}")
        c = deliveries.c
        with self.engine.begin() as conn:
            result = conn.execute(update(deliveries).where(
                c.id == delivery_id, c.lease_owner == owner, c.state == "sending",
            ).values(state=state, attempts=c.attempts + 1, last_reply=reply, next_attempt_at=next_attempt_at,
                     unknown_outcomes=c.unknown_outcomes + int(outcome_unknown),
                     lease_owner=None, lease_until=None, updated_at=now))
        return bool(result.rowcount)

    def cancel_claimed(self, delivery_id: int, owner: str, reason: str, now: dt.datetime) -> bool:
        """Cancel a row this owner holds whose subscriber is no longer active (or gone)."""
        c = deliveries.c
        with self.engine.begin() as conn:
            result = conn.execute(update(deliveries).where(
                c.id == delivery_id, c.lease_owner == owner, c.state == "sending",
            ).values(state="cancelled", last_reply=reason, lease_owner=None, lease_until=None, updated_at=now))
        return bool(result.rowcount)

    def release_deliveries(self, owner: str, now: dt.datetime, ids: Sequence[int] | None = None,
                           date: dt.date | None = None) -> int:
        """Give back rows leased to ``owner`` (all of them, or ``ids``) so that any send can take them at once."""
        c = deliveries.c
        stmt = update(deliveries).where(c.lease_owner == owner, c.state == "sending")
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(c.id.in_(list(ids)))
        if date is not None:
            stmt = stmt.where(c.date == date)
        with self.engine.begin() as conn:
            result = conn.execute(stmt.values(state=_release_state(), lease_owner=None, lease_until=None,
                                              next_attempt_at=now, updated_at=now))
        return int(result.rowcount)

    def release_expired(self, date: dt.date | None, now: dt.datetime) -> int:
        """Give back the day's rows (any day's when None) whose lease ran out, whoever held them: a send
        killed in another pid namespace, on another host or before a reboot cannot be checked, only outlived."""
        stmt = update(deliveries).where(_EXPIRED)
        if date is not None:
            stmt = stmt.where(deliveries.c.date == date)
        with self.engine.begin() as conn:
            result = conn.execute(stmt.values(
                state=_release_state(), lease_owner=None, lease_until=None, next_attempt_at=now, updated_at=now,
            ), {"now": now})
        return int(result.rowcount)

    def lease_owners(self, date: dt.date | None) -> list[str]:
        """Owners holding rows of the day (of any day when None) in state sending."""
        c = deliveries.c
        query = select(c.lease_owner).where(c.state == "sending").distinct()
        if date is not None:
            query = query.where(c.date == date)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def open_work(self, date: dt.date | None, owner: str, exclude: Collection[int] = (),
                  now: dt.datetime | None = None) -> OpenWork:
        """What is left of the day (of any day, among rows a worker can build, when None)."""
        c = deliveries.c
        now = now or utc_now()
        scope = c.date == date if date is not None else c.rendition_id.is_not(None)
        retry_query = select(func.min(c.next_attempt_at)).where(scope, c.state == "retry")
        if exclude:
            retry_query = retry_query.where(c.id.not_in(list(exclude)))
        with self.engine.connect() as conn:
            next_retry = conn.execute(retry_query).scalar_one_or_none()
            leased = conn.execute(
                select(c.lease_owner, func.count(), func.max(c.lease_until),
                       func.sum(case((c.lease_until < now, 1), else_=0)))
                .where(scope, c.state == "sending", c.lease_owner != owner)
                .group_by(c.lease_owner)
            ).all()
        until = max((as_utc(u) for _, _, u, _ in leased if u is not None), default=None)
        return OpenWork(as_utc(next_retry) if next_retry is not None else None,
                        sum(n for _, n, _, _ in leased), tuple(o for o, *_ in leased), until,
                        sum(int(expired or 0) for *_, expired in leased))

    def logged_states(self, edition_keys: Collection[str], now: dt.datetime
                      ) -> dict[tuple[str, int], DeliveryState]:
        """(edition, subscriber id) -> the state of its row, for the rows of these editions that a send
        would not deliver now: sent, final problems, and "sending" rows whose lease still runs (another
        send holds them). Reads only: what a dry run leaves out."""
        c = deliveries.c
        keys = sorted(edition_keys)
        found: dict[tuple[str, int], DeliveryState] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    select(c.edition, c.subscriber_id, c.state, c.lease_until)
                    .where(c.edition.in_(keys[start:start + 500]), c.state.not_in(("pending", "retry"))))
                for edition, subscriber_id, state, lease_until in rows:
                    if state != "sending" or (lease_until is not None and as_utc(lease_until) >= now):
                        found[(edition, subscriber_id)] = state
        return found

    def delivery_counts(self, dates: Collection[dt.date] | None = None) -> dict[dt.date, dict[DeliveryState, int]]:
        """Per day (newest first), the number of rows in each state."""
        c = deliveries.c
        query = select(c.date, c.state, func.count()).group_by(c.date, c.state).order_by(c.date.desc())
        if dates is not None:
            query = query.where(c.date.in_(list(dates)))
        counts: dict[dt.date, dict[DeliveryState, int]] = {}
        with self.engine.connect() as conn:
            for date, state, n in conn.execute(query):
                counts.setdefault(date, {})[state] = n
        return counts

    def edition_counts(self, dates: Collection[dt.date] | None = None
                       ) -> dict[dt.date, dict[str, dict[DeliveryState, int]]]:
        """Per send day (newest first), per edition key, the number of rows in each state."""
        c = deliveries.c
        query = (select(c.date, c.edition, c.state, func.count()).group_by(c.date, c.edition, c.state)
                 .order_by(c.date.desc(), c.edition))
        if dates is not None:
            query = query.where(c.date.in_(list(dates)))
        counts: dict[dt.date, dict[str, dict[DeliveryState, int]]] = {}
        with self.engine.connect() as conn:
            for date, edition, state, n in conn.execute(query):
                counts.setdefault(date, {}).setdefault(edition, {})[state] = n
        return counts

    def delivery_problems(self, date: dt.date) -> list[DeliveryProblem]:
        """The day's rows that did not go out (yet) with a reply: failed, bounced, cancelled and retry."""
        c = deliveries.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.date, c.email, c.state, c.attempts, c.last_reply)
                .where(c.date == date, c.state.in_((*FINAL_PROBLEM_STATES, "retry")))
                .order_by(c.state, c.email)
            ).all()
        return [DeliveryProblem(r.date, r.email, r.state, r.attempts, r.last_reply or "") for r in rows]

    def record_no_issue(self, date: dt.date, reason: str, now: dt.datetime | None = None) -> None:
        """Note that the day's daily edition does not go out, and why; recording again replaces the reason."""
        now = now or utc_now()
        key = Edition.daily(date).key
        with self.engine.begin() as conn:
            conn.execute(edition_notes.delete().where(edition_notes.c.edition == key))
            conn.execute(edition_notes.insert().values(edition=key, date=date, reason=reason, recorded_at=now))

    def clear_no_issue(self, date: dt.date) -> None:
        """Forget the note for ``date``: the day is being sent after all."""
        with self.engine.begin() as conn:
            conn.execute(edition_notes.delete().where(edition_notes.c.edition == Edition.daily(date).key))

    def no_issue_notes(self, dates: Collection[dt.date] | None = None) -> dict[dt.date, str]:
        """Per day, why its daily edition did not go out."""
        query = select(edition_notes.c.date, edition_notes.c.reason).where(edition_notes.c.edition.startswith("daily/"))
        if dates is not None:
            query = query.where(edition_notes.c.date.in_(list(dates)))
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())
