"""Which of a day's papers a subscriber gets.

A subscriber's filter, not the subscriber, decides the papers, so everything downstream (rendering,
inlining, MIME) is keyed by the filter and shared by every subscriber who has the same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from newsletter.keywords import any_of
from newsletter.models import Paper, Subscriber, summary_of


@dataclass(frozen=True)
class Filter:
    categories: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def of(cls, subscriber: Subscriber) -> Filter:
        return cls(
            categories=frozenset(subscriber.categories),
            keywords=tuple(sorted({k.casefold() for k in subscriber.keywords if k.strip()})),
            excluded=tuple(sorted({k.casefold() for k in subscriber.excluded_keywords if k.strip()})),
        )

    @property
    def key(self) -> str:
        """A stable, readable identifier, used to name renditions and sample files."""
        parts = ["+".join(sorted(self.categories)) or "all"]
        if self.keywords:
            parts.append("kw=" + "+".join(self.keywords))
        if self.excluded:
            parts.append("not=" + "+".join(self.excluded))
        return ";".join(parts)

    def describe(self) -> str:
        """Human wording for the email footer."""
        text = ", ".join(sorted(self.categories)) if self.categories else "all categories"
        if self.keywords:
            text += "; mentioning " + " or ".join(f"“{k}”" for k in self.keywords)
        if self.excluded:
            text += "; not mentioning " + " or ".join(f"“{k}”" for k in self.excluded)
        return text

    @cached_property
    def _wanted(self) -> re.Pattern[str] | None:
        return any_of(self.keywords)

    @cached_property
    def _unwanted(self) -> re.Pattern[str] | None:
        return any_of(self.excluded)

    def matches(self, paper: Paper) -> bool:
        if self.categories and self.categories.isdisjoint(paper.categories):
            return False
        if not (self.keywords or self.excluded):
            return True
        # Title and summary apart, so that a phrase does not run from the end of one into the other.
        texts = (paper.title.casefold(), summary_of(paper).casefold())
        if self._wanted is not None and not any(self._wanted.search(t) for t in texts):
            return False
        return self._unwanted is None or not any(self._unwanted.search(t) for t in texts)

    def select(self, papers: Iterable[Paper]) -> list[Paper]:
        return [p for p in papers if self.matches(p)]
