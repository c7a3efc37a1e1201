"""`newsletter serve` as a real process on 127.0.0.1, driven with a real HTTP client (requests), with a
real SMTP server (aiosmtpd) receiving its confirmation emails and a real SQLite store behind it."""

from __future__ import annotations

import email
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
import requests

from helpers import run
from newsletter import tokens
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from smtp_helpers import smtp_server
from web_support import (
    BASE_URL,
    EXAMPLE_DIGESTS,
    SECRET,
    SECRET_ENV,
    Inbox,
    check_page,
    follow_confirmation,
    link_in,
    local,
    newsletter_serve,
    text_of,
    web_config,
)

ARXIV = re.compile(r'href="https://arxiv\.org/abs/([^"]+)"')


@dataclass
class Site:
    config: Path
    base: str
    inbox: Inbox

    def store(self) -> Store:
        return Store.from_settings(load_settings(self.config))

    def subscriber(self, address: str) -> Subscriber:
        with self.store() as store:
            found = store.get_subscriber(address)
        assert found is not None
        return found

    def dry_run(self) -> dict[str, object]:
        result = run(self.config, "send", "--dry-run")
        assert result.exit_code == 0, result.output
        plans = sorted((self.config.parent / "outbox").glob("*/plan.json"))
        return dict(json.loads(plans[-1].read_text()), folder=str(plans[-1].parent))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as patch, smtp_server(Inbox()) as smtp:
        patch.setenv(SECRET_ENV, SECRET)  # the in-process dry runs sign links with the server's key
        # Generous per-IP limits: every request here comes from 127.0.0.1 (test_web_tokens tests the limits).
        config = web_config(folder, smtp.port, web="subscribe_ip_burst = 1000", store_url=module_store_url)
        for args in (["ingest"], ["feeds"], ["subscribers", "import", str(EXAMPLE_DIGESTS.parent / "subscribers.csv")]):
            result = run(config, *args)
            assert result.exit_code == 0, result.output
        with newsletter_serve(config, dict(os.environ)) as base:
            yield Site(config, base, smtp.handler)


# -- feeds -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "media_type"), [
    ("papers.atom", "application/atom+xml"),
    ("digest.rss", "application/rss+xml"),
    ("categories/computer-vision.atom", "application/atom+xml"),
])
def test_feeds_have_their_type_a_strong_etag_and_last_modified(site: Site, name: str, media_type: str) -> None:
    path = site.config.parent / "feeds" / name
    response = requests.get(f"{site.base}/feeds/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == media_type
    assert response.content == path.read_bytes()
    assert feedparser.parse(response.content).bozo == 0
    etag = response.headers["ETag"]
    assert etag == f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:40]}"'  # strong: no W/ prefix
    modified = parsedate_to_datetime(response.headers["Last-Modified"])
    assert int(modified.timestamp()) == int(path.stat().st_mtime)


def test_conditional_requests_get_304(site: Site) -> None:
    url = f"{site.base}/feeds/papers.atom"
    first = requests.get(url, timeout=10)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    by_etag = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert by_etag.status_code == 304 and by_etag.content == b"" and by_etag.headers["ETag"] == etag
    assert requests.get(url, headers={"If-None-Match": f'"other", {etag}'}, timeout=10).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=10).status_code == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2): a changed ETag means the new bytes.
    changed = requests.get(url, headers={"If-None-Match": '"stale"', "If-Modified-Since": modified}, timeout=10)
    assert changed.status_code == 200 and changed.content == first.content
    earlier = format_datetime(parsedate_to_datetime(modified).replace(year=2000), usegmt=True)
    assert requests.get(url, headers={"If-Modified-Since": earlier}, timeout=10).status_code == 200
    head = requests.head(url, headers={"If-None-Match": etag}, timeout=10)
    assert head.status_code == 304


@pytest.mark.parametrize("path", ["/feeds/../config.toml", "/feeds/%2e%2e/config.toml", "/feeds/..%2fconfig.toml",
                                  "/feeds/papers.xml", "/feeds/nothing.atom", "/feeds/categories",
                                  "/feeds/.papers.atom.tmp.atom"])
def test_nothing_outside_the_feeds_is_served(site: Site, path: str) -> None:
    (site.config.parent / "feeds" / ".papers.atom.tmp.atom").write_text("half-written")
    response = requests.get(site.base + path, timeout=10)
    assert response.status_code == 404
    assert "[store]" not in response.text


# -- pages -----------------------------------------------------------------------------------------

def test_home_page_lists_the_feeds_and_offers_every_category(site: Site) -> None:
    response = requests.get(site.base + "/", timeout=10)
    tree = check_page(response)
    settings = load_settings(site.config)
    assert tree.find(".//title").text == "Test Papers"
    alternates = {(link.get("type"), link.get("href")) for link in tree.findall(".//head/link[@rel='alternate']")}
    assert ("application/atom+xml", "/feeds/papers.atom") in alternates
    assert ("application/rss+xml", "/feeds/digest.rss") in alternates
    for atom_type, href in alternates:  # every advertised feed is really there, with that type
        feed = requests.get(site.base + href, timeout=10)
        assert feed.status_code == 200 and feed.headers["Content-Type"].startswith(atom_type)
    boxes = tree.findall(".//form//input[@type='checkbox']")
    assert [box.get("value") for box in boxes] == settings.categories.names
    assert all(box.get("name") == "category" for box in boxes)
    form = tree.find(".//form")
    assert form.get("method") == "post" and form.get("action") == "/subscribe"
    stylesheet = requests.get(site.base + tree.find(".//head/link[@rel='stylesheet']").get("href"), timeout=10)
    assert stylesheet.status_code == 200 and stylesheet.headers["Content-Type"].startswith("text/css")
    assert b".masthead" in stylesheet.content


def test_archive_pages_are_valid_and_show_the_emails_papers(site: Site) -> None:
    index = requests.get(site.base + "/archive/", timeout=10)
    tree = check_page(index)
    links = [a.get("href") for a in tree.findall(".//main//li/a")]
    assert links == ["/archive/2026-11-20", "/archive/2026-11-19"]
    labels = [a.text for a in tree.findall(".//main//li/a")]
    assert labels == ["Friday, 20 November 2026", "Thursday, 19 November 2026"]

    plan = site.dry_run()
    entry = next(m for m in plan["messages"] if m["to"] == "ada@example.org")  # type: ignore[attr-defined]
    message = email.message_from_bytes((Path(str(plan["folder"])) / entry["file"]).read_bytes(),
                                       policy=policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    assert html_part is not None
    page = requests.get(site.base + links[0], timeout=10)
    check_page(page)
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"].split("style-src")[0]
    # Ada takes every category: her email and the archive list the same papers in the same order.
    in_email = list(dict.fromkeys(ARXIV.findall(html_part.get_content())))
    assert in_email and list(dict.fromkeys(ARXIV.findall(page.text))) == in_email
    assert "Gaussian Splats That Age Well" in page.text
    assert labels[0] in page.text and labels[0] in html_part.get_content()  # the day is named alike everywhere
    assert ada_token(site) not in page.text and "unsubscribe" not in page.text.lower()
    again = requests.get(site.base + links[0], headers={"If-None-Match": page.headers["ETag"]}, timeout=10)
    assert again.status_code == 304


def ada_token(site: Site) -> str:
    return site.subscriber("ada@example.org").token


@pytest.mark.parametrize("path", ["/archive/2026-11-21", "/archive/2026-13-01", "/archive/20261120", "/nowhere"])
def test_unknown_pages_are_404_pages(site: Site, path: str) -> None:
    response = requests.get(site.base + path, timeout=10)
    assert response.status_code == 404
    check_page(response)


# -- one-click unsubscribe -------------------------------------------------------------------------

def test_list_unsubscribe_url_from_a_dry_run_email_unsubscribes_with_one_post(site: Site) -> None:
    address = "grace@example.org"
    plan = site.dry_run()
    entry = next(m for m in plan["messages"] if m["to"] == address)  # type: ignore[attr-defined]
    message = email.message_from_bytes((Path(str(plan["folder"])) / entry["file"]).read_bytes(),
                                       policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_url = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])[0]
    assert https_url.startswith(BASE_URL + "/unsubscribe/")
    url = local(https_url, site.base)

    # Opening the link (a mail scanner, a preview) shows a button and changes nothing.
    shown = requests.get(url, timeout=10)
    tree = check_page(shown)
    assert shown.status_code == 200 and site.subscriber(address).status == "active"
    form = tree.find(".//main//form")
    assert form.get("method") == "post" and form.get("action") == url.removeprefix(site.base)
    assert "set-cookie" not in {h.lower() for h in shown.headers}

    # The mailbox provider's one-click POST: no cookie, no session, no page visited first.
    done = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10, allow_redirects=False)
    assert done.status_code == 200
    assert "set-cookie" not in {h.lower() for h in done.headers}
    check_page(done)
    assert site.subscriber(address).status == "unsubscribed"
    again = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert (again.status_code, again.text) == (done.status_code, done.text)

    after = site.dry_run()
    recipients = [m["to"] for m in after["messages"]]  # type: ignore[attr-defined]
    assert address not in recipients and "ada@example.org" in recipients


# -- subscribing -----------------------------------------------------------------------------------

def subscribe(site: Site, address: str, categories: list[str] = (), name: str = "") -> requests.Response:  # type: ignore[assignment]
    return requests.post(site.base + "/subscribe", data={"email": address, "name": name, "category": categories},
                         timeout=10)


def test_subscribe_confirm_and_change_preferences(site: Site) -> None:
    address = "new.reader@example.net"
    answer = subscribe(site, address, ["Computer Vision", "Natural Language Processing"], name="New Reader")
    assert answer.status_code == 200
    check_page(answer)
    assert "Check your inbox" in answer.text
    (confirmation,) = site.inbox.wait_for(address)  # the store work happens after the answer, with the email
    assert site.subscriber(address).status == "pending"
    assert address not in [m["to"] for m in site.dry_run()["messages"]]  # type: ignore[attr-defined]

    assert confirmation["To"] == address and "Confirm" in confirmation["Subject"]
    assert confirmation["Auto-Submitted"] == "auto-generated"
    confirmed = follow_confirmation(local(link_in(confirmation, "confirm"), site.base))
    tree = check_page(confirmed)
    assert confirmed.status_code == 200 and "Subscription confirmed" in text_of(tree)
    stored = site.subscriber(address)
    assert (stored.status, stored.categories, stored.name) == (
        "active", ["Natural Language Processing", "Computer Vision"], "New Reader")
    assert address in [m["to"] for m in site.dry_run()["messages"]]  # type: ignore[attr-defined]

    preferences = site.base + tree.find(".//main//a").get("href")
    shown = check_page(requests.get(preferences, timeout=10))
    checked = [box.get("value") for box in shown.findall(".//input[@type='checkbox']")
               if box.get("checked") is not None]
    assert checked == ["Natural Language Processing", "Computer Vision"]

    saved = requests.post(preferences, data={"action": "save", "name": "Renamed", "category": ["Computer Vision",
                          "Multi-Modal"], "keywords": "diffusion, gaussian splat*", "excluded": "survey"}, timeout=10)
    assert saved.status_code == 200 and "Your preferences are saved." in text_of(check_page(saved))
    stored = site.subscriber(address)
    assert (stored.name, stored.categories, stored.keywords, stored.excluded_keywords) == (
        "Renamed", ["Multi-Modal", "Computer Vision"], ["diffusion", "gaussian splat*"], ["survey"])

    dropped = requests.post(preferences, data={"drop": "Multi-Modal"}, timeout=10)
    assert dropped.status_code == 200 and "no more papers in Multi-Modal" in dropped.text
    assert site.subscriber(address).categories == ["Computer Vision"]

    refused = requests.post(preferences, data={"action": "save", "category": ["No Such Field"]}, timeout=10)
    assert refused.status_code == 400 and "unknown category" in text_of(check_page(refused))
    assert site.subscriber(address).categories == ["Computer Vision"]

    gone = requests.post(preferences, data={"action": "unsubscribe"}, timeout=10)
    assert "You are unsubscribed" in text_of(check_page(gone))
    assert site.subscriber(address).status == "unsubscribed"
    back = requests.post(preferences, data={"action": "resubscribe"}, timeout=10)
    assert back.status_code == 200 and site.subscriber(address).status == "active"

    # The confirmation link is spent once active: replaying it changes nothing back.
    follow_confirmation(local(link_in(confirmation, "confirm"), site.base))
    assert site.subscriber(address).categories == ["Computer Vision"]


def test_a_weekly_subscription_and_followed_authors_on_the_form_and_the_preferences_page(site: Site) -> None:
    address = "weekly.reader@example.net"
    shown = check_page(requests.get(site.base + "/", timeout=10))
    assert [r.get("value") for r in shown.findall(".//input[@name='cadence']")] == ["daily", "weekly"]
    answer = requests.post(site.base + "/subscribe", data={"email": address, "category": ["Computer Vision"],
                                                           "cadence": "weekly", "weekday": "fri"}, timeout=10)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (confirmation,) = site.inbox.wait_for(address)
    page = requests.get(local(link_in(confirmation, "confirm"), site.base), timeout=10)
    assert "once a week, on fri" in text_of(check_page(page))
    tree = check_page(follow_confirmation(local(link_in(confirmation, "confirm"), site.base)))
    stored = site.subscriber(address)
    assert (stored.status, stored.cadence, stored.weekday) == ("active", "weekly", "fri")

    preferences = site.base + tree.find(".//main//a").get("href")
    shown = check_page(requests.get(preferences, timeout=10))
    assert "weekly on fri" in text_of(shown)
    options = shown.findall(".//select[@name='weekday']/option")
    assert [o.get("value") for o in options if o.get("selected") is not None] == ["fri"]
    saved = requests.post(preferences, data={"action": "save", "cadence": "daily", "weekday": "tue",
                                             "authors": "Doe, Jane\r\nkvlee\r\n\r\nJane Doe"}, timeout=10)
    assert saved.status_code == 200 and "Your preferences are saved." in text_of(check_page(saved))
    stored = site.subscriber(address)
    assert (stored.cadence, stored.weekday, stored.authors) == ("daily", "tue", ["Doe, Jane", "kvlee"])
    refused = requests.post(preferences, data={"action": "save", "cadence": "hourly"}, timeout=10)
    assert refused.status_code == 400 and "unknown cadence" in text_of(check_page(refused))
    bad_form = requests.post(site.base + "/subscribe", data={"email": "x@example.net", "weekday": "someday"},
                             timeout=10)
    assert bad_form.status_code == 400 and "unknown weekday" in text_of(check_page(bad_form))


def test_subscribing_twice_or_as_a_subscriber_answers_alike(site: Site) -> None:
    """Same page for a new, a pending, an active and an unsubscribed address; only the owner's mailbox differs."""
    with site.store() as store:
        store.add_subscriber(Subscriber(email="left@example.com", status="unsubscribed", categories=["Multi-Modal"]))
    answers = {}
    for address in ("twice@example.com", "twice@example.com", "alan@example.com", "left@example.com"):
        response = subscribe(site, address, ["Computer Vision"])
        answers.setdefault(address, []).append((response.status_code, response.text.replace(address, "ADDRESS")))
    assert len({answer for found in answers.values() for answer in found}) == 1

    first, second = site.inbox.wait_for("twice@example.com", 2)
    signed = tokens.Tokens(SECRET.encode())
    for message in (first, second):  # each email carries a working link for the same pending subscriber
        asked = signed.read_confirm(link_in(message, "confirm").rpartition("/")[2])
        assert asked is not None and asked.token == site.subscriber("twice@example.com").token
    with site.store() as store:
        assert len([s for s in store.subscribers(status=None) if s.email == "twice@example.com"]) == 1
        assert store.get_subscriber("twice@example.com").status == "pending"  # type: ignore[union-attr]

    (note,) = site.inbox.wait_for("alan@example.com")  # already active: told so, with a preferences link
    assert "already subscribed" in note["Subject"]
    preferences = requests.get(local(link_in(note, "preferences"), site.base), timeout=10)
    assert preferences.status_code == 200 and "alan@example.com" in preferences.text

    (back,) = site.inbox.wait_for("left@example.com")
    assert site.subscriber("left@example.com").status == "unsubscribed"  # until the link is followed
    follow_confirmation(local(link_in(back, "confirm"), site.base))
    stored = site.subscriber("left@example.com")
    assert (stored.status, stored.categories) == ("active", ["Computer Vision"])


def test_subscribing_never_changes_an_active_subscribers_filter(site: Site) -> None:
    before = site.subscriber("katherine@example.com")
    assert before.status == "active"
    subscribe(site, "Katherine@Example.com", ["Multi-Modal"], name="Someone Else")
    site.inbox.wait_for("Katherine@example.com")
    after = site.subscriber("katherine@example.com")
    assert (after.categories, after.name, after.status) == (before.categories, before.name, "active")


@pytest.mark.parametrize(("address", "name"), [
    ("not-an-address", ""),
    ("a@example.org\r\nBcc: victim@example.org", ""),
    ("ok@example.org", "Eve\r\nBcc: victim@example.org"),
    ("", ""),
])
def test_bad_form_input_shows_the_form_again(site: Site, address: str, name: str) -> None:
    response = subscribe(site, address, ["Computer Vision"], name=name)
    assert response.status_code == 400
    tree = check_page(response)
    assert tree.find(".//*[@id='subscribe-error']") is not None
    ticked = [box.get("value") for box in tree.findall(".//input[@type='checkbox']") if box.get("checked") is not None]
    assert ticked == ["Computer Vision"]
    with site.store() as store:
        assert store.get_subscriber("ok@example.org") is None


# -- tokens ----------------------------------------------------------------------------------------

def test_forged_tampered_and_misdirected_tokens_get_the_unknown_answer(site: Site) -> None:
    signed = tokens.Tokens(SECRET.encode())
    other_key = tokens.Tokens(b"another-site-key-" + b"k" * 32)
    known = site.subscriber("edsger@example.net").token
    unsubscribe, preferences = signed.make("unsubscribe", known), signed.make("preferences", known)
    value, _dot, signature = unsubscribe.rpartition(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    forged = {
        "unknown subscriber": signed.make("unsubscribe", "no-such-token"),
        "tampered signature": f"{value}.{flipped}",
        "tampered value": f"{known[:-1]}{'A' if known[-1] != 'A' else 'B'}.{signature}",
        "unsigned stored token": known,
        "other site's key": other_key.make("unsubscribe", known),
        "preferences token": preferences,
        "confirm token": signed.make_confirm(tokens.ConfirmRequest(known)),
        "garbage": "x",
    }
    reference = requests.get(f"{site.base}/unsubscribe/garbage", timeout=10)
    assert reference.status_code == 404
    check_page(reference)
    for purpose, method in (("unsubscribe", "GET"), ("unsubscribe", "POST"), ("preferences", "GET"),
                            ("preferences", "POST"), ("confirm", "GET")):
        for label, token in forged.items():
            if (purpose, label) in {("preferences", "preferences token"), ("confirm", "confirm token")}:
                continue  # those are the right purpose
            response = requests.request(method, f"{site.base}/{purpose}/{token}", data={"action": "unsubscribe"},
                                        timeout=10)
            assert (response.status_code, response.text) == (reference.status_code, reference.text), (purpose, label)
    assert site.subscriber("edsger@example.net").status == "active"
    assert requests.get(f"{site.base}/preferences/{preferences}", timeout=10).status_code == 200
