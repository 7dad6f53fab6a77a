"""Registers the ``colour-probe`` model and the ``swatches`` dataset: the entry point
``lrbench = example = lrbench_example.plugin`` points here."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from lrbench import Dataset, ModelAdapter, Preprocess, hookimpl

COLOURS = {
    "red": (0.86, 0.16, 0.16),
    "green": (0.16, 0.67, 0.24),
    "blue": (0.16, 0.31, 0.86),
    "yellow": (0.92, 0.82, 0.16),
    "purple": (0.59, 0.24, 0.75),
    "orange": (0.96, 0.55, 0.12),
    "white": (0.96, 0.96, 0.96),
    "black": (0.08, 0.08, 0.08),
}


class ColourProbe(ModelAdapter):
    """Zero-shot by colour: the image embedding is its mean RGB, a prompt's embedding the RGB of its colour word."""

    kind = "zero-shot"

    def __init__(self, input_size: int = 32):
        self.preprocess = Preprocess(image_size=input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.logit_scale = 10.0

    def identity(self) -> dict:
        return {"family": "colour-probe", "input_size": self.preprocess.image_size, "version": 1}

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) - 0.5

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            rgb = next((v for k, v in COLOURS.items() if k in text.lower()), (0.5, 0.5, 0.5))
            rows.append(torch.tensor(rgb) - 0.5)
        return torch.stack(rows).to(self.device)


class Swatches(Dataset):
    """Colour swatches generated from a seed (no files): each item is one colour of :data:`COLOURS` with per-pixel
    noise, so a run works anywhere and the class is recoverable from the mean colour at any resolution."""

    name = "swatches"
    templates = ("a photo of a {c} thing.",)

    def __init__(self, n_per_class: int = 4, size: int = 48, noise: float = 0.15, seed: int = 0):
        if n_per_class < 1 or size < 1 or not 0 <= noise <= 1:
            raise ValueError("swatches: n_per_class and size must be >= 1 and noise in [0, 1]")
        self.n_per_class, self.size, self.noise, self.seed = n_per_class, size, noise, seed
        self.classnames = list(COLOURS)
        self.labels = np.repeat(np.arange(len(COLOURS)), n_per_class)

    def params(self) -> dict:
        return {"n_per_class": self.n_per_class, "size": self.size, "noise": self.noise, "seed": self.seed}

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Image.Image:
        rgb = np.array(COLOURS[self.classnames[int(self.labels[index])]])
        rng = np.random.default_rng([self.seed, index])
        pixels = rgb + rng.uniform(-self.noise, self.noise, size=(self.size, self.size * 3 // 2, 3))
        return Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))


@hookimpl
def register_datasets(register):
    register("swatches", Swatches, "Generated colour swatches, one class per colour word (an example plugin's data)")


@hookimpl
def register_models(register):
    register("colour-probe", ColourProbe, "Zero-shot by mean colour (an example plugin's model)")
