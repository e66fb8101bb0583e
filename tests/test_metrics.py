"""Metrics on hand-computed cases."""

import numpy as np
import pytest

from oneranker import metrics


def test_hit_rate_by_hand():
    ranked = np.array([[3, 1, 2], [0, 2, 1]])
    positive = np.array([1, 1])
    assert metrics.hit_rate(ranked, positive, 1) == 0.0
    assert metrics.hit_rate(ranked, positive, 2) == 0.5      # row 0 finds 1 at rank 2
    assert metrics.hit_rate(ranked, positive, 3) == 1.0


def test_graded_ndcg_by_hand():
    gains = np.array([[1.0, 3.0]])                          # list order: gain 1 then gain 3
    dcg = 1 + 3 / np.log2(3)
    idcg = 3 + 1 / np.log2(3)
    assert metrics.ndcg(gains, 2) == pytest.approx(dcg / idcg)
    assert metrics.ndcg(np.array([[3.0, 1.0]]), 2) == pytest.approx(1.0)
    # gains available but not listed lower the score
    assert metrics.ndcg(np.array([[1.0]]), 1, ideal_gains=np.array([[4.0, 1.0]])) == pytest.approx(0.25)
    # a request with no gain available has no NDCG: it is left out of the mean, not counted as 0
    assert metrics.ndcg(np.array([[1.0, 0.0], [0.0, 0.0]]), 2) == pytest.approx(1.0)
    assert np.isnan(metrics.ndcg(np.zeros((2, 2)), 2))


def test_hit_ndcg_by_hand():
    ranked = np.array([[5, 7, 9]])
    assert metrics.hit_ndcg(ranked, np.array([7]), 3) == pytest.approx(1 / np.log2(3))
    assert metrics.hit_ndcg(ranked, np.array([4]), 3) == 0.0


def test_expected_hit_rate_by_hand():
    weights = np.array([[1.0, 2.0, 3.0, 4.0]])              # total 10
    ranked = np.array([[3, 0, 2]])
    assert metrics.expected_hit_rate(ranked, weights, 1) == pytest.approx(0.4)
    assert metrics.expected_hit_rate(ranked, weights, 2) == pytest.approx(0.5)
    assert metrics.expected_hit_ndcg(ranked, weights, 2) == pytest.approx(0.4 + 0.1 / np.log2(3))


def test_expected_metrics_are_the_mean_of_sampled_ones():
    rng = np.random.default_rng(0)
    weights = rng.random((1, 20)) ** 3
    ranked = np.argsort(-rng.random((1, 20)), axis=1)[:, :8]
    draws = rng.choice(20, size=200_000, p=weights[0] / weights.sum())
    many = np.repeat(ranked, len(draws), axis=0)
    assert metrics.hit_rate(many, draws, 5) == pytest.approx(metrics.expected_hit_rate(ranked, weights, 5), abs=4e-3)
    assert metrics.hit_ndcg(many, draws, 5) == pytest.approx(metrics.expected_hit_ndcg(ranked, weights, 5), abs=4e-3)


def test_expected_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        metrics.expected_hit_rate(np.array([[0]]), np.array([[-1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="repeated"):
        metrics.expected_hit_rate(np.array([[0, 0]]), np.array([[1.0, 1.0]]), 2)


def test_mean_ci_by_hand():
    mean, half = metrics.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))   # t(0.975, 2) * s / sqrt(n)
    assert np.isnan(metrics.mean_ci([1.0])[1])
    assert metrics.format_ci([1.0, 2.0, 3.0], digits=2) == "2.00 ± 2.48"


def test_auc_and_gauc_by_hand():
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    labels = np.array([1, 0, 1, 0])
    # positive pairs (pos > neg): (0.9>0.8) (0.9>0.1) (0.3>0.1) of 4 -> 0.75
    assert metrics.auc(scores, labels) == pytest.approx(0.75)
    assert np.isnan(metrics.auc(scores, np.ones(4)))
    groups = np.array([0, 0, 1, 1])                         # group 0: AUC 1 (2 ex.), group 1: AUC 1 (2 ex.)
    assert metrics.gauc(scores, labels, groups) == pytest.approx(1.0)
    groups3 = np.array([0, 0, 0, 1])                         # group 0 = [.9 .8 .3] labels [1 0 1]: 1/2; group 1 one class
    assert metrics.gauc(scores, labels, groups3) == pytest.approx(0.5)
    assert np.isnan(metrics.gauc(scores, np.ones(4), groups)) and np.isnan(metrics.gauc([], [], []))
    # a tie between a positive and a negative of one group counts one half: [.5 .5 .1] labels [1 0 0] -> 3/4
    assert metrics.gauc([0.5, 0.5, 0.1], [1, 0, 0], [7, 7, 7]) == pytest.approx(0.75)


def test_gauc_equals_the_per_group_auc_average():
    """The one-sort GAUC against its definition written out (scikit-learn's AUC per group, weighted
    by group size, over groups with both classes), on random groups with ties and one-class groups."""
    rng = np.random.default_rng(0)
    for n, n_groups, levels in ((500, 40, 5), (2000, 300, 1000), (50, 50, 3)):
        groups = rng.integers(0, n_groups, n) * 7 - 100         # unsorted, negative and sparse ids
        scores = rng.integers(0, levels, n) / levels            # many ties within groups
        labels = rng.random(n) < 0.3
        total, weight = 0.0, 0
        for g in np.unique(groups):
            sel = groups == g
            if labels[sel].min() != labels[sel].max():
                total += metrics.auc(scores[sel], labels[sel]) * sel.sum()
                weight += sel.sum()
        assert metrics.gauc(scores, labels, groups) == pytest.approx(total / weight, rel=1e-12)


def test_consistency_metrics_by_hand():
    gen = np.array([[3.0, 2.0, 1.0, 0.0]])                  # ranks 0 1 2 3
    rank = np.array([[0.0, 1.0, 2.0, 3.0]])                 # ranks 3 2 1 0
    assert metrics.ranks(gen).tolist() == [[0, 1, 2, 3]]
    assert metrics.rank_difference(gen, rank).tolist() == [[3, 1, 1, 3]]
    assert metrics.iqr([3, 1, 1, 3]) == pytest.approx(2.0)   # percentiles 75: 3, 25: 1
    assert metrics.topk_overlap(gen, rank, 2) == 0.0
    assert metrics.topk_overlap(gen, rank, 3) == pytest.approx(2 / 3)
    assert metrics.topk_overlap(gen, gen, 2) == 1.0


def test_bootstrap_ci_covers_the_mean_and_is_seeded():
    x = np.arange(100, dtype=float)
    mean, lo, hi = metrics.bootstrap_ci(x, seed=1)
    assert mean == 49.5 and lo < mean < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * x.std() / 10, rel=0.15)   # ~ normal theory
    assert metrics.bootstrap_ci(x, seed=1) == (mean, lo, hi)
    # the level sets the percentiles: the means of two draws from [0, 1] are 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4, so the 30th and 70th percentiles (level 0.4) are both 0.5
    assert metrics.bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="empty"):
        metrics.bootstrap_ci([])


def test_lift_by_hand():
    a, b = np.array([2.0, 4.0]), np.array([2.0, 2.0])
    # resampled requests: both the first (4/4 - 1 = 0), both the second (8/4 - 1 = 1) or one of
    # each (0.5), with probabilities 1/4, 1/4, 1/2: the 2.5th and 97.5th percentiles are 0 and 1
    assert metrics.lift(a, b) == (pytest.approx(0.5), 0.0, 1.0)
    # pairs kept: a sample against itself has lift 0 in every resample, whatever its spread
    c = np.array([1.0, 3.0])
    assert metrics.lift(c, c) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="paired"):
        metrics.lift(a, np.ones(3))
    with pytest.raises(ValueError, match="zero total"):
        metrics.lift(a, np.zeros(2))


def test_paper_tables_are_the_papers_numbers():
    from oneranker import paper

    t2 = paper.table2()
    assert t2.loc["Step 2 only (no ranker)", "HR@5 vs full"] == pytest.approx(0.5448 - 0.6213)
    assert paper.table1().loc["GPR", "HR@15"] == 0.8207
    assert paper.AB.loc["20% traffic", "Costs"] == 1.15


def test_list_overlap_by_hand():
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert metrics.list_overlap(a, a) == 1.0                       # a list with itself
    assert metrics.list_overlap(a, a + 100) == 0.0                 # disjoint lists
    b = np.array([[4, 3, 9, 10], [8, 7, 6, 5]])                         # 2 of 4, then 4 of 4 (order ignored)
    assert metrics.list_overlap(a, b) == pytest.approx((0.5 + 1.0) / 2)
    assert metrics.list_overlap(a, b, k=2) == pytest.approx((0 / 2 + 0 / 2) / 2)
