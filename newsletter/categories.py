"""Assign taxonomy categories to papers from digests that have no Category column.

Each category in ``[categories.taxonomy]`` lists keywords. A keyword matches whole words,
case-insensitively, with an optional plural ``s``/``es``; a trailing ``*`` makes it a prefix
(``efficien*`` matches "efficient" and "efficiency"). A hit in the title weighs more than one in
the summary. A paper gets its best-scoring category, plus any other scoring at least half as much
(up to ``max_per_paper``), or the fallback when nothing matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from newsletter.config import CategorySettings
from newsletter.models import Day, Paper, ParseWarning

TITLE_WEIGHT = 3
SECONDARY_SHARE = 0.5


_WORD = re.compile(r"[^\W_]+")


def _name_key(name: str) -> str:
    return " ".join(_WORD.findall(name.casefold()))


def _plural_forms(word: str) -> tuple[str, ...]:
    return (word, word + "s", word + "es")


class Classifier:
    """Scores a paper against every category from one pass over its words.

    Keywords are looked up in the paper's word (and word-pair, word-triple) counts, so the cost does
    not grow with the number of keywords times the length of the text.
    """

    def __init__(self, settings: CategorySettings) -> None:
        self.settings = settings
        self._order = {name: i for i, name in enumerate(settings.taxonomy)}
        self._names = {_name_key(name): name for name in settings.taxonomy}
        self._words: dict[str, list[str]] = {}  # word, in each plural form -> categories
        # (words before the last, forms of the last word, pattern, category) for multi-word keywords
        self._phrases: list[tuple[frozenset[str], frozenset[str], re.Pattern[str], str]] = []
        self._prefixes: dict[str, list[str]] = {}  # prefix of a single word -> categories
        for name, keywords in settings.taxonomy.items():
            for keyword in keywords:
                words = _WORD.findall(keyword.casefold())
                is_prefix = keyword.strip().endswith("*")
                if not words:
                    continue
                if len(words) == 1 and is_prefix:
                    self._prefixes.setdefault(words[0], []).append(name)
                elif len(words) == 1:
                    for form in _plural_forms(words[0]):
                        self._words.setdefault(form, []).append(name)
                else:
                    tail = "" if is_prefix else r"(?:s|es)?\b"
                    pattern = re.compile(r"\b" + r"[\W_]+".join(map(re.escape, words)) + tail)
                    self._phrases.append((frozenset(words[:-1]), frozenset(_plural_forms(words[-1])), pattern, name))
        self._prefix_tuple = tuple(self._prefixes)

    def _count(self, text: str, weight: int, scores: dict[str, int]) -> None:
        words = _WORD.findall(text)
        distinct = set(words)

        def add(names: list[str], hits: int) -> None:
            for name in names:
                scores[name] = scores.get(name, 0) + weight * hits

        # Set operations run in C; only keywords whose words all occur are counted in Python.
        for word in self._words.keys() & distinct:
            add(self._words[word], words.count(word))
        for leading, last_forms, pattern, name in self._phrases:
            if leading <= distinct and not last_forms.isdisjoint(distinct):
                hits = len(pattern.findall(text))  # the words may all occur, but apart
                if hits:
                    add([name], hits)
        if self._prefix_tuple:
            for word in distinct:
                if word.startswith(self._prefix_tuple):
                    add([n for p, names in self._prefixes.items() if word.startswith(p) for n in names],
                        words.count(word))

    def scores(self, paper: Paper) -> dict[str, int]:
        scores: dict[str, int] = {}
        self._count(paper.title.casefold(), TITLE_WEIGHT, scores)
        self._count(paper.summary.casefold(), 1, scores)
        return scores

    def classify(self, paper: Paper) -> list[str]:
        """The digest's own category when the taxonomy knows it, else the taxonomy's choice."""
        if paper.category:
            known = self._names.get(_name_key(paper.category))
            if known is not None:
                return [known]
        scores = self.scores(paper)
        if not scores:
            return [self.settings.fallback]
        ranked = sorted(scores, key=lambda name: (-scores[name], self._order[name]))
        best = scores[ranked[0]]
        chosen = [name for name in ranked if scores[name] >= best * SECONDARY_SHARE]
        return chosen[: self.settings.max_per_paper]

    def assign(self, days: Iterable[Day]) -> list[ParseWarning]:
        """Fill ``categories`` on every paper of ``days``, in place.

        A Category cell is matched to the taxonomy ignoring case and punctuation ("computer
        vision" is Computer Vision). One the taxonomy lacks is kept as the paper's ``category``,
        but filters and feeds use the taxonomy, so the paper is classified by keywords, with a warning.
        """
        warnings = []
        for day in days:
            for paper in day.papers:
                paper.categories = self.classify(paper)
                if paper.category and paper.categories != [self._names.get(_name_key(paper.category))]:
                    warnings.append(ParseWarning(
                        day.source, paper.line,
                        f"category {paper.category!r} is not in [categories.taxonomy]; classified by keywords as "
                        f"{', '.join(paper.categories)} (add it to the taxonomy to keep it)",
                    ))
        return warnings
