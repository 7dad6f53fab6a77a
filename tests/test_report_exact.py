"""summary.md and report.md row by row against values recomputed by hand from results.csv, and `lrbench report`
rebuilding the same report from the stored tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from lrbench.cli import cli
from lrbench.runner import run_spec

MODELS = ["tiny", "tiny-1"]
DATASETS = ["toyworld", "toy-val"]
CONDS = ["hr", "bicubic@16", "bicubic@8"]
SPEC = {
    "name": "rows",
    "models": ["tiny", {"name": "tiny", "seed": 1, "label": "tiny-1"}],
    "datasets": [{"name": "toyworld", "n": 24}, {"name": "toyworld", "n": 24, "split": "val", "label": "toy-val"}],
    "conditions": CONDS,
    "batch_size": 24,
    "metrics": ["top1", "mean_per_class", "ACC", "SAR", "WAR", "gamma", "Gamma"],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return {"dir": tmp_path_factory.mktemp("rows")}


@pytest.fixture
def run_dir(plugins, store):
    """One run of SPEC per module (the conftest's tiny model, two datasets of 24, three conditions; every HR top-1 is
    above 0, so every gamma is finite)."""
    run = store["dir"] / "run"
    if not run.exists():
        run_spec(SPEC, run, plugins=plugins, cache_dir=store["dir"] / "cache")
    return run


def _tables(md: str) -> dict[str, list[list[str]]]:
    """Markdown tables by the heading above them: header row first, then the body rows (separator dropped)."""
    out: dict[str, list[list[str]]] = {}
    heading = None
    for line in md.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and heading is not None and not line.startswith("|---"):
            out.setdefault(heading, []).append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def _hand(results: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """(model, metric, condition) -> ACC / SAR / WAR written out: means over the two datasets; both datasets are
    unknown to the WAR-16 weights, so both get the mean weight and WAR is the plain mean of Gamma (12 classes)."""
    top1 = results[results.metric == "top1"].set_index(["model", "dataset", "condition"])["value"]
    out = {}
    for m in MODELS:
        for c in CONDS:
            out[(m, "ACC", c)] = sum(top1[(m, d, c)] for d in DATASETS) / 2
            if c == "hr":
                continue
            gammas = [top1[(m, d, c)] / top1[(m, d, "hr")] for d in DATASETS]
            easy = [1 - math.exp(-200 * (top1[(m, d, "hr")] - 1 / 12) ** 2) for d in DATASETS]
            out[(m, "SAR", c)] = sum(gammas) / 2
            out[(m, "WAR", c)] = sum(g * e for g, e in zip(gammas, easy)) / 2
    return out


def test_summary_md_rows_are_the_hand_computed_aggregates(run_dir):
    results = pd.read_csv(run_dir / "results.csv")
    hand = _hand(results)
    tables = _tables((run_dir / "summary.md").read_text())
    summary = tables["Summary"]
    header, rows = summary[0], summary[1:]
    assert [r[:2] for r in rows] == [[m, "none"] for m in MODELS]  # every row, none lost, none extra
    expected_cols = [f"{k}@{c}" for k in ("ACC", "SAR", "WAR") for c in CONDS if not (k != "ACC" and c == "hr")]
    assert header == ["model", "method", *expected_cols]
    for row in rows:
        for col, cell in zip(header[2:], row[2:]):
            metric, cond = col.split("@", 1)
            assert cell == f"{hand[(row[0], metric, cond)]:.4f}", (row[0], col)
    top1 = tables["Headline metric per dataset"]  # the zero-shot task's headline metric is top1
    assert top1[0] == ["model", "method", "dataset", "metric", *CONDS]
    want = results[results.metric == "top1"].set_index(["model", "dataset", "condition"])["value"]
    assert [r[:4] for r in top1[1:]] == [[m, "none", d, "top1"] for m in MODELS for d in DATASETS]
    for row in top1[1:]:
        assert row[4:] == [f"{want[(row[0], row[2], c)]:.4f}" for c in CONDS]


def test_report_md_tables_row_by_row_and_lrbench_report_rebuilds_them(run_dir):
    results = pd.read_csv(run_dir / "results.csv")
    hand = _hand(results)
    report = (run_dir / "report.md").read_text()
    tables = _tables(report)
    summary = next(rows for title, rows in tables.items() if title.startswith("Summary"))
    assert summary[0] == ["model", "method", "metric", *CONDS]
    assert [r[:3] for r in summary[1:]] == [[m, "none", k] for m in MODELS for k in ("ACC", "SAR", "WAR")]
    for m, _, k, *cells in summary[1:]:
        for c, cell in zip(CONDS, cells):
            assert cell == ("" if (m, k, c) not in hand else f"{100 * hand[(m, k, c)]:.1f}"), (m, k, c)
    per_ds = next(rows for title, rows in tables.items() if title.startswith("Top-1 per dataset"))
    want = results[results.metric == "top1"].set_index(["model", "dataset", "condition"])["value"]
    assert [r[:3] for r in per_ds[1:]] == [[m, "none", d] for m in MODELS for d in DATASETS]
    for m, _, d, *cells in per_ds[1:]:
        assert cells == [f"{100 * want[(m, d, c)]:.1f}" for c in CONDS]
    (run_dir / "report.md").unlink()
    (run_dir / "report.html").unlink()
    out = CliRunner().invoke(cli, ["report", str(run_dir)])
    assert out.exit_code == 0, out.output
    assert (run_dir / "report.md").read_text() == report and (run_dir / "report.html").is_file()


def test_lrbench_report_on_a_folder_without_results_names_the_problem(tmp_path):
    out = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert out.exit_code != 0 and "results.csv" in out.output
