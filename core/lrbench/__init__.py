"""lrbench: measure and improve how vision models behave on low-resolution images.

Plugins implement the hooks in :mod:`lrbench.hookspecs` with the :data:`hookimpl` marker and are found through the
``lrbench`` entry-point group.
"""
import pluggy

__version__ = "0.1.0"

#: The single namespace string: hook markers, the plugin manager and the entry-point group all use it.
NAMESPACE = "lrbench"

hookimpl = pluggy.HookimplMarker(NAMESPACE)

__all__ = ["NAMESPACE", "__version__", "hookimpl"]
