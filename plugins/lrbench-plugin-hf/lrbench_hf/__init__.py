"""Hugging Face transformers models for lrbench: the ``hf``, ``albef`` and ``blip`` model families."""

from .adapters import HFBlipITC, HFDualEncoder, preprocess_from_image_processor
from .salesforce import SalesforceITC, build_itc_from_state_dict

__all__ = [
    "HFBlipITC",
    "HFDualEncoder",
    "SalesforceITC",
    "build_itc_from_state_dict",
    "preprocess_from_image_processor",
]
__version__ = "0.1.0"
