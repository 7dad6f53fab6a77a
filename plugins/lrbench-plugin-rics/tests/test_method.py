"""The RICS wrapper: Theorem 2 on a random-init model, what the inner model receives, every adapter kind."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_rics.method import PAPER_FRACTION, RICS, crop_size, rics_cyclic, rics_mh, rics_rand
from lrbench_rics.selection import extract_crops, strict_local_max, to_levels
from PIL import Image


def _image(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("score", ["rand", "mh"])
def test_cyclic_rics_is_invariant_to_every_integer_cyclic_shift(h, score, method_ctx):
    # Theorem 2: all n^2 cyclic shifts of a 24 x 24 input select the same content, so the output cannot change
    n, k = 24, 15
    base = h.TinyConvAdapter(size=n)
    model = rics_cyclic(k=k, score=score).apply(base, method_ctx)
    img = _image(n, seed=3)
    shifts = list(itertools.product(range(n), repeat=2))
    x = base.prepare([Image.fromarray(np.roll(img, s, axis=(0, 1))) for s in shifts])
    with torch.no_grad():
        logits = model.classify(x)
        feats = model.encode_image(x)
    crops = extract_crops(x, model.last_corners, k, cyclic=True)
    assert (crops == crops[:1]).all()  # bit-identical content for all 576 shifts
    assert (logits.argmax(1) == logits[0].argmax()).all()
    assert torch.allclose(logits, logits[:1].expand_as(logits), atol=1e-5)
    assert torch.allclose(feats, feats[:1].expand_as(feats), atol=1e-5)
    # the base model alone is not invariant: the same shifts change its features
    with torch.no_grad():
        plain = base.encode_image(x)
    assert not torch.allclose(plain, plain[:1].expand_as(plain), atol=1e-3)


def _centrally_symmetric(n, seed):
    """I(-y, -x) == I(y, x) (indices mod n): a symmetric Mexican hat gives the crop at p and its 180-degree turned
    partner at -p - (k - 1) exactly the same score, with different content."""
    img = _image(n, seed).astype(np.int64)
    turned = np.roll(img[::-1, ::-1], (1, 1), axis=(0, 1))
    return ((img + turned) // 2).astype(np.uint8)


@pytest.mark.parametrize("kind", ["symmetric", "constant", "periodic"])
def test_tied_scores_keep_theorem_2_under_every_cyclic_shift(h, method_ctx, kind):
    n, k = 24, 12
    img = {
        "symmetric": _centrally_symmetric(n, 5),
        "constant": np.full((n, n, 3), 77, np.uint8),
        "periodic": np.tile(_image(6, seed=2), (4, 4, 1)),
    }[kind]
    base = h.TinyConvAdapter(size=n)
    model = rics_cyclic(k=k, score="mh", sigmas=[3.0]).apply(base, method_ctx)
    shifts = list(itertools.product(range(n), repeat=2))
    x = base.prepare([Image.fromarray(np.roll(img, s, axis=(0, 1))) for s in shifts])
    with torch.no_grad():
        logits = model.classify(x)
    crops = extract_crops(x, model.last_corners, k, cyclic=True)
    assert (crops == crops[:1]).all()  # one content for all 576 shifts, ties included
    assert torch.allclose(logits, logits[:1].expand_as(logits), atol=1e-5)
    if kind == "symmetric":  # the tie is real: two positions share the best score, their crops differ
        sel = model.selector(n)
        levels = to_levels(x[:1], base.preprocess.mean, base.preprocess.std)
        scores = sel.score_map(levels, 3.0)[0]
        mask = strict_local_max(scores[None], cyclic=True)[0]
        best = torch.nonzero(mask & (scores == scores[mask].max()))
        assert len(best) == 2
        a, b = extract_crops(x[:1].expand(2, -1, -1, -1), best, k, cyclic=True)
        assert not torch.equal(a, b)


def test_wrapper_feeds_the_k_by_k_crop_by_default_as_algorithm_1(h, method_ctx):
    base = h.TinyConvAdapter(size=32)
    seen = []
    inner_encode = base.encode_image
    base.encode_image = lambda x: seen.append(tuple(x.shape)) or inner_encode(x)
    model = rics_rand(k=20, seed=5).apply(base, method_ctx)
    x = base.prepare([Image.fromarray(_image(32, seed=s)) for s in range(3)])
    with torch.no_grad():
        got = model.encode_image(x)
        expect = inner_encode(extract_crops(x, model.last_corners, 20))
    assert seen == [(3, 3, 20, 20)] and torch.allclose(got, expect)
    with pytest.raises(ValueError, match="choices: crop, resize"):
        rics_rand(feed="zoom")


def test_wrapper_feed_resize_resizes_the_selected_crop_back(h, method_ctx):
    base = h.TinyConvAdapter(size=32)
    model = rics_rand(k=20, seed=5, feed="resize").apply(base, method_ctx)
    x = base.prepare([Image.fromarray(_image(32, seed=s)) for s in range(3)])
    with torch.no_grad():
        got = model.encode_image(x)
        corners = model.last_corners
        expect = base.encode_image(
            F.interpolate(extract_crops(x, corners, 20), size=(32, 32), mode="bicubic", align_corners=False)
        )
    assert torch.allclose(got, expect)


def test_feed_keys_the_cells_default_included(tmp_path):
    from lrbench.runner import run_spec

    def keys(methods):
        spec = {
            "name": "keys",
            "models": [{"name": "timm:resnet10t", "kind": "embedder", "image_size": 32}],
            "methods": methods,
            "datasets": [{"name": "toyworld", "split": "test", "n": 2}],
            "conditions": [{"name": "cyclic", "max_shift": 1, "size": 32, "axes": "x"}],
            "task": {"name": "shift", "gallery": "eval"},
        }
        plan = run_spec(spec, tmp_path / "run", dry_run=True, cache_dir=tmp_path / "cache")
        return dict(zip(plan["method"], plan["key"]))

    crop = keys(["none", {"name": "rics/rand", "k": 20, "feed": "crop", "label": "R-R"}])
    resize = keys(["none", {"name": "rics/rand", "k": 20, "feed": "resize", "label": "R-R"}])
    assert crop["none"] == resize["none"] and crop["R-R"] != resize["R-R"]
    assert RICS(feed="crop").inputs_identity() != RICS(feed="resize").inputs_identity()


def test_realistic_shift_keeps_the_output_when_the_same_crop_is_chosen(h, method_ctx):
    n, k, d = 32, 20, 1
    base = h.TinyConvAdapter(size=n)
    model = rics_mh(k=k).apply(base, method_ctx)
    agree = total = 0
    for seed in range(6):
        big = _image(n + 2 * d, seed=seed)
        views = [
            Image.fromarray(big[d + dy : d + dy + n, d + dx : d + dx + n])
            for dy, dx in itertools.product(range(-d, d + 1), repeat=2)
        ]
        with torch.no_grad():
            out = model.encode_image(base.prepare(views))
        absolute = model.last_corners + torch.tensor(
            [[d + dy, d + dx] for dy, dx in itertools.product(range(-d, d + 1), repeat=2)]
        )
        same = (absolute == absolute[4]).all(dim=1)
        assert torch.allclose(out[same], out[4].expand_as(out[same]), atol=1e-5)
        agree += int(same.sum()) - 1
        total += len(views) - 1
    assert agree > 0 and total == 48


def test_zero_shot_adapter_through_the_core_protocol(h, method_ctx):
    inner = h.TinyZeroShot(size=32)
    model = RICS(k=20, score="rand").apply(inner, method_ctx)
    assert model.kind == "zero-shot"
    assert torch.equal(model.encode_text(["a c0"]), inner.encode_text(["a c0"]))
    x = inner.prepare([Image.fromarray(_image(32))])
    assert model.encode_image(x).shape == (1, 16)
    ident = model.identity()
    assert ident["base"] == inner.identity()
    assert ident["method"]["params"]["score"] == "rand" and ident["method"]["params"]["k"] == 20


def test_crop_size_defaults_to_the_paper_ratio():
    assert crop_size(224, None, PAPER_FRACTION) == 140
    assert crop_size(64, None, PAPER_FRACTION) == 40
    with pytest.raises(ValueError, match="k=224 must be between 1 and the model input size 224"):
        crop_size(224, 224, PAPER_FRACTION)
    with pytest.raises(ValueError, match="choices: rand, mh"):
        RICS(score="edges")
