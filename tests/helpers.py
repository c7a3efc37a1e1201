"""Small builders shared by tests: config files written into tmp_path and the CLI run for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from newsletter.cli import cli

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_ROOT_CONFIG = PROJECT_ROOT / "config.toml"


def write_config(folder: Path, extra: str = "", digests: str = '["digests"]',
                 store_url: str = "sqlite:///var/test.db") -> Path:
    """A config in ``folder`` whose store (unless ``store_url`` names a server), feeds and outbox live there too."""
    path = folder / "config.toml"
    path.write_text(
        f"""
[site]
title = "Test Papers"
base_url = "https://papers.example.org"

[digests]
paths = {digests}

[store]
url = "{store_url}"

[feeds]
dir = "feeds"

[email]
from = "Test Papers <papers@example.org>"
outbox = "outbox"
{extra}
""",
        encoding="utf-8",
    )
    return path


def run(config: Path | None, *args: str, **kwargs: Any) -> Result:
    prefix = ["--config", str(config)] if config is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False, **kwargs)


def run_json(config: Path | None, *args: str) -> Any:
    result = run(config, *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


TABLE_DAY = """## Papers for {date}

| Title | Authors | Summary |
|-------|---------|---------|
{rows}
"""


def row(arxiv_id: str, title: str, summary: str, authors: str = "A. Author, B. Author") -> str:
    links = f"[arXiv](https://arxiv.org/abs/{arxiv_id}) or [HuggingFace](https://huggingface.co/papers/{arxiv_id})"
    return f"| {title} (Read more on {links})| {authors} | {summary} |"


def write_day(folder: Path, name: str, date: str, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(TABLE_DAY.format(date=date, rows="\n".join(rows)), encoding="utf-8")
    return path
