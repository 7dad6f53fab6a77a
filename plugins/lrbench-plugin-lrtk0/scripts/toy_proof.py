"""The LR-TK0 proof on the toy world: run examples/lrtk0-toy-proof.yaml and print SAR / WAR / ACC per resolution and
method from the run's summary.csv (one dataset, so SAR = gamma and WAR = Gamma; both against the vanilla model's HR
accuracy), and the paired McNemar comparison of each trained method with the vanilla model on the same test images.
After `lrbench run examples/lrtk0-toy-proof.yaml` everything comes from the cache (nothing is trained or evaluated again).

    python scripts/toy_proof.py [--spec examples/lrtk0-toy-proof.yaml] [--out runs/lrtk0-toy] [--device cpu]
                                [--steps N] [--model NAME] [--test-n N] [--cache-dir DIR]

Training happens inside the run (the lrtk0 method trains on first use and caches its tokens under the lrbench cache);
the table goes to stdout and to <out>/lrtk0_table.md, with the training time and loss curve ends from train_log.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import binomtest

from lrbench.runner import Runner, default_cache_dir, run_spec

REPO = Path(__file__).resolve().parents[3]


def paper_table(summary: pd.DataFrame) -> str:
    """SAR / WAR / ACC (x100) per method and resolution from the run's ``summary.csv``: the core computes a method's
    gamma and E against the baseline's (``none``) HR accuracy, as LR0.FM Table 2 does (its 224 column for +LR-TK0
    reads 99.1 = 69.0 / 69.6)."""
    value = summary.set_index(["method", "condition", "metric"])["value"]
    present = set(summary.condition)
    order = [c for c in ("bicubic@8", "bicubic@16", "bicubic@32", "bicubic@64", "bicubic@128", "hr") if c in present]
    head = "| method | " + " | ".join(f"{c.split('@')[-1]} {m}" for c in order for m in ("SAR", "WAR", "ACC")) + " |"
    lines = [head, "|" + "---|" * (3 * len(order) + 1)]
    for method in dict.fromkeys(summary.method):
        # the core writes no SAR / WAR for the baseline at HR (its own reference): shown as a dash
        cells = [
            f"{100 * value[(method, c, m)]:.1f}" if (method, c, m) in value.index else "-"
            for c in order
            for m in ("SAR", "WAR", "ACC")
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(runner: Runner) -> str:
    """Per condition, each trained method against the baseline on the SAME test images: images it fixed / broke and the
    exact McNemar p-value (two-sided binomial test on the discordant pairs), from the run's cached cells."""
    correct: dict[tuple[str, str], np.ndarray] = {}
    for unit in runner.plan().units:
        for cond, key in unit.keys.items():
            out = runner.cache.get("cells", key)
            if out is not None and "logits" in out:
                correct[(unit.method.label, cond)] = out["logits"].argmax(1) == out["labels"]
    lines = ["| method | condition | top-1 none -> method | fixed | broke | McNemar p |", "|---|---|---|---|---|---|"]
    for (method, cond), ok in correct.items():
        base = correct.get(("none", cond))
        if method == "none" or base is None:
            continue
        fixed, broke = int((~base & ok).sum()), int((base & ~ok).sum())
        p = binomtest(fixed, fixed + broke).pvalue if fixed + broke else 1.0
        lines.append(
            f"| {method} | {cond} | {100 * base.mean():.1f} -> {100 * ok.mean():.1f} | {fixed} | {broke} | {p:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(REPO / "examples" / "lrtk0-toy-proof.yaml"))
    ap.add_argument("--out", default="runs/lrtk0-toy")
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=None, help="override the training steps of every trained method")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--model", default=None, help="replace the spec's model (e.g. openclip:local-dir:/folder)")
    ap.add_argument("--test-n", type=int, default=None, help="replace the number of test images")
    ap.add_argument("--conditions", default=None, help="replace the conditions, comma-separated (hr,bicubic@16,...)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps is not None:
        for m in spec["methods"]:
            if isinstance(m, dict) and "train" in m:
                m["train"] = {**m["train"], "steps": args.steps}
    if args.model is not None:
        spec["models"] = [{"name": args.model, "label": "model"}]
    if args.conditions is not None:
        spec["conditions"] = args.conditions.split(",")
    if args.test_n is not None:
        spec["datasets"][0]["n"] = args.test_n
    results = run_spec(spec, args.out, device=args.device, progress=True, echo=print, cache_dir=args.cache_dir)
    out = Path(results.attrs.get("run_dir", args.out))
    text = [
        paper_table(pd.read_csv(out / "summary.csv")),
        "",
        paired_table(Runner(spec, out, cache_dir=args.cache_dir)),
        "",
    ]
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    trained = [m["train"] for m in spec["methods"] if isinstance(m, dict) and "train" in m]
    for log_file in sorted((cache / "artifacts").glob("lrtk0*/*/train_log.json")):
        info = json.loads(log_file.read_text())
        if not any(all(info["description"]["train"].get(k) == v for k, v in t.items()) for t in trained):
            continue  # another run's tokens
        losses = info["losses"]
        text.append(
            f"- {info['description']['tokens']['mode']} tokens: {len(losses)} steps in "
            f"{info['seconds']:.0f} s ({info['images_per_second']:.1f} HR images/s), loss "
            f"{np.mean(losses[:10]):.3f} (mean of the first 10 steps) -> {np.mean(losses[-10:]):.3f} (last 10), "
            f"logit scale {1 / 0.07:.2f} -> {info.get('logit_scale', float('nan')):.2f}"
        )
    report = "\n".join(text)
    print(report)
    (out / "lrtk0_table.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
