"""Toy faces: a generated identity dataset small enough to train a face embedder on a CPU in minutes.

An identity is a random parametric face: head ellipse, skin and hair colour, eye spacing / size / iris colour, brows,
mouth width and curvature, a few small marks and a fine stripe texture. An image of it is the face rendered through a
random pose-like warp (rotation, scale, shift, yaw squeeze), random lighting (gain, gradient, colour cast), a random
background and sensor noise. Coarse cues (colours, head shape) survive 7 px; the marks, texture and exact feature
geometry do not, so a model trained on 112 px leans on detail that low resolution erases: the papers' problem in small.

Images are generated from (seed, split, identity, index): no files, identical on every machine; train and test
identities are disjoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from lrbench import Dataset

from .datasets import IdentificationDataset, VerificationDataset

SIZE = 112
SPLIT_OFFSET = {"train": 0, "test": 1_000_003, "val": 2_000_029}


def identity_params(seed: int, split: str, ident: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, SPLIT_OFFSET[split], ident])
    return {
        "skin": rng.uniform(0.6, 0.85, 3) * np.array([1.0, 0.85, 0.75]),  # narrow: colour alone identifies few
        "hair": rng.uniform(0.1, 0.45, 3),
        "iris": rng.uniform(0.0, 0.9, 3),
        "head": (rng.uniform(28, 38), rng.uniform(38, 48)),  # semi-axes x, y
        "hairline": rng.uniform(-0.95, -0.45),  # in head-normalised y
        "eye_y": rng.uniform(-0.35, -0.1),
        "eye_dx": rng.uniform(0.3, 0.5),
        "eye_r": rng.uniform(0.09, 0.16),
        "brow_dy": rng.uniform(0.12, 0.22),
        "brow_tilt": rng.uniform(-0.25, 0.25),
        "mouth_y": rng.uniform(0.35, 0.6),
        "mouth_w": rng.uniform(0.2, 0.45),
        "mouth_curve": rng.uniform(-0.6, 0.6),
        "nose_len": rng.uniform(0.1, 0.3),
        "marks": np.column_stack(
            [
                rng.uniform(-0.7, 0.7, 5),
                rng.uniform(-0.6, 0.8, 5),
                rng.uniform(0.03, 0.07, 5),
                rng.choice([-1.0, 1.0], 5) * rng.uniform(0.15, 0.35, 5),
            ]
        ),
        "stripe": (rng.uniform(0, np.pi), rng.uniform(0.25, 0.45), rng.uniform(0.04, 0.08)),  # angle, cyc/px, amp
    }


def _soft(signed: np.ndarray, width: float = 0.6) -> np.ndarray:
    """Antialiased mask from a signed distance in pixels (inside < 0)."""
    return 1.0 / (1.0 + np.exp(np.clip(signed / width, -30, 30)))


def render(p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """One (112, 112, 3) float image in [0, 1] of identity ``p`` under a random pose, lighting and noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    angle, scale = rng.normal(0, 0.12), rng.uniform(0.9, 1.1)
    tx, ty, yaw = rng.normal(0, 3, 2).tolist() + [rng.uniform(-0.15, 0.15)]
    # inverse warp: image coordinates -> canonical face coordinates (pixels around the face centre)
    x0, y0 = (xx - 56 - tx) / scale, (yy - 58 - ty) / scale
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x0 + s * y0, -s * x0 + c * y0
    u = u / (1 + yaw * np.sign(u))  # one side of the face squeezed: a cheap yaw
    ax, ay = p["head"]
    nx, ny = u / ax, v / ay  # head-normalised coordinates, the head is the unit disc
    img = np.empty((SIZE, SIZE, 3))
    img[:] = rng.uniform(0.1, 0.9, 3)  # background, not identity information
    r = np.sqrt(nx**2 + ny**2)
    head = _soft((r - 1) * min(ax, ay))
    theta, freq, amp = p["stripe"]
    stripes = amp * np.sin(2 * np.pi * freq * (u * np.cos(theta) + v * np.sin(theta)))
    skin = np.clip(p["skin"][None, None] + stripes[..., None], 0, 1)
    img = img * (1 - head[..., None]) + skin * head[..., None]
    hair = head * _soft((ny - p["hairline"]) * ay)
    img = img * (1 - hair[..., None]) + p["hair"] * hair[..., None]
    for side in (-1, 1):
        ex, ey, er = side * p["eye_dx"], p["eye_y"], p["eye_r"]
        d = np.sqrt((nx - ex) ** 2 + ((ny - ey) * 1.4) ** 2)
        white = _soft((d - er) * ax)
        img = img * (1 - white[..., None]) + 0.95 * white[..., None]
        iris = _soft((d - er * 0.55) * ax)
        img = img * (1 - iris[..., None]) + p["iris"] * iris[..., None]
        by = ey - p["brow_dy"] + side * p["brow_tilt"] * (nx - ex) * 0.5
        brow = _soft(np.maximum(np.abs(ny - by) * ay - 1.2, (np.abs(nx - ex) - er * 1.3) * ax))
        img = img * (1 - 0.8 * brow[..., None]) + 0.8 * p["hair"] * brow[..., None]
    nose = _soft(np.maximum(np.abs(nx) * ax - 1.0, (np.abs(ny - 0.12) - p["nose_len"] / 2) * ay))
    img = img * (1 - 0.35 * nose[..., None])
    mouth_line = p["mouth_y"] + p["mouth_curve"] * (nx / max(p["mouth_w"], 1e-3)) ** 2 * 0.1
    mouth = _soft(np.maximum(np.abs(ny - mouth_line) * ay - 1.5, (np.abs(nx) - p["mouth_w"]) * ax))
    img = img * (1 - mouth[..., None]) + np.array([0.55, 0.15, 0.2]) * mouth[..., None]
    for mx, my, mr, tone in p["marks"]:
        mark = head * _soft((np.sqrt((nx - mx) ** 2 + (ny - my) ** 2) - mr) * ax)
        img = np.clip(img + tone * mark[..., None], 0, 1)
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)
    gradient = 1 + rng.normal(0, 0.15) * (xx - 56) / 56 + rng.normal(0, 0.1) * (yy - 56) / 56
    img = img * gain[None, None] * gradient[..., None]
    img = img + rng.normal(0, rng.uniform(0.01, 0.04), img.shape)
    return np.clip(img, 0, 1)


def render_image(seed: int, split: str, ident: int, index: int) -> Image.Image:
    rng = np.random.default_rng([seed, SPLIT_OFFSET[split], ident, index, 7])
    arr = render(identity_params(seed, split, ident), rng)
    return Image.fromarray((arr * 255).round().astype(np.uint8))


class ToyFaces(Dataset):
    """Toy face images labelled by identity (``images`` per identity): the training set of the offline proof."""

    task = "classification"

    def __init__(self, split: str = "train", identities: int = 200, images: int = 20, seed: int = 0):
        if split not in SPLIT_OFFSET:
            raise ValueError(f"toyfaces: unknown split {split!r}; choices: {', '.join(SPLIT_OFFSET)}")
        self.split, self.identities, self.images, self.seed = split, int(identities), int(images), int(seed)
        self.name = f"toyfaces-{split}"
        self.labels = np.repeat(np.arange(self.identities), self.images)
        self.classnames = [f"id{i:05d}" for i in range(self.identities)]

    def __len__(self) -> int:
        return self.identities * self.images

    def item_id(self, index: int) -> str:
        return f"{self.split}/{index // self.images}/{index % self.images}"

    def load(self, index: int) -> Image.Image:
        return render_image(self.seed, self.split, index // self.images, index % self.images)

    def params(self) -> dict[str, Any]:
        return {"split": self.split, "identities": self.identities, "images": self.images, "seed": self.seed}


class ToyFacePairs(VerificationDataset):
    """Toy face verification pairs in the LFW shape: ``pairs`` split in 10 folds, each half genuine, half imposter."""

    def __init__(self, split: str = "test", identities: int = 100, pairs: int = 600, seed: int = 0):
        if split not in SPLIT_OFFSET:
            raise ValueError(f"toyfaces-pairs: unknown split {split!r}; choices: {', '.join(SPLIT_OFFSET)}")
        if pairs % 20:
            raise ValueError(f"toyfaces-pairs: pairs must be a multiple of 20 (10 folds, half genuine), got {pairs}")
        self.split, self.identities, self.n_pairs, self.seed = split, int(identities), int(pairs), int(seed)
        self.name = f"toyfaces-pairs-{split}"
        rng = np.random.default_rng([seed, SPLIT_OFFSET[split], 99])
        items: list[tuple[int, int]] = []  # (identity, image index); image indices 100+ never overlap training ones
        same: list[bool] = []
        per = pairs // 20
        for _fold in range(10):
            for genuine in (True, False):
                for _ in range(per):
                    a = int(rng.integers(identities))
                    b = a if genuine else int((a + rng.integers(1, identities)) % identities)
                    items += [(a, int(rng.integers(1000))), (b, int(rng.integers(1000)))]
                    if genuine and items[-1][1] == items[-2][1]:
                        items[-1] = (b, (items[-1][1] + 1) % 1000)
                    same.append(genuine)
        self._items = items
        self._set_pairs([(2 * i, 2 * i + 1) for i in range(len(same))], same)

    def __len__(self) -> int:
        return len(self._items)

    def item_id(self, index: int) -> str:
        return "{}/{}/{}".format(self.split, *self._items[index])

    def load(self, index: int) -> Image.Image:
        return render_image(self.seed, self.split, *self._items[index])

    def params(self) -> dict[str, Any]:
        return {"split": self.split, "identities": self.identities, "pairs": self.n_pairs, "seed": self.seed}


class ToyFaceGallery(IdentificationDataset):
    """Toy face identification: per identity one gallery image and ``probes`` probe images, plus distractors."""

    def __init__(
        self, split: str = "test", identities: int = 50, probes: int = 4, distractors: int = 50, seed: int = 0
    ):
        self.split, self.identities, self.probes, self.distractors, self.seed = (
            split,
            int(identities),
            int(probes),
            int(distractors),
            int(seed),
        )
        self.name = f"toyfaces-id-{split}"
        items = [(i, 0, "gallery") for i in range(identities)]
        items += [(identities + j, 0, "gallery") for j in range(distractors)]
        items += [(i, 1 + k, "probe") for i in range(identities) for k in range(probes)]
        self._items = items
        self.labels = np.array([i if i < identities else -1 for i, _, _ in items], dtype=np.int64)
        self.roles = np.array([r for _, _, r in items])
        self.groups = np.array([""] * len(items))

    def __len__(self) -> int:
        return len(self._items)

    def item_id(self, index: int) -> str:
        i, k, role = self._items[index]
        return f"{self.split}/{i}/{k}/{role}"

    def load(self, index: int) -> Image.Image:
        i, k, _ = self._items[index]
        return render_image(self.seed, self.split, i, k)

    def params(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "identities": self.identities,
            "probes": self.probes,
            "distractors": self.distractors,
            "seed": self.seed,
        }
