"""open_clip models for lrbench: the ``openclip`` family and the offline ``toy-clip``."""

from .adapter import OpenClipAdapter, OpenClipError, load_openclip, parse_id, preprocess_from_cfg
from .toy import TOY_DIR, toy_clip

__all__ = [
    "OpenClipAdapter",
    "OpenClipError",
    "TOY_DIR",
    "load_openclip",
    "parse_id",
    "preprocess_from_cfg",
    "toy_clip",
]
__version__ = "0.1.0"
