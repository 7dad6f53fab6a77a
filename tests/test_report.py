"""The report: Wilson intervals, family axes, chance line, header, self-contained HTML that fits 1280 px."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from lrbench import LrbenchError
from lrbench.plugins import Plugins
from lrbench.report import _panel, describe_conditions, wilson_interval, write_report
from lrbench.spec import build_condition

CONDS = {
    "hr": 0.44,
    "bicubic@64": 0.44,
    "bicubic@32": 0.455,
    "bicubic@16": 0.325,
    "bicubic@8": 0.17,
    "jpeg@30": 0.415,
    "jpeg@10": 0.345,
    "gaussian-blur@2": 0.44,
    "noise@0.1": 0.34,
}


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return centre - half, centre + half


def test_wilson_interval_matches_the_formula():
    assert wilson_interval(0.44, 200) == pytest.approx((0.37298, 0.50929), abs=1e-5)  # k = 88, worked by hand
    assert wilson_interval(0.44, 200) == pytest.approx(_wilson_by_hand(88, 200), abs=1e-12)
    lo, hi = wilson_interval(0.0, 50)  # unlike the normal approximation, never a zero-width interval at 0
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(_wilson_by_hand(0, 50)[1], abs=1e-12)
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0))


DEGRADATIONS = Plugins(load_entry_points=False).degradations


def _table(conds: dict[str, float] = CONDS, models=("toy-a", "toy-b"), n: int = 200) -> pd.DataFrame:
    """A results table as a run writes it: each condition described by its degradation."""
    rows = []
    for j, model in enumerate(models):
        for c, v in conds.items():
            described = list(build_condition(c, DEGRADATIONS).describe().values())
            rows.append((model, "none", "toyworld", c, "top1", v - 0.05 * j, n, "zero-shot", *described))
            rows.append((model, "none", "toyworld", c, "top5", min(1.0, v + 0.3), n, "zero-shot", *described))
    columns = ["model", "method", "dataset", "condition", "metric", "value", "n", "task"]
    return pd.DataFrame(rows, columns=[*columns, "degradation", "family", "level"])


def test_conditions_get_family_and_value():
    info = describe_conditions(_table())
    assert info["hr"].family is None and info["hr"].value is None
    assert (info["bicubic@16"].family, info["bicubic@16"].value) == ("resolution", 16.0)
    assert (info["jpeg@30"].family, info["gaussian-blur@2"].family, info["noise@0.1"].value) == ("jpeg", "blur", 0.1)


def test_a_table_without_condition_descriptions_is_refused_not_guessed(run_dir):
    """An old results.csv (no degradation / family / level) names the missing columns and how to rewrite it; the
    report never reads ``bicubic@16`` as 16 px from the name."""
    old = _table().drop(columns=["degradation", "family", "level"])
    with pytest.raises(LrbenchError, match=r"old\.csv has no degradation, family, level columns.*spec\.resolved\.yaml"):
        describe_conditions(old, "old.csv")
    old.to_csv(run_dir / "results.csv", index=False)
    with pytest.raises(LrbenchError, match=r"results\.csv has no degradation, family, level columns"):
        write_report(run_dir)
    assert not (run_dir / "report.html").exists()


def test_panel_has_real_axis_wilson_band_and_chance_line():
    t = _table(models=("toy-a",))
    t = t[t.metric == "top1"]
    fig, ax = plt.subplots()
    _panel(ax, t, "resolution", "toyworld", describe_conditions(t), 1 / 12, "top1", "64 px")
    assert [tk.get_text() for tk in ax.get_xticklabels()] == ["8", "16", "32", "64", "HR\n64 px"]
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 100)
    line, chance = ax.lines
    assert list(line.get_xdata()) == [8, 16, 32, 64, 128]  # HR right of the largest size
    assert list(line.get_ydata()) == pytest.approx([17.0, 32.5, 45.5, 44.0, 44.0])
    assert list(chance.get_ydata()) == pytest.approx([100 / 12] * 2)
    band = ax.collections[0].get_paths()[0].vertices
    lo16, hi16 = wilson_interval(0.325, 200)
    assert any(x == 16 and y == pytest.approx(100 * lo16) for x, y in band)
    assert any(x == 16 and y == pytest.approx(100 * hi16) for x, y in band)
    plt.close(fig)
    fig, ax = plt.subplots()
    _panel(ax, t, "blur", "toyworld", describe_conditions(t), None, "top1", None)
    assert list(ax.lines[0].get_xdata()) == [0.0, 2.0]  # the clean image is sigma 0 on the blur axis
    plt.close(fig)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    results = _table()
    results.to_csv(run / "results.csv", index=False)
    top1 = results[results.metric == "top1"].set_index(["model", "condition"])["value"]
    rows = []
    for model in ("toy-a", "toy-b"):
        for c in CONDS:
            rows.append((model, "none", c, "ACC", top1[(model, c)], 1))
            if c != "hr":
                rows.append((model, "none", c, "SAR", top1[(model, c)] / top1[(model, "hr")], 1))
                rows.append((model, "none", c, "WAR", top1[(model, c)] / top1[(model, "hr")], 1))
    pd.DataFrame(rows, columns=["model", "method", "condition", "metric", "value", "n_datasets"]).to_csv(
        run / "summary.csv", index=False
    )
    (run / "run.json").write_text(
        json.dumps(
            {
                "finished": "2026-11-29T21:00:00+00:00",
                "lrbench": "0.1.0",
                "python": "3.11.7",
                "torch": "2.14.1",
                "device": "cpu",
                "device_name": "x86_64",
                "num_classes": {"toyworld": 12},
                "input_size": {"toy-a": 64},
                "plugins": [
                    {"name": "openclip", "distribution": "lrbench-plugin-openclip", "version": "0.1.0", "error": None}
                ],
                "cells": 18,
                "computed": ["a"] * 9,
                "timings": {"total_s": 12.5, "compute_s": 10.0},
            }
        )
    )
    return run


def test_report_contents(run_dir):
    old = os.umask(0o022)
    try:
        write_report(run_dir)
    finally:
        os.umask(old)
    page = (run_dir / "report.html").read_text()
    for fact in (
        "2026-11-29T21:00:00+00:00",
        "lrbench-plugin-openclip 0.1.0",
        "cpu (x86_64)",
        "toyworld: 200",
        "12.5 s total",
        "18 (9 computed by this run, 9 from the cache)",
    ):
        assert fact in page, fact
    # self-contained: every image is inline, nothing is linked
    assert re.findall(r"<img src='([^']{0,22})", page) == ["data:image/png;base64,"] * 2
    assert not re.search(r"(src|href)=['\"](?!data:)", page)
    # tables without a pandas index; SAR of toy-b at 16 px = (0.275 / 0.39) as a percentage
    assert "<thead><tr><th>model</th><th>method</th><th>metric</th><th>hr</th>" in page
    sar = page.split("<td class='txt'>toy-b</td><td class='txt'>none</td><td class='txt'>SAR</td>")[1]
    cells = re.findall(r"<td class='num'>([^<]*)</td>", sar.split("</tr>")[0])
    order = [
        "hr",
        "bicubic@64",
        "bicubic@32",
        "bicubic@16",
        "bicubic@8",
        "jpeg@30",
        "jpeg@10",
        "gaussian-blur@2",
        "noise@0.1",
    ]
    assert cells[order.index("bicubic@16")] == f"{100 * 0.275 / 0.39:.1f}" == "70.5"
    lo, hi = wilson_interval(0.325, 200)
    assert f"95% Wilson CI {100 * lo:.1f}-{100 * hi:.1f}" in page
    for word in ("SAR", "WAR", "Wilson", "chance"):
        assert f"<dt>{word}" in page or word in page.split("<h2>Definitions</h2>")[1]
    # images at 200 dpi, readable by others under umask 022
    png = run_dir / "accuracy_vs_degradation.png"
    assert Image.open(png).info["dpi"] == pytest.approx((200, 200), abs=0.1)
    assert (png.stat().st_mode & 0o777, (run_dir / "report.html").stat().st_mode & 0o777) == (0o644, 0o644)
    md = (run_dir / "report.md").read_text()
    assert "![Top-1 accuracy per degradation family](accuracy_vs_degradation.png)" in md


def test_outputs_follow_a_stricter_umask(run_dir):
    old = os.umask(0o027)
    try:
        write_report(run_dir)
    finally:
        os.umask(old)
    assert (run_dir / "report.html").stat().st_mode & 0o777 == 0o640


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install chromium` to check the page in a browser")
def test_report_fits_1280px_in_headless_chromium(run_dir, tmp_path):
    """Render at 1280 px and read back the page width and whether every embedded image decoded."""
    conds = {f"bicubic@{s}": 0.4 for s in (128, 112, 96, 80, 64, 56, 48, 40, 32, 24, 16, 12, 8, 4)}
    results = _table(
        {"hr": 0.5, **conds, "gaussian-blur@1.5": 0.3, "jpeg@5": 0.2},
        models=("a-model-with-a-rather-long-name/laion2b_s34b_b79k", "b"),
    )
    results.to_csv(run_dir / "results.csv", index=False)
    write_report(run_dir)
    probe = tmp_path / "probe.html"
    probe.write_text(
        (run_dir / "report.html")
        .read_text()
        .replace(
            "</body>",
            (
                "<script>document.body.setAttribute('data-probe', JSON.stringify({w: document.documentElement.scrollWidth,"
                " imgs: [...document.images].map(i => i.naturalWidth)}))</script></body>"
            ),
        )
    )
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,900",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    probe_json = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert probe_json, out.stderr[-2000:]
    seen = json.loads(probe_json.group(1).replace("&quot;", '"'))
    assert seen["w"] <= 1280
    assert len(seen["imgs"]) == 2 and all(w > 1000 for w in seen["imgs"])  # decoded, at 200 dpi
