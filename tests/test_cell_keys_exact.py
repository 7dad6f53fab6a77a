"""Cell keys field by field: changing one thing that changes a cell's outputs (pixel path, seed, task parameters, a
condition, a dataset, a model, a method) changes exactly the keys of the cells it touches; what does not change outputs
(batch size, labels) changes none. A field dropped from the key (the fast and reference paths sharing cells) fails."""

from __future__ import annotations

import pytest
import torch

from lrbench import hookimpl
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.methods import Method
from lrbench.models import ModelWrapper
from lrbench.plugins import Plugins
from lrbench.runner import run_spec
from lrbench.tasks import CellOutput


class _Offset(Method):
    """Adds ``value`` to every input pixel."""

    name = "offset"

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def apply(self, model, ctx):
        value = self.value

        class Offset(ModelWrapper):
            def encode_image(self, x: torch.Tensor) -> torch.Tensor:
                return self.inner.encode_image(x + value)

        return Offset(model, self.identity())


class _ScaledZeroShot(ZeroShotClassification):
    """Zero-shot with its logits multiplied by ``scale``: a task with a parameter."""

    name = "scaled-zero-shot"

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def run(self, model, dataset, conditions, ctx):
        out = super().run(model, dataset, conditions, ctx)
        return {c: CellOutput(o.index, o.n, {**o.arrays, "logits": o["logits"] * self.scale}) for c, o in out.items()}


class _KeysPlugin:
    @hookimpl
    def register_methods(self, register):
        register("offset", _Offset, "adds a value to the input")

    @hookimpl
    def register_tasks(self, register):
        register("scaled-zero-shot", _ScaledZeroShot, "zero-shot with scaled logits")


BASE = {
    "name": "keys",
    "models": ["tiny", {"name": "tiny", "seed": 1, "label": "tiny-1"}],
    "methods": ["none", {"name": "offset", "value": 0.1, "label": "off"}],
    "datasets": [{"name": "toyworld", "n": 6}, {"name": "toyworld", "n": 6, "split": "val", "label": "toy-val"}],
    "conditions": ["hr", "bicubic@8"],
    "task": {"name": "scaled-zero-shot", "scale": 1.0},
    "batch_size": 6,
}
ALL = {
    (m, me, d, c)
    for m in ("tiny", "tiny-1")
    for me in ("none", "off")
    for d in ("toyworld", "toy-val")
    for c in ("hr", "bicubic@8")
}


def _only(**fixed):
    pos = {"model": 0, "method": 1, "dataset": 2, "condition": 3}
    return {cell for cell in ALL if all(cell[pos[k]] == v for k, v in fixed.items())}


VARIANTS = {
    "fast path": ({"fast_path": True}, ALL),
    "seed": ({"seed": 1}, ALL),
    "task parameter": ({"task": {"name": "scaled-zero-shot", "scale": 2.0}}, ALL),
    "condition": (
        {"conditions": ["hr", {"name": "bicubic", "size": 8, "square": True, "label": "bicubic@8"}]},
        _only(condition="bicubic@8"),
    ),
    "dataset": (
        {"datasets": [{"name": "toyworld", "n": 6}, {"name": "toyworld", "n": 7, "split": "val", "label": "toy-val"}]},
        _only(dataset="toy-val"),
    ),
    "model": ({"models": ["tiny", {"name": "tiny", "seed": 2, "label": "tiny-1"}]}, _only(model="tiny-1")),
    "method": ({"methods": ["none", {"name": "offset", "value": 0.2, "label": "off"}]}, _only(method="off")),
    "batch size": ({"batch_size": 2}, set()),
    "labels": ({"name": "renamed"}, set()),
}


@pytest.fixture(scope="module")
def cache_store(tmp_path_factory):
    return {"dir": tmp_path_factory.mktemp("cache")}


@pytest.fixture
def filled(plugins, cache_store, tmp_path):
    """The conftest's plugins plus the offset method and the scaled task; the base spec run once per module (every one
    of its 16 cells in the cache) and its plan."""
    plugins = Plugins(load_entry_points=False, extra=[*plugins.extra, (_KeysPlugin(), "keys")])
    cache_dir = cache_store["dir"]
    if "base" not in cache_store:
        run_spec(BASE, tmp_path / "base", plugins=plugins, cache_dir=cache_dir)
        cache_store["base"] = run_spec(BASE, plugins=plugins, cache_dir=cache_dir, dry_run=True)
    return plugins, cache_dir, cache_store["base"]


def _cells(plan, status=None):
    rows = plan if status is None else plan[plan["status"] == status]
    return {(r.model, r.method, r.dataset, r.condition): r.key for r in rows.itertuples()}


def test_base_rerun_is_all_cached(filled):
    _, _, base = filled
    assert set(_cells(base)) == ALL and set(base["status"]) == {"cached"}


@pytest.mark.parametrize("field", list(VARIANTS))
def test_changing_one_field_changes_exactly_its_cells(filled, field):
    plugins, cache_dir, base = filled
    change, expected = VARIANTS[field]
    plan = run_spec({**BASE, **change}, plugins=plugins, cache_dir=cache_dir, dry_run=True)
    assert set(_cells(plan, "to run")) == expected
    before, after = _cells(base), _cells(plan)
    assert {cell for cell in ALL if before[cell] != after[cell]} == expected


def test_only_the_changed_cells_are_computed(filled, tmp_path, calls):
    """The runner computes what the plan says: a changed model entry runs its 4 cells (2 methods x 2 datasets, both
    conditions in one pass), nothing else; the model of the unchanged entry is not even loaded."""
    plugins, cache_dir, _ = filled
    out = run_spec({**BASE, **VARIANTS["model"][0]}, tmp_path / "run", plugins=plugins, cache_dir=cache_dir)
    assert sorted(out.attrs["computed"]) == sorted("|".join(c) for c in _only(model="tiny-1"))
    assert calls["images"] == 2 * 2 * 6 * 2 and calls["loads"] == 2  # tiny-1 built once per method
