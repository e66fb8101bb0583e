"""The baselines (oneranker/baselines.py): each flips the switches its name says."""

from conftest import PROFILE
from oneranker import baselines
from oneranker.config import make_config


def _switches(overrides):
    c = make_config(PROFILE, seed=0, **overrides)
    return (c.model.use_step2, c.model.use_task_tokens, c.model.use_fake_items, c.model.use_ranker,
            c.train.mtp_weighting, c.model.item_representation, c.train.alpha, c.train.gamma)


def test_each_baseline_flips_the_switches_its_name_says():
    full = _switches({})
    assert full[:5] == (True, True, True, True, "none")
    # HSTU-style: Step 1 only, no Step 2, no ranker, plain loss
    assert _switches(baselines.HSTU) == (False, True, True, False, "none", *full[5:])
    # GPR-style: task tokens over the G-Decoder, no Fake Items, no ranker, value-weighted MTP
    assert _switches(baselines.GPR) == (True, True, False, False, "value", *full[5:])
    # single-stage fusion: one shared query token, value-weighted, no ranker
    assert _switches(baselines.FUSION) == (True, False, False, False, "value", *full[5:])
    # SASRec: HSTU with ID embeddings only
    assert _switches(baselines.SASREC) == (False, True, True, False, "none", "id", *full[6:])
    # the cascade: the GPR-style generator, and a ranker on Step 1 trained with L_rank alone
    cascade = baselines.BASELINES["cascade"]
    assert cascade.generator == baselines.GPR and cascade.generator is not baselines.GPR
    assert _switches(cascade.ranker) == (False, True, True, True, "none", full[5], 0.0, 0.0)
    assert baselines.BASELINES["OneRanker"] == {} and baselines.BASELINES["HSTU-style"] == baselines.HSTU
    assert baselines.BASELINES["GPR-style"] == baselines.GPR
    assert baselines.BASELINES["single-stage fusion"] == baselines.FUSION
