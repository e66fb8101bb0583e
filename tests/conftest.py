"""Shared fixtures: a tiny simulated dataset and a tiny model config (fast on 2 CPU cores)."""

import pytest

from oneranker.config import make_config
from oneranker.data import build_prepared
from oneranker.world import World

TINY = {"world.n_users": 200, "world.n_items": 120, "world.n_organic": 60, "world.n_categories": 6,
        "semantic_ids.codebook_size": 4, "data.max_history_len": 24,
        "model.d_model": 16, "model.n_heads": 2, "model.n_fake_items": 4, "model.dropout": 0.0,
        "model.attention": "sdpa", "train.batch_size": 32, "train.epochs": 2, "train.max_train_requests": 128,
        "train.eval_requests": 64, "train.warmup_steps": 2, "train.n_random_negatives": 4}


def tiny_config(**overrides):
    return make_config("quick", **{**TINY, **overrides})


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("tiny") / "ds"
    prepared = build_prepared(World(cfg.world, cfg.seed).simulate(), cfg)
    prepared.save(out)
    from oneranker.data import load_prepared
    return load_prepared(out)
