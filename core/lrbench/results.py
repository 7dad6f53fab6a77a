"""The tidy results table and its aggregates, written atomically.

results.{parquet,csv}: one row per (model, method, dataset, condition, metric) with value, n (items scored), the task,
and what the condition is: its ``degradation``, the ``family`` it varies and the ``level`` it sets it to.
aggregates.csv: dataset-level aggregates (gamma, Gamma). summary.{csv,md}: run-level aggregates (ACC, SAR, WAR).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .cache import atomic_write_bytes, atomic_write_text
from .metrics import AggregateMetric, AggregateSkipped, CellMetric
from .registry import LrbenchError

#: ``degradation``, ``family``, ``level`` describe the condition (Degradation.describe): bicubic, resolution, 16
COLUMNS = ["model", "method", "dataset", "condition", "metric", "value", "n", "task", "degradation", "family", "level"]
SUMMARY_COLUMNS = ["model", "method", "condition", "metric", "value", "n_datasets"]
#: ``note``: why a value is missing (HR accuracy 0 or NaN: gamma undefined, the dataset left out of SAR and WAR)
AGG_COLUMNS = ["model", "method", "dataset", "condition", "metric", "value", "note"]
ROW_KEYS = ["model", "method", "dataset", "condition", "metric"]

log = logging.getLogger("lrbench")


def metric_rows(name: str, metric: CellMetric, outputs: dict[str, np.ndarray], dataset: Any) -> list[tuple[str, float]]:
    value = metric.compute(outputs, dataset)
    if isinstance(value, dict):
        return [(name if k in ("", None) else f"{name}.{k}", float(v)) for k, v in value.items()]
    return [(name, float(value))]


def unique_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with repeated identical rows dropped; rows that give one (model, method, dataset, condition, metric)
    two different values are an error showing them (an average over them would be silently wrong)."""
    keys = [k for k in ROW_KEYS if k in table]
    dup = table.duplicated(keys, keep=False)
    if not dup.any():
        return table
    clash = table[dup].groupby(keys, sort=False)["value"].transform(lambda v: v.nunique(dropna=False) > 1)
    conflicting = table[dup][clash.astype(bool)]
    if not conflicting.empty:
        shown = conflicting.head(6).to_string(index=False).replace("\n", " | ")
        raise LrbenchError(
            f"{len(conflicting)} rows give the same ({', '.join(keys)}) different values; keep one: {shown}"
        )
    return table.drop_duplicates(keys)


def split_aggregates(
    table: pd.DataFrame, aggregates: Sequence[tuple[str, AggregateMetric]], num_classes: dict[str, int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every aggregate metric on the table; returns (dataset-level rows, summary rows).

    An aggregate that cannot be computed (no HR condition, no accuracy rows) is skipped with a warning; rows whose
    value is undefined keep a ``note`` (aggregates.csv) and are warned about once.
    """
    table = unique_rows(table)
    per_dataset, summary = [], []
    for label, agg in aggregates:
        try:
            out = agg.aggregate(table, num_classes)
        except AggregateSkipped as exc:
            log.warning("aggregate %s skipped: %s", label, exc)
            continue
        if out is None or out.empty:
            continue
        out = out.assign(metric=label)
        (per_dataset if agg.level == "dataset" else summary).append(out)
    agg_df = (
        pd.concat(per_dataset, ignore_index=True).reindex(columns=AGG_COLUMNS)
        if per_dataset
        else pd.DataFrame(columns=AGG_COLUMNS)
    )
    agg_df["note"] = agg_df["note"].fillna("")
    noted = agg_df[agg_df["note"] != ""].drop_duplicates(["model", "method", "dataset", "note"])
    for row in noted.itertuples(index=False):
        log.warning("%s | %s | %s: %s (listed in aggregates.csv)", row.model, row.method, row.dataset, row.note)
    sum_df = pd.concat(summary, ignore_index=True) if summary else pd.DataFrame(columns=SUMMARY_COLUMNS)
    if "n_datasets" not in sum_df:
        sum_df["n_datasets"] = np.nan
    return agg_df, sum_df[SUMMARY_COLUMNS]


def read_accuracy_table(path: str | Path, metric: str = "top1") -> tuple[pd.DataFrame, dict[str, int]]:
    """A results-like CSV from anywhere, checked: (table, num_classes per dataset).

    Columns model, dataset, condition, metric, value; optional method (default ``none``) and num_classes. Every
    problem is one :class:`LrbenchError` line naming the file line: not UTF-8, empty, ragged rows, empty keys, values
    that are not numbers, ``metric`` values outside [0, 1] (percentages), num_classes below 2 or differing per dataset.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LrbenchError(f"{p}: not UTF-8 text (byte at offset {exc.start}); save it as UTF-8 CSV") from None
    rows = list(csv.reader(io.StringIO(text)))
    lines = [i + 1 for i, r in enumerate(rows) if r]
    rows = [r for r in rows if r]
    if not rows:
        raise LrbenchError(f"{p}: empty file; need a header model,dataset,condition,metric,value")
    header = [h.strip() for h in rows[0]]
    missing = {"model", "dataset", "condition", "metric", "value"} - set(header)
    if missing:
        raise LrbenchError(f"{p}: missing columns {sorted(missing)}; need model, dataset, condition, metric, value")
    for line, r in zip(lines[1:], rows[1:]):
        if len(r) != len(header):
            raise LrbenchError(f"{p} line {line}: {len(r)} fields, the header has {len(header)}")
    df = pd.DataFrame(rows[1:], columns=header, dtype=str)
    df.insert(0, "_line", lines[1:])
    if "method" not in df:
        df["method"] = "none"
    for col in ["model", "method", "dataset", "condition", "metric"]:
        df[col] = df[col].str.strip()
        empty = df[df[col] == ""]
        if not empty.empty:
            raise LrbenchError(f"{p} line {empty['_line'].iloc[0]}: empty {col!r}")
    values = pd.to_numeric(df["value"].str.strip().replace("", "nan"), errors="coerce")
    bad = df[values.isna() & ~df["value"].str.strip().str.lower().isin(["", "nan"])]
    if not bad.empty:
        v = bad["value"].iloc[0]
        hint = " (write fractions in [0, 1], not percentages)" if v.strip().endswith("%") else ""
        raise LrbenchError(f"{p} line {bad['_line'].iloc[0]}: value {v!r} is not a number{hint}")
    df["value"] = values
    acc = df[(df["metric"] == metric) & ((df["value"] < 0) | (df["value"] > 1))]
    if not acc.empty:
        raise LrbenchError(
            f"{p} line {acc['_line'].iloc[0]}: {metric} value {acc['value'].iloc[0]} is outside "
            "[0, 1]; the aggregates read accuracies as fractions (a percentage? divide by 100; not an accuracy? "
            "choose one with --metric)"
        )
    num_classes: dict[str, int] = {}
    if "num_classes" in df:
        given = df[df["num_classes"].str.strip() != ""]
        for line, dataset, raw in zip(given["_line"], given["dataset"], given["num_classes"]):
            try:
                count = float(raw)
            except ValueError:
                count = float("nan")
            if not (count >= 2 and count.is_integer()):
                raise LrbenchError(f"{p} line {line}: num_classes {raw!r} is not an integer >= 2")
            if num_classes.setdefault(dataset, int(count)) != int(count):
                raise LrbenchError(
                    f"{p} line {line}: num_classes {int(count)} for dataset {dataset!r}, "
                    f"an earlier row says {num_classes[dataset]}"
                )
        df = df.drop(columns="num_classes")
    return df.drop(columns="_line"), num_classes


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


def headline_rows(results: pd.DataFrame, headline: dict[str, str]) -> pd.DataFrame:
    """The rows of each task's headline metric (``headline``: task -> metric, as run.json records it)."""
    if results.empty or not headline:
        return results.iloc[0:0]
    return results[results["metric"] == results["task"].map(headline)]


def headline_pivot(results: pd.DataFrame, headline: dict[str, str]) -> pd.DataFrame:
    """One row per (model, method, dataset, metric), one column per condition, of the headline metrics."""
    t = headline_rows(results, headline)
    if t.empty:
        return t
    pivot = t.pivot_table(
        index=["model", "method", "dataset", "metric"], columns="condition", values="value", sort=False
    )
    return pivot.reset_index()


def write_outputs(
    run_dir: Path, results: pd.DataFrame, agg: pd.DataFrame, summary: pd.DataFrame, headline: dict[str, str]
) -> None:
    write_frame(results, run_dir / "results.parquet")
    write_frame(results, run_dir / "results.csv")
    write_frame(agg, run_dir / "aggregates.csv")
    write_frame(summary, run_dir / "summary.csv")
    md = [
        "# Summary\n",
        markdown_table(summary_pivot(summary)),
        "\n# Headline metric per dataset\n",
        markdown_table(headline_pivot(results, headline)),
    ]
    atomic_write_text(run_dir / "summary.md", "\n".join(md))


# ---- the run directory, published whole ---------------------------------------------------------------------------
_STAGING, _OLD = ".staging-", ".old-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(run_dir: Path, kind: str) -> list[tuple[Path, int]]:
    out = []
    for p in run_dir.parent.glob(f".{run_dir.name}{kind}*"):
        pid = p.name[len(f".{run_dir.name}{kind}") :].split("-")[0]
        if pid.isdigit():
            out.append((p, int(pid)))
    return out


def clean_stale(run_dir: Path) -> None:
    """Remove what killed runs left beside ``run_dir``: their staging folders, and a previous run directory moved aside
    (put back when the kill came between the two renames of :func:`publish`, removed otherwise)."""
    for path, pid in _leftovers(run_dir, _STAGING):
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
    for path, pid in _leftovers(run_dir, _OLD):
        if _pid_alive(pid):
            continue
        if not run_dir.exists():
            os.replace(path, run_dir)
        else:
            shutil.rmtree(path, ignore_errors=True)


def staging_dir(run_dir: Path) -> Path:
    """A new folder beside ``run_dir`` that a run fills with all its outputs before :func:`publish` swaps it in."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(run_dir)
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}{_STAGING}{os.getpid()}-"))
    staging.chmod(0o777 & ~_umask())
    return staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(staging: Path, run_dir: Path) -> None:
    """Replace ``run_dir`` by ``staging`` with renames: a reader sees the old run's files or the new run's, never a mix
    (for the instant between the two renames, no run directory)."""
    old = None
    if run_dir.exists():
        old = run_dir.parent / f".{run_dir.name}{_OLD}{os.getpid()}-{staging.name.rsplit('-', 1)[-1]}"
        os.replace(run_dir, old)
    os.replace(staging, run_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


RUN_FILES = ("results.csv", "results.parquet", "run.json", "spec.resolved.yaml", "summary.csv", "aggregates.csv")


def check_output_dir(path: Path) -> str | None:
    """Why ``path`` cannot be a run directory (None when it can): a file, a folder holding something other than a
    previous run (publishing replaces the whole folder), or a place this process cannot write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    if path.is_dir() and any(path.iterdir()) and not any((path / f).is_file() for f in RUN_FILES):
        return (
            f"{path} is a folder with other files in it (a run replaces its whole directory); "
            "choose a new or a previous run's folder"
        )
    return writable_dir_problem(path.parent if not path.exists() else path)


def writable_dir_problem(path: Path) -> str | None:
    """Why files cannot be created in folder ``path`` (created if missing), or None; tried, not guessed from modes."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".lrbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror or exc}"
    return None
