"""Face verification and identification tasks.

Both load every image once and derive only the conditions it needs. Verification in ``cross`` mode scores both
orders of every pair, as Knoche et al. section 3.4 ("we generate two evaluation protocols by flipping the pairwise
matching resolution ... and then compute the mean"): HR first / LR second (``dist``) and LR first / HR second
(``dist_lr_hr``); ``orders: hr-lr`` keeps only the first (lrbench's rule before 0.2). In ``equal`` mode both images are
degraded (one order). Identification in ``cross`` mode embeds the gallery at full resolution and the probes under the
condition. ``face-protocol`` conditions give each image its own resolution, so the task applies them itself (it knows
the image index).

Outputs per condition: verification ``dist`` (cosine distance per pair, NaN where an image failed to load),
``issame``, ``res`` (resolution of the degraded second image; 0 for conditions without one) and, for both orders,
``dist_lr_hr`` and ``res_lr_hr`` (the degraded first image's); identification ``rank`` (1-based rank of the first
true match per probe, inf when the identity has no gallery image), ``label``, ``group``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import functional as TF

from lrbench import CellOutput, Dataset, Degradation, LrbenchError, ModelAdapter, RunContext, Task

from .evaluation import match_ranks
from .lr import FaceProtocol, check_mode, lr_pil, lr_tensor
from .models import flip_embed

HR_KEY = "__hr__"


def _condition_mode(deg: Degradation, default: str) -> str:
    return getattr(deg, "mode", None) or default


def _resolution(deg: Degradation | None, n: int) -> np.ndarray:
    """Per-image resolution a condition applies (0: not a resolution condition or full resolution)."""
    if isinstance(deg, FaceProtocol):
        return deg.resolutions(n)
    size = getattr(deg, "size", 0) if deg is not None else 0
    return np.full(n, int(size or 0), dtype=np.int64)


class _Embedder:
    """Embeds chosen images of a dataset under chosen conditions, loading each image once."""

    def __init__(self, model: ModelAdapter, dataset: Dataset, ctx: RunContext, flip: bool):
        self.model, self.dataset, self.ctx, self.flip = model, dataset, ctx, flip

    def _encode(self, x: torch.Tensor) -> np.ndarray:
        with self.ctx.autocast():
            emb = flip_embed(self.model.encode_image, x) if self.flip else self.model.encode_image(x)
        return emb.float().cpu().numpy()

    def _inputs(
        self, deg: Degradation | None, images: list[Image.Image], idx: list[int], per_image: np.ndarray | None
    ) -> torch.Tensor:
        if self.ctx.fast_path and len({im.size for im in images}) == 1:
            x = torch.stack([TF.pil_to_tensor(im) for im in images]).to(self.ctx.device).float().div_(255)
            if per_image is not None:
                x = lr_tensor(x, torch.as_tensor(per_image[idx], device=x.device))
            elif deg is not None:
                x = deg.tensor(x)
            return self.model.prepare_tensor(x)
        if per_image is not None:
            images = [lr_pil(im, int(per_image[i])) for im, i in zip(images, idx)]
        elif deg is not None:
            images = [deg.pil(im) for im in images]
        return self.model.prepare(images)

    def run(self, jobs: dict[str, tuple[Degradation | None, np.ndarray]]) -> dict[str, dict[int, np.ndarray]]:
        """``jobs``: key -> (condition or None for full resolution, indices needed); returns key -> {index: emb}."""
        n = len(self.dataset)
        per_image = {k: (deg.resolutions(n) if isinstance(deg, FaceProtocol) else None) for k, (deg, _) in jobs.items()}
        wanted = {k: set(map(int, ix)) for k, (_, ix) in jobs.items()}
        order = sorted(set().union(*wanted.values())) if wanted else []
        out: dict[str, dict[int, np.ndarray]] = {k: {} for k in jobs}
        bs = self.ctx.batch_size
        with torch.no_grad():
            for start in range(0, len(order), bs):
                loaded: dict[int, Image.Image] = {}
                for i in order[start : start + bs]:
                    try:
                        loaded[i] = self.dataset.load(i)
                    except Exception as exc:  # one corrupt file costs one item
                        self.ctx.skipped.append(
                            {
                                "dataset": self.dataset.name,
                                "index": i,
                                "item": self.dataset.item_id(i),
                                "error": f"{type(exc).__name__}: {exc}",
                            }
                        )
                        self.ctx.log.warning("skipping %s item %s: %s", self.dataset.name, self.dataset.item_id(i), exc)
                for key, (deg, _) in jobs.items():
                    idx = [i for i in loaded if i in wanted[key]]
                    if not idx:
                        continue
                    emb = self._encode(self._inputs(deg, [loaded[i] for i in idx], idx, per_image[key]))
                    out[key].update(zip(idx, emb))
                self.ctx.progress(len(loaded))
        return out


def _jobs(
    conditions: Sequence[Degradation],
    default_mode: str,
    first: np.ndarray,
    second: np.ndarray,
    both_orders: bool = False,
) -> tuple[dict[str, tuple[Degradation | None, np.ndarray]], dict[str, str]]:
    """Images to embed per condition (and at full resolution, ``HR_KEY``); ``both_orders``: in cross mode the first
    images are degraded too and the second ones embedded at full resolution too."""
    modes = {d.condition: _condition_mode(d, default_mode) for d in conditions}
    jobs: dict[str, tuple[Degradation | None, np.ndarray]] = {}
    for d in conditions:
        cross_one = modes[d.condition] == "cross" and not both_orders
        jobs[d.condition] = (d, second if cross_one else np.union1d(first, second))
    if any(m == "cross" for m in modes.values()):
        jobs[HR_KEY] = (None, np.union1d(first, second) if both_orders else first)
    return jobs, modes


def _stack(emb: dict[int, np.ndarray], idx: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ok = np.array([int(i) in emb for i in idx], dtype=bool)
    out = np.full((len(idx), dim), np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = np.stack([emb[int(i)] for i in idx[ok]])
    return out, ok


def _loaded(embs: dict[str, dict[int, np.ndarray]], condition: str, mode: str) -> np.ndarray:
    """The items a condition's cell holds outputs of: those embedded for it (and at full resolution in cross mode)."""
    items = set(embs[condition]) | (set(embs[HR_KEY]) if mode == "cross" else set())
    return np.array(sorted(items), dtype=np.int64)


def _dim(embs: dict[str, dict[int, np.ndarray]]) -> int:
    for d in embs.values():
        for v in d.values():
            return int(v.shape[-1])
    return 1


class _FaceTask(Task):
    """Shared by both face tasks: the pair mode (cross- or equal-resolution) and the flip test are part of the key."""

    model_kinds = ("embedder",)
    version = "2"

    def __init__(self, mode: str = "cross", flip: bool = False):
        self.mode = check_mode(mode) or "cross"
        self.flip = bool(flip)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "mode": self.mode, "flip": self.flip}


#: cross-resolution orders of verification: both (Knoche et al. 3.4) or only HR first / LR second
ORDERS = ("both", "hr-lr")


class Verification(_FaceTask):
    """Face verification on pairs: cosine distance of embeddings per pair, cross- (both orders) or equal-resolution."""

    name = "verification"
    dataset_task = "verification"
    default_metrics = ("face_acc", "tar_far", "roc_auc")
    outputs = ("dist", "issame", "res")
    headline_metric = "face_acc"

    def __init__(self, mode: str = "cross", flip: bool = False, orders: str = "both"):
        super().__init__(mode, flip)
        if orders not in ORDERS:
            raise LrbenchError(f"verification: orders {orders!r} is not known; choices: {', '.join(ORDERS)}")
        self.orders = orders

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "orders": self.orders}

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        pairs = getattr(dataset, "pairs", None)
        if pairs is None:
            raise LrbenchError(
                f"dataset {dataset.name!r} has no pairs: the verification task needs a verification "
                "dataset (face-bin, face-pairs, toyfaces-pairs)"
            )
        both = self.orders == "both"
        jobs, modes = _jobs(conditions, self.mode, pairs[:, 0], pairs[:, 1], both)
        embs = _Embedder(model, dataset, ctx, self.flip).run(jobs)
        dim = _dim(embs)

        def distance(first: dict[int, np.ndarray], second: dict[int, np.ndarray]) -> np.ndarray:
            a, ok_a = _stack(first, pairs[:, 0], dim)
            b, ok_b = _stack(second, pairs[:, 1], dim)
            dist = (1 - F.cosine_similarity(torch.from_numpy(a).double(), torch.from_numpy(b).double(), dim=1)).numpy()
            dist[~(ok_a & ok_b)] = np.nan
            return dist

        out = {}
        for d in conditions:
            c = d.condition
            cross = modes[c] == "cross"
            res = _resolution(d, len(dataset))
            dist = distance(embs[HR_KEY] if cross else embs[c], embs[c])
            arrays = {"dist": dist, "issame": dataset.issame.copy(), "res": res[pairs[:, 1]]}
            if cross and both:
                arrays["dist_lr_hr"] = distance(embs[c], embs[HR_KEY])
                arrays["res_lr_hr"] = res[pairs[:, 0]]
            # n: the pairs scored (both images embedded)
            out[c] = CellOutput(_loaded(embs, c, modes[c]), int(np.isfinite(dist).sum()), arrays)
        return out


class Identification(_FaceTask):
    """Face identification: probes ranked against the gallery (with distractors) by cosine similarity."""

    name = "identification"
    dataset_task = "identification"
    default_metrics = ("rank1", "rank5", "rank20")
    outputs = ("rank", "label", "group")
    headline_metric = "rank1"

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        roles = getattr(dataset, "roles", None)
        if roles is None:
            raise LrbenchError(
                f"dataset {dataset.name!r} has no probe/gallery roles: the identification task needs "
                "an identification dataset (scface, tinyface, toyfaces-id)"
            )
        gallery, probes = np.flatnonzero(roles == "gallery"), np.flatnonzero(roles == "probe")
        jobs, modes = _jobs(conditions, self.mode, gallery, probes)
        embs = _Embedder(model, dataset, ctx, self.flip).run(jobs)
        dim = _dim(embs)
        out = {}
        for d in conditions:
            c = d.condition
            g, ok_g = _stack(embs[HR_KEY] if modes[c] == "cross" else embs[c], gallery, dim)
            p, ok_p = _stack(embs[c], probes, dim)
            ranks = np.full(len(probes), np.nan)
            ranks[ok_p] = match_ranks(p[ok_p], dataset.labels[probes][ok_p], g[ok_g], dataset.labels[gallery][ok_g])
            # n: the probes scored (embedded; a probe whose identity has no gallery image counts, at rank inf)
            out[c] = CellOutput(
                _loaded(embs, c, modes[c]),
                int((~np.isnan(ranks)).sum()),
                {"rank": ranks, "label": dataset.labels[probes], "group": np.asarray(dataset.groups)[probes]},
            )
        return out
