"""Property tests: generated table digests parse back to what was written, and mutated real digests
never raise anything but DigestError."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.errors import DigestError
from newsletter.models import ParseResult
from newsletter.parsing import parse_text

# Letters (with accents, Greek, CJK), digits and punctuation that may sit in a Markdown table cell.
WORD_CHARS = st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"), whitelist_characters="-:;?!'\"&<>*_+=%/.é𝛼")
WORD = st.text(WORD_CHARS, min_size=1, max_size=12)

# Summaries hold unescaped pipes, as in math such as π(y|x) or |G-1|.
PIPED = st.sampled_from(["|", "π(y|x)", "|G-1|", "a|b|c"])


def phrase(min_words: int, max_words: int) -> st.SearchStrategy[str]:
    return st.lists(WORD, min_size=min_words, max_size=max_words).map(" ".join)


@dataclass
class Written:
    arxiv_id: str
    title: str
    authors: list[str]
    summary: str
    wrap: bool


@st.composite
def written_days(draw: st.DrawFn) -> tuple[list[Written], bool, bool]:
    numbers = draw(st.lists(st.integers(1, 99999), min_size=0, max_size=8, unique=True))
    papers = [
        Written(
            arxiv_id=f"{draw(st.sampled_from(['2409', '2501', '3012']))}.{number:05d}",
            title=draw(phrase(1, 8)),
            authors=draw(st.lists(phrase(1, 3), max_size=4)),
            # Summaries hold unescaped pipes, as in math such as π(y|x) or |G-1|.
            summary=" ".join(draw(st.lists(st.one_of(phrase(1, 6), PIPED), min_size=1, max_size=8))),
            wrap=draw(st.booleans()),
        )
        for number in numbers
    ]
    return papers, draw(st.booleans()), draw(st.booleans())


def write_day(date: str, papers: list[Written], link_column: bool, category_column: bool) -> str:
    columns = ["Category"] * category_column + ["Title", "Authors", "Summary"] + ["Link"] * link_column
    lines = [f"## Papers for {date}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for paper in papers:
        title = paper.title
        if paper.wrap and " " in title:
            head, tail = title.split(" ", 1)
            title = f"{head}\n  {tail}"
        link = f"[arXiv](https://arxiv.org/abs/{paper.arxiv_id}v1)"
        cells = ["Robotics"] * category_column
        cells.append(title if link_column else f"{title} (Read more on {link} or [HuggingFace](https://hf.co/x))")
        cells += [", ".join(paper.authors), paper.summary]
        cells += [f"[Read more](https://arxiv.org/abs/{paper.arxiv_id})"] * link_column
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@settings(max_examples=100, deadline=None)
@given(written_days())
def test_a_written_table_day_parses_back_to_what_was_written(drawn: tuple[list[Written], bool, bool]) -> None:
    papers, link_column, category_column = drawn
    result = parse_text(write_day("2031-05-06", papers, link_column, category_column), "generated.md")
    assert result.warnings == []
    (day,) = result.days
    assert [(p.arxiv_id, p.title, p.authors, p.summary) for p in day.papers] == [
        (w.arxiv_id, " ".join(w.title.split()), w.authors, w.summary.strip()) for w in papers
    ]
    assert all(p.category == ("Robotics" if category_column else None) for p in day.papers)


# --- mutations of real digests ------------------------------------------------------------------

JUNK = [
    "|",
    "||",
    " | ",
    "\x00",
    "\ufffd",
    "\x1b[0m",
    "## Papers for 2025-13-40",
    "## Papers for ",
    "Q1",
    "Paper 2",
    "1. 📘 Topic:",
    "  ",
    "(Read more on [arXiv](https://arxiv.org/abs/",
    "<div data-answer='x'>",
    "\\|",
    "\r",
]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 6)):
        action = rng.randrange(6)
        where = rng.randrange(len(lines) + 1)
        if action == 0 and lines:
            del lines[min(where, len(lines) - 1)]
        elif action == 1 and lines:
            lines.insert(where, lines[min(where, len(lines) - 1)])
        elif action == 2 and len(lines) > 1:
            other = rng.randrange(len(lines))
            where = min(where, len(lines) - 1)
            lines[where], lines[other] = lines[other], lines[where]
        elif action == 3:
            lines = "\n".join(lines)[: rng.randrange(len("\n".join(lines)) + 1)].split("\n")
        elif action == 4 and lines:
            where = min(where, len(lines) - 1)
            cut = rng.randrange(len(lines[where]) + 1)
            lines[where] = lines[where][:cut] + rng.choice(JUNK) + lines[where][cut:]
        else:
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            lines.insert(where, junk.decode("utf-8", errors="replace"))
    return "\n".join(lines)


def parses_or_digest_error(text: str) -> None:
    try:
        result = parse_text(text, "mutated.md")
    except DigestError as error:
        assert error.path == "mutated.md"
        return
    assert isinstance(result, ParseResult)
    for day in result.days:
        ids = [paper.arxiv_id for paper in day.papers]
        assert len(ids) == len(set(ids))
        assert all(paper.title and paper.arxiv_id for paper in day.papers)
    assert all(warning.file == "mutated.md" and warning.line >= 1 for warning in result.warnings)


@pytest.fixture(scope="module")
def corpus_texts(seed_files: list[Path], daily_files: list[Path]) -> list[str]:
    # Every seed, and a spread of the daily files that includes the early Link-column ones.
    return [path.read_text(encoding="utf-8") for path in [*seed_files, *daily_files[::10]]] + [html_page()]


def html_page() -> str:
    """A small cards page as HTML, to mutate beside the real (text) digests."""
    cards = "".join(
        f"<article><div>{n}/3</div><h2>Paper {n}</h2><h3>Title {n} &amp; more</h3><p>Published: 2030-01-0{n}</p>"
        f"<p>Link: <a href='#'>https://arxiv.org/pdf/3001.0000{n}</a></p><ol><li>1. 📘 <b>Topic:</b> t{n}</li></ol>"
        f"<div data-answer='{n - 1}'><p>Q1</p><p>1. Why {n}?</p><ul><li>a</li><li>b</li><li>c</li></ul></div>"
        "</article>"
        for n in (1, 2, 3)
    )
    return f"<!DOCTYPE html><html><body><h1>2030-01-05 Papers</h1><script>x = '<p>'</script>{cards}</body></html>"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_corpus_files_never_raise_anything_but_digest_error(
    corpus_texts: list[str], data: st.DataObject
) -> None:
    text = data.draw(st.sampled_from(corpus_texts))
    parses_or_digest_error(mutate(text, random.Random(data.draw(st.integers(0, 2**32)))))


FRAGMENTS = st.sampled_from(
    [*"|#- \n\tQ1.:/()[]<>=\"'abP", "## Papers for 2030-01-02\n", "Paper 1\n", "2030-01-02 Papers\n", "<div>"]
)


@settings(max_examples=100, deadline=None)
@given(st.lists(FRAGMENTS, max_size=150).map("".join))
def test_arbitrary_fragments_never_raise_anything_but_digest_error(text: str) -> None:
    parses_or_digest_error(text)
