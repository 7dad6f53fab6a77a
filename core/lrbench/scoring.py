"""Scoring: every cell's metrics from its cached raw outputs, and the aggregate metrics of a run.

Scoring is cheap and reads only the cache, so the results table is rebuilt on every run and changing metrics never
recomputes model outputs. Reading a cell verifies its checksum (the only time it is hashed); a cell that fails is
dropped from the cache and reported, so the run computes it again.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from .cache import Cache
from .plan import Plan, Unit
from .registry import LrbenchError
from .results import COLUMNS, metric_rows
from .spec import Item
from .tasks import CellOutput, check_outputs

log = logging.getLogger("lrbench")


def score(
    plan: Plan, metrics: list[Item] | None, plugins: Any, cache: Cache, skipped: list[dict[str, Any]]
) -> tuple[pd.DataFrame, list[tuple[Unit, str]]]:
    """The tidy results table of every readable cell, and the (unit, condition) cells that could not be read."""
    rows, unreadable = [], []
    for unit in plan.units:
        items = metrics or [Item("metrics", m) for m in unit.task.default_metrics]
        cell_metrics = []
        for item in items:
            metric = plugins.registries["metrics"].create(item.name, **item.params)
            if metric.kind == "cell" and unit.task.name in metric.tasks:
                cell_metrics.append((item.label, metric))
        for deg in unit.conditions:
            described = deg.describe()
            level = np.nan if described["level"] is None else float(described["level"])
            outputs = read_cell(cache, unit, deg.condition)
            if outputs is None:
                unreadable.append((unit, deg.condition))
                continue
            n = int(outputs["n"])
            if len(outputs["index"]) < len(unit.dataset_obj):
                note_skipped(unit, outputs["index"], skipped)
            for label, metric in cell_metrics:
                for name, value in metric_rows(label, metric, outputs, unit.dataset_obj):
                    rows.append(
                        (
                            unit.model.label,
                            unit.method.label,
                            unit.dataset.label,
                            deg.condition,
                            name,
                            value,
                            n,
                            unit.task.name,
                            described["degradation"],
                            described["family"],
                            level,
                        )
                    )
    return pd.DataFrame(rows, columns=COLUMNS), unreadable


def headline_metrics(plan: Plan) -> dict[str, str]:
    """``{task name: the metric it leads with}`` for the run's tasks that name one."""
    return {u.task.name: u.task.headline_metric for u in plan.units if u.task.headline_metric}


def read_cell(cache: Cache, unit: Unit, condition: str) -> dict[str, np.ndarray] | None:
    """A cell's stored arrays (checksum verified) if they meet the cell-output contract; a cell that does not (written
    before the contract, or by a task that broke it) is dropped from the cache, so the run computes it again."""
    key = unit.keys[condition]
    arrays = cache.get("cells", key)
    if arrays is None:
        return None
    try:
        cell = CellOutput.from_arrays(arrays)
        check_outputs(unit.task, {condition: cell}, [condition])
    except (ValueError, LrbenchError) as exc:
        log.warning(
            "cached cell %s does not meet the cell-output contract (%s); recomputing", unit.cell_label(condition), exc
        )
        cache.discard("cells", key)
        return None
    return arrays


def note_skipped(unit: Unit, index: np.ndarray, skipped: list[dict[str, Any]]) -> None:
    """Items absent from a cell's outputs were undecodable when it was computed (maybe in an earlier run)."""
    known = {(s["dataset"], s["index"]) for s in skipped}
    ds = unit.dataset_obj
    for i in sorted(set(range(len(ds))) - set(index.tolist())):
        if (ds.name, i) not in known:
            skipped.append(
                {
                    "dataset": ds.name,
                    "index": i,
                    "item": ds.item_id(i),
                    "error": "undecodable when its cell was computed",
                }
            )
            known.add((ds.name, i))


def aggregates(plan: Plan, metrics: list[Item] | None, plugins: Any) -> list[tuple[str, Any]]:
    """The aggregate metrics a run computes: those the spec names, else its tasks' default aggregates."""
    items = metrics
    if items is None:
        names = dict.fromkeys(name for u in plan.units for name in u.task.default_aggregates)
        items = [Item("metrics", n) for n in names]
    out = []
    for item in items:
        metric = plugins.registries["metrics"].create(item.name, **item.params)
        if metric.kind == "aggregate":
            out.append((item.label, metric))
    return out
