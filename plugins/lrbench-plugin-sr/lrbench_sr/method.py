"""SR as an input-side method: LR image -> SR network -> the model's own preprocessing (LR0.FM, Listing 1).

The wrapped adapter sees super-resolved images instead of LR ones and nothing else changes, so any model of any kind
can be paired with any SR backbone. Size handling follows the LR0.FM SR pipeline: the LR image is center-cropped to a
square of its shorter side (``center_crop``), super-resolved by the network's fixed scale (16 px x4 = 64 px), and the
model's own preprocessing then resizes that to its input size (64 -> 224 bicubic for CLIP); nothing tries to make
``LR size x scale`` equal the model's input size.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import functional as TF

from lrbench import (
    Cache,
    LrbenchError,
    Method,
    MethodContext,
    ModelAdapter,
    ModelWrapper,
    content_key,
    file_sha256_memo,
    load_checkpoint,
)

from . import backbones
from .inference import SRInference

log = logging.getLogger("lrbench.sr")

DEFAULT_VARIANT = {"edsr": "baseline", "swinir": "classical", "rrdbnet": "esrgan"}
#: parameters that change speed or memory but not the SR output: kept out of the identity (and so the cache keys)
_RUNTIME_ONLY = ("batch_size", "cache")


def center_square(x: torch.Tensor) -> torch.Tensor:
    """Center crop a (..., H, W) tensor to a square of its shorter side (torchvision's CenterCrop rounding)."""
    side = min(x.shape[-2:])
    return TF.center_crop(x, [side, side])


def center_square_array(a: np.ndarray) -> np.ndarray:
    """:func:`center_square` of an (H, W, C) array."""
    h, w = a.shape[:2]
    side = min(h, w)
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return a[top : top + side, left : left + side]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float [0, 1] -> (H, W, 3) uint8, rounding as ``to_pil_image`` of a quantized tensor."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class SRWrapper(ModelWrapper):
    """An adapter whose inputs are super-resolved before the inner adapter's own preprocessing."""

    def __init__(
        self,
        inner: ModelAdapter,
        method_identity: dict[str, Any],
        sr: SRInference,
        center_crop: bool = True,
        batch_size: int = 32,
        cache: Cache | None = None,
    ):
        super().__init__(inner, method_identity)
        self.sr, self.center_crop, self.batch_size, self.sr_cache = sr, center_crop, int(batch_size), cache

    @property
    def scale(self) -> int:
        return self.sr.scale

    def super_resolve(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] LR batch -> SR batch, (center-cropped first when ``center_crop``), in chunks of batch_size."""
        if self.center_crop:
            x = center_square(x)
        return torch.cat([self.sr(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def super_resolve_pil(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """PIL LR images -> PIL SR images (8-bit, as LR0.FM's ``to_pil_image``): grouped by size, batched, cached."""
        arrays = [np.asarray(im.convert("RGB")) for im in images]
        if self.center_crop:
            arrays = [center_square_array(a) for a in arrays]
        out: list[np.ndarray | None] = [None] * len(arrays)
        keys = [self._key(a) for a in arrays] if self.sr_cache is not None else [None] * len(arrays)
        todo: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (a, key) in enumerate(zip(arrays, keys)):
            hit = self.sr_cache.get("sr", key) if key is not None else None
            if hit is not None:
                out[i] = hit["sr"]
            else:
                todo[a.shape[:2]].append(i)
        for idx in todo.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                x = torch.from_numpy(np.stack([arrays[i] for i in chunk])).permute(0, 3, 1, 2).float() / 255
                y = self.sr(x)
                for i, img in zip(chunk, y):
                    out[i] = to_uint8(img)
                    if keys[i] is not None:
                        self.sr_cache.put("sr", keys[i], {"sr": out[i]}, {"sr": self.method_identity, "image": keys[i]})
        return [Image.fromarray(a) for a in out]  # type: ignore[arg-type]

    def _key(self, array: np.ndarray) -> str:
        h = hashlib.sha256(np.ascontiguousarray(array).tobytes())
        h.update(str(array.shape).encode())
        return content_key({"sr": self.method_identity, "image": h.hexdigest()})

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.inner.prepare(self.super_resolve_pil(images))

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.prepare_tensor(self.super_resolve(x.to(self.sr.device)))


class _SRMethodBase(Method):
    """Shared by the basicsr backbones and spandrel files: builds the network, wraps the adapter."""

    stage = "input"

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in super().params().items() if k not in _RUNTIME_ONLY}

    def network(self) -> tuple[nn.Module, int, int]:
        """(module, scale, pad multiple)."""
        raise NotImplementedError

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        module, scale, pad = self.network()
        module.to(ctx.device).eval()
        sr = SRInference(module, scale, pad, tile=self.tile, tile_overlap=self.tile_overlap, amp=self.amp)
        return SRWrapper(
            model,
            self.identity(),
            sr,
            center_crop=self.center_crop,
            batch_size=self.batch_size,
            cache=ctx.cache if self.cache else None,
        )


class SRMethod(_SRMethodBase):
    """Super-resolve LR inputs with a basicsr backbone (EDSR, SwinIR, RRDBNet) before the model's preprocessing."""

    name = "sr"

    def __init__(
        self,
        arch: str = "swinir",
        variant: str | None = None,
        scale: int = 4,
        checkpoint: str | None = None,
        random_init: bool = False,
        options: dict[str, Any] | None = None,
        tile: int = 0,
        tile_overlap: int = 16,
        amp: bool = True,
        center_crop: bool = True,
        batch_size: int = 32,
        cache: bool = True,
        seed: int = 0,
    ):
        self.arch, self.variant = arch, variant or DEFAULT_VARIANT.get(arch, "")
        self.scale, self.checkpoint, self.random_init = int(scale), checkpoint, bool(random_init)
        self.options = dict(options or {})
        self.tile, self.tile_overlap, self.amp = int(tile), int(tile_overlap), bool(amp)
        self.center_crop, self.batch_size, self.cache, self.seed = bool(center_crop), int(batch_size), cache, int(seed)
        known = backbones.variant(self.arch, self.variant)  # validate names when the spec is read, not at run time
        if self.scale not in known.scales:
            raise LrbenchError(
                f"{self.arch} {self.variant} supports scales {', '.join(map(str, known.scales))}, got {self.scale}"
            )
        if self.checkpoint and self.random_init:
            raise LrbenchError("give either `checkpoint` or `random_init: true`, not both")
        self._path: str | None = None

    def weights_path(self) -> str | None:
        """The checkpoint file (given or found in the weights folder); None with ``random_init``."""
        if self.random_init:
            return None
        if self._path is None:
            self._path = (
                str(self.checkpoint)
                if self.checkpoint
                else str(backbones.find_published(self.arch, self.variant, self.scale))
            )
        return self._path

    def identity(self) -> dict[str, Any]:
        path = self.weights_path()
        weights = f"random-init(seed={self.seed})" if path is None else file_sha256_memo(path)
        params = {k: v for k, v in self.params().items() if k != "checkpoint"}
        return {"name": self.name, "params": params, "weights": weights}

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The sha256 of the published checkpoint found in the weights folder when the entry names no ``checkpoint``
        (``sr/swinir-x4``): another file there makes other cells. A ``checkpoint`` parameter is hashed with the
        entry."""
        if self.checkpoint or self.random_init:
            return {}
        return {"weights": file_sha256_memo(self.weights_path())}

    def network(self) -> tuple[nn.Module, int, int]:
        path = self.weights_path()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            bb = backbones.build(self.arch, self.variant, self.scale, self.options)
        if path is not None:
            layout = backbones.load_weights(bb, path)
            log.info("loaded %s %s x%d from %s (%s layout)", self.arch, self.variant, self.scale, path, layout)
        else:
            log.warning(
                "SR backbone %s %s x%d has RANDOM weights (random_init: true): outputs are meaningless",
                self.arch,
                self.variant,
                self.scale,
            )
        return bb.module, bb.scale, bb.pad_multiple


class SpandrelSRMethod(_SRMethodBase):
    """Super-resolve with any checkpoint spandrel recognises by inspection (SwinIR, ESRGAN, HAT, DAT, ...)."""

    name = "sr/file"

    def __init__(
        self,
        path: str,
        tile: int = 0,
        tile_overlap: int = 16,
        amp: bool = True,
        center_crop: bool = True,
        batch_size: int = 32,
        cache: bool = True,
    ):
        self.path, self.tile, self.tile_overlap, self.amp = path, int(tile), int(tile_overlap), bool(amp)
        self.center_crop, self.batch_size, self.cache = bool(center_crop), int(batch_size), cache

    def identity(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params().items() if k != "path"}
        return {"name": self.name, "params": params, "weights": file_sha256_memo(self.path)}

    def network(self) -> tuple[nn.Module, int, int]:
        import spandrel

        raw = load_checkpoint(self.path)
        try:
            desc = spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(raw))
        except Exception as exc:
            raise backbones.SRCheckpointError(f"spandrel cannot identify {self.path}: {exc}") from exc
        if not isinstance(desc, spandrel.ImageModelDescriptor):
            raise backbones.SRCheckpointError(f"{self.path} is a {type(desc).__name__}, not an image SR model")
        log.info("spandrel loaded %s: %s x%d", self.path, desc.architecture.name, desc.scale)
        return desc.model, desc.scale, desc.size_requirements.multiple_of


def short_form(arch: str, variant: str, scale: int):
    """The factory of ``sr/<alias>-x<scale>``: the long form with arch, variant and scale fixed."""

    def factory(
        checkpoint: str | None = None,
        random_init: bool = False,
        options: dict[str, Any] | None = None,
        tile: int = 0,
        tile_overlap: int = 16,
        amp: bool = True,
        center_crop: bool = True,
        batch_size: int = 32,
        cache: bool = True,
        seed: int = 0,
    ) -> SRMethod:
        return SRMethod(
            arch,
            variant,
            scale,
            checkpoint,
            random_init,
            options,
            tile,
            tile_overlap,
            amp,
            center_crop,
            batch_size,
            cache,
            seed,
        )

    factory.__doc__ = f"SR with {backbones.variant(arch, variant).description} x{scale}"
    return factory
