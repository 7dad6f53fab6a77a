"""Where a plan's units run: in this process, on a Ray cluster, or sharded over torchrun ranks.

Every executor writes the same content-keyed cache entries, so the results table (scored by the driver from the cache)
is identical whichever ran the cells.

- ``local``: units one after another in this process.
- ``ray``: each unit with missing cells becomes a Ray task (1 GPU when the run is on CUDA, else 1 CPU); a task whose
  worker dies is retried by Ray (``max_retries``); the cache must be on storage every node sees.
- torchrun: under ``torchrun --nproc-per-node N -m lrbench run ...`` each rank computes every N-th item of each unit,
  rank 0 gathers the raw outputs in item order and writes the cache; the other ranks then wait and exit.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from .compute import Computer, RunState, log
from .datasets import Dataset
from .models import ModelAdapter
from .plan import Plan, Unit
from .spec import Spec
from .tasks import CellOutput, check_outputs


def run_local(computer: Computer, plan: Plan, progress: bool = True, fail_fast: bool = False) -> None:
    """Units one after another in this process; consecutive units of one (model, method) share the built model.

    A unit that raises (its model does not build, its task fails) fails its own cells and the other units still run;
    the runner reports the failures and exits non-zero at the end. ``fail_fast`` re-raises at the first one instead."""
    todo = [u for u in plan.units if u.missing()]
    total = sum(len(u.dataset_obj) for u in todo)
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="img", desc="images", disable=None if progress else True, dynamic_ncols=True) as bar:
        current: tuple[str, str] | None = None
        model: ModelAdapter | None = None
        build_error: BaseException | None = None  # the current (model, method) did not build: its units fail alike
        for i, unit in enumerate(todo, 1):
            log.info(
                "unit %d/%d: %s | %s | %s: %d conditions on %d images",
                i,
                len(todo),
                unit.model.label,
                unit.method.label,
                unit.dataset.label,
                len(unit.missing()),
                len(unit.dataset_obj),
            )
            bar.set_postfix_str(f"{unit.model.label} | {unit.method.label} | {unit.dataset.label}", refresh=False)
            try:
                if current != (unit.model.label, unit.method.label):
                    model, build_error = None, None
                    current = (unit.model.label, unit.method.label)
                    if computer.device.type == "cuda":
                        torch.cuda.empty_cache()
                    try:
                        model = computer.build_model(unit.model, unit.method)
                    except Exception as exc:
                        build_error = exc
                        raise
                if build_error is not None:
                    raise build_error
                computer.compute_unit(unit, model, bar)
            except Exception as exc:
                if fail_fast:
                    raise
                computer.fail_unit(unit, exc)
                bar.update(len(unit.dataset_obj))


def run_ray(
    computer: Computer,
    plan: Plan,
    address: str | None = None,
    echo: Callable[[str], None] = print,
    max_retries: int = 3,
) -> None:
    """Each unit with missing cells becomes a Ray task that receives the unit itself (its dataset, task, conditions
    and keys) and the recipe of the run's plugin set."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    todo = [u for u in plan.units if u.missing()]
    gpu = computer.device.type == "cuda"
    remote = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1, max_retries=max_retries)(_ray_unit)
    plugins = computer.plugins
    refs = {
        remote.remote(
            unit,
            str(computer.cache.root),
            str(computer.device),
            computer.spec,
            plugins.load_entry_points,
            plugins.extra,
        ): unit
        for unit in todo
    }
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            computed, skipped = ray.get(ref)
            unit = refs[ref]
            for deg in unit.conditions:
                unit.cached[deg.condition] = True
            computer.state.computed += computed
            computer.state.skipped += skipped
            echo(f"done: {unit.model.label} | {unit.method.label} | {unit.dataset.label}")


def _ray_unit(
    unit: Unit, cache_dir: str, device: str, spec: Spec, load_entry_points: bool, extra: list
) -> tuple[list[str], list[dict]]:
    """Runs in a Ray worker: rebuild the plugin set, compute the unit it was given into the shared cache."""
    from .cache import Cache
    from .plugins import Plugins

    plugins = Plugins(load_entry_points=load_entry_points, extra=extra)
    computer = Computer(plugins, Cache(cache_dir), torch.device(device), spec, RunState())
    if unit.missing():
        computer.compute_unit(unit, computer.build_model(unit.model, unit.method))
    return computer.state.computed, computer.state.skipped


class Shard(Dataset):
    """Every ``world``-th item of a dataset starting at ``rank``; item indices reported by tasks are mapped back."""

    def __init__(self, base: Dataset, rank: int, world: int):
        self.base, self.indices = base, np.arange(rank, len(base), world)
        self.task = base.task  # type: ignore[misc]
        self.name, self.classnames, self.templates = base.name, base.classnames, base.templates
        self.num_classes = base.num_classes
        self.labels = base.labels[self.indices] if getattr(base, "labels", None) is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def item_id(self, index: int) -> str:
        return self.base.item_id(int(self.indices[index]))

    def load(self, index: int):
        return self.base.load(int(self.indices[index]))

    def encoded(self, index: int) -> bytes | None:
        return self.base.encoded(int(self.indices[index]))

    def __getattr__(self, name: str) -> Any:
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def merge_shards(parts: list[CellOutput], shards: list[Shard]) -> CellOutput:
    """One cell from every rank's part: per-item arrays (one row per reported index) concatenated in global item order,
    other arrays taken from rank 0, ``n`` summed over the disjoint shards."""
    global_index = np.concatenate([s.indices[p.index] for p, s in zip(parts, shards)])
    order = np.argsort(global_index, kind="stable")
    arrays: dict[str, np.ndarray] = {}
    for key in parts[0].arrays:
        if all(p.arrays[key].ndim and len(p.arrays[key]) == len(p.index) for p in parts):
            arrays[key] = np.concatenate([p.arrays[key] for p in parts])[order]
        else:
            arrays[key] = parts[0].arrays[key]
    return CellOutput(global_index[order], sum(int(p.n) for p in parts), arrays)


def distributed_env() -> tuple[int, int] | None:
    """(rank, world size) under torchrun, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def run_sharded(computer: Computer, plan: Plan, rank: int, world: int) -> None:
    """Every rank computes every ``world``-th item of each unit; rank 0 gathers, merges in item order and writes."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if computer.device.type == "cuda" else "gloo")
    for unit in plan.units:
        missing = unit.missing()
        if not missing:
            continue
        model = computer.build_model(unit.model, unit.method)
        shards = [Shard(unit.dataset_obj, r, world) for r in range(world)]
        outputs = check_outputs(
            unit.task,
            unit.task.run(model, shards[rank], missing, computer.context(None)),
            [d.condition for d in missing],
        )
        gathered: list[Any] = [None] * world if rank == 0 else []
        dist.gather_object(outputs, gathered if rank == 0 else None, dst=0)
        if rank == 0:
            for deg in missing:
                computer.store(unit, deg.condition, merge_shards([g[deg.condition] for g in gathered], shards))
        dist.barrier()
