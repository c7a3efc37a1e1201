"""The shipped category model: a linear classifier over the words and word pairs of a paper.

``tools/train_categories.py`` trains it with scikit-learn on the labelled papers in
``tests/data/categories-labels.csv`` and writes only its weights, ``categories_model.json``; this
module reads them and scores papers in pure Python, so neither scikit-learn nor numpy is needed at
run time. A paper's terms are its words and the pairs of adjacent words; those of its title count
``TITLE_REPEATS`` times (the title says best what a paper is about), then come those of a cards
paper's "Topic and Domain" point and of its summary. Each term of the model's vocabulary is a
feature, weighted ``(1 + ln count) * idf`` and scaled to unit length over the vocabulary
(scikit-learn's sublinear tf-idf). One linear model picks the primary category; a second one scores,
per category, whether it applies at all, and a category other than the primary is given when that
probability reaches a threshold calibrated by cross-validation on the training part.

Scoring is a few C-level passes (``map``/``filter``/``sum``) over a paper's terms. Word pairs were
added when the labelled set grew to 1,996 papers: cross-validated on the training part they raised
the primary share and every category's balance of precision and recall by about a point, and on the
test part the primary share by two, for about twice the time classifying (see README: Categories).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from operator import mul
from typing import Any

MODEL_RESOURCE = "categories_model.json"
MODEL_FORMAT = 2
TITLE_REPEATS = 3
TOPIC_POINT = "topic and domain"


class _SublinearTf(dict[int, float]):
    """1 + ln count, by count: a dict lookup from C instead of a Python call per feature."""

    def __missing__(self, count: int) -> float:
        value = self[count] = 1 + math.log(count)
        return value


_TF = _SublinearTf()


@dataclass(frozen=True)
class Linear:
    """One linear score per category. ``weights[i][f]`` is idf × coefficient of feature index f."""

    intercepts: tuple[float, ...]
    weights: tuple[list[float], ...]

    def scores(self, features: list[int], tfs: list[float], scale: float) -> list[float]:
        return [
            intercept + scale * sum(map(mul, tfs, map(weights.__getitem__, features)))
            for intercept, weights in zip(self.intercepts, self.weights, strict=True)
        ]


@dataclass(frozen=True)
class CategoryModel:
    """Weights of a trained model: which category is primary, and which categories apply at all."""

    categories: tuple[str, ...]
    index: dict[bytes, int]
    """Feature index of each word of the vocabulary, from 1 (0 is falsy: ``filter`` drops it)."""
    idf_squared: list[float]
    """Of every feature, for the length of a paper's feature vector."""
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
        words = [str(word).encode() for word in _list(data, "features")]
        idf = [0.0, *(float(value) / scale for value in _list(data, "idf"))]
        if len(idf) != len(words) + 1:
            raise ValueError("category model: features and idf do not line up")

        def linear(part: Any) -> Linear:
            if not isinstance(part, dict):
                raise ValueError("category model: a linear part must be an object")
            rows = [[0.0, *(float(value) / scale for value in row)] for row in _list(part, "coefficients")]
            rows = [list(map(mul, row, idf)) for row in rows]
            intercepts = tuple(float(value) / scale for value in _list(part, "intercepts"))
            if len(rows) != len(categories) or len(intercepts) != len(categories):
                raise ValueError("category model: one row of coefficients per category expected")
            if any(len(row) != len(idf) for row in rows):
                raise ValueError("category model: one coefficient per feature expected")
            return Linear(intercepts, tuple(rows))

        applies = data.get("applies")
        thresholds = [float(value) for value in _list(applies if isinstance(applies, dict) else {}, "thresholds")]
        return cls(
            categories=categories,
            index={word: i for i, word in enumerate(words, start=1)},
            idf_squared=list(map(mul, idf, idf)),
            primary=linear(data.get("primary")),
            applies=linear(applies),
            applies_from=tuple(math.log(t / (1 - t)) for t in thresholds),
        )

    def choose(self, words: list[bytes]) -> tuple[str, list[str]] | None:
        """The primary category and the other categories that apply (most likely first), or None
        when the paper has no word the model knows."""
        counts = Counter(filter(None, map(self.index.get, words)))
        if not counts:
            return None
        features = list(counts)
        tfs = list(map(_TF.__getitem__, counts.values()))
        scale = 1 / math.sqrt(sum(map(mul, map(mul, tfs, tfs), map(self.idf_squared.__getitem__, features))))
        primary = self.primary.scores(features, tfs, scale)
        best = primary.index(max(primary))
        applies = self.applies.scores(features, tfs, scale)
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
    """The model shipped with the package (read once per process, when a paper first needs it)."""
    text = resources.files("newsletter").joinpath(MODEL_RESOURCE).read_text(encoding="utf-8")
    return CategoryModel.from_json(json.loads(text))
