"""`newsletter parse --json` end to end over every table day of the corpus, against a minimal reference.

Usage: python bench/parse_cli.py [--runs N] [--corpus PATH]
Both are whole processes on the same files, run alternating, their output read through a pipe.
The reference (REFERENCE below) reads the files, matches one regular expression per row and
json.dumps the same fields; it classifies nothing and checks nothing. Target: the command's median
at most 1.5x the reference's. Also prints `newsletter --help` against a bare `python -c pass`
(target: within 100 ms), and where the difference goes: the same command with the category
classifier switched off (its ``assign`` replaced in that process only), against the reference.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

from newsletter.parsing import detect_format, expand_paths

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "newsletter"

REFERENCE = r'''
import json, re, sys
HEADING = re.compile(r"^#+\s*Papers for (\d{4}-\d{2}-\d{2})", re.M)
ROW = re.compile(r"^\|(?!\s*-)(?!\s*Title\s*\|)((?:[^|\n]*\|){2,}[^\n]*)$", re.M)
ARXIV = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})")
HF = re.compile(r"https://huggingface\.co/papers/[\w.]+")
days = []
for name in sys.argv[1:]:
    with open(name, encoding="utf-8") as fh:
        text = fh.read()
    heading = HEADING.search(text)
    papers = []
    for row in ROW.finditer(text):
        cells = [c.strip() for c in row.group(1).rstrip().rstrip("|").split("|")]
        found = ARXIV.search(cells[0])
        if found is None:
            continue
        arxiv_id = found.group(1)
        hf = HF.search(cells[0])
        links = {"arxiv": "https://arxiv.org/abs/" + arxiv_id, "pdf": "https://arxiv.org/pdf/" + arxiv_id}
        if hf:
            links["huggingface"] = hf.group(0)
        papers.append({"arxiv_id": arxiv_id, "title": cells[0].split(" (Read more")[0],
                       "authors": [a.strip() for a in cells[-2].split(",") if a.strip()],
                       "summary": cells[-1], "category": None, "categories": [], "links": links,
                       "published": None, "points": [], "quiz": []})
    days.append({"date": heading.group(1) if heading else None, "source": name, "note": "",
                 "note_translations": {}, "papers": papers})
print(json.dumps({"days": days}, ensure_ascii=False, indent=2))
'''


# `newsletter parse --json FILES` with papers left unclassified: what parsing, checking and writing cost.
UNCLASSIFIED = (
    "import sys; from newsletter.categories import Classifier; Classifier.assign = lambda self, days: []; "
    "from newsletter.cli import main; sys.argv = ['newsletter', 'parse', '--json', *sys.argv[1:]]; main()"
)


def table_days(corpus: Path) -> list[str]:
    files = expand_paths([str(corpus)])
    return [str(f) for f in files if detect_format(f.read_text(encoding="utf-8", errors="replace")) == "table"]


def compile_package() -> str:
    """Write the package's .pyc files, as `pip install` does for an installed package. The warm-up
    run writes them too, unless PYTHONDONTWRITEBYTECODE is set (it is on some machines): then an
    editable install would compile all its sources again in every timed run."""
    compileall.compile_dir(ROOT / "newsletter", quiet=1)
    return "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "not set"


def timed(command: list[str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start, done.stdout


def compare(runs: int, a: list[str], b: list[str]) -> tuple[float, float, float, bytes, bytes]:
    """(median A, median B, median of the pairwise ratios A/B, A's output, B's output), alternating."""
    timed(a), timed(b)  # warm-up: page cache, .pyc files
    times_a, times_b, ratios = [], [], []
    out_a = out_b = b""
    for _ in range(runs):
        seconds_a, out_a = timed(a)
        seconds_b, out_b = timed(b)
        times_a.append(seconds_a)
        times_b.append(seconds_b)
        ratios.append(seconds_a / seconds_b)
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios), out_a, out_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    files = table_days(args.corpus)
    print(describe())
    print(f"package bytecode compiled before timing (PYTHONDONTWRITEBYTECODE {compile_package()})")
    command = [str(COMMAND), "parse", "--json", *files]
    reference = [sys.executable, "-c", REFERENCE, *files]
    cli_s, ref_s, ratio, cli_out, ref_out = compare(args.runs, command, reference)
    print(f"{len(files)} table days; output {len(cli_out) / 1e6:.1f} MB (reference {len(ref_out) / 1e6:.1f} MB)")
    print(f"newsletter parse --json: median {cli_s * 1000:6.0f} ms")
    print(f"reference:               median {ref_s * 1000:6.0f} ms")
    print(f"ratio (median of pairs): {ratio:.2f}x  (target <= 1.5x)")
    bare_s, ref_s, bare_ratio, _, _ = compare(args.runs, [sys.executable, "-c", UNCLASSIFIED, *files], reference)
    print(f"without classifying:     median {bare_s * 1000:6.0f} ms against {ref_s * 1000:.0f} ms: {bare_ratio:.2f}x")
    help_s, bare_s, _, _, _ = compare(args.runs, [str(COMMAND), "--help"], [sys.executable, "-c", "pass"])
    print(f"\nnewsletter --help: median {help_s * 1000:.0f} ms; python -c pass: median {bare_s * 1000:.0f} ms; "
          f"difference {(help_s - bare_s) * 1000:.0f} ms  (target <= 100 ms)")


if __name__ == "__main__":
    main()
