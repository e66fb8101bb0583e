"""Shared fixtures: a tiny simulated dataset and a tiny model config (fast on 2 CPU cores)."""

import pytest

from oneranker.config import make_config
from oneranker.data import build_prepared
from oneranker.world import World

# The unit tests' models: the `smoke` profile (a toy market and model) with what the tests need
# on top of it: no dropout (parity tests compare outputs exactly), the SDPA kernel (FlexAttention
# has no backward on the CPU), epochs of several small steps and few random negatives.
PROFILE = "smoke"
TINY = {"model.dropout": 0.0, "model.attention": "sdpa", "train.batch_size": 32, "train.max_train_requests": 128,
        "train.n_random_negatives": 4}


def tiny_config(**overrides):
    return make_config(PROFILE, **{**TINY, **overrides})


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("tiny") / "ds"
    prepared = build_prepared(World(cfg.world, cfg.seed).simulate(), cfg)
    prepared.save(out)
    from oneranker.data import load_prepared
    return load_prepared(out)
