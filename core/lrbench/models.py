"""Model adapters: the small protocol every model family implements.

An adapter owns its preprocessing (input size, mean/std, interpolation, crop) because the LR0.FM protocol applies the
model's *own* preprocessing after degrading: the runner hands it degraded images and the adapter turns them into a
normalized input batch (``prepare`` for PIL images, the reference path; ``prepare_tensor`` for batched float tensors,
the fast path). Methods wrap adapters (:class:`ModelWrapper`), so SR or crop selection need no change to the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Sequence

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERP = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
    "box": InterpolationMode.BOX,
    "lanczos": InterpolationMode.LANCZOS,
}


def shorter_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing an h x w image so its shorter side is ``size``: torchvision's Resize(size)
    arithmetic (the longer side truncated), so the fast path can compute the reference's sizes without resizing."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def interpolation_mode(name: str) -> InterpolationMode:
    try:
        return _INTERP[name]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; choices: {', '.join(_INTERP)}") from None


@dataclass(frozen=True)
class Preprocess:
    """A model's own input transform: resize (shorter side, or squash to a square), center crop, normalize."""

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # "shortest": shorter side to image_size then center crop; "squash": both sides

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _size(self) -> int | list[int]:
        return self.image_size if self.resize_mode == "shortest" else [self.image_size, self.image_size]

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """The (height, width) its resize gives an h x w image, before the crop."""
        if self.resize_mode == "shortest":
            return shorter_side_size(h, w, self.image_size)
        return self.image_size, self.image_size

    def tensor_interpolation(self) -> str:
        """The interpolation ``tensor`` resizes with (torch has no antialiased box or lanczos: bilinear for those)."""
        return self.interpolation if self.interpolation in ("bicubic", "bilinear", "nearest") else "bilinear"

    def pil(self, image: Image.Image) -> torch.Tensor:
        """Reference path: exactly torchvision's Resize(size, interp) + CenterCrop + ToTensor + Normalize on PIL."""
        image = TF.resize(image.convert("RGB"), self._size(), interpolation=interpolation_mode(self.interpolation))
        image = TF.center_crop(image, [self.image_size, self.image_size])
        return TF.normalize(TF.to_tensor(image), self.mean, self.std)

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: the same transform on a float [0, 1] batch (B, 3, H, W) on any device (antialiased resize)."""
        h, w = x.shape[-2:]
        size = self.image_size
        needs_resize = min(h, w) != size if self.resize_mode == "shortest" else (h, w) != (size, size)
        if needs_resize:
            mode = self.tensor_interpolation()
            x = TF.resize(x, self._size(), interpolation=_INTERP[mode], antialias=mode != "nearest")
            x = x.clamp(0, 1)  # bicubic overshoots; PIL clips to 8 bits, so do we
        x = TF.center_crop(x, [size, size])
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class HRView:
    """The HR image a model's protocol degrades, made from the dataset image before any condition: ``Resize(resize)``
    (shorter side) + ``CenterCrop(crop)`` on the PIL image. SR benchmarks degrade such a fixed crop (SR4IR tests on
    Resize 256 + CenterCrop 224, bilinear), where LR0.FM degrades the dataset image itself (no view)."""

    resize: int
    crop: int
    interpolation: str = "bilinear"

    def pil(self, image: Image.Image) -> Image.Image:
        image = TF.resize(image.convert("RGB"), self.resize, interpolation=interpolation_mode(self.interpolation))
        return TF.center_crop(image, [self.crop, self.crop])


class ModelAdapter:
    """Base class of model adapters.

    ``kind`` says which protocol the adapter implements:

    - ``"zero-shot"``: ``encode_image(x)`` and ``encode_text(texts)`` return (unnormalized) embeddings; ``logit_scale``.
    - ``"classifier"``: ``classify(x)`` returns logits over ``classnames``.
    - ``"embedder"``: ``encode_image(x)`` returns an embedding (faces, 1-NN retrieval).

    ``module`` is the underlying ``torch.nn.Module`` (methods such as LR tokens inspect it); ``identity()`` names the
    weights so cached outputs are keyed by content.
    """

    kind: ClassVar[str] = "zero-shot"
    preprocess: Preprocess = Preprocess()
    module: torch.nn.Module | None = None
    logit_scale: float = 100.0
    classnames: Sequence[str] | None = None
    device: torch.device = torch.device("cpu")
    #: the HR image conditions act on; None: the dataset image itself (the LR0.FM protocol)
    hr_view: HRView | None = None

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def to(self, device: str | torch.device) -> "ModelAdapter":
        self.device = torch.device(device)
        if self.module is not None:
            self.module.to(self.device)
        return self

    def eval(self) -> "ModelAdapter":
        if self.module is not None:
            self.module.eval()
        return self

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Reference path: PIL images (already degraded) -> normalized input batch on the model's device."""
        return torch.stack([self.preprocess.pil(im) for im in images]).to(self.device)

    def plain_preprocess(self) -> Preprocess | None:
        """``preprocess`` when ``prepare`` and ``prepare_tensor`` are exactly it, so the image pipeline may run it in the
        loader workers (it is picklable, the model is not); None when a subclass changes them (a network, an aligner)."""
        cls = type(self)
        if cls.prepare is ModelAdapter.prepare and cls.prepare_tensor is ModelAdapter.prepare_tensor:
            return self.preprocess
        return None

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: float [0, 1] batch (already degraded, any size) -> normalized input batch."""
        return self.preprocess.tensor(x.to(self.device))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no image encoder")

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is not a zero-shot model")

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is not a classifier")


class ModelWrapper(ModelAdapter):
    """An adapter that delegates to another; methods subclass it and override what they change."""

    def __init__(self, inner: ModelAdapter, method_identity: dict[str, Any]):
        self.inner = inner
        self.method_identity = method_identity

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.inner.kind

    def identity(self) -> dict[str, Any]:
        return {"base": self.inner.identity(), "method": self.method_identity}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def to(self, device: str | torch.device) -> "ModelWrapper":
        self.inner.to(device)
        return self

    def eval(self) -> "ModelWrapper":
        self.inner.eval()
        return self

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.inner.device

    @property
    def preprocess(self) -> Preprocess:  # type: ignore[override]
        return self.inner.preprocess

    @property
    def module(self) -> torch.nn.Module | None:  # type: ignore[override]
        return self.inner.module

    @property
    def hr_view(self) -> HRView | None:  # type: ignore[override]
        return self.inner.hr_view

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.inner.prepare(images)

    def plain_preprocess(self) -> Preprocess | None:
        cls = type(self)
        if cls.prepare is ModelWrapper.prepare and cls.prepare_tensor is ModelWrapper.prepare_tensor:
            return self.inner.plain_preprocess()
        return None

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.prepare_tensor(x)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_image(x)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.inner.encode_text(texts)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.classify(x)
