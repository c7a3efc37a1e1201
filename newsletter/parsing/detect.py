"""Which digest format a text is in, judged from its content alone (never the file name)."""

from __future__ import annotations

import re

from newsletter.models import DigestFormat

TABLE_HEADING = re.compile(r"^#{1,6}[ \t]*Papers[ \t]+for\b", re.IGNORECASE | re.MULTILINE)
HTML_TAG = re.compile(r"<(?:!doctype\s+html|html|body|main|div|section|article)\b", re.IGNORECASE)
CARDS_DATE_LINE = re.compile(r"^[ \t]*\d{4}-\d{2}-\d{2}[ \t]+Papers[ \t]*\r?$", re.MULTILINE)


def detect_format(text: str) -> DigestFormat | None:
    """``"table"``, ``"cards-html"``, ``"cards-text"``, or None when the text is none of them."""
    if TABLE_HEADING.search(text):
        return "table"
    if text.lstrip("\ufeff \t\r\n").startswith("<") and HTML_TAG.search(text):
        return "cards-html"
    if CARDS_DATE_LINE.search(text):
        return "cards-text"
    return None
