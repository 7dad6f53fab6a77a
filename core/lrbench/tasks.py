"""Tasks (evaluators) and the shared image pipeline they use.

A task turns (model, dataset, conditions) into raw outputs per condition, in one pass over the data: each image is
loaded once and every condition is derived from it. The runner caches each condition's outputs separately and only asks
a task for the conditions that are missing.

Reference path (default): per image, ``degradation.pil`` then the model's ``prepare`` (PIL, exactly the papers'
transform). Fast path (``fast_path: true``): each image is decoded once, resized so its shorter side is the model's
input size and center-cropped, then every condition is computed on the device on the whole batch. A model with an
``hr_view`` (SR benchmarks: a fixed crop) has its conditions act on that view on both paths, the view made once per
image on the PIL image.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .cache import Cache
from .datasets import Dataset
from .degradations import Degradation
from .models import HRView, ModelAdapter
from .registry import LrbenchError


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


@dataclass
class CellOutput:
    """One condition's raw outputs: what a task returns for each condition, what the cache stores, what metrics read.

    ``index``: the dataset items the cell holds outputs of (undecodable items are absent); ``n``: how many units its
    metrics score (images, pairs, probes: the ``n`` column of results); ``arrays``: the named arrays its metrics read
    (the task lists their names in ``Task.outputs``).
    """

    index: np.ndarray
    n: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    #: the names the contract itself uses in a stored cell
    RESERVED: ClassVar[tuple[str, ...]] = ("index", "n")

    def __getitem__(self, name: str) -> np.ndarray:
        """``cell["logits"]``, ``cell["index"]``: an array by name, as in the stored mapping."""
        if name == "index":
            return self.index
        if name == "n":
            return np.asarray(self.n, dtype=np.int64)
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.RESERVED or name in self.arrays

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat mapping the cache stores and metrics read: the arrays plus ``index`` and ``n``."""
        return {**self.arrays, "index": self.index, "n": np.asarray(self.n, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "CellOutput":
        """A stored cell back; raises ValueError when it lacks the contract's keys (written by an older lrbench)."""
        missing = [k for k in cls.RESERVED if k not in arrays]
        if missing:
            raise ValueError(f"the cell has no {' or '.join(missing)}")
        return cls(arrays["index"], int(arrays["n"]), {k: v for k, v in arrays.items() if k not in cls.RESERVED})


def check_outputs(task: "Task", outputs: Any, conditions: Sequence[str]) -> dict[str, CellOutput]:
    """A task's result for ``conditions`` checked against the contract; an LrbenchError names the task and the fault."""
    where = f"task {task.name!r} ({type(task).__module__}.{type(task).__qualname__})"
    if not isinstance(outputs, dict) or set(outputs) != set(conditions):
        got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise LrbenchError(f"{where} must return {{condition: CellOutput}} for {sorted(conditions)}; got {got}")
    for condition, cell in outputs.items():
        problem = _cell_problem(task, cell)
        if problem:
            raise LrbenchError(f"{where} returned a bad output for condition {condition!r}: {problem}")
    return outputs


def _cell_problem(task: "Task", cell: Any) -> str | None:
    if not isinstance(cell, CellOutput):
        return f"expected a lrbench.tasks.CellOutput, got {type(cell).__name__}"
    index = cell.index
    if not isinstance(index, np.ndarray) or index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        return f"index must be a 1-D integer array, got {getattr(index, 'dtype', type(index).__name__)}"
    if not isinstance(cell.n, (int, np.integer)) or isinstance(cell.n, bool) or cell.n < 0:
        return f"n must be a non-negative int, got {cell.n!r}"
    bad = [k for k, v in cell.arrays.items() if not isinstance(v, np.ndarray) or k in CellOutput.RESERVED]
    if bad:
        return f"arrays {bad} are not numpy arrays or use a reserved name ({', '.join(CellOutput.RESERVED)})"
    missing = [k for k in task.outputs if k not in cell.arrays]
    if missing:
        return f"missing arrays {missing} (the task declares outputs {list(task.outputs)})"
    return None


class Task:
    name: ClassVar[str] = "task"
    #: the dataset kind it evaluates (Dataset.task)
    dataset_task: ClassVar[str] = "classification"
    #: model kinds it accepts (ModelAdapter.kind)
    model_kinds: ClassVar[Sequence[str]] = ("zero-shot",)
    #: False for tasks that run only when a spec names them (``task: shift``): they never compete in task choice
    auto_select: ClassVar[bool] = True
    #: metrics used when the spec names none
    default_metrics: ClassVar[Sequence[str]] = ()
    #: the arrays every CellOutput of this task holds (what its metrics read)
    outputs: ClassVar[Sequence[str]] = ()
    #: the metric tables, plots and the CLI lead with (one of ``default_metrics``)
    headline_metric: ClassVar[str] = ""
    #: aggregate metrics a run computes when the spec names no metrics
    default_aggregates: ClassVar[Sequence[str]] = ()
    #: bump when the evaluator's outputs change: it is part of every cache key
    version: ClassVar[str] = "1"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    def run(self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation],
            ctx: RunContext) -> dict[str, CellOutput]:
        """One pass over ``dataset``: a :class:`CellOutput` per condition, keyed by ``condition`` name."""
        raise NotImplementedError


class _Loader(torch.utils.data.Dataset):
    """Loads item i and derives every condition's model-ready input (reference) or the HR tensor (fast path)."""

    def __init__(self, dataset: Dataset, conditions: Sequence[Degradation], fast_size: int | None,
                 hr_view: HRView | None = None):
        self.dataset, self.conditions, self.fast_size, self.hr_view = dataset, conditions, fast_size, hr_view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        try:
            image = self.dataset.load(i)
            if self.hr_view is not None:
                image = self.hr_view.pil(image)
                if self.fast_size is not None:
                    return i, TF.pil_to_tensor(image), None
            elif self.fast_size is not None:
                image = TF.resize(image, self.fast_size, interpolation=InterpolationMode.BICUBIC)
                image = TF.center_crop(image, [self.fast_size, self.fast_size])
                return i, TF.pil_to_tensor(image), None
        except Exception as exc:  # the item itself is unreadable: skipped in every condition
            return i, None, f"{type(exc).__name__}: {exc}"
        return i, [_degrade(deg, image) for deg in self.conditions], None


class ConditionFailed(LrbenchError):
    """A condition raised on an item that loaded: its cell fails (with this error); the other conditions do not."""

    def __init__(self, condition: str, error: str):
        self.condition, self.error = condition, error
        super().__init__(f"condition {condition}: {error}")


@dataclass
class _Failed:
    error: str


def _degrade(deg: Degradation, image: Any) -> Any:
    try:
        return deg.pil(image)
    except Exception as exc:  # MemoryError included: a condition too large for the machine fails alone
        return _Failed(f"{type(exc).__name__}: {exc}")


def _collate(batch: list) -> list:
    return batch


def iter_condition_batches(model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation],
                           ctx: RunContext, indices: Sequence[int] | None = None
                           ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(item indices, {condition: model input batch})``; undecodable items are skipped and recorded."""
    fast_size = None
    if ctx.fast_path:
        # the one decode is shrunk to the largest size any condition or the model needs: a condition above the model's
        # input (bicubic@128 for a 64 px model) must not be made by upsampling an already shrunk image
        fast_size = max([model.preprocess.image_size] + [int(getattr(c, "size", 0)) for c in conditions])
    source: torch.utils.data.Dataset = _Loader(dataset, conditions, fast_size, model.hr_view)
    if indices is not None:
        source = torch.utils.data.Subset(source, list(indices))
    loader = DataLoader(source, batch_size=ctx.batch_size, num_workers=ctx.num_workers, collate_fn=_collate,
                        shuffle=False)
    for batch in loader:
        good = []
        for i, payload, error in batch:
            if error is None:
                good.append((i, payload))
            else:
                ctx.skipped.append({"dataset": dataset.name, "index": int(i), "item": dataset.item_id(i),
                                    "error": error})
                ctx.log.warning("skipping %s item %s: %s", dataset.name, dataset.item_id(i), error)
        if good:
            idx = np.array([i for i, _ in good], dtype=np.int64)
            inputs: dict[str, torch.Tensor] = {}
            if ctx.fast_path:
                hr = torch.stack([p for _, p in good]).to(ctx.device, non_blocking=True).float().div_(255)
                for deg in conditions:
                    try:
                        degraded = deg.tensor(hr)
                    except Exception as exc:
                        raise ConditionFailed(deg.condition, f"{type(exc).__name__}: {exc}") from exc
                    inputs[deg.condition] = model.prepare_tensor(degraded)
            else:
                for c, deg in enumerate(conditions):
                    column = [p[c] for _, p in good]
                    failed = next((v for v in column if isinstance(v, _Failed)), None)
                    if failed is not None:
                        item = next(dataset.item_id(i) for i, p in good if isinstance(p[c], _Failed))
                        raise ConditionFailed(deg.condition, f"{failed.error} (item {item})")
                    inputs[deg.condition] = model.prepare(column)
            yield idx, inputs
        ctx.progress(len(batch))


def class_text_embeddings(model: ModelAdapter, classnames: Sequence[str], templates: Sequence[str],
                          batch_size: int = 256) -> torch.Tensor:
    """(C, D) classifier weights: every class x template prompt encoded in large batches across classes, each
    embedding normalized, averaged per class, and normalized again (the CLIP protocol)."""
    prompts = [t.replace("{c}", c) if "{c}" in t else t.format(c) for c in classnames for t in templates]
    chunks = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunks.append(F.normalize(model.encode_text(prompts[start:start + batch_size]).float(), dim=-1))
    emb = torch.cat(chunks).view(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


def zero_shot_weights(model: ModelAdapter, dataset: Dataset, ctx: RunContext, task: dict[str, Any]) -> torch.Tensor:
    """(C, D) class text embeddings of a zero-shot model for a dataset's class names and templates (the CLIP protocol),
    cached under ``text/`` by model, class names, templates and ``task`` (the identity of the task asking)."""
    description = {"model": model.identity(), "classnames": list(dataset.classnames),
                   "templates": list(dataset.templates), "task": task}

    def compute() -> dict[str, np.ndarray]:
        w = class_text_embeddings(model, dataset.classnames, dataset.templates)
        return {"weights": w.cpu().numpy().astype(np.float32)}

    arrays = compute() if ctx.cache is None else ctx.cache.get_or_compute("text", description, compute)
    return torch.from_numpy(arrays["weights"]).to(ctx.device)
