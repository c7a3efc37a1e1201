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
from newsletter.models import Day, Paper

TITLE_WEIGHT = 3
SECONDARY_SHARE = 0.5


def _keyword_pattern(keyword: str) -> str:
    word = keyword.strip().casefold()
    if word.endswith("*"):
        return r"\b" + re.escape(word[:-1])
    return r"\b" + re.escape(word) + r"(?:s|es)?\b"


class Classifier:
    def __init__(self, settings: CategorySettings) -> None:
        self.settings = settings
        self._patterns = {
            name: re.compile("|".join(_keyword_pattern(k) for k in keywords if k.strip()))
            for name, keywords in settings.taxonomy.items()
            if any(k.strip() for k in keywords)
        }

    def scores(self, paper: Paper) -> dict[str, int]:
        title = paper.title.casefold()
        summary = paper.summary.casefold()
        result = {}
        for name, pattern in self._patterns.items():
            score = TITLE_WEIGHT * len(pattern.findall(title)) + len(pattern.findall(summary))
            if score:
                result[name] = score
        return result

    def classify(self, paper: Paper) -> list[str]:
        """The digest's own category when it has one, else the taxonomy's choice."""
        if paper.category:
            return [paper.category]
        scores = self.scores(paper)
        if not scores:
            return [self.settings.fallback]
        order = list(self.settings.taxonomy)
        ranked = sorted(scores, key=lambda name: (-scores[name], order.index(name)))
        best = scores[ranked[0]]
        chosen = [name for name in ranked if scores[name] >= best * SECONDARY_SHARE]
        return chosen[: self.settings.max_per_paper]

    def assign(self, days: Iterable[Day]) -> None:
        """Fill ``categories`` on every paper of ``days``, in place."""
        for day in days:
            for paper in day.papers:
                paper.categories = self.classify(paper)
