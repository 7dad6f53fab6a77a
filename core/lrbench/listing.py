"""A saved index of what the plugins register, so ``lrbench --help`` and ``lrbench list`` start in well under a second.

Loading the plugins imports torch and every model library (seconds). The index (names, descriptions, facts, plugin
commands, load errors) is written whenever the plugins are loaded anyway and reused while its fingerprint matches:
the lrbench version, the installed ``lrbench`` entry points with their distributions' versions, the plugin selection
variables, and the modification times of the core's and every plugin package's files. Any of those changing rebuilds
it on the next listing; ``--refresh`` forces it.
"""

from __future__ import annotations

import json
import os
from importlib import metadata, util
from pathlib import Path
from typing import Any

from . import NAMESPACE, __version__
from .registry import KINDS

INDEX_VERSION = 1


def index_path() -> Path:
    return Path(os.environ.get("LRBENCH_CACHE", "~/.cache/lrbench")).expanduser() / "registry-index.json"


def _tree_mtime(folder: Path) -> int:
    return max((p.stat().st_mtime_ns for p in folder.rglob("*") if p.suffix in (".py", ".json")), default=0)


def fingerprint() -> dict[str, Any]:
    """What the index depends on, found without importing any plugin."""
    eps = []
    for ep in sorted(metadata.entry_points(group=NAMESPACE), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        top = ep.value.split(":")[0].split(".")[0]
        spec = util.find_spec(top)  # locates the package without running it
        origin = Path(spec.origin).parent if spec is not None and spec.origin else None
        eps.append(
            [
                ep.name,
                ep.value,
                dist.name if dist else None,
                dist.version if dist else None,
                str(origin),
                _tree_mtime(origin) if origin else 0,
            ]
        )
    return {
        "index": INDEX_VERSION,
        "lrbench": __version__,
        "core": _tree_mtime(Path(__file__).parent),
        "entry_points": eps,
        "env": [os.environ.get("LRBENCH_LOAD_PLUGINS"), os.environ.get("LRBENCH_DISABLE_PLUGINS")],
    }


def load_index() -> dict[str, Any] | None:
    """The saved index if it still describes the installed plugins, else None."""
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("fingerprint") == fingerprint() else None


def build_index(plugins: Any, commands: dict[str, str], save: bool = True) -> dict[str, Any]:
    """Index the loaded plugins' registries and commands; ``save`` it (best effort: a read-only cache is fine)."""
    data = {
        "fingerprint": fingerprint(),
        "registries": {
            kind: [
                {
                    "name": e.name,
                    "description": e.description,
                    "plugin": e.plugin,
                    **({"info": e.info} if e.info else {}),
                }
                for e in plugins.registries[kind]
            ]
            for kind in KINDS
        },
        "plugins": [p.as_dict() for p in plugins.listing()],
        "commands": commands,
    }
    data = json.loads(json.dumps(data, default=str))
    if not save:
        return data
    try:
        from .cache import atomic_write_text

        atomic_write_text(index_path(), json.dumps(data))
    except OSError:
        pass
    return data
