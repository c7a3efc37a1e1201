from __future__ import annotations

import datetime as dt

from newsletter.categories import Classifier
from newsletter.config import CategorySettings
from newsletter.models import Day, Paper
from newsletter.parsing import parse_file

TAXONOMY = {
    "Vision": ["image", "video", "3d"],
    "Language": ["language model", "llm", "translation"],
    "Learning": ["training", "efficien*"],
}


def classifier(**kwargs) -> Classifier:
    return Classifier(CategorySettings(fallback="Learning", taxonomy=TAXONOMY, **kwargs))


def paper(title: str, summary: str = "", category: str | None = None) -> Paper:
    return Paper(arxiv_id="2601.00001", title=title, summary=summary, category=category)


def test_the_digest_category_wins():
    assert classifier().classify(paper("Image models", category="Language")) == ["Language"]


def test_whole_words_with_plurals_and_prefixes():
    c = classifier()
    assert c.classify(paper("Videos of things")) == ["Vision"]
    assert c.classify(paper("Imagenation")) == ["Learning"]  # no whole-word match: the fallback
    assert c.classify(paper("Efficiency matters")) == ["Learning"]


def test_title_hits_outweigh_summary_hits():
    p = paper("A large language model", summary="Trained on one image and another image.")
    assert classifier().classify(p)[0] == "Language"


def test_secondary_categories_need_half_the_best_score_and_respect_the_cap():
    p = paper("LLM translation of video", summary="")
    assert classifier(max_per_paper=2).classify(p) == ["Language", "Vision"]
    assert classifier(max_per_paper=1).classify(p) == ["Language"]
    weak = paper("LLM translation of language models", summary="one image")
    assert classifier().classify(weak) == ["Language"]


def test_agreement_with_seed_002_labels_when_its_column_is_hidden(seed_files):
    """Seed 002 carries its own categories; hide them and compare.

    Measured: 17/19 best, 19/19 any (keywords gave 13/19 and 17/19)."""
    result = parse_file(seed_files[2])
    papers = [p for day in result.days for p in day.papers]
    c = Classifier(CategorySettings())
    best = among = 0
    for p in papers:
        label, p.category = p.category, None
        chosen = c.classify(p)
        best += chosen[0] == label
        among += label in chosen
    assert len(papers) == 19
    assert best / len(papers) >= 0.6
    assert among / len(papers) >= 0.8


def test_digest_categories_match_the_taxonomy_ignoring_case_and_punctuation():
    c = classifier()
    day = Day(date=dt.date(2026, 1, 5), source="d.md", papers=[
        paper("An image model", category="vision"),
        paper("An LLM for translation", category="Robotics"),
    ])
    day.papers[1].line = 7
    warnings = c.assign([day])
    assert day.papers[0].categories == ["Vision"]
    assert day.papers[1].category == "Robotics"  # the digest's own cell is kept as given
    assert day.papers[1].categories == ["Language"]  # but filters and feeds get a taxonomy name
    (warning,) = warnings
    assert (warning.file, warning.line) == ("d.md", 7) and "'Robotics' is not in" in warning.message


def test_a_phrase_whose_words_occur_apart_does_not_count():
    c = Classifier(CategorySettings(fallback="Learning", taxonomy={"Language": ["language model"], "Learning": []}))
    assert c.classify(paper("A model of language")) == ["Learning"]
    assert c.classify(paper("A language-model study")) == ["Language"]
