"""The layer rules of docs/architecture.md, enforced on the source.

resp/ and cluster/ are pure: no I/O, no clock, nothing from server/ or commands/, and
cluster/ does not use resp/. commands/ may use resp/ and cluster/ but does no I/O and
reads no clock. agent/ (the server's clients) uses resp/ and cluster/ only. Nothing
imports server/.

The layers import each other as ``clusterwatch.<layer>``, the one name they install under;
nothing in the repository imports them by their folder names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "clusterwatch"
PROJECT = {"resp", "cluster", "commands", "server", "agent"}
IO_AND_CLOCK = {"asyncio", "socket", "selectors", "threading", "subprocess", "time",
                "datetime", "uvloop", "signal", "multiprocessing", "ssl", "http", "urllib"}

RULES: dict[str, tuple[set[str], set[str]]] = {
    # package: (project packages it may import, third-party/stdlib modules it may not)
    "resp": (set(), IO_AND_CLOCK),
    "cluster": (set(), IO_AND_CLOCK),
    "commands": ({"resp", "cluster"}, IO_AND_CLOCK),
    "server": ({"resp", "cluster", "commands", "agent"}, set()),
    "agent": ({"resp", "cluster"}, set()),
}


def _absolute_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def imported_modules(path: Path) -> set[str]:
    """The top-level modules a file imports, a layer of ours by its own name
    (``clusterwatch.server.app`` is ``server``)."""
    names: set[str] = set()
    for name in _absolute_imports(path):
        parts = name.split(".")
        names.add(parts[1] if parts[0] == PACKAGE and len(parts) > 1 else parts[0])
    return names


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_layer_imports(package: str) -> None:
    allowed_project, forbidden = RULES[package]
    files = package_files(package)
    assert files, f"no sources found for {package}"
    violations = []
    for path in files:
        for name in imported_modules(path):
            if name in PROJECT and name != package and name not in allowed_project:
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
            if name in forbidden:
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "\n".join(violations)


def old_names(path: Path) -> list[str]:
    """Imports of a layer by its folder name (``from server.app import``)."""
    return [name for name in _absolute_imports(path) if name.split(".")[0] in PROJECT]


def test_nothing_imports_a_layer_by_its_folder_name() -> None:
    sources = [path for path in ROOT.rglob("*.py")
               if not {".venv", ".git", "build", PACKAGE}.intersection(
                   path.relative_to(ROOT).parts[:1])]
    assert len(sources) > 200
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sources
             for name in old_names(path)]
    assert not found, "\n".join(found)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom clusterwatch.server.app import Server\n"
                   "from .x import y\nimport clusterwatch\n")
    assert imported_modules(bad) == {"asyncio", "server", "clusterwatch"}
    old = tmp_path / "old.py"
    old.write_text("from server.app import Server\nimport resp\nfrom serverless import x\n")
    assert old_names(old) == ["server.app", "resp"]
