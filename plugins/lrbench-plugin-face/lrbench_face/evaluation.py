"""Verification and identification statistics on distances (pure numpy; the metrics and scripts share them).

Convention everywhere: a pair is predicted *genuine* when its distance is strictly below the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos(a_i, b_i) row-wise (Knoche et al. eq. 2 with the norms done right), in [0, 2]."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - np.sum(a * b, axis=1)


def _candidate_thresholds(dist: np.ndarray) -> np.ndarray:
    """Every distinct partition of ``dist`` by ``d < t``: midpoints of consecutive distinct values, plus one threshold
    below all (nothing genuine) and one above all (everything genuine)."""
    u = np.unique(dist)
    if len(u) == 0:
        return np.array([0.0])
    return np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])


def best_threshold(dist: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``d < t`` on these pairs; ties go to the smallest threshold."""
    t = _candidate_thresholds(dist)
    order = np.argsort(dist, kind="stable")
    d_sorted, same_sorted = dist[order], issame[order].astype(np.int64)
    # pairs below each threshold: genuine ones are true positives, the imposters above it are true negatives
    below = np.searchsorted(d_sorted, t, side="left")
    tp = np.concatenate([[0], np.cumsum(same_sorted)])[below]
    n_imp = len(dist) - int(same_sorted.sum())
    fp = below - tp
    acc = (tp + (n_imp - fp)) / max(len(dist), 1)
    k = int(np.argmax(acc))
    return float(t[k]), float(acc[k])


#: insightface's verification search: thresholds 0, 0.01, ..., 3.99 on the squared L2 distance of L2-normalised
#: embeddings (eval/verification.py, ``np.arange(0, 4, 0.01)``), which is 2 x the cosine distance
INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)
SEARCHES = ("exact", "insightface")


def grid_threshold(dist: np.ndarray, issame: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) of the best ``d < t`` over the given thresholds; ties go to the first (np.argmax)."""
    acc = ((dist[None, :] < grid[:, None]) == issame[None, :]).mean(axis=1)
    k = int(np.argmax(acc))
    return float(grid[k]), float(acc[k])


def fold_indices(n: int, n_folds: int = 10) -> list[np.ndarray]:
    """Consecutive folds in data order, no shuffle (sklearn KFold(shuffle=False) sizes: the first n % k get one more)."""
    return [f for f in np.array_split(np.arange(n), n_folds)]


@dataclass
class VerificationResult:
    accuracy: float
    std: float
    threshold: float
    fold_accuracies: np.ndarray
    thresholds: np.ndarray


def verification_accuracy(
    dist: np.ndarray, issame: np.ndarray, n_folds: int = 10, search: str = "exact"
) -> VerificationResult:
    """k-fold verification accuracy: the threshold is chosen on the other k-1 folds, accuracy measured on the held-out
    fold; mean and (population) std over folds, as the insightface / Knoche et al. evaluation reports.

    ``search``: ``exact`` tries every distinct partition of the training distances; ``insightface`` tries only
    insightface's grid (0.01 steps of squared L2 = 0.005 steps of cosine distance), as most published LFW-style figures.
    Thresholds are reported as cosine distances either way."""
    if search not in SEARCHES:
        raise ValueError(f"threshold search {search!r} is not known; choices: {', '.join(SEARCHES)}")
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    if len(dist) < n_folds:
        raise ValueError(f"{len(dist)} pairs cannot be split into {n_folds} folds")
    accs, ths = [], []
    for test in fold_indices(len(dist), n_folds):
        train = np.setdiff1d(np.arange(len(dist)), test)
        if search == "exact":
            t, _ = best_threshold(dist[train], issame[train])
        else:
            t = grid_threshold(2 * dist[train], issame[train], INSIGHTFACE_THRESHOLDS)[0] / 2
        accs.append(np.mean((dist[test] < t) == issame[test]))
        ths.append(t)
    accs_a, ths_a = np.array(accs), np.array(ths)
    return VerificationResult(float(accs_a.mean()), float(accs_a.std()), float(ths_a.mean()), accs_a, ths_a)


def tar_at_far(dist: np.ndarray, issame: np.ndarray, far: float) -> float:
    """True accept rate at the largest threshold whose false accept rate is <= ``far``."""
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    imp, gen = np.sort(dist[~issame]), dist[issame]
    if len(gen) == 0 or len(imp) == 0:
        return float("nan")
    allowed = int(np.floor(far * len(imp) + 1e-9))  # imposters that may fall below the threshold
    t = imp[allowed] if allowed < len(imp) else np.inf
    return float(np.mean(gen < t))


def roc_auc(dist: np.ndarray, issame: np.ndarray) -> float:
    """Area under the ROC curve: P(genuine distance < imposter distance), ties counted one half (Mann-Whitney U)."""
    issame = np.asarray(issame, dtype=bool)
    n_gen, n_imp = int(issame.sum()), int((~issame).sum())
    if n_gen == 0 or n_imp == 0:
        return float("nan")
    ranks = rankdata(-np.asarray(dist, dtype=np.float64))  # larger rank = more "genuine-like" (smaller distance)
    u = ranks[issame].sum() - n_gen * (n_gen + 1) / 2
    return float(u / (n_gen * n_imp))


def match_ranks(
    probe: np.ndarray, probe_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> np.ndarray:
    """1-based rank of the first gallery item of the probe's identity by cosine similarity (ties count against the
    probe: an impostor with an equal score ranks first); ``inf`` when the identity is not in the gallery."""
    p = probe / np.maximum(np.linalg.norm(probe, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    sim = p @ g.T
    ranks = np.full(len(p), np.inf)
    for i in range(len(p)):
        mates = gallery_labels == probe_labels[i]
        if not mates.any():
            continue
        best_mate = sim[i, mates].max()
        ranks[i] = 1 + np.sum(sim[i, ~mates] >= best_mate)
    return ranks


def rank_k(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(np.asarray(ranks) <= k)) if len(ranks) else float("nan")


def plot_distance_distributions(
    distances: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str = "cosine distance, genuine vs imposter pairs",
    order: Sequence[str] | None = None,
) -> Path:
    """Split violin plot per condition (genuine left, imposter right), as Knoche et al. Fig. 7; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(order or distances)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels)), 4))
    for pos, label in enumerate(labels):
        dist, issame = (np.asarray(a) for a in distances[label])
        for side, (mask, colour) in enumerate(((issame.astype(bool), "tab:blue"), (~issame.astype(bool), "gold"))):
            values = dist[mask]
            if len(values) < 2 or np.ptp(values) == 0:
                continue
            parts = ax.violinplot(
                [values], positions=[pos], showextrema=False, widths=0.8, side="low" if side == 0 else "high"
            )
            for body in parts["bodies"]:
                body.set_facecolor(colour)
                body.set_alpha(0.7)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("cosine distance")
    ax.set_title(title)
    ax.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color="tab:blue"), plt.Rectangle((0, 0), 1, 1, color="gold")],
        labels=["genuine", "imposter"],
        loc="upper left",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
