"""LR-TK0 training (LR0.FM section 5.1): multi-scale self-distillation of LR tokens into a frozen model, as the authors'
code runs it (EVA/EVA-CLIP/rei/training/{data_train,train,optim}.py, MetaCLIP/src/training/*; docs/lrtk0.md cites lines).

Per training image, one LR copy per resolution bucket, its side drawn per sample from [lo, hi): the image is squashed
to side x side with PIL bicubic and resized back to its own size. The HR image and every LR copy then get their OWN
random resized crop (scale 0.9-1.0, the authors' training transform) at the model's input size. The frozen model without
tokens embeds the HR view (teacher); the model with tokens embeds every view (student); loss = ClipLoss(teacher,
student_HR) + sum_i ClipLoss(teacher, student_LR_i) with a NEW learnable logit scale (initialised at 1/0.07). Only the
tokens and that scale are optimised; the backbone's parameters never receive gradients. Optimiser, learning rates,
weight decay, warm-up, gradient clipping, batch size, epochs and images per caption default to the authors' recipe for
the tower family (:data:`RECIPES`); with repeated captions in the data, batches hold several images per caption (their
identity sampler).

Training is deterministic given the seed and resumable: which items step s trains on, their LR sizes and crops depend
only on (seed, s, slot), and a checkpoint (tokens, logit scale, optimiser, schedule, losses) is written atomically every
``checkpoint_every`` steps.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import functional as TF
from tqdm.auto import tqdm

from lrbench import (
    IMAGE_EXTENSIONS,
    DatasetRootError,
    LrbenchError,
    ModelAdapter,
    Preprocess,
    atomic_write_bytes,
    content_key,
    interpolation_mode,
    load_checkpoint,
    to_rgb,
)

from .tokens import INITS, TokenInjector, TokenSet, ViTLayout

if TYPE_CHECKING:
    from open_clip.loss import ClipLoss

log = logging.getLogger("lrbench.lrtk0")

#: the paper's three multi-scale buckets; [128, 224) is the optional fourth
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = ((16, 32), (32, 64), (64, 128))
#: the authors' training crop: torchvision RandomResizedCrop(scale=(0.9, 1.0)), default aspect ratios
CROP_SCALE, CROP_RATIO = (0.9, 1.0), (3 / 4, 4 / 3)
OPTIMIZERS = ("adamw", "lamb")
CROPS = ("random", "center")
#: bump when training changes what a given config produces: it is part of the artifact key
TRAIN_VERSION = "2"


@dataclass(frozen=True)
class Recipe:
    """The authors' hyper-parameters for one tower family. ``lr`` / ``weight_decay`` are the tokens'; the logit scale
    has its own learning rate and no weight decay (both codes put 0-d parameters in a no-decay group)."""

    optimizer: str
    lr: float
    logit_scale_lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    warmup_steps: int
    grad_clip: float | None
    batch_size: int
    epochs: float
    images_per_caption: int
    logit_scale: float


#: ``eva``: EVA/EVA-CLIP/rei/Scripts/run.sh (LAMB, --lr 5e-4 for the logit scale, --visual-lr 2e-4 for the tokens,
#: --wd 0.05, --warmup 2000, --grad-clip-norm 5.0, --batch-size 8, --epochs 200, 4 images per caption; Adam betas and eps
#: from training/params.py get_default_params: the model name has no "vit", so (0.9, 0.999), 1e-8).
#: ``open_clip``: MetaCLIP/scripts/eval.sh + configs.py (the code that trained MetaCLIP and, with --open-clip, OpenCLIP:
#: AdamW lr 5e-4, betas (0.9, 0.98), eps 1e-6, wd 0.2, warmup 2000, batch 128, 10 epochs, no clipping, 4 per caption).
RECIPES: dict[str, Recipe] = {
    "eva": Recipe(
        optimizer="lamb",
        lr=2e-4,
        logit_scale_lr=5e-4,
        weight_decay=0.05,
        betas=(0.9, 0.999),
        eps=1e-8,
        warmup_steps=2000,
        grad_clip=5.0,
        batch_size=8,
        epochs=200,
        images_per_caption=4,
        logit_scale=1 / 0.07,
    ),
    "open_clip": Recipe(
        optimizer="adamw",
        lr=5e-4,
        logit_scale_lr=5e-4,
        weight_decay=0.2,
        betas=(0.9, 0.98),
        eps=1e-6,
        warmup_steps=2000,
        grad_clip=None,
        batch_size=128,
        epochs=10,
        images_per_caption=4,
        logit_scale=1 / 0.07,
    ),
}


def recipe_for(layout: ViTLayout) -> str:
    """The recipe the authors used for this tower family: ``eva`` for timm Eva trunks, ``open_clip`` otherwise."""
    return "eva" if layout.family == "timm.Eva" else "open_clip"


@dataclass
class TrainConfig:
    """The ``train:`` mapping of a spec entry. ``data`` names a registered dataset (``{name: toyworld, split: train}``
    or just its name) or a folder of images with optional captions (:class:`CaptionedFolder`). Keys left at None take
    the recipe's value (``recipe: auto`` picks it from the tower family)."""

    data: Any = None
    n: int | None = None
    steps: int | None = None
    epochs: float | None = None
    recipe: str = "auto"
    optimizer: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    logit_scale_lr: float | None = None
    weight_decay: float | None = None
    betas: list[float] | None = None
    eps: float | None = None
    warmup_steps: int | None = None
    #: max gradient norm; 0 switches clipping off
    grad_clip: float | None = None
    buckets: list[list[int]] = field(default_factory=lambda: [list(b) for b in DEFAULT_BUCKETS])
    #: initial value of the learnable logit scale
    logit_scale: float | None = None
    train_logit_scale: bool = True
    init: str = "authors"
    crop: str = "random"
    #: 1: images drawn uniformly; k > 1: batches of k images per caption (captions with fewer are padded by repeats)
    images_per_caption: int | None = None
    amp: bool = True
    num_workers: int = 2
    seed: int | None = None
    checkpoint_every: int = 100

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TrainConfig":
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise LrbenchError(
                f"lrtk0 train: unknown key(s) {', '.join(map(repr, unknown))}; choices: {', '.join(names)}"
            )
        cfg = cls(**params)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.data is None:
            raise LrbenchError(
                "lrtk0 train: 'data' is required: a registered dataset ({name: toyworld, split: train, "
                "n: 2000}) or a folder of images (with captions: docs/lrtk0.md)"
            )
        if self.steps is not None and self.epochs is not None:
            raise LrbenchError("lrtk0 train: give 'steps' or 'epochs', not both")
        choices = {"recipe": ("auto", *RECIPES), "optimizer": (None, *OPTIMIZERS), "crop": CROPS, "init": INITS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise LrbenchError(
                    f"lrtk0 train: {key} must be one of {', '.join(str(a) for a in allowed if a)}, "
                    f"got {getattr(self, key)!r}"
                )
        if int(self.checkpoint_every) < 1:
            raise LrbenchError(f"lrtk0 train: checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.batch_size is not None and int(self.batch_size) < 2:
            raise LrbenchError("lrtk0 train: batch_size must be >= 2 (the contrastive loss needs negatives)")
        if self.images_per_caption is not None and int(self.images_per_caption) < 1:
            raise LrbenchError(f"lrtk0 train: images_per_caption must be >= 1, got {self.images_per_caption}")
        if self.betas is not None and len(self.betas) != 2:
            raise LrbenchError(f"lrtk0 train: betas must be two numbers [beta1, beta2], got {self.betas!r}")
        for b in self.buckets:
            if len(b) != 2 or not 1 <= int(b[0]) < int(b[1]):
                raise LrbenchError(f"lrtk0 train: bucket {b!r} must be [lo, hi) with 1 <= lo < hi")

    def resolved(self, layout: ViTLayout) -> dict[str, Any]:
        """Every training value made concrete: the spec's where given, else the recipe's. This (not the raw spec)
        keys the trained tokens, so a changed recipe default trains new ones."""
        name = recipe_for(layout) if self.recipe == "auto" else self.recipe
        out = asdict(self)
        out["recipe"] = name
        for key, value in asdict(RECIPES[name]).items():
            if key in out and out[key] is None:
                out[key] = value
        if self.steps is None and self.epochs is None:
            out["epochs"] = RECIPES[name].epochs
        out["betas"] = [float(b) for b in out["betas"]]
        out["grad_clip"] = float(out["grad_clip"]) if out["grad_clip"] else None
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CaptionedFolder:
    """Every image under a folder (any nesting, sorted by relative path) and its caption, if the folder gives one.

    Captions, first match wins: ``metadata.jsonl`` (one JSON object per line) or ``metadata.csv`` at the root with a
    ``file_name`` column (path relative to the root) and a ``caption`` or ``text`` column (the Hugging Face ImageFolder
    layout), else a sidecar ``<image stem>.txt`` next to the image. Images without one have no caption."""

    LAYOUT = (
        "ROOT/**/<image>.{jpg,png,...}; captions optional: ROOT/metadata.jsonl|csv (file_name + caption|text) "
        "or ROOT/**/<image stem>.txt"
    )

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetRootError("lrtk0 train data", self.root, "not a folder", self.LAYOUT)
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise DatasetRootError("lrtk0 train data", self.root, "no images found", self.LAYOUT)
        table = self._metadata()
        self.captions = [table.get(str(p.relative_to(self.root)), self._sidecar(p)) for p in self.files]

    def _metadata(self) -> dict[str, str]:
        jsonl, table = self.root / "metadata.jsonl", self.root / "metadata.csv"
        if jsonl.is_file():
            rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        elif table.is_file():
            with table.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            return {}
        out = {}
        for row in rows:
            text = row.get("caption", row.get("text"))
            if "file_name" not in row or text is None:
                raise DatasetRootError(
                    "lrtk0 train data",
                    self.root,
                    f"a metadata row lacks file_name or caption/text: {row!r}",
                    self.LAYOUT,
                )
            out[str(Path(row["file_name"]))] = str(text)
        return out

    @staticmethod
    def _sidecar(path: Path) -> str | None:
        txt = path.with_suffix(".txt")
        return txt.read_text().strip() if txt.is_file() else None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> Image.Image:
        with Image.open(self.files[i]) as im:
            return to_rgb(im)

    def caption(self, i: int) -> str | None:
        return self.captions[i]

    def identity(self) -> dict[str, Any]:
        listing = [(str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files]
        return {
            "folder": str(self.root.resolve()),
            "listing": content_key(listing),
            "captions": content_key(self.captions),
        }


def resolve_data(data: Any, dataset_factory: Callable[..., Any] | None) -> tuple[Any, dict[str, Any]]:
    """(source with ``len``, ``load(i)`` and maybe ``caption(i)``, identity) for a ``data`` value."""
    if isinstance(data, dict):
        params = dict(data)
        name = params.pop("name", None)
        if name is None:
            raise LrbenchError(f"lrtk0 train data mapping needs a 'name' (a registered dataset), got {data!r}")
    elif isinstance(data, str) and Path(data).expanduser().is_dir():
        folder = CaptionedFolder(data)
        return folder, folder.identity()
    elif isinstance(data, str):
        name, params = data, {}
    else:
        raise LrbenchError(f"lrtk0 train data must be a dataset name, a mapping with 'name', or a folder; got {data!r}")
    if dataset_factory is None:
        raise LrbenchError(
            f"lrtk0 train data {name!r} is a registered dataset: it is built with the run's dataset "
            "factory (MethodContext.dataset), which was not given"
        )
    ds = dataset_factory(name, **params)
    return ds, {"dataset": name, "params": ds.params() if hasattr(ds, "params") else params, "len": len(ds)}


def caption_groups(captions: Sequence[str | None]) -> list[list[int]]:
    """Indices grouped by caption in order of first appearance; an image without caption is its own group."""
    groups: dict[Any, list[int]] = {}
    for i, c in enumerate(captions):
        groups.setdefault(("caption", c) if c is not None else ("image", i), []).append(i)
    return list(groups.values())


def default_images_per_caption(captions: Sequence[str | None], k: int) -> int:
    """The recipe's ``k`` when every caption has at least ``k`` images (the authors' data: 30-90 per caption), else 1
    (uniform sampling: padding single images to ``k`` repeats would fill batches with duplicates)."""
    counts = Counter(captions)
    if k > 1 and None not in counts and min(counts.values()) >= k:
        return k
    return 1


class StepSchedule:
    """Which items step s trains on. Epoch e has its own order drawn from (seed, e); each epoch yields
    ``len(order) // batch_size`` batches (the authors' drop_last). ``per_caption`` k > 1 is the authors' identity
    sampler (EVA/EVA-CLIP/rei/training/sampler.py): per caption, its images shuffled (drawn with replacement up to k if
    fewer) and cut into runs of k (a shorter tail dropped); the runs shuffled and concatenated."""

    def __init__(self, groups: list[list[int]], batch_size: int, per_caption: int, seed: int):
        self.groups, self.k, self.seed = groups, int(per_caption), int(seed)
        if self.k > 1 and batch_size % self.k:
            raise LrbenchError(f"lrtk0 train: batch_size {batch_size} is not a multiple of images_per_caption {self.k}")
        self.epoch_len = len(self.order(0))
        self.batch_size = min(int(batch_size), self.epoch_len)
        if self.batch_size < 2:
            raise LrbenchError(f"lrtk0 train: need at least 2 training images per batch, got {self.epoch_len} images")
        self.steps_per_epoch = self.epoch_len // self.batch_size
        self._cache: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        if self.k == 1:
            return rng.permutation(np.concatenate([np.asarray(g) for g in self.groups]))
        runs = []
        for g in self.groups:
            idx = np.asarray(g) if len(g) >= self.k else rng.choice(g, size=self.k, replace=True)
            idx = rng.permutation(idx)
            runs += [idx[i : i + self.k] for i in range(0, len(idx) - self.k + 1, self.k)]
        return np.concatenate([runs[i] for i in rng.permutation(len(runs))])

    def items(self, step: int) -> list[int]:
        epoch, b = divmod(step, self.steps_per_epoch)
        if epoch not in self._cache:
            self._cache = {epoch: self.order(epoch)}
        return [int(i) for i in self._cache[epoch][b * self.batch_size : (b + 1) * self.batch_size]]

    def total_steps(self, steps: int | None, epochs: float | None) -> int:
        if steps is not None:
            return int(steps)
        return max(1, int(round(float(epochs) * self.steps_per_epoch)))


class _StepBatches(torch.utils.data.Sampler):
    """Batches of steps [start, stop) as (step, slot, item) triples: a view's randomness is keyed by (seed, step, slot)."""

    def __init__(self, schedule: StepSchedule, start: int, stop: int):
        self.schedule, self.start, self.stop = schedule, start, stop

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in range(self.start, self.stop):
            yield [(step, slot, i) for slot, i in enumerate(self.schedule.items(step))]

    def __len__(self) -> int:
        return self.stop - self.start


def lr_sizes(buckets: Sequence[Sequence[int]], seed: int, step: int, slot: int = 0) -> list[int]:
    """The LR side length of each bucket for one training image (uniform integer in [lo, hi)), drawn per sample."""
    rng = np.random.default_rng([seed, step, slot, 1])
    return [int(rng.integers(int(lo), int(hi))) for lo, hi in buckets]


def random_resized_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
) -> tuple[int, int, int, int]:
    """(top, left, height, width) drawn as torchvision's ``RandomResizedCrop.get_params``, from ``rng``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def lr_copy(image: Image.Image, size: int) -> Image.Image:
    """The authors' LR copy: squashed to size x size with PIL bicubic, resized back to the image's own size."""
    return image.resize((size, size), Image.BICUBIC).resize(image.size, Image.BICUBIC)


class _Views(torch.utils.data.Dataset):
    """Item (step, slot, i): uint8 (1 + buckets, 3, S, S), the HR view then one LR view per bucket, each its own crop."""

    def __init__(self, source: Any, buckets: Sequence[Sequence[int]], preprocess: Preprocess, crop: str, seed: int):
        self.source, self.buckets, self.pre, self.crop, self.seed = source, buckets, preprocess, crop, seed
        self.interp = interpolation_mode(preprocess.interpolation)

    def _fit(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        size = self.pre.image_size
        if self.crop == "random":
            top, left, h, w = random_resized_box(image.width, image.height, rng)
            image = TF.resized_crop(image, top, left, h, w, [size, size], interpolation=TF.InterpolationMode.BICUBIC)
        else:
            resize_to = size if self.pre.resize_mode == "shortest" else [size, size]
            image = TF.center_crop(TF.resize(image, resize_to, interpolation=self.interp), [size, size])
        return TF.pil_to_tensor(image)

    def __getitem__(self, key: tuple[int, int, int]) -> torch.Tensor:
        step, slot, i = key
        image = self.source.load(i).convert("RGB")
        views = [image] + [lr_copy(image, s) for s in lr_sizes(self.buckets, self.seed, step, slot)]
        rng = np.random.default_rng([self.seed, step, slot, 2])
        return torch.stack([self._fit(v, rng) for v in views])


def distill_loss(
    model: ModelAdapter,
    injector: TokenInjector,
    views: torch.Tensor,
    scale: torch.Tensor | float,
    loss_fn: ClipLoss | None = None,
    amp: bool = False,
) -> torch.Tensor:
    """ClipLoss(teacher(HR), student(HR)) + sum over LR views of ClipLoss(teacher(HR), student(LR)).

    ``views`` is a float [0, 1] batch (B, V, 3, S, S) at the model's input size, view 0 the HR one; the teacher is the
    same model with the tokens off. All student views go through the network in one batch."""
    from open_clip.loss import ClipLoss  # open_clip takes seconds to import: not when the plugins load

    loss_fn = loss_fn or ClipLoss()
    b, v = views.shape[:2]
    device = views.device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        teacher = F.normalize(model.encode_image(model.prepare_tensor(views[:, 0])).float(), dim=-1)
    x = model.prepare_tensor(views.transpose(0, 1).reshape(v * b, *views.shape[2:]))
    with injector.active(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        student = model.encode_image(x)
    if not student.requires_grad and torch.is_grad_enabled():
        raise LrbenchError(
            f"{type(model).__name__}.encode_image returns outputs without gradient (it runs under "
            "torch.no_grad?): LR tokens cannot be trained through it"
        )
    parts = F.normalize(student.float(), dim=-1).split(b)
    return sum((loss_fn(teacher, s, scale) for s in parts), torch.zeros((), device=device))


@dataclass
class TrainResult:
    losses: list[float]
    steps: int
    seconds: float
    images_per_second: float
    logit_scale: float
    config: dict[str, Any]


def lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    """The authors' schedule as a factor of the base rate: (s + 1) / warmup for s < warmup, then half-cosine to 0 at
    ``total`` (EVA/EVA-CLIP/rei/training/scheduler.py warmup_cosine_lr)."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def make_optimizer(tokens: TokenSet, log_scale: nn.Parameter, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW or LAMB (timm's, the authors' copy) over two groups: tokens (lr, weight decay) and the logit scale
    (its own lr, no decay)."""
    groups = [{"params": list(tokens.parameters()), "lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}]
    if log_scale.requires_grad:
        groups.append({"params": [log_scale], "lr": cfg["logit_scale_lr"], "weight_decay": 0.0})
    kw = {"betas": tuple(cfg["betas"]), "eps": cfg["eps"]}
    if cfg["optimizer"] == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, **kw)
    return torch.optim.AdamW(groups, **kw)


def _save_state(
    path: Path,
    tokens: TokenSet,
    log_scale: nn.Parameter,
    opt: torch.optim.Optimizer,
    sched: Any,
    step: int,
    losses: list[float],
) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "step": step,
            "tokens": tokens.state_dict(),
            "log_scale": log_scale.detach(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "losses": torch.tensor(losses, dtype=torch.float64),
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def train_tokens(
    model: ModelAdapter,
    injector: TokenInjector,
    cfg: TrainConfig,
    *,
    source: Any,
    seed: int,
    device: torch.device,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``injector.tokens`` in place on ``source`` (len + load(i), maybe caption(i)); resume from ``checkpoint``."""
    tokens = injector.tokens
    rc = cfg.resolved(injector.layout)
    n = len(source) if cfg.n is None else min(int(cfg.n), len(source))
    uniform = cfg.images_per_caption == 1 or not hasattr(source, "caption")  # captions can cost a decode each
    captions = [None] * n if uniform else [source.caption(i) for i in range(n)]
    k = (
        rc["images_per_caption"]
        if cfg.images_per_caption is not None
        else default_images_per_caption(captions, rc["images_per_caption"])
    )
    schedule = StepSchedule(caption_groups(captions) if k > 1 else [list(range(n))], rc["batch_size"], k, seed)
    total = schedule.total_steps(cfg.steps, rc["epochs"])
    warmup = int(rc["warmup_steps"])
    if warmup >= total:
        log.warning(
            "lrtk0: warm-up (%d steps) is not shorter than training (%d steps): the peak rate is never reached",
            warmup,
            total,
        )
    image_size = model.preprocess.image_size
    buckets = [[int(lo), min(int(hi), image_size)] for lo, hi in cfg.buckets if int(lo) < image_size]
    use_amp = bool(cfg.amp) and device.type == "cuda"

    tokens.to(device)
    log_scale = nn.Parameter(
        torch.tensor(math.log(rc["logit_scale"]), device=device), requires_grad=bool(cfg.train_logit_scale)
    )
    opt = make_optimizer(tokens, log_scale, rc)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, warmup))
    start, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, map_location=device)
        tokens.load_state_dict(state["tokens"])
        with torch.no_grad():
            log_scale.copy_(state["log_scale"])
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
    trainable = [p for p in [*tokens.parameters(), log_scale] if p.requires_grad]
    data = _Views(source, buckets, model.preprocess, cfg.crop, seed)
    loader = DataLoader(
        data,
        batch_sampler=_StepBatches(schedule, start, total),
        num_workers=int(cfg.num_workers),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    bar = tqdm(total=total, initial=start, desc="lrtk0 train", disable=not progress, leave=False)
    t0, seen = time.perf_counter(), 0
    try:
        for step, batch in enumerate(loader, start=start):
            views = batch.to(device, non_blocking=True).float().div_(255)
            loss = distill_loss(model, injector, views, log_scale.exp(), loss_fn, use_amp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if rc["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(trainable, rc["grad_clip"])
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            seen += views.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if checkpoint is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == total):
                _save_state(checkpoint, tokens, log_scale, opt, sched, step + 1, losses)
    finally:
        bar.close()
        for p, flag in frozen:
            p.requires_grad_(flag)
    seconds = time.perf_counter() - t0
    rc.update(images_per_caption=k, steps=total, buckets=buckets, batch_size=schedule.batch_size)
    return TrainResult(
        losses, total, seconds, seen / seconds if seconds > 0 else float("nan"), float(log_scale.detach().exp()), rc
    )
