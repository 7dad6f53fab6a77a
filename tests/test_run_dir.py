"""The run directory is published whole (a reader never sees old and new outputs mixed), leftovers of killed runs are
cleaned, and output or cache paths that cannot hold a run are refused before anything runs (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys

from lrbench.results import check_output_dir, clean_stale, publish, staging_dir, writable_dir_problem


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_publish_swaps_whole_directories(tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("old")
    (run / "results.parquet").write_text("old")
    staging = staging_dir(run)
    (staging / "results.csv").write_text("new")  # the new run writes no parquet: the old one must not survive
    assert (run / "results.csv").read_text() == "old"  # nothing new is visible before publishing
    publish(staging, run)
    assert sorted(p.name for p in run.iterdir()) == ["results.csv"] and (run / "results.csv").read_text() == "new"
    assert sorted(p.name for p in run.parent.iterdir()) == ["x"]  # no staging or old folder left


def test_leftovers_of_killed_runs_are_cleaned(tmp_path):
    run = tmp_path / "x"
    run.mkdir()
    (run / "run.json").write_text("{}")
    dead = _dead_pid()
    (tmp_path / f".x.staging-{dead}-abc").mkdir()
    live = tmp_path / f".x.staging-{os.getpid()}-def"
    live.mkdir()  # a run still going (this process) keeps its folder
    clean_stale(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x", live.name])


def test_a_kill_between_the_two_renames_puts_the_old_run_back(tmp_path):
    run = tmp_path / "x"
    aside = tmp_path / f".x.old-{_dead_pid()}-abc"
    aside.mkdir()
    (aside / "results.csv").write_text("old")
    clean_stale(run)
    assert (run / "results.csv").read_text() == "old" and not aside.exists()


def test_output_paths_that_cannot_hold_a_run(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in check_output_dir(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    assert "other files in it" in check_output_dir(tmp_path / "mine")
    assert check_output_dir(tmp_path / "new" / "run") is None
    assert "cannot write in /proc" in writable_dir_problem(
        tmp_path.root + "proc/lrbench-no"
    )  # read-only, even for root
