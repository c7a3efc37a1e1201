"""Measure the classifier against papers labelled by hand (``newsletter categories eval``).

A labelled file is CSV with the header ``arxiv_id,primary,others,split``: the paper's arXiv id, its
primary category, the other categories that clearly apply (separated by ``;``, may be empty) and
``train`` or ``test``. The papers' text comes from digests; their own Category cells are ignored,
so the figures are the classifier's. Per category, precision and recall count every label a paper
carries against every category the classifier gives it.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.categories import Classifier
from newsletter.errors import DigestError, UsageError
from newsletter.models import Paper
from newsletter.parsing import parse_file

LABEL_COLUMNS = ("arxiv_id", "primary", "others", "split")
SPLITS = ("train", "test")
MISSING_LISTED = 10
"""Missing labelled papers named one per line; past that, a count (a wrong --digests misses them all)."""
DIGESTS_HINT = "pass --digests PATH with the folder the labels were made from"


@dataclass(frozen=True)
class Label:
    arxiv_id: str
    primary: str
    others: tuple[str, ...]
    split: str
    line: int

    @property
    def categories(self) -> tuple[str, ...]:
        return (self.primary, *self.others)


@dataclass
class CategoryFigures:
    name: str
    labelled: int = 0
    assigned: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        return self.correct / self.assigned if self.assigned else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class Evaluation:
    categories: list[str]
    papers: int = 0
    first_correct: int = 0
    figures: dict[str, CategoryFigures] = field(default_factory=dict)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    """(labelled primary, first category assigned) -> papers."""
    missing: list[Label] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.first_correct / self.papers if self.papers else None


def read_labels(path: Path, categories: Sequence[str]) -> tuple[list[Label], list[str]]:
    """The file's good rows, and one "file:line: what is wrong" per bad row (the others still count)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the labelled file: {exc}", "give a UTF-8 CSV file") from exc
    if not rows or tuple(cell.strip() for cell in rows[0]) != LABEL_COLUMNS:
        raise UsageError(
            f"{path}:1: the header must be {','.join(LABEL_COLUMNS)}",
            "see README: newsletter categories eval",
        )
    known = {name.casefold(): name for name in categories}
    labels: list[Label] = []
    problems: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        label_or_problem = _label(row, line, known)
        if isinstance(label_or_problem, Label):
            labels.append(label_or_problem)
        else:
            problems.append(f"{path}:{line}: {label_or_problem}")
    return labels, problems


def _label(row: list[str], line: int, known: dict[str, str]) -> Label | str:
    """The row as a Label, or what is wrong with it."""
    if len(row) != len(LABEL_COLUMNS):
        return f"expected {len(LABEL_COLUMNS)} cells, found {len(row)}"
    arxiv_id, primary, others, split = (cell.strip() for cell in row)
    names = [primary, *(name.strip() for name in others.split(";") if name.strip())]
    unknown = [name for name in names if name.casefold() not in known]
    if not arxiv_id:
        return "the arxiv_id is empty"
    if unknown:
        noun = "category" if len(unknown) == 1 else "categories"
        return f"unknown {noun} {', '.join(map(repr, unknown))} (not in [categories.taxonomy])"
    if split not in SPLITS:
        return f"split must be train or test, not {split!r}"
    resolved = [known[name.casefold()] for name in names]
    others_resolved = tuple(name for name in dict.fromkeys(resolved[1:]) if name != resolved[0])
    return Label(arxiv_id, resolved[0], others_resolved, split, line)


def papers_in(files: Iterable[Path]) -> tuple[dict[str, Paper], list[DigestError]]:
    """Every paper of the digest files by arXiv id (the first listing wins), and the unreadable files."""
    papers: dict[str, Paper] = {}
    errors: list[DigestError] = []
    for path in files:
        try:
            result = parse_file(path)
        except DigestError as exc:
            errors.append(exc)
            continue
        for day in result.days:
            for paper in day.papers:
                papers.setdefault(paper.arxiv_id, paper)
    return papers, errors


def evaluate(labels: Iterable[Label], papers: dict[str, Paper], classifier: Classifier) -> Evaluation:
    """Classify each labelled paper (ignoring any Category cell its digest gave) and count."""
    categories = list(classifier.settings.taxonomy)
    result = Evaluation(categories, figures={name: CategoryFigures(name) for name in categories})
    for label in labels:
        paper = papers.get(label.arxiv_id)
        if paper is None:
            result.missing.append(label)
            continue
        chosen = classifier.classify(dataclasses.replace(paper, category=None))
        result.papers += 1
        result.first_correct += chosen[0] == label.primary
        key = (label.primary, chosen[0])
        result.confusion[key] = result.confusion.get(key, 0) + 1
        for name in set(label.categories) | set(chosen):
            figures = result.figures.setdefault(name, CategoryFigures(name))
            figures.labelled += name in label.categories
            figures.assigned += name in chosen
            figures.correct += name in label.categories and name in chosen
    return result


def missing_lines(file: Path, result: Evaluation, read_from: str) -> list[str]:
    """The labelled papers none of the digests holds: one line each for a few, one summary line when
    most are missing (the digests read are not the ones the labels were made from)."""
    missing = result.missing
    if not missing:
        return []
    if len(missing) > result.papers:
        return [f"{file}: {len(missing)} of {len(missing) + result.papers} labelled papers are in none of the "
                f"digests read ({read_from}): {DIGESTS_HINT}"]
    lines = [f"{file}:{label.line}: {label.arxiv_id} is in none of the digests read"
             for label in missing[:MISSING_LISTED]]
    if len(missing) > MISSING_LISTED:
        lines.append(f"{file}: and {len(missing) - MISSING_LISTED} more labelled papers are in none of the "
                     f"digests read ({read_from})")
    return lines


def _percent(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:5.1f} %"


def _abbreviations(names: Sequence[str]) -> list[str]:
    """Column heads for the confusion matrix: initials ("Multi-Modal" -> "MM"), or numbers if they clash."""
    initials = ["".join(word[0] for word in name.replace("-", " ").split()).upper() or "?" for name in names]
    return initials if len(set(initials)) == len(initials) else [str(i + 1) for i in range(len(names))]


def format_evaluation(result: Evaluation) -> str:
    not_found = f" ({len(result.missing)} labelled ids not found)" if result.missing else ""
    lines = [f"papers: {result.papers}{not_found}"]
    lines.append(f"primary category first: {_percent(result.accuracy)} ({result.first_correct}/{result.papers})")
    width = max(len(name) for name in result.figures) if result.figures else 8
    lines.append("")
    lines.append(f"{'category':<{width}}  precision   recall  labelled  assigned")
    for figures in result.figures.values():
        lines.append(
            f"{figures.name:<{width}}  {_percent(figures.precision):>9}  {_percent(figures.recall):>7}"
            f"  {figures.labelled:8d}  {figures.assigned:8d}"
        )
    heads = _abbreviations(result.categories)
    lines.append("")
    lines.append("confusion: rows = labelled primary, columns = first category assigned")
    lines.append(f"{'':<{width}}  " + " ".join(f"{head:>4}" for head in heads))
    for name in result.categories:
        counts = " ".join(f"{result.confusion.get((name, other), 0):4d}" for other in result.categories)
        lines.append(f"{name:<{width}}  {counts}")
    lines.append("  " + ", ".join(f"{head} = {name}" for head, name in zip(heads, result.categories, strict=True)))
    return "\n".join(lines)


def evaluation_as_dict(result: Evaluation) -> dict[str, object]:
    return {
        "papers": result.papers,
        "primary_first": result.accuracy,
        "categories": {
            f.name: {"precision": f.precision, "recall": f.recall, "labelled": f.labelled, "assigned": f.assigned}
            for f in result.figures.values()
        },
        "confusion": {
            name: {other: result.confusion.get((name, other), 0) for other in result.categories}
            for name in result.categories
        },
        "missing": [label.arxiv_id for label in result.missing],
    }
