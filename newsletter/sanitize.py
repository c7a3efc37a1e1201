"""Turn digest text into something safe to put in XML feeds and HTML emails.

Digests are written by other people and tools, so their text is treated as hostile: it may carry
control characters that XML 1.0 forbids (lxml, and so feedgen, raises on them), raw HTML, or links
with ``javascript:`` URLs. Markdown is rendered by markdown-it with raw HTML switched off, and the
result is cleaned again by nh3 (an allow-list sanitiser) so that a renderer bug cannot let markup
through.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

# XML 1.0 `Char`: tab, LF, CR, and everything from U+0020 except surrogates, U+FFFE and U+FFFF;
# minus U+007F-U+009F, which XML 1.0 discourages and feed readers (feedparser) misread as
# Windows-1252 punctuation.
_INVALID_XML = re.compile("[^\t\n\r\u0020-\u007e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

WEB_SCHEMES = frozenset({"http", "https"})
SAFE_URL_SCHEMES = WEB_SCHEMES | {"mailto"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")

ALLOWED_TAGS = frozenset({
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li",
    "ol", "p", "pre", "s", "strong", "sub", "sup", "ul",
})
LINK_REL = "noopener noreferrer nofollow"
NBSP = "\u00a0"


def strip_invalid_xml(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (NUL, most C0 controls, lone surrogates, U+FFFE/F)
    or discourages (the DEL and C1 controls, U+007F-U+009F)."""
    if text.isprintable():  # no control, surrogate, unassigned or separator other than space: all valid
        return text
    return _INVALID_XML.sub("", text)


def absolute_url(url: str | None, schemes: Collection[str] = WEB_SCHEMES) -> str | None:
    """``url`` when it may be a link in a feed, an email or a page, else None.

    It must be absolute, with one of ``schemes`` (http and https by default) and, for http(s), a
    host: a relative link would resolve against the feed reader's or mail client's location,
    useless at best (the W3C validator warns), and other schemes (javascript:, data:) are unsafe.
    Whitespace and control characters are refused; percent-encode them first where they are wanted.
    """
    if not url or _SPACE_OR_CONTROL.search(url):
        return None
    scheme = _SCHEME.match(url)
    if scheme is None or scheme.group(1).lower() not in schemes:
        return None
    rest = url[scheme.end():]
    if scheme.group(1).lower() in WEB_SCHEMES:
        has_host = rest.startswith("//") and len(rest) > 2 and rest[2] not in "/?#"
        return url if has_host else None
    return url if rest else None


_markdown = MarkdownIt("commonmark", {"html": False, "typographer": False})
# markdown-it has percent-encoded the link (normalizeLink) before it asks.
_markdown.validateLink = lambda url: absolute_url(url, SAFE_URL_SCHEMES) is not None  # type: ignore[method-assign]

_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    url_schemes=set(SAFE_URL_SCHEMES),
    url_relative="deny",
    link_rel=LINK_REL,
    strip_comments=True,
)


# Text that Markdown renders as itself: no character that starts emphasis, code, a link, an entity,
# HTML or an escape, no line break, no block marker or whitespace at either end. Most summaries are
# such text, and markdown-it-py and nh3 cost a millisecond and a tenth of one per text, so they skip
# both: the only character nh3 would change in such text is U+00A0, serialised as &nbsp;. The
# tests check that both paths give the same result.
_MARKDOWN_CHARS = re.compile(r"[\\`*_\[\]<>&~\n\r]")
_BLOCK_START = re.compile(r"\s|[#>+=\ufeff-]|\d+[.)]")  # U+FEFF: the HTML parser drops a leading BOM


def _plain(text: str) -> bool:
    return not (_MARKDOWN_CHARS.search(text) or _BLOCK_START.match(text) or text[-1].isspace())


def markdown_to_safe_html(text: str) -> str:
    """Render Markdown to an HTML fragment (block level, e.g. ``<p>…</p>``) that is safe to embed.

    Only the tags in ALLOWED_TAGS survive, with no ``on*`` or ``style`` attributes; links keep
    absolute http(s)/mailto URLs only and get ``rel="noopener noreferrer nofollow"``. Raw HTML in
    the input is shown as text, not interpreted. Characters invalid in XML are removed.
    """
    text = strip_invalid_xml(text)
    if not text.strip():
        return ""
    if _plain(text):
        return f"<p>{text.replace(NBSP, '&nbsp;')}</p>"
    return _render_block(text)


def inline_markdown_to_safe_html(text: str) -> str:
    """Like :func:`markdown_to_safe_html` but without the paragraph wrapper, for a list item or a label."""
    text = strip_invalid_xml(text)
    if not text.strip():
        return ""
    if _plain(text):
        return text.replace(NBSP, "&nbsp;")
    return _render_inline(text)


def _render_block(text: str) -> str:
    return _cleaner.clean(_markdown.render(text)).strip()


def _render_inline(text: str) -> str:
    return _cleaner.clean(_markdown.renderInline(text)).strip()


def markdown_to_text(text: str) -> str:
    """Markdown as the reader should see it in plain text: no ``**``, backticks or link syntax.

    Paragraphs and list items are separated by a blank line; list items start with "- ". Raw HTML
    stays as the literal text it is (the HTML part shows it as text too).
    """
    text = strip_invalid_xml(text)
    if not text.strip():
        return ""
    if _plain(text):
        return text
    blocks: list[str] = []
    bullet = ""
    for token in _markdown.parse(text):
        if token.type == "list_item_open":
            bullet = "- "
        elif token.type in ("inline", "fence", "code_block"):
            body = _inline_text(token.children or []) if token.type == "inline" else token.content
            blocks.append(bullet + " ".join(body.split()))
            bullet = ""
    return "\n\n".join(block for block in blocks if block.strip())


def _inline_text(children: list[Token]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child.children or []))
    return "".join(parts)
