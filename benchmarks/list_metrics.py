"""The evaluation's per-list work at the paper profile's shapes (2,000 test requests x 20,000
ads of truth): the oracles' top-n and a list's metrics, each against the code it replaced,
side by side in one run, with the outputs compared exactly.

- top-n: ``reference.top_n`` (partition, then a sort of the n found) against the full stable
  argsort of every row it replaced (kept below as the parity reference);
- a list's metrics: ``evaluate.list_metrics`` (one pass over the catalogue per weight) against
  one pass per metric and K (``metrics.expected_hit_rate`` / ``expected_hit_ndcg`` at each K);
- a ranker's GAUC over the logged test impressions (notebook 06 at paper scale: about 120,000
  impressions of 30,000 users, six rankers): ``metrics.gauc`` (one sort) against a pass over
  the impressions per user with scikit-learn's AUC (what it replaced), equal to 1e-12.

On notebook 03's paper run (one H200 host, 16 cores) its evaluation phases took 170 s at 1% GPU
busy; these two were most of the CPU time of one model's evaluation on this project's 2-core
machine (profiled with cProfile on a paper world).

    python benchmarks/list_metrics.py --requests 2000 --ads 20000 --n 30 --users 30000 --impressions 120000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import best_of, header  # noqa: E402

from oneranker.evaluate import TruthSet, list_metrics  # noqa: E402
from oneranker.metrics import KS, auc, expected_hit_ndcg, expected_hit_rate, gauc, ndcg  # noqa: E402
from oneranker.reference import top_n  # noqa: E402
from oneranker.world import Truth  # noqa: E402


def full_sort_top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """What ``reference.top_n`` was: the first n of a full stable sort of each row."""
    return np.argsort(-np.atleast_2d(scores), axis=1, kind="stable")[:, :n]


def metrics_one_by_one(ranked: np.ndarray, ts: TruthSet) -> dict[str, float]:
    """What ``evaluate.list_metrics`` was: each expected metric at each K reads the catalogue,
    through ``metrics.expected_hit_rate`` / ``expected_hit_ndcg``, whose per-K computation is
    the replaced one unchanged (``metrics.list_shares`` is the old ``_normalised_list_weights``
    renamed, applied to the first K of the list, then summed as before)."""
    out = {}
    gains = np.take_along_axis(ts.truth.ecpm, ranked, axis=1)
    for k in KS:
        out[f"HR@{k}"] = expected_hit_rate(ranked, ts.truth.pctr, k)
        out[f"NDCG@{k}"] = expected_hit_ndcg(ranked, ts.truth.pctr, k)
        out[f"valueHR@{k}"] = expected_hit_rate(ranked, ts.truth.ecpm, k)
        out[f"valueNDCG@{k}"] = expected_hit_ndcg(ranked, ts.truth.ecpm, k)
        out[f"ecpmNDCG@{k}"] = ndcg(gains, k)
    out["mean_ecpm@5"] = float(gains[:, :5].mean())
    return out


def gauc_per_user(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """What ``metrics.gauc`` was: a pass over every example per group, scikit-learn's AUC in each."""
    total, weight = 0.0, 0
    for g in np.unique(groups):
        sel = groups == g
        a = auc(scores[sel], labels[sel])
        if not np.isnan(a):
            total += a * sel.sum()
            weight += int(sel.sum())
    return total / weight if weight else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--ads", type=int, default=20_000)
    ap.add_argument("--n", type=int, default=30, help="list length (the paper profile's candidates)")
    ap.add_argument("--users", type=int, default=30_000, help="GAUC: users (groups) of the test impressions")
    ap.add_argument("--impressions", type=int, default=120_000, help="GAUC: test impressions")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(header(f"{args.requests} requests x {args.ads} ads, lists of {args.n}"), flush=True)
    rng = np.random.default_rng(0)
    shape = (args.requests, args.ads)
    truth = Truth(pctr=rng.beta(0.5, 20, shape), pcvr=rng.beta(0.5, 10, shape), bid=rng.lognormal(0, 0.5, shape),
                  price=rng.lognormal(2, 0.5, shape))
    ts = TruthSet(indices=np.arange(args.requests), truth=truth)
    t_old, want = best_of(lambda: full_sort_top_n(truth.pctr, args.n), args.repeats)
    t_new, got = best_of(lambda: top_n(truth.pctr, args.n), args.repeats)
    print(f"top-{args.n} of every row: full stable sort {t_old:.3f} s, partition {t_new:.3f} s, "
          f"{t_old / t_new:.1f}x; equal: {np.array_equal(want, got)}", flush=True)
    t_old, want = best_of(lambda: metrics_one_by_one(got, ts), args.repeats)
    t_new, have = best_of(lambda: list_metrics(got, ts), args.repeats)
    print(f"one list's metrics: a pass per metric and K {t_old:.3f} s, a pass per weight {t_new:.3f} s, "
          f"{t_old / t_new:.1f}x; equal: {want == have}", flush=True)
    users = rng.integers(0, args.users, args.impressions)
    scores = rng.normal(size=args.impressions).astype(np.float32)
    clicks = rng.random(args.impressions) < 1 / (1 + np.exp(2.5 - scores))
    t_old, want = best_of(lambda: gauc_per_user(scores, clicks, users), 1)
    t_new, have = best_of(lambda: gauc(scores, clicks, users), args.repeats)
    print(f"GAUC over {args.impressions} impressions of {args.users} users: a pass per user {t_old:.3f} s, "
          f"one sort {t_new:.3f} s, {t_old / t_new:.1f}x; equal within 1e-12: {abs(want - have) <= 1e-12 * abs(want)}",
          flush=True)


if __name__ == "__main__":
    main()
