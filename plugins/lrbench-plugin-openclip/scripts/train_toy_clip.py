"""Train the toy CLIP on the toy world's train split and write the shipped ``toy_clip/`` folder.

Reproducible (seeded; the model is built, shuffled and trained from ``--seed``), CPU-only, a few minutes on 2 cores.
Training sees full-resolution images only (no low-resolution copies): the benchmark must show the drop at 16 / 8 px.
Captions are drawn every epoch from the toy world's own ("a large orange striped arrow on a grass background."):
the shape always, each other attribute with probability 1/2 (see ``sample_caption``); the loss is open_clip's
ClipLoss plus a prompt-classification term (``--shape-loss``: the image embedding must pick its shape among the class
prompts, the question zero-shot evaluation asks). After training the weights are stored in fp16 safetensors and the STORED weights are evaluated zero-shot on
the toy world test split (n=600) at hr and bicubic 64 / 32 / 16 / 8 through lrbench's own task.

    python plugins/lrbench-plugin-openclip/scripts/train_toy_clip.py            # writes lrbench_openclip/toy_clip/
    python plugins/lrbench-plugin-openclip/scripts/train_toy_clip.py --out /tmp/toy --epochs 1 --n-train 512
"""

from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import open_clip
import torch
from lrbench_openclip.adapter import load_openclip
from lrbench_openclip.toy import TOY_DIR, WEIGHTS_FILE, words_of, write_toy_folder
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lrbench.builtin.toyworld import BACKGROUNDS, COLOURS, SHAPES, TEMPLATES, TEXTURES, ToyWorld, render
from lrbench.models import OPENAI_MEAN, OPENAI_STD

CAPTION_WORDS = ("a", "an", "small", "large", "on", "background", ".")
#: web-style caption openings mixed into half the captions (CLIP's own data has them); the caption keeps its content
PREFIXES = ("a photo of ", "a drawing of ", "an image of ")


_TRAIN: ToyWorld | None = None
_SIZE = 0


def _init_worker(n: int, size: int) -> None:
    global _TRAIN, _SIZE
    _TRAIN, _SIZE = ToyWorld(split="train", n=n), size  # once per worker: building it labels all n items


def _render(i: int) -> tuple[np.ndarray, str]:
    assert _TRAIN is not None
    image, _, caption = render(_TRAIN._seed(i))
    # the model's own preprocessing resize (PIL bicubic, shorter side; toy images are square so no crop), done once
    image = TF.resize(image, _SIZE, interpolation=InterpolationMode.BICUBIC)
    return np.asarray(image, dtype=np.uint8), caption


def render_train(n: int, size: int, workers: int, cache: Path | None) -> tuple[torch.Tensor, list[str]]:
    """All train images at the model's input size as one uint8 (N, 3, size, size) tensor, rendered once (an epoch
    then costs no PIL work); ``cache`` keeps them in an .npz between runs (the toy world is deterministic)."""
    if cache is not None and cache.is_file():
        with np.load(cache) as npz:
            if npz["images"].shape[0] >= n and npz["images"].shape[-1] == size:
                return torch.from_numpy(npz["images"][:n]), [str(c) for c in npz["captions"][:n]]
        print(f"{cache} holds other images (count or size); rendering afresh", flush=True)
    with Pool(workers, initializer=_init_worker, initargs=(n, size)) as pool:
        items = pool.map(_render, range(n), chunksize=64)
    images = np.stack([im for im, _ in items]).transpose(0, 3, 1, 2).copy()
    captions = [c for _, c in items]
    if cache is not None:
        np.savez(cache, images=images, captions=np.array(captions))
    return torch.from_numpy(images), captions


def caption_parts(caption: str) -> dict[str, str]:
    """The attributes of a toy-world caption ("a {size} {colour} {texture} {shape} on a {background} background.")."""
    words = caption.rstrip(".").split()
    return {"size": words[1], "colour": words[2], "texture": words[3], "shape": words[4], "background": words[7]}


def sample_caption(parts: dict[str, str], rng: np.random.Generator) -> str:
    """A caption that always names the shape and each other attribute with probability 1/2, sometimes with a
    web-style opening. With every attribute always present, colour + texture + size + background tell the captions of a
    batch apart and the model never has to see shapes; dropping them makes the shape the one word always there."""
    words = [parts[k] for k in ("size", "colour", "texture") if rng.random() < 0.5] + [parts["shape"]]
    text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    if rng.random() < 0.5:
        text += f" on a {parts['background']} background"
    text += "."
    if rng.random() < 0.5:
        text = PREFIXES[int(rng.integers(len(PREFIXES)))] + text
    return text


def vocabulary() -> list[str]:
    """Every word of the toy world's captions and of its zero-shot prompts."""
    texts = [*SHAPES, *COLOURS, *TEXTURES, *BACKGROUNDS, *CAPTION_WORDS, *PREFIXES]
    texts += [t.replace("{c}", c) for t in TEMPLATES for c in SHAPES]
    return words_of(texts)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on gains, biases, embeddings and the logit scale (the usual CLIP recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_weights(model: torch.nn.Module, path: Path, args: argparse.Namespace, epochs_done: int) -> None:
    """fp16 safetensors, written to a temporary file and renamed so a stopped run never leaves half a file."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(
        state,
        str(tmp),
        metadata={
            "seed": str(args.seed),
            "n_train": str(args.n_train),
            "epochs": str(epochs_done),
            "batch_size": str(args.batch_size),
        },
    )
    tmp.replace(path)


def evaluate(folder: Path, n_test: int, batch_size: int) -> dict[str, float]:
    """Zero-shot top-1 of the stored model in ``folder`` on the toy world test split, through lrbench's own task."""
    from lrbench.builtin.degradations import HR, Resize
    from lrbench.builtin.tasks import ZeroShotClassification
    from lrbench.tasks import RunContext

    model = load_openclip(f"local-dir:{folder.resolve()}")
    conditions = [HR(), Resize(64), Resize(32), Resize(16), Resize(8)]
    outputs = ZeroShotClassification().run(
        model, ToyWorld(split="test", n=n_test), conditions, RunContext(batch_size=batch_size)
    )
    return {c: float((o["logits"].argmax(1) == o["labels"]).mean()) for c, o in outputs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=TOY_DIR, help="folder to write (default: the package's toy_clip/)")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50, help="linear warm-up steps before the cosine decay")
    ap.add_argument(
        "--shape-loss", type=float, default=1.0, help="weight of the prompt-classification term (0: captions only)"
    )
    ap.add_argument("--init", default="", help="safetensors weights to continue from (e.g. the shipped ones)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the train images")
    ap.add_argument("--cache", default="", help="npz file keeping the rendered train images between runs")
    ap.add_argument("--n-test", type=int, default=600, help="test items to evaluate (0: skip)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    cfg = write_toy_folder(out, vocabulary())
    (out / WEIGHTS_FILE).unlink(missing_ok=True)
    started = time.time()

    cache = Path(args.cache) if args.cache else None
    images, captions = render_train(args.n_train, cfg["vision_cfg"]["image_size"], args.workers, cache)
    parts = [caption_parts(c) for c in captions]
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out.resolve()}")
    if (tokenizer(captions) == 1).any():  # [UNK]: the vocabulary missed a caption word
        bad = sorted({w for c in captions for w in words_of([c]) if w not in set(vocabulary())})
        raise SystemExit(f"captions use words outside the vocabulary: {bad}")
    caption_rng = np.random.default_rng(args.seed)
    print(f"rendered {len(captions)} train images in {time.time() - started:.0f}s", flush=True)

    model = open_clip.create_model(f"local-dir:{out.resolve()}", load_weights=False)
    if args.init:
        from safetensors.torch import load_file

        model.load_state_dict({k: v.float() for k, v in load_file(args.init).items()})
    model.train()
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = args.n_train // args.batch_size
    total = steps_per_epoch * args.epochs

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        return 0.5 * args.lr * (1 + math.cos(math.pi * (step - args.warmup) / max(1, total - args.warmup)))

    # prompt classification: the image embedding must also pick its shape among "a {shape}." prompts, the way
    # zero-shot evaluation will ask; contrastive captions alone teach colour long before shape on this budget
    shape_tokens = tokenizer([t.replace("{c}", s) for s in SHAPES for t in TEMPLATES])
    shape_labels = torch.tensor([SHAPES.index(p["shape"]) for p in parts])
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(args.n_train, generator=gen)
        tokens = tokenizer([sample_caption(p, caption_rng) for p in parts])  # fresh captions every epoch
        running = []
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            x = (images[idx].float().div_(255) - mean) / std
            flip = torch.rand(len(idx), generator=gen) < 0.5  # captions say nothing about left and right
            x[flip] = x[flip].flip(-1)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            img_f, txt_f, scale = model(x, tokens[idx])
            loss = loss_fn(img_f, txt_f, scale)
            shape_acc = float("nan")
            if args.shape_loss > 0:
                cls = model.encode_text(shape_tokens, normalize=True).view(len(SHAPES), len(TEMPLATES), -1).mean(1)
                cls = torch.nn.functional.normalize(cls, dim=-1)
                shape_logits = scale * img_f @ cls.T
                loss = loss + args.shape_loss * torch.nn.functional.cross_entropy(shape_logits, shape_labels[idx])
                shape_acc = (shape_logits.argmax(1) == shape_labels[idx]).float().mean().item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # CLIP clamps the learned temperature at 100
                model.logit_scale.clamp_(0, math.log(100))
            running.append((loss.item(), shape_acc))
            step += 1
            if step % 20 == 0:
                recent = np.array(running[-20:])
                print(
                    f"step {step}/{total} loss {recent[:, 0].mean():.3f} train shape top-1 {recent[:, 1].mean():.3f} "
                    f"{time.time() - started:.0f}s",
                    flush=True,
                )
        print(
            json.dumps(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean([r[0] for r in running])),
                    "logit_scale": float(model.logit_scale.detach().exp()),
                    "elapsed_s": round(time.time() - started, 1),
                }
            ),
            flush=True,
        )

        save_weights(model, out / WEIGHTS_FILE, args, epoch + 1)  # every epoch: a stopped run keeps its last epoch

    train_s = time.time() - started
    print(f"trained in {train_s:.0f}s; weights {(out / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB", flush=True)
    if args.n_test > 0:
        top1 = evaluate(out, args.n_test, args.batch_size)
        print(
            json.dumps({"zero_shot_top1_toyworld_test": top1, "n_test": args.n_test, "train_seconds": round(train_s)})
        )


if __name__ == "__main__":
    main()
