"""Registers the ``colour-probe`` model: the entry point ``lrbench = example = lrbench_example.plugin`` points here."""

from __future__ import annotations

import torch

from lrbench import ModelAdapter, Preprocess, hookimpl

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


@hookimpl
def register_models(register):
    register("colour-probe", ColourProbe, "Zero-shot by mean colour (an example plugin's model)")
