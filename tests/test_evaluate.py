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
