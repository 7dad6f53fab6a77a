"""Offline proof on toy faces: train a tiny IResNet with each strategy on CPU, evaluate LR verification.

Trains baseline / BT-M / ST-M1 / MAug+LogExp (same network, data, head, schedule and seed; only the strategy differs)
on the generated ``toyfaces`` training identities and evaluates cross- and equal-resolution verification on disjoint
``toyfaces-pairs`` test identities with the plugin's own task and metrics (cross-resolution: both orders averaged,
Knoche et al. 3.4; accuracy with the exact threshold search and with insightface's grid). Writes results.csv,
results.md and a distance-distribution PNG (Knoche et al. Fig. 7 style, HR-LR order) to --out.

    python plugins/lrbench-plugin-face/scripts/toy_faces_proof.py --out /tmp/face_proof
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lrbench_face.evaluation import plot_distance_distributions
from lrbench_face.lr import FaceLR, FaceProtocol
from lrbench_face.metrics import FaceAccuracy, RocAuc, TarAtFar
from lrbench_face.models import face_iresnet
from lrbench_face.tasks import Verification
from lrbench_face.toyfaces import ToyFacePairs, ToyFaces
from lrbench_face.train import FaceTrainer, TrainConfig
from PIL import Image

from lrbench.builtin.degradations import HR
from lrbench.datasets import Dataset
from lrbench.tasks import RunContext


class Preloaded(Dataset):
    """A dataset decoded once into memory (the renders are the slow part), reused by every strategy."""

    def __init__(self, base: Dataset):
        self.name, self.labels = base.name, base.labels
        self.images = np.stack([np.asarray(base.load(i)) for i in range(len(base))])
        self._params = base.params()

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])

    def params(self) -> dict:
        return self._params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="face_proof")
    ap.add_argument("--identities", type=int, default=80)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--test-identities", type=int, default=60)
    ap.add_argument("--strategies", default="baseline,bt-m,st-m1,maug")
    ap.add_argument("--s", type=float, default=16.0, help="CosFace scale, the same for every strategy")
    ap.add_argument("--m", type=float, default=0.1, help="CosFace margin, the same for every strategy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", action="store_true", help="only combine the runs in the sub-folders of --out")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.merge:
        merge(Path(args.out))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    t0 = time.time()
    train = Preloaded(ToyFaces("train", args.identities, args.images, seed=args.seed))
    test = ToyFacePairs("test", args.test_identities, args.pairs, seed=args.seed)
    test_pre = Preloaded(test)
    test_pre.pairs, test_pre.issame = test.pairs, test.issame
    print(f"rendered {len(train)} training and {len(test_pre)} test images in {time.time() - t0:.0f} s", flush=True)

    sizes = (28, 20, 14, 10, 7)
    conditions = (
        [HR()]
        + [FaceLR(r) for r in sizes]
        + [FaceLR(r, mode="equal") for r in (14, 7)]
        + [FaceProtocol(rng, seed=1) for rng in ("low", "mid", "high")]
    )
    rows, dists = [], {}
    for strategy in args.strategies.split(","):
        torch.manual_seed(args.seed)
        model = face_iresnet("r18", layers=[1, 1, 1, 1], base_width=8, image_size=32, embedding_size=64)
        # the same margin head for every strategy, so that only the LR handling differs
        cfg = TrainConfig(
            strategy=strategy,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            milestones=[args.epochs // 2, (3 * args.epochs) // 4],
            head="cosface",
            s=args.s,
            m=args.m,
            warmup_steps=20,
            seed=args.seed,
            amp=False,
        )
        t1 = time.time()
        # a checkpoint per epoch in --out: a stopped run resumes where it was (the machine is shared and slow)
        trainer = FaceTrainer(model.module, model.preprocess.tensor, 64, args.identities, cfg)
        history = trainer.fit(train, workdir=out / f"train_{strategy}")
        train_s = time.time() - t1
        (out / f"history_{strategy}.json").write_text(json.dumps(history, indent=1))
        model.module.eval()
        outputs = Verification().run(model, test_pre, conditions, RunContext(batch_size=200, fast_path=True))
        for cond, o in outputs.items():
            acc = FaceAccuracy().compute(o, test_pre)
            grid = FaceAccuracy(search="insightface").compute(o, test_pre)
            rows.append(
                {
                    "strategy": strategy,
                    "condition": cond,
                    "acc": acc[""],
                    "acc_std": acc["std"],
                    "acc_hr_lr": acc.get("hr_lr", acc[""]),
                    "acc_lr_hr": acc.get("lr_hr", np.nan),
                    "acc_insightface": grid[""],
                    "threshold": acc["threshold"],
                    "tar@far=1e-2": TarAtFar(1e-2).compute(o, test_pre)[""],
                    "auc": RocAuc().compute(o, test_pre)[""],
                    "train_s": round(train_s),
                }
            )
            if cond in ("hr", "face-lr@28", "face-lr@14", "face-lr@7"):
                dists[f"{strategy}\n{cond}"] = (o["dist"], o["issame"])
        print(pd.DataFrame([r for r in rows if r["strategy"] == strategy]).to_string(index=False), flush=True)
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    np.savez(
        out / "distances.npz", **{k.replace("\n", "|"): np.stack([d, s.astype(float)]) for k, (d, s) in dists.items()}
    )
    print(f"total {time.time() - t0:.0f} s", flush=True)


def merge(root: Path) -> None:
    """Combine runs written to root/<name>/ (one process per strategy) into root/results.{csv,md}, distances.png."""
    frames = [pd.read_csv(p) for p in sorted(root.glob("*/results.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(root / "results.csv", index=False)
    order = list(dict.fromkeys(df["condition"]))
    strategies = [s for s in ("baseline", "bt-m", "st-m1", "maug") if s in set(df["strategy"])]
    strategies += sorted(set(df["strategy"]) - set(strategies))
    md = []
    for column, title in (
        ("acc", "accuracy, exact threshold search (both orders averaged in cross mode)"),
        ("acc_hr_lr", "HR-LR order only (lrbench's single order before)"),
        ("acc_insightface", "accuracy, insightface's threshold grid"),
    ):
        table = df.pivot(index="condition", columns="strategy", values=column).reindex(order)[strategies]
        pct = (table * 100).round(1)
        md += [f"\n{title}\n", "| condition | " + " | ".join(pct.columns) + " |", "|---" * (len(pct.columns) + 1) + "|"]
        md += [f"| {c} | " + " | ".join(f"{v:.1f}" for v in pct.loc[c]) + " |" for c in pct.index]
    train_s = df.groupby("strategy")["train_s"].first().reindex(strategies)
    md.append("| training time (s) | " + " | ".join(str(int(v)) for v in train_s) + " |")
    (root / "results.md").write_text("\n".join(md) + "\n")
    dists = {}
    for p in sorted(root.glob("*/distances.npz")):
        with np.load(p) as z:
            dists.update({k.replace("|", "\n"): (z[k][0], z[k][1].astype(bool)) for k in z.files})
    plot_distance_distributions(dists, root / "distances.png")
    print("\n".join(md))


if __name__ == "__main__":
    main()
