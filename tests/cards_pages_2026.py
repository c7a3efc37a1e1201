"""Builders of cards pages as published since 2026: bilingual HTML, and the text a browser copies of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cards_pages_2025 import EMOJIS, LABELS  # the same five points; the Chinese labels changed

ZH_LABELS = ["主题与领域", "先前研究与新思路", "问题", "方法", "结果与评估"]


@dataclass
class Question:
    text: str
    options: list[str]
    answer: int
    zh_text: str = ""
    zh_options: list[str] = field(default_factory=list)


@dataclass
class Card:
    arxiv_id: str
    title: str
    points: list[str]
    quiz: list[Question]
    zh_points: list[str] = field(default_factory=list)
    authors: str = ""
    published: str = "2031-03-01"
    svg_closed: bool = True


def make_card(number: int, *, bilingual: bool = True, points: int = 5, questions: int = 3) -> Card:
    quiz = [
        Question(
            f"Which step {q} does paper {number} take when x <{q} GB?",
            [f"Option {q}{o} for {number}" for o in "abc"],
            q % 3,
            f"论文{number}的第{q}个问题是什么？" if bilingual else "",
            [f"中文选项{q}{o}" for o in "甲乙丙"] if bilingual else [],
        )
        for q in range(1, questions + 1)
    ]
    return Card(
        arxiv_id=f"3103.{number:05d}",
        title=f"Made-up Paper {number}: Planning at 5 Hz with <{number} GB of Memory",
        points=[f"Point {i} of paper {number} (<{i} ms), with a colon: inside." for i in range(1, points + 1)],
        quiz=quiz,
        zh_points=[f"论文{number}的第{i}点中文说明。" for i in range(1, points + 1)] if bilingual else [],
    )


def point_divs(lang: str, labels: list[str], texts: list[str], hidden: bool) -> str:
    chunks = "".join(
        f'<div class="category-chunk">{i}.  <strong>{EMOJIS[i - 1]} {labels[i - 1]}:</strong> {text}</div>'
        for i, text in enumerate(texts, 1)
    )
    style = ' style="display:none"' if hidden else ""
    return f'<div data-lang="{lang}"{style}>{chunks}</div>'


def popup(lang: str, number: int, text: str, options: list[str], answer: str) -> str:
    choices = "".join(f'<div class="quiz-choice" data-value="{o}">{o}</div>' for o in options)
    return (
        f'<div class="quiz-popup" data-answer="{answer}" data-lang="{lang}">\n'
        f'  <div class="quiz-question">{number}. {text}</div>\n'
        f'  <div class="quiz-choices">{choices}</div><div class="quiz-feedback"></div>\n</div>'
    )


def card_html(number: int, count: int, card: Card) -> str:
    """One card as the 2026 pages have it; text is left unescaped as those pages leave it."""
    parts = [
        '<div class="paper-container"><div class="card-deck">',
        f'<div class="card-counter">{number}/{count}</div><div class="paper-card active">',
        f"<h2>Paper {number}</h2>",
        f"<p><strong>{card.title}</strong></p>",
        f"<p><strong>Published: </strong>{card.published}</p>",
        f'<p><strong>Link: </strong><a href="http://arxiv.org/pdf/{card.arxiv_id}">http://arxiv.org/pdf/{card.arxiv_id}</a></p>',
    ]
    if card.authors:
        parts.append(f"<p><strong>Authors: </strong>{card.authors}</p>")
    if card.points:
        parts.append("<div>" + point_divs("en", LABELS, card.points, False)
                     + (point_divs("zh", ZH_LABELS, card.zh_points, True) if card.zh_points else "") + "</div>")
    parts += [
        '</div><div class="paper-card flowchart-card">',
        f"<h2>{card.title}</h2>",
        '<svg viewBox="0 0 600 200"><text x="1" y="1">Input</text><text x="2" y="1">Model</text>'
        + ("</svg>" if card.svg_closed else ""),
        '</div></div><div class="quiz-tabs">',
    ]
    for q, question in enumerate(card.quiz, 1):
        parts.append(f'<div class="quiz-tab" title="Click To Open Question #{q}">Q{q}')
        parts.append(popup("en", q, question.text, question.options, question.options[question.answer]))
        if question.zh_text:
            parts.append(popup("zh", q, question.zh_text, question.zh_options, question.zh_options[question.answer]))
        parts.append("</div>")
    parts.append("</div></div>")
    return "\n".join(parts)


def page_html(date: str, cards: list[Card], tips: tuple[str, str] | None = None) -> str:
    body = "\n".join(card_html(n, len(cards), card) for n, card in enumerate(cards, 1))
    tips_html = ""
    if tips is not None:
        tips_html = (
            '<div class="daily-tips-section"><h2 class="tips-heading">'
            '<span data-lang="en">Today\'s Reading Tips</span>\n<span data-lang="zh">今日阅读推荐</span></h2>'
            f'<div class="tips-content" data-lang="en">{tips[0]}</div>'
            f'<div class="tips-content" data-lang="zh" style="display:none">{tips[1]}</div></div>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="UTF-8"><title>x</title></head>\n<body>\n'
        '<div id="lang-toggle"><button onclick="toggleLang()">ZH</button></div>\n'
        f"<h1>{date} Papers</h1>\n{body}\n{tips_html}\n</body>\n</html>\n"
    )


def page_text(date: str, cards: list[Card], tips: tuple[str, str] | None = None) -> str:
    """The same page as a browser's select-all and copy gives it (the form of seed 001)."""
    bilingual = any(card.zh_points or any(q.zh_text for q in card.quiz) for card in cards)
    out = ["ZH", ""] if bilingual else []
    out += [f"{date} Papers", ""]
    for number, card in enumerate(cards, 1):
        out += [f"{number}/{len(cards)}", "", f"Paper {number}", "", card.title, "", f"Published: {card.published}"]
        out += ["", f"Link: http://arxiv.org/pdf/{card.arxiv_id}", ""]
        if card.authors:
            out += [f"Authors: {card.authors}", ""]
        out += [f"{i}. {EMOJIS[i - 1]} {LABELS[i - 1]}: {text}" for i, text in enumerate(card.points, 1)]
        out += [""] + [f"{i}. {EMOJIS[i - 1]} {ZH_LABELS[i - 1]}: {t}" for i, t in enumerate(card.zh_points, 1)]
        out += ["", card.title, "", "Input Model"]
        for q, question in enumerate(card.quiz, 1):
            out += [f"Q{q}", f"{q}. {question.text}", *question.options]
            if question.zh_text:
                out += [f"{q}. {question.zh_text}", *question.zh_options]
    if tips is not None:
        out += ["Today's Reading Tips 今日阅读推荐", tips[0], tips[1]]
    return "\n".join(out) + "\n"
