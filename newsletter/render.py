"""Jinja2 templates and CSS inlining: the only module that touches Jinja2 and premailer.

There is one Environment for everything (emails now, web pages later), loading from the
``newsletter.templates`` package (the top-level ``templates/`` folder), with autoescape on for
HTML and StrictUndefined so that a misspelt variable fails the render instead of going out blank.

``render_digest`` runs once per rendition (one day, one filter). Per-subscriber values are not
known here: the caller passes placeholder strings in ``personal`` and fills them in afterwards
(see newsletter.mail), so templates and premailer never run per subscriber.
"""

from __future__ import annotations

import datetime as dt
import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from premailer import Premailer

from newsletter.models import Paper, own_summary
from newsletter.sanitize import absolute_url, markdown_to_safe_html, strip_invalid_xml
from newsletter.selection import Filter

AUTHORS_SHOWN = 3
TEXT_WIDTH = 76
UNCATEGORISED = "Other"

_env = Environment(
    loader=PackageLoader("newsletter.templates", "."),
    autoescape=select_autoescape(["html", "htm", "xml"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def short_authors(authors: Sequence[str], shown: int = AUTHORS_SHOWN) -> str:
    """``A, B, C +2 more``; the whole list when at most one name would be hidden."""
    names = [a.strip() for a in authors if a.strip()]
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} +{len(names) - shown} more"


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", hanging: str | None = None) -> str:
    """Wrap prose for the plain-text part; long URLs stay whole rather than being broken.

    ``indent`` starts every line; ``hanging``, when given, starts the lines after the first instead
    (a numbered title whose continuation lines up under its text)."""
    return textwrap.fill(
        " ".join(text.split()), width=width, initial_indent=indent,
        subsequent_indent=indent if hanging is None else hanging,
        break_long_words=False, break_on_hyphens=False,
    )


def count_label(count: int) -> str:
    """``1 paper``, ``5 papers``: the email's header and the default subject."""
    return f"{count} paper" + ("" if count == 1 else "s")


def date_label(date: dt.date) -> str:
    """``Tuesday, 13 May 2025``: how the email and the web archive name a day."""
    return f"{date:%A}, {date.day} {date:%B %Y}"


_env.filters["wrap"] = wrap


@dataclass(frozen=True)
class PaperView:
    """A paper as the templates show it: links vetted, Markdown rendered, authors shortened."""

    number: int
    arxiv_id: str
    title: str
    authors: str
    summary_html: Markup
    summary_text: str
    arxiv_url: str | None
    huggingface_url: str | None
    pdf_url: str | None
    points: list[tuple[str, str]]
    quiz: list[tuple[int, str, tuple[str, ...]]]
    """(question number in the email, question, options)."""
    quiz_answered: bool
    """Whether the answers section lists an answer of this quiz (a copied text page has none)."""


@dataclass(frozen=True)
class QuizAnswer:
    number: int
    paper_title: str
    answer: str


@dataclass(frozen=True)
class Group:
    category: str
    papers: list[PaperView]

    @property
    def anchor(self) -> str:
        return "cat-" + ("".join(c if c.isalnum() else "-" for c in self.category.lower()).strip("-") or "other")


@dataclass(frozen=True)
class RenderedDigest:
    html: str
    """Complete HTML document, CSS inlined, with the caller's placeholders still in it."""
    text: str
    papers: tuple[str, ...]
    """arXiv ids in the order the email lists them (grouped by category)."""


def group_papers(papers: Sequence[Paper], filt: Filter, category_order: Sequence[str]) -> list[tuple[str, list[Paper]]]:
    """Papers grouped under one category each, groups in taxonomy order, papers in digest order.

    A paper in several categories goes under the first one the subscriber asked for, so that a
    subscriber of "Computer Vision" does not find their paper filed under "Multi-Modal".
    """
    groups: dict[str, list[Paper]] = {}
    for paper in papers:
        cats = paper.categories or ([paper.category] if paper.category else [])
        wanted = [c for c in cats if c in filt.categories] if filt.categories else cats
        groups.setdefault((wanted or cats or [UNCATEGORISED])[0], []).append(paper)
    rank = {name: i for i, name in enumerate(category_order)}
    ordered = sorted(groups, key=lambda c: (rank.get(c, len(rank)), c == UNCATEGORISED, c.casefold()))
    return [(c, groups[c]) for c in ordered]


def _paper_view(paper: Paper, number: int, first_question: int) -> PaperView:
    links = paper.links
    arxiv_url = absolute_url(links.get("arxiv")) or (
        f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id.replace(".", "").isalnum() else None)
    quiz = [(first_question + i, strip_invalid_xml(q.question), tuple(strip_invalid_xml(o) for o in q.options))
            for i, q in enumerate(paper.quiz)]
    summary = own_summary(paper)
    return PaperView(
        number=number,
        arxiv_id=paper.arxiv_id,
        title=strip_invalid_xml(" ".join(paper.title.split())),
        authors=strip_invalid_xml(short_authors(paper.authors)),
        summary_html=Markup(markdown_to_safe_html(summary)),
        summary_text=strip_invalid_xml(summary),
        arxiv_url=arxiv_url,
        huggingface_url=absolute_url(links.get("huggingface")),
        pdf_url=absolute_url(links.get("pdf")),
        points=[(strip_invalid_xml(p.label), strip_invalid_xml(p.text)) for p in paper.points],
        quiz=quiz,
        quiz_answered=any(q.answer for q in paper.quiz),
    )


def digest_context(
    *,
    site_title: str,
    sender: str,
    date: dt.date,
    papers: Sequence[Paper],
    filt: Filter,
    category_order: Sequence[str],
    archive_url: str,
    postal_address: str,
    personal: Mapping[str, str],
    note: str = "",
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The template context for one rendition, and the paper ids in the order it lists them.

    ``note`` is the day's note from its source (Markdown, e.g. a cards page's reading tips), shown
    at the top and sanitised like a summary."""
    groups: list[Group] = []
    answers: list[QuizAnswer] = []
    ordered: list[str] = []
    number = question = 1
    for category, members in group_papers(papers, filt, category_order):
        views = []
        for paper in members:
            view = _paper_view(paper, number, question)
            views.append(view)
            ordered.append(paper.arxiv_id)
            for (n, _q, _o), source in zip(view.quiz, paper.quiz, strict=True):
                if source.answer:
                    answers.append(QuizAnswer(n, view.title, strip_invalid_xml(source.answer)))
            number += 1
            question += len(view.quiz)
        groups.append(Group(category, views))
    count = len(ordered)
    sender_name, sender_address = parseaddr(sender)
    first_titles = "; ".join(v.title for g in groups for v in g.papers[:1])
    context = {
        "site_title": site_title,
        "date": date,
        "date_label": date_label(date),
        "count": count,
        "count_label": count_label(count),
        "groups": groups,
        "answers": answers,
        "note_html": Markup(markdown_to_safe_html(note)) if note.strip() else "",
        "note_paragraphs": [strip_invalid_xml(p) for p in note.split("\n\n") if p.strip()],
        "preheader": strip_invalid_xml(f"{count} new AI papers. {first_titles}")[:150],
        "filter_description": filt.describe(),
        "archive_url": archive_url,
        "sender_name": sender_name or site_title,
        "sender_address": sender_address,
        "postal_address": postal_address,
        "personal": personal,
    }
    return context, tuple(ordered)


def render_digest(context: Mapping[str, Any], papers: tuple[str, ...]) -> RenderedDigest:
    """The HTML (CSS inlined) and plain-text digest for one rendition."""
    html = inline_css(_env.get_template("digest.html").render(context))
    text = _env.get_template("digest.txt").render(context)
    return RenderedDigest(html=html, text=text, papers=papers)


def inline_css(html: str) -> str:
    """Inline the <style> rules for clients that drop <style> (old Gmail apps, Outlook.com).

    premailer keeps the rules it cannot inline (@media for phones and dark mode) in a <style>
    block; strip_important=False keeps their ``!important``, without which an inline style would
    beat them. The base CSS therefore carries no ``!important`` of its own.
    """
    return Premailer(
        html,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        allow_network=False,
    ).transform(pretty_print=False)


def render_page(template_name: str, **context: Any) -> str:
    """Render any template by name (the web server's pages, the dry-run preview)."""
    return _env.get_template(template_name).render(context)
