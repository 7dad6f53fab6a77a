"""The ``none`` method: the model as it is, the baseline every other method is compared with."""

from __future__ import annotations

from .. import hookimpl
from ..methods import Method, MethodContext
from ..models import ModelAdapter


class NoMethod(Method):
    """No robustness method: the baseline."""

    name = "none"
    stage = "input"

    def apply(self, model: ModelAdapter, ctx: MethodContext) -> ModelAdapter:
        return model


@hookimpl
def register_methods(register):
    register("none", NoMethod, "No robustness method: the baseline")
