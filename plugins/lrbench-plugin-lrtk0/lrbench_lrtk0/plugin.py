"""lrbench hooks of the LR-TK0 plugin: the ``lrtk0`` and ``lrtk0-vpt`` methods."""

from __future__ import annotations

from lrbench import hookimpl

from .method import LRTokens, vpt


@hookimpl
def register_methods(register):
    register(
        "lrtk0",
        LRTokens,
        "LR tokens (LR0.FM LR-TK0): learnable tokens added to a frozen ViT's patch tokens",
        info={"stage": "train", "paper": "LR0.FM (ICLR 2025) section 5"},
    )
    register(
        "lrtk0-vpt",
        vpt,
        "VPT baseline: 50 learnable prompts concatenated before a frozen ViT's first block, trained like LR-TK0",
        info={"stage": "train", "paper": "LR0.FM Table 4"},
    )
