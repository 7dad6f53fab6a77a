"""SR quality: the ``sr`` task scores super-resolved images against their HR originals (PSNR, SSIM, LPIPS).

Protocol (as SR4IR computes it, ``src/utils/common/metrics.py``): images on the 0-255 scale, 8-bit SR outputs,
``crop_border`` pixels (8 by default, SR4IR's; BasicSR's tables crop ``scale``) cropped from every border, each metric
per image and then averaged; PSNR/SSIM on RGB and on the Y channel (ITU-R BT.601, as MATLAB's rgb2ycbcr); LPIPS on
[-1, 1] inputs with the same crop. The HR image is the model's ``hr_view`` when it has one (an SR4IR pair: Resize +
CenterCrop), otherwise each image center-cropped to a square (so the LR, SR and HR grids align exactly); the reference
is that HR image resized to the SR output size, which is the HR image itself whenever ``LR size x scale`` equals it
(``srdown@4`` on any image, ``bicubic@56`` x4 on the 224 px toy world).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import Field, validate_call
from torchvision.transforms import functional as TF

from lrbench import CellMetric, CellOutput, Dataset, Degradation, LrbenchError, ModelAdapter, RunContext, Task

log = logging.getLogger("lrbench.sr")

OUTPUTS = ("psnr", "psnr_y", "ssim", "ssim_y", "lpips")


def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = False) -> float:
    """PSNR of two (H, W, 3) RGB uint8 images on the 0-255 scale (basicsr's implementation, which expects BGR)."""
    from ._basicsr import calculate_psnr  # basicsr takes seconds to import: not at plugin load

    return float(calculate_psnr(sr[..., ::-1], hr[..., ::-1], crop_border, input_order="HWC", test_y_channel=y_channel))


def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = False) -> float:
    """SSIM (Gaussian 11x11 window, sigma 1.5, per channel then averaged) of two RGB uint8 images on 0-255."""
    from ._basicsr import calculate_ssim  # basicsr takes seconds to import: not at plugin load

    return float(calculate_ssim(sr[..., ::-1], hr[..., ::-1], crop_border, input_order="HWC", test_y_channel=y_channel))


def build_lpips(net: str) -> torch.nn.Module:
    """LPIPS with its published linear layers (in the wheel) on an ImageNet trunk (downloaded by torchvision on first
    use, into the torch hub cache)."""
    import lpips

    return lpips.LPIPS(net=net, verbose=False).eval()


def lpips_distance(model: torch.nn.Module, sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image LPIPS of float [0, 1] batches, border-cropped, on [-1, 1] inputs."""
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    with torch.no_grad():
        return model(sr * 2 - 1, hr * 2 - 1).flatten()


class SRDown(Degradation):
    """SR-benchmark LR image: HR cropped to a multiple of ``factor``, torch bicubic by 1/factor without antialias,
    rounded to 8 bits (SR4IR's on-the-fly LR)."""

    name = "srdown"
    #: a scale factor, not a pixel size
    varies, level_of = "downscale", "factor"

    @validate_call
    def __init__(self, factor: Annotated[int, Field(ge=1, description="a whole scale factor, >= 1")] = 4):
        self.factor = factor

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < self.factor:
            raise LrbenchError(f"srdown@{self.factor}: a {w}x{h} image has no pixel left at 1/{self.factor}")
        x = x[..., : h - h % self.factor, : w - w % self.factor]
        y = F.interpolate(x, scale_factor=1 / self.factor, mode="bicubic", align_corners=False, antialias=False)
        return (y.clamp(0, 1) * 255).round() / 255

    def pil(self, image: Image.Image) -> Image.Image:
        y = self.tensor(TF.to_tensor(image.convert("RGB"))[None])[0]
        return TF.to_pil_image((y * 255).round().to(torch.uint8))


class SRQuality(Task):
    """Scores SR outputs against HR images: PSNR / SSIM (RGB and Y) and LPIPS per image, for each LR condition.

    With an SR method the model's ``super_resolve`` is scored; without one (method ``none``) the baseline is plain
    ``upsample`` interpolation by ``scale`` (SR4IR's "bilinear up" row). The recognition model itself is not run.
    """

    name = "sr"
    dataset_task = "classification"
    #: the recognition model is never run, so any kind will do; chosen only when named (``task: sr``)
    model_kinds = ("zero-shot", "classifier", "embedder")
    auto_select = False
    default_metrics = ("psnr", "ssim", "psnr_y", "ssim_y", "lpips")
    outputs = OUTPUTS
    headline_metric = "psnr"

    def __init__(
        self,
        scale: int = 4,
        upsample: str = "bicubic",
        lpips: str = "vgg",
        batch_size: int = 16,
        crop_border: int | str = 8,
    ):
        if upsample not in ("bicubic", "bilinear"):
            raise ValueError(f"upsample must be bicubic or bilinear, got {upsample!r}")
        if lpips not in ("vgg", "alex", "none"):
            raise ValueError(f"lpips must be vgg, alex or none, got {lpips!r}")
        if crop_border != "scale" and (isinstance(crop_border, str) or int(crop_border) < 0):
            raise ValueError(f"crop_border must be a number of pixels >= 0 or 'scale', got {crop_border!r}")
        self.scale, self.upsample, self.lpips_net, self.batch_size = int(scale), upsample, lpips, int(batch_size)
        self.crop_border = crop_border if crop_border == "scale" else int(crop_border)
        self._lpips: torch.nn.Module | None | bool = None

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "scale": self.scale,
            "upsample": self.upsample,
            "lpips": self.lpips_net,
            "crop_border": self.crop_border,
        }

    def _lpips_model(self, device: torch.device) -> torch.nn.Module | None:
        if self._lpips is None:
            if self.lpips_net == "none":
                self._lpips = False
            else:
                try:
                    self._lpips = build_lpips(self.lpips_net).to(device)
                except Exception as exc:  # offline: the trunk download fails; the other metrics still count
                    log.warning(
                        "LPIPS (%s) unavailable, lpips will be NaN: %s: %s. Put the torchvision %s weights "
                        "in the torch hub cache or use `lpips: none`.",
                        self.lpips_net,
                        type(exc).__name__,
                        exc,
                        self.lpips_net,
                    )
                    self._lpips = False
        return self._lpips or None

    def _upscale(self, model: ModelAdapter, lr: torch.Tensor) -> tuple[torch.Tensor, int]:
        sr_fn: Callable[[torch.Tensor], torch.Tensor] | None = getattr(model, "super_resolve", None)
        if sr_fn is not None:
            return sr_fn(lr), int(model.scale)
        up = F.interpolate(lr, scale_factor=self.scale, mode=self.upsample, align_corners=False)
        return (up.clamp(0, 1) * 255).round() / 255, self.scale

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        lp = self._lpips_model(ctx.device)
        rows: dict[str, dict[str, list[float]]] = {d.condition: {k: [] for k in OUTPUTS} for d in conditions}
        index: list[int] = []
        for i in range(len(dataset)):
            try:
                image = dataset.load(i).convert("RGB")
            except Exception as exc:
                ctx.skipped.append(
                    {
                        "dataset": dataset.name,
                        "index": i,
                        "item": dataset.item_id(i),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
                continue
            index.append(i)
            view = model.hr_view
            hr = view.pil(image) if view is not None else TF.center_crop(image, [min(image.size)] * 2)
            for deg in conditions:
                lr = deg.pil(hr)
                if lr.size == hr.size:  # not a low-resolution condition (e.g. hr): nothing to super-resolve
                    for k in OUTPUTS:
                        rows[deg.condition][k].append(float("nan"))
                    continue
                x = TF.to_tensor(lr)[None].to(ctx.device)
                with torch.no_grad(), ctx.autocast():
                    sr, scale = self._upscale(model, x)
                border = scale if self.crop_border == "scale" else self.crop_border
                sr = sr.float().clamp(0, 1)
                ref = (
                    hr
                    if hr.size == (sr.shape[-1], sr.shape[-2])
                    else TF.resize(hr, list(sr.shape[-2:]), interpolation=TF.InterpolationMode.BICUBIC)
                )
                sr8 = (sr[0] * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                ref8 = np.asarray(ref)
                r = rows[deg.condition]
                r["psnr"].append(psnr(sr8, ref8, border))
                r["psnr_y"].append(psnr(sr8, ref8, border, y_channel=True))
                r["ssim"].append(ssim(sr8, ref8, border))
                r["ssim_y"].append(ssim(sr8, ref8, border, y_channel=True))
                if lp is not None:
                    ref_t = TF.to_tensor(ref)[None].to(ctx.device)
                    sr_t = torch.from_numpy(sr8).permute(2, 0, 1)[None].float().div(255).to(ctx.device)
                    r["lpips"].append(float(lpips_distance(lp, sr_t, ref_t, border)[0]))
                else:
                    r["lpips"].append(float("nan"))
            ctx.progress(1)
        idx = np.asarray(index, dtype=np.int64)
        return {
            c: CellOutput(idx, len(idx), {k: np.asarray(v, dtype=np.float64) for k, v in r.items()})
            for c, r in rows.items()
        }


class SRMetric(CellMetric):
    """Mean over images of one per-image SR quality value computed by the ``sr`` task."""

    tasks = ("sr",)

    def __init__(self, output: str):
        self.output = output

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float:
        values = outputs[self.output]
        return float(np.mean(values)) if len(values) else float("nan")


def metric_factory(output: str, doc: str) -> Callable[[], SRMetric]:
    def factory() -> SRMetric:
        return SRMetric(output)

    factory.__doc__ = doc
    return factory


METRICS = {
    "psnr": "PSNR (dB) of SR vs HR on RGB, 0-255, the task's crop_border cropped, mean over images",
    "psnr_y": "PSNR (dB) on the Y channel (BT.601), the task's crop_border cropped, mean over images",
    "ssim": "SSIM on RGB (per channel, averaged), the task's crop_border cropped, mean over images",
    "ssim_y": "SSIM on the Y channel, the task's crop_border cropped, mean over images",
    "lpips": "LPIPS distance (lower is better; the task's lpips network), mean over images",
}
