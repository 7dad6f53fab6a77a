"""Dataset protocol and the generic local-folder datasets.

A dataset is a list of items that can be loaded one at a time (so a corrupt file costs one item, not the run) plus the
metadata the task needs: labels, class names, prompt templates, number of classes (A_rand = 1 / C for Gamma).
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from PIL import Image

from .registry import LrbenchError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class DatasetRootError(LrbenchError, FileNotFoundError):
    """A dataset root is missing or malformed: says where it looked and what layout it expects."""

    def __init__(self, dataset: str, root: str | Path, problem: str, layout: str):
        self.root = str(root)
        super().__init__(f"dataset {dataset!r}: {problem} (looked in {Path(root).expanduser()}). Expected layout:\n{layout}")


class Dataset:
    """Base class. ``task`` names the dataset kind: ``classification``, ``verification`` or ``identification``."""

    task: ClassVar[str] = "classification"
    name: str = "dataset"
    classnames: Sequence[str] = ()
    templates: Sequence[str] = ("a photo of a {c}.",)
    labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return getattr(self, "_num_classes", None) or len(self.classnames)

    @num_classes.setter
    def num_classes(self, value: int | None) -> None:
        self._num_classes = value

    def __len__(self) -> int:
        raise NotImplementedError

    def item_id(self, index: int) -> str:
        """A stable name of the item (relative path, index in a file); hashed into the cache key."""
        return str(index)

    def load(self, index: int) -> Image.Image:
        """The item's image, RGB. May raise for an undecodable file: the runner skips and counts it."""
        raise NotImplementedError

    def encoded(self, index: int) -> bytes | None:
        """The item's file as stored (JPEG, PNG, ...) when ``load`` does nothing but decode it to RGB, so the fast path
        can decode JPEGs in batches on the device; None (the default) when ``load`` does more (renders, crops)."""
        return None

    def params(self) -> dict[str, Any]:
        return {}

    def identity(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for i in range(len(self)):
            h.update(self.item_id(i).encode())
            h.update(b"\0")
        labels = getattr(self, "labels", None)
        if labels is not None:
            h.update(np.ascontiguousarray(labels).tobytes())
        return {"name": self.name, "params": self.params(), "items": h.hexdigest(), "n": len(self)}


class FileListDataset(Dataset):
    """Images listed by path with integer labels: the shape most loaders reduce to."""

    def __init__(self, name: str, root: Path, files: Sequence[str], labels: Sequence[int], classnames: Sequence[str],
                 templates: Sequence[str] | None = None, num_classes: int | None = None, limit: int | None = None):
        self.name, self.root = name, Path(root)
        files, labels = list(files), list(labels)
        if limit is not None:
            idx = _stratified_head(labels, limit)
            files, labels = [files[i] for i in idx], [labels[i] for i in idx]
        self.files, self.labels = files, np.asarray(labels, dtype=np.int64)
        self.classnames = list(classnames)
        if templates is not None:
            self.templates = list(templates)
        self.num_classes = num_classes
        self._limit = limit

    def __len__(self) -> int:
        return len(self.files)

    def item_id(self, index: int) -> str:
        return self.files[index]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.root / self.files[index]) as im:
            return im.convert("RGB")

    def encoded(self, index: int) -> bytes | None:
        if type(self).load is not FileListDataset.load:  # a subclass that changes what load returns
            return None
        return (self.root / self.files[index]).read_bytes()

    def params(self) -> dict[str, Any]:
        return {"root": str(self.root), "limit": self._limit}


def _stratified_head(labels: Sequence[int], limit: int) -> list[int]:
    """The first ``limit`` items taken round-robin over classes: a small, deterministic, class-balanced subset."""
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    order, depth = [], 0
    while len(order) < min(limit, len(labels)):
        for c in sorted(by_class):
            if depth < len(by_class[c]) and len(order) < limit:
                order.append(by_class[c][depth])
        depth += 1
    return sorted(order)


IMAGEFOLDER_LAYOUT = "  ROOT/<class name>/<image>.jpg   (one folder per class; folder names become class names)"
CSV_LAYOUT = "  ROOT/FILE.csv with a header 'path,label' (label: class name or integer); paths relative to ROOT"


def imagefolder(root: str, name: str = "imagefolder", templates: list[str] | None = None,
                num_classes: int | None = None, limit: int | None = None) -> FileListDataset:
    """Images in one folder per class (torchvision ImageFolder layout)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetRootError(name, base, "root folder does not exist", IMAGEFOLDER_LAYOUT)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DatasetRootError(name, base, "no class folders found", IMAGEFOLDER_LAYOUT)
    files, labels = [], []
    for c, cls in enumerate(classes):
        for p in sorted((base / cls).rglob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(str(p.relative_to(base)))
                labels.append(c)
    return FileListDataset(name, base, files, labels, [c.replace("_", " ") for c in classes], templates,
                           num_classes, limit)


def csv_dataset(root: str, file: str = "labels.csv", name: str = "csv", classnames: list[str] | None = None,
                templates: list[str] | None = None, num_classes: int | None = None,
                limit: int | None = None) -> FileListDataset:
    """Images listed in a CSV file with columns path,label."""
    base = Path(root).expanduser()
    path = base / file
    if not path.is_file():
        raise DatasetRootError(name, path, "CSV file not found", CSV_LAYOUT)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetRootError(name, path, "CSV needs the columns 'path' and 'label'", CSV_LAYOUT)
    raw = [r["label"] for r in rows]
    if all(v.lstrip("-").isdigit() for v in raw):
        labels = [int(v) for v in raw]
        names = classnames or [str(i) for i in range(max(labels) + 1)]
    else:
        names = classnames or sorted(set(raw))
        labels = [names.index(v) for v in raw]
    return FileListDataset(name, base, [r["path"] for r in rows], labels, names, templates, num_classes, limit)


def load_json_resource(name: str) -> Any:
    """A JSON file shipped in lrbench/data (class names, templates)."""
    return json.loads((Path(__file__).parent / "data" / name).read_text())
