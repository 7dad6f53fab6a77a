"""Per-cell face metrics on the raw outputs of the verification and identification tasks."""
from __future__ import annotations

from typing import Any

import numpy as np
from lrbench import CellMetric

from .evaluation import rank_k, roc_auc, tar_at_far, verification_accuracy


def _valid(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distances and labels of the pairs whose images all loaded (a failed image leaves a NaN distance)."""
    dist, issame = outputs["dist"], outputs["issame"].astype(bool)
    ok = np.isfinite(dist)
    return dist[ok], issame[ok]


class FaceAccuracy(CellMetric):
    """10-fold verification accuracy (folds in data order, threshold from the other 9): mean, std, mean threshold."""

    name = "face_acc"
    tasks = ("verification",)

    def __init__(self, folds: int = 10):
        self.folds = int(folds)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        dist, issame = _valid(outputs)
        if len(dist) < self.folds:
            return {"": float("nan")}
        res = verification_accuracy(dist, issame, self.folds)
        return {"": res.accuracy, "std": res.std, "threshold": res.threshold}


class TarAtFar(CellMetric):
    """True accept rate at a false accept rate (default 1e-3)."""

    name = "tar_far"
    tasks = ("verification",)

    def __init__(self, far: float = 1e-3):
        self.far = float(far)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float:
        return tar_at_far(*_valid(outputs), self.far)


class RocAuc(CellMetric):
    """Area under the ROC curve of the pair distances."""

    name = "roc_auc"
    tasks = ("verification",)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float:
        return roc_auc(*_valid(outputs))


class DistanceStats(CellMetric):
    """Mean (and std) cosine distance of genuine and of imposter pairs, the numbers behind Knoche et al. Fig. 7."""

    name = "face_dist"
    tasks = ("verification",)

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> dict[str, float]:
        dist, issame = _valid(outputs)
        gen, imp = dist[issame], dist[~issame]
        nan = float("nan")
        return {"genuine": float(gen.mean()) if len(gen) else nan, "genuine_std": float(gen.std()) if len(gen) else nan,
                "imposter": float(imp.mean()) if len(imp) else nan,
                "imposter_std": float(imp.std()) if len(imp) else nan}


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
