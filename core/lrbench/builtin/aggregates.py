"""LR0.FM's aggregate robustness metrics (section 3, appendix C), computed from the table of per-cell top-1 rows.

- gamma_n^D = A_n / A_HR (relative robustness), HR = the condition ``hr`` (the model's own resolution);
- Gamma_n^D = gamma * (1 - exp(-alpha * E^2)), E = A_HR - 1/C (improved relative robustness, alpha = 200);
- ACC-n = mean top-1 over datasets; SAR-n = mean gamma over datasets;
- WAR-n = sum_d w_d Gamma_d / sum_d w_d with the paper's WAR-16 weights (Table 11) unless others are given.

A_HR comes from the baseline (method ``none``) when the table has it, for gamma and for E alike: the paper measures a
method against the vanilla model (LR-TK0's 224 px gamma of 99.1% in Table 2 is 69.0 / 69.6, its HR accuracy over the
vanilla one), so a method that lowers HR accuracy cannot look more robust by it. Datasets the weight set does not name get the mean weight of those it does (a user's own
dataset is neither ignored nor dominant); pass ``weights`` to choose otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import hookimpl
from ..datasets import load_json_resource
from ..metrics import AggregateMetric

LR0FM = load_json_resource("lr0fm.json")
WAR16_WEIGHTS: dict[str, float] = LR0FM["war16_weights"]
NUM_CLASSES: dict[str, int] = LR0FM["num_classes"]
KEYS = ["model", "method", "dataset"]


def _accuracy_frame(table: pd.DataFrame, metric: str, hr: str) -> pd.DataFrame:
    """Rows of ``metric`` joined with the same (model, method, dataset)'s HR value and the baseline's HR value."""
    t = table[table["metric"] == metric].copy()
    if "method" not in t:
        t["method"] = "none"
    hr_rows = t[t["condition"] == hr][KEYS + ["value"]].rename(columns={"value": "a_hr"})
    base = hr_rows[hr_rows["method"] == "none"][["model", "dataset", "a_hr"]].rename(columns={"a_hr": "a_hr_base"})
    # every condition, HR included: a method's gamma at HR is its HR accuracy over the baseline's
    out = t[(t["condition"] != hr) | (t["method"] != "none")].merge(hr_rows, on=KEYS, how="inner")
    out = out.merge(base, on=["model", "dataset"], how="left")
    out["a_hr_base"] = out["a_hr_base"].fillna(out["a_hr"])
    return out


def _class_count(dataset: str, num_classes: dict[str, int]) -> int:
    if dataset in num_classes:
        return int(num_classes[dataset])
    if dataset in NUM_CLASSES:
        return NUM_CLASSES[dataset]
    raise KeyError(f"number of classes of dataset {dataset!r} unknown: give a num_classes column or mapping")


class Gamma(AggregateMetric):
    """gamma = A_n / A_HR per dataset (relative robustness)."""

    name = "gamma"
    level = "dataset"

    def __init__(self, metric: str = "top1", hr: str = "hr"):
        self.metric, self.hr = metric, hr

    def values(self, table: pd.DataFrame) -> pd.DataFrame:
        f = _accuracy_frame(table, self.metric, self.hr)
        base = f["a_hr_base"]
        f["value"] = np.where(base > 0, f["value"] / base.where(base > 0, 1), np.nan)
        return f

    def aggregate(self, table, num_classes):
        f = self.values(table)
        f["metric"] = self.name
        return f[KEYS + ["condition", "metric", "value"]]


class ImprovedGamma(Gamma):
    """Gamma = gamma * (1 - exp(-alpha * (A_HR - 1/C)^2)) per dataset (improved relative robustness)."""

    name = "Gamma"

    def __init__(self, metric: str = "top1", hr: str = "hr", alpha: float = 200.0):
        super().__init__(metric, hr)
        self.alpha = alpha

    def aggregate(self, table, num_classes):
        f = self.values(table)
        chance = f["dataset"].map(lambda d: 1.0 / _class_count(d, num_classes))
        easiness = f["a_hr_base"] - chance
        f["value"] = f["value"] * (1 - np.exp(-self.alpha * easiness**2))
        f["metric"] = self.name
        return f[KEYS + ["condition", "metric", "value"]]


class Acc(AggregateMetric):
    """ACC-n: top-1 averaged over datasets, per condition."""

    name = "ACC"

    def __init__(self, metric: str = "top1"):
        self.metric = metric

    def aggregate(self, table, num_classes):
        t = table[table["metric"] == self.metric]
        g = t.groupby(["model", "method", "condition"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        return g.rename(columns={"mean": "value", "count": "n_datasets"}).assign(metric=self.name)


class Sar(AggregateMetric):
    """SAR-n: gamma averaged over datasets."""

    name = "SAR"

    def __init__(self, metric: str = "top1", hr: str = "hr"):
        self.gamma = Gamma(metric, hr)

    def aggregate(self, table, num_classes):
        g = self.gamma.aggregate(table, num_classes)
        s = g.groupby(["model", "method", "condition"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        return s.rename(columns={"mean": "value", "count": "n_datasets"}).assign(metric=self.name)


class War(AggregateMetric):
    """WAR-n: Gamma averaged over datasets with weights (default: the paper's WAR-16 weights, Table 11)."""

    name = "WAR"

    def __init__(self, metric: str = "top1", hr: str = "hr", alpha: float = 200.0,
                 weights: dict[str, float] | None = None):
        self.Gamma = ImprovedGamma(metric, hr, alpha)
        self.weights = dict(weights) if weights is not None else dict(WAR16_WEIGHTS)

    def weight(self, dataset: str) -> float:
        if dataset in self.weights:
            return abs(float(self.weights[dataset]))
        return float(np.mean([abs(v) for v in self.weights.values()])) if self.weights else 1.0

    def aggregate(self, table, num_classes):
        g = self.Gamma.aggregate(table, num_classes)
        g["w"] = g["dataset"].map(self.weight)
        g["wv"] = g["w"] * g["value"].abs()
        s = g.groupby(["model", "method", "condition"], sort=False).agg(wv=("wv", "sum"), w=("w", "sum"),
                                                                         n_datasets=("value", "count")).reset_index()
        s["value"] = s["wv"] / s["w"]
        return s[["model", "method", "condition", "value", "n_datasets"]].assign(metric=self.name)


@hookimpl
def register_metrics(register):
    for cls in (Gamma, ImprovedGamma, Acc, Sar, War):
        register(cls.name, cls, (cls.__doc__ or "").strip().split("\n")[0])
