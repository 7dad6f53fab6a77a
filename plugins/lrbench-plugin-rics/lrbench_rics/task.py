"""The ``shift`` task: every allowed shift of every image through the model, predictions kept per shift.

For each shift condition (``shift@D``, ``cyclic@D``) and each image, the task evaluates the reference view and every
view shifted by ``|dx|, |dy| <= D`` and stores, per view, the predicted class and the index of the 1-nearest neighbour
in a *gallery*. The paper retrieves "the most similar image in a dataset of 1300 images (all other images in the same
class)" of the ImageNet training set: ``gallery`` names that dataset (``{name: imagenet-train, root: ...}`` or
``{name: toyworld, split: train}``), whose reference views are embedded once; ``same_class`` restricts the search to
the query's class. ``gallery: eval`` searches the reference views of the other evaluation images instead (lrbench's
rule before 0.2). An image with no candidate neighbour (its class is absent from the gallery) has no 1-NN output: it
is excluded from the ``_nn`` metrics and counted by ``nn_missing``, never scored as consistent. Conditions of one
family (``shift@1 .. shift@9`` with the same resize/crop/then) share their views: the largest shift is evaluated once
and the smaller ones are read from it.

Outputs per condition: ``offsets`` (S, 2) with the reference (0, 0) first, ``pred`` and ``nn`` (N, S) (``nn``: the
gallery item index, -1 without a neighbour), ``nn_ok`` (N,) whether the image has a candidate neighbour,
``gallery_size`` (0: no gallery given), ``knn`` (N,) the k-NN vote at the reference view, ``labels`` and ``index``
(N,). A classifier's class is the argmax of its logits, a zero-shot model's the nearest class text embedding, an
embedder's the k-NN vote of each view over the gallery (the paper's K-NN for open-CLIP and ViT).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lrbench import (
    CellOutput,
    Dataset,
    Degradation,
    LrbenchError,
    ModelAdapter,
    PluginContext,
    RunContext,
    Task,
    zero_shot_weights,
)

from .shifts import ShiftCondition

METRICS = ("shift_acc", "adv_robustness", "adv_robustness_nn", "consistency", "consistency_nn")
#: ``gallery: eval``: the other evaluation images (no separate dataset)
EVAL_GALLERY = "eval"


def _gallery_entry(gallery: str | dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(registry name, parameters) of a gallery dataset entry; None for no gallery or ``eval``."""
    if gallery is None or gallery == EVAL_GALLERY:
        return None
    if isinstance(gallery, str):
        return gallery, {}
    if isinstance(gallery, dict) and "name" in gallery:
        params = dict(gallery)
        return str(params.pop("name")), params
    raise LrbenchError(
        f"shift task: gallery must be a dataset entry ({{name: toyworld, split: train}} or a dataset "
        f"name) or 'eval' (the other evaluation images), got {gallery!r}"
    )


class ShiftTask(Task):
    """Shift consistency: per-shift class and 1-NN predictions for realistic (``shift@D``) or cyclic conditions."""

    name = "shift"
    dataset_task = "classification"
    model_kinds = ("classifier", "zero-shot", "embedder")
    #: its conditions are shifts, not resolutions: it runs when a spec names it (``task: shift``)
    auto_select = False
    default_metrics = METRICS
    outputs = ("offsets", "pred", "nn", "nn_ok", "gallery_size", "knn", "labels")
    headline_metric = "adv_robustness"
    version = "2"

    def __init__(
        self,
        same_class: bool = True,
        knn: int = 11,
        gallery: str | dict[str, Any] | None = None,
        context: PluginContext | None = None,
    ):
        if int(knn) < 1:
            raise ValueError(f"knn must be >= 1, got {knn}")
        self.same_class, self.knn = bool(same_class), int(knn)
        self.gallery = gallery
        self._gallery_entry = _gallery_entry(gallery)
        self._gallery_ds: Dataset | None = None
        self._context = context  # the run's registries: the gallery entry is built from the same plugin set

    def gallery_dataset(self) -> Dataset | None:
        """The separate gallery dataset (built once), None for ``eval`` or no gallery."""
        if self._gallery_entry is not None and self._gallery_ds is None:
            if self._context is None:
                raise LrbenchError(
                    "the shift task builds its gallery dataset through the plugin context: create it "
                    "through the tasks registry (as a spec does), not directly"
                )
            name, params = self._gallery_entry
            self._gallery_ds = self._context.create("datasets", name, **params)
        return self._gallery_ds

    def identity(self) -> dict[str, Any]:
        ds = self.gallery_dataset()
        gallery = ds.identity() if ds is not None else self.gallery
        return {**super().identity(), "same_class": self.same_class, "knn": self.knn, "gallery": gallery}

    # ---- model outputs --------------------------------------------------------------------------------------------
    def _forward(
        self, model: ModelAdapter, x: torch.Tensor, weights: torch.Tensor | None, ctx: RunContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _views(
        self, model: ModelAdapter, cond: ShiftCondition, base, offsets: np.ndarray, ctx: RunContext
    ) -> torch.Tensor:
        if ctx.fast_path:
            return model.prepare_tensor(cond.views_tensor(base, offsets, ctx.device))
        return model.prepare(cond.views_pil(base, offsets.tolist()))

    def _run_views(
        self,
        model: ModelAdapter,
        cond: ShiftCondition,
        base,
        offsets: np.ndarray,
        weights: torch.Tensor | None,
        ctx: RunContext,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        preds, embs = [], []
        for start in range(0, len(offsets), ctx.batch_size):
            p, e = self._forward(
                model, self._views(model, cond, base, offsets[start : start + ctx.batch_size], ctx), weights, ctx
            )
            preds.append(p.cpu())
            embs.append(e.cpu())
        return torch.cat(preds), torch.cat(embs)

    def _text_weights(self, model: ModelAdapter, dataset: Dataset, ctx: RunContext) -> torch.Tensor | None:
        if model.kind == "zero-shot" and len(dataset.classnames):
            return zero_shot_weights(model, dataset, ctx, {"name": self.name, "version": self.version}).float()
        return None

    # ---- retrieval ------------------------------------------------------------------------------------------------
    def _candidates(self, g_labels: np.ndarray, label: int, self_pos: int) -> np.ndarray:
        """Gallery positions a query may retrieve: its class with ``same_class``, never the query image itself."""
        cand = (g_labels == label) if self.same_class else np.ones(len(g_labels), dtype=bool)
        if self_pos >= 0:
            cand[self_pos] = False
        return cand

    @staticmethod
    def _nearest(queries: torch.Tensor, gallery: torch.Tensor, cand: np.ndarray) -> np.ndarray:
        """1-NN gallery position of each query (cosine) among the candidates; -1 when there is none."""
        if not cand.any():
            return np.full(len(queries), -1, dtype=np.int64)
        sims = queries @ gallery.T
        sims[:, torch.from_numpy(~cand)] = float("-inf")
        return sims.argmax(dim=1).numpy()

    def _knn_vote(
        self, queries: torch.Tensor, gallery: torch.Tensor, labels: np.ndarray, exclude: np.ndarray, num_classes: int
    ) -> np.ndarray:
        """k-NN majority vote of each query over the gallery without position ``exclude[q]`` (-1: exclude nothing);
        ties go to the class of the nearest neighbour; -1 when no gallery image is left."""
        n = len(gallery) - int((exclude >= 0).any())
        if n < 1:
            return np.full(len(queries), -1, dtype=np.int64)
        sims = queries @ gallery.T
        rows = np.flatnonzero(exclude >= 0)
        sims[torch.from_numpy(rows), torch.from_numpy(exclude[rows])] = float("-inf")
        k = min(self.knn, n)
        neigh = labels[sims.topk(k, dim=1).indices.numpy()]  # (q, k), nearest first
        votes = np.zeros((len(queries), max(num_classes, int(labels.max()) + 1)), dtype=np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(queries)), k), neigh.ravel()), 1.0)
        votes[np.arange(len(queries)), neigh[:, 0]] += 0.5
        return votes.argmax(axis=1).astype(np.int64)

    # ---- the pass -------------------------------------------------------------------------------------------------
    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        for c in conditions:
            if not isinstance(c, ShiftCondition):
                raise LrbenchError(f"task 'shift' evaluates shift conditions (shift@D, cyclic@D); got {c.condition!r}")
        weights = self._text_weights(model, dataset, ctx)
        if weights is None and model.kind != "classifier" and self.gallery is None:
            raise LrbenchError(
                "task 'shift': an embedder's class is its k-NN vote over a gallery; give the task a "
                "gallery ({name: <dataset>, split: train} as the paper, or 'eval')"
            )
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
                ctx.skipped.append(
                    {
                        "dataset": dataset.name,
                        "index": i,
                        "item": dataset.item_id(i),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )

    def _references(
        self, model: ModelAdapter, dataset: Dataset, cond: ShiftCondition, weights: torch.Tensor | None, ctx: RunContext
    ) -> tuple[np.ndarray, torch.Tensor]:
        """(item indices, embeddings) of the reference views of every loadable item of ``dataset``."""
        ref = np.zeros((1, 2), dtype=np.int64)
        index, emb = [], []
        for i, base in self._load_bases(dataset, cond, ctx):
            index.append(i)
            emb.append(self._run_views(model, cond, base, ref, weights, ctx)[1])
        return np.asarray(index, dtype=np.int64), (torch.cat(emb) if emb else torch.zeros(0, 1))

    def _gallery(
        self, model: ModelAdapter, dataset: Dataset, rep: ShiftCondition, weights: torch.Tensor | None, ctx: RunContext
    ) -> tuple[np.ndarray, torch.Tensor, np.ndarray, bool]:
        """(gallery item indices, embeddings, labels, whether the gallery is the evaluation set itself)."""
        gal = self.gallery_dataset()
        if gal is None and self.gallery != EVAL_GALLERY:
            return np.zeros(0, np.int64), torch.zeros(0, 1), np.zeros(0, np.int64), False
        source = dataset if gal is None or gal.identity() == dataset.identity() else gal
        g_idx, g_emb = self._references(model, source, rep, weights, ctx)
        return g_idx, g_emb, np.asarray(source.labels)[g_idx], source is dataset

    def _run_family(
        self,
        model: ModelAdapter,
        dataset: Dataset,
        members: list[ShiftCondition],
        weights: torch.Tensor | None,
        ctx: RunContext,
    ) -> dict[str, CellOutput]:
        rep = max(members, key=lambda c: c.max_shift)
        offsets = rep.offsets()
        g_idx, g_emb, g_labels, same_set = self._gallery(model, dataset, rep, weights, ctx)
        g_pos = {int(i): p for p, i in enumerate(g_idx.tolist())} if same_set else {}
        index, rows = [], []
        knn_classes = weights is None and model.kind != "classifier"
        for i, base in self._load_bases(dataset, rep, ctx):
            p, e = self._run_views(model, rep, base, offsets, weights, ctx)
            self_pos = g_pos.get(i, -1)
            if knn_classes:  # an embedder's class is its k-NN vote (the paper's K-NN for open-CLIP and ViT)
                p = self._knn_vote(e, g_emb, g_labels, np.full(len(e), self_pos), dataset.num_classes)
            label = int(dataset.labels[i])
            cand = self._candidates(g_labels, label, self_pos)
            nn = self._nearest(e, g_emb, cand)
            knn = (
                self._knn_vote(e[:1], g_emb, g_labels, np.array([self_pos]), dataset.num_classes)[0]
                if len(g_idx)
                else -1
            )
            index.append(i)
            rows.append(
                (
                    np.asarray(p),
                    np.where(nn >= 0, g_idx[np.maximum(nn, 0)] if len(g_idx) else -1, -1),
                    bool(cand.any()),
                    knn,
                )
            )
            ctx.progress(1)
        idx = np.asarray(index, dtype=np.int64)
        labels = np.asarray(dataset.labels)[idx] if len(idx) else np.zeros(0, np.int64)
        pred = np.stack([r[0] for r in rows]).astype(np.int64) if rows else np.zeros((0, len(offsets)), np.int64)
        nn = np.stack([r[1] for r in rows]).astype(np.int64) if rows else np.zeros((0, len(offsets)), np.int64)
        nn_ok = np.array([r[2] for r in rows], dtype=bool)
        knn = np.array([r[3] for r in rows], dtype=np.int64)
        out = {}
        for c in members:
            cols = _columns(offsets, c.offsets())
            out[c.condition] = CellOutput(
                idx,
                len(idx),
                {
                    "offsets": offsets[cols],
                    "pred": pred[:, cols],
                    "nn": nn[:, cols],
                    "nn_ok": nn_ok,
                    "gallery_size": np.array(len(g_idx)),
                    "knn": knn,
                    "labels": labels,
                },
            )
        return out


def _columns(all_offsets: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    pos = {tuple(o): j for j, o in enumerate(all_offsets.tolist())}
    return np.array([pos[tuple(o)] for o in wanted.tolist()], dtype=np.int64)


def shift_task(
    same_class: bool = True,
    knn: int = 11,
    gallery: str | dict[str, Any] | None = None,
    *,
    context: PluginContext | None = None,
) -> ShiftTask:
    """Shift consistency (RICS paper): per-shift class and 1-NN predictions; name it with ``task: shift``."""
    return ShiftTask(same_class=same_class, knn=knn, gallery=gallery, context=context)
