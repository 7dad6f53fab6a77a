"""The 15 zero-shot datasets of LR0.FM, read from local copies in their published layouts.

Each loader finds files and labels (through torchvision's dataset classes where they exist, so the layouts are the
ones torchvision documents and downloads), and returns a :class:`FileListDataset`: images are opened one at a time,
so a corrupt file costs one item. Class names and prompt templates are CLIP's (``lrbench/data/zeroshot/*.json``, the
sources are written in each file). Nothing is downloaded unless ``download: true`` is given where torchvision can.

``root`` defaults to ``$LRBENCH_DATA/<dataset name>`` (``LRBENCH_DATA`` defaults to ``~/lrbench-data``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import hookimpl
from ..datasets import IMAGE_EXTENSIONS, DatasetRootError, FileListDataset, Limit, load_json_resource
from ..registry import spelling

#: the true class counts (LR0.FM Table 7); ``num_classes`` overrides them per spec entry
CLASS_COUNTS = load_json_resource("lr0fm.json")["num_classes"]


@lru_cache(maxsize=None)
def zeroshot_metadata(name: str) -> dict[str, Any]:
    """Class names / templates / wnids shipped for ``name`` (``lrbench/data/zeroshot/<name>.json``)."""
    return load_json_resource(f"zeroshot/{name}.json")


def imagenet_subset(wnids: Sequence[str]) -> tuple[list[str], list[str]]:
    """CLIP class names of the given ImageNet wnids, in the order given; and the 80 ImageNet templates."""
    meta = zeroshot_metadata("imagenet")
    index = {w: i for i, w in enumerate(meta["wnids"])}
    return [meta["classnames"][index[w]] for w in wnids], list(meta["templates"])


class LR0FMDataset(FileListDataset):
    """A FileListDataset that also reports the loader's own parameters (split, partition ...) in its identity."""

    def __init__(
        self,
        name: str,
        root: Path,
        files: Sequence[str],
        labels: Sequence[int],
        classnames: Sequence[str],
        templates: Sequence[str],
        num_classes: int | None,
        limit: int | None,
        extra: dict[str, Any],
    ):
        super().__init__(name, root, files, labels, classnames, templates, num_classes, limit)
        self._extra = dict(extra)

    def params(self) -> dict[str, Any]:
        return {**super().params(), **self._extra, "num_classes": self.num_classes}


def _default_root(name: str, root: str | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("LRBENCH_DATA", "~/lrbench-data")).expanduser() / name


def _require(name: str, base: Path, layout: str, *relative: str) -> None:
    """Raise DatasetRootError unless ``base`` and every ``base/relative`` exist."""
    if not base.is_dir():
        raise DatasetRootError(name, base, "root folder does not exist", layout)
    for rel in relative:
        if not (base / rel).exists():
            raise DatasetRootError(name, base, f"{rel!r} not found under the root", layout)


def _torchvision(name: str, base: Path, layout: str, build: Callable[[], Any]) -> Any:
    """Build a torchvision dataset, turning its 'not found' errors into a DatasetRootError with the layout."""
    try:
        return build()
    except (RuntimeError, FileNotFoundError, KeyError, ValueError, OSError) as exc:
        raise DatasetRootError(
            name, base, f"torchvision could not read it ({type(exc).__name__}: {exc})", layout
        ) from exc


def _finish(
    name: str,
    base: Path,
    files: Sequence[str | Path],
    labels: Sequence[int],
    classnames: Sequence[str],
    templates: Sequence[str],
    num_classes: int | None,
    limit: int | None,
    layout: str,
    **extra: Any,
) -> LR0FMDataset:
    rel = [str(Path(f).relative_to(base)) if Path(f).is_absolute() else str(f) for f in files]
    if not rel:
        raise DatasetRootError(name, base, "no images found", layout)
    bad = sorted({int(y) for y in labels if not 0 <= int(y) < len(classnames)})
    if bad:
        raise DatasetRootError(name, base, f"labels {bad[:5]} outside the {len(classnames)} classes", layout)
    return LR0FMDataset(name, base, rel, [int(y) for y in labels], classnames, templates, num_classes, limit, extra)


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _class_folders(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def _first_dir(base: Path, candidates: Sequence[str], accept: Callable[[Path], bool]) -> Path:
    """The first of ``base/c`` (c in candidates, '' = base itself) that ``accept`` says holds the class folders."""
    for c in candidates:
        d = base / c if c else base
        if d.is_dir() and accept(d):
            return d
    return base / candidates[0]


def _split_loader(
    name: str,
    root: str | None,
    layout: str,
    required: Sequence[str],
    build: Callable[[str], Any],
    samples: Callable[[Any], tuple[Sequence[Any], Sequence[int], Sequence[str] | None]],
    download: bool,
    num_classes: int | None,
    limit: int | None,
    **extra: Any,
) -> LR0FMDataset:
    """A torchvision dataset that reads one split: the layout checked (``required`` files) unless downloading,
    ``build(root)`` through torchvision, ``samples(ds)`` -> (files, labels, class names or None for CLIP's names),
    CLIP's templates; ``extra`` (split, partition, ...) goes into the dataset's identity."""
    base = _default_root(name, root)
    if not download:
        _require(name, base, layout, *required)
    ds = _torchvision(name, base, layout, lambda: build(str(base)))
    files, labels, classnames = samples(ds)
    meta = zeroshot_metadata(name)
    return _finish(
        name,
        base,
        files,
        labels,
        meta["classnames"] if classnames is None else classnames,
        meta["templates"],
        num_classes,
        limit,
        layout,
        **extra,
    )


def _spaced(classes: Sequence[str]) -> list[str]:
    return [c.replace("_", " ") for c in classes]


# --- ImageNet and its variants ---------------------------------------------------------------------------------


def _wnid_folders(
    name: str,
    base: Path,
    layout: str,
    subdirs: Sequence[str],
    allowed: Sequence[str],
    num_classes: int | None,
    limit: int | None,
    **extra: Any,
) -> LR0FMDataset:
    """Folders named by WordNet id (ImageNet val, -A, -R, -Sketch); labels index ``allowed`` (sorted wnids)."""
    if not base.is_dir():
        raise DatasetRootError(name, base, "root folder does not exist", layout)
    allowed_set = set(allowed)
    folder = _first_dir(base, subdirs, lambda d: any(n in allowed_set for n in _class_folders(d)))
    if not folder.is_dir():
        raise DatasetRootError(
            name,
            base,
            f"no folder of WordNet-id class folders ({' or '.join(repr(s or '.') for s in subdirs)})",
            layout,
        )
    found = _class_folders(folder)
    unknown = [f for f in found if f not in allowed_set]
    if unknown:
        raise DatasetRootError(
            name, folder, f"{len(unknown)} folders are not classes of this dataset, e.g. {unknown[:3]}", layout
        )
    index = {w: i for i, w in enumerate(allowed)}
    files, labels = [], []
    for wnid in found:
        for p in _images_under(folder / wnid):
            files.append(p)
            labels.append(index[wnid])
    classnames, templates = imagenet_subset(allowed)
    return _finish(name, base, files, labels, classnames, templates, num_classes, limit, layout, **extra)


IMAGENET_LAYOUT = (
    "  ROOT/val/<wnid>/<image>.JPEG   (1000 folders n01440764 ... n15075141; torchvision's ImageNet 'val'\n"
    "  layout, or the ILSVRC2012 validation images sorted into wnid folders; ROOT may be the val folder itself)"
)


def imagenet(
    root: str | None = None, split: str = "val", num_classes: int | None = None, limit: Limit | None = None
) -> LR0FMDataset:
    """ImageNet-1k validation set (50,000 images, 1000 classes, 80 CLIP templates)."""
    base = _default_root("imagenet", root)
    return _wnid_folders(
        "imagenet",
        base,
        IMAGENET_LAYOUT,
        [split, ""],
        zeroshot_metadata("imagenet")["wnids"],
        num_classes,
        limit,
        split=split,
    )


def _variant_layout(folder: str, n: int, ext: str, what: str) -> str:
    return f"  ROOT/{folder}/<wnid>/<image>.{ext}   ({n} WordNet-id folders, {what}; ROOT may be that folder itself)"


IMAGENET_A_LAYOUT = _variant_layout("imagenet-a", 200, "jpg", "the extracted imagenet-a.tar of Hendrycks et al.")
IMAGENET_R_LAYOUT = _variant_layout("imagenet-r", 200, "jpg", "the extracted imagenet-r.tar of Hendrycks et al.")
IMAGENET_SKETCH_LAYOUT = _variant_layout("sketch", 1000, "JPEG", "ImageNet-Sketch's ImageNet-Sketch.zip")


def imagenet_a(root: str | None = None, num_classes: int | None = None, limit: Limit | None = None) -> LR0FMDataset:
    """ImageNet-A: 7,500 natural adversarial examples of 200 ImageNet classes."""
    base = _default_root("imagenet-a", root)
    return _wnid_folders(
        "imagenet-a",
        base,
        IMAGENET_A_LAYOUT,
        ["imagenet-a", ""],
        zeroshot_metadata("imagenet-a")["wnids"],
        num_classes,
        limit,
    )


def imagenet_r(root: str | None = None, num_classes: int | None = None, limit: Limit | None = None) -> LR0FMDataset:
    """ImageNet-R: 30,000 renditions (art, cartoons, ...) of 200 ImageNet classes."""
    base = _default_root("imagenet-r", root)
    return _wnid_folders(
        "imagenet-r",
        base,
        IMAGENET_R_LAYOUT,
        ["imagenet-r", ""],
        zeroshot_metadata("imagenet-r")["wnids"],
        num_classes,
        limit,
    )


def imagenet_sketch(
    root: str | None = None, num_classes: int | None = None, limit: Limit | None = None
) -> LR0FMDataset:
    """ImageNet-Sketch: 50,889 black-and-white sketches of the 1000 ImageNet classes."""
    base = _default_root("imagenet-sketch", root)
    return _wnid_folders(
        "imagenet-sketch",
        base,
        IMAGENET_SKETCH_LAYOUT,
        ["sketch", ""],
        zeroshot_metadata("imagenet")["wnids"],
        num_classes,
        limit,
    )


IMAGENET_V2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
IMAGENET_V2_LAYOUT = (
    "  ROOT/imagenetv2-matched-frequency-format-val/<class index 0..999>/<hash>.jpeg\n"
    "  (the extracted ImageNetV2 tarball; folder names are ImageNet class indices; ROOT may be that folder)"
)


def imagenet_v2(
    root: str | None = None,
    variant: str = "matched-frequency",
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """ImageNet-V2 (10,000 images, 1000 classes); ``variant`` picks one of its three sampling strategies."""
    if variant not in IMAGENET_V2_VARIANTS:
        raise ValueError(f"imagenet-v2: unknown variant {variant!r}; choose one of {list(IMAGENET_V2_VARIANTS)}")
    name, base = "imagenet-v2", _default_root("imagenet-v2", root)
    layout = IMAGENET_V2_LAYOUT.replace("matched-frequency", variant)
    if not base.is_dir():
        raise DatasetRootError(name, base, "root folder does not exist", layout)
    folder = _first_dir(
        base, [f"imagenetv2-{variant}-format-val", ""], lambda d: any(n.isdigit() for n in _class_folders(d))
    )
    found = _class_folders(folder) if folder.is_dir() else []
    if not found or not all(n.isdigit() and int(n) < 1000 for n in found):
        raise DatasetRootError(name, folder, "expected class folders named 0 ... 999", layout)
    files, labels = [], []
    for cls in sorted(found, key=int):
        for p in _images_under(folder / cls):
            files.append(p)
            labels.append(int(cls))
    meta = zeroshot_metadata("imagenet")
    return _finish(
        name, base, files, labels, meta["classnames"], meta["templates"], num_classes, limit, layout, variant=variant
    )


# --- the other ten (torchvision layouts) -------------------------------------------------------------------------

CALTECH101_LAYOUT = (
    "  ROOT/caltech101/101_ObjectCategories/<category>/image_0001.jpg ...\n"
    "  (torchvision's Caltech101 layout; BACKGROUND_Google is ignored, 101 categories remain)"
)
#: the LR0.FM authors' Caltech101 split (CLIP/dataloaders/caltech101.py): 30 training images per class drawn with
#: ``np.random.seed(1234)``, every other image is a test image
CALTECH101_TRAIN_PER_CLASS, CALTECH101_SEED = 30, 1234
CALTECH101_SPLITS = ("test", "train", "all")


def caltech101_split(files_by_class: Sequence[Sequence[str]], split: str) -> list[tuple[str, int]]:
    """(file, label) of the authors' split: per class in label order, 30 of the files (sorted) drawn without
    replacement from one ``RandomState(1234)`` stream are ``train``, the rest ``test``; ``all`` keeps every file."""
    if split not in CALTECH101_SPLITS:
        raise ValueError(f"caltech101: unknown split {split!r}; choose one of {list(CALTECH101_SPLITS)}")
    rng = np.random.RandomState(CALTECH101_SEED)
    out = []
    for label, files in enumerate(files_by_class):
        files = sorted(files)
        if split == "all":
            out += [(f, label) for f in files]
            continue
        if len(files) < CALTECH101_TRAIN_PER_CLASS:
            raise ValueError(
                f"caltech101: class {label} has {len(files)} images, fewer than the "
                f"{CALTECH101_TRAIN_PER_CLASS} training images of the authors' split (split: all keeps them)"
            )
        train = set(rng.choice(len(files), CALTECH101_TRAIN_PER_CLASS, replace=False).tolist())
        out += [(f, label) for i, f in enumerate(files) if (i in train) == (split == "train")]
    return out


def caltech101(
    root: str | None = None,
    split: str = "test",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """Caltech101 as LR0.FM tests it: all but 30 random images per class (seed 1234); ``split: all`` every image."""
    from torchvision.datasets import Caltech101

    if split not in CALTECH101_SPLITS:
        raise ValueError(f"caltech101: unknown split {split!r}; choose one of {list(CALTECH101_SPLITS)}")
    name, base = "caltech101", _default_root("caltech101", root)
    if not download:
        _require(name, base, CALTECH101_LAYOUT, "caltech101/101_ObjectCategories")
    ds = _torchvision(name, base, CALTECH101_LAYOUT, lambda: Caltech101(str(base), download=download))
    meta = zeroshot_metadata(name)
    if len(ds.categories) != len(meta["classnames"]):
        raise DatasetRootError(
            name,
            base,
            f"{len(ds.categories)} category folders, expected {len(meta['classnames'])} (+ BACKGROUND_Google)",
            CALTECH101_LAYOUT,
        )
    folder = Path(ds.root) / "101_ObjectCategories"
    by_class: list[list[str]] = [[] for _ in ds.categories]
    for i, y in zip(ds.index, ds.y):
        by_class[y].append(str(folder / ds.categories[y] / f"image_{i:04d}.jpg"))
    try:
        chosen = caltech101_split(by_class, split)
    except ValueError as exc:
        raise DatasetRootError(name, base, str(exc), CALTECH101_LAYOUT) from exc
    files, labels = [f for f, _ in chosen], [y for _, y in chosen]
    return _finish(
        name,
        base,
        files,
        labels,
        meta["classnames"],
        meta["templates"],
        num_classes,
        limit,
        CALTECH101_LAYOUT,
        split=split,
    )


DTD_LAYOUT = (
    "  ROOT/dtd/dtd/images/<texture>/<image>.jpg and ROOT/dtd/dtd/labels/test1.txt (train/val/test 1..10)\n"
    "  (torchvision's DTD layout: the extracted dtd-r1.0.1.tar.gz inside ROOT/dtd)"
)


def dtd(
    root: str | None = None,
    split: str = "test",
    partition: int = 1,
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """Describable Textures, split ``partition`` (LR0.FM: split 1 test, 1,880 images, 47 textures)."""
    from torchvision.datasets import DTD

    return _split_loader(
        "dtd",
        root,
        DTD_LAYOUT,
        [f"dtd/dtd/labels/{split}{partition}.txt"],
        lambda base: DTD(base, split=split, partition=partition, download=download),
        lambda ds: (ds._image_files, ds._labels, _spaced(ds.classes)),
        download,
        num_classes,
        limit,
        split=split,
        partition=partition,
    )


FOOD101_LAYOUT = (
    "  ROOT/food-101/images/<dish>/<id>.jpg and ROOT/food-101/meta/test.json\n"
    "  (torchvision's Food101 layout: the extracted food-101.tar.gz)"
)


def food101(
    root: str | None = None,
    split: str = "test",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """Food-101 test split (25,250 images, 101 dishes)."""
    from torchvision.datasets import Food101

    return _split_loader(
        "food101",
        root,
        FOOD101_LAYOUT,
        [f"food-101/meta/{split}.json", "food-101/images"],
        lambda base: Food101(base, split=split, download=download),
        lambda ds: (ds._image_files, ds._labels, _spaced(ds.classes)),
        download,
        num_classes,
        limit,
        split=split,
    )


SUN397_LAYOUT = (
    "  ROOT/SUN397/ClassName.txt, ROOT/SUN397/<letter>/<category>[/<sub>]/sun_<id>.jpg\n"
    "  and the official partitions ROOT/SUN397/Partitions/Testing_01.txt ... (Partitions.zip of the SUN site)\n"
    "  (torchvision's SUN397 layout; partition: null uses every image)"
)


def sun397(
    root: str | None = None,
    partition: int | None = 1,
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """SUN397 scenes, the official test partition (19,850 images = 50 per class) or every image."""
    from torchvision.datasets import SUN397

    name, base = "sun397", _default_root("sun397", root)
    if not download:
        _require(name, base, SUN397_LAYOUT, "SUN397/ClassName.txt")
    ds = _torchvision(name, base, SUN397_LAYOUT, lambda: SUN397(str(base), download=download))
    partition_file = None
    if partition is not None:  # checked after a download too: torchvision fetches the images, not the partitions
        candidates = [base / "SUN397" / "Partitions", base / "Partitions", base / "SUN397"]
        fname = f"Testing_{partition:02d}.txt"
        partition_file = next((d / fname for d in candidates if (d / fname).is_file()), None)
        if partition_file is None:
            raise DatasetRootError(
                name,
                base,
                f"partition file {fname} not found in "
                f"{[str(c.relative_to(base)) for c in candidates]} (partition: null uses every "
                "image)",
                SUN397_LAYOUT,
            )
    data_dir = Path(ds._data_dir)
    files, labels = list(ds._image_files), list(ds._labels)
    if partition_file is not None:
        wanted = {line.strip().lstrip("/") for line in partition_file.read_text().splitlines() if line.strip()}
        keep = [i for i, f in enumerate(files) if str(Path(f).relative_to(data_dir).as_posix()) in wanted]
        if len(keep) < len(wanted):
            missing = sorted(wanted - {Path(files[i]).relative_to(data_dir).as_posix() for i in keep})
            raise DatasetRootError(
                name,
                base,
                f"{len(missing)} images of {partition_file.name} are missing, e.g. {missing[:2]}",
                SUN397_LAYOUT,
            )
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    order = sorted(range(len(files)), key=lambda i: str(files[i]))
    classnames = [c.replace("_", " ").replace("/", " ") for c in ds.classes]
    return _finish(
        name,
        base,
        [files[i] for i in order],
        [labels[i] for i in order],
        classnames,
        zeroshot_metadata(name)["templates"],
        num_classes,
        limit,
        SUN397_LAYOUT,
        partition=partition,
    )


CARS_LAYOUT = (
    "  ROOT/stanford_cars/devkit/cars_meta.mat, ROOT/stanford_cars/cars_test/<id>.jpg,\n"
    "  ROOT/stanford_cars/cars_test_annos_withlabels.mat   (torchvision's StanfordCars layout)"
)


def stanford_cars(
    root: str | None = None, split: str = "test", num_classes: int | None = None, limit: Limit | None = None
) -> LR0FMDataset:
    """Stanford Cars test split (8,041 images, 196 models). torchvision cannot download it any more."""
    from torchvision.datasets import StanfordCars

    def samples(ds: Any) -> tuple[Sequence[Any], Sequence[int], list[str]]:
        files, labels = zip(*ds._samples) if ds._samples else ((), ())
        return files, labels, [str(c) for c in ds.classes]

    annos = "cars_test_annos_withlabels.mat" if split == "test" else "devkit/cars_train_annos.mat"
    return _split_loader(
        "stanford-cars",
        root,
        CARS_LAYOUT,
        ["stanford_cars/devkit/cars_meta.mat", f"stanford_cars/{annos}"],
        lambda base: StanfordCars(base, split=split),
        samples,
        False,
        num_classes,
        limit,
        split=split,
    )


AIRCRAFT_LAYOUT = (
    "  ROOT/fgvc-aircraft-2013b/data/images/<id>.jpg, ROOT/fgvc-aircraft-2013b/data/variants.txt,\n"
    "  ROOT/fgvc-aircraft-2013b/data/images_variant_test.txt   (torchvision's FGVCAircraft layout)"
)


def fgvc_aircraft(
    root: str | None = None,
    split: str = "test",
    annotation_level: str = "variant",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """FGVC-Aircraft test split (3,333 images, 100 variants)."""
    from torchvision.datasets import FGVCAircraft

    return _split_loader(
        "fgvc-aircraft",
        root,
        AIRCRAFT_LAYOUT,
        [f"fgvc-aircraft-2013b/data/images_{annotation_level}_{split}.txt"],
        lambda base: FGVCAircraft(base, split=split, annotation_level=annotation_level, download=download),
        lambda ds: (ds._image_files, ds._labels, list(ds.classes)),
        download,
        num_classes,
        limit,
        split=split,
        annotation_level=annotation_level,
    )


PETS_LAYOUT = (
    "  ROOT/oxford-iiit-pet/images/<Breed>_<n>.jpg and ROOT/oxford-iiit-pet/annotations/test.txt\n"
    "  (torchvision's OxfordIIITPet layout: images.tar.gz and annotations.tar.gz extracted there)"
)


def oxford_pets(
    root: str | None = None,
    split: str = "test",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """Oxford-IIIT Pets test split (3,669 images, 37 breeds)."""
    from torchvision.datasets import OxfordIIITPet

    return _split_loader(
        "oxford-pets",
        root,
        PETS_LAYOUT,
        [f"oxford-iiit-pet/annotations/{split}.txt", "oxford-iiit-pet/images"],
        lambda base: OxfordIIITPet(base, split=split, download=download),
        lambda ds: (ds._images, ds._labels, None),
        download,
        num_classes,
        limit,
        split=split,
    )


FLOWERS_LAYOUT = (
    "  ROOT/flowers-102/jpg/image_00001.jpg ..., ROOT/flowers-102/imagelabels.mat, ROOT/flowers-102/setid.mat\n"
    "  (torchvision's Flowers102 layout)"
)
FLOWERS_SPLITS = {"train": "trnid", "val": "valid", "test": "tstid"}


def flowers102(
    root: str | None = None,
    split: str = "test",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """Oxford Flowers102 test split (6,149 images, 102 species)."""
    from scipy.io import loadmat

    name, base = "flowers102", _default_root("flowers102", root)
    if split not in FLOWERS_SPLITS:
        raise ValueError(f"flowers102: unknown split {split!r}; choose one of {list(FLOWERS_SPLITS)}")
    if download:  # torchvision fetches and checks the files; reading them is the same either way
        from torchvision.datasets import Flowers102

        _torchvision(name, base, FLOWERS_LAYOUT, lambda: Flowers102(str(base), split=split, download=True))
    _require(name, base, FLOWERS_LAYOUT, "flowers-102/imagelabels.mat", "flowers-102/setid.mat", "flowers-102/jpg")
    folder = base / "flowers-102"
    try:
        ids = np.atleast_1d(loadmat(folder / "setid.mat", squeeze_me=True)[FLOWERS_SPLITS[split]]).tolist()
        all_labels = (np.atleast_1d(loadmat(folder / "imagelabels.mat", squeeze_me=True)["labels"]) - 1).tolist()
    except (KeyError, ValueError, OSError) as exc:
        raise DatasetRootError(
            name, base, f"unreadable .mat file ({type(exc).__name__}: {exc})", FLOWERS_LAYOUT
        ) from exc
    files = [folder / "jpg" / f"image_{int(i):05d}.jpg" for i in ids]
    labels = [all_labels[int(i) - 1] for i in ids]
    meta = zeroshot_metadata(name)
    return _finish(
        name,
        base,
        files,
        labels,
        meta["classnames"],
        meta["templates"],
        num_classes,
        limit,
        FLOWERS_LAYOUT,
        split=split,
    )


EUROSAT_LAYOUT = (
    "  ROOT/eurosat/2750/<Class>/<Class>_<n>.jpg   (10 folders AnnualCrop ... SeaLake; torchvision's EuroSAT\n"
    "  layout: the extracted EuroSAT RGB zip) and CoOp's split_zhou_EuroSAT.json in ROOT or ROOT/eurosat\n"
    "  (not needed for split: all)"
)
EUROSAT_CLASSES = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
#: lrbench split -> the list of CoOp's split_zhou_EuroSAT.json it reads. The LR0.FM authors' loader
#: (CLIP/dataloaders/eurosat.py) evaluates on the file's "val" list (5,400 tiles), not its "test" list (8,100).
EUROSAT_SPLITS = {"test": "val", "coop-test": "test", "train": "train", "all": None}


def eurosat(
    root: str | None = None,
    split: str = "test",
    download: bool = False,
    num_classes: int | None = None,
    limit: Limit | None = None,
) -> LR0FMDataset:
    """EuroSAT RGB as LR0.FM tests it: the 5,400 tiles of CoOp's split "val" list; ``split: all`` all 27,000."""
    from torchvision.datasets import EuroSAT

    if split not in EUROSAT_SPLITS:
        raise ValueError(f"eurosat: unknown split {split!r}; choose one of {list(EUROSAT_SPLITS)}")
    name, base = "eurosat", _default_root("eurosat", root)
    if not download:
        _require(name, base, EUROSAT_LAYOUT, "eurosat/2750")
    meta = zeroshot_metadata(name)
    if EUROSAT_SPLITS[split] is None:
        ds = _torchvision(name, base, EUROSAT_LAYOUT, lambda: EuroSAT(str(base), download=download))
        if len(ds.classes) != len(meta["classnames"]):
            raise DatasetRootError(
                name, base, f"{len(ds.classes)} class folders, expected {len(meta['classnames'])}", EUROSAT_LAYOUT
            )
        files, labels = zip(*ds.samples) if ds.samples else ((), ())
    else:
        if download:
            _torchvision(name, base, EUROSAT_LAYOUT, lambda: EuroSAT(str(base), download=True))
        split_file = next(
            (
                p
                for p in (base / "split_zhou_EuroSAT.json", base / "eurosat" / "split_zhou_EuroSAT.json")
                if p.is_file()
            ),
            None,
        )
        if split_file is None:
            raise DatasetRootError(
                name,
                base,
                "split file split_zhou_EuroSAT.json not found in ROOT or ROOT/eurosat (split: all uses every tile)",
                EUROSAT_LAYOUT,
            )
        try:
            entries = json.loads(split_file.read_text())[EUROSAT_SPLITS[split]]
        except (KeyError, ValueError) as exc:
            raise DatasetRootError(
                name, split_file, f"no list {EUROSAT_SPLITS[split]!r} in the split file", EUROSAT_LAYOUT
            ) from exc
        index = {c: i for i, c in enumerate(EUROSAT_CLASSES)}
        folder = base / "eurosat" / "2750"
        files, labels = [], []
        for rel, *_ in entries:
            cls = Path(rel).parts[0]
            if cls not in index:
                raise DatasetRootError(
                    name, split_file, f"{rel!r} is not in one of the 10 class folders", EUROSAT_LAYOUT
                )
            if not (folder / rel).is_file():
                raise DatasetRootError(name, folder, f"{rel} listed in {split_file.name} is missing", EUROSAT_LAYOUT)
            files.append(folder / rel)
            labels.append(index[cls])
    return _finish(
        name,
        base,
        files,
        labels,
        meta["classnames"],
        meta["templates"],
        num_classes,
        limit,
        EUROSAT_LAYOUT,
        split=split,
    )


UCF101_LAYOUT = (
    "  ROOT/UCF-101-midframes/<Action_Name>/<video id>.jpg   (one middle frame per video, CoOp's layout;\n"
    "  CamelCase folder names as in UCF101 work too) and, for split 'test', CoOp's ROOT/split_zhou_UCF101.json"
)


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def ucf101(
    root: str | None = None, split: str = "test", num_classes: int | None = None, limit: Limit | None = None
) -> LR0FMDataset:
    """UCF101 actions as middle frames: the CoOp split's ``test`` (or ``train``/``val``) videos, or ``all`` frames."""
    name, base = "ucf101", _default_root("ucf101", root)
    _require(name, base, UCF101_LAYOUT, "UCF-101-midframes")
    folder = base / "UCF-101-midframes"
    meta = zeroshot_metadata(name)
    by_key = {_squash(c): i for i, c in enumerate(meta["classnames"])}

    def label_of(cls_folder: str) -> int:
        if _squash(cls_folder) not in by_key:
            raise DatasetRootError(name, base, f"folder {cls_folder!r} is not a UCF101 action", UCF101_LAYOUT)
        return by_key[_squash(cls_folder)]

    if split == "all":
        files, labels = [], []
        for cls in _class_folders(folder):
            for p in _images_under(folder / cls):
                files.append(p)
                labels.append(label_of(cls))
    else:
        split_file = base / "split_zhou_UCF101.json"
        if not split_file.is_file():
            raise DatasetRootError(
                name, base, f"split file {split_file.name} not found (split: all uses every frame)", UCF101_LAYOUT
            )
        try:
            entries = json.loads(split_file.read_text())[split]
        except KeyError:
            raise ValueError(
                f"ucf101: split {split!r} not in {split_file.name}; choose train, val, test or all"
            ) from None
        files = [folder / rel for rel, _, _ in entries]
        labels = [label_of(Path(rel).parts[0]) for rel, _, _ in entries]
    return _finish(
        name, base, files, labels, meta["classnames"], meta["templates"], num_classes, limit, UCF101_LAYOUT, split=split
    )


LOADERS: dict[str, tuple[Callable[..., LR0FMDataset], str]] = {
    "imagenet": (imagenet, IMAGENET_LAYOUT),
    "imagenet-a": (imagenet_a, IMAGENET_A_LAYOUT),
    "imagenet-v2": (imagenet_v2, IMAGENET_V2_LAYOUT),
    "imagenet-r": (imagenet_r, IMAGENET_R_LAYOUT),
    "imagenet-sketch": (imagenet_sketch, IMAGENET_SKETCH_LAYOUT),
    "caltech101": (caltech101, CALTECH101_LAYOUT),
    "dtd": (dtd, DTD_LAYOUT),
    "food101": (food101, FOOD101_LAYOUT),
    "sun397": (sun397, SUN397_LAYOUT),
    "stanford-cars": (stanford_cars, CARS_LAYOUT),
    "fgvc-aircraft": (fgvc_aircraft, AIRCRAFT_LAYOUT),
    "oxford-pets": (oxford_pets, PETS_LAYOUT),
    "flowers102": (flowers102, FLOWERS_LAYOUT),
    "eurosat": (eurosat, EUROSAT_LAYOUT),
    "ucf101": (ucf101, UCF101_LAYOUT),
}


#: the LR0.FM authors' dataset names (``get_dataloader`` in CLIP/dataloaders/__init__.py) that are not lrbench's names
#: spelled with underscores -> lrbench's names, so the authors' specs and tables find the loaders, class counts and WAR
#: weights (their underscore spellings, ``stanford_cars``, are read by the registries' naming rule: docs/plugins.md)
ALIASES: dict[str, str] = {
    "imagenet1k": "imagenet",
    "cars": "stanford-cars",
    "pets": "oxford-pets",
    "flowers": "flowers102",
}
log = logging.getLogger("lrbench")


def canonical_dataset(name: str) -> str:
    """lrbench's name of an LR0.FM dataset given by the authors' name (``stanford_cars`` -> ``stanford-cars``,
    ``cars`` -> ``stanford-cars``); any other name unchanged."""
    spelled = spelling(name)
    if spelled in LOADERS or spelled in ALIASES:
        return ALIASES.get(spelled, spelled)
    return name


def _alias(alias: str, target: str) -> Callable[..., LR0FMDataset]:
    factory = LOADERS[target][0]

    @functools.wraps(factory)
    def create(*args: Any, **kwargs: Any) -> LR0FMDataset:
        log.warning(
            "dataset %r is the LR0.FM authors' name of lrbench's %r; results keep the name %r and aggregate "
            "with %r's class count and WAR weight",
            alias,
            target,
            alias,
            target,
        )
        return factory(*args, **kwargs)

    return create


@hookimpl
def register_datasets(register):
    for name, (factory, layout) in LOADERS.items():
        meta = zeroshot_metadata("imagenet" if name in ("imagenet-v2", "imagenet-sketch") else name)
        n_templates = len(meta.get("templates") or zeroshot_metadata("imagenet")["templates"])
        register(
            name,
            factory,
            (factory.__doc__ or "").strip().split("\n")[0],
            info={
                "classes": CLASS_COUNTS[name],
                "templates": n_templates,
                "benchmark": "LR0.FM",
                "layout": " ".join(layout.split()),
            },
        )
    for alias, target in ALIASES.items():
        register(
            alias,
            _alias(alias, target),
            f"alias of {target} (the LR0.FM authors' name)",
            info={"classes": CLASS_COUNTS[target], "alias_of": target, "benchmark": "LR0.FM"},
        )
