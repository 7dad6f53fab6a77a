"""lrbench hooks of the RICS plugin: methods rics/*, conditions shift@D and cyclic@D, task shift, its metrics, timm."""

from __future__ import annotations

from lrbench import hookimpl

from .method import METHODS
from .metrics import METRIC_CLASSES
from .shifts import CropShift, CyclicShift
from .task import shift_task
from .timm_models import timm_check, timm_inputs, timm_kind, timm_model


@hookimpl
def register_methods(register):
    for name, factory in METHODS.items():
        register(name, factory, (factory.__doc__ or "").strip().split("\n")[0])


@hookimpl
def register_degradations(register):
    register("shift", CropShift, "Realistic crop-shift by up to D px (resize 256, crops 224); use with task: shift")
    register("cyclic", CyclicShift, "Cyclic shift by up to D px (torch.roll); use with task: shift")


@hookimpl
def register_tasks(register):
    register("shift", shift_task, "Per-shift class and 1-NN predictions for shift@D / cyclic@D conditions")


@hookimpl
def register_metrics(register):
    for cls in METRIC_CLASSES:
        register(cls.name, cls, (cls.__doc__ or "").strip().split("\n")[0])


@hookimpl
def register_models(register):
    register(
        "timm",
        timm_model,
        "timm image models (classifier or embedder); timm:ARCH[.TAG], pretrained: true",
        kind=timm_kind,
        info={"install": "pip install timm"},
        accepts_id=True,
        inputs=timm_inputs,
        check=timm_check,
    )
