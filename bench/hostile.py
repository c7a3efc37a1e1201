"""Hostile inputs against ordinary files of the same size: every parser and matcher must run in time
linear in its input (issue 11, point 9).

Usage: python bench/hostile.py [--runs N] [--only NAME]
Each input goes through what ingest and a send do with a file: parse the bytes, classify the papers,
select them for a subscriber whose filter has a prefix and a phrase keyword. The hostile input and
an ordinary digest of the same size are timed in turn (the order alternating), and the table shows
the medians and the median of the per-pair ratios. Target: every ratio within 5x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter.categories import Classifier
from newsletter.config import Settings
from newsletter.errors import DigestError
from newsletter.parsing import parse_bytes
from newsletter.selection import Filter

TARGET_RATIO = 5.0
ROW_LINKS = "(Read more on [arXiv](https://arxiv.org/abs/{id}) or [HuggingFace](https://huggingface.co/papers/{id}))"
SUMMARY = ("We study efficient training of large language models with a reward signal and report results on "
           "vision-language benchmarks, where the method improves accuracy at a lower cost. ")
TABLE_HEAD = "## Papers for 2025-01-02\n\n| Title | Authors | Summary |\n|---|---|---|\n"
CARDS_HEAD = "2025-01-02 Papers\n\n"


def table_row(number: int, title: str = "", summary: str = SUMMARY) -> str:
    arxiv_id = f"2501.{number:05d}"
    title = title or f"An Ordinary Title Number {number} {ROW_LINKS.format(id=arxiv_id)}"
    return f"| {title} | A. Author, B. Author | {summary} |\n"


def card_text(number: int, point: str = "", question: str = "") -> str:
    points = point or "\n".join(f"{i}. 📘 Label {i}: {SUMMARY}" for i in range(1, 6))
    quiz = "".join(f"Q{q}\n{question or f'{q}. Why does it work?'}\nOption a\nOption b\nOption c\n" for q in (1, 2, 3))
    return (f"{number}/9\nPaper {number}\nTitle of card {number}\nPublished: 2025-01-02\n"
            f"Link: http://arxiv.org/pdf/2501.{number:05d}\n{points}\nTitle of card {number}\nInput -> Output\n{quiz}")


def card_html(number: int) -> str:
    points = "".join(f"<li>{i}. 📘 <b>Label {i}:</b> {SUMMARY}</li>" for i in range(1, 6))
    quiz = "".join(f"<div data-answer='1'><p>Q{q}</p><p>{q}. Why?</p><ul><li>a</li><li>b</li><li>c</li></ul></div>"
                   for q in (1, 2, 3))
    return (f"<article><div>{number}/9</div><h2>Paper {number}</h2><h3>Title of card {number}</h3>"
            f"<p>Published: 2025-01-02</p><p>Link: https://arxiv.org/pdf/2501.{number:05d}</p><ol>{points}</ol>"
            f"<section>{quiz}</section></article>\n")


def html_page(body: str) -> str:
    return f"<!DOCTYPE html><html><body><h1>2025-01-02 Papers</h1>{body}</body></html>"


def filled(head: str, item: Callable[[int], str], size: int, tail: str = "") -> bytes:
    """An ordinary digest: ``head``, then items until the file is ``size`` bytes long."""
    parts, length, number = [head], len(head) + len(tail), 1
    while length < size:
        parts.append(item(number))
        length += len(parts[-1].encode())
        number += 1
    return ("".join(parts) + tail).encode()


@dataclass(frozen=True)
class Case:
    name: str
    hostile: bytes
    ordinary: bytes


def cases() -> list[Case]:
    """The inputs of issue 11 (point 9) and their relatives, each beside an ordinary digest of its size."""
    link = "[arXiv](https://arxiv.org/abs/2501.00001)"
    built = [
        ("table: 20 KB title with a run of spaces", TABLE_HEAD + table_row(1, "A" + " " * 20_000 + "b " + link)),
        ("table: 80 KB title cell of '['", TABLE_HEAD + table_row(1, "A " + link + " " + "[" * 80_000)),
        ("table: 550 KB summary, prefix keyword", TABLE_HEAD + table_row(
            1, summary=" ".join(f"efficien{n}" for n in range(39_500)))),
        ("cards text: 20 KB point line of spaces", CARDS_HEAD + card_text(1, point="1." + " " * 20_000 + "x")),
        ("cards text: 20 KB question of digits", CARDS_HEAD + card_text(1, question="1" * 6_800 + "x")),
        ("cards html: 780 KB of nested quiz elements", html_page(
            card_html(1) + "<div data-answer='1'><p>Q1</p>" * 21_600 + "</div>" * 21_600)),
    ]
    ordinary_of: dict[str, Callable[[int], bytes]] = {
        "table": lambda size: filled(TABLE_HEAD, table_row, size),
        "cards text": lambda size: filled(CARDS_HEAD, card_text, size),
        "cards html": lambda size: filled("<!DOCTYPE html><html><body><h1>2025-01-02 Papers</h1>", card_html, size,
                                          "</body></html>"),
    }
    result = []
    for name, text in built:
        data = text.encode()
        result.append(Case(name, data, ordinary_of[name.split(":")[0]](len(data))))
    return result


def pipeline() -> Callable[[bytes], int]:
    """What ingest and a send do with one file; returns the papers selected, so nothing is optimised away."""
    settings = Settings(path=Path("config.toml"))
    classifier = Classifier(settings.categories)
    subscriber_filter = Filter(keywords=("efficien*", "language model", "reward"), excluded=("surve*",))

    def run(data: bytes) -> int:
        try:
            result = parse_bytes(data, "bench")
        except DigestError:
            return -1
        classifier.assign(result.days)
        return sum(len(subscriber_filter.select(day.papers)) for day in result.days)

    return run


def timed(run: Callable[[bytes], int], data: bytes) -> float:
    start = time.perf_counter()
    run(data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe

    run = pipeline()
    print(describe())
    print(f"{'input':45} {'size':>8} {'hostile ms':>11} {'ordinary ms':>12} {'ratio':>7}")
    worst = 0.0
    for case in cases():
        if args.only not in case.name:
            continue
        hostile, ordinary, ratios = [], [], []
        for turn in range(args.runs):
            if turn % 2:
                o, h = timed(run, case.ordinary), timed(run, case.hostile)
            else:
                h, o = timed(run, case.hostile), timed(run, case.ordinary)
            hostile.append(h)
            ordinary.append(o)
            ratios.append(h / o)
        ratio = statistics.median(ratios)
        worst = max(worst, ratio)
        print(f"{case.name:45} {len(case.hostile) / 1000:6.0f}KB {statistics.median(hostile) * 1000:11.1f} "
              f"{statistics.median(ordinary) * 1000:12.1f} {ratio:6.2f}x {'ok' if ratio <= TARGET_RATIO else 'SLOW'}")
    print(f"worst ratio {worst:.2f}x (target <= {TARGET_RATIO:.0f}x)")


if __name__ == "__main__":
    main()
