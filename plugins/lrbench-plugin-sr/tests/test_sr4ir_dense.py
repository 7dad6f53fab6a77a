"""SR4IR for segmentation and detection: the authors' recipes, where TDP gradients go, masks and boxes that follow
their pixels through crops, flips and CQMix, the detection warm-up, and pairs trained and evaluated through
``lrbench run``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from lrbench_sr.sr4ir import SR4IRConfig, SR4IRTrainer, crop_target, make_lr

SEG = {
    "task": "segmentation",
    "sr_options": {"num_feat": 8, "num_block": 1},
    "task_weights": None,
    "hr_size": 32,
    "resize": 32,
    "batch_size": 2,
    "epochs": 2,
    "tdp_warmup_epochs": 1,
}
DET = {
    **SEG,
    "task": "detection",
    "hr_size": 64,
    "resize": 64,
    "task_options": {"min_size": 64, "max_size": 64},
}


def trainer(base, **kw) -> SR4IRTrainer:
    return SR4IRTrainer(SR4IRConfig.from_dict({**base, **kw}), num_classes=4)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_task_defaults_are_the_authors_recipes():
    seg = SR4IRConfig.from_dict({"task": "segmentation"})  # options/seg/014_SR4IR_edsr_x4.yml
    assert (seg.task_arch, seg.task_weights, seg.epochs, seg.batch_size) == (
        "deeplabv3_mobilenet_v3_large",
        "IMAGENET1K_V1",
        100,
        16,
    )
    assert (seg.task_lr, seg.weight_decay, seg.tdp_warmup_epochs, seg.hr_size, seg.resize_to) == (
        2e-2,
        1e-6,
        10,
        480,
        520,
    )
    assert (seg.cqmix_patches, seg.ce_weight, seg.aux_weight, seg.sr_lr, seg.lr_warmup_epochs) == (
        64,
        0.34,
        0.5,
        1e-4,
        0,
    )
    det = SR4IRConfig.from_dict({"task": "detection"})  # options/det/014_SR4IR_edsr_x4.yml
    assert (det.task_arch, det.epochs, det.task_lr, det.weight_decay, det.tdp_warmup_epochs) == (
        "fasterrcnn_mobilenet_v3_large_fpn",
        30,
        2e-2,
        1e-4,
        3,
    )
    assert (det.lr_warmup_epochs, det.cqmix_patches, det.batch_size) == (1, 64, 16)
    assert SR4IRConfig.from_dict({}).kind == "classifier" and det.kind == "detector" and seg.kind == "segmenter"


@pytest.mark.parametrize("base", [SEG, DET], ids=["segmentation", "detection"])
def test_phase1_tdp_gradient_reaches_only_sr(base):
    t = trainer(base)
    size = base["hr_size"]
    hr = torch.rand(2, 3, size, size)
    sr_before, task_before = snapshot(t.sr), snapshot(t.task)
    parts = t.sr_step(hr, make_lr(hr, 4), tdp=True)
    assert parts["tdp"] > 0
    assert changed(sr_before, t.sr) and not changed(task_before, t.task)
    assert all(p.grad is None for p in t.task.parameters())
    # the TDP features are the authors': DeepLabV3's last backbone stage (C5), Faster R-CNN's FPN levels 0 and 1
    feats = t.task.tdp_features(hr)
    if base is SEG:
        assert [w for w, _ in feats] == [1.0] and feats[0][1].shape[1] == 960  # MobileNetV3-Large's last stage
    else:
        assert [w for w, _ in feats] == [0.5, 0.5] and all(f.shape[1] == 256 for _, f in feats)  # FPN channels


def test_segmentation_aux_head_learns_ten_times_faster():
    t = trainer(SEG)
    lrs = [g["lr"] for g in t.task_opt.param_groups]
    assert lrs == [2e-2, 2e-2, 2e-1]
    n_aux = sum(p.numel() for p in t.task.net.aux_classifier.parameters())
    assert sum(p.numel() for p in t.task_opt.param_groups[2]["params"]) == n_aux


def test_crops_and_flips_keep_masks_on_their_pixels():
    """A picture whose red channel encodes its class map: after every random crop and flip of an epoch, the target
    is still the class map of the pixels it comes with."""
    t = trainer(SEG, hr_size=16, batch_size=3)
    g = torch.Generator().manual_seed(1)
    masks = [torch.randint(0, 4, (20, 24), generator=g, dtype=torch.uint8) for _ in range(3)]
    images = [torch.stack([m * 60, torch.zeros_like(m), torch.full_like(m, 7)]) for m in masks]
    for hr, _, y in t._batches(images, masks):
        assert y.shape == (3, 16, 16) and y.dtype == torch.long
        assert torch.equal((hr[:, 0] * 255).round().long(), y * 60)


def test_crops_and_flips_keep_boxes_on_their_objects():
    """An object (a bright rectangle) and its box: the cropped, flipped box is still the tight box of the object's
    pixels in the crop, or gone when the crop misses it."""
    t = trainer(DET, hr_size=16, batch_size=1)
    image = torch.zeros(3, 24, 24, dtype=torch.uint8)
    image[:, 5:12, 9:20] = 255
    target = {"boxes": torch.tensor([[9.0, 5.0, 20.0, 12.0]]), "labels": torch.tensor([2])}
    seen = 0
    for _ in range(6):
        for hr, _, y in t._batches([image], [target]):
            ys, xs = torch.nonzero(hr[0, 0] > 0.5, as_tuple=True)
            if len(xs) == 0:
                assert len(y[0]["boxes"]) == 0
                continue
            seen += 1
            expect = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert y[0]["boxes"].tolist() == [expect] and y[0]["labels"].tolist() == [2]
    assert seen > 0
    flipped = crop_target(target, 0, 0, 24, True)
    assert flipped["boxes"].tolist() == [[4.0, 5.0, 15.0, 12.0]]


@pytest.mark.parametrize("base", [SEG, DET], ids=["segmentation", "detection"])
def test_phase2_cqmix_trains_every_view_on_the_same_targets(base, monkeypatch):
    """CQMix mixes SR and HR patches of one image: pixels stay where they are, so the one mask / box set of the
    image labels the SR, HR and mixed views alike (the authors pass ``target`` to all three)."""
    t = trainer(base)
    size = base["hr_size"]
    hr = torch.rand(2, 3, size, size)
    if base is SEG:
        y = torch.randint(0, 4, (2, size, size))
    else:
        y = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0]]), "labels": torch.tensor([1])} for _ in range(2)]
    seen = []
    loss = t.task.loss
    monkeypatch.setattr(t.task, "loss", lambda x, target: seen.append((x, target)) or loss(x, target))
    t.task_step(hr, make_lr(hr, 4), y, "sr4ir")
    assert len(seen) == 3 and all(target is y for _, target in seen)
    sr, h, mixed = (x for x, _ in seen)
    assert torch.equal(h, hr)
    from_sr = (mixed == sr).all(1)
    assert ((mixed == hr).all(1) | from_sr).all()
    cell = size // 8  # an 8 x 8 grid: each cell is wholly SR or wholly HR
    cells = from_sr.view(2, 8, cell, 8, cell).float().mean((2, 4))
    assert ((cells == 0) | (cells == 1)).all()


def test_detection_learning_rate_warms_up_over_the_first_epoch():
    t = trainer(DET, mode="hr_t", epochs=3, tdp_warmup_epochs=0, batch_size=2)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    target = {"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}
    t.fit([image] * 4, [target] * 4)  # 2 steps per epoch
    lrs = [h["lr_task"] for h in t.history]
    # LinearLR over the first epoch's 2 steps from 1/2 of 2e-2 (1/2, 3/4 of it), then one cosine period of (3 - 1)
    # epochs from the full rate
    assert lrs[:3] == pytest.approx([1e-2, 1.5e-2, 2e-2])
    assert lrs[3] < lrs[2] and lrs[-1] < lrs[3]


def _run(tmp_path, spec: dict) -> pd.DataFrame:
    from lrbench.cli import cli

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", str(path), "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    return pd.read_csv(out / "results.csv")


@pytest.mark.parametrize(
    "task,train,dataset,metric",
    [
        ("segmentation", SEG, "toyworld-seg", "miou"),
        ("detection", DET, "toyworld-det", "map"),
    ],
)
def test_sr4ir_pair_trains_and_is_evaluated_through_lrbench_run(tmp_path, task, train, dataset, metric):
    size = train["hr_size"]
    train = {**train, "epochs": 1, "dataset": {"name": dataset, "split": "train", "n": 4, "size": size}}
    spec = {
        "models": [{"name": "sr4ir", "task": task}],
        "methods": [{"name": "sr4ir", "train": train}],
        "datasets": [{"name": dataset, "n": 2, "size": size}],
        "conditions": ["hr", "srdown@4"],
    }
    df = _run(tmp_path, spec)
    assert set(df["task"]) == {task} and metric in set(df["metric"])
    assert (df["n"] == 2).all() and df["value"].between(0, 1).all()
    assert len(list((tmp_path / "cache").rglob("pair.pt"))) == 1
    # the stored pair, named as a model with method none, gives the same results
    pair = next((tmp_path / "cache").rglob("pair.pt"))
    spec2 = {**spec, "models": [{"name": "sr4ir", "task": task, "checkpoint": str(pair)}], "methods": ["none"]}
    (tmp_path / "again").mkdir()
    again = _run(tmp_path / "again", spec2)
    key = ["condition", "metric"]
    assert again.set_index(key)["value"].to_dict() == pytest.approx(df.set_index(key)["value"].to_dict())


def test_classification_pairs_keep_their_keys():
    """The options segmentation and detection brought are keyed only off their defaults: a classification pair stored
    before them keeps its artifact and cell keys (the toy proof's cache stays valid); a segmentation pair's key says
    its task."""
    from dataclasses import asdict

    cls = SR4IRConfig.from_dict({})
    assert set(cls.key()) == set(asdict(cls)) - {"task", "task_options", "aux_weight", "lr_warmup_epochs"}
    assert SR4IRConfig.from_dict({"aux_weight": 0.4}).key()["aux_weight"] == 0.4
    assert SR4IRConfig.from_dict({"task": "segmentation"}).key()["task"] == "segmentation"
