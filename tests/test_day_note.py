"""The day's note (a cards page's "Today's Reading Tips") at the top of the email, the digest feed entry and
the archive page; and a quiz without answers that promises none. Real CLI, real SQLite, feedparser, and
`newsletter serve` with a real HTTP client."""

from __future__ import annotations

import email
import os
from email import policy
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
import requests

from cards_pages_2026 import make_card, page_html, page_text
from helpers import run
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import Store
from smtp_helpers import free_port
from web_support import SECRET, SECRET_ENV, newsletter_serve, web_config

ANSWERED_DAY, UNANSWERED_DAY = "2031-06-01", "2031-06-02"
# Escaped in the page, so that the note's text holds the markup: the note must come out sanitised.
TIPS = ("**Read** the first paper first &lt;img src=x onerror=alert(1)&gt;; then [the second](javascript:alert(1)).",
        "先读第一篇。")


def assert_sanitised(html: str) -> None:
    assert "<img" not in html and 'href="javascript' not in html


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Path:
    folder = tmp_path_factory.mktemp("note")
    digests = folder / "digests"
    digests.mkdir()
    (digests / f"{ANSWERED_DAY}.html").write_text(
        page_html(ANSWERED_DAY, [make_card(1), make_card(2)], TIPS), encoding="utf-8")
    # The text a browser's copy gives: a quiz without answers, and no tips.
    (digests / f"{UNANSWERED_DAY}.txt").write_text(page_text(UNANSWERED_DAY, [make_card(3)]), encoding="utf-8")
    config = web_config(folder, free_port(), digests=digests, store_url=module_store_url)
    # The quiz is in the email only with full summaries; the default short email links to the archive.
    text = config.read_text(encoding="utf-8").replace('outbox = "outbox"', 'outbox = "outbox"\nsummary = "full"', 1)
    config.write_text(text, encoding="utf-8")
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        store.add_subscriber(Subscriber(email="ada@example.org", token="tok-ada"))
    return config


def dry_run_message(config: Path, day: str) -> tuple[str, str]:
    """(HTML part, text part) of the day's email as `send --dry-run` writes it."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET)
        result = run(config, "send", "--dry-run", "--date", day)
    assert result.exit_code == 0, result.output
    (eml,) = sorted((config.parent / "outbox" / day).glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    return html_part.get_content(), text_part.get_content()


def test_the_note_is_at_the_top_of_the_email_sanitised(project: Path) -> None:
    html, text = dry_run_message(project, ANSWERED_DAY)
    first_title = make_card(1).title.split(":")[0]
    assert "Reading tips" in html and html.index("Reading tips") < html.index('class="paper"')
    assert "<strong>Read</strong> the first paper first" in html
    assert_sanitised(html)
    assert "先读" not in html  # the Chinese note is kept apart, not shown in the English email
    assert "READING TIPS" in text and text.index("READING TIPS") < text.index(first_title)
    assert "Read the first paper first" in text.replace("**", "")
    assert "answers at the bottom" in html and "Quiz answers" in html
    assert "(answers at the bottom)" in text and "QUIZ ANSWERS" in text


def test_a_quiz_without_answers_promises_none(project: Path) -> None:
    html, text = dry_run_message(project, UNANSWERED_DAY)
    assert "Which step 1 does paper 3 take" in html and "Which step 1 does paper 3 take" in text
    assert "answers at the bottom" not in html and "Quiz answers" not in html
    assert "answers at the bottom" not in text and "QUIZ ANSWERS" not in text
    assert "Reading tips" not in html and "READING TIPS" not in text


def test_the_note_opens_the_digest_feed_entry(project: Path) -> None:
    assert run(project, "feeds").exit_code == 0
    feed = feedparser.parse(str(project.parent / "feeds" / "digest.atom"))
    assert feed.bozo == 0
    entries = {entry.id.rsplit("/", 1)[-1]: entry.content[0].value for entry in feed.entries}
    content = entries[ANSWERED_DAY]
    assert "Reading tips" in content and content.index("Reading tips") < content.index("Made-up Paper 1")
    assert "<strong>Read</strong>" in content
    assert_sanitised(content)
    assert "Reading tips" not in entries[UNANSWERED_DAY]


def test_the_archive_page_shows_the_note_and_no_empty_promise(project: Path) -> None:
    env = {**os.environ, SECRET_ENV: SECRET}
    with newsletter_serve(project, env) as base:
        answered = requests.get(f"{base}/archive/{ANSWERED_DAY}", timeout=10)
        unanswered = requests.get(f"{base}/archive/{UNANSWERED_DAY}", timeout=10)
    assert answered.status_code == unanswered.status_code == 200
    assert "Reading tips" in answered.text and "<strong>Read</strong> the first paper first" in answered.text
    assert_sanitised(answered.text)
    assert "answers at the bottom" not in unanswered.text and "Quiz answers" not in unanswered.text
    assert "Which step 1 does paper 3 take" in unanswered.text
