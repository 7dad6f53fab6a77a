"""A small stand-in toy CLIP for the LR-TK0 proof while the shipped ``toy-clip`` is not usable.

An open_clip ViT (64 px input, 8 px patches: 8 x 8 patch tokens, 4 blocks, 128 wide) trained from scratch on
toy-world TRAIN images with a cross-entropy over the 12 class embeddings that the zero-shot task itself computes (each
class's prompts encoded and averaged). The text tower stays at its seeded random initialisation and frozen, so those
class embeddings are fixed, distinct targets and the image tower learns to hit them (a contrastive run of both towers
from scratch stayed at chance in the time available here). The result is an ordinary open_clip CLIP, written as an
open_clip ``local-dir`` folder that lrbench loads with ``openclip:local-dir:<out>`` (lrbench-plugin-openclip). Images
are only ever seen at 64 px (their HR), so lower resolutions hurt the model and LR tokens have something to recover.

    python scripts/train_standin_clip.py --out /tmp/lrtk0_toyclip --n-train 3000 --steps 300 --lr 2e-3
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.transforms import functional as TF

from lrbench.builtin.toyworld import SHAPES, TEMPLATES, ToyWorld
from lrbench.models import OPENAI_MEAN, OPENAI_STD

SIZE = 64
MODEL_CFG = {"embed_dim": 128,
             "vision_cfg": {"image_size": SIZE, "patch_size": 8, "width": 128, "layers": 4, "head_width": 32},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}}


def render(split: str, n: int, cache: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 64, 64) uint8 images (PIL bicubic from 224) and labels, cached in an npz file."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    ds = ToyWorld(split, n)
    x = torch.stack([TF.pil_to_tensor(ds.load(i).resize((SIZE, SIZE), resample=3)) for i in range(n)])
    y = torch.from_numpy(ds.labels)
    if cache is not None:
        np.savez(cache, x=x.numpy(), y=y.numpy())
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="npz file keeping the rendered train images")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG, "preprocess_cfg": {
        "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic", "resize_mode": "shortest"}},
        indent=2) + "\n")
    model = open_clip.create_model(f"local-dir:{args.out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{args.out}")
    t0 = time.time()
    x, y = render("train", args.n_train, args.cache)
    print(f"rendered {len(x)} train images in {time.time() - t0:.0f}s", flush=True)
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    prompts = [t.replace("{c}", c) for c in SHAPES for t in TEMPLATES]

    def class_embeddings() -> torch.Tensor:
        with torch.no_grad():
            txt = F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)
            return F.normalize(txt.view(len(SHAPES), len(TEMPLATES), -1).mean(1), dim=-1)

    for p in model.transformer.parameters():
        p.requires_grad_(False)
    for p in (model.token_embedding.weight, model.positional_embedding, model.text_projection,
              *model.ln_final.parameters()):
        p.requires_grad_(False)
    # random text embeddings of the classes are close (cosine 0.86 on average, 0.95 at most): a fixed scale of 100,
    # CLIP's ceiling, keeps their logits apart
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    model.logit_scale.requires_grad_(False)
    model.eval()
    classes = class_embeddings()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        idx = torch.randint(len(x), (args.batch_size,), generator=g)
        images = (x[idx].float() / 255 - mean) / std
        img = F.normalize(model.encode_image(images), dim=-1)
        loss = F.cross_entropy(model.logit_scale.exp() * img @ classes.T, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / "open_clip_model.safetensors"))
    xt, yt = render("test", 600, None)
    with torch.no_grad():
        img = F.normalize(model.encode_image((xt.float() / 255 - mean) / std), dim=-1)
    txt = class_embeddings()
    acc = float(((img @ txt.T).argmax(1) == yt).float().mean())
    print(json.dumps({"test_top1_at_64px": acc, "train_seconds": round(time.time() - t0)}))


if __name__ == "__main__":
    main()
