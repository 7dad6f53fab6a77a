"""Cell metrics and LR0.FM aggregates on hand-built inputs with hand-computed answers: ties, unbalanced classes,
top-1 vs top-2 vs top-5, balanced vs plain accuracy, and Gamma with an HR accuracy near chance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lrbench.builtin.aggregates import Acc, Gamma, ImprovedGamma, Sar, War
from lrbench.builtin.metrics import MeanPerClass, TopK, topk_correct
from lrbench.plugins import Plugins

# 6 items, 4 classes, labels unbalanced (class 0: 4 items, class 1: 1, class 2: 1, class 3: none)
LOGITS = np.array(
    [
        [3, 1, 0, 0],  # label 0: right
        [1, 3, 2, 0],  # label 0: ranked third
        [2, 2, 0, 0],  # label 0: tied with class 1, the lower index wins -> right
        [5, 5, 0, 1],  # label 0: tied again -> right
        [1, 1, 0, 0],  # label 1: tied with class 0, which wins -> second
        [0, 0, 4, 0],
    ],  # label 2: right
    dtype=np.float32,
)
LABELS = np.array([0, 0, 0, 0, 1, 2])
OUT = {"logits": LOGITS, "labels": LABELS}


def test_topk_correct_per_item_with_ties_towards_lower_index():
    assert topk_correct(LOGITS, LABELS, 1).tolist() == [True, False, True, True, False, True]
    assert topk_correct(LOGITS, LABELS, 2).tolist() == [True, False, True, True, True, True]
    assert topk_correct(LOGITS, LABELS, 3).tolist() == [True] * 6
    assert topk_correct(LOGITS, LABELS, 9).tolist() == [True] * 6  # k above the class count is every class


def test_top1_top2_and_balanced_accuracy_hand_computed():
    assert TopK(1).compute(OUT, None) == pytest.approx(4 / 6)
    assert TopK(2).compute(OUT, None) == pytest.approx(5 / 6)
    # class 0: 3 of 4, class 1: 0 of 1, class 2: 1 of 1; class 3 has no item and does not count
    assert MeanPerClass().compute(OUT, None) == pytest.approx((3 / 4 + 0 + 1) / 3)


def test_registered_metrics_are_these_functions():
    reg = Plugins(load_entry_points=False).registries["metrics"]
    seven = np.array([[7, 6, 5, 4, 3, 2, 1], [7, 6, 5, 4, 3, 2, 1]], dtype=np.float32)
    out = {"logits": seven, "labels": np.array([4, 5])}  # ranked 5th (top-5 hit) and 6th (miss)
    assert reg.create("top5").compute(out, None) == pytest.approx(0.5)
    assert reg.create("top1").compute(OUT, None) == pytest.approx(4 / 6)
    assert reg.create("mean_per_class").compute(OUT, None) == pytest.approx(7 / 12)


def test_one_item_cell_and_default_k():
    one = {"logits": LOGITS[:1], "labels": LABELS[:1]}
    assert TopK(1).compute(one, None) == 1.0 and MeanPerClass().compute(one, None) == 1.0
    assert TopK().compute(OUT, None) == pytest.approx(4 / 6)  # the default k is top-1


def test_empty_cell_is_nan_not_zero():
    empty = {"logits": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    assert math.isnan(TopK(1).compute(empty, None)) and math.isnan(MeanPerClass().compute(empty, None))


def _table(rows):
    return pd.DataFrame(rows, columns=["model", "method", "dataset", "condition", "metric", "value"])


# two datasets with 10 classes (chance 0.1); dataset "near" has A_HR = 0.15, 0.05 above chance
NEAR_CHANCE = _table(
    [
        ("m", "none", "near", "hr", "top1", 0.15),
        ("m", "none", "near", "bicubic@16", "top1", 0.12),
        ("m", "none", "far", "hr", "top1", 0.80),
        ("m", "none", "far", "bicubic@16", "top1", 0.40),
        ("m", "none", "near", "hr", "top5", 0.99),
        ("m", "none", "near", "bicubic@16", "top5", 0.01),
    ]
)
CLASSES = {"near": 10, "far": 10}


def test_gamma_near_chance_hand_computed():
    """E = 0.15 - 0.1 = 0.05: 1 - exp(-200 * 0.0025) = 1 - e^-0.5 = 0.3935, far from 1, so a wrong E shows."""
    G = ImprovedGamma().aggregate(NEAR_CHANCE, CLASSES).set_index(["dataset", "condition"])["value"]
    assert G[("near", "bicubic@16")] == pytest.approx(0.12 / 0.15 * (1 - math.exp(-0.5)), rel=1e-12)
    assert G[("near", "bicubic@16")] == pytest.approx(0.31478, abs=1e-5)
    assert G[("far", "bicubic@16")] == pytest.approx(0.40 / 0.80 * (1 - math.exp(-200 * 0.7**2)), rel=1e-12)
    assert len(G) == 2  # the baseline's HR rows are not reported; the top5 rows are not read
    g = Gamma().aggregate(NEAR_CHANCE, CLASSES).set_index(["dataset", "condition"])["value"]
    assert g[("near", "bicubic@16")] == pytest.approx(0.8, rel=1e-12)
    alpha = ImprovedGamma(alpha=50).aggregate(NEAR_CHANCE, CLASSES).set_index(["dataset", "condition"])["value"]
    assert alpha[("near", "bicubic@16")] == pytest.approx(0.8 * (1 - math.exp(-50 * 0.0025)), rel=1e-12)


def test_gamma_reads_the_class_count_of_each_dataset():
    """With 4 classes chance is 0.25, above A_HR: E = -0.1, E^2 = 0.01 (the sign does not matter)."""
    G = ImprovedGamma().aggregate(NEAR_CHANCE, {"near": 4, "far": 10}).set_index(["dataset", "condition"])["value"]
    assert G[("near", "bicubic@16")] == pytest.approx(0.8 * (1 - math.exp(-2.0)), rel=1e-12)
    with pytest.raises(KeyError, match="near"):
        ImprovedGamma().aggregate(NEAR_CHANCE, {"far": 10})


def test_acc_sar_war_hand_computed():
    acc = Acc().aggregate(NEAR_CHANCE, CLASSES).set_index("condition")
    assert acc.loc["bicubic@16", "value"] == pytest.approx((0.12 + 0.40) / 2)
    assert acc.loc["hr", "value"] == pytest.approx((0.15 + 0.80) / 2) and acc.loc["hr", "n_datasets"] == 2
    sar = Sar().aggregate(NEAR_CHANCE, CLASSES).set_index("condition")["value"]
    assert sar["bicubic@16"] == pytest.approx((0.8 + 0.5) / 2)
    g_near, g_far = 0.8 * (1 - math.exp(-0.5)), 0.5 * (1 - math.exp(-98.0))
    war = War(weights={"near": 3.0, "far": 1.0}).aggregate(NEAR_CHANCE, CLASSES).set_index("condition")["value"]
    assert war["bicubic@16"] == pytest.approx((3 * g_near + 1 * g_far) / 4, rel=1e-12)
    # a dataset the weights do not name gets their mean weight: (2 + 4) / 2 = 3 for "near"
    war = War(weights={"far": 2.0, "other": 4.0}).aggregate(NEAR_CHANCE, CLASSES).set_index("condition")["value"]
    assert war["bicubic@16"] == pytest.approx((3 * g_near + 2 * g_far) / 5, rel=1e-12)


def test_method_gamma_measures_easiness_on_the_baseline_hr():
    """A method's E is the baseline's A_HR minus chance (0.05 here), not its own (0.20): LR0.FM measures a method
    against the vanilla model."""
    t = pd.concat(
        [
            NEAR_CHANCE,
            _table([("m", "tk", "near", "hr", "top1", 0.30), ("m", "tk", "near", "bicubic@16", "top1", 0.14)]),
        ]
    )
    G = ImprovedGamma().aggregate(t, CLASSES).set_index(["method", "dataset", "condition"])["value"]
    assert G[("tk", "near", "bicubic@16")] == pytest.approx(0.14 / 0.15 * (1 - math.exp(-0.5)), rel=1e-12)
    assert G[("tk", "near", "hr")] == pytest.approx(0.30 / 0.15 * (1 - math.exp(-0.5)), rel=1e-12)


def test_aggregates_keep_the_order_of_the_table():
    """Rows come out in the spec's order (models, then conditions as listed), which the summary's columns follow: not
    sorted by name (that would put bicubic@16 before bicubic@32 and hr last, and model "b" after "a")."""
    rows = [
        (m, "none", "near", c, "top1", v)
        for m in ("b", "a")
        for c, v in (("hr", 0.5), ("bicubic@32", 0.4), ("bicubic@16", 0.3))
    ]
    t = _table(rows)
    order = [("b", "bicubic@32"), ("b", "bicubic@16"), ("a", "bicubic@32"), ("a", "bicubic@16")]
    acc = Acc().aggregate(t, CLASSES)
    assert list(zip(acc["model"], acc["condition"])) == [
        (m, c) for m in ("b", "a") for c in ("hr", "bicubic@32", "bicubic@16")
    ]
    for agg in (Sar(), War(weights={"near": 1.0})):
        out = agg.aggregate(t, CLASSES)
        assert list(zip(out["model"], out["condition"])) == order, type(agg).__name__
