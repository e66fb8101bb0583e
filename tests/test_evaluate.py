"""Evaluation against the market's truth: slates, ranker consistency and AUC."""

import numpy as np
import pytest
import torch

from conftest import tiny_config
from oneranker.data import Collator
from oneranker.evaluate import (TruthSet, generator_ranker_consistency, list_metrics, model_lists, ranker_auc,
                                slate_outcomes, truth_batches, truth_set)
from oneranker.generate import topk_candidates
from oneranker.metrics import auc, gauc, rank_difference
from oneranker.train import build_model
from oneranker.world import Truth, World


def test_slate_outcomes_by_hand():
    truth = Truth(pctr=np.array([[0.1, 0.2, 0.4]]), pcvr=np.array([[0.5, 0.5, 0.5]]),
                  bid=np.array([[1.0, 2.0, 3.0]]), price=np.array([[10.0, 10.0, 10.0]]))
    ts = TruthSet(indices=np.arange(1), truth=truth)
    out = slate_outcomes(np.array([[2, 0, 1]]), ts, slate_size=2, position_bias=1.0)
    # slot 1: ad 2 (gmv .4*.5*10 = 2, ecpm .4*.5*3 = .6); slot 2 examined 1/2: ad 0 (gmv .5, ecpm .05)
    assert out["gmv"][0] == pytest.approx(2 + 0.5 / 2)
    assert out["cost"][0] == pytest.approx(0.6 + 0.05 / 2)
    with pytest.raises(ValueError, match="slate"):
        slate_outcomes(np.array([[2]]), ts, slate_size=2, position_bias=1.0)


def test_consistency_and_ranker_auc_on_a_tiny_model(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared)
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=30)
    c = generator_ranker_consistency(model, cfg, tiny_prepared, ts, n=10)
    assert c["rank_difference"].shape == (30, 10) and c["topk_overlap"].shape == (10,)
    assert c["topk_overlap"][-1] == 1.0                       # all n candidates: full overlap
    assert ((c["rank_difference"] >= 0) & (c["rank_difference"] <= 9)).all()
    a = ranker_auc(model, cfg, tiny_prepared, n_requests=30)
    test = tiny_prepared.requests["test"].select(range(30))
    assert a["impressions"] == sum(map(len, test["imp_item"]))          # every logged impression, once
    assert a["clicks"] == sum(map(sum, test["imp_click"]))
    # the 30 requests hold clicks and non-clicks, so the AUC is defined (auc itself is tested by hand)
    assert 0 < a["clicks"] < a["impressions"] and 0.0 <= a["AUC"] <= 1.0
    no_ranker = tiny_config(**{"model.use_ranker": False})
    with pytest.raises(ValueError, match="ranker"):
        generator_ranker_consistency(build_model(no_ranker, tiny_prepared), no_ranker, tiny_prepared, ts, n=10)


def test_list_metrics_equal_each_metric_computed_on_its_own_bit_for_bit():
    """list_metrics reads the catalogue once per weight; each number must be exactly what the
    one-metric functions (metrics.expected_hit_rate, expected_hit_ndcg, ndcg) give."""
    from oneranker.metrics import KS, expected_hit_ndcg, expected_hit_rate, ndcg

    rng = np.random.default_rng(3)
    shape = (50, 300)
    truth = Truth(pctr=rng.random(shape) * 0.1, pcvr=rng.random(shape), bid=rng.random(shape) * 3,
                  price=rng.random(shape) * 10)
    ts = TruthSet(indices=np.arange(shape[0]), truth=truth)
    ranked = np.argsort(rng.random(shape), axis=1)[:, :30]
    got = list_metrics(ranked, ts)
    gains = np.take_along_axis(truth.ecpm, ranked, axis=1)
    for k in KS:
        # the closed form written out: (weight of the first k) / (row's total weight)
        share = np.take_along_axis(truth.pctr, ranked[:, :k], axis=1) / truth.pctr.sum(1, keepdims=True)
        assert got[f"HR@{k}"] == float(share.sum(1).mean())
        assert got[f"NDCG@{k}"] == float((share * (1.0 / np.log2(np.arange(2, k + 2)))).sum(1).mean())
        assert got[f"HR@{k}"] == expected_hit_rate(ranked, truth.pctr, k)
        assert got[f"NDCG@{k}"] == expected_hit_ndcg(ranked, truth.pctr, k)
        assert got[f"valueHR@{k}"] == expected_hit_rate(ranked, truth.ecpm, k)
        assert got[f"valueNDCG@{k}"] == expected_hit_ndcg(ranked, truth.ecpm, k)
        assert got[f"ecpmNDCG@{k}"] == ndcg(gains, k)


def _one_batch(cfg, prepared, n):
    test = prepared.requests["test"]
    return Collator(prepared, cfg.data.max_history_len)([test[i] for i in range(n)])


def test_truth_set_row_i_is_the_truth_of_test_request_i(tiny_prepared):
    cfg = tiny_config()
    world = World(cfg.world, cfg.seed)
    ts = truth_set(world, tiny_prepared, n_requests=7)
    test = tiny_prepared.requests["test"]
    for i in ts.indices:
        r = test[int(i)]
        t = world.truth(np.array([r["user"]]), None, np.array([r["oracle_active"]]), np.array([r["context"]]))
        np.testing.assert_allclose(ts.truth.pctr[i], t.pctr[0], rtol=1e-12)
        np.testing.assert_allclose(ts.truth.ecpm[i], t.ecpm[0], rtol=1e-12)
    # the batches the lists are made from are those requests, in the truth's row order
    users = np.concatenate([b["user"].numpy() for b in truth_batches(cfg, tiny_prepared, ts, batch_size=3)])
    assert users.tolist() == [test[int(i)]["user"] for i in ts.indices]


def test_the_served_list_is_the_generated_candidates_in_the_rdecoders_order(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=12)
    lists = model_lists(model, cfg, tiny_prepared, ts, n=10, per_head=True)
    with torch.no_grad():
        state = model.encode(_one_batch(cfg, tiny_prepared, 12))
        interest, value = model.generator_scores(state)
        gen = topk_candidates(interest.float(), value.float(), 10)
        order = model.rank(state, gen).float().argsort(dim=1, descending=True)
    np.testing.assert_array_equal(lists["generated"], gen.numpy())
    np.testing.assert_array_equal(lists["ranked"], gen.gather(1, order).numpy())
    assert not np.array_equal(lists["ranked"], lists["generated"])         # the ranker does reorder
    np.testing.assert_array_equal(lists["head: value"], value.mean(1).topk(10, dim=-1).indices.numpy())


def test_consistency_pairs_each_candidates_generator_and_ranker_scores(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=30)
    c = generator_ranker_consistency(model, cfg, tiny_prepared, ts, n=10)
    with torch.no_grad():
        state = model.encode(_one_batch(cfg, tiny_prepared, 30))
        interest, value = model.generator_scores(state)
        cands = topk_candidates(interest.float(), value.float(), 10)
        g = model.retrieval_score(interest, value).float().gather(1, cands).numpy()
        r = model.rank(state, cands).float().numpy()
    np.testing.assert_array_equal(c["rank_difference"], rank_difference(g, r))


def test_ranker_auc_scores_each_logged_impression_against_its_own_click(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    a = ranker_auc(model, cfg, tiny_prepared, n_requests=30)
    batch = _one_batch(cfg, tiny_prepared, 30)
    mask = batch["imp_mask"]
    with torch.no_grad():
        s = model.rank(model.encode(batch), batch["imp_item"].clamp(min=0)).float()[mask].numpy()
    y = batch["imp_click"][mask].numpy()
    u = batch["user"][:, None].expand_as(batch["imp_item"])[mask].numpy()
    assert a["AUC"] == pytest.approx(auc(s, y), abs=1e-12)
    assert a["GAUC"] == pytest.approx(gauc(s, y, u), abs=1e-12)


def test_mean_ecpm_at_5_by_hand():
    # one request, 6 ads; eCPM = bid x pCTR x pCVR = bid here: 6, 5, 4, 3, 2, 1 for ads 0..5
    truth = Truth(pctr=np.ones((1, 6)), pcvr=np.ones((1, 6)), bid=np.array([[6.0, 5, 4, 3, 2, 1]]),
                  price=np.ones((1, 6)))
    got = list_metrics(np.array([[5, 4, 3, 2, 1, 0]]), TruthSet(indices=np.arange(1), truth=truth), ks=(5,))
    assert got["mean_ecpm@5"] == pytest.approx((1 + 2 + 3 + 4 + 5) / 5)


def test_a_centroids_truth_is_the_mean_over_its_ads(tiny_prepared):
    from oneranker.evaluate import centroid_alignment

    cfg = tiny_config(**{"model.use_ranker": False})
    model = build_model(cfg, tiny_prepared).eval()
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=5)
    out = centroid_alignment(model, cfg, tiny_prepared, ts)
    labels = np.unique(out["cluster"])                      # the centroids that own an ad, in order
    for r in range(5):
        np.testing.assert_allclose(out["truth_pctr"][r], [ts.truth.pctr[r, out["cluster"] == j].mean() for j in labels])
        np.testing.assert_allclose(out["truth_ecpm"][r], [ts.truth.ecpm[r, out["cluster"] == j].mean() for j in labels])


def test_a_separate_ranker_reads_its_own_encoding_of_the_history(tiny_prepared):
    from oneranker.baselines import CASCADE_RANKER

    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    torch.manual_seed(1)
    ranker = build_model(tiny_config(**CASCADE_RANKER), tiny_prepared).eval()
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=12)
    lists = model_lists(model, cfg, tiny_prepared, ts, n=10, ranker=ranker)
    batch = _one_batch(cfg, tiny_prepared, 12)
    with torch.no_grad():
        gen = torch.as_tensor(lists["generated"])
        order = ranker.rank(ranker.encode(batch), gen).float().argsort(dim=1, descending=True)
    np.testing.assert_array_equal(lists["ranked"], gen.gather(1, order).numpy())
