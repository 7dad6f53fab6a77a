"""Tiny configurations of every backbone: same code paths as the published ones, CPU-sized."""

from __future__ import annotations

import pytest
import torch

TINY = {
    ("edsr", "baseline"): {"num_feat": 8, "num_block": 2},
    ("edsr", "large"): {"num_feat": 8, "num_block": 2},
    ("swinir", "classical"): {"embed_dim": 12, "depths": (2,), "num_heads": (2,)},
    ("swinir", "lightweight"): {"embed_dim": 12, "depths": (2,), "num_heads": (2,)},
    ("swinir", "real"): {"embed_dim": 12, "depths": (2,), "num_heads": (2,)},
    ("swinir", "real-large"): {"embed_dim": 16, "depths": (2,), "num_heads": (2,)},
    ("rrdbnet", "esrgan"): {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    ("rrdbnet", "bsrgan"): {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    ("rrdbnet", "realesrgan"): {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
