"""EVA-CLIP for lrbench: the ``eva`` model family (zero-shot adapters over open_clip and the HF Hub)."""

from .adapter import EvaOpenClip, EvaRemoteCode

__all__ = ["EvaOpenClip", "EvaRemoteCode"]
__version__ = "0.1.0"
