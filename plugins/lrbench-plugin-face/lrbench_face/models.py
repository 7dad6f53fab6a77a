"""Face embedder adapters: ArcFace-style IResNet, facenet-pytorch InceptionResnetV1 (+ MTCNN), any timm backbone.

All are ``kind = "embedder"``: ``encode_image`` returns an (unnormalised) embedding; with ``flip=True`` it returns the
sum of the embeddings of the image and its horizontal mirror (the usual "flip test").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import torch
from PIL import Image
from torch import nn

from lrbench import (
    Finding,
    LrbenchError,
    ModelAdapter,
    Preprocess,
    file_fingerprint,
    file_sha256,
    file_sha256_memo,
    hub_snapshot,
    hub_weights,
    load_checkpoint,
    require,
    url_weights,
)

from .iresnet import DEPTHS, IResNet

#: ArcFace / insightface convention: (x - 127.5) / 127.5 on 112 x 112 aligned crops
ARCFACE_PREPROCESS = Preprocess(
    image_size=112, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic", resize_mode="squash"
)
#: facenet-pytorch's fixed_image_standardization: (x - 127.5) / 128 on 160 x 160 crops
FACENET_PREPROCESS = Preprocess(
    image_size=160, mean=(0.5, 0.5, 0.5), std=(128 / 255,) * 3, interpolation="bicubic", resize_mode="squash"
)


def flip_embed(encode: Any, x: torch.Tensor) -> torch.Tensor:
    """Flip test: embedding of the image plus embedding of its mirror image."""
    return encode(x) + encode(torch.flip(x, dims=[-1]))


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a .safetensors or a torch file (``weights_only=True``: no code runs); unwraps ``state_dict`` /
    ``model`` / ``backbone`` wrappers and a ``module.`` prefix from DataParallel training."""
    path = Path(path).expanduser()
    state = load_checkpoint(path)
    for key in ("state_dict", "model", "backbone"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise LrbenchError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load every parameter of ``net`` from ``state`` or raise one line naming what did not fit (a partly loaded
    network would run with random layers and exit 0)."""
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [
            f"{what} {len(keys)}: {few(keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        ]
        raise LrbenchError(f"{source}: weights do not fit {type(net).__name__} ({'; '.join(parts)})")
    net.load_state_dict(state, strict=True)


class FaceEmbedder(ModelAdapter):
    """A face network mapping a normalised (B, 3, S, S) batch to embeddings."""

    kind = "embedder"

    def __init__(
        self,
        module: nn.Module,
        preprocess: Preprocess,
        identity: dict[str, Any],
        flip: bool = False,
        embedding_size: int = 512,
    ):
        self.module = module.eval()
        self.preprocess = preprocess
        self._identity = identity
        self.flip = bool(flip)
        self.embedding_size = embedding_size
        self.device = torch.device("cpu")

    def identity(self) -> dict[str, Any]:
        return {**self._identity, "flip": self.flip, "preprocess": self.preprocess.as_dict()}

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        assert self.module is not None
        return flip_embed(self.module, x) if self.flip else self.module(x)


def _weights_identity(weights: str | None) -> dict[str, Any]:
    return {"weights_file": str(weights), "sha256": file_sha256(Path(weights).expanduser())} if weights else {}


def face_iresnet(
    id: str = "r50",
    weights: str | None = None,
    embedding_size: int = 512,
    base_width: int = 64,
    image_size: int = 112,
    layers: list[int] | None = None,
    flip: bool = False,
) -> FaceEmbedder:
    """ArcFace-style IResNet-18/34/50/100 (``face-iresnet:r50``); ``weights``: an insightface backbone.pth or a
    .safetensors file (random init without it; ``base_width``, ``image_size`` and ``layers`` (blocks per stage,
    replacing the depth of ``id``) make small variants for tests and toy runs)."""
    if id not in DEPTHS:
        raise LrbenchError(f"face-iresnet: unknown architecture {id!r}; choices: {', '.join(DEPTHS)}")
    if layers is not None and (len(layers) != 4 or min(layers) < 1):
        raise LrbenchError(f"face-iresnet: layers must be 4 positive block counts, got {layers}")
    net = IResNet(
        tuple(layers) if layers else DEPTHS[id],
        embedding_size=embedding_size,
        base_width=base_width,
        image_size=image_size,
    )
    if weights:
        load_strict(net, load_state_dict_file(weights), weights)
    pre = Preprocess(**{**ARCFACE_PREPROCESS.as_dict(), "image_size": image_size})
    ident = {
        "family": "face-iresnet",
        "arch": id,
        "layers": list(layers) if layers else None,
        "embedding_size": embedding_size,
        "base_width": base_width,
        "image_size": image_size,
        **(_weights_identity(weights) or {"weights": "random-init"}),
    }
    return FaceEmbedder(net, pre, ident, flip, embedding_size)


class FacenetEmbedder(FaceEmbedder):
    """InceptionResnetV1 with optional MTCNN alignment on the PIL reference path."""

    def __init__(self, *args: Any, mtcnn: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mtcnn = mtcnn

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if self.mtcnn is None:
            return super().prepare(images)
        out = []
        for im in images:
            # MTCNN returns the aligned crop already standardised; when it finds no face the whole image is used
            face = self.mtcnn(im.convert("RGB"))
            out.append(face if face is not None else self.preprocess.pil(im))
        return torch.stack(out).to(self.device)


#: the files facenet-pytorch downloads for its named weights (facenet_pytorch.models.inception_resnet_v1.load_weights)
FACENET_FILES = {"vggface2": "20180402-114759-vggface2.pt", "casia-webface": "20180408-102900-casia-webface.pt"}


#: where facenet-pytorch downloads them from (``load_weights``)
FACENET_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"


def facenet_check(id: str = "vggface2", **_: Any) -> list[Finding]:
    """What building a named facenet model would meet, without downloading: its weights file in torch's hub cache
    (found, will download, or missing offline with the URL and the path to put it at)."""
    if id not in FACENET_FILES:
        return []
    try:
        from facenet_pytorch.models.inception_resnet_v1 import get_torch_home
    except ImportError:
        return [Finding("error", "facenet models need facenet-pytorch: pip install facenet-pytorch")]
    return [url_weights(FACENET_RELEASE + FACENET_FILES[id], Path(get_torch_home()) / "checkpoints")]


def facenet_inputs(id: str = "vggface2", **params: Any) -> dict[str, Any]:
    """What a named facenet model reads without naming it: the weights file in torch's hub cache, by sha256 once it
    is there, so a replaced file is a new cell (before the first download the name stands for it)."""
    if id not in FACENET_FILES:
        return {}
    try:
        from facenet_pytorch.models.inception_resnet_v1 import get_torch_home
    except ImportError:
        return {}
    path = Path(get_torch_home()) / "checkpoints" / FACENET_FILES[id]
    return {"weights_sha256": file_sha256_memo(path)} if path.is_file() else {}


def facenet(
    id: str = "vggface2",
    weights: str | None = None,
    align: bool = False,
    flip: bool = False,
    num_classes: int | None = None,
) -> FacenetEmbedder:
    """facenet-pytorch InceptionResnetV1 (``facenet:vggface2`` / ``facenet:casia-webface`` download their weights at
    first use into torch's hub cache; ``facenet:file`` with ``weights`` loads a local state dict); ``align`` runs MTCNN
    (its weights ship in the wheel) on the reference path."""
    try:
        from facenet_pytorch import MTCNN, InceptionResnetV1
    except ImportError as exc:
        raise LrbenchError("facenet models need facenet-pytorch: pip install facenet-pytorch") from exc
    choices = ("vggface2", "casia-webface", "file")
    if id not in choices:
        raise LrbenchError(f"facenet: unknown weights {id!r}; choices: {', '.join(choices)}")
    if id == "file":
        if not weights:
            raise LrbenchError("facenet:file needs weights: <path to a state dict>")
        net = InceptionResnetV1(pretrained=None, classify=False, num_classes=num_classes)
        state = load_state_dict_file(weights)
        if not hasattr(net, "logits"):  # the training classifier head: not part of the embedding network
            state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        load_strict(net, state, weights)
        ident: dict[str, Any] = {"family": "facenet", **_weights_identity(weights)}
    else:
        for finding in facenet_check(id):  # offline and not downloaded: one line now, not a urllib traceback
            require(finding, f"facenet:{id}")
        net = InceptionResnetV1(pretrained=id, classify=False)
        ident = {"family": "facenet", "weights": id}
    mtcnn = MTCNN(image_size=160, margin=0, post_process=True) if align else None
    ident["align"] = bool(align)
    return FacenetEmbedder(net, FACENET_PREPROCESS, ident, flip, 512, mtcnn=mtcnn)


class TimmEmbedding(nn.Module):
    """A timm trunk (pooled features) followed by the ArcFace embedding head: Linear + BatchNorm1d."""

    def __init__(self, trunk: nn.Module, embedding_size: int):
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(trunk.num_features, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(self.trunk(x)))


def _timm_source(id: str) -> tuple[str, Any] | None:
    """Where timm loads the ``pretrained: true`` trunk weights of ``id`` from, in timm's own order: ``("hf-hub", (repo,
    revision, filename or None))``, ``("url", url)`` or ``("file", path)``; None when timm knows no weights for it
    (RuntimeError for a tag the architecture does not have)."""
    if id.startswith("hf-hub:"):
        repo, _, revision = id[len("hf-hub:") :].partition("@")  # timm's org/name@revision
        return "hf-hub", (repo, revision or None, None)
    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source  # the source timm itself picks, in its order

    cfg = get_pretrained_cfg(id)
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


def face_timm_inputs(id: str, pretrained: bool = False, **_: Any) -> dict[str, Any]:
    """Cell-key inputs of a ``face-timm`` entry with ``pretrained: true``: the trunk weights timm would load, found
    where timm puts them without downloading (the local Hub snapshot, or the file in torch's hub cache for URL
    weights), so weights replaced under the same name recompute; nothing before the first download."""
    try:
        source = _timm_source(id) if pretrained else None
    except RuntimeError:  # an unknown tag: the run fails on it, nothing to key
        return {}
    if source is None:
        return {}
    kind, where = source
    if kind == "hf-hub":
        return hub_snapshot(where[0], where[1])
    path = _url_file(where) if kind == "url" else Path(where).expanduser()
    return {"pretrained_file": file_fingerprint(path)} if path.is_file() else {}


def _timm_weights(id: str) -> Finding | None:
    """Where ``pretrained: true`` trunk weights are: found, will download, or missing offline; None: timm knows none."""
    source = _timm_source(id)
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


def face_timm_check(id: str, pretrained: bool = False, **_: Any) -> list[Finding]:
    """What building a ``face-timm`` entry would meet, without loading or downloading: with ``pretrained: true``,
    whether timm knows trunk weights for the name and where they are (found, will download, or missing offline)."""
    if not pretrained:
        return []
    try:
        finding = _timm_weights(id)
    except RuntimeError as exc:  # timm's own words for an unknown tag
        return [Finding("error", f"timm: {exc}")]
    if finding is None:
        return [Finding("error", f"timm knows no pretrained weights for {id!r} (timm.list_pretrained() lists them)")]
    return [finding]


def face_timm(
    id: str,
    pretrained: bool = False,
    weights: str | None = None,
    embedding_size: int = 512,
    image_size: int = 112,
    flip: bool = False,
) -> FaceEmbedder:
    """Any timm backbone with an embedding head (``face-timm:resnet50``); ``pretrained`` fetches timm's ImageNet weights
    for the trunk (a download), ``weights`` loads a whole trained embedder (trunk + head)."""
    try:
        import timm
    except ImportError as exc:
        raise LrbenchError("face-timm models need timm: pip install timm") from exc
    finding = _timm_weights(id) if pretrained else None
    if finding is not None:  # offline and not cached: one line now, not hub retries and a traceback
        require(finding, f"face-timm:{id}")
    try:
        trunk = timm.create_model(id, pretrained=pretrained, num_classes=0)
    except RuntimeError as exc:  # timm's unknown-model error
        raise LrbenchError(f"face-timm: {exc}") from exc
    net = TimmEmbedding(trunk, embedding_size)
    if weights:
        load_strict(net, load_state_dict_file(weights), weights)
    ident = {
        "family": "face-timm",
        "arch": id,
        "pretrained": pretrained,
        "embedding_size": embedding_size,
        **_weights_identity(weights),
    }
    pre = Preprocess(**{**ARCFACE_PREPROCESS.as_dict(), "image_size": image_size})
    return FaceEmbedder(net, pre, ident, flip, embedding_size)
