"""Feeds from a real SQLite store: ids, dates, links, stable bytes, safe writes, golden output."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import feedparser
import pytest

from feed_rules import check_atom, check_rss
from helpers import row, run, write_config, write_day
from newsletter import __version__
from newsletter.config import Settings, settings_from_dict
from newsletter.errors import ConfigError, FeedError
from newsletter.feeds import build_feeds, category_slugs, listing_time, midnight, slugify
from newsletter.models import Day, Paper, Point, QuizQuestion
from newsletter.store import Store

BASE_URL = "https://papers.example.org/site"
TAG = "tag:papers.example.org,2024:"
GOLDEN_DIR = Path(__file__).parent / "golden" / "feeds"
REGEN_ENV = "NEWSLETTER_REGEN_GOLDEN"

D1, D2, D3 = dt.date(2025, 3, 3), dt.date(2025, 3, 4), dt.date(2025, 3, 5)


def make_settings(tmp_path: Path, **feeds: object) -> Settings:
    raw = {
        "site": {"title": "Test Papers", "base_url": BASE_URL, "description": "Papers, daily.", "author": "Editors"},
        "store": {"url": "sqlite:///store.db"},
        "feeds": {"dir": "out", **feeds},
        "categories": {"fallback": "Vision", "taxonomy": {"Vision": ["image"], "Language": ["text"],
                                                          "Robots & Agents": ["robot"]}},
    }
    return settings_from_dict(raw, tmp_path / "config.toml")


def paper(arxiv_id: str, title: str, categories: list[str], **kwargs: object) -> Paper:
    defaults: dict[str, object] = {
        "authors": ["Ada Lovelace", "Alan Turing"],
        "summary": f"Summary of **{title}** with *emphasis*.",
        "links": {"arxiv": f"https://arxiv.org/abs/{arxiv_id}", "huggingface": f"https://huggingface.co/papers/{arxiv_id}"},
    }
    return Paper(arxiv_id=arxiv_id, title=title, categories=categories, **{**defaults, **kwargs})  # type: ignore[arg-type]


def fixture_days() -> list[Day]:
    points = [Point("Topic and Domain", "Video *generation*."), Point("Results", "Better <b>than</b> before.")]
    cards = paper(
        "2503.00003", "Cards paper", ["Vision"], summary="", points=points,  # none, as the cards parser gives it
        quiz=[QuizQuestion("1. What is studied?", ("A. Video", "B. Text", "C. Audio"), "A")],
    )
    return [
        Day(D1, [
            paper("2503.00001", "First paper", ["Vision"]),
            paper("2503.00002", "Relisted paper", ["Language", "Vision"]),
        ], source="d1.md"),
        Day(D2, [
            paper("2503.00002", "Relisted paper", ["Language", "Vision"]),
            cards,
            paper("2503.00004", "No authors & <odd> title", ["Language"], authors=[],
                  summary="Uses [a link](https://example.com/x?a=1&b=2) and [bad](javascript:alert(1))."),
        ], source="d2.md"),
    ]


@pytest.fixture
def settings(tmp_path: Path, store_backend: str) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Store:
    with Store.from_settings(settings) as opened:
        yield opened


def out_dir(settings: Settings) -> Path:
    return settings.resolve(settings.feeds.dir)


def read_all(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def feed_paths(settings: Settings) -> list[str]:
    stems = ["papers", "digest", *(f"categories/{s}" for s in category_slugs(settings.categories.names).values())]
    return [f"{stem}.{suffix}" for stem in stems for suffix in ("atom", "rss")]


def test_every_feed_is_written_and_passes_the_validator_rules(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    report = build_feeds(settings, store)
    folder = out_dir(settings)
    written = sorted(str(p.relative_to(folder)) for p in report.written)
    assert written == sorted([*feed_paths(settings), "index.html", "feeds.opml"])
    for relative in feed_paths(settings):
        data = (folder / relative).read_bytes()
        location = f"{BASE_URL}/feeds/{relative}"
        if relative.endswith(".atom"):
            check_atom(data, location, plain_titles=False)
        else:
            check_rss(data, location)
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, (relative, parsed.get("bozo_exception"))


def test_paper_entries_carry_ids_links_authors_categories_and_digest_dates(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)
    parsed = feedparser.parse((out_dir(settings) / "papers.atom").read_bytes())
    feed = parsed.feed
    assert feed.id == TAG + "feed/papers"
    assert feed.title == "Test Papers" and feed.subtitle == "Papers, daily."
    assert feed.author_detail.name == "Editors"
    assert feed.generator == "newsletter" and feed.generator_detail.version == __version__
    assert {(link.rel, link.href) for link in feed.links} == {
        ("self", f"{BASE_URL}/feeds/papers.atom"), ("alternate", f"{BASE_URL}/")}

    entries = {e.id.removeprefix(TAG + "paper/"): e for e in parsed.entries}
    # Newest listing first, digest order within a day; the relisted paper is one entry.
    assert [e.id for e in parsed.entries] == [TAG + "paper/" + i for i in ("2503.00002", "2503.00003", "2503.00004",
                                                                         "2503.00001")]
    relisted = entries["2503.00002"]
    assert relisted.published == "2025-03-03T00:00:00+00:00"  # first listing
    assert relisted.updated == listing_time(D2, 0, 3).isoformat()  # newest listing, first of three
    assert feed.updated == relisted.updated
    assert {(link.rel, link.href) for link in relisted.links} == {
        ("alternate", "https://arxiv.org/abs/2503.00002"), ("related", "https://huggingface.co/papers/2503.00002")}
    assert [a.name for a in relisted.authors] == ["Ada Lovelace", "Alan Turing"]
    scheme = f"{BASE_URL}/feeds/categories/"
    assert [(t.term, t.label, t.scheme) for t in relisted.tags] == [
        ("Language", "Language", scheme), ("Vision", "Vision", scheme)]
    assert "<strong>Relisted paper</strong>" in relisted.summary and "<em>emphasis</em>" in relisted.summary

    cards = entries["2503.00003"]
    content = cards.content[0].value
    assert "<strong>Topic and Domain:</strong> Video <em>generation</em>." in content
    assert "Better &lt;b&gt;than&lt;/b&gt; before." in content  # raw HTML in a point is text
    assert "What is studied?" in content and "A. Video" in content
    assert content.count("Video <em>generation</em>.") == 1  # its summary is its points: listed once
    assert "Video <em>generation</em>." in cards.summary

    odd = entries["2503.00004"]
    assert odd.title == "No authors & <odd> title"
    assert "authors" not in odd  # the feed's author stands in
    assert '<a href="https://example.com/x?a=1&amp;b=2" rel="noopener noreferrer nofollow">a link</a>' in odd.summary
    assert "[bad](javascript:alert(1))" in odd.summary and 'href="javascript' not in odd.summary  # shown, not linked


def test_rss_twin_uses_guids_dc_creator_and_rfc822_dates(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)
    root = check_rss((out_dir(settings) / "papers.rss").read_bytes(), f"{BASE_URL}/feeds/papers.rss")
    channel = root.find("channel")
    assert channel.findtext("link") == f"{BASE_URL}/"
    assert channel.findtext("lastBuildDate") == "Tue, 04 Mar 2025 00:00:02 +0000"
    item = channel.find("item")
    assert item.findtext("guid") == TAG + "paper/2503.00002"
    assert item.find("guid").get("isPermaLink") == "false"
    assert item.findtext("pubDate") == "Mon, 03 Mar 2025 00:00:00 +0000"
    creators = [c.text for c in item.findall("{http://purl.org/dc/elements/1.1/}creator")]
    assert creators == ["Ada Lovelace", "Alan Turing"]


def test_digest_feed_has_one_entry_per_day_listing_its_papers(settings: Settings, store: Store) -> None:
    store.ingest([*fixture_days(), Day(D3, [], source="d3.md")])
    build_feeds(settings, store)
    parsed = feedparser.parse((out_dir(settings) / "digest.atom").read_bytes())
    assert [e.id for e in parsed.entries] == [TAG + f"digest/{d.isoformat()}" for d in (D3, D2, D1)]
    assert parsed.feed.updated == midnight(D3).isoformat()
    assert "No papers were listed" in parsed.entries[0].content[0].value
    day2 = parsed.entries[1].content[0].value
    assert day2.index("Relisted paper") < day2.index("Cards paper") < day2.index("No authors")
    assert '<a href="https://arxiv.org/abs/2503.00003">Cards paper</a>' in day2
    assert parsed.entries[1].published == parsed.entries[1].updated == "2025-03-04T00:00:00+00:00"


def test_category_feeds_exist_for_every_taxonomy_category_even_empty(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)
    folder = out_dir(settings) / "categories"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{slug}.{suffix}" for slug in ("vision", "language", "robots-agents") for suffix in ("atom", "rss"))
    vision = feedparser.parse((folder / "vision.atom").read_bytes())
    assert [e.id.rsplit("/", 1)[1] for e in vision.entries] == ["2503.00002", "2503.00003", "2503.00001"]
    assert vision.feed.id == TAG + "feed/category/vision"
    empty = feedparser.parse((folder / "robots-agents.atom").read_bytes())
    assert empty.bozo == 0 and empty.entries == []
    assert empty.feed.updated == midnight(D2).isoformat()  # the newest day in the store, not the clock
    assert empty.feed.title == "Test Papers: Robots & Agents"


def test_an_empty_store_gives_valid_feeds_dated_from_tag_date(settings: Settings, store: Store) -> None:
    build_feeds(settings, store)
    data = (out_dir(settings) / "papers.atom").read_bytes()
    check_atom(data, f"{BASE_URL}/feeds/papers.atom")
    assert feedparser.parse(data).feed.updated == "2024-01-01T00:00:00+00:00"


def test_rebuild_with_nothing_new_leaves_every_file_untouched(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)
    before = read_all(out_dir(settings))
    stats = {p: os.stat(out_dir(settings) / p) for p in before}
    report = build_feeds(settings, store)
    assert report.written == [] and len(report.unchanged) == len(before)
    assert read_all(out_dir(settings)) == before
    for relative, stat in stats.items():
        now = os.stat(out_dir(settings) / relative)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), relative


def test_a_new_day_keeps_every_old_id_and_date(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)

    def entries(name: str) -> dict[str, tuple[str, str]]:
        parsed = feedparser.parse((out_dir(settings) / name).read_bytes())
        return {e.id: (e.published, e.updated) for e in parsed.entries}

    old = {name: entries(name) for name in ("papers.atom", "digest.atom", "categories/vision.atom")}
    store.ingest([Day(D3, [paper("2503.00005", "New paper", ["Vision"])], source="d3.md")])
    report = build_feeds(settings, store)
    assert out_dir(settings) / "categories/language.atom" not in report.written  # nothing new in Language
    for name, before in old.items():
        after = entries(name)
        assert {k: after[k] for k in before} == before, name
        assert len(after) == len(before) + 1


@pytest.mark.usefixtures("store_backend")
def test_window_keeps_recent_days_but_true_first_listing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, window_days=1)
    with Store.from_settings(settings) as store:
        store.ingest(fixture_days())
        report = build_feeds(settings, store)
    assert (report.papers, report.days) == (3, 1)
    parsed = feedparser.parse((out_dir(settings) / "papers.atom").read_bytes())
    assert [e.id.rsplit("/", 1)[1] for e in parsed.entries] == ["2503.00002", "2503.00003", "2503.00004"]
    assert parsed.entries[0].published == "2025-03-03T00:00:00+00:00"  # listed before the window too
    assert len(feedparser.parse((out_dir(settings) / "digest.atom").read_bytes()).entries) == 1


@pytest.mark.usefixtures("store_backend")
def test_window_counts_digest_days_so_a_late_file_pushes_no_day_out(tmp_path: Path) -> None:
    """Issue 17: two days in the window, then a digest file three weeks later: the window holds the
    newest two digest days (the late one and D2), not just the calendar days that have none."""
    settings = make_settings(tmp_path, window_days=2)
    late = dt.date(2025, 3, 26)
    with Store.from_settings(settings) as store:
        store.ingest([*fixture_days(), Day(late, [paper("2503.00009", "Late paper", ["Vision"])], source="late.md")])
        report = build_feeds(settings, store)
    assert report.days == 2
    digest = feedparser.parse((out_dir(settings) / "digest.atom").read_bytes())
    assert [e.id.rsplit("/", 1)[1] for e in digest.entries] == [late.isoformat(), D2.isoformat()]
    papers = feedparser.parse((out_dir(settings) / "papers.atom").read_bytes())
    assert {e.id.rsplit("/", 1)[1] for e in papers.entries} == {"2503.00009", "2503.00002", "2503.00003", "2503.00004"}


def test_digest_entries_link_to_their_day_on_the_archive(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    build_feeds(settings, store)
    for name in ("digest.atom", "digest.rss"):
        parsed = feedparser.parse((out_dir(settings) / name).read_bytes())
        assert parsed.bozo == 0, name
        assert [e.link for e in parsed.entries] == [f"{BASE_URL}/archive/{D2.isoformat()}",
                                                    f"{BASE_URL}/archive/{D1.isoformat()}"], name


@pytest.mark.usefixtures("store_backend")
def test_rss_can_be_switched_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rss=False)
    with Store.from_settings(settings) as store:
        store.ingest(fixture_days())
        build_feeds(settings, store)
    files = read_all(out_dir(settings))
    assert not [name for name in files if name.endswith(".rss")]
    assert b"application/rss+xml" not in files["index.html"]


def test_index_page_links_every_feed_for_discovery(settings: Settings, store: Store) -> None:
    build_feeds(settings, store)
    page = (out_dir(settings) / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    for relative in feed_paths(settings):
        kind = "atom" if relative.endswith(".atom") else "rss"
        assert f'<link rel="alternate" type="application/{kind}+xml"' in page
        assert f'href="{relative}">' in page
    assert "Test Papers: Robots &amp; Agents" in page


def test_writes_are_atomic_replacements_readable_by_the_web_server(settings: Settings, store: Store) -> None:
    build_feeds(settings, store)
    target = out_dir(settings) / "papers.atom"
    with target.open("rb") as reader:  # a client in the middle of a download
        old = reader.read()
        store.ingest(fixture_days())
        build_feeds(settings, store)
        reader.seek(0)
        assert reader.read() == old  # still the whole old file, not a mix
    assert target.read_bytes() != old
    assert target.stat().st_mode & 0o777 == 0o644
    assert not [p for p in out_dir(settings).rglob("*") if p.name.startswith(".")], "temporary files left behind"


def test_a_file_that_cannot_be_written_does_not_stop_the_others(settings: Settings, store: Store) -> None:
    store.ingest(fixture_days())
    out_dir(settings).mkdir(parents=True)
    (out_dir(settings) / "categories").write_text("not a folder")
    with pytest.raises(FeedError) as raised:
        build_feeds(settings, store)
    assert "categories/vision.atom" in str(raised.value) and raised.value.hint
    assert (out_dir(settings) / "papers.atom").is_file() and (out_dir(settings) / "index.html").is_file()


def test_slugs_are_file_names_and_clashes_are_refused() -> None:
    assert slugify("Multi-Modal") == "multi-modal"
    assert slugify("Natural Language Processing") == "natural-language-processing"
    assert slugify("Économie & Société") == "economie-societe"
    with pytest.raises(ConfigError, match="share the feed"):
        category_slugs(["Computer Vision", "computer-vision"])
    with pytest.raises(ConfigError, match="no letters or digits"):
        category_slugs(["視覚"])


@pytest.mark.parametrize("value", ["24", "2024-13", "2024-02-30x", "today"])
def test_tag_date_must_be_a_date(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"feeds\.tag_date"):
        make_settings(tmp_path, tag_date=value)


@pytest.mark.usefixtures("store_backend")
def test_feeds_command_reports_written_then_unchanged(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = run(config, "feeds")
    assert first.exit_code == 0, first.output
    assert "16 files written, 0 unchanged" in first.output
    # Empty feeds are valid, but an operator who forgot to ingest is told why they are empty.
    assert "warning: the store holds no papers yet: the feeds are empty; run `newsletter ingest` first" in first.stderr
    second = run(config, "feeds")
    assert second.exit_code == 0 and "0 files written, 16 unchanged" in second.output
    assert (tmp_path / "feeds" / "papers.atom").is_file()
    as_json = json.loads(run(config, "feeds", "--json").output)  # stderr mixed in: the warning is in the JSON
    assert as_json["warnings"] == ["the store holds no papers yet: the feeds are empty; run `newsletter ingest` first"]


@pytest.mark.usefixtures("store_backend")
def test_feeds_command_warns_of_nothing_once_papers_are_stored(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    write_day(tmp_path / "digests", "2025-01-01.md", "2025-01-01", [row("2501.00001", "A Title", "A summary.")])
    assert run(config, "ingest").exit_code == 0
    result = run(config, "feeds")
    assert result.exit_code == 0, result.output
    assert "the store holds no papers" not in result.stderr


@pytest.mark.usefixtures("store_backend")
def test_feeds_command_turns_an_unwritable_folder_into_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "feeds").write_text("a file where the folder should be")
    result = run(config, "feeds")
    assert result.exit_code == 1
    assert "could not be written" in result.output and "hint:" in result.output


def _golden_bytes(data: bytes) -> bytes:
    # The generator element names the package version; keep the golden valid across releases.
    return data.replace(f'version="{__version__}"'.encode(), b'version="VERSION"')


def test_golden_files(settings: Settings, store: Store) -> None:
    """Byte-for-byte output for the small fixture. Regenerate with NEWSLETTER_REGEN_GOLDEN=1 and review the diff."""
    store.ingest(fixture_days())
    build_feeds(settings, store)
    produced = {name: _golden_bytes(data) for name, data in read_all(out_dir(settings)).items()}
    if os.environ.get(REGEN_ENV):
        for name, data in produced.items():
            (GOLDEN_DIR / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN_DIR / name).write_bytes(data)
    expected = read_all(GOLDEN_DIR)
    assert sorted(produced) == sorted(expected)
    for name, data in produced.items():
        assert data == expected[name], f"{name} differs from tests/golden/feeds; rerun with {REGEN_ENV}=1 if intended"
