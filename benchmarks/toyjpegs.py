"""Toy-world test renders saved as JPEGs (quality 90) in an imagefolder layout: photo-like files for the benchmarks.

``sizes`` cycles over canvas sizes (width, height): each render is scaled to the canvas's shorter side and placed at a
deterministic offset along the longer side on its own background colour, so crops and aspect ratios matter.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lrbench.builtin.toyworld import SHAPES, SPLIT_OFFSET, render

#: several aspect ratios: 4:3, 3:4, 16:9, 1:1, 3:2, 2:3 and an odd one
ASPECTS = ((500, 375), (375, 500), (640, 360), (400, 400), (480, 320), (320, 480), (517, 389))


def make_jpegs(root: Path, n: int, sizes: tuple[tuple[int, int], ...] = ((500, 375),)) -> list[Path]:
    """The first n files of the set (written once; a later call with a larger n adds the missing ones)."""
    files = []
    for i in range(n):
        image, label, _ = render(SPLIT_OFFSET["test"] + i)
        path = root / SHAPES[label] / f"{i:06d}.jpg"
        files.append(path)
        if path.is_file():
            continue
        w, h = sizes[i % len(sizes)]
        side = min(w, h)
        canvas = Image.new("RGB", (w, h), image.getpixel((0, 0)))
        offset = (i * 37) % (max(w, h) - side + 1)
        canvas.paste(image.resize((side, side), Image.BICUBIC), (offset, 0) if w > h else (0, offset))
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path, quality=90)
    return files
