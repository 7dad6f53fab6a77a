"""The ``shift`` task: every allowed shift of every image through the model, predictions kept per shift.

For each shift condition (``shift@D``, ``cyclic@D``) and each image, the task evaluates the reference view and every
view shifted by ``|dx|, |dy| <= D`` and stores, per view, the predicted class and the index of the 1-nearest neighbour
among the reference-view embeddings of the other images (the paper's retrieval definition: "all other images in the same
class" with ``same_class``). Conditions of one family (``shift@1 .. shift@9`` with the same resize/crop/then) share
their views: the largest shift is evaluated once and the smaller ones are read from it.

Outputs per condition: ``offsets`` (S, 2) with the reference (0, 0) first, ``pred`` and ``nn`` (N, S), ``knn``
(N,) the leave-one-out k-NN vote at the reference view, ``labels`` and ``index`` (N,). A classifier's class is the
argmax of its logits, a zero-shot model's the nearest class text embedding, an embedder's the k-NN vote of each view
over the reference views of the other images.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.datasets import Dataset
from lrbench.degradations import Degradation
from lrbench.models import ModelAdapter
from lrbench.registry import LrbenchError
from lrbench.tasks import CellOutput, RunContext, Task

from .shifts import ShiftCondition

METRICS = ("shift_acc", "adv_robustness", "adv_robustness_nn", "consistency", "consistency_nn")


class ShiftTask(Task):
    """Shift consistency: per-shift class and 1-NN predictions for realistic (``shift@D``) or cyclic conditions."""

    name = "shift"
    dataset_task = "classification"
    model_kinds = ("classifier", "zero-shot", "embedder")
    #: its conditions are shifts, not resolutions: it runs when a spec names it (``task: shift``)
    auto_select = False
    default_metrics = METRICS
    outputs = ("offsets", "pred", "nn", "knn", "labels")
    version = "1"

    def __init__(self, same_class: bool = True, knn: int = 11):
        if int(knn) < 1:
            raise ValueError(f"knn must be >= 1, got {knn}")
        self.same_class, self.knn = bool(same_class), int(knn)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "same_class": self.same_class, "knn": self.knn}

    # ---- model outputs --------------------------------------------------------------------------------------------
    def _forward(self, model: ModelAdapter, x: torch.Tensor, weights: torch.Tensor | None,
                 ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class or -1, L2-normalized embedding) for a prepared batch."""
        with torch.no_grad(), ctx.autocast():
            if model.kind == "classifier":
                logits = model.classify(x).float()
                try:
                    emb = model.encode_image(x).float()
                except NotImplementedError:  # a head-only classifier: its logits are its representation
                    emb = logits
                return logits.argmax(dim=1), F.normalize(emb.flatten(1), dim=-1)
            emb = F.normalize(model.encode_image(x).float().flatten(1), dim=-1)
        pred = (emb @ weights.T).argmax(dim=1) if weights is not None else torch.full((len(x),), -1)
        return pred, emb

    def _views(self, model: ModelAdapter, cond: ShiftCondition, base, offsets: np.ndarray,
               ctx: RunContext) -> torch.Tensor:
        if ctx.fast_path:
            return model.prepare_tensor(cond.views_tensor(base, offsets, ctx.device))
        return model.prepare(cond.views_pil(base, offsets.tolist()))

    def _run_views(self, model: ModelAdapter, cond: ShiftCondition, base, offsets: np.ndarray,
                   weights: torch.Tensor | None, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
        preds, embs = [], []
        for start in range(0, len(offsets), ctx.batch_size):
            p, e = self._forward(model, self._views(model, cond, base, offsets[start:start + ctx.batch_size], ctx),
                                 weights, ctx)
            preds.append(p.cpu())
            embs.append(e.cpu())
        return torch.cat(preds), torch.cat(embs)

    def _text_weights(self, model: ModelAdapter, dataset: Dataset, ctx: RunContext) -> torch.Tensor | None:
        if model.kind == "zero-shot" and len(dataset.classnames):
            return ZeroShotClassification().text_weights(model, dataset, ctx).float()
        return None

    # ---- retrieval ------------------------------------------------------------------------------------------------
    def _nearest(self, queries: torch.Tensor, gallery: torch.Tensor, self_pos: int, labels: np.ndarray) -> np.ndarray:
        """1-NN gallery position of each query (cosine), never the query image itself; -1 when no candidate."""
        sims = queries @ gallery.T
        sims[:, self_pos] = float("-inf")
        if self.same_class:
            sims[:, torch.from_numpy(labels != labels[self_pos])] = float("-inf")
        best = sims.argmax(dim=1)
        valid = torch.isfinite(sims.gather(1, best[:, None]))[:, 0]
        return torch.where(valid, best, torch.full_like(best, -1)).numpy()

    def _knn_vote(self, queries: torch.Tensor, gallery: torch.Tensor, labels: np.ndarray, exclude: np.ndarray,
                  num_classes: int) -> np.ndarray:
        """k-NN majority vote of each query over the gallery without position ``exclude[q]`` (leave-one-out);
        ties go to the class of the nearest neighbour; -1 when the gallery has no other image."""
        n = len(gallery)
        if n < 2:
            return np.full(len(queries), -1, dtype=np.int64)
        sims = queries @ gallery.T
        sims[torch.arange(len(queries)), torch.from_numpy(exclude)] = float("-inf")
        k = min(self.knn, n - 1)
        neigh = labels[sims.topk(k, dim=1).indices.numpy()]  # (q, k), nearest first
        votes = np.zeros((len(queries), max(num_classes, int(labels.max()) + 1)), dtype=np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(queries)), k), neigh.ravel()), 1.0)
        votes[np.arange(len(queries)), neigh[:, 0]] += 0.5
        return votes.argmax(axis=1).astype(np.int64)

    # ---- the pass -------------------------------------------------------------------------------------------------
    def run(self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation],
            ctx: RunContext) -> dict[str, CellOutput]:
        for c in conditions:
            if not isinstance(c, ShiftCondition):
                raise LrbenchError(f"task 'shift' evaluates shift conditions (shift@D, cyclic@D); got {c.condition!r}")
        weights = self._text_weights(model, dataset, ctx)
        families: dict[str, list[ShiftCondition]] = {}
        for c in conditions:
            families.setdefault(repr(sorted(c.family().items())), []).append(c)  # type: ignore[arg-type]
        out: dict[str, CellOutput] = {}
        for members in families.values():
            out.update(self._run_family(model, dataset, members, weights, ctx))
        return out

    def _load_bases(self, dataset: Dataset, cond: ShiftCondition, ctx: RunContext):
        for i in range(len(dataset)):
            try:
                yield i, cond.base_pil(dataset.load(i))
            except Exception as exc:  # an undecodable item costs one item, not the run
                ctx.skipped.append({"dataset": dataset.name, "index": i, "item": dataset.item_id(i),
                                    "error": f"{type(exc).__name__}: {exc}"})

    def _run_family(self, model: ModelAdapter, dataset: Dataset, members: list[ShiftCondition],
                    weights: torch.Tensor | None, ctx: RunContext) -> dict[str, CellOutput]:
        rep = max(members, key=lambda c: c.max_shift)
        offsets = rep.offsets()
        ref = np.zeros((1, 2), dtype=np.int64)
        # pass 1: reference views of every image -> the 1-NN gallery
        index, ref_emb = [], []
        for i, base in self._load_bases(dataset, rep, ctx):
            index.append(i)
            ref_emb.append(self._run_views(model, rep, base, ref, weights, ctx)[1])
        idx = np.asarray(index, dtype=np.int64)
        labels = dataset.labels[idx] if len(idx) else np.zeros(0, np.int64)
        gallery = torch.cat(ref_emb) if ref_emb else torch.zeros(0, 1)
        # pass 2: every allowed view
        pred = np.zeros((len(idx), len(offsets)), dtype=np.int64)
        nn = np.zeros_like(pred)
        knn_classes = weights is None and model.kind != "classifier"
        for row, i in enumerate(idx.tolist()):
            p, e = self._run_views(model, rep, rep.base_pil(dataset.load(i)), offsets, weights, ctx)
            if knn_classes:  # an embedder's class is its k-NN vote (the paper's K-NN for open-CLIP and ViT)
                p = self._knn_vote(e, gallery, labels, np.full(len(e), row), dataset.num_classes)
            pred[row] = np.asarray(p)
            nn[row] = self._nearest(e, gallery, row, labels)
            ctx.progress(1)
        knn = (self._knn_vote(gallery, gallery, labels, np.arange(len(idx)), dataset.num_classes) if len(idx)
               else np.zeros(0, np.int64))
        out = {}
        for c in members:
            cols = _columns(offsets, c.offsets())
            out[c.condition] = CellOutput(idx, len(idx), {
                "offsets": offsets[cols], "pred": pred[:, cols],
                "nn": np.where(nn[:, cols] >= 0, idx[np.maximum(nn[:, cols], 0)], -1), "knn": knn, "labels": labels})
        return out


def _columns(all_offsets: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    pos = {tuple(o): j for j, o in enumerate(all_offsets.tolist())}
    return np.array([pos[tuple(o)] for o in wanted.tolist()], dtype=np.int64)


def shift_task(same_class: bool = True, knn: int = 11) -> ShiftTask:
    """Shift consistency (RICS paper): per-shift class and 1-NN predictions; name it with ``task: shift``."""
    return ShiftTask(same_class=same_class, knn=knn)
