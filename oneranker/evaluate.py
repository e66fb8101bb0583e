"""Evaluation on the test requests of the simulated market, against its ground truth.

Logged clicks are sparse (about one test request in ten has one) and biased by the legacy
policy, so each test request gets held-out positives drawn from the world's truth instead:
an *interest* positive with probability proportional to the true pCTR of every ad (the ad
this user would click next) and a *value* positive proportional to the true eCPM (the ad that
would pay). Retrieval HR@K / NDCG@K ask whether the generated list finds them; the graded
NDCG of the final list uses the true eCPM of its ads as gains (the paper's value-graded
protocol on lists of 30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import Config
from .data import Collator, Prepared
from .generate import rank_candidates, topk_candidates
from .metrics import KS, hit_ndcg, hit_rate, ndcg
from .model import OneRanker
from .world import Truth, World


@dataclass
class TestSet:
    """Test requests with their truth over the whole catalogue (evaluation only)."""

    indices: np.ndarray        # rows of the test split
    truth: Truth               # [R, N]
    interest_pos: np.ndarray   # [R]
    value_pos: np.ndarray      # [R]


def _sample_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c = np.cumsum(p, axis=1)
    return (rng.random((len(p), 1)) * c[:, -1:] > c).sum(1)


def test_set(world: World, prepared: Prepared, n_requests: int | None = None, seed: int = 0) -> TestSet:
    """Truth and truth-sampled positives for (the first ``n_requests``) test requests."""
    test = prepared.requests["test"]
    n = len(test) if not n_requests else min(n_requests, len(test))
    rows = test.select(range(n))
    users = np.asarray(rows["user"])
    active = np.asarray(rows["oracle_active"])
    if (active < 0).any():
        raise ValueError("evaluation against the truth needs simulated data (oracle_active is missing)")
    context = np.asarray(rows["context"])
    items = np.broadcast_to(np.arange(world.cfg.n_items), (n, world.cfg.n_items))
    truth = world.truth(users, items, active, context)
    rng = np.random.default_rng(seed)
    return TestSet(indices=np.arange(n), truth=truth, interest_pos=_sample_rows(truth.pctr, rng),
                   value_pos=_sample_rows(truth.ecpm, rng))


@torch.no_grad()
def model_lists(model: OneRanker, cfg: Config, prepared: Prepared, ts: TestSet, n: int,
                device: torch.device | str = "cpu", batch_size: int = 256) -> dict[str, np.ndarray]:
    """The generated list (merged heads' top-n) and, with a ranker, the same candidates
    reordered by the R-Decoder: ad ids [R, n], best first."""
    model.eval()
    collate = Collator(prepared, cfg.data.max_history_len)
    test = prepared.requests["test"]
    generated, ranked = [], []
    for start in range(0, len(ts.indices), batch_size):
        idx = ts.indices[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([test[int(i)] for i in idx]).items()}
        state = model.encode(batch)
        interest, value = model.generator_scores(state)
        cands = topk_candidates(interest.float(), value.float(), n)
        generated.append(cands.cpu().numpy())
        if model.rdecoder is not None:
            order = rank_candidates(model, state, cands).float().argsort(dim=1, descending=True)
            ranked.append(cands.gather(1, order).cpu().numpy())
    out = {"generated": np.concatenate(generated)}
    if ranked:
        out["ranked"] = np.concatenate(ranked)
    return out


def popularity_list(prepared: Prepared, n_requests: int, n: int) -> np.ndarray:
    """The n ads clicked most often in the training logs, for every request (the baseline a
    generator must beat)."""
    train = prepared.requests["train"].with_format("numpy")
    items = np.concatenate(train["imp_item"])
    clicks = np.concatenate(train["imp_click"]).astype(float)
    n_items = prepared.meta["n_items"]
    counts = np.bincount(items, weights=clicks, minlength=n_items) + 1e-6 * np.bincount(items, minlength=n_items)
    return np.broadcast_to(np.argsort(-counts, kind="stable")[:n], (n_requests, n))


def list_metrics(ranked: np.ndarray, ts: TestSet, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """HR@K and NDCG@K for both truth-sampled positives, and eCPM-graded NDCG@K of the list."""
    out = {}
    gains = np.take_along_axis(ts.truth.ecpm, ranked, axis=1)
    for k in ks:
        out[f"HR@{k}"] = hit_rate(ranked, ts.interest_pos, k)
        out[f"NDCG@{k}"] = hit_ndcg(ranked, ts.interest_pos, k)
        out[f"valueHR@{k}"] = hit_rate(ranked, ts.value_pos, k)
        out[f"ecpmNDCG@{k}"] = ndcg(gains, k)
    out["mean_ecpm@5"] = float(gains[:, :5].mean())
    return out
