"""Built-in degradations: resize families (the LR0.FM protocol), pixelation, blur, JPEG, noise."""

from __future__ import annotations

import io
import zlib
from typing import Annotated

import numpy as np
import torch
from PIL import Image, ImageFilter
from pydantic import Field, validate_call
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms import functional as TF

from .. import hookimpl
from ..degradations import Degradation, NonNegativeFinite, Pixels, PositiveFinite, Resample, check_size
from ..models import interpolation_mode, shorter_side_size


class HR(Degradation):
    """The model's own resolution: no degradation."""

    name = "hr"
    varies = "clean"

    def pil(self, image: Image.Image) -> Image.Image:
        return image

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def resample(self, h: int, w: int) -> Resample:
        return Resample(h, w, None)


class Resize(Degradation):
    """Resize the SHORTER side to ``size`` (aspect kept), as LR0.FM's ``Resize(low_res)``; ``square`` gives size x size.

    The model's own preprocessing then resizes back up to its input size.
    """

    name = "bicubic"
    interpolation = "bicubic"
    varies, level_of = "resolution", "size"

    @validate_call
    def __init__(self, size: Pixels, square: bool = False, allow_large: bool = False):
        self.size, self.square = check_size(size, allow_large), square

    def _target(self) -> int | list[int]:
        return [self.size, self.size] if self.square else self.size

    def pil(self, image: Image.Image) -> Image.Image:
        return TF.resize(image, self._target(), interpolation=interpolation_mode(self.interpolation))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        mode = interpolation_mode(self.interpolation)
        out = TF.resize(x, self._target(), interpolation=mode, antialias=self.interpolation != "nearest")
        return out.clamp_(0, 1)

    def resample(self, h: int, w: int) -> Resample | None:
        if self.interpolation not in ("bicubic", "bilinear"):  # torch's antialiased kernels are PIL's for these two
            return None
        return Resample(
            *((self.size, self.size) if self.square else shorter_side_size(h, w, self.size)), self.interpolation
        )


class Bilinear(Resize):
    """Like ``bicubic`` with bilinear interpolation."""

    name = "bilinear"
    interpolation = "bilinear"


class Area(Resize):
    """Like ``bicubic`` with box (area-average) interpolation."""

    name = "area"
    interpolation = "box"

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.square:
            size = (self.size, self.size)
        else:
            size = (
                (self.size, max(1, int(self.size * w / h))) if h <= w else (max(1, int(self.size * h / w)), self.size)
            )
        return torch.nn.functional.adaptive_avg_pool2d(x, size)


class Nearest(Resize):
    """Like ``bicubic`` with nearest-neighbour sampling (aliased: no antialias)."""

    name = "nearest"
    interpolation = "nearest"

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        # nearest-exact samples pixel centres as PIL does; torch's legacy "nearest" picks other pixels (6 levels mean)
        return TF.resize(x, self._target(), interpolation=TF.InterpolationMode.NEAREST_EXACT, antialias=False)


class Pixelate(Degradation):
    """Average ``size`` x ``size``-ish blocks and blow them back up with nearest: visible pixelation at full size."""

    name = "pixelate"
    varies, level_of = "resolution", "size"

    @validate_call
    def __init__(self, size: Pixels, allow_large: bool = False):
        self.size = check_size(size, allow_large)

    def pil(self, image: Image.Image) -> Image.Image:
        small = Area(self.size, allow_large=True).pil(image)
        return small.resize(image.size, Image.NEAREST)

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        small = Area(self.size, allow_large=True).tensor(x)
        return torch.nn.functional.interpolate(small, size=x.shape[-2:], mode="nearest")


class GaussianBlur(Degradation):
    """Gaussian blur with standard deviation ``sigma`` pixels (PIL's radius is the standard deviation)."""

    name = "gaussian-blur"
    varies, level_of = "blur", "sigma"

    @validate_call
    def __init__(self, sigma: PositiveFinite):
        self.sigma = sigma

    def pil(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=self.sigma))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 * int(np.ceil(3 * self.sigma)) + 1
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[self.sigma, self.sigma])


class Jpeg(Degradation):
    """JPEG re-encoding at ``quality`` (1-100; libjpeg's useful range ends at 95)."""

    name = "jpeg"
    varies, level_of = "jpeg", "quality"

    @validate_call
    def __init__(self, quality: Annotated[int, Field(ge=1, le=100)]):
        self.quality = quality

    def pil(self, image: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=self.quality)
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        as_u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        out = [decode_jpeg(encode_jpeg(img, quality=self.quality)) for img in as_u8]
        return torch.stack(out).to(device).float().div_(255)


class Noise(Degradation):
    """Additive Gaussian noise, ``sigma`` on the [0, 1] scale, drawn from a generator seeded by ``seed`` and the image's
    content: an image's noise never depends on the batch it is in (batch size is not part of a cell's key)."""

    name = "noise"
    varies, level_of = "noise", "sigma"

    @validate_call
    def __init__(self, sigma: NonNegativeFinite, seed: int = 0):
        self.sigma, self.seed = sigma, seed

    def _draw(self, hwc: np.ndarray) -> np.ndarray:
        """The noise for one float32 (H, W, 3) image in [0, 1]; both paths call it, so they add the same draw."""
        rng = np.random.default_rng((self.seed * 1_000_003 + zlib.crc32(hwc.tobytes())) % (2**31))
        return rng.normal(0, self.sigma, hwc.shape).astype(np.float32)

    def pil(self, image: Image.Image) -> Image.Image:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        arr = np.clip(arr + self._draw(arr), 0, 1)
        return Image.fromarray((arr * 255).round().astype(np.uint8))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        hwc = x.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        noise = np.stack([self._draw(np.ascontiguousarray(img)) for img in hwc])
        return (x + torch.from_numpy(noise).permute(0, 3, 1, 2).to(x.device, x.dtype)).clamp_(0, 1)


@hookimpl
def register_degradations(register):
    for cls in (HR, Resize, Bilinear, Area, Nearest, Pixelate, GaussianBlur, Jpeg, Noise):
        register(cls.name, cls, (cls.__doc__ or "").strip().split("\n")[0])
