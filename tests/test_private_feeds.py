"""Private feeds and the OPML list, against `newsletter serve` as a real process on 127.0.0.1, with a
real HTTP client (requests), a real SQLite store, feedparser and the W3C feed rules."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path

import feedparser
import pytest
import requests
from lxml import etree
from sqlalchemy import text

from feed_rules import ATOM, check_atom, check_rss
from helpers import row, run, write_config, write_day
from legacy_schema import back_before_stored_renditions
from newsletter.config import load_settings
from newsletter.feeds import OPML_PATH, feed_specs
from newsletter.models import Day, Paper, Subscriber
from newsletter.store import Store
from newsletter.store.migrations import VERSION_TABLE
from web_support import BASE_URL, SECRET, SECRET_ENV, check_page, local, newsletter_serve, web_config

FEED_URL = re.compile(re.escape(BASE_URL) + r"/private/[A-Za-z0-9_-]+\.atom")


@dataclass
class Site:
    config: Path
    base: str

    def store(self) -> Store:
        return Store.from_settings(load_settings(self.config))

    def add(self, address: str, *args: str) -> Subscriber:
        result = run(self.config, "subscribers", "add", address, *args)
        assert result.exit_code == 0, result.output
        return self.subscriber(address)

    def subscriber(self, address: str) -> Subscriber:
        with self.store() as store:
            found = store.get_subscriber(address)
        assert found is not None
        return found

    def show(self, address: str) -> dict[str, str]:
        result = run(self.config, "subscribers", "show", address, "--json")
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    def feed(self, address: str, kind: str = "atom", **headers: str) -> requests.Response:
        return requests.get(local(self.show(address)[f"feed_url{'' if kind == 'atom' else '_rss'}"], self.base),
                            headers=headers, timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("private-feeds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, SECRET)
        config = web_config(folder, smtp_port=9, store_url=module_store_url)  # no email is sent here
        for args in (["ingest"], ["feeds"]):
            result = run(config, *args)
            assert result.exit_code == 0, result.output
        with newsletter_serve(config, dict(os.environ)) as base:
            yield Site(config, base)


def entry_ids(data: bytes) -> list[str]:
    return [e.findtext(f"{ATOM}id") for e in etree.fromstring(data).iter(f"{ATOM}entry")]


def test_a_filtered_feed_holds_the_filters_papers_and_passes_the_feed_rules(site: Site) -> None:
    site.add("kw@example.org", "--keyword", "reward", "--keyword", "diffusion", "--exclude", "survey")
    atom, rss = site.feed("kw@example.org"), site.feed("kw@example.org", "rss")
    assert atom.status_code == 200 and atom.headers["Content-Type"].startswith("application/atom+xml")
    assert rss.status_code == 200 and rss.headers["Content-Type"].startswith("application/rss+xml")
    shown = site.show("kw@example.org")
    check_atom(atom.content, shown["feed_url"])  # its self link is its own secret address
    check_rss(rss.content, shown["feed_url_rss"])
    for response in (atom, rss):
        parsed = feedparser.parse(response.content)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.title for e in feedparser.parse(atom.content).entries] == [
        "Reward Models Disagree: Ensembles for Safer RLHF"]
    assert "private" in atom.headers["Cache-Control"]


def test_a_reader_without_a_filter_gets_the_public_papers_feeds_entries(site: Site) -> None:
    site.add("all@example.org")
    private = etree.fromstring(site.feed("all@example.org").content)
    public = etree.fromstring(requests.get(f"{site.base}/feeds/papers.atom", timeout=10).content)
    entries = [etree.tostring(e) for e in private.iter(f"{ATOM}entry")]
    assert entries and entries == [etree.tostring(e) for e in public.iter(f"{ATOM}entry")]


def test_conditional_get_is_304_until_a_new_day_is_ingested(site: Site, tmp_path: Path) -> None:
    site.add("cond@example.org", "--keyword", "agents")
    first = site.feed("cond@example.org")
    etag = first.headers["ETag"]
    assert not etag.startswith("W/")
    again = site.feed("cond@example.org", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert site.feed("cond@example.org", **{"If-None-Match": '"stale"'}).content == first.content
    assert site.feed("cond@example.org", **{"If-None-Match": f'"other", {etag}'}).status_code == 304
    url = local(site.show("cond@example.org")["feed_url"], site.base)
    assert requests.head(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304

    day = write_day(tmp_path / "digests", "2026-11-23.md", "2026-11-23", [
        row("2611.09001", "Tool-Using Agents That Plan Ahead", "Agents that plan their tool calls ahead."),
        row("2611.09002", "A Faster Tokenizer", "Tokenizing text quickly."),
    ])
    result = run(site.config, "ingest", str(day))
    assert result.exit_code == 0, result.output
    fresh = site.feed("cond@example.org", **{"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert "tag:papers.example.org,2024:paper/2611.09001" in entry_ids(fresh.content)
    assert "tag:papers.example.org,2024:paper/2611.09002" not in entry_ids(fresh.content)
    assert site.feed("cond@example.org", **{"If-None-Match": fresh.headers["ETag"]}).status_code == 304


def test_a_changed_filter_changes_the_feed_at_once(site: Site) -> None:
    site.add("change@example.org", "--category", "Computer Vision")
    before = site.feed("change@example.org")
    result = run(site.config, "subscribers", "update", "change@example.org", "--category", "Multi-Modal")
    assert result.exit_code == 0, result.output
    after = site.feed("change@example.org", **{"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and entry_ids(after.content) != entry_ids(before.content)


def not_found(response: requests.Response) -> tuple[int, str, bytes]:
    return response.status_code, response.headers["Content-Type"], response.content


def test_rotated_forged_unknown_and_inactive_tokens_get_the_same_404(site: Site) -> None:
    unknown = not_found(requests.get(f"{site.base}/private/{'A' * 43}.atom", timeout=10))
    assert unknown[0] == 404
    rotated = site.add("rotate@example.org")
    old_url = local(site.show("rotate@example.org")["feed_url"], site.base)
    assert requests.get(old_url, timeout=10).status_code == 200
    result = run(site.config, "subscribers", "rotate-feed", "rotate@example.org")
    assert result.exit_code == 0, result.output
    new_url = site.show("rotate@example.org")["feed_url"]
    assert new_url in result.output and new_url != old_url
    assert not_found(requests.get(old_url, timeout=10)) == unknown
    assert not_found(requests.get(old_url.replace(".atom", ".rss"), timeout=10)) == unknown
    assert requests.get(local(new_url, site.base), timeout=10).status_code == 200
    # A forged token: the real one with its last character changed.
    token = rotated.feed_token
    forged = site.subscriber("rotate@example.org").feed_token
    forged = forged[:-1] + ("B" if forged[-1] != "B" else "C")
    assert token != forged
    assert not_found(requests.get(f"{site.base}/private/{forged}.atom", timeout=10)) == unknown

    for status in ("unsubscribed", "bounced", "pending"):
        address = f"{status}@example.org"
        site.add(address)
        url = local(site.show(address)["feed_url"], site.base)
        assert requests.get(url, timeout=10).status_code == 200
        with site.store() as store:
            store.set_subscriber_status(address, status)  # type: ignore[arg-type]
        assert not_found(requests.get(url, timeout=10)) == unknown, status


def test_show_and_rotate_feed_report_an_unknown_address(site: Site) -> None:
    for command in ("show", "rotate-feed"):
        result = run(site.config, "subscribers", command, "nobody@example.org")
        assert result.exit_code == 1 and "nobody@example.org is not a subscriber" in result.output


def test_show_prints_the_feed_addresses(site: Site) -> None:
    site.add("shown@example.org", "--name", "Shown Reader", "--keyword", "robots")
    result = run(site.config, "subscribers", "show", "shown@example.org")
    assert result.exit_code == 0, result.output
    shown = site.show("shown@example.org")
    assert shown["feed_url"] in result.output and shown["feed_url_rss"] in result.output
    assert shown["feed_url_rss"] == shown["feed_url"].removesuffix(".atom") + ".rss"
    assert FEED_URL.fullmatch(shown["feed_url"]) and "robots" in shown["filter"]


def preferences_url(site: Site, subscriber: Subscriber) -> str:
    from newsletter import tokens
    return f"{site.base}/preferences/{tokens.Tokens(SECRET.encode()).make(tokens.PREFERENCES, subscriber.token)}"


def test_the_preferences_page_shows_the_feed_and_gives_it_a_new_address(site: Site) -> None:
    reader = site.add("prefs@example.org", "--keyword", "policy")
    url = preferences_url(site, reader)
    tree = check_page(requests.get(url, timeout=10))
    feed_url = site.show("prefs@example.org")["feed_url"]
    links = [a.get("href") for a in tree.iter("a")]
    assert feed_url in links and feed_url.removesuffix(".atom") + ".rss" in links

    page = requests.post(url, data={"action": "rotate-feed"}, timeout=10)
    tree = check_page(page)
    new_url = site.show("prefs@example.org")["feed_url"]
    assert new_url != feed_url and new_url in [a.get("href") for a in tree.iter("a")]
    assert "new address" in page.text
    assert requests.get(local(feed_url, site.base), timeout=10).status_code == 404
    assert requests.get(local(new_url, site.base), timeout=10).status_code == 200


def test_the_email_footer_links_the_private_feed(site: Site) -> None:
    site.add("mailed@example.org", "--category", "Computer Vision")
    outbox = site.config.parent / "dry-run"
    result = run(site.config, "send", "--dry-run", "--date", "2026-11-20", "--outbox", str(outbox))
    assert result.exit_code == 0, result.output
    [path] = (outbox / "2026-11-20").glob("*-mailed@example.org.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    feed_url = site.show("mailed@example.org")["feed_url"]
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        assert part is not None and feed_url in part.get_content(), kind
    assert "Follow this in your feed reader" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_the_opml_lists_every_public_feed_and_the_index_links_it(site: Site) -> None:
    response = requests.get(f"{site.base}/feeds/{OPML_PATH}", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/x-opml")
    assert response.content == (site.config.parent / "feeds" / OPML_PATH).read_bytes()
    root = etree.fromstring(response.content)
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = root.findall("body/outline")
    settings = load_settings(site.config)
    specs = feed_specs(settings)
    assert [o.get("xmlUrl") for o in outlines] == [f"{BASE_URL}/feeds/{spec.path}.atom" for spec in specs]
    assert [o.get("title") for o in outlines] == [spec.title for spec in specs]
    for outline in outlines:  # each listed feed is served
        feed = requests.get(local(outline.get("xmlUrl"), site.base), timeout=10)
        assert feed.status_code == 200 and feedparser.parse(feed.content).bozo == 0
    index = requests.get(f"{site.base}/feeds/", timeout=10).text
    assert f'href="{OPML_PATH}"' in index
    home = check_page(requests.get(f"{site.base}/", timeout=10))
    assert f"/feeds/{OPML_PATH}" in [a.get("href") for a in home.iter("a")]
    assert len(feed_specs(settings)) == 2 + len(settings.categories.names)


def test_existing_subscribers_get_a_feed_token_when_the_store_is_upgraded(tmp_path: Path, store_url: str) -> None:
    with Store(store_url) as store, store.engine.begin() as conn:  # back to revision 0003, before feed tokens
        store.add_subscriber(Subscriber(email="old@example.org"))
        back_before_stored_renditions(conn)
        conn.execute(text("DROP TABLE feed_tokens"))
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0003'"))
    upgraded = run(write_config(tmp_path, store_url=store_url), "db", "upgrade")
    assert upgraded.exit_code == 0 and "upgraded from revision 0003" in upgraded.output, upgraded.output
    with Store(store_url) as store:
        found = store.get_subscriber("old@example.org")
        assert found is not None and len(found.feed_token) >= 43
        assert opened_by(store, found.feed_token) == found


def opened_by(store: Store, token: str) -> Subscriber | None:
    found = store.feed_reader(token)
    return None if found is None else found[0]


def test_feed_tokens_in_the_store(store_url: str) -> None:
    with Store(store_url) as store:
        ada = store.add_subscriber(Subscriber(email="ada@example.org"))
        bob = store.add_subscriber(Subscriber(email="bob@example.org"))
        assert ada.id is not None and len({ada.feed_token, bob.feed_token}) == 2
        assert len(ada.feed_token) >= 43  # 32 random bytes, URL-safe base64
        assert opened_by(store, ada.feed_token) == ada
        assert opened_by(store, "") is None
        assert opened_by(store, ada.token) is None  # the link token opens no feed
        new = store.rotate_feed_token(ada.id)
        assert opened_by(store, ada.feed_token) is None
        assert opened_by(store, new) == store.get_subscriber("ada@example.org")
        assert store.get_subscriber("bob@example.org") == bob
        assert store.remove_subscriber("ada@example.org")
        assert opened_by(store, new) is None


# -- previewing a filter ---------------------------------------------------------------------------

def test_preview_lists_each_days_papers_with_their_reasons(site: Site) -> None:
    site.add("preview@example.org", "--category", "Natural Language Processing")
    stored = run(site.config, "subscribers", "preview", "preview@example.org", "--days", "14", "--json")
    assert stored.exit_code == 0, stored.output
    days = json.loads(stored.stdout)["days"]
    dates = [d["date"] for d in days]  # every digest day, newest first (another test may add one)
    assert dates == sorted(dates, reverse=True) and {"2026-11-20", "2026-11-19"} <= set(dates)
    by_id = {p["arxiv_id"]: p for d in days for p in d["papers"]}
    assert by_id["2611.05033"]["reasons"] == ["category Natural Language Processing"]
    assert "2611.05120" not in by_id  # Computer Vision

    tried = run(site.config, "subscribers", "preview", "preview@example.org", "--keyword", "reasoning",
                "--author", "Lena Hartmann", "--json")
    assert tried.exit_code == 0, tried.output
    tried_ids = {p["arxiv_id"]: p["reasons"] for d in json.loads(tried.stdout)["days"] for p in d["papers"]}
    assert tried_ids == {
        "2611.05033": ["category Natural Language Processing", "keyword reasoning in the summary"],
        "2611.05120": ["author Lena Hartmann"],  # followed: whatever the categories say
    }
    # Nothing was saved.
    assert site.subscriber("preview@example.org").keywords == []

    text = run(site.config, "subscribers", "preview", "preview@example.org", "--days", "1")
    assert text.exit_code == 0, text.output
    newest = days[0]
    assert f"{newest['date']}: {len(newest['papers'])} paper" in text.output
    assert "over 1 digest days for Natural Language Processing" in text.output

    bad = run(site.config, "subscribers", "preview", "preview@example.org", "--category", "Astrology")
    assert bad.exit_code == 2 and "Astrology" in bad.output


def test_the_preferences_page_previews_a_filter_without_saving_it(site: Site) -> None:
    reader = site.add("pagepreview@example.org", "--category", "Computer Vision")
    url = preferences_url(site, reader)
    page = requests.post(url, data={"action": "preview", "categories_shown": "1",
                                    "category": "Natural Language Processing", "keywords": "reasoning"}, timeout=10)
    tree = check_page(page)
    preview = tree.find(".//section[@id='preview']")
    assert preview is not None
    text = " ".join("".join(preview.itertext()).split())
    assert "Shorter Thoughts, Same Answers" in text
    assert "category Natural Language Processing; keyword reasoning in the summary" in text
    assert "2026-11-20: 1 paper" in text
    assert "Gaussian Splats" not in text
    # The form holds the filter as typed, and nothing is stored until Save.
    assert tree.find(".//input[@id='keywords']").get("value") == "reasoning"
    assert site.subscriber("pagepreview@example.org").categories == ["Computer Vision"]
    assert site.subscriber("pagepreview@example.org").keywords == []


def test_the_content_marker_changes_exactly_when_listings_change(store_url: str) -> None:
    def day(date: str, source: str, *papers: tuple[str, str]) -> Day:
        return Day(dt.date.fromisoformat(date), [Paper(a, f"Title {a}", summary=s) for a, s in papers], source)

    def at(minute: int) -> dt.datetime:
        return dt.datetime(2026, 11, 20, 8, minute, tzinfo=dt.UTC)

    with Store(store_url) as store:
        reader = store.add_subscriber(Subscriber(email="reader@example.org")).feed_token

        def marker() -> str:
            found = store.feed_reader(reader)
            assert found is not None
            return found[1]

        markers = [marker()]
        store.ingest([day("2026-11-19", "a.md", ("1", "one"), ("2", "two"))], now=at(1))
        markers.append(marker())
        store.ingest([day("2026-11-19", "a.md", ("1", "one"), ("2", "two"))], now=at(2))  # the same again
        assert marker() == markers[-1]
        store.ingest([day("2026-11-19", "a.md", ("1", "one, corrected"), ("2", "two"))], now=at(3))
        markers.append(marker())
        store.ingest([day("2026-11-19", "b.md", ("3", "three"))], now=at(4))  # another file, same day
        markers.append(marker())
        store.ingest([day("2026-11-20", "c.md", ("1", "one again"))], now=at(5))  # a new day
        markers.append(marker())
        store.remove_sources(["b.md"], now=at(6))  # a prune
        markers.append(marker())
        store.remove_sources(["c.md"], now=at(7))  # a prune that removes a whole day
        markers.append(marker())
    assert len(set(markers)) == len(markers), markers
