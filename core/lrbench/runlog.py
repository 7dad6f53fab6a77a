"""Logging of one run: run.log gets progress and every warning; the console gets each line once.

The ``lrbench`` logger is raised to INFO for the run and writes to ``run.log``. A console handler is added only when
nothing else (an application's ``logging.basicConfig``, pytest) already handles the root logger, so no line is
printed twice; it shows warnings under an interactive progress bar, and progress too when stderr is not a terminal
(CI logs, ``nohup``), where the bar is off.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator

log = logging.getLogger("lrbench")
FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextlib.contextmanager
def run_logging(run_dir: Path) -> Iterator[logging.Logger]:
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(run_dir / "run.log")]
    handlers[0].setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING if sys.stderr.isatty() else logging.INFO)
        handlers.append(console)
    old_level = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    for h in handlers:
        h.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(h)
    try:
        yield log
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(old_level)
