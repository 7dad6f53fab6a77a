"""Metrics: per cell (on one cell's raw outputs) or aggregate (on the whole results table).

A per-cell metric returns a float or a dict of named floats (``{"": mean, "std": s}`` becomes rows ``name`` and
``name.std``). An aggregate metric returns rows (model, method, dataset, condition, metric, value) computed from the
table of per-cell rows, e.g. gamma = A_n / A_HR per dataset, SAR = mean of gamma over datasets.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from .registry import LrbenchError


class AggregateSkipped(LrbenchError):
    """An aggregate that cannot be computed from this table (no HR rows, no accuracy rows): the run writes its per-cell
    results and the other aggregates, and reports this one's reason as a warning."""


class CellMetric:
    kind: ClassVar[str] = "cell"
    name: ClassVar[str] = "metric"
    #: tasks whose raw outputs this metric reads
    tasks: ClassVar[Sequence[str]] = ()

    def compute(self, outputs: dict[str, np.ndarray], dataset: Any) -> float | dict[str, float]:
        raise NotImplementedError


class AggregateMetric:
    kind: ClassVar[str] = "aggregate"
    name: ClassVar[str] = "aggregate"
    #: "dataset": one value per (model, method, dataset, condition) -> aggregates.csv;
    #: "summary": one value per (model, method, condition) -> summary.csv
    level: ClassVar[str] = "summary"

    def aggregate(self, table: pd.DataFrame, num_classes: dict[str, int]) -> pd.DataFrame:
        raise NotImplementedError
