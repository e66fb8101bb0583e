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


def _normalised_list_weights(ranked: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights [R, N] over the catalogue -> [R, n]: each listed item's share of the row total."""
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    for row in ranked[: min(len(ranked), 64)]:
        if len(np.unique(row)) != len(row):
            raise ValueError("expected metrics need lists without repeated items")
    total = weights.sum(1, keepdims=True)
    return np.take_along_axis(weights, ranked, axis=1) / np.where(total > 0, total, 1.0)


def expected_hit_rate(ranked: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Expected HR@k of a positive drawn with probability proportional to ``weights`` [R, N]."""
    return float(_normalised_list_weights(ranked[:, :k], weights).sum(1).mean())


def expected_hit_ndcg(ranked: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Expected single-positive NDCG@k (gain 1 at the drawn positive, ideal DCG 1)."""
    share = _normalised_list_weights(ranked[:, :k], weights)
    discounts = 1.0 / np.log2(np.arange(2, share.shape[1] + 2))
    return float((share * discounts).sum(1).mean())


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
