"""Built-in per-cell metrics on logits: top-k accuracy and mean per-class accuracy."""

from __future__ import annotations

import numpy as np

from .. import hookimpl
from ..metrics import CellMetric


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per item: is the label among the k highest logits (ties broken towards lower class index)."""
    if len(labels) == 0:
        return np.zeros(0, bool)
    k = min(k, logits.shape[1])
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


class TopK(CellMetric):
    tasks = ("zero-shot", "classification")

    def __init__(self, k: int = 1):
        self.k = k

    def compute(self, outputs, dataset):
        correct = topk_correct(outputs["logits"], outputs["labels"], self.k)
        return float(correct.mean()) if len(correct) else float("nan")


class MeanPerClass(CellMetric):
    """Accuracy averaged over classes (balanced accuracy), as some datasets (Caltech, Pets, Flowers) report."""

    tasks = ("zero-shot", "classification")

    def compute(self, outputs, dataset):
        correct = topk_correct(outputs["logits"], outputs["labels"], 1)
        labels = outputs["labels"]
        classes = np.unique(labels)
        return float(np.mean([correct[labels == c].mean() for c in classes])) if len(classes) else float("nan")


def _top1():
    return TopK(1)


def _top5():
    return TopK(5)


_top1.__doc__ = "Top-1 accuracy (fraction of items whose highest logit is the label)"
_top5.__doc__ = "Top-5 accuracy"


@hookimpl
def register_metrics(register):
    register("top1", _top1, _top1.__doc__)
    register("top5", _top5, _top5.__doc__)
    register("mean_per_class", MeanPerClass, "Top-1 accuracy averaged over classes")
