"""Degradations and the conditions they name.

A degradation has two implementations of the same function: ``pil`` (the reference path, per image, exactly as the
papers' code) and ``tensor`` (batched, on any device, for the fast path). A *condition* is a degradation with its
parameters, written ``name@value`` for its first parameter (``bicubic@16``) or as a mapping in a spec.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, ClassVar, NamedTuple

import torch
from PIL import Image
from pydantic import Field

from .registry import LrbenchError

#: the largest size in pixels a condition may ask for without ``allow_large: true`` (memory grows with its square:
#: bicubic@100000 needs ~24 GB per image)
MAX_SIZE = 4096

# Valid ranges, declared in a degradation's signature (``lrbench validate`` checks a spec against them, with the key
# path) and enforced at construction by ``pydantic.validate_call``:
Pixels = Annotated[int, Field(ge=1, description="a size in pixels, >= 1")]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFinite = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ParameterRangeError(LrbenchError, ValueError):
    """A degradation parameter outside its valid range; ``param`` names it (validation reports ``conditions[i].param``)."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(message)


def check_size(value: int, allow_large: bool, param: str = "size") -> int:
    """``value`` if it is at most :data:`MAX_SIZE` px or the user opted in with ``allow_large: true``."""
    if value > MAX_SIZE and not allow_large:
        raise ParameterRangeError(
            param,
            f"bad value {value}: {param} must be in [1, {MAX_SIZE}] px; a larger size "
            "needs 'allow_large: true' in the condition (memory grows with its square)",
        )
    return value


class Resample(NamedTuple):
    """A degradation that is a plain resize of the whole image: its output size and (antialiased) interpolation;
    ``interpolation`` None: the image unchanged."""

    height: int
    width: int
    interpolation: str | None


class Degradation:
    """Base class; subclasses set ``name`` and implement ``pil`` and ``tensor``."""

    name: ClassVar[str] = "degradation"
    #: what the condition varies (results' ``family`` column): ``resolution`` (px), ``jpeg`` (quality), ``blur``
    #: (sigma), ``noise`` (sigma), ``shift`` (px), ``clean`` (nothing: ``hr``); empty: the degradation's name
    varies: ClassVar[str] = ""
    #: the parameter that holds the level it sets (results' ``level`` column); None: no single level
    level_of: ClassVar[str | None] = None

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @property
    def condition(self) -> str:
        """The condition's name in results tables: ``bicubic@16``, ``hr``, ``jpeg@30``, ``bicubic@16(square=true)``;
        a spec entry's ``label`` overrides it."""
        if getattr(self, "_label", None):
            return self._label
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        params = self.params()
        first_key = next(iter(params), None)
        params = {k: v for k, v in params.items() if k == first_key or defaults.get(k, inspect.Parameter.empty) != v}
        if not params:
            return self.name
        first, *rest = params.items()
        label = f"{self.name}@{_fmt(first[1])}"
        if rest:
            label += "(" + ",".join(f"{k}={_fmt(v)}" for k, v in rest) + ")"
        return label

    def describe(self) -> dict[str, Any]:
        """``{"degradation", "family", "level"}``: what tables and plots read instead of parsing the condition's name
        (``shift@4`` and ``srdown@4`` are not 4 px images; a labelled condition has no ``@`` at all)."""
        level = getattr(self, self.level_of) if self.level_of else None
        return {"degradation": self.name, "family": self.varies or self.name, "level": level}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params()}

    def pil(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float batch (B, 3, H, W) in [0, 1] on any device; returns the degraded batch, same range."""
        raise NotImplementedError

    def resample(self, h: int, w: int) -> Resample | None:
        """When this degradation is an antialiased bicubic or bilinear resize of the whole h x w image (or no change):
        the size ``pil`` gives and the interpolation. The fast path then resizes with PIL's arithmetic (uint8 on the
        CPU) and shares equal resizes between conditions. None (the default): the fast path calls ``tensor``."""
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def parse_condition(text: str) -> tuple[str, Any | None]:
    """``'bicubic@16'`` -> ``('bicubic', 16)``; ``'hr'`` -> ``('hr', None)``."""
    if "@" not in text:
        return text, None
    name, value = text.split("@", 1)
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    return name, value
