"""Days and papers: idempotent ingest and the queries the feeds and emails read."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, delete, select, update

from newsletter.models import Day, Paper, Point, QuizQuestion
from newsletter.store.schema import appearances, days, papers


@dataclass
class IngestCounts:
    days: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: IngestCounts) -> None:
        self.days += other.days
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged


def _paper_row(paper: Paper) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "authors": list(paper.authors),
        "summary": paper.summary,
        "category": paper.category,
        "categories": list(paper.categories),
        "links": dict(paper.links),
        "published": paper.published,
        "points": [{"label": p.label, "text": p.text} for p in paper.points],
        "quiz": [{"question": q.question, "options": list(q.options), "answer": q.answer} for q in paper.quiz],
    }


def _content_hash(row: dict[str, Any]) -> str:
    encoded = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _paper_from_row(row: Any) -> Paper:
    return Paper(
        arxiv_id=row.arxiv_id,
        title=row.title,
        authors=list(row.authors),
        summary=row.summary,
        category=row.category,
        categories=list(row.categories),
        links=dict(row.links),
        published=row.published,
        points=[Point(p["label"], p["text"]) for p in row.points],
        quiz=[QuizQuestion(q["question"], tuple(q["options"]), q.get("answer")) for q in row.quiz],
    )


class PaperStore:
    engine: Engine

    def ingest(self, new_days: Iterable[Day], now: dt.datetime | None = None) -> IngestCounts:
        """Upsert days and their papers in one transaction.

        Running it again on the same days changes nothing; a changed paper is updated; a day's
        list of papers is replaced by the file's, so a corrected file also drops removed rows.
        A paper listed on several days is one row with one appearance per day, holding the text
        of the newest day it is listed on.
        """
        now = now or dt.datetime.now(dt.UTC)
        counts = IngestCounts()
        ordered = sorted(new_days, key=lambda d: d.date)
        if not ordered:
            return counts
        ids = {p.arxiv_id for d in ordered for p in d.papers}
        with self.engine.begin() as conn:
            existing: dict[str, tuple[str, dt.date]] = {}
            id_list = sorted(ids)
            for start in range(0, len(id_list), 500):  # stay under SQLite's bound-parameter limit
                chunk = id_list[start:start + 500]
                for row in conn.execute(
                    select(papers.c.arxiv_id, papers.c.content_hash, papers.c.content_date)
                    .where(papers.c.arxiv_id.in_(chunk))
                ):
                    existing[row.arxiv_id] = (row.content_hash, row.content_date)
            dates = [d.date for d in ordered]
            known_days = {
                r.date: r.source for r in conn.execute(select(days.c.date, days.c.source).where(days.c.date.in_(dates)))
            }
            old_appearances: dict[dt.date, list[str]] = {}
            for r in conn.execute(
                select(appearances.c.date, appearances.c.arxiv_id)
                .where(appearances.c.date.in_(dates))
                .order_by(appearances.c.date, appearances.c.position)
            ):
                old_appearances.setdefault(r.date, []).append(r.arxiv_id)

            # The newest day's text wins, so process days oldest first and let later ones overwrite.
            final: dict[str, dict[str, Any]] = {}
            first_listed: dict[str, dt.date] = {}
            for day in ordered:
                for paper in day.papers:
                    first_listed.setdefault(paper.arxiv_id, day.date)
                    stored = existing.get(paper.arxiv_id)
                    if stored is not None and day.date < stored[1]:
                        continue
                    row = _paper_row(paper)
                    final[paper.arxiv_id] = {**row, "content_hash": _content_hash(row), "content_date": day.date}
            inserts, updates = [], []
            for arxiv_id, row in final.items():
                stored = existing.get(arxiv_id)
                if stored is None:
                    inserts.append({**row, "first_seen": first_listed[arxiv_id], "updated_at": now})
                elif stored[0] != row["content_hash"]:
                    updates.append({**row, "updated_at": now})
            counts.new = len(inserts)
            counts.updated = len(updates)
            counts.unchanged = len(ids) - counts.new - counts.updated
            if inserts:
                conn.execute(papers.insert(), inserts)
            if updates:
                columns = [c for c in updates[0] if c != "arxiv_id"]
                conn.execute(
                    update(papers).where(papers.c.arxiv_id == bindparam("key"))
                    .values({c: bindparam(c) for c in columns}),
                    [{**{c: u[c] for c in columns}, "key": u["arxiv_id"]} for u in updates],
                )
            for day in ordered:
                ids_in_order = list(dict.fromkeys(p.arxiv_id for p in day.papers))
                if known_days.get(day.date) == day.source and old_appearances.get(day.date, []) == ids_in_order:
                    continue
                if day.date in known_days:
                    conn.execute(update(days).where(days.c.date == day.date).values(source=day.source, ingested_at=now))
                    conn.execute(delete(appearances).where(appearances.c.date == day.date))
                else:
                    conn.execute(days.insert().values(date=day.date, source=day.source, ingested_at=now))
                if ids_in_order:
                    conn.execute(appearances.insert(), [
                        {"date": day.date, "arxiv_id": a, "position": i} for i, a in enumerate(ids_in_order)
                    ])
            counts.days = len({d.date for d in ordered})
        return counts

    def dates(self) -> list[dt.date]:
        """Every ingested date, newest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(days.c.date).order_by(days.c.date.desc())).scalars())

    def latest_date(self) -> dt.date | None:
        found = self.dates()
        return found[0] if found else None

    def get_day(self, date: dt.date) -> Day | None:
        found = self.days_between(date, date)
        return found[0] if found else None

    def days_between(self, start: dt.date | None = None, end: dt.date | None = None) -> list[Day]:
        """Days with their papers in digest order, newest day first; bounds are inclusive."""
        day_query = select(days.c.date, days.c.source).order_by(days.c.date.desc())
        paper_query = (
            select(appearances.c.date, papers)
            .join(papers, papers.c.arxiv_id == appearances.c.arxiv_id)
            .order_by(appearances.c.date.desc(), appearances.c.position)
        )
        if start is not None:
            day_query = day_query.where(days.c.date >= start)
            paper_query = paper_query.where(appearances.c.date >= start)
        if end is not None:
            day_query = day_query.where(days.c.date <= end)
            paper_query = paper_query.where(appearances.c.date <= end)
        with self.engine.connect() as conn:
            result = {r.date: Day(date=r.date, papers=[], source=r.source) for r in conn.execute(day_query)}
            for row in conn.execute(paper_query):
                result[row.date].papers.append(_paper_from_row(row))
        return list(result.values())

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
