"""The toy CLIP: a tiny open_clip model trained on lrbench's toy world, shipped as an open_clip ``local-dir`` folder.

The folder ``toy_clip/`` holds ``open_clip_config.json`` (model and preprocess config), a word-level tokenizer
(``tokenizer.json``: the toy world's whole vocabulary, so the text tower's embedding stays a few rows instead of CLIP's
49k) and ``open_clip_model.safetensors``. Plain open_clip loads it too:
``open_clip.create_model("local-dir:<folder>")`` and ``open_clip.get_tokenizer("local-dir:<folder>")``.
``scripts/train_toy_clip.py`` rebuilds all three files.
"""

import json
import re
from pathlib import Path
from typing import Any, Iterable

from lrbench import OPENAI_MEAN, OPENAI_STD

from .adapter import OpenClipAdapter, OpenClipError, load_openclip

TOY_DIR = Path(__file__).resolve().parent / "toy_clip"
WEIGHTS_FILE = "open_clip_model.safetensors"
SPECIALS = ("[PAD]", "[UNK]")  # ids 0 and 1; [SOS] and [EOS] take the two highest ids (argmax pooling finds [EOS])
CONTEXT_LENGTH = 16


def words_of(texts: Iterable[str]) -> list[str]:
    """The tokenizer's pre-tokenization (lowercase, words and punctuation apart), as a sorted vocabulary."""
    return sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})


def toy_model_cfg(vocab_size: int) -> dict[str, Any]:
    """A small CLIP with a ViT image tower: 64 px input in 8 x 8 tokens of 8 px (patch tokens, so LR tokens apply),
    128 wide, 4 layers. The input is small so a 2-core CPU can train it to recognise shapes; the toy world's 224 px
    images reach it through its own preprocessing (bicubic resize), like a 224 px CLIP meets a 500 px photo."""
    return {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": 64,
            "patch_size": 8,
            "width": 128,
            "layers": 4,
            "head_width": 32,
            "mlp_ratio": 4.0,
        },
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": vocab_size,
            "width": 64,
            "heads": 2,
            "layers": 2,
            "hf_tokenizer_name": "toy-clip (tokenizer.json in this folder)",
            "pad_id": 0,
        },
    }


def write_toy_folder(folder: Path, words: list[str]) -> dict[str, Any]:
    """Write the word-level tokenizer and ``open_clip_config.json`` for ``words``; returns the model config."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *words, "[SOS]", "[EOS]"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[SOS] $A [EOS]", special_tokens=[("[SOS]", vocab["[SOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[SOS]",
        eos_token="[EOS]",
        model_max_length=CONTEXT_LENGTH,
    ).save_pretrained(str(folder))
    cfg = toy_model_cfg(len(vocab))
    preprocess = {
        "mean": list(OPENAI_MEAN),
        "std": list(OPENAI_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}, indent=2) + "\n"
    )
    return cfg


def toy_clip(checkpoint: str | None = None, precision: str = "fp32") -> OpenClipAdapter:
    """The toy CLIP trained on the toy world (shipped weights), or its architecture with ``checkpoint``'s weights."""
    if checkpoint is None and not (TOY_DIR / WEIGHTS_FILE).is_file():
        raise OpenClipError(
            f"the toy CLIP weights {TOY_DIR / WEIGHTS_FILE} are missing; rebuild them with "
            "plugins/lrbench-plugin-openclip/scripts/train_toy_clip.py"
        )
    return load_openclip(f"local-dir:{TOY_DIR}", checkpoint=checkpoint, precision=precision, label="toy-clip")
