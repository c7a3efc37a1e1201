"""Parse and ingest the whole corpus; print papers/s for parsing, a cold ingest and an unchanged re-ingest.

Usage: python bench/ingest.py [--runs N] [--corpus PATH]
Targets: parsing >= 50,000 papers/s; cold ingest <= 1 s; unchanged re-ingest <= 0.3 s.
Ingest times are the whole `newsletter ingest` path: parse, classify and upsert into a real SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from machine import describe

from newsletter.categories import Classifier
from newsletter.config import Settings
from newsletter.ingest import ingest_files, parse_files
from newsletter.parsing import expand_paths
from newsletter.store import Store

ROOT = Path(__file__).resolve().parent.parent


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

    parse_times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for f in files:
            parse_file(f)
        parse_times.append(time.perf_counter() - start)
    parse_s = statistics.median(parse_times)
    print(f"parse:            median {parse_s * 1000:7.1f} ms  {papers / parse_s:10,.0f} papers/s  (target >= 50,000)")

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
    print(f"cold ingest:      median {cold_s * 1000:7.1f} ms  {papers / cold_s:10,.0f} papers/s  (target <= 1000 ms)")
    print(f"re-ingest, same:  median {warm_s * 1000:7.1f} ms  {papers / warm_s:10,.0f} papers/s  (target <= 300 ms)")


if __name__ == "__main__":
    main()
