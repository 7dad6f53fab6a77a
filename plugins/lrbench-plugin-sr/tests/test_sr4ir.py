"""SR4IR: CQMix masks, where TDP gradients go, the alternate schedule, baselines, the method and its artifact."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pytest
import torch
from lrbench_sr.quality import SRDown
from lrbench_sr.sr4ir import MODES, SR4IRConfig, SR4IRMethod, SR4IRTrainer, TaskNet, cqmix, make_lr
from PIL import Image

from lrbench.builtin.degradations import HR
from lrbench.builtin.toyworld import ToyWorld
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.models import ModelAdapter
from lrbench.registry import LrbenchError

# timm's test_resnet (0.4M parameters) stands in for ResNet-18: same code path, CPU-sized
TINY = dict(
    sr_options={"num_feat": 8, "num_block": 1},
    task_weights=None,
    hr_size=16,
    batch_size=4,
    epochs=2,
    tdp_warmup_epochs=1,
    task_arch="timm:test_resnet",
)


def trainer(**kw) -> SR4IRTrainer:
    return SR4IRTrainer(SR4IRConfig(**{**TINY, **kw}), num_classes=3)


def batch(n=4, size=16):
    hr = torch.rand(n, 3, size, size)
    return hr, make_lr(hr, 4), torch.arange(n) % 3


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_defaults_are_the_authors_recipe():
    """options/cls/CUB200/014_SR4IR_edsr_x4.yml: EDSR-baseline, ResNet18 IMAGENET1K_V1, 224 crops of 256, 200 epochs
    with a 20-epoch warm-up, batch 128, AdamW 1e-4 (no weight decay) / SGD 3e-2, eta_min 1e-6 / 1e-4, CE weights 0.34."""
    cfg = SR4IRConfig()
    assert (cfg.arch, cfg.variant, cfg.task_arch, cfg.task_weights) == ("edsr", "baseline", "resnet18", "IMAGENET1K_V1")
    assert (cfg.hr_size, cfg.resize_to, cfg.epochs, cfg.tdp_warmup_epochs, cfg.batch_size) == (224, 256, 200, 20, 128)
    assert (cfg.sr_lr, cfg.sr_weight_decay, cfg.sr_eta_min) == (1e-4, 0.0, 1e-6)
    assert (cfg.task_lr, cfg.momentum, cfg.weight_decay, cfg.task_eta_min) == (3e-2, 0.9, 1e-4, 1e-4)
    assert (cfg.ce_weight, cfg.tdp_weight, cfg.cqmix_patches) == (0.34, 1.0, 16)
    assert cfg.hr_view.resize == 256 and cfg.hr_view.crop == 224 and cfg.hr_view.interpolation == "bilinear"


def test_task_network_is_torchvision_resnet18_layer4():
    net = TaskNet("resnet18", num_classes=5, weights=None).eval()
    x = torch.rand(2, 3, 64, 64)
    r = net.net
    with torch.no_grad():
        feats = net.features(x)
        stem = r.maxpool(r.relu(r.bn1(r.conv1((x - net.mean) / net.std))))
        manual = r.layer4(r.layer3(r.layer2(r.layer1(stem))))
        assert torch.allclose(net(x), r((x - net.mean) / net.std), atol=1e-6)  # the head is torchvision's own
    assert feats.shape == (2, 512, 2, 2)  # layer4, before pooling
    assert torch.allclose(feats, manual)


def test_pretrained_task_network_keeps_all_but_fc(monkeypatch):
    """IMAGENET1K_V1 weights are loaded into every layer; fc (1000 ImageNet classes) is new, sized for the dataset."""
    import torchvision
    from lrbench_sr import sr4ir

    torch.manual_seed(3)
    imagenet = torchvision.models.resnet18().state_dict()
    asked = []
    monkeypatch.setattr(sr4ir, "_pretrained_state", lambda arch, tag: asked.append((arch, tag)) or imagenet)
    net = TaskNet("resnet18", num_classes=12, weights="IMAGENET1K_V1").net.state_dict()
    assert asked == [("resnet18", "IMAGENET1K_V1")]
    for k, v in imagenet.items():
        if k.startswith("fc."):
            assert net[k].shape[0] == 12
        else:
            assert torch.equal(net[k], v), k
    with pytest.raises(LrbenchError, match="task_weights: null"):
        SR4IRConfig(task_arch="timm:test_resnet", task_weights="IMAGENET1K_V1")


def test_offline_pretrained_weights_refuse_with_a_way_out(monkeypatch):
    import torchvision

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(LrbenchError, match=r"resnet18-f37072fd.pth.*task_weights: null"):
        TaskNet("resnet18", num_classes=3, weights="IMAGENET1K_V1")


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


def test_phase2_three_passes_with_batchnorm_statistics_per_pass():
    """The authors run T three times (SR, HR, CQMix), so BatchNorm normalises each view with its own batch statistics and
    its running mean moves three times: r = 0.9^3 r0 + 0.1 (0.9^2 m_sr + 0.9 m_hr + m_cqmix) (momentum 0.1)."""
    t = trainer()
    hr, lr, y = batch()
    sr_before, task_before = snapshot(t.sr), snapshot(t.task)
    bn = next(m for m in t.task.modules() if isinstance(m, torch.nn.BatchNorm2d))
    r0 = bn.running_mean.clone()
    means = []
    bn.register_forward_pre_hook(lambda m, i: means.append(i[0].detach().mean(dim=(0, 2, 3))))
    seen = []
    t.task.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    t.task_opt = torch.optim.SGD(t.task.parameters(), lr=0.1)
    t.task_step(hr, lr, y, "sr4ir")
    assert seen == [4, 4, 4]  # SR, HR and CQMix, one pass each
    m_sr, m_hr, m_mix = means
    assert torch.allclose(bn.running_mean, 0.729 * r0 + 0.1 * (0.81 * m_sr + 0.9 * m_hr + m_mix), atol=1e-6)
    one_pass = 0.9 * r0 + 0.1 * (m_sr + m_hr + m_mix) / 3  # what a single concatenated batch would give
    assert not torch.allclose(bn.running_mean, one_pass, atol=1e-4)
    assert changed(task_before, t.task) and not changed(sr_before, t.sr)
    t2 = trainer(cqmix=False)
    t2.task_opt = torch.optim.SGD(t2.task.parameters(), lr=0.1)
    t2.task.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    t2.task_step(hr, lr, y, "sr4ir")
    assert seen[3:] == [4, 4]


def test_phase2_feeds_unclamped_sr_to_the_task_network():
    """The authors classify ``net_sr(lr)`` as it comes out (no clamp), in training and at test time."""
    t = trainer()
    with torch.no_grad():
        for p in t.sr.parameters():
            p.fill_(0.05)  # an SR output far outside [0, 1]
    hr, lr, y = batch()
    inputs = []
    t.task.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach()))
    t.task_opt = torch.optim.SGD(t.task.parameters(), lr=0.0)
    t.task_step(hr, lr, y, "sr4ir")
    assert inputs[0].abs().max() > 1.5
    assert torch.equal(inputs[0], t.super_resolve(lr).detach())
    assert torch.equal(t.recognition_input(lr), inputs[0])


def test_alternate_schedule_and_warmup():
    images = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    labels = torch.arange(8) % 3
    t = trainer(epochs=2, tdp_warmup_epochs=1)
    t.fit(images, labels)
    phases = [h["phase"] for h in t.history]
    assert phases == ["sr", "task"] * 4  # 2 epochs x 2 batches, SR then task each iteration
    sr_steps = [h for h in t.history if h["phase"] == "sr"]
    assert ["tdp" in h for h in sr_steps] == [False, False, True, True]  # TDP only after the warm-up epoch


def test_cosine_restart_schedule_restarts_at_the_end_of_the_warmup():
    """BasicSR's CosineAnnealingRestartLR per iteration, periods [warm-up, rest] (2 and 6 steps here: 4 epochs of 2
    batches, warm-up 1 epoch): lr(t) = eta + (base - eta) (1 + cos(pi (t - restart) / period)) / 2, the boundary step
    still in the first period (eta_min), the next one restarted. SR: base 1e-4, eta 1e-6; T: base 3e-2, eta 1e-4."""
    images = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    t = trainer(epochs=4, tdp_warmup_epochs=1)
    t.fit(images, torch.arange(8) % 3)
    lr_task = [h["lr_task"] for h in t.history if h["phase"] == "task"]
    lr_sr = [h["lr_sr"] for h in t.history if h["phase"] == "sr"]
    expected_task = [3e-2, 1.505e-2, 1e-4, 2.799708e-2, 2.2525e-2, 1.505e-2, 7.575e-3, 2.102920e-3]
    expected_sr = [1e-4, 5.05e-5, 1e-6, 9.336826e-5, 7.525e-5, 5.05e-5, 2.575e-5, 7.631743e-6]
    assert lr_task == pytest.approx(expected_task, rel=1e-6)
    assert lr_sr == pytest.approx(expected_sr, rel=1e-6)
    # a baseline stage is one period over all its steps, eta_min 1e-4 for T
    b = trainer(mode="lr_t", epochs=2)
    b.fit(images, torch.arange(8) % 3)
    assert [h["lr_task"] for h in b.history] == pytest.approx([3e-2, 2.5621246e-2, 1.505e-2, 4.4787536e-3], rel=1e-6)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("lr_t", ["task"] * 2),
        ("hr_t", ["task"] * 2),
        ("s_t", ["sr"] * 2 + ["task"] * 2),
        ("t_s", ["task"] * 2 + ["sr"] * 2),
        ("s_plus_t", ["joint"] * 2),
    ],
)
def test_baseline_schedules(mode, expected):
    images = torch.randint(0, 256, (4, 3, 18, 18), dtype=torch.uint8)
    t = trainer(mode=mode, epochs=2)
    t.fit(images, torch.arange(4) % 3)
    assert [h["phase"] for h in t.history] == expected
    if mode == "t_s":
        assert all("ce" in h for h in t.history if h["phase"] == "sr")  # S trained through frozen T
    if mode in ("lr_t", "hr_t"):
        assert {h["inputs"] for h in t.history} == {mode[:2]}
    assert t.recognition_input(make_lr(torch.rand(2, 3, 16, 16), 4)).shape == (2, 3, 16, 16)


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

    ctx = MethodContext(
        device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path), dataset=dataset, log=logging.getLogger("test")
    )
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


def _method_context(tmp_path) -> MethodContext:
    return MethodContext(
        device=torch.device("cpu"),
        artifacts=ArtifactStore(tmp_path),
        dataset=lambda name, **params: ToyWorld(**params),
        log=logging.getLogger("test"),
    )


@pytest.mark.parametrize("mode", ["sr4ir", "hr_t"])
def test_evaluation_runs_the_authors_test_protocol_on_both_paths(tmp_path, mode):
    """Through the core's pipeline, a trained pair sees the authors' test images: the 224 px toy image is resized
    (shorter side to hr_size x 256/224, bilinear) and center-cropped to hr_size; ``srdown@4`` makes the LR image from
    that crop (torch bicubic 1/4, no antialias, 8-bit), the SR network gets it, and the task network gets its output;
    the ``hr`` condition gives the crop itself to the task network. Reference and fast path give the same pixels."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from lrbench.tasks import RunContext, iter_condition_batches

    train = {**TINY, "mode": mode, "epochs": 1, "dataset": {"name": "toyworld", "split": "train", "n": 4}}
    model = SR4IRMethod(train=train).apply(Placeholder(), _method_context(tmp_path))
    dataset = ToyWorld(split="test", n=3)
    conditions = [SRDown(4), HR()]
    seen: list[torch.Tensor] = []
    model.trainer.sr.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    inputs = {}
    for fast in (False, True):
        ctx = RunContext(batch_size=3, fast_path=fast)
        inputs[fast] = next(iter_condition_batches(model, dataset, conditions, ctx))[1]
    # the authors' HR test image and its LR image, by hand
    hr = torch.stack(
        [TF.to_tensor(TF.center_crop(TF.resize(dataset.load(i), 18, InterpolationMode.BILINEAR), 16)) for i in range(3)]
    )
    lr = (
        torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="bicubic", align_corners=False).clamp(0, 1) * 255
    ).round() / 255
    assert inputs[False]["hr"].shape == (3, 3, 16, 16)
    assert torch.allclose(inputs[False]["hr"], hr, atol=1e-6)  # HR: the crop itself, no SR in front of T
    for fast in (False, True):
        assert torch.allclose(inputs[fast]["srdown@4"], inputs[False]["srdown@4"], atol=1e-6)
        assert torch.allclose(inputs[fast]["hr"], hr, atol=1e-6)
    if mode == "sr4ir":
        assert [x.shape[-1] for x in seen] == [4, 4]  # one LR batch per path, 4 px (16 / 4)
        for x in seen:
            assert torch.allclose(x, lr, atol=1e-6)
    else:  # the T-only modes bring LR to hr_size by bilinear upsampling (align_corners, as nn.UpsamplingBilinear2d)
        up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=True)
        assert torch.allclose(inputs[False]["srdown@4"], up, atol=1e-6)


def test_init_pair_is_trained_once_and_starts_both_networks(tmp_path):
    """``init`` (the stand-in for DIV2K / ImageNet weights): the init pair is trained once, stored, and every pair
    naming it starts from its SR and task weights (with learning rates 0 the weights stay exactly the init's)."""
    ctx = _method_context(tmp_path)
    init = {"mode": "hr_t", "epochs": 1, "sr_pretrain_epochs": 1, "task_weights": None}
    frozen = {"sr_lr": 0.0, "task_lr": 0.0, "sr_eta_min": 0.0, "task_eta_min": 0.0}
    data = {"dataset": {"name": "toyworld", "split": "train", "n": 8}}
    trains = [{**TINY, **data, **frozen, "epochs": 1, "seed": seed, "init": init} for seed in (0, 1)]
    pairs = [SR4IRMethod(train=train).apply(Placeholder(), ctx) for train in trains]
    assert len(list(tmp_path.rglob("pair.pt"))) == 3  # one init pair, two pairs started from it
    resolved = asdict(SR4IRConfig(**trains[0]).init_config())  # networks, data and sizes inherited
    assert (resolved["sr_options"], resolved["hr_size"], resolved["batch_size"]) == (TINY["sr_options"], 16, 128)
    init_pair = SR4IRMethod(train=resolved).apply(Placeholder(), ctx)
    assert len(list(tmp_path.rglob("pair.pt"))) == 3  # the init pair was stored, not trained again
    for pair in pairs:
        for net in ("sr", "task"):
            mine, theirs = getattr(pair.trainer, net).state_dict(), getattr(init_pair.trainer, net).state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine if "running" not in k and "num_batches" not in k)
    with pytest.raises(LrbenchError, match="same networks"):
        SR4IRConfig(**{**TINY, "init": {"task_arch": "resnet18", "task_weights": None}})
    with pytest.raises(LrbenchError, match="task_weights: null"):
        SR4IRConfig(init={"mode": "hr_t"})
