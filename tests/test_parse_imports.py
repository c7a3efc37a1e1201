"""`newsletter parse` is the command people run by hand: it must not load the store, web or email code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cards_pages_2026 import make_card, page_html

HEAVY = ("sqlalchemy", "flask", "waitress", "jinja2", "premailer", "feedgen", "lxml", "apscheduler",
         "newsletter.store", "newsletter.web", "newsletter.render", "newsletter.dispatch", "newsletter.feeds",
         # the mail address checker, and what parsing needs no more than they: each cost `parse` 5-40 ms
         "email_validator", "email", "hashlib", "importlib.resources")
PROBE = """
import atexit, json, sys
atexit.register(lambda: sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["newsletter", *sys.argv[1:]]
from newsletter.cli import main
main()
"""


def loaded_modules(*args: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    line = next(line for line in run.stderr.splitlines() if line.startswith("MODULES "))
    return json.loads(line.removeprefix("MODULES "))


def test_parse_imports_neither_store_nor_web_nor_email(tmp_path: Path) -> None:
    page = tmp_path / "day.html"
    page.write_text(page_html("2031-07-01", [make_card(1)]), encoding="utf-8")
    modules = loaded_modules("parse", "--json", str(page))
    assert "newsletter.parsing.cards_html" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


def test_parse_of_tables_leaves_the_cards_parsers_unimported(tmp_path: Path) -> None:
    day = tmp_path / "day.md"
    day.write_text("## Papers for 2031-07-01\n\n| Title | Authors | Summary |\n|---|---|---|\n"
                   "| A paper (https://arxiv.org/abs/3107.00001) | Ada | About it. |\n", encoding="utf-8")
    modules = loaded_modules("parse", "--json", str(day))
    assert "newsletter.parsing.table" in modules
    assert "newsletter.parsing.cards" not in modules and "newsletter.parsing.cards_html" not in modules


def test_help_loads_no_config_or_metadata() -> None:
    modules = loaded_modules("--help")
    assert "newsletter.config" not in modules and "importlib.metadata" not in modules


def test_parse_json_puts_each_paper_on_a_line_of_its_own_with_the_same_data(corpus_dir: Path, tmp_path: Path) -> None:
    from newsletter.categories import Classifier
    from newsletter.config import CategorySettings
    from newsletter.ingest import parse_files
    from newsletter.models import day_as_dict
    from newsletter.parsing import expand_paths

    files = [str(path) for path in expand_paths([str(corpus_dir / "seeds")])][:3]
    # Run from a folder without config.toml and with no config named: the built-in settings, as
    # CategorySettings() below (a config named by --config or the variable must exist).
    env = {name: value for name, value in os.environ.items() if name != "NEWSLETTER_CONFIG"}
    run = subprocess.run([sys.executable, "-m", "newsletter", "parse", "--json", *files],
                         capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    parsed = parse_files(expand_paths(files), Classifier(CategorySettings()))
    days = parsed.days
    assert json.loads(run.stdout) == {"days": [day_as_dict(day) for day in days], "warnings": [
        {"file": w.file, "line": w.line, "message": w.message} for w in parsed.warnings]}
    paper_lines = [line for line in run.stdout.splitlines() if line.startswith('        {"arxiv_id": ')]
    assert [json.loads(line.rstrip(","))["arxiv_id"] for line in paper_lines] == [
        paper.arxiv_id for day in days for paper in day.papers]
    assert run.stdout.startswith('{\n  "days": [\n    {\n      "date": ')
