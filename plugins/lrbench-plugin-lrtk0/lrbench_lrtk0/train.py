"""LR-TK0 training (LR0.FM section 5.1): multi-scale self-distillation of LR tokens into a frozen model.

Per HR image, one LR copy per resolution bucket (size drawn per batch from [lo, hi), height = width), made by an
antialiased bicubic down-sampling rounded to 8-bit levels, then the model's own up-sampling to its input size. The frozen
model without tokens embeds the HR image (teacher); the model with tokens embeds the HR image and every LR copy
(student); loss = ClipLoss(student_HR, teacher_HR) + sum_i ClipLoss(student_LR_i, teacher_HR), the CLIP contrastive loss
with the model's own logit scale. Only the tokens are optimised; the backbone's parameters never receive gradients.

Training is deterministic given the seed and resumable: the batch order and LR sizes of step s depend only on
(seed, s), and a checkpoint (tokens, optimiser, schedule, losses) is written atomically every ``checkpoint_every`` steps.
"""
from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import functional as TF
from tqdm.auto import tqdm

from lrbench.cache import atomic_write_bytes, content_key
from lrbench.checkpoints import load_checkpoint
from lrbench.datasets import IMAGE_EXTENSIONS, DatasetRootError, to_rgb
from lrbench.models import ModelAdapter, interpolation_mode
from lrbench.registry import LrbenchError

from .tokens import TokenInjector, TokenSet

if TYPE_CHECKING:
    from open_clip.loss import ClipLoss

log = logging.getLogger("lrbench.lrtk0")

#: the paper's three multi-scale buckets; [128, 224) is the optional fourth
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = ((16, 32), (32, 64), (64, 128))
#: bump when training changes what a given config produces: it is part of the artifact key
TRAIN_VERSION = "1"


@dataclass
class TrainConfig:
    """The ``train:`` mapping of a spec entry. ``data`` names a registered dataset (``{name: toyworld, split: train}``
    or just its name) or an image folder (searched recursively; labels are not used)."""

    data: Any = None
    n: int | None = None
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int | None = None
    buckets: list[list[int]] = field(default_factory=lambda: [list(b) for b in DEFAULT_BUCKETS])
    logit_scale: float | None = None
    amp: bool = True
    num_workers: int = 2
    seed: int | None = None
    checkpoint_every: int = 100

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TrainConfig":
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise LrbenchError(f"lrtk0 train: unknown key(s) {', '.join(map(repr, unknown))}; "
                               f"choices: {', '.join(names)}")
        cfg = cls(**params)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.data is None:
            raise LrbenchError("lrtk0 train: 'data' is required: a registered dataset ({name: toyworld, split: train, "
                               "n: 2000}) or an image folder path")
        if self.steps is not None and self.epochs is not None:
            raise LrbenchError("lrtk0 train: give 'steps' or 'epochs', not both")
        for key in ("batch_size", "checkpoint_every"):
            if int(getattr(self, key)) < 1:
                raise LrbenchError(f"lrtk0 train: {key} must be >= 1, got {getattr(self, key)}")
        if self.batch_size < 2:
            raise LrbenchError("lrtk0 train: batch_size must be >= 2 (the contrastive loss needs negatives)")
        for b in self.buckets:
            if len(b) != 2 or not 1 <= int(b[0]) < int(b[1]):
                raise LrbenchError(f"lrtk0 train: bucket {b!r} must be [lo, hi) with 1 <= lo < hi")

    def total_steps(self, n_images: int, batch_size: int) -> int:
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * n_images / batch_size))
        return int(self.steps) if self.steps is not None else 1000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _FolderImages:
    """Every image under a folder, sorted by relative path (a training source needs no labels)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetRootError("lrtk0 train data", self.root, "not a folder",
                                   "ROOT/**/<image>.{jpg,png,...} (any nesting; labels are not used)")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise DatasetRootError("lrtk0 train data", self.root, "no images found",
                                   "ROOT/**/<image>.{jpg,png,...} (any nesting; labels are not used)")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> Image.Image:
        with Image.open(self.files[i]) as im:
            return to_rgb(im)

    def identity(self) -> dict[str, Any]:
        listing = [(str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files]
        return {"folder": str(self.root.resolve()), "listing": content_key(listing)}


def resolve_data(data: Any, dataset_factory: Callable[..., Any] | None) -> tuple[Any, dict[str, Any]]:
    """(source with ``len`` and ``load(i)``, identity) for a ``data`` value."""
    if isinstance(data, dict):
        params = dict(data)
        name = params.pop("name", None)
        if name is None:
            raise LrbenchError(f"lrtk0 train data mapping needs a 'name' (a registered dataset), got {data!r}")
    elif isinstance(data, str) and Path(data).expanduser().is_dir():
        folder = _FolderImages(data)
        return folder, folder.identity()
    elif isinstance(data, str):
        name, params = data, {}
    else:
        raise LrbenchError(f"lrtk0 train data must be a dataset name, a mapping with 'name', or a folder; got {data!r}")
    if dataset_factory is None:
        from lrbench.plugins import get_plugins
        dataset_factory = get_plugins().registries["datasets"].create
    ds = dataset_factory(name, **params)
    return ds, {"dataset": name, "params": ds.params() if hasattr(ds, "params") else params, "len": len(ds)}


class _HRImages(torch.utils.data.Dataset):
    """Item i as the model's HR input: shorter side resized to the input size, centre crop, uint8 (3, S, S)."""

    def __init__(self, source: Any, n: int, image_size: int, interpolation: str, resize_mode: str):
        self.source, self.n, self.size = source, n, image_size
        self.interp = interpolation_mode(interpolation)
        self.resize_to = image_size if resize_mode == "shortest" else [image_size, image_size]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        image = TF.resize(self.source.load(i).convert("RGB"), self.resize_to, interpolation=self.interp)
        return TF.pil_to_tensor(TF.center_crop(image, [self.size, self.size]))


class _StepBatches(torch.utils.data.Sampler):
    """Batches of steps [start, stop): epoch e visits the items in the order randperm(n, seed=(seed, e))."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int):
        self.n, self.bs, self.seed, self.start, self.stop = n, batch_size, seed, start, stop

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        cache: dict[int, torch.Tensor] = {}
        for step in range(self.start, self.stop):
            batch = []
            for k in range(step * self.bs, (step + 1) * self.bs):
                epoch = k // self.n
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._perm(epoch)
                batch.append(int(cache[epoch][k % self.n]))
            yield batch

    def __len__(self) -> int:
        return self.stop - self.start


def lr_sizes(buckets: Sequence[Sequence[int]], seed: int, step: int) -> list[int]:
    """The LR side length of each bucket at this step (uniform integer in [lo, hi))."""
    rng = np.random.default_rng([seed, step])
    return [int(rng.integers(int(lo), int(hi))) for lo, hi in buckets]


def degrade(hr: torch.Tensor, size: int) -> torch.Tensor:
    """HR float [0, 1] batch -> size x size, antialiased bicubic like PIL, rounded to 8-bit levels like a saved image."""
    lr = TF.resize(hr, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return lr.clamp(0, 1).mul(255).round().div(255)


def distill_loss(model: ModelAdapter, injector: TokenInjector, hr: torch.Tensor, sizes: Sequence[int], scale: float,
                 loss_fn: ClipLoss | None = None, amp: bool = False) -> torch.Tensor:
    """ClipLoss(student(HR), teacher(HR)) + sum over sizes of ClipLoss(student(LR_size), teacher(HR)).

    ``hr`` is a float [0, 1] batch at the model's input size; the teacher is the same model with the tokens off. All
    student views go through the network in one batch."""
    from open_clip.loss import ClipLoss  # open_clip takes seconds to import: not when the plugins load

    loss_fn = loss_fn or ClipLoss()
    device = hr.device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        teacher = F.normalize(model.encode_image(model.prepare_tensor(hr)).float(), dim=-1)
    views = [hr] + [degrade(hr, s) for s in sizes]
    x = torch.cat([model.prepare_tensor(v) for v in views])
    with injector.active(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        student = model.encode_image(x)
    if not student.requires_grad and torch.is_grad_enabled():
        raise LrbenchError(f"{type(model).__name__}.encode_image returns outputs without gradient (it runs under "
                           "torch.no_grad?): LR tokens cannot be trained through it")
    parts = F.normalize(student.float(), dim=-1).split(hr.shape[0])
    return sum((loss_fn(s, teacher, scale) for s in parts), torch.zeros((), device=device))


@dataclass
class TrainResult:
    losses: list[float]
    steps: int
    seconds: float
    images_per_second: float


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def _save_state(path: Path, tokens: TokenSet, opt: torch.optim.Optimizer, sched: Any, step: int,
                losses: list[float]) -> None:
    buf = io.BytesIO()
    torch.save({"step": step, "tokens": tokens.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "losses": torch.tensor(losses, dtype=torch.float64)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def train_tokens(model: ModelAdapter, injector: TokenInjector, cfg: TrainConfig, *, source: Any, seed: int,
                 device: torch.device, checkpoint: Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``injector.tokens`` in place on ``source`` (len + load(i)); resume from ``checkpoint`` if it exists."""
    tokens = injector.tokens
    n = len(source) if cfg.n is None else min(int(cfg.n), len(source))
    if n < 2:
        raise LrbenchError(f"lrtk0 train: need at least 2 training images, got {n}")
    batch_size = min(int(cfg.batch_size), n)
    total = cfg.total_steps(n, batch_size)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(100, total // 10)
    image_size = model.preprocess.image_size
    buckets = [[int(lo), min(int(hi), image_size)] for lo, hi in cfg.buckets if int(lo) < image_size]
    scale = float(cfg.logit_scale if cfg.logit_scale is not None else model.logit_scale)
    use_amp = bool(cfg.amp) and device.type == "cuda"

    tokens.to(device)
    opt = torch.optim.AdamW(tokens.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, warmup))
    start, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, map_location=device)
        tokens.load_state_dict(state["tokens"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, losses = int(state["step"]), [float(v) for v in state["losses"]]
        log.info("lrtk0: resuming training at step %d of %d", start, total)

    module = model.module
    frozen = [(p, p.requires_grad) for p in module.parameters()] if module is not None else []
    for p, _ in frozen:
        p.requires_grad_(False)  # no weight gradients: faster, and the backbone cannot change
    from open_clip.loss import ClipLoss  # open_clip takes seconds to import: not when the plugins load

    loss_fn = ClipLoss()
    pre = model.preprocess
    data = _HRImages(source, n, image_size, pre.interpolation, pre.resize_mode)
    loader = DataLoader(data, batch_sampler=_StepBatches(n, batch_size, seed, start, total),
                        num_workers=int(cfg.num_workers), pin_memory=device.type == "cuda",
                        persistent_workers=False)
    bar = tqdm(total=total, initial=start, desc="lrtk0 train", disable=not progress, leave=False)
    t0, seen = time.perf_counter(), 0
    try:
        for step, batch in enumerate(loader, start=start):
            hr = batch.to(device, non_blocking=True).float().div_(255)
            loss = distill_loss(model, injector, hr, lr_sizes(buckets, seed, step), scale, loss_fn, use_amp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            seen += hr.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if checkpoint is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == total):
                _save_state(checkpoint, tokens, opt, sched, step + 1, losses)
    finally:
        bar.close()
        for p, flag in frozen:
            p.requires_grad_(flag)
    seconds = time.perf_counter() - t0
    return TrainResult(losses, total, seconds, seen / seconds if seconds > 0 else float("nan"))
