"""Hostile text in every place a page shows it, and the subscribe rate limits (per IP, per address, proxies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from helpers import run
from mail_helpers import XSS
from newsletter import tokens
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.web import create_app
from smtp_helpers import smtp_server
from web_support import SECRET, SECRET_ENV, Inbox, check_page, thread_server, web_config

# Payloads that can stand in a Markdown table cell, a TOML key and a keyword list (no | ; , or newline).
CELL_SAFE = [p for p in XSS if not set(p) & set("|;,\n")]
DAY = "2025-06-02"


def hostile_digest(folder: Path) -> Path:
    rows = "\n".join(
        f"| {payload} Paper {i} (Read more on [arXiv](https://arxiv.org/abs/2506.{i:05d})) | {payload} | "
        f"Summary {payload} with [a link](javascript:alert({i})) and **bold**. |"
        for i, payload in enumerate(CELL_SAFE, start=1))
    path = folder / "digests" / f"{DAY}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"## Papers for {DAY}\n\n| Title | Authors | Summary |\n|---|---|---|\n{rows}\n", encoding="utf-8")
    return path.parent


@pytest.fixture
def hostile_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_backend: str) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    taxonomy = {f"Field {payload}": ["paper"] for payload in CELL_SAFE[:3]}
    categories = "[categories]\nfallback = " + json.dumps(next(iter(taxonomy))) + "\n[categories.taxonomy]\n" + "".join(
        f"{json.dumps(name)} = {json.dumps(words)}\n" for name, words in taxonomy.items())
    with smtp_server(Inbox()) as smtp:
        config = web_config(tmp_path, smtp.port, site_title=f"Papers {XSS[0]} & {XSS[1]}",
                            digests=hostile_digest(tmp_path))
        config.write_text(config.read_text(encoding="utf-8") + categories, encoding="utf-8")
        for args in (["ingest"], ["feeds"]):
            result = run(config, *args)
            assert result.exit_code == 0, result.output
        settings = load_settings(config)
        with Store.from_settings(settings) as store, \
                thread_server(create_app(settings, store=store), settings) as base:
            yield base, config


def test_hostile_titles_names_keywords_and_categories_are_escaped(hostile_site: tuple[str, Path]) -> None:
    base, config = hostile_site
    settings = load_settings(config)
    with Store.from_settings(settings) as store:
        subscriber = store.add_subscriber(Subscriber(
            email="target@example.org", name=" ".join(CELL_SAFE)[:200], keywords=CELL_SAFE,
            excluded_keywords=CELL_SAFE[:2], categories=settings.categories.names[:1]))
    signed = tokens.Tokens(SECRET.encode())
    pages = {
        "home": requests.get(base + "/", timeout=10),
        "archive": requests.get(base + "/archive/", timeout=10),
        "day": requests.get(f"{base}/archive/{DAY}", timeout=10),
        "preferences": requests.get(f"{base}/preferences/{signed.make('preferences', subscriber.token)}", timeout=10),
        "unsubscribe": requests.get(f"{base}/unsubscribe/{signed.make('unsubscribe', subscriber.token)}", timeout=10),
        "refused form": requests.post(base + "/subscribe", data={"email": "no", "name": XSS[1]}, timeout=10),
        "404": requests.get(base + "/archive/" + XSS[0], timeout=10),
    }
    for label, response in pages.items():
        assert response.status_code in (200, 400, 404), label
        check_page(response, CELL_SAFE)
    day = pages["day"].text
    assert all(f"Paper {i}" in day for i in range(1, len(CELL_SAFE) + 1))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["home"].text  # shown as text, not dropped
    saved = requests.post(f"{base}/preferences/{signed.make('preferences', subscriber.token)}",
                          data={"action": "save", "name": XSS[1], "keywords": ", ".join(CELL_SAFE)}, timeout=10)
    assert saved.status_code == 200
    check_page(saved, CELL_SAFE)


# -- rate limits -------------------------------------------------------------------------------------

@pytest.fixture
def limited_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 store_backend: str) -> Iterator[tuple[str, Inbox, Path]]:
    """Two requests per client address, one email per address; the client address from one proxy hop."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    web = "subscribe_ip_burst = 2\nsubscribe_ip_per_hour = 1.0\nsubscribe_address_burst = 1\n" \
          "subscribe_address_per_hour = 1.0\ntrusted_proxies = 1"
    with smtp_server(Inbox()) as smtp:
        config = web_config(tmp_path, smtp.port, web=web)
        settings = load_settings(config)
        with Store.from_settings(settings) as store, \
                thread_server(create_app(settings, store=store), settings) as base:
            yield base, smtp.handler, config


def subscribe_from(base: str, client: str, address: str) -> requests.Response:
    return requests.post(base + "/subscribe", data={"email": address}, headers={"X-Forwarded-For": client},
                         timeout=10)


def test_subscribing_is_limited_per_client_address(limited_site: tuple[str, Inbox, Path]) -> None:
    base, _inbox, _config = limited_site
    assert [subscribe_from(base, "203.0.113.5", f"r{i}@example.org").status_code for i in range(3)] == [200, 200, 429]
    limited = subscribe_from(base, "203.0.113.5", "r9@example.org")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    check_page(limited)
    assert subscribe_from(base, "203.0.113.6", "r9@example.org").status_code == 200  # another client


def test_confirmations_are_limited_per_address_with_the_same_answer(limited_site: tuple[str, Inbox, Path]) -> None:
    base, inbox, _config = limited_site
    answers = {subscribe_from(base, f"198.51.100.{i}", "popular@example.org").text for i in range(3)}
    assert len(answers) == 1
    # The mailer sends in order: once a later probe has arrived, the limited emails would have too.
    subscribe_from(base, "198.51.100.9", "probe@example.org")
    inbox.wait_for("probe@example.org")
    assert len(inbox.to("popular@example.org")) == 1


def test_a_post_over_the_address_limit_stores_nothing(limited_site: tuple[str, Inbox, Path]) -> None:
    base, inbox, config = limited_site

    def post(client: str, name: str, category: str) -> requests.Response:
        return requests.post(base + "/subscribe", data={"email": "target@example.org", "name": name,
                                                        "category": [category]},
                             headers={"X-Forwarded-For": client}, timeout=10)

    first = post("198.51.100.20", "Target", "Computer Vision")
    limited = post("198.51.100.21", "Someone Else", "Multi-Modal")
    assert (limited.status_code, limited.text) == (first.status_code, first.text)
    inbox.wait_for("target@example.org")  # the store work happens after the answer, with the email
    with Store.from_settings(load_settings(config)) as store:
        stored = store.get_subscriber("target@example.org")
    assert stored is not None
    assert (stored.status, stored.name, stored.categories) == ("pending", "Target", ["Computer Vision"])
    (confirmation,) = inbox.wait_for("target@example.org")
    assert "Confirm" in confirmation["Subject"]


@pytest.mark.usefixtures("store_backend")
def test_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with smtp_server(Inbox()) as smtp:
        config = web_config(tmp_path, smtp.port, web="subscribe_ip_burst = 1")
        settings = load_settings(config)
        with Store.from_settings(settings) as store, \
                thread_server(create_app(settings, store=store), settings) as base:
            assert subscribe_from(base, "192.0.2.1", "a@example.org").status_code == 200
            assert subscribe_from(base, "192.0.2.2", "b@example.org").status_code == 429  # still 127.0.0.1
