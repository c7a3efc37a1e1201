"""The "paper cards" format: a rendered daily page, here as plain text (its HTML twin reuses this).

Layout of a page: a ``YYYY-MM-DD Papers`` line (anything before it, such as a ``ZH`` language
toggle, is ignored), then per paper an ``N/M`` counter, ``Paper N``, the title, ``Published:``,
``Link:`` and (on some pages) ``Authors:`` lines, numbered points (``1. 📘 Topic and Domain: …``), the
title again, one line of flowchart text, and a quiz (``Q1``, the question, its option lines, ``Q2``
…). A "Today's Reading Tips" section, where there is one, becomes the day's note.

Bilingual pages repeat the points, each quiz question and the tips in Chinese. The English ones are
the paper's; the Chinese ones are kept apart as its ``zh`` translation. A line's language is its
``data-lang`` in HTML; in text it is told by its script: a point set is a run of points whose
numbering does not restart, and inside one ``Qn`` block a numbered line in the other script starts
that question's translation.

Drift (a layout that changed under the parser) is counted and warned about with the line: a card
with points but not five, a question without three options or with options in two scripts, a card
or a line the parser could not place.

A card has no summary, so a cards paper's ``summary`` stays empty; its flowchart line is kept apart.
Where a summary is shown or read, one is derived from the points (``models.summary_of``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from newsletter.errors import DigestError
from newsletter.models import (
    Day,
    DigestFormat,
    DriftKind,
    FileHealth,
    Paper,
    ParseResult,
    ParseWarning,
    Point,
    QuizQuestion,
    Translation,
    plural,
)
from newsletter.parsing.common import add_unique, arxiv_links, bad_day_date, parse_iso_date, unread_day_warning

DATE_LINE = re.compile(r"(\d{4}-\d{2}-\d{2})\s+Papers")
PAPER_LINE = re.compile(r"Paper\s+\d+")
COUNTER_LINE = re.compile(r"\d+\s*/\s*\d+")
META_LINE = re.compile(r"(Published|Link|Authors?)\s*:\s*(.*)", re.IGNORECASE)
# The label starts after all the spaces: were it allowed to start with one, a long run of spaces would
# be split between `\s+` and the label in every possible way (quadratic time).
POINT_LINE = re.compile(r"(\d{1,2})\.\s+([^:：\s][^:：]{0,79}?)\s*[:：]\s*(.*)")
QUIZ_LINE = re.compile(r"Q\s*(\d+)")
QUESTION_NUMBER = re.compile(r"^\d+[.)]\s*")  # anchored: a search would retry every digit of a long run
QUESTION_START = re.compile(r"\d+[.)]\s")  # not "3.5 GB", an option
TIPS_HEADING = re.compile(r"Today['’]s\s+Reading\s+Tips\b[\s:：-]*", re.IGNORECASE)
AUTHOR_SEPARATOR = re.compile(r"\s*[,;，；]\s*|\s+and\s+")
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")
LATIN = re.compile(r"[A-Za-z]")

PRIMARY = "en"
TRANSLATED = "zh"
POINTS_PER_CARD = 5
OPTIONS_PER_QUESTION = 3
WARNINGS_PER_KIND = 50
"""A page that drifted everywhere gets this many warnings of a kind, then one that counts the rest."""
NOT_A_CARDS_PAGE = "expected a `YYYY-MM-DD Papers` line followed by `Paper N` cards"


class Line(NamedTuple):
    """A non-blank line of the page, stripped, with its 1-based line number in the source file."""

    number: int
    text: str
    lang: str = ""
    """The ``data-lang`` of the HTML block the line is in; "" in the text form."""


@dataclass
class QuizPart:
    """One language's question and options inside a ``Qn`` block; ``first``/``last`` index the lines."""

    lang: str
    question: str = ""
    options: list[str] = field(default_factory=list)
    first: int = 0
    last: int = 0
    question_at: int = 0


@dataclass
class CardReader:
    """Reads the cards of one page, collecting warnings (and drift) as it goes."""

    lines: Sequence[Line]
    source: str
    answers: Mapping[int, str]
    warnings: list[ParseWarning] = field(default_factory=list)
    drift: dict[str, int] = field(default_factory=dict)
    """Every drift seen, by kind, including the warnings left out past WARNINGS_PER_KIND."""

    def warn(self, index: int, message: str, kind: DriftKind | None = None) -> None:
        """A warning at ``lines[index]``; of one drift kind, only the first WARNINGS_PER_KIND are kept."""
        if kind is not None:
            self.drift[kind] = self.drift.get(kind, 0) + 1
            if self.drift[kind] > WARNINGS_PER_KIND:
                return
        self.warnings.append(ParseWarning(self.source, self.lines[index].number, message, kind))

    def left_out(self) -> list[ParseWarning]:
        """One warning per drift kind that had more than WARNINGS_PER_KIND, saying how many were left out."""
        return [
            ParseWarning(self.source, self.lines[0].number,
                         f"{count - WARNINGS_PER_KIND} more {kind.replace('_', ' ')} warnings like the ones above "
                         "were left out; the page's layout has changed")
            for kind, count in self.drift.items()
            if count > WARNINGS_PER_KIND
        ]


def mostly_cjk(text: str) -> bool:
    if CJK.search(text) is None:
        return False
    letters = sum(1 for char in text if char.isalpha())
    return bool(letters) and len(CJK.findall(text)) * 3 >= letters


def script_lang(text: str) -> str:
    """The language a text's script tells: Chinese when mostly CJK, else English."""
    return TRANSLATED if mostly_cjk(text) else PRIMARY


def lang_of(line: Line) -> str:
    return line.lang or script_lang(line.text)


def script_of(text: str) -> str:
    """``cjk``, ``latin``, or "" for text in neither (numbers, symbols)."""
    if mostly_cjk(text):
        return "cjk"
    return "latin" if LATIN.search(text) else ""


def point_label(raw: str) -> str:
    """The label without its leading emoji (and any variation selector or joiner that follows it)."""
    start = 0
    while start < len(raw) and not raw[start].isalnum():
        start += 1
    return raw[start:].strip()


def split_authors(value: str) -> list[str]:
    return [name for name in (n.strip() for n in AUTHOR_SEPARATOR.split(value)) if name]


def point_sets(reader: CardReader, start: int, end: int) -> tuple[list[tuple[str, int, list[Point]]], int]:
    """The runs of numbered points from ``start``: (language, first index, points) each, and the index
    after the last point line. A run ends where the numbering restarts or the language changes."""
    sets: list[tuple[str, int, list[Point]]] = []
    previous = 0
    index = start
    while index < end and (found := POINT_LINE.fullmatch(reader.lines[index].text)):
        label = point_label(found.group(2))
        if not label:
            break
        number = int(found.group(1))
        lang = reader.lines[index].lang
        if not sets or number <= previous or lang != sets[-1][0]:
            sets.append((lang, index, []))
        sets[-1][2].append(Point(label=label, text=found.group(3).strip()))
        previous = number
        index += 1
    # A text-form run (no data-lang) takes the language of most of its text.
    return [
        (lang or script_lang(" ".join(p.label + " " + p.text for p in points)), first, points)
        for lang, first, points in sets
    ], index


def choose_points(reader: CardReader, sets: list[tuple[str, int, list[Point]]]) -> tuple[list[Point], list[Point]]:
    """(the paper's points, their translation): the first English set and the first Chinese one."""
    primary = next((s for s in sets if s[0] != TRANSLATED), None)
    translated = next((s for s in sets if s[0] == TRANSLATED and s is not primary), None)
    if primary is None:  # a page in Chinese only: its points are the paper's own
        primary, translated = translated, None
    for extra in sets:
        if extra is not primary and extra is not translated:
            reader.warn(extra[1], f"a further set of {plural(len(extra[2]), 'point')} in {extra[0]!r}; left out",
                        "unread_block")
    if primary is not None and len(primary[2]) != POINTS_PER_CARD:
        reader.warn(primary[1], f"card has {plural(len(primary[2]), 'point')} where {POINTS_PER_CARD} are expected",
                    "points_not_five")
    return (primary[2] if primary else []), (translated[2] if translated else [])


def quiz_parts(reader: CardReader, start: int, end: int) -> list[list[QuizPart]]:
    """The ``Qn`` blocks between ``start`` and ``end``, each split into its language parts."""
    blocks: list[list[QuizPart]] = []
    for index in range(start, end):
        line = reader.lines[index]
        if QUIZ_LINE.fullmatch(line.text):
            blocks.append([QuizPart(lang="", first=index, last=index)])
            continue
        if not blocks:
            continue
        part = blocks[-1][-1]
        lang = lang_of(line)
        if part.question and lang != part.lang and (line.lang or QUESTION_START.match(line.text)):
            part = QuizPart(lang=lang, first=index, last=index)
            blocks[-1].append(part)
        if not part.question:
            part.question = QUESTION_NUMBER.sub("", line.text, count=1).strip() or line.text
            part.lang, part.question_at = lang, index
        else:
            part.options.append(line.text)
        part.last = index
    return blocks


def question_of(reader: CardReader, part: QuizPart) -> QuizQuestion | None:
    """The part as a question, warning about drift; None when it has no question or no options."""
    if not part.question or not part.options:
        reader.warn(part.first, "quiz question without a question line or options; question skipped", "unread_block")
        return None
    where = "" if part.lang == PRIMARY else f" ({part.lang})"
    if len(part.options) != OPTIONS_PER_QUESTION:
        reader.warn(part.question_at, f"quiz question{where} {part.question!r} has "
                    f"{plural(len(part.options), 'option')} where {OPTIONS_PER_QUESTION} are expected",
                    "options_not_three")
    scripts = {script_of(option) for option in part.options} - {""}
    if len(scripts) > 1:
        reader.warn(part.question_at, f"quiz question{where} {part.question!r} has options in two scripts "
                    "(a translation mixed in?)", "mixed_scripts")
    answer = next((reader.answers[i] for i in range(part.first, part.last + 1) if i in reader.answers), None)
    return QuizQuestion(question=part.question, options=tuple(part.options), answer=answer)


def read_quiz(reader: CardReader, start: int, end: int) -> tuple[list[QuizQuestion], list[QuizQuestion]]:
    """(the paper's quiz, its translation). A block that is only Chinese translates the English
    question at its place among such blocks (older pages put them after the English ones)."""
    kept: list[tuple[QuizQuestion, QuizQuestion | None]] = []
    orphans: list[QuizQuestion] = []
    for parts in quiz_parts(reader, start, end):
        primary = next((p for p in parts if p.lang != TRANSLATED), None)
        translated = next((p for p in parts if p.lang == TRANSLATED), None)
        question = question_of(reader, primary) if primary is not None else None
        twin = question_of(reader, translated) if translated is not None else None
        if question is not None:
            kept.append((question, twin))
        elif twin is not None and primary is None:
            orphans.append(twin)
    if not kept:
        return orphans, []
    if orphans and len(orphans) == len(kept) and all(t is None for _, t in kept):
        kept = [(q, t) for (q, _), t in zip(kept, orphans, strict=True)]
    elif orphans:
        reader.warn(start, f"{plural(len(orphans), 'Chinese quiz question')} without an English one; left out",
                    "unread_block")
    quiz = [q for q, _ in kept]
    translated_quiz = [t for _, t in kept if t is not None]
    if translated_quiz and len(translated_quiz) != len(quiz):
        reader.warn(start, "only some quiz questions have a Chinese twin; the Chinese quiz is left out", "unread_block")
        translated_quiz = []
    return quiz, translated_quiz


def card_meta(reader: CardReader, start: int, end: int) -> tuple[str, dict[str, tuple[str, int]], int]:
    """(title, meta key -> (value, line index), index after them) of the card at ``start``."""
    index = start + 1
    title = ""
    if index < end and not META_LINE.fullmatch(reader.lines[index].text):
        title = " ".join(reader.lines[index].text.split())
        index += 1
    meta: dict[str, tuple[str, int]] = {}
    while index < end and (found := META_LINE.fullmatch(reader.lines[index].text)):
        meta[found.group(1).lower().rstrip("s")] = (found.group(2).strip(), index)
        index += 1
    return title, meta, index


def published_date(reader: CardReader, meta: dict[str, tuple[str, int]]) -> dt.date | None:
    if "published" not in meta:
        return None
    value, index = meta["published"]
    published = parse_iso_date(value)
    if published is None:
        reader.warn(index, f"invalid Published date {value!r}; left empty, write YYYY-MM-DD")
    return published


def parse_card(reader: CardReader, start: int, end: int) -> Paper | None:
    """One card: ``lines[start]`` is its ``Paper N`` line, ``end`` the index after its last line."""
    lines = reader.lines
    title, meta, index = card_meta(reader, start, end)
    if not title:
        reader.warn(start, "card has no title line after `Paper N`; card skipped, add the title", "skipped_card")
        return None
    found_links = arxiv_links(meta.get("link", ("", 0))[0])
    if found_links is None:
        reader.warn(meta["link"][1] if "link" in meta else start,
                    "card has no arXiv link; card skipped. Add `Link: https://arxiv.org/pdf/ID` under the title",
                    "skipped_card")
        return None
    arxiv_id, links = found_links
    published = published_date(reader, meta)
    sets, index = point_sets(reader, index, end)
    points, translated_points = choose_points(reader, sets)
    quiz_start = index
    while quiz_start < end and not QUIZ_LINE.fullmatch(lines[quiz_start].text):
        quiz_start += 1
    # Between the points and the quiz: the title repeated, then the flowchart text.
    extras = [i for i in range(index, quiz_start) if " ".join(lines[i].text.split()) != title]
    for unread in extras[1:]:
        reader.warn(unread, f"line {lines[unread].text[:60]!r} is not part of a card's layout; left out",
                    "unread_block")
    quiz, translated_quiz = read_quiz(reader, quiz_start, end)
    translations = {TRANSLATED: Translation(translated_points, translated_quiz)}
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        authors=split_authors(meta["author"][0]) if "author" in meta else [],
        links=links,
        published=published,
        points=points,
        quiz=quiz,
        translations=translations if translated_points or translated_quiz else {},
        flowchart=lines[extras[0]].text if extras else "",
        line=lines[start].number,
    )


def read_note(lines: Sequence[Line], start: int, end: int) -> tuple[str, dict[str, str]]:
    """The "Today's Reading Tips" section from its heading at ``start``: (English note, translations)."""
    parts: dict[str, list[str]] = {}
    rest = TIPS_HEADING.sub("", lines[start].text, count=1).strip()
    if rest and not (mostly_cjk(rest) and len(rest) <= 10):  # a short Chinese rest is the heading's own translation
        parts.setdefault(TRANSLATED if mostly_cjk(rest) else PRIMARY, []).append(rest)
    for line in lines[start + 1:end]:
        parts.setdefault(lang_of(line), []).append(line.text)
    note = "\n\n".join(parts.pop(PRIMARY, []))
    return note, {lang: "\n\n".join(texts) for lang, texts in parts.items()}


def page_date(lines: Sequence[Line], source: str) -> tuple[int, dt.date | None]:
    """The index of the page's `YYYY-MM-DD Papers` line, and its date (None when it is no real date)."""
    date_index = next((i for i, line in enumerate(lines) if DATE_LINE.fullmatch(line.text)), None)
    if date_index is None:
        raise DigestError(source, "not a digest: no `YYYY-MM-DD Papers` line", hint=NOT_A_CARDS_PAGE)
    return date_index, parse_iso_date(lines[date_index].text.split()[0])


def parse_card_lines(
    lines: Sequence[Line],
    source: str,
    answers: Mapping[int, str] | None = None,
    digest_format: DigestFormat = "cards-text",
) -> ParseResult:
    """Parse a cards page given as its non-blank lines.

    ``answers`` maps an index into ``lines`` to the raw ``data-answer`` value found there (HTML only);
    a quiz question takes the first one that falls on its lines, unresolved.
    """
    date_index, date = page_date(lines, source)
    if date is None:
        token = lines[date_index].text.split()[0]
        return ParseResult(warnings=[bad_day_date(source, lines[date_index].number, token)])
    reader = CardReader(lines, source, answers or {})
    starts = [i for i in range(date_index + 1, len(lines)) if PAPER_LINE.fullmatch(lines[i].text)]
    tips = next((i for i in range(date_index + 1, len(lines)) if TIPS_HEADING.match(lines[i].text)), None)
    boundaries = sorted({*starts, len(lines), *([tips] if tips is not None else [])})
    first_card = starts[0] if starts else len(lines)
    for index in range(date_index + 1, min(first_card, tips if tips is not None else len(lines))):
        if not COUNTER_LINE.fullmatch(lines[index].text):
            reader.warn(index, f"line {lines[index].text[:60]!r} is not part of a card; left out", "unread_block")
    day = Day(date=date, papers=[], source=source)
    result = ParseResult(days=[day])
    seen: set[str] = set()
    for start in starts:
        end = boundaries[bisect.bisect_right(boundaries, start)]
        # The "N/M" counter just above the next card belongs to that card, not to this one's last option.
        if end < len(lines) and end - 1 > start and COUNTER_LINE.fullmatch(lines[end - 1].text):
            end -= 1
        paper = parse_card(reader, start, end)
        if paper is not None:
            add_unique(day.papers, seen, paper, source, reader.warnings)
    if tips is not None:
        day.note, day.note_translations = read_note(lines, tips, next((s for s in starts if s > tips), len(lines)))
    result.warnings = reader.warnings + reader.left_out()
    if starts and not day.papers:
        result.warnings.append(unread_day_warning(day, len(starts), lines[date_index].number))
        result.days, result.unreadable = [], [day]
    result.health = FileHealth(
        source, digest_format, line=lines[date_index].number, blocks=len(starts), papers=len(day.papers),
        drift=reader.drift,
    )
    return result


def parse_cards_text(text: str, source: str) -> ParseResult:
    lines = [Line(number, line.strip()) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    return parse_card_lines(lines, source)
