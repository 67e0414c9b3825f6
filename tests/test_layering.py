"""The dependency direction docs/architecture.md describes, checked on the source and at import
time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Package (a folder) -> module prefixes no file in it may import.
FORBIDDEN = {
    "services": ("textual", "rich", "tui", "widgets"),
    "widgets": ("azure", "services", "tui"),
    "services/domain": ("services.azure", "services.standin", "services.settings", "azure",
                        "aiohttp", "duckdb", "duckdb_kql", "sqlite3", "trustme"),
    "services/standin": ("services.azure", "services.settings"),
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not_know(package: str) -> None:
    offenders = []
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no Python files: the check would pass vacuously"
    for path in files:
        bad = {m for m in _imported_modules(path)
               if any(_matches(m, prefix) for prefix in FORBIDDEN[package])}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c",
         "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["window", "--start", "2026-01-01T15:00:00Z", "--at", "2026-01-01T14:30:00Z", "--json"],
        ["schedule", "next", "--start", "2026-01-01 15:00", "--tz", "UTC", "--recur", "Day",
         "--after", "2026-01-02T00:00:00Z", "--count", "1", "--json"],
    ],
    ids=["help", "window", "schedule-next"],
)
def test_scriptable_commands_do_not_import_textual_or_azure(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from tui.cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "print('RC', rc, file=sys.stderr)\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('textual', 'azure', 'rich'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "RC 0" in result.stderr, result.stderr
    assert "HEAVY []" in result.stderr, result.stderr
