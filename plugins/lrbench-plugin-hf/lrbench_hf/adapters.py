"""Zero-shot adapters over transformers models.

- :class:`HFDualEncoder`: any model with ``get_image_features`` / ``get_text_features`` (CLIPModel, SiglipModel,
  AltCLIP, ... through ``AutoModel``). Text is tokenized the way each family was trained: SigLIP pools the last token, so
  its prompts are padded to ``max_length`` (64) without an attention mask as the model card does; CLIP-style models
  pad to the longest prompt and pass the mask.
- :class:`HFBlipITC`: ``BlipForImageTextRetrieval`` through its image-text *contrastive* (ITC) path: the [CLS] token of
  the vision model through ``vision_proj`` and the [CLS] token of the unimodal text encoder (no cross-attention)
  through ``text_proj``. That is the path BLIP trains with the contrastive loss and the one that gives one embedding per
  image and per prompt; the ITM head scores (image, text) pairs jointly and cannot make a classifier from class prompts.

Preprocessing is read from the model's image processor config: size (``shortest_edge`` + center crop, or a fixed
``height`` x ``width`` squash), mean, std and resample filter.
"""

from __future__ import annotations

from typing import Any

import torch

from lrbench import ModelAdapter, Preprocess

#: PIL resampling codes (``Image.Resampling``) used by HF image processors -> lrbench interpolation names
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box"}


def _field(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def preprocess_from_image_processor(proc: Any) -> Preprocess:
    """lrbench's :class:`Preprocess` from a transformers image processor (CLIP, SigLIP, BLIP, ... styles)."""
    size, crop = proc.size, getattr(proc, "crop_size", None)
    do_crop = bool(getattr(proc, "do_center_crop", False))
    shortest, height, width = _field(size, "shortest_edge"), _field(size, "height"), _field(size, "width")
    if shortest:
        mode, image_size = "shortest", int(shortest)
    elif height and width:
        if height != width:
            raise ValueError(
                f"non-square processor size {height}x{width} is not supported (lrbench uses square inputs)"
            )
        mode, image_size = "squash", int(height)
    else:
        raise ValueError(f"unsupported image processor size {size!r}: expected shortest_edge or height/width")
    if do_crop:
        ch, cw = _field(crop, "height"), _field(crop, "width")
        if (ch, cw) != (image_size, image_size):
            raise ValueError(
                f"processor resizes to {image_size} but crops {ch}x{cw}; lrbench's Preprocess crops the resized size"
            )
    resample = getattr(proc, "resample", 3)
    interpolation = _RESAMPLE.get(int(getattr(resample, "value", resample)))
    if interpolation is None:
        raise ValueError(f"unsupported resample filter {resample!r}; known: {_RESAMPLE}")
    return Preprocess(
        image_size=image_size,
        mean=tuple(float(v) for v in proc.image_mean),
        std=tuple(float(v) for v in proc.image_std),
        interpolation=interpolation,
        resize_mode=mode,
    )


def features(out: Any) -> torch.Tensor:
    """``get_*_features`` return a tensor (transformers 4) or an output whose ``pooler_output`` is projected (5)."""
    return out if torch.is_tensor(out) else out.pooler_output


def text_kwargs_for(model_type: str, tokenizer: Any) -> dict[str, Any]:
    """Tokenizer arguments a family was trained with (SigLIP: pad to max_length with no attention mask -- it pools the
    last token and was trained attending to the padding, as its model card's processor call does)."""
    if model_type.startswith("siglip"):
        return {
            "padding": "max_length",
            "truncation": True,
            "max_length": min(int(tokenizer.model_max_length), 64),
            "return_attention_mask": False,
        }
    max_length = int(tokenizer.model_max_length) if tokenizer.model_max_length < 10_000 else 77
    return {"padding": True, "truncation": True, "max_length": max_length}


class _HFAdapter(ModelAdapter):
    kind = "zero-shot"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        preprocess: Preprocess,
        identity: dict[str, Any],
        text_kwargs: dict[str, Any],
    ):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self._identity = identity
        self.text_kwargs = text_kwargs
        self.device = next(model.parameters()).device

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, next(self.module.parameters()).dtype)

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {
            k: v.to(self.device)
            for k, v in self.tokenizer(list(texts), return_tensors="pt", **self.text_kwargs).items()
            if k in ("input_ids", "attention_mask")
        }


class HFDualEncoder(_HFAdapter):
    """A transformers dual encoder: ``get_image_features`` and ``get_text_features``; scale = exp(logit_scale)."""

    @property
    def logit_scale(self) -> float:  # type: ignore[override]
        scale = getattr(self.module, "logit_scale", None)
        return float(scale.detach().exp()) if scale is not None else 100.0

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return features(self.module.get_image_features(pixel_values=self._pixels(x)))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return features(self.module.get_text_features(**self._tokens(texts)))


class HFBlipITC(_HFAdapter):
    """``BlipForImageTextRetrieval`` image-text contrastive features (vision/text [CLS] through vision_proj/text_proj).

    transformers drops BLIP's learned temperature, so the logit scale is CLIP's 100 (the LR0.FM scripts use 100 too);
    top-k accuracy does not depend on it.
    """

    logit_scale = 100.0

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.module.vision_model(pixel_values=self._pixels(x)).last_hidden_state
        return self.module.vision_proj(hidden[:, 0, :])

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        hidden = self.module.text_encoder(**self._tokens(texts)).last_hidden_state
        return self.module.text_proj(hidden[:, 0, :])
