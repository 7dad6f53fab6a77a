"""The image pipeline (lrbench.tasks): the reference path in loader workers, per-condition errors, worker count."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lrbench.builtin.degradations import HR, GaussianBlur, Jpeg, Resize
from lrbench.builtin.toyworld import ToyWorld
from lrbench.datasets import Dataset
from lrbench.degradations import Degradation
from lrbench.models import ModelAdapter, ModelWrapper, Preprocess
from lrbench.runner import run_spec
from lrbench.tasks import MAX_AUTO_WORKERS, RunContext, iter_condition_batches, resolve_workers


class Plain(ModelAdapter):
    preprocess = Preprocess(48, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


class Doubling(ModelWrapper):
    """Changes ``prepare``: the pipeline must call it in the main process, not the plain preprocessing."""

    def prepare(self, images):
        return 2 * self.inner.prepare(images)


class Wide(ToyWorld):
    """Toy-world images pasted on a 90 x 60 canvas: non-square, so crops and aspect ratios matter."""

    def load(self, index: int) -> Image.Image:
        canvas = Image.new("RGB", (90, 60), (40, 80, 120))
        canvas.paste(super().load(index).resize((60, 60)), (17, 0))
        return canvas


CONDITIONS = [HR(), Resize(16), Resize(100), GaussianBlur(1.5), Jpeg(30)]


def _old_pipeline(model: ModelAdapter, ds: Dataset, index: np.ndarray, deg: Degradation) -> torch.Tensor:
    """What lrbench did before the model's preprocessing moved into the workers: prepare() on the degraded PIL list."""
    return model.prepare([deg.pil(ds.load(int(i))) for i in index])


@pytest.mark.parametrize("model", [Plain(), Doubling(Plain(), {"m": 1})], ids=["plain", "own-prepare"])
def test_reference_path_in_workers_is_bit_identical_to_main_process_prepare(model):
    ds = Wide("test", n=10)
    ctx = RunContext(batch_size=4, num_workers=2)
    seen = []
    for idx, inputs in iter_condition_batches(model, ds, CONDITIONS, ctx):
        seen.extend(idx.tolist())
        for deg in CONDITIONS:
            assert torch.equal(inputs[deg.condition], _old_pipeline(model, ds, idx, deg)), deg.condition
    assert seen == list(range(10)) and not ctx.skipped


def test_plain_preprocess_only_when_prepare_is_the_models_own():
    assert Plain().plain_preprocess() == Plain.preprocess
    assert ModelWrapper(Plain(), {}).plain_preprocess() == Plain.preprocess  # a wrapper that changes nothing
    assert Doubling(Plain(), {}).plain_preprocess() is None


class FailsOn(Degradation):
    """Raises on the given items (recognised by their top-left pixel), passes every other image through."""

    name = "fails_on"

    def __init__(self, pixels: tuple):
        self.pixels = pixels

    def pil(self, image: Image.Image) -> Image.Image:
        if image.getpixel((0, 0)) in self.pixels:
            raise ValueError("no such luck")
        return image


def test_each_condition_keeps_its_own_errors_and_the_item_is_skipped_once():
    ds = ToyWorld("test", n=6)
    bad = ds.load(2).getpixel((0, 0))
    assert all(ds.load(i).getpixel((0, 0)) != bad for i in (0, 1, 3, 4, 5))
    conditions = [HR(), FailsOn((bad,)), Resize(16)]
    ctx = RunContext(batch_size=6, num_workers=0)
    from lrbench.tasks import _ReferenceLoader

    loader = _ReferenceLoader(ds, conditions, Plain.preprocess.pil)
    batch = loader.collate([loader[i] for i in range(6)])
    assert batch.errors["hr"] == {} and batch.errors["bicubic@16"] == {}
    failing = conditions[1].condition
    assert batch.errors[failing] == {2: "ValueError: no such luck"}
    assert batch.inputs["hr"].shape == (6, 3, 48, 48) and batch.inputs[failing].shape == (5, 3, 48, 48)
    assert batch.succeeded(failing).tolist() == [0, 1, 3, 4, 5]
    (idx, inputs), = iter_condition_batches(Plain(), ds, conditions, ctx)
    assert idx.tolist() == [0, 1, 3, 4, 5]
    assert [(s["index"], s["error"]) for s in ctx.skipped] == [(2, "ValueError: no such luck")]
    assert torch.equal(inputs["hr"], _old_pipeline(Plain(), ds, idx, HR()))


def test_auto_workers_is_cores_minus_one_capped(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(2)))
    assert resolve_workers("auto") == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert resolve_workers("auto") == MAX_AUTO_WORKERS == 16
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert resolve_workers("auto") == 0
    assert resolve_workers(3) == 3


def test_run_json_records_the_chosen_worker_count(plugins, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(3)))
    spec = {"name": "w", "models": ["tiny"], "datasets": [{"name": "toyworld", "n": 8}], "conditions": ["hr", "bicubic@16"],
            "batch_size": 4}
    run_spec(spec, tmp_path / "auto", plugins=plugins, cache_dir=cache_dir)
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["num_workers"] == 2
    run_spec(dict(spec, num_workers=0), tmp_path / "zero", plugins=plugins, cache_dir=cache_dir)
    assert json.loads((tmp_path / "zero" / "run.json").read_text())["num_workers"] == 0
