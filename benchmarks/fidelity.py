"""Fast path vs reference path: pixel error of the model input and prediction agreement, per condition.

Reference: PIL, shorter side to r (bicubic), then the model's own preprocessing, per image (the LR0.FM transform).
Fast: each image decoded once (JPEGs in batches, on the device), every condition resized from it at the reference's
sizes and cropped at the reference's box (lrbench.tasks.derive_conditions). Both through lrbench's own pipeline
(lrbench.tasks.iter_condition_batches).

    python benchmarks/fidelity.py --model toy-clip --dataset nonsquare --n 700   # JPEGs of 7 aspect ratios
    python benchmarks/fidelity.py --model toy-clip --dataset toyworld --n 600    # square renders, no JPEG
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from toyjpegs import ASPECTS, make_jpegs

from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.plugins import get_plugins
from lrbench.tasks import RunContext, iter_condition_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="toy-clip")
    ap.add_argument(
        "--dataset",
        default="nonsquare",
        help="nonsquare (toy renders as JPEGs of 7 aspect ratios), toyworld, or a registered dataset",
    )
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lrbench-nonsquare-jpegs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--conditions", default="hr,bicubic@128,bicubic@64,bicubic@32,bicubic@16,bicubic@8")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    plugins = get_plugins()
    model = plugins.models.create(args.model).to(args.device).eval()
    if args.dataset == "nonsquare":
        make_jpegs(args.data, args.n, ASPECTS)
        dataset = plugins.datasets.create("imagefolder", root=str(args.data), limit=args.n)
    else:
        dataset = plugins.datasets.create(
            args.dataset, **({"n": args.n} if args.dataset == "toyworld" else {"limit": args.n})
        )
    conds = [
        plugins.degradations.create(c)
        if "@" not in c
        else plugins.degradations.create(c.split("@")[0], size=int(c.split("@")[1]))
        for c in args.conditions.split(",")
    ]
    weights = ZeroShotClassification().text_weights(model, dataset, RunContext(device=torch.device(args.device)))
    stats = {d.condition: {"abs": [], "max": 0.0, "agree": 0, "n": 0, "acc_ref": 0, "acc_fast": 0} for d in conds}
    ref_ctx = RunContext(device=torch.device(args.device), batch_size=50, num_workers=args.workers)
    fast_ctx = RunContext(device=torch.device(args.device), batch_size=50, num_workers=args.workers, fast_path=True)
    std = torch.tensor(model.preprocess.std, device=args.device).view(1, 3, 1, 1)
    with torch.no_grad():
        for (idx, ref), (idx2, fast) in zip(
            iter_condition_batches(model, dataset, conds, ref_ctx),
            iter_condition_batches(model, dataset, conds, fast_ctx),
        ):
            assert np.array_equal(idx, idx2)
            labels = torch.as_tensor(dataset.labels[idx], device=args.device)
            for c, s in stats.items():
                diff = ((ref[c] - fast[c]) * std * 255).abs()  # in 8-bit pixel levels
                s["abs"].append(diff.mean().item() * len(idx))
                s["max"] = max(s["max"], diff.max().item())
                p_ref = (F.normalize(model.encode_image(ref[c]), dim=-1) @ weights.T).argmax(1)
                p_fast = (F.normalize(model.encode_image(fast[c]), dim=-1) @ weights.T).argmax(1)
                s["agree"] += (p_ref == p_fast).sum().item()
                s["acc_ref"] += (p_ref == labels).sum().item()
                s["acc_fast"] += (p_fast == labels).sum().item()
                s["n"] += len(idx)
    print(
        "| condition | mean abs error (8-bit levels) | max abs error | prediction agreement | top-1 reference | top-1 fast |"
    )
    print("|---|---|---|---|---|---|")
    for c, s in stats.items():
        n = s["n"]
        print(
            f"| {c} | {sum(s['abs']) / n:.2f} | {s['max']:.0f} | {s['agree'] / n:.1%} | {s['acc_ref'] / n:.3f} | "
            f"{s['acc_fast'] / n:.3f} |"
        )


if __name__ == "__main__":
    main()
