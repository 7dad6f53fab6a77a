"""lrbench: measure and improve how vision models behave on low-resolution images.

This module is the plugin API: everything a plugin needs is imported from ``lrbench`` itself (``from lrbench import
ModelAdapter, LrbenchError``); the submodules are the core's own rooms and may change. Plugins implement the hooks in
:mod:`lrbench.hookspecs` with the :data:`hookimpl` marker and are found through the ``lrbench`` entry-point group;
a factory that declares a ``context`` parameter receives the run's registries (:class:`PluginContext`).
"""
import pluggy

__version__ = "0.1.0"

#: The single namespace string: hook markers, the plugin manager and the entry-point group all use it.
NAMESPACE = "lrbench"

hookimpl = pluggy.HookimplMarker(NAMESPACE)

# the public plugin API (the modules below never import this package, so the import graph stays free of circles)
from .cache import (Cache, atomic_write_bytes, atomic_write_text, content_key, file_sha256,  # noqa: E402
                    file_sha256_memo)
from .checkpoints import CheckpointRefused, load_checkpoint  # noqa: E402
from .context import PluginContext  # noqa: E402
from .datasets import (IMAGE_EXTENSIONS, Dataset, DatasetRootError, FileListDataset, Limit,  # noqa: E402
                       imagefolder, to_rgb)
from .degradations import Degradation, parse_condition  # noqa: E402
from .methods import ArtifactStore, Method, MethodContext  # noqa: E402
from .metrics import AggregateMetric, CellMetric  # noqa: E402
from .models import (IMAGENET_MEAN, IMAGENET_STD, OPENAI_MEAN, OPENAI_STD, ModelAdapter,  # noqa: E402
                     ModelWrapper, Preprocess, interpolation_mode)
from .registry import LrbenchError, UnknownNameError  # noqa: E402
from .tasks import CellOutput, RunContext, Task, iter_condition_batches, zero_shot_weights  # noqa: E402

__all__ = [
    "NAMESPACE", "__version__", "hookimpl",
    "LrbenchError", "UnknownNameError", "PluginContext",
    "ModelAdapter", "ModelWrapper", "Preprocess", "interpolation_mode",
    "OPENAI_MEAN", "OPENAI_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "Dataset", "FileListDataset", "DatasetRootError", "IMAGE_EXTENSIONS", "Limit", "imagefolder", "to_rgb",
    "Degradation", "parse_condition",
    "Method", "MethodContext", "ArtifactStore",
    "CellMetric", "AggregateMetric",
    "Task", "CellOutput", "RunContext", "iter_condition_batches", "zero_shot_weights",
    "Cache", "content_key", "file_sha256", "file_sha256_memo", "atomic_write_bytes", "atomic_write_text",
    "CheckpointRefused", "load_checkpoint",
]
