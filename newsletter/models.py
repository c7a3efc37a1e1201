"""The data that flows through the pipeline, as plain dataclasses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args


@dataclass(frozen=True)
class Point:
    """One of a cards-format paper's numbered points, e.g. ("Topic and Domain", "The paper ...")."""

    label: str
    text: str


@dataclass(frozen=True)
class QuizQuestion:
    question: str
    options: tuple[str, ...]
    answer: str | None = None


@dataclass
class Translation:
    """A paper's points and quiz in another language (e.g. the Chinese half of a bilingual cards page).

    Kept apart from the English ones, never mixed into them; ``quiz[i]`` translates the paper's
    ``quiz[i]`` and ``points[i]`` its ``points[i]``."""

    points: list[Point] = field(default_factory=list)
    quiz: list[QuizQuestion] = field(default_factory=list)


@dataclass
class Paper:
    arxiv_id: str
    """The arXiv identifier without its version, e.g. ``2504.08685``."""
    title: str
    authors: list[str] = field(default_factory=list)
    summary: str = ""
    """Markdown, as the digest gave it; "" when it gave none (a cards page has no summary: see summary_of)."""
    category: str | None = None
    """The digest's own Category cell; None when the digest has no such column."""
    categories: list[str] = field(default_factory=list)
    """Always filled after classification: ``[category]`` or the taxonomy's choice."""
    links: dict[str, str] = field(default_factory=dict)
    """Keys among ``arxiv``, ``huggingface``, ``pdf``."""
    published: dt.date | None = None
    points: list[Point] = field(default_factory=list)
    quiz: list[QuizQuestion] = field(default_factory=list)
    translations: dict[str, Translation] = field(default_factory=dict)
    """By language code (``zh``): the same points and quiz in that language."""
    flowchart: str = ""
    """A card's one line of flowchart text (between its points and its quiz); "" when none."""
    line: int = 0
    """Line in the source file where the paper starts; used for warnings, not stored."""


@dataclass
class Day:
    date: dt.date
    papers: list[Paper]
    source: str
    """Path of the file the day came from."""
    note: str = ""
    """The source's own note for the day (a cards page's "Today's Reading Tips"), Markdown; "" when none.
    A day built from several files holds each file's note, one paragraph each."""
    note_translations: dict[str, str] = field(default_factory=dict)
    """The note in other languages, by language code."""


DriftKind = Literal[
    "unread_block", "skipped_card", "points_not_five", "options_not_three", "mixed_scripts", "short_day",
    "unknown_column",
]
"""A sign that a source changed its layout: something a card or row should have and did not."""
DRIFT_KINDS: tuple[DriftKind, ...] = get_args(DriftKind)


@dataclass(frozen=True)
class ParseWarning:
    file: str
    line: int
    message: str
    kind: DriftKind | None = None
    """Set when the warning is a sign of format drift; counted per file in FileHealth."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


DigestFormat = Literal["table", "cards-text", "cards-html"]
"""The digest formats the parsers read; which one a file is in is judged from its content."""


@dataclass
class FileHealth:
    """What one digest file gave against what its layout promised: the drift counts of a file."""

    file: str
    format: DigestFormat
    line: int = 1
    """Where the day starts in the file (its heading): where a warning about the whole day points."""
    blocks: int = 0
    """Cards or table rows seen, read or not."""
    papers: int = 0
    size: int = 0
    """Characters in the file: with ``papers``, tells a short day from a day that lost papers."""
    drift: dict[str, int] = field(default_factory=dict)
    """DriftKind -> how many times it was seen; only kinds seen are present."""

    def count(self, warnings: Sequence[ParseWarning]) -> None:
        for warning in warnings:
            if warning.kind is not None:
                self.drift[warning.kind] = self.drift.get(warning.kind, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "format": self.format, "line": self.line, "blocks": self.blocks,
                "papers": self.papers, "size": self.size,
                "drift": {kind: self.drift.get(kind, 0) for kind in DRIFT_KINDS}}


@dataclass
class ParseResult:
    days: list[Day] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    health: FileHealth | None = None
    """Set by the parsers that count drift (the cards ones); None for the others."""
    unreadable: list[Day] = field(default_factory=list)
    """Days that listed papers none of which could be read: left out of ``days``, so that they are
    never stored as empty days."""


Cadence = Literal["daily", "weekly"]
"""How often a subscriber gets a digest edition: every day, or once a week on their weekday."""
CADENCES: tuple[Cadence, ...] = get_args(Cadence)
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""A weekly subscriber's day, in [schedule] timezone; index = ``date.weekday()``."""
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
EditionKind = Literal["daily", "weekly", "alert"]
DIGEST_KINDS: tuple[EditionKind, ...] = ("daily", "weekly")
"""The kinds that list papers by topic and cover consecutive days; an alert is about one paper."""


@dataclass(frozen=True)
class Edition:
    """The unit of dispatch: a daily or weekly digest, or an alert for one paper by a followed author.

    The key names it in the delivery log, Message-IDs and the send plan: ``daily/2026-12-01``,
    ``weekly/2026-11-24..2026-11-30`` (its period, so that readers with the same period share it),
    ``alert/2505.07062`` (the paper: one alert per paper per reader, ever)."""

    kind: EditionKind
    first_day: dt.date
    last_day: dt.date
    """The digest days it covers; for an alert, the day the paper was listed."""
    paper: str = ""
    """For an alert, the paper's arXiv id."""

    @property
    def key(self) -> str:
        if self.kind == "daily":
            return f"daily/{self.last_day.isoformat()}"
        if self.kind == "weekly":
            return f"weekly/{self.first_day.isoformat()}..{self.last_day.isoformat()}"
        return f"alert/{self.paper}"

    @classmethod
    def daily(cls, day: dt.date) -> Edition:
        return cls("daily", day, day)

    def as_dict(self) -> dict[str, str]:
        """The shape of ``"edition"`` in plan.json."""
        return {"key": self.key, "kind": self.kind, "first_day": self.first_day.isoformat(),
                "last_day": self.last_day.isoformat()}


SubscriberStatus = Literal["pending", "active", "unsubscribed", "bounced"]
"""pending: awaiting double opt-in; only active subscribers are mailed."""
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = get_args(SubscriberStatus)


@dataclass
class Subscriber:
    email: str
    name: str = ""
    categories: list[str] = field(default_factory=list)
    """Empty means every category."""
    keywords: list[str] = field(default_factory=list)
    """When non-empty, a paper must mention one of them (title or summary, case-insensitive)."""
    excluded_keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    """Followed authors: their papers are mailed whatever the categories and keywords say."""
    cadence: Cadence = "daily"
    weekday: Weekday = "mon"
    """The day of a weekly subscriber's edition (kept, unused, for a daily one)."""
    status: SubscriberStatus = "active"
    token: str = ""
    """Random, URL-safe; identifies the subscriber in unsubscribe and preference links."""
    feed_token: str = ""
    """Random, URL-safe, 256 bits: the secret in the private feed's URL. Apart from ``token`` so that
    rotating one leaves the other working; the store gives every subscriber one."""
    created_at: dt.datetime | None = None
    id: int | None = None


@dataclass(frozen=True)
class PlannedMessage:
    """One email that a send would deliver: who gets it, which edition and papers, under which Message-ID.

    The bytes are not held here: at scale they are produced one at a time from the shared rendition.
    """

    date: dt.date
    """The day the send runs for (every edition planned on it is due that day)."""
    subscriber: Subscriber
    papers: tuple[str, ...]
    """arXiv ids, in the order the email lists them."""
    rendition_key: str
    """Identifies the shared rendition (edition + selection) that this message personalises."""
    message_id: str
    """Deterministic per (edition, subscriber), so that a retry reuses it."""
    edition: Edition
    followed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Papers in it by authors the reader follows: (arXiv id, their names as the paper spells them)."""


@dataclass(frozen=True)
class SkippedRecipient:
    email: str
    reason: str


def summary_of(paper: Paper, *, points_apart: bool = False) -> str:
    """The Markdown that stands for the paper where a summary is shown or read (emails, archive, feeds,
    the classifier, keyword filters): the digest's own summary; for a cards paper, which has none, its
    points run together (``**Label:** text`` each, in page order), or its flowchart line when it has
    no points. ``points_apart``: the reader shows the points as a list of their own, so they are not
    run together here too."""
    if paper.summary:
        return paper.summary
    if paper.points:
        return "" if points_apart else " ".join(f"**{point.label}:** {point.text}" for point in paper.points)
    return paper.flowchart


def plural(count: int, noun: str) -> str:
    """``1 file``, ``3 files``: a count and its noun, in what the operator reads."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def paper_as_dict(paper: Paper) -> dict[str, object]:
    """The JSON shape of ``newsletter parse --json``: every field present, absent ones null or empty,
    except ``translations``, present only when there are any (most digests are in English only)."""
    data: dict[str, object] = {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "authors": list(paper.authors),
        "summary": paper.summary,
        "category": paper.category,
        "categories": list(paper.categories),
        "links": dict(paper.links),
        "published": paper.published.isoformat() if paper.published else None,
        "points": _points_as_dicts(paper.points),
        "quiz": _quiz_as_dicts(paper.quiz),
        "flowchart": paper.flowchart,
    }
    if paper.translations:
        data["translations"] = {
            lang: {"points": _points_as_dicts(t.points), "quiz": _quiz_as_dicts(t.quiz)}
            for lang, t in paper.translations.items()
        }
    return data


def _points_as_dicts(points: Sequence[Point]) -> list[dict[str, str]]:
    return [{"label": p.label, "text": p.text} for p in points]


def _quiz_as_dicts(quiz: Sequence[QuizQuestion]) -> list[dict[str, object]]:
    return [{"question": q.question, "options": list(q.options), "answer": q.answer} for q in quiz]


def day_as_dict(day: Day) -> dict[str, object]:
    return {
        "date": day.date.isoformat(), "source": day.source, "note": day.note,
        "note_translations": dict(day.note_translations), "papers": [paper_as_dict(p) for p in day.papers],
    }
