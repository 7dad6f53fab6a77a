"""The ``sr`` task's five outputs against direct computation on the border-cropped images: an SR output that is the HR
image plus small noise inside and garbage in a ``scale``-pixel frame, so any metric that keeps the frame is far off."""

from __future__ import annotations

import math

import lpips
import numpy as np
import pytest
import torch
from lrbench_sr import quality
from lrbench_sr.quality import SRDown, SRQuality, lpips_distance, psnr, ssim
from skimage.metrics import structural_similarity
from torchvision.transforms import functional as TF

from lrbench.builtin.toyworld import ToyWorld
from lrbench.models import ModelAdapter
from lrbench.tasks import RunContext

SCALE = 4


class _FramedCopy(ModelAdapter):
    """``super_resolve`` returns the HR image (known in advance) plus N(0, 4 levels) noise, and its inverse in a
    SCALE-pixel frame: cropped metrics see only the noise."""

    kind = "classifier"
    scale = SCALE

    def __init__(self, hr: torch.Tensor):
        g = torch.Generator().manual_seed(0)
        out = (hr + torch.randn(hr.shape, generator=g) * 4 / 255).clamp(0, 1)
        frame = torch.ones_like(hr, dtype=torch.bool)
        frame[..., SCALE:-SCALE, SCALE:-SCALE] = False
        self.out = torch.where(frame, 1 - hr, out)

    def identity(self):
        return {"family": "framed-copy"}

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        assert lr.shape[-1] * SCALE == self.out.shape[-1]
        return self.out


def _y(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on 0-255 (MATLAB's rgb2ycbcr), the Y the SR literature scores."""
    a = rgb.astype(np.float64) / 255
    return 16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # random trunk: offline, still a function
    ds = ToyWorld("test", n=1)
    hr = ds.load(0)  # 224 px square: srdown@4 is 56 px, x4 is 224 again
    hr_t = TF.to_tensor(hr)[None]
    model = _FramedCopy(hr_t)
    task = SRQuality(scale=SCALE, lpips="alex", crop_border="scale")  # the frame is scale px (default: 8)
    mp = pytest.MonkeyPatch()
    mp.setattr(quality, "build_lpips", lambda name: net)
    try:
        out = task.run(model, ds, [SRDown(SCALE)], RunContext())["srdown@4"]
    finally:
        mp.undo()
    sr8 = (model.out[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return out, sr8, np.asarray(hr), net


def test_psnr_rgb_and_y_are_computed_on_the_crop(scored):
    out, sr8, hr8, _ = scored
    c = slice(SCALE, -SCALE)
    assert out["psnr"][0] == pytest.approx(_psnr(sr8[c, c], hr8[c, c]), abs=1e-9)
    assert out["psnr_y"][0] == pytest.approx(_psnr(_y(sr8)[c, c], _y(hr8)[c, c]), abs=1e-6)
    assert 34 < out["psnr"][0] < 38  # 4-level noise: 20 log10(255 / 4) = 36.1 dB, a little less after rounding
    assert _psnr(sr8, hr8) < 20  # with the frame the PSNR would collapse


def test_ssim_rgb_and_y_are_computed_on_the_crop(scored):
    out, sr8, hr8, _ = scored
    c = slice(SCALE, -SCALE)
    direct = structural_similarity(
        sr8[c, c].astype(float),
        hr8[c, c].astype(float),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert out["ssim"][0] == pytest.approx(direct, abs=2e-3)
    assert out["ssim"][0] == pytest.approx(ssim(sr8[c, c], hr8[c, c], 0), abs=1e-12)
    direct_y = structural_similarity(
        _y(sr8)[c, c], _y(hr8)[c, c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert out["ssim_y"][0] == pytest.approx(direct_y, abs=2e-3)
    assert out["ssim_y"][0] > out["ssim"][0] - 0.05 and ssim(sr8, hr8, 0) < out["ssim"][0] - 0.02


def test_lpips_is_the_network_on_the_cropped_images_in_minus_one_to_one(scored):
    out, sr8, hr8, net = scored
    c = slice(SCALE, -SCALE)

    def t(a):
        return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255

    with torch.no_grad():
        direct = float(net(t(sr8[c, c]) * 2 - 1, t(hr8[c, c]) * 2 - 1))
        framed = float(net(t(sr8) * 2 - 1, t(hr8) * 2 - 1))
        unscaled = float(net(t(sr8[c, c]), t(hr8[c, c])))
    assert out["lpips"][0] == pytest.approx(direct, rel=1e-5)
    assert abs(framed - direct) > 0.05 * direct and abs(unscaled - direct) > 0.05 * direct
    assert float(lpips_distance(net, t(sr8), t(hr8), SCALE)[0]) == pytest.approx(direct, rel=1e-5)


def test_psnr_function_crops_scale_pixels_from_every_border():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:3] = 255 - sr[:3]  # garbage in the top 3 rows only; one noisy pixel inside
    sr[10, 10, 0] = sr[10, 10, 0] ^ 16
    mse = 16**2 / (14 * 18 * 3)  # one channel of one pixel off by 16 over the 14 x 18 x 3 crop
    assert psnr(sr, hr, 3) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    y_mse = (16 / 255 * 65.481) ** 2 / (14 * 18)
    assert psnr(sr, hr, 3, y_channel=True) == pytest.approx(10 * math.log10(255**2 / y_mse), rel=1e-6)  # float32 Y


class _Overshoot(ModelAdapter):
    """``super_resolve`` returns a contrast-stretched HR image, beyond [0, 1] in the dark and bright parts, as a
    sharpening SR network's raw output can be."""

    kind = "classifier"
    scale = SCALE

    def __init__(self, hr: torch.Tensor):
        self.out = (hr - 0.5) * 1.6 + 0.5

    def identity(self):
        return {"family": "overshoot"}

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        return self.out


def test_sr_output_is_clamped_to_the_image_range_before_scoring():
    ds = ToyWorld("test", n=1)
    hr = ds.load(0)
    model = _Overshoot(TF.to_tensor(hr)[None])
    assert model.out.max() > 1.05 and model.out.min() < -0.05
    out = SRQuality(scale=SCALE, lpips="none", crop_border="scale").run(model, ds, [SRDown(SCALE)], RunContext())
    sr8 = (model.out[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    c = slice(SCALE, -SCALE)
    assert out["srdown@4"]["psnr"][0] == pytest.approx(_psnr(sr8[c, c], np.asarray(hr)[c, c]), abs=1e-9)
