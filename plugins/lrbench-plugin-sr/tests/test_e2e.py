"""End to end through the core runner: SR methods and the sr task in a spec."""
from __future__ import annotations

import math
import types

import torch
from lrbench import hookimpl
from lrbench.models import ModelAdapter, Preprocess
from lrbench.plugins import Plugins
from lrbench.runner import run_spec
from lrbench_sr import plugin as sr_plugin


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
        "methods": ["none", {"name": "sr/edsr-baseline-x4", "random_init": True,
                             "options": {"num_feat": 8, "num_block": 1}}],
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
