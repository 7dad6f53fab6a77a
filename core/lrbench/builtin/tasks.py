"""Built-in tasks: zero-shot classification (the CLIP protocol of LR0.FM) and plain classification."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import hookimpl
from ..datasets import Dataset
from ..degradations import Degradation
from ..models import ModelAdapter
from ..tasks import CellOutput, RunContext, Task, iter_condition_batches, zero_shot_weights


class ZeroShotClassification(Task):
    """Zero-shot classification: logits = scale * normalized image embedding @ class text embeddings."""

    name = "zero-shot"
    dataset_task = "classification"
    model_kinds = ("zero-shot",)
    default_metrics = ("top1", "top5")
    outputs = ("logits", "labels")
    headline_metric = "top1"
    #: LR0.FM's robustness aggregates (builtin/aggregates.py)
    default_aggregates = ("ACC", "gamma", "Gamma", "SAR", "WAR")

    def text_weights(self, model: ModelAdapter, dataset: Dataset, ctx: RunContext) -> torch.Tensor:
        return zero_shot_weights(model, dataset, ctx, self.identity())

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        weights = self.text_weights(model, dataset, ctx)
        scale = float(model.logit_scale)
        logits: dict[str, list[np.ndarray]] = {d.condition: [] for d in conditions}
        seen: list[np.ndarray] = []
        with torch.no_grad():
            for idx, inputs in iter_condition_batches(model, dataset, conditions, ctx):
                seen.append(idx)
                for cond, x in inputs.items():
                    with ctx.autocast():
                        feats = model.encode_image(x)
                    feats = F.normalize(feats.float(), dim=-1)
                    logits[cond].append((scale * feats @ weights.T).cpu().numpy().astype(np.float32))
        index = np.concatenate(seen) if seen else np.zeros(0, np.int64)
        labels = dataset.labels[index]
        n_cls = weights.shape[0]
        return {
            c: CellOutput(
                index,
                len(index),
                {"logits": np.concatenate(v) if v else np.zeros((0, n_cls), np.float32), "labels": labels},
            )
            for c, v in logits.items()
        }


class Classification(Task):
    """Closed-set classification with a classifier's own head (labels must match its classes)."""

    name = "classification"
    dataset_task = "classification"
    model_kinds = ("classifier",)
    default_metrics = ("top1", "top5")
    outputs = ("logits", "labels")
    headline_metric = "top1"
    #: LR0.FM's robustness aggregates (builtin/aggregates.py)
    default_aggregates = ("ACC", "gamma", "Gamma", "SAR", "WAR")

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        logits: dict[str, list[np.ndarray]] = {d.condition: [] for d in conditions}
        seen: list[np.ndarray] = []
        with torch.no_grad():
            for idx, inputs in iter_condition_batches(model, dataset, conditions, ctx):
                seen.append(idx)
                for cond, x in inputs.items():
                    with ctx.autocast():
                        out = model.classify(x)
                    logits[cond].append(out.float().cpu().numpy())
        index = np.concatenate(seen) if seen else np.zeros(0, np.int64)
        return {
            c: CellOutput(
                index,
                len(index),
                {"logits": np.concatenate(v) if v else np.zeros((0, 0), np.float32), "labels": dataset.labels[index]},
            )
            for c, v in logits.items()
        }


@hookimpl
def register_tasks(register):
    register("zero-shot", ZeroShotClassification, ZeroShotClassification.__doc__)
    register("classification", Classification, Classification.__doc__)
