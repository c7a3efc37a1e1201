"""Shared fixtures. The real digest corpus lives beside the project, never inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = PROJECT_ROOT.parent / "shared" / "corpus"

# Speed is measured in bench/, not in tests: no per-example deadline, which a busy 2-core machine can
# overrun. With CI set (.ci/run sets it) each test's examples are fixed, so a run is repeatable;
# elsewhere they vary from run to run and keep looking for new failures.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", settings.get_profile("local"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"the digest corpus is not at {CORPUS_DIR}; clone the project beside ../shared to run this")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def seed_files(corpus_dir: Path) -> list[Path]:
    return sorted((corpus_dir / "seeds").glob("*.txt"))


@pytest.fixture(scope="session")
def daily_files(corpus_dir: Path) -> list[Path]:
    return sorted((corpus_dir / "daily-ai-papers").rglob("*.md"))
