"""Verification / identification statistics against independent computations."""

import numpy as np
import pytest
from lrbench_face.evaluation import (
    best_threshold,
    cosine_distance,
    fold_indices,
    match_ranks,
    plot_distance_distributions,
    rank_k,
    roc_auc,
    tar_at_far,
    verification_accuracy,
)
from scipy.stats import mannwhitneyu


def brute_force_accuracy(dist, issame, n_folds=10):
    """Independent k-fold accuracy: explicit fold bounds, every candidate threshold tried in a plain loop."""
    n = len(dist)
    sizes = [n // n_folds + (1 if k < n % n_folds else 0) for k in range(n_folds)]
    bounds = np.cumsum([0] + sizes)
    accs = []
    for k in range(n_folds):
        test = list(range(bounds[k], bounds[k + 1]))
        train = [i for i in range(n) if i not in test]
        values = sorted(set(dist[i] for i in train))
        cands = [values[0] - 1] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1]
        best_t, best_acc = None, -1.0
        for t in cands:  # ascending: strict '>' keeps the smallest best threshold
            acc = sum((dist[i] < t) == issame[i] for i in train) / len(train)
            if acc > best_acc:
                best_t, best_acc = t, acc
        accs.append(sum((dist[i] < best_t) == issame[i] for i in test) / len(test))
    return float(np.mean(accs)), float(np.std(accs))


@pytest.mark.parametrize("n,decimals", [(120, 6), (83, 1), (40, 0)])
def test_accuracy_matches_brute_force_with_ties(n, decimals):
    rng = np.random.default_rng(n)
    emb = rng.normal(size=(n, 2, 16))
    issame = rng.random(n) < 0.5
    emb[issame, 1] = emb[issame, 0] + rng.normal(scale=1.0, size=(issame.sum(), 16))
    dist = np.round(cosine_distance(emb[:, 0], emb[:, 1]), decimals)  # rounding makes many ties
    res = verification_accuracy(dist, issame)
    ref_mean, ref_std = brute_force_accuracy(dist, issame)
    assert res.accuracy == pytest.approx(ref_mean, abs=1e-12)
    assert res.std == pytest.approx(ref_std, abs=1e-12)
    assert len(res.fold_accuracies) == 10


def test_folds_are_consecutive_like_kfold_without_shuffle():
    folds = fold_indices(23, 10)
    assert [len(f) for f in folds] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert np.array_equal(np.concatenate(folds), np.arange(23))


def test_separable_pairs_score_one_and_threshold_between_classes():
    dist = np.r_[np.full(50, 0.2), np.full(50, 0.8)]
    issame = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    order = np.random.default_rng(0).permutation(100)
    res = verification_accuracy(dist[order], issame[order])
    assert res.accuracy == 1.0 and res.std == 0.0
    assert res.threshold == pytest.approx(0.5)


def test_all_distances_tied_gives_majority_class():
    dist = np.zeros(40)
    issame = np.r_[np.ones(30, bool), np.zeros(10, bool)]
    t, acc = best_threshold(dist, issame)
    assert acc == 0.75 and t > 0  # everything predicted genuine


def test_tie_across_classes_picks_smallest_threshold():
    # distances 0.1 (genuine), 0.3 (imposter), 0.5 (genuine): t in (0.1, 0.3) and t > 0.5 both reach 2/3
    t, acc = best_threshold(np.array([0.1, 0.3, 0.5]), np.array([True, False, True]))
    assert acc == pytest.approx(2 / 3) and t == pytest.approx(0.2)


def test_tar_at_far_hand_case():
    imp = np.arange(100) / 100.0  # imposters at 0.00 .. 0.99
    gen = np.array([0.005, 0.015, 0.5])
    dist, issame = np.r_[gen, imp], np.r_[np.ones(3, bool), np.zeros(100, bool)]
    # FAR <= 1e-2 allows one imposter below the threshold -> t = 0.01: only 0.005 accepted
    assert tar_at_far(dist, issame, 1e-2) == pytest.approx(1 / 3)
    assert tar_at_far(dist, issame, 2e-2) == pytest.approx(2 / 3)
    assert tar_at_far(dist, issame, 0.0) == 0.0  # nothing below the smallest imposter (0.0)
    assert tar_at_far(dist, issame, 1.0) == 1.0


def test_roc_auc_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    dist = np.round(rng.random(300), 1)
    issame = rng.random(300) < 0.4
    dist[issame] -= 0.1
    u = mannwhitneyu(-dist[issame], -dist[~issame]).statistic  # genuine "wins" with the smaller distance
    assert roc_auc(dist, issame) == pytest.approx(u / (issame.sum() * (~issame).sum()))


def test_match_ranks_and_rank_k():
    gallery = np.eye(4)
    g_labels = np.array([0, 1, 2, -1])  # the last one is a distractor
    probes = np.array([[1, 0, 0, 0], [0.1, 1, 0, 0.9], [0, 0.5, 0, 1.0], [1, 1, 1, 1]], float)
    p_labels = np.array([0, 1, 2, 7])
    ranks = match_ranks(probes, p_labels, gallery, g_labels)
    # probe 2's mate scores 0, tied with distractor-free non-mate 0: ties count against it -> rank 4
    assert ranks[0] == 1 and ranks[1] == 1 and ranks[2] == 4 and np.isinf(ranks[3])
    assert rank_k(ranks, 1) == 0.5 and rank_k(ranks, 3) == 0.5 and rank_k(ranks, 4) == 0.75


def test_plot_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    data = {f"r{r}": (rng.random(50), rng.random(50) < 0.5) for r in (112, 14, 7)}
    path = plot_distance_distributions(data, tmp_path / "d.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def insightface_reference(emb1, emb2, issame, n_folds=10):
    """insightface's eval/verification.py calculate_roc / calculate_accuracy, written out independently: L2-normalised
    embeddings, squared L2 distance, thresholds np.arange(0, 4, 0.01), KFold(10, shuffle=False), per fold the first
    threshold with the best training accuracy is applied to the held-out fold."""
    e1 = emb1 / np.linalg.norm(emb1, axis=1, keepdims=True)
    e2 = emb2 / np.linalg.norm(emb2, axis=1, keepdims=True)
    dist = np.sum(np.square(e1 - e2), axis=1)
    thresholds = np.arange(0, 4, 0.01)
    n = len(dist)
    sizes = [n // n_folds + (1 if k < n % n_folds else 0) for k in range(n_folds)]
    bounds = np.cumsum([0] + sizes)
    accs = []
    for k in range(n_folds):
        test = np.arange(bounds[k], bounds[k + 1])
        train = np.setdiff1d(np.arange(n), test)
        train_acc = [np.mean(np.less(dist[train], t) == issame[train]) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        accs.append(np.mean(np.less(dist[test], best) == issame[test]))
    return float(np.mean(accs))


def test_insightface_search_equals_insightfaces_evaluation_and_differs_from_exact():
    rng = np.random.default_rng(11)
    n = 60  # 6 pairs per fold: the coarse grid loses the best partition on some folds
    emb = rng.normal(size=(n, 2, 8))
    issame = rng.random(n) < 0.5
    emb[issame, 1] = emb[issame, 0] + rng.normal(scale=1.2, size=(issame.sum(), 8))
    dist = cosine_distance(emb[:, 0], emb[:, 1])
    grid = verification_accuracy(dist, issame, search="insightface")
    assert grid.accuracy == pytest.approx(insightface_reference(emb[:, 0], emb[:, 1], issame), abs=1e-12)
    assert all(round(2 * t, 9) * 100 == pytest.approx(round(200 * t)) for t in grid.thresholds)  # on the 0.01 grid
    assert grid.accuracy != pytest.approx(verification_accuracy(dist, issame).accuracy, abs=1e-9)
    with pytest.raises(ValueError, match="choices: exact, insightface"):
        verification_accuracy(dist, issame, search="roc")


def test_cosine_distance_normalises_every_length():
    a = np.array([[0.1, 0.0], [3.0, 4.0], [0.001, 0.001]])
    b = np.array([[0.2, 0.0], [0.0, 0.5], [-2.0, -2.0]])
    # same direction 0, orthogonal-ish 1 - 4 * 0.5 / (5 * 0.5) = 0.2, opposite 2: whatever the lengths
    np.testing.assert_allclose(cosine_distance(a, b), [0.0, 0.2, 2.0], atol=1e-12)


def test_match_ranks_use_cosine_not_dot_product_and_skip_unknown_identities():
    gallery = np.array([[10.0, 0.0], [1.0, 1.0], [0.0, 3.0]])  # lengths differ: a dot product would favour [10, 0]
    g_labels = np.array([0, 1, 2])
    probes = np.array([[1.0, 1.0], [1.0, 0.9], [1.0, 0.9], [0.2, 1.0]])
    p_labels = np.array([9, 1, 0, 2])  # the first identity is not in the gallery
    # probe 1: cos to [1, 1] 0.999 beats 0.743 to [10, 0]: rank 1; probe 2's mate [10, 0] is second: rank 2;
    # probe 3: cos to [0, 3] 0.981 beats 0.832 to [1, 1]: rank 1
    ranks = match_ranks(probes, p_labels, gallery, g_labels)
    assert np.isinf(ranks[0]) and ranks[1:].tolist() == [1, 2, 1]


def test_tar_at_far_and_auc_edge_cases():
    imp = np.array([0.1, 0.3, 0.5, 0.7])
    # a genuine pair exactly at the threshold is not accepted (d < t, the module's convention)
    assert tar_at_far(np.r_[0.1, 0.05, imp], np.r_[True, True, np.zeros(4, bool)], 0.0) == 0.5
    assert np.isnan(tar_at_far(imp, np.zeros(4, bool), 0.1))  # no genuine pair
    assert np.isnan(tar_at_far(imp, np.ones(4, bool), 0.1))  # no imposter: no false accept rate
    # one genuine pair at 0.4: below two of the four imposters
    assert roc_auc(np.r_[0.4, imp], np.r_[True, np.zeros(4, bool)]) == 0.5
    assert np.isnan(roc_auc(imp, np.zeros(4, bool))) and np.isnan(roc_auc(imp, np.ones(4, bool)))
    assert roc_auc(np.array([0.1, 0.3, 0.2]), np.array([True, True, False])) == 0.5  # one imposter


def test_one_pair_per_fold_is_enough():
    dist = np.tile([0.1, 0.9], 5)  # genuine pairs near, imposters far, alternating
    res = verification_accuracy(dist, dist < 0.5, n_folds=10)
    assert res.accuracy == 1.0 and len(res.fold_accuracies) == 10
    with pytest.raises(ValueError, match="9 pairs cannot be split into 10 folds"):
        verification_accuracy(dist[:9], dist[:9] < 0.5)
