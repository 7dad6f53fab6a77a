"""Running a plan: compute missing cells, score every cell, aggregate, write the run directory.

Resumable by construction: each cell's raw outputs are written to the content-keyed cache as soon as its unit is done,
so a killed run loses at most the unit in flight, and a re-run computes only what is missing. The results table is
rebuilt from the cache every time (scoring is cheap), so changing metrics never recomputes model outputs.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import yaml

from . import __version__
from .cache import Cache, atomic_write_text
from .methods import ArtifactStore, MethodContext
from .executors import distributed_env, run_ray, run_sharded
from .models import ModelAdapter
from .plan import Plan, Unit, build_plan
from .plugins import Plugins, get_plugins
from .registry import LrbenchError
from .results import COLUMNS, metric_rows, split_aggregates, write_outputs
from .spec import Item, ResolvedSpec, load_spec_file, validate
from .tasks import RunContext, resolve_workers

log = logging.getLogger("lrbench")

DEFAULT_AGGREGATES = ("ACC", "gamma", "Gamma", "SAR", "WAR")


def default_cache_dir() -> Path:
    return Path(os.environ.get("LRBENCH_CACHE", "~/.cache/lrbench")).expanduser()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class RunState:
    """What a run did: shown to the user and written to run.json."""

    computed: list[str] = field(default_factory=list)
    reused: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model_loads: int = 0
    #: model label -> its own input size in px (the "HR" of the report's resolution axis)
    input_size: dict[str, int] = field(default_factory=dict)
    num_classes: dict[str, int] = field(default_factory=dict)


class Runner:
    def __init__(self, spec: dict[str, Any] | str | Path, output: str | Path | None = None, *,
                 device: str | None = None, plugins: Plugins | None = None, progress: bool = True,
                 echo: Callable[[str], None] = print, cache_dir: str | Path | None = None,
                 executor: str = "local", address: str | None = None):
        self.plugins = plugins or get_plugins()
        source = str(spec) if isinstance(spec, (str, Path)) else "spec"
        data = load_spec_file(spec) if isinstance(spec, (str, Path)) else dict(spec)
        self.spec_data = data
        self.resolved: ResolvedSpec = validate(data, self.plugins, source)
        if executor not in ("local", "ray"):
            raise LrbenchError(f"executor: bad value {executor!r}; choices: local, ray")
        self.executor, self.address = executor, address
        s = self.resolved.spec
        self.run_dir = Path(output or s.output or Path("runs") / s.name)
        self.device = resolve_device(device or s.device)
        self.num_workers = resolve_workers(s.num_workers)
        self.cache = Cache(cache_dir or s.cache_dir or default_cache_dir())
        self.artifacts = ArtifactStore(self.cache.root / "artifacts")
        self.progress, self.echo = progress, echo
        self.state = RunState()

    # ---- planning -------------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        t0 = time.perf_counter()
        plan = build_plan(self.resolved, self.plugins, self.cache)
        self.state.timings["plan_s"] = time.perf_counter() - t0
        return plan

    def describe(self, plan: Plan) -> str:
        units_to_run = [u for u in plan.units if u.missing()]
        lines = [f"plan: {plan.n_cells} cells ({len(plan.units)} model x method x dataset units), "
                 f"{plan.n_cells - plan.n_missing} cached, {plan.n_missing} to run on {self.device}"]
        for u in plan.units:
            status = ", ".join(f"{d.condition}{'' if u.cached[d.condition] else '*'}" for d in u.conditions)
            lines.append(f"  {u.model.label} | {u.method.label} | {u.dataset.label} [{u.task.name}]: {status}")
        if units_to_run:
            lines.append("  (* = to run)")
        return "\n".join(lines)

    # ---- computing ------------------------------------------------------------------------------------------------
    def _context(self, bar: Any) -> RunContext:
        s = self.resolved.spec
        return RunContext(device=self.device, batch_size=s.batch_size, num_workers=self.num_workers,
                          fast_path=s.fast_path, amp=s.amp, cache=self.cache, seed=s.seed, log=log,
                          progress=(bar.update if bar is not None else (lambda n: None)), skipped=self.state.skipped)

    def _dataset_factory(self, name: str, **params: Any) -> Any:
        return self.plugins.registries["datasets"].create(name, **params)

    def _build_model(self, model: Item, method: Item) -> ModelAdapter:
        base = self.plugins.registries["models"].create(model.name, **model.params)
        self.state.model_loads += 1
        size = getattr(getattr(base, "preprocess", None), "image_size", None)
        if isinstance(size, int):
            self.state.input_size[model.label] = size
        base.to(self.device).eval()
        method_obj = self.plugins.registries["methods"].create(method.name, **method.params)
        ctx = MethodContext(device=self.device, artifacts=self.artifacts, cache=self.cache, seed=self.resolved.spec.seed,
                            log=log, dataset=self._dataset_factory)
        torch.manual_seed(self.resolved.spec.seed)
        adapted = method_obj.apply(base, ctx)
        return adapted.to(self.device).eval()

    def compute_unit(self, unit: Unit, model: ModelAdapter, bar: Any = None) -> None:
        """Compute a unit's missing conditions and store each in the cache (under a lock shared by concurrent runs)."""
        missing = unit.missing()
        if not missing:
            return
        locks = [self.cache.lock("cells", unit.keys[d.condition]) for d in missing]
        for lock in locks:
            lock.acquire()
        try:
            # another run may have finished these while we waited for the locks
            missing = [d for d in missing if not self.cache.contains("cells", unit.keys[d.condition])]
            if not missing:
                return
            torch.manual_seed(self.resolved.spec.seed)
            t0 = time.perf_counter()
            outputs = unit.task.run(model, unit.dataset_obj, missing, self._context(bar))
            elapsed = time.perf_counter() - t0
            for deg in missing:
                key = unit.keys[deg.condition]
                self.cache.put("cells", key, outputs[deg.condition], unit.descriptions[deg.condition])
                unit.cached[deg.condition] = True
                self.state.computed.append(f"{unit.model.label}|{unit.method.label}|{unit.dataset.label}|{deg.condition}")
            self.state.timings[f"{unit.model.label}|{unit.method.label}|{unit.dataset.label}"] = elapsed
        finally:
            for lock in locks:
                lock.release()

    def execute(self, plan: Plan) -> None:
        todo = [u for u in plan.units if u.missing()]
        if not todo:
            self.echo("all cells cached: nothing to compute")
            return
        if self.executor == "ray":
            run_ray(self, plan, self.address)
            return
        total = sum(len(u.dataset_obj) for u in todo)
        from tqdm.auto import tqdm

        with tqdm(total=total, unit="img", desc="images", disable=None if self.progress else True,
                  dynamic_ncols=True) as bar:
            current: tuple[str, str] | None = None
            model: ModelAdapter | None = None
            for unit in todo:
                bar.set_postfix_str(f"{unit.model.label} | {unit.method.label} | {unit.dataset.label}", refresh=False)
                if current != (unit.model.label, unit.method.label):
                    model = None
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    model = self._build_model(unit.model, unit.method)
                    current = (unit.model.label, unit.method.label)
                self.compute_unit(unit, model, bar)

    # ---- scoring --------------------------------------------------------------------------------------------------
    def score(self, plan: Plan) -> pd.DataFrame:
        rows = []
        metrics_items = self.resolved.metrics
        for unit in plan.units:
            items = metrics_items or [Item("metrics", m) for m in unit.task.default_metrics]
            cell_metrics = []
            for item in items:
                metric = self.plugins.registries["metrics"].create(item.name, **item.params)
                if metric.kind == "cell" and unit.task.name in metric.tasks:
                    cell_metrics.append((item.label, metric))
            for deg in unit.conditions:
                outputs = self.cache.get("cells", unit.keys[deg.condition])
                if outputs is None:
                    raise RuntimeError(f"cell {unit.model.label}|{unit.dataset.label}|{deg.condition} is not computed")
                n = int(len(outputs["labels"])) if "labels" in outputs else int(outputs.get("n", np.array(0)))
                if "index" in outputs and len(outputs["index"]) < len(unit.dataset_obj):
                    self._note_skipped(unit, outputs["index"])
                for label, metric in cell_metrics:
                    for name, value in metric_rows(label, metric, outputs, unit.dataset_obj):
                        rows.append((unit.model.label, unit.method.label, unit.dataset.label, deg.condition, name,
                                     value, n, unit.task.name))
        return pd.DataFrame(rows, columns=COLUMNS)

    def _note_skipped(self, unit: Unit, index: np.ndarray) -> None:
        """Items absent from a cell's outputs were undecodable when it was computed (maybe in an earlier run)."""
        known = {(s["dataset"], s["index"]) for s in self.state.skipped}
        ds = unit.dataset_obj
        for i in sorted(set(range(len(ds))) - set(index.tolist())):
            if (ds.name, i) not in known:
                self.state.skipped.append({"dataset": ds.name, "index": i, "item": ds.item_id(i),
                                           "error": "undecodable when its cell was computed"})
                known.add((ds.name, i))

    def aggregates(self, plan: Plan) -> list[tuple[str, Any]]:
        items = self.resolved.metrics
        if items is None:
            tasks = {u.task.name for u in plan.units}
            names = DEFAULT_AGGREGATES if tasks & {"zero-shot", "classification"} else ()
            items = [Item("metrics", n) for n in names]
        out = []
        for item in items:
            metric = self.plugins.registries["metrics"].create(item.name, **item.params)
            if metric.kind == "aggregate":
                out.append((item.label, metric))
        return out

    # ---- the whole run --------------------------------------------------------------------------------------------
    def run(self, dry_run: bool = False) -> pd.DataFrame:
        t0 = time.perf_counter()
        plan = self.plan()
        self.echo(self.describe(plan))
        if dry_run:
            return pd.DataFrame(plan.table())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.run_dir / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        try:
            t1 = time.perf_counter()
            ranks = distributed_env()
            if ranks is not None:
                run_sharded(self, plan, *ranks)
                if ranks[0] != 0:
                    return pd.DataFrame(columns=COLUMNS)  # rank 0 scores and writes
            else:
                self.execute(plan)
            self.state.timings["compute_s"] = time.perf_counter() - t1
            results = self.score(plan)
            num_classes = {u.dataset.label: u.dataset_obj.num_classes for u in plan.units}
            self.state.num_classes = {k: int(v) for k, v in num_classes.items() if v}
            agg, summary = split_aggregates(results, self.aggregates(plan), num_classes)
            write_outputs(self.run_dir, results, agg, summary)
            self.state.timings["total_s"] = time.perf_counter() - t0
            self._write_meta(plan)
            from .report import write_report

            write_report(self.run_dir)
            if self.state.skipped:
                log.warning("%d undecodable items skipped (listed in run.json)", len(self.state.skipped))
            self.echo(f"computed {len(self.state.computed)} cells, reused {plan.n_cells - len(self.state.computed)} "
                      f"from the cache; results in {self.run_dir}")
        finally:
            log.removeHandler(handler)
            handler.close()
        results.attrs.update(run_dir=str(self.run_dir), computed=list(self.state.computed))
        return results

    def _write_meta(self, plan: Plan) -> None:
        try:  # a re-run served from the cache builds no model: keep the input sizes an earlier run saw
            earlier = json.loads((self.run_dir / "run.json").read_text()).get("input_size") or {}
        except (OSError, ValueError):
            earlier = {}
        self.state.input_size = {**earlier, **self.state.input_size}
        atomic_write_text(self.run_dir / "spec.resolved.yaml", yaml.safe_dump(self.resolved_spec_dict(), sort_keys=False))
        meta = {
            "finished": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "lrbench": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor(),
            "num_workers": self.num_workers,
            "plugins": [{"name": i.name, "distribution": i.distribution, "version": i.version, "error": i.error}
                        for i in self.plugins.listing()],
            "cells": plan.n_cells,
            "computed": self.state.computed,
            "model_loads": self.state.model_loads,
            "input_size": self.state.input_size,
            "num_classes": self.state.num_classes,
            "skipped_items": self.state.skipped,
            "n_skipped": len(self.state.skipped),
            "timings": self.state.timings,
            "cache_dir": str(self.cache.root),
        }
        atomic_write_text(self.run_dir / "run.json", json.dumps(meta, indent=2, default=str))

    def resolved_spec_dict(self) -> dict[str, Any]:
        s = self.resolved
        def entries(items: list[Item]) -> list[dict[str, Any]]:
            return [{"name": i.name, "label": i.label, **i.params} for i in items]
        d = s.spec.model_dump()
        d.update(models=entries(s.models), methods=entries(s.methods), datasets=entries(s.datasets),
                 conditions=[{"name": c.name, **c.params} for c in s.conditions],
                 output=str(self.run_dir), cache_dir=str(self.cache.root), device=str(self.device))
        if s.metrics is not None:
            d["metrics"] = entries(s.metrics)
        if s.task is not None:
            d["task"] = {"name": s.task.name, **s.task.params}
        return d


def run_spec(spec: dict[str, Any] | str | Path, output: str | Path | None = None, *, device: str | None = None,
             dry_run: bool = False, plugins: Plugins | None = None, progress: bool = False,
             echo: Callable[[str], None] = lambda s: None, cache_dir: str | Path | None = None,
             executor: str = "local", address: str | None = None) -> pd.DataFrame:
    """Run a spec (a mapping or a YAML path) and return the tidy results table (the plan table for ``dry_run``)."""
    runner = Runner(spec, output, device=device, plugins=plugins, progress=progress, echo=echo, cache_dir=cache_dir,
                    executor=executor, address=address)
    return runner.run(dry_run=dry_run)
