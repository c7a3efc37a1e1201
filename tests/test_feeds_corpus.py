"""Feeds built from the whole real corpus: validator rules, feedparser, and ids/links/dates/authors.

feedparser takes seconds per megabyte, so it reads every file of the default window and, for the
whole corpus, the two files that hold every paper entry once (papers.atom and papers.rss); the
faster lxml checks of feed_rules cover every file of the whole corpus.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feed_rules import ATOM, check_atom, check_rss
from newsletter.config import Settings, settings_from_dict
from newsletter.feeds import OPML_PATH, category_slugs, render_feeds
from newsletter.ingest import ingest_files
from newsletter.parsing import expand_paths
from newsletter.store import Store

BASE_URL = "https://papers.example.org"
TAG = "tag:papers.example.org,2024:"


@pytest.fixture(scope="module")
def corpus_store(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                 module_store_url: str) -> Iterator[tuple[Settings, Store]]:
    folder = tmp_path_factory.mktemp("corpus-feeds")
    settings = settings_from_dict(
        {"store": {"url": module_store_url}, "site": {"base_url": BASE_URL}, "feeds": {"window_days": 0}},
        folder / "config.toml",
    )
    with Store.from_settings(settings) as store:
        report = ingest_files(settings, store, expand_paths([str(corpus_dir)]))
        assert report.counts.new > 1000
        yield settings, store


@pytest.fixture(scope="module")
def all_feeds(corpus_store: tuple[Settings, Store]) -> dict[str, bytes]:
    settings, store = corpus_store
    return render_feeds(settings, store)[0]


def default_window(settings: Settings) -> Settings:
    """The same store and site, with [feeds] left at its defaults."""
    return settings_from_dict({"store": {"url": "sqlite:///store.db"}, "site": {"base_url": BASE_URL}}, settings.path)


@pytest.fixture(scope="module")
def windowed_feeds(corpus_store: tuple[Settings, Store]) -> dict[str, bytes]:
    settings, store = corpus_store
    return render_feeds(default_window(settings), store)[0]


def check_feeds(feeds: dict[str, bytes], *, with_feedparser: bool) -> None:
    for relative, data in feeds.items():
        if relative in ("index.html", OPML_PATH):  # not feeds (test_private_feeds reads the OPML)
            continue
        location = f"{BASE_URL}/feeds/{relative}"
        if relative.endswith(".atom"):
            check_atom(data, location)
        else:
            check_rss(data, location)
        if with_feedparser:
            parsed = feedparser.parse(data)
            assert parsed.bozo == 0, (relative, parsed.get("bozo_exception"))


def test_every_feed_of_the_whole_corpus_passes_the_validator_rules(all_feeds: dict[str, bytes]) -> None:
    check_feeds(all_feeds, with_feedparser=False)


def test_every_feed_of_the_default_window_passes_the_rules_and_feedparser(windowed_feeds: dict[str, bytes]) -> None:
    assert len(windowed_feeds) == 16  # 7 feeds, Atom and RSS, index.html and feeds.opml
    check_feeds(windowed_feeds, with_feedparser=True)


def test_feedparser_reads_every_paper_of_the_corpus_as_an_rss_item(all_feeds: dict[str, bytes]) -> None:
    parsed = feedparser.parse(all_feeds["papers.rss"], sanitize_html=False, resolve_relative_uris=False)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == all_feeds["papers.atom"].count(b"<entry>")


def test_papers_feed_has_one_entry_per_paper_with_its_ids_links_dates_and_authors(
    corpus_store: tuple[Settings, Store], all_feeds: dict[str, bytes]
) -> None:
    _settings, store = corpus_store
    listings: dict[str, list[dt.date]] = {}
    papers = {}
    for day in store.days_between():
        for paper in day.papers:
            listings.setdefault(paper.arxiv_id, []).append(day.date)
            papers[paper.arxiv_id] = paper
    parsed = feedparser.parse(all_feeds["papers.atom"])
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    entries = {e.id: e for e in parsed.entries}
    assert len(parsed.entries) == len(entries) == len(papers)
    assert any(len(dates) > 1 for dates in listings.values()), "the corpus lists some paper on two days"
    for arxiv_id, paper in papers.items():
        entry = entries[f"{TAG}paper/{arxiv_id}"]
        links = {link.rel: link.href for link in entry.links}
        assert links["alternate"] == f"https://arxiv.org/abs/{arxiv_id}"
        assert links["related"] == paper.links.get("huggingface", f"https://huggingface.co/papers/{arxiv_id}")
        assert [a.name for a in entry.get("authors", [])] == [a.strip() for a in paper.authors if a.strip()]
        assert entry.published == f"{min(listings[arxiv_id]).isoformat()}T00:00:00+00:00"
        assert entry.updated.startswith(max(listings[arxiv_id]).isoformat())
        assert entry.title == paper.title.strip()
        assert {t.term for t in entry.get("tags", [])} == set(paper.categories)
    updated = [e.updated for e in parsed.entries]
    assert updated == sorted(updated, reverse=True), "newest first"


def entry_ids(data: bytes) -> list[str]:
    return [entry.findtext(f"{ATOM}id") for entry in etree.fromstring(data).iterfind(f"{ATOM}entry")]


def test_digest_and_category_feeds_cover_every_day_and_paper(
    corpus_store: tuple[Settings, Store], all_feeds: dict[str, bytes]
) -> None:
    settings, store = corpus_store
    days = store.days_between()
    assert entry_ids(all_feeds["digest.atom"]) == [f"{TAG}digest/{d.date.isoformat()}" for d in days]
    members: dict[str, set[str]] = {}
    for day in days:
        for paper in day.papers:
            for category in paper.categories:
                members.setdefault(category, set()).add(f"{TAG}paper/{paper.arxiv_id}")
    for name, slug in category_slugs(settings.categories.names).items():
        assert set(entry_ids(all_feeds[f"categories/{slug}.atom"])) == members.get(name, set()), name


def test_default_window_holds_the_days_up_to_the_newest_and_rebuilds_identically(
    corpus_store: tuple[Settings, Store], windowed_feeds: dict[str, bytes]
) -> None:
    settings, store = corpus_store
    windowed = default_window(settings)
    again, report = render_feeds(windowed, store)
    assert again == windowed_feeds
    # The window counts digest days, not calendar days (issue 17): the newest window_days of them.
    window = windowed.feeds.window_days
    assert report.days == window < len(store.dates())
    newest = [f"{TAG}digest/{d.isoformat()}" for d in store.dates()[:window]]
    assert entry_ids(windowed_feeds["digest.atom"]) == newest
