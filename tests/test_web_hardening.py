"""Attacks and accidents against `newsletter serve`, each one a real process on 127.0.0.1 driven by a real
HTTP client (requests, or a raw socket where the attack is below HTTP), with a real SMTP server and a
real SQLite store: confirmation by mail scanners and replays, cross-site and partial preference posts,
huge bodies, idle connections, abuse of the subscribe form, malformed paths, and the log."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller

from helpers import run
from newsletter import tokens
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from smtp_helpers import free_port, smtp_server
from web_support import (
    SECRET,
    SECRET_ENV,
    Inbox,
    check_page,
    link_in,
    local,
    newsletter_serve,
    text_of,
    web_config,
)

SIGNED = tokens.Tokens(SECRET.encode())
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: \S")
STALE_PENDING, FRESH_PENDING = "stale.pending@example.com", "fresh.pending@example.com"


@dataclass
class Site:
    config: Path
    base: str
    inbox: Inbox

    @property
    def log(self) -> str:
        return (self.config.parent / "serve.log").read_text(encoding="utf-8")

    def subscriber(self, address: str) -> Subscriber | None:
        with Store.from_settings(load_settings(self.config)) as store:
            return store.get_subscriber(address)

    def add(self, address: str, **fields: object) -> Subscriber:
        with Store.from_settings(load_settings(self.config)) as store:
            return store.add_subscriber(Subscriber(email=address, **fields))  # type: ignore[arg-type]

    def preferences_url(self, subscriber: Subscriber) -> str:
        return f"{self.base}/preferences/{SIGNED.make(tokens.PREFERENCES, subscriber.token)}"

    def subscribe(self, address: str, **headers: str) -> requests.Response:
        return requests.post(self.base + "/subscribe", data={"email": address}, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("hardening")
    with smtp_server(Inbox()) as smtp:
        config = web_config(folder, smtp.port, web="subscribe_ip_burst = 1000\nsubscribe_address_burst = 3",
                            store_url=module_store_url)
        for command in ("ingest", "feeds"):
            assert run(config, command).exit_code == 0
        now = dt.datetime.now(dt.UTC)
        with Store.from_settings(load_settings(config)) as store:  # before the server starts: it tidies at start
            store.add_subscriber(Subscriber(email=STALE_PENDING, status="pending"), now=now - dt.timedelta(days=8))
            store.add_subscriber(Subscriber(email=FRESH_PENDING, status="pending"), now=now - dt.timedelta(days=6))
        with newsletter_serve(config, {**os.environ, SECRET_ENV: SECRET}) as base:
            yield Site(config, base, smtp.handler)


def confirmation_link(site: Site, address: str) -> str:
    assert site.subscribe(address).status_code == 200
    (message,) = site.inbox.wait_for(address)
    return local(link_in(message, "confirm"), site.base)


# -- 1. confirming: only a POST, once, and never after an unsubscribe ------------------------------------


def test_opening_a_confirmation_link_changes_nothing_until_the_button(site: Site) -> None:
    link = confirmation_link(site, "scanned@example.com")
    page = requests.get(link, timeout=10)
    assert requests.head(link, timeout=10).status_code == 200
    assert page.status_code == 200
    tree = check_page(page)
    assert tree.find(".//main//form[@method='post']//button") is not None
    assert site.subscriber("scanned@example.com").status == "pending"  # type: ignore[union-attr]

    confirmed = requests.post(link, timeout=10)
    assert confirmed.status_code == 200 and "Subscription confirmed" in text_of(check_page(confirmed))
    assert site.subscriber("scanned@example.com").status == "active"  # type: ignore[union-attr]
    again = requests.post(link, timeout=10)
    assert again.status_code == 404  # a confirmation link works once


def test_a_confirmation_link_never_works_after_the_reader_unsubscribed(site: Site) -> None:
    link = confirmation_link(site, "replayed@example.com")
    assert requests.post(link, timeout=10).status_code == 200
    reader = site.subscriber("replayed@example.com")
    assert reader is not None and reader.status == "active"
    unsubscribe = f"{site.base}/unsubscribe/{SIGNED.make(tokens.UNSUBSCRIBE, reader.token)}"
    assert requests.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 200

    forged = requests.get(f"{site.base}/confirm/forged", timeout=10)
    for method in ("GET", "HEAD", "POST"):
        replay = requests.request(method, link, timeout=10)
        assert replay.status_code == 404, method
        if method != "HEAD":
            assert replay.text == forged.text
    assert site.subscriber("replayed@example.com").status == "unsubscribed"  # type: ignore[union-attr]


# -- 2. preferences: same-site forms only, missing fields left alone, links that can be renewed --------------


def test_preferences_refuse_posts_from_other_sites(site: Site) -> None:
    reader = site.add("guarded@example.com", name="Guarded", categories=["Computer Vision"], keywords=["diffusion"])
    url = site.preferences_url(reader)
    hostile = {"name": "Pwned", "category": ["Multi-Modal"], "keywords": "", "action": "save"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.papers.example.org"}):
        refused = requests.post(url, data=hostile, headers=headers, timeout=10)
        assert refused.status_code == 403, headers
        check_page(refused)
    stored = site.subscriber("guarded@example.com")
    assert stored is not None
    assert (stored.name, stored.categories, stored.keywords) == ("Guarded", ["Computer Vision"], ["diffusion"])

    own = requests.post(url, data={"name": "Renamed"}, headers={"Origin": site.base, "Sec-Fetch-Site": "same-origin"},
                        timeout=10)
    assert own.status_code == 200
    assert site.subscriber("guarded@example.com").name == "Renamed"  # type: ignore[union-attr]


def test_an_empty_or_partial_post_changes_only_what_it_carries(site: Site) -> None:
    reader = site.add("partial@example.com", name="Partial", categories=["Computer Vision"], keywords=["diffusion"],
                      excluded_keywords=["survey"])
    url = site.preferences_url(reader)

    def stored() -> tuple[object, ...]:
        found = site.subscriber("partial@example.com")
        assert found is not None
        return found.name, found.categories, found.keywords, found.excluded_keywords

    before = stored()
    assert requests.post(url, timeout=10).status_code in (200, 400)  # no body at all: not a form
    empty_form = requests.post(url, data="", headers={"Content-Type": "application/x-www-form-urlencoded"},
                               timeout=10)
    assert empty_form.status_code == 200 and "Nothing changed." in empty_form.text
    plain = requests.post(url, data="name=&keywords=", headers={"Content-Type": "text/plain"}, timeout=10)
    assert plain.status_code == 400
    assert stored() == before
    assert requests.post(url, data={"keywords": "gaussian splat*"}, timeout=10).status_code == 200
    assert stored() == ("Partial", ["Computer Vision"], ["gaussian splat*"], ["survey"])


def test_a_reader_can_renew_their_links_and_the_old_ones_then_fail_like_forged_ones(site: Site) -> None:
    reader = site.add("rotating@example.com", name="Rotating")
    old_preferences = site.preferences_url(reader)
    old_unsubscribe = f"{site.base}/unsubscribe/{SIGNED.make(tokens.UNSUBSCRIBE, reader.token)}"
    renewed = requests.post(old_preferences, data={"action": "rotate"}, timeout=10)
    assert renewed.status_code == 200
    new_action = check_page(renewed).find(".//main//form[@method='post']").get("action")
    assert new_action != old_preferences.removeprefix(site.base)

    forged = requests.get(f"{site.base}/preferences/forged", timeout=10)
    for url in (old_preferences, old_unsubscribe):
        for method in ("GET", "POST"):
            answer = requests.request(method, url, data={"action": "unsubscribe"}, timeout=10)
            assert (answer.status_code, answer.text) == (404, forged.text), (url, method)
    assert requests.get(site.base + new_action, timeout=10).status_code == 200
    stored = site.subscriber("rotating@example.com")
    assert stored is not None and stored.status == "active" and stored.token != reader.token


# -- 4. resource limits ------------------------------------------------------------------------------------


def _port(site: Site) -> int:
    return int(site.base.rpartition(":")[2])


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_huge_body_is_refused_before_it_is_read(site: Site, framing: str) -> None:
    """100 MB announced (or streamed in chunks): the 413 comes after the first 256 KiB, not after 100 MB."""
    head = "POST /subscribe HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    head += ("Content-Length: 104857600\r\n" if framing == "content-length" else "Transfer-Encoding: chunked\r\n")
    chunk = b"email=" + b"a" * (16 * 1024 - 6)
    with socket.create_connection(("127.0.0.1", _port(site)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        try:
            for _ in range(16):
                sock.sendall(chunk if framing == "content-length" else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server may close as soon as it has answered
        sock.settimeout(10)  # far below what reading 100 MB would need on the old server: it never answered
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_many_idle_connections_do_not_block_a_reader(site: Site) -> None:
    idle = []
    try:
        for _ in range(150):  # waitress's old limit was 100, each kept for 120 s
            sock = socket.create_connection(("127.0.0.1", _port(site)), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\n")  # a request that never ends
            idle.append(sock)
        started = time.monotonic()
        answer = requests.get(site.base + "/feeds/", timeout=10)
        assert answer.status_code in (200, 404)
        assert time.monotonic() - started < 10
    finally:
        for sock in idle:
            sock.close()


# -- 5. abuse of subscribe -----------------------------------------------------------------------------------


def test_tagged_and_dotted_variants_of_one_mailbox_share_its_limit(site: Site) -> None:
    variants = ["carol+1@example.com", "carol+2@example.com", "c.arol@example.com", "Carol+news@example.com",
                "ca.rol+x@example.com", "c.a.r.o.l@example.com"]
    answers = {site.subscribe(address).text.replace(address, "ADDRESS") for address in variants}
    assert len(answers) == 1  # over the limit, the answer stays the same
    site.subscribe("probe.after.carol@example.com")
    site.inbox.wait_for("probe.after.carol@example.com")  # sent in order: the variants' emails came before
    assert sum(len(site.inbox.to(address)) for address in variants) == 3  # subscribe_address_burst


def test_pending_subscribers_who_never_confirm_are_removed(site: Site) -> None:
    deadline = time.monotonic() + 15
    while site.subscriber(STALE_PENDING) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site.subscriber(STALE_PENDING) is None  # asked 8 days ago, [web] pending_days = 7
    assert site.subscriber(FRESH_PENDING) is not None  # 6 days: still time to ask for a new link
    assert "did not confirm within 7 days" in site.log


# -- 6. odds and ends ---------------------------------------------------------------------------------------


def _raw(site: Site, method: str, path: str, host: str = "localhost") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_a_nul_byte_in_the_path_is_a_bad_request_not_a_crash(site: Site) -> None:
    for path in ("/feeds/papers%00.atom", "/feeds/%00", "/archive/2026-11-20%00"):
        response = requests.get(site.base + path, timeout=10)
        assert response.status_code in (400, 404), path
        check_page(response)
    assert requests.get(site.base + "/feeds/papers%00.atom", timeout=10).status_code == 400
    assert "Traceback" not in site.log and "embedded null byte" not in site.log


def test_405_lists_the_allowed_methods(site: Site) -> None:
    response = requests.post(site.base + "/feeds/papers.atom", timeout=10)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}
    assert "POST" in requests.put(site.base + "/subscribe", timeout=10).headers["Allow"]


def test_pages_send_one_charset(site: Site) -> None:
    for path in ("/feeds/", "/", "/archive/"):
        content_type = requests.get(site.base + path, timeout=10).headers["Content-Type"]
        assert content_type.lower().count("charset") == 1, (path, content_type)


@pytest.mark.parametrize("path", ["//feeds", "//evil.example/feeds", "/archive", "//archive", "/feeds"])
def test_a_redirect_never_leads_to_the_host_the_client_named(site: Site, path: str) -> None:
    response = _raw(site, "GET", path, host="evil.example")
    location = response.getheader("Location")
    if response.status < 300 or response.status >= 400:
        assert location is None
        return
    assert location is not None and "evil.example" not in location
    assert location.startswith("/") and not location.startswith("//"), location


def test_every_log_line_is_one_line_with_a_timestamp(site: Site) -> None:
    requests.get(site.base + "/feeds/papers%00.atom", timeout=10)
    lines = [line for line in site.log.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert lines
    for line in lines:
        assert LOG_LINE.match(line), line


# -- issue 17: what an unsubscribed reader sees, and unticking the last category -----------------------------


def test_an_unsubscribed_readers_preferences_say_so_first_and_offer_to_subscribe_again(site: Site) -> None:
    reader = site.add("gone@example.com", status="unsubscribed", categories=["Computer Vision"])
    page = requests.get(site.preferences_url(reader), timeout=10)
    tree = check_page(page)
    assert tree.find(".//main/h1").text == "You are unsubscribed"
    first_form = tree.find(".//main//form")
    assert first_form.find(".//button[@value='resubscribe']") is not None
    assert requests.post(site.preferences_url(reader), data={"action": "resubscribe"}, timeout=10).status_code == 200
    assert site.subscriber("gone@example.com").status == "active"  # type: ignore[union-attr]


def test_unticking_the_last_category_asks_whether_to_unsubscribe(site: Site) -> None:
    reader = site.add("last.one@example.com", categories=["Computer Vision"])
    url = site.preferences_url(reader)
    form = check_page(requests.get(url, timeout=10)).find(".//main//form[@class='card']")
    # The form as a browser sends it with every box unticked: the hidden marker, no category.
    fields = {i.get("name"): i.get("value") or "" for i in form.iter("input") if i.get("type") != "checkbox"}
    for answer in (requests.post(url, data={**fields, "action": "save"}, timeout=10),
                   requests.post(url, data={"drop": "Computer Vision"}, timeout=10)):
        tree = check_page(answer)
        assert answer.status_code == 200
        question = tree.find(".//*[@id='ask-unsubscribe']")
        assert question is not None and question.find(".//button[@value='unsubscribe']") is not None
        stored = site.subscriber("last.one@example.com")
        assert stored is not None and (stored.status, stored.categories) == ("active", ["Computer Vision"])


def test_a_reader_with_every_category_sees_every_box_ticked(site: Site) -> None:
    reader = site.add("everything@example.com")
    tree = check_page(requests.get(site.preferences_url(reader), timeout=10))
    boxes = tree.findall(".//input[@type='checkbox']")
    assert boxes and all(box.get("checked") is not None for box in boxes)
    saved = requests.post(site.preferences_url(reader), data={"categories_shown": "1", "name": "All",
                          "category": [b.get("value") for b in boxes]}, timeout=10)
    assert saved.status_code == 200
    stored = site.subscriber("everything@example.com")
    assert stored is not None and (stored.name, stored.categories) == ("All", [])


# -- issue 17: a confirmation the mail server did not take is retried, and the reader is told -----------------


@pytest.mark.usefixtures("store_backend")
def test_a_confirmation_the_mail_server_did_not_take_is_retried_and_never_promised(tmp_path: Path) -> None:
    smtp_port = free_port()  # nothing listens there yet: the server is down
    config = web_config(tmp_path, smtp_port)
    with newsletter_serve(config, {**os.environ, SECRET_ENV: SECRET}) as base:
        first = requests.post(base + "/subscribe", data={"email": "patient@example.com"}, timeout=10)
        assert first.status_code == 200 and "on its way" not in first.text
        log = tmp_path / "serve.log"
        deadline = time.monotonic() + 15
        while "could not send the site email to patient@example.com" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        told = requests.post(base + "/subscribe", data={"email": "second@example.com"}, timeout=10)
        assert told.status_code == 200
        assert "We could not send email just now" in text_of(check_page(told))
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()  # the server comes back: the queued emails go out on their next try
        try:
            (message,) = inbox.wait_for("patient@example.com", timeout=30)
            assert "Confirm" in message["Subject"]
            inbox.wait_for("second@example.com", timeout=30)
        finally:
            controller.stop()
    lines = [line for line in log.read_text().splitlines() if line.strip() and not line.startswith("warning: ")]
    assert any("trying again in" in line for line in lines)
    for line in lines:
        assert LOG_LINE.match(line), line
