"""Evaluation on the test requests of the simulated market, against its ground truth.

Logged clicks are sparse (about one test request in ten has one) and biased by the legacy
policy, so each test request is scored against held-out positives drawn from the world's
truth instead: an *interest* positive with probability proportional to the true pCTR of every
ad (the ad this user would click next) and a *value* positive proportional to the true eCPM
(the ad that would pay). HR@K / NDCG@K (interest) and valueHR@K / valueNDCG@K ask whether the
list finds them; they are computed as exact expectations over that draw
(:func:`metrics.expected_hit_rate`), not from one sample per request. The graded NDCG of the
list uses the true eCPM of its ads as gains (the paper's value-graded protocol on lists of
30).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .config import Config
from .data import Collator, Prepared
from .runtime import batch_to_device, gpu_padding
from .generate import rank_candidates, topk_candidates
from .metrics import KS, hit_ndcg_of_shares, hit_rate_of_shares, list_shares, ndcg
from .model import OneRanker
from .world import Truth, World


@dataclass
class TruthSet:
    """Test requests with their truth over the whole catalogue (evaluation only)."""

    indices: np.ndarray        # rows of the test split
    truth: Truth               # [R, N]


def truth_set(world: World, prepared: Prepared, n_requests: int | None = None) -> TruthSet:
    """The truth over the catalogue for (the first ``n_requests``) test requests."""
    test = prepared.requests["test"]
    n = len(test) if not n_requests else min(n_requests, len(test))
    rows = test.select(range(n))
    users = np.asarray(rows["user"])
    active = np.asarray(rows["oracle_active"])
    if (active < 0).any():
        raise ValueError("evaluation against the truth needs simulated data (oracle_active is missing)")
    context = np.asarray(rows["context"])
    truth = world.truth(users, None, active, context)   # every ad of the catalogue
    return TruthSet(indices=np.arange(n), truth=truth)


def request_batches(cfg: Config, prepared: Prepared, indices: np.ndarray, device: torch.device | str = "cpu",
                    batch_size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
    """The test requests ``indices`` as collated batches on ``device``, in order."""
    collate = Collator(prepared, cfg.data.max_history_len, pad_to=gpu_padding(device))
    test = prepared.requests["test"]
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        yield batch_to_device(collate([test[int(i)] for i in idx]), device)


def truth_batches(cfg: Config, prepared: Prepared, ts: TruthSet, device: torch.device | str = "cpu",
                  batch_size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
    """The truth set's test requests as collated batches on ``device``, in order."""
    return request_batches(cfg, prepared, ts.indices, device, batch_size)


@torch.no_grad()
def model_lists(model: OneRanker, cfg: Config, prepared: Prepared, ts: TruthSet, n: int,
                device: torch.device | str = "cpu", batch_size: int = 256,
                per_head: bool = False, ranker: OneRanker | None = None) -> dict[str, np.ndarray]:
    """The generated list (merged heads' top-n) and, with a ranker, the same candidates
    reordered by the R-Decoder: ad ids [R, n], best first. ``per_head`` adds each head's own
    top-n (``head: impression``, ``head: click``, ..., ``head: value`` for the bagged value
    heads), to see which head a merged list's strengths and weaknesses come from.
    ``ranker``: a separately trained model that encodes the history again and ranks the
    candidates (the cascade of :mod:`oneranker.baselines`); by default the model's own
    R-Decoder ranks them from the same forward pass."""
    from .losses import funnel_level

    if ranker is not None and ranker.rdecoder is None:
        raise ValueError("the separate ranker model has no R-Decoder (model.use_ranker=False)")
    model.eval()
    if ranker is not None:
        ranker.eval()
    generated, ranked = [], []
    heads: dict[str, list[np.ndarray]] = {}
    for batch in truth_batches(cfg, prepared, ts, device, batch_size):
        state = model.encode(batch)
        interest, value = model.generator_scores(state)
        cands = topk_candidates(interest.float(), value.float(), n)
        generated.append(cands.cpu().numpy())
        if per_head:
            n_int = interest.shape[1]
            for h in range(n_int):  # the first head of each funnel level
                name = f"head: {funnel_level(h, n_int)}"
                if h == 0 or funnel_level(h - 1, n_int) != funnel_level(h, n_int):
                    heads.setdefault(name, []).append(interest[:, h].topk(n, dim=-1).indices.cpu().numpy())
            heads.setdefault("head: value", []).append(value.mean(1).topk(n, dim=-1).indices.cpu().numpy())
        if ranker is not None:
            order = rank_candidates(ranker, ranker.encode(batch), cands).float().argsort(dim=1, descending=True)
            ranked.append(cands.gather(1, order).cpu().numpy())
        elif model.rdecoder is not None:
            order = rank_candidates(model, state, cands).float().argsort(dim=1, descending=True)
            ranked.append(cands.gather(1, order).cpu().numpy())
    out = {"generated": np.concatenate(generated)}
    if ranked:
        out["ranked"] = np.concatenate(ranked)
    out.update({name: np.concatenate(parts) for name, parts in heads.items()})
    return out


def list_metrics(ranked: np.ndarray, ts: TruthSet, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Expected HR@K / NDCG@K of an interest (pCTR-drawn) and a value (eCPM-drawn) positive,
    and the eCPM-graded NDCG@K of the list."""
    out = {}
    ecpm = ts.truth.ecpm            # a product over the catalogue (world.Truth): computed once
    gains = np.take_along_axis(ecpm, ranked, axis=1)
    head = ranked[:, :max(ks)]      # the catalogue is read per weight, not per metric and K
    interest, value = list_shares(head, ts.truth.pctr), list_shares(head, ecpm)
    for k in ks:
        out[f"HR@{k}"] = hit_rate_of_shares(interest, k)
        out[f"NDCG@{k}"] = hit_ndcg_of_shares(interest, k)
        out[f"valueHR@{k}"] = hit_rate_of_shares(value, k)
        out[f"valueNDCG@{k}"] = hit_ndcg_of_shares(value, k)
        out[f"ecpmNDCG@{k}"] = ndcg(gains, k)
    out["mean_ecpm@5"] = float(gains[:, :5].mean())
    return out


@torch.no_grad()
def centroid_alignment(model: OneRanker, cfg: Config, prepared: Prepared, ts: TruthSet,
                       device: torch.device | str = "cpu", batch_size: int = 256) -> dict[str, np.ndarray]:
    """Do the per-centroid preferences s_il of the dual channel track the market's truth?

    Every ad belongs to its nearest Fake Item Token (cosine, as in the dual-channel score);
    the truth of a centroid for a request is the mean true pCTR (interest) or eCPM (value) of
    its ads. Returns, per test request, the Spearman correlation across centroids between
    the click head's s_il and the true mean pCTR (``interest_rho``) and between the value
    heads' mean s_il and the true mean eCPM (``value_rho``), plus the raw arrays for one
    request's picture: ``pref_click``/``pref_value`` [R, F], ``truth_pctr``/``truth_ecpm``
    [R, F] and ``cluster`` [N].
    """
    from scipy.stats import spearmanr

    from .losses import funnel_level

    step2 = model.step2
    if step2 is None or step2.fake is None or not cfg.model.use_task_tokens:
        raise ValueError("centroid preferences need Step 2 with task tokens and Fake Item Tokens")
    model.eval()
    item_emb = model.items()
    cluster = step2.fake.item_affinity(item_emb).argmax(-1).cpu().numpy()           # [N]
    F_ = step2.fake.centroids.shape[0]
    interest_idx, value_idx = step2.head_tokens()
    click = [h for h in range(len(interest_idx)) if funnel_level(h, len(interest_idx)) == "click"][0]
    prefs = []
    for batch in truth_batches(cfg, prepared, ts, device, batch_size):
        state = model.encode(batch)
        prefs.append(step2.centroid_preferences(state.tasks, state.fakes).float().cpu().numpy())
    pref = np.concatenate(prefs)                                                    # [R, T, F]
    members = np.eye(F_)[cluster]                                                   # [N, F]
    size = members.sum(0)
    used = size > 0
    truth_pctr = (ts.truth.pctr @ members)[:, used] / size[used]
    truth_ecpm = (ts.truth.ecpm @ members)[:, used] / size[used]
    pref_click = pref[:, interest_idx[click]][:, used]
    pref_value = pref[:, value_idx].mean(1)[:, used]
    rho = lambda a, b: np.array([spearmanr(x, y).statistic for x, y in zip(a, b)])  # noqa: E731
    return {"interest_rho": rho(pref_click, truth_pctr), "value_rho": rho(pref_value, truth_ecpm),
            "pref_click": pref_click, "pref_value": pref_value, "truth_pctr": truth_pctr,
            "truth_ecpm": truth_ecpm, "cluster": cluster}


def slate_outcomes(ranked: np.ndarray, ts: TruthSet, slate_size: int, position_bias: float) -> dict[str, np.ndarray]:
    """Expected GMV and advertiser cost per request [R] of serving the first ``slate_size``
    ads of each list in order, each examined with probability 1 / position^eta (the world's
    position model): GMV = sum exam * pCTR * pCVR * price, cost = sum exam * pCTR * pCVR * bid
    (advertisers pay their bid per conversion)."""
    if ranked.shape[1] < slate_size:
        raise ValueError(f"lists of {ranked.shape[1]} ads cannot fill a slate of {slate_size}")
    top = ranked[:, :slate_size]
    exam = 1.0 / np.arange(1, slate_size + 1) ** position_bias
    gmv = (np.take_along_axis(ts.truth.gmv, top, axis=1) * exam).sum(1)
    cost = (np.take_along_axis(ts.truth.ecpm, top, axis=1) * exam).sum(1)
    return {"gmv": gmv, "cost": cost}


@torch.no_grad()
def generator_ranker_consistency(model: OneRanker, cfg: Config, prepared: Prepared, ts: TruthSet, n: int,
                                 device: torch.device | str = "cpu", batch_size: int = 256) -> dict[str, np.ndarray]:
    """The paper's DC analysis: on each request's n generated candidates, the generator's
    score (the one L_DC trains, :meth:`OneRanker.retrieval_score`) and the ranker's score.
    Returns ``rank_difference`` [R, n] (|generator rank - ranker rank|) and ``topk_overlap``
    [n] (share of the generator's top k in the ranker's top k, for k = 1..n)."""
    from .metrics import rank_difference, topk_overlap

    if model.rdecoder is None:
        raise ValueError("consistency needs a model with a ranker (model.use_ranker=True)")
    model.eval()
    gen_scores, rank_scores = [], []
    for batch in truth_batches(cfg, prepared, ts, device, batch_size):
        state = model.encode(batch)
        interest, value = model.generator_scores(state)
        cands = topk_candidates(interest.float(), value.float(), n)
        gen_scores.append(model.retrieval_score(interest, value).float().gather(1, cands).cpu().numpy())
        rank_scores.append(rank_candidates(model, state, cands).float().cpu().numpy())
    g, r = np.concatenate(gen_scores), np.concatenate(rank_scores)
    return {"rank_difference": rank_difference(g, r),
            "topk_overlap": np.array([topk_overlap(g, r, k) for k in range(1, n + 1)])}


@torch.no_grad()
def ranker_auc(model: OneRanker, cfg: Config, prepared: Prepared, n_requests: int | None = None,
               device: torch.device | str = "cpu", batch_size: int = 256) -> dict[str, float]:
    """AUC and GAUC (grouped by user) of the ranker's scores of the logged test impressions
    of the first ``n_requests`` test requests (default all: clicks are sparse) against their
    logged clicks: the usual offline check of a ranking model."""
    from .metrics import auc, gauc

    if model.rdecoder is None:
        raise ValueError("AUC of the ranker needs a model with a ranker (model.use_ranker=True)")
    model.eval()
    n_test = len(prepared.requests["test"])
    indices = np.arange(n_test if not n_requests else min(n_requests, n_test))
    scores, labels, users = [], [], []
    for batch in request_batches(cfg, prepared, indices, device, batch_size):
        items, mask = batch["imp_item"], batch["imp_mask"]
        s = model.rank(model.encode(batch), items.clamp(min=0)).float()
        scores.append(s[mask].cpu().numpy())
        labels.append(batch["imp_click"][mask].cpu().numpy())
        users.append(batch["user"][:, None].expand_as(items)[mask].cpu().numpy())
    s, y, u = np.concatenate(scores), np.concatenate(labels), np.concatenate(users)
    return {"AUC": auc(s, y), "GAUC": gauc(s, y, u), "impressions": int(len(y)), "clicks": int(y.sum())}
