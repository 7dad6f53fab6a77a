"""SR throughput per backbone (published configurations, random weights: speed does not depend on the values).

    python scripts/bench_sr.py --device cuda --lr-size 16 32 64 --batch 64     # GPU (fp16 autocast with --amp)
    python scripts/bench_sr.py --device cpu --lr-size 32 --batch 4 --reps 2     # CPU

Prints one row per (backbone, LR size): images per second of LR -> SR (padding and clamping included, as the SR
method runs it) and writes them as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from lrbench_sr import backbones
from lrbench_sr.inference import SRInference

DEFAULT = ("edsr-baseline", "edsr", "swinir-classical", "swinir-lightweight", "swinir-real", "esrgan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", nargs="+", default=list(DEFAULT), choices=sorted(backbones.ALIASES))
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--lr-size", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", action="store_true", help="fp16 autocast (CUDA only)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for alias in args.backbones:
        arch, variant = backbones.ALIASES[alias]
        bb = backbones.build(arch, variant, args.scale)
        sr = SRInference(bb.module.to(device).eval(), bb.scale, bb.pad_multiple, amp=args.amp)
        params = sum(p.numel() for p in bb.module.parameters()) / 1e6
        for size in args.lr_size:
            x = torch.rand(args.batch, 3, size, size, device=device)
            sr(x)  # warm-up (cuDNN autotune, allocator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.reps):
                sr(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ips = args.batch * args.reps / (time.perf_counter() - t0)
            rows.append(
                {
                    "backbone": alias,
                    "params_M": round(params, 2),
                    "lr_size": size,
                    "sr_size": size * args.scale,
                    "batch": args.batch,
                    "images_per_s": round(ips, 2),
                }
            )
            print(f"{alias:20s} {params:6.2f}M  {size:3d} -> {size * args.scale:3d} px  {ips:9.2f} img/s", flush=True)
    meta = {
        "device": str(device),
        "amp": args.amp,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
    }
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
