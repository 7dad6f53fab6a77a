"""Tasks (evaluators) and the shared image pipeline they use.

A task turns (model, dataset, conditions) into raw outputs per condition, in one pass over the data: each image is
loaded once and every condition is derived from it. The runner caches each condition's outputs separately and only asks
a task for the conditions that are missing.

Reference path (default): per image, in the DataLoader workers, ``degradation.pil`` then the model's own
``Preprocess.pil`` (PIL, exactly the papers' transform); the main process only copies the batches to the device. Fast path (``fast_path: true``): each image is decoded once, resized so its shorter side is the model's
input size and center-cropped, then every condition is computed on the device on the whole batch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .cache import Cache
from .datasets import Dataset
from .degradations import Degradation
from .models import ModelAdapter


@dataclass
class RunContext:
    device: torch.device = torch.device("cpu")
    batch_size: int = 64
    num_workers: int = 0
    fast_path: bool = False
    amp: bool = False
    cache: Cache | None = None
    seed: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("lrbench"))
    #: called with the number of images just processed (progress bars)
    progress: Callable[[int], None] = lambda n: None
    #: undecodable items: dicts with dataset, index, item, error
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)


class Task:
    name: ClassVar[str] = "task"
    #: the dataset kind it evaluates (Dataset.task)
    dataset_task: ClassVar[str] = "classification"
    #: model kinds it accepts (ModelAdapter.kind)
    model_kinds: ClassVar[Sequence[str]] = ("zero-shot",)
    #: metrics used when the spec names none
    default_metrics: ClassVar[Sequence[str]] = ()
    #: bump when the evaluator's outputs change: it is part of every cache key
    version: ClassVar[str] = "1"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    def run(self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation],
            ctx: RunContext) -> dict[str, dict[str, np.ndarray]]:
        raise NotImplementedError


#: the most loader workers ``num_workers: auto`` starts
MAX_AUTO_WORKERS = 16


def resolve_workers(value: int | str) -> int:
    """``auto``: one loader worker per CPU core this process may use but one (the main process runs the model), at most
    MAX_AUTO_WORKERS; an integer is taken as is."""
    if value != "auto":
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(cores - 1, MAX_AUTO_WORKERS))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class ConditionBatch:
    """One loader batch, each condition's outcome kept apart so one failing condition need not fail the others.

    ``inputs[c]``: condition c's payloads for the items it succeeded on, in batch order: a stacked model-input tensor,
    or a list of degraded PIL images when the model's ``prepare`` must run in the main process. ``errors[c]``:
    {position in the batch: the error condition c raised there} (an item that failed to load fails every condition).
    """

    index: np.ndarray
    inputs: dict[str, Any]
    errors: dict[str, dict[int, str]]

    def succeeded(self, condition: str) -> np.ndarray:
        """Positions in the batch where ``condition`` has a payload (rows of ``inputs[condition]``, in order)."""
        failed = self.errors[condition]
        return np.array([p for p in range(len(self.index)) if p not in failed], dtype=np.int64)

    def pin_memory(self) -> "ConditionBatch":
        """Called by the DataLoader's pinning thread (``pin_memory=True``): page-locked inputs copy asynchronously."""
        pinned = {c: x.pin_memory() if isinstance(x, torch.Tensor) else x for c, x in self.inputs.items()}
        return ConditionBatch(self.index, pinned, self.errors)


def _collate_conditions(index: list[int], per_item: list[list[Any]], conditions: Sequence[Degradation]
                        ) -> ConditionBatch:
    """Per-item payload lists (one entry per condition: a tensor, a PIL image or an error string) -> ConditionBatch."""
    inputs: dict[str, Any] = {}
    errors: dict[str, dict[int, str]] = {}
    for c, deg in enumerate(conditions):
        column = [payloads[c] for payloads in per_item]
        errors[deg.condition] = {p: v for p, v in enumerate(column) if isinstance(v, str)}
        good = [v for v in column if not isinstance(v, str)]
        inputs[deg.condition] = torch.stack(good) if good and isinstance(good[0], torch.Tensor) else good
    return ConditionBatch(np.asarray(index, dtype=np.int64), inputs, errors)


class _ReferenceLoader(torch.utils.data.Dataset):
    """The reference path, all of it per item in the loader workers: load, every condition's ``pil``, then the model's
    own ``Preprocess.pil`` when the model's ``prepare`` is exactly that (``prepare`` is None otherwise: the main process
    calls ``model.prepare`` on the degraded images)."""

    def __init__(self, dataset: Dataset, conditions: Sequence[Degradation],
                 prepare: Callable[[Image.Image], torch.Tensor] | None):
        self.dataset, self.conditions, self.prepare = dataset, conditions, prepare

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, list[Any]]:
        try:
            image = self.dataset.load(i)
        except Exception as exc:
            return i, [_error(exc)] * len(self.conditions)
        payloads: list[Any] = []
        for deg in self.conditions:
            try:
                degraded = deg.pil(image)
                payloads.append(self.prepare(degraded) if self.prepare is not None else degraded)
            except Exception as exc:
                payloads.append(_error(exc))
        return i, payloads

    def collate(self, batch: list[tuple[int, list[Any]]]) -> ConditionBatch:
        return _collate_conditions([i for i, _ in batch], [p for _, p in batch], self.conditions)


class _FastLoader(torch.utils.data.Dataset):
    """Fast path, worker side: item i decoded once, shorter side to ``size`` and center-cropped, as a uint8 tensor."""

    def __init__(self, dataset: Dataset, conditions: Sequence[Degradation], size: int):
        self.dataset, self.conditions, self.size = dataset, conditions, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        try:
            image = TF.resize(self.dataset.load(i), self.size, interpolation=InterpolationMode.BICUBIC)
            return i, TF.pil_to_tensor(TF.center_crop(image, [self.size, self.size]))
        except Exception as exc:
            return i, _error(exc)

    def collate(self, batch: list[tuple[int, torch.Tensor | str]]) -> ConditionBatch:
        return _collate_conditions([i for i, _ in batch], [[p] for _, p in batch], [_Decoded()])


class _Decoded(Degradation):
    """The fast path's decoded batch, carried in a ConditionBatch before any condition is derived from it."""

    name = "decoded"


def iter_condition_batches(model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation],
                           ctx: RunContext, indices: Sequence[int] | None = None
                           ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(item indices, {condition: model input batch})``; items any condition fails on are skipped and recorded
    (with the first failing condition's error)."""
    pre = model.plain_preprocess()
    source: _ReferenceLoader | _FastLoader
    if ctx.fast_path:
        # the one decode is shrunk to the largest size any condition or the model needs: a condition above the model's
        # input (bicubic@128 for a 64 px model) must not be made by upsampling an already shrunk image
        size = max([model.preprocess.image_size] + [int(getattr(c, "size", 0)) for c in conditions])
        source = _FastLoader(dataset, conditions, size)
    else:
        source = _ReferenceLoader(dataset, conditions, pre.pil if pre is not None else None)
    subset = source if indices is None else torch.utils.data.Subset(source, list(indices))
    n_batches = -(-len(subset) // ctx.batch_size)
    loader = DataLoader(subset, batch_size=ctx.batch_size, num_workers=ctx.num_workers if n_batches > 1 else 0,
                        collate_fn=source.collate, shuffle=False, pin_memory=ctx.device.type == "cuda")
    for batch in loader:
        keep = _keep_and_record(batch, dataset, ctx)
        if keep.size:
            inputs: dict[str, torch.Tensor] = {}
            if ctx.fast_path:
                hr = _rows(batch, _Decoded.name, keep).to(ctx.device, non_blocking=True).float().div_(255)
                for deg in conditions:
                    inputs[deg.condition] = model.prepare_tensor(deg.tensor(hr))
            else:
                for deg in conditions:
                    x = _rows(batch, deg.condition, keep)
                    inputs[deg.condition] = (x.to(model.device, non_blocking=True) if isinstance(x, torch.Tensor)
                                             else model.prepare(x))
            yield batch.index[keep], inputs
        ctx.progress(len(batch.index))


def _keep_and_record(batch: ConditionBatch, dataset: Dataset, ctx: RunContext) -> np.ndarray:
    """Positions every condition succeeded on; each other item is recorded once in ``ctx.skipped``."""
    first_error: dict[int, str] = {}
    for errors in batch.errors.values():
        for p, message in errors.items():
            first_error.setdefault(p, message)
    for p in sorted(first_error):
        i = int(batch.index[p])
        ctx.skipped.append({"dataset": dataset.name, "index": i, "item": dataset.item_id(i), "error": first_error[p]})
        ctx.log.warning("skipping %s item %s: %s", dataset.name, dataset.item_id(i), first_error[p])
    return np.array([p for p in range(len(batch.index)) if p not in first_error], dtype=np.int64)


def _rows(batch: ConditionBatch, condition: str, keep: np.ndarray) -> Any:
    """Condition's payloads of the positions in ``keep`` (a subset of those it succeeded on)."""
    x = batch.inputs[condition]
    have = batch.succeeded(condition)
    if len(have) == len(keep):
        return x
    rows = np.flatnonzero(np.isin(have, keep))
    return x[torch.from_numpy(rows)] if isinstance(x, torch.Tensor) else [x[r] for r in rows]
