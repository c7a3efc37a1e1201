"""Hostile digests finish (issue 11, point 9): inputs that took time quadratic in their size, each
ingested by the real CLI into a real SQLite file under a deadline. The deadline is no benchmark
(bench/hostile.py measures against ordinary files): these sizes took minutes before the fix and
take well under a second of work after it, so the test holds on a loaded machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import write_config

DEADLINE_SECONDS = 60
LINK = "[arXiv](https://arxiv.org/abs/2501.00001)"
TABLE = ("## Papers for 2025-01-02\n\n| Title | Authors | Summary |\n|---|---|---|\n"
         "| {title} | A. Author | {summary} |\n")
CARD = ("2025-01-02 Papers\n\n1/1\nPaper 1\nA card\nPublished: 2025-01-02\nLink: http://arxiv.org/pdf/2501.00001\n"
        "{point}\nA card\nInput -> Output\nQ1\n{question}\nOption a\nOption b\nOption c\n")

HOSTILE = {
    # clean_title's trailing-joiner regex retried from every space of the run
    "title with a run of spaces": ("table.md", TABLE.format(title="A" + " " * 100_000 + "b " + LINK, summary="s")),
    # the link regexes read from every `[` to the end of the cell
    "title cell of [": ("table.md", TABLE.format(title="A " + LINK + " " + "[" * 200_000, summary="s")),
    # the classifier counted every distinct word that starts with a prefix keyword in a pass of its own
    "summary of prefix words": ("table.md", TABLE.format(
        title="A " + LINK, summary=" ".join(f"efficien{n}" for n in range(150_000)))),
    # a point line's spaces could be split between `\s+` and the label in every way
    "point line of spaces": ("cards.txt", CARD.format(point="1." + " " * 40_000 + "x", question="1. Why?")),
    # the question number was searched for anywhere in the line
    "question of digits": ("cards.txt", CARD.format(point="1. 📘 Topic: t", question="1" * 200_000 + "x")),
}


@pytest.mark.usefixtures("store_backend")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_digest_is_ingested_in_linear_time(tmp_path, name):
    file_name, text = HOSTILE[name]
    digests = tmp_path / "digests"
    digests.mkdir()
    (digests / file_name).write_text(text, encoding="utf-8")
    config = write_config(tmp_path)
    done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "ingest", "--json"],
                          capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["days"] == 1
