"""Which papers a stored subscriber gets: category sets, keywords and exclusions, on seed 002."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.categories import Classifier
from newsletter.config import CategorySettings
from newsletter.ingest import parse_files
from newsletter.models import Paper, Subscriber
from newsletter.selection import Filter
from newsletter.store import Store


@pytest.fixture(scope="module")
def seed_002(corpus_dir: Path) -> list[Paper]:
    """Seed 002 carries its own Category column, so categories here are the digest's, not a guess."""
    parsed = parse_files(sorted((corpus_dir / "seeds").glob("002_*.txt")), Classifier(CategorySettings()))
    assert not parsed.errors
    [day] = parsed.days
    assert all(p.category for p in day.papers)
    return day.papers


@pytest.fixture
def store(store_url: str) -> Store:
    with Store(store_url) as opened:
        yield opened


def words(paper: Paper) -> set[str]:
    return set(re.findall(r"[^\W_]+", f"{paper.title} {paper.summary}".casefold()))


def test_stored_category_filters_select_the_papers_of_those_categories(store: Store, seed_002: list[Paper]) -> None:
    names = sorted({c for p in seed_002 for c in p.categories})
    for name in names:
        store.add_subscriber(Subscriber(f"{name.replace(' ', '-').lower()}@example.org", categories=[name]))
    store.add_subscriber(Subscriber("everything@example.org"))
    selections = {s.email: Filter.of(s).select(seed_002) for s in store.subscribers()}

    assert selections.pop("everything@example.org") == seed_002
    assert len(selections) == len(names) > 1
    for sub in store.subscribers():
        if sub.categories:
            chosen = selections[sub.email]
            assert chosen, f"{sub.email} got nothing"
            assert all(set(sub.categories) & set(p.categories) for p in chosen)
    # every paper reaches some single-category subscriber, in digest order
    covered = {p.arxiv_id for chosen in selections.values() for p in chosen}
    assert covered == {p.arxiv_id for p in seed_002}


def test_keywords_match_whole_words_in_real_summaries(seed_002: list[Paper]) -> None:
    rl = Filter.of(Subscriber("a@example.org", keywords=["RL"]))
    chosen = rl.select(seed_002)
    assert chosen and all("rl" in words(p) for p in chosen)
    inside_longer_words = [p for p in seed_002 if "rl" in f"{p.title} {p.summary}".casefold() and "rl" not in words(p)]
    assert inside_longer_words, "seed 002 has 'rl' inside words such as 'world'"
    assert not set(map(id, inside_longer_words)) & set(map(id, chosen))


def test_excluded_keywords_drop_papers(seed_002: list[Paper]) -> None:
    everything = Filter.of(Subscriber("a@example.org"))
    no_llm = Filter.of(Subscriber("a@example.org", excluded_keywords=["LLM"]))
    kept = no_llm.select(seed_002)
    dropped = [p for p in everything.select(seed_002) if p not in kept]
    assert kept and dropped
    assert all(not {"llm", "llms"} & words(p) for p in kept)
    assert all({"llm", "llms"} & words(p) for p in dropped)


def test_an_empty_selection_means_no_email(store: Store, seed_002: list[Paper]) -> None:
    """The plan skips subscribers whose selection is empty; here is what makes it empty."""
    category = sorted({c for p in seed_002 for c in p.categories})[0]
    in_category = [p for p in seed_002 if category in p.categories]
    shared_word = sorted(set.intersection(*(words(p) for p in in_category)))[0]
    absent = "zzyzx"
    assert all(absent not in words(p) for p in seed_002)
    store.add_subscriber(Subscriber("nothing@example.org", keywords=[absent]))
    store.add_subscriber(Subscriber("all-excluded@example.org", categories=[category], excluded_keywords=[shared_word]))
    store.add_subscriber(Subscriber("some@example.org", categories=[category]))
    selections = {s.email: Filter.of(s).select(seed_002) for s in store.subscribers()}
    assert selections == {"nothing@example.org": [], "all-excluded@example.org": [], "some@example.org": in_category}


def test_equivalent_filters_share_one_rendition(store: Store) -> None:
    a = store.add_subscriber(Subscriber("a@example.org", categories=["Computer Vision", "Multi-Modal"],
                                        keywords=["Diffusion", "3D"]))
    b = store.add_subscriber(Subscriber("b@example.org", categories=["Multi-Modal", "Computer Vision"],
                                        keywords=["3d", "diffusion", " diffusion "]))
    c = store.add_subscriber(Subscriber("c@example.org", categories=["Computer Vision"], keywords=["diffusion"]))
    assert Filter.of(a) == Filter.of(b)
    assert Filter.of(a).key == Filter.of(b).key != Filter.of(c).key


def paper(title: str, summary: str = "", categories: tuple[str, ...] = ("Machine Learning",)) -> Paper:
    return Paper(arxiv_id="2501.00001", title=title, summary=summary, categories=list(categories))


@pytest.mark.parametrize(("keyword", "text", "expected"), [
    ("agent", "Autonomous agents that plan", True),       # plural
    ("benchmark", "Two new benchmarks", True),
    ("rl", "Scaling RL for reasoning", True),
    ("rl", "A world model for robots", False),           # not inside a word
    ("rl", "**RL** with verifiable rewards", True),       # Markdown bold
    ("rl", "_RL_ with verifiable rewards", True),         # Markdown italic
    ("efficien*", "An efficiency study", True),          # explicit prefix
    ("efficien", "An efficiency study", False),
    ("c++", "Compiling C++ with LLMs", True),
    ("vision-language", "A Vision-Language model", True),
    ("gan", "A new organization of layers", False),
    ("language model", "A language-model agent", True),     # a phrase's words across any non-word run
    ("language model", "Small language\nmodels", True),     # a title wrapped between the words, plural
    ("language model", "Language -- model", True),
    ("language model", "language modelling", False),
    ("language model", "languagemodel", False),
    ("large language mod*", "Large_Language_Modelling", True),
    ("vision-language", "vision language models", True),
])
def test_keyword_matching_rules(keyword: str, text: str, expected: bool) -> None:
    assert Filter.of(Subscriber("a@example.org", keywords=[keyword])).matches(paper(text)) is expected
    assert Filter.of(Subscriber("a@example.org", excluded_keywords=[keyword])).matches(paper(text)) is not expected


def test_keywords_search_the_summary_and_categories_still_apply() -> None:
    cv_paper = paper("Untitled", "We study **diffusion** models.", categories=("Computer Vision",))
    assert Filter.of(Subscriber("a@example.org", keywords=["diffusion"])).matches(cv_paper)
    assert not Filter.of(Subscriber("a@example.org", categories=["Multi-Modal"], keywords=["diffusion"])).matches(
        cv_paper)


def test_a_phrase_does_not_run_from_the_title_into_the_summary() -> None:
    filt = Filter.of(Subscriber("a@example.org", keywords=["language model"]))
    assert not filt.matches(paper("Why we study language", "Models of it fail."))
    assert filt.matches(paper("Why we study it", "Language models fail."))


@pytest.mark.parametrize("text", [
    "Large language-model agents", "language\nmodels", "language  --  model", "a language_model", "languagemodel",
    "language modelling", "Language Modeles", "model language",
])
def test_phrases_match_as_the_category_classifier_matches_them(text: str) -> None:
    """The README promises keywords behave as the classifier's: both accept any non-word run between words."""
    classifier = Classifier(CategorySettings(taxonomy={"Topic": ["language model"]}, fallback="Other"))
    by_classifier = classifier.scores(paper(text, categories=())).get("Topic", 0) > 0
    assert Filter.of(Subscriber("a@example.org", keywords=["language model"])).matches(paper(text)) is by_classifier
