"""Mean, spread and paired significance tests of an SR4IR run, from its cached cells: classification
(``examples/sr4ir-toy.yaml``, top-1) or segmentation (``examples/sr4ir-seg-toy.yaml``, mIoU), told apart by the cells.

    python scripts/sr4ir_table.py RUN_DIR [--cache-dir DIR] [--reference sr4ir] [--condition srdown@4]

Method labels are ``<mode>/s<seed>``. For each mode and condition: the score over the test set per seed, its mean over
seeds, sample standard deviation and range. For the reference mode against every other mode on the LR condition, on
the same test images:

- a paired t-test over seeds (two-sided, ``scipy.stats.ttest_rel`` on the per-seed scores; n = seeds, so little
  power: it asks whether the gain holds for a new training seed);
- classification, McNemar per seed pooled: the images one model gets right and the other wrong are summed over seeds
  (b, c) and the exact two-sided binomial test is applied to b of b + c (images are paired within a seed; seeds are
  pooled, which treats image x seed pairs as independent);
- segmentation, a paired bootstrap over images (mIoU is not a mean over images, so no per-image test applies): one
  resample of the test images, used for every seed and both modes, mIoU recomputed from the resampled images' summed
  confusion matrices, seeds averaged; a 95 % percentile interval of the difference and the two-sided p = 2 x the
  smaller share of resamples on either side of zero (at least 1 / resamples).

The table goes to stdout and to ``RUN_DIR/sr4ir_table.md``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from lrbench_sr.dense import mean_iou
from scipy.stats import binomtest, ttest_rel

from lrbench.runner import Runner

ORDER = ("hr_t", "lr_t", "s_t", "t_s", "s_plus_t", "sr4ir")
NAMES = {"hr_t": "HR -> T", "lr_t": "LR -> T", "s_t": "S -> T", "t_s": "T -> S", "s_plus_t": "S + T", "sr4ir": "SR4IR"}

#: (mode, seed, condition) -> per-image outcomes in item order: correctness (N,) bool for classification, confusion
#: matrices (N, C, C) for segmentation
Outcomes = dict[tuple[str, int, str], np.ndarray]


def outcomes(run_dir: Path, cache_dir: str | None) -> Outcomes:
    """Per-image outcomes of every cached cell of the run."""
    runner = Runner(run_dir / "spec.resolved.yaml", run_dir, cache_dir=cache_dir)
    out: Outcomes = {}
    for unit in runner.plan().units:
        mode, _, seed = unit.method.label.partition("/s")
        for cond, key in unit.keys.items():
            cell = runner.cache.get("cells", key)
            if cell is None:
                continue
            order = np.argsort(cell["index"])
            if "confusion" in cell:
                out[(mode, int(seed), cond)] = cell["confusion"][order]
            else:
                out[(mode, int(seed), cond)] = (cell["logits"].argmax(1) == cell["labels"])[order]
    return out


def score(per_image: np.ndarray) -> float:
    """Top-1 (%) of correctness, mIoU (%) of confusion matrices."""
    return 100 * (mean_iou(per_image.sum(0)) if per_image.ndim == 3 else float(per_image.mean()))


def mcnemar(ref: dict[int, np.ndarray], other: dict[int, np.ndarray], seeds: list[int]) -> list[str]:
    """Discordant images pooled over seeds (b: only ref right, c: only other right) and the exact binomial p."""
    b = sum(int((ref[s] & ~other[s]).sum()) for s in seeds)
    c = sum(int((~ref[s] & other[s]).sum()) for s in seeds)
    return [str(b), str(c), f"{binomtest(b, b + c).pvalue if b + c else 1.0:.3g}"]


def bootstrap(
    ref: dict[int, np.ndarray], other: dict[int, np.ndarray], seeds: list[int], resamples: int, rng: np.random.Generator
) -> list[str]:
    """95 % interval of the mIoU difference (points, seeds averaged) over image resamples, and its two-sided p."""
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

    draws = np.array([diff(np.bincount(rng.integers(0, n, n), minlength=n).astype(float)) for _ in range(resamples)])
    p = min(1.0, 2 * max(min((draws <= 0).mean(), (draws >= 0).mean()), 1 / resamples))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return [f"[{lo:+.2f}, {hi:+.2f}]", f"{p:.3g}"]


def table(results: Outcomes, reference: str, condition: str, resamples: int = 2000, seed: int = 0) -> str:
    by_mode: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
    for (mode, s, cond), per_image in results.items():
        by_mode[(mode, cond)][s] = per_image
    segmentation = next(iter(results.values())).ndim == 3
    what = "mIoU" if segmentation else "top-1"
    conditions = sorted({c for _, c in by_mode}, key=lambda c: (c != "hr", c))
    modes = [m for m in ORDER if any((m, c) in by_mode for c in conditions)]
    n_images = {len(v) for v in results.values()}
    lines = [
        f"{what} (%) on {'/'.join(map(str, sorted(n_images)))} test images: mean over seeds +- sample std "
        "[min, max] (seeds)",
        "",
        "| mode | " + " | ".join(conditions) + " |",
        "|---|" + "---|" * len(conditions),
    ]
    for mode in modes:
        cells = []
        for cond in conditions:
            v = np.array([score(x) for x in by_mode.get((mode, cond), {}).values()])
            if len(v) > 1:
                cells.append(f"{v.mean():.1f} +- {v.std(ddof=1):.1f} [{v.min():.1f}, {v.max():.1f}] ({len(v)})")
            else:  # one seed has no spread
                cells.append(f"{v[0]:.1f} (1)" if len(v) else "-")
        lines.append(f"| {NAMES.get(mode, mode)} | " + " | ".join(cells) + " |")
    ref = by_mode.get((reference, condition), {})
    per_image = (
        f"paired bootstrap over images, {resamples} resamples: 95 % interval | p"
        if segmentation
        else "only ref right (b) | only other right (c) | McNemar pooled p"
    )
    lines += [
        "",
        f"{NAMES.get(reference, reference)} against each mode on {condition}, same images and seeds:",
        "",
        f"| other | seeds | mean difference ({what} points) | {per_image} | paired t p |",
        "|---|---|---|" + "---|" * (2 if segmentation else 3) + "---|",
    ]
    rng = np.random.default_rng(seed)
    for mode in modes:
        other = by_mode.get((mode, condition), {})
        seeds = sorted(set(ref) & set(other))
        if mode == reference or not seeds:
            continue
        a_ref = np.array([score(ref[s]) for s in seeds])
        a_oth = np.array([score(other[s]) for s in seeds])
        p_t = f"{ttest_rel(a_ref, a_oth).pvalue:.3g}" if len(seeds) > 1 else "-"
        tests = bootstrap(ref, other, seeds, resamples, rng) if segmentation else mcnemar(ref, other, seeds)
        lines.append(
            f"| {NAMES.get(mode, mode)} | {len(seeds)} | {np.mean(a_ref - a_oth):+.2f} | "
            + " | ".join(tests)
            + f" | {p_t} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cache-dir", default=None, help="the run's cache (default: $LRBENCH_CACHE or lrbench's default)")
    ap.add_argument("--reference", default="sr4ir")
    ap.add_argument("--condition", default="srdown@4")
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (segmentation)")
    args = ap.parse_args()
    text = table(outcomes(args.run_dir, args.cache_dir), args.reference, args.condition, args.resamples)
    print(text)
    (args.run_dir / "sr4ir_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
