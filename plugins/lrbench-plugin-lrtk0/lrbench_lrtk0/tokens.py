"""LR tokens (LR0.FM section 5.1) and the VPT baseline, injected into a frozen vision transformer with forward hooks.

LR tokens: a learnable (num_patches, dim) tensor is ADDED to the patch tokens (never the prefix/class tokens) right after
the position embedding, and one more before every transformer block: (N + 1) x num_patches x dim parameters for N
blocks. ``start_block=i`` adds tokens only before blocks i..N-1 and none after patchification (Table 14 / Fig. 15).
VPT (Jia et al. 2022, the paper's Table 4 baseline), placed as the authors' EVA code places it: ``num_prompts`` learnable
tokens CONCATENATED after the class token where the position embedding is added, each carrying the class token's position
embedding, excluded from rotary position embeddings (timm ``Eva``: they count as prefix tokens while active); they are
removed after the last block so pooling (class token, average of patch tokens) sees the base model's token set.

Initial values are the authors' (``init="authors"``): open_clip towers normal(std 0.01) for the token after
patchification and normal(std 0.02) per block; timm towers (EVA) and every VPT prompt trunc_normal(std 0.02) (timm's
bounds +-2, i.e. no truncation in practice). ``init="zeros"`` starts the student exactly at the teacher.

Hooks rather than a forward re-implementation: the backbone's own ``forward`` runs unchanged, so the same code serves
open_clip's ``VisionTransformer`` (CLIP, OpenCLIP, MetaCLIP) and timm's ``VisionTransformer`` / ``Eva`` trunks that
open_clip wraps (EVA-CLIP, SigLIP). Hooks only act inside :meth:`TokenInjector.active`, so the same module serves as the
frozen teacher (tokens off) and the student (tokens on), and a baseline sharing the module is never affected.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from lrbench import LrbenchError

MODES = ("add", "vpt")
INITS = ("authors", "zeros")
#: the authors' initial values per tower family and tensor: (torch.nn.init function name, std). Sources in docs/lrtk0.md:
#: open_clip/src/open_clip_local/model_lr.py (patch 0.01, blocks 0.02), EVA/EVA-CLIP/rei/eva_clip/eva_vit_model.py
#: (trunc_normal 0.02 for the LR tokens and the VPT prompts)
AUTHORS_INIT: dict[str, dict[str, tuple[str, float]]] = {
    "open_clip": {"patch": ("normal_", 0.01), "blocks": ("normal_", 0.02), "prompts": ("trunc_normal_", 0.02)},
    "timm": {"patch": ("trunc_normal_", 0.02), "blocks": ("trunc_normal_", 0.02), "prompts": ("trunc_normal_", 0.02)},
}


class UnsupportedModelError(LrbenchError, TypeError):
    """The model holds no vision transformer this plugin knows how to put tokens into."""


@dataclass(frozen=True)
class ViTLayout:
    """Where the tokens go in one vision transformer."""

    #: module whose input is the token sequence right after the position embedding (before the pre-norm)
    embed_site: nn.Module
    blocks: tuple[nn.Module, ...]
    num_prefix: int
    num_patches: int
    dim: int
    #: False when the blocks take (L, B, D) sequences (old open_clip transformers)
    batch_first: bool
    family: str
    #: the class token's position embedding (dim,), or None when the class token gets none: VPT prompts carry it
    cls_pos: Callable[[], torch.Tensor | None] = lambda: None
    #: attention modules that apply rotary embeddings after ``num_prefix_tokens`` leading tokens (timm Eva)
    rope_attns: tuple[nn.Module, ...] = ()

    @property
    def init_family(self) -> str:
        """Key of :data:`AUTHORS_INIT`: ``open_clip`` or ``timm``."""
        return "open_clip" if self.family == "open_clip" else "timm"

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "blocks": len(self.blocks),
            "num_patches": self.num_patches,
            "dim": self.dim,
            "num_prefix": self.num_prefix,
        }


def _openclip_layout(vit: nn.Module) -> ViTLayout:
    grid = vit.grid_size
    return ViTLayout(
        embed_site=vit.patch_dropout,
        blocks=tuple(vit.transformer.resblocks),
        num_prefix=1,
        num_patches=int(grid[0] * grid[1]),
        dim=int(vit.transformer.width),
        batch_first=bool(getattr(vit.transformer, "batch_first", True)),
        family="open_clip",
        cls_pos=lambda: vit.positional_embedding[0],
    )


def _timm_layout(vit: nn.Module) -> ViTLayout:
    def cls_pos() -> torch.Tensor | None:
        pos = getattr(vit, "pos_embed", None)
        if pos is None or getattr(vit, "no_embed_class", False) or getattr(vit, "cls_token", None) is None:
            return None
        return pos[0, 0]

    rope = getattr(vit, "rope", None) is not None
    attns = tuple(b.attn for b in vit.blocks if hasattr(getattr(b, "attn", None), "num_prefix_tokens")) if rope else ()
    return ViTLayout(
        embed_site=vit.norm_pre,
        blocks=tuple(vit.blocks),
        num_prefix=int(vit.num_prefix_tokens),
        num_patches=int(vit.patch_embed.num_patches),
        dim=int(vit.embed_dim),
        batch_first=True,
        family=f"timm.{type(vit).__name__}",
        cls_pos=cls_pos,
        rope_attns=attns,
    )


def find_vit(module: nn.Module) -> ViTLayout:
    """The first vision transformer inside ``module`` (a whole CLIP model, its ``visual`` tower or a bare ViT)."""
    from open_clip.transformer import VisionTransformer as OpenClipViT

    timm_types: tuple[type, ...] = ()
    try:
        from timm.models.eva import Eva
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        timm_types = (TimmViT, Eva)
    except ImportError:  # timm is optional: open_clip's own ViTs need none of it
        pass
    for m in module.modules():
        if isinstance(m, OpenClipViT):
            return _openclip_layout(m)
        if timm_types and isinstance(m, timm_types):
            return _timm_layout(m)
    raise UnsupportedModelError(
        f"LR tokens need a vision transformer; {type(module).__name__} contains no open_clip VisionTransformer, "
        "timm VisionTransformer or timm Eva (convolutional towers such as ResNet / ConvNeXt CLIPs have no patch tokens)"
    )


class TokenSet(nn.Module):
    """The learnable tensors. ``add``: ``patch`` (P, D) and ``blocks`` (N - start_block, P, D); ``vpt``: ``prompts`` (K, D)."""

    def __init__(
        self,
        mode: str,
        num_blocks: int,
        num_patches: int,
        dim: int,
        start_block: int = 0,
        patch_token: bool = True,
        num_prompts: int = 50,
    ):
        super().__init__()
        if mode not in MODES:
            raise LrbenchError(f"lrtk0 mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0 <= start_block < num_blocks:
            raise LrbenchError(
                f"lrtk0 start_block must be in [0, {num_blocks - 1}] for a {num_blocks}-block model, got {start_block}"
            )
        self.mode, self.num_blocks, self.start_block = mode, num_blocks, start_block
        self.num_patches, self.dim = num_patches, dim
        # zeros here; :func:`initialise` draws the authors' values for training (a loaded file overwrites them)
        if mode == "add":
            self.patch = nn.Parameter(torch.zeros(num_patches, dim)) if patch_token and start_block == 0 else None
            self.blocks = nn.Parameter(torch.zeros(num_blocks - start_block, num_patches, dim))
            self.prompts = None
        else:
            self.prompts = nn.Parameter(torch.zeros(num_prompts, dim))
            self.patch = self.blocks = None

    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "num_blocks": self.num_blocks,
            "start_block": self.start_block,
            "num_patches": self.num_patches,
            "dim": self.dim,
            "patch_token": self.patch is not None,
            "num_prompts": 0 if self.prompts is None else int(self.prompts.shape[0]),
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().contiguous() for k, v in self.named_parameters()}


def initialise(tokens: TokenSet, layout: ViTLayout, init: str = "authors", seed: int = 0) -> TokenSet:
    """Draw the tokens' initial values in place: the authors' per-family distributions (:data:`AUTHORS_INIT`) from a
    generator seeded with ``seed``, or zeros (the student then starts bit-identical to the teacher)."""
    if init not in INITS:
        raise LrbenchError(f"lrtk0 train: init must be one of {', '.join(INITS)}, got {init!r}")
    rules = AUTHORS_INIT[layout.init_family]
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, param in tokens.named_parameters():
            if init == "zeros":
                param.zero_()
                continue
            fn, std = rules[name]
            getattr(nn.init, fn)(param, std=std, generator=generator)
    return tokens


def make_tokens(
    layout: ViTLayout,
    mode: str = "add",
    start_block: int = 0,
    patch_token: bool = True,
    num_prompts: int = 50,
    init: str = "zeros",
    seed: int = 0,
) -> TokenSet:
    """A token set shaped for ``layout``, initialised by :func:`initialise` (``zeros`` unless told)."""
    tokens = TokenSet(mode, len(layout.blocks), layout.num_patches, layout.dim, start_block, patch_token, num_prompts)
    return initialise(tokens, layout, init, seed)


class TokenInjector:
    """Forward hooks that put a :class:`TokenSet` into a ViT; they act only inside :meth:`active`."""

    def __init__(self, layout: ViTLayout, tokens: TokenSet):
        cfg = tokens.config()
        if (cfg["num_blocks"], cfg["dim"]) != (len(layout.blocks), layout.dim) or (
            tokens.mode == "add" and cfg["num_patches"] != layout.num_patches
        ):
            raise LrbenchError(
                f"LR tokens shaped for {cfg['num_blocks']} blocks x {cfg['num_patches']} patches x {cfg['dim']} dims do "
                f"not fit this model ({len(layout.blocks)} blocks x {layout.num_patches} patches x {layout.dim} dims): "
                "they were trained for another architecture or input size"
            )
        self.layout, self.tokens = layout, tokens
        self.enabled = False
        self._handles: list[Any] = []
        self._attach()

    def _to_bld(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.layout.batch_first else x.transpose(0, 1)

    def _add(self, x: torch.Tensor, token: torch.Tensor, batch_first: bool) -> torch.Tensor:
        p = self.layout.num_prefix
        if not batch_first:
            x = x.transpose(0, 1)
        if x.shape[1] - p != token.shape[0]:
            raise LrbenchError(
                f"LR tokens hold {token.shape[0]} patch positions but the model produced "
                f"{x.shape[1] - p} patch tokens: feed images at the model's input size"
            )
        out = torch.cat([x[:, :p], x[:, p:] + token.to(x.dtype)], dim=1)
        return out if batch_first else out.transpose(0, 1)

    def _attach(self) -> None:
        t, lay = self.tokens, self.layout
        if t.mode == "add":
            if t.patch is not None:
                self._handles.append(
                    lay.embed_site.register_forward_pre_hook(
                        lambda m, args: (self._add(args[0], t.patch, True), *args[1:]) if self.enabled else None
                    )
                )
            for j, block in enumerate(lay.blocks[t.start_block :]):
                self._handles.append(
                    block.register_forward_pre_hook(
                        lambda m, args, j=j: (
                            (self._add(args[0], t.blocks[j], lay.batch_first), *args[1:]) if self.enabled else None
                        )
                    )
                )
        else:
            self._handles.append(lay.embed_site.register_forward_pre_hook(self._insert_prompts))
            self._handles.append(lay.blocks[-1].register_forward_hook(self._remove_prompts))

    def _insert_prompts(self, module: nn.Module, args: tuple) -> tuple | None:
        """At the embedding site (position embedding added, pre-norm not yet applied, batch-first in every family)."""
        if not self.enabled:
            return None
        x, p = args[0], self.layout.num_prefix
        prompts = self.tokens.prompts
        cls_pos = self.layout.cls_pos()
        if cls_pos is not None:
            prompts = prompts + cls_pos.to(prompts.dtype)
        prompts = prompts.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return (torch.cat([x[:, :p], prompts, x[:, p:]], dim=1), *args[1:])

    def _remove_prompts(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if not self.enabled:
            return None
        x, p, k = self._to_bld(output), self.layout.num_prefix, self.tokens.prompts.shape[0]
        return self._to_bld(torch.cat([x[:, :p], x[:, p + k :]], dim=1))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Tokens on for the calls made inside; re-entrant, restores the previous state on exit. With VPT prompts in a
        rotary tower, the prompts count as prefix tokens meanwhile, so rotary embeddings skip them (as the authors'
        ``forward_VPT`` does) and still cover exactly the patch tokens."""
        previous, self.enabled = self.enabled, True
        extra = self.tokens.prompts.shape[0] if self.tokens.mode == "vpt" and not previous else 0
        for attn in self.layout.rope_attns:
            attn.num_prefix_tokens += extra
        try:
            yield
        finally:
            for attn in self.layout.rope_attns:
                attn.num_prefix_tokens -= extra
            self.enabled = previous

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def tokens_from_tensors(tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> TokenSet:
    """Rebuild a :class:`TokenSet` from saved tensors and its :meth:`TokenSet.config`."""
    tokens = TokenSet(
        config["mode"],
        int(config["num_blocks"]),
        int(config["num_patches"]),
        int(config["dim"]),
        int(config["start_block"]),
        bool(config["patch_token"]),
        int(config["num_prompts"]) or 50,
    )
    missing = {k for k, _ in tokens.named_parameters()} ^ set(tensors)
    if missing:
        raise LrbenchError(f"LR token file does not match its config: tensors {sorted(missing)} missing or unexpected")
    tokens.load_state_dict(tensors)
    return tokens
