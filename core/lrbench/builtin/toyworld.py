"""The toy world: a procedurally generated image-text dataset, lrbench's embedded offline default.

Each item is a 224 px image of one shape (the class) with a random colour, fill texture, size, rotation and position on
a random background, plus a caption naming all of them. Items are generated from (seed, split, index), so the dataset
needs no files, is identical on every machine, and its train and test splits never share an image. Shapes stay
recognisable at 64 px and blur into blobs of colour at 8 px: a small, honest low-resolution benchmark.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .. import hookimpl
from ..datasets import Dataset, Limit

SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "hexagon",
    "diamond",
    "ring",
    "crescent",
    "heart",
    "arrow",
    "pentagon",
)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
TEXTURES = ("plain", "striped", "dotted", "checkered")
BACKGROUNDS = {
    "grey": (128, 128, 128),
    "sand": (210, 190, 150),
    "sky": (150, 190, 230),
    "grass": (110, 160, 90),
    "night": (30, 30, 60),
    "rose": (220, 170, 180),
}
TEMPLATES = (
    "a photo of a {c}.",
    "a {c} shape.",
    "a drawing of a {c}.",
    "an image of a {c}.",
    "a small {c}.",
    "a large {c}.",
)
SPLIT_OFFSET = {"train": 0, "test": 10_000_019, "val": 20_000_039}
IMAGE_SIZE = 224


def _polygon(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def pts(radii: list[float], n: int) -> list[tuple[float, float]]:
        return [
            (
                cx + radii[i % len(radii)] * r * math.cos(rot + 2 * math.pi * i / n),
                cy + radii[i % len(radii)] * r * math.sin(rot + 2 * math.pi * i / n),
            )
            for i in range(n)
        ]

    if kind == "square":
        return pts([1.0], 4)
    if kind == "triangle":
        return pts([1.0], 3)
    if kind == "star":
        return pts([1.0, 0.42], 10)
    if kind == "hexagon":
        return pts([1.0], 6)
    if kind == "pentagon":
        return pts([1.0], 5)
    if kind == "diamond":
        return pts([1.0, 0.55], 4)
    if kind == "cross":
        w = 0.33
        base = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    elif kind == "arrow":
        base = [(-1, -0.3), (0.2, -0.3), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.3), (-1, 0.3)]
    elif kind == "heart":
        base = [
            (
                16 * math.sin(t) ** 3 / 16,
                -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 16,
            )
            for t in np.linspace(0, 2 * math.pi, 40)
        ]
    else:
        raise ValueError(kind)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]


def _texture(kind: str, colour: tuple[int, int, int], rng: np.random.Generator) -> Image.Image:
    tex = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), colour)
    if kind == "plain":
        return tex
    other = tuple(int(v * 0.45) for v in colour) if sum(colour) > 200 else tuple(min(255, v + 110) for v in colour)
    d = ImageDraw.Draw(tex)
    step = int(rng.integers(8, 14))
    if kind == "striped":
        for x in range(-IMAGE_SIZE, IMAGE_SIZE * 2, step):
            d.line([(x, 0), (x + IMAGE_SIZE, IMAGE_SIZE)], fill=other, width=max(2, step // 3))
    elif kind == "dotted":
        for y in range(0, IMAGE_SIZE, step):
            for x in range(0, IMAGE_SIZE, step):
                d.ellipse([x, y, x + step // 3, y + step // 3], fill=other)
    elif kind == "checkered":
        for y in range(0, IMAGE_SIZE, step):
            for x in range(0, IMAGE_SIZE, step):
                if (x // step + y // step) % 2:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=other)
    return tex


def render(seed: int) -> tuple[Image.Image, int, str]:
    """Image, class index and caption of the item with this seed."""
    image, label, caption, _ = render_with_mask(seed)
    return image, label, caption


def render_with_mask(seed: int) -> tuple[Image.Image, int, str, np.ndarray]:
    """:func:`render` plus the shape's exact mask: a (224, 224) bool array, True where the shape was drawn (before the
    0.6 px edge softening of the paste), so dense tasks (segmentation, detection) get their ground truth offline."""
    rng = np.random.default_rng(seed)
    label = int(rng.integers(len(SHAPES)))
    shape = SHAPES[label]
    colour_name = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    bg_name = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    bg = np.array(BACKGROUNDS[bg_name], dtype=np.float32)
    # background: its colour, a gentle gradient and grain, so no two images share pixels
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE
    angle = rng.uniform(0, 2 * math.pi)
    grad = (math.cos(angle) * xx + math.sin(angle) * yy)[..., None] * rng.uniform(-40, 40)
    grain = rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE, 3))
    canvas = Image.fromarray(np.clip(bg + grad + grain, 0, 255).astype(np.uint8))
    size_word = "small" if rng.random() < 0.4 else "large"
    r = rng.uniform(28, 45) if size_word == "small" else rng.uniform(55, 85)
    cx, cy = rng.uniform(r + 4, IMAGE_SIZE - r - 4, size=2)
    rot = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    d = ImageDraw.Draw(mask)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        d.ellipse(box, fill=255)
    elif shape == "ring":
        d.ellipse(box, fill=255)
        d.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    elif shape == "crescent":
        d.ellipse(box, fill=255)
        off = 0.45 * r
        d.ellipse(
            [
                cx - r + off * math.cos(rot),
                cy - r + off * math.sin(rot),
                cx + r + off * math.cos(rot),
                cy + r + off * math.sin(rot),
            ],
            fill=0,
        )
    else:
        d.polygon(_polygon(shape, cx, cy, r, rot), fill=255)
    canvas.paste(_texture(texture, COLOURS[colour_name], rng), (0, 0), mask.filter(ImageFilter.GaussianBlur(0.6)))
    caption = f"a {size_word} {colour_name} {texture} {shape} on a {bg_name} background."
    return canvas, label, caption, np.asarray(mask) > 0


class ToyWorld(Dataset):
    """Generated shapes on backgrounds with captions (12 classes); ``split`` train or test; ``n`` items."""

    task = "classification"
    classnames = SHAPES
    templates = TEMPLATES

    def __init__(self, split: str = "test", n: Limit = 600, seed: int = 0):
        if int(n) < 1:
            raise ValueError(f"n must be >= 1 (the number of images), got {n}")
        if split not in SPLIT_OFFSET:
            raise ValueError(f"split must be one of {', '.join(SPLIT_OFFSET)}, got {split!r}")
        self.name, self.split, self.n, self.seed = "toyworld", split, int(n), int(seed)
        self.labels = np.array([self._label(i) for i in range(self.n)], dtype=np.int64)

    def _seed(self, index: int) -> int:
        return self.seed * 1_000_000_007 + SPLIT_OFFSET[self.split] + index

    def _label(self, index: int) -> int:
        return int(np.random.default_rng(self._seed(index)).integers(len(SHAPES)))

    def __len__(self) -> int:
        return self.n

    def item_id(self, index: int) -> str:
        return f"{self.split}/{index}"

    def load(self, index: int) -> Image.Image:
        return render(self._seed(index))[0]

    def caption(self, index: int) -> str:
        return render(self._seed(index))[2]

    def load_with_mask(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The item's image and its shape's exact mask ((H, W) bool; the class is ``labels[index]``)."""
        image, _, _, mask = render_with_mask(self._seed(index))
        return image, mask

    def params(self) -> dict[str, Any]:
        return {"split": self.split, "n": self.n, "seed": self.seed, "generator": 1}


@hookimpl
def register_datasets(register):
    register("toyworld", ToyWorld, "Generated shapes with captions, 12 classes, offline (the embedded default)")
