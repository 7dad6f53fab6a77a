"""One training loop for every face strategy; a strategy is a recipe of pluggable parts.

Parts: how low-resolution images enter the batch (``form``), which resolutions and with what probabilities, the margin
head (ArcFace / CosFace with s, m), the feature distance pulling HR and LR embeddings together and its weight, and the
weights of the cross-entropy terms.

=========  =========  =====================  =====================================================================
strategy   form       resolutions (probs)    loss
=========  =========  =====================  =====================================================================
baseline   hr         -                      CE_HR  (ArcFace s=64, m=0.5, Knoche et al.'s baseline)
bt         batch      {r}                    CE over a batch whose random half is at r           (BT-r)
bt-m       batch      {7,14,28,56,112} equal CE, the LR half at a per-image r                    (BT-M)
st         siamese    {r}                    CE_HR + CE_LR + 25 * cosine distance                (ST-r)
st-m1      siamese    {7,14,28,56} equal     CE_HR + CE_LR + 25 * cosine, per-image r            (ST-M1)
st-m2      branches   7, 14, 28, 56          CE_HR + sum_r CE_r + 25 * sum_r cosine              (ST-M2)
maug       siamese    {7,14,20} 1:1:2        1 * LogExp + (CE_HR + CE_LR) / 2, CosFace s=48 m=0.4 (MAug + LogExp)
=========  =========  =====================  =====================================================================

The recipes and their training schedules are data (``recipes.json`` beside this module, with its sources): Knoche et
al.'s strategies train 16 epochs with SGD lr 0.01, /10 after epochs 9 and 13, batch 128; MAug + LogExp follows the
LogExp paper's MS1M setting (lr 0.01, /10 at 8 and 12, batch 256). ``train:`` options override any of them.

Images are 112 x 112 (resized if not); LR images are made on the device with the papers' simulation
(:func:`lrbench_face.lr.lr_tensor`), then the adapter's own ``prepare_tensor`` normalises (and resizes, for models
whose input is not 112). Mixed precision (bf16 autocast) on CUDA. A checkpoint is written after every epoch and a
killed run resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench import Dataset, LrbenchError, atomic_write_text, load_checkpoint

from .losses import HEADS, distance_fn
from .lr import lr_tensor

log = logging.getLogger("lrbench.face")
IMAGE_SIZE = 112


@dataclass(frozen=True)
class Recipe:
    form: str  # "hr" | "batch" | "siamese" | "branches"
    resolutions: tuple[int, ...] = ()
    probs: tuple[float, ...] = ()
    head: str = "arcface"
    s: float = 64.0
    m: float = 0.5
    distance: str | None = None
    p: float = 1.0
    dist_weight: float = 0.0
    ce_hr: float = 1.0
    ce_lr: float = 1.0
    lr_fraction: float = 0.5  # batch form: share of the batch made low-resolution


def _load_recipes() -> tuple[dict[str, Recipe], dict[str, dict[str, Any]]]:
    """The recipes and each strategy's training defaults from ``recipes.json``."""
    data = json.loads((Path(__file__).parent / "recipes.json").read_text())
    recipes, training = {}, {}
    for name, fields_ in data["recipes"].items():
        fields_ = dict(fields_)
        training[name] = dict(data["training"][fields_.pop("training")])
        for key in ("resolutions", "probs"):
            if key in fields_:
                fields_[key] = tuple(fields_[key])
        recipes[name] = Recipe(**fields_)
    return recipes, training


RECIPES, TRAINING_DEFAULTS = _load_recipes()
#: the TrainConfig fields a strategy's training defaults fill when the spec leaves them unset
SCHEDULE_FIELDS = ("epochs", "batch_size", "lr", "milestones", "momentum", "weight_decay")


@dataclass
class TrainConfig:
    """Everything that determines a trained model (hashed into the artifact key). Recipe fields left None keep the
    strategy's values; schedule fields left None (epochs, batch size, lr, milestones, momentum, weight decay) take the
    strategy's training defaults from ``recipes.json``; ``resolution`` sets r of bt / st."""

    strategy: str = "baseline"
    resolution: int | None = None
    resolutions: list[int] | None = None
    probs: list[float] | None = None
    head: str | None = None
    s: float | None = None
    m: float | None = None
    distance: str | None = None
    p: float | None = None
    dist_weight: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    milestones: list[int] | None = None  # epochs at which lr /= 10
    warmup_steps: int = 0
    hflip: bool = True
    amp: bool = True
    seed: int = 0
    init: str = "model"  # "model": start from the adapter's weights; "scratch": re-initialise them
    preload: bool | None = None  # decode the training set once into memory (default: when it fits in 2 GiB)

    def __post_init__(self) -> None:
        if self.strategy not in TRAINING_DEFAULTS:
            raise LrbenchError(f"unknown face training strategy {self.strategy!r}; choices: {', '.join(RECIPES)}")
        for key in SCHEDULE_FIELDS:
            if getattr(self, key) is None:
                value = TRAINING_DEFAULTS[self.strategy][key]
                setattr(self, key, list(value) if isinstance(value, list) else value)

    @classmethod
    def from_dict(cls, strategy: str, params: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)} - {"strategy"}
        unknown = sorted(set(params) - known - {"data", "dataset"})
        if unknown:
            raise LrbenchError(
                f"face/{strategy}: unknown train option(s) {', '.join(unknown)}; choices: data, dataset, "
                f"{', '.join(sorted(known))}"
            )
        return cls(strategy=strategy, **{k: v for k, v in params.items() if k in known})

    def recipe(self) -> Recipe:
        if self.strategy not in RECIPES:
            raise LrbenchError(f"unknown face training strategy {self.strategy!r}; choices: {', '.join(RECIPES)}")
        r = RECIPES[self.strategy]
        if self.resolution is not None:
            if self.strategy not in ("bt", "st"):
                raise LrbenchError(f"face/{self.strategy}: 'resolution' is the r of bt / st; use 'resolutions'")
            r = replace(r, resolutions=(int(self.resolution),))
        overrides = {
            k: getattr(self, k)
            for k in ("head", "s", "m", "distance", "p", "dist_weight")
            if getattr(self, k) is not None
        }
        if self.resolutions is not None:
            overrides["resolutions"] = tuple(int(x) for x in self.resolutions)
        if self.probs is not None:
            overrides["probs"] = tuple(float(x) for x in self.probs)
        r = replace(r, **overrides)
        if r.head not in HEADS:
            raise LrbenchError(f"unknown head {r.head!r}; choices: {', '.join(HEADS)}")
        if r.probs and len(r.probs) != len(r.resolutions):
            raise LrbenchError(f"probs {list(r.probs)} and resolutions {list(r.resolutions)} differ in length")
        if r.form != "hr" and not r.resolutions:
            raise LrbenchError(f"face/{self.strategy}: needs at least one resolution")
        if r.distance is not None:
            distance_fn(r.distance)  # validates the name
        return r


class ResolutionSampler:
    """Draws a resolution per image from the recipe's set (uniform unless probs are given)."""

    def __init__(self, resolutions: Sequence[int], probs: Sequence[float] = ()):
        self.resolutions = torch.tensor(list(resolutions), dtype=torch.long)
        w = torch.tensor(list(probs) if probs else [1.0] * len(resolutions), dtype=torch.float)
        self.probs = w / w.sum()

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.resolutions[torch.multinomial(self.probs, n, replacement=True, generator=generator)]


def _to_tensor(image: Any) -> torch.Tensor:
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = TF.resize(image, [IMAGE_SIZE, IMAGE_SIZE], interpolation=InterpolationMode.BICUBIC)
    return TF.pil_to_tensor(image.convert("RGB"))


class _Images(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return _to_tensor(self.dataset.load(i)), int(self.dataset.labels[i])


def _batches(dataset: Dataset, cfg: TrainConfig, epoch: int, preloaded: torch.Tensor | None):
    gen = torch.Generator().manual_seed(cfg.seed * 10_007 + epoch)
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
    if preloaded is not None:
        order = torch.randperm(len(dataset), generator=gen)
        for start in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):  # drop the last partial batch
            idx = order[start : start + cfg.batch_size]
            yield preloaded[idx], labels[idx]
        return
    loader = torch.utils.data.DataLoader(
        _Images(dataset), batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=True, num_workers=2
    )
    yield from loader


class FaceTrainer:
    """Trains ``net`` (an embedder module) with a recipe; ``prepare`` maps a float [0, 1] 112 px batch to the net's
    normalised input (the adapter's ``prepare_tensor``)."""

    def __init__(
        self,
        net: nn.Module,
        prepare: Callable[[torch.Tensor], torch.Tensor],
        embedding_size: int,
        num_classes: int,
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
    ):
        self.cfg, self.recipe = cfg, cfg.recipe()
        self.device = torch.device(device)
        self.net, self.prepare = net.to(self.device), prepare
        r = self.recipe
        self.head = HEADS[r.head](embedding_size, num_classes, s=r.s, m=r.m).to(self.device)
        self.distance = distance_fn(r.distance, r.p) if r.distance else None
        self.sampler = ResolutionSampler(r.resolutions, r.probs) if r.resolutions else None
        params = [p for p in list(self.net.parameters()) + list(self.head.parameters()) if p.requires_grad]
        self.opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.milestones = list(cfg.milestones)
        self.epoch, self.step, self.history = 0, 0, []
        self.gen = torch.Generator().manual_seed(cfg.seed)

    # ---- the parts
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.amp and self.device.type == "cuda"):
            return self.net(self.prepare(x)).float()

    def _ce(self, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(emb, y), y)

    def _lr(self, x: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        full = sizes >= IMAGE_SIZE
        if full.all():
            return x
        out = x.clone()
        out[~full] = lr_tensor(x[~full], sizes[~full].to(x.device))
        return out

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch (x: float [0, 1] at 112 px) and its named terms."""
        r, n = self.recipe, x.shape[0]
        terms: dict[str, torch.Tensor] = {}
        if r.form == "hr":
            terms["ce"] = self._ce(self._embed(x), y)
            total = terms["ce"]
        elif r.form == "batch":
            assert self.sampler is not None
            chosen = torch.randperm(n, generator=self.gen)[: int(round(n * r.lr_fraction))]
            sizes = torch.full((n,), IMAGE_SIZE, dtype=torch.long)
            sizes[chosen] = self.sampler(len(chosen), self.gen)
            terms["ce"] = self._ce(self._embed(self._lr(x, sizes)), y)
            total = terms["ce"]
        elif r.form in ("siamese", "branches"):
            assert self.sampler is not None and self.distance is not None
            e_hr = self._embed(x)
            terms["ce_hr"] = self._ce(e_hr, y)
            total = r.ce_hr * terms["ce_hr"]
            branches = (
                [self.sampler(n, self.gen)]
                if r.form == "siamese"
                else [torch.full((n,), int(s), dtype=torch.long) for s in r.resolutions]
            )
            for k, sizes in enumerate(branches):
                e_lr = self._embed(self._lr(x, sizes))
                ce_lr, dist = self._ce(e_lr, y), self.distance(e_hr, e_lr)
                terms[f"ce_lr{k}"], terms[f"dist{k}"] = ce_lr, dist
                total = total + r.ce_lr * ce_lr + r.dist_weight * dist
        else:
            raise LrbenchError(f"unknown batch form {r.form!r}")
        return total, {k: float(v.detach()) for k, v in terms.items()}

    # ---- the loop
    def learning_rate(self) -> float:
        """Step schedule (/10 at each milestone epoch) times a linear warm-up over the first ``warmup_steps``."""
        lr = self.cfg.lr * 0.1 ** sum(self.epoch >= m for m in self.milestones)
        if self.cfg.warmup_steps:
            lr *= min(1.0, (self.step + 1) / self.cfg.warmup_steps)
        return lr

    def state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "head": self.head.state_dict(),
            "opt": self.opt.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "gen": self.gen.get_state(),
            "history": json.dumps(self.history),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["opt"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.gen.set_state(state["gen"])
        self.history = json.loads(state["history"])

    def fit(self, dataset: Dataset, workdir: str | Path | None = None) -> list[dict[str, float]]:
        """Train for ``cfg.epochs`` epochs over ``dataset`` (labels = identity indices); resumes from
        ``workdir/checkpoint.pt`` when present; returns the per-epoch history."""
        cfg = self.cfg
        ckpt = Path(workdir) / "checkpoint.pt" if workdir is not None else None
        if ckpt is not None and ckpt.is_file():
            self.load_state(load_checkpoint(ckpt, map_location=self.device))
            log.info("resuming face training from epoch %d (%s)", self.epoch, ckpt)
        preload = cfg.preload if cfg.preload is not None else len(dataset) * 3 * IMAGE_SIZE**2 < 2**31
        preloaded = torch.stack([_to_tensor(dataset.load(i)) for i in range(len(dataset))]) if preload else None
        if len(dataset) < cfg.batch_size:
            raise LrbenchError(f"training set has {len(dataset)} images, fewer than one batch ({cfg.batch_size})")
        while self.epoch < cfg.epochs:
            self.net.train()
            self.head.train()
            sums: dict[str, float] = {}
            count, t0 = 0, time.time()
            for xb, yb in _batches(dataset, cfg, self.epoch, preloaded):
                x = xb.to(self.device, non_blocking=True).float().div_(255)
                y = yb.to(self.device)
                if cfg.hflip:
                    flip = torch.rand(x.shape[0], generator=self.gen) < 0.5
                    x[flip] = torch.flip(x[flip], dims=[-1])
                for g in self.opt.param_groups:
                    g["lr"] = self.learning_rate()
                total, terms = self.loss(x, y)
                if not math.isfinite(float(total.detach())):
                    raise LrbenchError(
                        f"face training diverged at epoch {self.epoch} step {self.step} (loss {total}); "
                        "lower lr or add warmup_steps"
                    )
                self.opt.zero_grad(set_to_none=True)
                total.backward()
                self.opt.step()
                self.step += 1
                count += 1
                for k, v in {"loss": float(total.detach()), **terms}.items():
                    sums[k] = sums.get(k, 0.0) + v
            self.epoch += 1
            record = {
                "epoch": self.epoch,
                "seconds": round(time.time() - t0, 2),
                **{k: v / max(count, 1) for k, v in sums.items()},
            }
            self.history.append(record)
            log.info("face/%s epoch %d: %s", cfg.strategy, self.epoch, record)
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                tmp = ckpt.with_suffix(".tmp")
                torch.save(self.state(), tmp)
                tmp.replace(ckpt)
        self.net.eval()
        return self.history


def save_backbone(net: nn.Module, workdir: str | Path, cfg: TrainConfig, history: list[dict[str, float]]) -> Path:
    """Write ``backbone.safetensors`` and ``train.json`` (config and history); the json is written last."""
    from safetensors.torch import save_file

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(workdir / "backbone.safetensors"))
    atomic_write_text(workdir / "train.json", json.dumps({"config": asdict(cfg), "history": history}, indent=1))
    return workdir / "backbone.safetensors"
