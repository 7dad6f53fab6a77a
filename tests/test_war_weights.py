"""``lrbench war-weights``: LR0.FM's eq.-2 weight optimisation on synthetic and published tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from lrbench.builtin.war_weights import (
    PAPER_OBJECTIVE,
    WarObjective,
    optimize_war_weights,
    parse_mapping,
    robustness_matrix,
)
from lrbench.registry import LrbenchError

PUBLISHED = Path(__file__).parent / "data" / "lr0fm" / "eva_albef_top1.csv"


def synthetic_table(n_models: int = 24, seed: int = 0) -> pd.DataFrame:
    """Five datasets that rank models by one latent robustness, and 'odd' that ranks them almost independently."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0.2, 0.8, n_models)
    odd = 0.3 * latent + rng.uniform(0.1, 0.7, n_models)
    rows = []
    for m in range(n_models):
        per_dataset = {f"d{k}": latent[m] + rng.normal(0, 0.03) for k in range(5)} | {"odd": odd[m]}
        for d, robustness in per_dataset.items():
            a_hr = 0.8
            rows.append((f"model{m:02d}", d, "hr", "top1", a_hr, 10))
            rows.append((f"model{m:02d}", d, "bicubic@16", "top1", a_hr * float(np.clip(robustness, 0, 1)), 10))
    return pd.DataFrame(rows, columns=["model", "dataset", "condition", "metric", "value", "num_classes"])


@pytest.fixture(scope="module")
def matrix() -> pd.DataFrame:
    t = synthetic_table()
    return robustness_matrix(t, num_classes={d: 10 for d in t["dataset"].unique()})


def test_matrix_is_Gamma_at_the_condition(matrix):
    assert matrix.shape == (24, 6)
    t = synthetic_table()
    a16 = t[(t.model == "model03") & (t.dataset == "odd") & (t.condition == "bicubic@16")]["value"].item()
    assert matrix.loc["model03", "odd"] == pytest.approx(a16 / 0.8 * (1 - np.exp(-200 * (0.8 - 0.1) ** 2)))


def test_objective_agrees_with_scipy_spearman(matrix):
    c = {"odd": 1.0, "d0": 0.5}
    f = WarObjective(matrix, c)
    w = np.random.default_rng(1).uniform(0.01, 1, matrix.shape[1])
    war = (matrix.to_numpy() * w).sum(axis=1) / w.sum()
    expected = sum(cd * spearmanr(war, matrix[d]).statistic for d, cd in c.items())
    assert f(w)[0] == pytest.approx(expected, abs=1e-12)
    batch = np.stack([w, np.ones_like(w)])
    assert f(batch).shape == (2,) and f(batch)[0] == pytest.approx(expected, abs=1e-12)


def test_optimised_weights_raise_the_odd_dataset_and_never_lower_the_objective(matrix):
    r = optimize_war_weights(matrix, {"odd": 1.0, "d0": 1.0}, (0.01, 1.0), maxiter=60)
    corr = r.correlations.set_index("dataset")
    assert r.objective_optimized >= r.objective_uniform
    assert r.objective_optimized > r.objective_uniform + 0.2  # the uniform mean nearly ignores 'odd'
    assert corr.loc["odd", "sar_correlation"] < 0.6
    assert corr.loc["odd", "war_correlation"] > corr.loc["odd", "sar_correlation"] + 0.2
    assert corr.loc["odd", "weight"] > np.median(corr["weight"])
    assert all(0.01 <= w <= 1.0 for w in r.weights.values())
    # the reported optimum is what the weights give when recomputed from scratch
    w = np.array([r.weights[d] for d in matrix.columns])
    war = (matrix.to_numpy() * w).sum(axis=1) / w.sum()
    assert r.objective_optimized == pytest.approx(
        spearmanr(war, matrix["odd"]).statistic + spearmanr(war, matrix["d0"]).statistic, abs=1e-12
    )


def test_optuna_improves_but_differential_evolution_does_better_per_evaluation(matrix):
    pytest.importorskip("optuna", reason="optional: pip install 'lrbench[optuna]'")
    tpe = optimize_war_weights(matrix, {"odd": 1.0}, optimizer="optuna", maxiter=60)
    de = optimize_war_weights(matrix, {"odd": 1.0}, maxiter=20)
    assert tpe.objective_optimized > tpe.objective_uniform + 0.05
    assert de.objective_optimized > tpe.objective_optimized and de.objective_optimized > 0.95


def test_published_table_uses_the_paper_objective_and_compares_table11():
    t = pd.read_csv(PUBLISHED)
    r = optimize_war_weights(robustness_matrix(t), None, maxiter=40, condition="bicubic@16")
    assert r.objective_weights == PAPER_OBJECTIVE and r.n_models == 12
    assert r.objective_optimized >= max(r.objective_uniform, r.extra["objective_table11"]) - 1e-12
    # Table 11 weights raise ImageNet-A's and EuroSAT's share over the plain mean on these 12 models too
    assert r.extra["objective_table11"] > r.objective_uniform


def test_errors_name_the_problem(matrix):
    with pytest.raises(LrbenchError, match="imagenet-a"):
        optimize_war_weights(matrix, {"imagenet-a": 1.0})
    with pytest.raises(LrbenchError, match="bounds"):
        optimize_war_weights(matrix, {"odd": 1.0}, (0.0, 1.0))
    with pytest.raises(LrbenchError, match="condition 'bicubic@8'"):
        robustness_matrix(
            synthetic_table(), condition="bicubic@8", num_classes={"odd": 10, **{f"d{k}": 10 for k in range(5)}}
        )
    with pytest.raises(LrbenchError, match="name=number"):
        parse_mapping("odd:1", "--objective")


def test_cli_writes_weights_json_and_csv(tmp_path):
    from lrbench.cli import cli
    from lrbench.plugins import Plugins

    Plugins(load_entry_points=False).register_commands(cli)
    table = tmp_path / "results.csv"
    synthetic_table().to_csv(table, index=False)
    out = tmp_path / "w.json"
    res = CliRunner().invoke(
        cli, ["war-weights", str(table), "--objective", "odd=1,d0=1", "--maxiter", "30", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "objective: uniform weights (SAR-like)" in res.output and "odd" in res.output
    data = json.loads(out.read_text())
    assert data["objective_optimized"] >= data["objective_uniform"]
    assert set(data["weights"]) == {"odd", *(f"d{k}" for k in range(5))}
    res = CliRunner().invoke(
        cli, ["war-weights", str(table), "--objective", "odd=1", "--maxiter", "10", "--out", str(tmp_path / "w.csv")]
    )
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "w.csv")
    assert list(csv.columns[:5]) == ["dataset", "weight", "objective_weight", "sar_correlation", "war_correlation"]
    res = CliRunner().invoke(cli, ["war-weights", str(table), "--objective", "nope=1"])
    assert res.exit_code != 0 and "nope" in res.output
