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
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import yaml

from . import __version__
from .cache import Cache, atomic_write_text
from .compute import Computer, DatasetBuilder, RunState, log
from .executors import distributed_env, run_local, run_ray, run_sharded
from .plan import Plan, build_plan, force
from .plugins import Plugins, get_plugins
from .registry import LrbenchError
from .results import (
    COLUMNS,
    check_output_dir,
    publish,
    split_aggregates,
    staging_dir,
    writable_dir_problem,
    write_outputs,
)
from .scoring import aggregates, headline_metrics, score
from .spec import Item, ResolvedSpec, SpecError, load_spec_file, validate

__all__ = ["CellsFailed", "Runner", "RunState", "run_spec", "default_cache_dir", "resolve_device"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LRBENCH_CACHE", "~/.cache/lrbench")).expanduser()


def resolve_device(name: str, source: str = "spec") -> torch.device:
    """``auto`` -> cuda when a GPU is visible, else cpu; a named device that is not there is a spec error (exit 2),
    not a traceback in the middle of the run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SpecError(
                [
                    (
                        "device",
                        f"{name!r}: no CUDA device is visible (torch {torch.__version__}, "
                        f"CUDA build {torch.version.cuda or 'none'}); use cpu or auto",
                    )
                ],
                source,
            )
        if device.index is not None and device.index >= count:
            raise SpecError([("device", f"{name!r}: only {count} CUDA device(s) visible")], source)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError([("device", f"{name!r}: MPS is not available on this machine; use cpu or auto")], source)
    return device


class WarningsToRoot(logging.Handler):
    """Hands lrbench's warnings and errors to the root logger's handlers (the console, or the logging a user or a
    library set up) while lrbench does not propagate during a run: shown once, and never its INFO progress."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


class CellsFailed(LrbenchError):
    """Some cells could not be computed: the others are written; these are listed in run.json and here."""


class Runner:
    """One run of a spec: plan, compute what is missing (through an executor), score, aggregate, write."""

    def __init__(
        self,
        spec: dict[str, Any] | str | Path,
        output: str | Path | None = None,
        *,
        device: str | None = None,
        plugins: Plugins | None = None,
        progress: bool = True,
        echo: Callable[[str], None] = print,
        cache_dir: str | Path | None = None,
        executor: str = "local",
        address: str | None = None,
        recompute: str | None = None,
        fail_fast: bool = False,
    ):
        self.recompute = recompute
        #: stop at the first unit that fails instead of recording it and running the others
        self.fail_fast = fail_fast
        self.plugins = plugins or get_plugins()
        source = str(spec) if isinstance(spec, (str, Path)) else "spec"
        data = load_spec_file(spec) if isinstance(spec, (str, Path)) else dict(spec)
        self.spec_data = data
        self.datasets = DatasetBuilder(self.plugins.registries["datasets"].create)
        self.resolved: ResolvedSpec = validate(data, self.plugins, source, build_dataset=self.datasets)
        if executor not in ("local", "ray"):
            raise LrbenchError(f"executor: bad value {executor!r}; choices: local, ray")
        self.executor, self.address = executor, address
        s = self.resolved.spec
        self.run_dir = Path(output or s.output or Path("runs") / s.name)
        self.source = source
        self.device = resolve_device(device or s.device, source)
        self.cache = Cache(cache_dir or s.cache_dir or default_cache_dir())
        self.progress, self.echo = progress, echo
        self.state = RunState()
        #: task -> the metric it leads with, for tables, the report and the CLI (set when the run is scored)
        self.headline: dict[str, str] = {}
        self.computer = Computer(self.plugins, self.cache, self.device, s, self.state, self.datasets)

    # ---- planning -------------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        t0 = time.perf_counter()
        plan = build_plan(self.resolved, self.plugins, self.cache, self.datasets)
        if self.recompute:
            n = force(plan, self.recompute)
            self.echo(f"--recompute {self.recompute!r}: {n} cell{'s' * (n != 1)} forced")
        self.state.timings["plan_s"] = time.perf_counter() - t0
        return plan

    def describe(self, plan: Plan) -> str:
        units_to_run = [u for u in plan.units if u.missing()]
        lines = [
            f"plan: {plan.n_cells} cells ({len(plan.units)} model x method x dataset units), "
            f"{plan.n_cells - plan.n_missing} cached, {plan.n_missing} to run on {self.device}"
        ]
        for u in plan.units:
            status = ", ".join(f"{d.condition}{'' if u.cached[d.condition] else '*'}" for d in u.conditions)
            lines.append(f"  {u.model.label} | {u.method.label} | {u.dataset.label} [{u.task.name}]: {status}")
        if units_to_run:
            lines.append("  (* = to run)")
        return "\n".join(lines)

    # ---- computing and scoring ----------------------------------------------------------------------------------
    def execute(self, plan: Plan, executor: str | None = None) -> None:
        """Compute every missing cell with the run's executor (``local`` or ``ray``)."""
        if not any(u.missing() for u in plan.units):
            self.echo("all cells cached: nothing to compute")
            return
        if (executor or self.executor) == "ray":
            run_ray(self.computer, plan, self.address, self.echo)
        else:
            run_local(self.computer, plan, self.progress, self.fail_fast)

    def score(self, plan: Plan, executor: str | None = None) -> pd.DataFrame:
        """The results table; a cell that fails its checksum when read is computed again, then scored."""
        failed = {f["cell"] for f in self.state.failed}
        results, unreadable = score(plan, self.resolved.metrics, self.plugins, self.cache, self.state.skipped)
        unreadable = [(u, c) for u, c in unreadable if u.cell_label(c) not in failed]
        if unreadable:
            for unit, condition in unreadable:
                unit.cached[condition] = False
            self.execute(plan, executor)
            results, unreadable = score(plan, self.resolved.metrics, self.plugins, self.cache, self.state.skipped)
            unreadable = [(u, c) for u, c in unreadable if u.cell_label(c) not in failed]
            if unreadable:
                unit, condition = unreadable[0]
                raise LrbenchError(
                    f"cell {unit.cell_label(condition)} could not be read back "
                    f"from the cache at {self.cache.root} after computing it"
                )
        return results

    # ---- the whole run --------------------------------------------------------------------------------------------
    def dry_run(self) -> pd.DataFrame:
        """The plan and what the run would meet (weights to fetch or missing, files absent), fetching nothing:
        ``download: true`` datasets that are not there yet are listed, not planned."""
        from dataclasses import replace

        from .preflight import datasets_to_download, preflight

        problems = preflight(self.resolved, self.plugins)
        absent = datasets_to_download(self.resolved, self.plugins)
        resolved = replace(self.resolved, datasets=[d for d in self.resolved.datasets if d.label not in absent])
        table = pd.DataFrame(columns=["model", "method", "dataset", "condition", "cached"])
        if resolved.datasets:
            plan = build_plan(resolved, self.plugins, self.cache, self.datasets)
            self.echo(self.describe(plan))
            table = pd.DataFrame(plan.table())
        for p in problems:
            self.echo(f"{p.finding.level}: {p}")
        if any(p.finding.level == "error" for p in problems):
            self.echo("the run would fail on the errors above")
        return table

    def run(self, dry_run: bool = False) -> pd.DataFrame:
        if dry_run:
            return self.dry_run()
        t0 = time.perf_counter()
        plan = self.plan()
        self.echo(self.describe(plan))
        if dry_run:
            return pd.DataFrame(plan.table())
        self.check_paths()
        # every output goes to a staging folder that replaces the run directory at the end: a reader sees the previous
        # run's files or this run's, never a mix (and a killed run leaves the previous run intact)
        staging = staging_dir(self.run_dir)
        handler = logging.FileHandler(staging / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        # run.log holds the progress (one INFO line per unit, per cell computed, a plugin's training lines) as well as
        # every warning, with or without a terminal. Only warnings and errors go on to the root logger's handlers: a
        # library that configured root logging must not print the progress as INFO:lrbench:... lines. The logger is
        # the user's again once the run ends.
        to_root = WarningsToRoot()
        level, propagate = log.level, log.propagate
        log.addHandler(handler)
        log.addHandler(to_root)
        log.setLevel(logging.INFO)
        log.propagate = False
        published = False
        try:
            t1 = time.perf_counter()
            ranks = distributed_env()
            if ranks is not None:
                run_sharded(self.computer, plan, *ranks)
                if ranks[0] != 0:
                    return pd.DataFrame(columns=COLUMNS)  # rank 0 scores and writes
            else:
                self.execute(plan)
            self.state.timings["compute_s"] = time.perf_counter() - t1
            # under torchrun only rank 0 is still here: a cell to compute again is computed locally
            results = self.score(plan, "local" if ranks is not None else None)
            num_classes = {u.dataset.label: u.dataset_obj.num_classes for u in plan.units}
            self.state.num_classes = {k: int(v) for k, v in num_classes.items() if v}
            # the class count of each row's dataset, so `lrbench aggregate` works on a run's own results.csv
            results["num_classes"] = pd.array([num_classes.get(d) or None for d in results["dataset"]], dtype="Int64")
            agg, summary = split_aggregates(results, aggregates(plan, self.resolved.metrics, self.plugins), num_classes)
            self.headline = headline_metrics(plan)
            write_outputs(staging, results, agg, summary, self.headline)
            self.state.timings["total_s"] = time.perf_counter() - t0
            self._write_meta(plan, staging)
            from .report import write_report

            write_report(staging, self.run_dir.name)
            if self.state.skipped:
                log.warning("%d undecodable items skipped (listed in run.json)", len(self.state.skipped))
            log.removeHandler(handler)
            handler.close()
            publish(staging, self.run_dir)
            published = True
            self.echo(
                f"computed {len(self.state.computed)} cells, reused {plan.n_cells - len(self.state.computed)} "
                f"from the cache; results in {self.run_dir}"
            )
        finally:
            log.removeHandler(handler)
            log.removeHandler(to_root)
            handler.close()
            log.setLevel(level)
            log.propagate = propagate
            if not published:
                shutil.rmtree(staging, ignore_errors=True)
        if self.state.failed:
            lines = [f"{f['cell']}: {f['error']}" for f in self.state.failed]
            raise CellsFailed(
                f"{len(lines)} cell{'s' * (len(lines) != 1)} failed and {'were' if len(lines) != 1 else 'was'}"
                f" not cached (the other results are in {self.run_dir}; listed in run.json): " + "; ".join(lines)
            )
        results.attrs.update(run_dir=str(self.run_dir), computed=list(self.state.computed))
        return results

    def _failures(self, out: Path) -> list[dict[str, str]]:
        """The failed cells for run.json; a traceback is written once per distinct failure under ``failures/``
        (relative path in run.json), so run.json stays readable."""
        files: dict[str, str] = {}
        listed = []
        for f in self.state.failed:
            entry = {k: v for k, v in f.items() if k != "traceback"}
            tb = f.get("traceback")
            if tb:
                if tb not in files:
                    files[tb] = f"failures/{len(files) + 1:03d}.txt"
                    (out / "failures").mkdir(exist_ok=True)
                    atomic_write_text(out / files[tb], tb)
                entry["traceback"] = files[tb]
            listed.append(entry)
        return listed

    def check_paths(self) -> None:
        """Refuse, before computing anything, a run directory or cache that cannot be written (exit status 2)."""
        problems = []
        out = check_output_dir(self.run_dir)
        if out:
            problems.append(("output", out))
        cache = (
            writable_dir_problem(self.cache.root)
            if not self.cache.root.is_file()
            else f"{self.cache.root} is a file, not a folder"
        )
        if cache:
            problems.append(("cache_dir", cache))
        if problems:
            raise SpecError(problems, self.source)

    def _write_meta(self, plan: Plan, out: Path) -> None:
        atomic_write_text(out / "spec.resolved.yaml", yaml.safe_dump(self.resolved_spec_dict(), sort_keys=False))
        try:  # a re-run served from the cache builds no model: keep the input sizes an earlier run saw
            earlier = json.loads((self.run_dir / "run.json").read_text()).get("input_size") or {}
        except (OSError, ValueError):
            earlier = {}
        self.state.input_size = {**earlier, **self.state.input_size}
        meta = {
            "lrbench": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "finished": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device)
            if self.device.type == "cuda"
            else platform.processor(),
            "num_workers": self.computer.num_workers,
            "plugins": [
                {"name": i.name, "distribution": i.distribution, "version": i.version, "error": i.error}
                for i in self.plugins.listing()
            ],
            "cells": plan.n_cells,
            "headline_metrics": self.headline,
            "computed": self.state.computed,
            "model_loads": self.state.model_loads,
            "skipped_items": self.state.skipped,
            "n_skipped": len(self.state.skipped),
            "timings": self.state.timings,
            "cache_dir": str(self.cache.root),
            "input_size": self.state.input_size,
            "num_classes": self.state.num_classes,
            "failed_cells": self._failures(out),
        }
        atomic_write_text(out / "run.json", json.dumps(meta, indent=2, default=str))

    def resolved_spec_dict(self) -> dict[str, Any]:
        s = self.resolved

        def entries(items: list[Item]) -> list[dict[str, Any]]:
            return [{"name": i.name, "label": i.label, **i.params} for i in items]

        d = s.spec.model_dump()
        d.update(
            models=entries(s.models),
            methods=entries(s.methods),
            datasets=entries(s.datasets),
            conditions=[{"name": c.name, **c.params} for c in s.conditions],
            output=str(self.run_dir),
            cache_dir=str(self.cache.root),
            device=str(self.device),
        )
        if s.metrics is not None:
            d["metrics"] = entries(s.metrics)
        if s.task is not None:
            d["task"] = {"name": s.task.name, **s.task.params}
        return d


def run_spec(
    spec: dict[str, Any] | str | Path,
    output: str | Path | None = None,
    *,
    device: str | None = None,
    dry_run: bool = False,
    plugins: Plugins | None = None,
    progress: bool = False,
    echo: Callable[[str], None] = lambda s: None,
    cache_dir: str | Path | None = None,
    executor: str = "local",
    address: str | None = None,
    recompute: str | None = None,
    fail_fast: bool = False,
) -> pd.DataFrame:
    """Run a spec (a mapping or a YAML path) and return the tidy results table (the plan table for ``dry_run``);
    ``recompute``: a ``model|method|dataset|condition`` pattern of cells to compute even if cached; ``fail_fast``:
    stop at the first failing unit instead of running the others and raising :class:`CellsFailed` at the end."""
    runner = Runner(
        spec,
        output,
        device=device,
        plugins=plugins,
        progress=progress,
        echo=echo,
        cache_dir=cache_dir,
        executor=executor,
        address=address,
        recompute=recompute,
        fail_fast=fail_fast,
    )
    return runner.run(dry_run=dry_run)
