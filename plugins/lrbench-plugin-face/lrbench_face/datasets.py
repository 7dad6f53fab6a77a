"""Face datasets: verification pairs (insightface .bin, LFW-style pairs.txt) and identification probe/gallery sets
(SCface, TinyFace).

Verification datasets (``task = "verification"``) are a list of images plus ``pairs`` (N x 2 image indices) and
``issame`` (N bools), pairs kept in file order (the 10 folds are consecutive blocks of that order). Identification
datasets (``task = "identification"``) are a list of images with ``labels`` (identity; -1 for distractors), ``roles``
("gallery" / "probe") and ``groups`` (e.g. SCface distance d1/d2/d3; "" when there is no grouping).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench import IMAGE_EXTENSIONS, Dataset, DatasetRootError, Limit, LrbenchError, to_rgb


class VerificationDataset(Dataset):
    task = "verification"
    pairs: np.ndarray
    issame: np.ndarray

    def _set_pairs(self, pairs: Sequence[tuple[int, int]], issame: Sequence[bool]) -> None:
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.issame = np.asarray(issame, dtype=bool)
        self.labels = self.issame.astype(np.int64)  # per pair; hashed into the dataset identity

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        ident["pairs"] = hashlib.sha256(self.pairs.tobytes()).hexdigest()
        return ident


class IdentificationDataset(Dataset):
    task = "identification"
    roles: np.ndarray
    groups: np.ndarray

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        ident["roles"] = hashlib.sha256("\0".join(map(str, self.roles)).encode()).hexdigest()
        ident["groups"] = hashlib.sha256("\0".join(map(str, self.groups)).encode()).hexdigest()
        return ident


def _maybe_resize(image: Image.Image, size: int | None) -> Image.Image:
    if size is None or image.size == (size, size):
        return image
    return TF.resize(image, [size, size], interpolation=InterpolationMode.BICUBIC)


class _ImageFiles:
    """Items that are image files: ``files`` relative to ``root``, resized to ``image_size`` x ``image_size`` (bicubic)
    when it is set and they differ."""

    root: Path
    files: list[str]
    image_size: int | None

    def __len__(self) -> int:
        return len(self.files)

    def item_id(self, index: int) -> str:
        return self.files[index]

    def item_files(self) -> Sequence[Path]:
        return [self.root / f for f in self.files]

    def load(self, index: int) -> Image.Image:
        with Image.open(self.root / self.files[index]) as im:
            return _maybe_resize(to_rgb(im), self.image_size)


# ---------------------------------------------------------------------------------------------------- insightface .bin


class RestrictedUnpickler(pickle.Unpickler):
    """Accepts only what a verification .bin holds (tuples, lists, bytes, bools, numpy arrays): any other global, such
    as a ``__reduce__`` payload naming ``os.system``, is refused before it can be called.

    The allowed constructors can still be asked for huge objects by a tiny file (``bytes(10**10)``, an array of
    shape (10**10,)): each allocation is capped at ``limit`` bytes, the file's size, since a real .bin stores every
    image's bytes literally.
    """

    ALLOWED = {
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "bool_"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def __init__(self, file: Any, limit: int, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.limit = limit

    def _check(self, nbytes: int, what: str) -> None:
        if nbytes > self.limit:
            raise pickle.UnpicklingError(f"refusing to build {what} of {nbytes} bytes from a {self.limit}-byte file")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a verification .bin holds only images and booleans"
            )
        target = super().find_class(module, name)
        if name in ("bytes", "bytearray"):

            def sized(*args: Any) -> Any:
                if args and isinstance(args[0], int):
                    self._check(args[0], name)
                return target(*args)

            return sized
        if name == "encode":

            def encode(obj: Any, encoding: str = "utf-8", *rest: Any) -> Any:
                if str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1", "utf-8"):
                    raise pickle.UnpicklingError(f"refusing codec {encoding!r} in a verification .bin")
                return target(obj, encoding, *rest)

            return encode
        if name == "_reconstruct":

            def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
                count = int(np.prod(np.asarray(shape, dtype=np.int64))) if np.ndim(shape) else int(shape)
                self._check(count * np.dtype(dtype).itemsize, "an array")
                return target(subtype, shape, dtype)

            return reconstruct
        return target


def read_bin(path: str | Path) -> tuple[list[bytes], np.ndarray]:
    """(encoded images, issame) of an insightface verification .bin (py2 files: bytes decoded with encoding='bytes')."""
    with open(path, "rb") as fh:
        try:
            data = RestrictedUnpickler(fh, limit=Path(path).stat().st_size, encoding="bytes").load()
        except pickle.UnpicklingError as exc:
            raise LrbenchError(f"{path}: refused for safety: {exc}") from None
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise LrbenchError(f"{path}: expected a pickled (images, issame) pair")
    bins, issame = data
    images = [bytes(np.asarray(b, dtype=np.uint8).tobytes()) if isinstance(b, np.ndarray) else bytes(b) for b in bins]
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    if len(images) != 2 * len(issame):
        raise LrbenchError(f"{path}: {len(images)} images for {len(issame)} pairs (expected two per pair)")
    return images, issame


class BinVerification(VerificationDataset):
    """An insightface verification .bin (lfw.bin, cfp_fp.bin, agedb_30.bin, ...): pairs are images (2i, 2i+1)."""

    def __init__(self, path: str, name: str | None = None, limit: Limit | None = None):
        p = Path(path).expanduser()
        if not p.is_file():
            raise DatasetRootError(
                name or "face-bin",
                p,
                "verification .bin file not found",
                "  PATH/<set>.bin: insightface pickle of (list of encoded images, list of issame)",
            )
        if limit is not None and limit < 1:
            raise LrbenchError(f"{p}: limit must be >= 1 (the number of pairs to keep), got {limit}")
        self.path, self.name, self._limit = p, name or p.stem, limit
        images, issame = read_bin(p)
        if limit is not None:
            images, issame = images[: 2 * limit], issame[:limit]
        self._images = images
        self._set_pairs([(2 * i, 2 * i + 1) for i in range(len(issame))], issame)

    def __len__(self) -> int:
        return len(self._images)

    def item_id(self, index: int) -> str:
        return f"{self.path.name}#{index}"

    def load(self, index: int) -> Image.Image:
        with Image.open(io.BytesIO(self._images[index])) as im:
            return to_rgb(im)

    def params(self) -> dict[str, Any]:
        return {"path": str(self.path), "limit": self._limit}


def write_bin(path: str | Path, images: Sequence[Image.Image], issame: Sequence[bool]) -> None:
    """Write images (PNG-encoded) and issame in the .bin layout; for tests and for packaging generated sets."""
    encoded = []
    for im in images:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        encoded.append(buf.getvalue())
    with open(path, "wb") as fh:
        pickle.dump((encoded, [bool(s) for s in issame]), fh, protocol=2)


# ---------------------------------------------------------------------------------------------------- LFW-style pairs

PAIRS_LAYOUT = (
    "  ROOT/<name>/<name>_<NNNN>.jpg       aligned face images (LFW / XQLFW naming)\n"
    "  PAIRS FILE: optional header '<folds> <pairs per fold>', then lines\n"
    "      '<name> <n1> <n2>' (same person) or '<name1> <n1> <name2> <n2>' (different people)"
)


def parse_pairs(text: str, source: str = "pairs") -> list[tuple[str, int, str, int, bool]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) == 3:
            out.append((tok[0], int(tok[1]), tok[0], int(tok[2]), True))
        elif len(tok) == 4:
            out.append((tok[0], int(tok[1]), tok[2], int(tok[3]), False))
        elif len(tok) == 2 and lineno == 1 and all(t.isdigit() for t in tok):
            continue  # header: folds, pairs per fold
        else:
            raise LrbenchError(f"{source}:{lineno}: expected 3 or 4 fields, got {line!r}")
    return out


class PairsVerification(_ImageFiles, VerificationDataset):
    """LFW-style verification: a pairs.txt and a folder of aligned images (LFW, XQLFW, CALFW, ...)."""

    def __init__(
        self,
        root: str,
        pairs: str = "pairs.txt",
        name: str = "face-pairs",
        image_size: int | None = None,
        limit: Limit | None = None,
    ):
        if limit is not None and limit < 1:
            raise LrbenchError(f"dataset {name!r}: limit must be >= 1 (the number of pairs to keep), got {limit}")
        base = Path(root).expanduser()
        if not base.is_dir():
            raise DatasetRootError(name, base, "image folder does not exist", PAIRS_LAYOUT)
        pairs_path = Path(pairs).expanduser()
        pairs_path = pairs_path if pairs_path.is_absolute() else base / pairs_path
        if not pairs_path.is_file():
            raise DatasetRootError(name, pairs_path, "pairs file not found", PAIRS_LAYOUT)
        rows = parse_pairs(pairs_path.read_text(), str(pairs_path))[:limit]
        self.root, self.name, self.image_size, self._limit = base, name, image_size, limit
        self._pairs_file = str(pairs_path)
        files: list[str] = []
        index: dict[str, int] = {}

        def item(person: str, number: int) -> int:
            stem = f"{person}/{person}_{number:04d}"
            if stem not in index:
                found = (
                    [
                        p
                        for p in (base / person).glob(f"{person}_{number:04d}.*")
                        if p.suffix.lower() in IMAGE_EXTENSIONS
                    ]
                    if (base / person).is_dir()
                    else []
                )
                if not found:
                    raise DatasetRootError(
                        name, base / person, f"image {stem}.* listed in {pairs_path.name} is missing", PAIRS_LAYOUT
                    )
                index[stem] = len(files)
                files.append(str(found[0].relative_to(base)))
            return index[stem]

        pair_idx = [(item(a, i), item(b, j)) for a, i, b, j, _ in rows]
        self.files = files
        self._set_pairs(pair_idx, [r[4] for r in rows])

    def params(self) -> dict[str, Any]:
        return {"root": str(self.root), "pairs": self._pairs_file, "image_size": self.image_size, "limit": self._limit}


# ---------------------------------------------------------------------------------------------------- identification


class FileIdentification(_ImageFiles, IdentificationDataset):
    def __init__(
        self,
        name: str,
        root: Path,
        files: list[str],
        labels: list[int],
        roles: list[str],
        groups: list[str],
        image_size: int | None,
        params: dict[str, Any],
    ):
        self.name, self.root, self.files, self.image_size, self._params = name, root, files, image_size, params
        self.labels = np.asarray(labels, dtype=np.int64)
        self.roles, self.groups = np.asarray(roles), np.asarray(groups)

    def params(self) -> dict[str, Any]:
        return self._params


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def _person(path: Path) -> int | None:
    """The identity a face file is named after (``<id>_...``: SCface, TinyFace); None when the name has none."""
    m = re.match(r"(\d+)_", path.name)
    return int(m.group(1)) if m else None


SCFACE_LAYOUT = (
    "  ROOT/mugshot_frontal_cropped_all/<id>_frontal.jpg                      gallery (one per id)\n"
    "  ROOT/surveillance_cameras_distance_{1,2,3}/cam<k>/<id>_cam<k>_<d>.jpg  probes: d1 = 4.20 m, "
    "d2 = 2.60 m, d3 = 1.00 m"
)


#: the SCface protocol of the LogExp paper (section 4.2, after Lu et al. 2018): identities 51-130 are the test set,
#: 1-50 fine-tune the network
SCFACE_SPLITS = {"test": (51, 130), "train": (1, 50), "all": (1, 130)}


def scface(
    root: str,
    split: str = "test",
    first_id: int | None = None,
    last_id: int | None = None,
    image_size: int | None = 112,
    name: str = "scface",
) -> FileIdentification:
    """SCface: surveillance probes at three distances (groups d1, d2, d3) against frontal mugshots.

    ``split: test`` (default) keeps identities 51-130, as the LogExp paper tests; ``split: train`` gives every image
    (mugshots and probes) of identities 1-50 with labels 0-49, the fine-tuning set of a ``face/*`` method
    (``train: {dataset: {name: scface, root: ..., split: train}}``); ``all`` keeps 1-130. ``first_id`` / ``last_id``
    narrow the split's range."""
    if split not in SCFACE_SPLITS:
        raise LrbenchError(f"scface: unknown split {split!r}; choices: {', '.join(SCFACE_SPLITS)}")
    lo, hi = SCFACE_SPLITS[split]
    first_id = lo if first_id is None else max(lo, int(first_id))
    last_id = hi if last_id is None else min(hi, int(last_id))
    base = Path(root).expanduser()
    gallery_dir = base / "mugshot_frontal_cropped_all"
    if not gallery_dir.is_dir():
        raise DatasetRootError(name, gallery_dir, "gallery folder not found", SCFACE_LAYOUT)
    files, labels, roles, groups = [], [], [], []
    training = split == "train"

    def add(path: Path, role: str, group: str) -> None:
        person = _person(path)
        if person is not None and first_id <= person <= last_id:
            files.append(str(path.relative_to(base)))
            labels.append(person - first_id if training else person)
            roles.append("train" if training else role)
            groups.append(group)

    for p in _images(gallery_dir):
        add(p, "gallery", "")
    for d in (1, 2, 3):
        probe_dir = base / f"surveillance_cameras_distance_{d}"
        if not probe_dir.is_dir():
            raise DatasetRootError(name, probe_dir, f"probe folder for distance {d} not found", SCFACE_LAYOUT)
        for p in _images(probe_dir):
            add(p, "probe", f"d{d}")
    if not files or (not training and ("probe" not in roles or "gallery" not in roles)):
        raise DatasetRootError(name, base, f"no gallery or probe images with ids {first_id}-{last_id}", SCFACE_LAYOUT)
    return FileIdentification(
        name,
        base,
        files,
        labels,
        roles,
        groups,
        image_size,
        {"root": str(base), "split": split, "first_id": first_id, "last_id": last_id, "image_size": image_size},
    )


TINYFACE_LAYOUT = (
    "  ROOT/Probe/<id>_<k>.jpg             probe faces\n"
    "  ROOT/Gallery_Match/<id>_<k>.jpg     gallery faces of the probe identities\n"
    "  ROOT/Gallery_Distractor/*.jpg       distractors (never a match)"
)


def tinyface(
    root: str, image_size: int | None = 112, distractors: bool = True, name: str = "tinyface"
) -> FileIdentification:
    """TinyFace test set (ROOT = tinyface/Testing_Set): probes against matching gallery plus 153k distractors."""
    base = Path(root).expanduser()
    files, labels, roles, groups = [], [], [], []
    folders = [("Probe", "probe"), ("Gallery_Match", "gallery")] + (
        [("Gallery_Distractor", "gallery")] if distractors else []
    )
    for folder, role in folders:
        d = base / folder
        if not d.is_dir():
            raise DatasetRootError(name, d, f"{folder} folder not found", TINYFACE_LAYOUT)
        for p in _images(d):
            person = -1 if folder == "Gallery_Distractor" else _person(p)
            if person is None:
                raise DatasetRootError(name, p, "file name does not start with '<id>_'", TINYFACE_LAYOUT)
            files.append(str(p.relative_to(base)))
            labels.append(person)
            roles.append(role)
            groups.append("")
    return FileIdentification(
        name,
        base,
        files,
        labels,
        roles,
        groups,
        image_size,
        {"root": str(base), "image_size": image_size, "distractors": distractors},
    )
