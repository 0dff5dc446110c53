"""The product's import graph, read from the source with ast: what the layer rules are checked on.

    python -m tests.imports [ROOT]    # modules, imports and cycles of the tree at ROOT

Every import counts, at module level or inside a function or ``if TYPE_CHECKING``: a lazy
import still ties one module's meaning to another's.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The packages of the product, the simulation and the command.
PACKAGES = ("controller", "hardware", "web", "voice", "i18n", "clinic", "sim", "cli")


def module_name(root: Path, path: Path) -> str:
    """``controller/safety/core.py`` → ``controller.safety.core`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def imported_names(path: Path, name: str) -> set[str]:
    """Every dotted name ``path`` imports, relative imports resolved, ``from m import x`` as m.x and m."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")
                parent = parent[:len(parent) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """module → the modules of the product it imports (a package's import names its __init__)."""
    mods = modules(root)
    graph = {}
    for name, path in mods.items():
        graph[name] = {target for target in imported_names(path, name) if target in mods and target != name}
    return graph


def package_graph(graph: dict[str, set[str]], depth: int = 1) -> dict[str, set[str]]:
    """The graph with each module folded into its package ``depth`` levels deep (1: the top packages)."""
    def fold(name: str) -> str:
        return ".".join(name.split(".")[:depth])
    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        out.setdefault(fold(source), set()).update(fold(t) for t in targets if fold(t) != fold(source))
    return out


def external_imports(root: Path = REPO) -> dict[str, set[str]]:
    """module → every name it imports, the product's own and everything else."""
    return {name: imported_names(path, name) for name, path in modules(root).items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO
    graph = import_graph(root)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports")
    for label, g in (("modules", graph), ("top packages", package_graph(graph, 1)),
                     ("sub-packages", package_graph(graph, 2))):
        found = cycles(g)
        print(f"import cycles between {label}: {len(found)}")
        for component in found:
            print("  " + " ⇄ ".join(component))
