"""Pieces every digest format shares: arXiv ids and links, dates, per-day de-duplication."""

from __future__ import annotations

import datetime as dt
import re

from newsletter.models import Day, Paper, ParseWarning, plural

# After "arxiv.org/": new-style ids (2504.08685) and old-style ones (hep-th/9901001, math.AG/0101001).
# The version suffix is matched outside the id so that it is dropped.
ARXIV_PATH = re.compile(r"(?:abs|pdf)/(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?")
ARXIV_ANY_CASE = re.compile(r"(?i:arxiv\.org/)" + ARXIV_PATH.pattern)
HF_PREFIX = "huggingface.co/papers/"
HF_LINK = re.compile(r"https?://(?:www\.)?huggingface\.co/papers/[^\s)\]|>\"']+")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def find_arxiv_id(text: str) -> str | None:
    """The first arXiv id linked (abs/ or pdf/) in ``text``, without its version."""
    # str.find first: a regex scan over every cell is the parser's hottest cost.
    host = text.find("arxiv.org/")
    if host < 0:
        unusual = ARXIV_ANY_CASE.search(text)  # ArXiv.org, ARXIV.ORG: rare, so the slow path is fine
        return unusual.group(1) if unusual is not None else None
    while host >= 0:
        match = ARXIV_PATH.match(text, host + len("arxiv.org/"))
        if match is not None:
            return match.group(1)
        host = text.find("arxiv.org/", host + 1)
    return None


def huggingface_link(text: str) -> str | None:
    start = text.find(HF_PREFIX)
    if start < 0:
        return None
    found = HF_LINK.search(text, max(0, start - len("https://www.")))
    return found.group(0) if found is not None else None


def arxiv_links(text: str) -> tuple[str, dict[str, str]] | None:
    """The first arXiv id linked in ``text`` and the paper's links, or None when there is none."""
    arxiv_id = find_arxiv_id(text)
    if arxiv_id is None:
        return None
    links = {"arxiv": f"https://arxiv.org/abs/{arxiv_id}", "pdf": f"https://arxiv.org/pdf/{arxiv_id}"}
    hf = huggingface_link(text)
    if hf is not None:
        links["huggingface"] = hf
    return arxiv_id, links


def parse_iso_date(token: str) -> dt.date | None:
    """``YYYY-MM-DD`` as a date; None for anything else (other shapes, impossible days)."""
    if not ISO_DATE.fullmatch(token):
        return None
    try:
        return dt.date.fromisoformat(token)
    except ValueError:
        return None


def bad_day_date(source: str, line: int, token: str) -> ParseWarning:
    """The warning for a day whose heading date is not a real date (2025-02-30), the same in every format."""
    return ParseWarning(
        source, line, f"{token!r} is not a date: the day's heading needs a real YYYY-MM-DD date; this day is skipped, "
        "correct its date",
    )


def unread_day_warning(day: Day, blocks: int, line: int) -> ParseWarning:
    """The warning for a day none of whose ``blocks`` (rows or cards) could be read, the same in every format."""
    return ParseWarning(
        day.source, line, f"none of the {plural(blocks, 'paper')} listed for {day.date} could be read (see the "
        "warnings about them); the day is left out and a listing stored earlier stays",
    )


def add_unique(papers: list[Paper], seen: set[str], paper: Paper, source: str, warnings: list[ParseWarning]) -> None:
    """Append ``paper`` unless its arXiv id is already in this day; the first listing wins."""
    if paper.arxiv_id in seen:
        warnings.append(
            ParseWarning(
                source,
                paper.line,
                f"arXiv {paper.arxiv_id} is listed twice on the same day; kept the first listing, "
                "remove the duplicate row",
            )
        )
        return
    seen.add(paper.arxiv_id)
    papers.append(paper)
