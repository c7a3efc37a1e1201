"""A private feed holds exactly the papers its reader's emails hold, over a month of the real corpus."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import feedparser
import pytest

from feed_rules import check_atom, check_rss
from newsletter.config import settings_from_dict
from newsletter.dispatch.plan import build_plan
from newsletter.feeds import load_window, private_feed
from newsletter.ingest import ingest_files
from newsletter.models import Subscriber
from newsletter.parsing import expand_paths
from newsletter.selection import Filter
from newsletter.store import Store

BASE_URL = "https://papers.example.org"
MONTH = "2025/01"
URL = f"{BASE_URL}/private/feed-token"


@pytest.mark.usefixtures("store_backend")
def test_a_readers_feed_holds_their_emails_papers_for_every_day_of_a_month(corpus_dir: Path, tmp_path: Path) -> None:
    month = corpus_dir / "daily-ai-papers" / MONTH
    if not month.is_dir():
        pytest.skip(f"the corpus has no {month}")
    settings = settings_from_dict({"store": {"url": "sqlite:///store.db"}, "site": {"base_url": BASE_URL},
                                   "feeds": {"window_days": 0}}, tmp_path / "config.toml")
    with Store.from_settings(settings) as store:
        ingest_files(settings, store, expand_paths([str(month)]))
        days = store.days_between()
        assert len(days) >= 20
        keywords = ["diffusion", "agent*"]
        by_keyword = Filter(keywords=tuple(keywords))
        # Follow the most prolific author of the papers the keywords miss, so the author rule adds papers.
        missed = Counter(a for day in days for p in day.papers if not by_keyword.matches(p) for a in p.authors[:1])
        author = missed.most_common(1)[0][0]
        reader = Subscriber(email="reader@example.org", token="t", feed_token="feed-token",
                            keywords=keywords, authors=[author], id=1)

        emailed: dict[str, set[dt.date]] = {}
        for day in days:
            plan = build_plan(settings, store, day.date, subscribers=[reader])
            for message in plan.messages:
                for arxiv_id in message.papers:
                    emailed.setdefault(arxiv_id, set()).add(day.date)
        assert any(author in p.authors for day in days for p in day.papers if p.arxiv_id in emailed)
        assert 10 < len(emailed) < sum(len(day.papers) for day in days)  # a filter that keeps some, not all

        window = load_window(settings, store)
        atom = private_feed(settings, window, Filter.of(reader), feed_id="1", url=URL, kind="atom")
        rss = private_feed(settings, window, Filter.of(reader), feed_id="1", url=URL, kind="rss")
    check_atom(atom, f"{URL}.atom")
    check_rss(rss, f"{URL}.rss")
    parsed = feedparser.parse(atom)
    assert parsed.bozo == 0 and feedparser.parse(rss).bozo == 0
    in_feed = {entry.id.rpartition("paper/")[2]: entry for entry in parsed.entries}
    assert set(in_feed) == set(emailed)
    for arxiv_id, entry in in_feed.items():  # each entry is dated by the newest day that mailed it
        assert dt.date(*entry.updated_parsed[:3]) == max(emailed[arxiv_id]), arxiv_id
