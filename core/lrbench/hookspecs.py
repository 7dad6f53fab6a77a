"""Hook specifications: every plugin, built-in or installed, contributes through these.

Each hook receives a ``register`` callback (the llm / datasette style) so one plugin can register any number of names
without returning lists the core must merge. ``register(name, factory, description=...)`` where ``factory(**params)``
builds the object from the spec entry's parameters; see docs/plugins.md for the protocol of each kind.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from . import NAMESPACE

hookspec = pluggy.HookspecMarker(NAMESPACE)

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register model adapter factories (zero-shot, classifier or embedder; see lrbench.models)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories (each dataset names its `task`, which tasks match; see lrbench.datasets)."""


@hookspec
def register_degradations(register: Register) -> None:
    """Register degradations: pure, batched functions of an image batch that name a condition such as ``bicubic@16``."""


@hookspec
def register_methods(register: Register) -> None:
    """Register robustness methods: input-side, model-side, or training strategies producing an artifact."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register per-cell metrics (on a cell's raw outputs) and aggregate metrics (on the results table)."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: evaluators that turn (model, dataset, conditions) into raw outputs per condition."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``lrbench`` click group."""
