"""The genmodels modules a file imports, read with `ast` (imports inside functions included), and
what follows from them: the import graph of the package and the modules a stage runs."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

SRC = REPO / "src"
PACKAGE = "genmodels"


def module_file(name: str) -> Path | None:
    """src/genmodels/a/b.py or src/genmodels/a/b/__init__.py for "genmodels.a.b"."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.resolve().relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every genmodels module `path` imports anywhere in its body: `import a.b`, `from a import
    b` (b a submodule, else a itself), relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else ""
    if not package and path.resolve().is_relative_to(SRC):
        package = module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [n if module_file(n) else base for n in names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == PACKAGE and module_file(n)}
    return found


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules it imports (explicitly; a package's own __init__ is only an edge
    where a module imports a name from it)."""
    return {name: imported_modules(path) - {name} for name, path in package_modules().items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def closure(files: list[Path], extra_modules: tuple[str, ...] = ()) -> set[Path]:
    """The genmodels files that run when `files` run: their imports, transitively, with the
    __init__ of every package on the way (Python runs it before the module)."""
    seen: set[str] = set()
    todo = [m for f in files for m in imported_modules(f)] + list(extra_modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in seen and module_file(prefix) is not None:
                seen.add(prefix)
                todo.extend(imported_modules(module_file(prefix)))
    return {module_file(m).resolve() for m in seen}
