"""What a plugin's factory may ask for: the registries of the plugin set that builds it.

A factory that declares a ``context`` parameter (``def build(id: str, *, context: PluginContext, **params)``) receives
one from the registry creating it, so it builds other entries (the model a catalogue preset names, the degradation a
shift condition applies after shifting) from the same plugin set as the run, never from a process-wide one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .degradations import Degradation
from .registry import Registry
from .spec import build_condition


@dataclass(frozen=True)
class PluginContext:
    registries: Mapping[str, Registry]

    def create(self, kind: str, name: str, **params: Any) -> Any:
        """Build registered ``name`` of ``kind`` (``models``, ``datasets``, ...) with ``params``."""
        return self.registries[kind].create(name, **params)

    def condition(self, value: str | Mapping[str, Any], path: str = "condition") -> Degradation:
        """A condition written as in a spec (``bicubic@16`` or ``{name: bicubic, size: 16}``), by the spec's rule."""
        return build_condition(value, self.registries["degradations"], path)
