"""Segmentation and detection datasets: PASCAL VOC and COCO through torchvision, and the toy world with the exact
mask and box of its shape (offline).

A dense dataset is an lrbench ``Dataset`` whose ``task`` is ``segmentation`` or ``detection`` and whose
``target(i)`` gives the item's ground truth: an (H, W) uint8 class map (255: ignored) or ``{boxes: (N, 4) float32
xyxy pixels, labels: (N,) int64, iscrowd: (N,) bool}``. Detection labels follow torchvision's detectors: 1..K, 0 is
the background; segmentation class 0 is the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lrbench import Dataset, DatasetRootError, Limit, LrbenchError, PluginContext, to_rgb

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

VOC_LAYOUT = """  ROOT/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
  ROOT/VOCdevkit/VOC2012/SegmentationClass/<id>.png
  ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
(torchvision's VOCSegmentation layout; download VOCtrainval_11-May-2012.tar yourself: lrbench never downloads it)"""

COCO_LAYOUT = """  ROOT/{split}{year}/<file_name>.jpg
  ROOT/annotations/instances_{split}{year}.json
(COCO's own layout; or name the files with images: and annotations:. A PASCAL VOC detection set converted to COCO's
format, as SR4IR's datasets/VOC_COCO, loads the same way)"""


def _head(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, int(limit))


class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 semantic segmentation (21 classes, boundaries 255) through torchvision, never downloaded."""

    task = "segmentation"
    classnames = VOC_CLASSES

    def __init__(self, root: str, split: str = "val", limit: Limit | None = None):
        from torchvision.datasets import VOCSegmentation as TV

        base = Path(root).expanduser() / "VOCdevkit" / "VOC2012"
        lst = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        for need in (base / "JPEGImages", base / "SegmentationClass", lst):
            if not need.exists():
                raise DatasetRootError("voc-seg", root, f"{need} is missing", VOC_LAYOUT)
        self.name, self.root, self.split, self._limit = "voc-seg", Path(root).expanduser(), split, limit
        self._tv = TV(str(self.root), year="2012", image_set=split, download=False)
        self.n = _head(len(self._tv.images), limit)
        self.labels = np.zeros(self.n, np.int64)

    def __len__(self) -> int:
        return self.n

    def item_id(self, index: int) -> str:
        return Path(self._tv.images[index]).stem

    def item_files(self) -> list[Path]:
        return [Path(p) for i in range(self.n) for p in (self._tv.images[i], self._tv.masks[i])]

    def load(self, index: int) -> Image.Image:
        with Image.open(self._tv.images[index]) as im:
            return to_rgb(im)

    def target(self, index: int) -> np.ndarray:
        with Image.open(self._tv.masks[index]) as m:
            return np.asarray(m, dtype=np.uint8).copy()  # palette indices: the class, 255 on boundaries

    def params(self) -> dict[str, Any]:
        return {"root": str(self.root), "split": self.split, "limit": self._limit}


class CocoDetection(Dataset):
    """COCO-format object detection (COCO 2017, or any set in its format) through torchvision's CocoDetection and
    pycocotools, never downloaded. Labels are the category ids (torchvision's COCO detectors: 91 outputs)."""

    task = "detection"

    def __init__(
        self,
        root: str,
        split: str = "val",
        year: int = 2017,
        images: str | None = None,
        annotations: str | None = None,
        limit: Limit | None = None,
    ):
        base = Path(root).expanduser()
        img_dir = Path(images).expanduser() if images else base / f"{split}{year}"
        ann = Path(annotations).expanduser() if annotations else base / "annotations" / f"instances_{split}{year}.json"
        for need in (img_dir, ann):
            if not need.exists():
                raise DatasetRootError("coco-det", root, f"{need} is missing", COCO_LAYOUT)
        from torchvision.datasets import CocoDetection as TV

        self.name, self.root, self._limit = "coco-det", base, limit
        self.img_dir, self.ann = img_dir, ann
        self._params = {"root": str(base), "split": split, "year": year, "images": images, "annotations": annotations}
        self._tv = TV(str(img_dir), str(ann))
        cats = self._tv.coco.loadCats(self._tv.coco.getCatIds())
        names = {c["id"]: c["name"] for c in cats}
        self.classnames = [names.get(i, f"unused-{i}") for i in range(1, max(names) + 1)]
        self.num_classes = max(names) + 1  # with the background, as torchvision's detectors count
        self.n = _head(len(self._tv.ids), limit)
        self.labels = np.zeros(self.n, np.int64)

    def __len__(self) -> int:
        return self.n

    def _file(self, index: int) -> str:
        return self._tv.coco.loadImgs(self._tv.ids[index])[0]["file_name"]

    def item_id(self, index: int) -> str:
        return self._file(index)

    def item_files(self) -> list[Path]:
        return [self.ann] + [self.img_dir / self._file(i) for i in range(self.n)]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.img_dir / self._file(index)) as im:
            return to_rgb(im)

    def target(self, index: int) -> dict[str, np.ndarray]:
        """Boxes xywh -> xyxy; boxes without area dropped (as torchvision's detection references)."""
        anns = self._tv.coco.loadAnns(self._tv.coco.getAnnIds(self._tv.ids[index]))
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return {
            "boxes": boxes[keep],
            "labels": np.array([a["category_id"] for a in anns], dtype=np.int64)[keep],
            "iscrowd": np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)[keep],
        }

    def params(self) -> dict[str, Any]:
        return {**self._params, "limit": self._limit}


class _ToyDense(Dataset):
    """The toy world (``toyworld``, built through the run's plugins) with its shapes' exact geometry."""

    def __init__(self, context: PluginContext, split: str, n: int, seed: int, size: int | None):
        self.toy = context.create("datasets", "toyworld", split=split, n=n, seed=seed)
        if not hasattr(self.toy, "load_with_mask"):
            raise LrbenchError("the toyworld dataset of this lrbench has no shape masks (load_with_mask)")
        self.size = size
        self._last: tuple[int, tuple[Image.Image, np.ndarray]] | None = None
        self.labels = self.toy.labels
        self._params = {"split": split, "n": n, "seed": seed, "size": size}

    def __len__(self) -> int:
        return len(self.toy)

    def item_id(self, index: int) -> str:
        return self.toy.item_id(index)

    def params(self) -> dict[str, Any]:
        return {**self._params, "toy": self.toy.params()}

    def _item(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Image and mask, both resized to ``size`` (image bicubic-antialiased, mask nearest) when it is set. The
        last item is kept: ``load`` and ``target`` of one item, called one after the other, render it once."""
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        item = self._render(index)
        self._last = (index, item)
        return item

    def _render(self, index: int) -> tuple[Image.Image, np.ndarray]:
        image, mask = self.toy.load_with_mask(index)
        if self.size is not None and self.size != image.size[0]:
            image = image.resize((self.size, self.size), Image.BICUBIC)
            mask = np.asarray(Image.fromarray(mask).resize((self.size, self.size), Image.NEAREST))
        return image, mask

    def load(self, index: int) -> Image.Image:
        return self._item(index)[0]


class ToySegmentation(_ToyDense):
    """Toy-world segmentation: background (0) and the 12 shapes (1..12), every pixel of the drawn shape labelled."""

    task = "segmentation"

    def __init__(
        self, context: PluginContext, split: str = "test", n: Limit = 600, seed: int = 0, size: int | None = None
    ):
        super().__init__(context, split, n, seed, size)
        self.name = "toyworld-seg"
        self.classnames = ("background", *self.toy.classnames)

    def target(self, index: int) -> np.ndarray:
        _, mask = self._item(index)
        return (mask.astype(np.uint8) * np.uint8(self.labels[index] + 1)).astype(np.uint8)


class ToyDetection(_ToyDense):
    """Toy-world detection: one box per image, the tight box of the drawn shape's pixels (label = shape + 1)."""

    task = "detection"

    def __init__(
        self, context: PluginContext, split: str = "test", n: Limit = 600, seed: int = 0, size: int | None = None
    ):
        super().__init__(context, split, n, seed, size)
        self.name = "toyworld-det"
        self.classnames = tuple(self.toy.classnames)
        self.num_classes = len(self.classnames) + 1

    def target(self, index: int) -> dict[str, np.ndarray]:
        _, mask = self._item(index)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]  # pixel edges: the box covers every mask pixel
        return {
            "boxes": np.array([box], dtype=np.float32),
            "labels": np.array([self.labels[index] + 1], dtype=np.int64),
            "iscrowd": np.zeros(1, bool),
        }
