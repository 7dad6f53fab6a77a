"""The plugin manager: built-ins, entry-point plugins, and the registries they fill.

Built-ins are ordinary plugin modules registered by name; installed plugins come from the ``lrbench`` entry-point
group. A plugin that fails to import (or whose hook raises) is recorded with its error and the others still load.
``LRBENCH_LOAD_PLUGINS=a,b`` loads only those entry points (empty: none); ``LRBENCH_DISABLE_PLUGINS=a,b`` skips them.
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import NAMESPACE, __version__, hookspecs
from .context import PluginContext
from .registry import KINDS, Entry, LrbenchError, Registry, check_name

BUILTIN_MODULES = (
    "lrbench.builtin.degradations",
    "lrbench.builtin.datasets",
    "lrbench.builtin.lr0fm_datasets",
    "lrbench.builtin.catalogue",
    "lrbench.builtin.war_weights",
    "lrbench.builtin.toyworld",
    "lrbench.builtin.tasks",
    "lrbench.builtin.metrics",
    "lrbench.builtin.aggregates",
    "lrbench.builtin.methods",
)


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "error": self.error,
            "registered": self.registered,
        }


def _env_list(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


class Plugins:
    """A plugin manager plus the registries its hooks filled; build one with :func:`get_plugins`."""

    def __init__(self, load_entry_points: bool = True, extra: list[tuple[object, str]] | None = None):
        #: how this set was built, so executors can rebuild the same set in worker processes
        self.load_entry_points, self.extra = load_entry_points, list(extra or [])
        self.pm = pluggy.PluginManager(NAMESPACE)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        for module_name in BUILTIN_MODULES:
            module = importlib.import_module(module_name)
            short = module_name.rsplit(".", 1)[-1]
            self.pm.register(module, name=f"lrbench.{short}")
            self.info[f"lrbench.{short}"] = PluginInfo(
                f"lrbench.{short}", distribution="lrbench", version=__version__, module=module_name
            )
        if load_entry_points:
            self._load_entry_points()
        for obj, name in extra or []:
            self.pm.register(obj, name=name)
            self.info[name] = PluginInfo(name, module=getattr(obj, "__name__", type(obj).__name__))
        self.registries: dict[str, Registry] = {k: Registry(k) for k in KINDS}
        self.context = PluginContext(self.registries)
        for registry in self.registries.values():
            registry.context = self.context
        self._collect()

    def _load_entry_points(self) -> None:
        only, disabled = _env_list("LRBENCH_LOAD_PLUGINS"), _env_list("LRBENCH_DISABLE_PLUGINS") or set()
        for ep in metadata.entry_points(group=NAMESPACE):
            if (only is not None and ep.name not in only) or ep.name in disabled:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                ep.name,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                module=ep.value,
            )
            self.info[ep.name] = info
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                self.pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}"
                info.traceback = traceback.format_exc()  # type: ignore[attr-defined]

    def _collect(self) -> None:
        for kind in KINDS:
            registry = self.registries[kind]
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():
                plugin_name = impl.plugin_name
                info = self.info.setdefault(plugin_name, PluginInfo(plugin_name))

                def register(
                    name: str,
                    factory: Any,
                    description: str = "",
                    *,
                    info: dict | None = None,
                    accepts_id: bool = False,
                    inputs: Any = None,
                    kind: Any = None,
                    check: Any = None,
                    _kind=kind,
                    _plugin=plugin_name,
                ) -> None:
                    check_name(_kind, name, _plugin)
                    if kind is not None and _kind != "models":
                        raise TypeError(f"{_kind[:-1]} {name!r}: only models declare a kind")
                    if _kind == "models" and kind is None:
                        kind = declared_kind(factory)
                    registry.add(
                        Entry(
                            _kind,
                            name,
                            factory,
                            description or (factory.__doc__ or "").strip().split("\n")[0],
                            _plugin,
                            info or {},
                            accepts_id,
                            inputs,
                            kind,
                            check=check,
                        )
                    )
                    self.info[_plugin].registered.setdefault(_kind, []).append(name)

                try:
                    impl.function(register=register)
                except LrbenchError:
                    raise
                except Exception as exc:
                    info.error = f"register_{kind} failed: {type(exc).__name__}: {exc}"
            registry.failed_plugins = {n: i.error for n, i in self.info.items() if i.error}

    def register_commands(self, cli: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.info.setdefault(
                    impl.plugin_name, PluginInfo(impl.plugin_name)
                ).error = f"register_commands failed: {type(exc).__name__}: {exc}"

    def __getattr__(self, kind: str) -> Registry:
        registries = self.__dict__.get("registries", {})
        if kind in registries:
            return registries[kind]
        raise AttributeError(kind)

    def listing(self) -> list[PluginInfo]:
        return sorted(self.info.values(), key=lambda i: (i.distribution != "lrbench", i.name))


def declared_kind(factory: Any) -> str | None:
    """The kind a model adapter class declares (its ``kind`` class attribute), read when it is registered without
    ``kind=``; a function factory declares nothing."""
    kind = getattr(factory, "kind", None) if isinstance(factory, type) else None
    return kind if isinstance(kind, str) else None


_cached: Plugins | None = None


def get_plugins(refresh: bool = False) -> Plugins:
    """The process-wide plugin set (built once; ``refresh`` rebuilds after registering throwaway plugins in tests)."""
    global _cached
    if _cached is None or refresh:
        _cached = Plugins()
    return _cached
