"""Ranking metrics and confidence intervals (pure functions, numpy in, floats out).

HR@K: share of requests whose held-out positive is among the first K of the list.
Expected HR@K / NDCG@K: the same metrics when the held-out positive is *drawn* from known
weights (the simulated market's true pCTR or eCPM), computed in closed form instead of by
sampling: E[1{pos in top K}] = (weight in the top K) / (total weight). Same expectation as
sampling one positive per request, without its noise (which at our sizes is larger than
the differences between variants).
NDCG@K with graded gains: sum of gain / log2(rank + 1) over the first K, divided by the best
possible ordering of the same gains (the paper's value-graded NDCG).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

KS = (1, 3, 5, 10, 15)


def hit_rate(ranked: np.ndarray, positive: np.ndarray, k: int) -> float:
    """ranked [R, n] ad ids, best first; positive [R] one held-out ad per request."""
    return float((ranked[:, :k] == positive[:, None]).any(1).mean())


def ndcg(ranked_gains: np.ndarray, k: int, ideal_gains: np.ndarray | None = None) -> float:
    """Mean NDCG@k. ranked_gains [R, n]: the gain of each listed item in list order;
    ideal_gains [R, m]: all gains available to the request (default: the listed ones)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (ranked_gains[:, :k] * discounts[: ranked_gains[:, :k].shape[1]]).sum(1)
    ideal = np.sort(ranked_gains if ideal_gains is None else ideal_gains, axis=1)[:, ::-1][:, :k]
    idcg = (ideal * discounts[: ideal.shape[1]]).sum(1)
    ok = idcg > 0
    return float((dcg[ok] / idcg[ok]).mean()) if ok.any() else float("nan")


def hit_ndcg(ranked: np.ndarray, positive: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item (gain 1 at the positive)."""
    return ndcg((ranked == positive[:, None]).astype(float), k, np.ones((len(ranked), 1)))


def list_shares(ranked: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights [R, N] over the catalogue -> [R, n]: each listed item's share of the row total,
    the one pass over the catalogue that every expected metric of a list needs (so a list's
    metrics at every K cost one pass, not one per metric and K: the [2,000, 20,000] truth of the
    paper profile made that pass most of an evaluation's time)."""
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    for row in ranked[: min(len(ranked), 64)]:
        if len(np.unique(row)) != len(row):
            raise ValueError("expected metrics need lists without repeated items")
    total = weights.sum(1, keepdims=True)
    return np.take_along_axis(weights, ranked, axis=1) / np.where(total > 0, total, 1.0)


def hit_rate_of_shares(shares: np.ndarray, k: int) -> float:
    """Expected HR@k from :func:`list_shares` of a whole list: the weight in the first k."""
    return float(np.ascontiguousarray(shares[:, :k]).sum(1).mean())


def hit_ndcg_of_shares(shares: np.ndarray, k: int) -> float:
    """Expected single-positive NDCG@k from :func:`list_shares` of a whole list."""
    top = np.ascontiguousarray(shares[:, :k])
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    return float((top * discounts).sum(1).mean())


def expected_hit_rate(ranked: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Expected HR@k of a positive drawn with probability proportional to ``weights`` [R, N]."""
    return hit_rate_of_shares(list_shares(ranked[:, :k], weights), k)


def expected_hit_ndcg(ranked: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Expected single-positive NDCG@k (gain 1 at the drawn positive, ideal DCG 1)."""
    return hit_ndcg_of_shares(list_shares(ranked[:, :k], weights), k)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of a ranker's scores for binary labels (scikit-learn); NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def gauc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: the AUC within each group (a user, or a request), averaged with weights equal
    to the group's number of examples, over the groups that hold both classes (the usual
    definition in ad ranking: ordering across users does not count).

    Every group's AUC at once, as the Mann-Whitney statistic of its positives' ranks among its
    own examples (ties share their mean rank, so a tied pair counts one half, as in
    :func:`auc`): one sort of all examples instead of a pass over them per group, which at
    notebook 06's paper scale (30,000 users, 120,000 impressions) took 13 s a call."""
    scores, labels, groups = map(np.asarray, (scores, labels, groups))
    if scores.size == 0:
        return float("nan")
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order].astype(bool)
    n = len(g)
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    group_of = np.cumsum(np.r_[True, g[1:] != g[:-1]]) - 1             # each example's group, 0-based
    tie_start = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])])
    tie_len = np.diff(np.r_[tie_start, n])
    position = np.arange(n) - group_start[group_of] + 1                 # 1-based rank within the group
    mean_rank = np.repeat(position[tie_start] + (tie_len - 1) / 2, tie_len)
    size = np.bincount(group_of).astype(float)
    pos = np.bincount(group_of, weights=y.astype(float))
    rank_sum = np.bincount(group_of, weights=np.where(y, mean_rank, 0.0))
    both = (pos > 0) & (pos < size)
    if not both.any():
        return float("nan")
    neg = size - pos
    group_auc = (rank_sum[both] - pos[both] * (pos[both] + 1) / 2) / (pos[both] * neg[both])
    return float((group_auc * size[both]).sum() / size[both].sum())


def ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of each entry within its row, best (highest score) = 0; ties by position."""
    order = np.argsort(-np.asarray(scores), axis=-1, kind="stable")
    out = np.empty_like(order)
    np.put_along_axis(out, order, np.arange(order.shape[-1])[None].repeat(order.shape[0], 0), axis=-1)
    return out


def rank_difference(generator_scores: np.ndarray, ranker_scores: np.ndarray) -> np.ndarray:
    """|rank by the generator - rank by the ranker| of every candidate [R, n] (the paper's DC
    analysis: consistency between the two stages on the same candidates)."""
    return np.abs(ranks(generator_scores) - ranks(ranker_scores))


def iqr(values: np.ndarray) -> float:
    """Interquartile range (75th - 25th percentile)."""
    q75, q25 = np.percentile(np.asarray(values, dtype=float).ravel(), [75, 25])
    return float(q75 - q25)


def list_overlap(a: np.ndarray, b: np.ndarray, k: int | None = None) -> float:
    """Mean over rows of ``|first k of a ∩ first k of b| / k`` for two ranked lists of ids
    [R, >= k] (``k`` defaults to the lists' width): 1 = the same items, 0 = none in common."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    k = k or a.shape[1]
    return float(np.mean([len(set(x[:k].tolist()) & set(y[:k].tolist())) / k for x, y in zip(a, b)]))


def topk_overlap(generator_scores: np.ndarray, ranker_scores: np.ndarray, k: int) -> float:
    """Mean share of the generator's top k that is also in the ranker's top k."""
    top = lambda s: np.argsort(-s, axis=-1, kind="stable")[:, :k]  # noqa: E731
    return list_overlap(top(generator_scores), top(ranker_scores), k)


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap (low, high) of the mean, resampling ``values`` (e.g.
    per-request metrics) with replacement."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(x.mean()), float(lo), float(hi)


def lift(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Relative lift ``sum(a) / sum(b) - 1`` of paired per-request outcomes (e.g. GMV of the
    treatment's and the control's slate for the same requests), with a percentile-bootstrap
    CI that resamples requests, keeping the pairs: the simulated A/B of notebook 06."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"lift needs two paired 1-D samples of equal length, got {a.shape} and {b.shape}")
    if b.sum() <= 0:
        raise ValueError("lift against a control with zero total")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = a[idx].sum(1) / b[idx].sum(1) - 1
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return float(a.sum() / b.sum() - 1), float(lo), float(hi)


def mean_ci(values: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval over seeds."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def format_ci(values: np.ndarray | list[float], digits: int = 3) -> str:
    m, h = mean_ci(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"
