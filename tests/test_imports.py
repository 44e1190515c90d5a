"""The package's import graph: dependencies point one way (no cycles), and a module imports
another of the package inside a function only in the command line (start-up time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "autoencoders"
#: modules allowed to import package modules inside functions: the CLI imports what a
#: subcommand needs only when it runs, so `autoencoders --help` starts fast
LAZY_OK = {"autoencoders.cli", "autoencoders.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import of a package module
    in ``path``, function-local ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    local_lines = {n.lineno for f in ast.walk(tree)
                   if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                   for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)}
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(base[:len(base) - node.level + 1])
                mod = f"{prefix}.{node.module}" if node.module else prefix
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod
                       for a in node.names]
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a function: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.append((t, node.lineno, node.lineno in local_lines))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {n: {t for t, _, _ in imports(n, p, known)} for n, p in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_find_cycle_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_parser_sees_relative_absolute_and_function_local_imports(tmp_path):
    known = {"autoencoders", "autoencoders.data", "autoencoders.data.load",
             "autoencoders.errors", "autoencoders.models", "autoencoders.models.base"}
    src = tmp_path / "x.py"
    src.write_text("from . import load\nfrom ..errors import ConfigError\n"
                   "import autoencoders.models.base\n"
                   "def f():\n    from autoencoders.models import get\n")
    found = imports("autoencoders.data.x", src, known)
    assert ("autoencoders.data.load", 1, False) in found
    assert ("autoencoders.errors", 2, False) in found
    assert ("autoencoders.models.base", 3, False) in found
    assert ("autoencoders.models", 5, True) in found


def test_package_modules_import_each_other_without_cycles():
    edges = graph()
    assert "autoencoders.registry" in edges and edges["autoencoders.registry"]
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(set(modules()) - LAZY_OK))
def test_no_function_local_imports_of_package_modules(name):
    """Function-local imports are for optional heavy dependencies (matplotlib, sklearn,
    ...), never a way around a cycle between the package's own modules."""
    mods = modules()
    local = [(t, line) for t, line, inside in imports(name, mods[name], set(mods)) if inside]
    assert not local, f"{name} imports {local} inside functions"


def test_dependencies_point_one_way():
    """The layers of docs/ARCHITECTURE.md: models know nothing of training, evaluation,
    figures or configs; the trainer knows nothing of evaluation or figures."""
    edges = graph()

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            n = todo.pop()
            if n == b:
                return True
            if n not in seen:
                seen.add(n)
                todo += edges.get(n, ())
        return False

    for model_module in [n for n in edges if n.startswith("autoencoders.models")]:
        for upper in ("config", "train", "pipeline", "plots", "report", "evaluation",
                      "registry", "runs"):
            assert not reaches(model_module, f"autoencoders.{upper}"), (model_module, upper)
    for upper in ("evaluation", "plots", "report", "pipeline", "evaluation.features"):
        assert not reaches("autoencoders.train", f"autoencoders.{upper}"), upper
    assert not reaches("autoencoders.config", "autoencoders.plots")
    assert not reaches("autoencoders.data", "autoencoders.train")
