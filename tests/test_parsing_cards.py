"""The paper-cards parser: the real text seed, hand-written text pages and generated HTML pages."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from cards_pages_2025 import LABELS, cards_html, cards_text, make_card
from newsletter.errors import DigestError
from newsletter.models import summary_of
from newsletter.parsing import detect_format, parse_file, parse_text

# --- the real seed -----------------------------------------------------------------------------


def test_seed_001_cards_have_points_quiz_and_links(seed_files: list[Path]) -> None:
    path = seed_files[1]
    assert detect_format(path.read_text(encoding="utf-8")) == "cards-text"
    result = parse_file(path)
    assert result.warnings == []
    day = result.days[0]
    assert day.date == dt.date(2025, 4, 14)
    assert len(day.papers) == 3
    text = path.read_text(encoding="utf-8")
    for paper in day.papers:
        assert [point.label for point in paper.points] == LABELS
        assert all(point.text and point.text in text for point in paper.points)
        assert len(paper.quiz) == 3
        for question in paper.quiz:
            assert len(question.options) == 3 and question.answer is None
            assert not re.match(r"\d+\.", question.question) and question.question in text
        assert paper.published is not None and paper.published <= day.date
        assert f"Link: http://arxiv.org/pdf/{paper.arxiv_id}" in text
        assert paper.authors == [] and paper.category is None
        assert paper.summary == ""
        assert paper.points[2].text in summary_of(paper) and paper.points[4].text in summary_of(paper)
        assert text.count(paper.title) >= 2


# --- text pages, hand-written ------------------------------------------------------------------


def test_a_cards_page_gives_titles_points_quiz_and_a_summary_from_the_points() -> None:
    cards = [make_card(1), make_card(2)]
    result = parse_text(cards_text("2030-04-02", cards), "cards.txt")
    assert result.warnings == []
    day = result.days[0]
    assert day.date == dt.date(2030, 4, 2)
    first = day.papers[0]
    assert [p.arxiv_id for p in day.papers] == ["3004.00001", "3004.00002"]
    assert first.title == "Card Paper 1: Learning & <Testing>"
    assert first.published == dt.date(2030, 4, 1)
    assert first.links == {"arxiv": "https://arxiv.org/abs/3004.00001", "pdf": "https://arxiv.org/pdf/3004.00001"}
    assert [(p.label, p.text) for p in first.points] == list(zip(LABELS, cards[0].points, strict=True))
    assert [(q.question, q.options, q.answer) for q in first.quiz] == [
        (question, tuple(options), None) for question, options, _ in cards[0].quiz
    ]
    assert first.summary == ""  # a card has no summary; one is derived where it is shown
    assert summary_of(first).startswith("**Topic and Domain:** Point 1 of paper 1")
    assert "**Results and Evaluation:** Point 5" in summary_of(first)
    assert first.line == 5


def test_a_card_without_points_is_kept_with_its_flowchart_shown_as_summary() -> None:
    cards = [make_card(1), make_card(2, with_points=False), make_card(3)]
    result = parse_text(cards_text("2030-04-02", cards), "cards.txt")
    papers = result.days[0].papers
    assert [len(p.points) for p in papers] == [5, 0, 5]
    assert (papers[1].summary, papers[1].flowchart) == ("", cards[1].flowchart)
    assert summary_of(papers[1]) == cards[1].flowchart
    assert len(papers[1].quiz) == 3 and papers[2].title == cards[2].title


def test_a_bilingual_page_keeps_the_english_points_and_quiz() -> None:
    cards = [make_card(1), make_card(2)]
    text = cards_text("2030-04-02", cards, bilingual=True)
    assert "主题与领域" in text and text.startswith("ZH\n")
    result = parse_text(text, "zh.txt")
    assert result.warnings == []
    for card, paper in zip(cards, result.days[0].papers, strict=True):
        assert [p.label for p in paper.points] == LABELS
        assert [p.text for p in paper.points] == card.points
        assert [q.question for q in paper.quiz] == [question for question, _, _ in card.quiz]
        assert "中文" not in summary_of(paper) + paper.flowchart


def test_more_than_three_cards_and_fraction_options_survive() -> None:
    cards = [make_card(n) for n in range(1, 8)]
    cards[6].quiz[2] = ("Which share of the data was used?", ["1/4", "1/3", "1/2"], 2)
    papers = parse_text(cards_text("2030-04-02", cards), "many.txt").days[0].papers
    assert len(papers) == 7
    assert papers[6].quiz[2].options == ("1/4", "1/3", "1/2")
    assert all(len(q.options) == 3 for p in papers for q in p.quiz)


def test_a_card_without_a_link_warns_and_the_others_parse() -> None:
    text = cards_text("2030-04-02", [make_card(1), make_card(2), make_card(3)])
    text = text.replace("Link: http://arxiv.org/pdf/3004.00002v2", "Link: https://example.org/paper")
    result = parse_text(text, "cards.txt")
    assert [p.arxiv_id for p in result.days[0].papers] == ["3004.00001", "3004.00003"]
    (warning,) = result.warnings
    assert "no arXiv link" in warning.message
    assert text.split("\n")[warning.line - 1] == "Link: https://example.org/paper"


def test_a_cards_page_without_its_date_line_is_a_digest_error() -> None:
    text = cards_text("2030-04-02", [make_card(1)]).replace("2030-04-02 Papers", "Some Papers")
    with pytest.raises(DigestError, match="not a digest"):
        parse_text(text, "cards.txt")


# --- HTML pages, generated ---------------------------------------------------------------------


@pytest.mark.parametrize("style", ["text", "index0", "index1"])
def test_html_cards_read_like_text_cards_and_resolve_answers(style: str) -> None:
    cards = [make_card(1), make_card(2, with_points=False), make_card(3), make_card(4)]
    page = cards_html("2030-04-03", cards, answer=style)
    assert detect_format(page) == "cards-html"
    result = parse_text(page, "cards.html")
    assert result.warnings == []
    day = result.days[0]
    assert day.date == dt.date(2030, 4, 3)
    for card, paper in zip(cards, day.papers, strict=True):
        assert (paper.arxiv_id, paper.title, paper.published) == (card.arxiv_id, card.title, dt.date(2030, 4, 1))
        assert [(p.label, p.text) for p in paper.points] == list(zip(LABELS, card.points, strict=False))
        assert [(q.question, list(q.options), q.answer) for q in paper.quiz] == [
            (question, options, options[right]) for question, options, right in card.quiz
        ]
    assert (day.papers[1].summary, summary_of(day.papers[1])) == ("", cards[1].flowchart)


def test_html_indices_that_cannot_tell_their_base_are_read_from_zero_with_a_warning() -> None:
    card = make_card(1)
    card.quiz = [(q, opts, 1) for q, opts, _ in card.quiz]
    result = parse_text(cards_html("2030-04-03", [card], answer="index0"), "cards.html")
    assert [q.answer for q in result.days[0].papers[0].quiz] == ["Option 1b", "Option 2b", "Option 3b"]
    (warning,) = result.warnings
    assert "0-based" in warning.message


def test_html_answers_by_letter_on_an_empty_marker_and_out_of_range() -> None:
    page = (
        "<html><body><p>2030-04-05 Papers</p><div>Paper 1</div><div>Marker Paper</div>"
        "<div>Link: https://arxiv.org/pdf/3004.00009</div>"
        "<div>Q1</div><div>1. First?</div><div>yes</div><div>no</div><span data-answer='B'></span>"
        "<div data-answer='7'><div>Q2</div><div>2. Second?</div><div>up</div><div>down</div></div>"
        "</body></html>"
    )
    result = parse_text(page, "marker.html")
    quiz = result.days[0].papers[0].quiz
    assert [(q.question, q.answer) for q in quiz] == [("First?", "no"), ("Second?", None)]
    assert any("'7'" in w.message for w in result.warnings)


def test_an_html_page_that_is_not_a_cards_page_is_a_digest_error() -> None:
    with pytest.raises(DigestError, match="not a digest"):
        parse_text("<!DOCTYPE html><html><body><p>Hello</p></body></html>", "page.html")


def test_a_cards_paper_without_a_summary_is_still_found_by_its_points_and_flowchart(store_url: str) -> None:
    """The digest gives a card no summary; filters, category keywords and the store read its points
    and flowchart line as they read a table paper's summary."""
    from newsletter.categories import Classifier
    from newsletter.config import CategorySettings
    from newsletter.selection import Filter
    from newsletter.store import Store

    cards = [make_card(1), make_card(2, with_points=False)]
    day = parse_text(cards_text("2030-04-02", cards), "cards.txt").days[0]
    with_points, without = day.papers
    assert (with_points.summary, without.summary) == ("", "")
    assert Filter(keywords=("point 4 of paper 1",)).matches(with_points)
    assert Filter(keywords=(cards[1].flowchart.split()[-1],)).matches(without)
    assert not Filter(excluded=("colon",)).matches(with_points)
    classifier = Classifier(CategorySettings(fallback="Other", taxonomy={"Colons": ["colon"], "Other": []}))
    assert classifier.scores(with_points) == {"Colons": 5}
    with Store(store_url) as store:
        store.ingest([day])
        stored = store.get_day(day.date)
    assert stored is not None
    assert [(p.summary, p.flowchart, p.points) for p in stored.papers] == [
        ("", p.flowchart, p.points) for p in day.papers
    ]
