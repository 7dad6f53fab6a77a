"""Built-in degradations: resize families (the LR0.FM protocol), pixelation, blur, JPEG, noise."""
from __future__ import annotations

import io
import zlib

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms import functional as TF

from .. import hookimpl
from ..degradations import Degradation, Resample
from ..models import interpolation_mode, shorter_side_size


class HR(Degradation):
    """The model's own resolution: no degradation."""

    name = "hr"

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

    def __init__(self, size: int, square: bool = False):
        if int(size) < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size, self.square = int(size), bool(square)

    def _target(self) -> int | list[int]:
        return [self.size, self.size] if self.square else self.size

    def pil(self, image: Image.Image) -> Image.Image:
        return TF.resize(image, self._target(), interpolation=interpolation_mode(self.interpolation))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        mode = interpolation_mode(self.interpolation)
        out = TF.resize(x, self._target(), interpolation=mode, antialias=self.interpolation != "nearest")
        return out.clamp_(0, 1)

    def resample(self, h: int, w: int) -> Resample | None:
        if self.interpolation not in ("bicubic", "bilinear"):  # nearest and box do not survive a two-step resize
            return None
        return Resample(*((self.size, self.size) if self.square else shorter_side_size(h, w, self.size)),
                        self.interpolation)


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
            size = (self.size, max(1, int(self.size * w / h))) if h <= w else (max(1, int(self.size * h / w)), self.size)
        return torch.nn.functional.adaptive_avg_pool2d(x, size)


class Nearest(Resize):
    """Like ``bicubic`` with nearest-neighbour sampling (aliased: no antialias)."""

    name = "nearest"
    interpolation = "nearest"


class Pixelate(Degradation):
    """Average ``size`` x ``size``-ish blocks and blow them back up with nearest: visible pixelation at full size."""

    name = "pixelate"

    def __init__(self, size: int):
        self.size = int(size)

    def pil(self, image: Image.Image) -> Image.Image:
        small = Area(self.size).pil(image)
        return small.resize(image.size, Image.NEAREST)

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        small = Area(self.size).tensor(x)
        return torch.nn.functional.interpolate(small, size=x.shape[-2:], mode="nearest")


class GaussianBlur(Degradation):
    """Gaussian blur with standard deviation ``sigma`` pixels (PIL's radius is the standard deviation)."""

    name = "gaussian_blur"

    def __init__(self, sigma: float):
        self.sigma = float(sigma)

    def pil(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=self.sigma))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 * int(np.ceil(3 * self.sigma)) + 1
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[self.sigma, self.sigma])


class Jpeg(Degradation):
    """JPEG re-encoding at ``quality`` (1-95)."""

    name = "jpeg"

    def __init__(self, quality: int):
        self.quality = int(quality)

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
    """Additive Gaussian noise, ``sigma`` on the [0, 1] scale; deterministic (reference path seeded by image content)."""

    name = "noise"

    def __init__(self, sigma: float, seed: int = 0):
        self.sigma, self.seed = float(sigma), int(seed)

    def _rng_seed(self, data: bytes) -> int:
        return (self.seed * 1_000_003 + zlib.crc32(data)) % (2**31)

    def pil(self, image: Image.Image) -> Image.Image:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        rng = np.random.default_rng(self._rng_seed(arr.tobytes()))
        arr = np.clip(arr + rng.normal(0, self.sigma, arr.shape).astype(np.float32), 0, 1)
        return Image.fromarray((arr * 255).round().astype(np.uint8))

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=gen).to(x.device) * self.sigma
        return (x + noise).clamp_(0, 1)


@hookimpl
def register_degradations(register):
    for cls in (HR, Resize, Bilinear, Area, Nearest, Pixelate, GaussianBlur, Jpeg, Noise):
        register(cls.name, cls, (cls.__doc__ or "").strip().split("\n")[0])
