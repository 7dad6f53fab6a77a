"""The core's LR0.FM aggregates (gamma, Gamma, SAR, WAR) reproduce the authors' published numbers.

Inputs are the authors' own accuracy tables (tests/data/lr0fm/results_*_top1_top5.csv, as published: dataset name on the
first row of its block only, two columns per model, percentages), outputs their war_sar_16_eva_albef.csv.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lrbench.builtin.aggregates import Gamma, ImprovedGamma, Sar, War

DATA = Path(__file__).parent / "data" / "lr0fm"
PUBLISHED = ("results_eva_clip_top1_top5.csv", "results_albef_top1_top5.csv")
TIDY = DATA / "eva_albef_top1.csv"
# first letters of the published dataset cell (lower case, no spaces) -> lrbench's dataset name; order matters
DATASET_PREFIXES = [
    ("imagenet-sketch", "imagenet-sketch"),
    ("imagenet-a", "imagenet-a"),
    ("imagenet-v2", "imagenet-v2"),
    ("imagenet-r", "imagenet-r"),
    ("imagenet", "imagenet"),
    ("caltech101", "caltech101"),
    ("dtd", "dtd"),
    ("food101", "food101"),
    ("sun397", "sun397"),
    ("stanfordcars", "stanford-cars"),
    ("fgvcaircraft", "fgvc-aircraft"),
    ("oxfordpets", "oxford-pets"),
    ("flowers102", "flowers102"),
    ("eurosat", "eurosat"),
    ("ucf101", "ucf101"),
]
AUTHORS_CLASS_COUNTS = {"food101": 102, "fgvc-aircraft": 102}  # what their script used (true: 101 and 100)


def _model(cell: str) -> str:
    return " ".join(cell.split())


def _dataset(cell: str) -> str:
    key = re.sub(r"[^a-z0-9-]", "", cell.lower())
    for prefix, name in DATASET_PREFIXES:
        if key.startswith(prefix):
            return name
    raise ValueError(f"unknown dataset cell {cell!r}")


def parse_published(path: Path) -> pd.DataFrame:
    """One of the authors' accuracy files -> tidy rows (model, dataset, condition, metric, value in [0, 1])."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    models = [(i, _model(header[i])) for i in range(2, len(header), 2)]
    assert [rows[1][i] for i, _ in models] == ["Top1"] * len(models)
    out, dataset = [], None
    for row in rows[2:]:
        first = bool(row[0].strip())
        if first:  # a block starts: its first row is the model's own resolution
            dataset = _dataset(row[0])
        condition = "hr" if first else f"bicubic@{int(row[1])}"
        for i, model in models:
            out.append((model, dataset, condition, "top1", round(float(row[i]) / 100, 8)))
    return pd.DataFrame(out, columns=["model", "dataset", "condition", "metric", "value"])


def published_table() -> pd.DataFrame:
    return pd.concat([parse_published(DATA / f) for f in PUBLISHED], ignore_index=True)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return published_table()


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    ref = pd.read_csv(DATA / "war_sar_16_eva_albef.csv")
    ref["Model"] = ref["Model"].map(_model)
    return ref.set_index("Model")


def _at16(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["condition"] == "bicubic@16"]


def _ref_column(dataset: str, kind: str) -> str:
    return f"{dataset.replace('stanford-cars', 'stanford_cars').replace('fgvc-aircraft', 'fgvc_aircraft').replace('oxford-pets', 'oxford_pets')}_{kind}"


def test_published_files_parse_to_the_shipped_tidy_table(table):
    assert table["model"].nunique() == 12 and table["dataset"].nunique() == 15
    assert sorted(table["condition"].unique()) == ["bicubic@128", "bicubic@16", "bicubic@32", "bicubic@64", "hr"]
    assert len(table) == 12 * 15 * 5 and table["value"].between(0, 1).all()
    shipped = pd.read_csv(TIDY)
    pd.testing.assert_frame_equal(shipped, table, check_exact=False, rtol=0, atol=1e-12)
    # spot values straight from the published file: ALBEF (4M) ImageNet 31.9 at 224, 2.86 at 16
    albef = table[(table["model"] == "ALBEF (4M)") & (table["dataset"] == "imagenet")].set_index("condition")["value"]
    assert albef["hr"] == pytest.approx(0.319) and albef["bicubic@16"] == pytest.approx(0.0286)


def test_sar16_matches_published_for_all_models(table, reference):
    sar = _at16(Sar().aggregate(table, {})).set_index("model")["value"]
    assert set(sar.index) == set(reference.index)
    np.testing.assert_allclose(sar[reference.index], reference["SAR_Relative-Robustness"], rtol=0, atol=1e-12)


def test_gamma16_matches_published_per_dataset(table, reference):
    gamma = _at16(Gamma().aggregate(table, {}))
    for _, row in gamma.iterrows():
        assert row["value"] == pytest.approx(
            reference.loc[row["model"], _ref_column(row["dataset"], "Relative-Robustness")], abs=1e-12
        )


def test_war16_eva_to_rounding_albef_within_2e4_with_true_class_counts(table, reference):
    war = _at16(War().aggregate(table, {})).set_index("model")["value"]
    published = reference["WAR_Improved-Relative-Robustness"]
    eva = [m for m in reference.index if m.startswith("EVA")]
    albef = [m for m in reference.index if m.startswith("ALBEF")]
    np.testing.assert_allclose(war[eva], published[eva], rtol=0, atol=1e-8)
    diff = (war[albef] - published[albef]).abs()
    assert (diff < 2e-4).all() and (diff > 1e-6).all()  # the class-count discrepancy is real and small


def test_authors_class_counts_reproduce_their_Gamma_and_WAR_exactly(table, reference):
    Gam = _at16(ImprovedGamma().aggregate(table, AUTHORS_CLASS_COUNTS))
    for _, row in Gam.iterrows():
        ref = reference.loc[row["model"], _ref_column(row["dataset"], "Improved-Relative-Robustness")]
        assert row["value"] == pytest.approx(ref, abs=1e-8), (row["model"], row["dataset"])
    war = _at16(War().aggregate(table, AUTHORS_CLASS_COUNTS)).set_index("model")["value"]
    np.testing.assert_allclose(war[reference.index], reference["WAR_Improved-Relative-Robustness"], rtol=0, atol=1e-12)


def test_aggregate_cli_on_the_shipped_tidy_table(tmp_path, reference):
    from lrbench.cli import cli

    result = CliRunner().invoke(cli, ["aggregate", str(TIDY), "--out", str(tmp_path / "agg")])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "agg" / "summary.csv")
    sar = summary[(summary["metric"] == "SAR") & (summary["condition"] == "bicubic@16")].set_index("model")["value"]
    np.testing.assert_allclose(sar[reference.index], reference["SAR_Relative-Robustness"], rtol=0, atol=1e-12)
    # a num_classes column with the authors' counts reproduces their WAR through the CLI as well
    t = pd.read_csv(TIDY)
    t["num_classes"] = t["dataset"].map(AUTHORS_CLASS_COUNTS)
    t.to_csv(tmp_path / "authors.csv", index=False)
    result = CliRunner().invoke(cli, ["aggregate", str(tmp_path / "authors.csv"), "--out", str(tmp_path / "agg2")])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "agg2" / "summary.csv")
    war = summary[(summary["metric"] == "WAR") & (summary["condition"] == "bicubic@16")].set_index("model")["value"]
    np.testing.assert_allclose(war[reference.index], reference["WAR_Improved-Relative-Robustness"], rtol=0, atol=1e-12)
