"""Crop scores, strict local maxima and the selection rule against direct computation and brute force."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_rics.selection import (
    CropSelector,
    adversarial_bound,
    consistency_bound,
    correlate,
    crop_content_order,
    extract_crops,
    mexican_hat,
    random_filter,
    select_local_max,
    strict_local_max,
    to_levels,
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
    sel = CropSelector(10, "rand")
    with pytest.raises(dataclasses.FrozenInstanceError):  # validated once: k and score cannot change afterwards
        sel.k = 40


def test_to_levels_undoes_the_normalization_per_channel_and_clamps():
    mean, std = (0.5, 0.25, 0.0), (0.25, 0.5, 1.0)
    x = torch.tensor([[-2.0, 0.0, 2.0, 10.0], [-3.0, -0.5, 0.25, 1.5], [0.0, 0.2, 0.5, -0.1]]).view(1, 3, 1, 4)
    # channel 0: (x / 4 + 0.5) * 255 = 0, 127.5 -> 128 (half to even), 255, 765 -> 255
    # channel 1: (x / 2 + 0.25) * 255 = -318.75 -> 0, 0, 95.625 -> 96, 255
    # channel 2: x * 255 = 0, 51, 127.5 -> 128, -25.5 -> 0
    expected = [[0, 128, 255, 255], [0, 0, 96, 255], [0, 51, 128, 0]]
    got = to_levels(x, mean, std)
    assert got.dtype == torch.float64 and got[0, :, 0].tolist() == expected


def test_mexican_hat_hand_values():
    hat = mexican_hat(5, 1.0)  # centre c = 2; q = r^2 / 2: 1000 (1 - q) exp(-q), rounded
    assert hat[0, 2, 2] == 1000
    assert hat[0, 2, 3] == round(500 * math.exp(-0.5)) == 303  # r^2 = 1
    assert hat[0, 1, 3] == 0  # r^2 = 2: on the zero crossing
    assert hat[0, 0, 2] == round(-1000 * math.exp(-2)) == -135  # r^2 = 4, one axis only
    assert hat[0, 0, 0] == round(-3000 * math.exp(-4)) == -55  # r^2 = 8, both axes
    assert torch.equal(hat[0], hat[0].T) and torch.equal(hat[0], hat[0].flip(0))
    even = mexican_hat(4, 2.0)  # centre between pixels: r^2 = 0.5 at the four middle ones
    assert even[0, 1, 1] == even[0, 2, 2] == round(1000 * (1 - 0.0625) * math.exp(-0.0625))


def test_random_filter_is_seeded_integer_gaussian_scaled_by_1000():
    f = random_filter(64, 3, seed=5)
    expected = torch.round(
        torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 1000
    )
    assert torch.equal(f, expected)
    assert abs(f.std().item() - 1000) < 20  # 12,288 draws: standard error of the std ~ 0.6 %
    assert random_filter(4).shape == (3, 4, 4)  # three channels unless told


def test_paper_defaults():
    # section 3.1: Mexican hat sigma 50, then 20 or 9 for images without a local maximum; RICS-rand modulo a prime
    sel = CropSelector(140)
    assert sel.sigmas == (50.0, 20.0, 9.0) and sel.score == "rand" and not sel.cyclic and sel.seed == 0
    assert sel.modulus == 65521


def test_extract_crops_realistic_does_not_wrap():
    x = torch.arange(2 * 2 * 7 * 6, dtype=torch.float32).view(2, 2, 7, 6)
    corners = torch.tensor([[0, 3], [4, 1]])
    got = extract_crops(x, corners, 3)
    assert got.shape == (2, 2, 3, 3)
    assert torch.equal(got[0], x[0, :, 0:3, 3:6]) and torch.equal(got[1], x[1, :, 4:7, 1:4])
    with pytest.raises(IndexError):
        extract_crops(x, torch.tensor([[5, 0], [0, 0]]), 3)  # past the bottom edge: no wrap-around


def _largest_content(levels: np.ndarray, positions, k: int, cyclic: bool) -> int:
    """Independent: read each crop row by row, each row channel by channel, as one tuple; the first largest wins."""
    c, h, w = levels.shape
    keys = []
    for i, j in positions:
        rows = [(i + r) % h for r in range(k)]
        cols = [(j + s) % w for s in range(k)]
        keys.append(tuple(levels[ch, r, s] for r in rows for ch in range(c) for s in cols))
    return max(range(len(keys)), key=lambda m: (keys[m], -m))


@pytest.mark.parametrize("cyclic", [False, True])
def test_crop_content_order_is_the_lexicographic_order_of_the_crops(cyclic):
    rng = np.random.default_rng(3)
    for trial in range(40):
        h, w, k = 9, 8, 4
        # two levels only: crops agree on their first rows often, so later rows and channels decide
        img = rng.integers(0, 2, (2, h, w)).astype(np.float64)
        hi, wi = (h, w) if cyclic else (h - k + 1, w - k + 1)
        flat = rng.choice(hi * wi, size=6, replace=False)
        pos = np.stack([flat // wi, flat % wi], axis=1)
        got = crop_content_order(torch.from_numpy(img), torch.from_numpy(pos), k, cyclic)
        assert got == _largest_content(img, pos.tolist(), k, cyclic), trial


def test_crop_content_order_keeps_the_first_of_identical_contents():
    img = np.tile(np.array([[1.0, 5.0], [3.0, 2.0]]), (1, 5, 5))  # period 2: crops at even offsets are identical
    pos = torch.tensor([[0, 2], [1, 1], [2, 0], [1, 3], [0, 0]])
    # rows 0 / 2 start 1, 5, ...; rows 1 / 3 start 2, 3, ...: the crops at (1, 1) and (1, 3) are the same, largest one
    assert crop_content_order(torch.from_numpy(img), pos, 4) == 1


def test_tied_local_maxima_are_broken_by_content_not_position():
    levels = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    levels[0, 0, 4, 4] = 9.0  # only the crop at (3, 3) (k = 2) holds the bright pixel
    scores = torch.zeros(1, 5, 5, dtype=torch.float64)
    scores[0, 1, 1] = scores[0, 3, 3] = 4.0  # two strict local maxima with the same score
    assert select_local_max(scores)[0].tolist() == [[1, 1]]  # raster order without the image
    corners, found = select_local_max(scores, levels=levels, k=2)
    assert corners.tolist() == [[3, 3]] and found.tolist() == [True]
    with pytest.raises(ValueError, match="needs the crop size k"):
        select_local_max(scores, levels=levels)


def test_mexican_hat_falls_back_to_smaller_sigmas_per_image():
    # image 0: a bright blob, a local maximum at the first sigma; image 1: a steep ramp with a small bump, which only the
    # narrower hat resolves into a local maximum; image 2: the ramp alone, whose correlation with any hat is a plane
    # without an interior local maximum, so it falls through to the last sigma's global maximum
    n, k = 24, 9
    yy, xx = torch.meshgrid(torch.arange(n).double(), torch.arange(n).double(), indexing="ij")
    blob = 200.0 * torch.exp(-((yy - 9.0) ** 2 + (xx - 13.0) ** 2) / 8.0)
    ramp = 6.0 * xx + yy / 2
    bump = 120.0 * torch.exp(-((yy - 11.0) ** 2 + (xx - 9.0) ** 2) / 4.5)
    levels = torch.round(torch.stack([blob, ramp + bump, ramp])[:, None].expand(3, 3, n, n)).clamp(0, 255)
    sel = CropSelector(k, "mh", sigmas=(6.0, 3.0))
    wide, found_wide = select_local_max(sel.score_map(levels, 6.0), levels=levels, k=k)
    narrow, found_narrow = select_local_max(sel.score_map(levels, 3.0), levels=levels, k=k)
    assert found_wide.tolist() == [True, False, False] and found_narrow.tolist()[1:] == [True, False]
    got = sel.select(levels)
    assert got.tolist() == [wide[0].tolist(), narrow[1].tolist(), narrow[2].tolist()]
    assert got.tolist() == [[5, 9], [7, 6], [15, 15]]  # the blob and the bump centred in the crop; the ramp's corner


def test_correlate_refuses_a_filter_that_does_not_fit():
    x = _levels(1, 3, 8, 8)
    with pytest.raises(ValueError, match="does not fit"):
        correlate(x, random_filter(3, 1))  # one channel for a three-channel image
    with pytest.raises(ValueError, match="does not fit"):
        correlate(x, random_filter(9, 3))  # larger than the image
    assert correlate(x, random_filter(3)).shape == (1, 6, 6)  # default: three channels
