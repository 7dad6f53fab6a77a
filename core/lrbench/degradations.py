"""Degradations and the conditions they name.

A degradation has two implementations of the same function: ``pil`` (the reference path, per image, exactly as the
papers' code) and ``tensor`` (batched, on any device, for the fast path). A *condition* is a degradation with its
parameters, written ``name@value`` for its first parameter (``bicubic@16``) or as a mapping in a spec.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar, NamedTuple

import torch
from PIL import Image


class Resample(NamedTuple):
    """A degradation that is a plain resize of the whole image: its output size and (antialiased) interpolation;
    ``interpolation`` None: the image unchanged."""

    height: int
    width: int
    interpolation: str | None


class Degradation:
    """Base class; subclasses set ``name`` and implement ``pil`` and ``tensor``."""

    name: ClassVar[str] = "degradation"

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

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params()}

    def pil(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float batch (B, 3, H, W) in [0, 1] on any device; returns the degraded batch, same range."""
        raise NotImplementedError

    def resample(self, h: int, w: int) -> Resample | None:
        """When this degradation is an antialiased resize of the whole h x w image (or no change): the size ``pil``
        gives and the interpolation. The fast path then derives it, at exactly that size, from one shrunk copy of the
        image shared by all such conditions. None (the default): ``tensor`` gets the full image."""
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
