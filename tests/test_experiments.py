"""The experiment grid: parallel training gives the models of sequential training; tables."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from oneranker import evaluate, experiments
from oneranker.cache import model_folder
from oneranker.config import make_config
from oneranker.data import cached_prepared
from oneranker.train import train_or_load
from oneranker.world import World


def test_models_do_not_depend_on_the_number_of_workers(tmp_path):
    cfgs = [tiny_config(seed=0), tiny_config(seed=0, **{"model.use_ranker": False})]
    experiments.train_all(cfgs, tmp_path / "two", device="cpu", workers=2)
    experiments.train_all(cfgs, tmp_path / "one", device="cpu", workers=1)
    for cfg in cfgs:
        a = torch.load(model_folder(cfg, tmp_path / "two") / "final.pt", weights_only=True)["model"]
        b = torch.load(model_folder(cfg, tmp_path / "one") / "final.pt", weights_only=True)["model"]
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
    # each request's rho is the rank correlation of its own centroid preferences and truth
    ranks = lambda x: np.argsort(np.argsort(x)).astype(float)  # noqa: E731  (no ties among floats here)
    for r in range(3):
        expected = np.corrcoef(ranks(out["pref_click"][r]), ranks(out["truth_pctr"][r]))[0, 1]
        assert out["interest_rho"][r] == pytest.approx(expected, abs=1e-9)
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


def test_relative_lifts_and_sweeps_by_hand():
    results = pd.DataFrame({"variant": ["a", "a", "b", "b"] * 2, "seed": [0, 1, 0, 1] * 2,
                            "list": ["generated"] * 8, "corr": [-0.5] * 4 + [0.5] * 4,
                            "gmv": [2.2, 3.3, 2.0, 3.0, 1.0, 2.0, 2.0, 2.0]})
    low = results[results["corr"] == -0.5]
    mean, half = experiments.paired_difference(low, "gmv", ("a", "generated"), ("b", "generated"), relative=True)
    assert mean == pytest.approx(0.1) and half == pytest.approx(0.0, abs=1e-12)    # +10% in both seeds
    table = experiments.paired_table(low, ["gmv"], ["a"], "b", digits=1, relative=True)
    assert table.loc["a", "gmv"] == "+10.0% ± 0.0%"
    sweep = experiments.paired_sweep(results, "corr", ["gmv"], ("a", "generated"), ("b", "generated"))
    assert sweep["corr"].tolist() == [-0.5, 0.5]
    assert sweep["gmv_mean"].round(6).tolist() == [0.25, -0.5]     # (0.2 + 0.3) / 2, (-1 + 0) / 2
    both = experiments.paired_sweep(results, "corr", ["gmv"], ("a", "generated"), ("b", "generated"),
                                    lift_metrics=["gmv"])
    assert both["gmv_mean"].round(6).tolist() == [0.1, -0.25]      # the lifts: +10% twice; -50% and 0%
    with pytest.raises(KeyError, match="variant 'c'"):
        experiments.paired_difference(low, "gmv", ("c", "generated"), ("b", "generated"))


def test_served_takes_the_ranked_list_where_there_is_one():
    results = pd.DataFrame({"variant": ["gen", "full", "full", "full", "popularity"], "seed": [0] * 5,
                            "list": ["generated", "generated", "ranked", "head: click", "generated"],
                            "HR@5": [0.1, 0.2, 0.3, 0.4, 0.5]})
    out = experiments.served(results)
    assert out.set_index("variant")["HR@5"].to_dict() == {"gen": 0.1, "full": 0.3, "popularity": 0.5}
    assert (out.list == experiments.SERVED).all()


def test_world_sweep_and_consistency_on_tiny_models(tmp_path):
    from conftest import TINY

    variants = {"full": dict(TINY), "no DC": {**TINY, "train.gamma": 0.0}}
    res = experiments.world_sweep("quick", variants, "world.interest_value_corr", [-0.5, 0.5], (0,), tmp_path,
                                  device="cpu", eval_requests=20, oracle=True, workers=2)
    assert sorted(res["world.interest_value_corr"].unique()) == [-0.5, 0.5]
    assert set(res.variant) == {"full", "no DC", "oracle"}
    assert {"gmv", "cost"} <= set(res.columns)
    # the oracle serves the highest true eCPM: no list of the same length costs advertisers more
    for _, group in res.groupby("world.interest_value_corr"):
        assert group.loc[group.variant == "oracle", "cost"].item() >= group["cost"].max() - 1e-12
    terms = experiments.validation_loss_terms("quick", variants, (0,), tmp_path, reference=TINY, n_requests=30)
    assert terms.variant.tolist() == ["full", "no DC"]
    assert (terms[["mtp", "rank", "dc"]] > 0).all().all()       # L_DC scored for the gamma = 0 model too
    c = experiments.consistency_by_seed("quick", variants, (0,), tmp_path, eval_requests=20)
    assert set(c.summary.variant) == {"full", "no DC"} and (c.summary["IQR"] >= 0).all()
    n = tiny_config().train.n_candidates
    assert len(c.overlap) == 2 * n and c.overlap["overlap"].between(0, 1).all()
    assert c.overlap[c.overlap.k == n]["overlap"].tolist() == [1.0, 1.0]   # the whole list is the same set
    assert c.differences["full"].shape == (20 * n,)
    from oneranker.baselines import CASCADE_RANKER, Cascade
    aucs = experiments.ranker_auc_by_seed("quick", {"full": variants["full"],
                                                    "cascade": Cascade(ranker={**TINY, **CASCADE_RANKER})},
                                          (0,), tmp_path, n_requests=50)
    assert aucs.variant.tolist() == ["full", "cascade"] and aucs["impressions"].nunique() == 1


def test_worlds_simulated_in_parallel_equal_those_built_in_process(tmp_path):
    cfgs = [tiny_config(seed=0), tiny_config(seed=1)]
    experiments.prepare_all(cfgs, tmp_path / "pool", workers=2)
    for cfg in cfgs:
        a = cached_prepared(cfg, tmp_path / "pool")
        b = cached_prepared(cfg, tmp_path / "here")
        for split in ("train", "test"):
            assert a.requests[split].to_dict() == b.requests[split].to_dict()


def test_cached_truth_set_is_the_truth_set_and_is_reused(tmp_path):
    cfg = tiny_config(seed=0)
    prepared = cached_prepared(cfg, tmp_path)
    a = experiments.cached_truth_set(cfg, prepared, 20)
    b = evaluate.truth_set(World(cfg.world, cfg.seed), prepared, n_requests=20)
    np.testing.assert_array_equal(a.indices, b.indices)
    for field in ("pctr", "pcvr", "bid", "price"):
        np.testing.assert_array_equal(getattr(a.truth, field), getattr(b.truth, field))
    assert experiments.cached_truth_set(cfg, prepared, 20) is a


def test_gap_closed_column_by_hand():
    from oneranker.experiments import with_gap_closed

    rows = pd.DataFrame({
        "variant": ["popularity", "interest oracle", "model", "popularity", "interest oracle", "model"],
        "seed": [0, 0, 0, 1, 1, 1], "data": ["a", "a", "a", "b", "b", "b"], "list": ["generated"] * 6,
        "HR@5": [0.02, 0.10, 0.06, 0.01, 0.05, 0.00]})
    out = with_gap_closed(rows)
    # seed 0: (0.06 - 0.02) / (0.10 - 0.02) = 0.5; seed 1: (0 - 0.01) / (0.05 - 0.01) = -0.25
    np.testing.assert_allclose(out["gap closed HR@5"], [0.0, 1.0, 0.5, 0.0, 1.0, -0.25])
    with pytest.raises(ValueError, match="references=True"):
        with_gap_closed(rows[rows.variant != "interest oracle"])


def test_studies_name_the_models_the_notebooks_share():
    from oneranker import studies

    cfgs = studies.all_configs("smoke", seeds=[0])
    hashes = [c.hash() for c in cfgs]
    # the full model is shared by notebooks 04, 05 and 06, and the cascade brings a ranker of its own
    assert make_config("smoke", seed=0).hash() in hashes
    assert make_config("smoke", seed=0, **studies.baselines.CASCADE_RANKER).hash() in hashes
    # notebook 06's world sweep trains both models of the pair at every correlation
    for c in studies.CORR_SWEEP:
        for variant in studies.GMV_PAIR.values():
            assert make_config("smoke", seed=0, **{**variant, studies.CORR_KNOB: c}).hash() in hashes
    with pytest.raises(ValueError, match="unknown notebook"):
        studies.notebook_variants("08")


@pytest.mark.parametrize("mean, ci, paper, expected", [
    (0.02, 0.01, 0.03, "reproduced"), (-0.02, 0.01, 0.03, "opposite"), (0.005, 0.01, 0.03, "not separated"),
    (-0.02, 0.01, None, "below 0"), (0.0, 0.0, -0.01, "not separated")])
def test_verdict_rule_by_hand(mean, ci, paper, expected):
    assert experiments.verdict(mean, ci, paper).startswith(expected)


def test_paired_sentence_renders_the_paired_difference():
    rows = pd.DataFrame({"variant": ["a", "a", "b", "b"], "list": ["generated"] * 4, "seed": [0, 1, 0, 1],
                         "HR@5": [0.3, 0.5, 0.1, 0.1]})
    # differences 0.2 and 0.4: mean 0.3, CI = t(0.975, 1) x std / sqrt(2) = 12.706 x 0.1414 / 1.414 = 1.2706
    line = experiments.paired_sentence(rows, "HR@5", "a", "b", paper=-0.01)
    assert line == "- a minus b, HR@5: +0.3000 ± 1.2706 (paper: -0.0100): not separated (the CI contains 0; mean above 0)."
