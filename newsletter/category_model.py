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

Scoring is a few C-level passes (``map``/``filter``/``Counter``/``sum``) over a paper's terms, with
every score of a feature packed into one int (see ``LANE_BYTES``). Word
pairs were added when the labelled set grew to 1,996 papers: cross-validated on the training part
they raised the primary share and every category's balance of precision and recall by about a
point, and on the test part the primary share by two, for about twice the time classifying (see
README: Categories).
"""

from __future__ import annotations

import json
import math
import pkgutil
import struct
from collections import Counter
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from operator import add, mul
from typing import Any

MODEL_RESOURCE = "categories_model.json"
MODEL_FORMAT = 2
TITLE_REPEATS = 3
TOPIC_POINT = "topic and domain"


class _SublinearTf(dict[int, float]):
    """1 + ln count, by count: computed once per count."""

    def __missing__(self, count: int) -> float:
        value = self[count] = 1 + math.log(count)
        return value


_TF = _SublinearTf()

# A feature's contributions to a paper's scores are packed into one int: a lane of LANE_BYTES per
# score, in fixed point with FRACTION_BITS after the point and offset by LANE_BIAS so that no lane is
# negative, then the squared length above them all. Adding the ints of a paper's features adds every
# score at once, in C (``sum``), where adding floats takes a Python-level pass per score; ``struct``
# takes the lanes apart again. 2**-32 is far below any difference between scores that decides a category.
LANE_BYTES = 8
FRACTION_BITS = 32
FIXED_ONE = 1 << FRACTION_BITS
LANE_BIAS = 1 << 48
# A lane holds any paper's sum while no feature adds 2**16 to it (a weight below MAX_WEIGHT, times
# the tf of a count below e**255) and a paper has fewer than MAX_FEATURES features. The length,
# always positive, is the top of the int and has no bound.
MAX_WEIGHT = 1 << 8
MAX_FEATURES = 1 << 14


class _FeatureRows(dict[tuple[int, int], int]):
    """What a feature seen ``count`` times adds to a paper's scores and squared length, packed (see
    ``LANE_BYTES``), by ``(feature, count)``: tf × idf × coefficient per score, then tf² × idf².
    Made when first needed: a few thousand over a large corpus.
    """

    def __init__(self, weights: list[list[float]], idf_squared: list[float]) -> None:
        super().__init__()
        self.once: list[tuple[float, ...]] = list(zip(*weights, idf_squared, strict=True))
        self.scores = len(weights)
        self._lanes = struct.Struct(f"<{self.scores}Q")
        self._length_shift = 8 * LANE_BYTES * self.scores

    def __missing__(self, key: tuple[int, int]) -> int:
        feature, count = key
        tf = _TF[count]
        *weights, idf_squared = self.once[feature]
        fixed = map(round, map(mul, weights, repeat(tf * FIXED_ONE)))  # C-level: rows are made by the thousand
        lanes = self._lanes.pack(*map(add, fixed, repeat(LANE_BIAS)))
        length = round(tf * tf * idf_squared * FIXED_ONE)
        row = self[key] = int.from_bytes(lanes, "little") + (length << self._length_shift)
        return row

    def totals(self, packed: int, features: int) -> tuple[list[float], float]:
        """Each score's sum and the squared length, from the sum of ``features`` packed rows."""
        bias = features * LANE_BIAS
        lanes = self._lanes.unpack((packed & ~(-1 << self._length_shift)).to_bytes(self._lanes.size, "little"))
        return [(lane - bias) / FIXED_ONE for lane in lanes], (packed >> self._length_shift) / FIXED_ONE


@dataclass(frozen=True)
class CategoryModel:
    """Weights of a trained model: which category is primary, and which categories apply at all.

    Two linear models score each category: the "primary" one (the highest score wins) and the
    "applies" one (a logit, compared with ``applies_from``). Their intercepts and feature rows hold
    the primary scores first, then the "applies" ones.
    """

    categories: tuple[str, ...]
    index: dict[bytes, int]
    """Feature index of each word of the vocabulary, from 1 (0 is falsy: ``filter`` drops it)."""
    intercepts: tuple[float, ...]
    rows: _FeatureRows
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
        if len(words) >= MAX_FEATURES:
            raise ValueError(f"category model: {len(words)} features, scoring packs at most {MAX_FEATURES - 1}")

        def linear(part: Any) -> tuple[list[float], list[list[float]]]:
            """Intercepts, and per category the weights of every feature (idf × coefficient)."""
            if not isinstance(part, dict):
                raise ValueError("category model: a linear part must be an object")
            rows = [[0.0, *(float(value) / scale for value in row)] for row in _list(part, "coefficients")]
            rows = [list(map(mul, row, idf)) for row in rows]
            intercepts = [float(value) / scale for value in _list(part, "intercepts")]
            if len(rows) != len(categories) or len(intercepts) != len(categories):
                raise ValueError("category model: one row of coefficients per category expected")
            if any(len(row) != len(idf) for row in rows):
                raise ValueError("category model: one coefficient per feature expected")
            if any(abs(weight) >= MAX_WEIGHT for row in rows for weight in row):
                raise ValueError(f"category model: a weight (coefficient × idf) of {MAX_WEIGHT} or more")
            return intercepts, rows

        applies = data.get("applies")
        thresholds = [float(value) for value in _list(applies if isinstance(applies, dict) else {}, "thresholds")]
        primary_intercepts, primary_weights = linear(data.get("primary"))
        applies_intercepts, applies_weights = linear(applies)
        return cls(
            categories=categories,
            index={word: i for i, word in enumerate(words, start=1)},
            intercepts=(*primary_intercepts, *applies_intercepts),
            rows=_FeatureRows([*primary_weights, *applies_weights], list(map(mul, idf, idf))),
            applies_from=tuple(math.log(t / (1 - t)) for t in thresholds),
        )

    def scores(self, words: list[bytes]) -> list[float] | None:
        """The primary model's score of each category, then the "applies" model's, or None when the
        paper has no word the model knows."""
        counts = Counter(filter(None, map(self.index.get, words)))
        if not counts:
            return None
        sums, length_squared = self.rows.totals(sum(map(self.rows.__getitem__, counts.items())), len(counts))
        scale = 1 / math.sqrt(length_squared)
        return [intercept + scale * total for intercept, total in zip(self.intercepts, sums, strict=True)]

    def choose(self, words: list[bytes]) -> tuple[str, list[str]] | None:
        """The primary category and the other categories that apply (most likely first), or None
        when the paper has no word the model knows."""
        scores = self.scores(words)
        if scores is None:
            return None
        primary, applies = scores[: len(self.categories)], scores[len(self.categories):]
        best = primary.index(max(primary))
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
    # pkgutil, not importlib.resources: it reads the same package data without importing zipfile,
    # tempfile and the compression modules, a tenth of `newsletter parse`'s imports.
    data = pkgutil.get_data(__package__ or "newsletter", MODEL_RESOURCE)
    if data is None:
        raise FileNotFoundError(f"{MODEL_RESOURCE} is missing from the newsletter package")
    return CategoryModel.from_json(json.loads(data))
