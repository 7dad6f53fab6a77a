"""Crop selection of RICS (Shifman & Weiss, ECCV 2024, Algorithm 1) and the bounds of its Theorem 1.

Every k x k crop of an image is scored by a dot product with a fixed filter, all crops at once by FFT correlation; the
chosen crop is the highest *strict* local maximum (larger than its 8 neighbours) that is not on the edge of the score
map. The cyclic variant (Definition 2) scores the n x n cyclic crops, whose set is the same for every integer cyclic
shift of the image, so the selected content cannot change (Theorem 2).

Why exact integer scores: robustness rests on the same crop content always receiving the same score, whatever its
position in the image. Floating-point FFT results depend (in the last bits) on the position, and a modulo or a near
tie turns such noise into a different choice. Pixels are therefore taken as integer 8-bit levels, filters are rounded
to integers, the correlation is done in float64 (error far below 0.5 for these magnitudes) and rounded back: every score
is the exact integer dot product, identical wherever the crop sits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

#: modulus of RICS-rand: a prime well below the spread of the raw scores, so neighbouring crops get unrelated values
RAND_MODULUS = 65521
#: Mexican-hat standard deviations tried in turn (paper section 3.1: 50, then 20 or 9 when there is no local maximum)
MH_SIGMAS = (50.0, 20.0, 9.0)
_RAND_SCALE = 1000.0  # integer random filter: round(1000 * N(0, 1))
_MH_SCALE = 1000.0  # integer Mexican hat: round(1000 * MH(r))
_TIE_HASH_SEEDS = (101, 202)  # random filters whose exact scores group tied candidates by content


def random_filter(k: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """The fixed RICS-rand filter: i.i.d. Gaussian entries (seeded), rounded to integers, shape (channels, k, k)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.round(torch.randn(channels, k, k, generator=gen, dtype=torch.float64) * _RAND_SCALE)


def mexican_hat(k: int, sigma: float, channels: int = 3) -> torch.Tensor:
    """Integer 2-D Mexican hat (Ricker) centred in the k x k crop: (1 - r^2 / 2s^2) exp(-r^2 / 2s^2), same per channel."""
    c = (k - 1) / 2
    ax = torch.arange(k, dtype=torch.float64) - c
    r2 = ax[:, None] ** 2 + ax[None, :] ** 2
    q = r2 / (2 * sigma**2)
    hat = torch.round((1 - q) * torch.exp(-q) * _MH_SCALE)
    return hat.expand(channels, k, k).clone()


def to_levels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalized model input (B, C, H, W) -> integer pixel levels 0..255 in float64 (undo the normalization)."""
    m = torch.tensor(mean, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    return torch.round((x.double() * s + m) * 255).clamp_(0, 255)


def correlate(levels: torch.Tensor, filt: torch.Tensor, cyclic: bool = False) -> torch.Tensor:
    """Exact integer scores of every crop: ``G[b, i, j] = sum_c,u,v levels[b, c, i+u, j+v] * filt[c, u, v]``.

    ``cyclic``: indices wrap (H x W scores, Definition 2); otherwise only crops inside the image ((H-k+1) x (W-k+1)).
    """
    b, c, h, w = levels.shape
    k = filt.shape[-1]
    if filt.shape != (c, k, k) or k > min(h, w):
        raise ValueError(f"filter of shape {tuple(filt.shape)} does not fit inputs of shape {tuple(levels.shape)}")
    padded = torch.zeros(c, h, w, dtype=torch.float64, device=levels.device)
    padded[:, :k, :k] = filt.to(levels.device)
    spec = torch.fft.rfft2(levels.double()) * torch.conj(torch.fft.rfft2(padded))
    raw = torch.fft.irfft2(spec.sum(dim=1), s=(h, w))
    scores = torch.round(raw)
    error = float((raw - scores).abs().max()) if raw.numel() else 0.0
    if error > 0.25:  # cannot happen for 8-bit levels and these filters; refuse rather than lose exactness silently
        raise RuntimeError(f"FFT correlation error {error:.3g} too large for exact integer scores")
    return scores if cyclic else scores[:, : h - k + 1, : w - k + 1].contiguous()


def strict_local_max(scores: torch.Tensor, cyclic: bool = False) -> torch.Tensor:
    """Boolean mask (B, H, W): the score is larger than all 8 neighbours; off the map's edge unless ``cyclic``."""
    if cyclic:
        mask = torch.ones_like(scores, dtype=torch.bool)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if di or dj:
                    mask &= scores > torch.roll(scores, shifts=(di, dj), dims=(-2, -1))
        return mask
    mask = torch.zeros_like(scores, dtype=torch.bool)
    h, w = scores.shape[-2:]
    if h < 3 or w < 3:
        return mask
    centre = scores[:, 1:-1, 1:-1]
    inner = torch.ones_like(centre, dtype=torch.bool)
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            if (di, dj) != (1, 1):
                inner &= centre > scores[:, di : di + h - 2, dj : dj + w - 2]
    mask[:, 1:-1, 1:-1] = inner
    return mask


def content_keys(levels: torch.Tensor, k: int, cyclic: bool = False) -> torch.Tensor:
    """(B, 2, H', W') exact integer scores of every crop under two seeded random filters: equal content, equal keys."""
    return torch.stack(
        [correlate(levels, random_filter(k, levels.shape[1], seed), cyclic) for seed in _TIE_HASH_SEEDS], dim=1
    )


def crop_content_order(
    levels: torch.Tensor, positions: torch.Tensor, k: int, cyclic: bool = False, keys: torch.Tensor | None = None
) -> int:
    """Row of ``positions`` (m, 2) whose k x k crop of ``levels`` (C, H, W) has the lexicographically largest content
    (read crop row by crop row, each row channel by channel); among identical contents the first.

    The order depends on the crop content only, never on where the crop sits, so tied scores are broken the same
    way after any shift of the image: the tie rule that keeps Theorem 2 (a raster-order rule does not). Candidates
    with equal exact integer projections on two seeded random filters count as one content (the first is kept).
    """
    # candidates whose content agrees on two exact integer projections (seeded random filters) are taken as one
    # content: a constant or periodic image ties every position, and comparing all their crops would cost minutes
    if keys is None:
        keys = content_keys(levels[None], k, cyclic)[0]
    at = keys[:, positions[:, 0], positions[:, 1]].T.cpu().numpy()
    _, first = np.unique(at, axis=0, return_index=True)
    first = np.sort(first)
    if len(first) == 1:
        return int(first[0])
    img = levels.cpu().numpy()
    if cyclic:  # wrap the image so every cyclic crop is an ordinary window
        img = np.pad(img, ((0, 0), (0, k - 1), (0, k - 1)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(img, (k, k), axis=(1, 2))  # (C, H', W', k, k), a view
    rows, cols = positions[:, 0].cpu().numpy(), positions[:, 1].cpu().numpy()
    alive = first
    for r in range(k):
        if len(alive) == 1:
            break
        vals = windows[:, rows[alive], cols[alive], r, :].transpose(1, 0, 2).reshape(len(alive), -1)
        best = np.lexsort(vals.T[::-1])[-1]  # lexsort: the last key is the primary one; the last row is the largest
        alive = alive[np.all(vals == vals[best], axis=1)]
    return int(alive[0])


def select_local_max(
    scores: torch.Tensor, cyclic: bool = False, levels: torch.Tensor | None = None, k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per map: (row, col) of the highest strict local maximum and whether one exists.

    Maps without any local maximum fall back to their global maximum so a choice is always made. Exactly tied
    positions are broken by crop content (:func:`crop_content_order`) when ``levels`` (B, C, H, W) and the crop size
    ``k`` are given, else by raster order.
    """
    b, h, w = scores.shape
    mask = strict_local_max(scores, cyclic)
    found = mask.flatten(1).any(dim=1)
    masked = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    pool = torch.where(found[:, None, None], masked, scores).flatten(1)
    flat = pool.argmax(dim=1)
    if levels is not None:
        if k is None:
            raise ValueError("select_local_max: content tie-breaking needs the crop size k")
        best = pool.max(dim=1, keepdim=True).values
        tied_maps = torch.nonzero((pool == best).sum(dim=1) > 1).flatten()
        keys = content_keys(levels[tied_maps], k, cyclic) if len(tied_maps) else None
        for j, i in enumerate(tied_maps.tolist()):
            tied = torch.nonzero(pool[i] == best[i]).flatten()
            pos = torch.stack([tied // w, tied % w], dim=1)
            flat[i] = tied[crop_content_order(levels[i], pos, k, cyclic, keys[j])]
    return torch.stack([flat // w, flat % w], dim=1), found


@dataclass(frozen=True)
class CropSelector:
    """Chooses one k x k crop per image: ``score`` is ``rand`` (random filter + modulo) or ``mh`` (Mexican hat)."""

    k: int
    score: str = "rand"
    cyclic: bool = False
    seed: int = 0
    sigmas: tuple[float, ...] = MH_SIGMAS
    modulus: int = RAND_MODULUS

    def __post_init__(self) -> None:
        if self.score not in ("rand", "mh"):
            raise ValueError(f"unknown RICS score {self.score!r}; choices: rand, mh")
        if self.k < 1:
            raise ValueError(f"crop size k must be >= 1, got {self.k}")

    def score_map(self, levels: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Exact scores of every crop: random filter + modulo (``rand``), or the Mexican hat of ``sigma`` (``mh``)."""
        if self.score == "rand":
            raw = correlate(levels, random_filter(self.k, levels.shape[1], self.seed), self.cyclic)
            return torch.remainder(raw, self.modulus)
        # the hat is the same on every channel: correlate the channel sum once (3x less work, same integers)
        return correlate(levels.sum(dim=1, keepdim=True), mexican_hat(self.k, sigma, 1), self.cyclic)

    def select(self, levels: torch.Tensor) -> torch.Tensor:
        """(B, 2) top-left corners (row, col) of the chosen crops, for integer levels (B, C, H, W)."""
        h, w = levels.shape[-2:]
        if self.k > min(h, w) or (not self.cyclic and self.k == min(h, w)):
            raise ValueError(f"crop size k={self.k} must be smaller than the model input ({h} x {w})")
        if self.score == "rand":
            return select_local_max(self.score_map(levels), self.cyclic, levels, self.k)[0]
        chosen = torch.zeros(len(levels), 2, dtype=torch.long, device=levels.device)
        todo = torch.arange(len(levels), device=levels.device)
        for i, sigma in enumerate(self.sigmas):  # a smaller hat only for images without a local maximum
            corners, found = select_local_max(self.score_map(levels[todo], sigma), self.cyclic, levels[todo], self.k)
            last = i == len(self.sigmas) - 1
            keep = torch.ones_like(found) if last else found
            chosen[todo[keep]] = corners[keep]
            todo = todo[~keep]
            if len(todo) == 0:
                break
        return chosen


def extract_crops(x: torch.Tensor, corners: torch.Tensor, k: int, cyclic: bool = False) -> torch.Tensor:
    """Gather the k x k crop at each (row, col) of ``corners`` from (B, C, H, W), wrapping around when ``cyclic``."""
    b, c, h, w = x.shape
    ar = torch.arange(k, device=x.device)
    rows = corners[:, 0:1].to(x.device) + ar  # (B, k)
    cols = corners[:, 1:2].to(x.device) + ar
    if cyclic:
        rows, cols = rows % h, cols % w
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return x[bi, ci, rows.view(b, 1, k, 1), cols.view(b, 1, 1, k)]


def _check_bound_args(n: int, k: int, shift: int, axes: int) -> int:
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    if axes not in (1, 2):
        raise ValueError(f"axes must be 1 (shifts along one axis) or 2, got {axes}")
    return n - k + 1


def adversarial_bound(n: int, k: int, shift: int, exclude_edge: bool = False, axes: int = 2) -> float:
    """Theorem 1: adversarial robustness >= ((n - k + 1 - 2D) / (n - k + 1 + 2D))^2 for shifts |dx|, |dy| <= D.

    ``exclude_edge``: the same counting over the (n - k - 1)^2 interior positions that Algorithm 1 may select (its
    local maxima are never on the score map's edge), which is what a pseudo-random score attains exactly.
    ``axes=1``: shifts along one axis only; the same count gives the ratio to the power 1.
    """
    m = _check_bound_args(n, k, shift, axes) - (2 if exclude_edge else 0)
    return max(0.0, (m - 2 * shift) / (m + 2 * shift)) ** axes if m > 0 else 0.0


def consistency_bound(n: int, k: int, shift: int, exclude_edge: bool = False, axes: int = 2) -> float:
    """Eq. (4): consistency >= ((n - k + 1 - D) / (n - k + 1 + D))^2 (worst single shift with |dx|, |dy| <= D)."""
    m = _check_bound_args(n, k, shift, axes) - (2 if exclude_edge else 0)
    return max(0.0, (m - shift) / (m + shift)) ** axes if m > 0 else 0.0
