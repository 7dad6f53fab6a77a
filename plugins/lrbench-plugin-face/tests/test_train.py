"""The training loop: recipes, samplers, loss terms, resumable checkpoints, the method's artifact cache."""

import json
import logging

import numpy as np
import pytest
import torch
from lrbench_face import plugin
from lrbench_face.methods import FaceTrainingMethod
from lrbench_face.models import face_iresnet
from lrbench_face.toyfaces import ToyFaces
from lrbench_face.train import RECIPES, FaceTrainer, ResolutionSampler, TrainConfig

from lrbench.methods import ArtifactStore, MethodContext
from lrbench.registry import LrbenchError


def tiny():
    torch.manual_seed(0)
    return face_iresnet("r18", base_width=4, image_size=16, embedding_size=16, layers=[1, 1, 1, 1])


class Cached(ToyFaces):
    def load(self, index):
        cache = self.__dict__.setdefault("_cache", {})
        if index not in cache:
            cache[index] = super().load(index)
        return cache[index].copy()


@pytest.fixture(scope="module")
def data():
    return Cached("train", identities=4, images=2)


def test_recipes_follow_the_papers():
    assert RECIPES["maug"].resolutions == (7, 14, 20) and RECIPES["maug"].probs == (1, 1, 2)
    assert (RECIPES["maug"].head, RECIPES["maug"].s, RECIPES["maug"].m) == ("cosface", 48.0, 0.4)
    assert RECIPES["st"].dist_weight == 25.0 and RECIPES["st-m1"].resolutions == (7, 14, 28, 56)
    assert TrainConfig("bt", resolution=9).recipe().resolutions == (9,)
    assert TrainConfig("maug", distance="l2").recipe().distance == "l2"
    with pytest.raises(LrbenchError, match="unknown train option"):
        TrainConfig.from_dict("st", {"epoch": 3})
    with pytest.raises(LrbenchError, match="choices: baseline"):
        TrainConfig("sst").recipe()


def test_sampler_probabilities_1_1_2():
    r = ResolutionSampler((7, 14, 20), (1, 1, 2))(40000, torch.Generator().manual_seed(0))
    freq = np.array([(r == s).float().mean().item() for s in (7, 14, 20)])
    np.testing.assert_allclose(freq, [0.25, 0.25, 0.5], atol=0.01)


@pytest.mark.parametrize(
    "strategy,terms",
    [
        ("baseline", {"ce"}),
        ("bt-m", {"ce"}),
        ("st", {"ce_hr", "ce_lr0", "dist0"}),
        ("st-m2", {"ce_hr"} | {f"{t}{k}" for t in ("ce_lr", "dist") for k in range(4)}),
        ("maug", {"ce_hr", "ce_lr0", "dist0"}),
    ],
)
def test_loss_terms_and_weights(strategy, terms):
    model = tiny()
    trainer = FaceTrainer(model.module, model.preprocess.tensor, 16, 5, TrainConfig(strategy), "cpu")
    total, parts = trainer.loss(torch.rand(6, 3, 112, 112), torch.tensor([0, 1, 2, 3, 4, 0]))
    assert set(parts) == terms
    r = trainer.recipe
    expected = (
        parts["ce"]
        if "ce" in parts
        else r.ce_hr * parts["ce_hr"]
        + sum(r.ce_lr * parts[k] for k in parts if k.startswith("ce_lr"))
        + r.dist_weight * sum(parts[k] for k in parts if k.startswith("dist"))
    )
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)


def test_training_defaults_are_the_papers_as_data():
    """Knoche et al. section 3: lr 0.01, /10 after epochs 9 and 13, 16 epochs, batch 128; the LogExp paper (MS1M):
    lr 0.01, /10 at 8 and 12, batch 256. Read from recipes.json; a train: option overrides one field only."""
    for strategy in ("baseline", "bt", "bt-m", "st", "st-m1", "st-m2"):
        cfg = TrainConfig(strategy)
        assert (cfg.lr, cfg.milestones, cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay) == (
            0.01,
            [9, 13],
            16,
            128,
            0.9,
            5e-4,
        )
    maug = TrainConfig("maug")
    assert (maug.lr, maug.milestones, maug.epochs, maug.batch_size) == (0.01, [8, 12], 16, 256)
    assert TrainConfig.from_dict("st", {"data": "x", "lr": 0.1}).milestones == [9, 13]
    trainer = FaceTrainer(tiny().module, tiny().preprocess.tensor, 16, 4, TrainConfig("bt", amp=False))
    schedule = []
    for epoch in range(16):
        trainer.epoch = epoch
        schedule.append(trainer.learning_rate())
    assert schedule == pytest.approx([0.01] * 9 + [0.001] * 4 + [0.0001] * 3)
    # the resolved defaults key the trained backbone and the method's cells
    method = FaceTrainingMethod("bt", train={"data": "x"})
    assert method.identity()["config"]["lr"] == 0.01 and method.identity()["config"]["milestones"] == [9, 13]


def test_fit_resumes_from_checkpoint(tmp_path, data):
    cfg = dict(batch_size=8, lr=0.01, milestones=[1, 1], amp=False)
    first = FaceTrainer(tiny().module, tiny().preprocess.tensor, 16, 4, TrainConfig("st", epochs=1, **cfg))
    first.fit(data, tmp_path)
    assert json.loads(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"])[0]["epoch"] == 1
    second = FaceTrainer(tiny().module, tiny().preprocess.tensor, 16, 4, TrainConfig("st", epochs=2, **cfg))
    history = second.fit(data, tmp_path)
    assert [h["epoch"] for h in history] == [1, 2]  # epoch 1 came from the checkpoint
    assert second.learning_rate() == pytest.approx(0.01 * 0.1**2)  # milestones at epochs 1 and 1 (of 2)


def test_method_trains_once_then_loads_artifact(tmp_path, data, caplog):
    ctx = MethodContext(device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path), dataset=lambda name, **kw: data)
    method = FaceTrainingMethod("maug", train={"dataset": "toyfaces", "epochs": 1, "batch_size": 8, "lr": 0.01})
    base = tiny()
    trained = method.apply(base, ctx)
    files = list(tmp_path.rglob("backbone.safetensors"))
    assert len(files) == 1 and (files[0].parent / "train.json").is_file()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(trained.encode_image(x), base.encode_image(x))  # the base model is untouched
        with caplog.at_level(logging.INFO, logger="lrbench"):
            again = method.apply(
                tiny(),
                MethodContext(
                    device=torch.device("cpu"),
                    artifacts=ArtifactStore(tmp_path),
                    dataset=lambda name, **kw: data,
                    log=logging.getLogger("lrbench"),
                ),
            )
        assert torch.allclose(again.encode_image(x), trained.encode_image(x), atol=1e-6)
    assert "loading trained backbone" in caplog.text
    assert trained.identity()["method"]["name"] == "face/maug"
    ckpt = FaceTrainingMethod("maug", checkpoint=str(files[0])).apply(tiny(), ctx)
    with torch.no_grad():
        assert torch.allclose(ckpt.encode_image(x), trained.encode_image(x), atol=1e-6)


def test_method_errors():
    with pytest.raises(LrbenchError, match="exactly one of"):
        FaceTrainingMethod("st")
    with pytest.raises(LrbenchError, match="'data'"):
        FaceTrainingMethod("st", train={"epochs": 1})
    names = []
    plugin.register_methods(lambda name, factory, description="", **kw: names.append(name))
    assert names == [f"face/{s}" for s in ("baseline", "bt", "bt-m", "st", "st-m1", "st-m2", "maug")]
