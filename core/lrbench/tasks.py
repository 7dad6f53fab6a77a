"""Tasks (evaluators) and the shared image pipeline they use.

A task turns (model, dataset, conditions) into raw outputs per condition, in one pass over the data: each image is
loaded once and every condition is derived from it. The runner caches each condition's outputs separately and only asks
a task for the conditions that are missing.

Reference path (default): per image, in the DataLoader workers, ``degradation.pil`` then the model's own
``Preprocess.pil`` (PIL, exactly the papers' transform); the main process only copies the pinned batches to the device.
Fast path (``fast_path: true``): the workers read each file; JPEGs are decoded in batches on the device (nvJPEG on
CUDA; on a CPU run the workers decode and derive), every condition is made from the whole decode with the reference's
steps, sizes and crop box (``derive_conditions``); only the resampling arithmetic differs from PIL's. A model with an
``hr_view`` (SR benchmarks: a fixed crop) has its conditions act on that view on both paths, the view made once per
image on the PIL image in the workers.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import functional as TF

from .cache import Cache
from .datasets import Dataset
from .degradations import Degradation
from .models import HRView, ModelAdapter, Preprocess
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

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        """One pass over ``dataset``: a :class:`CellOutput` per condition, keyed by ``condition`` name."""
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


class _LoadError(str):
    """The item itself could not be read: skipped in every condition (a condition's own error fails its cell)."""


class ConditionFailed(LrbenchError):
    """A condition raised on an item that loaded: its cell fails (with this error); the other conditions do not."""

    def __init__(self, condition: str, error: str):
        self.condition, self.error = condition, error
        super().__init__(f"condition {condition}: {error}")


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


def _collate_conditions(
    index: list[int], per_item: list[list[Any]], conditions: Sequence[Degradation]
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

    def __init__(
        self,
        dataset: Dataset,
        conditions: Sequence[Degradation],
        prepare: Callable[[Image.Image], torch.Tensor] | None,
        hr_view: HRView | None = None,
    ):
        self.dataset, self.conditions, self.prepare, self.hr_view = dataset, conditions, prepare, hr_view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, list[Any]]:
        try:
            image = self.dataset.load(i)
            if self.hr_view is not None:
                image = self.hr_view.pil(image)
        except Exception as exc:
            return i, [_LoadError(_error(exc))] * len(self.conditions)
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


def _is_rgb_jpeg(data: bytes) -> bool:
    """A JPEG the batch decoders take as is (YCbCr or greyscale); CMYK, PNG and the rest decode with PIL."""
    if data[:2] != b"\xff\xd8":
        return False
    with Image.open(io.BytesIO(data)) as im:  # parses the header only
        return im.format == "JPEG" and im.mode in ("RGB", "L")


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor | str]:
    """JPEG files (uint8 byte tensors) -> RGB uint8 (3, H, W) images on ``device``, decoded in one batch (nvJPEG on
    CUDA, libjpeg-turbo on the CPU). A batch the decoder rejects is decoded item by item, an item it rejects with PIL,
    and an item nothing decodes becomes its error string: one bad file never fails the batch."""
    if not data:
        return []
    try:
        return list(decode_jpeg(list(data), mode=ImageReadMode.RGB, device=device))
    except Exception:  # one bad file fails the batched call: find it
        out: list[torch.Tensor | str] = []
        for d in data:
            try:
                out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except Exception:
                try:
                    with Image.open(io.BytesIO(d.numpy().tobytes())) as im:
                        out.append(TF.pil_to_tensor(im.convert("RGB")).to(device))
                except Exception as exc:
                    out.append(_error(exc))
        return out


@dataclass
class _Sources:
    """Fast path: a batch as the workers read it, before decoding (``jpeg``: the file's bytes) or after (``pixels``:
    uint8 (3, H, W)); ``error``: the item failed to read."""

    index: np.ndarray
    kinds: list[str]
    data: list[torch.Tensor | str]

    def pin_memory(self) -> "_Sources":
        return _Sources(
            self.index, self.kinds, [d.pin_memory() if isinstance(d, torch.Tensor) else d for d in self.data]
        )

    def decode(self, device: torch.device) -> list[torch.Tensor | str]:
        """Every item as uint8 (3, H, W) on ``device``, JPEGs decoded there in one batch, or its error string."""
        jpegs = [p for p, k in enumerate(self.kinds) if k == "jpeg"]
        out: list[torch.Tensor | str] = [
            d.to(device, non_blocking=True) if k == "pixels" else d  # type: ignore[union-attr]
            for k, d in zip(self.kinds, self.data)
        ]
        for p, image in zip(jpegs, decode_jpegs([self.data[p] for p in jpegs], device)):  # type: ignore[misc]
            out[p] = image
        return out


def _resample(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Antialiased resize to (height, width), rounded to 8-bit levels as PIL stores every image. A uint8 batch on the
    CPU stays uint8: torch's CPU uint8 kernels are Pillow's arithmetic (0.001 levels from PIL on photos) and four times
    faster than float. Anything else (CUDA has no uint8 antialiased kernels) is resized as float [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.dtype == torch.uint8 and x.device.type == "cpu":
        return F.interpolate(x, size=size, mode=interpolation, antialias=True, align_corners=False)
    x = x.float().div(255) if x.dtype == torch.uint8 else x
    out = F.interpolate(x, size=size, mode=interpolation, antialias=True, align_corners=False)
    return out.clamp_(0, 1).mul_(255).round_().div_(255)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def derive_conditions(
    x: torch.Tensor,
    conditions: Sequence[Degradation],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    pre: Preprocess | None,
) -> dict[str, torch.Tensor | str]:
    """Every condition's model input from a batch of same-size decoded images ``x`` (uint8, (B, 3, H, W)), or the
    error that condition raised.

    The reference path's steps on the whole image: the degradation (a resize, ``Degradation.resample``, at the size
    PIL gives; any other degradation through its ``tensor``), then, for a model with its plain preprocessing
    (``pre``), that preprocessing's resize as its own step, then its crop and normalisation; a model that changes its
    preprocessing gets ``prepare`` (its ``prepare_tensor``) on the degraded image. Each image is rounded to 8 bits
    between steps, as PIL's are, so only the resampling arithmetic differs from the reference. Equal resizes (``hr``
    and ``bicubic@64`` before a 64 px model) are computed once.
    """
    h, w = x.shape[-2:]
    # (id of the source, size, interpolation) -> (source, result): the source is held so its id stays its own
    done: dict[tuple[int, int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def resample(source: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
        key = (id(source), *size, interpolation)
        if key not in done:
            done[key] = source, _resample(source, size, interpolation)
        return done[key][1]

    own_resize = pre if pre is not None and pre.interpolation in ("bicubic", "bilinear") else None
    out: dict[str, torch.Tensor | str] = {}
    for deg in conditions:
        try:
            r = deg.resample(h, w)
            if r is None:
                degraded = _as_float(x)
                degraded = deg.tensor(degraded).clamp(0, 1).mul_(255).round_().div_(255)
            else:
                degraded = resample(x, (r.height, r.width), r.interpolation) if r.interpolation else x
            if own_resize is not None:
                size = own_resize.resized_size(*degraded.shape[-2:])
                resized = resample(degraded, size, own_resize.interpolation)
                out[deg.condition] = own_resize.tensor(_as_float(resized))  # at its size already: crop, normalise
            else:
                out[deg.condition] = prepare(_as_float(degraded))
        except Exception as exc:
            out[deg.condition] = _error(exc)
    return out


def derive_batch(
    index: np.ndarray,
    images: Sequence[torch.Tensor | str],
    conditions: Sequence[Degradation],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    pre: Preprocess | None,
) -> ConditionBatch:
    """Decoded images of any sizes (or their errors) -> ConditionBatch: images of equal size are stacked and derived
    together (``derive_conditions``), then every condition's rows are put back in batch order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for p, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            groups.setdefault(tuple(image.shape[-2:]), []).append(p)  # type: ignore[arg-type]
    load_errors = {p: _LoadError(image) for p, image in enumerate(images) if isinstance(image, str)}
    parts: dict[str, list[tuple[list[int], torch.Tensor]]] = {d.condition: [] for d in conditions}
    errors: dict[str, dict[int, str]] = {d.condition: dict(load_errors) for d in conditions}
    for positions in groups.values():
        x = torch.stack([images[p] for p in positions])  # type: ignore[misc]
        for cond, result in derive_conditions(x, conditions, prepare, pre).items():
            if isinstance(result, str):
                errors[cond].update({p: result for p in positions})
            else:
                parts[cond].append((positions, result))
    inputs: dict[str, Any] = {}
    for cond, pieces in parts.items():
        if not pieces:
            inputs[cond] = []
            continue
        order = np.argsort(np.concatenate([pos for pos, _ in pieces]), kind="stable")
        stacked = torch.cat([t for _, t in pieces])
        inputs[cond] = stacked if len(pieces) == 1 else stacked[torch.from_numpy(order).to(stacked.device)]
    return ConditionBatch(index, inputs, errors)


class _FastLoader(torch.utils.data.Dataset):
    """The fast path, worker side: the item's file bytes (a JPEG the batch decoders take) or its PIL decode; with
    ``decode`` the JPEG is decoded here too (a CPU run: the workers are the decoders), and with ``derive`` (a CPU run
    whose model keeps its plain preprocessing) every condition's model input is made here as well."""

    def __init__(
        self,
        dataset: Dataset,
        conditions: Sequence[Degradation],
        decode: bool,
        derive: Preprocess | None,
        hr_view: HRView | None = None,
    ):
        self.dataset, self.conditions, self.decode, self.derive = dataset, conditions, decode, derive
        self.hr_view = hr_view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, str, torch.Tensor | str]:
        try:
            if self.hr_view is not None:  # the view is made on the PIL image, as on the reference path
                return i, "pixels", TF.pil_to_tensor(self.hr_view.pil(self.dataset.load(i)))
            data = self.dataset.encoded(i)
            if data is not None and _is_rgb_jpeg(data):
                return i, "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return i, "pixels", TF.pil_to_tensor(self.dataset.load(i).convert("RGB"))
        except Exception as exc:
            return i, "error", _LoadError(_error(exc))

    def collate(self, batch: list[tuple[int, str, torch.Tensor | str]]) -> _Sources | ConditionBatch:
        sources = _Sources(
            np.array([i for i, _, _ in batch], dtype=np.int64), [k for _, k, _ in batch], [d for _, _, d in batch]
        )
        if not self.decode:
            return sources
        images = sources.decode(torch.device("cpu"))
        if self.derive is None:
            return _Sources(sources.index, ["error" if isinstance(im, str) else "pixels" for im in images], images)
        return derive_batch(sources.index, images, self.conditions, self.derive.tensor, self.derive)


def iter_condition_batches(
    model: ModelAdapter,
    dataset: Dataset,
    conditions: Sequence[Degradation],
    ctx: RunContext,
    indices: Sequence[int] | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(item indices, {condition: model input batch})``; items any condition fails on are skipped and recorded
    (with the first failing condition's error)."""
    pre = model.plain_preprocess()
    on_cpu = ctx.device.type == "cpu"
    source: _ReferenceLoader | _FastLoader
    if ctx.fast_path:
        source = _FastLoader(dataset, conditions, decode=on_cpu, derive=pre if on_cpu else None, hr_view=model.hr_view)
    else:
        source = _ReferenceLoader(dataset, conditions, pre.pil if pre is not None else None, model.hr_view)
    subset = source if indices is None else torch.utils.data.Subset(source, list(indices))
    n_batches = -(-len(subset) // ctx.batch_size)
    loader = DataLoader(
        subset,
        batch_size=ctx.batch_size,
        num_workers=ctx.num_workers if n_batches > 1 else 0,
        collate_fn=source.collate,
        shuffle=False,
        pin_memory=not on_cpu,
    )
    for batch in loader:
        if isinstance(batch, _Sources):  # decoding and deriving on the device
            batch = derive_batch(batch.index, batch.decode(ctx.device), conditions, model.prepare_tensor, pre)
        keep = _keep_and_record(batch, dataset, ctx)
        if keep.size:
            inputs: dict[str, torch.Tensor] = {}
            for deg in conditions:
                x = _rows(batch, deg.condition, keep)
                inputs[deg.condition] = (
                    x.to(model.device, non_blocking=True) if isinstance(x, torch.Tensor) else model.prepare(x)
                )
            yield batch.index[keep], inputs
        ctx.progress(len(batch.index))


def _keep_and_record(batch: ConditionBatch, dataset: Dataset, ctx: RunContext) -> np.ndarray:
    """Positions every condition succeeded on; an unreadable item is recorded once in ``ctx.skipped``; a condition that
    failed on an item that loaded raises ConditionFailed (its cell fails, the others do not)."""
    first_error: dict[int, str] = {}
    for condition, errors in batch.errors.items():
        for p, message in errors.items():
            if not isinstance(message, _LoadError):
                raise ConditionFailed(condition, f"{message} (item {dataset.item_id(int(batch.index[p]))})")
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


def class_text_embeddings(
    model: ModelAdapter, classnames: Sequence[str], templates: Sequence[str], batch_size: int = 256
) -> torch.Tensor:
    """(C, D) classifier weights: every class x template prompt encoded in large batches across classes, each
    embedding normalized, averaged per class, and normalized again (the CLIP protocol)."""
    prompts = [t.replace("{c}", c) if "{c}" in t else t.format(c) for c in classnames for t in templates]
    chunks = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunks.append(F.normalize(model.encode_text(prompts[start : start + batch_size]).float(), dim=-1))
    emb = torch.cat(chunks).view(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


def zero_shot_weights(model: ModelAdapter, dataset: Dataset, ctx: RunContext, task: dict[str, Any]) -> torch.Tensor:
    """(C, D) class text embeddings of a zero-shot model for a dataset's class names and templates (the CLIP protocol),
    cached under ``text/`` by model, class names, templates and ``task`` (the identity of the task asking)."""
    description = {
        "model": model.identity(),
        "classnames": list(dataset.classnames),
        "templates": list(dataset.templates),
        "task": task,
    }

    def compute() -> dict[str, np.ndarray]:
        w = class_text_embeddings(model, dataset.classnames, dataset.templates)
        return {"weights": w.cpu().numpy().astype(np.float32)}

    arrays = compute() if ctx.cache is None else ctx.cache.get_or_compute("text", description, compute)
    return torch.from_numpy(arrays["weights"]).to(ctx.device)
