"""`newsletter parse` is the command people run by hand: it must not load the store, web or email code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cards_pages_2026 import make_card, page_html

HEAVY = ("sqlalchemy", "flask", "waitress", "jinja2", "premailer", "feedgen", "lxml", "apscheduler",
         "newsletter.store", "newsletter.web", "newsletter.render", "newsletter.dispatch", "newsletter.feeds")
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


def test_help_loads_no_config_or_metadata() -> None:
    modules = loaded_modules("--help")
    assert "newsletter.config" not in modules and "importlib.metadata" not in modules
