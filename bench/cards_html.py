"""Why the cards HTML parser is lexbor (selectolax): tree building timed against html5lib, and the
whole cards HTML parse on a flat page against a deeply nested page of the same size.

Usage: python bench/cards_html.py [--runs N] [--corpus PATH]
Prints medians, measured alternating in one run. The pages: the corpus variant page, and pages of
40 and 400 made-up cards in its structure (with its stray '<' and unclosed <svg>). The nested page
is ~780 KB of quiz elements that never close (the hostile input of issue 11); target: within 5x the
flat page of the same size.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import html5lib
from machine import describe
from selectolax.lexbor import LexborHTMLParser

from newsletter.parsing import parse_text

ROOT = Path(__file__).resolve().parent.parent
NESTED_SIZE = 780_000


def synthetic_page(variant: str, cards: int) -> str:
    """The variant page with its two paper containers repeated to ``cards`` cards."""
    head, _, rest = variant.partition('<div class="paper-container">')
    body, _, tail = rest.rpartition('<div class="daily-tips-section">')
    containers = ['<div class="paper-container">' + part for part in body.split('<div class="paper-container">')]
    repeated = []
    for number in range(cards):
        container = containers[number % len(containers)]
        repeated.append(container.replace("3101.000", f"3101.{number:03d}").replace("Paper 1<", f"Paper {number}<"))
    return head + "".join(repeated) + '<div class="daily-tips-section">' + tail


def nested_page(size: int) -> str:
    head = "<!DOCTYPE html><html><body><h1>2031-02-03 Papers</h1><div>Paper 1</div><p>A title</p>"
    head += "<p>Link: http://arxiv.org/pdf/3101.00011</p>"
    level = '<div class="quiz-tab" data-answer="A">Q1<div class="quiz-question">1. Why?</div>'
    return head + level * ((size - len(head)) // len(level)) + "</body></html>"


def flat_page(size: int) -> str:
    head = "<!DOCTYPE html><html><body><h1>2031-02-03 Papers</h1><div>Paper 1</div><p>A title</p>"
    head += "<p>Link: http://arxiv.org/pdf/3101.00011</p>"
    level = '<div class="quiz-tab" data-answer="A">Q1<div class="quiz-question">1. Why?</div></div>'
    return head + level * ((size - len(head)) // len(level)) + "</body></html>"


def alternate(runs: int, tasks: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds of each task, the tasks run in turn ``runs`` times."""
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(runs):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    variant = (args.corpus / "variants" / "cards-2026-bilingual.html").read_text(encoding="utf-8")
    print(describe())
    print(f"{'page':<28}{'KB':>7}{'lexbor ms':>12}{'html5lib ms':>13}{'ratio':>8}{'cards parse ms':>16}")
    for name, page in [("variant", variant), ("40 cards", synthetic_page(variant, 40)),
                       ("400 cards", synthetic_page(variant, 400))]:
        medians = alternate(args.runs, {
            "lexbor": lambda page=page: LexborHTMLParser(page).body,
            "html5lib": lambda page=page: html5lib.parse(page),
            "cards": lambda page=page: parse_text(page, "bench.html"),
        })
        print(f"{name:<28}{len(page) / 1024:7.0f}{medians['lexbor'] * 1000:12.2f}{medians['html5lib'] * 1000:13.1f}"
              f"{medians['html5lib'] / medians['lexbor']:7.0f}x{medians['cards'] * 1000:16.1f}")
    flat, nested = flat_page(NESTED_SIZE), nested_page(NESTED_SIZE)
    medians = alternate(args.runs, {"flat": lambda: parse_text(flat, "flat.html"),
                                    "nested": lambda: parse_text(nested, "nested.html")})
    print(f"\ncards HTML parse, {len(flat) / 1024:.0f} KB: flat {medians['flat'] * 1000:.0f} ms, deeply nested "
          f"{medians['nested'] * 1000:.0f} ms, ratio {medians['nested'] / medians['flat']:.2f} (target <= 5)")


if __name__ == "__main__":
    main()
