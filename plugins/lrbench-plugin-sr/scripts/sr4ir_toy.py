"""SR4IR vs its baselines on the toy world (CPU minutes): HR crops of ``--hr-size`` px, LR = HR / scale.

Every SR mode starts from the same SR initialisation (``--pretrain-epochs`` of L1 training on the training crops, in
place of the paper's DIV2K weights); the task network is timm's ResNet-18 (ImageNet weights when timm can fetch them,
random otherwise). Evaluation follows SR4IR: Resize(hr_size * 256 / 224) + CenterCrop(hr_size) of test images, LR made
by torch bicubic without antialias, top-1 of T on SR(LR) (bilinear up for the T-only modes), PSNR (RGB, border = scale).

    python scripts/sr4ir_toy.py --out results.json
"""
from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from lrbench.builtin.toyworld import ToyWorld
from torchvision.transforms import functional as TF

from lrbench_sr.sr4ir import SR4IRConfig, SR4IRTrainer, load_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=480)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--hr-size", type=int, default=64)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--pretrain-lr", type=float, default=1e-3, help="AdamW lr of the SR initialisation")
    ap.add_argument("--tdp-warmup-epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--sr-feat", type=int, default=32, help="EDSR channels (64 = EDSR-baseline)")
    ap.add_argument("--sr-blocks", type=int, default=4, help="EDSR residual blocks (16 = EDSR-baseline)")
    ap.add_argument("--modes", default="lr_t,s_t,sr4ir,sr4ir-notdp,sr4ir-nocqmix,t_s,s_plus_t,hr_t")
    ap.add_argument("--task-arch", default="resnet18", help="timm task network (test_resnet: a 0.4M-param ResNet)")
    ap.add_argument("--task-lr", type=float, default=3e-2)
    ap.add_argument("--pretrained", action="store_true", help="ImageNet ResNet-18 (needs the HF hub or its cache)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("sr4ir_toy.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base = SR4IRConfig(scale=args.scale, arch="edsr", variant="baseline",
                       sr_options={"num_feat": args.sr_feat, "num_block": args.sr_blocks}, pretrained=args.pretrained,
                       task_arch=args.task_arch, task_lr=args.task_lr,
                       dataset={"name": "toyworld", "split": "train", "n": args.n_train}, hr_size=args.hr_size,
                       epochs=args.epochs, batch_size=args.batch_size, tdp_warmup_epochs=args.tdp_warmup_epochs,
                       seed=args.seed)
    train = ToyWorld("train", n=args.n_train)
    images, labels = load_images(train, base.resize_to)
    test = ToyWorld("test", n=args.n_test)
    test_imgs, test_labels = load_images(test, base.resize_to)
    test_hr = TF.center_crop(test_imgs, [args.hr_size, args.hr_size]).float() / 255

    t0 = time.time()
    pre = SR4IRTrainer(replace(base, mode="s_t", sr_lr=args.pretrain_lr), train.num_classes)
    pre._reset_schedules(args.pretrain_epochs * (len(images) // args.batch_size), task=False)
    pre._stage(images, labels, args.pretrain_epochs, lambda e, hr, lr, y: pre.sr_step(hr, lr, tdp=False))
    ckpt = args.out.with_suffix(".sr_init.pth")
    buf = io.BytesIO()
    torch.save({"params": pre.sr.state_dict()}, buf)
    ckpt.write_bytes(buf.getvalue())
    print(f"SR init: {args.pretrain_epochs} epochs of L1 in {time.time() - t0:.0f}s", flush=True)

    results = {"args": {k: str(v) for k, v in vars(args).items()}, "config": asdict(base), "runs": {}}
    for name in args.modes.split(","):
        mode = name.split("-")[0]
        cfg = replace(base, mode=mode, sr_checkpoint=str(ckpt), tdp=name != "sr4ir-notdp",
                      cqmix=name != "sr4ir-nocqmix")
        t0 = time.time()
        trainer = SR4IRTrainer(cfg, train.num_classes)
        trainer.fit(images, labels)
        metrics = trainer.evaluate(test_hr, test_labels)
        metrics["train_s"] = round(time.time() - t0, 1)
        results["runs"][name] = metrics
        print(f"{name:15s} top1(LR) {metrics['top1_lr']:.3f}  top1(HR) {metrics['top1_hr']:.3f}  "
              f"PSNR {metrics['psnr']:.2f}  ({metrics['train_s']:.0f}s)", flush=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
