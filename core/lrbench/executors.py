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
from typing import TYPE_CHECKING, Any

import numpy as np

from .datasets import Dataset

if TYPE_CHECKING:
    from .plan import Plan
    from .runner import Runner


def run_ray(runner: "Runner", plan: "Plan", address: str | None = None, max_retries: int = 3) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    todo = [i for i, u in enumerate(plan.units) if u.missing()]
    gpu = runner.device.type == "cuda"
    remote = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1, max_retries=max_retries)(_ray_unit)
    plugins = runner.plugins
    refs = {remote.remote(runner.spec_data, i, str(runner.cache.root), str(runner.device), plugins.load_entry_points,
                          plugins.extra): i for i in todo}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            computed, skipped = ray.get(ref)
            unit = plan.units[refs[ref]]
            for deg in unit.conditions:
                unit.cached[deg.condition] = True
            runner.state.computed += computed
            runner.state.skipped += skipped
            runner.echo(f"done: {unit.model.label} | {unit.method.label} | {unit.dataset.label}")


def _ray_unit(spec_data: dict[str, Any], unit_index: int, cache_dir: str, device: str, load_entry_points: bool,
              extra: list) -> tuple[list[str], list[dict]]:
    """Runs in a Ray worker: rebuild the plugins and the plan, compute one unit into the shared cache."""
    from .plugins import Plugins
    from .runner import Runner

    plugins = Plugins(load_entry_points=load_entry_points, extra=extra)
    runner = Runner(spec_data, device=device, plugins=plugins, progress=False, echo=lambda s: None, cache_dir=cache_dir)
    unit = runner.plan().units[unit_index]
    if unit.missing():
        runner.compute_unit(unit, runner._build_model(unit.model, unit.method))
    return runner.state.computed, runner.state.skipped


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


def merge_shards(parts: list[dict[str, np.ndarray]], shards: list[Shard]) -> dict[str, np.ndarray]:
    """Concatenate per-item arrays of every rank (those with one row per reported index) in global item order."""
    merged: dict[str, np.ndarray] = {}
    global_index = [s.indices[p["index"]] for p, s in zip(parts, shards)]
    order = np.argsort(np.concatenate(global_index), kind="stable")
    n_rows = [len(p["index"]) for p in parts]
    for key in parts[0]:
        if key == "index":
            merged[key] = np.concatenate(global_index)[order]
        elif all(p[key].ndim and len(p[key]) == n for p, n in zip(parts, n_rows)):
            merged[key] = np.concatenate([p[key] for p in parts])[order]
        else:
            merged[key] = parts[0][key]
    return merged


def distributed_env() -> tuple[int, int] | None:
    """(rank, world size) under torchrun, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def run_sharded(runner: "Runner", plan: "Plan", rank: int, world: int) -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if runner.device.type == "cuda" else "gloo")
    for unit in plan.units:
        missing = unit.missing()
        if not missing:
            continue
        model = runner._build_model(unit.model, unit.method)
        shards = [Shard(unit.dataset_obj, r, world) for r in range(world)]
        outputs = unit.task.run(model, shards[rank], missing, runner._context(None))
        gathered: list[Any] = [None] * world if rank == 0 else []
        dist.gather_object(outputs, gathered if rank == 0 else None, dst=0)
        if rank == 0:
            for deg in missing:
                merged = merge_shards([g[deg.condition] for g in gathered], shards)
                runner.cache.put("cells", unit.keys[deg.condition], merged, unit.descriptions[deg.condition])
                unit.cached[deg.condition] = True
                runner.state.computed.append(
                    f"{unit.model.label}|{unit.method.label}|{unit.dataset.label}|{deg.condition}")
        dist.barrier()
