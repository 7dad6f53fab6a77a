"""One leaderboard from many run directories: ``lrbench merge RUN_DIR... --out DIR``.

Runs made separately (one model per machine, one dataset per day) are joined row by row; the aggregates (ACC, gamma,
Gamma, SAR, WAR with LR0.FM's defaults) are recomputed over the joined table, because an average of averages is not
the average. A cell present in two runs must have the same value in both: a conflict is refused with the rows shown
(two runs of one cell that disagree mean different code, weights or data, and neither number can be picked silently).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .cache import atomic_write_text
from .registry import LrbenchError, spelling
from .results import split_aggregates, unique_rows, write_outputs


def _read_run(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    path = run_dir / "results.csv"
    if not path.is_file():
        raise LrbenchError(f"{run_dir} is not a run directory: results.csv not found")
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return _respell(pd.read_csv(path)).assign(run_dir=str(run_dir)), meta


def _respell(results: pd.DataFrame) -> pd.DataFrame:
    """A run made before the naming rule names some degradations with underscores (``gaussian_blur``): its rows get
    today's spelling (``gaussian-blur``, and ``gaussian-blur@2`` for the condition it named), so they meet the same
    cells of newer runs instead of becoming other conditions. A condition the spec labelled keeps its label."""
    if "degradation" not in results:
        return results
    old = results["degradation"].astype(str)
    new = old.map(spelling)
    changed = (old != new) & results["degradation"].notna()
    if not changed.any():
        return results
    results = results.copy()
    condition = results["condition"].astype(str)
    for i in results.index[changed]:
        name, cond = old[i], condition[i]
        if cond == name or cond.startswith((f"{name}@", f"{name}(")):
            results.at[i, "condition"] = new[i] + cond[len(name) :]
    results.loc[changed, "degradation"] = new[changed]
    return results


def merge_runs(run_dirs: list[str | Path], out: str | Path, metric: str = "top1") -> pd.DataFrame:
    """Join the runs' results, refuse conflicting cells, recompute aggregates, write a run directory at ``out``."""
    from .builtin.aggregates import Acc, Gamma, ImprovedGamma, Sar, War
    from .report import describe_conditions, write_report

    if not run_dirs:
        raise LrbenchError("merge needs at least one run directory")
    frames, metas = zip(*(_read_run(Path(d)) for d in run_dirs))
    for run_dir, frame in zip(run_dirs, frames):
        describe_conditions(frame, str(Path(run_dir) / "results.csv"))  # each run says what its conditions are
    table = pd.concat(frames, ignore_index=True)
    keys = ["model", "method", "dataset", "condition", "metric"]
    dup = table.duplicated(keys, keep=False)
    same = table["value"].astype(str) + "/" + (table["n"].astype(str) if "n" in table else "")
    clash = same[dup].groupby([table.loc[dup, k] for k in keys], sort=False).transform(lambda v: v.nunique() > 1)
    conflicting = table[dup][clash.astype(bool)] if dup.any() else table.iloc[:0]
    if not conflicting.empty:
        shown = "; ".join(
            f"{r.model} | {r.method} | {r.dataset} | {r.condition} | {r.metric} = {r.value:.6g}"
            + (f" (n={r.n})" if "n" in table else "")
            + f" in {r.run_dir}"
            for r in conflicting.head(6).itertuples()
        )
        raise LrbenchError(
            f"{len(conflicting)} rows give one cell different values across runs; merge runs that "
            f"agree, or drop one: {shown}"
        )
    results = unique_rows(table.drop(columns="run_dir")).reset_index(drop=True)
    num_classes: dict[str, int] = {}
    for meta in metas:
        num_classes.update({k: int(v) for k, v in (meta.get("num_classes") or {}).items()})
    aggs = [
        ("ACC", Acc(metric)),
        ("gamma", Gamma(metric)),
        ("Gamma", ImprovedGamma(metric)),
        ("SAR", Sar(metric)),
        ("WAR", War(metric)),
    ]
    agg, summary = split_aggregates(results, aggs, num_classes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    headline: dict[str, str] = {}  # each task's headline metric, as the merged runs recorded it
    for meta in metas:
        headline.update(meta.get("headline_metrics") or {})
    write_outputs(out, results, agg, summary, headline)
    plugins = {}
    for meta in metas:
        for p in meta.get("plugins", []):
            plugins.setdefault(p.get("name"), p)
    input_size = {}
    for meta in metas:
        input_size.update(meta.get("input_size") or {})
    devices = sorted({str(m.get("device")) for m in metas if m.get("device")})
    merged = {
        "finished": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "merged_from": [str(d) for d in run_dirs],
        "lrbench": ", ".join(sorted({str(m.get("lrbench")) for m in metas if m.get("lrbench")})),
        "device": ", ".join(devices),
        "plugins": list(plugins.values()),
        "num_classes": num_classes,
        "input_size": input_size,
        "headline_metrics": headline,
        "cells": int(len(results.drop_duplicates(keys[:4]))),
        "failures": [f for m in metas for f in m.get("failures", [])],
        "aggregates": "ACC, gamma, Gamma, SAR, WAR recomputed over the merged table with LR0.FM's defaults",
    }
    atomic_write_text(out / "run.json", json.dumps(merged, indent=2, default=str))
    write_report(out)
    return results
