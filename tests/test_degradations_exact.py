"""Degradations against direct computation, on NON-square images (a swapped aspect branch cannot pass), with
tolerances at 2-3x the error measured when the test was written; ``Noise.tensor`` is a function of (seed, image)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from lrbench.builtin.degradations import Noise
from lrbench.builtin.toyworld import render


def _photo(w: int, h: int, seed: int = 3) -> Image.Image:
    return render(seed)[0].resize((w, h), Image.BICUBIC)


def _batch(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([TF.pil_to_tensor(im) for im in images]).float().div_(255)


def test_noise_tensor_does_not_depend_on_batch_size_or_position():
    """Batch size is not in the cell key, so an image's noise must not depend on the batch it lands in."""
    images = [_photo(40, 30, seed=s) for s in range(7)]
    noise = Noise(0.1, seed=5)
    whole = noise.tensor(_batch(images))
    one_by_one = torch.cat([noise.tensor(_batch([im])) for im in images])
    reversed_ = noise.tensor(_batch(images[::-1])).flip(0)
    assert torch.equal(whole, one_by_one)
    assert torch.equal(whole, reversed_)


def test_noise_tensor_draws_the_reference_noise_and_depends_on_seed():
    """The fast path adds the same draw as the reference path (same seed from the image's bytes): the only difference
    is the reference's rounding to 8 bits (<= 0.5 level)."""
    img = _photo(40, 30)
    ref = TF.pil_to_tensor(Noise(0.1, seed=5).pil(img)).float() / 255
    fast = Noise(0.1, seed=5).tensor(_batch([img]))[0]
    assert (fast - ref).abs().max().item() <= 0.5 / 255 + 1e-6
    other_seed = Noise(0.1, seed=6).tensor(_batch([img]))[0]
    assert (other_seed - fast).abs().mean().item() > 0.03  # two independent N(0, 0.1) draws differ by ~0.08 on average
    diff = fast - _batch([img])[0]
    assert 0.07 < diff.std().item() < 0.1  # sigma 0.1, a little less after clipping to [0, 1]
