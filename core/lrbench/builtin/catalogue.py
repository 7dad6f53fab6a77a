"""The LR0.FM model catalogue: named presets for the 66 backbones of the paper's Table 1.

The mapping is data (``lrbench/data/lr0fm_models.json``): each preset names the plugin distribution, the model family
that plugin registers and the id/params that load the weights. The core knows no family; a preset is resolved through
the registry at build time, so an uninstalled plugin gives an error that says what to ``pip install``.

Registered names: the family ``lr0fm`` (``lr0fm:EVA-02-CLIP-B/16``; the authors' spellings in their results files are
accepted too) and every preset individually (``lr0fm:CLIP-ViT-B/32`` ...), whose ``info`` carries the catalogue facts and
whether an installed plugin can load it, so ``lrbench list models`` shows the whole table.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache, partial
from importlib import metadata
from typing import Any

from .. import NAMESPACE, hookimpl
from ..context import PluginContext
from ..datasets import load_json_resource
from ..registry import Finding, LrbenchError

CATALOGUE_FILE = "lr0fm_models.json"


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().lower()


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """The parsed catalogue file (``models``: list of presets, ``families``, ``_source``)."""
    return load_json_resource(CATALOGUE_FILE)


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for preset in catalogue()["models"]:
        for alias in (preset["name"], preset.get("paper_name") or preset["name"]):
            index.setdefault(_key(alias), preset)
    return index


def preset(name: str) -> dict[str, Any]:
    """The preset named ``name`` (catalogue name or the authors' spelling, whitespace and case insensitive)."""
    found = _index().get(_key(name))
    if found is None:
        names = [p["name"] for p in catalogue()["models"]]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise LrbenchError(f"unknown LR0.FM preset {name!r}{hint} Presets: {', '.join(names)}")
    return found


def _installed_entry_points() -> set[str]:
    return {ep.name for ep in metadata.entry_points(group=NAMESPACE)}


def target(p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registry name (``family:id`` or ``family``) and params a preset loads with."""
    load = p["load"]
    name = f"{load['model']}:{load['id']}" if load.get("id") else load["model"]
    return name, dict(load.get("params", {}))


def build(id: str, *, context: PluginContext, **params: Any) -> Any:
    """Loads preset ``id`` through the plugin that provides its family (from the registries of the plugin set building
    it, ``context``); ``params`` override the preset's own."""
    p = preset(id)
    load = p.get("load")
    if load is None:
        raise LrbenchError(f"lr0fm:{p['name']} has no loader in lrbench: {p['unavailable']}")
    models = context.registries["models"]
    family = load["model"]
    if family not in models.names():
        failed = models.failed_plugins.get(load["entry_point"])
        why = f" (plugin {load['entry_point']!r} failed to load: {failed})" if failed else ""
        raise LrbenchError(
            f"lr0fm:{p['name']} is loaded by the {family!r} model family of {load['plugin']}, which is "
            f"not installed{why}: {install_hint(load['plugin'])}"
        )
    name, merged = target(p)
    merged.update(params)
    missing = [k for k in load.get("needs", []) if merged.get(k) is None]
    if missing:
        raise LrbenchError(
            f"lr0fm:{p['name']} needs {', '.join(missing)}: download {load['download']} and set "
            f"{missing[0]}: /path/to/{load['download'].rsplit('/', 1)[-1]} in the model entry"
        )
    return models.create(name, **merged)


def check(id: str, **params: Any) -> list[Finding]:
    """What ``build`` would meet, without loading: no loader, plugin not installed or broken, a needed file not given,
    then the providing family's own check (weights present, to download, or missing offline)."""
    from ..plugins import get_plugins

    try:
        p = preset(id)
    except LrbenchError as exc:
        return [Finding("error", str(exc))]
    load = p.get("load")
    if load is None:
        return [Finding("error", f"lr0fm:{p['name']} has no loader in lrbench: {p['unavailable']}")]
    models = get_plugins().models
    if load["model"] not in models.names():
        failed = models.failed_plugins.get(load["entry_point"])
        why = (
            f"plugin {load['entry_point']!r} failed to load: {failed}"
            if failed
            else f"{load['plugin']} is not installed"
        )
        return [
            Finding(
                "error",
                f"lr0fm:{p['name']} needs the {load['model']!r} model family: {why} ({install_hint(load['plugin'])})",
            )
        ]
    name, merged = target(p)
    merged.update(params)
    missing = [k for k in load.get("needs", []) if merged.get(k) is None]
    if missing:
        return [
            Finding(
                "error",
                f"lr0fm:{p['name']} needs {', '.join(missing)}: download {load['download']} and set "
                f"{missing[0]}: /path/to/{load['download'].rsplit('/', 1)[-1]} in the model entry",
            )
        ]
    entry, implied = models.resolve(name)
    return list(entry.check(**implied, **merged)) if entry.check else []


def install_hint(distribution: str) -> str:
    """How to install a plugin until lrbench is on a public index: from wheels built by scripts/build-wheels.sh."""
    return f"pip install --find-links dist {distribution}, with dist/ built by scripts/build-wheels.sh"


def preset_info(p: dict[str, Any], installed: set[str]) -> dict[str, Any]:
    """The facts ``lrbench list models`` shows for one preset."""
    load = p.get("load")
    info = {k: p.get(k) for k in ("family", "architecture", "pretraining", "data_size", "params_m", "input_size")}
    if load is None:
        info.update(available=False, loader=None, reason=p["unavailable"])
        return info
    name, params = target(p)
    info.update(
        loader=name,
        loader_params=params or None,
        installable_by=load["plugin"],
        available=load["entry_point"] in installed,
        needs=load.get("needs") or None,
    )
    return info


@hookimpl
def register_models(register):
    installed = _installed_entry_points()
    presets = catalogue()["models"]
    n_ok = sum(1 for p in presets if p.get("load") and p["load"]["entry_point"] in installed)
    register(
        "lr0fm",
        build,
        "LR0.FM catalogue: lr0fm:PRESET loads one of the paper's 66 backbones through its plugin",
        accepts_id=True,
        kind="zero-shot",
        info={"presets": len(presets), "available": n_ok},
        check=check,
    )
    for p in presets:
        register(
            f"lr0fm:{p['name']}",
            partial(build, p["name"]),
            f"{p['family']} {p['architecture']} ({p['pretraining']}, {p['data_size']}) at {p['input_size']} px",
            kind="zero-shot",
            info=preset_info(p, installed),
            check=partial(check, p["name"]),
        )
