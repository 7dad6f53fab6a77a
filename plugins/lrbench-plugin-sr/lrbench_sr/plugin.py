"""lrbench hooks of the SR plugin: SR methods, the srdown degradation, the sr task and its metrics, SR4IR, and the
segmentation and detection tasks, datasets, metrics and torchvision networks SR4IR evaluates."""

from __future__ import annotations

from lrbench import hookimpl

from . import backbones
from .dense import (
    Detection,
    Segmentation,
    TorchvisionDetector,
    TorchvisionSegmenter,
    check_torchvision,
    map50_metric,
    map_metric,
    miou_metric,
    pixel_acc_metric,
)
from .dense_data import CocoDetection, ToyDetection, ToySegmentation, VOCSegmentation
from .method import SpandrelSRMethod, SRMethod, short_form
from .quality import METRICS, SRDown, SRQuality, metric_factory
from .sr4ir import SR4IRMethod, sr4ir_kind, sr4ir_model


@hookimpl
def register_methods(register):
    register("sr", SRMethod, "Super-resolve LR inputs with an SR backbone (arch, variant, scale, checkpoint)")
    for alias, (arch, variant) in backbones.ALIASES.items():
        for scale in backbones.variant(arch, variant).scales:
            factory = short_form(arch, variant, scale)
            register(
                f"sr/{alias}-x{scale}",
                factory,
                factory.__doc__,
                info={"arch": arch, "variant": variant, "scale": scale},
            )
    register("sr/file", SpandrelSRMethod, SpandrelSRMethod.__doc__)
    register(
        "sr4ir",
        SR4IRMethod,
        "SR4IR: SR + a task network (ResNet-18, DeepLabV3, Faster R-CNN) trained with TDP loss, CQMix and alternate "
        "training",
    )


@hookimpl
def register_models(register):
    register(
        "sr4ir",
        sr4ir_model,
        "An SR4IR pair (SR + task network) as a classifier, segmenter or detector (task): trained by an sr4ir "
        "method, or a trained one from checkpoint",
        kind=sr4ir_kind,
    )
    register(
        "torchvision-seg",
        TorchvisionSegmenter,
        TorchvisionSegmenter.__doc__,
        accepts_id=True,
        kind="segmenter",
        check=check_torchvision,
    )
    register(
        "torchvision-det",
        TorchvisionDetector,
        TorchvisionDetector.__doc__,
        accepts_id=True,
        kind="detector",
        check=check_torchvision,
    )


@hookimpl
def register_datasets(register):
    register("voc-seg", VOCSegmentation, VOCSegmentation.__doc__)
    register("coco-det", CocoDetection, CocoDetection.__doc__)
    register("toyworld-seg", ToySegmentation, ToySegmentation.__doc__)
    register("toyworld-det", ToyDetection, ToyDetection.__doc__)


@hookimpl
def register_degradations(register):
    register("srdown", SRDown, "SR-benchmark LR: torch bicubic by 1/factor without antialias, 8-bit")


@hookimpl
def register_tasks(register):
    register("sr", SRQuality, "SR quality: PSNR / SSIM (RGB, Y) / LPIPS of SR outputs against HR images")
    register("segmentation", Segmentation, Segmentation.__doc__)
    register("detection", Detection, Detection.__doc__)


@hookimpl
def register_metrics(register):
    for name, doc in METRICS.items():
        register(name, metric_factory(name, doc), doc)
    for name, factory in (
        ("miou", miou_metric),
        ("pixel_acc", pixel_acc_metric),
        ("map", map_metric),
        ("map50", map50_metric),
    ):
        register(name, factory, factory.__doc__)
