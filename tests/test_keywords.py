"""One keyword rule: a subscriber's filter and a category's keywords give the same verdict (issue 13, point 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.categories import Classifier
from newsletter.config import CategorySettings
from newsletter.ingest import parse_files
from newsletter.keywords import Keyword, KeywordIndex, any_of
from newsletter.models import Paper, summary_of
from newsletter.selection import Filter

# (keyword, text, whether the keyword occurs in the text) -- the rule as README states it.
CASES = [
    ("c++", "Code written in C++ and Python", True),
    ("c++", "a C programming language", False),
    ("c++", "C++11 features", False),  # a digit touches the match
    ("c", "Code written in C++", True),
    ("c#", "ports the model to C# code", True),
    ("c#", "a sonata in C major", False),
    (".net", "a service built on .NET", True),
    (".net", "a neural net", False),
    ("net", "a service built on .NET", True),
    ("vision-language", "Vision Language Models", True),
    ("vision-language", "vision\u2013language", True),
    ("vision language", "a vision-language model", True),
    ("language model", "large language\nmodels are wrapped", True),
    ("language model", "large language, model", True),
    ("language model", "a languagemodel", False),
    ("language model", "multilanguage model", False),
    ("language model", "language model", True),  # at the very start and end of the text
    ("language model", "language modelling", False),
    ("agent", "multi-agent systems", True),
    ("agent", "agentic workflows", False),
    ("agent", "agent\u2192tool calls", True),  # any non-word character separates, not only ASCII ones
    ("process", "two processes", True),
    ("efficien*", "Efficiency and efficient training", True),
    ("efficien*", "inefficient training", False),
    ("large lang*", "large-language models", True),
    ("rl", "the world model", False),
    ("rl", "_RL_ agents", True),
    ("gan", "an organization", False),
    ("gpt-4", "GPT-4 and GPT 4", True),
    ("gpt-4", "GPT-4o", False),
    ("!!", "really !! great", True),  # a keyword of punctuation only is matched as it is
    ("!!", "really great", False),
]


def paper(text: str) -> Paper:
    return Paper("2501.00001", title="A title", summary=text)


def classifier_finds(keyword: str, item: Paper) -> bool:
    classifier = Classifier(CategorySettings(fallback="Other", taxonomy={"Hit": [keyword], "Other": []}))
    return classifier.classify(item) == ["Hit"]


@pytest.mark.parametrize(("keyword", "text", "expected"), CASES)
def test_the_filter_and_the_classifier_give_the_rule_s_verdict(keyword: str, text: str, expected: bool) -> None:
    item = paper(text)
    assert Filter(keywords=(keyword,)).matches(item) is expected
    assert Filter(excluded=(keyword,)).matches(item) is not expected
    assert classifier_finds(keyword, item) is expected


def test_a_keyword_counts_each_hit_the_regex_finds() -> None:
    text = "c++ and C++, c++s; efficiency, efficient, inefficient; language\nmodels, language-model".casefold()
    keywords = ["c++", "efficien*", "language model"]
    index = KeywordIndex({k: [k] for k in keywords})
    expected = {k: n for k in keywords if (n := len(re.findall(Keyword.parse(k).pattern, text)))}  # type: ignore[union-attr]
    assert index.count(text) == expected == {"c++": 2, "efficien*": 2, "language model": 2}


def test_a_keyword_in_the_title_weighs_more_in_the_classifier() -> None:
    taxonomy = {"Code": ["c++"], "Web": [".net"], "Other": []}
    classifier = Classifier(CategorySettings(fallback="Other", taxonomy=taxonomy))
    item = Paper("2501.00001", title="Porting C++ kernels", summary="We use .NET and .NET Core and .net tools.")
    assert classifier.scores(item) == {"Code": 3, "Web": 3}


def test_the_same_keyword_in_both_uses_agrees_on_the_corpus(corpus_dir: Path) -> None:
    """Every paper of a seed digest, against keywords with punctuation, phrases, plurals and prefixes."""
    parsed = parse_files(sorted((corpus_dir / "seeds").glob("00[1-3]_*.txt")), Classifier(CategorySettings()))
    papers = [p for day in parsed.days for p in day.papers]
    assert len(papers) > 20
    keywords = ["c++", "llm", "language model", "vision-language", "agent", "reinforcement learn*", "3d", "rl",
                "diffusion model", "multi-modal", "text-to-image", "efficien*", "benchmark", "o1", "gpt-4"]
    for keyword in keywords:
        wanted = any_of([keyword])
        assert wanted is not None
        for item in papers:
            in_filter = Filter(keywords=(keyword,)).matches(item)
            assert in_filter is classifier_finds(keyword, item), (keyword, item.arxiv_id)
            assert in_filter is any(wanted.search(t.casefold()) for t in (item.title, summary_of(item)))
