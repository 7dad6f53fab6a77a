"""Run examples/rics-table1.yaml and print its results in the layout of the paper's Table 1 (percentages).

    python scripts/table1.py [--spec ../../examples/rics-table1.yaml] [--out runs/rics-table1]

Adds the Theoretical Bound row (Theorem 1 and eq. 4) for the spec's model input size and RICS crop size.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import pandas as pd
import yaml
from lrbench_rics.selection import adversarial_bound, consistency_bound

from lrbench.runner import run_spec

COLUMNS = [
    ("adv_robustness_nn", "Adv-Rob (1-NN)"),
    ("adv_robustness", "Adv-Rob (Class)"),
    ("consistency_nn", "Consistency (1-NN)"),
    ("consistency", "Consistency (Class)"),
]


def shift_of(condition: str) -> int:
    return int(re.match(r"shift@(\d+)", condition).group(1))


def table(df: pd.DataFrame, n: int, k: int, axes: int) -> str:
    plain = df[~df.condition.str.contains("then=") & (df.metric != "nn_missing")]
    shifts = sorted({shift_of(c) for c in plain.condition})
    head = ["Model", "Accuracy"] + [f"{title} {d}" for _, title in COLUMNS for d in shifts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, method), cell in plain.groupby(["model", "method"], sort=False):
        value = {(r.metric, shift_of(r.condition)): 100 * r.value for r in cell.itertuples()}
        row = [f"{method} ({model})", f"{value[('shift_acc', shifts[0])]:.2f}"]
        row += [f"{value[(m, d)]:.2f}" for m, _ in COLUMNS for d in shifts]
        lines.append("| " + " | ".join(row) + " |")
    bound = ["Theoretical Bound", "-"]
    for m, _ in COLUMNS:
        f = adversarial_bound if m.startswith("adv") else consistency_bound
        bound += [f"{100 * f(n, k, d, axes=axes):.2f}" for d in shifts]
    lines.append("| " + " | ".join(bound) + " |")
    return "\n".join(lines)


def main() -> None:
    here = Path(__file__).resolve().parents[3]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default=str(here / "examples" / "rics-table1.yaml"))
    ap.add_argument("--out", default="runs/rics-table1")
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    t0 = time.time()
    df = run_spec(spec, args.out, device="cpu", progress=True, echo=print)
    print(f"run took {time.time() - t0:.0f}s")
    crop = spec["conditions"][0]["crop"]
    k = next(m["k"] for m in spec["methods"] if isinstance(m, dict) and "k" in m)
    axes = len(spec["conditions"][0].get("axes", "xy"))
    print(table(df, crop, k, axes))
    missing = df[df.metric == "nn_missing"]
    if len(missing):
        print(
            f"\nimages without a 1-NN candidate in the gallery (excluded from the 1-NN columns): "
            f"{sorted(set(missing.value.astype(int)))}"
        )
    low = df[df.condition.str.contains("then=") & (df.metric != "nn_missing")]
    if len(low):
        print("\nwith a low-resolution step after the shift:")
        print(
            low.pivot_table(index=["model", "method"], columns=["condition", "metric"], values="value", sort=False)
            .T.mul(100)
            .round(2)
            .to_string()
        )


if __name__ == "__main__":
    main()
