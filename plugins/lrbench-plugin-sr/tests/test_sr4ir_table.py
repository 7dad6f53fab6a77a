"""scripts/sr4ir_table.py: the proofs' statistics on hand-built per-image correctness (classification) and confusion
matrices (segmentation)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sr4ir_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("sr4ir_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mean_spread_and_paired_tests_by_hand():
    t = load_script()
    n = 20
    ok = lambda k: np.arange(n) < k  # noqa: E731 (the first k images right)
    correct = {
        ("sr4ir", 0, "srdown@4"): ok(12),
        ("sr4ir", 1, "srdown@4"): ok(14),
        ("sr4ir", 2, "srdown@4"): ok(10),
        ("lr_t", 0, "srdown@4"): ok(8),
        ("lr_t", 1, "srdown@4"): ok(9),
        ("lr_t", 2, "srdown@4"): ok(10),
    }
    text = t.table(correct, "sr4ir", "srdown@4")
    # SR4IR 60 / 70 / 50 %: mean 60.0, sample std 10.0; LR->T 40 / 45 / 50: mean 45.0, std 5.0
    assert "| SR4IR | 60.0 +- 10.0 [50.0, 70.0] (3) |" in text
    assert "| LR -> T | 45.0 +- 5.0 [40.0, 50.0] (3) |" in text
    # discordant images pooled over seeds: b = 4 + 5 + 0 = 9, c = 0; exact two-sided binomial p = 2 / 2^9
    # paired t over seeds: differences 20, 25, 0 points: mean 15, sd 13.23, t = 1.964 with 2 df -> p = 0.188
    row = next(line for line in text.splitlines() if line.startswith("| LR -> T | 3 |"))
    assert row.split(" | ")[2:5] == ["+15.00", "9", "0"]
    assert float(row.split(" | ")[5]) == pytest.approx(2 / 2**9, rel=1e-2)
    assert float(row.split(" | ")[6].rstrip(" |")) == pytest.approx(0.188, abs=1e-3)


def images(n_right: int, n: int = 10) -> np.ndarray:
    """n images of 10 pixels, 2 classes (5 + 5 pixels); the first n_right images all right, the others predict class
    0 everywhere."""
    right = np.array([[5, 0], [0, 5]])
    wrong = np.array([[5, 0], [5, 0]])
    return np.stack([right if i < n_right else wrong for i in range(n)])


def test_miou_table_and_bootstrap_by_hand():
    t = load_script()
    conf = {
        ("sr4ir", 0, "srdown@4"): images(10),
        ("sr4ir", 1, "srdown@4"): images(10),
        ("lr_t", 0, "srdown@4"): images(5),
        ("lr_t", 1, "srdown@4"): images(4),
    }
    text = t.table(conf, "sr4ir", "srdown@4", resamples=200)
    # SR4IR: every pixel right -> mIoU 100. LR->T seed 0: summed matrix [[50, 0], [25, 25]]: IoU 50/75 and 25/50
    # -> 58.33; seed 1: [[50, 0], [30, 20]]: 50/80 and 20/50 -> 51.25
    assert text.startswith("mIoU (%) on 10 test images")
    assert "| SR4IR | 100.0 +- 0.0 [100.0, 100.0] (2) |" in text
    assert "| LR -> T | 54.8 +- 5.0 [51.2, 58.3] (2) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| LR -> T | 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(100 - (175 / 3 + 51.25) / 2, abs=0.01)
    # SR4IR is better on every resample (no resample is all-right for LR->T): p at its floor 2 / resamples
    assert float(cells[4]) == pytest.approx(2 / 200)
    lo, hi = (float(v) for v in cells[3].strip("[]").split(","))
    assert 0 < lo <= float(cells[2]) <= hi
    # paired t over the 2 seeds: differences 41.67 and 48.75: mean 45.21, sd 5.01, t = 12.77 with 1 df -> p = 0.0498
    assert float(cells[5]) == pytest.approx(0.0498, abs=1e-3)
    one_seed = t.table({**conf, ("hr_t", 0, "srdown@4"): images(5)}, "sr4ir", "srdown@4", resamples=50)
    assert "| HR -> T | 58.3 (1) |" in one_seed  # one seed: no spread, no seed test
    assert next(line for line in one_seed.splitlines() if line.startswith("| HR -> T | 1 |")).endswith("| - |")
    same = t.table(
        {**conf, ("lr_t", 0, "srdown@4"): images(10), ("lr_t", 1, "srdown@4"): images(10)}, "sr4ir", "srdown@4", 50
    )
    row = next(line for line in same.splitlines() if line.startswith("| LR -> T | 2 |"))
    assert [c.strip() for c in row.strip("|").split("|")][4] == "1"  # identical predictions: p = 1
