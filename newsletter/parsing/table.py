"""The Markdown table format: ``## Papers for YYYY-MM-DD`` sections, each followed by a table.

Columns are found by their header names (Category, Title, Authors, Summary, Link), not by position;
a header name the parser does not know is layout drift, warned about and counted, and its cells are
ignored. A day whose rows were all unreadable is left out (see ParseResult.unreadable).
A summary may hold unescaped ``|`` (``π(y|x)``): the columns before Summary are split off from the
left and those after it (Link) from the right, so extra pipes stay in the summary. A row may wrap
onto following lines that start with whitespace; they are joined to it with a space.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from newsletter.models import Day, Paper, ParseResult, ParseWarning
from newsletter.parsing.common import (
    add_unique,
    bad_day_date,
    find_arxiv_id,
    huggingface_link,
    parse_iso_date,
    unread_day_warning,
)

HEADING = re.compile(r"#{1,6}[ \t]*Papers[ \t]+for\b[ \t]*(\S*)", re.IGNORECASE)
OTHER_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
# A link's text and target hold no brackets, so an attempt that fails never reads past the next `[`:
# linear time even in a cell of `[`, where `[^\]]*` would read to the end from every one of them.
PAPER_LINK = re.compile(r"\[[^\[\]]*\]\(\s*(?:https?://)?(?:www\.)?(?:arxiv\.org|huggingface\.co)/[^()\[\]]*\)")
MARKDOWN_LINK = re.compile(r"\[([^\[\]]*)\]\([^()\[\]]*\)")
JOINER_CHARS = "-–(:,"
# Stands in for an escaped ``\|`` while a row is split, so that it never counts as a cell border.
ESCAPED_PIPE = "\x00"
COLUMN_ALIASES = {
    "title": "title",
    "paper": "title",
    "authors": "authors",
    "author": "authors",
    "summary": "summary",
    "abstract": "summary",
    "category": "category",
    "link": "link",
    "links": "link",
    "author(s)": "authors",
}
KNOWN_COLUMNS = "Title, Authors, Summary, Category, Link"
# Markup a header cell may carry around its name (`**Authors**`, `Authors:`), dropped before the lookup.
HEADER_MARKUP = "*_`: \t"
SEPARATOR_STARTS = frozenset({"|--", "|-:", "|:-", "| -", "| :"})
SEPARATOR_CHARS = " \t|-:"
EXPECTED_HEADER = "`| Title | Authors | Summary |`"


@dataclass(frozen=True)
class Layout:
    """Where each known column sits in a table; the Summary column is the one that may hold pipes."""

    width: int
    title: int
    summary: int
    authors: int | None
    category: int | None
    link: int | None


def column_of(header_cell: str) -> str:
    """The known column a header cell names ("" for none), whatever its case, spacing or markup."""
    name = " ".join(header_cell.strip(HEADER_MARKUP).lower().split())
    return COLUMN_ALIASES.get(name, "")


def read_header(line: str) -> Layout | str:
    """The table's Layout, or what is wrong with the header line."""
    names = [column_of(cell) for cell in split_outer(line).split("|")]
    if "title" not in names or "summary" not in names:
        return f"table header has no Title or no Summary column; expected {EXPECTED_HEADER}"
    return Layout(
        width=len(names),
        title=names.index("title"),
        summary=names.index("summary"),
        authors=names.index("authors") if "authors" in names else None,
        category=names.index("category") if "category" in names else None,
        link=names.index("link") if "link" in names else None,
    )


def split_outer(row: str) -> str:
    """The row without its outer pipes (the trailing one is optional in Markdown)."""
    body = row.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return body


def strip_dangling_joiners(text: str) -> str:
    """``text`` without the "or", dashes, brackets and spaces a removed link leaves at its end.

    Scanned back from the end: a regex anchored at ``$`` is retried from every character of a long
    run of spaces, which takes time quadratic in the run.
    """
    end = len(text)
    while True:
        before = end
        while end and (text[end - 1].isspace() or text[end - 1] in JOINER_CHARS):
            end -= 1
        if text.endswith("or", 0, end) and (end == 2 or not is_word_char(text[end - 3])):
            end -= 2
        if end == before:
            return text[:end]


def is_word_char(char: str) -> bool:
    """What ``\\w`` matches in a str regex."""
    return char.isalnum() or char == "_"


def clean_title(cell: str) -> str:
    """The plain title: no read-more phrase, link syntax reduced to its text, whitespace collapsed."""
    # str.find and slicing rather than a regex search: this runs for every row of every digest.
    marker = cell.find("ead more")
    if marker < 0 and "](" in cell:
        marker = cell.lower().find("ead more")
    if marker > 0 and cell.find("](", marker) >= 0:
        before = cell[: marker - 1].rstrip()
        dash = before.endswith("-") and (len(before) == 1 or before[-2].isspace())
        if dash or before.endswith("("):
            cell = before[:-1]
    if "](" in cell:
        # The paper's own links are not part of its title; any other link keeps its text.
        without_own = PAPER_LINK.sub("", cell)
        if without_own != cell:
            cell = strip_dangling_joiners(without_own)
        cell = MARKDOWN_LINK.sub(r"\1", cell)
    return " ".join(cell.split())


def split_cells(row: str, layout: Layout) -> list[str] | None:
    """The row's cells, or None when it has fewer than the header. Extra pipes go to the summary.

    ``row`` starts with its leading ``|``; the trailing one is optional, as in Markdown.
    """
    leading = layout.summary
    trailing = layout.width - 1 - leading
    head = row.split("|", leading + 1)
    if len(head) <= leading + 1:
        return None
    rest = head[leading + 1]
    if rest[-1:].isspace():
        rest = rest.rstrip()
    # An escaped ``\|`` was replaced by ESCAPED_PIPE before, so a final ``|`` closes the row.
    closed = rest.endswith("|")
    tail = rest.rsplit("|", trailing + closed)
    if len(tail) <= trailing + closed:
        return None
    if closed:
        tail.pop()
    return head[1:-1] + tail


def unknown_columns(line: str, source: str, number: int) -> list[ParseWarning]:
    """A drift warning for each column of the header ``line`` whose name is not a known one.

    Such a column is not read by position, even where the usual Title | Authors | Summary shape
    suggests what it holds: a guess would put whatever a new column holds (affiliations, votes) where
    authors are matched against subscribers' filters. Missing authors, warned about, beat wrong ones.
    """
    unknown = [cell.strip() for cell in split_outer(line).split("|") if not column_of(cell)]
    return [
        ParseWarning(
            source, number,
            (f"header {name!r} is not" if name else "a column with an empty header is not")
            + f" a known column ({KNOWN_COLUMNS}); its cells are ignored. If it holds one of those, name it "
            "so in the file, else report the new layout to the newsletter maintainers",
            "unknown_column",
        )
        for name in unknown
    ]


def parse_row(row: str, line: int, layout: Layout, source: str) -> Paper | ParseWarning:
    cells = row_cells(row, line, layout, source)
    if isinstance(cells, ParseWarning):
        return cells
    title_cell = cells[layout.title]
    link_cell = cells[layout.link] if layout.link is not None else ""
    arxiv_id = find_arxiv_id(title_cell) or (find_arxiv_id(link_cell) if link_cell else None)
    if arxiv_id is None:
        where = "title or Link cell" if link_cell else "title cell"
        return ParseWarning(
            source,
            line,
            f"no arXiv link in the {where}; row skipped. End the title with "
            "`(Read more on [arXiv](https://arxiv.org/abs/ID))` so the paper can be identified",
        )
    title = clean_title(title_cell)
    if not title:
        return ParseWarning(source, line, f"empty title for arXiv {arxiv_id}; row skipped, fill in the Title cell")
    links = paper_links(arxiv_id, title_cell, link_cell)
    authors = authors_of(cells, layout)
    category = cells[layout.category].strip() if layout.category is not None else ""
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        authors=authors,
        summary=cells[layout.summary].strip(),
        category=category or None,
        links=links,
        line=line,
    )


def row_cells(row: str, line: int, layout: Layout, source: str) -> list[str] | ParseWarning:
    """The row's cells, escaped ``\\|`` read as ``|``, or a warning when it has fewer than the header."""
    # A one-character test first: ``in`` with a longer needle scans a long row several times slower.
    escaped = "\\" in row and "\\|" in row
    if escaped:
        row = row.replace("\\|", ESCAPED_PIPE)
    cells = split_cells(row, layout)
    if cells is None:
        return ParseWarning(
            source,
            line,
            f"row has {split_outer(row).count('|') + 1} cell(s) but the table header has {layout.width}; "
            "check the row for a missing `|` or a line break",
        )
    if escaped:
        cells = [cell.replace(ESCAPED_PIPE, "|") for cell in cells]
    return cells


def paper_links(arxiv_id: str, title_cell: str, link_cell: str) -> dict[str, str]:
    """The paper's arXiv and PDF links, and its Hugging Face page when the title or Link cell gives one."""
    links = {"arxiv": "https://arxiv.org/abs/" + arxiv_id, "pdf": "https://arxiv.org/pdf/" + arxiv_id}
    huggingface = huggingface_link(title_cell) or (huggingface_link(link_cell) if link_cell else None)
    if huggingface is not None:
        links["huggingface"] = huggingface
    return links


def authors_of(cells: list[str], layout: Layout) -> list[str]:
    """The Authors cell's names (none without such a column), empty ones left out."""
    if layout.authors is None:
        return []
    authors = [name.strip() for name in cells[layout.authors].split(",")]
    if "" in authors:
        authors = [name for name in authors if name]
    return authors


def parse_table(text: str, source: str) -> ParseResult:
    """The days of a table-format digest, and warnings for what of it could not be read."""
    reader = TableReader(source)
    for number, line in enumerate(text.split("\n"), 1):
        reader.read_line(number, line)
    reader.close_section()
    leave_out_unread_days(reader.result, reader.rows_of, reader.day_lines)
    return reader.result


class TableReader:
    """One pass over a file's lines: what was read so far, and what each kind of line does to it.

    The kinds are a table line (header, separator or row), a heading, a continuation of the row above
    (starting with whitespace), a blank line and prose. A row is parsed once it is complete, at the
    next line that is not its continuation.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.result = ParseResult()
        self.warnings = self.result.warnings
        self.days: dict[dt.date, tuple[Day, set[str]]] = {}
        """Each day with a readable table, and the arXiv ids its papers hold (a day's sections add up)."""
        self.rows_of: dict[dt.date, int] = {}
        """How many rows each day's tables had, read or not."""
        self.day_lines: dict[dt.date, int] = {}
        """The line of the heading under which each day's table was first read."""
        # The section under the last heading.
        self.day: Day | None = None
        self.seen: set[str] = set()
        self.in_section = False
        self.heading_line = 0
        self.layout: Layout | None = None
        self.header_failed = False
        # The row being read, which may wrap onto the lines after it.
        self.row_start = 0
        self.row_parts: list[str] = []

    def read_line(self, number: int, line: str) -> None:
        if not line:
            if self.row_parts:
                self.flush_row()
            return
        first = line[0]
        if first == "|":
            self.table_line(number, line)
            return
        heading = HEADING.match(line) if first == "#" else None
        if heading is not None or (first == "#" and OTHER_HEADING.match(line)):
            self.start_section(number, heading)
        elif first in " \t":
            self.continue_row(line)
        else:
            # Prose between tables is allowed; only a lost paper link is worth telling the operator about.
            self.flush_row()
            if self.in_section and "arxiv.org" in line:
                self.warnings.append(ParseWarning(
                    self.source, number, "a line outside any table row links arXiv; ignored. Start rows with `|`"
                ))

    def table_line(self, number: int, line: str) -> None:
        if self.row_parts:
            self.flush_row()
        if self.layout is not None:  # the common case: a row of a table being read
            if line[:3] not in SEPARATOR_STARTS or line.strip(SEPARATOR_CHARS):
                self.row_start = number
                self.row_parts = [line.rstrip()]
        elif self.in_section and not self.header_failed and self.day is not None:
            self.read_table_header(number, line, self.day)

    def read_table_header(self, number: int, line: str, day: Day) -> None:
        header = read_header(line)
        self.warnings.extend(unknown_columns(line, self.source, number))
        if isinstance(header, str):
            self.warnings.append(ParseWarning(self.source, number, f"{header}; this day's rows are skipped"))
            self.header_failed = True
            return
        self.layout = header
        if day.date not in self.days:
            self.days[day.date] = (day, self.seen)
            self.result.days.append(day)
            self.day_lines[day.date] = self.heading_line

    def start_section(self, number: int, heading: re.Match[str] | None) -> None:
        """Close the section before; under a ``Papers for`` heading (else None), start reading its day."""
        self.close_section()
        self.in_section = heading is not None
        self.heading_line = number
        self.layout = None
        self.header_failed = False
        self.day = None
        if heading is None:
            return
        token = heading.group(1).rstrip("#")
        date = parse_iso_date(token)
        if date is None:
            self.warnings.append(bad_day_date(self.source, number, token))
            self.header_failed = True
            return
        if date in self.days:
            self.day, self.seen = self.days[date]
        else:
            self.day, self.seen = Day(date=date, papers=[], source=self.source), set()

    def continue_row(self, line: str) -> None:
        """A line that starts with whitespace: blank, it ends the row; else it continues it, if any."""
        stripped = line.strip()
        if not stripped:
            self.flush_row()
        elif self.row_parts:
            self.row_parts.append(stripped)

    def flush_row(self) -> None:
        """Parse the row read so far, if any, into the day's papers or a warning."""
        if not self.row_parts or self.day is None or self.layout is None:
            self.row_parts = []
            return
        day = self.day
        row = self.row_parts[0] if len(self.row_parts) == 1 else " ".join(self.row_parts)
        self.rows_of[day.date] = self.rows_of.get(day.date, 0) + 1
        parsed = parse_row(row, self.row_start, self.layout, self.source)
        self.row_parts = []
        if isinstance(parsed, ParseWarning):
            self.warnings.append(parsed)
            return
        if not parsed.summary:
            self.warnings.append(ParseWarning(
                self.source, self.row_start, f"empty summary for arXiv {parsed.arxiv_id}; fill in the Summary cell"
            ))
        add_unique(day.papers, self.seen, parsed, self.source, self.warnings)

    def close_section(self) -> None:
        self.flush_row()
        if self.in_section and self.layout is None and not self.header_failed:
            self.warnings.append(ParseWarning(
                self.source, self.heading_line, f"no table under this heading; expected {EXPECTED_HEADER} and rows"
            ))


def leave_out_unread_days(result: ParseResult, rows_of: dict[dt.date, int], day_lines: dict[dt.date, int]) -> None:
    """Move the days that had rows but gave no paper to ``result.unreadable``, with a warning each.

    Stored as empty, such a day would replace the listing stored from a good version of the file.
    """
    read = []
    for day in result.days:
        if day.papers or not rows_of.get(day.date):  # a table without rows is a day without papers
            read.append(day)
        else:
            result.warnings.append(unread_day_warning(day, rows_of[day.date], day_lines[day.date]))
            result.unreadable.append(day)
    result.days = read
