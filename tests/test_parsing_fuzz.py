"""Every parser, fed arbitrary text and HTML fragments, returns a result or raises DigestError, never
anything else (issue 11, point 7). The table and cards-text parsers and format detection are fuzzed
directly; the cards HTML parser through ``run_parser``, the layer every command reads files through,
which turns a fault inside a parser into that file's DigestError."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import DigestError
from newsletter.models import ParseResult
from newsletter.parsing import detect_format, parse_bytes, run_parser
from newsletter.parsing.cards import parse_cards_text
from newsletter.parsing.table import parse_table

SOURCE = "fuzzed.txt"

TEXT_PIECES = [
    *"|#-:*[]()<>!&;/\\`'\" \t\n\r\x00\ufffd\u3000é中",
    "## Papers for 2030-01-02\n", "## Papers for 2030-02-30\n", "| Title | Authors | Summary |\n", "|---|---|---|\n",
    "(Read more on [arXiv](https://arxiv.org/abs/3001.00001))", "[HuggingFace](https://huggingface.co/papers/x)",
    "2030-01-02 Papers\n", "1/3\n", "Paper 1\n", "Published: 2030-01-02\n", "Link: http://arxiv.org/pdf/3001.00002\n",
    "1. 📘 Topic and Domain: text\n", "Q1\n", "1. Why?\n", "  ", "\\|", "arxiv.org/abs/", "    ", "[[[[", "1.", "or ",
]
HTML_PIECES = [
    "<![", "<![CDATA[", "]]>", "<!--", "-->", "<!", "<!DOCTYPE html>", "<?", "?>", "</", "<", ">", "&", "&#",
    "&#x110000;", "&#99999999999;", "&amp;", "<html>", "<body>", "<div>", "</div>", "<p>", "</p>", "<script>",
    "</script>", "<svg>", "<li>", "<article>", "<div data-answer='1'>", "<p data-answer=\"B\">",
    "<h1>2030-01-02 Papers</h1>", "<p>Paper 1</p>", "<h3>A title</h3>", "<p>Link: https://arxiv.org/pdf/3001.00003</p>",
    "<li>1. 📘 Topic: t</li>", "<p>Q1</p>", "<ul><li>a</li><li>b</li></ul>", "=", "'", '"', " ", "\n", "x",
]
FRAGMENTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(TEXT_PIECES + HTML_PIECES), max_size=120).map("".join),
    st.lists(st.one_of(st.sampled_from(HTML_PIECES), st.text(max_size=5)), max_size=120).map("".join),
)


def only_digest_errors(parse: Callable[[str, str], ParseResult], text: str) -> None:
    try:
        result = parse(text, SOURCE)
    except DigestError as error:
        assert error.path == SOURCE and error.hint
        return
    assert isinstance(result, ParseResult)
    for day in result.days:
        ids = [paper.arxiv_id for paper in day.papers]
        assert len(ids) == len(set(ids)) and all(paper.title for paper in day.papers)
    assert all(warning.file == SOURCE and warning.line >= 1 for warning in result.warnings)


@settings(max_examples=300, deadline=None)
@given(FRAGMENTS)
def test_table_parser(text: str) -> None:
    only_digest_errors(parse_table, text)


@settings(max_examples=300, deadline=None)
@given(FRAGMENTS)
def test_cards_text_parser(text: str) -> None:
    only_digest_errors(parse_cards_text, text)


@settings(max_examples=300, deadline=None)
@given(FRAGMENTS)
def test_cards_html_parser(text: str) -> None:
    only_digest_errors(lambda page, source: run_parser("cards-html", page, source), text)


@settings(max_examples=300, deadline=None)
@given(FRAGMENTS)
def test_format_detection(text: str) -> None:
    assert detect_format(text) in (None, "table", "cards-text", "cards-html")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | FRAGMENTS.map(lambda text: text.encode("utf-16")))
def test_any_bytes(data: bytes) -> None:
    only_digest_errors(lambda _text, source: parse_bytes(data, source), "")
