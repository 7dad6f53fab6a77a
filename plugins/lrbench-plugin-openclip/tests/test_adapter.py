"""The open_clip adapter against open_clip itself, on tiny random-init configs (offline)."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from lrbench_openclip import OpenClipError, load_openclip, parse_id, preprocess_from_cfg
from lrbench_openclip import adapter as adapter_mod
from lrbench_openclip.plugin import openclip
from PIL import Image
from safetensors.torch import save_file

from lrbench.builtin.degradations import HR, Resize
from lrbench.builtin.tasks import ZeroShotClassification
from lrbench.builtin.toyworld import ToyWorld
from lrbench.tasks import RunContext


def direct_zero_shot(model, arch: str, images: list[Image.Image], classnames, templates) -> np.ndarray:
    """CLIP zero-shot written against open_clip only: its own transform, tokenizer and encoders."""
    cfg = model.visual.preprocess_cfg
    transform = open_clip.image_transform(
        cfg["size"],
        is_train=False,
        mean=cfg["mean"],
        std=cfg["std"],
        interpolation=cfg["interpolation"],
        resize_mode=cfg["resize_mode"],
    )
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.no_grad():
        weights = []
        for c in classnames:
            emb = F.normalize(model.encode_text(tokenizer([t.replace("{c}", c) for t in templates])), dim=-1)
            weights.append(F.normalize(emb.mean(0), dim=-1))
        img = F.normalize(model.encode_image(torch.stack([transform(im) for im in images])), dim=-1)
        return (model.logit_scale.exp() * img @ torch.stack(weights).T).numpy()


def test_parse_id_forms():
    assert parse_id("ViT-B-32/openai") == {"arch": "ViT-B-32", "pretrained": "openai"}
    assert parse_id("ViT-B-32@/ckpt/a@b.pt") == {"arch": "ViT-B-32", "checkpoint": "/ckpt/a@b.pt"}
    assert parse_id("hf-hub:timm/ViT-B-16-SigLIP") == {"arch": "hf-hub:timm/ViT-B-16-SigLIP"}
    assert parse_id("local-dir:/models/x") == {"arch": "local-dir:/models/x"}
    assert parse_id("RN50") == {"arch": "RN50"}


@pytest.fixture(scope="module")
def models(openclip_plugins):
    return openclip_plugins.models


def test_registered_through_entry_point(models):
    entry, implied = models.resolve("openclip:ViT-B-32/openai")
    assert entry.plugin == "openclip" and implied == {"id": "ViT-B-32/openai"}
    assert "toy-clip" in models.names()
    assert set(entry.parameters()) >= {"id", "arch", "pretrained", "checkpoint", "precision"}


@pytest.mark.parametrize("conditions", [[HR(), Resize(16)]])
def test_zero_shot_logits_equal_direct_open_clip(tiny_configs, models, conditions, seeded_model):
    arch = tiny_configs["tiny"]
    adapter = models.create(f"openclip:{arch}/random", seed=3)
    ds = ToyWorld(split="test", n=6)
    out = ZeroShotClassification().run(adapter, ds, conditions, RunContext(batch_size=4))
    model = seeded_model(arch, 3)
    assert adapter.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))
    for deg in conditions:
        images = [deg.pil(ds.load(i)) for i in range(len(ds))]
        expected = direct_zero_shot(model, arch, images, ds.classnames, ds.templates)
        np.testing.assert_allclose(out[deg.condition]["logits"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out["hr"]["labels"], ds.labels)


def test_preprocess_read_from_open_clip_config(tiny_configs, tmp_path, seeded_model):
    """A local-dir model whose preprocess config differs from every default: squash, bilinear, own mean/std."""
    arch = tiny_configs["tiny"]
    cfg = {
        "model_cfg": open_clip.get_model_config(arch),
        "preprocess_cfg": {
            "mean": [0.5, 0.4, 0.3],
            "std": [0.2, 0.25, 0.3],
            "interpolation": "bilinear",
            "resize_mode": "squash",
        },
    }
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file(seeded_model(arch, 0).state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    adapter = openclip(id=f"local-dir:{tmp_path}")
    pre = adapter.preprocess
    assert (pre.image_size, pre.mean, pre.std, pre.interpolation, pre.resize_mode) == (
        64,
        (0.5, 0.4, 0.3),
        (0.2, 0.25, 0.3),
        "bilinear",
        "squash",
    )
    image = ToyWorld(split="test", n=1).load(0).crop((0, 0, 224, 150))  # non-square: squash and shortest differ
    model = open_clip.create_model(f"local-dir:{tmp_path}")
    reference = open_clip.image_transform(
        64, is_train=False, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), interpolation="bilinear", resize_mode="squash"
    )(image)
    assert model.visual.preprocess_cfg["resize_mode"] == "squash"
    torch.testing.assert_close(adapter.prepare([image])[0], reference)


def test_preprocess_of_published_tags():
    clipa = preprocess_from_cfg({**open_clip.get_pretrained_cfg("ViT-L-14-CLIPA", "datacomp1b"), "size": 224})
    assert (clipa.mean, clipa.resize_mode, clipa.interpolation) == ((0.485, 0.456, 0.406), "squash", "bilinear")
    siglip = preprocess_from_cfg({**open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli"), "size": (224, 224)})
    assert (siglip.image_size, siglip.mean, siglip.std) == (224, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(OpenClipError, match="non-square"):
        preprocess_from_cfg({"size": (224, 256)})
    with pytest.raises(OpenClipError, match="resize_mode 'longest'"):
        preprocess_from_cfg({"resize_mode": "longest"})


def test_identity_follows_weights(tiny_configs, tmp_path, seeded_model):
    arch = tiny_configs["tiny"]
    a0, a0b, a1 = (openclip(arch=arch, pretrained="random", seed=s) for s in (0, 0, 1))
    assert a0.identity() == a0b.identity() != a1.identity()
    for seed, name in ((0, "a.pt"), (1, "b.pt")):
        torch.save(seeded_model(arch, seed).state_dict(), tmp_path / name)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.pt").write_bytes((tmp_path / "a.pt").read_bytes())
    paths = (tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "copy/a.pt")
    ids = [openclip(id=f"{arch}@{p}").identity() for p in paths]
    assert ids[0] != ids[1] and ids[0] == ids[2]  # content, not path
    assert len(ids[0]["checkpoint_sha256"]) == 64


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_local_checkpoint_loads_identical_outputs(tiny_configs, tmp_path, fmt, seeded_model):
    arch = tiny_configs["tiny"]
    source = seeded_model(arch, 7)
    path = tmp_path / f"w.{fmt}"
    if fmt == "pt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)  # DDP layout
    else:
        save_file(source.state_dict(), str(path))
    adapter = openclip(arch=arch, checkpoint=str(path))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(adapter.encode_image(x), source.encode_image(x), rtol=0, atol=0)
        torch.testing.assert_close(
            adapter.encode_text(["a star."]),
            source.encode_text(open_clip.get_tokenizer(arch)(["a star."])),
            rtol=0,
            atol=0,
        )


def test_siglip_style_bias_and_hf_tokenizer(tiny_configs, seeded_model):
    """Bias exposed, HF tokenizer from a local folder, and the zero-shot ranking equals the model's sigmoid logits."""
    arch = tiny_configs["siglip"]
    adapter = openclip(arch=arch, pretrained="random", seed=0)
    model = seeded_model(arch, 0)
    assert adapter.logit_bias == pytest.approx(-10.0)
    assert type(adapter.tokenizer).__name__ == "HFTokenizer"
    ds = ToyWorld(split="test", n=4)
    out = ZeroShotClassification().run(adapter, ds, [HR()], RunContext(batch_size=4))["hr"]
    prompts = [f"a photo of a {c}." for c in ds.classnames]
    with torch.no_grad():
        x = adapter.prepare([ds.load(i) for i in range(len(ds))])
        img_f, txt_f, scale, bias = model(x, open_clip.get_tokenizer(arch)(prompts))
        sigmoid_logits = scale * img_f @ txt_f.T + bias
    # one template in the direct computation vs six in the task: compare with a single-template task run
    ds.templates = ("a photo of a {c}.",)
    single = ZeroShotClassification().run(adapter, ds, [HR()], RunContext(batch_size=4))["hr"]["logits"]
    np.testing.assert_allclose(single + adapter.logit_bias, sigmoid_logits.numpy(), rtol=1e-4, atol=1e-4)
    assert out["logits"].shape == (4, 12)


def test_precision_bf16_close_to_fp32(tiny_configs):
    arch = tiny_configs["tiny"]
    fp32 = openclip(arch=arch, pretrained="random", seed=0)
    bf16 = openclip(arch=arch, pretrained="random", seed=0, precision="bf16")
    assert bf16.identity() != fp32.identity()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = F.normalize(fp32.encode_image(x), dim=-1), F.normalize(bf16.encode_image(x).float(), dim=-1)
    assert (a * b).sum(-1).min() > 0.99


def test_quick_gelu_follows_the_tag(monkeypatch):
    """OpenAI and MetaCLIP tags were trained with QuickGELU; open_clip only warns, the adapter must switch it on."""
    calls = []

    def fake_create_model(name, **kwargs):
        calls.append(kwargs)
        raise RuntimeError("stop before downloading")

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    monkeypatch.setattr(adapter_mod, "weights_status", lambda *a, **k: None)  # as if the weights were downloaded
    for tag, expected in (("openai", True), ("metaclip_400m", True), ("laion2b_s34b_b79k", False)):
        with pytest.raises(RuntimeError, match="stop before"):
            load_openclip("ViT-B-32", pretrained=tag)
        assert calls[-1]["force_quick_gelu"] is expected and calls[-1]["pretrained"] == tag


def test_errors_name_the_problem(tiny_configs, tmp_path, monkeypatch):
    with pytest.raises(OpenClipError, match="unknown open_clip architecture 'ViT-B-33'.*ViT-B-32"):
        openclip(id="ViT-B-33/openai")
    with pytest.raises(OpenClipError, match="unknown pretrained tag 'nope'.*laion2b_s34b_b79k"):
        openclip(id="ViT-B-32/nope")
    with pytest.raises(OpenClipError, match="needs weights"):
        openclip(arch="ViT-B-32")
    with pytest.raises(OpenClipError, match="either pretrained"):
        openclip(arch="ViT-B-32", pretrained="openai", checkpoint="x.pt")
    with pytest.raises(OpenClipError, match="precision 'fp8'"):
        openclip(id="ViT-B-32/openai", precision="fp8")
    with pytest.raises(OpenClipError, match="sets pretrained='openai'.*'laion"):
        openclip(id="ViT-B-32/openai", pretrained="laion2b_s34b_b79k")
    with pytest.raises(OpenClipError, match="does not exist"):
        openclip(id=f"ViT-B-32@{tmp_path / 'missing.pt'}")
    with pytest.raises(OpenClipError, match="no open_clip_config.json"):
        openclip(id=f"local-dir:{tmp_path}")

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(open_clip, "get_tokenizer", offline)
    adapter = openclip(arch=tiny_configs["siglip"], pretrained="random")  # the image side needs no tokenizer
    adapter.encode_image(torch.rand(1, 3, 64, 64))
    with pytest.raises(OpenClipError, match="could not build the tokenizer.*huggingface-cli download"):
        adapter.encode_text(["a star."])
