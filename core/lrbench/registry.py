"""Named registries of models, datasets, degradations, methods, metrics and tasks.

A registry maps a name to an :class:`Entry` (factory + description + providing plugin). Names may carry an id after a
colon (``openclip:ViT-B-32/openai``): when the full name is not registered, the part before the first colon is looked up
and the rest is passed to the factory as ``id``. That keeps model families open-ended without the core knowing them.

One naming rule (:func:`check_name`, enforced at registration): the names a spec writes for models, datasets,
degradations, methods and tasks are lower-case kebab-case (``gaussian-blur``, ``face/bt-m``, ``lr0fm:<any variant>``);
metric names are results column values and stay identifiers (``top1``, ``face_acc``, LR0.FM's ``Gamma``). Lookups read
the old underscore spelling of a kebab-case name (``gaussian_blur`` finds ``gaussian-blur``): :meth:`Registry.canonical`.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

KINDS = ("models", "datasets", "degradations", "methods", "metrics", "tasks")
#: the kinds whose names a spec writes as entries: kebab-case words, an optional ``namespace/`` (``face/bt``), an
#: optional ``:variant`` that is the family's own business (``lr0fm:CLIP-ViT-L/14@336px``, ``openclip:ViT-B-32/openai``)
KEBAB_KINDS = ("models", "datasets", "degradations", "methods", "tasks")
_WORDS = r"[a-z0-9]+(?:-[a-z0-9]+)*"
NAME_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    **{
        k: (
            re.compile(rf"{_WORDS}(?:/{_WORDS})?(?::.+)?"),
            "lower-case kebab-case: [a-z0-9]+(-[a-z0-9]+)*, optionally 'namespace/' before it and ':variant' after it",
        )
        for k in KEBAB_KINDS
    },
    "metrics": (
        re.compile(r"[A-Za-z][A-Za-z0-9_]*"),
        "an identifier (results column value): a letter, then letters, digits or '_' (snake_case: top1, face_acc)",
    ),
}
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


def check_name(kind: str, name: str, plugin: str) -> None:
    """Refuse a registered name that breaks the naming rule of its kind, naming the plugin, the name and the rule."""
    pattern, rule = NAME_RULES[kind]
    if not isinstance(name, str) or not pattern.fullmatch(name):
        hint = f"; write {spelling(name).lower()!r}" if kind in KEBAB_KINDS and isinstance(name, str) else ""
        raise LrbenchError(
            f"plugin {plugin!r} registers {kind[:-1]} {name!r}, which breaks the naming rule: {kind} names are {rule}"
            f"{hint} (docs/plugins.md, 'Names'; LRBENCH_DISABLE_PLUGINS={plugin} skips the plugin)"
        )


def spelling(name: str) -> str:
    """The kebab-case spelling of a name written with the old underscores (``gaussian_blur`` -> ``gaussian-blur``);
    a ``:variant`` is the family's own (``openclip:ViT-B-32/laion2b_s34b_b79k`` keeps its underscores)."""
    base, colon, variant = name.partition(":")
    return base.replace("_", "-") + colon + variant


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
        """Entry for ``name`` and the extra parameters its form implies (``id`` for ``family:id``); a kebab-case name
        is also found by its old underscore spelling (deprecated)."""
        found = self._find(name)
        if found is None and self.kind in KEBAB_KINDS and spelling(name) != name:
            found = self._find(spelling(name))
        if found is None:
            raise UnknownNameError(self.kind, name, list(self._entries), self.failed_plugins)
        return found

    def _find(self, name: str) -> tuple[Entry, dict[str, Any]] | None:
        if name in self._entries:
            return self._entries[name], {}
        if ":" in name:
            family, ident = name.split(":", 1)
            entry = self._entries.get(family)
            if entry is not None and entry.accepts_id:
                return entry, {"id": ident}
        return None

    def canonical(self, name: str) -> str:
        """``name`` as registered: the kebab-case spelling when only the old underscore one was written, so a spec
        saying ``gaussian_blur@2`` and one saying ``gaussian-blur@2`` name the same cell and the same rows; an
        unknown name is returned unchanged (:meth:`resolve` reports it)."""
        if self.kind in KEBAB_KINDS and self._find(name) is None and self._find(spelling(name)) is not None:
            return spelling(name)
        return name

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
