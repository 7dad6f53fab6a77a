"""Per-cell face metrics on the raw outputs of the verification and identification tasks.

A cross-resolution verification cell holds both orders (HR-LR ``dist`` and LR-HR ``dist_lr_hr``): every
verification metric is computed on each order and the two values averaged, as Knoche et al. (section 3.4) average
the accuracies of their two protocols; ``.hr_lr`` / ``.lr_hr`` rows keep each order's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lrbench import CellMetric

from .evaluation import SEARCHES, rank_k, roc_auc, tar_at_far, verification_accuracy


def _valid(outputs: dict[str, np.ndarray], key: str = "dist") -> tuple[np.ndarray, np.ndarray]:
    """Distances and labels of the pairs whose images all loaded (a failed image leaves a NaN distance)."""
    dist, issame = outputs[key], outputs["issame"].astype(bool)
    ok = np.isfinite(dist)
    return dist[ok], issame[ok]


#: the pair orders a verification cell may hold, and their row suffixes
ORDER_KEYS = (("dist", "hr_lr"), ("dist_lr_hr", "lr_hr"))


def _per_order(
    outputs: dict[str, np.ndarray], score: Callable[[np.ndarray, np.ndarray], dict[str, float]]
) -> dict[str, float]:
    """``score`` of each order the cell holds; with two orders the mean of each value, plus ``.hr_lr`` / ``.lr_hr``
    rows of the main value."""
    per = {suffix: score(*_valid(outputs, key)) for key, suffix in ORDER_KEYS if key in outputs}
    if len(per) == 1:
        return next(iter(per.values()))
    out = {k: float(np.mean([v[k] for v in per.values()])) for k in next(iter(per.values()))}
    out.update({suffix: v[""] for suffix, v in per.items()})
    return out


class FaceAccuracy(CellMetric):
    """10-fold verification accuracy (folds in data order, threshold from the other 9): mean, std, mean threshold;
    ``search: insightface`` searches insightface's 0.01 grid on squared L2 instead of every distinct threshold."""

    name = "face_acc"
    tasks = ("verification",)

    def __init__(self, folds: int = 10, search: str = "exact"):
        if search not in SEARCHES:
            raise ValueError(f"face_acc: search {search!r} is not known; choices: {', '.join(SEARCHES)}")
        self.folds, self.search = int(folds), search

    def _score(self, dist: np.ndarray, issame: np.ndarray) -> dict[str, float]:
        if len(dist) < self.folds:
            return {"": float("nan"), "std": float("nan"), "threshold": float("nan")}
        res = verification_accuracy(dist, issame, self.folds, self.search)
        return {"": res.accuracy, "std": res.std, "threshold": res.threshold}

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        return _per_order(outputs, self._score)


class TarAtFar(CellMetric):
    """True accept rate at a false accept rate (default 1e-3)."""

    name = "tar_far"
    tasks = ("verification",)

    def __init__(self, far: float = 1e-3):
        self.far = float(far)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        return _per_order(outputs, lambda d, s: {"": tar_at_far(d, s, self.far)})


class RocAuc(CellMetric):
    """Area under the ROC curve of the pair distances."""

    name = "roc_auc"
    tasks = ("verification",)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        return _per_order(outputs, lambda d, s: {"": roc_auc(d, s)})


def _distance_stats(dist: np.ndarray, issame: np.ndarray) -> dict[str, float]:
    gen, imp = dist[issame], dist[~issame]
    nan = float("nan")
    return {
        "": float(dist.mean()) if len(dist) else nan,
        "genuine": float(gen.mean()) if len(gen) else nan,
        "genuine_std": float(gen.std()) if len(gen) else nan,
        "imposter": float(imp.mean()) if len(imp) else nan,
        "imposter_std": float(imp.std()) if len(imp) else nan,
    }


class DistanceStats(CellMetric):
    """Mean cosine distance of all pairs, and mean (std) of genuine and of imposter pairs (Knoche et al. Fig. 7)."""

    name = "face_dist"
    tasks = ("verification",)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        return _per_order(outputs, _distance_stats)


class RankK(CellMetric):
    """Rank-k identification rate over probes, and per probe group (SCface d1 / d2 / d3) when the dataset has them."""

    name = "rank_k"
    tasks = ("identification",)

    def __init__(self, k: int = 1):
        self.k = int(k)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        ranks, groups = outputs["rank"], outputs["group"].astype(str)
        ok = ~np.isnan(ranks)
        result = {"": rank_k(ranks[ok], self.k)}
        for g in sorted(set(groups[ok]) - {""}):
            result[g] = rank_k(ranks[ok & (groups == g)], self.k)
        return result
