"""SR quality: PSNR / SSIM against hand computation and scikit-image, LPIPS plumbing, the sr task end to end."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_sr import quality
from lrbench_sr.method import SRMethod
from lrbench_sr.quality import SRDown, SRMetric, SRQuality, lpips_distance, psnr, ssim
from PIL import Image
from skimage.metrics import structural_similarity
from sr_testing import TINY
from torchvision.transforms import functional as TF

from lrbench.builtin.degradations import HR, Resize
from lrbench.builtin.toyworld import ToyWorld
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.models import ModelAdapter
from lrbench.tasks import RunContext


def pair(seed: int = 0, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(20, 236, (size, size, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-12, 13, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


def test_psnr_by_hand():
    sr, hr = pair()
    c = 4
    mse = np.mean((sr[c:-c, c:-c].astype(float) - hr[c:-c, c:-c]) ** 2)
    assert psnr(sr, hr, c) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    # a constant error of 10 levels everywhere: MSE 100 -> 28.1308 dB
    assert psnr(np.full((8, 8, 3), 110, np.uint8), np.full((8, 8, 3), 100, np.uint8), 0) == pytest.approx(
        10 * math.log10(255**2 / 100), abs=1e-9
    )


def test_psnr_y_by_hand():
    sr, hr = pair(1)

    def y(a):  # ITU-R BT.601 luma on 0-255 (MATLAB rgb2ycbcr)
        a = a.astype(float) / 255
        return 16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]

    c = 2
    mse = np.mean((y(sr) - y(hr))[c:-c, c:-c] ** 2)
    assert psnr(sr, hr, c, y_channel=True) == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-6)


def test_ssim_identity_and_skimage_agreement():
    sr, hr = pair(2, 40)
    assert ssim(hr, hr, 4) == pytest.approx(1.0, abs=1e-12)
    c = 4
    ref = structural_similarity(
        sr[c:-c, c:-c].astype(float),
        hr[c:-c, c:-c].astype(float),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    got = ssim(sr, hr, c)
    assert 0 < got < 1 and got == pytest.approx(ref, abs=2e-3)


def test_lpips_plumbing_offline():
    import lpips

    net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    a, b = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    same = lpips_distance(net, a, a, 4)
    diff = lpips_distance(net, a, b, 4)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2), atol=1e-6)
    assert bool((diff > 0).all())


def test_srdown_is_sr4ir_lr():
    x = torch.rand(2, 3, 30, 26)
    y = SRDown(4).tensor(x)
    ref = F.interpolate(x[..., :28, :24], scale_factor=0.25, mode="bicubic", align_corners=False).clamp(0, 1)
    assert y.shape == (2, 3, 7, 6)
    assert torch.allclose(y, (ref * 255).round() / 255)
    img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert SRDown(4).pil(img).size == (6, 7)
    assert SRDown(4).condition == "srdown@4"
    assert SRDown().factor == 4  # SR4IR's x4 unless told


class Probe(ModelAdapter):
    kind = "classifier"

    def identity(self):
        return {"family": "probe"}


def run_task(model, conditions, n=3, lpips="none"):
    task = SRQuality(scale=4, lpips=lpips)
    ds = ToyWorld("test", n=n)
    return task.run(model, ds, conditions, RunContext()), ds


def test_sr_task_bicubic_baseline_matches_direct_computation():
    out, ds = run_task(Probe(), [SRDown(4), Resize(56), HR()])
    assert set(out) == {"srdown@4", "bicubic@56", "hr"}
    assert np.isnan(out["hr"]["psnr"]).all()  # nothing to super-resolve at full size
    hr = ds.load(0)  # 224 px square: srdown@4 is 56 px, bicubic up x4 is 224 px again
    lr = TF.to_tensor(SRDown(4).pil(hr))[None]
    up = (F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1) * 255).round()
    up8, hr8 = up[0].permute(1, 2, 0).to(torch.uint8).numpy(), np.asarray(hr)
    assert out["srdown@4"]["psnr"][0] == pytest.approx(psnr(up8, hr8, 8), abs=1e-9)  # SR4IR's crop_border 8
    assert out["srdown@4"]["psnr"][0] != pytest.approx(psnr(up8, hr8, 4), abs=1e-3)
    by_scale = SRQuality(scale=4, lpips="none", crop_border="scale").run(Probe(), ds, [SRDown(4)], RunContext())
    assert by_scale["srdown@4"]["psnr"][0] == pytest.approx(psnr(up8, hr8, 4), abs=1e-9)  # BasicSR's tables
    assert 15 < out["bicubic@56"]["psnr"].mean() < 45
    assert (out["srdown@4"]["ssim"] < 1).all() and (out["srdown@4"]["ssim_y"] > 0).all()
    assert out["srdown@4"]["index"].tolist() == [0, 1, 2]
    assert SRMetric("psnr").compute(out["srdown@4"], ds) == pytest.approx(out["srdown@4"]["psnr"].mean())


def test_sr_task_scores_the_sr_method_with_lpips(tmp_path, monkeypatch):
    import lpips

    monkeypatch.setattr(quality, "build_lpips", lambda net: lpips.LPIPS(net=net, pnet_rand=True, verbose=False))
    ctx = MethodContext(device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path), log=logging.getLogger("t"))
    model = SRMethod("edsr", "baseline", 4, random_init=True, options=TINY[("edsr", "baseline")]).apply(Probe(), ctx)
    out, _ = run_task(model, [Resize(16)], n=2, lpips="alex")
    cell = out["bicubic@16"]
    assert cell["psnr"].shape == (2,) and np.isfinite(cell["psnr"]).all()
    assert np.isfinite(cell["lpips"]).all() and (cell["lpips"] > 0).all()


def test_lpips_unavailable_offline_gives_nan_and_the_other_metrics(monkeypatch, caplog):
    def offline(net):
        raise OSError("no network to download the trunk")

    monkeypatch.setattr(quality, "build_lpips", offline)
    with caplog.at_level(logging.WARNING, logger="lrbench.sr"):
        out, _ = run_task(Probe(), [SRDown(4)], n=2, lpips="alex")
    cell = out["srdown@4"]
    assert np.isnan(cell["lpips"]).all() and np.isfinite(cell["psnr"]).all() and np.isfinite(cell["ssim_y"]).all()
    assert "LPIPS (alex) unavailable" in caplog.text and "lpips: none" in caplog.text


def test_sr_task_reports_one_progress_unit_per_image():
    seen: list[int] = []
    task = SRQuality(scale=4, lpips="none")
    task.run(Probe(), ToyWorld("test", n=3), [SRDown(4), HR()], RunContext(progress=seen.append))
    assert seen == [1, 1, 1]  # one per image, whatever the number of conditions


def test_sr_task_is_chosen_only_when_named():
    from types import SimpleNamespace

    from lrbench.plan import choose_task
    from lrbench.plugins import get_plugins

    # the sr task accepts classifiers on classification datasets too, but a spec without `task:` keeps classification
    task, item = choose_task(get_plugins(), SimpleNamespace(task=None), "classifier", ToyWorld("test", n=1))
    assert item.name == "classification" and task.name == "classification"
