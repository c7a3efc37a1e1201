"""What weekly editions and alerts say and where they link, from `send --dry-run` on the example digests
(2026-11-19, a Thursday, and 2026-11-20, a Friday), the archive they link to served for real."""

from __future__ import annotations

import email
import json
import re
import shutil
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers import run
from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.web import create_app
from smtp_helpers import free_port
from web_support import BASE_URL, EXAMPLE_DIGESTS, SECRET, SECRET_ENV, local, thread_server, web_config

pytestmark = pytest.mark.usefixtures("store_backend")

THURSDAY, FRIDAY = "2026-11-19", "2026-11-20"
BY_PRIYA = "2611.03987"
"""Priya Raman's paper: Natural Language Processing, listed on the Thursday only."""
PAPER_LINK = re.compile(re.escape(BASE_URL) + r"/archive/(\d{4}-\d\d-\d\d)#p-([0-9.]+)")


def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *readers: tuple[str, ...]) -> Path:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    digests = tmp_path / "digests"
    shutil.copytree(EXAMPLE_DIGESTS, digests)
    config = web_config(tmp_path, free_port(), digests=digests)  # a dry run sends nothing
    assert run(config, "ingest").exit_code == 0
    for args in readers:
        added = run(config, "subscribers", "add", *args)
        assert added.exit_code == 0, added.output
    return config


def dry_run(config: Path, date: str) -> tuple[str, dict[str, Any]]:
    result = run(config, "send", "--dry-run", "--date", date)
    assert result.exit_code == 0, result.output
    return result.output, json.loads((config.parent / "outbox" / date / "plan.json").read_text())


def message_to(config: Path, plan: dict[str, Any], address: str, kind: str) -> tuple[dict[str, Any], EmailMessage]:
    (planned,) = [m for m in plan["messages"] if m["to"] == address and m["edition"]["kind"] == kind]
    raw = (config.parent / "outbox" / plan["date"] / planned["file"]).read_bytes()
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return planned, message


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content()


def last_listed(config: Path) -> dict[str, str]:
    """arXiv id -> the last day the example digests list it on (the version a weekly edition shows)."""
    parsed = json.loads(run(config, "parse", str(config.parent / "digests"), "--json").stdout)
    days: dict[str, str] = {}
    for day in sorted(parsed["days"], key=lambda d: d["date"]):
        for paper in day["papers"]:
            days[paper["arxiv_id"]] = day["date"]
    return days


def test_a_weekly_edition_links_each_paper_to_the_day_it_was_listed_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path, monkeypatch, ("bo@example.org", "--cadence", "weekly", "--weekday", "fri"),
                     ("ada@example.org",))
    _output, plan = dry_run(config, FRIDAY)
    weekly, message = message_to(config, plan, "bo@example.org", "weekly")
    listed = last_listed(config)
    assert set(weekly["papers"]) == set(listed) and listed[BY_PRIYA] == THURSDAY
    text, html = parts(message)
    for part in (text, html):
        linked = {arxiv_id: day for day, arxiv_id in PAPER_LINK.findall(part)}
        assert BY_PRIYA in linked and THURSDAY in linked.values() and FRIDAY in linked.values()
        assert linked == {i: listed[i] for i in linked}, "each paper links to the day it was listed on"
    # Its web link shows the whole edition (no day page holds all of it): the archive's list of days.
    assert f"{BASE_URL}/archive/\n" in text and f"{BASE_URL}/archive/{FRIDAY}\n" not in text
    assert f'href="{BASE_URL}/archive/{FRIDAY}"' not in html and f'href="{BASE_URL}/archive/"' in html
    _daily, ada = message_to(config, plan, "ada@example.org", "daily")
    assert {day for day, _i in PAPER_LINK.findall(parts(ada)[1])} == {FRIDAY}

    settings = load_settings(config)
    with Store.from_settings(settings) as store, thread_server(create_app(settings, store=store), settings) as base:
        for day, arxiv_id in set(PAPER_LINK.findall(text + html)):
            page = requests.get(local(f"{BASE_URL}/archive/{day}", base), timeout=10)
            assert page.status_code == 200 and f'id="p-{arxiv_id}"' in page.text, (day, arxiv_id)
        index = requests.get(local(f"{BASE_URL}/archive/", base), timeout=10).text
        assert f'href="/archive/{THURSDAY}"' in index and f'href="/archive/{FRIDAY}"' in index


def test_weekly_and_alert_emails_say_what_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path, monkeypatch, ("bo@example.org", "--cadence", "weekly", "--weekday", "fri"),
                     ("alice@example.org", "--author", "Raman, Priya", "--category", "Computer Vision"))
    _output, plan = dry_run(config, FRIDAY)
    weekly, message = message_to(config, plan, "bo@example.org", "weekly")
    assert message["Subject"] == f"Test Papers weekly, 14–20 Nov: {len(weekly['papers'])} papers"
    _daily, daily = message_to(config, plan, "alice@example.org", "daily")
    assert daily["Subject"] == "Test Papers: 1 paper for 20 November 2026"  # [email] subject, as before
    weekly_text, weekly_html = parts(message)
    assert weekly_text.startswith("TEST PAPERS\nThe week's papers, 14–20 Nov 2026 - ")
    assert "today" not in weekly_text.lower() and "today's reading list" not in weekly_html
    assert "Here is this week's reading list." in weekly_text and "here is this week's reading list." in weekly_html
    assert "Here is today's reading list." in parts(daily)[0]

    output, plan = dry_run(config, THURSDAY)
    alert, message = message_to(config, plan, "alice@example.org", "alert")
    assert alert["papers"] == [BY_PRIYA]
    text, html = parts(message)
    header = " ".join(text.split("\n\n")[0].split())
    assert header == "TEST PAPERS A new paper by an author you follow - 1 paper by Priya Raman"
    subline = re.search(r'<p class="subline"[^>]*>([^<]*)</p>', html)
    assert subline is not None and subline.group(1) == "1 paper by Priya Raman"
    assert "today's reading list" not in text + html and "Here is the new paper." in text
    label = next(line for line in output.splitlines() if line.strip().startswith("alert:"))
    assert label.split("  ")[1].strip() == f"alert: {BY_PRIYA} by Priya Raman", output
    preview = (config.parent / "outbox" / THURSDAY / "index.html").read_text()
    assert f"alert: {BY_PRIYA} by Priya Raman</h2>" in preview and "all categories; and every paper" not in preview


def test_a_reader_without_categories_is_told_all_categories_not_a_category_match(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path, monkeypatch, ("ada@example.org",),
                     ("grace@example.org", "--category", "Natural Language Processing"))
    _output, plan = dry_run(config, FRIDAY)
    ada, _message = message_to(config, plan, "ada@example.org", "daily")
    assert ada["papers"] and all(ada["reasons"][i] == ["all categories"] for i in ada["papers"])
    grace, _message = message_to(config, plan, "grace@example.org", "daily")
    assert all(grace["reasons"][i] == ["category Natural Language Processing"] for i in grace["papers"])
    preview = run(config, "subscribers", "preview", "ada@example.org", "--json")
    assert preview.exit_code == 0, preview.output
    reasons = [p["reasons"] for day in json.loads(preview.stdout)["days"] for p in day["papers"]]
    assert reasons and all(r == ["all categories"] for r in reasons)
