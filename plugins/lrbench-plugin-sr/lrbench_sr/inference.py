"""Running an SR network on a batch: padding to the window size, tiling large inputs, mixed precision on GPU."""

from __future__ import annotations

import torch
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad the bottom/right of ``x`` up to a multiple of ``multiple`` (as the official SwinIR test code does:
    the image concatenated with its flip, which also works when the pad exceeds the image size)."""
    h, w = x.shape[-2:]
    th, tw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    while x.shape[-2] < th:
        x = torch.cat([x, torch.flip(x, [-2])], dim=-2)
    while x.shape[-1] < tw:
        x = torch.cat([x, torch.flip(x, [-1])], dim=-1)
    return x[..., :th, :tw]


class SRInference:
    """Callable turning a float [0, 1] batch (B, 3, h, w) into the SR batch (B, 3, h*scale, w*scale) in [0, 1].

    ``tile`` > 0 processes inputs larger than ``tile`` px in overlapping tiles (``tile_overlap`` px) whose outputs are
    averaged where they overlap, bounding memory for large images. ``amp`` runs fp16 autocast on CUDA (ignored on CPU).
    """

    def __init__(
        self,
        module: nn.Module,
        scale: int,
        pad_multiple: int = 1,
        tile: int = 0,
        tile_overlap: int = 16,
        amp: bool = True,
    ):
        self.module, self.scale, self.pad_multiple = module, int(scale), int(pad_multiple)
        if tile and tile % self.pad_multiple:
            raise ValueError(f"tile ({tile}) must be a multiple of the window size {self.pad_multiple}")
        if tile and tile_overlap >= tile:
            raise ValueError(f"tile_overlap ({tile_overlap}) must be smaller than tile ({tile})")
        self.tile, self.tile_overlap, self.amp = int(tile), int(tile_overlap), bool(amp)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.module(pad_to_multiple(x, self.pad_multiple))
        return out[..., : h * self.scale, : w * self.scale]

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s, tile = self.scale, self.tile
        stride = tile - self.tile_overlap
        ys = sorted({*range(0, max(h - tile, 0), stride), max(h - tile, 0)})
        xs = sorted({*range(0, max(w - tile, 0), stride), max(w - tile, 0)})
        out = torch.zeros(b, c, h * s, w * s, device=x.device, dtype=torch.float32)
        weight = torch.zeros(1, 1, h * s, w * s, device=x.device, dtype=torch.float32)
        for y in ys:
            for x0 in xs:
                patch = self._forward(x[..., y : y + tile, x0 : x0 + tile]).float()
                ph, pw = patch.shape[-2:]
                out[..., y * s : y * s + ph, x0 * s : x0 * s + pw] += patch
                weight[..., y * s : y * s + ph, x0 * s : x0 * s + pw] += 1
        return out / weight

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=self.amp and x.device.type == "cuda"):
            if self.tile and max(x.shape[-2:]) > self.tile:
                y = self._tiled(x)
            else:
                y = self._forward(x)
        return y.float().clamp_(0, 1)
