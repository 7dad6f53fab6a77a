"""Dataset protocol and the generic local-folder datasets.

A dataset is a list of items that can be loaded one at a time (so a corrupt file costs one item, not the run) plus the
metadata the task needs: labels, class names, prompt templates, number of classes (A_rand = 1 / C for Gamma).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Sequence

import numpy as np
from PIL import Image
from pydantic import Field

from .registry import LrbenchError

#: ``limit``: the first N items (class-balanced); a spec's 0 or negative value is refused, never an empty dataset
Limit = Annotated[int, Field(ge=1)]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class DatasetRootError(LrbenchError, FileNotFoundError):
    """A dataset root is missing or malformed: says where it looked and what layout it expects."""

    def __init__(self, dataset: str, root: str | Path, problem: str, layout: str):
        self.root = str(root)
        super().__init__(
            f"dataset {dataset!r}: {problem} (looked in {Path(root).expanduser()}). Expected layout:\n{layout}"
        )


class Dataset:
    """Base class. ``task`` names what the dataset is for (``classification`` for the built-ins; plugins add their own,
    which their tasks declare as ``Task.dataset_task``)."""

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

    def item_files(self) -> Sequence[Path]:
        """The files the items are read from; their (path, size, mtime) key the cells, so a replaced image recomputes
        without hashing image bytes. Datasets that generate their items, or read one file named by a parameter (whose
        sha256 the plan hashes), return none."""
        return ()

    def identity(self) -> dict[str, Any]:
        """What the cells of this dataset depend on: item ids and labels, the class names and prompt templates a task
        reads, and a fingerprint of the item files; the plan adds the spec entry's parameters."""
        h = hashlib.sha256()
        for i in range(len(self)):
            h.update(self.item_id(i).encode())
            h.update(b"\0")
        labels = getattr(self, "labels", None)
        if labels is not None:
            h.update(np.ascontiguousarray(labels).tobytes())
        ident = {
            "name": self.name,
            "params": self.params(),
            "items": h.hexdigest(),
            "n": len(self),
            "classnames": _text_hash(self.classnames),
            "templates": _text_hash(self.templates),
        }
        files = self.item_files()
        if files:
            ident["files"] = files_fingerprint(files)
        return ident


def _text_hash(texts: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(map(str, texts)).encode()).hexdigest()


def files_fingerprint(paths: Sequence[str | Path]) -> str:
    """sha256 of every file's (path, size, mtime_ns): cheap (one stat per file), and changes when a file is replaced
    or touched. A missing file is fingerprinted as missing (its item is skipped when loaded)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


class FileListDataset(Dataset):
    """Images listed by path with integer labels: the shape most loaders reduce to."""

    def __init__(
        self,
        name: str,
        root: Path,
        files: Sequence[str],
        labels: Sequence[int],
        classnames: Sequence[str],
        templates: Sequence[str] | None = None,
        num_classes: int | None = None,
        limit: int | None = None,
    ):
        self.name, self.root = name, Path(root)
        files, labels = list(files), list(labels)
        if limit is not None and limit < 1:
            raise LrbenchError(f"dataset {name!r}: limit must be >= 1 (the number of items to keep), got {limit}")
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

    def item_files(self) -> Sequence[Path]:
        return [self.root / f for f in self.files]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.root / self.files[index]) as im:
            return to_rgb(im)

    def encoded(self, index: int) -> bytes | None:
        if type(self).load is not FileListDataset.load:  # a subclass that changes what load returns
            return None
        return (self.root / self.files[index]).read_bytes()

    def params(self) -> dict[str, Any]:
        return {"root": str(self.root), "limit": self._limit}


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB 8-bit copy of ``image``, scaling high-bit-depth images instead of clipping them.

    PIL's ``convert("RGB")`` clips 16-bit (``I;16``, ``I``) and float (``F``) pixels at 255, which turns a 16-bit PNG
    white. Integer modes are scaled by their bit depth (``I`` holds 16-bit PNGs and TIFFs: values up to 65535), float
    ones must be in [0, 1]; anything else is refused with a reason (the item is skipped and listed in run.json).
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(
                f"{image.mode} image with values outside 0..65535 (min {arr.min()}, max {arr.max()}): "
                "not a 16-bit image lrbench can scale"
            )
        gray = np.round(arr / 257).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("float image with values outside [0, 1]: cannot tell its scale")
        return Image.fromarray(np.round(arr * 255).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


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


def imagefolder(
    root: str,
    name: str = "imagefolder",
    templates: list[str] | None = None,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> FileListDataset:
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
    return FileListDataset(
        name, base, files, labels, [c.replace("_", " ") for c in classes], templates, num_classes, limit
    )


def csv_dataset(
    root: str,
    file: str = "labels.csv",
    name: str = "csv",
    classnames: list[str] | None = None,
    templates: list[str] | None = None,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> FileListDataset:
    """Images listed in a CSV file with columns path,label.

    A label is a class name or an integer index into the class list (``classnames``, else the sorted names, else
    0..max). A short row, an empty path or label, or a label outside the class list is an error naming the row.
    """
    base = Path(root).expanduser()
    path = base / file
    if not path.is_file():
        raise DatasetRootError(name, path, "CSV file not found", CSV_LAYOUT)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = [(reader.line_num, r) for r in reader]
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetRootError(name, path, f"CSV file unreadable ({exc})", CSV_LAYOUT) from None
    if not {"path", "label"} <= set(header):
        raise DatasetRootError(name, path, f"CSV needs the columns 'path' and 'label', found {header}", CSV_LAYOUT)
    if not rows:
        raise DatasetRootError(name, path, "CSV lists no images", CSV_LAYOUT)

    def bad(line: int, problem: str) -> LrbenchError:
        return LrbenchError(f"dataset {name!r}: {path} line {line}: {problem}")

    for line, r in rows:
        if r.get("path") is None or r.get("label") is None or None in r:
            raise bad(
                line,
                f"expected {len(header)} fields ({','.join(header)}), got "
                f"{sum(v is not None for k, v in r.items() if k is not None) + len(r.get(None) or [])}",
            )
        if not r["path"].strip():
            raise bad(line, "empty path")
        if not r["label"].strip():
            raise bad(line, "empty label")
    raw = [(line, r["label"].strip()) for line, r in rows]
    if all(v.lstrip("-").isdigit() for _, v in raw):
        labels = [int(v) for _, v in raw]
        names = list(classnames) if classnames else [str(i) for i in range(max(max(labels), 0) + 1)]
        for (line, _), y in zip(raw, labels):
            if not 0 <= y < len(names):
                raise bad(line, f"label {y} is outside the class list (indices 0..{len(names) - 1})")
    else:
        names = list(classnames) if classnames else sorted({v for _, v in raw})
        index = {c: i for i, c in enumerate(names)}
        for line, v in raw:
            if v not in index:
                close = difflib.get_close_matches(v, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise bad(line, f"label {v!r} is not in the class list{hint} ({len(names)} classes)")
        labels = [index[v] for _, v in raw]
    return FileListDataset(name, base, [r["path"] for _, r in rows], labels, names, templates, num_classes, limit)


def load_json_resource(name: str) -> Any:
    """A JSON file shipped in lrbench/data (class names, templates)."""
    return json.loads((Path(__file__).parent / "data" / name).read_text())
