"""The "paper cards" page as HTML, read the way a browser reads it.

The page is parsed by lexbor (through selectolax), a spec-compliant HTML5 parser: a ``<`` not
followed by a tag name stays text, and an unclosed ``<svg>`` ends with its parent element, so no
paper that a browser shows is lost. The body is then reduced to its text in document order, one
line per block element, each line tagged with the ``data-lang`` of its first text, and read by the
cards text parser, so the HTML structure may vary freely. The walk is iterative and does constant
work per node, and nesting is capped as Blink caps it (see MAX_DEPTH), so a deeply nested page costs
no more than a flat one.

Quiz answers come from ``data-answer`` attributes: an attribute belongs to the quiz question whose
lines hold the element's first text (an element without text counts at the last line before it
ends).

A ``data-answer`` value is read as, in this order: the text of one of the question's options
(whitespace and case ignored); a letter ``A``, ``B``, … for the first, second, … option; an integer
index. Whether indices count from 0 or from 1 is decided once per page: from 0 when any answer on
the page is 0, from 1 when any answer equals its question's number of options (which only a 1-based
index can), and from 0 with a warning when nothing on the page tells.

The parsed tree has no source positions, so a line's number in the file is found by looking for
the start of its text in the source, moving forward only (see SourceLines).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from newsletter.models import ParseResult, ParseWarning, QuizQuestion
from newsletter.parsing.cards import Line, parse_card_lines

BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "body", "br", "button", "dd", "details", "dialog"),
        *("div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "li", "main", "nav", "ol", "option", "p", "pre", "section"),
        *("select", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
    }
)
SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript", "-comment"})
# The start of a text as it stands in the source: up to the first character that may be escaped there.
SOURCE_PROBE = re.compile(r"[^&<>\"'\xa0\r]{1,32}")
TAG_START = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
MAX_DEPTH = 512
"""Elements nest no deeper than this, as in Blink, which adds deeper ones beside the 512th: an HTML5
tree builder looks through every open element at each tag, so deeper nesting costs quadratic time."""
MAX_PROBE_MISSES = 64
"""After this many texts not found in the source, stop looking: each miss reads to the end of it."""


class SourceLines:
    """The line number in the source of each text node, in document order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.cursor = 0
        self.line = 1
        self.misses = 0

    def line_of(self, text: str) -> int:
        probe = SOURCE_PROBE.match(text.lstrip())
        if probe is not None and self.misses < MAX_PROBE_MISSES:
            found = self.source.find(probe.group(0), self.cursor)
            if found < 0:
                self.misses += 1
            else:
                self.line += self.source.count("\n", self.cursor, found)
                self.cursor = found
        return self.line


@dataclass
class AnswerMark:
    value: str
    placed: bool = False


@dataclass
class Frame:
    """An open element: whether it breaks lines, its language, and its data-answer if any."""

    block: bool
    lang: str
    answer: AnswerMark | None = None


@dataclass
class PageText:
    """Collects the page's text lines and where each ``data-answer`` attribute falls among them."""

    locate: SourceLines
    lines: list[Line] = field(default_factory=list)
    answers: dict[int, str] = field(default_factory=dict)
    chunks: list[str] = field(default_factory=list)
    chunk_line: int = 0
    chunk_lang: str = ""
    frames: list[Frame] = field(default_factory=lambda: [Frame(block=True, lang="")])
    waiting: list[AnswerMark] = field(default_factory=list)
    """Answers whose element has had no text yet: placed on the next line that gets text."""

    def flush(self) -> None:
        text = " ".join(" ".join(self.chunks).split())
        self.chunks = []
        if text:
            self.lines.append(Line(self.chunk_line, text, self.chunk_lang))

    def place(self, mark: AnswerMark, index: int) -> None:
        if not mark.placed:
            mark.placed = True
            self.answers.setdefault(index, mark.value)

    def enter(self, node: Any) -> bool:
        """Open an element; True when its children are to be read."""
        tag = node.tag
        if tag in SKIPPED_TAGS:
            self.frames.append(Frame(block=False, lang=self.frames[-1].lang))
            return False
        attributes = node.attributes
        frame = Frame(block=tag in BLOCK_TAGS, lang=(attributes.get("data-lang") or self.frames[-1].lang).strip())
        if frame.block:
            self.flush()
        value = attributes.get("data-answer")
        if value is not None and value.strip():
            frame.answer = AnswerMark(value.strip())
            self.waiting.append(frame.answer)
        self.frames.append(frame)
        return True

    def leave(self) -> None:
        frame = self.frames.pop()
        if frame.block:
            self.flush()
        if frame.answer is not None:
            self.place(frame.answer, len(self.lines) - 1 + bool(self.chunks))

    def text(self, data: str) -> None:
        if not data.strip():
            if self.chunks:
                self.chunks.append(data)
            return
        if not self.chunks:  # a line takes the language of its first text, as a copied page shows it
            self.chunk_line = self.locate.line_of(data)
            self.chunk_lang = self.frames[-1].lang
        self.chunks.append(data)
        for mark in self.waiting:
            self.place(mark, len(self.lines))
        self.waiting.clear()

    def read(self, root: Any) -> None:
        """Walk the tree under ``root`` in document order, without recursion."""
        node = root.child
        depth = 1
        while node is not None:
            if node.is_text_node:
                self.text(node.text_content or "")
                child = None
            else:
                child = node.child if self.enter(node) else None
            if child is not None:
                node, depth = child, depth + 1
                continue
            while True:
                if not node.is_text_node:
                    self.leave()
                following = node.next
                if following is not None:
                    node = following
                    break
                depth -= 1
                if depth == 0:
                    node = None
                    break
                node = node.parent
        self.flush()


def option_index(value: str, options: tuple[str, ...]) -> int | None:
    """The option ``value`` names by its text or letter; None when it is not such a name."""
    wanted = " ".join(value.split()).casefold()
    for position, option in enumerate(options):
        if " ".join(option.split()).casefold() == wanted:
            return position
    if len(value) == 1 and value.isascii() and value.isalpha():
        return ord(value.upper()) - ord("A")
    return None


def _all_questions(result: ParseResult) -> list[list[QuizQuestion]]:
    """Every quiz list of the page: each paper's own and its translations'."""
    return [
        quiz
        for day in result.days
        for paper in day.papers
        for quiz in (paper.quiz, *(t.quiz for t in paper.translations.values()))
    ]


def _index_base(questions: list[QuizQuestion], result: ParseResult, source: str) -> int:
    indices = [
        (int(q.answer), len(q.options))
        for q in questions
        if q.answer is not None and option_index(q.answer, q.options) is None and q.answer.isdecimal()
    ]
    if not indices or any(value == 0 for value, _ in indices):
        return 0
    if any(value == count for value, count in indices):
        return 1
    result.warnings.append(
        ParseWarning(
            source,
            1,
            "data-answer indices do not show whether they count from 0 or 1; read them as 0-based. "
            "Use the option text as data-answer to make answers unambiguous",
        )
    )
    return 0


def resolve_answers(result: ParseResult, source: str) -> None:
    """Replace each raw ``data-answer`` value with the option text it designates."""
    quizzes = _all_questions(result)
    base = _index_base([q for quiz in quizzes for q in quiz], result, source)
    line_of = {id(quiz): paper.line for day in result.days for paper in day.papers
               for quiz in (paper.quiz, *(t.quiz for t in paper.translations.values()))}
    for quiz in quizzes:
        for position, question in enumerate(quiz):
            if question.answer is None:
                continue
            chosen = option_index(question.answer, question.options)
            if chosen is None and question.answer.isdecimal():
                chosen = int(question.answer) - base
            answer = None
            if chosen is not None and 0 <= chosen < len(question.options):
                answer = question.options[chosen]
            else:
                result.warnings.append(
                    ParseWarning(
                        source,
                        line_of[id(quiz)],
                        f"data-answer {question.answer!r} of quiz question {question.question!r} "
                        "names none of its options; answer left empty",
                    )
                )
            quiz[position] = dataclasses.replace(question, answer=answer)


def _cuts(tags: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """(index among ``tags``, element to close before it) wherever nesting would pass MAX_DEPTH."""
    open_tags: list[str] = []
    counts: dict[str, int] = {}
    cuts: list[tuple[int, str]] = []
    for number, (slash, raw_name) in enumerate(tags):
        name = raw_name.lower()
        if slash:
            if counts.get(name):  # pop to the element it closes, as the parser will
                while True:
                    closed = open_tags.pop()
                    counts[closed] -= 1
                    if closed == name:
                        break
        elif name not in VOID_TAGS:
            if len(open_tags) >= MAX_DEPTH:
                closed = open_tags.pop()
                counts[closed] -= 1
                cuts.append((number, closed))
            open_tags.append(name)
            counts[name] = counts.get(name, 0) + 1
    return cuts


def flatten_deep_nesting(text: str) -> str:
    """``text`` with an end tag put in wherever elements would nest deeper than MAX_DEPTH.

    One pass over the tags, linear in the text; a page that nests less comes back unchanged.
    """
    cuts = _cuts(TAG_START.findall(text))
    if not cuts:
        return text
    starts = [tag.start() for tag in TAG_START.finditer(text)]
    pieces: list[str] = []
    previous = 0
    for number, name in cuts:
        pieces += [text[previous:starts[number]], f"</{name}>"]
        previous = starts[number]
    pieces.append(text[previous:])
    return "".join(pieces)


def page_lines(text: str) -> PageText:
    """The text lines of the page's body, and its data-answer marks."""
    # Imported here: with the logging it pulls in, a fifth of `newsletter parse` on table files.
    from selectolax.lexbor import LexborHTMLParser

    text = flatten_deep_nesting(text)
    page = PageText(SourceLines(text))
    tree = LexborHTMLParser(text)
    if tree.body is not None:
        page.read(tree.body)
    return page


def parse_cards_html(text: str, source: str) -> ParseResult:
    page = page_lines(text)
    result = parse_card_lines(page.lines, source, page.answers, digest_format="cards-html")
    resolve_answers(result, source)
    return result
