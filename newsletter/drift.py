"""Drift that only shows across files: a day with far fewer papers than its source usually gives.

A source is judged by its format (table, cards text, cards HTML): the usual count is the median
paper count of the files of that format, the ones parsed now and (at ingest) the ones stored before.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from newsletter.models import FileHealth, ParseWarning

SHORT_DAY_SHARE = 0.5
"""A day with fewer papers than this share of the usual count is flagged."""
MIN_REFERENCE_FILES = 5
"""Fewer files of a format than this tell no usual count."""


def flag_short_days(files: Sequence[FileHealth], stored: Mapping[str, FileHealth]) -> list[ParseWarning]:
    """A warning for each of ``files`` far below its format's usual paper count; counted in its drift.

    A file with nothing in it at all (no card, no row) is not flagged: an empty day is a day without
    papers, not a layout the parser failed to read.
    """
    by_path = {**stored, **{f.file: f for f in files}}
    counts: dict[str, list[int]] = {}
    for health in by_path.values():
        counts.setdefault(health.format, []).append(health.papers)
    usual = {name: statistics.median(c) for name, c in counts.items() if len(c) >= MIN_REFERENCE_FILES}
    warnings: list[ParseWarning] = []
    for health in files:
        typical = usual.get(health.format)
        if typical is None or health.blocks == 0 or health.papers >= typical * SHORT_DAY_SHARE:
            continue
        warning = ParseWarning(
            health.file, health.line,
            f"{health.papers} papers where a {health.format} digest usually has {typical:g}: check whether the "
            "source changed its layout",
            "short_day",
        )
        health.count([warning])
        warnings.append(warning)
    return warnings
