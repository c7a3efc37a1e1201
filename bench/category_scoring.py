"""Score the corpus with this tree's category model and with another revision's, alternately.

Usage: python bench/category_scoring.py [--against REV] [--runs N] [--corpus PATH]

Both revisions' ``newsletter/category_model.py`` read this tree's weights and score the same terms
(``paper_terms`` is timed by bench/ingest.py), so the figures compare scoring alone; the runs
alternate, so both see the same load. Checks first that both choose the same categories for every
paper. Prints each median and the median of the per-run ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from machine import describe

from newsletter.categories import paper_terms
from newsletter.category_model import MODEL_RESOURCE
from newsletter.parsing import expand_paths, parse_file

ROOT = Path(__file__).resolve().parent.parent
MODULE = "newsletter/category_model.py"


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with (default HEAD~1)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()

    source = subprocess.run(["git", "show", f"{args.against}:{MODULE}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    weights = json.loads((ROOT / "newsletter" / MODEL_RESOURCE).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "category_model.py").write_text(source, encoding="utf-8")
        other = load(Path(tmp) / "category_model.py", "other_category_model").CategoryModel.from_json(weights)
    this = load(ROOT / MODULE, "this_category_model").CategoryModel.from_json(weights)

    files = expand_paths([str(args.corpus / "seeds"), str(args.corpus / "daily-ai-papers")])
    terms = [paper_terms(paper) for f in files for day in parse_file(f).days for paper in day.papers]
    assert [this.choose(t) for t in terms] == [other.choose(t) for t in terms], "the two choose differently"
    print(describe())
    times: dict[str, list[float]] = {"this tree": [], args.against: []}
    for _ in range(args.runs):
        for label, model in (("this tree", this), (args.against, other)):
            start = time.perf_counter()
            for words in terms:
                model.choose(words)
            times[label].append(time.perf_counter() - start)
    for label, runs in times.items():
        print(f"scoring {len(terms)} papers, {label + ':':<12} median {statistics.median(runs) * 1000:6.1f} ms")
    ratio = statistics.median(a / b for a, b in zip(times["this tree"], times[args.against], strict=True))
    print(f"this tree / {args.against}: {ratio:.2f} (median of per-run ratios)")


if __name__ == "__main__":
    main()
