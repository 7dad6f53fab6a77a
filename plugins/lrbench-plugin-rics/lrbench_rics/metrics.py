"""Shift metrics (paper eqs. 1 and 2) on the ``shift`` task's per-shift outputs.

``consistency``: probability that a random allowed shift (other than none) keeps the output of the reference view;
``adv_robustness``: fraction of images whose output no allowed shift changes. Each on the predicted class and, with the
``_nn`` suffix, on the index of the retrieved 1-nearest neighbour in the task's gallery, over the images that have a
candidate neighbour (``nn_ok``); ``nn_missing`` counts the others. ``shift_acc`` / ``knn_acc``: top-1 accuracy of the
reference view from the model's classes / from the k-NN vote over the gallery.
"""

from __future__ import annotations

import numpy as np

from lrbench import CellMetric, LrbenchError


def _require_gallery(name: str, outputs: dict[str, np.ndarray]) -> None:
    if int(outputs["gallery_size"]) == 0:
        raise LrbenchError(
            f"metric {name!r} needs the shift task's 1-NN gallery: give the task a gallery "
            "({name: <dataset>, split: train} as the paper, or 'eval' for the other evaluation images)"
        )


def agreement(outputs: np.ndarray) -> np.ndarray:
    """(N, S) outputs with the reference in column 0 -> (N, S-1) booleans: does each shift keep the output."""
    return outputs[:, 1:] == outputs[:, :1]


def consistency(outputs: np.ndarray) -> float:
    """Eq. (1): mean over images and non-zero shifts of [f(I) == f(T(I, shift))]."""
    same = agreement(outputs)
    return float(same.mean()) if same.size else float("nan")


def adversarial_robustness(outputs: np.ndarray) -> float:
    """Eq. (2): mean over images of [every allowed shift keeps f(I)]."""
    if len(outputs) == 0:
        return float("nan")
    return float(agreement(outputs).all(axis=1).mean())


class _ShiftMetric(CellMetric):
    tasks = ("shift",)
    field = "pred"

    def values(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        return outputs[self.field]


class Consistency(_ShiftMetric):
    """Consistency (eq. 1) of the predicted class under the condition's allowed shifts."""

    name = "consistency"

    def compute(self, outputs, dataset):
        return consistency(self.values(outputs))


class _NNMetric(_ShiftMetric):
    field = "nn"

    def values(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """1-NN indices of the images that have a candidate neighbour (the others are excluded, never consistent)."""
        _require_gallery(self.name, outputs)
        return outputs["nn"][outputs["nn_ok"]]


class ConsistencyNN(_NNMetric, Consistency):
    """Consistency (eq. 1) of the 1-nearest-neighbour index under the condition's allowed shifts."""

    name = "consistency_nn"


class AdvRobustness(_ShiftMetric):
    """Adversarial robustness (eq. 2) of the predicted class: no allowed shift changes it."""

    name = "adv_robustness"

    def compute(self, outputs, dataset):
        return adversarial_robustness(self.values(outputs))


class AdvRobustnessNN(_NNMetric, AdvRobustness):
    """Adversarial robustness (eq. 2) of the 1-nearest-neighbour index."""

    name = "adv_robustness_nn"


class NNMissing(_ShiftMetric):
    """Images excluded from the 1-NN metrics because the gallery holds no candidate neighbour for them."""

    name = "nn_missing"

    def compute(self, outputs, dataset):
        _require_gallery(self.name, outputs)
        return float((~outputs["nn_ok"]).sum())


class ShiftAccuracy(_ShiftMetric):
    """Top-1 accuracy of the reference (unshifted) view with the model's own classes."""

    name = "shift_acc"

    def compute(self, outputs, dataset):
        pred, labels = outputs["pred"][:, 0], outputs["labels"]
        return float((pred == labels).mean()) if len(labels) else float("nan")


class KnnAccuracy(_ShiftMetric):
    """Top-1 accuracy of the k-NN vote of the reference view over the gallery (for embedders, as the paper's K-NN)."""

    name = "knn_acc"

    def compute(self, outputs, dataset):
        _require_gallery(self.name, outputs)
        labels = outputs["labels"]
        return float((outputs["knn"] == labels).mean()) if len(labels) else float("nan")


METRIC_CLASSES = (ShiftAccuracy, KnnAccuracy, Consistency, ConsistencyNN, AdvRobustness, AdvRobustnessNN, NNMissing)
