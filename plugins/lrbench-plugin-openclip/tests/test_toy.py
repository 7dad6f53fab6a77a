"""The shipped toy CLIP: loadable by plain open_clip, covers the toy world's words, trained (image-text alignment),
usable with other weights, and runnable end to end through examples/quickstart.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
import yaml
from lrbench_openclip import TOY_DIR, toy_clip
from lrbench_openclip.toy import WEIGHTS_FILE
from safetensors.torch import load_file, save_file

from lrbench.builtin.toyworld import SHAPES, TEMPLATES, ToyWorld
from lrbench.cache import file_sha256
from lrbench.models import OPENAI_MEAN, OPENAI_STD
from lrbench.runner import run_spec

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart.yaml"


@pytest.fixture(scope="module")
def toy():
    return toy_clip()


def test_folder_is_a_plain_open_clip_model(toy):
    model = open_clip.create_model(f"local-dir:{TOY_DIR}").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(toy.encode_image(x), model.encode_image(x), rtol=0, atol=0)
    identity = toy.identity()
    assert set(identity) == {"family", "arch", "precision", "config", "weights_sha256"}
    assert (identity["arch"], identity["precision"]) == ("toy-clip", "fp32")
    pre = toy.preprocess
    assert (pre.image_size, pre.mean, pre.std, pre.interpolation, pre.resize_mode) == (
        64,
        OPENAI_MEAN,
        OPENAI_STD,
        "bicubic",
        "shortest",
    )
    assert model.visual.patch_size == (8, 8)  # 8 x 8 patch tokens + class token: what LR tokens are added to
    assert (TOY_DIR / WEIGHTS_FILE).stat().st_size < 8e6


def test_tokenizer_knows_every_toy_world_word(toy):
    ds = ToyWorld(split="test", n=200)
    texts = [ds.caption(i) for i in range(0, 200, 10)] + [t.replace("{c}", c) for t in TEMPLATES for c in SHAPES]
    tokens = toy.tokenizer(texts)
    vocab = json.loads((TOY_DIR / "tokenizer.json").read_text())["model"]["vocab"]
    assert not (tokens == vocab["[UNK]"]).any()
    assert (tokens.argmax(-1) == (tokens != 0).sum(-1) - 1).all()  # [EOS] is the highest id: argmax pooling finds it


def test_shipped_weights_recognise_shapes_and_lose_it_at_16_and_8px(toy):
    """Zero-shot shape top-1 (12 classes, chance 0.083) on unseen test images through the core's task: measured 0.443
    at HR, 0.347 at 16 px and 0.182 at 8 px on 600 images (docs/openclip.md); 0.438 / 0.338 / 0.163 on these 240. The
    shipped weights must stay far above chance at HR and lose accuracy at 16 px and much more at 8 px."""
    from lrbench.builtin.degradations import HR, Resize
    from lrbench.builtin.tasks import ZeroShotClassification
    from lrbench.tasks import RunContext

    out = ZeroShotClassification().run(
        toy, ToyWorld(split="test", n=240), [HR(), Resize(16), Resize(8)], RunContext(batch_size=60)
    )
    top1 = {c: float((o["logits"].argmax(1) == o["labels"]).mean()) for c, o in out.items()}
    assert top1["hr"] > 0.35
    assert top1["bicubic@16"] < top1["hr"] - 0.05
    assert top1["bicubic@8"] < top1["hr"] - 0.15


def test_checkpoint_loads_other_weights(toy, tmp_path):
    state = load_file(str(TOY_DIR / WEIGHTS_FILE))
    state["logit_scale"] = state["logit_scale"] + 0.5
    save_file(state, str(tmp_path / "other.safetensors"))
    other = toy_clip(checkpoint=str(tmp_path / "other.safetensors"))
    assert other.logit_scale == pytest.approx(toy.logit_scale * np.exp(0.5), rel=1e-3)
    assert other.identity()["checkpoint_sha256"] == file_sha256(tmp_path / "other.safetensors")
    assert other.identity() != toy.identity()


def test_quickstart_runs_end_to_end(tmp_path, openclip_plugins):
    """examples/quickstart.yaml through run_spec on fewer images: top1 and the LR0.FM aggregates come out."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    assert spec["models"] == ["toy-clip"] and spec["datasets"][0]["n"] == 600
    spec["datasets"][0]["n"] = 48
    spec["conditions"] = ["hr", "bicubic@8"]
    df = run_spec(spec, tmp_path / "run", plugins=openclip_plugins, cache_dir=tmp_path / "cache")
    top1 = df[df.metric == "top1"].set_index("condition")
    assert set(top1.index) == {"hr", "bicubic@8"} and (top1["n"] == 48).all()
    top1 = top1["value"]
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    sar8 = summary[(summary.metric == "SAR") & (summary.condition == "bicubic@8")]["value"].item()
    assert sar8 == pytest.approx(top1["bicubic@8"] / top1["hr"])


def test_shipped_and_local_dir_weights_key_the_cells(tmp_path, openclip_plugins):
    """Cell keys see the bytes a model entry reads without naming them: the toy CLIP's shipped folder and a local-dir
    folder. Retrained weights under the same spec entry must give new cells, never a cached result of the old ones."""
    import shutil

    from lrbench.plan import entry_identity
    from lrbench.spec import Item

    toy_id = entry_identity(openclip_plugins, Item("models", "toy-clip"))
    folder = tmp_path / "toy"
    shutil.copytree(TOY_DIR, folder)
    local = Item("models", f"openclip:local-dir:{folder}")
    before = entry_identity(openclip_plugins, local)
    assert before["inputs"] == toy_id["inputs"]  # same bytes, same inputs
    assert entry_identity(openclip_plugins, local) == before
    state = load_file(str(folder / WEIGHTS_FILE))
    state["logit_scale"] = state["logit_scale"] + 0.5
    save_file(state, str(folder / WEIGHTS_FILE))
    assert entry_identity(openclip_plugins, local)["inputs"] != before["inputs"]
    tagged = entry_identity(openclip_plugins, Item("models", "openclip:ViT-B-32/openai"))
    assert "inputs" not in tagged  # a pretrained tag is a name: downloaded bytes are not hashed (docs/results.md)
