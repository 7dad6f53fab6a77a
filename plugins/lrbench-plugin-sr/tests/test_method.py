"""The SR method: refuses random weights, LR0.FM pipeline (LR -> SR -> model preprocessing), cache, tiling, registry."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from lrbench_sr import plugin as sr_plugin
from lrbench_sr.backbones import SRCheckpointError, build
from lrbench_sr.inference import SRInference
from lrbench_sr.method import SpandrelSRMethod, SRMethod, SRWrapper
from PIL import Image
from sr_testing import TINY
from torch import nn
from torchvision.transforms import functional as TF

from lrbench.cache import Cache
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.models import ModelAdapter, Preprocess
from lrbench.plugins import Plugins
from lrbench.registry import LrbenchError


class Probe(ModelAdapter):
    """A classifier adapter with a 32 px preprocessing; records nothing, identity fixed."""

    kind = "classifier"
    preprocess = Preprocess(image_size=32)
    module = nn.Identity()

    def identity(self):
        return {"family": "probe"}


def ctx(tmp_path, cache=None) -> MethodContext:
    return MethodContext(
        device=torch.device("cpu"),
        artifacts=ArtifactStore(tmp_path / "art"),
        cache=cache,
        log=logging.getLogger("test"),
    )


def rand_image(w: int, h: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_refuses_without_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("LRBENCH_SR_WEIGHTS", str(tmp_path))
    method = SRMethod("swinir", "classical", 4)
    with pytest.raises(SRCheckpointError, match="random_init: true") as err:
        method.apply(Probe(), ctx(tmp_path))
    assert "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth" in str(err.value)
    with pytest.raises(LrbenchError, match="either `checkpoint` or `random_init"):
        SRMethod("edsr", checkpoint="x.pth", random_init=True)


def test_pipeline_matches_manual_lr0fm_listing(tmp_path):
    opts = TINY[("edsr", "baseline")]
    method = SRMethod("edsr", "baseline", 4, random_init=True, options=opts, seed=3)
    wrapped = method.apply(Probe(), ctx(tmp_path))
    assert isinstance(wrapped, SRWrapper) and wrapped.kind == "classifier"
    images = [rand_image(16, 12, 0), rand_image(12, 12, 1), rand_image(16, 12, 2)]  # two sizes: grouped
    got = wrapped.prepare(images)
    # by hand: CenterCrop(short side) -> SR -> to 8-bit PIL -> the model's own Resize/CenterCrop/Normalize
    torch.manual_seed(3)
    net = build("edsr", "baseline", 4, opts).module.eval()
    expected = []
    for im in images:
        x = TF.to_tensor(TF.center_crop(im, [12, 12]))[None]
        with torch.no_grad():
            sr = net(x).clamp(0, 1)[0]
        assert sr.shape == (3, 48, 48)
        expected.append(Probe.preprocess.pil(TF.to_pil_image((sr * 255).round().to(torch.uint8))))
    assert got.shape == (3, 3, 32, 32)
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)
    # the fast path runs the same SR on float batches (no 8-bit rounding): close to the reference path
    fast = wrapped.prepare_tensor(torch.stack([TF.to_tensor(im) for im in images[::2]]))
    assert (fast - got[::2]).abs().mean() < 0.02


def test_sr_outputs_cached_by_content(tmp_path):
    cache = Cache(tmp_path / "cache")
    method = SRMethod("edsr", "baseline", 2, random_init=True, options=TINY[("edsr", "baseline")])
    wrapped = method.apply(Probe(), ctx(tmp_path, cache))
    images = [rand_image(10, 10, i) for i in range(3)]
    first = wrapped.prepare(images)
    calls = []
    wrapped.sr.module.register_forward_hook(lambda *a: calls.append(1))
    again = wrapped.prepare(images)
    assert calls == [] and torch.equal(first, again)
    wrapped.prepare([rand_image(10, 10, 99)])
    assert calls == [1]


def test_identity_and_runtime_params(tmp_path):
    a = SRMethod("edsr", random_init=True, batch_size=4).identity()
    b = SRMethod("edsr", random_init=True, batch_size=64, cache=False).identity()
    c = SRMethod("edsr", random_init=True, tile=64).identity()
    assert a == b and a != c
    assert a["weights"] == "random-init(seed=0)"
    path = tmp_path / "w.pth"
    torch.save({"params": build("edsr", "baseline", 4).module.state_dict()}, path)
    assert len(SRMethod("edsr", checkpoint=str(path)).identity()["weights"]) == 64  # sha256 of the file


def test_tiling_reproduces_whole_image():
    up = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=4, mode="nearest"))
    x = torch.rand(1, 3, 37, 29)
    whole = SRInference(up, 4)(x)
    tiled = SRInference(up, 4, tile=16, tile_overlap=4)(x)
    assert torch.allclose(whole, tiled, atol=1e-6)
    # a real network differs only near tile seams (its receptive field crosses them); SwinIR pads each tile
    net = build("swinir", "lightweight", 2, TINY[("swinir", "lightweight")]).module.eval()
    whole, tiled = SRInference(net, 2, 8)(x), SRInference(net, 2, 8, tile=16, tile_overlap=8)(x)
    assert tiled.shape == whole.shape == (1, 3, 74, 58)
    assert (tiled - whole).abs().mean() < 0.25 * whole.std()


def test_registry_short_and_long_forms(tmp_path):
    methods = Plugins(load_entry_points=False, extra=[(sr_plugin, "sr")]).methods
    for name in (
        "sr/swinir-x4",
        "sr/edsr-baseline-x4",
        "sr/bsrgan-x4",
        "sr/realesrgan-x2",
        "sr/swinir-lightweight-x3",
        "sr",
        "sr/file",
        "sr4ir",
    ):
        assert name in methods, name
    m = methods.create("sr/swinir-x4", random_init=True)
    assert (m.arch, m.variant, m.scale) == ("swinir", "classical", 4)
    m = methods.create("sr", arch="rrdbnet", variant="bsrgan", random_init=True)
    assert (m.variant, m.scale) == ("bsrgan", 4)
    with pytest.raises(TypeError):
        methods.create("sr/swinir-x4", scale=2)  # the short form fixes the scale


def test_spandrel_file(tmp_path):
    net = build("rrdbnet", "esrgan", 4, {"num_feat": 8, "num_block": 2, "num_grow_ch": 32}).module
    torch.save({"params_ema": net.state_dict()}, tmp_path / "esrgan.pth")
    wrapped = SpandrelSRMethod(str(tmp_path / "esrgan.pth")).apply(Probe(), ctx(tmp_path))
    x = torch.rand(2, 3, 9, 9)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    assert torch.allclose(wrapped.super_resolve(x), expected, atol=1e-5)
