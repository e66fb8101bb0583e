"""The experiment grid: parallel training gives the models of sequential training; tables."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from oneranker import evaluate, experiments
from oneranker.data import cached_prepared
from oneranker.train import train_or_load
from oneranker.world import World


def test_models_do_not_depend_on_the_number_of_workers(tmp_path):
    cfgs = [tiny_config(seed=0), tiny_config(seed=0, **{"model.use_ranker": False})]
    experiments.train_all(cfgs, tmp_path / "two", device="cpu", workers=2)
    experiments.train_all(cfgs, tmp_path / "one", device="cpu", workers=1)
    for cfg in cfgs:
        a = torch.load(tmp_path / "two" / "models" / cfg.hash() / "final.pt", weights_only=True)["model"]
        b = torch.load(tmp_path / "one" / "models" / cfg.hash() / "final.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_paired_tables_by_hand():
    results = pd.DataFrame({"variant": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2] * 2,
                            "list": ["generated"] * 6, "HR@5": [0.3, 0.5, 0.4, 0.1, 0.2, 0.3]})
    mean, half = experiments.paired_difference(results, "HR@5", ("a", "generated"), ("b", "generated"))
    assert mean == pytest.approx(0.2)                      # differences 0.2, 0.3, 0.1
    assert half == pytest.approx(4.302652729911275 * 0.1 / np.sqrt(3))
    table = experiments.paired_table(results, ["HR@5"], ["a"], "b", digits=2)
    assert table.loc["a", "HR@5"] == f"+0.20 ± {half:.2f}"
    sweep = experiments.mean_ci_columns(results, "variant", ["HR@5"])
    assert sweep["HR@5_mean"].round(6).tolist() == [0.4, 0.2]


def test_centroid_alignment_shapes_and_refusal(tmp_path):
    cfg = tiny_config(**{"model.use_ranker": False})
    prepared = cached_prepared(cfg, tmp_path)
    model, _ = train_or_load(cfg, prepared, tmp_path, device="cpu", progress=False)
    ts = evaluate.truth_set(World(cfg.world, cfg.seed), prepared, n_requests=20)
    out = evaluate.centroid_alignment(model, cfg, prepared, ts)
    assert out["interest_rho"].shape == (20,) and out["cluster"].shape == (cfg.world.n_items,)
    rho = out["interest_rho"][np.isfinite(out["interest_rho"])]
    assert ((rho >= -1) & (rho <= 1)).all()
    no_fake = tiny_config(**{"model.use_ranker": False, "model.use_fake_items": False})
    model2, _ = train_or_load(no_fake, prepared, tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="Fake Item Tokens"):
        evaluate.centroid_alignment(model2, no_fake, prepared, ts)


def test_grid_runs_baselines_and_a_cascade(tmp_path):
    from conftest import TINY
    from oneranker.baselines import CASCADE_RANKER, GPR, Cascade

    variants = {"GPR-style": {**TINY, **GPR},
                "cascade": Cascade(generator={**TINY, **GPR}, ranker={**TINY, **CASCADE_RANKER})}
    res = experiments.run_grid("quick", variants, (0,), tmp_path, device="cpu", eval_requests=20,
                               baselines=True, workers=2)
    assert set(map(tuple, res[["variant", "list"]].values.tolist())) == {
        ("popularity", "generated"), ("GPR-style", "generated"), ("cascade", "generated"), ("cascade", "ranked")}
    # the cascade generates with the very GPR-style model: same candidates, same metrics
    gen = res[res.list == "generated"].set_index("variant")
    assert gen.loc["cascade", "HR@15"] == gen.loc["GPR-style", "HR@15"]
    assert len(list((tmp_path / "models").iterdir())) == 2      # GPR-style shared, plus the ranker
