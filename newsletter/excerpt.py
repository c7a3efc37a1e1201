"""Short excerpts of a summary for skimming: whole sentences up to a length, never a cut word.

Digest summaries are plain prose, often enumerated ``a) ... b) ...`` with one sentence per item.
An excerpt is its first sentence, plus the following ones while they fit in ``limit`` characters;
enumeration markers are dropped, since an excerpt reads as prose. Only a first sentence far longer
than the limit is cut, at a word boundary, with an ellipsis.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
SLACK = 1.25
"""A first sentence up to this many times the limit is kept whole: "about 300 characters"."""

# A full stop, question or exclamation mark (with closing quotes or brackets), then white space and
# the start of a new sentence: an upper-case letter or digit, or an enumeration marker such as "b)".
_BOUNDARY = re.compile(r"""[.!?]["'”’)\]]*\s+(?=(?:\(?(?:[a-h]|[ivx]{1,4}|\d{1,2})\)\s+)?["'“‘(\[]?[A-Z0-9])""")
_ENUMERATION = re.compile(r"^\(?(?:[a-h]|[ivx]{1,4}|\d{1,2})\)\s+")
# Words whose full stop does not end a sentence: "e.g. Llama", "et al. Results", "Fig. 3", "J. Smith".
_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|al|vs|cf|fig|figs|eq|eqs|sec|approx|resp|no|ref|refs|dr|mr|ms|prof)|(?<![\w.])[A-Z])\.$",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` with white space collapsed and enumeration markers removed."""
    text = " ".join(text.split())
    found: list[str] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        candidate = text[start:boundary.start() + 1]
        if _ABBREVIATION.search(candidate):
            continue
        found.append(text[start:boundary.end()].strip())
        start = boundary.end()
    found.append(text[start:].strip())
    return [s for s in (_ENUMERATION.sub("", s, count=1) for s in found) if s]


def excerpt(text: str, limit: int, most: int | None = None) -> str:
    """The first sentences of ``text`` that fit in about ``limit`` characters (at least one, at most
    ``most``)."""
    parts = sentences(text)
    if not parts:
        return ""
    chosen = parts[0]
    if len(chosen) > limit * SLACK:
        return _cut(chosen, limit)
    for sentence in parts[1:most]:
        if len(chosen) + 1 + len(sentence) > limit:
            break
        chosen += " " + sentence
    return chosen


def _cut(sentence: str, limit: int) -> str:
    """A sentence too long to keep, cut at the last word boundary before ``limit``."""
    head = sentence[:limit + 1]
    space = head.rfind(" ")
    head = head[:space] if space > limit // 2 else sentence[:limit]
    return head.rstrip(" ,;:-–—(") + ELLIPSIS
