"""Resolution-sweep throughput: lrbench vs the model's forward-only bound vs a naive per-resolution pipeline.

One process, one model, the same generated JPEGs for every figure. A "sweep" is HR + 128, 64, 32, 16 px; throughput is
counted in resolution-images per second (5 per image). Also times a warm re-run (everything cached).

    python benchmarks/sweep.py --model toy-clip --n 400 --workers 2                       # CPU
    python benchmarks/sweep.py --model openclip:ViT-B-16/random --n 4000 --device cuda \\
        --batch 256 --workers 14 --amp                                                   # GPU
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from lrbench.builtin.toyworld import render
from lrbench.plugins import get_plugins
from lrbench.runner import run_spec

RESOLUTIONS = [None, 128, 64, 32, 16]  # None = HR


def make_jpegs(root: Path, n: int) -> None:
    """n 500x375 JPEGs (toy-world content, upscaled, quality 90), ten class folders."""
    if root.is_dir() and len(list(root.rglob("*.jpg"))) >= n:
        return
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        render(i)[0].resize((500, 375), Image.BICUBIC).save(d / f"{i:06d}.jpg", quality=90)


class NaiveFolder(Dataset):
    def __init__(self, files: list[Path], transform):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB"))


def naive_sweep(model, files, batch: int, workers: int, amp: bool) -> float:
    """PIL transforms per resolution, one DataLoader pass per resolution (what users write by hand)."""
    pre = model.preprocess
    base = [T.Resize(pre.image_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(pre.image_size),
            T.ToTensor(), T.Normalize(pre.mean, pre.std)]
    start = time.perf_counter()
    for r in RESOLUTIONS:
        tf = T.Compose(([T.Resize(r, interpolation=T.InterpolationMode.BICUBIC)] if r else []) + base)
        for x in DataLoader(NaiveFolder(files, tf), batch_size=batch, num_workers=workers):
            with torch.no_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=amp):
                model.encode_image(x.to(model.device, non_blocking=True))
    _sync(model.device)
    return len(files) * len(RESOLUTIONS) / (time.perf_counter() - start)


def forward_only(model, batch: int, amp: bool, seconds: float = 10.0) -> float:
    x = torch.randn(batch, 3, model.preprocess.image_size, model.preprocess.image_size, device=model.device)
    with torch.no_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=amp):
        model.encode_image(x)
        _sync(model.device)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.encode_image(x)
            n += batch
        _sync(model.device)
    return n / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="toy-clip")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lrbench-sweep-jpegs")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()

    make_jpegs(args.data, args.n)
    files = sorted(args.data.rglob("*.jpg"))[: args.n]
    model = get_plugins().models.create(args.model).to(args.device).eval()
    fig = {"model": args.model, "n_images": len(files), "device": args.device, "batch": args.batch,
           "workers": args.workers, "amp": args.amp, "torch": torch.__version__,
           "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()}
    fig["forward_only"] = forward_only(model, args.batch, args.amp)
    fig["naive_sweep"] = naive_sweep(model, files, args.batch, args.workers, args.amp)
    spec = {"name": "sweep", "models": [args.model], "datasets": [{"name": "imagefolder", "root": str(args.data)}],
            "conditions": ["hr", "bicubic@128", "bicubic@64", "bicubic@32", "bicubic@16"], "metrics": ["top1"],
            "batch_size": args.batch, "num_workers": args.workers, "amp": args.amp, "device": args.device}
    for path in ("reference", "fast"):
        cache = Path(tempfile.mkdtemp(prefix="lrbench-bench-cache-"))
        out = Path(tempfile.mkdtemp(prefix="lrbench-bench-run-"))
        try:
            start = time.perf_counter()
            run_spec(dict(spec, fast_path=path == "fast"), out, cache_dir=cache)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            run_spec(dict(spec, fast_path=path == "fast"), out, cache_dir=cache)
            warm = time.perf_counter() - start
        finally:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
        fig[f"lrbench_{path}"] = len(files) * len(RESOLUTIONS) / cold
        fig[f"lrbench_{path}_cold_s"], fig[f"lrbench_{path}_warm_s"] = cold, warm
    rows = [("forward-only (bound)", fig["forward_only"]), ("naive sweep", fig["naive_sweep"]),
            ("lrbench, reference path", fig["lrbench_reference"]), ("lrbench, fast path", fig["lrbench_fast"])]
    print(f"| pipeline ({fig['model']}, {fig['device_name']}, n={len(files)}) | res-img/s | x naive | / forward-only |")
    print("|---|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:,.0f} | {v / fig['naive_sweep']:.2f} | {v / fig['forward_only']:.1%} |")
    for path in ("reference", "fast"):
        c, w = fig[f"lrbench_{path}_cold_s"], fig[f"lrbench_{path}_warm_s"]
        print(f"{path}: cold {c:.1f} s, warm re-run {w:.2f} s ({w / c:.1%} of cold)")
    if args.out:
        args.out.write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
