"""The layer rules of docs/architecture.md, enforced on the source.

resp/ and cluster/ are pure: no I/O, no clock, nothing from server/ or commands/, and
cluster/ does not use resp/. commands/ may use resp/ and cluster/ but does no I/O and
reads no clock. agent/ (the server's clients) uses resp/ and cluster/ only. Nothing
imports server/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
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


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom server.app import Server\nfrom .x import y\n")
    assert imported_modules(bad) == {"asyncio", "server"}
