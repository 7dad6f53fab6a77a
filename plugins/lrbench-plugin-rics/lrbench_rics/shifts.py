"""Shift conditions: realistic crop-shifts (a camera turning slightly) and cyclic shifts, optionally followed by a
low-resolution step.

``shift@D`` (realistic, paper section 2): the image is resized to ``resize`` x ``resize`` (256), the reference view is
the centred ``crop`` x ``crop`` (224) crop, and the allowed shifts are every crop whose centre moves by
``|dx|, |dy| <= D`` pixels: a column of pixels leaves the view on one side and a new one enters on the other.
``axes: x`` (or ``y``) restricts the shifts to one axis: 2D+1 views instead of (2D+1)^2, for CPU budgets.
``cyclic@D``: the image is resized (shorter side) and centre-cropped to ``size``; views are ``torch.roll`` of it.

``then`` composes a low-resolution degradation applied to every view after the shift (``then: bicubic@32``): the
scene moves, then a low-resolution camera records it. The model's own preprocessing then brings the view back to its
input size, so a 1-pixel shift at 224 becomes a sub-pixel shift of the low-resolution image.

Used as an ordinary condition (any task), a shift condition yields its reference view; the ``shift`` task asks it for
every allowed view (``offsets``, ``views_pil``, ``views_tensor``) and derives the per-shift predictions.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from PIL import Image
from pydantic import NonNegativeInt, validate_call
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench import Degradation, LrbenchError, ParameterRangeError, Pixels, PluginContext, check_size


def build_then(then: str | dict[str, Any] | None, context: PluginContext | None) -> Degradation | None:
    """The low-resolution step from a condition string (``bicubic@16``) or mapping (``{name: bicubic, size: 16}``),
    built by the core's condition rule from the registries of the plugin set building the shift condition."""
    if then is None:
        return None
    if context is None:
        raise LrbenchError(
            "then: a shift condition with a 'then' step is built through the degradations registry "
            "(it needs the plugin context to build the step)"
        )
    if not isinstance(then, (str, dict)):
        raise LrbenchError(f"then: expected a condition such as 'bicubic@16' or a mapping with 'name', got {then!r}")
    deg = context.condition(then, "then")
    if isinstance(deg, ShiftCondition):
        raise LrbenchError(
            f"then: {deg.name!r} is itself a shift condition; 'then' takes a degradation such as bicubic@16"
        )
    return deg


AXES = ("xy", "x", "y")
Axes = Literal["xy", "x", "y"]
#: pydantic checks the ranges; the plugin context is passed through as it is
_checked = validate_call(config={"arbitrary_types_allowed": True})


def shift_offsets(max_shift: int, axes: str = "xy") -> np.ndarray:
    """(S, 2) integer offsets (dy, dx) with |dy|, |dx| <= max_shift, the reference (0, 0) first, then raster order.

    ``axes``: ``xy`` every 2-D shift ((2D+1)^2 views), ``x`` horizontal only, ``y`` vertical only (2D+1 views).
    """
    if axes not in AXES:
        raise ValueError(f"axes must be one of {', '.join(AXES)}, got {axes!r}")
    r = np.arange(-max_shift, max_shift + 1)
    ry = r if "y" in axes else np.zeros(1, dtype=r.dtype)
    rx = r if "x" in axes else np.zeros(1, dtype=r.dtype)
    grid = np.stack(np.meshgrid(ry, rx, indexing="ij"), axis=-1).reshape(-1, 2)
    rest = grid[np.any(grid != 0, axis=1)]
    return np.concatenate([np.zeros((1, 2), dtype=np.int64), rest.astype(np.int64)])


class ShiftCondition(Degradation):
    """Common part of the shift conditions: offsets, the ``then`` step, views in both pixel paths."""

    max_shift: int
    axes: str
    _then: Degradation | None

    def _init_then(self, then: str | dict[str, Any] | None, context: PluginContext | None) -> None:
        self._then = build_then(then, context)
        self.then = None if self._then is None else self._then.condition

    def offsets(self) -> np.ndarray:
        return shift_offsets(self.max_shift, self.axes)

    def family(self) -> dict[str, Any]:
        """Everything but ``max_shift``: conditions of one family share their views (shift@1 is part of shift@9)."""
        return {"name": self.name, **{k: v for k, v in self.params().items() if k != "max_shift"}}

    def base_pil(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError

    def view_pil(self, base: Image.Image, dy: int, dx: int) -> Image.Image:
        raise NotImplementedError

    def views_uint8(self, base: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
        """(S, 3, h, w) uint8 views of one base image (3, H, W), before ``then``."""
        raise NotImplementedError

    def views_pil(self, base: Image.Image, offsets: Sequence[Sequence[int]]) -> list[Image.Image]:
        views = [self.view_pil(base, int(dy), int(dx)) for dy, dx in offsets]
        return [self._then.pil(v) for v in views] if self._then is not None else views

    def views_tensor(self, base: Image.Image, offsets: np.ndarray, device: torch.device) -> torch.Tensor:
        """Fast path: float [0, 1] views on ``device``, ``then`` applied batched."""
        x = self.views_uint8(TF.pil_to_tensor(base.convert("RGB")), offsets).to(device).float().div_(255)
        return self._then.tensor(x) if self._then is not None else x

    def pil(self, image: Image.Image) -> Image.Image:
        return self.views_pil(self.base_pil(image), [(0, 0)])[0]


class CropShift(ShiftCondition):
    """Realistic crop-shift by up to ``max_shift`` px: resize to ``resize``^2, crops of ``crop`` around the centre."""

    name = "shift"
    varies, level_of = "shift", "max_shift"

    @_checked
    def __init__(
        self,
        max_shift: NonNegativeInt,
        resize: Pixels = 256,
        crop: Pixels = 224,
        then: str | dict[str, Any] | None = None,
        axes: Axes = "xy",
        allow_large: bool = False,
        context: PluginContext | None = None,
    ):
        check_size(resize, allow_large, "resize")
        if crop > resize:
            raise ParameterRangeError("crop", f"bad value {crop}: crop must be in [1, resize = {resize}] px")
        self.max_shift, self.resize, self.crop, self.axes = max_shift, resize, crop, axes  # max_shift first: @D
        margin = (resize - crop) // 2
        if max_shift > margin:
            raise ParameterRangeError(
                "max_shift",
                f"bad value {max_shift}: max_shift must be in [0, {margin}] px, (resize - crop) // 2 = {margin} "
                f"for resize={resize}, crop={crop} (a larger shift moves the crop out of the image)",
            )
        self._init_then(then, context)

    def _origin(self) -> int:
        return (self.resize - self.crop) // 2

    def base_pil(self, image: Image.Image) -> Image.Image:
        return TF.resize(image.convert("RGB"), [self.resize, self.resize], interpolation=InterpolationMode.BICUBIC)

    def view_pil(self, base: Image.Image, dy: int, dx: int) -> Image.Image:
        o = self._origin()
        return base.crop((o + dx, o + dy, o + dx + self.crop, o + dy + self.crop))

    def views_uint8(self, base: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
        o, c = self._origin(), self.crop
        return torch.stack([base[:, o + dy : o + dy + c, o + dx : o + dx + c] for dy, dx in offsets.tolist()])

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        x = TF.resize(x, [self.resize, self.resize], interpolation=InterpolationMode.BICUBIC, antialias=True)
        x = TF.center_crop(x.clamp(0, 1), [self.crop, self.crop])
        return self._then.tensor(x) if self._then is not None else x


class CyclicShift(ShiftCondition):
    """Cyclic shift by up to ``max_shift`` px of the image resized (shorter side) and centre-cropped to ``size``."""

    name = "cyclic"
    varies, level_of = "cyclic-shift", "max_shift"

    @_checked
    def __init__(
        self,
        max_shift: NonNegativeInt,
        size: Pixels = 224,
        then: str | dict[str, Any] | None = None,
        axes: Axes = "xy",
        allow_large: bool = False,
        context: PluginContext | None = None,
    ):
        check_size(size, allow_large)
        if max_shift > size // 2:
            raise ParameterRangeError(
                "max_shift",
                f"bad value {max_shift}: max_shift must be in [0, {size // 2}] px, size // 2 = {size // 2} "
                f"for size={size} "
                "(a cyclic shift by more repeats a view already in the set)",
            )
        self.max_shift, self.size, self.axes = max_shift, size, axes  # max_shift first: the @D of the condition
        self._init_then(then, context)

    def base_pil(self, image: Image.Image) -> Image.Image:
        image = TF.resize(image.convert("RGB"), self.size, interpolation=InterpolationMode.BICUBIC)
        return TF.center_crop(image, [self.size, self.size])

    def view_pil(self, base: Image.Image, dy: int, dx: int) -> Image.Image:
        return Image.fromarray(np.roll(np.asarray(base), shift=(dy, dx), axis=(0, 1)))

    def views_uint8(self, base: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
        return torch.stack([torch.roll(base, shifts=(dy, dx), dims=(1, 2)) for dy, dx in offsets.tolist()])

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        x = TF.resize(x, self.size, interpolation=InterpolationMode.BICUBIC, antialias=True)
        x = TF.center_crop(x.clamp(0, 1), [self.size, self.size])
        return self._then.tensor(x) if self._then is not None else x
