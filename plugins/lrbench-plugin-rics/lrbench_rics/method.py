"""The RICS methods: an input-side wrapper that selects a k x k crop of the model input and classifies it.

Algorithm 1 passes the selected k x k crop itself to the classifier (``feed: crop``, the default); ``feed: resize``
resizes it back to the model's input size first (lrbench's behaviour before 0.2, for models with a fixed input size).

``rics/rand`` (random filter + modulo), ``rics/mh`` (Mexican hat, sigma 50 -> 20 -> 9) act on realistic (non-cyclic)
crops; ``rics/cyclic`` uses cyclic crops (Definition 2) with either score, which makes the output invariant to every
integer cyclic shift of the model input (Theorem 2). The wrapper works on any adapter kind: it changes the tensor the
inner model sees, then calls the inner ``encode_image`` / ``classify``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lrbench import Method, MethodContext, ModelAdapter, ModelWrapper

from .selection import MH_SIGMAS, RAND_MODULUS, CropSelector, extract_crops, to_levels

#: paper section 4: k = 140 for 224 x 224 inputs
PAPER_FRACTION = 140 / 224
#: what the inner model receives: the k x k crop (Algorithm 1: f_theta maps k x k crops) or the crop resized to n x n
FEEDS = ("crop", "resize")


def crop_size(n: int, k: int | None, fraction: float) -> int:
    """The crop side for an n x n input: ``k`` when given, else ``round(fraction * n)``."""
    size = int(k) if k is not None else int(round(fraction * n))
    if not 1 <= size < n:
        raise ValueError(
            f"RICS crop size k={size} must be between 1 and the model input size {n} (exclusive); set k or fraction"
        )
    return size


class RICSWrapper(ModelWrapper):
    """Scores every crop of the (normalized) model input and passes the chosen one (``feed: crop``) or the chosen one
    resized to the input size (``feed: resize``) to the inner model."""

    def __init__(
        self,
        inner: ModelAdapter,
        method_identity: dict[str, Any],
        k: int | None,
        fraction: float,
        score: str,
        cyclic: bool,
        seed: int,
        sigmas: tuple[float, ...],
        modulus: int,
        feed: str = "crop",
    ):
        super().__init__(inner, method_identity)
        self._k, self._fraction, self._feed = k, fraction, feed
        self._opts = dict(score=score, cyclic=cyclic, seed=seed, sigmas=tuple(sigmas), modulus=modulus)
        self._selectors: dict[int, CropSelector] = {}
        self.last_corners: torch.Tensor | None = None  # (B, 2) of the last batch: for tests and inspection

    def selector(self, n: int) -> CropSelector:
        if n not in self._selectors:
            self._selectors[n] = CropSelector(crop_size(n, self._k, self._fraction), **self._opts)
        return self._selectors[n]

    def select_input(self, x: torch.Tensor) -> torch.Tensor:
        """Each image replaced by its selected k x k crop (``feed: crop``) or that crop resized to n x n (bicubic)."""
        h, w = x.shape[-2:]
        if h != w:
            raise ValueError(f"RICS expects square model inputs, got {h} x {w}")
        sel = self.selector(h)
        pre = self.inner.preprocess
        corners = sel.select(to_levels(x, pre.mean, pre.std))
        self.last_corners = corners.cpu()
        crops = extract_crops(x, corners, sel.k, sel.cyclic)
        if self._feed == "crop":
            return crops
        return F.interpolate(crops, size=(h, w), mode="bicubic", align_corners=False)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_image(self.select_input(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.classify(self.select_input(x))


class RICS(Method):
    """Robust Inference by Crop Selection (Shifman & Weiss, ECCV 2024): a deterministic k x k crop of the model input.

    ``k``: crop side in model-input pixels (default ``fraction`` x input size: 140 at 224, as in the paper);
    ``score``: ``rand`` or ``mh``; ``seed``: the random filter's seed; ``cyclic``: cyclic crops (Theorem 2);
    ``feed``: ``crop`` (the k x k crop goes to the network, Algorithm 1) or ``resize`` (resized back to the input size).
    """

    name = "rics"
    stage = "input"

    def __init__(
        self,
        k: int | None = None,
        fraction: float = PAPER_FRACTION,
        score: str = "rand",
        cyclic: bool = False,
        seed: int = 0,
        sigmas: list[float] | None = None,
        modulus: int = RAND_MODULUS,
        feed: str = "crop",
    ):
        if score not in ("rand", "mh"):
            raise ValueError(f"unknown RICS score {score!r}; choices: rand, mh")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        if k is not None and int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = None if k is None else int(k)
        self.fraction, self.score, self.cyclic, self.seed = float(fraction), score, bool(cyclic), int(seed)
        self.sigmas = [float(s) for s in (sigmas or MH_SIGMAS)]
        self.modulus = int(modulus)
        if feed not in FEEDS:
            raise ValueError(f"unknown RICS feed {feed!r}; choices: {', '.join(FEEDS)}")
        self.feed = feed

    def inputs_identity(self, dataset: Any = None) -> dict[str, Any]:
        """The crop size fed to the network keys every RICS cell, also when the spec leaves ``feed`` at its default:
        cells made when the default was ``resize`` must not be reused."""
        return {"feed": self.feed}

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        return RICSWrapper(
            model,
            self.identity(),
            self.k,
            self.fraction,
            self.score,
            self.cyclic,
            self.seed,
            tuple(self.sigmas),
            self.modulus,
            self.feed,
        )


def rics_rand(
    k: int | None = None,
    fraction: float = PAPER_FRACTION,
    seed: int = 0,
    modulus: int = RAND_MODULUS,
    feed: str = "crop",
) -> RICS:
    """RICS-rand: dot product with a fixed seeded Gaussian filter, then a modulo (a pseudo-random crop score)."""
    return RICS(k=k, fraction=fraction, score="rand", seed=seed, modulus=modulus, feed=feed)


def rics_mh(
    k: int | None = None, fraction: float = PAPER_FRACTION, sigmas: list[float] | None = None, feed: str = "crop"
) -> RICS:
    """RICS-MH: dot product with a Mexican-hat kernel, sigma 50 falling back to 20 then 9 without a local maximum."""
    return RICS(k=k, fraction=fraction, score="mh", sigmas=sigmas, feed=feed)


def rics_cyclic(
    k: int | None = None,
    fraction: float = PAPER_FRACTION,
    score: str = "mh",
    seed: int = 0,
    sigmas: list[float] | None = None,
    modulus: int = RAND_MODULUS,
    feed: str = "crop",
) -> RICS:
    """Cyclic RICS (Definition 2): cyclic crops, 100% consistent under every integer cyclic shift (Theorem 2)."""
    return RICS(k=k, fraction=fraction, score=score, cyclic=True, seed=seed, sigmas=sigmas, modulus=modulus, feed=feed)


METHODS = {"rics/rand": rics_rand, "rics/mh": rics_mh, "rics/cyclic": rics_cyclic}
