"""The import layers in pyproject.toml ([tool.importlinter]) hold: a back edge fails the build."""

from __future__ import annotations

import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import newsletter

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(config_dir: Path, python_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.skip(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e '.[test]')")
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config_dir / "pyproject.toml"), "--no-cache"],
                          cwd=config_dir, env=env, capture_output=True, text=True, check=False)


def test_imports_go_one_way_and_only_the_owners_import_their_libraries() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_every_module_has_its_place_in_the_layers() -> None:
    """A module left out of the layers contract would escape it: a new module must be placed."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c["layers"] for c in contracts["contracts"] if c["type"] == "layers")
    placed = {name for layer in layers for name in re.split(r"\s*[|:]\s*", layer)}
    modules = {f"newsletter.{m.name}" for m in pkgutil.iter_modules(newsletter.__path__)
               if m.name not in ("__main__", "templates")}
    assert modules - placed == set()
    assert placed - modules == set()


@pytest.mark.parametrize(("module", "back_edge", "contract"), [
    ("config.py", "from newsletter import publish", "Imports go one way"),
    ("dispatch/delivery.py", "import sqlalchemy", "Only newsletter.store talks SQL"),
    ("web/state.py", "import jinja2", "Only newsletter.render touches Jinja2"),
    ("dispatch/mail.py", "from newsletter.dispatch import outbox", "No import cycles"),
    ("web/subscribing.py", "import smtplib", "The web package builds no email"),
])
def test_a_back_edge_breaks_the_contracts(tmp_path: Path, module: str, back_edge: str, contract: str) -> None:
    """The same contracts, run over a copy of the package with one forbidden import added."""
    copy = tmp_path / "newsletter"
    shutil.copytree(Path(newsletter.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{back_edge}  # noqa\n", encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    run = lint_imports(tmp_path, python_path=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, run.stdout
