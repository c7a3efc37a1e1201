"""The wheel that `pip install .` builds holds every module and template of the source tree, so the
suite passes against an installed copy as it does against an editable one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import PROJECT_ROOT

BUILD_WHEEL = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"


def source_files() -> set[str]:
    """Every file of the package as the wheel names it: newsletter/..., and templates/ as newsletter/templates/."""
    def files(folder: Path, prefix: str) -> set[str]:
        return {f"{prefix}/{path.relative_to(folder).as_posix()}" for path in folder.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts}

    return files(PROJECT_ROOT / "newsletter", "newsletter") | files(PROJECT_ROOT / "templates", "newsletter/templates")


def test_the_wheel_holds_every_module_and_template(tmp_path: Path) -> None:
    # Built from a copy, offline, with this environment's setuptools: the checkout gets no build/ folder.
    tree = tmp_path / "tree"
    for folder in ("newsletter", "templates"):
        shutil.copytree(PROJECT_ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, tree / name)
    built = subprocess.run([sys.executable, "-c", BUILD_WHEEL, str(tmp_path / "dist")], cwd=tree,
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = tmp_path / "dist" / built.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("newsletter/")}
    missing = source_files() - shipped
    assert not missing, f"not in the wheel (add them to [tool.setuptools] in pyproject.toml): {sorted(missing)}"
    assert "newsletter/templates/digest.html" in shipped and "newsletter/templates/web/site.css" in shipped
    # Alembic finds the revisions and env.py as files beside the package, so they must ship as such.
    assert {"newsletter/store/migrations/env.py", "newsletter/store/migrations/versions/v0001_baseline.py"} <= shipped
