"""The lrtk0 method: train-or-load artifacts, token files, wrapper identity, and a full `lrbench run` cell grid."""

from __future__ import annotations

import math

import lrbench_lrtk0.method as method_mod
import pytest
import torch
from lrbench_lrtk0.method import LRTokens, load_tokens, save_tokens, vpt
from lrtk0_testing import TinyClipAdapter, TinyEvaAdapter

from lrbench import hookimpl
from lrbench.builtin.toyworld import ToyWorld
from lrbench.methods import ArtifactStore, MethodContext
from lrbench.plugins import Plugins

TRAIN = {
    "data": {"name": "toyworld", "split": "train", "n": 8},
    "steps": 2,
    "batch_size": 4,
    "lr": 0.05,
    "buckets": [[4, 8], [8, 16], [16, 32]],
    "num_workers": 0,
}


def _ctx(tmp_path) -> MethodContext:
    return MethodContext(
        device=torch.device("cpu"),
        artifacts=ArtifactStore(tmp_path / "artifacts"),
        dataset=lambda name, **p: ToyWorld(**p),
    )


def test_train_then_reuse_the_artifact(tmp_path, images, monkeypatch):
    base = TinyClipAdapter()
    ref = base.encode_image(images)
    wrapped = LRTokens(train=TRAIN).apply(base, _ctx(tmp_path))
    files = list((tmp_path / "artifacts" / "lrtk0").glob("*/tokens.safetensors"))
    assert len(files) == 1 and not list(files[0].parent.glob("state.pt"))  # checkpoint dropped once done
    out = wrapped.encode_image(images)
    assert not torch.allclose(out, ref)
    assert torch.equal(base.encode_image(images), ref)  # the baseline sharing the module is untouched
    assert wrapped.identity()["base"] == base.identity() and wrapped.identity() != base.identity()
    assert torch.equal(wrapped.encode_text(["a star"]), base.encode_text(["a star"]))  # text tower untouched

    def no_training(*a, **k):
        raise AssertionError("trained again although the artifact exists")

    monkeypatch.setattr(method_mod, "train_tokens", no_training)
    again = LRTokens(train=TRAIN).apply(TinyClipAdapter(), _ctx(tmp_path))
    assert torch.equal(again.encode_image(images), out)
    # another base model is another key: it would train (and here must hit the guard)
    with pytest.raises(AssertionError, match="trained again"):
        LRTokens(train=TRAIN).apply(TinyClipAdapter(seed=1), _ctx(tmp_path))


def test_token_file_round_trip_and_path_form(tmp_path, images):
    base = TinyClipAdapter()
    wrapped = LRTokens(train=TRAIN).apply(base, _ctx(tmp_path))
    path = tmp_path / "mine.safetensors"
    save_tokens(path, wrapped.tokens, {"note": "copy"})
    tokens, meta = load_tokens(path)
    assert meta["note"] == "copy" and meta["tokens"]["num_blocks"] == 3
    loaded = LRTokens(path=str(path)).apply(TinyClipAdapter(), _ctx(tmp_path / "other"))
    assert torch.equal(loaded.encode_image(images), wrapped.encode_image(images))
    assert loaded.identity()["method"]["file_sha256"]


def test_vpt_method_and_start_block_variants(tmp_path):
    ctx = _ctx(tmp_path)
    v = vpt(train=TRAIN).apply(TinyClipAdapter(), ctx)
    assert v.tokens.prompts.shape == (50, 32) and v.identity()["method"]["name"] == "lrtk0-vpt"
    late = LRTokens(train=TRAIN, start_block=1).apply(TinyClipAdapter(), ctx)
    assert late.tokens.patch is None and late.tokens.blocks.shape == (2, 16, 32)


def test_vpt_baseline_trains_on_an_eva02_tower(tmp_path):
    """Table 4's VPT on EVA-02 (rotary embeddings): trains with the EVA recipe (LAMB, logit scale from 1/0.07) and
    changes the image embeddings; the prompts start from the seeded trunc_normal(0.02) draw and move."""
    import json

    from lrbench_lrtk0.tokens import find_vit, make_tokens

    base = TinyEvaAdapter()
    x = torch.randn(2, 3, 28, 28)
    ref = base.encode_image(x)
    train = {**TRAIN, "buckets": [[4, 8], [8, 16], [16, 28]], "warmup_steps": 1, "lr": 1e-2}
    wrapped = vpt(train=train).apply(base, _ctx(tmp_path))
    start = make_tokens(find_vit(base.module), "vpt", init="authors", seed=0).prompts
    assert wrapped.tokens.prompts.shape == (50, 192) and not torch.equal(wrapped.tokens.prompts, start)
    assert not torch.allclose(wrapped.encode_image(x), ref) and torch.equal(base.encode_image(x), ref)
    logged = json.loads(next((tmp_path / "artifacts" / "lrtk0-vpt").glob("*/train_log.json")).read_text())
    assert (logged["config"]["recipe"], logged["config"]["optimizer"]) == ("eva", "lamb")
    assert all(math.isfinite(v) for v in logged["losses"]) and logged["logit_scale"] != pytest.approx(1 / 0.07)


def test_method_errors(tmp_path):
    with pytest.raises(Exception, match="exactly one of 'train'"):
        LRTokens()
    with pytest.raises(Exception, match="unknown key.*'stepz'"):
        LRTokens(train={"data": "toyworld", "stepz": 1})
    with pytest.raises(Exception, match="mode must be one of add, vpt"):
        LRTokens(path="x", mode="concat")
    with pytest.raises(Exception, match="not found"):
        LRTokens(path=str(tmp_path / "missing.safetensors")).apply(TinyClipAdapter(), _ctx(tmp_path))


class _TinyModels:
    @staticmethod
    @hookimpl
    def register_models(register):
        def tiny_clip(seed: int = 0):
            return TinyClipAdapter(seed)

        register("tiny-clip", tiny_clip, "random-init 32 px open_clip ViT for tests", kind="zero-shot")


def test_lrbench_run_trains_then_evaluates(tmp_path, monkeypatch):
    from lrbench.runner import run_spec

    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "lrtk0")  # this plugin alone, whatever else is installed
    plugins = Plugins(extra=[(_TinyModels, "tiny-models")])
    spec = {
        "models": ["tiny-clip"],
        "methods": ["none", {"name": "lrtk0", "label": "lrtk0", "train": TRAIN}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 12}],
        "conditions": ["hr", "bicubic@16"],
        "metrics": ["top1"],
        "batch_size": 12,
    }
    df = run_spec(spec, tmp_path / "run", plugins=plugins, cache_dir=tmp_path / "cache", device="cpu")
    top1 = df[df.metric == "top1"]
    assert set(top1.method) == {"none", "lrtk0"} and set(top1.condition) == {"hr", "bicubic@16"}
    assert (top1.n == 12).all()
    assert len(list((tmp_path / "cache" / "artifacts" / "lrtk0").glob("*/tokens.safetensors"))) == 1
    # a second run computes nothing: cells come from the cache, tokens from the artifact
    again = run_spec(
        spec,
        tmp_path / "run2",
        plugins=Plugins(extra=[(_TinyModels, "tiny-models")]),
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    merged = top1.merge(again[again.metric == "top1"], on=["method", "condition"])
    assert (merged.value_x == merged.value_y).all()


def test_training_data_keys_the_cells(tmp_path, monkeypatch):
    """The lrtk0 cells are keyed by the data the tokens train on: another image in the training folder means other
    tokens, so other cells; the baseline's cells keep their keys (planned only: nothing trains)."""
    from lrbench.builtin.toyworld import render
    from lrbench.runner import run_spec

    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "lrtk0")
    folder = tmp_path / "train-images"
    folder.mkdir()
    for i in range(4):
        render(i)[0].save(folder / f"{i}.png")
    spec = {
        "models": ["tiny-clip"],
        "methods": ["none", {"name": "lrtk0", "label": "lrtk0", "train": {**TRAIN, "data": str(folder)}}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 4}],
        "conditions": ["hr", "bicubic@16"],
    }

    def keys() -> dict[str, str]:
        plan = run_spec(
            spec,
            tmp_path / "run",
            plugins=Plugins(extra=[(_TinyModels, "tiny-models")]),
            cache_dir=tmp_path / "cache",
            device="cpu",
            dry_run=True,
        )
        return {f"{r.method}|{r.condition}": r.key for r in plan.itertuples()}

    before = keys()
    assert keys() == before
    render(4)[0].save(folder / "4.png")
    after = keys()
    assert {k: after[k] == before[k] for k in before} == {
        "none|hr": True,
        "none|bicubic@16": True,
        "lrtk0|hr": False,
        "lrtk0|bicubic@16": False,
    }
