"""scripts/sr4ir_table.py: the proof's statistics on hand-built per-image correctness."""

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
    assert row.split(" | ")[2:5] == ["+15.0", "9", "0"]
    assert float(row.split(" | ")[5]) == pytest.approx(2 / 2**9, rel=1e-2)
    assert float(row.split(" | ")[6].rstrip(" |")) == pytest.approx(0.188, abs=1e-3)
