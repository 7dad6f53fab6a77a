"""The runner end to end on the toy world with a tiny counting model: plan, cache hits, resume, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from lrbench import hookimpl
from lrbench.cache import Cache, atomic_write_text, file_sha256
from lrbench.methods import Method
from lrbench.models import ModelWrapper
from lrbench.plan import build_plan, entry_identity
from lrbench.plugins import Plugins
from lrbench.runner import run_spec
from lrbench.spec import validate

SPEC = {
    "name": "t",
    "models": ["tiny"],
    "datasets": [{"name": "toyworld", "n": 24}],
    "conditions": ["hr", "bicubic@32", "bicubic@8"],
    "batch_size": 8,
}


def test_plan_expansion_counts_cells(plugins, cache_dir, tmp_path):
    spec = dict(
        SPEC,
        models=["tiny", {"name": "tiny", "seed": 1, "label": "tiny-1"}],
        methods=["none"],
        datasets=[{"name": "toyworld", "n": 8}, {"name": "toyworld", "n": 8, "split": "val", "label": "toy-val"}],
    )
    plan = run_spec(spec, tmp_path / "run", plugins=plugins, cache_dir=cache_dir, dry_run=True)
    assert len(plan) == 2 * 1 * 2 * 3
    assert set(plan["status"]) == {"to run"}
    assert set(plan["dataset"]) == {"toyworld", "toy-val"}
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_rerun_computes_nothing_and_new_condition_only_new_cells(plugins, calls, cache_dir, tmp_path):
    first = run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    assert calls["images"] == 24 * 3 and calls["loads"] == 1
    assert set(first["metric"]) == {"top1", "top5"} and (first["n"] == 24).all()
    second = run_spec(SPEC, tmp_path / "b", plugins=plugins, cache_dir=cache_dir)
    assert calls["images"] == 24 * 3 and calls["loads"] == 1  # zero model calls, model not even loaded
    pd.testing.assert_frame_equal(first, second)
    third = run_spec(
        dict(SPEC, conditions=SPEC["conditions"] + ["bicubic@16"]), tmp_path / "c", plugins=plugins, cache_dir=cache_dir
    )
    assert calls["images"] == 24 * 4  # only the new condition
    assert third.attrs["computed"] == ["tiny|none|toyworld|bicubic@16"]
    # changing metrics reuses raw outputs
    run_spec(
        dict(SPEC, metrics=["top1", "mean_per_class", "SAR"]), tmp_path / "d", plugins=plugins, cache_dir=cache_dir
    )
    assert calls["images"] == 24 * 4


class _Brighten(Method):
    """Adds to every input pixel a value read from $LRBENCH_TEST_BRIGHTEN: a file its parameters do not name, as an SR
    method finds its weights by a short name."""

    name = "brighten"

    def inputs_identity(self, dataset=None):
        return {"offset": file_sha256(os.environ["LRBENCH_TEST_BRIGHTEN"])}

    def apply(self, model, ctx):
        offset = float(Path(os.environ["LRBENCH_TEST_BRIGHTEN"]).read_text())

        class Brightened(ModelWrapper):
            def encode_image(self, x):
                return self.inner.encode_image(x + offset)

        return Brightened(model, self.identity())


class _BrightenPlugin:
    @hookimpl
    def register_methods(self, register):
        register("brighten", _Brighten, "adds a file's value to the input")


def test_what_a_method_reads_beyond_its_entry_keys_its_cells(plugins, calls, cache_dir, tmp_path, monkeypatch):
    """An unchanged re-run computes nothing; a change in a file the method reads without naming it recomputes that
    method's cells only; a method that reads nothing beyond its entry keeps the key of its entry alone."""
    offset = tmp_path / "offset.txt"
    offset.write_text("0.25")
    monkeypatch.setenv("LRBENCH_TEST_BRIGHTEN", str(offset))
    plugins = Plugins(load_entry_points=False, extra=[*plugins.extra, (_BrightenPlugin(), "brighten")])
    spec = dict(SPEC, methods=["none", "brighten"])
    first = run_spec(spec, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    assert len(first.attrs["computed"]) == 6 and calls["images"] == 2 * 24 * 3
    again = run_spec(spec, tmp_path / "b", plugins=plugins, cache_dir=cache_dir)
    assert again.attrs["computed"] == [] and calls["images"] == 2 * 24 * 3 and calls["loads"] == 2
    offset.write_text("0.5")
    changed = run_spec(spec, tmp_path / "c", plugins=plugins, cache_dir=cache_dir)
    assert sorted(changed.attrs["computed"]) == [
        f"tiny|brighten|toyworld|{c}" for c in ("bicubic@32", "bicubic@8", "hr")
    ]
    plan = build_plan(validate(spec, plugins), plugins, Cache(cache_dir))
    none = next(u for u in plan.units if u.method.name == "none")
    methods = {u.method.name: u.descriptions["hr"]["method"] for u in plan.units}
    assert methods["none"] == entry_identity(plugins, none.method, 0)  # no "inputs": the key it had before
    assert methods["brighten"]["inputs"] == {"offset": file_sha256(offset)}


def test_outputs_written(plugins, cache_dir, tmp_path):
    run_spec(SPEC, tmp_path / "r", plugins=plugins, cache_dir=cache_dir)
    r = tmp_path / "r"
    for f in (
        "results.parquet",
        "results.csv",
        "summary.csv",
        "summary.md",
        "aggregates.csv",
        "spec.resolved.yaml",
        "run.json",
        "run.log",
        "report.md",
        "report.html",
        "accuracy_vs_resolution.png",
    ):
        assert (r / f).is_file(), f
    results = pd.read_csv(r / "results.csv")
    assert list(results.columns)[:7] == ["model", "method", "dataset", "condition", "metric", "value", "n"]
    summary = pd.read_csv(r / "summary.csv")
    assert {"ACC", "SAR", "WAR"} <= set(summary["metric"])
    # SAR here is gamma of the one dataset: A_n / A_HR recomputed from results
    top1 = results[results.metric == "top1"].set_index("condition")["value"]
    sar = summary[(summary.metric == "SAR") & (summary.condition == "bicubic@8")]["value"].item()
    assert sar == pytest.approx(top1["bicubic@8"] / top1["hr"])
    meta = json.loads((r / "run.json").read_text())
    assert meta["cells"] == 3 and meta["lrbench"] and meta["torch"]


def test_deterministic_results(plugins, tmp_path):
    a = run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=tmp_path / "c1")
    b = run_spec(SPEC, tmp_path / "b", plugins=plugins, cache_dir=tmp_path / "c2")
    pd.testing.assert_frame_equal(a, b)
    la = Cache(tmp_path / "c1")
    files_a = sorted(p.name for p in (tmp_path / "c1" / "cells").rglob("*.npz"))
    files_b = sorted(p.name for p in (tmp_path / "c2" / "cells").rglob("*.npz"))
    assert files_a == files_b and la.root.exists()


def test_corrupt_cache_entry_is_recomputed(plugins, calls, cache_dir, tmp_path, caplog):
    run_spec(SPEC, tmp_path / "a", plugins=plugins, cache_dir=cache_dir)
    victim = sorted((cache_dir / "cells").rglob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:-20] + b"x" * 20)
    before = calls["images"]
    with caplog.at_level("WARNING", logger="lrbench"):
        again = run_spec(SPEC, tmp_path / "b", plugins=plugins, cache_dir=cache_dir)
    assert "corrupt" in caplog.text
    assert calls["images"] == before + 24  # exactly one cell recomputed
    assert len(again) == 6


def test_corrupt_images_are_skipped_counted_and_listed(plugins, calls, cache_dir, tmp_path):
    from lrbench.builtin.toyworld import render

    root = tmp_path / "imgs"
    for c in ("circle", "square"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            render(i)[0].save(root / c / f"{i}.png")
    (root / "square" / "broken.png").write_bytes(b"not a png at all")
    spec = dict(SPEC, datasets=[{"name": "imagefolder", "root": str(root)}])
    df = run_spec(spec, tmp_path / "r", plugins=plugins, cache_dir=cache_dir)
    assert (df["n"] == 6).all()
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["n_skipped"] == 1  # one pass over the data serves all three conditions
    assert {s["item"] for s in meta["skipped_items"]} == {"square/broken.png"}
    assert "broken.png" in (tmp_path / "r" / "run.log").read_text()
    # a re-run served from the cache still reports the item
    run_spec(spec, tmp_path / "r2", plugins=plugins, cache_dir=cache_dir)
    meta = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert [s["item"] for s in meta["skipped_items"]] == ["square/broken.png"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left behind


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from conftest import TestPlugin, TinyZeroShot
    from lrbench.plugins import Plugins
    from lrbench.runner import run_spec
    slow = TinyZeroShot.encode_image
    def encode_image(self, x):
        time.sleep(0.05)
        return slow(self, x)
    TinyZeroShot.encode_image = encode_image
    plugins = Plugins(load_entry_points=False, extra=[(TestPlugin(), "test-plugin")])
    spec = {spec!r}
    run_spec(spec, {out!r}, plugins=plugins, cache_dir={cache!r})
""")


def test_resume_after_sigkill(plugins, calls, tmp_path):
    """Kill a run (SIGKILL) after its first unit is cached; the re-run computes only the rest and matches a clean run."""
    cache = tmp_path / "cache"
    spec = dict(
        SPEC,
        datasets=[
            {"name": "toyworld", "n": 16},
            {"name": "toyworld", "n": 16, "split": "val", "label": "toy-val"},
            {"name": "toyworld", "n": 16, "split": "train", "label": "toy-train"},
        ],
    )
    script = tmp_path / "run.py"
    script.write_text(
        KILL_SCRIPT.format(tests=str(Path(__file__).parent), spec=spec, out=str(tmp_path / "killed"), cache=str(cache))
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list((cache / "cells").rglob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((cache / "cells").rglob("*.json")))
    assert 3 <= done < 9, "the run must be killed mid-way"
    resumed = run_spec(spec, tmp_path / "resumed", plugins=plugins, cache_dir=cache)
    assert calls["images"] == 16 * (9 - done)
    clean = run_spec(spec, tmp_path / "clean", plugins=plugins, cache_dir=tmp_path / "clean-cache")
    pd.testing.assert_frame_equal(resumed, clean)
    assert not list(cache.rglob("*.tmp"))
