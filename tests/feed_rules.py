"""The W3C Feed Validation Service's rules that can be checked offline, as functions that raise.

Each check names the validator message it stands for (see https://validator.w3.org/feed/docs/).
Used by the feed tests on a small fixture, on hostile text and on the whole corpus.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"

# RFC 3339 date-time, as the validator's rfc3339 check demands (a time zone is required).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
# RFC 822 as RSS 2.0 uses it, with the four-digit year the validator recommends.
RFC822 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                    r"\d{2}:\d{2}:\d{2} [+-]\d{4}")
# RFC 4151: tag:authority,date:specific; the validator's InvalidTAG check.
TAG_URI = re.compile(
    r"tag:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*),"
    r"\d{4}(?:-\d{2}(?:-\d{2})?)?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*"
)
PLAUSIBLE_SINCE = dt.datetime(1995, 1, 1, tzinfo=dt.UTC)  # the validator's ImplausibleDate lower bound is older
UNSAFE_TAGS = {"script", "style", "iframe", "object", "embed", "applet", "form", "meta", "link", "base"}
HTML_END_TAG = re.compile(r"</(\w+)>")


class _HtmlInventory(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def check_safe_html(fragment: str, where: str) -> None:
    """SecurityRisk (script, on* handlers, javascript: URLs) and ContainsRelRef (relative links)."""
    inventory = _HtmlInventory()
    inventory.feed(fragment)
    inventory.close()
    for tag, attrs in inventory.tags:
        assert tag not in UNSAFE_TAGS, f"{where}: SecurityRisk: <{tag}>"
        for name, value in attrs:
            assert not name.startswith("on"), f"{where}: SecurityRisk: {name} attribute"
            assert name != "style", f"{where}: SecurityRisk: style attribute"
            if name in ("href", "src"):
                assert value and urlsplit(value).scheme in ("http", "https", "mailto"), (
                    f"{where}: ContainsRelRef or unsafe URL: {value!r}"
                )


def _absolute(url: str | None, where: str) -> None:
    parts = urlsplit(url or "")
    assert parts.scheme in ("http", "https") and parts.netloc, f"{where}: not an absolute URL: {url!r}"
    assert not re.search(r"\s", url or ""), f"{where}: whitespace in URL {url!r}"


def _date(text: str | None, where: str) -> dt.datetime:
    assert text and RFC3339.fullmatch(text), f"{where}: InvalidRFC3339Date {text!r}"
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value >= PLAUSIBLE_SINCE, f"{where}: ImplausibleDate {text}"
    return value


def _check_id(value: str | None, where: str) -> None:
    assert value, f"{where}: MissingElement id"
    if value.startswith("tag:"):
        assert TAG_URI.fullmatch(value), f"{where}: InvalidTAG {value!r}"
    else:
        _absolute(value, where)


def _alternates_unique(element: etree._Element, where: str) -> None:
    seen = set()
    for link in element.findall(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate":
            key = (link.get("type"), link.get("hreflang"))
            assert key not in seen, f"{where}: DuplicateAtomLink alternate {key}"
            seen.add(key)


def check_atom(data: bytes, location: str, *, plain_titles: bool = True) -> etree._Element:
    """Raise AssertionError on anything the validator would report for an Atom feed at ``location``.

    ``plain_titles``: also apply ContainsHTML (HTML end tags in text titles), a warning that
    hostile test titles trigger on purpose.
    """
    root = etree.fromstring(data)
    assert root.tag == f"{ATOM}feed", "not an Atom feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"{ATOM}{name}")) == 1, f"feed: MissingElement or duplicate {name}"
    _check_id(root.findtext(f"{ATOM}id"), "feed")
    feed_updated = _date(root.findtext(f"{ATOM}updated"), "feed updated")
    feed_authors = [a.findtext(f"{ATOM}name") for a in root.findall(f"{ATOM}author")]
    assert all(feed_authors), "feed: author without a name"
    selfs = [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert len(selfs) == 1, "feed: MissingSelf"
    assert selfs[0].get("href") == location, f"SelfDoesntMatchLocation: {selfs[0].get('href')} != {location}"
    assert selfs[0].get("type") == "application/atom+xml", "self link type"
    for link in root.findall(f"{ATOM}link"):
        _absolute(link.get("href"), "feed link")
    _alternates_unique(root, "feed")
    assert root.findtext(f"{ATOM}generator"), "feed: generator"
    assert root.find(f"{ATOM}subtitle") is not None, "feed: subtitle"

    ids, updates = set(), set()
    newest = None
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {index}"
        entry_id = entry.findtext(f"{ATOM}id")
        _check_id(entry_id, where)
        assert entry_id not in ids, f"{where}: DuplicateEntries {entry_id}"
        ids.add(entry_id)
        title = entry.findtext(f"{ATOM}title")
        assert title, f"{where}: MissingElement title"
        if plain_titles:
            assert not HTML_END_TAG.search(title), f"{where}: ContainsHTML in title {title!r}"
        updated = _date(entry.findtext(f"{ATOM}updated"), f"{where} updated")
        assert updated not in updates, f"{where}: DuplicateUpdated {updated}"
        updates.add(updated)
        newest = max(newest or updated, updated)
        published = entry.findtext(f"{ATOM}published")
        if published is not None:
            assert _date(published, f"{where} published") <= updated, f"{where}: published after updated"
        authors = entry.findall(f"{ATOM}author")
        assert all(a.findtext(f"{ATOM}name") for a in authors), f"{where}: author without a name"
        assert authors or feed_authors, f"{where}: MissingElement author"
        content, summary = entry.find(f"{ATOM}content"), entry.find(f"{ATOM}summary")
        links = entry.findall(f"{ATOM}link")
        if content is None:
            assert summary is not None, f"{where}: MissingTextualContent"
            assert any(link.get("rel", "alternate") == "alternate" for link in links), (
                f"{where}: MissingContentOrAlternate"
            )
        for construct in (content, summary):
            if construct is not None:
                assert construct.get("type") == "html", f"{where}: text construct type"
                assert construct.text, f"{where}: empty {construct.tag}"
                check_safe_html(construct.text, where)
        for link in links:
            _absolute(link.get("href"), f"{where} link")
        _alternates_unique(entry, where)
        for category in entry.findall(f"{ATOM}category"):
            assert category.get("term"), f"{where}: category without term"
            _absolute(category.get("scheme"), f"{where} category scheme")
    if newest is not None:
        assert feed_updated == newest, f"feed updated {feed_updated} is not its newest entry's {newest}"
    return root


def _rfc822(text: str | None, where: str) -> dt.datetime:
    assert text and RFC822.fullmatch(text), f"{where}: InvalidRFC2822Date {text!r}"
    value = email.utils.parsedate_to_datetime(text)
    assert value >= PLAUSIBLE_SINCE, f"{where}: ImplausibleDate {text}"
    return value


def check_rss(data: bytes, location: str) -> etree._Element:
    """Raise AssertionError on anything the validator would report for an RSS 2.0 feed at ``location``."""
    root = etree.fromstring(data)
    assert root.tag == "rss" and root.get("version") == "2.0", "not RSS 2.0"
    channels = root.findall("channel")
    assert len(channels) == 1, "one channel"
    channel = channels[0]
    for name in ("title", "link", "description"):
        assert channel.findtext(name), f"channel: MissingElement {name}"
    _absolute(channel.findtext("link"), "channel link")
    selfs = [link for link in channel.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert len(selfs) == 1, "channel: MissingAtomSelfLink"
    assert selfs[0].get("href") == location, f"SelfDoesntMatchLocation: {selfs[0].get('href')} != {location}"
    assert selfs[0].get("type") == "application/rss+xml", "self link type"
    if channel.find("lastBuildDate") is not None:
        _rfc822(channel.findtext("lastBuildDate"), "lastBuildDate")
    assert channel.find("managingEditor") is None, "managingEditor needs an e-mail address"
    guids = set()
    for index, item in enumerate(channel.findall("item")):
        where = f"item {index}"
        assert item.findtext("title") or item.findtext("description"), f"{where}: ItemMustContainTitleOrDescription"
        guid = item.find("guid")
        assert guid is not None and guid.text, f"{where}: MissingGuid"
        if not urlsplit(guid.text).scheme.startswith("http"):
            assert guid.get("isPermaLink") == "false", f"{where}: InvalidPermalink (guid is not a URL)"
        assert guid.text not in guids, f"{where}: DuplicateItem {guid.text}"
        guids.add(guid.text)
        # RSS <author> must be an e-mail address ("email (name)"); names belong in dc:creator.
        assert item.find("author") is None, f"{where}: InvalidContact in author"
        assert all(c.text for c in item.findall(f"{DC}creator")), f"{where}: empty dc:creator"
        if item.find("link") is not None:
            _absolute(item.findtext("link"), f"{where} link")
        if item.find("pubDate") is not None:
            _rfc822(item.findtext("pubDate"), f"{where} pubDate")
        for name in ("description", "{http://purl.org/rss/1.0/modules/content/}encoded"):
            if item.find(name) is not None:
                check_safe_html(item.findtext(name) or "", where)
        for category in item.findall("category"):
            assert category.text, f"{where}: empty category"
            _absolute(category.get("domain"), f"{where} category domain")
    return root
