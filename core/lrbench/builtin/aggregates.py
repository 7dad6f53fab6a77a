"""LR0.FM's aggregate robustness metrics (section 3, appendix C), computed from the table of per-cell top-1 rows.

- gamma_n^D = A_n / A_HR (relative robustness), HR = the condition ``hr`` (the model's own resolution);
- Gamma_n^D = gamma * (1 - exp(-alpha * E^2)), E = A_HR - 1/C (improved relative robustness, alpha = 200);
- ACC-n = mean top-1 over datasets; SAR-n = mean gamma over datasets;
- WAR-n = sum_d w_d Gamma_d / sum_d w_d with the paper's WAR-16 weights (Table 11) unless others are given.

A_HR comes from the baseline (method ``none``) when the table has it, for gamma and for E alike: the paper measures a
method against the vanilla model (LR-TK0's 224 px gamma of 99.1% in Table 2 is 69.0 / 69.6, its HR accuracy over the
vanilla one), so a method that lowers HR accuracy cannot look more robust by it. Datasets the weight set does not name get the mean weight of those it does (a user's own
dataset is neither ignored nor dominant), noted in aggregates.csv (and warned about); pass ``weights`` to choose
otherwise. The LR0.FM authors' dataset names (``stanford_cars``, ...) find lrbench's class counts and weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import hookimpl
from ..datasets import load_json_resource
from ..metrics import AggregateMetric, AggregateSkipped
from ..registry import LrbenchError
from .lr0fm_datasets import canonical_dataset

LR0FM = load_json_resource("lr0fm.json")
WAR16_WEIGHTS: dict[str, float] = LR0FM["war16_weights"]
NUM_CLASSES: dict[str, int] = LR0FM["num_classes"]
KEYS = ["model", "method", "dataset"]


def _accuracy_frame(table: pd.DataFrame, metric: str, hr: str) -> pd.DataFrame:
    """Rows of ``metric`` joined with the same (model, method, dataset)'s HR value and the baseline's HR value."""
    t = table[table["metric"] == metric].copy()
    if t.empty:
        raise AggregateSkipped(f"the table has no {metric!r} rows")
    if "method" not in t:
        t["method"] = "none"
    hr_rows = t[t["condition"] == hr][KEYS + ["value"]].rename(columns={"value": "a_hr"})
    if hr_rows.empty:
        raise AggregateSkipped(f"the table has no {hr!r} condition (the HR accuracy every ratio divides by)")
    base = hr_rows[hr_rows["method"] == "none"][["model", "dataset", "a_hr"]].rename(columns={"a_hr": "a_hr_base"})
    # every condition, HR included: a method's gamma at HR is its HR accuracy over the baseline's
    out = t[(t["condition"] != hr) | (t["method"] != "none")].merge(hr_rows, on=KEYS, how="inner")
    out = out.merge(base, on=["model", "dataset"], how="left")
    out["a_hr_base"] = out["a_hr_base"].fillna(out["a_hr"])
    return out


class UnknownClassCount(LrbenchError, KeyError):
    """No class count for a dataset (chance accuracy 1 / C is needed by Gamma); a KeyError for callers that look up."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _class_count(dataset: str, num_classes: dict[str, int]) -> int:
    if dataset in num_classes:
        count = int(num_classes[dataset])
    elif canonical_dataset(dataset) in NUM_CLASSES:  # the LR0.FM authors' names count as lrbench's
        count = NUM_CLASSES[canonical_dataset(dataset)]
    else:
        raise UnknownClassCount(
            f"number of classes of dataset {dataset!r} unknown: give a num_classes column or mapping"
        )
    if count < 2:
        raise LrbenchError(
            f"dataset {dataset!r}: num_classes must be >= 2 (chance accuracy is 1 / num_classes), got {count}"
        )
    return count


def _scored(f: pd.DataFrame) -> pd.DataFrame:
    """The rows a dataset average may use: a defined ratio (see ``Gamma.values`` for the rows left out)."""
    return f[f["value"].notna()]


class Gamma(AggregateMetric):
    """gamma = A_n / A_HR per dataset (relative robustness)."""

    name = "gamma"
    level = "dataset"

    def __init__(self, metric: str = "top1", hr: str = "hr"):
        self.metric, self.hr = metric, hr

    def values(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows with ``value`` = gamma; where it is undefined (HR accuracy 0 or missing, or the accuracy itself
        missing) ``value`` is NaN and ``note`` says why: SAR and WAR leave those rows out alike."""
        f = _accuracy_frame(table, self.metric, self.hr)
        base = f["a_hr_base"]
        ok = base > 0
        f["value"] = np.where(ok, f["value"] / base.where(ok, 1), np.nan)
        f["note"] = np.where(
            base.isna(),
            f"HR {self.metric} is missing (NaN): gamma undefined, left out of SAR/WAR",
            np.where(
                ~ok,
                f"HR {self.metric} is 0: gamma undefined, left out of SAR/WAR",
                np.where(f["value"].isna(), f"{self.metric} is missing (NaN): left out of SAR/WAR", ""),
            ),
        )
        return f

    def aggregate(self, table, num_classes):
        f = self.values(table)
        f["metric"] = self.name
        return f[KEYS + ["condition", "metric", "value", "note"]]


class ImprovedGamma(Gamma):
    """Gamma = gamma * (1 - exp(-alpha * (A_HR - 1/C)^2)) per dataset (improved relative robustness)."""

    name = "Gamma"

    def __init__(self, metric: str = "top1", hr: str = "hr", alpha: float = 200.0):
        super().__init__(metric, hr)
        self.alpha = alpha

    def aggregate(self, table, num_classes):
        f = self.values(table)
        chance = np.array([1.0 / _class_count(d, num_classes) for d in f["dataset"]], dtype=float)
        easiness = f["a_hr_base"].to_numpy(dtype=float) - chance
        f["value"] = f["value"] * (1 - np.exp(-self.alpha * easiness**2))
        f["metric"] = self.name
        unweighted = ~f["dataset"].map(canonical_dataset).isin(list(WAR16_WEIGHTS))
        weight_note = (
            f"no WAR-16 weight: WAR (default weights) gives it the mean weight "
            f"{np.mean(list(WAR16_WEIGHTS.values())):.4f}"
        )
        f["note"] = np.where(
            unweighted, np.where(f["note"] != "", f["note"] + "; " + weight_note, weight_note), f["note"]
        )
        return f[KEYS + ["condition", "metric", "value", "note"]]


class Acc(AggregateMetric):
    """ACC-n: top-1 averaged over datasets, per condition."""

    name = "ACC"

    def __init__(self, metric: str = "top1"):
        self.metric = metric

    def aggregate(self, table, num_classes):
        t = table[table["metric"] == self.metric]
        if t.empty:
            raise AggregateSkipped(f"the table has no {self.metric!r} rows")
        g = t.groupby(["model", "method", "condition"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        return g.rename(columns={"mean": "value", "count": "n_datasets"}).assign(metric=self.name)


class Sar(AggregateMetric):
    """SAR-n: gamma averaged over datasets."""

    name = "SAR"

    def __init__(self, metric: str = "top1", hr: str = "hr"):
        self.gamma = Gamma(metric, hr)

    def aggregate(self, table, num_classes):
        g = _scored(self.gamma.aggregate(table, num_classes))
        s = g.groupby(["model", "method", "condition"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        return s.rename(columns={"mean": "value", "count": "n_datasets"}).assign(metric=self.name)


class War(AggregateMetric):
    """WAR-n: Gamma averaged over datasets with weights (default: the paper's WAR-16 weights, Table 11)."""

    name = "WAR"

    def __init__(
        self, metric: str = "top1", hr: str = "hr", alpha: float = 200.0, weights: dict[str, float] | None = None
    ):
        self.Gamma = ImprovedGamma(metric, hr, alpha)
        self.weights = dict(weights) if weights is not None else dict(WAR16_WEIGHTS)

    def weight(self, dataset: str) -> float:
        if dataset in self.weights:
            return abs(float(self.weights[dataset]))
        if canonical_dataset(dataset) in self.weights:  # the LR0.FM authors' names (stanford_cars, ...)
            return abs(float(self.weights[canonical_dataset(dataset)]))
        return float(np.mean([abs(v) for v in self.weights.values()])) if self.weights else 1.0

    def aggregate(self, table, num_classes):
        g = _scored(self.Gamma.aggregate(table, num_classes))
        g["w"] = g["dataset"].map(self.weight).astype(float)  # float even when no dataset is left (empty frame)
        g["wv"] = g["w"] * g["value"].abs()
        s = (
            g.groupby(["model", "method", "condition"], sort=False)
            .agg(wv=("wv", "sum"), w=("w", "sum"), n_datasets=("value", "count"))
            .reset_index()
        )
        s["value"] = s["wv"] / s["w"]
        return s[["model", "method", "condition", "value", "n_datasets"]].assign(metric=self.name)


@hookimpl
def register_metrics(register):
    for cls in (Gamma, ImprovedGamma, Acc, Sar, War):
        register(cls.name, cls, (cls.__doc__ or "").strip().split("\n")[0])
