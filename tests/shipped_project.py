"""The README's quick start in a temporary folder: the shipped config.toml and examples/, with [smtp]
pointed at a test server (the store: the config's own SQLite file, or $NEWSLETTER_STORE_URL)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import PROJECT_ROOT, PROJECT_ROOT_CONFIG, run


def shipped_project(folder: Path, smtp_port: int = 25) -> Path:
    """Copy the shipped config and examples into ``folder``, ingest and import the example subscribers."""
    shutil.copytree(PROJECT_ROOT / "examples", folder / "examples")
    text = PROJECT_ROOT_CONFIG.read_text(encoding="utf-8")
    smtp_server = 'host = "localhost"\nport = 25\n'
    assert smtp_server in text, "the shipped [smtp] changed: update this helper"
    config = folder / "config.toml"
    config.write_text(text.replace(smtp_server, f'host = "127.0.0.1"\nport = {smtp_port}\n'), encoding="utf-8")
    assert run(config, "ingest").exit_code == 0
    assert run(config, "subscribers", "import", str(folder / "examples" / "subscribers.csv")).exit_code == 0
    return config
