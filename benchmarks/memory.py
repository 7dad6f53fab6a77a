"""Peak memory against dataset size: whole ``lrbench run`` calls on 1k and 4k generated JPEGs, each in a fresh process.

Prints, per path and size, the main process's peak RSS, the largest loader worker's peak RSS, the peak GPU memory
(CUDA runs) and the run's wall time (planning, model load, text embeddings, results and report included). Flat means
the 4k row matches the 1k row: nothing is held per image beyond its outputs (logits).

    python benchmarks/memory.py --n 1000,4000                     # CPU
    python benchmarks/memory.py --n 1000,4000 --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from toyjpegs import make_jpegs


def child(args: argparse.Namespace) -> None:
    from lrbench.runner import run_spec

    spec = {
        "name": "memory",
        "models": [args.model],
        "datasets": [{"name": "imagefolder", "root": str(args.data), "limit": args.size}],
        "conditions": args.conditions.split(","),
        "metrics": ["top1"],
        "batch_size": args.batch,
        "num_workers": args.workers,
        "fast_path": args.path == "fast",
        "device": args.device,
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_spec(spec, Path(tmp) / "run", cache_dir=Path(tmp) / "cache")
        wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "main_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None,
                "wall_s": wall,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="toy-clip")
    ap.add_argument("--n", default="1000,4000")
    ap.add_argument("--paths", default="reference,fast")
    ap.add_argument("--conditions", default="hr,bicubic@16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lrbench-sweep-jpegs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    sizes = [int(v) for v in args.n.split(",")]
    make_jpegs(args.data, max(sizes))
    print("| path | images | main peak RSS (MB) | largest worker peak RSS (MB) | GPU peak (MB) | whole run (s) |")
    print("|---|---|---|---|---|---|")
    for path in args.paths.split(","):
        for size in sizes:
            cmd = [sys.executable, __file__, "--child", "--path", path, "--size", str(size)]
            for key in ("model", "conditions", "device", "batch", "workers", "data"):
                cmd += [f"--{key}", str(getattr(args, key))]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            gpu = f"{r['gpu_peak_mb']:,.0f}" if r["gpu_peak_mb"] is not None else "-"
            print(
                f"| {path} | {size:,} | {r['main_rss_mb']:,.0f} | {r['worker_rss_mb']:,.0f} | {gpu} | "
                f"{r['wall_s']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
