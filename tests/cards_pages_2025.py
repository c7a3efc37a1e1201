"""Builders of the earlier cards pages: the text a browser copies of one, and a rendered HTML page."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

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
