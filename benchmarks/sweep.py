"""Resolution-sweep throughput, side by side: forward-only bound, naive per-resolution pipeline, lrbench's reference
and fast paths, for each model named, on the same generated JPEGs.

A sweep is HR + 128, 64, 32, 16 px; throughput is counted in resolution-images per second (5 per image). The four
pipelines are interleaved: the images are cut into ``--rounds`` chunks and every pipeline runs on each chunk in turn
(order rotated per round), so a machine shared with other jobs slows all rows alike. The lrbench rows are the image
pipeline plus the forward pass (``lrbench.tasks.iter_condition_batches`` + ``encode_image``), as a unit of
``lrbench run`` computes them; planning, model loading and writing results are fixed per run costs
(benchmarks/memory.py times whole runs).

    python benchmarks/sweep.py --models toy-clip,openclip:ViT-B-32/random --n 1000,200          # CPU
    python benchmarks/sweep.py --models openclip:ViT-B-16/random,openclip:ViT-B-32/random --n 4000,4000 \\
        --device cuda --batch 256 --amp                                                          # GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from toyjpegs import make_jpegs

from lrbench.builtin.degradations import HR, Resize
from lrbench.datasets import FileListDataset
from lrbench.plugins import get_plugins
from lrbench.tasks import RunContext, iter_condition_batches, resolve_workers

RESOLUTIONS = [None, 128, 64, 32, 16]  # None = HR
PIPELINES = ("forward-only", "naive", "reference", "fast")


class NaiveFolder(Dataset):
    def __init__(self, files: list[Path], transform):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def naive(model, files: list[Path], batch: int, workers: int, amp: bool) -> None:
    """What users write by hand: PIL transforms per resolution, one DataLoader pass (one decode) per resolution."""
    pre = model.preprocess
    base = [
        T.Resize(pre.image_size, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(pre.image_size),
        T.ToTensor(),
        T.Normalize(pre.mean, pre.std),
    ]
    for r in RESOLUTIONS:
        tf = T.Compose(([T.Resize(r, interpolation=T.InterpolationMode.BICUBIC)] if r else []) + base)
        for x in DataLoader(
            NaiveFolder(files, tf), batch_size=batch, num_workers=workers, pin_memory=model.device.type == "cuda"
        ):
            with torch.no_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=amp):
                model.encode_image(x.to(model.device, non_blocking=True))


def lrbench_pipeline(model, dataset: FileListDataset, batch: int, workers: int, amp: bool, fast: bool) -> None:
    conditions = [HR()] + [Resize(r) for r in RESOLUTIONS if r]
    ctx = RunContext(device=model.device, batch_size=batch, num_workers=workers, fast_path=fast, amp=amp)
    with torch.no_grad():
        for _, inputs in iter_condition_batches(model, dataset, conditions, ctx):
            for x in inputs.values():
                with ctx.autocast():
                    model.encode_image(x)


def forward_only(model, n_inputs: int, batch: int, amp: bool) -> None:
    x = torch.randn(batch, 3, model.preprocess.image_size, model.preprocess.image_size, device=model.device)
    with torch.no_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=amp):
        for start in range(0, n_inputs, batch):
            model.encode_image(x[: min(batch, n_inputs - start)])


def sweep(model_name: str, files: list[Path], root: Path, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per pipeline summed over the interleaved rounds -> resolution-images per second."""
    model = get_plugins().models.create(model_name).to(args.device).eval()
    forward_only(model, args.batch, args.batch, args.amp)  # warm-up: first-call allocations, kernels
    _sync(model.device)
    seconds = dict.fromkeys(PIPELINES, 0.0)
    chunk = -(-len(files) // args.rounds)
    for r in range(args.rounds):
        part = files[r * chunk : (r + 1) * chunk]
        if not part:
            break
        dataset = FileListDataset("sweep", root, [str(f.relative_to(root)) for f in part], [0] * len(part), ["x"])
        runs: dict[str, Callable[[], None]] = {
            "forward-only": lambda: forward_only(model, len(part) * len(RESOLUTIONS), args.batch, args.amp),
            "naive": lambda: naive(model, part, args.batch, args.workers, args.amp),
            "reference": lambda: lrbench_pipeline(model, dataset, args.batch, args.workers, args.amp, fast=False),
            "fast": lambda: lrbench_pipeline(model, dataset, args.batch, args.workers, args.amp, fast=True),
        }
        for name in PIPELINES[r % 4 :] + PIPELINES[: r % 4]:
            start = time.perf_counter()
            runs[name]()
            _sync(model.device)
            seconds[name] += time.perf_counter() - start
    return {name: len(files) * len(RESOLUTIONS) / s for name, s in seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="toy-clip,openclip:ViT-B-32/random")
    ap.add_argument("--n", default="1000,200", help="images per model (comma-separated, one per model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="loader workers of every pipeline (auto: cores - 1)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lrbench-sweep-jpegs")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    args.workers = resolve_workers(args.workers)
    models = args.models.split(",")
    sizes = [int(v) for v in args.n.split(",")]
    sizes += sizes[-1:] * (len(models) - len(sizes))
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    )
    figures = {
        "device": args.device,
        "device_name": device_name,
        "torch": torch.__version__,
        "batch": args.batch,
        "workers": args.workers,
        "amp": args.amp,
        "rounds": args.rounds,
        "models": {},
    }
    for model_name, n in zip(models, sizes):
        files = make_jpegs(args.data, n)
        rates = sweep(model_name, files, args.data, args)
        figures["models"][model_name] = {"n_images": n, **rates}
        print(
            f"\n| {model_name}, n={n} images x 5 resolutions ({device_name}, {args.workers} workers, batch "
            f"{args.batch}) | res-img/s | x naive | / forward-only |"
        )
        print("|---|---|---|---|")
        for name in PIPELINES:
            v = rates[name]
            print(f"| {name} | {v:,.1f} | {v / rates['naive']:.2f} | {v / rates['forward-only']:.1%} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
