"""The face papers' low-resolution simulation and the per-image resolution protocols.

Knoche et al. (and the LogExp paper) keep the image *size* at 112 px and remove detail: bicubic down to r px WITH
antialias, bicubic back up to 112 px WITHOUT antialias, clipped to 8 bits. ``face-lr@r`` is that degradation.

Pair mode (which images of a pair are degraded) is not a property of an image, so the task applies it: ``cross`` keeps
the first image of every pair (the gallery image in identification) at full resolution and degrades the other,
``equal`` degrades both. The task's ``mode`` parameter sets it for every condition; a ``face-lr`` / ``face-protocol``
condition may override it with its own ``mode`` (so one run can hold ``face-lr@16`` and
``face-lr@16(mode=equal)``).

``face-protocol@low`` gives every image its own resolution, read from the published CSV files (one integer per image in
.bin order) or drawn uniformly from the range (low 5-10, mid 11-39, high 40-112, all 5-112) with a fixed seed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import NonNegativeInt, validate_call

from lrbench import MAX_SIZE, Degradation, LrbenchError, Pixels, check_size

MODES = ("cross", "equal")
Mode = Literal["cross", "equal"]
#: resolution ranges of the published protocols (inclusive), as used in the authors' files
RANGES = {"low": (5, 10), "mid": (11, 39), "high": (40, 112), "all": (5, 112)}


def check_mode(mode: str | None) -> str | None:
    if mode is not None and mode not in MODES:
        raise LrbenchError(f"pair mode {mode!r} is not known; choices: {', '.join(MODES)}")
    return mode


def lr_pil(image: Image.Image, size: int, out: tuple[int, int] | None = None) -> Image.Image:
    """Reference path: PIL bicubic down to size x size (PIL filters with the scaled kernel: antialiased), then PIL
    bicubic up to ``out`` (default: the input's size); PIL works in 8 bits, so the result is clipped to uint8."""
    w, h = image.size
    small = image.convert("RGB").resize((size, size), Image.BICUBIC)
    return small.resize(out or (w, h), Image.BICUBIC)


def lr_tensor(x: torch.Tensor, size: int | torch.Tensor, out: tuple[int, int] | None = None) -> torch.Tensor:
    """Fast path on a float [0, 1] batch (B, 3, H, W): torch bicubic down with antialias, up without, 8-bit levels.

    ``size`` may be one int or a per-image int tensor (images sharing a resolution are processed together)."""
    out = out or tuple(x.shape[-2:])
    if isinstance(size, torch.Tensor):
        result = torch.empty((x.shape[0], x.shape[1], *out), dtype=x.dtype, device=x.device)
        for r in torch.unique(size).tolist():
            sel = (size == r).nonzero().flatten().to(x.device)
            result[sel] = lr_tensor(x[sel], int(r), out)
        return result
    small = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    up = F.interpolate(small, size=out, mode="bicubic", align_corners=False, antialias=False)
    return up.clamp(0, 1).mul(255).round().div(255)


class FaceLR(Degradation):
    """Face LR simulation: bicubic down to ``size`` px (antialiased), bicubic back up to the image size, 8-bit."""

    name = "face-lr"
    varies, level_of = "resolution", "size"

    @validate_call
    def __init__(self, size: Pixels, mode: Mode | None = None, allow_large: bool = False):
        self.size = check_size(size, allow_large)
        self.mode = mode

    def pil(self, image: Image.Image) -> Image.Image:
        return lr_pil(image, self.size)

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        return lr_tensor(x, self.size)


def parse_protocol(text: str, source: str = "protocol") -> np.ndarray:
    """Integers (one per image, .bin order) separated by commas, whitespace or newlines; one header line allowed."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines and not re.fullmatch(r"[\d\s,;]+", lines[0]):
        lines = lines[1:]  # a header such as "resolution"
    tokens = [t for t in re.split(r"[\s,;]+", " ".join(lines)) if t]
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        raise LrbenchError(f"{source}: expected one integer resolution per image, found {bad[0]!r}")
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    if len(values) == 0:
        raise LrbenchError(f"{source}: no resolutions found")
    if values.min() < 1 or values.max() > MAX_SIZE:
        bad = values.min() if values.min() < 1 else values.max()
        raise LrbenchError(f"{source}: resolutions must be in [1, {MAX_SIZE}] px, found {bad}")
    return values


class FaceProtocol(Degradation):
    """Per-image resolutions of the multi-resolution protocols (a CSV file, or drawn uniformly from a range)."""

    name = "face-protocol"
    #: each image its own resolution: no single level
    varies = "mixed-resolution"

    @validate_call
    def __init__(
        self,
        range: Literal["low", "mid", "high", "all"] = "all",
        file: str | None = None,
        seed: NonNegativeInt = 0,
        mode: Mode | None = None,
    ):
        self.range, self.file, self.seed, self.mode = range, file, seed, mode
        self._from_file: np.ndarray | None = None
        if file is not None:
            path = Path(file).expanduser()
            if not path.is_file():
                raise LrbenchError(f"face-protocol: protocol file {path} not found (one integer per image, .bin order)")
            self._from_file = parse_protocol(path.read_text(), str(path))

    def resolutions(self, n: int) -> np.ndarray:
        """The resolution of each of ``n`` images (in dataset order)."""
        if self._from_file is not None:
            if len(self._from_file) != n:
                raise LrbenchError(
                    f"face-protocol: {self.file} lists {len(self._from_file)} resolutions but the "
                    f"dataset has {n} images"
                )
            return self._from_file
        lo, hi = RANGES[self.range]
        return np.random.default_rng(self.seed).integers(lo, hi + 1, size=n)

    def pil(self, image: Image.Image) -> Image.Image:
        raise LrbenchError(
            "face-protocol gives each image its own resolution: use it with the face verification or "
            "identification task, which knows the image indices"
        )

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.pil(None)  # type: ignore[arg-type]

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        if self._from_file is not None:
            ident["resolutions"] = self._from_file.tolist()
        return ident
