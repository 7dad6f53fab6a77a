"""Shared fixtures: a throwaway plugin with a tiny, deterministic zero-shot model that counts its calls."""

from __future__ import annotations

import zlib

import pytest
import torch

from lrbench import hookimpl
from lrbench.models import ModelAdapter, Preprocess
from lrbench.plugins import Plugins

CALLS = {"encode_image": 0, "images": 0, "loads": 0}


class TinyZeroShot(ModelAdapter):
    """A fixed random projection of 8x8 average-pooled pixels and a hashed bag-of-words text encoder."""

    kind = "zero-shot"

    def __init__(self, dim: int = 32, seed: int = 0, input_size: int = 64):
        g = torch.Generator().manual_seed(seed)
        self.preprocess = Preprocess(image_size=input_size)
        self.module = torch.nn.Linear(3 * 64, dim)
        with torch.no_grad():
            self.module.weight.copy_(torch.randn(dim, 3 * 64, generator=g))
            self.module.bias.zero_()
        self.words = torch.randn(4096, dim, generator=g)
        self.seed, self.dim = seed, dim
        CALLS["loads"] += 1

    def identity(self):
        return {"family": "tiny", "dim": self.dim, "seed": self.seed}

    def encode_image(self, x):
        CALLS["encode_image"] += 1
        CALLS["images"] += len(x)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        return self.module(pooled)

    def encode_text(self, texts):
        out = []
        for t in texts:
            ids = [zlib.crc32(w.encode()) % 4096 for w in t.lower().replace(".", " ").split()]
            out.append(self.words[ids].mean(0))
        return torch.stack(out).to(self.device)


class TestPlugin:
    @hookimpl
    def register_models(self, register):
        register("tiny", TinyZeroShot, "tiny test model")


@pytest.fixture
def plugins():
    return Plugins(load_entry_points=False, extra=[(TestPlugin(), "test-plugin")])


@pytest.fixture
def calls():
    for k in CALLS:
        CALLS[k] = 0
    return CALLS


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
