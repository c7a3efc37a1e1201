"""Assign taxonomy categories to papers from digests that have no Category column.

Each category in ``[categories.taxonomy]`` lists keywords. A keyword matches whole words,
case-insensitively, with an optional plural ``s``/``es``; a trailing ``*`` makes it a prefix
(``efficien*`` matches "efficient" and "efficiency"). A hit in the title weighs more than one in
the summary. A paper gets its best-scoring category, plus any other scoring at least half as much
(up to ``max_per_paper``), or the fallback when nothing matches.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from newsletter.config import CategorySettings
from newsletter.models import Day, Paper

TITLE_WEIGHT = 3
SECONDARY_SHARE = 0.5


_WORD = re.compile(r"[^\W_]+")


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
        # n -> {tuple of n words (the last one in each plural form): categories}
        self._ngrams: dict[int, dict[tuple[str, ...], list[str]]] = {}
        self._prefixes: dict[str, list[str]] = {}  # prefix of a single word -> categories
        for name, keywords in settings.taxonomy.items():
            for keyword in keywords:
                words = tuple(_WORD.findall(keyword.casefold()))
                if not words:
                    continue
                if keyword.strip().endswith("*") and len(words) == 1:
                    self._prefixes.setdefault(words[0], []).append(name)
                    continue
                table = self._ngrams.setdefault(len(words), {})
                for form in _plural_forms(words[-1]):
                    table.setdefault((*words[:-1], form), []).append(name)
        self._prefix_tuple = tuple(self._prefixes)

    def _count(self, text: str, weight: int, scores: dict[str, int]) -> None:
        words = _WORD.findall(text)
        for n, table in self._ngrams.items():
            grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
            for gram, count in grams.items():
                for name in table.get(gram, ()):
                    scores[name] = scores.get(name, 0) + weight * count
        if self._prefix_tuple:
            for word in words:
                if word.startswith(self._prefix_tuple):
                    for prefix, names in self._prefixes.items():
                        if word.startswith(prefix):
                            for name in names:
                                scores[name] = scores.get(name, 0) + weight

    def scores(self, paper: Paper) -> dict[str, int]:
        scores: dict[str, int] = {}
        self._count(paper.title.casefold(), TITLE_WEIGHT, scores)
        self._count(paper.summary.casefold(), 1, scores)
        return scores

    def classify(self, paper: Paper) -> list[str]:
        """The digest's own category when it has one, else the taxonomy's choice."""
        if paper.category:
            return [paper.category]
        scores = self.scores(paper)
        if not scores:
            return [self.settings.fallback]
        ranked = sorted(scores, key=lambda name: (-scores[name], self._order[name]))
        best = scores[ranked[0]]
        chosen = [name for name in ranked if scores[name] >= best * SECONDARY_SHARE]
        return chosen[: self.settings.max_per_paper]

    def assign(self, days: Iterable[Day]) -> None:
        """Fill ``categories`` on every paper of ``days``, in place."""
        for day in days:
            for paper in day.papers:
                paper.categories = self.classify(paper)
