"""mIoU per mode and a paired bootstrap over test images, of an SR4IR segmentation run (``examples/sr4ir-seg-toy.yaml``).

    python scripts/sr4ir_seg_table.py RUN_DIR [--cache-dir DIR] [--reference sr4ir] [--condition srdown@4]

Method labels are ``<mode>/s<seed>``. For each mode and condition: mIoU (%) over the test set per seed, its mean over
seeds, sample standard deviation and range. For the reference mode against every other mode on the LR condition, on
the same test images: the mean over seeds of the mIoU difference, and a paired bootstrap over images (one resample of
the test images, used for every seed and both modes; mIoU is recomputed from the resampled images' summed confusion
matrices): a 95 % percentile interval of the difference and the two-sided p = 2 x the smaller share of resamples on
either side of zero (at least 1 / resamples). Seeds are averaged, not resampled: the interval is over test images.

The table goes to stdout and to ``RUN_DIR/sr4ir_seg_table.md``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from lrbench_sr.dense import mean_iou

from lrbench.runner import Runner

ORDER = ("hr_t", "lr_t", "s_t", "t_s", "s_plus_t", "sr4ir")
NAMES = {"hr_t": "HR -> T", "lr_t": "LR -> T", "s_t": "S -> T", "t_s": "T -> S", "s_plus_t": "S + T", "sr4ir": "SR4IR"}


def confusions(run_dir: Path, cache_dir: str | None) -> dict[tuple[str, int, str], np.ndarray]:
    """(mode, seed, condition) -> per-image confusion matrices (N, C, C) in item order of every cached cell."""
    runner = Runner(run_dir / "spec.resolved.yaml", run_dir, cache_dir=cache_dir)
    out: dict[tuple[str, int, str], np.ndarray] = {}
    for unit in runner.plan().units:
        mode, _, seed = unit.method.label.partition("/s")
        for cond, key in unit.keys.items():
            cell = runner.cache.get("cells", key)
            if cell is not None:
                out[(mode, int(seed), cond)] = cell["confusion"][np.argsort(cell["index"])]
    return out


def bootstrap(
    ref: dict[int, np.ndarray], other: dict[int, np.ndarray], resamples: int, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """(mean difference, 2.5 % and 97.5 % of the bootstrap differences, two-sided p), mIoU points, seeds averaged."""
    seeds = sorted(set(ref) & set(other))
    n = len(ref[seeds[0]])

    def diff(weights: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    100 * (mean_iou(np.tensordot(weights, ref[s], 1)) - mean_iou(np.tensordot(weights, other[s], 1)))
                    for s in seeds
                ]
            )
        )

    observed = diff(np.ones(n))
    draws = np.array([diff(np.bincount(rng.integers(0, n, n), minlength=n).astype(float)) for _ in range(resamples)])
    p = min(1.0, 2 * max(min((draws <= 0).mean(), (draws >= 0).mean()), 1 / resamples))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return observed, float(lo), float(hi), float(p)


def table(
    conf: dict[tuple[str, int, str], np.ndarray], reference: str, condition: str, resamples: int = 2000, seed: int = 0
) -> str:
    by_mode: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
    for (mode, s, cond), m in conf.items():
        by_mode[(mode, cond)][s] = m
    conditions = sorted({c for _, c in by_mode}, key=lambda c: (c != "hr", c))
    modes = [m for m in ORDER if any((m, c) in by_mode for c in conditions)]
    n_images = {len(m) for m in conf.values()}
    lines = [
        f"mIoU (%) on {'/'.join(map(str, sorted(n_images)))} test images: mean over seeds +- sample std [min, max] (seeds)",
        "",
        "| mode | " + " | ".join(conditions) + " |",
        "|---|" + "---|" * len(conditions),
    ]
    for mode in modes:
        cells = []
        for cond in conditions:
            v = np.array([100 * mean_iou(m.sum(0)) for m in by_mode.get((mode, cond), {}).values()])
            cells.append(
                f"{v.mean():.1f} +- {v.std(ddof=1) if len(v) > 1 else float('nan'):.1f} "
                f"[{v.min():.1f}, {v.max():.1f}] ({len(v)})"
                if len(v)
                else "-"
            )
        lines.append(f"| {NAMES.get(mode, mode)} | " + " | ".join(cells) + " |")
    ref = by_mode.get((reference, condition), {})
    lines += [
        "",
        f"{NAMES.get(reference, reference)} against each mode on {condition}, same images and seeds "
        f"(paired bootstrap over images, {resamples} resamples):",
        "",
        "| other | seeds | mean difference (mIoU points) | 95 % interval | p |",
        "|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(seed)
    for mode in modes:
        other = by_mode.get((mode, condition), {})
        if mode == reference or not set(ref) & set(other):
            continue
        d, lo, hi, p = bootstrap(ref, other, resamples, rng)
        lines.append(
            f"| {NAMES.get(mode, mode)} | {len(set(ref) & set(other))} | {d:+.2f} | [{lo:+.2f}, {hi:+.2f}] | {p:.3g} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cache-dir", default=None, help="the run's cache (default: $LRBENCH_CACHE or lrbench's default)")
    ap.add_argument("--reference", default="sr4ir")
    ap.add_argument("--condition", default="srdown@4")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    text = table(confusions(args.run_dir, args.cache_dir), args.reference, args.condition, args.resamples)
    print(text)
    (args.run_dir / "sr4ir_seg_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
