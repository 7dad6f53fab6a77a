"""Crop scores, strict local maxima and the selection rule against direct computation and brute force."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_rics.selection import (
    CropSelector,
    adversarial_bound,
    consistency_bound,
    correlate,
    extract_crops,
    mexican_hat,
    random_filter,
    select_local_max,
    strict_local_max,
)


def _levels(b, c, h, w, seed=0):
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed)).double()


def test_valid_correlation_is_the_exact_integer_conv():
    x, f = _levels(3, 3, 30, 27), random_filter(11, 3, seed=4)
    direct = F.conv2d(x, f[None])[:, 0]  # integer-valued float64: exact in any summation order
    got = correlate(x, f)
    assert got.shape == (3, 20, 17)
    assert torch.equal(got, direct)


def test_cyclic_correlation_is_the_score_of_every_rolled_crop():
    x, f = _levels(2, 3, 12, 12, seed=1), random_filter(5, 3, seed=2)
    got = correlate(x, f, cyclic=True)
    for i, j in itertools.product(range(12), range(12)):
        crop = torch.roll(x, shifts=(-i, -j), dims=(2, 3))[:, :, :5, :5]
        assert torch.equal(got[:, i, j], (crop * f).sum(dim=(1, 2, 3)))


def _brute_select(g: np.ndarray, cyclic: bool):
    h, w = g.shape
    best = None
    for i in range(h):
        for j in range(w):
            if not cyclic and (i in (0, h - 1) or j in (0, w - 1)):
                continue
            neigh = [g[(i + a) % h, (j + b) % w] for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
            if all(g[i, j] > v for v in neigh) and (best is None or g[i, j] > g[best]):
                best = (i, j)
    if best is None:
        best = np.unravel_index(np.argmax(g), g.shape)
        return tuple(int(v) for v in best), False
    return best, True


@pytest.mark.parametrize("cyclic", [False, True])
def test_local_max_selection_matches_brute_force(cyclic):
    gen = torch.Generator().manual_seed(7)
    maps = torch.randint(0, 6, (300, 7, 9), generator=gen).double()  # few levels: many ties and plateaus
    maps[:5] = 3.0  # constant maps: no strict local maximum anywhere
    corners, found = select_local_max(maps, cyclic)
    for g, c, f in zip(maps.numpy(), corners.tolist(), found.tolist()):
        expect, expect_found = _brute_select(g, cyclic)
        assert (tuple(c), f) == (expect, expect_found)
    assert not found[:5].any()


def test_edge_is_never_a_local_max():
    g = torch.zeros(1, 5, 5, dtype=torch.float64)
    g[0, 0, 2] = 10.0  # the global maximum sits on the edge
    g[0, 2, 2] = 1.0
    assert strict_local_max(g)[0, 0, 2].item() is False
    assert select_local_max(g)[0].tolist() == [[2, 2]]


def test_mexican_hat_shape():
    hat = mexican_hat(141, 50.0)
    assert hat.shape == (3, 141, 141)
    assert hat[0, 70, 70] == 1000  # centre: 1000 * MH(0)
    # zero crossing of (1 - r^2 / 2 s^2) at r = 50 sqrt(2) = 70.7: positive inside, negative in the corners
    assert 0 <= hat[0, 70, 140] <= 10 and hat[0, 0, 0] < 0 and torch.equal(hat[0], hat[2])


def test_extract_crops_realistic_and_cyclic():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    corners = torch.tensor([[1, 2], [4, 5]])
    got = extract_crops(x, corners, 3, cyclic=True)
    assert torch.equal(got[0], x[0, :, 1:4, 2:5])
    assert torch.equal(got[1], torch.roll(x[1], shifts=(-4, -5), dims=(1, 2))[:, :3, :3])


def _selection_stability(n: int, k: int, d: int, images: int, score: str = "rand"):
    """Select in every window shifted by |dy|, |dx| <= d of larger noise images; compare absolute crop positions."""
    big = _levels(images, 3, n + 2 * d, n + 2 * d, seed=11)
    sel = CropSelector(k, score)
    chosen = []
    for dy, dx in itertools.product(range(-d, d + 1), repeat=2):
        corners = sel.select(big[:, :, d + dy : d + dy + n, d + dx : d + dx + n])
        chosen.append(corners + torch.tensor([d + dy, d + dx]))
    chosen = torch.stack(chosen, dim=1)  # (images, shifts, 2)
    centre = (2 * d + 1) ** 2 // 2
    same = (chosen == chosen[:, centre : centre + 1]).all(dim=-1)
    adv = same.all(dim=1).double().mean().item()
    cons = ((same.double().sum(dim=1) - 1) / ((2 * d + 1) ** 2 - 1)).mean().item()
    return adv, cons


def test_pseudo_random_selection_stability_meets_the_bounds():
    # RICS-rand on noise images is a pseudo-random crop function (Definition 1): the maximum is uniform over crops
    n, k, d, images = 40, 20, 1, 400
    adv, cons = _selection_stability(n, k, d, images)
    expected = adversarial_bound(n, k, d, exclude_edge=True)  # 0.655: the exact value for Algorithm 1
    sigma = np.sqrt(expected * (1 - expected) / images)
    assert abs(adv - expected) < 3 * sigma  # (a 4000-image run measured 0.648; the paper's count gives 0.682)
    assert cons >= consistency_bound(n, k, d)  # eq. (4), the worst single shift: 0.826


def test_selection_is_deterministic_and_seeded():
    x = _levels(4, 3, 32, 32, seed=3)
    a = CropSelector(20, "rand", seed=0).select(x)
    assert torch.equal(a, CropSelector(20, "rand", seed=0).select(x))
    assert not torch.equal(a, CropSelector(20, "rand", seed=1).select(x))
    mh = CropSelector(20, "mh").select(x)
    assert ((mh >= 1) & (mh <= 32 - 20 - 1)).all()  # interior of the 13 x 13 score map


def test_selector_rejects_bad_sizes():
    with pytest.raises(ValueError, match="smaller than the model input"):
        CropSelector(32, "rand").select(_levels(1, 3, 32, 32))
    with pytest.raises(ValueError, match="choices: rand, mh"):
        CropSelector(10, "sobel")
