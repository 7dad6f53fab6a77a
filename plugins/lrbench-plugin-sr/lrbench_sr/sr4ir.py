"""SR4IR (Kim et al., CVPR 2024): an SR network and a task network trained together for LR recognition.

- TDP loss: L1 between the task network's feature maps (ResNet-18 ``layer4``, before pooling) of SR and HR images,
  computed with the task network frozen and in eval mode, switched on after a warm-up.
- CQMix: a sqrt(P) x sqrt(P) grid of patches, each taken from the SR or the HR image with probability 0.5.
- Alternate training, per iteration: phase 1 updates SR with L1(SR, HR) + TDP, the task network frozen; phase 2 updates
  the task network with 0.34 * (CE(SR) + CE(HR) + CE(CQMix)), the SR output detached.
- Baselines (``mode``): ``hr_t`` (T on HR, the oracle), ``lr_t`` (T on bilinear-upsampled LR), ``s_t`` (S with L1 first,
  then T on frozen S), ``t_s`` (T on HR first, then S with L1 + CE through frozen T), ``s_plus_t`` (joint L1 + CE).

LR images are made on the fly as the authors do: torch bicubic by 1/scale without antialias, rounded to 8 bits. The
trained pair is stored as a method artifact keyed by the hash of the config and the training set, and used as a
classifier: LR -> SR (or bilinear up for the T-only modes) -> ImageNet normalisation -> ResNet-18.
"""
from __future__ import annotations

import io
import logging
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from lrbench.cache import atomic_write_bytes, content_key
from lrbench.checkpoints import load_checkpoint
from lrbench.methods import Method, MethodContext
from lrbench.models import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter, ModelWrapper, Preprocess
from lrbench.registry import LrbenchError
from PIL import Image
from torch import nn
from torchvision.transforms import functional as TF

from . import backbones
from .inference import SRInference
from .quality import SRDown

log = logging.getLogger("lrbench.sr")

MODES = ("sr4ir", "hr_t", "lr_t", "s_t", "t_s", "s_plus_t")
#: modes whose recognition input is the SR output (the others feed bilinear-upsampled LR to T)
SR_MODES = ("sr4ir", "s_t", "t_s", "s_plus_t")


@dataclass
class SR4IRConfig:
    """Everything that determines a trained pair (its hash keys the artifact)."""

    mode: str = "sr4ir"
    scale: int = 4
    arch: str = "edsr"
    variant: str = "baseline"
    #: overrides of the SR architecture (e.g. ``{num_feat: 32, num_block: 4}`` for CPU-sized runs)
    sr_options: dict[str, Any] = field(default_factory=dict)
    #: SR initialisation (the paper starts from DIV2K weights); without it, ``sr_pretrain_epochs`` of L1 training
    sr_checkpoint: str | None = None
    sr_pretrain_epochs: int = 0
    task_arch: str = "resnet18"
    #: ImageNet weights for the task network when timm can load them (random init otherwise, with a warning)
    pretrained: bool = True
    #: the training images: a registered dataset entry
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "toyworld", "split": "train", "n": 480})
    #: HR training crop (paper: Resize 256 + RandomCrop 224; here Resize ``resize`` + RandomCrop ``hr_size``)
    hr_size: int = 64
    resize: int | None = None
    epochs: int = 30
    batch_size: int = 32
    sr_lr: float = 1e-4
    task_lr: float = 3e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    tdp: bool = True
    tdp_weight: float = 1.0
    #: epochs before the TDP loss is switched on (paper: 20 of 200 for classification)
    tdp_warmup_epochs: int = 3
    cqmix: bool = True
    cqmix_patches: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LrbenchError(f"unknown sr4ir mode {self.mode!r}; choices: {', '.join(MODES)}")
        if int(math.isqrt(self.cqmix_patches)) ** 2 != self.cqmix_patches:
            raise LrbenchError(f"cqmix_patches must be a square number (1, 4, 16, 64), got {self.cqmix_patches}")
        if self.hr_size % self.scale:
            raise LrbenchError(f"hr_size ({self.hr_size}) must be a multiple of scale ({self.scale})")
        backbones.variant(self.arch, self.variant)

    @property
    def resize_to(self) -> int:
        return self.resize or round(self.hr_size * 256 / 224)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "SR4IRConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(params) - names
        if unknown:
            raise LrbenchError(f"unknown sr4ir train option(s) {', '.join(sorted(unknown))}; choices: "
                               f"{', '.join(sorted(names))}")
        return cls(**params)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """SR4IR's LR: bicubic by 1/scale without antialias, rounded to 8-bit levels."""
    return SRDown(scale).tensor(hr)


def bilinear_up(lr: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False).clamp(0, 1)


def cqmix(hr: torch.Tensor, sr: torch.Tensor, patches: int = 16,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-quality patch mix: (mixed batch, mask) where mask is 1 where the SR patch was taken.

    The mask is a Bernoulli(0.5) grid of sqrt(patches) x sqrt(patches) cells per image, nearest-upsampled to the image
    size; ``patches=1`` takes each whole image from one source.
    """
    g = math.isqrt(patches)
    if g * g != patches:
        raise ValueError(f"patches must be a square number, got {patches}")
    cells = torch.rand(hr.shape[0], 1, g, g, generator=generator, device="cpu") < 0.5
    mask = F.interpolate(cells.float(), size=hr.shape[-2:], mode="nearest").to(hr.device, hr.dtype)
    return mask * sr + (1 - mask) * hr, mask


class TaskNet(nn.Module):
    """A timm classifier taking [0, 1] images (ImageNet normalisation inside); ``features`` = last feature map."""

    def __init__(self, arch: str, num_classes: int, pretrained: bool):
        super().__init__()
        import timm

        try:
            self.net = timm.create_model(arch, pretrained=pretrained, num_classes=num_classes)
        except Exception as exc:  # offline: no hub access; the paper's ImageNet init is then unavailable
            log.warning("no pretrained %s weights (%s: %s); the task network starts from random init",
                        arch, type(exc).__name__, exc)
            self.net = timm.create_model(arch, pretrained=False, num_classes=num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """ResNet ``layer4`` output (before pooling): the TDP feature space."""
        return self.net.forward_features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.features(x))


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class SR4IRTrainer:
    """The SR and task networks, their optimisers and one method per training step; ``history`` logs the steps."""

    def __init__(self, cfg: SR4IRConfig, num_classes: int, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        torch.manual_seed(cfg.seed)
        bb = backbones.build(cfg.arch, cfg.variant, cfg.scale, cfg.sr_options)
        if cfg.sr_checkpoint:
            backbones.load_weights(bb, cfg.sr_checkpoint)
        self.sr, self.pad = bb.module.to(self.device), bb.pad_multiple
        self.task = TaskNet(cfg.task_arch, num_classes, cfg.pretrained).to(self.device)
        self.sr_opt = torch.optim.AdamW(self.sr.parameters(), lr=cfg.sr_lr)
        self.task_opt = torch.optim.SGD(self.task.parameters(), lr=cfg.task_lr, momentum=cfg.momentum,
                                        weight_decay=cfg.weight_decay)
        self._reset_schedules(1)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ single steps
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        from .inference import pad_to_multiple

        h, w = lr.shape[-2:]
        out = self.sr(pad_to_multiple(lr, self.pad))
        return out[..., : h * self.cfg.scale, : w * self.cfg.scale]

    def sr_step(self, hr: torch.Tensor, lr: torch.Tensor, tdp: bool,
                labels: torch.Tensor | None = None) -> dict[str, float]:
        """Phase 1 (and the T->S baseline): update SR with L1 (+ TDP) (+ CE through T); T frozen, eval mode."""
        self.sr.train()
        self.task.eval()
        set_trainable(self.task, False)
        set_trainable(self.sr, True)
        sr = self.super_resolve(lr)
        loss = F.l1_loss(sr, hr)
        parts = {"pixel": loss.item()}
        if tdp:
            f_sr = self.task.features(sr)
            with torch.no_grad():
                f_hr = self.task.features(hr)
            tdp_loss = self.cfg.tdp_weight * F.l1_loss(f_sr, f_hr)
            loss = loss + tdp_loss
            parts["tdp"] = tdp_loss.item()
        if labels is not None:
            ce = F.cross_entropy(self.task(sr), labels)
            loss = loss + ce
            parts["ce"] = ce.item()
        self.sr_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sr_opt.step()
        set_trainable(self.task, True)
        self.history.append({"phase": "sr", **parts})
        return parts

    def task_step(self, hr: torch.Tensor, lr: torch.Tensor, labels: torch.Tensor, inputs: str) -> dict[str, float]:
        """Phase 2 (and the T-only baselines): update T; SR output detached. ``inputs``: sr4ir | sr | hr | lr."""
        self.task.train()
        if inputs in ("sr4ir", "sr"):
            self.sr.eval()
            with torch.no_grad():
                sr = self.super_resolve(lr).clamp(0, 1)
        if inputs == "sr4ir":
            parts = [sr, hr]
            if self.cfg.cqmix:
                parts.append(cqmix(hr, sr, self.cfg.cqmix_patches, self.gen)[0])
            logits = self.task(torch.cat(parts)).chunk(len(parts))
            weight = 0.34 if len(parts) == 3 else 0.5
            loss = weight * sum(F.cross_entropy(lg, labels) for lg in logits)
        else:
            x = {"sr": lambda: sr, "hr": lambda: hr, "lr": lambda: bilinear_up(lr, self.cfg.scale)}[inputs]()
            loss = F.cross_entropy(self.task(x), labels)
        self.task_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.task_opt.step()
        self.history.append({"phase": "task", "inputs": inputs, "ce": loss.item()})
        return {"ce": loss.item()}

    def joint_step(self, hr: torch.Tensor, lr: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """S+T baseline: both networks updated with L1(SR, HR) + CE(T(SR))."""
        self.sr.train()
        self.task.train()
        sr = self.super_resolve(lr)
        pixel, ce = F.l1_loss(sr, hr), F.cross_entropy(self.task(sr), labels)
        self.sr_opt.zero_grad(set_to_none=True)
        self.task_opt.zero_grad(set_to_none=True)
        (pixel + ce).backward()
        self.sr_opt.step()
        self.task_opt.step()
        self.history.append({"phase": "joint", "pixel": pixel.item(), "ce": ce.item()})
        return {"pixel": pixel.item(), "ce": ce.item()}

    # ------------------------------------------------------------------ schedules
    def _batches(self, images: torch.Tensor, labels: torch.Tensor):
        """One epoch of (hr, lr, labels) batches: random crop ``hr_size`` + horizontal flip, LR made on the fly."""
        n, size = len(images), self.cfg.hr_size
        order = torch.randperm(n, generator=self.gen)
        for start in range(0, n - self.cfg.batch_size + 1, self.cfg.batch_size):
            idx = order[start:start + self.cfg.batch_size]
            crops = []
            for i in idx.tolist():
                img = images[i]
                top = int(torch.randint(0, img.shape[-2] - size + 1, (1,), generator=self.gen))
                left = int(torch.randint(0, img.shape[-1] - size + 1, (1,), generator=self.gen))
                crop = img[:, top:top + size, left:left + size]
                if torch.rand(1, generator=self.gen) < 0.5:
                    crop = crop.flip(-1)
                crops.append(crop)
            hr = torch.stack(crops).to(self.device).float() / 255
            yield hr, make_lr(hr, self.cfg.scale), labels[idx].to(self.device)

    def _stage(self, images, labels, epochs: int, step) -> None:
        for epoch in range(epochs):
            for hr, lr, y in self._batches(images, labels):
                step(epoch, hr, lr, y)
                if self._sched_sr:
                    self.sr_sched.step()
                if self._sched_task:
                    self.task_sched.step()

    def fit(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Train by ``cfg.mode``. ``images``: uint8 (N, 3, H, W) resized to ``resize_to``; ``labels``: (N,)."""
        cfg = self.cfg
        per_epoch = max(1, len(images) // cfg.batch_size)
        self._reset_schedules(cfg.epochs * per_epoch)
        if cfg.mode in SR_MODES and cfg.sr_pretrain_epochs and not cfg.sr_checkpoint:
            # stands in for the paper's DIV2K-pretrained SR initialisation: plain L1 training, no task signal
            self._reset_schedules(cfg.sr_pretrain_epochs * per_epoch, task=False)
            self._stage(images, labels, cfg.sr_pretrain_epochs, lambda e, hr, lr, y: self.sr_step(hr, lr, tdp=False))
            self.sr_opt = torch.optim.AdamW(self.sr.parameters(), lr=cfg.sr_lr)
            self._reset_schedules(cfg.epochs * per_epoch)
        if cfg.mode == "sr4ir":
            def step(epoch, hr, lr, y):
                self.sr_step(hr, lr, tdp=cfg.tdp and epoch >= cfg.tdp_warmup_epochs)
                self.task_step(hr, lr, y, "sr4ir")
            self._stage(images, labels, cfg.epochs, step)
        elif cfg.mode in ("hr_t", "lr_t"):
            self._reset_schedules(cfg.epochs * per_epoch, sr=False)
            inputs = "hr" if cfg.mode == "hr_t" else "lr"
            self._stage(images, labels, cfg.epochs, lambda e, hr, lr, y: self.task_step(hr, lr, y, inputs))
        elif cfg.mode == "s_t":
            self._reset_schedules(cfg.epochs * per_epoch, task=False)
            self._stage(images, labels, cfg.epochs, lambda e, hr, lr, y: self.sr_step(hr, lr, tdp=False))
            self._reset_schedules(cfg.epochs * per_epoch, sr=False)
            self._stage(images, labels, cfg.epochs, lambda e, hr, lr, y: self.task_step(hr, lr, y, "sr"))
        elif cfg.mode == "t_s":
            self._reset_schedules(cfg.epochs * per_epoch, sr=False)
            self._stage(images, labels, cfg.epochs, lambda e, hr, lr, y: self.task_step(hr, lr, y, "hr"))
            self._reset_schedules(cfg.epochs * per_epoch, task=False)
            self._stage(images, labels, cfg.epochs,
                        lambda e, hr, lr, y: self.sr_step(hr, lr, tdp=False, labels=y))
        else:  # s_plus_t
            self._stage(images, labels, cfg.epochs, lambda e, hr, lr, y: self.joint_step(hr, lr, y))

    def _reset_schedules(self, steps: int, sr: bool = True, task: bool = True) -> None:
        """Fresh cosine schedules over ``steps`` for the networks a stage trains."""
        self._sched_sr, self._sched_task = sr, task
        if sr:
            for g in self.sr_opt.param_groups:
                g["lr"] = self.cfg.sr_lr
            self.sr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.sr_opt, max(1, steps))
        if task:
            for g in self.task_opt.param_groups:
                g["lr"] = self.cfg.task_lr
            self.task_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.task_opt, max(1, steps))

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def recognition_input(self, lr: torch.Tensor) -> torch.Tensor:
        """What T sees for an LR batch: the SR output for SR modes, the bilinear upsampling otherwise."""
        self.sr.eval()
        if self.cfg.mode in SR_MODES:
            return self.super_resolve(lr).clamp(0, 1)
        return bilinear_up(lr, self.cfg.scale)

    @torch.no_grad()
    def evaluate(self, hr: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
        """Top-1 on LR (via SR or bilinear up) and on HR, PSNR (RGB, border = scale) of the recognition input."""
        self.task.eval()
        correct_lr = correct_hr = 0
        psnrs = []
        s = self.cfg.scale
        for i in range(0, len(hr), batch_size):
            h = hr[i:i + batch_size].to(self.device)
            y = labels[i:i + batch_size].to(self.device)
            x = self.recognition_input(make_lr(h, s))
            correct_lr += int((self.task(x).argmax(1) == y).sum())
            correct_hr += int((self.task(h).argmax(1) == y).sum())
            x8, h8 = (x * 255).round(), (h * 255).round()
            mse = ((x8 - h8)[..., s:-s, s:-s] ** 2).mean(dim=(1, 2, 3))
            psnrs.extend((10 * torch.log10(255.0 ** 2 / mse)).tolist())
        n = len(hr)
        return {"top1_lr": correct_lr / n, "top1_hr": correct_hr / n, "psnr": float(np.mean(psnrs))}

    # ------------------------------------------------------------------ persistence
    def state(self, classnames: Sequence[str]) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "classnames": list(classnames),
                "sr": self.sr.state_dict(), "task": self.task.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.sr.load_state_dict(state["sr"])
        self.task.load_state_dict(state["task"])


def load_images(dataset: Any, resize: int, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset's images as uint8 (N, 3, resize, resize): shorter side to ``resize`` (bicubic), center square."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    out = []
    for i in range(n):
        img = TF.resize(dataset.load(i).convert("RGB"), resize, interpolation=TF.InterpolationMode.BICUBIC)
        out.append(TF.pil_to_tensor(TF.center_crop(img, [resize, resize])))
    return torch.stack(out), torch.as_tensor(np.asarray(dataset.labels[:n]), dtype=torch.long)


class SR4IRClassifier(ModelWrapper):
    """The trained pair as a classifier: LR image -> SR (or bilinear up) -> ResNet-18 (replaces the wrapped model)."""

    def __init__(self, inner: ModelAdapter, method_identity: dict[str, Any], trainer: SR4IRTrainer,
                 classnames: Sequence[str]):
        super().__init__(inner, method_identity)
        self.trainer, self._classnames = trainer, list(classnames)
        self._preprocess = Preprocess(image_size=trainer.cfg.hr_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.inference = SRInference(trainer.sr, trainer.cfg.scale, trainer.pad, amp=False)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "classifier"

    @property
    def classnames(self) -> list[str]:  # type: ignore[override]
        return self._classnames

    @property
    def preprocess(self) -> Preprocess:  # type: ignore[override]
        return self._preprocess

    @property
    def module(self) -> nn.Module:  # type: ignore[override]
        return self.trainer.task

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.trainer.device

    def to(self, device: str | torch.device) -> "SR4IRClassifier":
        self.trainer.device = torch.device(device)
        self.trainer.sr.to(device)
        self.trainer.task.to(device)
        return self

    def eval(self) -> "SR4IRClassifier":
        self.trainer.sr.eval()
        self.trainer.task.eval()
        return self

    def _recognise_input(self, lr: torch.Tensor) -> torch.Tensor:
        """[0, 1] LR batch -> [0, 1] batch at hr_size (square, center-cropped as the training crops)."""
        lr = TF.center_crop(lr, [min(lr.shape[-2:])] * 2)
        x = self.trainer.recognition_input(lr.to(self.device))
        return self._preprocess.tensor(x)

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.size, []).append(i)
        out: list[torch.Tensor | None] = [None] * len(images)
        for idx in groups.values():
            x = torch.stack([TF.to_tensor(images[i].convert("RGB")) for i in idx])
            for i, y in zip(idx, self._recognise_input(x)):
                out[i] = y
        return torch.stack(out)  # type: ignore[arg-type]

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self._recognise_input(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.trainer.task(x)


class SR4IRMethod(Method):
    """Train (or load) an SR4IR pair; evaluated with the ``classification`` task on LR conditions."""

    name = "sr4ir"
    stage = "train"

    def __init__(self, train: dict[str, Any] | None = None, checkpoint: str | None = None):
        self.train = dict(train or {})
        self.checkpoint = checkpoint
        self._cfg = SR4IRConfig.from_dict(self.train)

    def _training_set(self, dataset: Callable[..., Any] | None) -> Any:
        if dataset is None:
            raise LrbenchError("sr4ir needs a training dataset but the run context provides none")
        params = {k: v for k, v in self._cfg.dataset.items() if k != "name"}
        return dataset(self._cfg.dataset["name"], **params)

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The training set's identity (as in the artifact key): other training images make another pair, so other
        cells. ``checkpoint`` and ``train.sr_checkpoint`` are hashed with the spec entry."""
        if self.checkpoint:
            return {}
        return {"data": self._training_set(dataset).identity()}

    def produces(self, model_kind: str) -> str:
        """A classifier whatever the spec's model: the trained pair replaces it (its ResNet-18 task network)."""
        return "classifier"

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        if self.checkpoint:
            state = load_checkpoint(self.checkpoint)
            cfg = SR4IRConfig.from_dict(state["config"])
            key = None
        else:
            cfg = self._cfg
            dataset = self._training_set(ctx.dataset)
            key = content_key({"method": self.name, "config": asdict(cfg), "dataset": dataset.identity()})
            state = self._train_or_load(cfg, dataset, key, ctx)
        # the weights come from the state: no pretrained download, no SR checkpoint to read again
        trainer = SR4IRTrainer(replace(cfg, pretrained=False, sr_checkpoint=None), len(state["classnames"]),
                               ctx.device)
        trainer.load_state(state)
        identity = {"name": self.name, "config": asdict(cfg), "artifact": key,
                    "checkpoint": None if key else self.checkpoint}
        return SR4IRClassifier(model, identity, trainer, state["classnames"]).eval()

    def _train_or_load(self, cfg: SR4IRConfig, dataset: Any, key: str, ctx: MethodContext) -> dict[str, Any]:
        if ctx.artifacts.exists(self.name, key, "pair.pt"):
            ctx.log.info("sr4ir: loading trained pair %s", key[:12])
            return load_checkpoint(ctx.artifacts.path(self.name, key) / "pair.pt")
        images, labels = load_images(dataset, cfg.resize_to)
        ctx.log.info("sr4ir: training %s on %d images (%d epochs)", cfg.mode, len(images), cfg.epochs)
        trainer = SR4IRTrainer(cfg, dataset.num_classes, ctx.device)
        trainer.fit(images, labels)
        state = trainer.state(dataset.classnames)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(ctx.artifacts.path(self.name, key) / "pair.pt", buf.getvalue())
        return state
