"""A skimmable email (issue 17): short summaries, every title at the top, the rest one click away on
the archive page of each paper; `[email] summary`; a plain-text part without Markdown, at 72 columns."""

from __future__ import annotations

import datetime as dt
import email
import re
import shutil
from email import policy
from pathlib import Path

import pytest
import requests

from helpers import run, write_config
from mail_helpers import build, link_signing_key, parse, parts  # noqa: F401 (the fixture signs links)
from newsletter import render
from newsletter.config import load_settings
from newsletter.excerpt import excerpt, sentences
from newsletter.models import Paper, Point, QuizQuestion, Subscriber
from newsletter.selection import Filter
from newsletter.store import Store
from newsletter.web import create_app
from smtp_helpers import free_port
from web_support import EXAMPLE_DIGESTS, SECRET, SECRET_ENV, check_page, thread_server, web_config

SENTENCES = [
    "a) This research asks whether **sparse** routing helps long documents, e.g. legal filings.",
    "b) The authors route tokens with a learned gate and compare against dense attention in Fig. 2.",
    "c) Results show a 40% cost cut at equal quality on three long-document benchmarks and more.",
    "d) Practitioners can apply the gate to any decoder without retraining the rest of the model at all.",
]
CARD_POINTS = [Point("Topic and Domain", "Depth estimation from one photo."),
               Point("Methods", "A diffusion prior refines a coarse depth map."),
               Point("Results and Evaluation", "Errors drop below 5 cm indoors. Outdoors it is slower.")]
URL_LINE = re.compile(r"^\s*(?:https?://|mailto:)\S+$")


def papers() -> list[Paper]:
    return [
        Paper(arxiv_id="2505.10001", title="Sparse Gates for Long Documents", authors=["Ana Souza"],
              summary="  ".join(SENTENCES), categories=["Natural Language Processing"],
              links={"arxiv": "https://arxiv.org/abs/2505.10001"}),
        Paper(arxiv_id="2505.10002", title="Depth from a Single Photo", categories=["Computer Vision"],
              points=CARD_POINTS,  # no summary: a card has none
              quiz=[QuizQuestion("Which prior is used?", ("Diffusion", "GAN", "None"), "Diffusion")],
              links={"arxiv": "https://arxiv.org/abs/2505.10002"}),
    ]


def test_excerpts_end_at_a_sentence_and_drop_enumeration_markers() -> None:
    text = " ".join(SENTENCES)
    assert sentences(text)[0] == SENTENCES[0][3:]
    assert len(sentences(text)) == 4  # "e.g." and "Fig. 2" end no sentence
    assert excerpt(text, 300) == " ".join(s[3:] for s in SENTENCES[:3])
    assert excerpt(text, 100) == SENTENCES[0][3:]
    # One run-on sentence far past the limit is cut at a word, never inside one.
    long_one = "This sentence " + "keeps going and going " * 40 + "until it ends."
    cut = excerpt(long_one, 300)
    assert cut.endswith("…") and len(cut) <= 301 and long_one.startswith(cut[:-1])
    assert excerpt("", 300) == ""


def test_a_short_email_shows_a_sentence_or_two_every_title_first_and_links_to_the_rest() -> None:
    plan = build(papers(), [Subscriber(email="a@example.org", token="t")])
    text, html = parts(parse(plan.message_bytes(plan.messages[0])))
    # The top lists every title, by category, before the first paper's block.
    top = html[html.index("In this issue"):html.index('id="p-2505.10001"')]
    assert top.index("Natural Language Processing (1)") < top.index("Sparse Gates for Long Documents")
    assert top.index("Sparse Gates") < top.index("Computer Vision (1)") < top.index("Depth from a Single Photo")
    # Short: whole sentences up to about 300 characters; the fourth is on the archive page only.
    assert "This research asks whether sparse routing helps long documents, e.g. legal filings." in html
    assert "40% cost cut" in html and "Practitioners" not in html and "Practitioners" not in text
    # A card keeps one line of its points (its results), and neither the other points nor the quiz.
    assert "Errors drop below 5 cm indoors." in html and "Outdoors" not in html
    assert "A diffusion prior" not in html and "Which prior is used?" not in html and "QUIZ ANSWERS" not in text
    for anchor in ("p-2505.10001", "p-2505.10002"):
        assert f'href="https://papers.example.org/archive/2025-05-13#{anchor}"' in html
        assert f"https://papers.example.org/archive/2025-05-13#{anchor}" in text


def test_a_full_email_shows_every_sentence_the_points_and_the_quiz() -> None:
    plan = build(papers(), [Subscriber(email="a@example.org", token="t")], summary="full")
    text, html = parts(parse(plan.message_bytes(plan.messages[0])))
    assert "Practitioners can apply the gate" in html and "<strong>sparse</strong>" in html
    assert "A diffusion prior refines" in html and "Which prior is used?" in html
    assert "Q1 (Depth from a Single Photo): Diffusion" in text
    assert "archive/2025-05-13#" not in html  # nothing more to see on the web


def test_the_plain_text_has_no_markdown_and_wraps_at_72_columns() -> None:
    long_name = "Maximiliane Alexandra Konstantinopoulou-Papadimitriou von und zu Hohenberg-Schwarzenfels"
    for summary in ("short", "full"):
        plan = build(papers(), [Subscriber(email="a@example.org", name=long_name, token="t")], summary=summary)
        text, _html = parts(parse(plan.message_bytes(plan.messages[0])))
        assert "**" not in text and "sparse" in text
        too_long = [line for line in text.splitlines() if len(line) > 72 and not URL_LINE.match(line)]
        assert too_long == [], summary
        assert "Konstantinopoulou-Papadimitriou" in text


def test_summary_must_be_short_or_full(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra='summary = "medium"')
    result = run(config, "status")
    assert result.exit_code == 2
    assert "email.summary" in result.output and "short, full" in result.output
    ok = write_config(tmp_path, extra='summary = "full"')
    assert load_settings(ok).email.summary == "full"
    assert load_settings(write_config(tmp_path)).email.summary == "short"


@pytest.mark.usefixtures("store_backend")
def test_every_more_link_of_an_email_opens_that_paper_in_full_on_the_archive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    digests = tmp_path / "digests"
    shutil.copytree(EXAMPLE_DIGESTS, digests)
    config = web_config(tmp_path, free_port(), digests=digests)
    assert run(config, "ingest").exit_code == 0
    assert run(config, "subscribers", "add", "reader@example.org").exit_code == 0
    assert run(config, "send", "--dry-run", "--date", "2026-11-20").exit_code == 0
    (eml,) = tmp_path.rglob("2026-11-20/*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    more = re.findall(r'href="https://papers\.example\.org/archive/2026-11-20#(p-[^"]+)"', html)
    assert more, "the short email links each paper's full text on the archive"
    settings = load_settings(config)
    with Store.from_settings(settings) as store, thread_server(create_app(settings, store=store), settings) as base:
        tree = check_page(requests.get(f"{base}/archive/2026-11-20", timeout=10))
        day = store.get_day(dt.date(2026, 11, 20))
    assert day is not None
    by_anchor = {f"p-{p.arxiv_id}": p for p in day.papers}
    for anchor in more:
        (block,) = [e for e in tree.iter() if e.get("id") == anchor]
        shown = " ".join("".join(block.itertext()).split())
        paper = by_anchor[anchor]
        for point in paper.points:
            assert " ".join(point.text.split())[:60] in shown
        for question in paper.quiz:
            assert " ".join(question.question.split())[:60] in shown
        if not paper.points:
            assert " ".join(paper.summary.replace("**", "").replace("*", "").split())[-60:] in shown


def test_a_paper_listed_by_title_only_always_links_to_the_archive() -> None:
    bare = Paper(arxiv_id="2505.10003", title="No Summary At All", categories=["Computer Vision"])
    context, _ids = render.digest_context(
        site_title="T", sender="T <t@example.org>", date=dt.date(2025, 5, 13), papers=[*papers(), bare],
        filt=Filter(), category_order=["Natural Language Processing", "Computer Vision"],
        archive_url="https://papers.example.org/archive/2025-05-13", postal_address="",
        personal={"greeting": "Hi,", "email": "e", "unsubscribe_url": "u", "preferences_url": "p", "feed_url": "f",
                  "followed": ""},
        layout=render.Layout(summary="brief", detailed=0), fitted=True)
    views = [view for group in context["groups"] for view in group.papers]
    assert context["title_only"] == 3 and not any(view.detailed for view in views)
    assert [view.more_url for view in views] == [
        f"https://papers.example.org/archive/2025-05-13#{render.paper_anchor(view.arxiv_id)}" for view in views]
