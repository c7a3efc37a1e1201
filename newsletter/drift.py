"""Drift that only shows across files: a day with far fewer papers than its source usually gives.

A source is judged by its format (table, cards text, cards HTML), over the files of that format
parsed now and (at ingest) the ones stored before. Real digests list anywhere from one paper to
thirty, so a low count alone says little; a layout the parser no longer reads shows as a file of
the usual size that gives few papers. A day is flagged when it has under half the usual count AND
under half what its size predicts at the format's usual characters per paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from newsletter.models import FileHealth, ParseWarning

SHORT_DAY_SHARE = 0.5
"""A day with fewer papers than this share of the usual (and of the expected) count is flagged."""
MIN_REFERENCE_FILES = 5
"""Fewer files of a format than this tell no usual count."""


def _usual(files: Sequence[FileHealth]) -> tuple[float, float] | None:
    """(median papers per file, median characters per paper) of one format's files."""
    with_papers = [f for f in files if f.papers]
    if len(with_papers) < MIN_REFERENCE_FILES:
        return None
    return _median([f.papers for f in files]), _median([f.size / f.papers for f in with_papers])


def _median(values: list[float] | list[int]) -> float:
    """The median; written out, as importing statistics costs more than `newsletter parse` spends here."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def flag_short_days(files: Sequence[FileHealth], stored: Mapping[str, FileHealth]) -> list[ParseWarning]:
    """A warning for each of ``files`` far below its format's usual paper count; counted in its drift.

    ``stored`` are the files parsed before (by source key), the ones in ``files`` left out. A file with
    nothing in it at all (no card, no row) is not flagged: that is a day without papers.
    """
    by_format: dict[str, list[FileHealth]] = {}
    for health in [*stored.values(), *files]:
        by_format.setdefault(health.format, []).append(health)
    usual = {name: found for name, members in by_format.items() if (found := _usual(members)) is not None}
    warnings: list[ParseWarning] = []
    for health in files:
        if health.format not in usual or health.blocks == 0:
            continue
        typical, chars_per_paper = usual[health.format]
        expected = health.size / chars_per_paper
        if health.papers >= SHORT_DAY_SHARE * min(typical, expected):
            continue
        warning = ParseWarning(
            health.file, health.line,
            f"{health.papers} of about {expected:.0f} papers a {health.format} digest of this size usually has "
            f"(a usual day has {typical:g}): check whether the source changed its layout",
            "short_day",
        )
        health.count([warning])
        warnings.append(warning)
    return warnings
