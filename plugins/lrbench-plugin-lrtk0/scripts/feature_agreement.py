"""How close a model's LR image embeddings come to its own HR embeddings, with and without trained LR tokens.

This is the quantity LR-TK0 trains (student LR features matched to the frozen teacher's HR features), measured on
held-out images: mean cosine(f_teacher(HR), f(LR)) at each size, for the vanilla model and with the tokens.

    python scripts/feature_agreement.py --model openclip:local-dir:/folder --tokens tokens.safetensors --n 300
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from lrbench_lrtk0.method import load_tokens
from lrbench_lrtk0.tokens import TokenInjector, find_vit
from lrbench_lrtk0.train import lr_copy
from torchvision.transforms import functional as TF

from lrbench.plugins import get_plugins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--dataset", default="toyworld")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--sizes", default="8,16,32")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plugins = get_plugins()
    model = plugins.registries["models"].create(args.model).eval()
    ds = plugins.registries["datasets"].create(args.dataset, split=args.split, n=args.n)
    tokens, _ = load_tokens(args.tokens)
    injector = TokenInjector(find_vit(model.module), tokens)
    size = model.preprocess.image_size

    def batch(lr: int | None) -> torch.Tensor:
        """The test images at the model's input size, each first made an LR copy (training's lr_copy) if lr is set."""
        images = [ds.load(i) for i in range(len(ds))]
        images = [lr_copy(im, lr) if lr else im for im in images]
        return torch.stack(
            [
                TF.to_tensor(
                    TF.center_crop(TF.resize(im, size, interpolation=TF.InterpolationMode.BICUBIC), [size, size])
                )
                for im in images
            ]
        )

    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        teacher = F.normalize(model.encode_image(model.prepare_tensor(batch(None))), dim=-1)
        for s in ["hr", *args.sizes.split(",")]:
            x = model.prepare_tensor(batch(None if s == "hr" else int(s)))
            base = F.normalize(model.encode_image(x), dim=-1)
            with injector.active():
                tok = F.normalize(model.encode_image(x), dim=-1)
            out[s] = {
                "cos_vanilla": float((base * teacher).sum(-1).mean()),
                "cos_tokens": float((tok * teacher).sum(-1).mean()),
            }
    print(json.dumps({"model": args.model, "n": len(ds), "agreement_with_teacher_hr": out}, indent=2))


if __name__ == "__main__":
    main()
