"""SR4IR (Kim et al., CVPR 2024): an SR network and a task network trained together for LR recognition.

The recipe is the authors' classification code (JaehaKim97/SR4IR, ``src/models/cls/*_cls_model.py`` and
``options/cls/*``); docs/sr.md cites file and line for each point and lists what departs from it.

- TDP loss: L1 between the task network's feature maps (ResNet ``layer4``, before pooling) of SR and HR images,
  computed with the task network frozen and in eval mode, switched on after a warm-up.
- CQMix: a sqrt(P) x sqrt(P) grid of patches, each taken from the SR or the HR image with probability 0.5.
- Alternate training, per iteration: phase 1 updates SR with L1(SR, HR) + TDP, the task network frozen; phase 2 updates
  the task network with 0.34 * (CE(SR) + CE(HR) + CE(CQMix)), three forward passes (so BatchNorm normalises and
  tracks each view on its own), the SR output detached and not clamped.
- Baselines (``mode``): ``hr_t`` (T on HR, the oracle), ``lr_t`` (T on bilinear-upsampled LR, align_corners as
  ``nn.UpsamplingBilinear2d``), ``s_t`` (S with L1 first, then T on frozen S), ``t_s`` (T on HR first, then S with
  L1 + CE through frozen T), ``s_plus_t`` (joint L1 + CE).
- Schedules: BasicSR's cosine annealing with restarts, stepped every iteration; SR4IR restarts at the end of the TDP
  warm-up (periods [warm-up, rest] epochs), eta_min 1e-6 for SR and 1e-4 for T; each baseline stage one period.

LR images are made on the fly as the authors do: torch bicubic by 1/scale without antialias, rounded to 8 bits. The
trained pair is stored as a method artifact keyed by the hash of the config and the training set, and used as a
classifier on the authors' test images: Resize(hr_size x 256/224, bilinear) + CenterCrop(hr_size) is the HR image
(the model's ``hr_view``), conditions degrade it, LR inputs go through SR (or bilinear up), HR inputs straight to T.
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
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    HRView,
    LrbenchError,
    Method,
    MethodContext,
    ModelAdapter,
    ModelWrapper,
    Preprocess,
    atomic_write_bytes,
    content_key,
    load_checkpoint,
)

from . import backbones
from .inference import pad_to_multiple
from .quality import SRDown

log = logging.getLogger("lrbench.sr")

MODES = ("sr4ir", "hr_t", "lr_t", "s_t", "t_s", "s_plus_t")
#: modes whose recognition input is the SR output (the others feed bilinear-upsampled LR to T)
SR_MODES = ("sr4ir", "s_t", "t_s", "s_plus_t")


#: the recognition task a pair is trained for -> the kind of model it is evaluated as
TASK_KINDS = {"classification": "classifier", "segmentation": "segmenter", "detection": "detector"}

#: the authors' recipe per task where it differs from classification's (the dataclass defaults):
#: ``options/seg/014_SR4IR_edsr_x4.yml`` and ``options/det/014_SR4IR_edsr_x4.yml``; ``task_weights`` is then the
#: backbone's ImageNet weights (``weights_backbone``)
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {},
    "segmentation": {
        "task_arch": "deeplabv3_mobilenet_v3_large",
        "epochs": 100,
        "batch_size": 16,
        "task_lr": 2e-2,
        "weight_decay": 1e-6,
        "tdp_warmup_epochs": 10,
        "cqmix_patches": 64,
        "hr_size": 480,
        "resize": 520,
    },
    "detection": {
        "task_arch": "fasterrcnn_mobilenet_v3_large_fpn",
        "epochs": 30,
        "batch_size": 16,
        "task_lr": 2e-2,
        "weight_decay": 1e-4,
        "tdp_warmup_epochs": 3,
        "lr_warmup_epochs": 1,
        "cqmix_patches": 64,
        "hr_size": 480,
        "resize": 480,
    },
}

#: what an ``init`` pair takes from the pair it starts, unless it names them
_INHERITED_BY_INIT = (
    "task",
    "scale",
    "arch",
    "variant",
    "sr_options",
    "task_arch",
    "task_options",
    "dataset",
    "hr_size",
    "resize",
)


#: options that came with segmentation and detection: keyed only when they differ from the default
_ADDED_WITH_DENSE = ("task", "task_options", "aux_weight", "lr_warmup_epochs")


@dataclass
class SR4IRConfig:
    """Everything that determines a trained pair (its hash keys the artifact). Defaults: the authors' EDSR-baseline
    classification recipe (``options/cls/CUB200/014_SR4IR_edsr_x4.yml``)."""

    mode: str = "sr4ir"
    #: classification, segmentation or detection: the task network, its losses and TDP features, the data
    task: str = "classification"
    scale: int = 4
    arch: str = "edsr"
    variant: str = "baseline"
    #: overrides of the SR architecture (e.g. ``{num_feat: 32, num_block: 4}`` for CPU-sized runs)
    sr_options: dict[str, Any] = field(default_factory=dict)
    #: SR initialisation (the authors: EDSR-baseline DIV2K weights); without it, ``sr_pretrain_epochs`` of L1 training
    sr_checkpoint: str | None = None
    sr_pretrain_epochs: int = 0
    #: a torchvision ResNet (the authors: resnet18) or ``timm:<name>`` (random init only: CPU-sized runs, tests)
    task_arch: str = "resnet18"
    #: torchvision weights tag the task network starts from (the authors: ResNet18_Weights.IMAGENET1K_V1, its fc
    #: replaced for the dataset's classes); None: random init
    task_weights: str | None = "IMAGENET1K_V1"
    #: keyword arguments of the torchvision segmentation / detection builder (e.g. ``{min_size: 64, max_size: 64}``
    #: for Faster R-CNN's own input resizing on small images)
    task_options: dict[str, Any] = field(default_factory=dict)
    #: the training images: a registered dataset entry
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "toyworld", "split": "train", "n": 480})
    #: HR crop (the authors: Resize 256 + RandomCrop 224 for training, Resize 256 + CenterCrop 224 for testing)
    hr_size: int = 224
    #: shorter side before cropping; default hr_size x 256 / 224
    resize: int | None = None
    epochs: int = 200
    batch_size: int = 128
    sr_lr: float = 1e-4
    sr_weight_decay: float = 0.0
    sr_eta_min: float = 1e-6
    task_lr: float = 3e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    task_eta_min: float = 1e-4
    tdp: bool = True
    tdp_weight: float = 1.0
    #: epochs before the TDP loss is switched on, and where both schedules restart (the authors: 20 of 200)
    tdp_warmup_epochs: int = 20
    cqmix: bool = True
    cqmix_patches: int = 16
    #: weight of each phase-2 cross-entropy: CE(SR), CE(HR), CE(CQMix)
    ce_weight: float = 0.34
    #: segmentation: weight of the auxiliary head's cross-entropy (the authors' ``AUXCELoss``), its learning rate x10
    aux_weight: float = 0.5
    #: detection: epochs of linear learning-rate warm-up before the cosine schedule (the authors' first epoch)
    lr_warmup_epochs: int = 0
    seed: int = 0
    #: a pair trained first (or loaded from the artifacts) whose SR and task weights this one starts from: the
    #: stand-in for DIV2K SR and ImageNet T weights on data without them (e.g. ``{mode: hr_t, sr_pretrain_epochs:
    #: 5, task_weights: null}``); networks, data and crop sizes default to this one's
    init: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LrbenchError(f"unknown sr4ir mode {self.mode!r}; choices: {', '.join(MODES)}")
        if self.task not in TASK_KINDS:
            raise LrbenchError(f"unknown sr4ir task {self.task!r}; choices: {', '.join(TASK_KINDS)}")
        if self.task != "classification" and self.task_arch.startswith("timm:"):
            raise LrbenchError(f"a {self.task} pair needs a torchvision task_arch, got {self.task_arch!r}")
        if not 0 <= self.lr_warmup_epochs <= min(self.epochs, self.tdp_warmup_epochs or self.epochs):
            raise LrbenchError(f"lr_warmup_epochs must be in [0, tdp_warmup_epochs], got {self.lr_warmup_epochs}")
        if int(math.isqrt(self.cqmix_patches)) ** 2 != self.cqmix_patches:
            raise LrbenchError(f"cqmix_patches must be a square number (1, 4, 16, 64), got {self.cqmix_patches}")
        if self.hr_size % self.scale:
            raise LrbenchError(f"hr_size ({self.hr_size}) must be a multiple of scale ({self.scale})")
        if self.task_arch.startswith("timm:") and self.task_weights:
            raise LrbenchError(
                f"task_weights ({self.task_weights!r}) are torchvision weights; a timm task_arch "
                f"({self.task_arch}) starts from random init: set task_weights: null"
            )
        if self.mode == "sr4ir" and not 0 <= self.tdp_warmup_epochs <= self.epochs:
            raise LrbenchError(f"tdp_warmup_epochs must be in [0, epochs={self.epochs}], got {self.tdp_warmup_epochs}")
        if self.init is not None and (self.task_weights or self.sr_checkpoint):
            raise LrbenchError("init gives both networks their weights: set task_weights: null and no sr_checkpoint")
        self.init_config()  # a bad init entry is reported when the spec is read
        backbones.variant(self.arch, self.variant)

    def init_config(self) -> "SR4IRConfig | None":
        if self.init is None:
            return None
        inherited = {k: getattr(self, k) for k in _INHERITED_BY_INIT}
        init = self.from_dict({**inherited, **self.init})
        if (init.task, init.arch, init.variant, init.sr_options, init.scale, init.task_arch) != (
            self.task,
            self.arch,
            self.variant,
            self.sr_options,
            self.scale,
            self.task_arch,
        ):
            raise LrbenchError("init must train the same networks (task, arch, variant, sr_options, scale, task_arch)")
        return init

    @property
    def resize_to(self) -> int:
        return self.resize or round(self.hr_size * 256 / 224)

    @property
    def hr_view(self) -> HRView:
        """The authors' test image (``src/utils/cls/presets.py``: Resize, CenterCrop, bilinear)."""
        return HRView(self.resize_to, self.hr_size, "bilinear")

    @property
    def kind(self) -> str:
        return TASK_KINDS[self.task]

    def key(self) -> dict[str, Any]:
        """The config as the artifact and cell keys hash it: the options added with segmentation and detection are
        left out while they keep their defaults (a classification pair's behaviour before them), so pairs stored
        before they existed keep their keys."""
        out = asdict(self)
        for name in _ADDED_WITH_DENSE:
            if out[name] == _DEFAULTS[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "SR4IRConfig":
        """The config a ``train:`` mapping names: the authors' recipe for its ``task``, overridden by the mapping."""
        names = {f.name for f in fields(cls)}
        unknown = set(params) - names
        if unknown:
            raise LrbenchError(
                f"unknown sr4ir train option(s) {', '.join(sorted(unknown))}; choices: {', '.join(sorted(names))}"
            )
        task = params.get("task", "classification")
        if task not in TASK_KINDS:
            raise LrbenchError(f"unknown sr4ir task {task!r}; choices: {', '.join(TASK_KINDS)}")
        return cls(**{**TASK_DEFAULTS[task], **params})


_DEFAULTS = asdict(SR4IRConfig())


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """SR4IR's LR: bicubic by 1/scale without antialias, rounded to 8-bit levels."""
    return SRDown(scale).tensor(hr)


def bilinear_up(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The authors' "bilinear up" (``nn.UpsamplingBilinear2d``: align_corners=True; never overshoots, so no clamp)."""
    return F.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=True)


def cqmix(
    hr: torch.Tensor, sr: torch.Tensor, patches: int = 16, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
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


def cosine_restart(optimizer: torch.optim.Optimizer, periods: Sequence[int], eta_min: float):
    """BasicSR's CosineAnnealingRestartLR (the authors' ``src/utils/common/lr_scheduler.py``), periods in steps."""
    from ._basicsr import CosineAnnealingRestartLR

    return CosineAnnealingRestartLR(
        optimizer, periods=[max(1, int(p)) for p in periods], restart_weights=[1] * len(periods), eta_min=eta_min
    )


def _pretrained_state(arch: str, tag: str) -> dict[str, torch.Tensor]:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch)[tag]
    except (KeyError, ValueError) as exc:
        raise LrbenchError(f"unknown task_weights {tag!r} for {arch}: {exc}") from None
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # offline: no download; the file may still be put in the hub cache by hand
        raise LrbenchError(
            f"the {arch} {tag} weights are not available ({type(exc).__name__}: {exc}). Put "
            f"{weights.url.rsplit('/', 1)[-1]} (from {weights.url}) in {torch.hub.get_dir()}/checkpoints, or set "
            f"task_weights: null to start from random init"
        ) from None


class TaskNet(nn.Module):
    """The task network on [0, 1] images (ImageNet normalisation inside, as the authors' ``ManualNormalize``);
    ``features`` is the last feature map, before pooling (ResNet ``layer4``): the TDP feature space."""

    def __init__(self, arch: str, num_classes: int, weights: str | None):
        super().__init__()
        self.timm = arch.startswith("timm:")
        if self.timm:
            import timm

            self.net = timm.create_model(arch[len("timm:") :], pretrained=False, num_classes=num_classes)
        else:
            import torchvision

            try:
                self.net = torchvision.models.get_model(arch, num_classes=num_classes)
            except ValueError as exc:
                raise LrbenchError(f"task_arch {arch!r}: {exc}") from None
            if not hasattr(self.net, "layer4"):
                raise LrbenchError(
                    f"task_arch {arch!r} is not a torchvision ResNet (resnet18, resnet50, ...) and has "
                    f"no layer4 for the TDP loss; other networks: timm:<name>"
                )
            if weights:
                self._load(arch, weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _load(self, arch: str, tag: str) -> None:
        """Pretrained weights but the classifier, which is sized for the dataset (the authors load with
        ``strict_load: false``, dropping the mismatched ``fc``)."""
        own = self.net.state_dict()
        state = {k: v for k, v in _pretrained_state(arch, tag).items() if k in own and v.shape == own[k].shape}
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if set(missing) - {"fc.weight", "fc.bias"} or unexpected:
            raise LrbenchError(f"{arch} {tag} does not fit {arch}: missing {missing}, unexpected {unexpected}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.timm:
            return self.net.forward_features(x)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.timm:
            return self.net.forward_head(f)
        return self.net.fc(torch.flatten(self.net.avgpool(f), 1))

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), target)

    def tdp_features(self, x: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        """(weight, feature map) pairs of the TDP loss: ``layer4`` alone (``opts``:66-72, ``l4: 1.0``)."""
        return [(1.0, self.features(x))]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": list(self.parameters())}]


class SegTaskNet(nn.Module):
    """DeepLabV3 (torchvision, with its auxiliary FCN head) on [0, 1] images for SR4IR segmentation. TDP features:
    the backbone's last stage (``C5``, torchvision's ``out``: ``options/seg/014_SR4IR_edsr_x4.yml``:70-76,
    ``src/archs/seg/deeplabv3.py``:151-162); loss: CE(out) + ``aux_weight`` CE(aux), ignore index 255
    (``src/losses/seg.py``:19-27)."""

    def __init__(self, arch: str, num_classes: int, weights_backbone: str | None, aux_weight: float, options: dict):
        super().__init__()
        from .dense import IGNORE_INDEX, Normalized, build_torchvision

        self.ignore_index, self.aux_weight = IGNORE_INDEX, aux_weight
        net = build_torchvision(arch, None, weights_backbone, num_classes, aux_loss=True, **options)
        if not hasattr(net, "aux_classifier") or net.aux_classifier is None:
            raise LrbenchError(f"task_arch {arch!r} is not a torchvision DeepLabV3 / FCN with an auxiliary head")
        self.net = net
        self.norm = Normalized(nn.Identity())

    def _out(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._out(x)["out"]

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self._out(x)
        ce = F.cross_entropy(out["out"], target, ignore_index=self.ignore_index)
        return ce + self.aux_weight * F.cross_entropy(out["aux"], target, ignore_index=self.ignore_index)

    def tdp_features(self, x: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        return [(1.0, self.net.backbone(self.norm(x))["out"])]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The authors' groups: backbone and classifier at ``lr``, the auxiliary head at 10 x ``lr``
        (``src/models/seg/sr4ir_seg_model.py``:104-109)."""
        n = self.net
        return [
            {"params": list(n.backbone.parameters())},
            {"params": list(n.classifier.parameters())},
            {"params": list(n.aux_classifier.parameters()), "lr": lr * 10},
        ]


class DetTaskNet(nn.Module):
    """Faster R-CNN (torchvision; its own transform normalises and resizes) for SR4IR detection. TDP features: the
    FPN's levels ``0`` and ``1``, 0.5 each (``options/det/014_SR4IR_edsr_x4.yml``:70-76); loss: the sum of its four
    losses (``src/losses/det.py``:14-16)."""

    def __init__(self, arch: str, num_classes: int, weights_backbone: str | None, options: dict):
        super().__init__()
        from .dense import build_torchvision

        self.net = build_torchvision(arch, None, weights_backbone, num_classes, **options)
        if not hasattr(self.net, "rpn"):
            raise LrbenchError(f"task_arch {arch!r} is not a torchvision R-CNN detector")
        # the layers torchvision leaves trainable (all with random init; 3 backbone stages with ImageNet weights):
        # the optimiser's, even after phase 1 switches requires_grad back on everywhere (``model``:98, :165)
        self._trainable = [n for n, p in self.named_parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.net(list(x))

    def loss(self, x: torch.Tensor, target: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """In training mode whatever the caller's (torchvision computes losses only there: T->S departs here)."""
        mode = self.net.training
        self.net.train()
        losses = self.net(list(x), target)
        self.net.train(mode)
        return sum(losses.values())

    def tdp_features(self, x: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        images, _ = self.net.transform(list(x))
        feats = self.net.backbone(images.tensors)
        return [(0.5, feats["0"]), (0.5, feats["1"])]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        params = dict(self.named_parameters())
        return [{"params": [params[n] for n in self._trainable]}]


def make_task_net(cfg: "SR4IRConfig", num_classes: int) -> nn.Module:
    if cfg.task == "segmentation":
        return SegTaskNet(cfg.task_arch, num_classes, cfg.task_weights, cfg.aux_weight, cfg.task_options)
    if cfg.task == "detection":
        return DetTaskNet(cfg.task_arch, num_classes, cfg.task_weights, cfg.task_options)
    return TaskNet(cfg.task_arch, num_classes, cfg.task_weights)


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class SR4IRTrainer:
    """The SR and task networks and one method per training step; ``history`` logs each step (phase, losses, the
    learning rates it used)."""

    def __init__(self, cfg: SR4IRConfig, num_classes: int, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        torch.manual_seed(cfg.seed)
        bb = backbones.build(cfg.arch, cfg.variant, cfg.scale, cfg.sr_options)
        if cfg.sr_checkpoint:
            backbones.load_weights(bb, cfg.sr_checkpoint)
        self.sr, self.pad = bb.module.to(self.device), bb.pad_multiple
        self.num_classes = num_classes
        self.task = make_task_net(cfg, num_classes).to(self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.history: list[dict[str, Any]] = []
        self.sr_opt, self.task_opt = self._optimiser("sr"), self._optimiser("task")

    def _optimiser(self, net: str) -> torch.optim.Optimizer:
        """The authors' optimisers: AdamW for SR (no weight decay), SGD with momentum for T."""
        if net == "sr":
            return torch.optim.AdamW(
                self.sr.parameters(), lr=self.cfg.sr_lr, weight_decay=self.cfg.sr_weight_decay, betas=(0.9, 0.999)
            )
        return torch.optim.SGD(
            self.task.param_groups(self.cfg.task_lr),
            lr=self.cfg.task_lr,
            momentum=self.cfg.momentum,
            weight_decay=self.cfg.weight_decay,
        )

    # ------------------------------------------------------------------ single steps
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        out = self.sr(pad_to_multiple(lr, self.pad))
        return out[..., : h * self.cfg.scale, : w * self.cfg.scale]

    def _lrs(self) -> dict[str, float]:
        return {
            f"lr_{name}": opt.param_groups[0]["lr"]
            for name, opt in (("sr", self.sr_opt), ("task", self.task_opt))
            if opt is not None
        }

    def sr_step(self, hr: torch.Tensor, lr: torch.Tensor, tdp: bool, labels: Any = None) -> dict[str, float]:
        """Phase 1 (and the T->S baseline): update SR with L1 (+ TDP) (+ CE through T); T frozen, eval mode."""
        self.sr.train()
        self.task.eval()
        set_trainable(self.task, False)
        sr = self.super_resolve(lr)
        loss = F.l1_loss(sr, hr)
        parts = {"pixel": loss.item()}
        if tdp:
            f_sr = self.task.tdp_features(sr)
            with torch.no_grad():
                f_hr = self.task.tdp_features(hr)
            tdp_loss = self.cfg.tdp_weight * sum(w * F.l1_loss(a, b) for (w, a), (_, b) in zip(f_sr, f_hr))
            loss = loss + tdp_loss
            parts["tdp"] = tdp_loss.item()
        if labels is not None:
            ce = self.task.loss(sr, labels)
            loss = loss + ce
            parts["ce"] = ce.item()
        self.sr_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sr_opt.step()
        set_trainable(self.task, True)
        self.history.append({"phase": "sr", **parts, **self._lrs()})
        return parts

    def task_step(self, hr: torch.Tensor, lr: torch.Tensor, labels: Any, inputs: str) -> dict[str, float]:
        """Phase 2 (and the T-only baselines): update T; SR output detached. ``inputs``: sr4ir | sr | hr | lr."""
        self.task.train()
        if inputs == "sr4ir":
            with torch.no_grad():  # the authors recompute SR after phase 1, net_sr still in train mode
                sr = self.super_resolve(lr)
            views = [sr, hr]
            if self.cfg.cqmix:
                views.append(cqmix(hr, sr, self.cfg.cqmix_patches, self.gen)[0])
            # one forward pass per view, as the authors: BatchNorm sees (and tracks) each view's statistics alone
            loss = sum(self.cfg.ce_weight * self.task.loss(v, labels) for v in views)
        else:
            if inputs == "sr":
                self.sr.eval()
                with torch.no_grad():
                    x = self.super_resolve(lr)
            else:
                x = hr if inputs == "hr" else bilinear_up(lr, self.cfg.scale)
            loss = self.task.loss(x, labels)
        self.task_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.task_opt.step()
        self.history.append({"phase": "task", "inputs": inputs, "ce": loss.item(), **self._lrs()})
        return {"ce": loss.item()}

    def joint_step(self, hr: torch.Tensor, lr: torch.Tensor, labels: Any) -> dict[str, float]:
        """S+T baseline: both networks updated with L1(SR, HR) + CE(T(SR))."""
        self.sr.train()
        self.task.train()
        sr = self.super_resolve(lr)
        pixel, ce = F.l1_loss(sr, hr), self.task.loss(sr, labels)
        self.sr_opt.zero_grad(set_to_none=True)
        self.task_opt.zero_grad(set_to_none=True)
        (pixel + ce).backward()
        self.sr_opt.step()
        self.task_opt.step()
        self.history.append({"phase": "joint", "pixel": pixel.item(), "ce": ce.item(), **self._lrs()})
        return {"pixel": pixel.item(), "ce": ce.item()}

    # ------------------------------------------------------------------ stages
    def steps_per_epoch(self, n: int) -> int:
        """Batches per epoch: the last partial batch counts (the authors' DataLoader keeps it) unless it holds a single
        image, which BatchNorm cannot train on."""
        full, rest = divmod(n, self.cfg.batch_size)
        return max(1, full + (rest > 1))

    def _batches(self, images: Sequence[torch.Tensor], targets: Any):
        """One epoch of (hr, lr, targets) batches: RandomCrop ``hr_size`` + horizontal flip of the image and, for
        dense tasks, of its mask or boxes alike; LR made on the fly."""
        n, size = len(images), self.cfg.hr_size
        order = torch.randperm(n, generator=self.gen)
        for b in range(self.steps_per_epoch(n)):
            idx = order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size]
            crops, dense = [], []
            for i in idx.tolist():
                img = images[i]
                top = int(torch.randint(0, img.shape[-2] - size + 1, (1,), generator=self.gen))
                left = int(torch.randint(0, img.shape[-1] - size + 1, (1,), generator=self.gen))
                flip = bool(torch.rand(1, generator=self.gen) < 0.5)
                crop = img[:, top : top + size, left : left + size]
                crops.append(crop.flip(-1) if flip else crop)
                if self.cfg.task != "classification":
                    dense.append(crop_target(targets[i], top, left, size, flip))
            hr = torch.stack(crops).to(self.device).float() / 255
            if self.cfg.task == "classification":
                y = targets[idx].to(self.device)
            elif self.cfg.task == "segmentation":
                y = torch.stack(dense).long().to(self.device)
            else:
                y = [{k: v.to(self.device) for k, v in t.items()} for t in dense]
            yield hr, make_lr(hr, self.cfg.scale), y

    def _stage(
        self,
        images,
        labels,
        epochs: int,
        step: Callable,
        sr_periods: Sequence[int] | None = None,
        task_periods: Sequence[int] | None = None,
        warmup: int = 0,
    ) -> None:
        """``epochs`` of ``step(epoch, hr, lr, y)``; the networks with periods (in epochs) get a fresh optimiser and
        cosine-restart schedule (a separate run in the authors' code for each baseline stage), after ``warmup``
        epochs of linear warm-up from 1 / (warm-up steps) of the learning rate (the authors' detection: LinearLR over
        the first epoch, ``src/models/det/sr4ir_det_model.py``:114-123, :200-204)."""
        per_epoch = self.steps_per_epoch(len(images))
        scheds = []
        # a network the stage does not train has no optimiser (and no learning rate in the history)
        self.sr_opt = self._optimiser("sr") if sr_periods is not None else None
        self.task_opt = self._optimiser("task") if task_periods is not None else None
        if self.sr_opt is not None:
            scheds.append(cosine_restart(self.sr_opt, [p * per_epoch for p in sr_periods], self.cfg.sr_eta_min))
        if self.task_opt is not None:
            scheds.append(cosine_restart(self.task_opt, [p * per_epoch for p in task_periods], self.cfg.task_eta_min))
        warm = [
            torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1 / (warmup * per_epoch), total_iters=warmup * per_epoch
            )
            for opt in (self.sr_opt, self.task_opt)
            if opt is not None and warmup
        ]
        for epoch in range(epochs):
            for hr, lr, y in self._batches(images, labels):
                step(epoch, hr, lr, y)
                for s in warm if epoch < warmup else scheds:
                    s.step()

    def fit(self, images: Sequence[torch.Tensor], labels: Any) -> None:
        """Train by ``cfg.mode``. ``images``: uint8 (3, H, W) tensors, shorter side ``resize_to``; ``labels``: (N,)
        classes, or per image a uint8 (H, W) mask or ``{boxes, labels}`` tensors (:func:`load_images`)."""
        cfg, e, lw = self.cfg, self.cfg.epochs, self.cfg.lr_warmup_epochs
        if cfg.sr_pretrain_epochs and not cfg.sr_checkpoint:
            # stands in for the authors' DIV2K-pretrained SR initialisation: plain L1 training, no task signal (in
            # every mode, so an hr_t ``init`` pair carries a pretrained SR too)
            self._stage(
                images,
                labels,
                cfg.sr_pretrain_epochs,
                lambda ep, hr, lr, y: self.sr_step(hr, lr, tdp=False),
                sr_periods=[cfg.sr_pretrain_epochs],
            )
        if cfg.mode == "sr4ir":
            w = cfg.tdp_warmup_epochs
            # the restart falls where TDP starts; an lr warm-up takes its epochs from the first period
            periods = [w - lw, e - w] if lw < w < e else [e - lw]

            def step(epoch, hr, lr, y):
                self.sr_step(hr, lr, tdp=cfg.tdp and epoch >= w)
                self.task_step(hr, lr, y, "sr4ir")

            self._stage(images, labels, e, step, sr_periods=periods, task_periods=periods, warmup=lw)
        elif cfg.mode in ("hr_t", "lr_t"):
            inputs = "hr" if cfg.mode == "hr_t" else "lr"
            self._stage(
                images,
                labels,
                e,
                lambda ep, hr, lr, y: self.task_step(hr, lr, y, inputs),
                task_periods=[e - lw],
                warmup=lw,
            )
        elif cfg.mode == "s_t":
            self._stage(images, labels, e, lambda ep, hr, lr, y: self.sr_step(hr, lr, tdp=False), sr_periods=[e])
            self._stage(
                images,
                labels,
                e,
                lambda ep, hr, lr, y: self.task_step(hr, lr, y, "sr"),
                task_periods=[e - lw],
                warmup=lw,
            )
        elif cfg.mode == "t_s":
            self._stage(
                images,
                labels,
                e,
                lambda ep, hr, lr, y: self.task_step(hr, lr, y, "hr"),
                task_periods=[e - lw],
                warmup=lw,
            )
            self._stage(
                images, labels, e, lambda ep, hr, lr, y: self.sr_step(hr, lr, tdp=False, labels=y), sr_periods=[e]
            )
        else:  # s_plus_t
            self._stage(
                images,
                labels,
                e,
                lambda ep, hr, lr, y: self.joint_step(hr, lr, y),
                sr_periods=[e - lw],
                task_periods=[e - lw],
                warmup=lw,
            )

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def recognition_input(self, lr: torch.Tensor) -> torch.Tensor:
        """What T sees for an LR batch: the SR output (not clamped, as the authors) for SR modes, the bilinear
        upsampling otherwise."""
        self.sr.eval()
        if self.cfg.mode in SR_MODES:
            return self.super_resolve(lr)
        return bilinear_up(lr, self.cfg.scale)

    # ------------------------------------------------------------------ persistence
    def state(self, classnames: Sequence[str]) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "classnames": list(classnames),
            "num_classes": self.num_classes,
            "sr": self.sr.state_dict(),
            "task": self.task.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.sr.load_state_dict(state["sr"])
        self.task.load_state_dict(state["task"])


def crop_target(target: Any, top: int, left: int, size: int, flip: bool) -> Any:
    """A mask ((H, W) tensor) or ``{boxes, labels}`` cropped to the ``size`` square at (top, left) and flipped as its
    image: boxes are shifted, clipped to the crop and dropped when nothing of them is left (torchvision's
    detection references' crop)."""
    if isinstance(target, torch.Tensor):
        crop = target[top : top + size, left : left + size]
        return crop.flip(-1) if flip else crop
    boxes = target["boxes"] - torch.tensor([left, top, left, top], dtype=torch.float32)
    boxes = boxes.clamp(0, size)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes = boxes[keep]
    if flip:
        boxes = torch.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], dim=1)
    return {"boxes": boxes, "labels": target["labels"][keep]}


def load_images(
    dataset: Any, resize: int, task: str = "classification", limit: int | None = None
) -> tuple[list[torch.Tensor], Any]:
    """A dataset's images as uint8 (3, H, W) tensors, shorter side resized to ``resize`` (bilinear, the authors'
    ``ClassificationPresetTrain`` / ``SegmentationPresetTrain``'s ``RandomResize(base_size)``), and their targets:
    (N,) labels, or per image a uint8 (H, W) mask (resized nearest) or ``{boxes, labels}`` (boxes scaled); random
    crops are taken from the whole resized image at each step."""
    from .dense import resize_item

    n = len(dataset) if limit is None else min(limit, len(dataset))
    if task == "classification":
        out = [
            TF.pil_to_tensor(
                TF.resize(dataset.load(i).convert("RGB"), resize, interpolation=InterpolationMode.BILINEAR)
            )
            for i in range(n)
        ]
        return out, torch.as_tensor(np.asarray(dataset.labels[:n]), dtype=torch.long)
    if getattr(dataset, "task", None) != task or not hasattr(dataset, "target"):
        raise LrbenchError(f"an sr4ir {task} pair trains on a {task} dataset; {dataset.name!r} is a {dataset.task} one")
    images, targets = [], []
    for i in range(n):
        image, target = resize_item(dataset.load(i).convert("RGB"), dataset.target(i), resize)
        images.append(TF.pil_to_tensor(image))
        if task == "segmentation":
            targets.append(torch.from_numpy(np.asarray(target, dtype=np.uint8).copy()))
        else:
            targets.append(
                {
                    "boxes": torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4),
                    "labels": torch.as_tensor(target["labels"], dtype=torch.long),
                }
            )
    return images, targets


class _TrainedPair(ModelWrapper):
    """What every trained pair shares: the SR and task networks move and switch to eval together, the kind is the
    one the pair was trained for, the class names are its training set's."""

    def __init__(
        self, inner: ModelAdapter, method_identity: dict[str, Any], trainer: SR4IRTrainer, classnames: Sequence[str]
    ):
        super().__init__(inner, method_identity)
        self.trainer, self._classnames = trainer, list(classnames)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.trainer.cfg.kind

    @property
    def classnames(self) -> list[str]:  # type: ignore[override]
        return self._classnames

    @property
    def scale(self) -> int:
        return self.trainer.cfg.scale

    @property
    def module(self) -> nn.Module:  # type: ignore[override]
        return self.trainer.task

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.trainer.device

    def to(self, device: str | torch.device) -> "_TrainedPair":
        self.trainer.device = torch.device(device)
        self.trainer.sr.to(device)
        self.trainer.task.to(device)
        return self

    def eval(self) -> "_TrainedPair":
        self.trainer.sr.eval()
        self.trainer.task.eval()
        return self

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        """What the task network sees for an LR batch (the ``sr`` task scores it against the HR view)."""
        return self.trainer.recognition_input(lr.to(self.device))


class SR4IRClassifier(_TrainedPair):
    """The trained pair as a classifier on the authors' test images (``hr_view``): an input smaller than ``hr_size``
    (an LR condition) goes through SR (or bilinear up for the T-only modes), an HR input straight to the task network.
    It replaces the wrapped model."""

    def __init__(
        self, inner: ModelAdapter, method_identity: dict[str, Any], trainer: SR4IRTrainer, classnames: Sequence[str]
    ):
        super().__init__(inner, method_identity, trainer, classnames)
        cfg = trainer.cfg
        # inputs of another size (bicubic@N of the view) are resized to hr_size; at hr_size nothing changes
        self._preprocess = Preprocess(
            image_size=cfg.hr_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear"
        )

    @property
    def preprocess(self) -> Preprocess:  # type: ignore[override]
        return self._preprocess

    @property
    def hr_view(self) -> HRView:  # type: ignore[override]
        return self.trainer.cfg.hr_view

    def _recognise_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if min(x.shape[-2:]) < self.trainer.cfg.hr_size:
            x = self.trainer.recognition_input(x)
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


class SR4IRDense(_TrainedPair):
    """A trained segmentation or detection pair (kind ``segmenter`` / ``detector``, the ``segmentation`` /
    ``detection`` tasks' protocol): an LR input (smaller than the HR size asked for) goes through SR (or bilinear up
    for the T-only modes) and is fitted to that size (an ``srdown`` LR image covers the HR image's top-left multiple
    of the scale), an HR input straight to the task network. The task resizes HR images as the pair trained on them
    (``eval_resize``: shorter side ``resize``; the authors' VOC test images, ``SegmentationPresetEval(520)``)."""

    @property
    def eval_resize(self) -> int:
        return self.trainer.cfg.resize_to

    @property
    def hr_view(self) -> None:  # type: ignore[override]
        return None

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device)

    def _input(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        from .dense import fit_to

        if x.shape[-2] < size[0] or x.shape[-1] < size[1]:
            x = self.trainer.recognition_input(x)
        return fit_to(x, size)

    def segment(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        with torch.no_grad():
            return self.trainer.task(self._input(x, size))

    def detect(self, x: torch.Tensor, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        with torch.no_grad():
            return self.trainer.task(self._input(x, size))


class SR4IRPair(ModelAdapter):
    """The ``sr4ir`` model entry: a pair is a model in its own right (its task network and classes), so a spec
    names it as its model. Without a ``checkpoint`` it is the pair an ``sr4ir`` method trains (or loads from the
    artifacts); used with no such method it refuses, naming both ways to get one."""

    def __init__(self, task: str = "classification"):
        if task not in TASK_KINDS:
            raise LrbenchError(f"unknown sr4ir task {task!r}; choices: {', '.join(TASK_KINDS)}")
        self.kind = TASK_KINDS[task]  # type: ignore[misc]

    def identity(self) -> dict[str, Any]:
        return {"family": "sr4ir"}

    def _untrained(self, *args: Any) -> Any:
        raise LrbenchError(
            "model 'sr4ir' is an untrained pair: train it with an sr4ir method (methods: [{name: sr4ir, "
            "train: {...}}]) or name a trained one (models: [{sr4ir: {checkpoint: pair.pt}}])"
        )

    prepare = prepare_tensor = classify = segment = detect = _untrained


def sr4ir_kind(checkpoint: str | None = None, task: str = "classification") -> str:
    """The kind of an ``sr4ir`` model entry, from its ``task`` (declared without loading the checkpoint)."""
    if task not in TASK_KINDS:
        raise LrbenchError(f"unknown sr4ir task {task!r}; choices: {', '.join(TASK_KINDS)}")
    return TASK_KINDS[task]


def sr4ir_model(checkpoint: str | None = None, task: str = "classification") -> ModelAdapter:
    """An SR4IR pair for ``task`` (classification, segmentation, detection): a trained one from ``checkpoint`` (a
    ``pair.pt``), or the pair an ``sr4ir`` method trains."""
    if checkpoint is None:
        return SR4IRPair(task)
    state = load_checkpoint(checkpoint)
    cfg = SR4IRConfig.from_dict(state["config"])
    if cfg.task != task:
        raise LrbenchError(f"{checkpoint} is a {cfg.task} pair; name it with task: {cfg.task}")
    return SR4IRMethod.pair_model(SR4IRPair(task), cfg, state, {"name": "sr4ir", "config": asdict(cfg)}, "cpu")


class SR4IRMethod(Method):
    """Train (or load) an SR4IR pair; evaluated with the ``classification`` task on LR conditions."""

    name = "sr4ir"
    stage = "train"

    def __init__(self, train: dict[str, Any] | None = None, checkpoint: str | None = None):
        self.train = dict(train or {})
        self.checkpoint = checkpoint
        self._cfg = SR4IRConfig.from_dict(self.train)

    @staticmethod
    def _training_set(cfg: SR4IRConfig, dataset: Callable[..., Any] | None) -> Any:
        if dataset is None:
            raise LrbenchError("sr4ir needs a training dataset but the run context provides none")
        params = {k: v for k, v in cfg.dataset.items() if k != "name"}
        return dataset(cfg.dataset["name"], **params)

    def _identity(self, cfg: SR4IRConfig, dataset: Callable[..., Any] | None) -> dict[str, Any]:
        """What a trained pair depends on: its resolved config, its training set and, recursively, its ``init``."""
        init = cfg.init_config()
        return {
            "config": cfg.key(),
            "data": self._training_set(cfg, dataset).identity(),
            "init": self._identity(init, dataset) if init else None,
        }

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The resolved config and the training sets' identities (as in the artifact key): other training images or
        other defaults make another pair, so other cells. ``checkpoint`` and ``train.sr_checkpoint`` are hashed with
        the spec entry."""
        if self.checkpoint:
            return {}
        return self._identity(self._cfg, dataset)

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        if self.checkpoint:
            state = load_checkpoint(self.checkpoint)
            cfg = SR4IRConfig.from_dict(state["config"])
            key = None
        else:
            cfg = self._cfg
            key, state = self._train_or_load(cfg, ctx)
        identity = {
            "name": self.name,
            "config": asdict(cfg),
            "artifact": key,
            "checkpoint": None if key else self.checkpoint,
        }
        return self.pair_model(model, cfg, state, identity, ctx.device)

    def produces(self, model_kind: str) -> str:
        """The pair's kind (classifier, segmenter, detector: from ``train.task``) whatever the spec's model: the
        trained pair replaces it. A ``checkpoint`` pair is a classifier unless ``train`` names its task."""
        return self._cfg.kind

    @staticmethod
    def pair_model(
        model: ModelAdapter,
        cfg: SR4IRConfig,
        state: dict[str, Any],
        identity: dict[str, Any],
        device: torch.device | str,
    ) -> "SR4IRClassifier | SR4IRDense":
        """The pair ``state`` holds as a model of its task's kind; its weights come from the state (no pretrained
        download, no SR checkpoint or init pair to read again)."""
        num_classes = state.get("num_classes", len(state["classnames"]))
        trainer = SR4IRTrainer(replace(cfg, task_weights=None, sr_checkpoint=None, init=None), num_classes, device)
        trainer.load_state(state)
        wrapper = SR4IRClassifier if cfg.task == "classification" else SR4IRDense
        return wrapper(model, identity, trainer, state["classnames"]).eval()

    def _train_or_load(self, cfg: SR4IRConfig, ctx: MethodContext) -> tuple[str, dict[str, Any]]:
        """(artifact key, state) of the pair ``cfg`` describes: loaded when stored, else trained (after its ``init``
        pair, itself trained or loaded the same way) and stored."""
        key = content_key({"method": self.name, **self._identity(cfg, ctx.dataset)})
        if ctx.artifacts.exists(self.name, key, "pair.pt"):
            ctx.log.info("sr4ir: loading trained pair %s", key[:12])
            return key, load_checkpoint(ctx.artifacts.path(self.name, key) / "pair.pt")
        init = cfg.init_config()
        init_state = self._train_or_load(init, ctx)[1] if init else None
        dataset = self._training_set(cfg, ctx.dataset)
        images, labels = load_images(dataset, cfg.resize_to, cfg.task)
        ctx.log.info("sr4ir: training %s on %d images (%d epochs)", cfg.mode, len(images), cfg.epochs)
        trainer = SR4IRTrainer(cfg, dataset.num_classes, ctx.device)
        if init_state is not None:
            trainer.load_state(init_state)
        trainer.fit(images, labels)
        state = trainer.state(dataset.classnames)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(ctx.artifacts.path(self.name, key) / "pair.pt", buf.getvalue())
        return key, state
