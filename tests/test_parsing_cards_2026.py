"""Cards pages as published since 2026: bilingual, read as a browser reads them, with drift warnings.

The made-up variant page in the corpus is checked through the real CLI; the structures are also
checked on pages built here, with other counts, a paper without points and monolingual pages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cards_pages_2026 import (
    LABELS,
    Card,
    make_card,
    page_html,
    page_text,
)
from newsletter.models import ParseResult
from newsletter.parsing import parse_text
from newsletter.parsing.cards_html import MAX_DEPTH

VARIANTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "variants"
PAPER_FIELDS = ("title", "published", "points", "quiz", "arxiv_id")


def expected_papers(cards: list[Card], with_answers: bool) -> list[dict[str, object]]:
    return [
        {
            "title": card.title,
            "published": card.published,
            "arxiv_id": card.arxiv_id,
            "points": [{"label": label, "text": text} for label, text in zip(LABELS, card.points, strict=False)],
            "quiz": [
                {"question": q.text, "options": q.options, "answer": q.options[q.answer] if with_answers else None}
                for q in card.quiz
            ],
        }
        for card in cards
    ]


def as_json(result: ParseResult) -> dict[str, object]:
    from newsletter.models import day_as_dict

    return json.loads(json.dumps(day_as_dict(result.days[0]), ensure_ascii=False))


def papers_of(day: dict[str, object]) -> list[dict[str, object]]:
    return [{key: paper[key] for key in PAPER_FIELDS} for paper in day["papers"]]  # type: ignore[attr-defined,index]


# --- the corpus variant, through the real CLI ------------------------------------------------------


@pytest.mark.parametrize("suffix", ["html", "txt"])
def test_the_variant_page_gives_the_expected_result_through_the_cli(suffix: str) -> None:
    expected_file = VARIANTS / "cards-2026-bilingual.expected.json"
    if not expected_file.is_file():
        pytest.skip(f"corpus variants not found at {VARIANTS} (../shared/corpus/variants)")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    if suffix == "txt":  # the text form never had the answers
        for paper in expected["papers"]:
            for question in paper["quiz"]:
                question["answer"] = None
    run = subprocess.run(
        [sys.executable, "-m", "newsletter.cli", "parse", "--json", str(VARIANTS / f"cards-2026-bilingual.{suffix}")],
        capture_output=True, text=True, check=False, cwd=VARIANTS,
    )
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr
    (day,) = json.loads(run.stdout)["days"]
    assert {"date": day["date"], "papers": papers_of(day)} == expected
    assert day["note"].startswith("Read the tokenizer paper first")
    assert set(day["note_translations"]) == {"zh"} and "今日阅读推荐" not in day["note_translations"]["zh"]
    for paper in day["papers"]:
        zh = paper["translations"]["zh"]
        assert len(zh["points"]) == 5 and len(zh["quiz"]) == len(paper["quiz"])
        assert all(len(q["options"]) == 3 for q in zh["quiz"])
        # The Chinese text is kept apart, never mixed into the English fields.
        english = json.dumps([paper["points"], paper["quiz"], paper["summary"]], ensure_ascii=False)
        assert not any("\u4e00" <= char <= "\u9fff" for char in english)


# --- pages built here -----------------------------------------------------------------------------


def test_a_bilingual_page_of_five_papers_reads_the_same_as_html_and_as_text() -> None:
    cards = [make_card(n) for n in range(1, 6)]
    cards[1] = make_card(2, points=0)  # a paper whose points are missing
    cards[2].svg_closed = False  # the flowchart's </svg> is missing: the papers after it must survive
    cards[3].quiz = cards[3].quiz[:1]
    cards[4].authors = "Ada Lovelace, Alan Turing and Grace Hopper"
    tips = ("Start with paper 3; paper <5> builds on it.", "先读第三篇论文。")
    from_html = as_json(parse_text(page_html("2031-03-02", cards, tips), "five.html"))
    from_text = as_json(parse_text(page_text("2031-03-02", cards, tips), "five.txt"))
    assert papers_of(from_html) == expected_papers(cards, with_answers=True)
    assert papers_of(from_text) == expected_papers(cards, with_answers=False)
    for day in (from_html, from_text):
        assert day["note"] == tips[0] and day["note_translations"] == {"zh": tips[1]}
        papers = day["papers"]
        assert papers[4]["authors"] == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]  # type: ignore[index]
        assert papers[1]["translations"]["zh"]["points"] == []  # type: ignore[index]
        zh = papers[0]["translations"]["zh"]  # type: ignore[index]
        assert [p["text"] for p in zh["points"]] == cards[0].zh_points
        assert [q["question"] for q in zh["quiz"]] == [q.zh_text for q in cards[0].quiz]
        assert [q["options"] for q in zh["quiz"]] == [q.zh_options for q in cards[0].quiz]
    html_zh = from_html["papers"][0]["translations"]["zh"]["quiz"]  # type: ignore[index]
    assert [q["answer"] for q in html_zh] == [q.zh_options[q.answer] for q in cards[0].quiz]


def test_parse_results_have_no_warnings_on_good_pages() -> None:
    cards = [make_card(n) for n in range(1, 5)]
    for result in (parse_text(page_html("2031-03-02", cards), "a.html"),
                   parse_text(page_text("2031-03-02", cards), "a.txt")):
        assert result.warnings == []
        assert result.health is not None and result.health.drift == {}
        assert (result.health.blocks, result.health.papers) == (4, 4)


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_monolingual_page_has_no_translations(form: str) -> None:
    cards = [make_card(n, bilingual=False) for n in range(1, 4)]
    page = (page_html if form == "html" else page_text)("2031-03-03", cards)
    result = parse_text(page, f"mono.{form}")
    assert result.warnings == []
    day = as_json(result)
    assert papers_of(day) == expected_papers(cards, with_answers=form == "html")
    assert all("translations" not in paper for paper in day["papers"])  # type: ignore[attr-defined]
    assert day["note"] == ""


def test_a_page_nested_deeper_than_a_browser_nests_still_gives_every_paper() -> None:
    cards = [make_card(1), make_card(2)]
    page = page_html("2031-03-04", cards)
    deep = "".join(f'<div class="quiz-tab" data-answer="x">Q{n % 9}' for n in range(MAX_DEPTH * 4))
    page = page.replace('<div class="paper-container">', deep + '<div class="paper-container">', 2)
    result = parse_text(page, "deep.html")
    assert [p["title"] for p in papers_of(as_json(result))] == [c.title for c in cards]


# --- drift ----------------------------------------------------------------------------------------


def line_of(page: str, needle: str) -> int:
    return next(n for n, line in enumerate(page.split("\n"), 1) if needle in line)


def drift_warnings(result: ParseResult, kind: str) -> list[str]:
    return [f"{w.file}:{w.line}: {w.message}" for w in result.warnings if w.kind == kind]


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_fourth_option_is_drift(form: str) -> None:
    cards = [make_card(1), make_card(2)]
    cards[1].quiz[1].options.append("A fourth option")
    page = (page_html if form == "html" else page_text)("2031-03-05", cards)
    result = parse_text(page, f"four.{form}")
    (warning,) = drift_warnings(result, "options_not_three")
    assert "4 options" in warning and warning.startswith(f"four.{form}:{line_of(page, cards[1].quiz[1].text)}:")
    assert result.health is not None and result.health.drift == {"options_not_three": 1}


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_missing_point_is_drift(form: str) -> None:
    cards = [make_card(1), make_card(2), make_card(3)]
    del cards[2].points[3]
    page = (page_html if form == "html" else page_text)("2031-03-05", cards)
    result = parse_text(page, f"point.{form}")
    (warning,) = drift_warnings(result, "points_not_five")
    assert "4 points" in warning and warning.startswith(f"point.{form}:{line_of(page, cards[2].points[0])}:")
    assert len(result.days[0].papers[2].points) == 4


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_card_with_one_point_says_one_point(form: str) -> None:
    page = (page_html if form == "html" else page_text)("2031-03-05", [make_card(1), make_card(2, points=1)])
    (warning,) = drift_warnings(parse_text(page, f"one.{form}"), "points_not_five")
    assert "card has 1 point where 5 are expected" in warning


@pytest.mark.parametrize("form", ["html", "txt"])
def test_options_in_two_scripts_are_drift(form: str) -> None:
    cards = [make_card(1, bilingual=False), make_card(2, bilingual=False)]
    cards[0].quiz[0].options[2] = "可学习的边界检测器"
    page = (page_html if form == "html" else page_text)("2031-03-05", cards)
    result = parse_text(page, f"mixed.{form}")
    (warning,) = drift_warnings(result, "mixed_scripts")
    assert warning.startswith(f"mixed.{form}:{line_of(page, cards[0].quiz[0].text)}:")


@pytest.mark.parametrize("form", ["html", "txt"])
def test_a_page_where_half_the_cards_are_unreadable_warns_for_each(form: str) -> None:
    cards = [make_card(n) for n in range(1, 7)]
    for card in cards[::2]:
        card.arxiv_id = "not-an-id"
    page = (page_html if form == "html" else page_text)("2031-03-06", cards)
    result = parse_text(page, f"half.{form}")
    assert len(result.days[0].papers) == 3
    warnings = drift_warnings(result, "skipped_card")
    assert len(warnings) == 3
    link_lines = [n for n, line in enumerate(page.split("\n"), 1) if "not-an-id" in line and "Link" in line]
    assert [int(w.split(":")[1]) for w in warnings] == link_lines
    assert result.health is not None and (result.health.blocks, result.health.papers) == (6, 3)


def test_a_line_the_layout_does_not_have_is_drift() -> None:
    cards = [make_card(1), make_card(2)]
    page = page_text("2031-03-07", cards).replace("Input Model\n", "Input Model\nSponsored: buy our GPUs\n", 1)
    result = parse_text(page, "extra.txt")
    (warning,) = drift_warnings(result, "unread_block")
    assert warning.startswith(f"extra.txt:{line_of(page, 'Sponsored')}:")
    assert len(result.days[0].papers) == 2


def test_a_page_drifted_everywhere_gets_a_bounded_number_of_warnings_and_whole_counts() -> None:
    cards = [make_card(n, bilingual=False, points=4) for n in range(1, 61)]
    result = parse_text(page_text("2031-03-08", cards), "everywhere.txt")
    assert len(drift_warnings(result, "points_not_five")) == 50
    assert any("10 more points not five warnings" in w.message for w in result.warnings)
    assert result.health is not None and result.health.drift == {"points_not_five": 60}
    assert len(result.days[0].papers) == 60
