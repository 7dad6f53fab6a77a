"""Verification and identification tasks with a transparent embedder (the pixels themselves)."""

import numpy as np
import pytest
import torch
from lrbench_face.datasets import BinVerification, write_bin
from lrbench_face.evaluation import cosine_distance
from lrbench_face.lr import FaceLR, FaceProtocol, lr_pil
from lrbench_face.metrics import DistanceStats, FaceAccuracy, RankK, RocAuc
from lrbench_face.models import FaceEmbedder
from lrbench_face.tasks import Identification, Verification
from lrbench_face.toyfaces import ToyFaceGallery, ToyFacePairs

from lrbench.builtin.degradations import HR, Resize
from lrbench.models import Preprocess
from lrbench.registry import LrbenchError
from lrbench.tasks import RunContext


class Pixels(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)


def pixel_model(size=16):
    return FaceEmbedder(
        Pixels(),
        Preprocess(size, (0.5,) * 3, (0.5,) * 3, "bicubic", "squash"),
        {"family": "pixels"},
        embedding_size=3 * size * size,
    )


def expected_dist(model, ds, first_deg, second_deg):
    def emb(i, deg):
        im = ds.load(i)
        return model.prepare([deg(im) if deg else im]).flatten(1).numpy()[0]

    return np.array([cosine_distance(emb(a, first_deg)[None], emb(b, second_deg)[None])[0] for a, b in ds.pairs])


class CachedPairs(ToyFacePairs):
    """Renders each toy image once (rendering, not the task, is the slow part)."""

    def load(self, index):
        cache = self.__dict__.setdefault("_cache", {})
        if index not in cache:
            cache[index] = super().load(index)
        return cache[index].copy()


@pytest.fixture(scope="module")
def pairs():
    return CachedPairs(identities=8, pairs=20)


def test_cross_and_equal_modes(pairs):
    model = pixel_model()
    conds = [HR(), FaceLR(8), FaceLR(8, mode="equal"), Resize(10)]
    out = Verification().run(model, pairs, conds, RunContext(batch_size=16))

    def lr8(im):
        return lr_pil(im, 8)

    np.testing.assert_allclose(out["hr"]["dist"], expected_dist(model, pairs, None, None), atol=1e-5)
    np.testing.assert_allclose(out["face-lr@8"]["dist"], expected_dist(model, pairs, None, lr8), atol=1e-5)
    np.testing.assert_allclose(out["face-lr@8(mode=equal)"]["dist"], expected_dist(model, pairs, lr8, lr8), atol=1e-5)
    np.testing.assert_allclose(out["bicubic@10"]["dist"], expected_dist(model, pairs, None, Resize(10).pil), atol=1e-5)
    assert out["face-lr@8"]["res"].tolist() == [8] * 20 and out["hr"]["res"].tolist() == [0] * 20
    # the task-level mode applies to conditions that do not set their own
    eq = Verification(mode="equal").run(model, pairs, [FaceLR(8)], RunContext(batch_size=16))
    np.testing.assert_allclose(eq["face-lr@8"]["dist"], out["face-lr@8(mode=equal)"]["dist"], atol=1e-6)
    acc = FaceAccuracy().compute(out["face-lr@8(mode=equal)"], pairs)  # equal resolution: one order
    assert 0 <= acc[""] <= 1 and set(acc) == {"", "std", "threshold"}
    stats = DistanceStats().compute(out["hr"], pairs)
    assert stats["genuine"] == pytest.approx(out["hr"]["dist"][pairs.issame].mean())


def test_cross_resolution_scores_both_orders_and_averages_them(pairs):
    """Knoche et al. 3.4: the LR image second and the LR image first are two protocols; the accuracy is their mean."""
    model = pixel_model()

    def lr8(im):
        return lr_pil(im, 8)

    out = Verification().run(model, pairs, [FaceLR(8)], RunContext(batch_size=16))["face-lr@8"]
    np.testing.assert_allclose(out["dist"], expected_dist(model, pairs, None, lr8), atol=1e-5)
    np.testing.assert_allclose(out["dist_lr_hr"], expected_dist(model, pairs, lr8, None), atol=1e-5)
    assert out["res_lr_hr"].tolist() == [8] * 20
    acc = FaceAccuracy(folds=5).compute(out, pairs)
    one = {
        k: FaceAccuracy(folds=5).compute({"dist": out[k], "issame": out["issame"]}, pairs)[""]
        for k in ("dist", "dist_lr_hr")
    }
    assert acc["hr_lr"] == one["dist"] and acc["lr_hr"] == one["dist_lr_hr"]
    assert acc[""] == pytest.approx((one["dist"] + one["dist_lr_hr"]) / 2)
    assert RocAuc().compute(out, pairs)[""] == pytest.approx(
        (
            RocAuc().compute({"dist": out["dist"], "issame": out["issame"]}, pairs)[""]
            + RocAuc().compute({"dist": out["dist_lr_hr"], "issame": out["issame"]}, pairs)[""]
        )
        / 2
    )
    single = Verification(orders="hr-lr").run(model, pairs, [FaceLR(8)], RunContext(batch_size=16))["face-lr@8"]
    assert "dist_lr_hr" not in single and np.array_equal(single["dist"], out["dist"])
    assert Verification().identity() != Verification(orders="hr-lr").identity()
    with pytest.raises(LrbenchError, match="choices: both, hr-lr"):
        Verification(orders="lr-hr")


def test_protocol_condition_uses_each_images_resolution(pairs):
    model = pixel_model()
    proto = FaceProtocol("low", seed=5)
    r = proto.resolutions(len(pairs))
    out = Verification().run(model, pairs, [proto], RunContext(batch_size=7))["face-protocol@low(seed=5)"]
    assert out["res"].tolist() == r[pairs.pairs[:, 1]].tolist()
    assert out["res_lr_hr"].tolist() == r[pairs.pairs[:, 0]].tolist()  # the flipped order degrades the first image
    i = 3
    a, b = pairs.pairs[i]
    e1 = model.prepare([pairs.load(a)]).flatten(1).numpy()
    e2 = model.prepare([lr_pil(pairs.load(b), int(r[b]))]).flatten(1).numpy()
    assert out["dist"][i] == pytest.approx(cosine_distance(e1, e2)[0], abs=1e-5)


def test_fast_path_close_to_reference(pairs):
    model = pixel_model()
    ref = Verification().run(model, pairs, [FaceLR(8)], RunContext(batch_size=16))["face-lr@8"]["dist"]
    fast = Verification().run(model, pairs, [FaceLR(8)], RunContext(batch_size=16, fast_path=True))["face-lr@8"]["dist"]
    assert np.abs(ref - fast).max() < 0.01


def test_flip_test_sums_mirrored_embeddings(tmp_path):
    images = [ToyFacePairs(identities=4, pairs=20).load(i) for i in range(4)]
    write_bin(tmp_path / "f.bin", images, [True, False])
    ds = BinVerification(str(tmp_path / "f.bin"))
    model = pixel_model(8)
    out = Verification(flip=True).run(model, ds, [HR()], RunContext())["hr"]["dist"]
    x = model.prepare([ds.load(i) for i in range(4)])
    e = (x + torch.flip(x, dims=[-1])).flatten(1).numpy()
    np.testing.assert_allclose(out, cosine_distance(e[[0, 2]], e[[1, 3]]), atol=1e-5)


def test_broken_image_gives_nan_and_is_skipped(pairs):
    class Broken(CachedPairs):
        def load(self, index):
            if index == 5:
                raise OSError("truncated file")
            return super().load(index)

    ds = Broken(identities=8, pairs=20)
    ctx = RunContext(batch_size=8)
    out = Verification().run(pixel_model(), ds, [HR()], ctx)["hr"]
    assert np.isnan(out["dist"][2]) and np.isfinite(np.delete(out["dist"], 2)).all()
    assert ctx.skipped[0]["index"] == 5


def test_identification_ranks():
    ds = ToyFaceGallery(identities=4, probes=1, distractors=2)
    model = pixel_model()
    out = Identification().run(model, ds, [HR(), FaceLR(6)], RunContext(batch_size=8))
    # ranks are 1-based and bounded by the gallery size
    for o in out.values():
        assert ((o["rank"] >= 1) & (o["rank"] <= 6)).all() and len(o["rank"]) == 4
    assert RankK(6).compute(out["hr"], ds)[""] == 1.0
    with pytest.raises(LrbenchError, match="identification dataset"):
        Identification().run(model, ToyFacePairs(identities=4, pairs=20), [HR()], RunContext())
