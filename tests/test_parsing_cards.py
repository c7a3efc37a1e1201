"""The paper-cards parser: the real text seed, hand-written text pages and generated HTML pages."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from newsletter.errors import DigestError
from newsletter.parsing import detect_format, parse_file, parse_text

LABELS = ["Topic and Domain", "Previous Research and New Ideas", "Problem", "Methods", "Results and Evaluation"]
EMOJIS = ["📘", "💡", "❓", "🛠️", "📊"]
ZH_LABELS = ["主题与领域", "先前研究与新想法", "问题", "方法", "结果与评估"]


@dataclass
class Card:
    arxiv_id: str
    title: str
    points: list[str] = field(default_factory=list)
    quiz: list[tuple[str, list[str], int]] = field(default_factory=list)
    """(question, options, index of the right option)."""
    published: str = "2030-04-01"
    flowchart: str = "Flowchart Input -> Model -> Output"


def make_card(number: int, with_points: bool = True) -> Card:
    return Card(
        arxiv_id=f"3004.{number:05d}",
        title=f"Card Paper {number}: Learning & <Testing>",
        points=[f"Point {i} of paper {number}, with a colon: inside." for i in range(1, 6)] if with_points else [],
        quiz=[(f"Question {q} about paper {number}?", [f"Option {q}{o}" for o in "abc"], q % 3) for q in (1, 2, 3)],
    )


def cards_text(date: str, cards: list[Card], bilingual: bool = False) -> str:
    out = ["ZH", ""] if bilingual else []
    out += [f"{date} Papers", ""]
    for number, card in enumerate(cards, 1):
        out += ["1/2", "", f"Paper {number}", "", card.title, "", f"Published: {card.published}", ""]
        out += [f"Link: http://arxiv.org/pdf/{card.arxiv_id}v2", ""]
        out += [f"{i}. {EMOJIS[i - 1]} {LABELS[i - 1]}: {text}" for i, text in enumerate(card.points, 1)]
        if bilingual and card.points:
            out += [f"{i}. {EMOJIS[i - 1]} {ZH_LABELS[i - 1]}：这是第{i}点的中文说明。" for i in range(1, 6)]
        out += ["", card.title, "", card.flowchart]
        questions = list(card.quiz)
        if bilingual:
            questions += [(f"关于论文的中文问题{q}？", [f"中文选项{q}{o}" for o in "甲乙丙"], 0) for q in (1, 2, 3)]
        for q, (question, options, _) in enumerate(questions, 1):
            out += [f"Q{q}", f"{q}. {question}", *options]
    return "\n".join(out) + "\n"


def cards_html(date: str, cards: list[Card], answer: str = "text") -> str:
    """A rendered cards page; ``answer`` is how data-answer names the right option: text, index0, index1."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'><title>Daily cards</title>",
        "<style>.card { color: red; } /* Paper 99 */</style></head><body>",
        "<nav><button class='lang'>ZH</button></nav>",
        f"<header><h1><span class='date'>{date}</span> Papers</h1></header><main>",
    ]
    for number, card in enumerate(cards, 1):
        parts += [
            f"<article class='card' id='p{number}'><div class='counter'>{number}/{len(cards)}</div>",
            f"<h2>Paper {number}</h2><h3 class='title'><a href='#'>{esc(card.title)}</a></h3>",
            f"<p class='meta'>Published: <time>{card.published}</time></p>",
            f"<p class='meta'>Link: <a href='https://arxiv.org/pdf/{card.arxiv_id}'>"
            f"http://arxiv.org/pdf/{card.arxiv_id}</a></p><ol class='points'>",
        ]
        parts += [
            f"<li>{i}. {EMOJIS[i - 1]} <strong>{LABELS[i - 1]}:</strong>\n  {esc(text)}</li>"
            for i, text in enumerate(card.points, 1)
        ]
        parts += [
            f"</ol><div class='repeat'>{esc(card.title)}</div>",
            f"<div class='flow'><svg><text>{esc(card.flowchart)}</text></svg></div>",
            "<script>const answers = {'Q1': 'Paper 7'};</script><section class='quiz'>",
        ]
        for q, (question, options, right) in enumerate(card.quiz, 1):
            value = {"text": options[right], "index0": str(right), "index1": str(right + 1)}[answer]
            parts += [
                f"<div class='question' data-answer='{esc(value)}'><div class='qn'>Q{q}</div>",
                f"<p>{q}. {esc(question)}</p><ul>",
                *[f"<li class='option'>{esc(option)}</li>" for option in options],
                "</ul></div>",
            ]
        parts += ["</section></article>"]
    parts += ["</main><footer></footer></body></html>"]
    return "\n".join(parts)


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
        assert paper.points[2].text in paper.summary and paper.points[4].text in paper.summary
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
    assert first.summary.startswith("**Topic and Domain:** Point 1 of paper 1")
    assert "**Results and Evaluation:** Point 5" in first.summary
    assert first.line == 5


def test_a_card_without_points_is_kept_with_its_flowchart_as_summary() -> None:
    cards = [make_card(1), make_card(2, with_points=False), make_card(3)]
    result = parse_text(cards_text("2030-04-02", cards), "cards.txt")
    papers = result.days[0].papers
    assert [len(p.points) for p in papers] == [5, 0, 5]
    assert papers[1].summary == cards[1].flowchart
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
        assert "中文" not in paper.summary


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
    assert day.papers[1].summary == cards[1].flowchart


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
