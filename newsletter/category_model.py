"""The shipped category model: a linear classifier over the words and word pairs of a paper.

``tools/train_categories.py`` trains it with scikit-learn on the labelled papers in
``tests/data/categories-labels.csv`` and writes only its weights, ``categories_model.json``; this
module reads them and scores papers in pure Python, so neither scikit-learn nor numpy is needed at
run time. A paper's text is its title, the "Topic and Domain" point of a cards paper, and its
summary. Each word and each pair of adjacent words is a feature, weighted ``(1 + ln count) * idf``
and scaled to unit length (scikit-learn's sublinear tf-idf). One linear model picks the primary
category; a second one scores, per category, whether it applies at all, and a category other than
the primary is given when that probability reaches a threshold calibrated by cross-validation on
the training part.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from itertools import compress, islice, repeat
from operator import lt, mul, ne
from typing import Any

from newsletter.models import Paper, summary_of

MODEL_RESOURCE = "categories_model.json"
MODEL_FORMAT = 1
TOPIC_POINT = "topic and domain"

Feature = bytes | tuple[bytes, bytes]
"""A word, or two adjacent words, of a paper's case-folded text (see ``newsletter.categories.words``)."""

# ln c for a feature seen c times: its weight is 1 + ln c. Counts past the table are rare.
_LOG_TABLE = [0.0] + [math.log(c) for c in range(1, 64)]


def _log(count: int) -> float:
    return _LOG_TABLE[count] if count < len(_LOG_TABLE) else math.log(count)


def _square_excess(count: int) -> float:
    """(1 + ln c)² - 1: what a repeated feature adds to the squared length beyond a single one."""
    log = _log(count)
    return 2 * log + log * log


def paper_text(paper: Paper) -> str:
    """What the model reads: the title, a cards paper's "Topic and Domain" point, the summary."""
    topic = next((p.text for p in paper.points if p.label.casefold() == TOPIC_POINT), "")
    return f"{paper.title}\n{topic}\n{summary_of(paper)}"


def feature_counts(words: list[bytes], pairs: bool = True) -> Counter[Feature]:
    """How often each word, and each pair of adjacent words if ``pairs``, occurs."""
    counts: Counter[Feature] = Counter(words)
    if pairs:
        counts.update(zip(words, islice(words, 1, None), strict=False))
    return counts


def _feature_key(name: str) -> Feature:
    """A feature as the JSON file names it: a word, or two words separated by one space."""
    first, _, second = name.partition(" ")
    return (first.encode(), second.encode()) if second else first.encode()


@dataclass(frozen=True)
class _Vector:
    """A paper's feature vector: the indices of its features, of the repeated ones, and 1 / its length.

    Features the model does not know have index -1, where every weight list ends with a 0.
    """

    known: list[int]
    repeated: list[int]
    logs: list[float]
    """ln count of each repeated feature: what it adds to the weight 1 of a single occurrence."""
    scale: float


@dataclass(frozen=True)
class Linear:
    """One linear score per category. ``weights[i][f]`` is idf × coefficient of feature index f."""

    intercepts: tuple[float, ...]
    weights: tuple[list[float], ...]

    def scores(self, vector: _Vector) -> list[float]:
        # C-level map() over the features, most of which occur once; repeated ones add ln count.
        return [
            intercept + vector.scale * (
                sum(map(weights.__getitem__, vector.known))
                + sum(map(mul, vector.logs, map(weights.__getitem__, vector.repeated)))
            )
            for intercept, weights in zip(self.intercepts, self.weights, strict=True)
        ]


@dataclass(frozen=True)
class CategoryModel:
    """Weights of a trained model: which category is primary, and which categories apply at all."""

    categories: tuple[str, ...]
    pairs: bool
    """Whether pairs of adjacent words are features too (costly: a tuple per pair)."""
    index: dict[Feature, int]
    idf_squared: list[float]
    """Of every feature of the vocabulary, for the length of a paper's feature vector."""
    primary: Linear
    applies: Linear
    applies_from: tuple[float, ...]
    """Score of the "applies" model (a logit) from which a category other than the best one is given."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CategoryModel:
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"unsupported category model format {data.get('format')!r} (expected {MODEL_FORMAT})")
        scale = float(data.get("scale", 1))
        categories = tuple(str(name) for name in _list(data, "categories"))
        features = [_feature_key(str(name)) for name in _list(data, "features")]
        idf = [float(value) / scale for value in _list(data, "idf")]
        if len(idf) != len(features):
            raise ValueError("category model: features and idf do not line up")

        def linear(part: Any) -> Linear:
            if not isinstance(part, dict):
                raise ValueError("category model: a linear part must be an object")
            rows = [[float(value) / scale for value in row] for row in _list(part, "coefficients")]
            intercepts = tuple(float(value) / scale for value in _list(part, "intercepts"))
            if len(rows) != len(categories) or len(intercepts) != len(categories):
                raise ValueError("category model: one row of coefficients per category expected")
            return Linear(intercepts, tuple([*(w * i for w, i in zip(row, idf, strict=True)), 0.0] for row in rows))

        applies = data.get("applies")
        thresholds = [float(value) for value in _list(applies if isinstance(applies, dict) else {}, "thresholds")]
        return cls(
            categories=categories,
            pairs=bool(data.get("word_pairs", True)),
            index={feature: i for i, feature in enumerate(features)},
            idf_squared=[*(i * i for i in idf), 0.0],
            primary=linear(data.get("primary")),
            applies=linear(applies),
            applies_from=tuple(math.log(t / (1 - t)) for t in thresholds),
        )

    def vector(self, words: list[bytes]) -> _Vector | None:
        """The paper's feature vector, or None when it has no word or word pair the model knows."""
        counts = feature_counts(words, self.pairs)
        every_at = list(map(self.index.get, counts, repeat(-1)))
        known_at = list(filter(partial(ne, -1), every_at))  # the sums then skip the unknown ones
        if not known_at:
            return None
        is_repeated = list(map(partial(lt, 1), counts.values()))
        repeated_at = list(compress(every_at, is_repeated))
        repeated_counts = list(compress(counts.values(), is_repeated))
        length_squared = sum(map(self.idf_squared.__getitem__, known_at)) + sum(
            map(mul, map(_square_excess, repeated_counts), map(self.idf_squared.__getitem__, repeated_at))
        )
        return _Vector(known_at, repeated_at, list(map(_log, repeated_counts)), 1 / math.sqrt(length_squared))

    def choose(self, words: list[bytes]) -> tuple[str, list[str]] | None:
        """The primary category, and the other categories that apply (most likely first)."""
        vector = self.vector(words)
        if vector is None:
            return None
        primary = self.primary.scores(vector)
        best = primary.index(max(primary))
        applies = self.applies.scores(vector)
        others = sorted(
            (i for i, score in enumerate(applies) if i != best and score >= self.applies_from[i]),
            key=lambda i: -applies[i],
        )
        return self.categories[best], [self.categories[i] for i in others]


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"category model: {key!r} must be a list")
    return value


@cache
def shipped_model() -> CategoryModel:
    """The model shipped with the package (read once per process)."""
    text = resources.files("newsletter").joinpath(MODEL_RESOURCE).read_text(encoding="utf-8")
    return CategoryModel.from_json(json.loads(text))
