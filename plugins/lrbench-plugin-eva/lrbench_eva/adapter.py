"""Zero-shot adapters for EVA-CLIP.

Two loaders exist upstream and both are kept thin here:

- :class:`EvaOpenClip` wraps an ``open_clip`` model (EVA01-g/14(+), EVA02-B/16, L/14, L/14-336, E/14(+) have open_clip
  configs whose image towers are timm EVA models). Preprocessing comes from the model's own ``preprocess_cfg``.
- :class:`EvaRemoteCode` wraps the models BAAI publishes as Hugging Face repositories with custom code
  (EVA-CLIP-8B, EVA-CLIP-18B): a module exposing ``encode_image(pixels)`` and ``encode_text(input_ids)`` plus a HF
  tokenizer; their preprocessing is the OpenAI CLIP image processor (bicubic shortest side, center crop, OpenAI mean/std).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lrbench import OPENAI_MEAN, OPENAI_STD, ModelAdapter, Preprocess

_RESIZE_MODES = ("shortest", "squash")


def preprocess_from_open_clip(cfg: dict[str, Any]) -> Preprocess:
    """lrbench's :class:`Preprocess` from an open_clip ``preprocess_cfg`` (size, mean, std, interpolation, resize_mode)."""
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"non-square model input {tuple(size)} is not supported (lrbench center-crops squares)")
        size = size[0]
    mode = cfg.get("resize_mode", "shortest")
    if mode not in _RESIZE_MODES:
        raise ValueError(
            f"open_clip resize_mode {mode!r} is not supported; lrbench supports {', '.join(_RESIZE_MODES)}"
        )
    return Preprocess(
        image_size=int(size),
        mean=tuple(float(v) for v in cfg.get("mean", OPENAI_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", OPENAI_STD)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        resize_mode=mode,
    )


def _param_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


class EvaOpenClip(ModelAdapter):
    """An open_clip EVA-CLIP model: ``encode_image`` / ``encode_text`` are open_clip's, tokens from open_clip's tokenizer."""

    kind = "zero-shot"

    def __init__(
        self, model: torch.nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], identity: dict[str, Any]
    ):
        import open_clip

        self.module = model.eval()
        self.tokenizer = tokenizer
        self._identity = identity
        self.preprocess = preprocess_from_open_clip(open_clip.get_model_preprocess_cfg(model))
        self.device = next(model.parameters()).device

    @property
    def logit_scale(self) -> float:  # type: ignore[override]
        return float(self.module.logit_scale.detach().exp())

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(x.to(self.device, _param_dtype(self.module)))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.module.encode_text(self.tokenizer(list(texts)).to(self.device))


class EvaRemoteCode(ModelAdapter):
    """A Hub model with custom code (EVA-CLIP-8B / 18B): ``module.encode_image(pixels)``, ``module.encode_text(ids)``.

    Texts are tokenized with ``padding=True`` exactly as the model card does; the logit scale is CLIP's 100 (the card's
    zero-shot example multiplies by 100).
    """

    kind = "zero-shot"

    def __init__(
        self,
        module: torch.nn.Module,
        tokenizer: Any,
        preprocess: Preprocess,
        identity: dict[str, Any],
        logit_scale: float = 100.0,
    ):
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self._identity = identity
        self.logit_scale = logit_scale
        self.device = next(module.parameters()).device

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(x.to(self.device, _param_dtype(self.module)))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(list(texts), return_tensors="pt", padding=True).input_ids.to(self.device)
        return self.module.encode_text(ids)
