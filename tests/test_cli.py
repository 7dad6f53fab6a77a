"""CLI start-up: --help and list read the saved registry index and import no plugin (nor torch)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from click.testing import CliRunner

from lrbench.cli import _compact_table, _filter_rows, cli

ROWS = [
    {
        "name": "lr0fm:EVA-02-CLIP-B/16",
        "description": "EVA",
        "plugin": "lrbench.catalogue",
        "info": {"family": "EVA-CLIP", "input_size": 224, "available": True},
    },
    {
        "name": "lr0fm:M2-Encoder-1B",
        "description": "M2",
        "plugin": "lrbench.catalogue",
        "info": {"family": "M2-Encoder", "input_size": 224, "available": False},
    },
    {"name": "openclip", "description": "open_clip models", "plugin": "openclip", "info": {}},
]


def test_filters_and_compact_rows(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # lines are cut to the terminal's width
    assert [r["name"] for r in _filter_rows(ROWS, "eva", False)] == ["lr0fm:EVA-02-CLIP-B/16"]
    assert [r["name"] for r in _filter_rows(ROWS, None, True)] == ["lr0fm:EVA-02-CLIP-B/16", "openclip"]
    assert [r["name"] for r in _filter_rows(ROWS, "open", False)] == ["openclip"]
    lines = _compact_table("models", ROWS).splitlines()
    assert len(lines) == 4 and lines[0].split() == ["name", "family", "px", "available", "plugin", "description"]
    assert lines[2].split()[:5] == ["lr0fm:M2-Encoder-1B", "M2-Encoder", "224", "no", "lrbench.catalogue"]


def _cli(args, cache, code="from lrbench.cli import main; main()"):
    env = dict(os.environ, LRBENCH_CACHE=str(cache), LRBENCH_LOAD_PLUGINS="")
    probe = (
        f"import sys; sys.argv = ['lrbench', *{args!r}]\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)


def test_help_and_list_skip_plugins_once_indexed(tmp_path):
    first = _cli(["list", "degradations"], tmp_path)  # builds the index: loads the plugins
    assert first.returncode == 0 and "bicubic" in first.stdout, first.stderr
    index = json.loads((tmp_path / "registry-index.json").read_text())
    assert "war-weights" in index["commands"]
    again = _cli(["list", "degradations"], tmp_path)
    assert again.stdout.splitlines()[1:] == first.stdout.splitlines()[1:-1] + ["NO-TORCH"]
    help_ = _cli(["--help"], tmp_path)
    assert "war-weights" in help_.stdout and help_.stdout.strip().endswith("NO-TORCH")


def test_one_line_spec():
    from lrbench.cli import one_line_spec

    spec = one_line_spec(
        ("openclip:ViT-B-32/openai",), ("imagefolder:/data/pets", "toyworld"), "hr, bicubic@16", (), None
    )
    assert spec == {
        "name": "openclip-ViT-B-32-openai-imagefolder-toyworld",
        "models": ["openclip:ViT-B-32/openai"],
        "datasets": [{"name": "imagefolder", "root": "/data/pets"}, "toyworld"],
        "conditions": ["hr", "bicubic@16"],
    }


def _run_dir(path, model, values, n=100):
    import pandas as pd

    path.mkdir(parents=True)
    described = {"hr": ("hr", "clean", None), "bicubic@16": ("bicubic", "resolution", 16)}
    rows = [(model, "none", "toyworld", c, "top1", v, n, "zero-shot", *described[c]) for c, v in values.items()]
    columns = ["model", "method", "dataset", "condition", "metric", "value", "n", "task", "degradation", "family"]
    pd.DataFrame(rows, columns=[*columns, "level"]).to_csv(path / "results.csv", index=False)
    (path / "run.json").write_text(json.dumps({"lrbench": "0.1.0", "device": "cpu", "num_classes": {"toyworld": 12}}))
    return path


def test_merge_recomputes_aggregates_and_refuses_conflicts(tmp_path):
    import pandas as pd
    import pytest

    from lrbench.merge import merge_runs
    from lrbench.registry import LrbenchError

    a = _run_dir(tmp_path / "a", "m1", {"hr": 0.8, "bicubic@16": 0.4})
    b = _run_dir(tmp_path / "b", "m2", {"hr": 0.5, "bicubic@16": 0.45})
    same = _run_dir(tmp_path / "same", "m1", {"hr": 0.8})  # a cell both runs hold, with the same value: fine
    merged = merge_runs([a, b, same], tmp_path / "out")
    assert len(merged) == 4
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index(["model", "metric", "condition"])["value"]
    assert summary[("m1", "SAR", "bicubic@16")] == pytest.approx(0.4 / 0.8)
    assert summary[("m2", "SAR", "bicubic@16")] == pytest.approx(0.45 / 0.5)
    assert "m2" in (tmp_path / "out" / "report.html").read_text()
    clash = _run_dir(tmp_path / "clash", "m1", {"hr": 0.79})
    with pytest.raises(LrbenchError, match=r"m1 \| none \| toyworld \| hr \| top1 = 0.79 \(n=100\) in .*clash"):
        merge_runs([a, clash], tmp_path / "out2")
    old = _run_dir(tmp_path / "old", "m3", {"hr": 0.7})
    pd.read_csv(old / "results.csv").drop(columns=["degradation", "family", "level"]).to_csv(old / "results.csv")
    with pytest.raises(LrbenchError, match=r"old/results\.csv has no degradation, family, level columns"):
        merge_runs([a, old], tmp_path / "out3")  # an old run is named, its conditions not guessed
    assert not (tmp_path / "out3").exists()


def test_merge_reads_a_run_from_before_the_naming_rule_as_the_same_cells(tmp_path):
    """A run whose results say gaussian_blur@2 (before the rename) and one saying gaussian-blur@2 hold one cell: the
    merge has one row for it; a labelled condition keeps its label."""
    import pandas as pd

    from lrbench.merge import merge_runs

    def run(path, blur, label):
        path.mkdir()
        rows = [
            ("m", "none", "toyworld", "hr", "top1", 0.8, 100, "zero-shot", "hr", "clean", None),
            ("m", "none", "toyworld", f"{blur}@2", "top1", 0.5, 100, "zero-shot", blur, "blur", 2.0),
            ("m", "none", "toyworld", label, "top1", 0.4, 100, "zero-shot", blur, "blur", 3.0),
        ]
        columns = ["model", "method", "dataset", "condition", "metric", "value", "n", "task", "degradation", "family"]
        pd.DataFrame(rows, columns=[*columns, "level"]).to_csv(path / "results.csv", index=False)
        (path / "run.json").write_text(json.dumps({"num_classes": {"toyworld": 12}}))
        return path

    merged = merge_runs(
        [run(tmp_path / "old", "gaussian_blur", "my_blur"), run(tmp_path / "new", "gaussian-blur", "my_blur")],
        tmp_path / "out",
    )
    assert sorted(merged["condition"]) == ["gaussian-blur@2", "hr", "my_blur"]
    assert set(merged["degradation"].dropna()) == {"hr", "gaussian-blur"}


def _aggregate(tmp_path, rows, *args):
    import pandas as pd

    columns = ["model", "dataset", "condition", "metric", "value", "task"]
    table = pd.DataFrame(rows, columns=columns).assign(num_classes=2)  # chance 1/2: same / not the same person
    table.to_csv(tmp_path / "t.csv", index=False)
    out = CliRunner().invoke(cli, ["aggregate", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), *args])
    return out, tmp_path / "out" / "summary.csv"


def test_aggregate_reads_the_headline_metric_of_the_tables_task(tmp_path):
    """A face verification table aggregates face_acc (the task's headline) without --metric; its other metrics and
    top1 rows of no task are not read."""
    import pandas as pd
    import pytest

    pytest.importorskip("lrbench_face")
    rows = [
        ("m", "lfw", "hr", "face_acc", 0.96, "verification"),
        ("m", "lfw", "face-lr@14", "face_acc", 0.72, "verification"),
        ("m", "lfw", "hr", "roc_auc", 0.99, "verification"),
        ("m", "lfw", "face-lr@14", "roc_auc", 0.30, "verification"),
    ]
    out, summary = _aggregate(tmp_path, rows)
    assert out.exit_code == 0, out.output
    s = pd.read_csv(summary).set_index(["metric", "condition"])["value"]
    assert s[("ACC", "hr")] == pytest.approx(0.96) and s[("ACC", "face-lr@14")] == pytest.approx(0.72)
    assert s[("SAR", "face-lr@14")] == pytest.approx(0.72 / 0.96)  # SAR of one dataset: its gamma
    # WAR of one dataset is its Gamma: gamma (1 - exp(-200 E^2)), E = A_hr - 1/C with C = 2
    assert s[("WAR", "face-lr@14")] == pytest.approx(0.72 / 0.96 * (1 - math.exp(-200 * (0.96 - 0.5) ** 2)))
    out, summary = _aggregate(tmp_path, rows, "--metric", "roc_auc")  # --metric still chooses
    assert pd.read_csv(summary).set_index(["metric", "condition"])["value"][("ACC", "face-lr@14")] == pytest.approx(0.3)


def test_aggregate_refuses_tasks_that_lead_with_different_metrics(tmp_path):
    import pytest

    pytest.importorskip("lrbench_face")
    rows = [("m", "lfw", "hr", "face_acc", 0.9, "verification"), ("m", "dtd", "hr", "top1", 0.5, "zero-shot")]
    out, _ = _aggregate(tmp_path, rows)
    assert out.exit_code != 0
    assert "different metrics (verification: face_acc, zero-shot: top1); choose one with --metric" in out.output
    pytest.importorskip("lrbench_sr")
    out, _ = _aggregate(tmp_path, [("m", "set5", "hr", "psnr", 99.0, "sr"), ("m", "set5", "hr", "ssim", 1.0, "sr")])
    assert out.exit_code != 0 and "psnr value 99.0 is outside [0, 1]" in out.output  # sr leads with psnr: no fraction
    assert "not an accuracy? choose one with --metric" in out.output
    out, _ = _aggregate(tmp_path, [("m", "dtd", "hr", "top1", 0.5, "no-such-task")])
    assert out.exit_code != 0 and "task 'no-such-task'" in out.output and "--metric" in out.output
