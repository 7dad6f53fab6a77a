"""run.log holds progress and warnings with or without a terminal; the console shows each line once."""
from __future__ import annotations

import logging

from lrbench.runlog import run_logging
from lrbench.runner import run_spec

SPEC = {"name": "log", "models": ["tiny"], "datasets": [{"name": "toyworld", "n": 12}], "conditions": ["hr", "bicubic@8"],
        "metrics": ["top1"]}


def test_run_log_has_progress(plugins, cache_dir, tmp_path):
    run_spec(SPEC, tmp_path / "r", plugins=plugins, cache_dir=cache_dir)
    text = (tmp_path / "r" / "run.log").read_text()
    assert "INFO plan: 2 cells, 2 to compute" in text
    assert "INFO unit 1/1: tiny | none | toyworld: 2 conditions on 12 images" in text
    assert "INFO done in" in text


def test_console_line_printed_once_and_logged(tmp_path, capsys, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a plain `lrbench run`: nothing configured logging
    with run_logging(tmp_path) as log:
        log.warning("cache entry x is corrupt")
        log.info("unit 1/1")
    err = capsys.readouterr().err
    assert err.count("cache entry x is corrupt") == 1 and err.count("unit 1/1") == 1  # stderr is not a terminal here
    assert "WARNING cache entry x is corrupt" in (tmp_path / "run.log").read_text()
    assert logging.getLogger("lrbench").handlers == []
