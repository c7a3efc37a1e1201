"""Time `newsletter feeds`: every feed (Atom + RSS + index.html) from the whole corpus and from the default window.

The corpus is ingested once into a temporary SQLite store (not timed). Then, alternating the two
windows, each run times:

- render: reading the days from the store and producing every file's bytes (`render_feeds`);
- build:  the same plus comparing with the files on disk and writing nothing (a rebuild with
  nothing new, the daily case);

and once each, the first build into an empty folder (writes and fsyncs every file). Wall-clock
medians; CPU time beside them, since the machine's other load inflates wall time.

    .venv/bin/python bench/feeds.py [RUNS] [CORPUS_DIR]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe

from newsletter.config import Settings, settings_from_dict
from newsletter.feeds import build_feeds, render_feeds
from newsletter.ingest import ingest_files
from newsletter.parsing import expand_paths
from newsletter.store import Store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET_SECONDS = 0.5


def timed(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def settings_for(folder: Path, window_days: int) -> Settings:
    return settings_from_dict(
        {"store": {"url": "sqlite:///store.db"}, "feeds": {"dir": f"feeds-{window_days}", "window_days": window_days}},
        folder / "config.toml",
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    corpus = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_CORPUS
    if not corpus.is_dir():
        sys.exit(f"no corpus at {corpus}; pass its folder as the second argument")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {"whole corpus (window_days = 0)": settings_for(folder, 0),
                 "default window (window_days = 30)": settings_for(folder, 30)}
        with Store.from_settings(next(iter(cases.values()))) as store:
            start = time.perf_counter()
            report = ingest_files(next(iter(cases.values())), store, expand_paths([str(corpus)]))
            print(f"ingested {report.counts.new} papers over {report.counts.days} days "
                  f"in {time.perf_counter() - start:.1f} s (not timed below)")
            samples: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in cases}
            for name, settings in cases.items():
                first = timed(lambda settings=settings: build_feeds(settings, store))
                samples[name]["first build (writes)"] = [first]
            for _ in range(runs):
                for name, settings in cases.items():
                    samples[name].setdefault("render", []).append(
                        timed(lambda settings=settings: render_feeds(settings, store)))
                    samples[name].setdefault("rebuild, nothing new", []).append(
                        timed(lambda settings=settings: build_feeds(settings, store)))
            for name, settings in cases.items():
                outputs, feed_report = render_feeds(settings, store)
                size = sum(len(data) for data in outputs.values())
                print(f"\n{name}: {feed_report.papers} papers, {feed_report.days} days, "
                      f"{len(outputs)} files, {size / 1e6:.1f} MB")
                for label, values in samples[name].items():
                    wall = statistics.median(v[0] for v in values)
                    cpu = statistics.median(v[1] for v in values)
                    print(f"  {label:<22} median {wall:.3f} s wall, {cpu:.3f} s CPU over {len(values)} run(s)")
            print(f"\ntarget: all feeds over the whole corpus in {TARGET_SECONDS} s or less")
            print(describe())


if __name__ == "__main__":
    main()
