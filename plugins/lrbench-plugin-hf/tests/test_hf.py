"""Offline tests: tiny random transformers configs saved to tmp folders, local tokenizers, ALBEF/BLIP-format state dicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from lrbench_hf.adapters import HFBlipITC, HFDualEncoder, preprocess_from_image_processor
from lrbench_hf.plugin import albef, blip, hf
from PIL import Image

from lrbench.plugins import get_plugins
from lrbench.registry import LrbenchError

WORDS = ["a", "photo", "of", "the", "cat", "dog", "star", "circle", "drawing", "small", "large"]
TEXTS = ["a photo of a cat.", "a drawing of the dog.", "a small star.", "a large circle."]


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (40 + 6 * i, 52, 3), dtype=np.uint8)) for i in range(n)]


def _clip_tokenizer(folder, max_length: int = 77) -> transformers.CLIPTokenizer:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["."]
    vocab = ["<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>", model_max_length=max_length
    )
    tok.save_pretrained(folder)
    return tok


def _bert_tokenizer(folder) -> transformers.BertTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS) + "\n")
    tok = transformers.BertTokenizer(str(folder / "vocab.txt"))
    tok.save_pretrained(folder)
    return tok


TINY_VISION = dict(
    image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2
)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)


def test_clip_logits_match_transformers(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "clip"
    folder.mkdir()
    tok = _clip_tokenizer(folder)
    config = transformers.CLIPConfig(
        text_config=dict(
            TINY_TEXT, vocab_size=len(tok), max_position_embeddings=77, eos_token_id=1, pad_token_id=1, bos_token_id=0
        ),
        vision_config=TINY_VISION,
        projection_dim=16,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    proc = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(folder)

    adapter = hf(id=str(folder))
    assert isinstance(adapter, HFDualEncoder)
    assert adapter.preprocess.image_size == 32 and adapter.preprocess.resize_mode == "shortest"
    assert adapter.identity()["class"] == "CLIPModel" and "model.safetensors" in adapter.identity()["local_sha256"]
    images = _images()
    inputs = proc(images=images, return_tensors="pt")
    tokens = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=inputs.pixel_values
        ).logits_per_image
        got = (
            adapter.logit_scale
            * F.normalize(adapter.encode_image(inputs.pixel_values), dim=-1)
            @ F.normalize(adapter.encode_text(TEXTS), dim=-1).T
        )
        ours = adapter.prepare(images)
    assert torch.allclose(got, expected, atol=1e-4)
    # lrbench's PIL path vs the HF processor on the same images: same transform up to resize-kernel rounding
    assert (ours - inputs.pixel_values).abs().mean() < 0.02


def test_siglip_pads_to_max_length_and_matches(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "siglip"
    folder.mkdir()
    tok = _clip_tokenizer(folder, max_length=64)
    config = transformers.SiglipConfig(
        text_config=dict(
            TINY_TEXT, vocab_size=len(tok), max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1
        ),
        vision_config=TINY_VISION,
    )
    model = transformers.SiglipModel(config).eval()
    model.save_pretrained(folder)
    proc = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    proc.save_pretrained(folder)

    adapter = hf(id=str(folder))
    assert adapter.text_kwargs["padding"] == "max_length" and adapter.text_kwargs["max_length"] == 64
    assert set(adapter._tokens(TEXTS)) == {"input_ids"}
    assert adapter.preprocess.resize_mode == "squash" and adapter.preprocess.mean == (0.5, 0.5, 0.5)
    pixels = proc(images=_images(), return_tensors="pt").pixel_values
    ids = tok(TEXTS, padding="max_length", max_length=64, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels)
        expected = out.logits_per_image - model.logit_bias  # SigLIP adds a bias; ranking uses the scaled cosine
        got = (
            adapter.logit_scale
            * F.normalize(adapter.encode_image(pixels), dim=-1)
            @ F.normalize(adapter.encode_text(TEXTS), dim=-1).T
        )
    assert torch.allclose(got, expected, atol=1e-4)


def test_blip_uses_itc_projections(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "blip"
    tok = _bert_tokenizer(folder)
    config = transformers.BlipConfig(
        text_config=dict(TINY_TEXT, vocab_size=len(tok), max_position_embeddings=64, encoder_hidden_size=32),
        vision_config=dict(TINY_VISION, image_size=32),
        image_text_hidden_size=16,
    )
    model = transformers.BlipForImageTextRetrieval(config).eval()
    model.save_pretrained(folder)
    proc = transformers.BlipImageProcessor(size={"height": 32, "width": 32})
    proc.save_pretrained(folder)

    adapter = hf(id=str(folder))
    assert isinstance(adapter, HFBlipITC) and adapter.preprocess.resize_mode == "squash"
    pixels = proc(images=_images(), return_tensors="pt").pixel_values
    tokens = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        cosine = model(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels, use_itm_head=False
        ).itm_score
        got = F.normalize(adapter.encode_image(pixels), dim=-1) @ F.normalize(adapter.encode_text(TEXTS), dim=-1).T
    assert torch.allclose(got, cosine, atol=1e-5)


def test_non_dual_encoder_is_rejected(tmp_path):
    folder = tmp_path / "bert"
    tok = _bert_tokenizer(folder)
    transformers.BertModel(transformers.BertConfig(vocab_size=len(tok), **TINY_TEXT)).save_pretrained(folder)
    with pytest.raises(LrbenchError, match="get_image_features"):
        hf(id=str(folder))


def test_preprocess_rejects_unexpressible_processors():
    with pytest.raises(ValueError, match="crops"):
        preprocess_from_image_processor(
            transformers.CLIPImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224})
        )
    p = preprocess_from_image_processor(transformers.BlipImageProcessor())
    assert (p.image_size, p.interpolation, p.resize_mode) == (384, "bicubic", "squash")


# ---------------------------------------------------------------- ALBEF / BLIP original checkpoints


def _vit_reference(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """ALBEF's ViT written out (pre-norm blocks, LayerNorm eps 1e-6, qkv with bias, GELU MLP): [CLS] after norm."""
    p = "visual_encoder."
    w = sd[p + "cls_token"].shape[-1]
    t = (
        F.conv2d(x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=8)
        .flatten(2)
        .transpose(1, 2)
    )
    t = torch.cat([sd[p + "cls_token"].expand(len(x), -1, -1), t], dim=1) + sd[p + "pos_embed"]
    b = p + "blocks.0."
    h = F.layer_norm(t, (w,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps=1e-6)
    q, k, v = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).chunk(3, dim=-1)
    split = lambda z: z.view(len(x), -1, heads, w // heads).transpose(1, 2)  # noqa: E731
    a = F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(len(x), -1, w)
    t = t + F.linear(a, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
    h = F.layer_norm(t, (w,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps=1e-6)
    t = t + F.linear(
        F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
        sd[b + "mlp.fc2.weight"],
        sd[b + "mlp.fc2.bias"],
    )
    return F.layer_norm(t, (w,), sd[p + "norm.weight"], sd[p + "norm.bias"], eps=1e-6)[:, 0]


def _official_state_dict(family: str, vocab: int) -> tuple[dict[str, torch.Tensor], transformers.BertModel]:
    """A checkpoint in the official key layout with a 2-layer text-mode BERT (ALBEF: + 2 fusion layers)."""
    import timm.models.vision_transformer as tvit

    torch.manual_seed(0)
    vit = tvit.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=1, num_classes=0)
    torch.nn.init.normal_(vit.pos_embed, std=0.5)
    torch.nn.init.normal_(vit.cls_token, std=0.5)
    text = transformers.BertModel(
        transformers.BertConfig(
            vocab_size=vocab,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=1,
            intermediate_size=96,
            max_position_embeddings=40,
        ),
        add_pooling_layer=False,
    ).eval()
    prefix = "text_encoder.bert." if family == "albef" else "text_encoder."
    sd = {f"visual_encoder.{k}": v for k, v in vit.state_dict().items()}
    sd.update({f"{prefix}{k}": v for k, v in text.state_dict().items() if "position_ids" not in k})
    if family == "albef":  # fusion layers with cross-attention: not part of the text-mode path
        for i in (2, 3):
            for name in ("attention.self.query", "crossattention.self.query", "intermediate.dense"):
                sd[f"{prefix}encoder.layer.{i}.{name}.weight"] = torch.randn(64, 64)
        sd["text_encoder.cls.predictions.bias"] = torch.zeros(vocab)
    else:  # BLIP: every layer has cross-attention weights, run in text mode; its BERT has no token-type embeddings
        for i in (0, 1):
            sd[f"{prefix}encoder.layer.{i}.crossattention.self.query.weight"] = torch.randn(64, 64)
        del sd[f"{prefix}embeddings.token_type_embeddings.weight"]
        torch.nn.init.zeros_(text.embeddings.token_type_embeddings.weight)
    sd.update(
        {
            "vision_proj.weight": torch.randn(16, 64),
            "vision_proj.bias": torch.randn(16),
            "text_proj.weight": torch.randn(16, 64),
            "text_proj.bias": torch.randn(16),
            "temp": torch.tensor(0.05),
            "visual_encoder_m.pos_embed": torch.randn(1, 17, 64),
            "image_queue": torch.randn(16, 8),
            "itm_head.weight": torch.randn(2, 64),
        }
    )
    return sd, text


@pytest.mark.parametrize("family", ["albef", "blip"])
def test_official_checkpoint_itc_matches_reference(tmp_path, family):
    tok = _bert_tokenizer(tmp_path / "tok")
    sd, text = _official_state_dict(family, len(tok))
    path = tmp_path / f"{family}.pth"
    torch.save({"model": sd, "epoch": 3}, path)
    factory = albef if family == "albef" else blip
    adapter = factory(id=str(path), image_size=32, tokenizer=str(tmp_path / "tok"))
    assert len(adapter.module.text_encoder.encoder.layer) == 2  # ALBEF: layers before fusion; BLIP: all
    assert adapter.logit_scale == pytest.approx(20.0)
    assert adapter.preprocess.resize_mode == "squash" and adapter.preprocess.image_size == 32
    x = torch.randn(2, 3, 32, 32)
    tokens = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        img_ref = F.linear(_vit_reference(sd, x, heads=1), sd["vision_proj.weight"], sd["vision_proj.bias"])
        cls = text(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state[:, 0]
        txt_ref = F.linear(cls, sd["text_proj.weight"], sd["text_proj.bias"])
        assert torch.allclose(adapter.encode_image(x), img_ref, atol=1e-4)
        assert torch.allclose(adapter.encode_text(TEXTS), txt_ref, atol=1e-5)
        # evaluating at another resolution interpolates the position embedding (ALBEF/BLIP evaluate at 384)
        bigger = factory(checkpoint=str(path), image_size=48, tokenizer=str(tmp_path / "tok"))
        assert bigger.module.visual_encoder.pos_embed.shape == (1, 37, 64)
        assert bigger.encode_image(torch.randn(1, 3, 48, 48)).shape == (1, 16)
    assert adapter.identity()["checkpoint_sha256"] == bigger.identity()["checkpoint_sha256"]


def test_official_checkpoint_errors(tmp_path):
    with pytest.raises(LrbenchError, match="not a file"):
        albef(id=str(tmp_path / "missing.pth"))
    torch.save({"model": {"x": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(LrbenchError, match="visual_encoder.pos_embed"):
        blip(checkpoint=str(tmp_path / "bad.pth"))
    with pytest.raises(LrbenchError, match="once"):
        albef(id="a.pth", checkpoint="b.pth")


def test_families_registered(monkeypatch):
    monkeypatch.setenv("LRBENCH_LOAD_PLUGINS", "hf")  # this plugin alone with the core
    monkeypatch.setattr("lrbench.plugins._cached", None)  # rebuilt, and dropped again after the test
    models = get_plugins().models
    for name in ("hf:openai/clip-vit-base-patch32", "albef:/x/ALBEF.pth", "blip:/x/model_base.pth"):
        entry, implied = models.resolve(name)
        assert entry.plugin == "hf" and implied["id"] == name.split(":", 1)[1]
