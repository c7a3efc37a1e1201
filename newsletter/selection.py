"""Which of a day's papers a subscriber gets.

A subscriber's filter, not the subscriber, decides the papers, so everything downstream (rendering,
inlining, MIME) is keyed by the filter and shared by every subscriber who has the same one.

A paper is selected for its topic (categories, then keywords, then exclusions, as before) or because
a followed author wrote it. Following an author is the most explicit wish a reader states, so it wins
over all three topic rules: a followed author's paper outside the reader's categories, or mentioning
an excluded keyword, is still selected (``matches``). ``matches_topic`` is the topic rule alone, for
the editions that list papers by topic and send followed authors' other papers as alerts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from newsletter.keywords import any_of, parse_all
from newsletter.models import Paper, Subscriber, summary_of


@dataclass(frozen=True)
class Filter:
    categories: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    authors: tuple[str, ...] = field(default=(), compare=False)
    """Followed authors as written; two spellings of one name count once (see ``author_key``)."""
    author_keys: frozenset[str] = field(default=frozenset(), init=False)
    """The followed authors' keys: what equality, hashing and ``key`` go by."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "author_keys", frozenset(author_key(name) for name in self.authors))

    @classmethod
    def of(cls, subscriber: Subscriber) -> Filter:
        return cls(
            categories=frozenset(subscriber.categories),
            keywords=tuple(sorted({k.casefold() for k in subscriber.keywords if k.strip()})),
            excluded=tuple(sorted({k.casefold() for k in subscriber.excluded_keywords if k.strip()})),
            authors=followed_authors(subscriber.authors),
        )

    @property
    def key(self) -> str:
        """A stable, readable identifier, used to name renditions and sample files."""
        parts = ["+".join(sorted(self.categories)) or "all"]
        if self.keywords:
            parts.append("kw=" + "+".join(self.keywords))
        if self.excluded:
            parts.append("not=" + "+".join(self.excluded))
        if self.author_keys:
            parts.append("by=" + "+".join(sorted(self.author_keys)))
        return ";".join(parts)

    def describe(self) -> str:
        """Human wording for the email footer."""
        text = ", ".join(sorted(self.categories)) if self.categories else "all categories"
        if self.keywords:
            text += "; mentioning " + " or ".join(f"“{k}”" for k in self.keywords)
        if self.excluded:
            text += "; not mentioning " + " or ".join(f"“{k}”" for k in self.excluded)
        if self.authors:
            text += "; and every paper by " + " or ".join(self.authors)
        return text

    @cached_property
    def _wanted(self) -> re.Pattern[str] | None:
        return any_of(self.keywords)

    @cached_property
    def _unwanted(self) -> re.Pattern[str] | None:
        return any_of(self.excluded)

    @cached_property
    def _keyword_patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(k.text, re.compile(k.pattern)) for k in parse_all(self.keywords)]

    def matches(self, paper: Paper) -> bool:
        """Selected for its topic or for a followed author (who wins over the topic rules)."""
        return self.matches_topic(paper) or bool(self.followed_in(paper))

    def matches_topic(self, paper: Paper) -> bool:
        """The category, keyword and exclusion rules, without followed authors."""
        if self.categories and self.categories.isdisjoint(paper.categories):
            return False
        if not (self.keywords or self.excluded):
            return True
        # Title and summary apart, so that a phrase does not run from the end of one into the other.
        texts = (paper.title.casefold(), summary_of(paper).casefold())
        if self._wanted is not None and not any(self._wanted.search(t) for t in texts):
            return False
        return self._unwanted is None or not any(self._unwanted.search(t) for t in texts)

    def followed_in(self, paper: Paper) -> list[str]:
        """The paper's authors (as the paper spells them) whom this filter follows."""
        if not self.author_keys:
            return []
        return [name for name in paper.authors if author_key(name) in self.author_keys]

    def select(self, papers: Iterable[Paper]) -> list[Paper]:
        return [p for p in papers if self.matches(p)]

    def reasons(self, paper: Paper) -> list[str]:
        """Why the paper is selected, in words for the reader and the send plan; [] when it is not.

        "category Computer Vision" (or "all categories" for a filter without categories), "keyword diffusion
        in the title" (or "in the summary"), "author Jane Doe".
        """
        by_author = [f"author {name}" for name in self.followed_in(paper)]
        if not self.matches_topic(paper):
            return by_author
        # Without categories in the filter, a paper's own categories are no reason: every category is wanted.
        cats = paper.categories or ([paper.category] if paper.category else [])
        topical = [f"category {c}" for c in cats if c in self.categories] if self.categories else ["all categories"]
        title, summary = paper.title.casefold(), summary_of(paper).casefold()
        by_keyword = []
        for text, pattern in self._keyword_patterns:
            where = "title" if pattern.search(title) else "summary" if pattern.search(summary) else None
            if where:
                by_keyword.append(f"keyword {text} in the {where}")
        return topical + by_keyword + by_author


def followed_authors(names: Iterable[str]) -> tuple[str, ...]:
    """The names, trimmed, the first spelling of each author kept, in the order given."""
    kept: dict[str, str] = {}
    for name in names:
        if name.strip():
            kept.setdefault(author_key(name), " ".join(name.split()))
    return tuple(kept.values())


@lru_cache(maxsize=1 << 16)
def author_key(name: str) -> str:
    """What two spellings of one author have in common.

    A person's name ("Jane Doe", "Doe, Jane", "JANE DOÉ") becomes its words in "first last" order,
    case-folded, without accents or punctuation: "jane doe". A name without a space is a user name
    (Hugging Face style, "janedoe42"), which only matches itself exactly, so it keeps its case and
    is marked with "@" so as never to meet a person's key.
    """
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        name = f"{first.strip()} {last.strip()}".strip()
    if " " not in name:
        return "@" + name
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", plain.casefold()))
