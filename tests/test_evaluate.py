"""Evaluation against the market's truth: slates, ranker consistency and AUC."""

import numpy as np
import pytest

from oneranker.evaluate import TruthSet, slate_outcomes
from oneranker.world import Truth


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
    from conftest import tiny_config
    from oneranker.evaluate import generator_ranker_consistency, ranker_auc, truth_set
    from oneranker.train import build_model
    from oneranker.world import World

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
    from oneranker.evaluate import list_metrics
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
