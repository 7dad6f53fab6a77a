"""ALBEF and the original BLIP checkpoints, rebuilt from well-kept parts.

Neither ALBEF nor the pre-trained-only BLIP checkpoints (model_base_14M.pth, model_base.pth,
model_base_capfilt_large.pth, model_large.pth) exist in transformers format. Their contrastive (ITC) path is small:

- image: a ViT in timm's layout (``visual_encoder.*``: cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1,
  attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm; LayerNorm eps 1e-6) -> [CLS] -> ``vision_proj``;
- text: a BERT encoder (``text_encoder[.bert].*`` in transformers' BERT naming) run in "text" mode -> [CLS] ->
  ``text_proj``. ALBEF's text mode is the layers *before* its fusion layer (those without ``crossattention`` weights,
  6 of 12); BLIP's text mode runs all 12 layers and skips their cross-attention.

So the image tower is ``timm.models.vision_transformer.VisionTransformer`` and the text tower ``transformers.BertModel``
with the checkpoint's keys loaded into them; every key the ITC path needs must be present (a missing key is an error,
the momentum encoders, queues, ITM/MLM heads and decoders are ignored). ``temp`` gives the logit scale 1/temp.
Checkpoints are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from lrbench import OPENAI_MEAN, OPENAI_STD, LrbenchError, ModelAdapter, Preprocess

FAMILIES = ("albef", "blip")


class ITCEncoders(torch.nn.Module):
    """The ITC path: ViT + projection, BERT text encoder + projection."""

    def __init__(
        self,
        vision: torch.nn.Module,
        text: torch.nn.Module,
        vision_proj: torch.nn.Linear,
        text_proj: torch.nn.Linear,
        temp: float,
    ):
        super().__init__()
        self.visual_encoder, self.text_encoder = vision, text
        self.vision_proj, self.text_proj = vision_proj, text_proj
        self.temp = temp

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_proj(self.visual_encoder.forward_features(pixels)[:, 0, :])

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.text_proj(hidden[:, 0, :])


def unwrap_checkpoint(obj: Any) -> dict[str, torch.Tensor]:
    """The state dict inside an ALBEF/BLIP/LAVIS checkpoint file (``{'model': ...}`` or bare)."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or "visual_encoder.pos_embed" not in obj:
        raise LrbenchError(
            "not an ALBEF/BLIP checkpoint: no 'visual_encoder.pos_embed' key (expected the official "
            "ALBEF.pth / ALBEF_4M.pth / model_base*.pth / model_large*.pth / LAVIS retrieval files)"
        )
    return obj


def _text_prefix(sd: dict[str, torch.Tensor]) -> str:
    return "text_encoder.bert." if "text_encoder.bert.embeddings.word_embeddings.weight" in sd else "text_encoder."


def _text_layers(sd: dict[str, torch.Tensor], prefix: str, family: str) -> int:
    layers = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))})
    if not layers:
        raise LrbenchError(f"checkpoint has no text encoder layers under {prefix!r}")
    if family == "blip":
        return len(layers)
    fused = [i for i in layers if f"{prefix}encoder.layer.{i}.crossattention.self.query.weight" in sd]
    return min(fused) if fused else len(layers)


def build_itc_from_state_dict(sd: dict[str, torch.Tensor], family: str, image_size: int) -> ITCEncoders:
    """Builds the ITC encoders from an ALBEF/BLIP state dict (sizes read from the tensors) and loads the weights."""
    import timm.models.vision_transformer as tvit
    from timm.layers import resample_abs_pos_embed
    from transformers import BertConfig, BertModel

    if family not in FAMILIES:
        raise LrbenchError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    width = sd["visual_encoder.cls_token"].shape[-1]
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"visual_encoder\.blocks\.(\d+)\.", k)))
    patch = sd["visual_encoder.patch_embed.proj.weight"].shape[-1]
    if image_size % patch:
        raise LrbenchError(f"image_size {image_size} is not a multiple of the patch size {patch}")
    vision = tvit.VisionTransformer(
        img_size=image_size,
        patch_size=patch,
        embed_dim=width,
        depth=depth,
        num_heads=width // 64,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
    )
    vis_sd = {k[len("visual_encoder.") :]: v for k, v in sd.items() if k.startswith("visual_encoder.")}
    grid = image_size // patch
    if vis_sd["pos_embed"].shape[1] != grid * grid + 1:  # ALBEF/BLIP interpolate bicubically to the eval resolution
        vis_sd["pos_embed"] = resample_abs_pos_embed(
            vis_sd["pos_embed"], new_size=(grid, grid), num_prefix_tokens=1, interpolation="bicubic", antialias=False
        )
    vision.load_state_dict(vis_sd, strict=True)

    prefix = _text_prefix(sd)
    n_layers = _text_layers(sd, prefix, family)
    words = sd[f"{prefix}embeddings.word_embeddings.weight"]
    positions = sd[f"{prefix}embeddings.position_embeddings.weight"]
    hidden = words.shape[1]
    config = BertConfig(
        vocab_size=words.shape[0],
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=hidden // 64,
        intermediate_size=sd[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=positions.shape[0],
        layer_norm_eps=1e-12,
    )
    text = BertModel(config, add_pooling_layer=False)
    wanted = text.state_dict()
    text_sd: dict[str, torch.Tensor] = {}
    for key in wanted:
        source = prefix + key
        if source in sd:
            text_sd[key] = sd[source]
        elif key == "embeddings.token_type_embeddings.weight":  # BLIP's BERT has no token types: type 0 adds zero
            text_sd[key] = torch.zeros_like(wanted[key])
        elif key.endswith(("position_ids", "token_type_ids")):
            text_sd[key] = wanted[key]
        else:
            raise LrbenchError(f"checkpoint lacks {source!r}, needed by the {family} text encoder")
    text.load_state_dict(text_sd, strict=True)

    def linear(name: str) -> torch.nn.Linear:
        weight = sd[f"{name}.weight"]
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
        layer.load_state_dict({"weight": weight, "bias": sd[f"{name}.bias"]})
        return layer

    temp = float(sd["temp"]) if "temp" in sd else 0.07
    return ITCEncoders(vision, text, linear("vision_proj"), linear("text_proj"), temp).eval()


class SalesforceITC(ModelAdapter):
    """ALBEF / BLIP (original checkpoints) zero-shot adapter over :class:`ITCEncoders` and a BERT tokenizer.

    Text is truncated at 35 tokens like the LR0.FM scripts (padding does not change [CLS] under the attention mask);
    the logit scale is 1/temp of the checkpoint.
    """

    kind = "zero-shot"

    def __init__(
        self, model: ITCEncoders, tokenizer: Any, image_size: int, identity: dict[str, Any], max_length: int = 35
    ):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        # ALBEF's and BLIP's test transform: Resize((s, s), bicubic) -- a squash, no crop -- with OpenAI mean/std
        self.preprocess = Preprocess(
            image_size=image_size, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic", resize_mode="squash"
        )
        self._identity = identity
        self.logit_scale = 1.0 / model.temp
        self.device = next(model.parameters()).device

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(x.to(self.device, next(self.module.parameters()).dtype))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return self.module.encode_text(tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))
