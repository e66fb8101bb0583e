"""Each ablation row flips exactly the switches its name says, relative to the row it ablates."""

import dataclasses

import pytest

from oneranker import studies
from oneranker.config import make_config

S2 = studies.STEP2_ONLY


def _flat(overrides: dict) -> dict:
    cfg = make_config("paper", **overrides)
    return {f"{s.name}.{f.name}": getattr(getattr(cfg, s.name), f.name)
            for s in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, s.name))
            for f in dataclasses.fields(getattr(cfg, s.name))}


# (grid, row, the row it ablates, the switches it flips and their values): written from the names
ROWS = [
    (studies.TABLE3, "Step 2 only (paper design)", {}, {"model.use_ranker": False}),
    (studies.TABLE3, "self-attention before cross-attention", S2, {"model.step2_order": "self_first"}),
    (studies.TABLE3, "without the heterogeneous mask", S2, {"model.heterogeneous_mask": False}),
    (studies.STEP2_ABLATIONS, "without Fake Item Tokens", S2, {"model.use_fake_items": False}),
    (studies.STEP2_ABLATIONS, "without Fake Items and task tokens", S2,
     {"model.use_fake_items": False, "model.use_task_tokens": False}),
    (studies.RANKER_ABLATIONS, "Step 2 only (no ranker)", {}, {"model.use_ranker": False}),
    (studies.RANKER_ABLATIONS, "without Step-2 K/V in the ranker", {}, {"model.ranker_kv": "step1"}),
    (studies.RANKER_ABLATIONS, "ranker on Step 1 only", {}, {"model.use_step2": False}),
    (studies.RANKER_ABLATIONS, "Step-1 generator", {}, {"model.use_step2": False, "model.use_ranker": False}),
    (studies.TABLE2, "Full OneRanker", {}, {}),
    (studies.RANKER_ABLATIONS, "full OneRanker", {}, {}),
    (studies.TABLE2, "without DC loss", {}, {"train.gamma": 0.0}),
    (studies.TABLE2, "without Step-2 K/V in the ranker", {}, {"model.ranker_kv": "step1"}),
    (studies.TABLE2, "ranker on Step 1 only", {}, {"model.use_step2": False}),
    (studies.TABLE2, "Step 2 only (no ranker)", {}, {"model.use_ranker": False}),
    (studies.TABLE2, "Step 2 without Fake Item Tokens", S2, {"model.use_fake_items": False}),
    (studies.TABLE2, "Step 2 without Fake Items and task tokens", S2,
     {"model.use_fake_items": False, "model.use_task_tokens": False}),
    (studies.VALUE_WEIGHTED, "OneRanker, value-weighted L_MTP", {}, {"train.mtp_weighting": "value"}),
    *((studies.fake_item_sweep(), f"{n} fake items", S2, {"model.n_fake_items": n}) for n in (4, 16, 32)),
    *((studies.loss_grid("tau", (0.25,)), "tau=0.25", {}, {"train.tau": 0.25}),
      (studies.loss_grid("gamma", (2.0,)), "gamma=2", {}, {"train.gamma": 2.0})),
]


@pytest.mark.parametrize("grid, row, base, switches", ROWS, ids=[r[1] for r in ROWS])
def test_an_ablation_row_flips_exactly_the_switches_it_names(grid, row, base, switches):
    got, before = _flat(grid[row]), _flat(base)
    changed = {k: got[k] for k in got if got[k] != before[k]}
    expected = {k: v for k, v in switches.items() if v != before[k]}   # a sweep value may be the default
    assert changed == expected
    assert set(switches) <= set(got)
    assert all(got[k] == v for k, v in switches.items())


def test_with_knob_gives_both_models_of_a_cascade_the_knob():
    from oneranker.baselines import Cascade

    c = studies.with_knob(Cascade(generator={"a": 1}, ranker={"b": 2}), "k", 3)
    assert (c.generator, c.ranker) == ({"a": 1, "k": 3}, {"b": 2, "k": 3})
