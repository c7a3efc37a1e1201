"""The "paper cards" format: a rendered daily page, here as plain text (its HTML twin reuses this).

Layout of a page: a ``YYYY-MM-DD Papers`` line (anything before it, such as a ``ZH`` language
toggle, is ignored), then per paper an ``N/M`` counter, ``Paper N``, the title, ``Published:`` and
``Link:`` lines, numbered points (``1. 📘 Topic and Domain: …``), the title again, one line of
flowchart text, and a quiz (``Q1``, the question, its option lines, ``Q2`` …).

Bilingual pages repeat the points and the quiz in Chinese. The English ones are kept: a point set is
a run of points whose numbering does not restart, and the first set that is not mostly Chinese wins;
quiz questions that are mostly Chinese are dropped when the page also has others.

Every paper needs a summary, and a card has no such field, so the summary is derived: the kept points
as one Markdown paragraph, ``**Label:** text`` each, in page order. A card without points falls back
to its flowchart line, and failing that to its title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from newsletter.errors import DigestError
from newsletter.models import Day, Paper, ParseResult, ParseWarning, Point, QuizQuestion, summary_from_points
from newsletter.parsing.common import add_unique, arxiv_links, bad_day_date, parse_iso_date

DATE_LINE = re.compile(r"(\d{4}-\d{2}-\d{2})\s+Papers")
PAPER_LINE = re.compile(r"Paper\s+\d+")
COUNTER_LINE = re.compile(r"\d+\s*/\s*\d+")
META_LINE = re.compile(r"(Published|Link|Authors?)\s*:\s*(.*)", re.IGNORECASE)
# The label starts after all the spaces: were it allowed to start with one, a long run of spaces would
# be split between `\s+` and the label in every possible way (quadratic time).
POINT_LINE = re.compile(r"(\d{1,2})\.\s+([^:：\s][^:：]{0,79}?)\s*[:：]\s*(.*)")
QUIZ_LINE = re.compile(r"Q\s*(\d+)")
QUESTION_NUMBER = re.compile(r"^\d+[.)]\s*")  # anchored: a search would retry every digit of a long run
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")

NOT_A_CARDS_PAGE = "expected a `YYYY-MM-DD Papers` line followed by `Paper N` cards"

Line = tuple[int, str]
"""A non-blank line of the page, stripped, with its 1-based line number in the source file."""


@dataclass
class QuizDraft:
    """A quiz question as read from the page; ``first``/``last`` index the page's line list."""

    question: str
    options: list[str] = field(default_factory=list)
    first: int = 0
    last: int = 0


def mostly_cjk(text: str) -> bool:
    if CJK.search(text) is None:
        return False
    letters = sum(1 for char in text if char.isalpha())
    return bool(letters) and len(CJK.findall(text)) * 3 >= letters


def point_label(raw: str) -> str:
    """The label without its leading emoji (and any variation selector or joiner that follows it)."""
    start = 0
    while start < len(raw) and not raw[start].isalnum():
        start += 1
    return raw[start:].strip()


def primary_points(points: list[tuple[int, Point]]) -> list[Point]:
    """The first point set that is not mostly Chinese (or the first set when all of them are)."""
    sets: list[list[Point]] = []
    previous = None
    for number, point in points:
        if previous is None or number <= previous:
            sets.append([])
        sets[-1].append(point)
        previous = number
    for point_set in sets:
        if not mostly_cjk(" ".join(p.label + " " + p.text for p in point_set)):
            return point_set
    return sets[0] if sets else []


def derived_summary(points: Sequence[Point], flowchart: str | None, title: str) -> str:
    if points:
        return summary_from_points(points)
    return flowchart or title


def read_quiz(lines: Sequence[Line], start: int, end: int) -> list[QuizDraft]:
    """Questions between ``start`` and ``end``: each a ``Qn`` line, the question, then its options."""
    drafts: list[QuizDraft] = []
    for index in range(start, end):
        text = lines[index][1]
        if QUIZ_LINE.fullmatch(text):
            drafts.append(QuizDraft(question="", first=index, last=index))
        elif drafts:
            draft = drafts[-1]
            if not draft.question:
                draft.question = QUESTION_NUMBER.sub("", text, count=1).strip() or text
            else:
                draft.options.append(text)
            draft.last = index
    return drafts


def parse_card(
    lines: Sequence[Line],
    start: int,
    end: int,
    source: str,
    warnings: list[ParseWarning],
    answers: Mapping[int, str],
) -> Paper | None:
    """One card: ``lines[start]`` is its ``Paper N`` line, ``end`` the index after its last line."""
    paper_line = lines[start][0]
    index = start + 1
    title = ""
    if index < end and not META_LINE.fullmatch(lines[index][1]):
        title = " ".join(lines[index][1].split())
        index += 1
    meta: dict[str, str] = {}
    meta_line: dict[str, int] = {}
    while index < end and (found := META_LINE.fullmatch(lines[index][1])):
        key = found.group(1).lower().rstrip("s")
        meta[key] = found.group(2).strip()
        meta_line[key] = lines[index][0]
        index += 1
    numbered: list[tuple[int, Point]] = []
    while index < end and (found := POINT_LINE.fullmatch(lines[index][1])):
        label = point_label(found.group(2))
        if not label:
            break
        numbered.append((int(found.group(1)), Point(label=label, text=found.group(3).strip())))
        index += 1
    quiz_start = index
    while quiz_start < end and not QUIZ_LINE.fullmatch(lines[quiz_start][1]):
        quiz_start += 1
    # Between the points and the quiz: the title repeated, then the flowchart text.
    extras = [text for _, text in lines[index:quiz_start] if " ".join(text.split()) != title]

    if not title:
        warnings.append(
            ParseWarning(source, paper_line, "card has no title line after `Paper N`; card skipped, add the title")
        )
        return None
    found_links = arxiv_links(meta.get("link", ""))
    if found_links is None:
        warnings.append(
            ParseWarning(
                source,
                meta_line.get("link", paper_line),
                "card has no arXiv link; card skipped. Add `Link: https://arxiv.org/pdf/ID` under the title",
            )
        )
        return None
    arxiv_id, links = found_links

    published = None
    if "published" in meta:
        published = parse_iso_date(meta["published"])
        if published is None:
            warnings.append(
                ParseWarning(
                    source,
                    meta_line["published"],
                    f"invalid Published date {meta['published']!r}; left empty, write YYYY-MM-DD",
                )
            )

    drafts = read_quiz(lines, quiz_start, end)
    if any(mostly_cjk(d.question) for d in drafts) and not all(mostly_cjk(d.question) for d in drafts):
        drafts = [d for d in drafts if not mostly_cjk(d.question)]
    quiz: list[QuizQuestion] = []
    for draft in drafts:
        if not draft.question or not draft.options:
            warnings.append(
                ParseWarning(
                    source,
                    lines[draft.first][0],
                    "quiz question without a question line or options; question skipped",
                )
            )
            continue
        answer = next((answers[i] for i in range(draft.first, draft.last + 1) if i in answers), None)
        quiz.append(QuizQuestion(question=draft.question, options=tuple(draft.options), answer=answer))

    points = primary_points(numbered)
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        summary=derived_summary(points, extras[0] if extras else None, title),
        links=links,
        published=published,
        points=points,
        quiz=quiz,
        line=paper_line,
    )


def parse_card_lines(lines: Sequence[Line], source: str, answers: Mapping[int, str] | None = None) -> ParseResult:
    """Parse a cards page given as its non-blank lines.

    ``answers`` maps an index into ``lines`` to the raw ``data-answer`` value found there (HTML only);
    a quiz question takes the first one that falls on its lines, unresolved.
    """
    date_index = next((i for i, (_, text) in enumerate(lines) if DATE_LINE.fullmatch(text)), None)
    if date_index is None:
        raise DigestError(source, "not a digest: no `YYYY-MM-DD Papers` line", hint=NOT_A_CARDS_PAGE)
    number, text = lines[date_index]
    date_token = text.split()[0]
    date = parse_iso_date(date_token)
    result = ParseResult()
    if date is None:
        result.warnings.append(bad_day_date(source, number, date_token))
        return result
    starts = [i for i in range(date_index + 1, len(lines)) if PAPER_LINE.fullmatch(lines[i][1])]
    day = Day(date=date, papers=[], source=source)
    result.days.append(day)
    seen: set[str] = set()
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(lines)
        # The "N/M" counter just above the next card belongs to that card, not to this one's last option.
        if end < len(lines) and end - 1 > start and COUNTER_LINE.fullmatch(lines[end - 1][1]):
            end -= 1
        paper = parse_card(lines, start, end, source, result.warnings, answers or {})
        if paper is not None:
            add_unique(day.papers, seen, paper, source, result.warnings)
    return result


def parse_cards_text(text: str, source: str) -> ParseResult:
    lines = [(number, line.strip()) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    return parse_card_lines(lines, source)
