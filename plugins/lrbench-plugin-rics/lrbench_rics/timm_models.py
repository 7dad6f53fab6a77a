"""A small timm adapter (ResNet-50, ConvNeXt, ViT, DINOv2 features...), for the shift benchmarks of the RICS paper.

``timm:<architecture>[.<pretrained tag>]``: ``pretrained: true`` loads the tag's weights through timm (Hugging Face
hub), ``checkpoint`` a local file (safetensors or a weights-only torch state dict), otherwise the network is
random-initialised from ``seed`` (offline tests). ``kind: classifier`` uses the head (``classify``) and the pooled
pre-logits features (``encode_image``); ``kind: embedder`` drops the head (DINOv2-style features for 1-NN retrieval).

timm is imported when a model is built, not with this module: it costs seconds and every ``lrbench`` command loads the
plugins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from lrbench import (
    Finding,
    LrbenchError,
    ModelAdapter,
    Preprocess,
    file_fingerprint,
    file_sha256,
    hub_snapshot,
    hub_weights,
    load_checkpoint,
    require,
    url_weights,
)

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
        finding = _weights_finding(arch) if pretrained else None
        if finding is not None:  # offline and not cached: one line now, not hub retries and a traceback
            require(finding, f"timm:{arch}")
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


def _pretrained_source(id: str) -> tuple[str, Any] | None:
    """Where timm loads the ``pretrained: true`` weights of ``id`` from, in timm's own order: ``("hf-hub", (repo,
    revision, filename or None))``, ``("url", url)`` or ``("file", path)``; None when timm knows no weights for it."""
    if id.startswith("hf-hub:"):
        repo, _, revision = id[len("hf-hub:") :].partition("@")  # timm's org/name@revision
        return "hf-hub", (repo, revision or None, None)
    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source  # the source timm itself picks, in its order

    cfg = get_pretrained_cfg(id)  # RuntimeError for a tag the architecture does not have
    if cfg is None:
        return None
    source, where = _resolve_pretrained_source(cfg.to_dict())
    if source == "hf-hub":
        ref, filename = where if isinstance(where, tuple) else (where, None)
        repo, _, revision = ref.partition("@")
        return "hf-hub", (repo, revision or None, filename)
    return (source, where) if source in ("url", "file") else None


def _url_file(url: str) -> Path:
    """Where torch's ``load_state_dict_from_url`` (timm's URL loader) keeps a downloaded file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def timm_inputs(id: str, pretrained: bool = False, **_: Any) -> dict[str, Any]:
    """Cell-key inputs of a ``pretrained: true`` entry: the weights timm would load for it, found where timm puts them
    without downloading (the local Hub snapshot, or the file in torch's hub cache for URL weights), so weights
    replaced under the same name recompute. Nothing without ``pretrained`` (a checkpoint parameter is hashed by the
    plan) or before the first download (the name stands for it)."""
    try:
        source = _pretrained_source(id) if pretrained else None
    except RuntimeError:  # an unknown tag: the run fails on it, nothing to key
        return {}
    if source is None:
        return {}
    kind, where = source
    if kind == "hf-hub":
        return hub_snapshot(where[0], where[1])
    path = _url_file(where) if kind == "url" else Path(where).expanduser()
    return {"pretrained_file": file_fingerprint(path)} if path.is_file() else {}


def _weights_finding(id: str) -> Finding | None:
    """Where ``pretrained: true`` weights are: found, will download, or missing offline; None: timm knows none."""
    source = _pretrained_source(id)
    if source is None:
        return None
    kind, where = source
    if kind == "hf-hub":
        repo, revision, filename = where
        names = [filename] if filename else ["model.safetensors", "pytorch_model.bin"]  # timm tries safetensors first
        return hub_weights(repo, names, revision=revision)
    if kind == "url":
        return url_weights(where, _url_file(where).parent)
    path = Path(where).expanduser()
    return Finding(
        "ok" if path.is_file() else "error",
        f"pretrained file {str(path)!r}" + ("" if path.is_file() else " does not exist"),
    )


def timm_check(id: str, pretrained: bool = False, **_: Any) -> list[Finding]:
    """What building a ``timm`` entry would meet, without loading or downloading: with ``pretrained: true``, whether
    timm knows weights for the name and where they are (found, will download, or missing offline)."""
    if not pretrained:
        return []
    try:
        finding = _weights_finding(id)
    except RuntimeError as exc:  # timm's own words for an unknown tag
        return [Finding("error", f"timm: {exc}")]
    if finding is None:
        return [Finding("error", f"timm knows no pretrained weights for {id!r} (timm.list_pretrained() lists them)")]
    return [finding]


def timm_kind(kind: str = "classifier", **_: Any) -> str:
    """The kind a ``timm`` entry builds: its ``kind`` parameter (the registered kind of the entry, for task choice)."""
    if kind not in KINDS:
        raise ValueError(f"timm: unknown kind {kind!r}; choices: {', '.join(KINDS)}")
    return kind
