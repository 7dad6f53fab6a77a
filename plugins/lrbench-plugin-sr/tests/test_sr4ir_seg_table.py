"""scripts/sr4ir_seg_table.py: mIoU per mode and the paired bootstrap, on hand-built per-image confusion matrices."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sr4ir_seg_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("sr4ir_seg_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        ("lr_t", 1, "srdown@4"): images(5),
    }
    text = t.table(conf, "sr4ir", "srdown@4", resamples=200)
    # SR4IR: every pixel right -> mIoU 100. LR->T: summed matrix [[50, 0], [25, 25]]: IoU 50/75 and 25/50 -> 58.33
    assert "| SR4IR | 100.0 +- 0.0 [100.0, 100.0] (2) |" in text
    assert "| LR -> T | 58.3 +- 0.0 [58.3, 58.3] (2) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| LR -> T | 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(100 - 175 / 3, abs=0.01)
    # SR4IR is better on every resample (no resample is all-right for LR->T): p at its floor 2 / resamples
    assert float(cells[4]) == pytest.approx(2 / 200)
    lo, hi = (float(v) for v in cells[3].strip("[]").split(","))
    assert 0 < lo <= float(cells[2]) <= hi
    same = t.table(
        {**conf, ("lr_t", 0, "srdown@4"): images(10), ("lr_t", 1, "srdown@4"): images(10)}, "sr4ir", "srdown@4", 50
    )
    row = next(line for line in same.splitlines() if line.startswith("| LR -> T | 2 |"))
    assert row.rstrip(" |").endswith("| 1")  # identical predictions: p = 1
