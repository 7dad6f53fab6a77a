"""A run is repeatable, forcible and honest about what failed (issue 13): models are built after seeding (the same spec
gives the same table in a fresh cache, even for random-init models), ``--recompute PATTERN`` forces cells, a condition
that fails fails only its own cell and is never cached, a run's results.csv aggregates by itself, the run directory is
published whole, and paths or devices that cannot work are refused before anything runs."""

from __future__ import annotations

import json
import zlib

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from lrbench import hookimpl
from lrbench.builtin.metrics import TopK
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.cli import cli
from lrbench.degradations import Degradation
from lrbench.models import ModelAdapter, Preprocess
from lrbench.plugins import Plugins
from lrbench.runner import run_spec
from lrbench.spec import SpecError

SPEC = {
    "name": "t",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 12}],
    "conditions": ["hr", "bicubic@8"],
    "batch_size": 4,
}


class RandomInit(ModelAdapter):
    """Weights drawn from the global RNG at construction, as timm / open_clip / face models with no weights do."""

    kind = "zero-shot"

    def __init__(self):
        self.preprocess = Preprocess(image_size=32)
        self.module = torch.nn.Linear(3 * 64, 16)
        self.words = torch.randn(4096, 16)

    def identity(self):
        return {"family": "random-init"}

    def encode_image(self, x):
        return self.module(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))

    def encode_text(self, texts):
        return torch.stack([self.words[[zlib.crc32(w.encode()) % 4096 for w in t.split()]].mean(0) for t in texts])


class Boom(Degradation):
    """Fails on every image whose top-left pixel is odd: a condition that breaks on some items only."""

    name = "boom"

    def pil(self, image):
        if image.getpixel((0, 0))[0] % 2:
            raise ValueError("boom on an odd pixel")
        return image

    def tensor(self, x):
        raise ValueError("boom")


class OwnLoop(ZeroShotClassification):
    """A task with its own loop over the conditions, as plugin tasks have: an error on one condition leaves it."""

    name = "own-loop"
    auto_select = False
    default_metrics = ("own_top1",)
    headline_metric = "own_top1"
    default_aggregates = ()

    def run(self, model, dataset, conditions, ctx):
        out = {}
        for deg in conditions:
            if deg.condition == "bicubic@8":
                raise ValueError("own loop broke on bicubic@8")
            out.update(super().run(model, dataset, [deg], ctx))
        return out


class OwnTop1(TopK):
    tasks = ("own-loop",)


def broken_model() -> ModelAdapter:
    raise RuntimeError("weights file is corrupt")


class _Plugin:
    @hookimpl
    def register_models(self, register):
        register("rand-init", RandomInit, "random init from the global RNG", kind="zero-shot")
        register("broken", broken_model, "a model that does not build", kind="zero-shot")

    @hookimpl
    def register_degradations(self, register):
        register("boom", Boom, "fails on some images")

    @hookimpl
    def register_tasks(self, register):
        register("own-loop", OwnLoop, "a task with its own loop over the conditions")

    @hookimpl
    def register_metrics(self, register):
        register("own_top1", OwnTop1, "top-1 of the own-loop task")


@pytest.fixture
def more(plugins):
    return Plugins(load_entry_points=False, extra=[*plugins.extra, (_Plugin(), "issue13")])


def test_same_spec_same_table_in_a_fresh_cache_with_a_random_init_model(more, tmp_path):
    spec = dict(SPEC, models=["rand-init"])
    a = run_spec(spec, tmp_path / "a", plugins=more, cache_dir=tmp_path / "c1")
    torch.rand(7)  # whatever ran before must not matter
    b = run_spec(spec, tmp_path / "b", plugins=more, cache_dir=tmp_path / "c2")
    pd.testing.assert_frame_equal(a, b)
    c = run_spec(dict(spec, seed=1), tmp_path / "c", plugins=more, cache_dir=tmp_path / "c3")
    assert not a["value"].equals(c["value"])  # the seed is what decides the draw


def test_recompute_pattern_forces_matching_cells_only(plugins, calls, cache_dir, tmp_path):
    run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    forced = run_spec(SPEC, tmp_path / "b", plugins=plugins, cache_dir=cache_dir, recompute="*|bicubic@8")
    assert forced.attrs["computed"] == ["tiny|none|toyworld|bicubic@8"]
    everything = run_spec(SPEC, tmp_path / "c", plugins=plugins, cache_dir=cache_dir, recompute="*")
    assert sorted(everything.attrs["computed"]) == ["tiny|none|toyworld|bicubic@8", "tiny|none|toyworld|hr"]


def test_recompute_cli_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [toy-clip]\ndatasets: [{name: toyworld, n: 4}]\nconditions: [hr]\n")
    first = CliRunner().invoke(cli, ["run", str(spec), "-q", "--cache-dir", str(tmp_path / "c")])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["run", str(spec), "-q", "--cache-dir", str(tmp_path / "c"), "--recompute"])
    assert again.exit_code == 0 and "computed 1 cells" in again.output


def test_a_failing_condition_fails_only_its_own_cell_and_is_never_cached(more, cache_dir, tmp_path):
    spec = dict(SPEC, conditions=["hr", "boom", "bicubic@8"])
    with pytest.raises(Exception) as exc:
        run_spec(spec, tmp_path / "a", plugins=more, cache_dir=cache_dir)
    assert "tiny|none|toyworld|boom" in str(exc.value) and "boom on an odd pixel" in str(exc.value)
    results = pd.read_csv(tmp_path / "a" / "results.csv")
    assert set(results["condition"]) == {"hr", "bicubic@8"} and (results["n"] == 12).all()
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["failed_cells"][0]["cell"] == "tiny|none|toyworld|boom" and meta["skipped_items"] == []
    clean = run_spec(SPEC, tmp_path / "b", plugins=more, cache_dir=cache_dir)
    assert clean.attrs["computed"] == [] and (clean["n"] == 12).all()  # hr and bicubic@8 were cached, complete


def test_a_condition_failing_inside_a_tasks_own_loop_fails_only_its_own_cell(more, cache_dir, tmp_path):
    """A plugin task that raises on one condition (no ConditionFailed) fails that cell only: the others are computed
    one by one, cached, and a clean spec reuses them."""
    spec = dict(SPEC, conditions=["hr", "bicubic@8", "bicubic@16"], task="own-loop")
    with pytest.raises(Exception) as exc:
        run_spec(spec, tmp_path / "a", plugins=more, cache_dir=cache_dir)
    assert "tiny|none|toyworld|bicubic@8" in str(exc.value) and "own loop broke" in str(exc.value)
    results = pd.read_csv(tmp_path / "a" / "results.csv")
    assert set(results["condition"]) == {"hr", "bicubic@16"} and (results["n"] == 12).all()
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert [f["cell"] for f in meta["failed_cells"]] == ["tiny|none|toyworld|bicubic@8"]
    clean = run_spec(dict(spec, conditions=["hr", "bicubic@16"]), tmp_path / "b", plugins=more, cache_dir=cache_dir)
    assert clean.attrs["computed"] == []
    pd.testing.assert_frame_equal(
        clean.sort_values(["condition", "metric"]).reset_index(drop=True)[["condition", "metric", "value"]],
        results.sort_values(["condition", "metric"]).reset_index(drop=True)[["condition", "metric", "value"]],
    )


def test_a_runs_results_csv_aggregates_by_itself(plugins, cache_dir, tmp_path):
    run_spec(SPEC, tmp_path / "r", plugins=plugins, cache_dir=cache_dir)
    result = CliRunner().invoke(cli, ["aggregate", str(tmp_path / "r" / "results.csv"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    mine = pd.read_csv(tmp_path / "o" / "summary.csv").sort_values(["metric", "condition"]).reset_index(drop=True)
    run = pd.read_csv(tmp_path / "r" / "summary.csv").sort_values(["metric", "condition"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, run)


def test_rerun_into_a_run_directory_leaves_only_the_new_outputs(plugins, cache_dir, tmp_path):
    run_dir = tmp_path / "r"
    run_spec(SPEC, run_dir, plugins=plugins, cache_dir=cache_dir)
    (run_dir / "stale.png").write_bytes(b"x")  # a plot of an earlier run that the new one does not draw
    run_spec(SPEC, run_dir, plugins=plugins, cache_dir=cache_dir)
    assert not (run_dir / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".r.")) == []


@pytest.mark.parametrize("where", ["output", "cache_dir"])
def test_file_shaped_or_read_only_paths_are_refused_before_running(plugins, tmp_path, where):
    (tmp_path / "a-file").write_text("x")
    for bad in (tmp_path / "a-file", tmp_path.root + "proc/lrbench-cannot-write"):
        spec = dict(SPEC, **{where: str(bad)})
        with pytest.raises(SpecError) as exc:
            run_spec(spec, plugins=plugins, cache_dir=None if where == "cache_dir" else tmp_path / "c")
        assert dict(exc.value.problems).get(where), exc.value.problems


def test_device_cuda_without_a_gpu_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [toy-clip]\ndatasets: [{name: toyworld, n: 4}]\n")
    result = CliRunner().invoke(cli, ["run", str(spec), "--device", "cuda", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "device" in result.output and "no CUDA device" in result.output
    assert not (tmp_path / "r").exists()


def test_a_failing_unit_does_not_stop_the_other_models(more, cache_dir, tmp_path):
    """Issue 18: a model that does not build fails its own cells (recorded with a traceback file); the spec's other
    model still runs and is written; the run ends with an error naming the failed cells. --fail-fast stops at once."""
    spec = dict(SPEC, models=["broken", "tiny"])
    with pytest.raises(Exception) as exc:
        run_spec(spec, tmp_path / "a", plugins=more, cache_dir=cache_dir)
    assert "broken|none|toyworld|hr" in str(exc.value) and "weights file is corrupt" in str(exc.value)
    results = pd.read_csv(tmp_path / "a" / "results.csv")
    assert set(results["model"]) == {"tiny"} and set(results["condition"]) == {"hr", "bicubic@8"}
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    failed = {f["cell"]: f for f in meta["failed_cells"]}
    assert set(failed) == {"broken|none|toyworld|hr", "broken|none|toyworld|bicubic@8"}
    tb = {f["traceback"] for f in failed.values()}
    assert tb == {"failures/001.txt"}  # one failure, one file
    assert "RuntimeError: weights file is corrupt" in (tmp_path / "a" / "failures" / "001.txt").read_text()
    with pytest.raises(RuntimeError, match="weights file is corrupt"):
        run_spec(spec, tmp_path / "b", plugins=more, cache_dir=tmp_path / "c2", fail_fast=True)


def test_fail_fast_cli_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [toy-clip]\ndatasets: [{name: toyworld, n: 4}]\nconditions: [hr]\n")
    result = CliRunner().invoke(cli, ["run", str(spec), "-q", "--fail-fast", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output


def test_run_log_holds_the_progress_without_a_terminal(plugins, cache_dir, tmp_path):
    """Issue 18: run.log gets a line per unit and per computed cell (not only warnings), once each."""
    run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    text = (tmp_path / "a" / "run.log").read_text()
    assert text.count("unit 1/1: tiny | none | toyworld") == 1
    assert text.count("cell tiny|none|toyworld|hr computed (n=12)") == 1
    assert text.count("cell tiny|none|toyworld|bicubic@8 computed (n=12)") == 1


def test_root_logging_set_up_by_a_library_gets_warnings_once_and_no_progress(more, cache_dir, tmp_path):
    """Issue 18: a library that ran ``logging.basicConfig(level=INFO)`` made every progress line print as
    ``INFO:lrbench:...``; the progress stays in run.log, and an error still reaches the root handlers, once."""
    import io
    import logging

    from lrbench.runner import CellsFailed

    root, stream = logging.getLogger(), io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))  # what basicConfig installs
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with pytest.raises(CellsFailed):
            run_spec(dict(SPEC, models=["broken", "tiny"]), tmp_path / "a", plugins=more, cache_dir=cache_dir)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    console = stream.getvalue()
    assert "INFO:lrbench" not in console, console
    assert console.count("ERROR:lrbench:cell broken|none|toyworld|hr failed") == 1
    text = (tmp_path / "a" / "run.log").read_text()
    assert text.count("unit 2/2: tiny | none | toyworld") == 1
    assert text.count("cell tiny|none|toyworld|hr computed (n=12)") == 1
    assert text.count("cell broken|none|toyworld|hr failed") == 1
    assert logging.getLogger("lrbench").propagate  # the user's logging again after the run
