"""Named registries of models, datasets, degradations, methods, metrics and tasks.

A registry maps a name to an :class:`Entry` (factory + description + providing plugin). Names may carry an id after a
colon (``openclip:ViT-B-32/openai``): when the full name is not registered, the part before the first colon is looked up
and the rest is passed to the factory as ``id``. That keeps model families open-ended without the core knowing them.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

KINDS = ("models", "datasets", "degradations", "methods", "metrics", "tasks")
#: the factory parameter through which a registry hands over the plugin set's registries
CONTEXT = "context"


class LrbenchError(Exception):
    """An error the user can act on; the CLI prints its message without a traceback."""


#: how many names an unknown-name error lists when none is close (``lrbench list KIND`` shows them all)
MAX_CHOICES_SHOWN = 12


class UnknownNameError(LrbenchError, KeyError):
    """A name no registry entry matches: close matches first, the plugin that should have provided it if it failed to
    load, and only a short list of choices (a typo must not print 80 names)."""

    def __init__(self, kind: str, name: str, choices: list[str], failed: dict[str, str] | None = None):
        self.kind, self.name, self.choices = kind, name, choices
        family = name.split(":", 1)[0]
        owner = next((p for p in (failed or {}) if p == family or p.split(".")[-1] == family), None)
        if owner is not None:
            msg = f"{kind[:-1]} {name!r} comes from plugin {owner!r}, which failed to load: {failed[owner]}"
            super().__init__(msg + " (lrbench plugins shows every plugin and its error)")
            return
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
        msg = f"unknown {kind[:-1]} {name!r}"
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        elif not choices:
            msg += "; none registered"
        else:
            shown = sorted(choices)[:MAX_CHOICES_SHOWN]
            more = len(choices) - len(shown)
            msg += f". Choices: {', '.join(shown)}" + (f" ... and {more} more (lrbench list {kind})" if more else "")
        if failed:
            msg += ". Plugins that failed to load: " + "; ".join(f"{k} ({v})" for k, v in failed.items())
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Finding:
    """One thing a run would meet: ``error`` (it would fail), ``download`` (it would fetch it), ``ok`` (found)."""

    level: str
    message: str


@dataclass
class Entry:
    """One registered name."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""
    #: free-form facts shown by ``lrbench list`` (e.g. a catalogue entry's family, input size, install hint)
    info: dict[str, Any] = field(default_factory=dict)
    #: True when the name accepts ``name:id`` forms (families such as ``openclip:ViT-B-32/openai``)
    accepts_id: bool = False
    #: what an entry reads beyond its parameters (weights shipped in a package, a folder named by an id), called with
    #: the factory's parameters without building anything; its result is part of every cell key of the entry
    inputs: Callable[..., dict[str, Any]] | None = None
    #: models only: the adapter kind the entry builds (``zero-shot``, ``classifier``, ``embedder``), or a function of
    #: the factory's parameters returning it for entries whose kind is a parameter; task choice reads only this
    adapter_kind: str | Callable[..., str] | None = None

    #: what ``validate`` and ``--dry-run`` ask before a run: called with the factory's parameters, builds nothing,
    #: downloads nothing, returns :class:`Finding` s (a missing checkpoint, weights that will be downloaded or are
    #: missing offline, a catalogue preset without a loader)
    check: Callable[..., list["Finding"]] | None = None

    def model_kind(self, implied: dict[str, Any], params: dict[str, Any]) -> str:
        """The kind this entry builds with these parameters, as declared at registration."""
        if self.adapter_kind is None:
            raise LrbenchError(
                f"model {self.name!r} of plugin {self.plugin!r} declares no kind; its plugin must "
                "register it with kind='zero-shot', 'classifier' or 'embedder'"
            )
        kind = self.adapter_kind
        return kind if isinstance(kind, str) else kind(**implied, **params)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The factory's keyword parameters: the schema a spec entry is checked against (``context`` is not one:
        the registry passes it, see :attr:`Registry.context`)."""
        try:
            sig = inspect.signature(self.factory, eval_str=True)  # resolve `from __future__ import annotations`
        except Exception:
            sig = inspect.signature(self.factory)
        return {
            k: p
            for k, p in sig.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k != CONTEXT
        }

    def wants_context(self) -> bool:
        return CONTEXT in inspect.signature(self.factory).parameters

    def accepts_any(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.factory).parameters.values())


class Registry:
    """All names of one kind, with the plugin that registered each."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.failed_plugins: dict[str, str] = {}
        #: passed as ``context=`` to factories that declare that parameter: the plugin set's registries
        #: (:class:`lrbench.plugins.PluginContext`), so a factory builds other entries without a global plugin set
        self.context: Any = None

    def add(self, entry: Entry) -> None:
        if entry.name in self._entries:
            other = self._entries[entry.name]
            raise LrbenchError(
                f"{self.kind[:-1]} {entry.name!r} is registered twice: by plugin {other.plugin!r} and by {entry.plugin!r}"
            )
        self._entries[entry.name] = entry

    def resolve(self, name: str) -> tuple[Entry, dict[str, Any]]:
        """Entry for ``name`` and the extra parameters its form implies (``id`` for ``family:id``)."""
        if name in self._entries:
            return self._entries[name], {}
        if ":" in name:
            family, ident = name.split(":", 1)
            entry = self._entries.get(family)
            if entry is not None and entry.accepts_id:
                return entry, {"id": ident}
        raise UnknownNameError(self.kind, name, list(self._entries), self.failed_plugins)

    def __getitem__(self, name: str) -> Entry:
        return self.resolve(name)[0]

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
            return True
        except UnknownNameError:
            return False

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def create(self, name: str, **params: Any) -> Any:
        entry, implied = self.resolve(name)
        if entry.wants_context():
            implied = {**implied, CONTEXT: self.context}
        return entry.factory(**implied, **params)
