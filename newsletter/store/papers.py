"""Days and papers: idempotent ingest and the queries the feeds and emails read."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from newsletter.clock import utc_now
from newsletter.models import Day, Paper, ParseWarning, Point, QuizQuestion, Translation, paper_as_dict
from newsletter.store.locking import take_write_lock
from newsletter.store.schema import CATEGORY_LENGTH, appearances, days, papers, source_notes, sources

_Listings = dict[tuple[dt.date, str], dict[str, dict[str, Any]]]
"""(date, source file) -> arXiv id -> the paper's fields, as the file lists them, in its order."""
_StoredListings = dict[tuple[dt.date, str], list[tuple[str, str]]]
"""(date, source file) -> (arXiv id, content hash) of each paper, in listing order, as stored."""


@dataclass(frozen=True)
class SourceRecord:
    """A digest file as last ingested: its fingerprint, and what parsing it gave."""

    path: str
    fingerprint: str
    dates: tuple[dt.date, ...]
    arxiv_ids: tuple[str, ...]
    warnings: tuple[ParseWarning, ...]


@dataclass(frozen=True)
class PrunedSource:
    """A digest file that no longer exists, and what its listings held when they were removed."""

    path: str
    dates: tuple[dt.date, ...]
    papers: int


@dataclass
class IngestCounts:
    days: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def content_marker_columns() -> list[Any]:
    """Values that together change whenever the days, listings or papers change, for caches of what
    is computed from them (the private feeds). Cheap, since they are read on every request: the
    counts come from indexes, the newest time from the small days table, where every ingest or prune
    that changes a day's listings stamps that day (a paper's text changes only with a listing)."""
    return [
        select(func.count()).select_from(days).scalar_subquery(),
        select(func.max(days.c.ingested_at)).scalar_subquery(),
        select(func.count()).select_from(appearances).scalar_subquery(),
        select(func.count()).select_from(papers).scalar_subquery(),
    ]


def _canonical_json(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def _query_copy(text: str | None, limit: int | None = None) -> str | None:
    """A title or category as copied out for queries, in a shape every backend stores: PostgreSQL text
    cannot hold NUL, which hostile input may carry, and PostgreSQL enforces a column's length. The
    content JSON keeps the text whole (NUL escaped as \\u0000)."""
    return text.replace("\x00", "")[:limit] if text else text


def _content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _paper_from_json(text: str) -> Paper:
    data = json.loads(text)
    return Paper(
        arxiv_id=data["arxiv_id"],
        title=data["title"],
        authors=data["authors"],
        summary=data["summary"],
        category=data["category"],
        categories=data["categories"],
        links=data["links"],
        published=dt.date.fromisoformat(data["published"]) if data["published"] else None,
        points=[Point(p["label"], p["text"]) for p in data["points"]],
        quiz=_quiz_from_json(data["quiz"]),
        translations={  # absent from rows written before translations were kept
            lang: Translation([Point(p["label"], p["text"]) for p in t["points"]], _quiz_from_json(t["quiz"]))
            for lang, t in data.get("translations", {}).items()
        },
        flowchart=data.get("flowchart", ""),  # absent from rows written before it was kept
    )


def _quiz_from_json(quiz: list[dict[str, Any]]) -> list[QuizQuestion]:
    return [QuizQuestion(q["question"], tuple(q["options"]), q.get("answer")) for q in quiz]


def _merge_listings(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """One paper row from its listings on one day, in order of precedence.

    The first listing's text stands; later ones only fill what it lacks (a cards page adds points,
    a quiz and a PDF link to a table's authors and summary).
    """
    merged = dict(contents[0])
    for other in contents[1:]:
        for key, value in other.items():
            if key == "links":
                merged["links"] = {**value, **merged["links"]}
            elif not merged.get(key) and value:
                merged[key] = value
    return merged


def _paper_row(arxiv_id: str, listings: list[Any], now: dt.datetime) -> dict[str, Any]:
    """The papers row derived from a paper's listings (newest day first), without ``first_seen``."""
    newest = listings[0].date
    # Table rows first: they carry the digest's own summary, authors and category. Among
    # those, the listing ingested last: a corrected or renamed file overrides an older one.
    contents = sorted(
        ((json.loads(r.content), r) for r in listings if r.date == newest),
        key=lambda c: (bool(c[0]["points"]), -c[1].ingested_at.timestamp(), c[1].source),
    )
    if len(contents) == 1:
        merged, text, digest = contents[0][0], contents[0][1].content, contents[0][1].content_hash
    else:
        merged = _merge_listings([c for c, _ in contents])
        text = _canonical_json(merged)
        digest = _content_hash(text)
    return {
        "arxiv_id": arxiv_id, "content": text, "content_hash": digest, "title": _query_copy(merged["title"]),
        "category": _query_copy(merged["category"], CATEGORY_LENGTH),
        "published": dt.date.fromisoformat(merged["published"]) if merged["published"] else None,
        "updated_at": now,
    }


def _listings_by_file(new_days: Iterable[Day]) -> tuple[_Listings, dict[tuple[dt.date, str], Day]]:
    """Each (day, source file)'s papers as stored, by arXiv id (a paper listed twice: its first listing),
    and the day as that file first gave it (for its note)."""
    listings: _Listings = {}
    notes: dict[tuple[dt.date, str], Day] = {}
    for day in new_days:
        notes.setdefault((day.date, day.source), day)
        papers_of_file = listings.setdefault((day.date, day.source), {})
        for paper in day.papers:
            papers_of_file.setdefault(paper.arxiv_id, paper_as_dict(paper))
    return listings, notes


class PaperStore:
    engine: Engine

    def ingest(
        self, new_days: Iterable[Day], now: dt.datetime | None = None, parsed_sources: Iterable[SourceRecord] = ()
    ) -> IngestCounts:
        """Upsert days and their papers in one transaction.

        Each (day, source file) pair replaces that file's earlier listing of the day, so running it
        again on the same files changes nothing, a corrected file updates its papers, and another
        file for the same day adds to it. A paper listed on several days is one paper with one
        appearance per day; its text is that of the newest day it is listed on. ``parsed_sources``
        are recorded in the same transaction, so a file is never marked ingested without its papers.
        """
        now = now or utc_now()
        counts = IngestCounts()
        listings, notes = _listings_by_file(new_days)
        records = list(parsed_sources)
        if not listings and not records:
            return counts
        dates = sorted({date for date, _ in listings})
        touched_ids = {a for rows in listings.values() for a in rows}
        with self.engine.begin() as conn:
            take_write_lock(conn)  # two ingests at once: the second waits instead of failing
            self._record_sources(conn, records, now)
            stored = self._stored_listings(conn, dates)
            new_dates = self._add_new_days(conn, dates, now)
            changed_ids, changed_dates = self._replace_changed_listings(conn, listings, stored, now)
            self._stamp_days(conn, changed_dates - set(new_dates), now)
            self._record_notes(conn, notes)
            if changed_ids:
                inserted, updated = self._refresh_papers(conn, sorted(changed_ids), now)
                counts.new, counts.updated = len(inserted & touched_ids), len(updated & touched_ids)
        counts.days = len(dates)
        counts.unchanged = len(touched_ids) - counts.new - counts.updated
        return counts

    @staticmethod
    def _stored_listings(conn: Connection, dates: list[dt.date]) -> _StoredListings:
        """The stored listings of ``dates``: (date, source) -> (arxiv_id, content hash) in listing order."""
        stored: _StoredListings = {}
        for r in conn.execute(
            select(appearances.c.date, appearances.c.source, appearances.c.arxiv_id, appearances.c.content_hash)
            .where(appearances.c.date.in_(dates))
            .order_by(appearances.c.position)
        ):
            stored.setdefault((r.date, r.source), []).append((r.arxiv_id, r.content_hash))
        return stored

    @staticmethod
    def _add_new_days(conn: Connection, dates: list[dt.date], now: dt.datetime) -> list[dt.date]:
        """Insert the days among ``dates`` that the store lacks; return them."""
        known_dates = set(conn.execute(select(days.c.date).where(days.c.date.in_(dates))).scalars())
        new_dates = [d for d in dates if d not in known_dates]
        if new_dates:
            conn.execute(days.insert(), [{"date": d, "ingested_at": now} for d in new_dates])
        return new_dates

    @staticmethod
    def _replace_changed_listings(
        conn: Connection, listings: _Listings, stored: _StoredListings, now: dt.datetime
    ) -> tuple[set[str], set[dt.date]]:
        """Replace each stored listing that differs from the new one; return the papers and days it touched."""
        changed_ids: set[str] = set()
        changed_dates: set[dt.date] = set()
        new_rows: list[dict[str, Any]] = []
        for (date, source), rows in sorted(listings.items()):
            encoded = {a: _canonical_json(row) for a, row in rows.items()}
            wanted = [(a, _content_hash(text)) for a, text in encoded.items()]
            before = stored.get((date, source), [])
            if before == wanted:
                continue
            changed_dates.add(date)
            changed_ids.update(a for a, _ in before)
            changed_ids.update(rows)
            if before:
                conn.execute(delete(appearances).where(appearances.c.date == date, appearances.c.source == source))
            new_rows.extend(
                {"date": date, "source": source, "arxiv_id": a, "position": i, "content": encoded[a],
                 "content_hash": h, "ingested_at": now}
                for i, (a, h) in enumerate(wanted)
            )
        if new_rows:
            conn.execute(appearances.insert(), new_rows)
        return changed_ids, changed_dates

    @staticmethod
    def _record_sources(conn: Connection, records: list[SourceRecord], now: dt.datetime) -> None:
        if not records:
            return
        conn.execute(delete(sources).where(sources.c.path.in_([r.path for r in records])))
        conn.execute(sources.insert(), [
            {"path": r.path, "fingerprint": r.fingerprint, "dates": [d.isoformat() for d in r.dates],
             "arxiv_ids": list(r.arxiv_ids), "warnings": [[w.file, w.line, w.message, w.kind] for w in r.warnings],
             "ingested_at": now}
            for r in records
        ])

    @staticmethod
    def _record_notes(conn: Connection, notes: dict[tuple[dt.date, str], Day]) -> None:
        """Each file's note for its day replaces the one it gave before (none: deleted)."""
        for date, source in notes:
            conn.execute(delete(source_notes).where(source_notes.c.date == date, source_notes.c.source == source))
        rows = [
            {"date": date, "source": source, "note": day.note, "translations": dict(day.note_translations)}
            for (date, source), day in notes.items()
            if day.note or day.note_translations
        ]
        if rows:
            conn.execute(source_notes.insert(), rows)

    def listing_sizes(self, sources: Iterable[str]) -> dict[tuple[dt.date, str], int]:
        """How many papers each listing of these files holds: (date, source) -> count."""
        wanted = sorted(set(sources))
        found: dict[tuple[dt.date, str], int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
                query = (
                    select(appearances.c.date, appearances.c.source, func.count())
                    .where(appearances.c.source.in_(wanted[start:start + 500]))
                    .group_by(appearances.c.date, appearances.c.source)
                )
                found.update(((r.date, r.source), r[2]) for r in conn.execute(query))
        return found

    def source_paths(self) -> set[str]:
        """Every digest file the store holds listings or a record of, as ingest named it."""
        with self.engine.connect() as conn:
            listed = set(conn.execute(select(appearances.c.source).distinct()).scalars())
            return listed | set(conn.execute(select(sources.c.path)).scalars())

    def remove_sources(self, paths: Iterable[str], now: dt.datetime | None = None) -> list[PrunedSource]:
        """Remove these files' listings and records in one transaction.

        Papers they listed are derived again from their other listings, or removed when none is
        left; a day is removed when no file lists it any more (an empty listing counts).
        """
        wanted = sorted(set(paths))
        if not wanted:
            return []
        with self.engine.begin() as conn:
            take_write_lock(conn)
            listed: dict[str, list[Any]] = {path: [] for path in wanted}
            for r in conn.execute(select(appearances.c.source, appearances.c.date, appearances.c.arxiv_id)
                                  .where(appearances.c.source.in_(wanted))):
                listed[r.source].append(r)
            dates = {path: {r.date for r in rows} for path, rows in listed.items()}
            for record in conn.execute(select(sources.c.path, sources.c.dates).where(sources.c.path.in_(wanted))):
                dates[record.path].update(map(dt.date.fromisoformat, record.dates))
            conn.execute(delete(appearances).where(appearances.c.source.in_(wanted)))
            conn.execute(delete(sources).where(sources.c.path.in_(wanted)))
            ids = sorted({r.arxiv_id for rows in listed.values() for r in rows})
            self._refresh_papers(conn, ids, now or utc_now())
            self._delete_unlisted(conn, ids, set().union(*dates.values()))
            self._stamp_days(conn, set().union(*dates.values()), now or utc_now())
        return [PrunedSource(path, tuple(sorted(dates[path])), len(listed[path])) for path in wanted]

    @staticmethod
    def _stamp_days(conn: Connection, dates: set[dt.date], now: dt.datetime) -> None:
        """Mark these days' listings as changed now: ``content_marker_columns`` reads the newest such time."""
        if dates:
            conn.execute(update(days).where(days.c.date.in_(sorted(dates))).values(ingested_at=now))

    @staticmethod
    def _delete_unlisted(conn: Connection, arxiv_ids: list[str], dates: set[dt.date]) -> None:
        """Delete the papers among ``arxiv_ids`` and the days among ``dates`` that no file lists any more."""
        for start in range(0, len(arxiv_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = arxiv_ids[start:start + 500]
            listed = select(appearances.c.arxiv_id).where(appearances.c.arxiv_id.in_(chunk))
            conn.execute(delete(papers).where(papers.c.arxiv_id.in_(chunk), papers.c.arxiv_id.not_in(listed)))
        recorded = {dt.date.fromisoformat(d) for ds in conn.execute(select(sources.c.dates)).scalars() for d in ds}
        unlisted = sorted(dates - recorded)
        if unlisted:
            listed_days = select(appearances.c.date).where(appearances.c.date.in_(unlisted))
            conn.execute(delete(days).where(days.c.date.in_(unlisted), days.c.date.not_in(listed_days)))

    def known_sources(self) -> dict[str, SourceRecord]:
        with self.engine.connect() as conn:
            return {
                r.path: SourceRecord(
                    r.path, r.fingerprint, tuple(dt.date.fromisoformat(d) for d in r.dates), tuple(r.arxiv_ids),
                    tuple(ParseWarning(*w) for w in r.warnings),
                )
                for r in conn.execute(select(sources))
            }

    @staticmethod
    def _refresh_papers(conn: Connection, arxiv_ids: list[str], now: dt.datetime) -> tuple[set[str], set[str]]:
        """Re-derive the papers rows of ``arxiv_ids`` from their listings; return (inserted, updated)."""
        listed, current = PaperStore._listings_and_current_hashes(conn, arxiv_ids)
        inserts, updates = [], []
        for arxiv_id, rows in listed.items():
            row = _paper_row(arxiv_id, rows, now)
            if arxiv_id not in current:
                inserts.append({**row, "first_seen": rows[-1].date})
            elif current[arxiv_id] != row["content_hash"]:
                updates.append(row)
        PaperStore._write_papers(conn, inserts, updates)
        return {r["arxiv_id"] for r in inserts}, {r["arxiv_id"] for r in updates}

    @staticmethod
    def _listings_and_current_hashes(
        conn: Connection, arxiv_ids: list[str]
    ) -> tuple[dict[str, list[Any]], dict[str, str]]:
        """Each paper's listings, newest day first, and the content hash of its stored papers row (if any)."""
        listed: dict[str, list[Any]] = {}
        current: dict[str, str] = {}
        for start in range(0, len(arxiv_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = arxiv_ids[start:start + 500]
            for r in conn.execute(
                select(
                    appearances.c.arxiv_id, appearances.c.date, appearances.c.source, appearances.c.content,
                    appearances.c.content_hash, appearances.c.ingested_at,
                )
                .where(appearances.c.arxiv_id.in_(chunk))
                .order_by(appearances.c.date.desc(), appearances.c.source)
            ):
                listed.setdefault(r.arxiv_id, []).append(r)
            current.update(
                (r.arxiv_id, r.content_hash)
                for r in conn.execute(
                    select(papers.c.arxiv_id, papers.c.content_hash).where(papers.c.arxiv_id.in_(chunk))
                )
            )
        return listed, current

    @staticmethod
    def _write_papers(conn: Connection, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        """Insert the new papers rows and update the changed ones, one statement each."""
        if inserts:
            conn.execute(papers.insert(), inserts)
        if updates:
            columns = [c for c in updates[0] if c != "arxiv_id"]
            conn.execute(
                update(papers).where(papers.c.arxiv_id == bindparam("key")).values({c: bindparam(c) for c in columns}),
                [{**{c: u[c] for c in columns}, "key": u["arxiv_id"]} for u in updates],
            )

    def dates(self) -> list[dt.date]:
        """Every ingested date, newest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(days.c.date).order_by(days.c.date.desc())).scalars())

    def latest_date(self) -> dt.date | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(days.c.date))).scalar_one_or_none()

    def get_day(self, date: dt.date) -> Day | None:
        found = self.days_between(date, date)
        return found[0] if found else None

    def days_between(self, start: dt.date | None = None, end: dt.date | None = None) -> list[Day]:
        """Days with their papers in digest order, newest day first; bounds are inclusive.

        A day built from several files lists each file's papers in turn, each paper once.
        """
        day_query = select(days.c.date).order_by(days.c.date.desc())
        paper_query = (
            select(appearances.c.date, appearances.c.source, appearances.c.arxiv_id, papers.c.content)
            .join(papers, papers.c.arxiv_id == appearances.c.arxiv_id)
            .order_by(appearances.c.date.desc(), appearances.c.source, appearances.c.position)
        )
        if start is not None:
            day_query = day_query.where(days.c.date >= start)
            paper_query = paper_query.where(appearances.c.date >= start)
        if end is not None:
            day_query = day_query.where(days.c.date <= end)
            paper_query = paper_query.where(appearances.c.date <= end)
        with self.engine.connect() as conn:
            result = {date: Day(date=date, papers=[], source="") for date in conn.execute(day_query).scalars()}
            seen: set[tuple[dt.date, str]] = set()
            sources: dict[dt.date, list[str]] = {}
            for row in conn.execute(paper_query):
                if row.source not in sources.setdefault(row.date, []):
                    sources[row.date].append(row.source)
                if (row.date, row.arxiv_id) not in seen:
                    seen.add((row.date, row.arxiv_id))
                    result[row.date].papers.append(_paper_from_json(row.content))
            self._attach_notes(conn, result, start, end)
        for date, day in result.items():
            day.source = "; ".join(sources.get(date, []))
        return list(result.values())

    @staticmethod
    def _attach_notes(conn: Connection, result: dict[dt.date, Day], start: dt.date | None, end: dt.date | None) -> None:
        """Each day's notes, one paragraph per file in source order (as its papers are listed)."""
        query = select(source_notes).order_by(source_notes.c.date, source_notes.c.source)
        if start is not None:
            query = query.where(source_notes.c.date >= start)
        if end is not None:
            query = query.where(source_notes.c.date <= end)
        for row in conn.execute(query):
            day = result.get(row.date)
            if day is None:
                continue
            day.note = "\n\n".join(filter(None, [day.note, row.note]))
            for lang, text in row.translations.items():
                day.note_translations[lang] = "\n\n".join(filter(None, [day.note_translations.get(lang, ""), text]))

    def appearances_of(self, arxiv_ids: Sequence[str]) -> dict[str, list[dt.date]]:
        """For each paper, the dates it was listed on, oldest first."""
        found: dict[str, list[dt.date]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(appearances.c.arxiv_id, appearances.c.date)
                .where(appearances.c.arxiv_id.in_(list(arxiv_ids)))
                .order_by(appearances.c.date)
            ):
                found.setdefault(row.arxiv_id, []).append(row.date)
        return found
