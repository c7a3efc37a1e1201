"""Never clipped (issue 17): the busiest corpus day, mailed to readers with the longest names and
addresses, in every rendition: the real HTML part of every message stays under [email] gmail_clip_kb,
and when that takes shorter summaries or title-only links, the email says so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mail_helpers import SECRET_ENV, link_signing_key, parse, parts  # noqa: F401 (the fixture signs links)
from newsletter.categories import Classifier
from newsletter.config import Settings, settings_from_dict
from newsletter.dispatch.plan import plan_day
from newsletter.models import Day, Subscriber
from newsletter.parsing import parse_file

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "daily-ai-papers"
HTML_PART = re.compile(rb'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable'
                       rb"\r\n\r\n(.*?)\r\n--", re.S)
# The longest an address may be (RFC 5321: 64 octets of local part, 254 in all), and long names that
# grow when escaped for HTML and encoded as quoted-printable.
LONG_LOCAL = "a.very.long.local.part.of.an.address.that.keeps.going.and.going.x"[:64]
LONG_DOMAIN = ".".join(["sub" + str(i) * 50 for i in range(3)] + ["example.org"])
LONG_ADDRESS = f"{LONG_LOCAL}@{LONG_DOMAIN}"[:254]
LONG_NAMES = ["Zoë Ångström-Łukasiewicz & \"Ωμέγα\" <Ünïcödé> " * 4, "李小龙" * 40, "O'Neil " * 30]


@pytest.fixture(scope="module")
def busiest_day() -> Iterator[Day]:
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS} (see the README: the corpus sits beside the clone)")
    rows = {path: sum(line.startswith("|") for line in path.read_text(encoding="utf-8").splitlines())
            for path in CORPUS.rglob("*.md")}
    day = max(parse_file(max(rows, key=rows.__getitem__)).days, key=lambda d: len(d.papers))
    yield day


def settings_for(summary: str, clip_kb: int = 102) -> Settings:
    return settings_from_dict({
        "site": {"title": "Daily AI Papers", "base_url": "https://papers.example.org/newsletter"},
        "email": {"from": "Daily AI Papers <papers@example.org>", "summary": summary, "gmail_clip_kb": clip_kb,
                  "postal_address": "1 Example Road, Exampleton, Examplestate 12345, Exampleland"},
        "web": {"secret_env": SECRET_ENV},
    }, Path("/nonexistent/config.toml"))


def readers(settings: Settings) -> list[Subscriber]:
    """Every rendition a reader can choose by category (all of them, and each alone), each with
    ordinary readers and the longest names and addresses."""
    filters: list[list[str]] = [[], *([name] for name in settings.categories.names)]
    found = []
    for number, categories in enumerate(filters):
        found.append(Subscriber(email=f"reader{number}@example.org", name="Ana", token=f"token-{number}",
                                categories=categories))
        for variant, name in enumerate(LONG_NAMES):
            address = f"{variant}{number}{LONG_ADDRESS}"[:64] + LONG_ADDRESS[64:]
            found.append(Subscriber(email=address, name=name, token="t" * 40 + f"-{number}-{variant}",
                                    categories=categories))
    return found


def html_part_size(raw: bytes) -> int:
    match = HTML_PART.search(raw)
    assert match is not None
    return len(match.group(1))


@pytest.mark.parametrize("summary", ["short", "full"])
def test_every_message_of_the_busiest_day_stays_under_the_clip(busiest_day: Day, summary: str) -> None:
    settings = settings_for(summary)
    Classifier(settings.categories).assign([busiest_day])
    plan = plan_day(settings, busiest_day.date, busiest_day.papers, readers(settings))
    assert len(busiest_day.papers) >= 39 and len(plan.messages) >= 20
    limit = settings.email.gmail_clip_kb * 1024
    for planned in plan.messages:
        raw = plan.message_bytes(planned)
        assert html_part_size(raw) <= limit, (planned.subscriber.email, planned.rendition_key)
    assert not [w for w in plan.warnings if "clips a message; readers will see" in w]


def test_a_tight_clip_lists_the_last_papers_by_title_and_says_so(busiest_day: Day) -> None:
    settings = settings_for("short", clip_kb=60)
    Classifier(settings.categories).assign([busiest_day])
    plan = plan_day(settings, busiest_day.date, busiest_day.papers, readers(settings)[:4])  # all categories
    (rendition,) = plan.renditions.values()
    assert rendition.layout.detailed is not None and 0 < rendition.layout.detailed < len(busiest_day.papers)
    title_only = len(busiest_day.papers) - rendition.layout.detailed
    for planned in plan.messages:
        raw = plan.message_bytes(planned)
        assert html_part_size(raw) <= 60 * 1024
        text, html = parts(parse(raw))
        assert f"the last {title_only} are listed by title only" in " ".join(html.split())
        assert "listed by title only" in " ".join(text.split())
        assert "Unsubscribe" in html.split("listed by title only")[-1]  # the footer is there, not clipped
        archive_links = re.findall(r'<p class="brief" id="(p-[^"]+)"[^>]*><a href="([^"]+)"', html)
        assert len(archive_links) == title_only
        for anchor, href in archive_links:
            assert href == f"https://papers.example.org/newsletter/archive/{busiest_day.date}#{anchor}"
    assert len(plan.warnings) == 1 and f"lists {title_only} papers by title only" in plan.warnings[0]
