"""Conditions describe themselves (degradation, family, level): results carry it, the report reads it, never the name.
Tasks name their headline metric and default aggregates."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lrbench import hookimpl
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.plugins import Plugins
from lrbench.report import describe_conditions
from lrbench.runner import Runner, run_spec
from lrbench.scoring import aggregates, headline_metrics

SPEC = {
    "name": "d",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 8}],
    "batch_size": 8,
    "conditions": ["hr", "bicubic@16", {"name": "jpeg", "quality": 30, "label": "q30"}, "gaussian-blur@1.5"],
}


def test_results_describe_each_condition_and_the_report_reads_it(plugins, tmp_path):
    results = run_spec(SPEC, tmp_path / "run", plugins=plugins, cache_dir=tmp_path / "c")
    described = results.drop_duplicates("condition").set_index("condition")[["degradation", "family", "level"]]
    assert described.loc["bicubic@16"].tolist() == ["bicubic", "resolution", 16.0]
    assert described.loc["q30"].tolist() == ["jpeg", "jpeg", 30.0]  # a label without '@': read from the columns
    assert described.loc["gaussian-blur@1.5"].tolist() == ["gaussian-blur", "blur", 1.5]
    assert described.loc["hr", ["degradation", "family"]].tolist() == ["hr", "clean"]
    assert math.isnan(described.loc["hr", "level"])
    info = describe_conditions(pd.read_csv(tmp_path / "run" / "results.csv"))
    assert (info["q30"].family, info["q30"].value) == ("jpeg", 30.0)
    assert info["hr"].family is None and info["hr"].value is None


def test_plugin_conditions_that_are_not_pixel_sizes_say_so():
    CropShift = pytest.importorskip("lrbench_rics.shifts").CropShift
    SRDown = pytest.importorskip("lrbench_sr.quality").SRDown

    assert SRDown(4).describe() == {"degradation": "srdown", "family": "downscale", "level": 4}
    assert CropShift(4).describe() == {"degradation": "shift", "family": "shift", "level": 4}


class OnlyAcc(ZeroShotClassification):
    """Zero-shot with another headline metric and one default aggregate."""

    name = "only-acc"
    auto_select = False
    headline_metric = "top5"
    default_aggregates = ("ACC",)


class Tasks:
    @hookimpl
    def register_tasks(self, register):
        register("only-acc", OnlyAcc)


def test_a_task_names_its_headline_metric_and_default_aggregates(plugins, tmp_path):
    run_spec(SPEC, tmp_path / "zs", plugins=plugins, cache_dir=tmp_path / "c")
    assert json.loads((tmp_path / "zs" / "run.json").read_text())["headline_metrics"] == {"zero-shot": "top1"}
    # LR0.FM's aggregates (the tiny model's HR top-1 is 0 here: gamma rows carry that note, SAR/WAR have no dataset)
    assert set(pd.read_csv(tmp_path / "zs" / "aggregates.csv")["metric"]) == {"gamma", "Gamma"}
    assert "ACC" in set(pd.read_csv(tmp_path / "zs" / "summary.csv")["metric"])

    with_task = Plugins(
        load_entry_points=False, extra=[(plugins.pm.get_plugin("test-plugin"), "test-plugin"), (Tasks(), "tasks")]
    )
    runner = Runner(dict(SPEC, task="only-acc"), tmp_path / "acc", plugins=with_task, cache_dir=tmp_path / "c")
    plan = runner.plan()
    assert headline_metrics(plan) == {"only-acc": "top5"}
    assert [label for label, _ in aggregates(plan, None, with_task)] == ["ACC"]
