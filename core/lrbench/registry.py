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


class LrbenchError(Exception):
    """An error the user can act on; the CLI prints its message without a traceback."""


class UnknownNameError(LrbenchError, KeyError):
    def __init__(self, kind: str, name: str, choices: list[str], failed: dict[str, str] | None = None):
        self.kind, self.name, self.choices = kind, name, choices
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        msg = f"unknown {kind[:-1]} {name!r}"
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        msg += f" Choices: {', '.join(sorted(choices)) or '(none registered)'}"
        if failed:
            msg += ". Plugins that failed to load: " + "; ".join(f"{k} ({v})" for k, v in failed.items())
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


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

    def model_kind(self, implied: dict[str, Any], params: dict[str, Any]) -> str:
        """The kind this entry builds with these parameters, as declared at registration."""
        if self.adapter_kind is None:
            raise LrbenchError(f"model {self.name!r} of plugin {self.plugin!r} declares no kind; its plugin must "
                               "register it with kind='zero-shot', 'classifier' or 'embedder'")
        kind = self.adapter_kind
        return kind if isinstance(kind, str) else kind(**implied, **params)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The factory's keyword parameters: the schema a spec entry is checked against."""
        try:
            sig = inspect.signature(self.factory, eval_str=True)  # resolve `from __future__ import annotations`
        except Exception:
            sig = inspect.signature(self.factory)
        return {k: p for k, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def accepts_any(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.factory).parameters.values())


class Registry:
    """All names of one kind, with the plugin that registered each."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.failed_plugins: dict[str, str] = {}

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
        return entry.factory(**implied, **params)
