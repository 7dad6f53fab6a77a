"""The run specification: parsed with a safe YAML loader, checked with pydantic and against the registries.

Every problem is reported at once with its key path (``datasets[1].root``), the bad value and the valid choices or the
closest match, so a user fixes a spec in one go. Validation builds datasets (to check their roots) and conditions, but
never loads a model.
"""
from __future__ import annotations

import difflib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .datasets import DatasetRootError
from .degradations import parse_condition
from .registry import Entry, LrbenchError, UnknownNameError

EntryIn = str | dict[str, Any]


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
    num_workers: int | Literal["auto"] = Field("auto", ge=0)
    fast_path: bool = False
    amp: bool = False
    device: str = "auto"
    output: str | None = None
    cache_dir: str | None = None

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
        if not self.label and self.kind == "datasets":
            self.label = self.name  # results name datasets as registered, so weights and class counts apply
        elif not self.label:
            self.label = self.name if not self.params else f"{self.name}({_short(self.params)})"


def _short(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'), default=str)}"
                    for k, v in sorted(params.items()))


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


def load_spec_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise LrbenchError(f"spec file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())  # safe loader: a spec can never construct Python objects
    except yaml.YAMLError as exc:
        raise LrbenchError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LrbenchError(f"{p}: a spec is a mapping of keys (models, datasets, conditions, ...), got {type(data).__name__}")
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
                problems.append((f"{item.path}.{key}", f"unknown parameter {key!r} for {item.name!r}{hint} "
                                 f"Parameters: {', '.join(sig_params) or '(none)'}"))
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


def validate(data: dict[str, Any], plugins: Any, source: str = "spec", check_datasets: bool = True) -> ResolvedSpec:
    """Check a spec mapping; raise SpecError listing every problem, or return it normalized."""
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

    for item in [*groups["models"], *groups["methods"], *groups["datasets"], *groups["metrics"], *conditions,
                 *([task] if task else [])]:
        registry = plugins.registries[item.kind]
        try:
            entry, implied = registry.resolve(item.name)
        except UnknownNameError as exc:
            problems.append((item.path, f"bad value {item.name!r}: {exc}"))
            continue
        problems += check_params(entry, item, implied)

    if check_datasets and not problems:
        for item in groups["datasets"]:
            if item.params.get("download"):
                continue  # its root is filled by the run; validating must never start a download
            try:
                plugins.registries["datasets"].create(item.name, **item.params)
            except DatasetRootError as exc:
                problems.append((f"{item.path}.root", str(exc)))
            except (LrbenchError, ValueError, TypeError) as exc:
                problems.append((item.path, str(exc)))
    for label_kind, items in (("models", groups["models"]), ("methods", groups["methods"]),
                              ("datasets", groups["datasets"]), ("conditions", conditions)):
        seen: dict[str, str] = {}
        for item in items:
            label = item.label if label_kind != "conditions" or item.user_label else f"{item.name}{item.params}"
            if label in seen:
                problems.append((item.path, f"duplicate {label_kind[:-1]} {label!r} (also {seen[label]}); "
                                            "give one a distinct 'label'"))
            seen[label] = item.path
    if problems:
        raise SpecError(_dedupe(problems), source)
    return ResolvedSpec(spec, groups["models"], groups["methods"], groups["datasets"], conditions, task,
                        groups["metrics"] or None, data)


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(problems))

