"""The "paper cards" page as HTML.

The page is reduced to its text in document order, one line per block element, and read by the
cards text parser, so the HTML structure may vary freely. Quiz answers come from ``data-answer``
attributes: an attribute belongs to the quiz question whose lines hold the element's first text (an
element without text counts at the last line before it ends).

A ``data-answer`` value is read as, in this order: the text of one of the question's options
(whitespace and case ignored); a letter ``A``, ``B``, … for the first, second, … option; an integer
index. Whether indices count from 0 or from 1 is decided once per page: from 0 when any answer on
the page is 0, from 1 when any answer equals its question's number of options (which only a 1-based
index can), and from 0 with a warning when nothing on the page tells.
"""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

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
SKIPPED_TAGS = frozenset({"script", "style", "template"})


class PageText(HTMLParser):
    """Collects the page's text lines and where each ``data-answer`` attribute falls among them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[Line] = []
        self.answers: dict[int, str] = {}
        self.chunks: list[str] = []
        self.chunk_line = 0
        self.skipping: list[str] = []
        # Open elements with a data-answer: (tag, value, placed) -- placed once their first text is seen.
        self.open_answers: list[list[object]] = []

    def flush(self) -> None:
        text = " ".join(" ".join(self.chunks).split())
        self.chunks = []
        if text:
            self.lines.append((self.chunk_line, text))

    def place(self, entry: list[object], index: int) -> None:
        if not entry[2]:
            entry[2] = True
            self.answers.setdefault(index, str(entry[1]))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self.skipping.append(tag)
            return
        if tag in BLOCK_TAGS:
            self.flush()
        for name, value in attrs:
            if name == "data-answer" and value is not None and value.strip():
                self.open_answers.append([tag, value.strip(), False])

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag in BLOCK_TAGS:
            self.flush()
        for position in range(len(self.open_answers) - 1, -1, -1):
            if self.open_answers[position][0] == tag:
                entry = self.open_answers.pop(position)
                self.place(entry, len(self.lines) - 1 + bool(self.chunks))
                break

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not data.strip():
            if self.chunks:
                self.chunks.append(data)
            return
        if not self.chunks:
            self.chunk_line = self.getpos()[0]
        self.chunks.append(data)
        for entry in self.open_answers:
            self.place(entry, len(self.lines))

    def close(self) -> None:
        super().close()
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


def resolve_answers(result: ParseResult, source: str) -> None:
    """Replace each raw ``data-answer`` value with the option text it designates."""
    questions = [(paper, q) for day in result.days for paper in day.papers for q in paper.quiz]
    indices = [
        (int(q.answer), len(q.options))
        for _, q in questions
        if q.answer is not None and option_index(q.answer, q.options) is None and q.answer.isdecimal()
    ]
    base = 0
    if indices and not any(value == 0 for value, _ in indices):
        if any(value == count for value, count in indices):
            base = 1
        else:
            result.warnings.append(
                ParseWarning(
                    source,
                    1,
                    "data-answer indices do not show whether they count from 0 or 1; read them as 0-based. "
                    "Use the option text as data-answer to make answers unambiguous",
                )
            )
    for paper in (p for day in result.days for p in day.papers):
        resolved: list[QuizQuestion] = []
        for question in paper.quiz:
            answer = None
            if question.answer is not None:
                position = option_index(question.answer, question.options)
                if position is None and question.answer.isdecimal():
                    position = int(question.answer) - base
                if position is not None and 0 <= position < len(question.options):
                    answer = question.options[position]
                else:
                    result.warnings.append(
                        ParseWarning(
                            source,
                            paper.line,
                            f"data-answer {question.answer!r} of quiz question {question.question!r} "
                            "names none of its options; answer left empty",
                        )
                    )
            resolved.append(dataclasses.replace(question, answer=answer))
        paper.quiz = resolved


def parse_cards_html(text: str, source: str) -> ParseResult:
    page = PageText()
    page.feed(text)
    page.close()
    result = parse_card_lines(page.lines, source, page.answers)
    resolve_answers(result, source)
    return result
