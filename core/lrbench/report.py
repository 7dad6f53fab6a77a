"""Reports rebuilt from a run directory's stored files only: report.md, a self-contained report.html and PNG plots.

What the report shows and why:

- a header (date, lrbench and plugin versions, device, items per dataset, time) so a figure pasted elsewhere can be
  traced back to what produced it;
- one figure per degradation family on its real x axis (pixels for resizing, quality for JPEG, sigma for blur and
  noise), one panel per dataset, accuracy on a fixed 0-100 % axis (an auto-scaled axis makes noise look like a trend)
  with 95 % Wilson intervals from the number of items scored and the dataset's chance level;
- SAR and WAR as grouped bars per condition with their definitions;
- tables that wrap to the page width, without a pandas index column.

Images are written at 200 dpi and embedded in report.html (one file to mail or archive); report.md links the PNGs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .cache import atomic_write_bytes, atomic_write_text  # noqa: E402
from .registry import LrbenchError  # noqa: E402
from .results import accuracy_pivot, markdown_table  # noqa: E402

DPI = 200
#: metrics that are a fraction of the ``n`` items scored, so a binomial (Wilson) interval applies
PROPORTION_METRICS = ("top1", "top5")


# ---- what a condition is: family and value on the family's axis -------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """How a degradation family is drawn: axis label, log scale, where the clean (``hr``) point goes."""

    label: str
    log2: bool = False
    #: "right": the clean point sits right of the largest value, labelled ``clean_label``; a number: its real value
    clean: str | float = "right"
    clean_label: str = "clean"


AXES: dict[str, Axis] = {
    "resolution": Axis("input resolution (px, shorter side)", log2=True, clean="right", clean_label="HR"),
    "jpeg": Axis("JPEG quality", clean="right", clean_label="clean"),
    "blur": Axis("Gaussian blur sigma (px)", clean=0.0),
    "noise": Axis("Gaussian noise sigma ([0, 1] scale)", clean=0.0),
}
#: the columns a run writes from each condition's :meth:`~lrbench.degradations.Degradation.describe`
DESCRIPTION_COLUMNS = ("degradation", "family", "level")


@dataclass(frozen=True)
class ConditionInfo:
    """A condition's place in the report: its family (one figure each), degradation and value (None = clean)."""

    family: str | None
    degradation: str
    value: float | None


def describe_conditions(results: pd.DataFrame, source: str = "results.csv") -> dict[str, ConditionInfo]:
    """condition -> family, degradation, value, read from the ``degradation`` / ``family`` / ``level`` columns a run
    writes (each degradation describes itself). A condition's name is never parsed (``shift@4`` is not a 4 px image, a
    labelled condition has no ``@``), so a table without the columns (written before lrbench had them) is an error
    saying how to rewrite it. Families without an axis of their own are drawn on a plain numeric axis.
    """
    missing = [c for c in DESCRIPTION_COLUMNS if c not in results.columns]
    if missing:
        raise LrbenchError(
            f"{source} has no {', '.join(missing)} column{'s' * (len(missing) > 1)}: it was written by an lrbench "
            "that did not describe conditions, and the report does not guess them from condition names. Run the "
            "run's spec.resolved.yaml again to rewrite it (cells still in the cache are not computed again)"
        )
    out: dict[str, ConditionInfo] = {}
    for cond, g in results.groupby("condition", sort=False):
        row = g.iloc[0]
        level = row["level"]
        value = None if pd.isna(level) else float(level)
        family = None if pd.isna(row["family"]) or row["family"] in ("", "clean") else str(row["family"])
        out[str(cond)] = ConditionInfo(family, str(row["degradation"]), value)
    return out


# ---- statistics ------------------------------------------------------------------------------------------------------
def wilson_interval(p: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` items (scipy's, without continuity correction)."""
    if not n or n <= 0 or p is None or math.isnan(p):
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    k = int(round(p * n))
    ci = binomtest(k, int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


# ---- run facts ---------------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def chance_levels(results: pd.DataFrame, meta: dict[str, Any]) -> dict[str, float]:
    """dataset -> 1 / number of classes, from results' ``num_classes`` column or run.json's ``num_classes``."""
    counts: dict[str, Any] = dict(meta.get("num_classes") or {})
    if "num_classes" in results:
        for ds, c in results.dropna(subset=["num_classes"]).groupby("dataset")["num_classes"].first().items():
            counts[str(ds)] = c
    return {ds: 1.0 / float(c) for ds, c in counts.items() if c and float(c) > 0}


def _label(model: str, method: str) -> str:
    return model if method == "none" else f"{model} + {method}"


# ---- plots -------------------------------------------------------------------------------------------------------------
def _family_x(axis: Axis, values: list[float]) -> float:
    """Where the clean point goes on a family's axis."""
    if isinstance(axis.clean, (int, float)):
        return float(axis.clean)
    top = max(values)
    return top * 2 if axis.log2 else top + max((top - min(values)) * 0.25, 5.0)


PANEL_W, PANEL_H, MAX_COLS = 3.9, 3.0, 3  # inches: three panels span ~1120 px at 96 px per inch


def plot_accuracy(
    results: pd.DataFrame,
    panels: list[tuple[str, str]],
    info: dict[str, ConditionInfo],
    chance: dict[str, float],
    path: Path,
    metric: str = "top1",
    hr_px: str | None = None,
) -> bool:
    """Accuracy against each family's degradation value, one panel per (family, dataset), with Wilson bands (95 %,
    from ``n``) and the dataset's chance line, on a fixed 0-100 % axis."""
    t = results[results["metric"] == metric]
    if t.empty or not panels:
        return False
    cols = min(MAX_COLS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), squeeze=False)
    for ax, (family, ds) in zip(axes.flat, panels):
        _panel(ax, t[t["dataset"] == ds], family, ds, info, chance.get(ds), metric, hr_px)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path)
    return True


def _panel(
    ax: Any,
    d: pd.DataFrame,
    family: str,
    ds: str,
    info: dict[str, ConditionInfo],
    chance: float | None,
    metric: str,
    hr_px: str | None,
) -> None:
    axis = AXES.get(family, Axis(f"{family} value"))
    conds = [c for c, i in info.items() if i.family == family and i.value is not None]
    values = sorted({info[c].value for c in conds})
    clean_x = _family_x(axis, values)
    degradations = list(dict.fromkeys(info[c].degradation for c in conds))
    for (model, method), g in d.groupby(["model", "method"], sort=False):
        by_cond = g.set_index("condition")
        for deg in degradations:
            pts = [(info[c].value, c) for c in conds if info[c].degradation == deg and c in by_cond.index]
            if not pts:
                continue
            if "hr" in by_cond.index:
                pts.append((clean_x, "hr"))
            pts.sort()
            xs = [p[0] for p in pts]
            ys = [100 * float(by_cond.loc[p[1], "value"]) for p in pts]
            label = _label(model, method) + (f" ({deg})" if len(degradations) > 1 else "")
            (line,) = ax.plot(xs, ys, marker="o", ms=3, lw=1.3, label=label)
            if metric in PROPORTION_METRICS and "n" in by_cond:
                ci = [wilson_interval(float(by_cond.loc[p[1], "value"]), int(by_cond.loc[p[1], "n"])) for p in pts]
                ax.fill_between(
                    xs, [100 * lo for lo, _ in ci], [100 * hi for _, hi in ci], color=line.get_color(), alpha=0.15, lw=0
                )
    if chance is not None:
        ax.axhline(100 * chance, color="0.35", ls="--", lw=1, label=f"chance (1/{round(1 / chance)})")
    if axis.log2:
        ax.set_xscale("log", base=2)
    ticks, labels = list(values), [f"{v:g}" for v in values]
    if isinstance(axis.clean, (int, float)):
        if clean_x not in values:
            ticks.insert(0, clean_x)
            labels.insert(0, f"{clean_x:g}")
    else:
        ticks.append(clean_x)
        labels.append(axis.clean_label + (f"\n{hr_px}" if hr_px and family == "resolution" else ""))
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    ax.minorticks_off()
    ax.set_ylim(0, 100)
    ax.tick_params(axis="y", labelsize=7)
    n = int(d["n"].max()) if "n" in d and len(d) else 0
    ax.set_title(f"{ds}: {family}, n={n}", fontsize=9)
    ax.set_xlabel(axis.label, fontsize=8)
    ax.set_ylabel(f"{metric} (%)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")


def plot_robustness(summary: pd.DataFrame, info: dict[str, ConditionInfo], path: Path) -> bool:
    """SAR and WAR as grouped bars: one group per condition (ordered by family and severity), one bar per model."""
    s = summary[summary["metric"].isin(["SAR", "WAR"])]
    if s.empty:
        return False
    conds = sorted(s["condition"].astype(str).unique(), key=lambda c: _condition_order(c, info))
    series = list(dict.fromkeys(zip(s["model"], s["method"])))
    fig, axes = plt.subplots(
        2,
        1,
        figsize=(min(PANEL_W * MAX_COLS, 2.2 + 0.75 * len(conds) * max(1, len(series)) ** 0.5), 5.0),
        squeeze=False,
    )
    width = 0.8 / len(series)
    top = max(1.05, float(s["value"].max()) * 1.08)
    for ax, metric in zip(axes.flat, ["SAR", "WAR"]):
        m = s[s["metric"] == metric].set_index(["model", "method", "condition"])["value"]
        for i, (model, method) in enumerate(series):
            ys = [100 * float(m.get((model, method, c), np.nan)) for c in conds]
            ax.bar(np.arange(len(conds)) + (i - (len(series) - 1) / 2) * width, ys, width, label=_label(model, method))
        ax.axhline(100, color="0.35", ls="--", lw=1)
        ax.set_xticks(np.arange(len(conds)))
        ax.set_xticklabels(conds, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 100 * top)
        ax.set_ylabel(f"{metric} (%)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=7, ncol=min(3, len(series)))
    fig.tight_layout()
    _save(fig, path)
    return True


def _condition_order(cond: str, info: dict[str, ConditionInfo]) -> tuple:
    i = info.get(cond)
    if i is None or i.family is None:
        return (0, 0, "", 0.0)
    # most severe last: resolution and JPEG shrink, blur and noise grow
    v = i.value if i.value is not None else 0.0
    rank = list(AXES).index(i.family) if i.family in AXES else len(AXES)
    return (1, rank, i.family, -v if AXES.get(i.family, Axis("")).clean == "right" else v)


def _save(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ---- tables ----------------------------------------------------------------------------------------------------------
def _cond_columns(columns: Iterable[str], info: dict[str, ConditionInfo]) -> list[str]:
    return sorted(columns, key=lambda c: _condition_order(c, info))


def summary_table(summary: pd.DataFrame, info: dict[str, ConditionInfo]) -> pd.DataFrame:
    """Rows (model, method, metric), one column per condition: narrower than one column per metric@condition."""
    if summary.empty:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(["ACC", "SAR", "WAR"])}
    p = summary.pivot_table(index=["model", "method", "metric"], columns="condition", values="value", sort=False)
    p = p[_cond_columns(p.columns, info)].reset_index()
    p["_o"] = p["metric"].map(lambda m: order.get(m, len(order)))
    return p.sort_values(["model", "method", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _pct(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"


def html_table(df: pd.DataFrame, titles: dict[tuple[int, str], str] | None = None, percent: bool = True) -> str:
    """A plain HTML table (no index column); numbers as percentages with one decimal; optional cell tooltips."""
    if df.empty:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cells = []
        for col, v in zip(df.columns, row):
            num = isinstance(v, (float, np.floating))
            text = (_pct(v) if percent else f"{v:.4f}") if num else html.escape(str(v))
            title = (titles or {}).get((i, str(col)))
            attr = f" title='{html.escape(title)}'" if title else ""
            cells.append(f"<td class='{'num' if num else 'txt'}'{attr}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _accuracy_table(
    results: pd.DataFrame, info: dict[str, ConditionInfo], metric: str = "top1"
) -> tuple[pd.DataFrame, dict[tuple[int, str], str]]:
    table = accuracy_pivot(results, metric)
    if table.empty:
        return table, {}
    keys = ["model", "method", "dataset"]
    table = table[keys + _cond_columns([c for c in table.columns if c not in keys], info)]
    t = results[results["metric"] == metric].set_index(keys + ["condition"])
    titles = {}
    for i, row in table.iterrows():
        for c in table.columns[3:]:
            k = (row["model"], row["method"], row["dataset"], c)
            if k in t.index:
                v, n = float(t.loc[k, "value"]), int(t.loc[k, "n"])
                if metric in PROPORTION_METRICS:
                    lo, hi = wilson_interval(v, n)
                    titles[(int(i), c)] = f"{100 * v:.1f} % of n={n}; 95% Wilson CI {100 * lo:.1f}-{100 * hi:.1f}"
                else:  # not a proportion (PSNR, a distance): no binomial interval applies
                    titles[(int(i), c)] = f"{v:.4g} over n={n}"
    return table, titles


# ---- the report --------------------------------------------------------------------------------------------------------
DEFINITIONS = [
    (
        "top-1",
        "fraction of items whose highest-scoring class is the label; shaded bands are 95 % Wilson intervals "
        "from the number of items scored (n), the dashed line is chance (1 / number of classes).",
    ),
    ("ACC", "mean over datasets of top-1 at a condition."),
    ("gamma", "relative robustness A_n / A_HR of one dataset (LR0.FM)."),
    (
        "Gamma",
        "improved relative robustness gamma * (1 - exp(-200 (A_HR - 1/C)^2)): near 0 when HR accuracy is near chance.",
    ),
    ("SAR", "simple aggregated robustness: mean over datasets of gamma at a condition; 100 % = no loss against HR."),
    (
        "WAR",
        "weighted aggregated robustness: sum_D |w_D Gamma_D| / sum_D |w_D| with LR0.FM's WAR-16 dataset weights "
        "unless the spec gives others.",
    ),
]


def _header(run_dir: Path, results: pd.DataFrame, meta: dict[str, Any]) -> list[tuple[str, str]]:
    date = meta.get("finished") or meta.get("date")
    if not date:
        date = (
            _dt.datetime.fromtimestamp((run_dir / "results.csv").stat().st_mtime)
            .astimezone()
            .isoformat(timespec="seconds")
        )
    versions = [f"lrbench {meta.get('lrbench', '?')}"]
    seen = set()
    for p in meta.get("plugins", []):
        dist = p.get("distribution")
        if dist and dist != "lrbench" and dist not in seen:
            seen.add(dist)
            versions.append(f"{dist} {p.get('version') or '?'}" + (" (failed to load)" if p.get("error") else ""))
    for k in ("python", "torch"):
        if meta.get(k):
            versions.append(f"{k} {meta[k]}")
    device = str(meta.get("device", "?")) + (f" ({meta['device_name']})" if meta.get("device_name") else "")
    ns = results.groupby("dataset")["n"].max() if "n" in results else pd.Series(dtype=int)
    n_text = ", ".join(f"{ds}: {int(n)}" for ds, n in ns.items())
    timings = meta.get("timings") or {}
    time_text = (
        f"{timings['total_s']:.1f} s total, {timings.get('compute_s', 0):.1f} s computing"
        if "total_s" in timings
        else "not recorded"
    )
    computed = meta.get("computed")
    cells = meta.get("cells")
    rows = [
        ("date", str(date)),
        ("versions", ", ".join(versions)),
        ("device", device),
        ("items scored (n)", n_text or "?"),
        ("time", time_text),
    ]
    if cells is not None and computed is not None:
        rows.append(
            ("cells", f"{cells} ({len(computed)} computed by this run, {cells - len(computed)} from the cache)")
        )
    if meta.get("failures"):
        rows.append(("failures", f"{len(meta['failures'])} unit(s) failed: see below"))
    return rows


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 5px;overflow-wrap:anywhere;vertical-align:top}
th{background:#f4f4f4;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta{table-layout:auto;font-size:13px} table.meta th{text-align:left;width:11em}
img{max-width:100%;height:auto;display:block;margin:.5em 0} dt{font-weight:600} dd{margin:0 0 .4em 1.5em}
.note{color:#555;font-size:13px}
"""


def write_report(run_dir: str | Path, name: str | None = None) -> Path:
    """Build report.md, report.html (self-contained) and the plots from the run directory's stored files; ``name``
    titles it (a run writes its report in a staging folder before publishing it under the run's own name)."""
    run_dir = Path(run_dir)
    name = name or run_dir.name
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise LrbenchError(f"{run_dir} is not a run directory: results.csv not found")
    results = pd.read_csv(results_path)
    summary = pd.read_csv(run_dir / "summary.csv") if (run_dir / "summary.csv").is_file() else pd.DataFrame()
    aggregates = pd.read_csv(run_dir / "aggregates.csv") if (run_dir / "aggregates.csv").is_file() else pd.DataFrame()
    meta = _read_json(run_dir / "run.json")
    info = describe_conditions(results, str(results_path))
    chance = chance_levels(results, meta)
    sizes = set((meta.get("input_size") or {}).values())
    hr_px = f"{sizes.pop()} px" if len(sizes) == 1 else None
    # the metric the run's tasks lead with (run.json); tables without it (older runs) are read as top-1 tables
    headline = list(dict.fromkeys((meta.get("headline_metrics") or {}).values()))
    metric = headline[0] if headline else ("top1" if (results["metric"] == "top1").any() else None)
    shown = "Top-1 accuracy" if metric == "top1" else str(metric)

    plots: list[tuple[str, str]] = []
    families = sorted(
        {i.family for i in info.values() if i.family and i.value is not None},
        key=lambda f: (list(AXES).index(f) if f in AXES else len(AXES), f),
    )
    datasets = list(dict.fromkeys(results["dataset"].astype(str)))
    if metric and families:
        # one dataset: every family side by side in one figure; several: one figure per family, a panel per dataset
        groups = (
            [("degradation" if len(families) > 1 else families[0], families)]
            if len(datasets) == 1
            else [(f, [f]) for f in families]
        )
        for name, fams in groups:
            panels = [(f, ds) for f in fams for ds in datasets]
            title = f"{shown} per degradation family" if len(fams) > 1 else f"{shown} vs {fams[0]}"
            if plot_accuracy(results, panels, info, chance, run_dir / f"accuracy_vs_{name}.png", metric, hr_px):
                plots.append((title, f"accuracy_vs_{name}.png"))
    if not summary.empty and plot_robustness(summary, info, run_dir / "robustness.png"):
        plots.append(("SAR and WAR per condition (100 % = as accurate as at HR)", "robustness.png"))

    acc, titles = _accuracy_table(results, info, metric or "top1")
    sections: list[tuple[str, pd.DataFrame, dict, bool]] = [
        ("Summary: ACC, SAR, WAR (%)", summary_table(summary, info), {}, True),
        (f"{'Top-1' if metric == 'top1' else metric} per dataset and condition (%)", acc, titles, True),
    ]
    if not aggregates.empty:
        g = aggregates.pivot_table(
            index=["model", "method", "dataset", "metric"], columns="condition", values="value", sort=False
        )
        g = g[_cond_columns(g.columns, info)].reset_index()
        sections.append(("Per-dataset robustness: gamma, Gamma (%)", g, {}, True))
    other = results[results["metric"] != metric]
    if not other.empty:
        o = other.pivot_table(
            index=["model", "method", "dataset", "metric"], columns="condition", values="value", sort=False
        )
        o = o[_cond_columns(o.columns, info)].reset_index()
        sections.append(("Other metrics", o, {}, False))
    failures = pd.DataFrame(meta.get("failures") or [])

    header = _header(run_dir, results, meta)
    md = [f"# lrbench report: {name}\n"] + [f"- **{k}**: {v}" for k, v in header] + [""]
    body = [
        f"<h1>lrbench report: {html.escape(name)}</h1>",
        "<table class='meta'>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in header)
        + "</table>",
    ]
    if not failures.empty:
        md.append(f"## Failed units\n\n{markdown_table(failures)}")
        body.append("<h2>Failed units</h2>" + html_table(failures, percent=False))
    for title, name in plots:
        md.append(f"## {title}\n\n![{title}]({name})\n")
        raw = (run_dir / name).read_bytes()
        width = int.from_bytes(raw[16:20], "big") * 96 // DPI  # PNG header width; shown at 96 px per inch
        data = base64.b64encode(raw).decode()
        body.append(
            f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{data}' style='width:{width}px' "
            f"alt='{html.escape(title)}'>"
        )
    defs = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS)
    body.append(f"<h2>Definitions</h2><dl class='note'>{defs}</dl>")
    md.append("## Definitions\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in DEFINITIONS) + "\n")
    for title, df, cell_titles, percent in sections:
        shown = (
            df.apply(lambda col: col.map(_pct) if col.dtype.kind == "f" else col) if percent and not df.empty else df
        )
        md.append(f"## {title}\n\n{markdown_table(shown)}")
        body.append(f"<h2>{html.escape(title)}</h2>" + html_table(df, cell_titles, percent))
    if titles:
        body.append("<p class='note'>Hover a top-1 cell for n and its 95 % Wilson interval.</p>")
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    atomic_write_text(
        run_dir / "report.html",
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>lrbench report: {html.escape(name)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>",
    )
    return run_dir / "report.md"
