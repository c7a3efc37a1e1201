"""Which papers of the last days a filter selects, and why: the preview a reader sees on the
preferences page and the operator gets from `newsletter subscribers preview`, before a filter is saved.

It asks the one Filter (newsletter.selection) for both the selection and the reasons, so the preview
shows what the emails and the private feed would have held.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from newsletter.models import Paper
from newsletter.selection import Filter
from newsletter.store import Store

DEFAULT_DAYS = 14


@dataclass(frozen=True)
class PreviewPaper:
    paper: Paper
    reasons: list[str]


@dataclass(frozen=True)
class PreviewDay:
    date: dt.date
    papers: list[PreviewPaper]


def preview(store: Store, filt: Filter, days: int = DEFAULT_DAYS) -> list[PreviewDay]:
    """Each digest day of the ``days`` calendar days up to the newest ingested one, newest first, with
    the papers ``filt`` selects (in digest order) and the reasons. Days selecting nothing are listed too."""
    latest = store.latest_date()
    if latest is None or days < 1:
        return []
    stored = store.days_between(latest - dt.timedelta(days=days - 1), latest)
    return [PreviewDay(day.date, [PreviewPaper(p, filt.reasons(p)) for p in filt.select(day.papers)])
            for day in stored]


def preview_as_dict(found: list[PreviewDay]) -> dict[str, Any]:
    """The JSON of `newsletter subscribers preview --json`."""
    return {"days": [{"date": day.date.isoformat(),
                      "papers": [{"arxiv_id": p.paper.arxiv_id, "title": p.paper.title, "reasons": p.reasons}
                                 for p in day.papers]}
                     for day in found]}
