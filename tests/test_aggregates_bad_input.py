"""Aggregates that cannot be computed are skipped with a reason; undefined ratios are dropped alike from SAR and WAR and
listed; conflicting duplicates and malformed tables are one-line errors (issue 13)."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from lrbench.builtin.aggregates import WAR16_WEIGHTS, Acc, Gamma, ImprovedGamma, Sar, War
from lrbench.cli import cli
from lrbench.registry import LrbenchError
from lrbench.results import split_aggregates

AGGS = [("ACC", Acc()), ("gamma", Gamma()), ("Gamma", ImprovedGamma()), ("SAR", Sar()), ("WAR", War())]


def _table(rows):
    return pd.DataFrame(rows, columns=["model", "method", "dataset", "condition", "metric", "value"])


def _run_cli(tmp_path, text: str | bytes):
    table = tmp_path / "t.csv"
    table.write_bytes(text.encode() if isinstance(text, str) else text)
    return CliRunner().invoke(cli, ["aggregate", str(table), "--out", str(tmp_path / "out")])


def test_table_without_hr_skips_ratio_aggregates_with_a_reason(caplog):
    t = _table([("m", "none", "imagenet", "bicubic@16", "top1", 0.3), ("m", "none", "dtd", "bicubic@16", "top1", 0.2)])
    with caplog.at_level(logging.WARNING, logger="lrbench"):
        agg, summary = split_aggregates(t, AGGS, {})
    assert agg.empty
    assert summary["metric"].tolist() == ["ACC"] and summary["value"].iloc[0] == pytest.approx(0.25)
    assert "aggregate Gamma skipped: the table has no 'hr' condition" in caplog.text
    assert "aggregate WAR skipped" in caplog.text


def test_cli_on_table_without_top1_rows_exits_0_and_writes_empty_aggregates(tmp_path):
    result = _run_cli(tmp_path, "model,dataset,condition,metric,value\nm,imagenet,hr,top5,0.9\n")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out" / "summary.csv").empty


def test_hr_accuracy_zero_or_nan_drops_the_dataset_from_sar_and_war_alike(caplog):
    rows = [
        ("m", "none", "imagenet", "hr", "top1", 0.6),
        ("m", "none", "imagenet", "bicubic@16", "top1", 0.3),
        ("m", "none", "dtd", "hr", "top1", 0.0),
        ("m", "none", "dtd", "bicubic@16", "top1", 0.1),
        ("m", "none", "eurosat", "hr", "top1", float("nan")),
        ("m", "none", "eurosat", "bicubic@16", "top1", 0.2),
    ]
    with caplog.at_level(logging.WARNING, logger="lrbench"):
        agg, summary = split_aggregates(_table(rows), AGGS, {})
    s = summary.set_index(["metric", "condition"])
    # only imagenet is left: SAR = its gamma, WAR = its Gamma, both over one dataset
    assert s.loc[("SAR", "bicubic@16"), "value"] == pytest.approx(0.5)
    gamma_hat = 0.5 * (1 - math.exp(-200 * (0.6 - 1 / 1000) ** 2))
    assert s.loc[("WAR", "bicubic@16"), "value"] == pytest.approx(gamma_hat)
    assert s.loc[("SAR", "bicubic@16"), "n_datasets"] == s.loc[("WAR", "bicubic@16"), "n_datasets"] == 1
    dropped = agg[(agg["metric"] == "gamma") & (agg["note"] != "")].set_index("dataset")["note"]
    assert "HR top1 is 0" in dropped["dtd"] and "missing (NaN)" in dropped["eurosat"]
    assert "dtd: HR top1 is 0" in caplog.text and "eurosat: HR top1 is missing" in caplog.text
    assert WAR16_WEIGHTS["dtd"] > 0  # the old WAR kept this weight in its denominator


def test_every_dataset_dropped_leaves_war_empty_not_an_error():
    rows = [("m", "none", "dtd", "hr", "top1", 0.0), ("m", "none", "dtd", "bicubic@16", "top1", 0.1)]
    agg, summary = split_aggregates(_table(rows), AGGS, {})
    assert set(summary["metric"]) == {"ACC"}  # SAR and WAR have no dataset left; before, WAR raised a TypeError


def test_conflicting_duplicate_rows_are_refused_showing_them():
    rows = [
        ("m", "none", "imagenet", "hr", "top1", 0.5),
        ("m", "none", "imagenet", "bicubic@16", "top1", 0.5),
        ("m", "none", "imagenet", "bicubic@16", "top1", 1.0),
    ]
    with pytest.raises(LrbenchError, match=r"2 rows give .* different values.*bicubic@16 +top1 +0\.5.*1\.0"):
        split_aggregates(_table(rows), AGGS, {})


def test_identical_duplicate_rows_count_once():
    rows = [("m", "none", "imagenet", "hr", "top1", 0.5), ("m", "none", "imagenet", "bicubic@16", "top1", 0.25)]
    _, once = split_aggregates(_table(rows), AGGS, {})
    _, twice = split_aggregates(_table(rows + rows), AGGS, {})
    pd.testing.assert_frame_equal(once, twice)
    assert (twice["n_datasets"] == 1).all()


@pytest.mark.parametrize(
    "text, says",
    [
        ("model,dataset,condition,metric,value\nm,imagenet,hr,top1,high\n", "line 2: value 'high' is not a number"),
        ("model,dataset,condition,metric,value\nm,imagenet,hr,top1,87%\n", "not percentages"),
        (
            "model,dataset,condition,metric,value\nm,imagenet,hr,top1,87.5\n",
            "line 2: top1 value 87.5 is outside [0, 1]",
        ),
        ("model,dataset,condition,metric,value\nm,imagenet,hr,top1,0.5\nm,imagenet,x,top1\n", "line 3: 4 fields"),
        ("model,dataset,condition,metric,value,num_classes\nm,d,hr,top1,0.5,0\n", "line 2: num_classes '0'"),
        ("model,method,dataset,condition,metric,value\nm,,imagenet,hr,top1,0.5\n", "line 2: empty 'method'"),
        ("", "empty file"),
        (b"model,dataset,condition,metric,value\nm\xff,imagenet,hr,top1,0.5\n", "not UTF-8"),
    ],
)
def test_malformed_tables_give_one_line_errors(tmp_path, text, says):
    result = _run_cli(tmp_path, text)
    assert result.exit_code == 1 and says in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
