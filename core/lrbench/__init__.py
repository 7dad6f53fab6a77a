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

# The public plugin API, imported lazily (PEP 562): ``from lrbench import ModelAdapter`` loads its module on first use,
# so ``lrbench --help`` and ``lrbench list`` start without importing torch. The modules never import this package's
# names back, so the import graph stays free of circles.
_API = {
    "cache": ("Cache", "atomic_write_bytes", "atomic_write_text", "content_key", "file_sha256", "file_sha256_memo"),
    "checkpoints": ("CheckpointRefused", "load_checkpoint"),
    "context": ("PluginContext",),
    "datasets": (
        "IMAGE_EXTENSIONS",
        "Dataset",
        "DatasetRootError",
        "FileListDataset",
        "Limit",
        "imagefolder",
        "to_rgb",
    ),
    "degradations": (
        "MAX_SIZE",
        "Degradation",
        "Finite",
        "NonNegativeFinite",
        "ParameterRangeError",
        "Pixels",
        "PositiveFinite",
        "check_size",
        "parse_condition",
    ),
    "methods": ("ArtifactStore", "Method", "MethodContext"),
    "metrics": ("AggregateMetric", "CellMetric"),
    "models": (
        "IMAGENET_MEAN",
        "IMAGENET_STD",
        "OPENAI_MEAN",
        "OPENAI_STD",
        "HRView",
        "ModelAdapter",
        "ModelWrapper",
        "Preprocess",
        "interpolation_mode",
    ),
    "registry": ("Finding", "LrbenchError", "UnknownNameError"),
    "tasks": ("CellOutput", "RunContext", "Task", "iter_condition_batches", "zero_shot_weights"),
    "weights": (
        "WeightsMissing",
        "file_fingerprint",
        "folder_files",
        "hub_snapshot",
        "hub_weights",
        "require",
        "url_weights",
    ),
}
_WHERE = {name: module for module, names in _API.items() for name in names}

__all__ = ["NAMESPACE", "__version__", "hookimpl", *_WHERE]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lrbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
