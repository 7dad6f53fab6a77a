"""Expanding a validated spec into cells (model x method x dataset x condition) keyed by content.

Cells sharing (model, method, dataset) form a *unit*: one pass over the dataset serves all of its conditions. Each
cell's cache key hashes what determines its raw outputs: the task and its version, the model and method entries
(registry name, parameters with every file parameter replaced by its sha256, providing plugin and its version), what the
method reads beyond its entry (:meth:`lrbench.methods.Method.inputs_identity`: weights found by a short name, training
data), the dataset's identity (item list and labels), the condition, the pixel path (reference or fast), and the run
seed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .cache import Cache, content_key, file_sha256_memo
from .datasets import Dataset
from .degradations import Degradation
from .registry import LrbenchError
from .spec import Item, ResolvedSpec
from .tasks import Task


def _hash_files(value: Any) -> Any:
    """Replace parameters that name existing files by their content hash (a changed checkpoint is a new cell)."""
    if isinstance(value, dict):
        return {k: _hash_files(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_files(v) for v in value]
    if isinstance(value, str) and len(value) < 4096:
        p = Path(value).expanduser()
        try:
            if p.is_file():
                return {"file": value, "sha256": file_sha256_memo(p)}
        except OSError:
            pass
    return value


def entry_identity(plugins: Any, item: Item, seed: int | None = None) -> dict[str, Any]:
    """Name, parameters (files replaced by their sha256), plugin and version; plus, for entries registered with
    ``inputs=``, what they read beyond their parameters (e.g. weights shipped inside the plugin)."""
    entry, implied = plugins.registries[item.kind].resolve(item.name)
    info = plugins.info.get(entry.plugin)
    ident = {
        "name": item.name,
        "params": _hash_files(item.params),
        "plugin": entry.plugin,
        "version": info.version if info else None,
    }
    named = _hash_files(implied)
    if named != implied:  # the id is a file (``albef:/path/ALBEF.pth``): its bytes, not its path, key the cells
        ident["id_file"] = named["id"]
    if seed is not None:
        ident["seed"] = seed
    if entry.inputs is not None:
        inputs = entry.inputs(**implied, **item.params)
        if inputs:
            ident["inputs"] = inputs
    return ident


def method_identity(
    plugins: Any, item: Item, seed: int, build_dataset: Callable[..., Dataset] | None = None, method: Any = None
) -> dict[str, Any]:
    """The method entry's identity plus what the constructed method reads beyond it (weights found by a short name,
    training data); entries that read nothing more keep the key they had without it."""
    ident = entry_identity(plugins, item, seed)
    if method is None:
        method = plugins.registries["methods"].create(item.name, **item.params)
    inputs = method.inputs_identity(build_dataset or plugins.registries["datasets"].create)
    if inputs:  # merged with what the entry's ``inputs=`` callback (if any) put there, never replacing it
        ident["inputs"] = {**ident.get("inputs", {}), **inputs}
    return ident


@dataclass
class Unit:
    """All conditions of one (model, method, dataset): computed in one pass over the data."""

    model: Item
    method: Item
    dataset: Item
    dataset_obj: Dataset
    task: Task
    task_item: Item
    conditions: list[Degradation]
    keys: dict[str, str]
    descriptions: dict[str, dict[str, Any]]
    cached: dict[str, bool] = field(default_factory=dict)
    #: the kind the built model (method applied) must have; None when the spec names the task
    model_kind: str | None = None
    #: conditions to compute even if cached (``--recompute PATTERN``)
    forced: set[str] = field(default_factory=set)

    def missing(self) -> list[Degradation]:
        return [d for d in self.conditions if not self.cached[d.condition]]

    def cell_label(self, condition: str) -> str:
        """``model|method|dataset|condition``: how logs and run.json name a cell."""
        return f"{self.model.label}|{self.method.label}|{self.dataset.label}|{condition}"


@dataclass
class Plan:
    units: list[Unit]

    @property
    def n_cells(self) -> int:
        return sum(len(u.conditions) for u in self.units)

    @property
    def n_missing(self) -> int:
        return sum(len(u.missing()) for u in self.units)

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "model": u.model.label,
                "method": u.method.label,
                "dataset": u.dataset.label,
                "condition": d.condition,
                "task": u.task.name,
                "status": "cached" if u.cached[d.condition] else "to run",
                "key": u.keys[d.condition][:12],
            }
            for u in self.units
            for d in u.conditions
        ]


def model_kind(plugins: Any, model: Item, method: Any) -> str:
    """The kind of the model a unit evaluates: the model entry's declared kind, as the method transforms it."""
    entry, implied = plugins.registries["models"].resolve(model.name)
    return method.produces(entry.model_kind(implied, model.params))


def choose_task(plugins: Any, resolved: ResolvedSpec, kind: str | None, dataset: Dataset) -> tuple[Task, Item]:
    """The spec's task, else the one registered task that evaluates a ``kind`` model on the dataset's task; none or
    several is an error naming the candidates (the spec key ``task`` settles it)."""
    if resolved.task is not None:
        return plugins.registries["tasks"].create(resolved.task.name, **resolved.task.params), resolved.task
    candidates = [
        entry
        for entry in plugins.registries["tasks"]
        if getattr(entry.factory, "auto_select", True)
        and getattr(entry.factory, "dataset_task", None) == dataset.task
        and kind in getattr(entry.factory, "model_kinds", ())
    ]
    if not candidates:
        raise LrbenchError(
            f"no registered task evaluates a {kind!r} model on a {dataset.task!r} dataset "
            f"({dataset.name}); name one with the spec key 'task'"
        )
    if len(candidates) > 1:
        names = ", ".join(f"{e.name} (plugin {e.plugin})" for e in candidates)
        raise LrbenchError(
            f"several tasks evaluate a {kind!r} model on a {dataset.task!r} dataset ({dataset.name}): "
            f"{names}; choose one with the spec key 'task'"
        )
    entry = candidates[0]
    return entry.factory(), Item("tasks", entry.name, {}, "", "task")


def build_conditions(plugins: Any, resolved: ResolvedSpec) -> list[Degradation]:
    out = []
    for item in resolved.conditions:
        deg = plugins.registries["degradations"].create(item.name, **item.params)
        if item.user_label:
            deg._label = item.label  # type: ignore[attr-defined]
        out.append(deg)
    return out


def force(plan: Plan, pattern: str) -> int:
    """Mark the cells whose ``model|method|dataset|condition`` label matches the shell-style ``pattern`` (``*`` for
    all, ``*|bicubic@16``, ``tiny|*``) to be computed again; returns how many. A pattern with fewer than four fields
    matches their ends (``*|bicubic@16`` is every cell at that condition)."""
    count = 0
    for unit in plan.units:
        for deg in unit.conditions:
            label = unit.cell_label(deg.condition)
            tail = "|".join(label.split("|")[-len(pattern.split("|")) :])
            if fnmatch.fnmatchcase(label, pattern) or fnmatch.fnmatchcase(tail, pattern):
                unit.cached[deg.condition] = False
                unit.forced.add(deg.condition)
                count += 1
    return count


def build_plan(
    resolved: ResolvedSpec, plugins: Any, cache: Cache, build_dataset: Callable[..., Dataset] | None = None
) -> Plan:
    """Units and cell keys of a spec. ``build_dataset`` (the run's memoised builder) keeps each dataset entry built once
    per run; a cell counts as cached when its entry is complete (its checksum is verified when it is read)."""
    build_dataset = build_dataset or plugins.registries["datasets"].create
    conditions = build_conditions(plugins, resolved)
    seed = resolved.spec.seed
    path = "fast" if resolved.spec.fast_path else "reference"
    units = []
    datasets = [(item, build_dataset(item.name, **item.params)) for item in resolved.datasets]
    methods = []
    for method in resolved.methods:
        method_obj = plugins.registries["methods"].create(method.name, **method.params)
        methods.append((method, method_obj, method_identity(plugins, method, seed, build_dataset, method_obj)))
    for model in resolved.models:
        model_id = entry_identity(plugins, model)
        for method, method_obj, method_id in methods:
            kind = model_kind(plugins, model, method_obj) if resolved.task is None else None
            for ds_item, ds in datasets:
                task, task_item = choose_task(plugins, resolved, kind, ds)
                # everything of the dataset that can change an output: the spec entry's parameters (files hashed), the
                # dataset's own identity (items, labels, class names, templates, item files' size and mtime)
                ds_id = {**ds.identity(), "entry": entry_identity(plugins, ds_item)}
                keys, descriptions, cached = {}, {}, {}
                for deg in conditions:
                    desc = {
                        "task": task.identity(),
                        "task_params": task_item.params,
                        "model": model_id,
                        "method": method_id,
                        "dataset": ds_id,
                        "condition": deg.identity(),
                        "path": path,
                    }
                    key = content_key(desc)
                    keys[deg.condition], descriptions[deg.condition] = key, desc
                    cached[deg.condition] = cache.contains("cells", key)
                units.append(
                    Unit(model, method, ds_item, ds, task, task_item, conditions, keys, descriptions, cached, kind)
                )
    return Plan(units)
