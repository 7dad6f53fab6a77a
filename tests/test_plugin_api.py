"""Plugins use only the public plugin API (``from lrbench import ...``), never the core's modules."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import lrbench

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    p
    for p in [*ROOT.glob("plugins/*/lrbench_*"), ROOT / "examples/lrbench-plugin-example/lrbench_example"]
    if (p / "__init__.py").is_file()  # packages only: a wheel build leaves lrbench_plugin_*.egg-info beside them
)
MODULES = sorted(m for p in PACKAGES for m in p.rglob("*.py"))


def private_imports(path: Path) -> list[str]:
    """``lrbench.<module>`` imports anywhere in a file (top level or in functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("lrbench.")]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("lrbench."):
            found.append(node.module)
    return found


def test_the_scan_sees_private_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from lrbench import hookimpl\ndef f():\n    from lrbench.registry import LrbenchError\n"
        "import lrbench.plugins\n"
    )
    assert sorted(private_imports(bad)) == ["lrbench.plugins", "lrbench.registry"]


def test_every_plugin_module_imports_only_the_public_api():
    assert len(PACKAGES) == 8, PACKAGES  # the seven plugins and the example
    offenders = {str(m.relative_to(ROOT)): private_imports(m) for m in MODULES if private_imports(m)}
    assert not offenders, f"plugin modules importing core modules (use `from lrbench import ...`): {offenders}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_plugin_module_imports(path):
    package = next(p for p in PACKAGES if p in path.parents)
    name = ".".join([package.name, *path.relative_to(package).with_suffix("").parts])
    importlib.import_module(re.sub(r"\.__init__$", "", name))


def test_the_public_api_resolves():
    assert all(hasattr(lrbench, name) for name in lrbench.__all__)
    assert lrbench.LrbenchError.__module__ == "lrbench.registry"


def test_the_core_names_no_plugin_concept():
    core = ROOT / "core" / "lrbench"
    named = [
        f"{p.relative_to(ROOT)}"
        for p in core.rglob("*.py")
        if re.search(r"verification|identification", p.read_text(), re.I)
    ]
    assert not named
