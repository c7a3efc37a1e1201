"""Parse and ingest the whole corpus; print papers/s for parsing, a cold ingest and an unchanged re-ingest.

Usage: python bench/ingest.py [--runs N] [--corpus PATH]
Targets: parsing >= 50,000 papers/s; classifying adds <= 20 % to parsing; cold ingest <= 1 s;
unchanged re-ingest <= 0.3 s. Classifying is timed alternately with parsing, for the shipped model
and for keywords (the same five categories renamed, as an operator's own taxonomy would be), and so
is splitting every paper into the words the model reads, and the least any classifier that reads
the summaries pays: ``str.split`` of each paper's title and summary, already in memory.
Ingest times are the whole `newsletter ingest` path: parse, classify and upsert into a real SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from machine import describe

from newsletter.categories import Classifier, paper_terms
from newsletter.config import CategorySettings, Settings
from newsletter.ingest import ingest_files, parse_files
from newsletter.models import summary_of
from newsletter.parsing import expand_paths
from newsletter.store import Store

ROOT = Path(__file__).resolve().parent.parent


def figure(label: str, seconds: float, papers: int, note: str) -> str:
    """One aligned line: the median time, the papers per second and what it is measured against."""
    return f"{label + ':':<21}median {seconds * 1000:7.1f} ms  {papers / seconds:10,.0f} papers/s  ({note})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()

    files = expand_paths([str(args.corpus / "seeds"), str(args.corpus / "daily-ai-papers")])
    settings = Settings(path=ROOT / "config.toml")
    classifier = Classifier(settings.categories)
    papers = sum(len(d.papers) for d in parse_files(files, classifier).days)
    texts = [f.read_text(encoding="utf-8") for f in files]  # warm the page cache
    print(describe())
    print(f"corpus: {len(files)} files, {papers} papers, {sum(map(len, texts)) / 1e6:.1f} MB")

    from newsletter.parsing import parse_file

    renamed = {f"{name} (own)": keywords for name, keywords in settings.categories.taxonomy.items()}
    keywords = Classifier(CategorySettings(fallback=f"{settings.categories.fallback} (own)", taxonomy=renamed))
    assert classifier.model is not None and keywords.model is None
    parse_times: list[float] = []
    model_times: list[float] = []
    keyword_times: list[float] = []
    word_times: list[float] = []
    split_times: list[float] = []
    for _ in range(args.runs):
        start = time.perf_counter()
        results = [parse_file(f) for f in files]
        parse_times.append(time.perf_counter() - start)
        days = [day for result in results for day in result.days]
        texts = [f"{paper.title} {summary_of(paper)}" for day in days for paper in day.papers]
        start = time.perf_counter()
        for text in texts:
            text.split()
        split_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for day in days:
            for paper in day.papers:
                paper_terms(paper)
        word_times.append(time.perf_counter() - start)
        for chosen, times in ((classifier, model_times), (keywords, keyword_times)):
            start = time.perf_counter()
            chosen.assign(days)
            times.append(time.perf_counter() - start)
    parse_s = statistics.median(parse_times)
    print(figure("parse", parse_s, papers, "target >= 50,000"))
    for label, times, note in (("classify, model", model_times, "target <= 20 %"),
                               ("classify, keywords", keyword_times, "target <= 20 %"),
                               ("split into terms", word_times, "part of classifying by the model"),
                               ("str.split alone", split_times, "the least any reader of summaries pays")):
        s = statistics.median(times)
        print(figure(label, s, papers, f"+{s / parse_s * 100:.0f} % of parsing; {note}"))

    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/bench.db")
            start = time.perf_counter()
            report = ingest_files(settings, store, files)
            cold.append(time.perf_counter() - start)
            assert report.counts.new > 0
            start = time.perf_counter()
            again = ingest_files(settings, store, files)
            warm.append(time.perf_counter() - start)
            assert again.counts.new == again.counts.updated == 0
            store.close()
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(figure("cold ingest", cold_s, papers, "target <= 1000 ms"))
    print(figure("re-ingest, same", warm_s, papers, "target <= 300 ms"))


if __name__ == "__main__":
    main()
