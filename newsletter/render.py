"""Jinja2 templates and CSS inlining: the only module that touches Jinja2 and premailer.

There is one Environment for everything (emails, web pages, feed entries), loading from the
``newsletter.templates`` package (the top-level ``templates/`` folder), with autoescape on for
HTML and StrictUndefined so that a misspelt variable fails the render instead of going out blank.
An operator's ``[site] templates`` folder comes first (``use_templates``), as in Pelican: a template
found there by name replaces the shipped one, and can extend or include the shipped ones (the one
of its own name as ``shipped/NAME``).

``render_digest`` runs once per rendition (one day, one filter). Per-subscriber values are not
known here: the caller passes placeholder strings in ``personal`` and fills them in afterwards
(see newsletter.dispatch.mail), so templates and premailer never run per subscriber.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import textwrap
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)
from markupsafe import Markup, escape

from newsletter.errors import ConfigError
from newsletter.excerpt import excerpt
from newsletter.models import Paper, plural, summary_of
from newsletter.sanitize import (
    absolute_url,
    inline_markdown_to_safe_html,
    markdown_to_safe_html,
    markdown_to_text,
    strip_invalid_xml,
)
from newsletter.selection import Filter

AUTHORS_SHOWN = 3
TEXT_WIDTH = 72
UNCATEGORISED = "Other"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")



def shipped_templates() -> Path:
    """The folder of the shipped templates: the package ``newsletter.templates`` of an installed copy,
    or, when ``newsletter`` is imported from a source checkout ahead of an installed copy (as
    ``python -m pytest`` in the checkout does), the top-level ``templates/`` folder it is built from."""
    try:
        return Path(str(resources.files("newsletter.templates")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "templates"


_SHIPPED = FileSystemLoader(shipped_templates())
_env = Environment(
    loader=ChoiceLoader([_SHIPPED]),
    autoescape=select_autoescape(["html", "htm", "xml"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


SHIPPED_PREFIX = "shipped"
"""`{% extends "shipped/digest.html" %}`: the shipped template of a name, for one of the same name to build on."""

_operator_folder: list[Path] = []
"""The [site] templates folder in use, if any: a template failing there is the operator's to fix."""


def use_templates(folder: Path | None) -> None:
    """Look up templates in ``folder`` first, then among the shipped ones (None: the shipped ones only).

    Called once the config is known (the CLI, the web app); compiled templates are cached per loader,
    so a switch never serves a template from the other set.
    """
    loaders: list[BaseLoader] = [FileSystemLoader(folder)] if folder is not None else []
    _env.loader = ChoiceLoader([*loaders, _SHIPPED, PrefixLoader({SHIPPED_PREFIX: _SHIPPED})])
    _operator_folder[:] = [] if folder is None else [folder.resolve()]


def _render(template_name: str, context: Mapping[str, Any]) -> str:
    try:
        return _env.get_template(template_name).render(context)
    except (TemplateError, RecursionError) as exc:
        failure = _operator_template_failure(exc)
        if failure is None:  # a shipped template: a bug, with its traceback
            raise
        raise failure from None


def _operator_template_failure(exc: TemplateError | RecursionError) -> ConfigError | None:
    """A template of the operator's folder that does not compile or render, named by file and line
    (a traceback through Jinja2's internals would not say which line of which template)."""
    if isinstance(exc, TemplateSyntaxError) and exc.filename:
        file, line = exc.filename, exc.lineno
    else:  # Jinja2 rewrites the traceback so that a template's frames carry its file and line
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.endswith(".py")]
        if not frames:
            return None
        file, line = frames[-1].filename, frames[-1].lineno or 0
    if not _operator_folder or not Path(file).resolve().is_relative_to(_operator_folder[0]):
        return None
    if isinstance(exc, RecursionError):
        name = Path(file).resolve().relative_to(_operator_folder[0]).as_posix()
        return ConfigError(f"{file}:{line}: the template extends or includes itself",
                           f'to build on the shipped template of its name, extend "{SHIPPED_PREFIX}/{name}"')
    return ConfigError(f"{file}:{line}: {exc.message or type(exc).__name__}",
                       "fix this template of [site] templates, or remove it to use the shipped one of that name "
                       "(README: Templates)")


def short_authors(authors: Sequence[str], shown: int = AUTHORS_SHOWN) -> str:
    """``A, B, C +2 more``; the whole list when at most one name would be hidden."""
    names = [a.strip() for a in authors if a.strip()]
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} +{len(names) - shown} more"


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", hanging: str | None = None) -> str:
    """Wrap prose for the plain-text part; long URLs stay whole rather than being broken.

    ``indent`` starts every line; ``hanging``, when given, starts the lines after the first instead
    (a numbered title whose continuation lines up under its text). Paragraphs (separated by a blank
    line) stay apart."""
    later = indent if hanging is None else hanging
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    return "\n\n".join(
        textwrap.fill(paragraph, width=width, initial_indent=indent if i == 0 else later, subsequent_indent=later,
                      break_long_words=False, break_on_hyphens=False)
        for i, paragraph in enumerate(paragraphs)
    )


def count_label(count: int) -> str:
    """``1 paper``, ``5 papers``: the email's header and the default subject."""
    return plural(count, "paper")


def date_label(date: dt.date) -> str:
    """``Tuesday, 13 May 2025``: how the email and the web archive name a day."""
    return f"{date:%A}, {date.day} {date:%B %Y}"


_env.filters["wrap"] = wrap
_env.filters["inline_markdown"] = lambda text: Markup(inline_markdown_to_safe_html(text))


SummaryLength = Literal["full", "short", "brief"]
SUMMARY_LIMITS: dict[str, int] = {"short": 300, "brief": 140}
"""Characters of summary an excerpt aims for (see newsletter.excerpt); "full" has no limit."""
COMPACTER: dict[str, tuple[SummaryLength, ...]] = {"full": ("short", "brief"), "short": ("brief",), "brief": ()}
"""The shorter summary lengths to try, in turn, when an email would be clipped."""
POINT_LINE_LIMIT = 160
RESULTS_LABEL = "Results and Evaluation"
"""The card point an email keeps as its one line: what the paper found."""


@dataclass(frozen=True)
class Layout:
    """How much of each paper a rendition shows.

    ``summary`` is the summary length of the papers shown in detail; the first ``detailed`` papers
    (None: all) are shown so, the rest as title-only links to the web archive. The email starts
    from ``[email] summary`` and is made more compact until it fits under Gmail's clip (see dispatch/plan.py).
    """

    summary: SummaryLength = "full"
    detailed: int | None = None


@dataclass(frozen=True)
class PaperView:
    """A paper as the templates show it: links vetted, Markdown rendered, authors shortened."""

    number: int
    arxiv_id: str
    anchor: str
    """The id of the paper's block, the same in the email and on the archive page."""
    title: str
    authors: str
    detailed: bool
    """False: listed by title only, linking to the archive page."""
    summary_html: Markup
    summary_text: str
    point_line: tuple[str, str] | None
    """(label, one sentence) of a card's points, in a short email."""
    arxiv_url: str | None
    huggingface_url: str | None
    pdf_url: str | None
    more_url: str | None
    """The paper on the archive page, when it shows more than this email (full summary, points, quiz)."""
    more_label: str
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
class Wording:
    """What an email calls its list in the greeting ("here is today's reading list"), and the words of
    its link to the web (``archive_url``): a day's page for a daily edition, the archive for a weekly one."""

    reading_list: str = "today's reading list"
    web_link: str = "View it in your browser"
    web_link_short: str = "View in browser"
    """The footer's shorter words for the same link."""


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


def paper_anchor(arxiv_id: str) -> str:
    """``p-2505.00001``: the id of a paper's block in the email and on the archive page."""
    return "p-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", arxiv_id).strip("-") or "paper")


def _point_line(paper: Paper) -> tuple[str, str] | None:
    """A card's results point (or its last one), cut to one sentence."""
    if not paper.points:
        return None
    chosen = next((p for p in paper.points if p.label == RESULTS_LABEL), paper.points[-1])
    return strip_invalid_xml(chosen.label), excerpt(markdown_to_text(chosen.text), POINT_LINE_LIMIT, most=1)


def _links(paper: Paper) -> tuple[str | None, str | None, str | None]:
    """(arXiv, Hugging Face, PDF) URLs, vetted; the arXiv one derived from the id when the digest has none."""
    links = paper.links
    arxiv_url = absolute_url(links.get("arxiv")) or (
        f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id.replace(".", "").isalnum() else None)
    return arxiv_url, absolute_url(links.get("huggingface")), absolute_url(links.get("pdf"))


def _paper_view(paper: Paper, number: int, first_question: int, summary: SummaryLength, detailed: bool,
                page_url: str, plain_text: bool = True) -> PaperView:
    """``page_url``: the archive page of the day the paper was listed on, where ``more_url`` points.
    ``plain_text=False`` leaves a complete view's ``summary_text`` empty, for HTML-only uses (the feeds)."""
    anchor = paper_anchor(paper.arxiv_id)
    complete = detailed and summary == "full"
    shown = summary_of(paper, points_apart=True)  # the points have their own list and line
    full_text = markdown_to_text(shown) if plain_text or not complete else ""
    if complete:
        summary_html, summary_text = Markup(markdown_to_safe_html(shown)), full_text
    else:
        summary_text = excerpt(full_text, SUMMARY_LIMITS[summary]) if detailed else ""
        summary_html = Markup(f"<p>{escape(summary_text)}</p>") if summary_text else Markup("")
    shows_less = not detailed or (not complete and (summary_text != full_text or bool(paper.points or paper.quiz)))
    quiz = [(first_question + i, strip_invalid_xml(q.question), tuple(strip_invalid_xml(o) for o in q.options))
            for i, q in enumerate(paper.quiz)] if complete else []
    arxiv_url, huggingface_url, pdf_url = _links(paper)
    return PaperView(
        number=number,
        arxiv_id=paper.arxiv_id,
        anchor=anchor,
        title=strip_invalid_xml(" ".join(paper.title.split())),
        authors=strip_invalid_xml(short_authors(paper.authors)),
        detailed=detailed,
        summary_html=summary_html,
        summary_text=summary_text,
        point_line=_point_line(paper) if detailed and not complete else None,
        arxiv_url=arxiv_url,
        huggingface_url=huggingface_url,
        pdf_url=pdf_url,
        more_url=f"{page_url}#{anchor}" if shows_less else None,
        more_label="Full summary, points and quiz" if paper.points or paper.quiz else "Full summary",
        points=[(strip_invalid_xml(p.label), strip_invalid_xml(p.text)) for p in paper.points] if complete else [],
        quiz=quiz,
        quiz_answered=any(q.answer for q in paper.quiz),
    )


@dataclass(frozen=True)
class FeedPaper:
    """The HTML a feed shows for a paper, rendered once and shared by every feed that lists it."""

    summary_html: str
    """The entry's summary: the digest's summary (a card's points run together, for a cards paper)."""
    content_html: str
    """The paper's own summary with its points and quiz; "" when the summary is all there is."""
    digest_html: str
    """The paper's block in a digest entry."""


def feed_paper(paper: Paper, *, title: str, authors: Sequence[str], arxiv_url: str, huggingface_url: str) -> FeedPaper:
    """A paper for the feeds, through the view and templates (``feed/``) that the email and archive use.

    The feeds name the paper as feed readers expect (every author, the arXiv and Hugging Face pages
    derived from the id when the digest has no link), so those come from the caller.
    """
    view = _paper_view(paper, 1, 1, "full", True, page_url="", plain_text=False)
    # The entry's summary stands alone in a feed reader, so a cards paper's points run together there.
    summary_html = (str(view.summary_html) if summary_of(paper, points_apart=True)
                    else markdown_to_safe_html(summary_of(paper)))
    details_html = (Markup(_render("feed/paper_details.html", {"paper": view}))
                    if view.points or view.quiz else Markup(""))
    digest_html = _render("feed/digest_paper.html", {
        "paper": view, "details_html": details_html, "title": title, "authors": authors, "arxiv_url": arxiv_url,
        "huggingface_url": huggingface_url})
    return FeedPaper(summary_html=summary_html,
                     content_html=view.summary_html + details_html if details_html else "",
                     digest_html=digest_html)


def feed_digest_html(*, count: int, note: str, papers: Sequence[FeedPaper]) -> str:
    """The content of a day's entry in the digest feed: the note, then each paper's block."""
    return _render("feed/digest_entry.html", {
        "count_label": count_label(count), "note_html": Markup(markdown_to_safe_html(note)) if note.strip() else "",
        "papers": [Markup(p.digest_html) for p in papers]})


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
    layout: Layout = Layout(),
    fitted: bool = False,
    note: str = "",
    heading: str = "",
    description: str = "",
    subline: str = "",
    wording: Wording = Wording(),
    paper_pages: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The template context for one rendition, and the paper ids in the order it lists them.

    ``fitted``: the layout is more compact than ``[email] summary`` asks, to stay under Gmail's
    clip; the email then says so. ``note`` is the day's note from its source (Markdown, e.g. a cards
    page's reading tips), shown at the top and sanitised like a summary. ``heading`` replaces the
    date as the headline (a weekly edition names its days); ``description`` replaces the filter's
    wording ("You get papers in ...") where the email is about something else (an alert); ``subline``
    replaces the line under the headline ("5 papers for ..."), for an email whose papers the filter's
    topics did not select. ``paper_pages``: for an edition of several days, the archive page of the day
    each paper was listed on, by arXiv id, where its "full summary" link points; None: every paper is on
    ``archive_url``'s page (one day's).
    """
    groups: list[Group] = []
    answers: list[QuizAnswer] = []
    ordered: list[str] = []
    number = question = 1
    for category, members in group_papers(papers, filt, category_order):
        views = []
        for paper in members:
            detailed = layout.detailed is None or number <= layout.detailed
            page = archive_url if paper_pages is None else paper_pages[paper.arxiv_id]
            view = _paper_view(paper, number, question, layout.summary, detailed, page)
            views.append(view)
            ordered.append(paper.arxiv_id)
            for (n, _q, _o), source in zip(view.quiz, paper.quiz[:len(view.quiz)], strict=True):
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
        "date_label": heading or date_label(date),
        "count": count,
        "count_label": count_label(count),
        "groups": groups,
        "answers": answers,
        "title_only": sum(not v.detailed for g in groups for v in g.papers),
        "fitted": fitted,
        "note_html": Markup(markdown_to_safe_html(note)) if note.strip() else "",
        "note_paragraphs": [markdown_to_text(p) for p in note.split("\n\n") if p.strip()],
        "preheader": strip_invalid_xml(f"{count} new AI papers. {first_titles}")[:150],
        "filter_description": description or filt.describe(),
        "subline": subline or f"{count_label(count)} for {description or filt.describe()}",
        "wording": wording,
        "archive_url": archive_url,
        "sender_name": sender_name or site_title,
        "sender_address": sender_address,
        "postal_address": postal_address,
        "personal": personal,
    }
    return context, tuple(ordered)


def render_digest(context: Mapping[str, Any], papers: tuple[str, ...]) -> RenderedDigest:
    """The HTML (CSS inlined) and plain-text digest for one rendition."""
    html = inline_css(_render("digest.html", context))
    text = _render("digest.txt", context)
    return RenderedDigest(html=html, text=text, papers=papers)


def inline_css(html: str) -> str:
    """Inline the <style> rules for clients that drop <style> (old Gmail apps, Outlook.com).

    premailer keeps the rules it cannot inline (@media for phones and dark mode) in a <style>
    block; strip_important=False keeps their ``!important``, without which an inline style would
    beat them. The base CSS therefore carries no ``!important`` of its own.
    """
    # Imported here: premailer (with cssutils and requests) takes a sixth of a second to import, and
    # a sender worker, which never renders, would pay it at every start (bench/scale.py).
    from premailer import Premailer

    inlined: str = Premailer(  # premailer is untyped: its transform() returns the page as str
        html,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        allow_network=False,
    ).transform(pretty_print=False)
    return inlined


def render_page(template_name: str, **context: Any) -> str:
    """Render any template by name (the web server's pages, the dry-run preview)."""
    return _render(template_name, context)
