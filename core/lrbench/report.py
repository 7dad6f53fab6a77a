"""Reports rebuilt from a run directory's stored tables only: report.md, report.html and PNG plots.

The accuracy-vs-resolution plot follows LR0.FM's Figure 1: top-1 against the input resolution on a log axis with the
model's own resolution (HR) at the right, one line per model and method, one panel per dataset.
"""
from __future__ import annotations

import html
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .cache import atomic_write_bytes, atomic_write_text  # noqa: E402
from .registry import LrbenchError  # noqa: E402
from .results import accuracy_pivot, markdown_table, summary_pivot  # noqa: E402

_RES = re.compile(r"^[a-z_]+@(\d+)$")


def resolution_of(condition: str) -> int | None:
    """``bicubic@16`` -> 16; None for conditions that are not a single resolution (``hr``, ``jpeg@30`` is read too)."""
    m = _RES.match(condition)
    return int(m.group(1)) if m else None


def _resolution_conditions(df: pd.DataFrame) -> list[str]:
    conds = [c for c in df["condition"].unique() if resolution_of(c) is not None and not c.startswith(("jpeg", "noise", "gaussian"))]
    return sorted(conds, key=resolution_of)


def plot_accuracy_vs_resolution(results: pd.DataFrame, path: Path, metric: str = "top1") -> bool:
    t = results[results["metric"] == metric]
    conds = _resolution_conditions(t)
    if t.empty or not conds:
        return False
    datasets = list(dict.fromkeys(t["dataset"]))
    cols = min(3, len(datasets))
    rows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    xs = [resolution_of(c) for c in conds]
    hr_x = max(xs) * 2
    for ax, ds in zip(axes.flat, datasets):
        d = t[t["dataset"] == ds]
        for (model, method), g in d.groupby(["model", "method"], sort=False):
            vals = g.set_index("condition")["value"]
            pts = [(resolution_of(c), vals[c]) for c in conds if c in vals]
            if "hr" in vals:
                pts.append((hr_x, vals["hr"]))
            label = model if method == "none" else f"{model} + {method}"
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ticks = xs + ([hr_x] if "hr" in set(d["condition"]) else [])
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(x) for x in xs] + (["HR"] if len(ticks) > len(xs) else []))
        ax.set_title(ds)
        ax.set_xlabel("input resolution (px)")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_robustness(summary: pd.DataFrame, path: Path) -> bool:
    s = summary[summary["metric"].isin(["SAR", "WAR"])]
    if s.empty:
        return False
    conds = sorted(s["condition"].unique(), key=lambda c: resolution_of(c) or 0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), squeeze=False)
    for ax, metric in zip(axes.flat, ["SAR", "WAR"]):
        m = s[s["metric"] == metric]
        for (model, method), g in m.groupby(["model", "method"], sort=False):
            vals = g.set_index("condition")["value"]
            label = model if method == "none" else f"{model} + {method}"
            ax.plot(range(len(conds)), [100 * vals.get(c, float("nan")) for c in conds], marker="o", label=label)
        ax.set_xticks(range(len(conds)))
        ax.set_xticklabels(conds, rotation=30, fontsize=8)
        ax.set_title(f"{metric} (%)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return True


def _save(fig: plt.Figure, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_report(run_dir: str | Path) -> Path:
    """Build report.md / report.html and plots from results.csv, aggregates.csv and summary.csv."""
    run_dir = Path(run_dir)
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise LrbenchError(f"{run_dir} is not a run directory: results.csv not found")
    results = pd.read_csv(results_path)
    summary = pd.read_csv(run_dir / "summary.csv") if (run_dir / "summary.csv").is_file() else pd.DataFrame()
    aggregates = pd.read_csv(run_dir / "aggregates.csv") if (run_dir / "aggregates.csv").is_file() else pd.DataFrame()
    plots = []
    if plot_accuracy_vs_resolution(results, run_dir / "accuracy_vs_resolution.png"):
        plots.append(("Top-1 accuracy vs input resolution", "accuracy_vs_resolution.png"))
    if not summary.empty and plot_robustness(summary, run_dir / "robustness.png"):
        plots.append(("SAR and WAR per condition", "robustness.png"))
    sections = [("Summary (ACC, SAR, WAR)", summary_pivot(summary) if not summary.empty else summary),
                ("Top-1 per dataset and condition", accuracy_pivot(results))]
    if not aggregates.empty:
        g = aggregates.assign(column=aggregates["metric"] + "@" + aggregates["condition"].astype(str))
        sections.append(("Per-dataset robustness (gamma, Gamma)",
                         g.pivot_table(index=["model", "method", "dataset"], columns="column", values="value",
                                       sort=False).reset_index()))
    other = results[~results["metric"].isin(["top1"])]
    if not other.empty:
        sections.append(("Other metrics", other.pivot_table(index=["model", "method", "dataset", "metric"],
                                                            columns="condition", values="value", sort=False).reset_index()))
    md = [f"# lrbench report: {run_dir.name}\n"]
    body = [f"<h1>lrbench report: {html.escape(run_dir.name)}</h1>"]
    for title, path in plots:
        md.append(f"## {title}\n\n![{title}]({path})\n")
        body.append(f"<h2>{html.escape(title)}</h2><img src='{path}' alt='{html.escape(title)}'>")
    for title, df in sections:
        md.append(f"## {title}\n\n{markdown_table(df)}")
        body.append(f"<h2>{html.escape(title)}</h2>" + (df.to_html(index=False, float_format=lambda v: f'{v:.4f}',
                                                                      na_rep="") if not df.empty else "<p>(no rows)</p>"))
    style = "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px}"
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    atomic_write_text(run_dir / "report.html", f"<!doctype html><html><head><meta charset='utf-8'><title>lrbench "
                      f"report</title><style>{style}</style></head><body>{''.join(body)}</body></html>")
    return run_dir / "report.md"
