"""The tidy results table and its aggregates, written atomically.

results.{parquet,csv}: one row per (model, method, dataset, condition, metric) with value and n (items scored).
aggregates.csv: dataset-level aggregates (gamma, Gamma). summary.{csv,md}: run-level aggregates (ACC, SAR, WAR).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .cache import atomic_write_bytes, atomic_write_text
from .metrics import AggregateMetric, CellMetric

COLUMNS = ["model", "method", "dataset", "condition", "metric", "value", "n", "task"]
SUMMARY_COLUMNS = ["model", "method", "condition", "metric", "value", "n_datasets"]
AGG_COLUMNS = ["model", "method", "dataset", "condition", "metric", "value"]


def metric_rows(name: str, metric: CellMetric, outputs: dict[str, np.ndarray], dataset: Any) -> list[tuple[str, float]]:
    value = metric.compute(outputs, dataset)
    if isinstance(value, dict):
        return [(name if k in ("", None) else f"{name}.{k}", float(v)) for k, v in value.items()]
    return [(name, float(value))]


def split_aggregates(table: pd.DataFrame, aggregates: Sequence[tuple[str, AggregateMetric]],
                     num_classes: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every aggregate metric on the table; returns (dataset-level rows, summary rows)."""
    per_dataset, summary = [], []
    for label, agg in aggregates:
        out = agg.aggregate(table, num_classes)
        if out is None or out.empty:
            continue
        out = out.assign(metric=label)
        (per_dataset if agg.level == "dataset" else summary).append(out)
    agg_df = pd.concat(per_dataset, ignore_index=True)[AGG_COLUMNS] if per_dataset else pd.DataFrame(columns=AGG_COLUMNS)
    sum_df = pd.concat(summary, ignore_index=True) if summary else pd.DataFrame(columns=SUMMARY_COLUMNS)
    if "n_datasets" not in sum_df:
        sum_df["n_datasets"] = np.nan
    return agg_df, sum_df[SUMMARY_COLUMNS]


def write_frame(df: pd.DataFrame, path: Path) -> None:
    """Atomic CSV or parquet write (temp file + rename)."""
    if path.suffix == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_text(path, df.to_csv(index=False))


def _fmt(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def markdown_table(df: pd.DataFrame) -> str:
    """A plain GitHub-flavoured markdown table (no tabulate dependency)."""
    if df.empty:
        return "_(no rows)_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def summary_pivot(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method), one column per metric@condition: the table a paper prints."""
    if summary.empty:
        return summary
    s = summary.assign(column=summary["metric"] + "@" + summary["condition"].astype(str))
    pivot = s.pivot_table(index=["model", "method"], columns="column", values="value", sort=False)
    return pivot.reset_index()


def accuracy_pivot(results: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    t = results[results["metric"] == metric]
    if t.empty:
        return t
    pivot = t.pivot_table(index=["model", "method", "dataset"], columns="condition", values="value", sort=False)
    return pivot.reset_index()


def write_outputs(run_dir: Path, results: pd.DataFrame, agg: pd.DataFrame, summary: pd.DataFrame) -> None:
    write_frame(results, run_dir / "results.parquet")
    write_frame(results, run_dir / "results.csv")
    write_frame(agg, run_dir / "aggregates.csv")
    write_frame(summary, run_dir / "summary.csv")
    md = ["# Summary\n", markdown_table(summary_pivot(summary)), "\n# Top-1 per dataset\n",
          markdown_table(accuracy_pivot(results))]
    atomic_write_text(run_dir / "summary.md", "\n".join(md))
