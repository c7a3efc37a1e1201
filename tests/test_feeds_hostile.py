"""Hostile text (control characters, NUL, U+2028, `]]>`, markup) still gives feeds that parse cleanly."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from feed_rules import ATOM, check_atom, check_rss
from newsletter.config import Settings, settings_from_dict
from newsletter.feeds import OPML_PATH, render_feeds
from newsletter.models import Day, Paper
from newsletter.sanitize import strip_invalid_xml
from newsletter.store import Store

BASE_URL = "https://papers.example.org"
PIECES = ["<script>alert(1)</script>", "]]>", "\u2028", "\u2029", "\x00", "\x08", "\x1f", "\x7f", "\x85", "\x80",
          "\uffff", "&", "&amp;", "<![CDATA[", "\r", "\n", " ", "**", "é", "\U0001f600", "x", "</title>", '"', "'"]
# No lone surrogates: text decoded from a file cannot hold them (and SQLite refuses them); the
# sanitiser's own tests cover them.
HOSTILE = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))


def as_feedparser_shows(title: str) -> str:
    """``title`` as feedparser reports it from a minimal, correct Atom entry.

    feedparser "repairs" text that looks like mis-decoded UTF-8 (it shows the title "Â¡" as "¡"), so
    our feed's title is compared with feedparser's reading of a reference document, not with the text.
    """
    feed = etree.Element(f"{ATOM}feed", nsmap={None: ATOM[1:-1]})
    etree.SubElement(etree.SubElement(feed, f"{ATOM}entry"), f"{ATOM}title").text = title
    return str(feedparser.parse(etree.tostring(feed, encoding="utf-8", xml_declaration=True)).entries[0].title)


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Iterator[tuple[Settings, Store]]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    settings = settings_from_dict(
        {"store": {"url": module_store_url}, "feeds": {"window_days": 1}, "site": {"base_url": BASE_URL}},
        folder / "config.toml",
    )
    with Store.from_settings(settings) as store:
        yield settings, store


_days = itertools.count()


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=HOSTILE, summary=HOSTILE, author=HOSTILE, category=HOSTILE)
@example(title="Â¡", summary="", author="Â¡", category="")  # feedparser shows "¡"; the feed holds "Â¡"
def test_hostile_text_gives_valid_feeds_and_round_trips(
    hostile_store: tuple[Settings, Store], title: str, summary: str, author: str, category: str
) -> None:
    settings, store = hostile_store
    # A fresh day per example; the one-day window keeps earlier examples out of the feeds.
    day = dt.date(2001, 1, 1) + dt.timedelta(days=next(_days))
    store.ingest([Day(day, [Paper(arxiv_id="2501.00001", title=title, summary=summary, authors=[author, "Plain Name"],
                                  categories=[category, "Machine Learning"])], source="hostile.md")])
    outputs, _report = render_feeds(settings, store)
    expected_title = strip_invalid_xml(title).strip() or "arXiv:2501.00001"
    expected_authors = [a for a in (strip_invalid_xml(author).strip(), "Plain Name") if a]
    for relative, data in outputs.items():
        if relative == "index.html":
            continue
        if relative == OPML_PATH:  # not a feed: it must still be well-formed XML
            assert etree.fromstring(data).tag == "opml"
            continue
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, (relative, parsed.get("bozo_exception"))
        location = f"{BASE_URL}/feeds/{relative}"
        if relative.endswith(".rss"):
            check_rss(data, location)
            continue
        root = check_atom(data, location, plain_titles=False)
        if relative == "papers.atom":
            entry = root.find(f"{ATOM}entry")
            assert entry.findtext(f"{ATOM}title") == expected_title
            assert [a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author")] == expected_authors
            assert parsed.entries[0].title == as_feedparser_shows(expected_title)


def test_a_title_made_only_of_invalid_characters_falls_back_to_the_arxiv_id(
    hostile_store: tuple[Settings, Store],
) -> None:
    settings, store = hostile_store
    store.ingest([Day(dt.date(2030, 1, 1), [Paper(arxiv_id="2501.00002", title="\x00\x01\ufffe")], source="x.md")])
    outputs, _report = render_feeds(settings, store)
    root = etree.fromstring(outputs["papers.atom"])
    assert root.find(f"{ATOM}entry").findtext(f"{ATOM}title") == "arXiv:2501.00002"
