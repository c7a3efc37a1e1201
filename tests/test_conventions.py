"""How the tests import their helpers: by module name (tests/ is on sys.path, the checkout root need not
be, so the suite runs against the installed package), and never from another test module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_helpers_are_imported_by_module_name_and_no_test_module_imports_another() -> None:
    found = {path.name: imported_modules(path) for path in sorted(TESTS.glob("*.py"))}
    through_root = {name: sorted(m for m in modules if m == "tests" or m.startswith("tests."))
                    for name, modules in found.items()}
    assert not {name: m for name, m in through_root.items() if m}, "import helpers as `from helpers import ...`"
    test_modules = {path.stem for path in TESTS.glob("test_*.py")}
    crossing = {name: sorted({m.removeprefix("tests.") for m in modules} & test_modules)
                for name, modules in found.items()}
    assert not {name: m for name, m in crossing.items() if m}, \
        "move what test modules share into a helper module (tests/helpers.py, tests/mail_helpers.py, ...)"
