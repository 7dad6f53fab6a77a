"""Shared fixtures: a tiny random-image dataset and tiny adapters, so every test runs offline in seconds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lrbench.datasets import Dataset
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.models import ModelAdapter, Preprocess


class NoiseImages(Dataset):
    """``n`` seeded 8-bit noise images of ``size`` px, lightly blurred, labels cycling over ``classes``."""

    name = "noise"

    def __init__(self, n: int = 6, size: int = 40, classes: int = 3, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed
        self.classnames = [f"c{i}" for i in range(classes)]
        self.labels = np.arange(n, dtype=np.int64) % classes

    def __len__(self) -> int:
        return self.n

    def load(self, i: int) -> Image.Image:
        rng = np.random.default_rng(self.seed * 1000 + i)
        return Image.fromarray(rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8))


class TinyConvAdapter(ModelAdapter):
    """A random-init conv net: ``classify`` gives 5 logits, ``encode_image`` 16 pooled features."""

    kind = "classifier"

    def __init__(self, size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(16, 5)
        self.module = torch.nn.Sequential(self.features, self.head).eval()
        self.preprocess = Preprocess(image_size=size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def identity(self):
        return {"family": "test", "arch": "tinyconv"}

    def classify(self, x):
        return self.module(x)

    def encode_image(self, x):
        return self.features(x)


class TinyZeroShot(TinyConvAdapter):
    """The same net behind the zero-shot protocol: image embeddings plus hashed text embeddings."""

    kind = "zero-shot"

    def encode_text(self, texts):
        gen = [torch.Generator().manual_seed(sum(map(ord, t))) for t in texts]
        return torch.stack([torch.randn(16, generator=g) for g in gen])


@pytest.fixture
def method_ctx(tmp_path):
    return MethodContext(device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path))


@pytest.fixture
def h():
    """The helper classes (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(NoiseImages=NoiseImages, TinyConvAdapter=TinyConvAdapter, TinyZeroShot=TinyZeroShot)
