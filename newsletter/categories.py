"""Assign taxonomy categories to papers from digests that have no Category column.

With the shipped taxonomy (its five category names), the shipped model classifies: a linear model
trained on labelled papers (see ``newsletter.category_model``). A paper gets its most probable
category, then any category whose keywords the operator added to the shipped ones match, then
any other category above its calibrated probability threshold (up to ``max_per_paper``).

With an operator's own category names, keywords classify. A keyword matches by the rule that
subscriber filters use too (``newsletter.keywords``): whole words, case-insensitively, with an
optional plural ``s``/``es``; a trailing ``*`` makes it a prefix. A hit in the title weighs more than one in
the summary. A paper gets its best-scoring category, plus any other scoring at least half as much
(up to ``max_per_paper``), or the fallback when nothing matches.
"""
from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise

from newsletter.category_model import TITLE_REPEATS, TOPIC_POINT, CategoryModel, shipped_model
from newsletter.config import DEFAULT_TAXONOMY, CategorySettings
from newsletter.keywords import KeywordIndex
from newsletter.models import Day, Paper, ParseWarning, summary_of

TITLE_WEIGHT = 3
SECONDARY_SHARE = 0.5


# Text is split into words as UTF-8 bytes: bytes.translate and bytes.split run several times faster
# than a regex or str.translate over a paper's text, and classifying is most of a cold ingest.
# ASCII punctuation separates words, and so do the common non-ASCII dashes, quotes and ellipsis.
_ASCII_SEPARATORS = bytes(32 if chr(b) in string.punctuation else b for b in range(256))
_UNICODE_SEPARATORS = "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0"


def _separated(text: str) -> bytes:
    """An already case-folded text as UTF-8, with every separator turned into a space."""
    for separator in _UNICODE_SEPARATORS:
        if separator in text:
            text = text.replace(separator, " ")
    return text.encode().translate(_ASCII_SEPARATORS)


def _words(text: str) -> list[bytes]:
    """The words of an already case-folded text."""
    return _separated(text).split()


def _name_key(name: str) -> bytes:
    return b" ".join(_words(name.casefold()))


def _with_pairs(words: list[bytes]) -> list[bytes]:
    """The words, then each pair of adjacent words ("reinforcement learning", "language model"): pairs
    tell apart what single words cannot; ``pairwise`` and ``b" ".join`` run from C."""
    return words + list(map(b" ".join, pairwise(words)))


def paper_terms(paper: Paper) -> list[bytes]:
    """The terms the category model reads, split as it was trained (see ``newsletter.category_model``):
    the title's words and word pairs ``TITLE_REPEATS`` times, then those of a cards paper's "Topic and
    Domain" point and the summary."""
    topic = next((point.text for point in paper.points if point.label.casefold() == TOPIC_POINT), "")
    title = _with_pairs(_words(paper.title.casefold()))
    return title * TITLE_REPEATS + _with_pairs(_words(f"{topic}\n{summary_of(paper)}".casefold()))


def added_keywords(taxonomy: dict[str, list[str]]) -> dict[str, list[str]]:
    """The keywords an operator added to the shipped categories: with the model they act as rules."""
    def shipped(name: str) -> set[str]:
        return {keyword.strip().casefold() for keyword in DEFAULT_TAXONOMY.get(name, [])}

    return {
        name: [keyword for keyword in keywords if keyword.strip().casefold() not in shipped(name)]
        for name, keywords in taxonomy.items()
    }


class Classifier:
    """Classifies with the shipped model, or scores a paper against every category's keywords.

    Keywords are counted by ``newsletter.keywords.KeywordIndex``, whose cost does not grow with the
    number of keywords times the length of the text.
    """

    def __init__(self, settings: CategorySettings) -> None:
        self.settings = settings
        self._uses_model = settings.is_shipped_taxonomy
        keyword_taxonomy = added_keywords(settings.taxonomy) if self._uses_model else settings.taxonomy
        self._order = {name: i for i, name in enumerate(settings.taxonomy)}
        self._names = {_name_key(name): name for name in settings.taxonomy}
        self._keywords = KeywordIndex(keyword_taxonomy)

    @property
    def model(self) -> CategoryModel | None:
        """The shipped model, read when a paper first needs it; None when keywords classify."""
        return shipped_model() if self._uses_model else None

    def scores(self, paper: Paper) -> dict[str, int]:
        title_hits = self._keywords.count(paper.title.casefold())
        scores = Counter({name: TITLE_WEIGHT * hits for name, hits in title_hits.items()})
        scores.update(self._keywords.count(summary_of(paper).casefold()))
        return dict(scores)

    def classify(self, paper: Paper) -> list[str]:
        """The digest's own category when the taxonomy knows it, else the taxonomy's choice."""
        if paper.category:
            known = self._names.get(_name_key(paper.category))
            if known is not None:
                return [known]
        if self._uses_model:
            return self._model_choice(shipped_model(), paper)
        scores = self.scores(paper)
        if not scores:
            return [self.settings.fallback]
        ranked = sorted(scores, key=lambda name: (-scores[name], self._order[name]))
        best = scores[ranked[0]]
        chosen = [name for name in ranked if scores[name] >= best * SECONDARY_SHARE]
        return chosen[: self.settings.max_per_paper]

    def _model_choice(self, model: CategoryModel, paper: Paper) -> list[str]:
        """The model's primary category, the added keywords' categories, then the others that apply."""
        rules: list[str] = []
        if self._keywords:
            scores = self.scores(paper)
            rules = sorted(scores, key=lambda name: (-scores[name], self._order[name]))
        choice = model.choose(paper_terms(paper))
        if choice is None:
            return (rules or [self.settings.fallback])[: self.settings.max_per_paper]
        best, likely = choice
        return list(dict.fromkeys([best, *rules, *likely]))[: self.settings.max_per_paper]

    def assign(self, days: Iterable[Day]) -> list[ParseWarning]:
        """Fill ``categories`` on every paper of ``days``, in place.

        A Category cell is matched to the taxonomy ignoring case and punctuation ("computer
        vision" is Computer Vision). One the taxonomy lacks is kept as the paper's ``category``,
        but filters and feeds use the taxonomy, so the paper is classified as if it had none, with a warning.
        """
        warnings = []
        for day in days:
            for paper in day.papers:
                paper.categories = self.classify(paper)
                if paper.category and paper.categories != [self._names.get(_name_key(paper.category))]:
                    warnings.append(ParseWarning(
                        day.source, paper.line,
                        f"category {paper.category!r} is not in [categories.taxonomy]; classified as "
                        f"{', '.join(paper.categories)} (add it to the taxonomy to keep it)",
                    ))
        return warnings
