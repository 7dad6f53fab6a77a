"""The ``lrtk0`` method: train LR tokens for a frozen ViT (or load a token file) and evaluate the model with them.

Spec forms::

    methods:
      - none
      - {name: lrtk0, train: {data: {name: toyworld, split: train, n: 2000}, steps: 300}}
      - {name: lrtk0, path: tokens.safetensors}
      - {name: lrtk0, start_block: 5, patch_token: false, train: {...}}     # Table 14: tokens from block 5 on
      - {name: lrtk0-vpt, train: {...}}                                    # VPT baseline: 50 concatenated prompts

Trained tokens are a small safetensors file stored under ``<cache>/artifacts/lrtk0/<key>/tokens.safetensors``, the key
hashing the training config, the token layout, the training data's identity, the seed and the base model's identity:
a second run loads them instead of training, an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from lrbench import (
    LrbenchError,
    Method,
    MethodContext,
    ModelAdapter,
    ModelWrapper,
    atomic_write_bytes,
    atomic_write_text,
    content_key,
    file_sha256,
)

from .tokens import MODES, TokenInjector, TokenSet, ViTLayout, find_vit, make_tokens, tokens_from_tensors
from .train import TRAIN_VERSION, TrainConfig, resolve_data, train_tokens

TOKENS_FILE = "tokens.safetensors"


def save_tokens(path: str | Path, tokens: TokenSet, meta: dict[str, Any] | None = None) -> None:
    """Write the tokens (float32) with their layout and ``meta`` (training config, base model) as JSON metadata."""
    header = {"lrtk0": json.dumps({"tokens": tokens.config(), **(meta or {})}, sort_keys=True, default=str)}
    atomic_write_bytes(path, safetensors_bytes(tokens.tensors(), metadata=header))


def load_tokens(path: str | Path) -> tuple[TokenSet, dict[str, Any]]:
    """Tokens and metadata from a file written by :func:`save_tokens` (safetensors: no code runs on load)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LrbenchError(f"lrtk0: token file {str(path)!r} not found")
    with safe_open(str(path), framework="pt") as fh:
        header = (fh.metadata() or {}).get("lrtk0")
    if header is None:
        raise LrbenchError(f"lrtk0: {path} is not an LR token file (no 'lrtk0' metadata)")
    meta = json.loads(header)
    return tokens_from_tensors(load_file(str(path)), meta["tokens"]), meta


class LRTokenAdapter(ModelWrapper):
    """The wrapped model with its tokens switched on for every image encoding (text tower untouched)."""

    def __init__(self, inner: ModelAdapter, tokens: TokenSet, layout: ViTLayout, method_identity: dict[str, Any]):
        super().__init__(inner, method_identity)
        self.tokens = tokens.to(inner.device).requires_grad_(False)
        self.injector = TokenInjector(layout, self.tokens)

    def to(self, device: str | torch.device) -> "LRTokenAdapter":
        self.inner.to(device)
        self.tokens.to(device)
        return self

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        with self.injector.active():
            return self.inner.encode_image(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        with self.injector.active():
            return self.inner.classify(x)


class LRTokens(Method):
    """LR-TK0 (LR0.FM): learnable tokens added to the patch tokens of a frozen ViT, trained by HR-teacher distillation."""

    name = "lrtk0"
    stage = "train"

    def __init__(
        self,
        train: dict[str, Any] | None = None,
        path: str | None = None,
        mode: str = "add",
        start_block: int = 0,
        patch_token: bool = True,
        num_prompts: int = 50,
    ):
        if (train is None) == (path is None):
            raise LrbenchError(
                f"{self.name}: give exactly one of 'train' (a mapping: data, steps, ...) or 'path' (a token file)"
            )
        if mode not in MODES:
            raise LrbenchError(f"{self.name}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.train = TrainConfig.from_dict(dict(train)) if train is not None else None
        self.path, self.mode, self.start_block = path, mode, int(start_block)
        self.patch_token, self.num_prompts = bool(patch_token), int(num_prompts)

    def params(self) -> dict[str, Any]:
        return {
            "train": self.train.as_dict() if self.train else None,
            "path": self.path,
            "mode": self.mode,
            "start_block": self.start_block,
            "patch_token": self.patch_token,
            "num_prompts": self.num_prompts,
        }

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The training data's identity (as in the artifact key): other images make other tokens, so other cells. A
        token file (``path``) is hashed with the spec entry."""
        if self.train is None:
            return {}
        return {"data": resolve_data(self.train.data, dataset)[1]}

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        if model.module is None:
            raise LrbenchError(f"{self.name}: model {type(model).__name__} exposes no torch module to add tokens to")
        layout = find_vit(model.module)
        if self.path is not None:
            tokens, _ = load_tokens(self.path)
            ident = {
                "name": self.name,
                "file_sha256": file_sha256(Path(self.path).expanduser()),
                "tokens": tokens.config(),
            }
        else:
            tokens, key = self._trained(model, layout, ctx)
            ident = {"name": self.name, "artifact": key, "tokens": tokens.config()}
        return LRTokenAdapter(model, tokens, layout, ident)

    def _trained(self, model: ModelAdapter, layout: ViTLayout, ctx: MethodContext) -> tuple[TokenSet, str]:
        assert self.train is not None
        cfg = self.train
        source, data_id = resolve_data(cfg.data, ctx.dataset)
        seed = int(cfg.seed if cfg.seed is not None else ctx.seed)
        fresh = make_tokens(layout, self.mode, self.start_block, self.patch_token, self.num_prompts, cfg.init, seed)
        description = {
            "version": TRAIN_VERSION,
            "train": cfg.resolved(layout),
            "data": data_id,
            "seed": seed,
            "tokens": fresh.config(),
            "base": model.identity(),
        }
        key = content_key(description)
        folder = ctx.artifacts.path(self.name, key)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / TOKENS_FILE
        with FileLock(str(folder / "train.lock")):
            if not target.is_file():
                ctx.log.info("lrtk0: training %s tokens (%s) into %s", fresh.mode, fresh.config(), folder)
                injector = TokenInjector(layout, fresh)
                try:
                    result = train_tokens(
                        model,
                        injector,
                        cfg,
                        source=source,
                        seed=seed,
                        device=ctx.device,
                        checkpoint=folder / "state.pt",
                    )
                finally:
                    injector.remove()
                atomic_write_text(
                    folder / "train_log.json",
                    json.dumps(
                        {
                            "description": description,
                            "config": result.config,
                            "losses": result.losses,
                            "seconds": result.seconds,
                            "images_per_second": result.images_per_second,
                            "logit_scale": result.logit_scale,
                        },
                        default=str,
                    ),
                )
                save_tokens(
                    target, fresh, {"train": result.config, "data": data_id, "seed": seed, "base": model.identity()}
                )
                (folder / "state.pt").unlink(missing_ok=True)
        tokens, _ = load_tokens(target)
        return tokens, key


def vpt(train: dict[str, Any] | None = None, path: str | None = None, num_prompts: int = 50) -> LRTokens:
    """The VPT baseline of LR0.FM Table 4: ``num_prompts`` tokens concatenated before the first block, LR-TK0 training."""
    method = LRTokens(train=train, path=path, mode="vpt", num_prompts=num_prompts)
    method.name = "lrtk0-vpt"
    return method
