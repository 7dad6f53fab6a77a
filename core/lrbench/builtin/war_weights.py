"""``lrbench war-weights``: re-derive WAR's dataset weights from any results table (LR0.FM eq. 2).

WAR-n = sum_d |w_d Gamma_d| / sum_d |w_d|. A plain mean (uniform weights, SAR-like) ranks models almost exactly like the
datasets that agree with each other (ImageNet and friends) and ignores the ones that rank models differently (EuroSAT,
ImageNet-A). LR0.FM picks the weights that maximise a weighted sum of Spearman correlations between the model ranking by
the weighted average and each dataset's own ranking:

    maximise  sum_d c_d * SC(rank(WAR_w), rank(Gamma_d))   over w_d in [lo, hi]

with c = 0.95 for ImageNet-V2 and DTD, 1 for ImageNet-A and EuroSAT (eq. 2), at 16x16. The objective is piecewise
constant in w (it depends on w only through a ranking), so gradient methods and Bayesian optimisation with smooth
surrogates (the authors used Ax) gain nothing over a population search; we use SciPy's differential evolution
(or Optuna's TPE sampler), seeded with the uniform weights so the result is never worse than the plain mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .. import hookimpl
from ..registry import LrbenchError
from .aggregates import WAR16_WEIGHTS, Gamma, ImprovedGamma

#: LR0.FM eq. (2): 0.95 x (SC(ImageNet-V2) + SC(DTD)) + SC(ImageNet-A) + SC(EuroSAT)
PAPER_OBJECTIVE: dict[str, float] = {"imagenet-v2": 0.95, "dtd": 0.95, "imagenet-a": 1.0, "eurosat": 1.0}
OPTIMIZERS = ("differential-evolution", "optuna")


def robustness_matrix(
    table: pd.DataFrame,
    condition: str = "bicubic@16",
    metric: str = "top1",
    hr: str = "hr",
    alpha: float = 200.0,
    num_classes: Mapping[str, int] | None = None,
    score: str = "Gamma",
) -> pd.DataFrame:
    """Models (rows: 'model' or 'model [method]') x datasets of Gamma (or gamma) at ``condition``; complete rows only."""
    if score not in ("Gamma", "gamma"):
        raise LrbenchError(f"score {score!r}: choose 'Gamma' (improved relative robustness) or 'gamma'")
    agg = ImprovedGamma(metric, hr, alpha) if score == "Gamma" else Gamma(metric, hr)
    frame = agg.aggregate(table, dict(num_classes or {}))
    at = frame[frame["condition"] == condition]
    if at.empty:
        conditions = sorted(set(frame["condition"]))
        raise LrbenchError(f"no {score} values at condition {condition!r}; the table has {conditions}")
    methods = at["method"].nunique() > 1
    at = at.assign(row=at["model"] + (" [" + at["method"] + "]" if methods else ""))
    wide = at.pivot_table(index="row", columns="dataset", values="value", aggfunc="first")
    return wide.dropna(axis=0, how="any").sort_index()


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis, centred and scaled so a dot product is Spearman's rho."""
    r = rankdata(x, axis=-1)
    r = r - r.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(r, axis=-1, keepdims=True)
    return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)


@dataclass
class WarWeights:
    """The optimised weights with the objective and per-dataset correlations before (uniform) and after."""

    condition: str
    weights: dict[str, float]
    objective_weights: dict[str, float]
    objective_uniform: float
    objective_optimized: float
    correlations: pd.DataFrame  # dataset, weight, objective_weight, sar_correlation, war_correlation
    n_models: int
    optimizer: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "n_models": self.n_models,
            "optimizer": self.optimizer,
            "objective_weights": self.objective_weights,
            "objective_uniform": self.objective_uniform,
            "objective_optimized": self.objective_optimized,
            "weights": self.weights,
            "correlations": self.correlations.to_dict(orient="records"),
            **self.extra,
        }


class WarObjective:
    """sum_d c_d * Spearman(weighted average of the rows, column d), vectorised over many weight vectors."""

    def __init__(self, matrix: pd.DataFrame, objective_weights: Mapping[str, float]):
        unknown = sorted(set(objective_weights) - set(matrix.columns))
        if unknown:
            raise LrbenchError(
                f"objective names datasets not in the table: {unknown}; the table has {list(matrix.columns)}"
            )
        if len(matrix) < 3:
            raise LrbenchError(f"need at least 3 models with every dataset to rank, got {len(matrix)}")
        self.datasets = list(matrix.columns)
        self.values = np.abs(matrix.to_numpy(dtype=float))  # models x datasets
        self.column_ranks = _ranks(self.values.T)  # datasets x models
        self.c = np.array([float(objective_weights.get(d, 0.0)) for d in self.datasets])

    def correlations(self, w: np.ndarray) -> np.ndarray:
        """Spearman correlation of each dataset's ranking with the weighted average's; shape (..., datasets)."""
        w = np.atleast_2d(np.abs(w))
        agg = (w @ self.values.T) / w.sum(axis=1, keepdims=True)  # candidates x models
        return _ranks(agg) @ self.column_ranks.T

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return self.correlations(w) @ self.c


def optimize_war_weights(
    matrix: pd.DataFrame,
    objective_weights: Mapping[str, float] | None = None,
    bounds: tuple[float, float] = (0.01, 1.0),
    optimizer: str = "differential-evolution",
    seed: int = 0,
    maxiter: int = 300,
    condition: str = "",
) -> WarWeights:
    """Maximise the eq.-2 objective over dataset weights in ``bounds``, starting from (and never below) uniform."""
    objective_weights = dict(PAPER_OBJECTIVE if objective_weights is None else objective_weights)
    lo, hi = bounds
    if not 0 < lo <= hi:
        raise LrbenchError(f"weight bounds must satisfy 0 < low <= high, got {bounds}")
    f = WarObjective(matrix, objective_weights)
    n = len(f.datasets)
    uniform = np.full(n, hi)
    if optimizer == "differential-evolution":
        from scipy.optimize import differential_evolution

        res = differential_evolution(
            lambda W: -f(W.T),
            [(lo, hi)] * n,
            x0=uniform,
            seed=seed,
            maxiter=maxiter,
            popsize=20,
            tol=0,
            polish=False,
            vectorized=True,
            updating="deferred",
        )
        best = res.x
    elif optimizer == "optuna":
        try:
            import optuna
        except ImportError as exc:
            raise LrbenchError("optimizer 'optuna' needs the optuna package: pip install optuna") from exc
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial({d: hi for d in f.datasets})
        study.optimize(
            lambda t: float(f(np.array([t.suggest_float(d, lo, hi) for d in f.datasets]))[0]), n_trials=maxiter
        )
        best = np.array([study.best_params[d] for d in f.datasets])
    else:
        raise LrbenchError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    before, after = f.correlations(uniform)[0], f.correlations(best)[0]
    if f(best)[0] < f(uniform)[0]:  # cannot happen with the seeded searches above; keep the guarantee explicit
        best, after = uniform, before
    corr = pd.DataFrame(
        {
            "dataset": f.datasets,
            "weight": best,
            "objective_weight": f.c,
            "sar_correlation": before,
            "war_correlation": after,
        }
    )
    extra = {}
    if set(WAR16_WEIGHTS) >= set(f.datasets):
        table11 = np.array([WAR16_WEIGHTS[d] for d in f.datasets])
        extra["objective_table11"] = float(f(table11)[0])
        corr["table11_weight"] = table11
        corr["table11_correlation"] = f.correlations(table11)[0]
    return WarWeights(
        condition,
        {d: float(w) for d, w in zip(f.datasets, best)},
        objective_weights,
        float(f(uniform)[0]),
        float(f(best)[0]),
        corr,
        len(matrix),
        optimizer,
        extra,
    )


def parse_mapping(text: str, what: str) -> dict[str, float]:
    """'a=1,b=0.95' -> {'a': 1.0, 'b': 0.95}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise LrbenchError(f"{what}: cannot read {part!r}; write name=number pairs separated by commas")
    return out


def _write(result: WarWeights, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        out.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        result.correlations.to_csv(out, index=False)


def _report(result: WarWeights) -> str:
    lines = [
        f"{result.n_models} models, {len(result.weights)} datasets, condition {result.condition}, "
        f"optimizer {result.optimizer}",
        f"objective: uniform weights (SAR-like) {result.objective_uniform:.5f} -> optimized "
        f"{result.objective_optimized:.5f}"
        + (
            f" (Table 11 weights: {result.extra['objective_table11']:.5f})"
            if "objective_table11" in result.extra
            else ""
        ),
        f"{'dataset':<18}{'weight':>9}{'c_d':>6}{'SC SAR':>9}{'SC WAR':>9}",
    ]
    for row in result.correlations.itertuples():
        lines.append(
            f"{row.dataset:<18}{row.weight:>9.4f}{row.objective_weight:>6.2f}{row.sar_correlation:>9.4f}"
            f"{row.war_correlation:>9.4f}"
        )
    return "\n".join(lines)


@hookimpl
def register_commands(cli):
    import click

    @cli.command("war-weights")
    @click.argument("table", type=click.Path(dir_okay=False, exists=True))
    @click.option("--condition", default="bicubic@16", show_default=True, help="Condition whose Gamma is ranked.")
    @click.option(
        "--objective",
        default=",".join(f"{k}={v}" for k, v in PAPER_OBJECTIVE.items()),
        show_default=True,
        help="Objective weights c_d as dataset=weight pairs (eq. 2 of LR0.FM by default).",
    )
    @click.option("--bounds", default="0.01,1", show_default=True, help="Lower,upper bound of every dataset weight.")
    @click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="differential-evolution", show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option(
        "--maxiter",
        type=int,
        default=300,
        show_default=True,
        help="Generations (differential evolution) or trials (optuna).",
    )
    @click.option(
        "--score",
        type=click.Choice(["Gamma", "gamma"]),
        default="Gamma",
        show_default=True,
        help="Per-dataset robustness that is ranked and averaged.",
    )
    @click.option("--metric", default="top1", show_default=True)
    @click.option("--alpha", type=float, default=200.0, show_default=True, help="Gamma's alpha.")
    @click.option(
        "--out",
        "out",
        type=click.Path(dir_okay=False),
        default=None,
        help="Write weights and correlations (.json: everything; .csv: one row per dataset).",
    )
    def war_weights_cmd(
        table: str,
        condition: str,
        objective: str,
        bounds: str,
        optimizer: str,
        seed: int,
        maxiter: int,
        score: str,
        metric: str,
        alpha: float,
        out: str | None,
    ) -> None:
        """Re-derive WAR's dataset weights from a results TABLE (columns model, dataset, condition, metric, value,
        optionally method and num_classes) by maximising LR0.FM's objective (eq. 2)."""
        df = pd.read_csv(table)
        missing = {"model", "dataset", "condition", "metric", "value"} - set(df.columns)
        if missing:
            raise click.UsageError(f"{table}: missing columns {sorted(missing)}")
        if "method" not in df:
            df["method"] = "none"
        num_classes = {}
        if "num_classes" in df:
            num_classes = {
                d: int(c)
                for d, c in df.dropna(subset=["num_classes"]).groupby("dataset")["num_classes"].first().items()
            }
        try:
            lo, hi = (float(v) for v in bounds.split(","))
        except ValueError:
            raise click.UsageError(f"--bounds {bounds!r}: write low,high (e.g. 0.01,1)") from None
        try:
            matrix = robustness_matrix(df, condition, metric, alpha=alpha, num_classes=num_classes, score=score)
            result = optimize_war_weights(
                matrix, parse_mapping(objective, "--objective"), (lo, hi), optimizer, seed, maxiter, condition
            )
        except (LrbenchError, KeyError) as exc:
            raise click.ClickException(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
        click.echo(_report(result))
        if out:
            _write(result, Path(out))
            click.echo(f"wrote {out}")
