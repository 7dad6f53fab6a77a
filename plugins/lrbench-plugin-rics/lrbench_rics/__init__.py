"""lrbench-plugin-rics: Robust Inference by Crop Selection and shift-consistency evaluation (Shifman & Weiss, ECCV 2024)."""

from .selection import CropSelector, adversarial_bound, consistency_bound

__all__ = ["CropSelector", "adversarial_bound", "consistency_bound"]
__version__ = "0.1.0"
