"""SR4IR: CQMix masks, where TDP gradients go, the alternate schedule, baselines, the method and its artifact."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from lrbench.builtin.toyworld import ToyWorld
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.models import ModelAdapter
from lrbench.registry import LrbenchError
from lrbench_sr.sr4ir import MODES, SR4IRConfig, SR4IRMethod, SR4IRTrainer, TaskNet, cqmix, make_lr
from PIL import Image

# timm's test_resnet (0.4M parameters) stands in for ResNet-18: same code path, CPU-sized
TINY = dict(sr_options={"num_feat": 8, "num_block": 1}, pretrained=False, hr_size=16, batch_size=4, epochs=2,
            tdp_warmup_epochs=1, task_arch="test_resnet")


def trainer(**kw) -> SR4IRTrainer:
    return SR4IRTrainer(SR4IRConfig(**{**TINY, **kw}), num_classes=3)


def batch(n=4, size=16):
    hr = torch.rand(n, 3, size, size)
    return hr, make_lr(hr, 4), torch.arange(n) % 3


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_default_task_network_is_resnet18_layer4():
    cfg = SR4IRConfig(pretrained=False)
    assert (cfg.task_arch, cfg.arch, cfg.variant, cfg.cqmix_patches) == ("resnet18", "edsr", "baseline", 16)
    net = TaskNet("resnet18", num_classes=5, pretrained=False).eval()
    x = torch.rand(2, 3, 64, 64)
    r = net.net
    with torch.no_grad():
        feats = net.features(x)
        stem = r.maxpool(r.act1(r.bn1(r.conv1((x - net.mean) / net.std))))
        manual = r.layer4(r.layer3(r.layer2(r.layer1(stem))))
    assert feats.shape == (2, 512, 2, 2)  # layer4, before pooling
    assert torch.allclose(feats, manual)


def test_cqmix_patch_grid_and_sources():
    hr, sr = torch.zeros(64, 3, 64, 64), torch.ones(64, 3, 64, 64)
    mixed, mask = cqmix(hr, sr, patches=16, generator=torch.Generator().manual_seed(0))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mixed, mask.expand_as(mixed))  # SR where the mask is 1, HR elsewhere
    cells = mask[:, 0].reshape(64, 4, 16, 4, 16)  # 4 x 4 grid of 16 px patches, each constant
    assert torch.equal(cells.amin(dim=(2, 4)), cells.amax(dim=(2, 4)))
    frac = float(mask.mean())
    assert 0.4 < frac < 0.6  # 1024 cells, p = 0.5
    per_image = mask.mean(dim=(1, 2, 3))
    assert bool(((per_image > 0) & (per_image < 1)).any())  # images really mix both sources
    whole, m1 = cqmix(hr, sr, patches=1, generator=torch.Generator().manual_seed(1))
    per_image = m1.mean(dim=(1, 2, 3))
    assert set(per_image.tolist()) == {0.0, 1.0}  # P = 1: each image entirely HR or SR, both occur
    with pytest.raises(ValueError, match="square"):
        cqmix(hr, sr, patches=8)


def test_phase1_tdp_gradient_reaches_only_sr():
    t = trainer()
    hr, lr, _ = batch()
    sr_before, task_before = snapshot(t.sr), snapshot(t.task)
    parts = t.sr_step(hr, lr, tdp=True)
    assert parts["tdp"] > 0
    assert changed(sr_before, t.sr) and not changed(task_before, t.task)
    assert all(p.grad is None for p in t.task.parameters())
    assert all(p.requires_grad for p in t.task.parameters())  # unfrozen again for phase 2
    # TDP really shapes the SR update: same start, with and without TDP -> different SR gradients
    grads = []
    for tdp in (False, True):
        t2 = trainer()
        t2.sr_opt.step = lambda: None  # keep the weights: compare gradients only
        t2.sr_step(hr, lr, tdp=tdp)
        grads.append(torch.cat([p.grad.flatten() for p in t2.sr.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def test_phase2_updates_only_task_with_three_views():
    t = trainer()
    hr, lr, y = batch()
    sr_before, task_before = snapshot(t.sr), snapshot(t.task)
    seen = []
    t.task.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    t.task_step(hr, lr, y, "sr4ir")
    assert seen == [12]  # SR, HR and CQMix concatenated
    assert changed(task_before, t.task) and not changed(sr_before, t.sr)
    t2 = trainer(cqmix=False)
    t2.task.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    t2.task_step(hr, lr, y, "sr4ir")
    assert seen[-1] == 8


def test_alternate_schedule_and_warmup():
    images = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    labels = torch.arange(8) % 3
    t = trainer(epochs=2, tdp_warmup_epochs=1)
    t.fit(images, labels)
    phases = [h["phase"] for h in t.history]
    assert phases == ["sr", "task"] * 4  # 2 epochs x 2 batches, SR then task each iteration
    sr_steps = [h for h in t.history if h["phase"] == "sr"]
    assert ["tdp" in h for h in sr_steps] == [False, False, True, True]  # TDP only after the warm-up epoch


@pytest.mark.parametrize("mode,expected", [
    ("lr_t", ["task"] * 2), ("hr_t", ["task"] * 2), ("s_t", ["sr"] * 2 + ["task"] * 2),
    ("t_s", ["task"] * 2 + ["sr"] * 2), ("s_plus_t", ["joint"] * 2)])
def test_baseline_schedules(mode, expected):
    images = torch.randint(0, 256, (4, 3, 18, 18), dtype=torch.uint8)
    t = trainer(mode=mode, epochs=2)
    t.fit(images, torch.arange(4) % 3)
    assert [h["phase"] for h in t.history] == expected
    if mode == "t_s":
        assert all("ce" in h for h in t.history if h["phase"] == "sr")  # S trained through frozen T
    if mode in ("lr_t", "hr_t"):
        assert {h["inputs"] for h in t.history} == {mode[:2]}
    result = t.evaluate(torch.rand(4, 3, 16, 16), torch.arange(4) % 3)
    assert 0 <= result["top1_lr"] <= 1 and np.isfinite(result["psnr"])


def test_config_errors():
    assert set(MODES) == {"sr4ir", "hr_t", "lr_t", "s_t", "t_s", "s_plus_t"}
    with pytest.raises(LrbenchError, match="choices: sr4ir, hr_t"):
        SR4IRConfig(mode="joint")
    with pytest.raises(LrbenchError, match="square number"):
        SR4IRConfig(cqmix_patches=10)
    with pytest.raises(LrbenchError, match="unknown sr4ir train option.*epoch"):
        SR4IRMethod(train={"epoch": 3})


class Placeholder(ModelAdapter):
    kind = "classifier"

    def identity(self):
        return {"family": "placeholder"}


def test_method_trains_once_then_loads_artifact(tmp_path):
    calls = []

    def dataset(name, **params):
        calls.append((name, params))
        return ToyWorld(**params)

    ctx = MethodContext(device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path), dataset=dataset,
                        log=logging.getLogger("test"))
    train = {**TINY, "epochs": 1, "dataset": {"name": "toyworld", "split": "train", "n": 8}}
    model = SR4IRMethod(train=train).apply(Placeholder(), ctx)
    assert model.kind == "classifier" and len(model.classnames) == 12
    files = list(tmp_path.rglob("pair.pt"))
    assert len(files) == 1
    lr_images = [Image.new("RGB", (4, 4), (i * 40, 90, 200)) for i in range(3)]
    x = model.prepare(lr_images)
    assert x.shape == (3, 3, 16, 16)
    logits = model.classify(x)
    assert logits.shape == (3, 12)
    again = SR4IRMethod(train=train).apply(Placeholder(), ctx)  # same config and data: loaded, not retrained
    assert list(tmp_path.rglob("pair.pt")) == files
    assert torch.allclose(again.classify(again.prepare(lr_images)), logits, atol=1e-5)
    from_file = SR4IRMethod(checkpoint=str(files[0])).apply(Placeholder(), ctx)
    assert torch.allclose(from_file.classify(from_file.prepare(lr_images)), logits, atol=1e-5)


def test_training_set_keys_the_cells(tmp_path):
    """The cells of a trained pair follow its training images: another image in an imagefolder training set (same spec
    entry) gives another inputs identity; a checkpoint brings its own (hashed with the spec entry)."""
    from lrbench.builtin.datasets import imagefolder

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (20, 20), (200, 10, 10)).save(tmp_path / cls / "0.png")
    method = SR4IRMethod(train={**TINY, "dataset": {"name": "imagefolder", "root": str(tmp_path)}})
    dataset = lambda name, **params: imagefolder(**params)  # noqa: E731 (the run's dataset factory)
    before = method.inputs_identity(dataset)
    assert method.inputs_identity(dataset) == before
    Image.new("RGB", (20, 20), (10, 10, 200)).save(tmp_path / "b" / "1.png")
    assert method.inputs_identity(dataset) != before
    assert SR4IRMethod(checkpoint=str(tmp_path / "pair.pt")).inputs_identity(dataset) == {}
    with pytest.raises(LrbenchError, match="training dataset"):
        method.inputs_identity(None)
