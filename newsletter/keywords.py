"""The one rule for where a keyword occurs in a text, for subscriber filters and category keywords.

The rule (README, "Keywords"): text and keyword are compared case-folded. A keyword's words are its
runs of letters and digits; punctuation at a word's outer edge belongs to it ("c++", "c#", ".net").
The words must occur in order, with any run of spaces, line breaks, punctuation or ``_`` between
them ("language model" finds "language-model" and a title wrapped between the two words), and the
match must not touch a letter or digit on either side ("rl" does not occur in "world"). A keyword
that ends in a letter or digit also matches with a plural ``s``/``es``; a trailing ``*`` makes the
last word a prefix ("efficien*" finds "efficient" and "efficiency").

``Keyword.pattern`` is that rule as a regex. ``KeywordIndex.count`` gives the same verdict faster
for many keywords: it splits the text into words once and only runs a keyword's regex when a set
lookup says all its words occur, so classifying does not cost keywords times text length.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_WORD_END = r"(?![^\W_])"  # no letter or digit may touch a keyword; "_" may (Markdown)
_BETWEEN_WORDS = r"[\W_]+"
_NON_WORD = re.compile(r"[\W_]+")
# Inside a keyword, a run of non-word characters between two word characters ("vision-language",
# "language model") separates words; punctuation at a word's edge ("C++") is part of it.
_INNER_SEPARATOR = re.compile(r"(?<=[^\W_])[\W_]+(?=[^\W_])")
_PLAIN_WORD = re.compile(r"[^\W_]+")
# For ASCII text, bytes.translate and bytes.split cut words several times faster than a regex.
_ASCII_NON_WORD = bytes(b if chr(b).isalnum() else 32 for b in range(128)) + bytes(range(128, 256))
_PLURALS = ("", "s", "es")


@dataclass(frozen=True)
class Keyword:
    """A keyword as written, case-folded, split into its words (punctuation at their edges kept)."""

    text: str
    words: tuple[str, ...]
    prefix: bool

    @classmethod
    def parse(cls, keyword: str) -> Keyword | None:
        """None for an empty keyword (subscriber validation refuses those, and "*" alone)."""
        text = keyword.strip().casefold()
        prefix = text.endswith("*")
        body = text[:-1] if prefix else text
        words = tuple(word for piece in body.split() for word in _INNER_SEPARATOR.split(piece))
        return cls(text, words, prefix) if words else None

    @property
    def pattern(self) -> str:
        """The rule, as a regex over case-folded text."""
        first, *rest = self.words
        # The word-start test comes after the first word, looking back past it: a regex that starts
        # with a literal lets re skip ahead to it, which one starting with a lookbehind does not (6x).
        start = re.escape(first) + rf"(?<![^\W_](?s:.{{{len(first)}}}))"
        phrase = _BETWEEN_WORDS.join([start, *map(re.escape, rest)])
        if self.prefix:
            return phrase
        plural = r"(?:s|es)?" if _PLAIN_WORD.fullmatch(self.text[-1]) else ""
        return phrase + plural + _WORD_END

    @property
    def core_words(self) -> tuple[str, ...]:
        """The runs of letters and digits the text must hold as words (the last one may be longer)."""
        return tuple(word for kept in self.words for word in _PLAIN_WORD.findall(kept))

    @property
    def is_single_word(self) -> bool:
        """One run of letters and digits only, so a lookup in the text's words decides it."""
        return len(self.words) == 1 and _PLAIN_WORD.fullmatch(self.words[0]) is not None


def parse_all(keywords: Iterable[str]) -> list[Keyword]:
    return [parsed for parsed in map(Keyword.parse, keywords) if parsed is not None]


def text_words(text: str) -> list[bytes]:
    """The runs of letters and digits of a case-folded text, as UTF-8."""
    if text.isascii():
        return text.encode().translate(_ASCII_NON_WORD).split()
    return _NON_WORD.sub(" ", text).encode().split()


def any_of(keywords: Iterable[str]) -> re.Pattern[str] | None:
    """One regex that finds any of the keywords in case-folded text; None when there are none."""
    patterns = [keyword.pattern for keyword in parse_all(keywords)]
    return re.compile("|".join(patterns)) if patterns else None


@dataclass(frozen=True)
class _Checked:
    """A keyword that a lookup in the text's words cannot decide alone, so its regex does.

    The lookup only rules out texts: they must hold every word in ``needed``, one of ``last_forms``
    (the last word and its plurals, when it may take one) and a word starting with ``prefix``.
    """

    needed: frozenset[bytes]
    last_forms: frozenset[bytes]
    prefix: bytes
    pattern: re.Pattern[str]
    label: str

    @classmethod
    def of(cls, keyword: Keyword, label: str) -> _Checked:
        core = [word.encode() for word in keyword.core_words]
        pattern = re.compile(keyword.pattern)
        if not core:  # a keyword of punctuation only ("!!") has no word to look up
            return cls(frozenset(), frozenset(), b"", pattern, label)
        if keyword.prefix:
            return cls(frozenset(core[:-1]), frozenset(), core[-1], pattern, label)
        if not keyword.words[-1].endswith(keyword.core_words[-1]):  # "c++": no plural, the word as it is
            return cls(frozenset(core), frozenset(), b"", pattern, label)
        plurals = frozenset(core[-1] + plural.encode() for plural in _PLURALS)
        return cls(frozenset(core[:-1]), plurals, b"", pattern, label)

    def may_occur(self, distinct: set[bytes], joined: bytes) -> bool:
        return (self.needed <= distinct and (not self.last_forms or not self.last_forms.isdisjoint(distinct))
                and self.prefix in joined)


class KeywordIndex:
    """Counts, per label, the hits of the keywords filed under it in one text."""

    def __init__(self, labelled: Mapping[str, Iterable[str]]) -> None:
        self._words: dict[bytes, list[str]] = {}  # a single word, in each plural form -> labels
        self._prefixes: dict[bytes, list[str]] = {}  # the prefix of a single word -> labels
        self._checked: list[_Checked] = []
        for label, keywords in labelled.items():
            for keyword in parse_all(keywords):
                self._add(keyword, label)
        self._prefix_tuple = tuple(self._prefixes)
        self._any_prefix = bool(self._prefixes) or any(checked.prefix for checked in self._checked)

    def _add(self, keyword: Keyword, label: str) -> None:
        if keyword.is_single_word and keyword.prefix:
            self._prefixes.setdefault(keyword.words[0].encode(), []).append(label)
        elif keyword.is_single_word:
            for plural in _PLURALS:
                self._words.setdefault((keyword.words[0] + plural).encode(), []).append(label)
        else:
            self._checked.append(_Checked.of(keyword, label))

    def __bool__(self) -> bool:
        return bool(self._words or self._prefixes or self._checked)

    def count(self, text: str) -> dict[str, int]:
        """Hits per label in an already case-folded text; labels without hits are left out."""
        words = text_words(text)
        distinct = set(words)
        found = self._words.keys() & distinct
        joined = b" ".join(distinct) if self._any_prefix else b""  # for a cheap test of prefixes first
        prefixed = []
        if self._prefix_tuple and any(prefix in joined for prefix in self._prefix_tuple):
            prefixed = [word for word in distinct if word.startswith(self._prefix_tuple)]
        # Up to a few distinct words are counted with list.count (a pass in C each); more with one
        # Counter pass, so that a text of many distinct matching words ("efficien1 efficien2 ...") stays linear.
        count = words.count if len(found) + len(prefixed) <= 8 else Counter(words).__getitem__
        hits: Counter[str] = Counter()
        for word in found:
            for label in self._words[word]:
                hits[label] += count(word)
        for word in prefixed:
            for prefix, labels in self._prefixes.items():
                for label in labels if word.startswith(prefix) else ():
                    hits[label] += count(word)
        for checked in self._checked:
            if checked.may_occur(distinct, joined):
                hits[checked.label] += len(checked.pattern.findall(text))
        return {label: n for label, n in hits.items() if n}
