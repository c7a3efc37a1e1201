"""Atom feeds (with RSS 2.0 twins) and their index page, written from the store.

Feed readers recognise entries by id and sort them by date, so both are derived from data that
never changes once published: ids are ``tag:`` URIs built from the site's host, the fixed
``[feeds] tag_date`` and the arXiv id (or the digest date); dates are digest days, never the clock.
Within a feed no two entries share an ``updated`` instant (the W3C validator warns about that):
the papers of one day get one second apart, the first listed being the newest.

Output is deterministic, so a rebuild with nothing new gives identical bytes; a file is only
replaced (atomically, via a temporary file in the same folder) when its bytes change, which keeps
mtimes, ETags and 304 responses meaningful. This is the only module that imports feedgen.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from newsletter import __version__
from newsletter.config import Settings
from newsletter.errors import ConfigError, FeedError
from newsletter.links import archive_url
from newsletter.models import Day, Paper
from newsletter.render import FeedPaper, feed_digest_html, feed_paper
from newsletter.sanitize import absolute_url, strip_invalid_xml
from newsletter.selection import Filter
from newsletter.store import Store

ATOM_TYPE = "application/atom+xml"
CONTENT_NAMESPACE = "http://purl.org/rss/1.0/modules/content/"
DC_NAMESPACE = "http://purl.org/dc/elements/1.1/"
RSS_TYPE = "application/rss+xml"
OPML_PATH = "feeds.opml"
"""The outline of every public feed, written beside them, for readers that import a whole list."""
FEEDS_URL_PATH = "feeds"
"""The feeds are published at ``<site.base_url>/feeds/``; self links and ids of feeds use it."""
GENERATOR = "newsletter"
_APPEARANCE_CHUNK = 500  # arXiv ids per query, well under SQLite's bound-parameter limit
# Characters allowed unescaped in the specific part of a tag: URI (RFC 4151: pchar, "/" and "?").
_TAG_SAFE = "/?:@!$&'()*+,;=-._~"
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d+)?(?:[/?#][A-Za-z0-9:/?#\[\]@!$&'()*+,;=%._~-]*)?")


@dataclass(frozen=True)
class FeedSpec:
    """One feed: where it is written (relative to ``[feeds] dir``), and what it says about itself."""

    path: str
    """Without suffix, e.g. ``categories/computer-vision``; ``.atom`` and ``.rss`` are added."""
    key: str
    """The feed's part of its tag: id, e.g. ``feed/papers``."""
    title: str
    subtitle: str
    url: str = ""
    """Its address without suffix when it is not a file under ``/feeds/`` (a private feed)."""


@dataclass
class FeedReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    papers: int = 0
    days: int = 0


def slugify(name: str) -> str:
    """A file-name and URL-safe form of a category name: ``Multi-Modal`` -> ``multi-modal``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def category_slugs(names: Iterable[str], config_path: Path | str = "config") -> dict[str, str]:
    """Category name -> slug, refusing names that give no slug or the same slug as another."""
    slugs: dict[str, str] = {}
    owners: dict[str, str] = {}
    for name in names:
        slug = slugify(name)
        if not slug:
            raise ConfigError(
                f"{config_path}: categories.taxonomy: {name!r} has no letters or digits to name its feed file",
                "give the category a name with at least one ASCII letter or digit",
            )
        if slug in owners:
            raise ConfigError(
                f"{config_path}: categories.taxonomy: {owners[slug]!r} and {name!r} would share the feed "
                f"categories/{slug}.atom",
                "rename one of them so that they differ in more than case and punctuation",
            )
        owners[slug] = name
        slugs[name] = slug
    return slugs


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def listing_time(day: dt.date, position: int, count: int) -> dt.datetime:
    """When a paper listed at ``position`` of ``count`` on ``day`` counts as published.

    Seconds after midnight UTC, the first paper latest, so that readers sorting by date keep the
    digest's order and no two entries of a feed share a timestamp.
    """
    return midnight(day) + dt.timedelta(seconds=count - 1 - position)


def tag_date_start(tag_date: str) -> dt.date:
    """The first day of the ``[feeds] tag_date`` period (used as the date of a feed with no days at all)."""
    parts = [int(p) for p in tag_date.split("-")] + [1, 1]
    return dt.date(parts[0], parts[1], parts[2])


def _safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL with unsafe characters percent-encoded, or None."""
    if not url:
        return None
    if _PLAIN_URL.fullmatch(url):
        return url
    return absolute_url(quote(strip_invalid_xml(url).strip(), safe=_URL_SAFE))


def _clean(text: str) -> str:
    return strip_invalid_xml(text).strip()


class _Site:
    """What every feed and entry derives from the settings: ids, URLs, names."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.site.base_url.rstrip("/")
        self.feeds_url = f"{self.base_url}/{FEEDS_URL_PATH}/"
        host = (urlsplit(self.base_url).hostname or "").lower()
        self.tag_prefix = f"tag:{host},{settings.feeds.tag_date}:"
        self.title = _clean(settings.site.title) or GENERATOR
        self.description = _clean(settings.site.description) or self.title
        self.author = _clean(settings.site.author) or self.title
        self.category_scheme = f"{self.feeds_url}categories/"

    def tag(self, specific: str) -> str:
        return self.tag_prefix + quote(specific, safe=_TAG_SAFE)

    def archive_url(self, date: dt.date) -> str:
        """The day's page on the web archive (``newsletter serve``), as the emails link it."""
        return archive_url(self.settings, date)

    def self_url(self, relative_path: str) -> str:
        return self.feeds_url + quote(relative_path)


@dataclass(frozen=True)
class _EntryXml:
    """One entry serialised once, as Atom and as RSS, for every feed that lists it.

    A paper sits in papers.atom, in one or two category feeds, in Atom and RSS: serialising each
    entry once and splicing the bytes into each feed (see ``_serialise``) does that work once per
    paper instead of once per listing, which was most of the time of a whole-corpus build.
    """

    atom: bytes
    rss: bytes


def _paper_xml(
    *, entry_id: str, title: str, updated: dt.datetime, published: dt.datetime, authors: Sequence[str],
    links: Sequence[tuple[str, str]], summary_html: str, content_html: str, categories: Sequence[str],
    category_scheme: str,
) -> _EntryXml:
    """A paper's Atom entry and RSS item, with the elements in the order feedgen writes them.

    Built directly with lxml: the fields are already cleaned, and feedgen's setters and builders
    cost more than the rest of the entry. feedgen still builds every feed around the entries.
    """
    sub = etree.SubElement
    entry = etree.Element("entry")
    sub(entry, "id").text = entry_id
    sub(entry, "title").text = title
    sub(entry, "updated").text = updated.isoformat()
    for name in authors:
        sub(sub(entry, "author"), "name").text = name
    if content_html:
        sub(entry, "content", type="html").text = content_html
    for href, rel in links:
        sub(entry, "link", href=href, rel=rel, type="text/html")
    if summary_html:
        sub(entry, "summary", type="html").text = summary_html
    for term in categories:
        sub(entry, "category", term=term, scheme=category_scheme, label=term)
    sub(entry, "published").text = published.isoformat()

    both = bool(summary_html and content_html)
    # Declared on the item, since it is serialised on its own; the channel declares them too.
    nsmap = {**({"dc": DC_NAMESPACE} if authors else {}), **({"content": CONTENT_NAMESPACE} if both else {})}
    item = etree.Element("item", nsmap=nsmap)
    sub(item, "title").text = title
    sub(item, "link").text = links[0][0]
    # RSS has one description: the summary, with the fuller content beside it when there is both.
    sub(item, "description").text = summary_html or content_html
    if both:
        sub(item, f"{{{CONTENT_NAMESPACE}}}encoded").text = content_html
    sub(item, "guid", isPermaLink="false").text = entry_id
    for term in categories:
        sub(item, "category", domain=category_scheme).text = term
    # feedgen's formatRFC2822 switches the process locale on every call; this gives the same text.
    sub(item, "pubDate").text = format_datetime(published)
    # RSS <author> must be an e-mail address; names go in dc:creator, as the validator suggests.
    for name in authors:
        sub(item, f"{{{DC_NAMESPACE}}}creator").text = name
    return _EntryXml(etree.tostring(entry, encoding="UTF-8"), etree.tostring(item, encoding="UTF-8"))


@dataclass
class _PaperItem:
    """A paper rendered once and shared by papers.atom, its category feeds and the digest entries."""

    xml: _EntryXml
    updated: dt.datetime
    categories: list[str]
    shown: FeedPaper


def _paper_item(
    site: _Site, paper: Paper, published: dt.date, updated: dt.datetime
) -> _PaperItem:
    arxiv_id = _clean(paper.arxiv_id)
    title = _clean(paper.title) or f"arXiv:{arxiv_id}"
    authors = [a for a in (_clean(a) for a in paper.authors) if a]
    categories = [c for c in (_clean(c) for c in paper.categories) if c]
    abs_url = f"https://arxiv.org/abs/{quote(arxiv_id, safe='/.')}"
    hf_url = _safe_url(paper.links.get("huggingface")) or f"https://huggingface.co/papers/{quote(arxiv_id, safe='/.')}"
    shown = feed_paper(paper, title=title, authors=authors, arxiv_url=abs_url, huggingface_url=hf_url)

    # Every entry needs some text (the validator warns otherwise); the title stands in for a missing summary.
    entry_summary = shown.summary_html if shown.content_html else shown.summary_html or f"<p>{html.escape(title)}</p>"
    xml = _paper_xml(
        entry_id=site.tag(f"paper/{arxiv_id}"), title=title, updated=updated, published=midnight(published),
        authors=authors, links=[(abs_url, "alternate"), (hf_url, "related")], summary_html=entry_summary,
        content_html=shown.content_html, categories=categories, category_scheme=site.category_scheme,
    )
    return _PaperItem(xml, updated, categories, shown)


def _digest_entry(site: _Site, day: Day, items: Sequence[_PaperItem]) -> _EntryXml:
    entry = FeedEntry()
    entry.id(site.tag(f"digest/{day.date.isoformat()}"))
    entry.title(f"{site.title}: papers for {day.date.isoformat()}")
    entry.content(feed_digest_html(count=len(items), note=day.note, papers=[item.shown for item in items]), type="html")
    entry.link(href=site.archive_url(day.date), rel="alternate", type="text/html")
    entry.published(midnight(day.date))
    entry.updated(midnight(day.date))
    return _EntryXml(etree.tostring(entry.atom_entry(), encoding="UTF-8"),
                     etree.tostring(entry.rss_entry(), encoding="UTF-8"))


def _first_appearances(store: Store, arxiv_ids: list[str]) -> dict[str, dt.date]:
    first: dict[str, dt.date] = {}
    for start in range(0, len(arxiv_ids), _APPEARANCE_CHUNK):
        for arxiv_id, dates in store.appearances_of(arxiv_ids[start:start + _APPEARANCE_CHUNK]).items():
            first[arxiv_id] = dates[0]
    return first


def _serialise(
    site: _Site, spec: FeedSpec, entries: Sequence[_EntryXml], updated: dt.datetime, kinds: Sequence[str]
) -> dict[str, bytes]:
    """The feed for ``spec`` in each of ``kinds`` (``atom``, ``rss``), keyed by path relative to ``[feeds] dir``.

    feedgen writes the feed itself; the entries, serialised once each, are spliced in before its
    closing tag.
    """
    fg = FeedGenerator()
    if "rss" in kinds:
        fg.load_extension("dc", atom=False, rss=True)
    fg.id(site.tag(spec.key))
    fg.title(spec.title)
    fg.subtitle(spec.subtitle)  # also the RSS channel description
    fg.author(name=site.author)
    fg.generator(GENERATOR, version=__version__)
    fg.language("en")
    # feedgen defaults updated/lastBuildDate to now; the feed's date is its newest entry's instead.
    fg.updated(updated)
    outputs = {}
    formats = {"atom": (ATOM_TYPE, fg.atom_str, b"</feed>", [e.atom for e in entries]),
               "rss": (RSS_TYPE, fg.rss_str, b"</channel>", [e.rss for e in entries])}
    for kind in kinds:
        media_type, serialise, closing_tag, parts = formats[kind]
        path = f"{spec.path}.{kind}"
        # The RSS channel <link> is the last link given, so the alternate goes after self.
        fg.link(href=spec.url + f".{kind}" if spec.url else site.self_url(path), rel="self", type=media_type,
                replace=True)
        fg.link(href=site.base_url + "/", rel="alternate", type="text/html")
        head, tag, tail = serialise(pretty=False, encoding="UTF-8", xml_declaration=True).rpartition(closing_tag)
        outputs[path] = b"".join([head, *parts, tag, tail, b"\n"])
    return outputs


def feed_specs(settings: Settings) -> list[FeedSpec]:
    """Every feed that ``newsletter feeds`` writes, in the order index.html lists them."""
    site = _Site(settings)
    specs = [
        FeedSpec("papers", "feed/papers", site.title, site.description),
        FeedSpec("digest", "feed/digest", f"{site.title}: daily digest",
                 "One entry per day, listing that day's papers."),
    ]
    for name, slug in category_slugs(settings.categories.names, settings.path).items():
        label = _clean(name)
        specs.append(FeedSpec(f"categories/{slug}", f"feed/category/{slug}", f"{site.title}: {label}",
                              f"Papers in {label}."))
    return specs


@dataclass
class FeedWindow:
    """The newest ``[feeds] window_days`` digest days and their papers, each rendered once: what the
    public feeds and every private feed are cut from, until the store changes."""

    days: list[Day]
    """Newest first."""
    items: dict[str, _PaperItem]
    """arXiv id -> the paper's entry, newest listing first, each paper once."""
    papers: dict[str, Paper]
    empty_feed_date: dt.datetime
    """The date of a feed with no entries: the newest digest day's."""

    def newest_of(self, entries: Sequence[_PaperItem]) -> dt.datetime:
        return max((i.updated for i in entries), default=self.empty_feed_date)


def load_window(settings: Settings, store: Store) -> FeedWindow:
    site = _Site(settings)
    window = settings.feeds.window_days
    latest = store.latest_date()
    # The window counts digest days, not calendar days: a late or early file among them (a day
    # far from the others) cannot push every other day out of the feeds.
    dates = store.dates() if window > 0 else []
    start = dates[window - 1] if 0 < window <= len(dates) else None
    days = store.days_between(start, None)  # newest first

    # A paper listed on several days is one entry, dated by its newest listing.
    newest: dict[str, tuple[Paper, dt.datetime]] = {}
    oldest_loaded: dict[str, dt.date] = {}
    for day in days:
        for position, paper in enumerate(day.papers):
            newest.setdefault(paper.arxiv_id, (paper, listing_time(day.date, position, len(day.papers))))
            oldest_loaded[paper.arxiv_id] = day.date
    first_seen = _first_appearances(store, list(newest)) if start is not None else oldest_loaded

    # Days come newest first and papers in digest order, so `items` is already newest first.
    items = {arxiv_id: _paper_item(site, paper, first_seen.get(arxiv_id, oldest_loaded[arxiv_id]), updated)
             for arxiv_id, (paper, updated) in newest.items()}
    empty_feed_date = midnight(latest if latest is not None else tag_date_start(settings.feeds.tag_date))
    return FeedWindow(days, items, {arxiv_id: paper for arxiv_id, (paper, _) in newest.items()}, empty_feed_date)


def _kinds(settings: Settings) -> tuple[str, ...]:
    return ("atom", "rss") if settings.feeds.rss else ("atom",)


def render_feeds(settings: Settings, store: Store) -> tuple[dict[str, bytes], FeedReport]:
    """Every feed file, index.html and feeds.opml as bytes, keyed by path relative to ``[feeds] dir``."""
    site = _Site(settings)
    kinds = _kinds(settings)
    window = load_window(settings, store)
    days, items = window.days, window.items
    specs = feed_specs(settings)
    outputs: dict[str, bytes] = {}
    paper_items = list(items.values())
    outputs.update(_serialise(site, specs[0], [i.xml for i in paper_items], window.newest_of(paper_items), kinds))

    digest_entries = [_digest_entry(site, day, [items[p.arxiv_id] for p in day.papers]) for day in days]
    digest_updated = midnight(days[0].date) if days else window.empty_feed_date
    outputs.update(_serialise(site, specs[1], digest_entries, digest_updated, kinds))

    by_category: dict[str, list[_PaperItem]] = {}
    for item in paper_items:
        for category in item.categories:
            by_category.setdefault(category, []).append(item)
    for name, spec in zip(settings.categories.names, specs[2:], strict=True):
        members = by_category.get(_clean(name), [])
        outputs.update(_serialise(site, spec, [i.xml for i in members], window.newest_of(members), kinds))

    outputs["index.html"] = index_html(site, specs, settings.feeds.rss)
    outputs[OPML_PATH] = opml(site, specs)
    return outputs, FeedReport(papers=len(items), days=len(days))


def private_feed(settings: Settings, window: FeedWindow, filt: Filter, *, feed_id: str, url: str,
                 kind: str) -> bytes:
    """A subscriber's private feed (``kind`` ``atom`` or ``rss``): the window's papers that ``filt``,
    the filter their email uses, selects. Its entries are the public feeds' own, byte for byte.

    ``feed_id`` is the feed's part of its tag: id (not the secret token, which rotates); ``url`` its
    address without suffix, for the self link.
    """
    site = _Site(settings)
    selected = [window.items[paper.arxiv_id] for paper in filt.select(window.papers.values())]
    spec = FeedSpec("private", f"feed/private/{feed_id}", f"{site.title}: your papers",
                    f"Papers in {filt.describe()}.", url=url)
    return _serialise(site, spec, [i.xml for i in selected], window.newest_of(selected), (kind,))[f"private.{kind}"]


def index_html(site: _Site, specs: Sequence[FeedSpec], rss: bool) -> bytes:
    """A small HTML5 page listing the feeds; its <link rel="alternate"> tags let readers find them."""
    esc = html.escape
    heads, rows = [], []
    for spec in specs:
        heads.append(
            f'<link rel="alternate" type="{ATOM_TYPE}" title="{esc(spec.title)}" href="{esc(spec.path)}.atom">'
        )
        links = f'<a href="{esc(spec.path)}.atom">Atom</a>'
        if rss:
            heads.append(
                f'<link rel="alternate" type="{RSS_TYPE}" title="{esc(spec.title)} (RSS)" href="{esc(spec.path)}.rss">'
            )
            links += f' · <a href="{esc(spec.path)}.rss">RSS</a>'
        rows.append(f"<li><strong>{esc(spec.title)}</strong>: {esc(spec.subtitle)} ({links})</li>")
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(site.title)}: feeds</title>",
        *heads,
        "</head>",
        "<body>",
        f"<h1>{esc(site.title)}: feeds</h1>",
        f"<p>{esc(site.description)}</p>",
        "<p>Copy a feed's address into your feed reader to subscribe.</p>",
        "<ul>",
        *rows,
        "</ul>",
        f'<p><a href="{OPML_PATH}">Every feed as one OPML file</a>: import it to follow them all in one step.</p>',
        f'<p><a href="{esc(site.base_url)}/">{esc(site.title)}</a></p>',
        "</body>",
        "</html>",
        "",
    ])
    return page.encode("utf-8")


def opml(site: _Site, specs: Sequence[FeedSpec]) -> bytes:
    """OPML 2.0 listing every public feed (its Atom address: the RSS twin is the same feed), so that a
    reader imports them all in one step. No date in it, so that it changes only when the feeds do."""
    root = etree.Element("opml", version="2.0")
    etree.SubElement(etree.SubElement(root, "head"), "title").text = f"{site.title}: feeds"
    body = etree.SubElement(root, "body")
    for spec in specs:
        etree.SubElement(body, "outline", type="rss", text=spec.title, title=spec.title, description=spec.subtitle,
                         xmlUrl=site.self_url(f"{spec.path}.atom"), htmlUrl=f"{site.base_url}/")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically unless it already holds exactly these bytes.

    The temporary file lives in the same folder, so ``os.replace`` is a rename within one file
    system: a reader sees the old file or the new one, never half of one.
    """
    try:
        if path.read_bytes() == data:
            return False
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644  # mkstemp makes 0600 files, which the web server could not read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the renames durable: a crash after this cannot bring back the old files."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_feeds(settings: Settings, store: Store, out_dir: Path | None = None) -> FeedReport:
    """Write every feed and index.html into ``out_dir`` (default ``[feeds] dir``); report what changed.

    A file that cannot be written does not stop the others; FeedError lists the failures at the end.
    """
    out_dir = out_dir if out_dir is not None else settings.resolve(settings.feeds.dir)
    outputs, report = render_feeds(settings, store)
    failures: list[str] = []
    touched: set[Path] = set()
    for relative, data in outputs.items():
        path = out_dir / relative
        try:
            changed = write_if_changed(path, data)
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror or exc}")
            continue
        (report.written if changed else report.unchanged).append(path)
        if changed:
            touched.add(path.parent)
    for folder in sorted(touched):
        try:
            _fsync_dir(folder)
        except OSError as exc:
            failures.append(f"{folder}: {exc.strerror or exc}")
    if failures:
        raise FeedError(
            f"{len(failures)} of {len(outputs)} feed files could not be written:\n  " + "\n  ".join(failures),
            "check that [feeds] dir exists or can be created, is writable, and that the disk is not full",
        )
    return report
