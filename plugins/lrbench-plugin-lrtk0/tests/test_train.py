"""Training: the authors' recipe (optimiser, schedule, logit scale, sampler, per-sample LR sizes, crops), frozen backbone,
loss goes down, deterministic resume."""

from __future__ import annotations

import json
import math

import lrbench_lrtk0.train as train_mod
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lrbench_lrtk0.tokens import TokenInjector, find_vit, make_tokens
from lrbench_lrtk0.train import (
    CaptionedFolder,
    StepSchedule,
    TrainConfig,
    _Views,
    caption_groups,
    default_images_per_caption,
    distill_loss,
    lr_copy,
    lr_lambda,
    lr_sizes,
    make_optimizer,
    random_resized_box,
    train_tokens,
)
from lrtk0_testing import IMAGE_SIZE, TinyEvaAdapter
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from lrbench.builtin.toyworld import ToyWorld
from lrbench.models import Preprocess

BUCKETS = [[4, 8], [8, 16], [16, 32]]  # the paper's buckets scaled to the 32 px tiny model


def _cfg(**kw) -> TrainConfig:
    base = dict(
        data="toyworld",
        steps=6,
        batch_size=6,
        lr=5e-2,
        warmup_steps=1,
        buckets=BUCKETS,
        num_workers=0,
        checkpoint_every=1,
    )
    return TrainConfig.from_dict(base | kw)


def _views(n: int = 8) -> torch.Tensor:
    data = _Views(ToyWorld("train", n), BUCKETS, Preprocess(image_size=IMAGE_SIZE), "random", seed=0)
    return torch.stack([data[(0, i, i)] for i in range(n)]).float() / 255


def test_training_reduces_loss_and_keeps_backbone_bit_identical(adapter):
    before = {k: v.clone() for k, v in adapter.module.state_dict().items()}
    flags = [p.requires_grad for p in adapter.module.parameters()]
    lay = find_vit(adapter.module)
    injector = TokenInjector(lay, make_tokens(lay, init="authors"))
    views = _views()
    with torch.no_grad():
        loss0 = float(distill_loss(adapter, injector, views, 1 / 0.07))
    result = train_tokens(
        adapter, injector, _cfg(), source=ToyWorld("train", 24), seed=0, device=torch.device("cpu"), progress=False
    )
    with torch.no_grad():
        loss1 = float(distill_loss(adapter, injector, views, 1 / 0.07))
    assert len(result.losses) == 6
    assert loss1 < 0.9 * loss0, (loss0, loss1)
    after = adapter.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # text tower included
    assert [p.requires_grad for p in adapter.module.parameters()] == flags


def test_loss_uses_the_given_scale_hand_computed(adapter):
    """Two images, HR view only, zero tokens (student = teacher): each direction's cross-entropy is
    log(1 + exp(s (c - 1))) with c the cosine of the two teacher features and s the logit scale."""
    lay = find_vit(adapter.module)
    injector = TokenInjector(lay, make_tokens(lay))
    views = _views(2)[:, :1]
    with torch.no_grad():
        t = F.normalize(adapter.encode_image(adapter.prepare_tensor(views[:, 0])), dim=-1)
        c = float(t[0] @ t[1])
        assert -0.9 < c < 0.9
        for s in (1.0, 3.0):
            expected = math.log1p(math.exp(s * (c - 1)))
            assert float(distill_loss(adapter, injector, views, s)) == pytest.approx(expected, rel=1e-4)


def test_new_logit_scale_starts_at_1_over_0_07_and_learns(adapter):
    lay = find_vit(adapter.module)
    adapter.logit_scale = 100.0  # a pretrained CLIP's; training must not start from it
    learned = train_tokens(
        adapter,
        TokenInjector(lay, make_tokens(lay, init="authors")),
        _cfg(steps=2),
        source=ToyWorld("train", 12),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    fixed = train_tokens(
        adapter,
        TokenInjector(lay, make_tokens(lay, init="authors")),
        _cfg(steps=2, train_logit_scale=False),
        source=ToyWorld("train", 12),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    assert fixed.logit_scale == pytest.approx(1 / 0.07, rel=1e-6)
    assert learned.logit_scale != pytest.approx(1 / 0.07, rel=1e-6)
    assert fixed.config["logit_scale"] == pytest.approx(1 / 0.07)


def test_recipes_per_family_resolve_and_build_the_optimiser(adapter):
    eva = TrainConfig.from_dict({"data": "x"}).resolved(find_vit(TinyEvaAdapter().module))
    assert {
        k: eva[k]
        for k in (
            "recipe",
            "optimizer",
            "lr",
            "logit_scale_lr",
            "weight_decay",
            "betas",
            "eps",
            "warmup_steps",
            "grad_clip",
            "batch_size",
            "epochs",
            "images_per_caption",
        )
    } == {
        "recipe": "eva",
        "optimizer": "lamb",
        "lr": 2e-4,
        "logit_scale_lr": 5e-4,
        "weight_decay": 0.05,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "warmup_steps": 2000,
        "grad_clip": 5.0,
        "batch_size": 8,
        "epochs": 200,
        "images_per_caption": 4,
    }
    lay = find_vit(adapter.module)
    oc = TrainConfig.from_dict({"data": "x", "lr": 1e-3, "grad_clip": 0}).resolved(lay)
    assert (
        oc["recipe"],
        oc["optimizer"],
        oc["lr"],
        oc["weight_decay"],
        oc["betas"],
        oc["eps"],
        oc["grad_clip"],
        oc["batch_size"],
        oc["epochs"],
    ) == ("open_clip", "adamw", 1e-3, 0.2, [0.9, 0.98], 1e-6, None, 128, 10)
    from timm.optim import Lamb

    tokens = make_tokens(lay)
    scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    opt = make_optimizer(tokens, scale, eva)
    assert isinstance(opt, Lamb) and opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups] == [
        (2e-4, 0.05, 2),
        (5e-4, 0.0, 1),
    ]
    assert isinstance(make_optimizer(tokens, scale, oc), torch.optim.AdamW)


def test_warmup_cosine_schedule_hand_computed():
    """The authors' warmup_cosine_lr: base * (s + 1) / warmup, then base * (1 + cos(pi (s - warmup) / (total -
    warmup))) / 2."""
    f = lr_lambda(total=10, warmup=4)
    assert [f(s) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert f(4) == pytest.approx(1.0) and f(7) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)
    assert f(5) == pytest.approx((1 + math.cos(math.pi / 6)) / 2)


def test_lr_sizes_are_drawn_per_sample_in_buckets():
    draws = np.array([lr_sizes([[16, 32], [32, 64], [64, 128]], 0, s, slot) for s in range(10) for slot in range(30)])
    for j, (lo, hi) in enumerate([(16, 32), (32, 64), (64, 128)]):
        assert draws[:, j].min() == lo and draws[:, j].max() == hi - 1  # [lo, hi), every value reachable
    one_step = np.array([lr_sizes([[16, 32]], 0, 3, slot) for slot in range(32)])
    assert len(np.unique(one_step)) > 5  # images of one batch get different sizes
    assert lr_sizes([[16, 32]], 5, 7, 2) == lr_sizes([[16, 32]], 5, 7, 2)


def test_lr_copy_is_the_authors_square_squash_and_back():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    out = lr_copy(image, 10)
    assert out.size == (50, 30)
    ref = image.resize((10, 10), Image.BICUBIC).resize((50, 30), Image.BICUBIC)  # EVA data_train.py line 766
    assert np.array_equal(np.asarray(out), np.asarray(ref))


def test_random_crops_are_independent_per_view_and_follow_random_resized_crop():
    rng = np.random.default_rng(0)
    boxes = np.array([random_resized_box(224, 224, rng) for _ in range(4000)])
    area = boxes[:, 2] * boxes[:, 3] / 224**2
    aspect = boxes[:, 3] / boxes[:, 2]
    torch.manual_seed(0)
    ref = np.array(
        [T.RandomResizedCrop.get_params(torch.empty(3, 224, 224), [0.9, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)]
    )
    ref_area = ref[:, 2] * ref[:, 3] / 224**2  # torchvision's own draws: the same distribution (means within 0.003)
    assert area.min() >= 0.89 and area.max() <= 1.0 and area.mean() == pytest.approx(ref_area.mean(), abs=0.003)
    assert aspect.min() >= 0.74 and aspect.max() <= 1.34
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 224).all()
    source = ToyWorld("train", 2)
    item = _Views(source, BUCKETS, Preprocess(image_size=IMAGE_SIZE), "random", seed=0)[(5, 1, 1)]
    assert item.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE) and item.dtype == torch.uint8
    rng = np.random.default_rng([0, 5, 1, 2])
    image = source.load(1)
    top, left, h, w = random_resized_box(224, 224, rng)
    hr = TF.pil_to_tensor(
        TF.resized_crop(image, top, left, h, w, [IMAGE_SIZE, IMAGE_SIZE], interpolation=TF.InterpolationMode.BICUBIC)
    )
    assert torch.equal(item[0], hr)
    second = random_resized_box(224, 224, rng)
    assert second != (top, left, h, w)  # the first LR view got its own crop
    sizes = lr_sizes(BUCKETS, 0, 5, 1)
    lr = TF.pil_to_tensor(
        TF.resized_crop(
            lr_copy(image, sizes[0]), *second, [IMAGE_SIZE, IMAGE_SIZE], interpolation=TF.InterpolationMode.BICUBIC
        )
    )
    assert torch.equal(item[1], lr)
    center = _Views(source, BUCKETS, Preprocess(image_size=IMAGE_SIZE), "center", seed=0)[(5, 1, 1)]
    expected = TF.pil_to_tensor(
        TF.center_crop(
            TF.resize(image, IMAGE_SIZE, interpolation=TF.InterpolationMode.BICUBIC), [IMAGE_SIZE, IMAGE_SIZE]
        )
    )
    assert torch.equal(center[0], expected)


def test_identity_sampler_hand_computed():
    """Captions a x 8, b x 5, c x 3, k = 4: a gives two runs of 4, b one (its fifth image dropped this epoch), c one
    (padded with a repeat, as the authors' np.random.choice(replace=True)): 16 items, batches of 8 = 2 runs."""
    captions = ["a"] * 8 + ["b"] * 5 + ["c"] * 3
    groups = caption_groups(captions)
    assert [len(g) for g in groups] == [8, 5, 3]
    sched = StepSchedule(groups, batch_size=8, per_caption=4, seed=0)
    assert (sched.epoch_len, sched.steps_per_epoch) == (16, 2)
    for step in range(4):
        items = sched.items(step)
        runs = [[captions[i] for i in items[j : j + 4]] for j in (0, 4)]
        assert all(len(set(r)) == 1 for r in runs), runs
    epoch0 = sched.items(0) + sched.items(1)
    assert sorted(i for i in epoch0 if captions[i] == "a") == list(range(8))
    assert sum(captions[i] == "c" for i in epoch0) == 4  # 4 draws with replacement from c's 3 images
    assert sched.items(2) + sched.items(3) != epoch0  # a new order every epoch
    assert StepSchedule(groups, 8, 4, 0).items(3) == sched.items(3)  # a function of (seed, step)
    assert sched.total_steps(None, 2.5) == 5
    with pytest.raises(Exception, match="not a multiple"):
        StepSchedule(groups, batch_size=6, per_caption=4, seed=0)
    assert default_images_per_caption(captions, 4) == 1  # c has only 3: uniform sampling by default
    assert default_images_per_caption(["a"] * 4 + ["b"] * 30, 4) == 4
    assert default_images_per_caption(["a"] * 4 + [None] * 4, 4) == 1


def test_training_batches_hold_images_per_caption(adapter, tmp_path, monkeypatch):
    folder = tmp_path / "gen"
    rows = []
    for i in range(8):
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        ToyWorld("train", 8).load(i).save(folder / f"c{i % 2}" / f"{i}.png")
        rows.append({"file_name": f"c{i % 2}/{i}.png", "caption": f"caption {i % 2}"})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    source = CaptionedFolder(folder)
    assert source.captions == [r["caption"] for r in sorted(rows, key=lambda r: r["file_name"])]
    batches = []
    real = train_mod.distill_loss

    def spy(model, injector, views, *a, **k):
        batches.append(views.shape[0])
        return real(model, injector, views, *a, **k)

    seen = []
    monkeypatch.setattr(train_mod, "distill_loss", spy)
    monkeypatch.setattr(
        train_mod.StepSchedule,
        "items",
        lambda self, s, f=train_mod.StepSchedule.items: seen.append(f(self, s)) or seen[-1],
    )
    result = train_tokens(
        adapter,
        TokenInjector(find_vit(adapter.module), make_tokens(find_vit(adapter.module))),
        _cfg(batch_size=4, steps=3, images_per_caption=None),
        source=source,
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    assert result.config["images_per_caption"] == 4 and batches == [4, 4, 4]
    assert all(len({source.captions[i] for i in items}) == 1 for items in seen)


def test_captioned_folder_sidecars_and_identity(tmp_path):
    image = ToyWorld("train", 1).load(0)
    (tmp_path / "x").mkdir()
    image.save(tmp_path / "x" / "a.png")
    image.save(tmp_path / "b.jpg")
    (tmp_path / "x" / "a.txt").write_text("a red star\n")
    folder = CaptionedFolder(tmp_path)
    assert folder.captions == [None, "a red star"]  # sorted by relative path: b.jpg, x/a.png
    ident = folder.identity()
    (tmp_path / "x" / "a.txt").write_text("a blue star")
    assert CaptionedFolder(tmp_path).identity() != ident


def test_resume_after_interruption_reproduces_an_uninterrupted_run(adapter, tmp_path, monkeypatch):
    lay = find_vit(adapter.module)
    cfg = _cfg(steps=4, batch_size=4)
    source = ToyWorld("train", 8)
    straight = make_tokens(lay, init="authors")
    inj = TokenInjector(lay, straight)
    full = train_tokens(adapter, inj, cfg, source=source, seed=3, device=torch.device("cpu"), progress=False)
    inj.remove()

    resumed = make_tokens(lay, init="authors")
    inj = TokenInjector(lay, resumed)
    real = train_mod.lr_sizes

    def interrupt(buckets, seed, step, slot):
        if step == 2:
            raise KeyboardInterrupt
        return real(buckets, seed, step, slot)

    monkeypatch.setattr(train_mod, "lr_sizes", interrupt)
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_tokens(
            adapter, inj, cfg, source=source, seed=3, device=torch.device("cpu"), checkpoint=ckpt, progress=False
        )
    monkeypatch.setattr(train_mod, "lr_sizes", real)
    fresh = make_tokens(lay)  # a new process: nothing in memory but the checkpoint
    inj.remove()
    inj = TokenInjector(lay, fresh)
    rest = train_tokens(
        adapter, inj, cfg, source=source, seed=3, device=torch.device("cpu"), checkpoint=ckpt, progress=False
    )
    assert rest.losses == pytest.approx(full.losses, rel=1e-5)
    assert rest.logit_scale == pytest.approx(full.logit_scale, rel=1e-6)
    for a, b in zip(straight.parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_config_errors_name_the_key():
    with pytest.raises(Exception, match="'step'.*choices: data, n, steps"):
        TrainConfig.from_dict({"data": "toyworld", "step": 3})
    with pytest.raises(Exception, match="'data' is required"):
        TrainConfig.from_dict({"steps": 3})
    with pytest.raises(Exception, match="not both"):
        TrainConfig.from_dict({"data": "toyworld", "steps": 3, "epochs": 1})
    with pytest.raises(Exception, match="bucket"):
        TrainConfig.from_dict({"data": "toyworld", "buckets": [[32, 16]]})
    with pytest.raises(Exception, match="optimizer must be one of adamw, lamb, got 'sgd'"):
        TrainConfig.from_dict({"data": "toyworld", "optimizer": "sgd"})
    with pytest.raises(Exception, match="recipe must be one of auto, eva, open_clip"):
        TrainConfig.from_dict({"data": "toyworld", "recipe": "vit"})
