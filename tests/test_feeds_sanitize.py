"""Markdown to safe HTML, and XML-invalid characters: the helpers feeds and emails share."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter import sanitize
from newsletter.sanitize import (
    ALLOWED_TAGS,
    LINK_REL,
    inline_markdown_to_safe_html,
    markdown_to_safe_html,
    strip_invalid_xml,
)


def xml_char(c: str) -> bool:
    o = ord(c)
    allowed = o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF
    return allowed and not 0x7F <= o <= 0x9F  # discouraged controls go too


HOSTILE_PIECES = [
    "<script>alert(1)</script>", "]]>", "\u2028", "\x00", "\x1b", "\ud800", "\ufffe", "**b**", "_i_", "`c`", "&amp;",
    "[x](javascript:alert(1))", "<img src=x onerror=alert(1)>", "<a href='javascript:x'>z</a>", "a", " ", "\n", "1. ",
    "# ", "[y](https://ok.example/p?a=1&b=2)",
]
HOSTILE = st.one_of(st.text(), st.lists(st.sampled_from(HOSTILE_PIECES)).map("".join))


# Characters that look harmless but that Markdown or the HTML parser might treat specially.
TRICKY_PLAIN = "ab 1.)(#-+=:!\"'%$@^{}|\u00a0\u2028\u3000\u00ad\ufeff\u200b\té"


class Inventory(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def inventory(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Inventory()
    parser.feed(fragment)
    parser.close()
    return parser.tags


@given(st.text())
def test_strip_invalid_xml_removes_exactly_the_characters_xml_forbids(text: str) -> None:
    assert strip_invalid_xml(text) == "".join(c for c in text if xml_char(c))


def test_strip_invalid_xml_keeps_what_xml_allows() -> None:
    assert strip_invalid_xml("a\x00b\x1bc\x7fd\u2028e\ufffef\ud800g\x85\U0001f600\t\r\n\xa0") == (
        "abcd\u2028efg\U0001f600\t\r\n\xa0")


def test_emphasis_is_rendered_and_raw_html_is_shown_as_text() -> None:
    assert markdown_to_safe_html("**bold** and *it* <b>x</b>") == (
        "<p><strong>bold</strong> and <em>it</em> &lt;b&gt;x&lt;/b&gt;</p>")
    assert inline_markdown_to_safe_html("i) **one** ii) two") == "i) <strong>one</strong> ii) two"


@pytest.mark.parametrize("markdown", [
    "[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](data:text/html,hi)", "[x](relative/page.html)",
    "[x](//evil.example/)", "<javascript:alert(1)>", "[x](vbscript:msgbox)",
])
def test_only_absolute_web_and_mail_links_become_links(markdown: str) -> None:
    assert "<a" not in markdown_to_safe_html(markdown)


def test_links_get_rel_noopener_noreferrer_nofollow() -> None:
    assert markdown_to_safe_html("[site](https://example.org/a?b=1&c=2)") == (
        f'<p><a href="https://example.org/a?b=1&amp;c=2" rel="{LINK_REL}">site</a></p>')


def test_empty_or_blank_text_renders_nothing() -> None:
    assert markdown_to_safe_html("") == markdown_to_safe_html(" \n\x00") == inline_markdown_to_safe_html("\t") == ""


@settings(max_examples=200)
@given(HOSTILE)
def test_output_is_always_safe_whatever_the_input(text: str) -> None:
    for fragment in (markdown_to_safe_html(text), inline_markdown_to_safe_html(text)):
        assert strip_invalid_xml(fragment) == fragment
        for tag, attrs in inventory(fragment):
            assert tag in ALLOWED_TAGS
            assert not [name for name in attrs if name.startswith("on") or name == "style"]
            if tag == "a":
                assert attrs.get("rel") == LINK_REL
                href = attrs.get("href")
                assert href is None or href.startswith(("https://", "http://", "mailto:"))


@settings(max_examples=200)
@given(st.one_of(st.text(), st.text(st.sampled_from(list(TRICKY_PLAIN)))))
def test_plain_text_shortcut_gives_what_markdown_it_gives(text: str) -> None:
    text = strip_invalid_xml(text)
    if text.strip():
        assert markdown_to_safe_html(text) == sanitize._render_block(text)
        assert inline_markdown_to_safe_html(text) == sanitize._render_inline(text)
