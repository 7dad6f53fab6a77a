"""Aggregates of a method are measured against the baseline's HR accuracy, as LR0.FM's Table 2 does."""

import math

import pandas as pd
import pytest

from lrbench.builtin.aggregates import Gamma, ImprovedGamma, Sar


def _table():
    rows = []
    for method, acc in (("none", {"hr": 0.696, "bicubic@16": 0.30}), ("lrtk0", {"hr": 0.690, "bicubic@16": 0.45})):
        for cond, v in acc.items():
            rows.append(("m", method, "imagenet", cond, "top1", v))
    return pd.DataFrame(rows, columns=["model", "method", "dataset", "condition", "metric", "value"])


def test_method_gamma_uses_baseline_hr_accuracy():
    g = Gamma().aggregate(_table(), {}).set_index(["method", "condition"])["value"]
    assert g[("lrtk0", "hr")] == pytest.approx(0.690 / 0.696)  # Table 2: 99.1% for LR-TK0 at 224
    assert g[("lrtk0", "bicubic@16")] == pytest.approx(0.45 / 0.696)
    assert g[("none", "bicubic@16")] == pytest.approx(0.30 / 0.696)
    assert ("none", "hr") not in g.index  # the baseline's own HR is 1 by definition and not reported


def test_gamma_hat_and_sar_follow():
    t = _table()
    G = ImprovedGamma().aggregate(t, {}).set_index(["method", "condition"])["value"]
    assert G[("lrtk0", "bicubic@16")] == pytest.approx(0.45 / 0.696 * (1 - math.exp(-200 * (0.696 - 1 / 1000) ** 2)))
    s = Sar().aggregate(t, {}).set_index(["method", "condition"])["value"]
    assert s[("lrtk0", "bicubic@16")] == pytest.approx(0.45 / 0.696)
