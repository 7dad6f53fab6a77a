"""The run specification: parsed with a safe YAML loader, checked with pydantic and against the registries.

Every problem is reported at once with its key path (``datasets[1].root``), the bad value and the valid choices or the
closest match, so a user fixes a spec in one go. Validation builds datasets (to check their roots) and conditions, but
never loads a model.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .datasets import DatasetRootError
from .degradations import ParameterRangeError, parse_condition
from .registry import Entry, LrbenchError, UnknownNameError

EntryIn = str | dict[str, Any]
log = logging.getLogger("lrbench")


class SpecError(LrbenchError):
    """A spec with problems; ``problems`` holds (key path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "spec"):
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' * (len(problems) != 1)}"]
        lines += [f"  {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class Spec(BaseModel):
    """The keys of a spec file (docs/spec.md documents each)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    models: list[EntryIn] = Field(min_length=1)
    methods: list[EntryIn] = Field(default_factory=lambda: ["none"])
    datasets: list[EntryIn] = Field(min_length=1)
    conditions: list[EntryIn] = Field(default_factory=lambda: ["hr"])
    task: EntryIn | None = None
    metrics: list[EntryIn] | None = None
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    fast_path: bool = False
    amp: bool = False
    device: str = "auto"
    output: str | None = None
    cache_dir: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # the run directory defaults to runs/<name>: a name is one path component, so it stays under runs/
        if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
            raise ValueError(
                f"name must be a plain file name (no '/', '\\', '.' or '..'), got {v!r}; "
                "use 'output' to choose another directory"
            )
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "auto" and v.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, got {v!r}")
        return v


@dataclass
class Item:
    """One normalized spec entry: registry name, parameters and the label used in results tables."""

    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    path: str = ""
    user_label: bool = False

    def __post_init__(self) -> None:
        self.user_label = bool(self.label)
        self._default_label()

    def _default_label(self) -> None:
        if self.user_label:
            return
        if self.kind == "datasets":
            self.label = self.name  # results name datasets as registered, so weights and class counts apply
        else:
            self.label = self.name if not self.params else f"{self.name}({_short(self.params)})"

    def rename(self, name: str) -> None:
        """Name the entry by its registered spelling (and label it so, unless the spec gave a label)."""
        self.name = name
        self._default_label()


def _short(params: dict[str, Any]) -> str:
    return ",".join(
        f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'), default=str)}" for k, v in sorted(params.items())
    )


def normalize_entry(kind: str, value: EntryIn, path: str) -> Item:
    """``'name'``, ``{name: n, label: l, **params}`` or ``{n: {**params}}`` -> Item."""
    if isinstance(value, str):
        return Item(kind, value, {}, "", path)
    value = dict(value)
    if "name" in value:
        name = value.pop("name")
        label = value.pop("label", "")
        return Item(kind, str(name), value, str(label), path)
    if len(value) == 1:
        name, params = next(iter(value.items()))
        params = dict(params or {})
        label = params.pop("label", "")
        return Item(kind, str(name), params, str(label), path)
    raise LrbenchError(f"{path}: an entry is a name or a mapping with a 'name' key, got keys {sorted(value)}")


def condition_item(value: EntryIn, path: str) -> Item:
    """Conditions may be written ``bicubic@16``: the value after @ is the degradation's first parameter."""
    if isinstance(value, str):
        name, arg = parse_condition(value)
        item = Item("degradations", name, {}, "", path)
        item.params = {"__first__": arg} if arg is not None else {}
        return item
    return normalize_entry("degradations", value, path)


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing what makes a spec ambiguous or explosive.

    Duplicate keys (PyYAML keeps the last one silently) and anchors/aliases (a few hundred bytes of nested aliases
    expand to gigabytes: the "billion laughs") are errors; a spec never needs either.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed in a spec; write the value out", event.start_mark
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "YAML anchors (&name) are not allowed in a spec", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """(``line L, column C``, the parser's one-line complaint) of a YAML error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "file"
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ": ".join(p for p in parts if p) or str(exc).splitlines()[0]
    return where, f"not valid YAML: {text}"


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a spec file: UTF-8, YAML through the safe loader, no duplicate keys, no anchors or aliases.

    Every problem is a :class:`SpecError` (exit status 2), naming the line.
    """
    p = Path(path)
    if not p.is_file():
        raise LrbenchError(f"spec file not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            [
                (
                    f"line {line}",
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the spec as UTF-8",
                )
            ],
            str(p),
        ) from None
    try:
        # safe loader: a spec can never construct Python objects
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(exc)], str(p)) from None
    if not isinstance(data, dict):
        raise SpecError(
            [("file", f"a spec is a mapping of keys (models, datasets, conditions, ...), got {type(data).__name__}")],
            str(p),
        )
    return data


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "dict[str,any]"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def check_params(entry: Entry, item: Item, implied: dict[str, Any]) -> list[tuple[str, str]]:
    """Compare an entry's params with its factory's signature: unknown keys, missing required ones, wrong types."""
    problems: list[tuple[str, str]] = []
    sig_params = entry.parameters()
    params = dict(item.params)
    if "__first__" in params:
        first = next(iter(sig_params), None)
        if first is None:
            problems.append((item.path, f"{item.name!r} takes no value after '@'"))
            return problems
        params[first] = params.pop("__first__")
    if not entry.accepts_any():
        for key in params:
            if key not in sig_params:
                close = difflib.get_close_matches(key, list(sig_params), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    (
                        f"{item.path}.{key}",
                        f"unknown parameter {key!r} for {item.name!r}{hint} "
                        f"Parameters: {', '.join(sig_params) or '(none)'}",
                    )
                )
    for key, p in sig_params.items():
        if p.default is inspect.Parameter.empty and key not in params and key not in implied:
            problems.append((f"{item.path}.{key}", f"missing required parameter {key!r} for {item.name!r}"))
        elif key in params and p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str):
            try:
                params[key] = TypeAdapter(p.annotation).validate_python(params[key])
            except ValidationError as exc:
                problems.append((f"{item.path}.{key}", f"bad value {params[key]!r}: {exc.errors()[0]['msg']}"))
            except Exception:
                pass  # annotations pydantic cannot check are the factory's own business
    item.params = params
    return problems


def build_condition(value: EntryIn, registry: Any, path: str = "condition") -> Any:
    """A degradation from a condition as a spec writes it (``bicubic@16``, ``{name: jpeg, quality: 30}``): the one
    ``name@value`` rule (the value is the first parameter), parameters checked as in a spec."""
    item = condition_item(value, path)
    # errors name the nested parameter (``then.size``), so validate reports ``conditions[1].then.size``, not a
    # parameter of the outer condition that may share its name
    try:
        entry, implied = registry.resolve(item.name)
    except UnknownNameError as exc:
        raise ParameterRangeError(path, f"bad value {item.name!r}: {exc}") from None
    problems = check_params(entry, item, implied)
    if len(problems) == 1:
        raise ParameterRangeError(*problems[0])
    if problems:
        raise ParameterRangeError(path, "; ".join(f"{where}: {what}" for where, what in problems))
    try:
        deg = registry.create(item.name, **item.params)
    except ParameterRangeError as exc:
        raise ParameterRangeError(f"{path}.{exc.param}", str(exc)) from None
    if item.user_label:
        deg._label = item.label
    return deg


@dataclass
class ResolvedSpec:
    spec: Spec
    models: list[Item]
    methods: list[Item]
    datasets: list[Item]
    conditions: list[Item]
    task: Item | None
    metrics: list[Item] | None
    raw: dict[str, Any]


def validate(
    data: dict[str, Any],
    plugins: Any,
    source: str = "spec",
    check_datasets: bool = True,
    build_dataset: Callable[..., Any] | None = None,
) -> ResolvedSpec:
    """Check a spec mapping; raise SpecError listing every problem, or return it normalized. Datasets are checked by
    building them with ``build_dataset`` (a run passes its memoised builder, so the plan reuses them)."""
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _loc(err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1]), list(Spec.model_fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((path, f"unknown key{hint} Keys: {', '.join(Spec.model_fields)}"))
            else:
                problems.append((path, f"{err['msg']} (got {err.get('input')!r})"))
        raise SpecError(_dedupe(problems), source) from None

    problems: list[tuple[str, str]] = []
    groups: dict[str, list[Item]] = {}
    for key, kind in (("models", "models"), ("methods", "methods"), ("datasets", "datasets"), ("metrics", "metrics")):
        values = getattr(spec, key)
        items = []
        for i, v in enumerate(values or []):
            try:
                items.append(normalize_entry(kind, v, f"{key}[{i}]"))
            except LrbenchError as exc:
                problems.append((f"{key}[{i}]", str(exc)))
        groups[key] = items
    conditions = [condition_item(v, f"conditions[{i}]") for i, v in enumerate(spec.conditions)]
    task = normalize_entry("tasks", spec.task, "task") if spec.task is not None else None

    # the same metric twice would give duplicate rows (and count each dataset twice in n_datasets): keep the first
    metrics_seen: set[str] = set()
    groups["metrics"] = [
        m for m in groups["metrics"] if not (_metric_key(m) in metrics_seen or metrics_seen.add(_metric_key(m)))
    ]

    for item in [
        *groups["models"],
        *groups["methods"],
        *groups["datasets"],
        *groups["metrics"],
        *conditions,
        *([task] if task else []),
    ]:
        registry = plugins.registries[item.kind]
        canonical = registry.canonical(item.name)
        if canonical != item.name:
            log.warning(
                "%s: %r is the old spelling of %r; read as %r (underscore spellings are deprecated)",
                item.path,
                item.name,
                canonical,
                canonical,
            )
            item.rename(canonical)
        try:
            entry, implied = registry.resolve(item.name)
        except UnknownNameError as exc:
            problems.append((item.path, f"bad value {item.name!r}: {exc}"))
            continue
        item_problems = check_params(entry, item, implied)
        problems += item_problems
        if item.kind == "degradations" and not item_problems:
            problems += _check_condition(registry, item)

    if check_datasets and not problems:
        for item in groups["datasets"]:
            if item.params.get("download"):
                continue  # its root is filled by the run; validating must never start a download
            try:
                (build_dataset or plugins.registries["datasets"].create)(item.name, **item.params)
            except DatasetRootError as exc:
                problems.append((f"{item.path}.root", str(exc)))
            except (LrbenchError, ValueError, TypeError) as exc:
                problems.append((item.path, str(exc)))
    for label_kind, items in (
        ("models", groups["models"]),
        ("methods", groups["methods"]),
        ("datasets", groups["datasets"]),
        ("conditions", conditions),
    ):
        seen: dict[str, str] = {}
        for item in items:
            label = item.label if label_kind != "conditions" or item.user_label else f"{item.name}{item.params}"
            if label in seen:
                problems.append(
                    (
                        item.path,
                        f"duplicate {label_kind[:-1]} {label!r} (also {seen[label]}); give one a distinct 'label'",
                    )
                )
            seen[label] = item.path
    if problems:
        raise SpecError(_dedupe(problems), source)
    return ResolvedSpec(
        spec, groups["models"], groups["methods"], groups["datasets"], conditions, task, groups["metrics"] or None, data
    )


def _metric_key(item: Item) -> str:
    return f"{item.label}\0{_short(item.params)}"


def _check_condition(registry: Any, item: Item) -> list[tuple[str, str]]:
    """Build a condition (cheap: parameters only) so ranges a signature cannot state (a size cap with an opt-in) are
    refused before the run, with the key path of the parameter."""
    try:
        registry.create(item.name, **item.params)
    except ParameterRangeError as exc:
        return [(f"{item.path}.{exc.param}", str(exc))]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return [(f"{item.path}.{where}" if where else item.path, f"bad value {err.get('input')!r}: {err['msg']}")]
    except (LrbenchError, ValueError, TypeError) as exc:
        return [(item.path, str(exc))]
    return []


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(problems))
