"""Messages built from synthetic papers: golden file, hostile text, and any title or name."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail_helpers import (  # noqa: F401 (link_signing_key: an autouse fixture that signs links)
    CARD_POINTS,
    DAY,
    FIXED_NOW,
    SECRET_ENV,
    XSS,
    build,
    link_signing_key,
    make_settings,
    parse,
    parts,
    sample_papers,
)
from newsletter.config import settings_from_dict
from newsletter.dispatch import mail
from newsletter.errors import ConfigError
from newsletter.models import Paper, Point, QuizQuestion, Subscriber
from newsletter.sanitize import strip_invalid_xml

GOLDEN = Path(__file__).parent / "golden" / "email"
REGENERATE = os.environ.get("NEWSLETTER_REGEN_GOLDEN") == "1"


def test_golden_rendition() -> None:
    """The whole message for one rendition; Date, Message-ID and the boundary are masked."""
    subscriber = Subscriber(email="reader@example.org", name="Rae Reader", token="golden-token",
                            feed_token="golden-feed-token",
                            categories=["Computer Vision", "Natural Language Processing"])
    plan = build(sample_papers(), [subscriber])
    raw = plan.message_bytes(plan.messages[0])
    parse(raw)
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    masked = raw.replace(boundary.group(1), b"BOUNDARY")
    masked = re.sub(rb"(?m)^(Date|Message-ID): [^\r]*", rb"\1: MASKED", masked)
    golden = GOLDEN / "computer-vision+nlp.eml"
    if REGENERATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(masked)
    assert masked == golden.read_bytes(), "run with NEWSLETTER_REGEN_GOLDEN=1 after a deliberate template change"


def test_grouping_quiz_answers_and_shortened_authors() -> None:
    plan = build(sample_papers(), [Subscriber(email="a@example.org", token="t")], summary="full")
    message = plan.messages[0]
    # Taxonomy order: Natural Language Processing before Computer Vision.
    assert message.papers == ("2505.00001", "2505.00002", "2505.00003")
    text, html = parts(parse(plan.message_bytes(message)))
    assert "Ana Souza, Bo Chen, Chidi Okafor +2 more" in text
    assert "<strong>sparse</strong>" in html and "<em>40%</em>" in html
    assert "Q1 (Cards Paper With a Quiz): Diffusion" in text
    assert "Q2 (" not in text.split("QUIZ ANSWERS")[1]
    assert text.index("Results and Evaluation") < text.index("QUIZ ANSWERS")
    # A card's summary is its points run together: the points show once, the summary not at all.
    assert text.count("Topic and Domain of the paper.") == 1 and html.count("Topic and Domain of the paper.") == 1


def test_a_paper_with_points_and_a_summary_of_its_own_shows_both() -> None:
    """A paper listed by a table and a cards page keeps the table's summary beside the card's points."""
    paper = dataclasses.replace(sample_papers()[2], summary="The table's *own* summary.")
    plan = build([paper], [Subscriber(email="a@example.org", token="t")], summary="full")
    text, html = parts(parse(plan.message_bytes(plan.messages[0])))
    # The plain text shows no Markdown markup (issue 17): "*own*" is "own" there.
    assert "The table's <em>own</em> summary." in html and "The table's own summary." in text
    assert text.count("Topic and Domain of the paper.") == 1 and html.count("Topic and Domain of the paper.") == 1


def test_default_subject_counts_papers_in_words_and_count_still_works() -> None:
    plan = build(sample_papers()[:1], [Subscriber(email="one@example.org", token="one-token")])
    assert parse(plan.message_bytes(plan.messages[0]))["Subject"] == "Test Papers: 1 paper for 13 May 2025"
    assert mail.subject_for(make_settings(), DAY, 5) == "Test Papers: 5 papers for 13 May 2025"

    custom = settings_from_dict({"email": {"subject": "{count} new in {title}, {date:%Y-%m-%d}"}},
                                Path("/nonexistent/config.toml"))
    assert mail.subject_for(custom, DAY, 1) == "1 new in Daily AI Papers, 2025-05-13"
    unknown = settings_from_dict({"email": {"subject": "{title}: {paper}"}}, Path("/nonexistent/config.toml"))
    with pytest.raises(ConfigError, match="paper") as raised:
        mail.subject_for(unknown, DAY, 1)
    assert "{papers}" in (raised.value.hint or "")


def test_recipients_are_counted_per_rendition() -> None:
    vision = ["Computer Vision"]
    plan = build(sample_papers(), [Subscriber(email="a@example.org", token="a", categories=vision),
                                   Subscriber(email="b@example.org", token="b"),
                                   Subscriber(email="c@example.org", token="c", categories=vision)])
    assert plan.recipients_per_rendition() == {"Computer Vision": 2, "all": 1}


def test_message_id_is_stable_per_day_and_address() -> None:
    subscriber = Subscriber(email="Reader@Example.org", token="t")
    first = build(sample_papers(), [subscriber]).messages[0].message_id
    assert first == build(sample_papers(), [subscriber]).messages[0].message_id
    other_day = mail.message_id(DAY + dt.timedelta(days=1), subscriber, "example.org")
    assert other_day != first and other_day.startswith("<20250514.")


def test_gmail_clip_warning(tmp_path: Path) -> None:
    big = [Paper(arxiv_id=f"2505.{i:05d}", title=f"Paper {i}", summary="word " * 400, categories=["Machine Learning"])
           for i in range(60)]
    plan = build(big, [Subscriber(email="a@example.org", token="t")], summary="full")
    assert len(plan.warnings) == 1 and "Gmail clips" in plan.warnings[0]
    assert build(sample_papers(), [Subscriber(email="a@example.org", token="t")]).warnings == []


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)


def test_xss_corpus_leaves_nothing_unescaped() -> None:
    papers = [Paper(arxiv_id=f"2505.1000{i}", title=f"T{i} {payload}", authors=[payload], summary=payload,
                    categories=["Machine Learning"], links={"arxiv": "javascript:alert(1)", "huggingface": payload},
                    points=[Point("Methods", payload)], quiz=[QuizQuestion(payload, (payload,), payload)])
              for i, payload in enumerate(XSS)]
    subscribers = [Subscriber(email=f"s{i}@example.org", name=payload.replace("\n", " "), token=f"t{i}")
                   for i, payload in enumerate(XSS)]
    plan = build(papers, subscribers)
    for planned in plan.messages:
        text, html = parts(parse(plan.message_bytes(planned)))
        collector = Collector()
        collector.feed(html)
        assert not {"script", "img", "svg", "iframe"} & set(collector.tags)
        assert collector.tags.count("style") == 1
        for name, value in collector.attributes:
            assert not name.startswith("on"), name
            assert not (value or "").strip().lower().startswith("javascript:"), value
        assert "49" not in html and "{{ 7*7 }}" in text


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(max_size=200), name=st.text(max_size=120))
def test_any_title_or_name_builds_a_valid_message(title: str, name: str) -> None:
    paper = Paper(arxiv_id="2505.00009", title=title, categories=["Machine Learning"],
                  links={"arxiv": "https://arxiv.org/abs/2505.00009"})
    plan = build([paper], [Subscriber(email="any@example.org", name=name, token="tok")])
    raw = plan.message_bytes(plan.messages[0])
    message = parse(raw)
    address = message["To"].addresses[0]
    assert address.addr_spec == "any@example.org"
    # Spaces aside: policy.default's parser keeps the folding space between two adjacent encoded
    # words of a long non-ASCII name, which RFC 2047 section 6.2 says to drop (mail clients do).
    assert address.display_name.replace(" ", "") == mail.clean_display_name(name).replace(" ", "")
    text, _html = parts(message)
    expected_title = " ".join(strip_invalid_xml(" ".join(title.split())).split())
    assert expected_title in " ".join(text.split())
