"""Mean, spread and paired significance tests of an SR4IR run (``examples/sr4ir-toy.yaml``), from its cached cells.

    python scripts/sr4ir_table.py RUN_DIR [--cache-dir DIR] [--reference sr4ir] [--condition srdown@4]

Method labels are ``<mode>/s<seed>``. For each mode and condition: top-1 mean over seeds, sample standard deviation and
range. For the reference mode against every other mode on the LR condition, on the same test images:

- McNemar, per seed pooled: the images one model gets right and the other wrong are summed over seeds (b, c) and the
  exact two-sided binomial test is applied to b of b + c (images are paired within a seed; seeds are pooled, which
  treats image x seed pairs as independent);
- a paired t-test over seeds (two-sided, ``scipy.stats.ttest_rel`` on the per-seed top-1; n = seeds, so little power).

The table goes to stdout and to ``RUN_DIR/sr4ir_table.md``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, ttest_rel

from lrbench.runner import Runner

ORDER = ("hr_t", "lr_t", "s_t", "t_s", "s_plus_t", "sr4ir")
NAMES = {"hr_t": "HR -> T", "lr_t": "LR -> T", "s_t": "S -> T", "t_s": "T -> S", "s_plus_t": "S + T", "sr4ir": "SR4IR"}


def correctness(run_dir: Path, cache_dir: str | None) -> dict[tuple[str, int, str], np.ndarray]:
    """(mode, seed, condition) -> per-image correctness (bool array in item order) of every cached cell."""
    runner = Runner(run_dir / "spec.resolved.yaml", run_dir, cache_dir=cache_dir)
    out: dict[tuple[str, int, str], np.ndarray] = {}
    for unit in runner.plan().units:
        mode, _, seed = unit.method.label.partition("/s")
        for cond, key in unit.keys.items():
            cell = runner.cache.get("cells", key)
            if cell is not None:
                order = np.argsort(cell["index"])
                out[(mode, int(seed), cond)] = (cell["logits"].argmax(1) == cell["labels"])[order]
    return out


def table(correct: dict[tuple[str, int, str], np.ndarray], reference: str, condition: str) -> str:
    by_mode: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
    for (mode, seed, cond), ok in correct.items():
        by_mode[(mode, cond)][seed] = ok
    conditions = sorted({c for _, c in by_mode}, key=lambda c: (c != "hr", c))
    modes = [m for m in ORDER if any((m, c) in by_mode for c in conditions)]
    n_images = {len(ok) for ok in correct.values()}
    lines = [
        f"top-1 (%) on {'/'.join(map(str, sorted(n_images)))} test images: mean over seeds +- sample std "
        "[min, max] (seeds)",
        "",
        "| mode | " + " | ".join(conditions) + " |",
        "|---|" + "---|" * len(conditions),
    ]
    for mode in modes:
        cells = []
        for cond in conditions:
            seeds = by_mode.get((mode, cond), {})
            acc = np.array([100 * ok.mean() for ok in seeds.values()])
            cells.append(
                f"{acc.mean():.1f} +- {acc.std(ddof=1) if len(acc) > 1 else float('nan'):.1f} "
                f"[{acc.min():.1f}, {acc.max():.1f}] ({len(acc)})"
                if len(acc)
                else "-"
            )
        lines.append(f"| {NAMES.get(mode, mode)} | " + " | ".join(cells) + " |")
    ref = by_mode.get((reference, condition), {})
    lines += [
        "",
        f"{NAMES.get(reference, reference)} against each mode on {condition}, same images and seeds:",
        "",
        "| other | seeds | mean difference (points) | only ref right (b) | only other right (c) | McNemar pooled p "
        "| paired t p |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        other = by_mode.get((mode, condition), {})
        seeds = sorted(set(ref) & set(other))
        if mode == reference or not seeds:
            continue
        b = sum(int((ref[s] & ~other[s]).sum()) for s in seeds)
        c = sum(int((~ref[s] & other[s]).sum()) for s in seeds)
        p_mc = binomtest(b, b + c).pvalue if b + c else 1.0
        a_ref = np.array([100 * ref[s].mean() for s in seeds])
        a_oth = np.array([100 * other[s].mean() for s in seeds])
        p_t = float(ttest_rel(a_ref, a_oth).pvalue) if len(seeds) > 1 else float("nan")
        lines.append(
            f"| {NAMES.get(mode, mode)} | {len(seeds)} | {np.mean(a_ref - a_oth):+.1f} | {b} | {c} | "
            f"{p_mc:.3g} | {p_t:.3g} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cache-dir", default=None, help="the run's cache (default: $LRBENCH_CACHE or lrbench's default)")
    ap.add_argument("--reference", default="sr4ir")
    ap.add_argument("--condition", default="srdown@4")
    args = ap.parse_args()
    text = table(correctness(args.run_dir, args.cache_dir), args.reference, args.condition)
    print(text)
    (args.run_dir / "sr4ir_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
