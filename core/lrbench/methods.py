"""Robustness methods: turn a model (or its input path) into a more robust one.

``apply(model, ctx)`` returns an adapter, usually a :class:`lrbench.models.ModelWrapper`: input-side methods (SR, crop
selection) override ``prepare`` / ``prepare_tensor`` / ``encode_image``; model-side methods (LR tokens) change the
module; training strategies train first, store the result with ``ctx.artifacts`` (keyed by the hash of their config and
inputs) and load it on the next run instead of training again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch

from .cache import Cache
from .models import ModelAdapter


@dataclass
class MethodContext:
    device: torch.device
    artifacts: "ArtifactStore"
    #: the run's content-keyed store, for methods that cache per-image outputs (e.g. SR images)
    cache: Cache | None = None
    seed: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("lrbench"))
    #: datasets a training method may ask for by registry name (``ctx.dataset("toyworld", split="train")``)
    dataset: Callable[..., Any] | None = None


class Method:
    """Base class. ``stage`` documents where it acts: ``input``, ``model`` or ``train``."""

    name: ClassVar[str] = "method"
    stage: ClassVar[str] = "input"

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params()}

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """What this method's outputs depend on beyond its spec entry, for the cell cache keys (empty: nothing).

        Every cell key holds the method's spec entry already, a parameter that names a file by that file's sha256. A
        method that reads more returns it here: the sha256 of a weights file it finds by a short name
        (``{"weights": ...}``), the identity of the data it trains on (``{"data": ...}``), built with ``dataset``
        (``dataset("toyworld", split="train")``, the run's dataset factory, as ``MethodContext.dataset``). Called when
        a run is planned, on a freshly constructed method: hash files and list folders, never load a model or train.
        """
        return {}

    def produces(self, model_kind: str) -> str:
        """The kind of model ``apply`` returns for a model of ``model_kind``: the plan chooses each unit's task from it.
        Most methods keep the kind; one that replaces the model (SR4IR's trained classifier) returns its own."""
        return model_kind

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        raise NotImplementedError


class ArtifactStore:
    """Files produced by training methods, under ``<cache>/artifacts/<method>/<key>/``, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, method: str, key: str) -> Path:
        return self.root / method / key

    def exists(self, method: str, key: str, filename: str) -> bool:
        return (self.path(method, key) / filename).is_file()
