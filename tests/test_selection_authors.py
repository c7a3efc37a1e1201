"""Followed authors in the one selection: how names match, how they combine with topics, and the reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.categories import Classifier
from newsletter.config import CategorySettings
from newsletter.ingest import parse_files
from newsletter.models import Paper, Subscriber
from newsletter.selection import Filter, author_key, followed_authors


def paper(authors: list[str], *, title: str = "A paper", summary: str = "", categories: tuple[str, ...] = ("Robotics",)
          ) -> Paper:
    return Paper("2601.00001", title, authors=authors, summary=summary, categories=list(categories))


@pytest.mark.parametrize(("followed", "written"), [
    ("Jane Doe", "jane doe"),
    ("Jane Doe", "Doe, Jane"),
    ("Doe, Jane", "Jane Doe"),
    ("José Álvarez-Núñez", "Jose Alvarez Nunez"),
    ("ZOË  Brontë", "Bronte, Zoe"),
    ("Jane Doe", " Jane\tDoe "),
])
def test_spellings_of_one_person_match(followed: str, written: str) -> None:
    assert Filter(authors=(followed,)).followed_in(paper(["Someone Else", written])) == [written]


@pytest.mark.parametrize(("followed", "written"), [
    ("Jane Doe", "John Doe"),
    ("Jane Doe", "Jane Doe-Smith"),
    ("Jane Doe", "Doe Jane Junior"),
    ("janedoe", "JaneDoe"),  # a user name matches only itself
    ("janedoe", "jane doe"),
    ("jane doe", "janedoe"),
    ("akhaliq", "Akhaliq A"),
])
def test_other_names_do_not_match(followed: str, written: str) -> None:
    assert Filter(authors=(followed,)).followed_in(paper([written])) == []


def test_a_user_name_matches_exactly() -> None:
    assert Filter(authors=("akhaliq",)).followed_in(paper(["Jane Doe", "akhaliq"])) == ["akhaliq"]
    assert author_key("akhaliq") != author_key("Akhaliq")


def test_a_followed_author_wins_over_categories_keywords_and_exclusions() -> None:
    filt = Filter(categories=frozenset({"Computer Vision"}), keywords=("diffusion",), excluded=("survey",),
                  authors=("Jane Doe",))
    by_her = paper(["Doe, Jane"], title="A survey of robots", categories=("Robotics",))
    assert not filt.matches_topic(by_her)
    assert filt.matches(by_her)
    assert filt.reasons(by_her) == ["author Doe, Jane"]
    unrelated = paper(["John Roe"], title="A survey of robots")
    assert not filt.matches(unrelated)
    assert filt.reasons(unrelated) == []


def test_reasons_name_category_keyword_place_and_author() -> None:
    filt = Filter(categories=frozenset({"Computer Vision"}), keywords=("diffusion", "video"), authors=("Jane Doe",))
    both = paper(["Jane Doe", "John Roe"], title="Video diffusion", summary="We train.",
                 categories=("Computer Vision", "Multi-Modal"))
    assert filt.reasons(both) == ["category Computer Vision", "keyword diffusion in the title",
                                  "keyword video in the title", "author Jane Doe"]
    in_summary = paper(["John Roe"], title="Frames", summary="A diffusion model.", categories=("Computer Vision",))
    assert filt.reasons(in_summary) == ["category Computer Vision", "keyword diffusion in the summary"]
    # Without categories in the filter every category is wanted: a paper's own categories would read as a filter.
    everything = Filter()
    assert everything.reasons(paper([], categories=("Robotics", "Multi-Modal"))) == ["all categories"]
    by_keyword = Filter(keywords=("diffusion",))
    assert by_keyword.reasons(in_summary) == ["all categories", "keyword diffusion in the summary"]


def test_authors_are_part_of_the_filter_key_whatever_the_spelling() -> None:
    one = Filter.of(Subscriber("a@example.org", authors=["Jane Doe", "doe, jane", "akhaliq"]))
    other = Filter.of(Subscriber("b@example.org", authors=["DOE, Jane", "akhaliq"]))
    assert one.authors == ("Jane Doe", "akhaliq")
    assert one == other and hash(one) == hash(other)
    assert one.key == other.key and "by=" in one.key
    assert one != Filter()
    assert Filter.of(Subscriber("c@example.org")).key == "all"
    assert followed_authors(["  Jane   Doe ", "", "Doe, Jane"]) == ("Jane Doe",)
    assert "Jane Doe" in one.describe()


def test_followed_corpus_authors_are_found_on_their_papers(corpus_dir: Path) -> None:
    """Seed 002 lists Hugging Face user names: followed as written they match, changed in case they do not."""
    parsed = parse_files(sorted((corpus_dir / "seeds").glob("002_*.txt")), Classifier(CategorySettings()))
    papers = [p for day in parsed.days for p in day.papers]
    handles = [a for p in papers for a in p.authors if " " not in a and a.upper() != a]
    assert handles, "seed 002 lists user names"
    target = handles[0]
    outside = Filter(categories=frozenset({"No Such Category"}), authors=(target,))
    chosen = outside.select(papers)
    assert chosen and all(target in p.authors for p in chosen)
    assert outside.reasons(chosen[0]) == [f"author {target}"]
    assert Filter(categories=frozenset({"No Such Category"}), authors=(target.upper(),)).select(papers) == []
