"""Training strategies as lrbench methods: ``face/<strategy>`` trains the spec's model (or loads a checkpoint).

Spec usage::

    methods:
      - none
      - face/st-m1: {train: {data: ~/data/casia-112, epochs: 16, batch_size: 256}}
      - face/maug: {train: {dataset: {name: toyfaces, split: train}, epochs: 8}}
      - {name: face/bt-m, checkpoint: runs/bt-m/backbone.safetensors}

The trained backbone is an artifact keyed by the hash of (method config, base model identity, training data identity):
a second run loads it instead of training; a killed training resumes from its last epoch checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from lrbench import (
    LrbenchError,
    Method,
    MethodContext,
    ModelAdapter,
    ModelWrapper,
    content_key,
    file_sha256,
    imagefolder,
)

from .models import flip_embed, load_state_dict_file
from .train import RECIPES, FaceTrainer, TrainConfig, save_backbone


class TrainedFaceModel(ModelWrapper):
    """The base adapter (preprocessing, flip setting) with a trained copy of its network."""

    def __init__(self, inner: ModelAdapter, method_identity: dict[str, Any], module: nn.Module):
        super().__init__(inner, method_identity)
        self._module = module.eval()

    @property
    def module(self) -> nn.Module:  # type: ignore[override]
        return self._module

    def to(self, device: str | torch.device) -> "TrainedFaceModel":
        self.inner.to(device)
        self._module.to(device)
        return self

    def eval(self) -> "TrainedFaceModel":
        self._module.eval()
        return self

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return flip_embed(self._module, x) if getattr(self.inner, "flip", False) else self._module(x)


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()


class FaceTrainingMethod(Method):
    """Train the model with one of the face strategies (BT / ST / MAug + LogExp), or load a trained checkpoint."""

    stage = "train"

    def __init__(self, strategy: str, train: dict[str, Any] | None = None, checkpoint: str | None = None):
        if (train is None) == (checkpoint is None):
            raise LrbenchError(
                f"face/{strategy}: give exactly one of 'train' (a mapping of training options) or "
                "'checkpoint' (a trained backbone file)"
            )
        self.strategy = strategy
        self.train = dict(train or {})
        self.checkpoint = checkpoint
        if train is not None:
            if not ("data" in self.train) ^ ("dataset" in self.train):
                raise LrbenchError(
                    f"face/{strategy}: train needs one of 'data' (an ImageFolder of identity folders) "
                    "or 'dataset' (a registered dataset name or {name: ..., params})"
                )
            self._cfg = TrainConfig.from_dict(strategy, self.train)
            self._cfg.recipe()  # fail at spec validation, not after loading the data

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"face/{self.strategy}"

    def identity(self) -> dict[str, Any]:
        if self.checkpoint is not None:
            path = Path(self.checkpoint).expanduser()
            return {"name": self.name, "checkpoint": str(path), "sha256": file_sha256(path) if path.is_file() else None}
        return {"name": self.name, "train": self.train, "config": asdict(self._cfg)}

    def inputs_identity(self, dataset: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The training data's identity (as in the artifact key): other images make another backbone, so other cells;
        and the resolved training configuration (the recipe's defaults from ``recipes.json`` included), so a changed
        default is a new backbone too. A ``checkpoint`` is hashed with the spec entry."""
        if self.checkpoint is not None:
            return {}
        return {"data": self._training_data(dataset).identity(), "config": asdict(self._cfg)}

    def _training_data(self, dataset: Callable[..., Any] | None):
        if "data" in self.train:
            return imagefolder(str(self.train["data"]), name="face-train")
        spec = self.train["dataset"]
        name, params = (
            (spec, {}) if isinstance(spec, str) else (spec["name"], {k: v for k, v in spec.items() if k != "name"})
        )
        if dataset is None:
            raise LrbenchError(f"{self.name}: this run offers no dataset factory; use train.data (a folder) instead")
        return dataset(name, **params)

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        if model.kind != "embedder" or model.module is None:
            raise LrbenchError(f"{self.name} trains face embedders; model {model.identity()} is a {model.kind}")
        net = copy.deepcopy(model.module)
        if self.checkpoint is not None:
            net.load_state_dict(load_state_dict_file(self.checkpoint), strict=True)
            return TrainedFaceModel(model, self.identity(), net).to(ctx.device)
        data = self._training_data(ctx.dataset)
        key = content_key({"method": self.identity(), "model": model.identity(), "data": data.identity()})
        workdir = ctx.artifacts.path(self.name.replace("/", "-"), key)
        final = workdir / "backbone.safetensors"
        if (workdir / "train.json").is_file() and final.is_file():
            ctx.log.info("%s: loading trained backbone %s", self.name, final)
            net.load_state_dict(load_state_dict_file(final), strict=True)
        else:
            if self._cfg.init == "scratch":
                _reset(net)
            elif self._cfg.init != "model":
                raise LrbenchError(f"{self.name}: init must be 'model' or 'scratch', got {self._cfg.init!r}")
            torch.manual_seed(self._cfg.seed)
            with torch.no_grad():
                emb_size = int(net.eval()(model.preprocess.tensor(torch.zeros(1, 3, 112, 112))).shape[-1])
            num_classes = int(max(data.labels)) + 1
            trainer = FaceTrainer(net, model.preprocess.tensor, emb_size, num_classes, self._cfg, ctx.device)
            history = trainer.fit(data, workdir)
            save_backbone(net, workdir, self._cfg, history)
        return TrainedFaceModel(model, {**self.identity(), "artifact": key}, net).to(ctx.device)


def method_factory(strategy: str):
    def factory(train: dict[str, Any] | None = None, checkpoint: str | None = None) -> FaceTrainingMethod:
        return FaceTrainingMethod(strategy, train, checkpoint)

    factory.__doc__ = f"Face training strategy {strategy!r} (train: options | checkpoint: file)"
    return factory


STRATEGIES = tuple(RECIPES)
