"""The LR-TK0 proof on the toy world: run specs/toy_proof.yaml and print SAR / WAR / ACC per resolution and method.

    python scripts/toy_proof.py [--spec specs/toy_proof.yaml] [--out runs/lrtk0-toy] [--device cpu] [--steps N]

Training happens inside the run (the lrtk0 method trains on first use and caches its tokens under the lrbench cache);
the table goes to stdout and to <out>/lrtk0_table.md, with the training time and loss curve ends from train_log.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from lrbench.runner import default_cache_dir, run_spec

HERE = Path(__file__).resolve().parent.parent


def table(summary: pd.DataFrame) -> str:
    order = ["bicubic@16", "bicubic@32", "bicubic@64", "bicubic@128", "hr"]
    s = summary[summary.metric.isin(["SAR", "WAR", "ACC"])]
    s = s[s.condition.isin(order)]
    piv = s.pivot_table(index="method", columns=["condition", "metric"], values="value", aggfunc="first")
    cols = [(c, m) for c in order for m in ("SAR", "WAR", "ACC") if (c, m) in piv.columns]
    piv = piv[cols] * 100
    head = "| method | " + " | ".join(f"{c.split('@')[-1]} {m}" for c, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for method, row in piv.iterrows():
        lines.append(f"| {method} | " + " | ".join("" if pd.isna(v) else f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(HERE / "specs" / "toy_proof.yaml"))
    ap.add_argument("--out", default="runs/lrtk0-toy")
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=None, help="override the training steps of every trained method")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    if args.steps is not None:
        for m in spec["methods"]:
            if isinstance(m, dict) and "train" in m:
                m["train"] = {**m["train"], "steps": args.steps}
    results = run_spec(spec, args.out, device=args.device, progress=True, echo=print, cache_dir=args.cache_dir)
    out = Path(results.attrs.get("run_dir", args.out))
    summary = pd.read_csv(out / "summary.csv")
    text = [table(summary), ""]
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    trained = [m["train"] for m in spec["methods"] if isinstance(m, dict) and "train" in m]
    for log_file in sorted((cache / "artifacts").glob("lrtk0*/*/train_log.json")):
        info = json.loads(log_file.read_text())
        if not any(all(info["description"]["train"].get(k) == v for k, v in t.items()) for t in trained):
            continue  # another run's tokens
        losses = info["losses"]
        text.append(f"- {info['description']['tokens']['mode']} tokens: {len(losses)} steps in "
                    f"{info['seconds']:.0f} s ({info['images_per_second']:.1f} HR images/s), loss "
                    f"{sum(losses[:10]) / 10:.3f} (first 10) -> {sum(losses[-10:]) / 10:.3f} (last 10)")
    report = "\n".join(text)
    print(report)
    (out / "lrtk0_table.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
