"""Shared fixtures. The real digest corpus lives beside the project, never inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = PROJECT_ROOT.parent / "shared" / "corpus"


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
