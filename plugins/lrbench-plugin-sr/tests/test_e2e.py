"""End to end through the core runner: SR methods and the sr task in a spec."""

from __future__ import annotations

import math
import types

import torch
from lrbench_sr import plugin as sr_plugin

from lrbench import hookimpl
from lrbench.models import ModelAdapter, Preprocess
from lrbench.plugins import Plugins
from lrbench.runner import run_spec


class Probe(ModelAdapter):
    """A classifier adapter with no network: the sr task never runs the recognition model."""

    kind = "classifier"
    preprocess = Preprocess(image_size=32)
    module = torch.nn.Identity()

    def identity(self):
        return {"family": "probe"}


probe_plugin = types.SimpleNamespace(register_models=hookimpl(lambda register: register("probe", Probe, "probe")))


def test_sr_quality_spec(tmp_path):
    plugins = Plugins(load_entry_points=False, extra=[(sr_plugin, "sr"), (probe_plugin, "probe")])
    spec = {
        "models": ["probe"],
        "methods": [
            "none",
            {"name": "sr/edsr-baseline-x4", "random_init": True, "options": {"num_feat": 8, "num_block": 1}},
        ],
        "datasets": [{"name": "toyworld", "split": "test", "n": 2}],
        "conditions": ["srdown@4", "bicubic@56"],
        "task": {"name": "sr", "lpips": "none"},
        "metrics": ["psnr", "ssim_y"],
    }
    df = run_spec(spec, tmp_path / "out", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    cells = df.set_index(["method", "condition", "metric"])["value"]
    assert len(cells) == 2 * 2 * 2
    for value in cells:
        assert math.isfinite(value)
    # bicubic upsampling of the toy world's smooth shapes: a sane PSNR range
    assert 18 < cells[("none", "srdown@4", "psnr")] < 40


def test_short_name_weights_key_the_cells(tmp_path, monkeypatch):
    """``sr/edsr-baseline-x4`` finds its checkpoint in $LRBENCH_SR_WEIGHTS: the file's content is part of the SR cells'
    keys, so an unchanged re-run computes nothing and another file behind the same name recomputes the SR cells only."""
    from lrbench_sr.backbones import build
    from sr_testing import TINY

    opts = TINY[("edsr", "baseline")]
    weights = tmp_path / "weights" / "edsr_baseline_x4-6b446fab.pt"  # the published file name the short name looks for
    weights.parent.mkdir()
    monkeypatch.setenv("LRBENCH_SR_WEIGHTS", str(weights.parent))

    def publish(seed: int) -> None:
        torch.manual_seed(seed)
        torch.save({"params": build("edsr", "baseline", 4, opts).module.state_dict()}, weights)

    plugins = Plugins(load_entry_points=False, extra=[(sr_plugin, "sr"), (probe_plugin, "probe")])
    spec = {
        "models": ["probe"],
        "methods": ["none", {"name": "sr/edsr-baseline-x4", "label": "sr", "options": opts}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 2}],
        "conditions": ["srdown@4", "bicubic@56"],
        "task": {"name": "sr", "lpips": "none"},
        "metrics": ["psnr"],
    }

    def run(name: str):
        return run_spec(spec, tmp_path / name, device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")

    publish(0)
    first = run("a")
    assert len(first.attrs["computed"]) == 4
    assert run("b").attrs["computed"] == []  # nothing changed: nothing computed
    publish(1)  # another checkpoint under the same file name
    swapped = run("c")
    assert sorted(swapped.attrs["computed"]) == ["probe|sr|toyworld|bicubic@56", "probe|sr|toyworld|srdown@4"]
    psnr = [df.set_index(["method", "condition"])["value"] for df in (first, swapped)]
    assert psnr[0][("none", "srdown@4")] == psnr[1][("none", "srdown@4")]
    assert psnr[0][("sr", "srdown@4")] != psnr[1][("sr", "srdown@4")]  # the new weights were used
    assert run("d").attrs["computed"] == []


def test_sr4ir_pair_is_the_spec_model(tmp_path):
    """A spec names the pair as its model (``sr4ir``, a classifier: the classification task is chosen from it, no
    placeholder model, no ``task`` key); the sr4ir method trains it; the stored pair, named by ``checkpoint``, is the same
    classifier with no method; the untrained pair alone refuses with both ways out."""
    import pytest

    from lrbench.registry import LrbenchError

    plugins = Plugins(load_entry_points=False, extra=[(sr_plugin, "sr")])
    train = {
        "sr_options": {"num_feat": 8, "num_block": 1},
        "task_weights": None,
        "task_arch": "timm:test_resnet",
        "hr_size": 16,
        "batch_size": 4,
        "epochs": 1,
        "tdp_warmup_epochs": 0,
        "dataset": {"name": "toyworld", "split": "train", "n": 4},
    }
    spec = {
        "models": ["sr4ir"],
        "methods": [{"name": "sr4ir", "label": "pair", "train": train}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 3}],
        "conditions": ["hr", "srdown@4"],
        "metrics": ["top1"],
    }
    trained = run_spec(spec, tmp_path / "a", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    assert set(trained["condition"]) == {"hr", "srdown@4"} and set(trained["metric"]) == {"top1"}
    pair = next((tmp_path / "cache").rglob("pair.pt"))
    spec_file = {**spec, "models": [{"name": "sr4ir", "checkpoint": str(pair)}], "methods": ["none"]}
    loaded = run_spec(spec_file, tmp_path / "b", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    assert loaded["value"].tolist() == trained["value"].tolist()
    with pytest.raises(LrbenchError, match="untrained pair.*checkpoint"):
        run_spec(
            {**spec, "methods": ["none"]}, tmp_path / "c", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache"
        )
