"""The layer rules of docs/architecture.md, enforced on the source.

resp/ and cluster/ are pure: no I/O, no clock, nothing from server/ or commands/, and
cluster/ does not use resp/. commands/ may use resp/ and cluster/ but does no I/O and
reads no clock. agent/ (the server's clients) uses resp/ and cluster/ only. Nothing
imports server/.

The layers import each other as ``clusterwatch.<layer>``, the one name they install under;
nothing in the repository imports them by their folder names. No module of the package
reaches itself through its imports, ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
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


# --- import cycles -------------------------------------------------------------------------
# No module of the package may reach itself by imports, TYPE_CHECKING and function-level
# imports included: a cycle that is type-only today becomes an ImportError at start-up once
# one of its imports runs. Importing a submodule runs its parents' __init__ too, but that is
# not an edge here (a package's __init__ may import its own modules): an edge goes to the
# module an import names, or to the package whose __init__ defines the name imported.


def module_files(root: Path, layers: Iterable[str]) -> dict[str, Path]:
    """``clusterwatch.<layer>.<module>`` -> its file, for the package's own files and every
    layer's; a package is named by its ``__init__.py``."""
    files = [*(root / PACKAGE).glob("*.py"),
             *(path for layer in layers for path in (root / layer).rglob("*.py"))]
    found = {}
    for path in files:
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0] != PACKAGE:
            parts = (PACKAGE, *parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _named_module(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` is, or the longest prefix of it that is one."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def module_imports(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                named.append(submodule if submodule in modules else source)
    found = {_named_module(name, modules) for name in named}
    return {name for name in found if name is not None and name != module}


def import_graph(root: Path, layers: Iterable[str]) -> dict[str, set[str]]:
    modules = module_files(root, layers)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def _describe(cycles: list[list[str]], graph: Mapping[str, set[str]]) -> str:
    return "\n".join(
        f"{member} imports {', '.join(sorted(graph[member] & set(cycle)))}"
        for cycle in cycles for member in cycle)


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT, sorted(PROJECT))
    assert len(graph) > 90
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + _describe(cycles, graph)


def test_the_cycle_checker_sees_a_planted_cycle(tmp_path: Path) -> None:
    (tmp_path / PACKAGE).mkdir()
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    layer = tmp_path / "resp"
    (layer / "sub").mkdir(parents=True)
    files = {
        # a -> b by a relative import; b -> a under TYPE_CHECKING, by the package's name.
        "__init__.py": "from . import a\nfrom .sub import leaf\n",
        "a.py": "from .b import B\nimport json\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from clusterwatch.resp.a import A\n",
        # A package's __init__ importing its module is no cycle; the module importing a
        # name its package's __init__ defines is, even inside a function.
        "sub/__init__.py": "from .leaf import f\nVALUE = 1\n",
        "sub/leaf.py": "def f():\n    from . import VALUE\n    return VALUE\n",
        "sub/other.py": "from ..a import x\nfrom .. import b\nimport clusterwatch.resp.sub.leaf\n",
    }
    for name, text in files.items():
        (layer / name).write_text(text)
    graph = import_graph(tmp_path, ["resp"])
    assert graph["clusterwatch.resp.sub.other"] == {
        "clusterwatch.resp.a", "clusterwatch.resp.b", "clusterwatch.resp.sub.leaf"}
    assert import_cycles(graph) == [
        ["clusterwatch.resp.a", "clusterwatch.resp.b"],
        ["clusterwatch.resp.sub", "clusterwatch.resp.sub.leaf"],
    ]
    (layer / "b.py").write_text("B = 1\n")
    (layer / "sub/leaf.py").write_text("def f():\n    return 1\n")
    assert import_cycles(import_graph(tmp_path, ["resp"])) == []
