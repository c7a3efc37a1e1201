"""Helpers for the web tests: a project on disk, `newsletter serve` as a real process or the app under
waitress in a thread, a real SMTP server that keeps what it receives, and page checks."""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import html5lib
import requests
from flask import Flask
from waitress import create_server, wasyncore

from helpers import PROJECT_ROOT_CONFIG, write_config
from newsletter.config import Settings
from newsletter.web import server_options
from smtp_helpers import free_port

EXAMPLE_DIGESTS = PROJECT_ROOT_CONFIG.parent / "examples" / "digests"
BASE_URL = "https://papers.example.org"
SECRET_ENV = "NEWSLETTER_TEST_WEB_SECRET"
SECRET = "test-web-secret-" + "s" * 32


@dataclass
class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    messages: list[tuple[str, EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.messages.append((recipient, message))  # type: ignore[arg-type]
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for r, m in self.messages if r == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{address} got {len(self.to(address))} messages, expected {count}")


def web_config(folder: Path, smtp_port: int, web: str = "", site_title: str = "Test Papers",
               digests: Path = EXAMPLE_DIGESTS, store_url: str = "sqlite:///var/test.db") -> Path:
    """A project in ``folder``: examples ingested by the caller, SMTP at ``smtp_port``, a fixed link key."""
    extra = f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout = 5.0
lease_seconds = 60.0

[web]
secret_env = "{SECRET_ENV}"
{web}
"""
    path = write_config(folder, extra=extra, digests=json.dumps([str(digests)]), store_url=store_url)
    text = path.read_text(encoding="utf-8").replace('title = "Test Papers"', f"title = {json.dumps(site_title)}", 1)
    path.write_text(text, encoding="utf-8")
    return path


def wait_until_up(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} within {timeout} s")


@contextmanager
def newsletter_serve(config: Path, env: dict[str, str]) -> Iterator[str]:
    """`newsletter serve` as its own process on a free port; yields its base URL."""
    port = free_port()
    log = config.parent / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def thread_server(app: Flask, settings: Settings) -> Iterator[str]:
    """The app under waitress in a thread of this process, as `newsletter serve` runs it (for tests
    that fake its clock or need several servers)."""
    server = create_server(app, host="127.0.0.1", port=0, **server_options(settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    try:
        wait_until_up(base + "/")
        yield base
    finally:
        # Close every socket from inside the server's own loop, which then ends for want of sockets;
        # closing them from this thread would pull them from under its select().
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


def local(url: str, base: str) -> str:
    """A link built from [site] base_url, pointed at the test server instead."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL, url
    return base + parts.path


def follow_confirmation(url: str) -> requests.Response:
    """Open a confirmation link (a page with a button, GET changes nothing) and press its button."""
    page = requests.get(url, timeout=10)
    if page.status_code != 200 or 'action="/confirm/' not in page.text:
        return page
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None, page.text
    return requests.post(url.split("/confirm/")[0] + action.group(1), timeout=10)


def link_in(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(re.escape(BASE_URL) + "/" + path + r"/\S+", body.get_content())
    assert match is not None, body.get_content()
    return match.group(0)


_ON_ATTRIBUTE = re.compile(r"^on", re.IGNORECASE)


def check_page(response: requests.Response, payloads: list[str] = ()) -> Any:  # type: ignore[assignment]
    """Parse the page strictly as HTML5 and check it carries no script; returns the parsed tree.

    html5lib's strict mode raises on every parse error the HTML5 spec defines (unclosed or misnested
    elements, bad attributes, stray end tags, a missing doctype, duplicate attributes).
    """
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-eval" not in csp
    tree = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(response.text)
    assert tree.findall(".//script") == []
    ids = [element.get("id") for element in tree.iter() if element.get("id")]
    assert len(ids) == len(set(ids)), "duplicate id"
    for element in tree.iter():
        for name, value in element.attrib.items():
            assert not _ON_ATTRIBUTE.match(name), (element.tag, name)
            assert not value.strip().lower().startswith(("javascript:", "data:text")), (element.tag, value)
    for tag in ("img", "svg", "iframe", "object", "embed"):
        assert tree.findall(f".//{tag}") == [], tag
    for payload in payloads:
        assert payload not in response.text or "<" not in payload, payload
    return tree


def text_of(tree: Any) -> str:
    return " ".join("".join(tree.find(".//body").itertext()).split())
