"""Shift conditions, the shift task and its metrics."""

import numpy as np
import pytest
import torch
from lrbench_rics import plugin as rics_plugin
from lrbench_rics.method import rics_cyclic
from lrbench_rics.metrics import (
    AdvRobustness,
    AdvRobustnessNN,
    Consistency,
    ConsistencyNN,
    KnnAccuracy,
    NNMissing,
    ShiftAccuracy,
    adversarial_robustness,
    consistency,
)
from lrbench_rics.shifts import CropShift, CyclicShift, shift_offsets
from lrbench_rics.task import ShiftTask
from torchvision.transforms import functional as TF

from lrbench.plugins import Plugins
from lrbench.tasks import RunContext

#: the registries a shift condition builds its ``then`` step from (the registry passes them as ``context``)
CONTEXT = Plugins(load_entry_points=False, extra=[(rics_plugin, "rics")]).context


def test_metric_definitions_on_known_outputs():
    pred = np.array([[1, 1, 1], [2, 3, 2], [0, 0, 0]])  # column 0: the reference view
    assert consistency(pred) == pytest.approx(5 / 6)  # eq. (1): 5 of the 6 shifts keep the output
    assert adversarial_robustness(pred) == pytest.approx(2 / 3)  # eq. (2): image 1 can be fooled


def test_offsets_and_condition_labels():
    off = shift_offsets(2)
    assert off.shape == (25, 2) and off[0].tolist() == [0, 0] and len({tuple(o) for o in off.tolist()}) == 25
    horizontal = shift_offsets(2, "x")
    assert horizontal.tolist() == [[0, 0], [0, -2], [0, -1], [0, 1], [0, 2]]
    assert CropShift(1).condition == "shift@1"
    assert CropShift(3, axes="y").offsets().shape == (7, 2) and CropShift(3, axes="y").condition == "shift@3(axes=y)"
    assert CropShift(3, resize=73, crop=64).condition == "shift@3(resize=73,crop=64)"
    assert CropShift(1, then="bicubic@16", context=CONTEXT).condition == "shift@1(then=bicubic@16)"
    assert CropShift(1, then={"name": "bicubic", "size": 16}, context=CONTEXT).condition == "shift@1(then=bicubic@16)"
    assert CyclicShift(2, size=32).condition == "cyclic@2(size=32)"
    with pytest.raises(ValueError, match=r"\(resize - crop\) // 2 = 16"):
        CropShift(17)


def test_realistic_views_move_the_crop_window(h):
    img = h.NoiseImages(size=50).load(0)
    cond = CropShift(2, resize=48, crop=40)
    base = cond.base_pil(img)
    ref, right, down = [np.asarray(v) for v in cond.views_pil(base, [(0, 0), (0, 1), (1, 0)])]
    assert ref.shape == (40, 40, 3)
    assert np.array_equal(right[:, :-1], ref[:, 1:]) and not np.array_equal(right[:, -1], ref[:, -1])
    assert np.array_equal(down[:-1], ref[1:])
    fast = cond.views_tensor(base, np.array([[0, 0], [0, 1]]), torch.device("cpu"))
    assert torch.equal(
        (fast * 255).round().byte(), torch.stack([TF.pil_to_tensor(v) for v in cond.views_pil(base, [(0, 0), (0, 1)])])
    )
    assert np.array_equal(np.asarray(cond.pil(img)), ref)


def test_then_applies_the_low_resolution_step_to_every_view(h):
    cond = CropShift(1, resize=48, crop=40, then="bicubic@10", context=CONTEXT)
    views = cond.views_pil(cond.base_pil(h.NoiseImages(size=50).load(0)), [(0, 0), (1, 1)])
    assert [v.size for v in views] == [(10, 10), (10, 10)]
    with pytest.raises(Exception, match="shift condition"):
        CropShift(1, then="shift@1", context=CONTEXT)


def test_cyclic_views_roll(h):
    cond = CyclicShift(1, size=32)
    base = cond.base_pil(h.NoiseImages(size=40).load(1))
    ref, v = [np.asarray(x) for x in cond.views_pil(base, [(0, 0), (1, -1)])]
    assert np.array_equal(v, np.roll(ref, (1, -1), axis=(0, 1)))


def _run(h, model, conditions, fast=False, ds=None, **task_args):
    ds = ds or h.NoiseImages(n=6, size=40, classes=3)
    task_args.setdefault("gallery", "eval")
    return ds, ShiftTask(**task_args, context=CONTEXT).run(
        model, ds, conditions, RunContext(batch_size=16, fast_path=fast)
    )


def test_task_outputs_family_sharing_and_retrieval(h):
    model = h.TinyConvAdapter(size=32)
    conds = [
        CropShift(1, resize=40, crop=32, axes="x"),
        CropShift(2, resize=40, crop=32, axes="x"),
        CyclicShift(1, size=32),
    ]
    ds, out = _run(h, model, conds)
    assert set(out) == {"shift@1(resize=40,crop=32,axes=x)", "shift@2(resize=40,crop=32,axes=x)", "cyclic@1(size=32)"}
    one, two = out["shift@1(resize=40,crop=32,axes=x)"], out["shift@2(resize=40,crop=32,axes=x)"]
    assert (
        one["pred"].shape == (6, 3) and two["pred"].shape == (6, 5) and out["cyclic@1(size=32)"]["nn"].shape == (6, 9)
    )
    cols = [next(j for j, o in enumerate(two["offsets"].tolist()) if o == p) for p in one["offsets"].tolist()]
    assert np.array_equal(one["pred"], two["pred"][:, cols]) and np.array_equal(one["nn"], two["nn"][:, cols])
    # 1-NN (gallery: eval): never the query itself, always another image of its class
    assert two["nn_ok"].all() and int(two["gallery_size"]) == 6
    assert (two["nn"] != two["index"][:, None]).all()
    assert (ds.labels[two["nn"]] == two["labels"][:, None]).all()
    # the fast (tensor) path sees the same pixels when no resize is needed
    _, fast = _run(h, model, conds[:1], fast=True)
    assert np.array_equal(fast["shift@1(resize=40,crop=32,axes=x)"]["pred"], one["pred"])
    for metric in (ShiftAccuracy(), KnnAccuracy(), Consistency(), ConsistencyNN(), AdvRobustness(), AdvRobustnessNN()):
        assert 0.0 <= metric.compute(two, ds) <= 1.0


def test_task_measures_cyclic_rics_at_100_percent(h, method_ctx):
    base = h.TinyConvAdapter(size=32)
    conds = [CyclicShift(1, size=32)]
    _, plain = _run(h, base, conds, same_class=False)
    _, rics = _run(h, rics_cyclic(k=20, score="rand").apply(base, method_ctx), conds, same_class=False)
    plain, rics = plain["cyclic@1(size=32)"], rics["cyclic@1(size=32)"]
    assert consistency(rics["nn"]) == 1.0 and adversarial_robustness(rics["pred"]) == 1.0
    assert consistency(plain["nn"]) < 1.0  # the padded conv net alone is not shift invariant


def test_zero_shot_models_predict_with_text_weights(h):
    model = h.TinyZeroShot(size=32)
    ds, out = _run(h, model, [CropShift(1, resize=40, crop=32)], knn=3)
    o = out["shift@1(resize=40,crop=32)"]
    assert o["pred"].min() >= 0 and o["pred"].max() < 3
    assert o["knn"].shape == (6,)


def test_embedders_predict_classes_by_knn_vote(h):
    class Embedder(h.TinyConvAdapter):
        kind = "embedder"

    ds, out = _run(h, Embedder(size=32), [CropShift(1, resize=40, crop=32)], knn=1)
    o = out["shift@1(resize=40,crop=32)"]
    # with k = 1 the vote is the class of the nearest other image; at the reference view that is the knn output
    assert np.array_equal(o["pred"][:, 0], o["knn"]) and set(o["pred"].ravel()) <= {0, 1, 2}


def test_task_rejects_other_conditions(h):
    from lrbench.builtin.degradations import Resize

    with pytest.raises(Exception, match="evaluates shift conditions"):
        _run(h, h.TinyConvAdapter(size=32), [Resize(16)])


def test_gallery_from_a_separate_split_as_the_paper(h):
    """The paper retrieves among the training images of the query's class: gallery {name: toyworld, split: train}."""
    from lrbench.builtin.toyworld import ToyWorld

    test, train = ToyWorld(split="test", n=6), ToyWorld(split="train", n=36)
    conds = [CropShift(1, resize=40, crop=32, axes="x")]
    _, out = _run(
        h, h.TinyConvAdapter(size=32), conds, ds=test, gallery={"name": "toyworld", "split": "train", "n": 36}
    )
    o = out["shift@1(resize=40,crop=32,axes=x)"]
    assert int(o["gallery_size"]) == 36
    has_class = np.isin(test.labels, train.labels)
    assert np.array_equal(o["nn_ok"], has_class) and has_class.sum() >= 4
    ok = o["nn"][o["nn_ok"]]
    assert (ok >= 0).all() and (train.labels[ok] == test.labels[o["nn_ok"]][:, None]).all()  # same class, train items
    assert (o["nn"][~o["nn_ok"]] == -1).all()


def test_an_image_without_a_neighbour_is_excluded_and_counted_not_consistent(h):
    """One image per class and the eval gallery: no image has another of its class, so no 1-NN exists. The old rule
    returned -1 for every view and scored -1 == -1 as perfectly consistent (1.0 by construction)."""
    ds = h.NoiseImages(n=4, size=40, classes=4)
    _, out = _run(h, h.TinyConvAdapter(size=32), [CropShift(1, resize=40, crop=32, axes="x")], ds=ds)
    o = out["shift@1(resize=40,crop=32,axes=x)"]
    assert not o["nn_ok"].any()
    assert NNMissing().compute(o, ds) == 4.0
    assert np.isnan(ConsistencyNN().compute(o, ds)) and np.isnan(AdvRobustnessNN().compute(o, ds))
    # two of the four share a class: those two are scored, the other two still excluded
    ds.labels = np.array([0, 0, 1, 2])
    _, out = _run(h, h.TinyConvAdapter(size=32), [CropShift(1, resize=40, crop=32, axes="x")], ds=ds)
    o = out["shift@1(resize=40,crop=32,axes=x)"]
    assert o["nn_ok"].tolist() == [True, True, False, False] and NNMissing().compute(o, ds) == 2.0
    assert (o["nn"][:2] == [[1], [0]]).all()  # the only candidate: each other
    assert ConsistencyNN().compute(o, ds) == 1.0


def test_nn_metrics_without_a_gallery_fail_with_a_clear_message(h):
    model = h.TinyConvAdapter(size=32)
    ds, out = _run(h, model, [CropShift(1, resize=40, crop=32)], gallery=None)
    o = out["shift@1(resize=40,crop=32)"]
    assert 0.0 <= Consistency().compute(o, ds) <= 1.0  # class metrics need no gallery
    with pytest.raises(Exception, match="needs the shift task's 1-NN gallery"):
        ConsistencyNN().compute(o, ds)

    class Embedder(h.TinyConvAdapter):
        kind = "embedder"

    with pytest.raises(Exception, match="k-NN vote over a gallery"):
        _run(h, Embedder(size=32), [CropShift(1, resize=40, crop=32)], gallery=None)
    with pytest.raises(Exception, match="gallery must be a dataset entry"):
        ShiftTask(gallery=3)


def test_the_gallery_keys_the_cells():
    eval_id = ShiftTask(gallery="eval").identity()
    small = ShiftTask(gallery={"name": "toyworld", "split": "train", "n": 24}, context=CONTEXT).identity()
    large = ShiftTask(gallery={"name": "toyworld", "split": "train", "n": 36}, context=CONTEXT).identity()
    assert len({repr(eval_id), repr(small), repr(large)}) == 3
    assert small["gallery"]["items"] != large["gallery"]["items"]  # the gallery's items, not just its entry
