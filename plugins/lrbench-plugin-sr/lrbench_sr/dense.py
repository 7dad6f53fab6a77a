"""Semantic segmentation and object detection: the two other recognition tasks of SR4IR, with their standard metrics.

Protocol (SR4IR's ``src/models/seg/*`` and ``src/models/det/*`` test loops): the HR image is the dataset image (for
segmentation optionally resized, shorter side, as the authors' ``SegmentationPresetEval(base_size=520)``), every
condition degrades it (``srdown@4`` is the authors' on-the-fly LR), the model predicts at the HR image's size and is
scored against the HR ground truth: a per-image confusion matrix (mIoU, pixel accuracy; VOC's ignore index 255) or
the detections and ground-truth boxes (COCO mAP, mAP@0.5 through torchmetrics' ``MeanAveragePrecision`` with the
pycocotools backend).

Model protocol (kinds ``segmenter`` and ``detector``): ``prepare_tensor(x)`` turns a float [0, 1] batch into the
network input (identity for a plain network, super-resolution behind an SR method), then ``segment(x, size)``
returns (B, C, H, W) logits at ``size`` and ``detect(x, size)`` a list of ``{boxes, scores, labels}`` in ``size``'s
pixel coordinates. A plain network given a smaller (LR) input upsamples it bilinearly to ``size`` first: SR4IR's
"LR -> T" (``nn.UpsamplingBilinear2d``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CellMetric,
    CellOutput,
    Dataset,
    Degradation,
    Finding,
    LrbenchError,
    ModelAdapter,
    RunContext,
    Task,
    url_weights,
)

#: VOC's label for object boundaries and unlabelled pixels: scored by neither mIoU nor pixel accuracy
IGNORE_INDEX = 255


# ---------------------------------------------------------------------------------------------------------- images
def resize_item(image: Image.Image, target: Any, size: int | None) -> tuple[Image.Image, Any]:
    """Shorter side to ``size`` (image bilinear; a mask nearest, boxes scaled), as the authors' ``RandomResize``
    with min = max; ``size`` None keeps the item."""
    if size is None:
        return image, target
    w, h = image.size
    image = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR)
    nw, nh = image.size
    if isinstance(target, np.ndarray):
        mask = TF.resize(Image.fromarray(target), size, interpolation=InterpolationMode.NEAREST)
        return image, np.asarray(mask)
    scaled = dict(target)
    scaled["boxes"] = target["boxes"] * np.array([nw / w, nh / h, nw / w, nh / h], dtype=np.float32)
    return image, scaled


def fit_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` (..., h, w) to ``size``: cropped at the bottom/right, or replicate-padded there (an SR output of an
    ``srdown`` LR image covers the HR image's top-left multiple of the scale)."""
    h, w = size
    x = x[..., :h, :w]
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def bilinear_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """SR4IR's "LR -> T" input: bilinear upsampling, align_corners=True (``nn.UpsamplingBilinear2d``)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class _DenseItems(torch.utils.data.Dataset):
    """Loader-worker side: the item's HR image (resized), its target and every condition's degraded image, or the
    error that stopped it."""

    def __init__(self, dataset: Dataset, conditions: Sequence[Degradation], resize: int | None):
        self.dataset, self.conditions, self.resize = dataset, conditions, resize

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, Any, dict[str, torch.Tensor] | str]:
        try:
            image, target = resize_item(self.dataset.load(i).convert("RGB"), self.dataset.target(i), self.resize)  # type: ignore[attr-defined]
        except Exception as exc:  # an unreadable item is skipped and listed, as the core's loaders do
            return i, None, f"{type(exc).__name__}: {exc}"
        size = (image.size[1], image.size[0])
        inputs = {d.condition: TF.to_tensor(d.pil(image)) for d in self.conditions}
        return i, (size, target), inputs


def dense_items(dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext, resize: int | None) -> Any:
    """Yield ``(index, (height, width), target, {condition: (1, 3, h, w) input})`` per readable item; unreadable
    items go to ``ctx.skipped``. One item at a time: dense datasets mix image sizes (VOC, COCO)."""
    if not hasattr(dataset, "target"):
        raise LrbenchError(
            f"dataset {dataset.name!r} ({dataset.task}) has no per-item ground truth (target): "
            "it is not a segmentation or detection dataset"
        )
    loader = DataLoader(
        _DenseItems(dataset, conditions, resize),
        batch_size=None,
        num_workers=ctx.num_workers if len(dataset) > 1 else 0,
        shuffle=False,
    )
    for i, meta, inputs in loader:
        ctx.progress(1)
        if isinstance(inputs, str):
            ctx.skipped.append({"dataset": dataset.name, "index": i, "item": dataset.item_id(i), "error": inputs})
            ctx.log.warning("skipping %s item %s: %s", dataset.name, dataset.item_id(i), inputs)
            continue
        size, target = meta
        yield i, size, target, {c: x[None] for c, x in inputs.items()}


# ------------------------------------------------------------------------------------------------- segmentation
def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = ground truth, columns = prediction, over the pixels whose label is a class (the
    ignore index and any other value outside [0, C) are left out), as torchmetrics' ``multiclass_confusion_matrix``
    with ``ignore_index`` (SR4IR's ``calculate_mat``: ``src/utils/seg/metrics.py``:8-11)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    target = target.long()
    valid = (target >= 0) & (target < num_classes)
    target = torch.where(valid, target, torch.full_like(target, IGNORE_INDEX))
    m = multiclass_confusion_matrix(
        pred.flatten(), target.flatten(), num_classes, ignore_index=IGNORE_INDEX, validate_args=False
    )
    return m.cpu().numpy().astype(np.int64)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class from a summed confusion matrix: TP / (TP + FP + FN); NaN for a class that is neither in
    the ground truth nor predicted (SR4IR's ``compute_iou``, ``src/utils/seg/metrics.py``:14-17)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth or the predictions."""
    iou = iou_per_class(matrix)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


class _DenseTask(Task):
    """What segmentation and detection share: the HR image's size and one pass of the model over every item."""

    def __init__(self, resize: int | None = None):
        #: shorter side of the HR image (the authors' VOC segmentation protocol: 520); None: the model's
        #: ``eval_resize``, else the dataset image as it is (the authors' detection protocol)
        self.resize = resize

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "resize": self.resize}

    def predictions(
        self,
        model: ModelAdapter,
        dataset: Dataset,
        conditions: Sequence[Degradation],
        ctx: RunContext,
        predict: Callable[[torch.Tensor, tuple[int, int]], Any],
    ) -> Any:
        """Yield ``(index, target, {condition: predict(input, HR size)})`` per readable item (no autograd, the run's
        autocast)."""
        resize = self.resize if self.resize is not None else getattr(model, "eval_resize", None)
        for i, size, target, inputs in dense_items(dataset, conditions, ctx, resize):
            out = {}
            for cond, x in inputs.items():
                with torch.no_grad(), ctx.autocast():
                    out[cond] = predict(model.prepare_tensor(x.to(model.device)), size)
            yield i, target, out


class Segmentation(_DenseTask):
    """Semantic segmentation: per-image confusion matrices at the HR ground truth's size -> mIoU, pixel accuracy."""

    name = "segmentation"
    dataset_task = "segmentation"
    model_kinds = ("segmenter",)
    default_metrics = ("miou", "pixel_acc")
    outputs = ("confusion",)
    headline_metric = "miou"
    #: LR0.FM's aggregates are defined on top-1 accuracy; none apply to mIoU
    default_aggregates = ()
    version = "1"

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        c = dataset.num_classes
        mats: dict[str, list[np.ndarray]] = {d.condition: [] for d in conditions}
        seen: list[int] = []
        for i, target, out in self.predictions(model, dataset, conditions, ctx, model.segment):
            seen.append(i)
            gt = torch.as_tensor(np.asarray(target), dtype=torch.long)
            for cond, logits in out.items():
                if logits.shape[1] != c:
                    raise LrbenchError(
                        f"the model predicts {logits.shape[1]} classes, dataset {dataset.name!r} has {c} "
                        "(background included)"
                    )
                mats[cond].append(confusion(logits.argmax(1)[0].cpu(), gt, c))
        index = np.asarray(seen, dtype=np.int64)
        return {
            cond: CellOutput(index, len(index), {"confusion": np.stack(m) if m else np.zeros((0, c, c), np.int64)})
            for cond, m in mats.items()
        }


class SegmentationMetric(CellMetric):
    tasks = ("segmentation",)

    def __init__(self, fn: Callable[[np.ndarray], float]):
        self.fn = fn

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float:
        m = outputs["confusion"]
        return self.fn(m.sum(0)) if len(m) else float("nan")


def miou_metric() -> SegmentationMetric:
    """Mean IoU over classes of the dataset's summed confusion matrix (classes absent from both left out)"""
    return SegmentationMetric(mean_iou)


def pixel_acc_metric() -> SegmentationMetric:
    """Pixel accuracy: correctly labelled pixels over all scored pixels (ignore index left out)"""
    return SegmentationMetric(pixel_accuracy)


# ---------------------------------------------------------------------------------------------------- detection
DETECTION_OUTPUTS = ("boxes", "scores", "labels", "image", "gt_boxes", "gt_labels", "gt_crowd", "gt_image")


class Detection(_DenseTask):
    """Object detection: every detection and ground-truth box of every image -> COCO mAP and mAP@0.5."""

    name = "detection"
    dataset_task = "detection"
    model_kinds = ("detector",)
    default_metrics = ("map", "map50")
    outputs = DETECTION_OUTPUTS
    headline_metric = "map"
    #: LR0.FM's aggregates are defined on top-1 accuracy; none apply to mAP
    default_aggregates = ()
    version = "1"

    def run(
        self, model: ModelAdapter, dataset: Dataset, conditions: Sequence[Degradation], ctx: RunContext
    ) -> dict[str, CellOutput]:
        preds: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {d.condition: [] for d in conditions}
        gts: list[tuple[int, dict[str, np.ndarray]]] = []
        seen: list[int] = []
        for i, target, out in self.predictions(model, dataset, conditions, ctx, model.detect):
            pos = len(seen)
            seen.append(i)
            gts.append((pos, target))
            for cond, dets in out.items():
                preds[cond].append((pos, {k: v.float().cpu().numpy() for k, v in dets[0].items()}))
        index = np.asarray(seen, dtype=np.int64)
        gt_arrays = {
            "gt_boxes": _cat([t["boxes"] for _, t in gts], (0, 4), np.float32),
            "gt_labels": _cat([t["labels"] for _, t in gts], (0,), np.int64),
            "gt_crowd": _cat([t.get("iscrowd", np.zeros(len(t["labels"]), bool)) for _, t in gts], (0,), bool),
            "gt_image": _cat([np.full(len(t["labels"]), p) for p, t in gts], (0,), np.int64),
        }
        out = {}
        for cond, items in preds.items():
            arrays = {
                "boxes": _cat([d["boxes"] for _, d in items], (0, 4), np.float32),
                "scores": _cat([d["scores"] for _, d in items], (0,), np.float32),
                "labels": _cat([d["labels"] for _, d in items], (0,), np.int64),
                "image": _cat([np.full(len(d["scores"]), p) for p, d in items], (0,), np.int64),
            }
            out[cond] = CellOutput(index, len(index), {**arrays, **gt_arrays})
        return out


def _cat(parts: list[np.ndarray], empty: tuple[int, ...], dtype: Any) -> np.ndarray:
    parts = [np.asarray(p, dtype=dtype).reshape((-1, *empty[1:])) for p in parts]
    return np.concatenate(parts) if parts else np.zeros(empty, dtype)


def mean_average_precision(outputs: dict[str, np.ndarray], n_images: int) -> dict[str, float]:
    """COCO mAP (IoU 0.50:0.95) and mAP@0.5 of a detection cell through torchmetrics' MeanAveragePrecision."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
    preds, targets = [], []
    for p in range(n_images):
        d, g = outputs["image"] == p, outputs["gt_image"] == p
        preds.append(
            {
                "boxes": torch.from_numpy(outputs["boxes"][d]).float(),
                "scores": torch.from_numpy(outputs["scores"][d]).float(),
                "labels": torch.from_numpy(outputs["labels"][d]).long(),
            }
        )
        targets.append(
            {
                "boxes": torch.from_numpy(outputs["gt_boxes"][g]).float(),
                "labels": torch.from_numpy(outputs["gt_labels"][g]).long(),
                "iscrowd": torch.from_numpy(outputs["gt_crowd"][g]).long(),
            }
        )
    metric.update(preds, targets)
    result = metric.compute()
    return {"map": float(result["map"]), "map50": float(result["map_50"])}


class DetectionMetric(CellMetric):
    tasks = ("detection",)

    def __init__(self, key: str):
        self.key = key

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float:
        n = int(outputs["n"])
        if n == 0:
            return float("nan")
        value = mean_average_precision(outputs, n)[self.key]
        return value if value >= 0 else float("nan")  # torchmetrics' -1: no ground truth at all


def map_metric() -> DetectionMetric:
    """COCO mAP: average precision over IoU 0.50:0.05:0.95, classes and (up to 100) detections per image"""
    return DetectionMetric("map")


def map50_metric() -> DetectionMetric:
    """mAP at IoU 0.5 (PASCAL VOC's threshold), COCO's 101-point interpolation"""
    return DetectionMetric("map50")


# ------------------------------------------------------------------------------------------ torchvision networks
class Normalized(nn.Module):
    """ImageNet normalisation in front of a network, so it takes [0, 1] images (the authors' ``normalize``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> Any:
        return self.net((x - self.mean) / self.std)


def _backbone_weights(arch: str) -> Any:
    import torchvision

    for name, enum in (
        ("mobilenet_v3_large", torchvision.models.MobileNet_V3_Large_Weights),
        ("resnet50", torchvision.models.ResNet50_Weights),
        ("resnet101", torchvision.models.ResNet101_Weights),
    ):
        if name in arch:
            return enum
    raise LrbenchError(f"no known backbone weights for {arch}")


def build_torchvision(
    arch: str,
    weights: str | None = None,
    weights_backbone: str | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A torchvision segmentation or detection network; ``weights`` / ``weights_backbone`` are torchvision tags
    (``COCO_WITH_VOC_LABELS_V1``, ``IMAGENET1K_V1``), read from the torch hub cache and never fetched silently:
    offline, a missing file is refused with its name and folder."""
    import torchvision

    try:
        w = torchvision.models.get_model_weights(arch)[weights] if weights else None
        wb = _backbone_weights(arch)[weights_backbone] if weights_backbone else None
    except (KeyError, ValueError) as exc:
        raise LrbenchError(f"unknown weights for {arch}: {exc}") from None
    try:
        return torchvision.models.get_model(arch, weights=w, weights_backbone=wb, num_classes=num_classes, **kwargs)
    except ValueError as exc:
        raise LrbenchError(f"{arch}: {exc}") from None
    except Exception as exc:  # offline: the file is not in the hub cache and cannot be fetched
        missing = w or wb
        raise LrbenchError(
            f"the {arch} weights are not available ({type(exc).__name__}: {exc}). Put "
            f"{missing.url.rsplit('/', 1)[-1]} (from {missing.url}) in {torch.hub.get_dir()}/checkpoints"
        ) from None


class _TorchvisionDense(ModelAdapter):
    """A torchvision segmentation / detection network as an lrbench model (random weights only when asked)."""

    def __init__(
        self,
        id: str,
        pretrained: str | None = None,
        pretrained_backbone: str | None = None,
        num_classes: int | None = None,
        random_init: bool = False,
        kwargs: dict[str, Any] | None = None,
    ):
        kwargs = dict(kwargs or {})
        if not pretrained and not random_init:
            raise LrbenchError(
                f"model {id!r} needs pretrained weights (a torchvision tag such as "
                f"{'COCO_WITH_VOC_LABELS_V1' if self.kind == 'segmenter' else 'COCO_V1'}) or random_init: true "
                "(tests only: its outputs are meaningless)"
            )
        self.arch, self.pretrained, self.pretrained_backbone = id, pretrained, pretrained_backbone
        self.num_classes, self.random_init, self.kwargs = num_classes, random_init, kwargs
        net = build_torchvision(id, pretrained, pretrained_backbone, num_classes, **kwargs)
        self.module = Normalized(net) if self.kind == "segmenter" else net
        self.module.eval()

    def identity(self) -> dict[str, Any]:
        return {
            "family": "torchvision",
            "arch": self.arch,
            "pretrained": self.pretrained or "random-init",
            "num_classes": self.num_classes,
            **self.kwargs,
        }

    def prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device)

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([TF.to_tensor(im.convert("RGB")) for im in images]).to(self.device)


class TorchvisionSegmenter(_TorchvisionDense):
    """``torchvision-seg:<arch>`` (deeplabv3_mobilenet_v3_large, ...): (B, C, H, W) logits at the HR size."""

    kind = "segmenter"

    def __init__(
        self,
        id: str,
        pretrained: str | None = None,
        pretrained_backbone: str | None = None,
        num_classes: int | None = None,
        random_init: bool = False,
    ):
        super().__init__(id, pretrained, pretrained_backbone, num_classes, random_init)

    def segment(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.module(bilinear_to(x, size))["out"]


class TorchvisionDetector(_TorchvisionDense):
    """``torchvision-det:<arch>`` (fasterrcnn_mobilenet_v3_large_fpn, ...): detections in HR pixel coordinates.
    ``min_size`` / ``max_size``: the network's own input resizing (torchvision's defaults 800 / 1333)."""

    kind = "detector"

    def __init__(
        self,
        id: str,
        pretrained: str | None = None,
        pretrained_backbone: str | None = None,
        num_classes: int | None = None,
        random_init: bool = False,
        min_size: int = 800,
        max_size: int = 1333,
    ):
        super().__init__(
            id, pretrained, pretrained_backbone, num_classes, random_init, {"min_size": min_size, "max_size": max_size}
        )

    def detect(self, x: torch.Tensor, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        return self.module(list(bilinear_to(x, size)))


def check_torchvision(
    id: str, pretrained: str | None = None, pretrained_backbone: str | None = None, **_: Any
) -> list[Finding]:
    """What ``validate`` / ``--dry-run`` report for a torchvision entry: each named weights file found in the torch
    hub cache, to download, or an unknown tag; nothing is built or fetched."""
    import torchvision

    out = []
    try:
        for tag, enum in (
            (pretrained, lambda: torchvision.models.get_model_weights(id)),
            (pretrained_backbone, lambda: _backbone_weights(id)),
        ):
            if tag:
                out.append(url_weights(enum()[tag].url, Path(torch.hub.get_dir()) / "checkpoints"))
    except (KeyError, ValueError) as exc:
        out.append(Finding("error", f"unknown weights for {id}: {exc}"))
    return out
