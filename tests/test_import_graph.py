"""The core's modules import each other without a circle (every import counts: top-level, in functions, typing-only)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

CORE = Path(__file__).resolve().parents[1] / "core" / "lrbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path) -> set[str]:
    """The lrbench modules a file imports (relative imports resolved; ``from . import x`` counts ``lrbench.x`` when
    that is a module, else the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lrbench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lrbench":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if (CORE.parent / (sub.replace(".", "/") + ".py")).is_file() else target)
    return found - {name}


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in CORE.rglob("*.py"):
        graph.add_node(module_name(path))
        for target in core_imports(path):
            graph.add_edge(module_name(path), target)
    return graph


def test_resolves_relative_imports():
    assert {"lrbench.compute", "lrbench.plan"} <= core_imports(CORE / "executors.py")
    assert "lrbench.tasks" in core_imports(CORE / "builtin" / "tasks.py")


def test_core_import_graph_has_no_circle():
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import circles in core/lrbench: {cycles}"
