"""Throughput of LR tokens: inference with and without tokens, and LR-TK0 training steps.

Any registered zero-shot ViT works; weights do not matter for speed, so the default is a random-init open_clip ViT-B/16
(``openclip:ViT-B-16/random``, needs lrbench-plugin-openclip). Examples::

    python scripts/benchmark.py --model openclip:ViT-B-16/random --device cuda --batch 128      # the paper's size
    python scripts/benchmark.py --model openclip:ViT-S-32/random --device cpu --batch 16 --threads 2

Prints one JSON object: images/s of the frozen model, of the model with tokens (the hooks' overhead), and of training
(HR images per second; each also goes through the student at every LR bucket), plus peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from lrbench_lrtk0.tokens import TokenInjector, find_vit, make_tokens
from lrbench_lrtk0.train import DEFAULT_BUCKETS, distill_loss

from lrbench.plugins import get_plugins


def _timed(fn, device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="openclip:ViT-B-16/random")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only), as training uses on GPU")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = get_plugins().registries["models"].create(args.model)
    model.to(device).eval()
    for p in model.module.parameters():
        p.requires_grad_(False)
    layout = find_vit(model.module)
    tokens = make_tokens(layout, init="authors").to(device)
    injector = TokenInjector(layout, tokens)
    size = model.preprocess.image_size
    views = torch.rand(args.batch, 1 + len(DEFAULT_BUCKETS), 3, size, size, device=device)  # HR + one view per bucket
    x = model.prepare_tensor(views[:, 0])
    amp = args.amp and device.type == "cuda"

    def forward() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model.encode_image(x)

    def forward_tokens() -> None:
        with injector.active():
            forward()

    opt = torch.optim.AdamW(tokens.parameters(), lr=1e-4)

    def train_step() -> None:
        loss = distill_loss(model, injector, views, 1 / 0.07, amp=amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_s = _timed(forward, device, args.warmup, args.iters)
    tok_s = _timed(forward_tokens, device, args.warmup, args.iters)
    train_s = _timed(train_step, device, args.warmup, args.iters)
    out = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "amp": amp,
        "layout": layout.describe(),
        "token_params": sum(p.numel() for p in tokens.parameters()),
        "model_params": sum(p.numel() for p in model.module.parameters()),
        "infer_img_s": args.batch / base_s,
        "infer_tokens_img_s": args.batch / tok_s,
        "token_overhead_pct": 100 * (tok_s / base_s - 1),
        "train_hr_img_s": args.batch / train_s,
        "train_views_per_image": 1 + len(DEFAULT_BUCKETS),
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
