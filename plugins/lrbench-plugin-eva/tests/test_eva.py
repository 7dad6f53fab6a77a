"""Offline tests: a tiny EVA02 open_clip config (timm EVA02 tower, 2 blocks) and a tiny Hub-style custom-code model."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from lrbench_eva.adapter import EvaRemoteCode, preprocess_from_open_clip
from lrbench_eva.plugin import eva
from PIL import Image
from timm.models import register_model
from timm.models.eva import eva02_tiny_patch14_224

from lrbench.builtin.degradations import HR, Resize
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.builtin.toyworld import ToyWorld
from lrbench.plugins import Plugins, get_plugins
from lrbench.registry import LrbenchError
from lrbench.tasks import RunContext

TINY_ARCH = "EVA02-Tiny-lrbench-test"


@register_model
def eva02_lrbench_test(pretrained: bool = False, **kwargs):
    """timm's EVA02 tiny (rope, SwiGLU) cut to 2 blocks at 28 px, so the test runs the real tower classes quickly."""
    return eva02_tiny_patch14_224(pretrained=False, **dict(dict(img_size=28, depth=2, ref_feat_shape=(2, 2)), **kwargs))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """Registers a tiny EVA02 open_clip config and writes a random checkpoint for it."""
    folder = tmp_path_factory.mktemp("evacfg")
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 28,
            "timm_model_name": "eva02_lrbench_test",
            "timm_model_pretrained": False,
            "timm_pool": "token",
            "timm_proj": None,
        },
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        "custom_text": True,
    }
    (folder / f"{TINY_ARCH}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_ARCH, pretrained=None)
    path = folder / "tiny.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (180 + 20 * i, 240, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint):
    return eva(arch=TINY_ARCH, checkpoint=tiny_checkpoint)


def test_checkpoint_logits_match_open_clip(adapter, tiny_checkpoint):
    ref, _, ref_transform = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=tiny_checkpoint)
    ref.eval()
    tok = open_clip.get_tokenizer(TINY_ARCH)
    texts = ["a photo of a circle.", "a photo of a star.", "a drawing of a heart."]
    images = _images(2)
    with torch.no_grad():
        x = adapter.prepare(images)
        x_ref = torch.stack([ref_transform(im) for im in images])
        img, txt, scale = ref(x_ref, tok(texts))  # open_clip returns normalized features and exp(logit_scale)
        expected = scale * img @ txt.T
        got = (
            adapter.logit_scale
            * F.normalize(adapter.encode_image(x), dim=-1)
            @ F.normalize(adapter.encode_text(texts), dim=-1).T
        )
    assert torch.allclose(x, x_ref, atol=1e-6), "preprocessing differs from open_clip's own transform"
    assert torch.allclose(got, expected, atol=1e-4)
    assert adapter.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's init: log(1/0.07)
    assert adapter.preprocess.image_size == 28 and adapter.preprocess.interpolation == "bicubic"


def test_identity_names_weights_by_content(adapter, tiny_checkpoint, tmp_path):
    a = adapter
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 1.0
    other = tmp_path / "other.pt"
    torch.save(state, other)
    b = eva(arch=TINY_ARCH, checkpoint=str(other))
    assert a.identity()["arch"] == TINY_ARCH and len(a.identity()["checkpoint_sha256"]) == 64
    assert a.identity() != b.identity()
    assert b.logit_scale == pytest.approx(np.exp(np.log(1 / 0.07) + 1.0), rel=1e-5)


def test_zero_shot_task_runs_on_toyworld(adapter):
    data = ToyWorld(split="test", n=3)
    out = ZeroShotClassification().run(adapter, data, [HR(), Resize(size=16)], RunContext(batch_size=3))
    assert set(out) == {"hr", "bicubic@16"}
    for cond in out.values():
        assert cond["logits"].shape == (3, 12) and np.isfinite(cond["logits"]).all()
        assert (cond["labels"] == data.labels).all()


def test_errors_name_the_choices(tiny_checkpoint):
    with pytest.raises(LrbenchError, match="merged2b_s8b_b131k"):
        eva(id="EVA02-B-16/not_a_tag")
    with pytest.raises(LrbenchError, match="trust_remote_code"):
        eva(id="BAAI/EVA-CLIP-8B")
    with pytest.raises(LrbenchError, match="EVA02-B-16"):
        eva()
    with pytest.raises(LrbenchError, match="precision"):
        eva(id="EVA02-B-16", precision="int3")
    with pytest.raises(LrbenchError, match="either"):
        eva(arch=TINY_ARCH, checkpoint=tiny_checkpoint, pretrained="x")


def test_registered_as_family(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "eva")  # this plugin alone with the core
    monkeypatch.setattr("lrbench.plugins._cached", None)  # rebuilt, and dropped again after the test
    models = get_plugins().models
    entry, implied = models.resolve("eva:EVA02-B-16/merged2b_s8b_b131k")
    assert entry.plugin == "eva" and implied == {"id": "EVA02-B-16/merged2b_s8b_b131k"}
    assert "EVA02-L-14-336/merged2b_s6b_b61k" in entry.info["open_clip"]
    assert set(entry.parameters()) >= {"id", "arch", "pretrained", "checkpoint", "trust_remote_code"}


MODELING = textwrap.dedent("""
    import torch
    from transformers import PretrainedConfig, PreTrainedModel


    class TinyEvaConfig(PretrainedConfig):
        model_type = "tiny_eva_lrbench"

        def __init__(self, vocab_size=64, dim=16, image_size=32, **kw):
            super().__init__(**kw)
            self.vocab_size, self.dim, self.image_size = vocab_size, dim, image_size


    class TinyEva(PreTrainedModel):
        config_class = TinyEvaConfig

        def __init__(self, config):
            super().__init__(config)
            self.patch = torch.nn.Conv2d(3, config.dim, 8, 8)
            self.embed = torch.nn.Embedding(config.vocab_size, config.dim)
            self.proj = torch.nn.Linear(config.dim, config.dim)
            self.post_init()

        def encode_image(self, pixel_values):
            return self.patch(pixel_values).mean(dim=(2, 3))

        def encode_text(self, input_ids):
            return self.proj(self.embed(input_ids).mean(dim=1))
""")


def _write_clip_tokenizer(folder) -> None:
    from transformers import CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>").save_pretrained(
        folder
    )


def test_hub_custom_code_loader(tmp_path, monkeypatch):
    """A local folder in the Hub's custom-code layout (config auto_map + modeling file) goes through AutoModel."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "modeling_tiny_eva_lrbench.py").write_text(MODELING)
    import modeling_tiny_eva_lrbench as mod

    torch.manual_seed(0)
    repo = tmp_path / "repo"
    mod.TinyEvaConfig.register_for_auto_class()
    mod.TinyEva.register_for_auto_class("AutoModel")
    model = mod.TinyEva(mod.TinyEvaConfig())
    model.save_pretrained(repo)
    _write_clip_tokenizer(repo)

    with pytest.raises(LrbenchError, match="trust_remote_code"):
        eva(id=str(repo), image_size=32)
    adapter = eva(id=str(repo), trust_remote_code=True, image_size=32)
    assert isinstance(adapter, EvaRemoteCode)
    assert adapter.identity()["hub"] == str(repo) and adapter.preprocess.image_size == 32
    texts = ["a cat", "dog"]
    x = adapter.prepare(_images(2))
    ids = adapter.tokenizer(texts, return_tensors="pt", padding=True).input_ids
    with torch.no_grad():
        assert torch.allclose(adapter.encode_image(x), model.encode_image(x), atol=1e-6)
        assert torch.allclose(adapter.encode_text(texts), model.encode_text(ids), atol=1e-6)
    assert adapter.logit_scale == 100.0


def test_preprocess_cfg_conversion():
    p = preprocess_from_open_clip(
        {
            "size": (336, 336),
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
    )
    assert p.image_size == 336 and p.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="longest"):
        preprocess_from_open_clip({"size": 224, "resize_mode": "longest"})


def test_run_spec_end_to_end(tiny_checkpoint, tmp_path, monkeypatch):
    """The eva family through the core runner: spec -> plan -> zero-shot outputs -> top-1 per condition; a rerun is cached."""
    from lrbench.runner import run_spec

    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "eva")
    spec = {
        "models": [{"name": "eva", "arch": TINY_ARCH, "checkpoint": tiny_checkpoint}],
        "datasets": [{"name": "toyworld", "split": "test", "n": 6}],
        "conditions": ["hr", "bicubic@16"],
        "metrics": ["top1"],
        "batch_size": 6,
    }
    plugins = Plugins()
    df = run_spec(spec, tmp_path / "out", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    top1 = df[df.metric == "top1"].set_index("condition")["value"]
    assert set(top1.index) == {"hr", "bicubic@16"} and ((top1 >= 0) & (top1 <= 1)).all()
    assert (df[df.metric == "top1"]["n"] == 6).all()
    again = run_spec(spec, tmp_path / "out2", device="cpu", plugins=plugins, cache_dir=tmp_path / "cache")
    assert again[again.metric == "top1"].set_index("condition")["value"].equals(top1)
