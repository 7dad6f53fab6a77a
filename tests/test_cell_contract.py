"""The cell-output contract: every task returns a CellOutput per condition, checked by the runner, which takes n from it."""

from __future__ import annotations

import numpy as np
import pytest

from lrbench import hookimpl
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.cache import Cache
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError
from lrbench.runner import run_spec
from lrbench.tasks import CellOutput

SPEC = {
    "name": "c",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 8}],
    "conditions": ["hr", "bicubic@8"],
    "batch_size": 8,
}


class PlainDict(ZeroShotClassification):
    """Returns the pre-contract plain mappings."""

    name = "plain-dict"
    auto_select = False

    def run(self, model, dataset, conditions, ctx):
        return {c: cell.to_arrays() for c, cell in super().run(model, dataset, conditions, ctx).items()}


class NoLabels(ZeroShotClassification):
    """A CellOutput without an array the task declares."""

    name = "no-labels"
    auto_select = False

    def run(self, model, dataset, conditions, ctx):
        return {
            c: CellOutput(cell.index, cell.n, {"logits": cell.arrays["logits"]})
            for c, cell in super().run(model, dataset, conditions, ctx).items()
        }


class Tasks:
    @hookimpl
    def register_tasks(self, register):
        register("plain-dict", PlainDict)
        register("no-labels", NoLabels)


@pytest.fixture
def with_tasks(plugins):
    return Plugins(
        load_entry_points=False, extra=[(plugins.pm.get_plugin("test-plugin"), "test-plugin"), (Tasks(), "bad-tasks")]
    )


def test_a_task_breaking_the_contract_is_named(with_tasks, tmp_path):
    with pytest.raises(LrbenchError, match=r"task 'plain-dict' .*condition 'hr'.*expected a lrbench.tasks.CellOutput"):
        run_spec(dict(SPEC, task="plain-dict"), tmp_path / "a", plugins=with_tasks, cache_dir=tmp_path / "c")
    with pytest.raises(LrbenchError, match=r"task 'no-labels' .*missing arrays \['labels'\]"):
        run_spec(dict(SPEC, task="no-labels"), tmp_path / "b", plugins=with_tasks, cache_dir=tmp_path / "c")


def test_n_comes_from_the_contract(plugins, tmp_path):
    results = run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=tmp_path / "c")
    assert set(results["n"]) == {8}


def test_a_cell_stored_before_the_contract_is_recomputed(plugins, calls, tmp_path):
    cache_dir = tmp_path / "c"
    first = run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    cache = Cache(cache_dir)
    for meta in sorted((cache_dir / "cells").rglob("*.json"))[:1]:  # rewrite one cell without "n", as older lrbench did
        key = meta.stem
        old = cache.get("cells", key)
        cache.put("cells", key, {k: v for k, v in old.items() if k != "n"})
    before = calls["images"]
    again = run_spec(SPEC, tmp_path / "b", plugins=plugins, cache_dir=cache_dir)
    assert calls["images"] == before + 8  # one cell of 8 images computed again
    assert len(again.attrs["computed"]) == 1
    np.testing.assert_array_equal(again["value"].to_numpy(), first["value"].to_numpy())
