"""Computing a unit: build its model and method, run its task over the data, cache each condition's raw outputs.

Every executor (local, Ray worker, torchrun rank) computes through a :class:`Computer`; it holds what a unit needs
beyond the unit itself (the registries, the cache, the device, the spec's run settings), so a worker given a unit
computes it without re-planning the spec.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .cache import Cache, canonical_json
from .degradations import Degradation
from .methods import ArtifactStore, MethodContext
from .models import ModelAdapter
from .plan import Unit, entry_identity
from .registry import LrbenchError
from .spec import Item, Spec
from .tasks import CellOutput, ConditionFailed, RunContext, check_outputs, resolve_workers

log = logging.getLogger("lrbench")


def seed_everything(seed: int) -> None:
    """Seed every generator a model, method or task may draw from (torch, numpy's global, Python's ``random``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunState:
    """What a run did: shown to the user and written to run.json."""

    computed: list[str] = field(default_factory=list)
    reused: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model_loads: int = 0
    #: cells that could not be computed: {"cell": model|method|dataset|condition, "error": ...}; never cached
    failed: list[dict[str, str]] = field(default_factory=list)
    #: model label -> its own input size in px (the "HR" of the report's resolution axis)
    input_size: dict[str, int] = field(default_factory=dict)
    num_classes: dict[str, int] = field(default_factory=dict)


class DatasetBuilder:
    """Builds each dataset entry (registry name + parameters) once per run: planning, validation and training methods
    that ask for the same entry share the object."""

    def __init__(self, create: Callable[..., Any]):
        self._create = create
        self._built: dict[str, Any] = {}

    def __call__(self, name: str, **params: Any) -> Any:
        key = canonical_json({"name": name, "params": params})
        if key not in self._built:
            self._built[key] = self._create(name, **params)
        return self._built[key]


class Computer:
    """Builds models and computes units into the cache for one run (or one worker of it)."""

    def __init__(
        self,
        plugins: Any,
        cache: Cache,
        device: torch.device,
        spec: Spec,
        state: RunState | None = None,
        datasets: DatasetBuilder | None = None,
    ):
        self.plugins, self.cache, self.device, self.spec = plugins, cache, device, spec
        self.artifacts = ArtifactStore(cache.root / "artifacts")
        self.state = state or RunState()
        self.datasets = datasets or DatasetBuilder(plugins.registries["datasets"].create)
        #: loader workers: ``auto`` resolved on the machine that computes (a Ray worker counts its own cores)
        self.num_workers = resolve_workers(spec.num_workers)

    def context(self, bar: Any = None) -> RunContext:
        s = self.spec
        return RunContext(
            device=self.device,
            batch_size=s.batch_size,
            num_workers=self.num_workers,
            fast_path=s.fast_path,
            amp=s.amp,
            cache=self.cache,
            seed=s.seed,
            log=log,
            progress=(bar.update if bar is not None else (lambda n: None)),
            skipped=self.state.skipped,
        )

    def build_model(self, model: Item, method: Item) -> ModelAdapter:
        """The model entry's adapter on the run's device with the method applied (training methods reuse their
        cached artifact)."""
        seed_everything(self.spec.seed)  # random-init weights are drawn here: the same spec gives the same model
        base = self.plugins.registries["models"].create(model.name, **model.params)
        self.state.model_loads += 1
        size = getattr(getattr(base, "preprocess", None), "image_size", None)
        if isinstance(size, int):
            self.state.input_size[model.label] = size
        base.to(self.device).eval()
        method_obj = self.plugins.registries["methods"].create(method.name, **method.params)
        ctx = MethodContext(
            device=self.device,
            artifacts=self.artifacts,
            cache=self.cache,
            seed=self.spec.seed,
            log=log,
            dataset=self.datasets,
        )
        seed_everything(self.spec.seed)
        adapted = method_obj.apply(base, ctx)
        return adapted.to(self.device).eval()

    def compute_unit(self, unit: Unit, model: ModelAdapter, bar: Any = None) -> None:
        """Compute a unit's missing conditions and store each in the cache (under a lock shared by concurrent runs)."""
        missing = unit.missing()
        if not missing:
            return
        if unit.model_kind is not None and model.kind != unit.model_kind:
            raise LrbenchError(
                f"model {unit.model.label!r} with method {unit.method.label!r} was planned as a "
                f"{unit.model_kind!r} model (its registered kind, as the method declares it changes) "
                f"but built a {model.kind!r} one; fix the registration's kind= or the method's produces()"
            )
        self.check_inputs(unit)
        locks = [self.cache.lock("cells", unit.keys[d.condition]) for d in missing]
        for lock in locks:
            lock.acquire()
        try:
            # another run may have finished these while we waited for the locks (forced cells are computed anyway)
            missing = [
                d
                for d in missing
                if d.condition in unit.forced or not self.cache.contains("cells", unit.keys[d.condition])
            ]
            if not missing:
                return
            t0 = time.perf_counter()
            outputs: dict[str, CellOutput] = {}
            skipped: list[dict[str, Any]] = []
            while missing:
                # a condition that fails on an item fails its own cell; the others are computed again without it
                seed_everything(self.spec.seed)
                skipped = []
                ctx = self.context(bar)
                ctx.skipped = skipped
                try:
                    outputs = check_outputs(
                        unit.task, unit.task.run(model, unit.dataset_obj, missing, ctx), [d.condition for d in missing]
                    )
                    break
                except ConditionFailed as exc:
                    self.fail(unit, exc.condition, exc.error)
                    missing = [d for d in missing if d.condition != exc.condition]
                except Exception:
                    if len(missing) == 1:
                        raise
                    outputs, skipped, missing = self.one_by_one(unit, model, missing, bar)
                    break
            self.state.skipped.extend(skipped)
            elapsed = time.perf_counter() - t0
            for deg in missing:
                cell = outputs[deg.condition]
                if cell.n == 0:  # an empty cell would be reused by every later run: never cache one
                    first = f": {skipped[0]['error']}" if skipped else ""
                    self.fail(unit, deg.condition, f"no item of {len(unit.dataset_obj)} could be evaluated{first}")
                    continue
                self.store(unit, deg.condition, cell)
            self.state.timings[f"{unit.model.label}|{unit.method.label}|{unit.dataset.label}"] = elapsed
        finally:
            for lock in locks:
                lock.release()

    def one_by_one(
        self, unit: Unit, model: ModelAdapter, conditions: list[Degradation], bar: Any = None
    ) -> tuple[dict[str, CellOutput], list[dict[str, Any]], list[Degradation]]:
        """Run each condition alone after a task raised on several: a task with its own loop (a plugin's) stops at
        its first failing condition, and that condition must fail only its own cell. Every condition failing is the
        unit failing (its first error is raised, as before)."""
        import traceback

        outputs: dict[str, CellOutput] = {}
        skipped: list[dict[str, Any]] = []
        done: list[Degradation] = []
        errors: list[tuple[Degradation, BaseException]] = []
        for deg in conditions:
            seed_everything(self.spec.seed)
            ctx = self.context(bar)
            ctx.skipped = []
            try:
                outputs.update(
                    check_outputs(unit.task, unit.task.run(model, unit.dataset_obj, [deg], ctx), [deg.condition])
                )
            except Exception as exc:
                errors.append((deg, exc))
                continue
            skipped.extend(ctx.skipped)
            done.append(deg)
        if not done:
            raise errors[0][1]
        for deg, exc in errors:
            text = "".join(traceback.format_exception(exc))
            self.fail(unit, deg.condition, f"{type(exc).__name__}: {exc}", text)
        return outputs, skipped, done

    def check_inputs(self, unit: Unit) -> None:
        """Refuse to store cells under a key whose weights are no longer the ones the model was built from: a model
        that loads weights by name may fetch a newer version while it is built (an online Hub id without a pinned
        revision). Weights that were not downloaded yet when the run was planned are keyed by name, as planned."""
        planned = unit.descriptions[unit.conditions[0].condition]["model"].get("inputs")
        if not planned:
            return
        now = entry_identity(self.plugins, unit.model).get("inputs")
        if now != planned:
            raise LrbenchError(
                f"model {unit.model.label!r}: its weights changed after the run was planned (a newer download while "
                "it was built); nothing was cached under the old weights' key: run again to key the cells by the "
                "weights now on this machine, or pin the revision"
            )

    def fail(self, unit: Unit, condition: str, error: str, traceback: str | None = None) -> None:
        """Record a cell that could not be computed (reported at the end of the run, never cached); ``traceback`` is
        written beside run.json when the whole unit failed (a model that did not build, a task that raised)."""
        label = unit.cell_label(condition)
        log.error("cell %s failed: %s", label, error)
        self.state.failed.append({"cell": label, "error": error, **({"traceback": traceback} if traceback else {})})

    def fail_unit(self, unit: Unit, exc: BaseException) -> None:
        """Every missing cell of a unit failed with ``exc``: recorded with its traceback, the run goes on."""
        import traceback

        text = "".join(traceback.format_exception(exc))
        for deg in unit.missing():
            self.fail(unit, deg.condition, f"{type(exc).__name__}: {exc}", text)

    def store(self, unit: Unit, condition: str, outputs: CellOutput) -> None:
        """Write one cell's raw outputs and mark it computed."""
        self.cache.put("cells", unit.keys[condition], outputs.to_arrays(), unit.descriptions[condition])
        log.info("cell %s computed (n=%d)", unit.cell_label(condition), outputs.n)
        unit.cached[condition] = True
        self.state.computed.append(unit.cell_label(condition))
