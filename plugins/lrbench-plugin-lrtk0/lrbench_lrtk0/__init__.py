"""LR-TK0 for lrbench: low-resolution tokens for frozen vision transformers (LR0.FM, ICLR 2025, section 5)."""

from .method import LRTokenAdapter, LRTokens, load_tokens, save_tokens
from .tokens import TokenInjector, TokenSet, ViTLayout, find_vit, make_tokens
from .train import TrainConfig, train_tokens

__version__ = "0.1.0"

__all__ = [
    "LRTokenAdapter",
    "LRTokens",
    "TokenInjector",
    "TokenSet",
    "TrainConfig",
    "ViTLayout",
    "find_vit",
    "load_tokens",
    "make_tokens",
    "save_tokens",
    "train_tokens",
]
