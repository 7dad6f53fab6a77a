"""A small timm adapter (ResNet-50, ConvNeXt, ViT, DINOv2 features...), for the shift benchmarks of the RICS paper.

``timm:<architecture>[.<pretrained tag>]``: ``pretrained: true`` loads the tag's weights through timm (Hugging Face
hub), ``checkpoint`` a local file (safetensors or a weights-only torch state dict), otherwise the network is
random-initialised from ``seed`` (offline tests). ``kind: classifier`` uses the head (``classify``) and the pooled
pre-logits features (``encode_image``); ``kind: embedder`` drops the head (DINOv2-style features for 1-NN retrieval).

timm is imported when a model is built, not with this module: it costs seconds and every ``lrbench`` command loads the
plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lrbench import LrbenchError, ModelAdapter, Preprocess, file_sha256, load_checkpoint

KINDS = ("classifier", "embedder")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a local file without unpickling code: safetensors, or ``torch.load(weights_only=True)``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"timm checkpoint not found: {path}")
    state = load_checkpoint(path)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            return state[key]
    return state


class TimmAdapter(ModelAdapter):
    """A timm image model as a classifier (logits over its head) or an embedder (pooled features)."""

    def __init__(
        self,
        arch: str,
        pretrained: bool = False,
        checkpoint: str | None = None,
        num_classes: int | None = None,
        image_size: int | None = None,
        kind: str = "classifier",
        seed: int = 0,
        model_args: dict[str, Any] | None = None,
    ):
        import timm

        if kind not in KINDS:
            raise ValueError(f"timm: unknown kind {kind!r}; choices: {', '.join(KINDS)}")
        if pretrained and checkpoint:
            raise ValueError("timm: give either pretrained: true or checkpoint, not both")
        self.kind = kind  # type: ignore[misc]
        args = dict(model_args or {})
        if kind == "embedder":
            args["num_classes"] = 0
        elif num_classes is not None:
            args["num_classes"] = int(num_classes)
        if image_size is not None and "img_size" not in args and _takes_img_size(arch):
            args["img_size"] = int(image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module = timm.create_model(arch, pretrained=bool(pretrained), **args).eval()
        if checkpoint:
            # an embedder has no classifier head: the checkpoint's head keys are the only ones it may leave unused
            result = self.module.load_state_dict(load_state_dict(checkpoint), strict=kind != "embedder")
            if result.missing_keys:
                few = ", ".join(result.missing_keys[:4]) + (" ..." if len(result.missing_keys) > 4 else "")
                raise LrbenchError(
                    f"{checkpoint}: weights do not fit timm {arch}: {len(result.missing_keys)} "
                    f"parameters missing ({few})"
                )
        cfg = timm.data.resolve_model_data_config(self.module)
        self.preprocess = Preprocess(
            image_size=int(image_size or cfg["input_size"][-1]),
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            interpolation=cfg.get("interpolation", "bicubic"),
        )
        if checkpoint:
            weights = f"sha256:{file_sha256(Path(checkpoint).expanduser())}"
        elif pretrained:
            weights = f"pretrained:{self.module.pretrained_cfg.get('tag') or arch}"
        else:
            weights = f"random-init:seed={seed}:timm={timm.__version__}"
        self._identity = {
            "family": "timm",
            "arch": arch,
            "weights": weights,
            "kind": kind,
            "args": args,
            "image_size": self.preprocess.image_size,
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind != "classifier":
            raise NotImplementedError("this timm model is an embedder (kind: embedder): it has no head")
        return self.module(x)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "embedder":
            return self.module(x)
        return self.module.forward_head(self.module.forward_features(x), pre_logits=True)


def _takes_img_size(arch: str) -> bool:
    """Vision transformers fix their input size at construction (``img_size``); convnets take any size."""
    return any(arch.startswith(p) for p in ("vit_", "deit", "eva", "beit", "swin", "cait", "flexivit"))


def timm_model(
    id: str,
    pretrained: bool = False,
    checkpoint: str | None = None,
    num_classes: int | None = None,
    image_size: int | None = None,
    kind: str = "classifier",
    seed: int = 0,
    model_args: dict[str, Any] | None = None,
) -> TimmAdapter:
    """A timm model: ``timm:resnet50.a1_in1k`` (pretrained: true for weights), ``timm:vit_small_patch14_dinov2``..."""
    return TimmAdapter(id, pretrained, checkpoint, num_classes, image_size, kind, seed, model_args)


def timm_kind(kind: str = "classifier", **_: Any) -> str:
    """The kind a ``timm`` entry builds: its ``kind`` parameter (the registered kind of the entry, for task choice)."""
    if kind not in KINDS:
        raise ValueError(f"timm: unknown kind {kind!r}; choices: {', '.join(KINDS)}")
    return kind
