"""Tiny random-init open_clip configs registered for the session (no download anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

TINY = "lrb-tiny-vit"
TINY_SIGLIP = "lrb-tiny-siglip"


def tiny_cfg() -> dict:
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


def word_tokenizer(folder: Path, words: list[str]) -> Path:
    """A word-level HF tokenizer in ``folder`` (SigLIP-style: no [SOS], [EOS] last, pads after)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words, "[EOS]"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", vocab["[EOS]"])])
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    ).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_configs(tmp_path_factory) -> dict[str, str]:
    """Registers a tiny CLIP (SimpleTokenizer) and a tiny SigLIP-shaped model (bias, HF tokenizer in a local folder)."""
    from lrbench.builtin.toyworld import SHAPES, TEMPLATES

    root = tmp_path_factory.mktemp("open_clip_configs")
    tok_dir = root / "tok"
    tok_dir.mkdir()
    words = sorted({w for t in TEMPLATES for c in SHAPES for w in t.replace("{c}", c).replace(".", " .").split()})
    word_tokenizer(tok_dir, words)
    (root / f"{TINY}.json").write_text(json.dumps(tiny_cfg()))
    siglip = tiny_cfg()
    siglip.update(init_logit_bias=-10, custom_text=True)
    siglip["text_cfg"] = {
        "context_length": 16,
        "vocab_size": len(words) + 3,
        "width": 32,
        "heads": 2,
        "layers": 1,
        "hf_tokenizer_name": str(tok_dir),
        "no_causal_mask": True,
        "pool_type": "last",
        "proj_bias": True,
    }
    (root / f"{TINY_SIGLIP}.json").write_text(json.dumps(siglip))
    open_clip.add_model_config(root)
    return {"tiny": TINY, "siglip": TINY_SIGLIP}


def _seeded_model(arch: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(arch, pretrained=None).eval()


@pytest.fixture
def seeded_model():
    """What ``pretrained: random, seed: N`` must build: open_clip's init under torch.manual_seed(N)."""
    return _seeded_model


@pytest.fixture(scope="session")
def openclip_plugins():
    """lrbench's plugins with only this distribution's entry point loaded (the others are not under test here)."""
    from lrbench.plugins import Plugins

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRBENCH_LOAD_PLUGINS", "openclip")
        return Plugins()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine threads cost 2-4x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
