"""Tables from per-seed rows, checked by hand: paired differences and their CIs, lifts,
sweeps, the served list, the gap closed, the verdict rule and the sentences it renders."""

import numpy as np
import pandas as pd
import pytest

from oneranker import tables
from oneranker.study import Study


def test_paired_tables_by_hand():
    results = pd.DataFrame({"variant": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2] * 2,
                            "list": ["generated"] * 6, "HR@5": [0.3, 0.5, 0.4, 0.1, 0.2, 0.3]})
    mean, half = tables.paired_difference(results, "HR@5", ("a", "generated"), ("b", "generated"))
    assert mean == pytest.approx(0.2)                      # differences 0.2, 0.3, 0.1
    assert half == pytest.approx(4.302652729911275 * 0.1 / np.sqrt(3))
    table = tables.paired_table(results, ["HR@5"], ["a"], "b", digits=2)
    assert table.loc["a", "HR@5"] == f"+0.20 ± {half:.2f}"
    sweep = tables.mean_ci_columns(results, "variant", ["HR@5"])
    assert sweep["HR@5_mean"].round(6).tolist() == [0.4, 0.2]
    # paired by seed, not by row order: b's rows shuffled give the same pairs
    shuffled = pd.concat([results[results.variant == "a"], results[results.variant == "b"].iloc[[2, 0, 1]]])
    assert tables.paired_difference(shuffled, "HR@5", ("a", "generated"), ("b", "generated")) == \
        (pytest.approx(0.2), pytest.approx(half))
    # a seed one variant lacks is left out: seeds 0 and 1 pair (0.2, 0.3), t with 1 degree of freedom
    partial = results[~((results.variant == "b") & (results.seed == 2))]
    mean2, half2 = tables.paired_difference(partial, "HR@5", ("a", "generated"), ("b", "generated"))
    assert mean2 == pytest.approx(0.25) and half2 == pytest.approx(12.706204736174707 * np.std([0.2, 0.3], ddof=1)
                                                                   / np.sqrt(2))
    # mean ± CI over seeds per variant, in input order, with the seeds counted
    summary = tables.summarise(shuffled, ["HR@5"], by=("variant",))
    assert summary.index.tolist() == ["a", "b"] and summary["seeds"].tolist() == [3, 3]
    assert summary.loc["a", "HR@5"] == f"0.4000 ± {half:.4f}" == "0.4000 ± 0.2484"


def test_relative_lifts_and_sweeps_by_hand():
    results = pd.DataFrame({"variant": ["a", "a", "b", "b"] * 2, "seed": [0, 1, 0, 1] * 2,
                            "list": ["generated"] * 8, "corr": [-0.5] * 4 + [0.5] * 4,
                            "gmv": [2.2, 3.3, 2.0, 3.0, 1.0, 2.0, 2.0, 2.0]})
    low = results[results["corr"] == -0.5]
    mean, half = tables.paired_difference(low, "gmv", ("a", "generated"), ("b", "generated"), relative=True)
    assert mean == pytest.approx(0.1) and half == pytest.approx(0.0, abs=1e-12)    # +10% in both seeds
    table = tables.paired_table(low, ["gmv"], ["a"], "b", digits=1, relative=True)
    assert table.loc["a", "gmv"] == "+10.0% ± 0.0%"
    sweep = tables.paired_sweep(results, "corr", ["gmv"], ("a", "generated"), ("b", "generated"))
    assert sweep["corr"].tolist() == [-0.5, 0.5]
    assert sweep["gmv_mean"].round(6).tolist() == [0.25, -0.5]     # (0.2 + 0.3) / 2, (-1 + 0) / 2
    both = tables.paired_sweep(results, "corr", ["gmv"], ("a", "generated"), ("b", "generated"),
                                    lift_metrics=["gmv"])
    assert both["gmv_mean"].round(6).tolist() == [0.1, -0.25]      # the lifts: +10% twice; -50% and 0%
    with pytest.raises(KeyError, match="variant 'c'"):
        tables.paired_difference(low, "gmv", ("c", "generated"), ("b", "generated"))


def test_served_takes_the_ranked_list_where_there_is_one():
    results = pd.DataFrame({"variant": ["gen", "full", "full", "full", "popularity"], "seed": [0] * 5,
                            "list": ["generated", "generated", "ranked", "head: click", "generated"],
                            "HR@5": [0.1, 0.2, 0.3, 0.4, 0.5]})
    out = tables.served(results)
    assert out.set_index("variant")["HR@5"].to_dict() == {"gen": 0.1, "full": 0.3, "popularity": 0.5}
    assert (out.list == tables.SERVED).all()


def test_gap_closed_column_by_hand():
    rows = pd.DataFrame({
        "variant": ["popularity", "interest oracle", "model", "popularity", "interest oracle", "model"],
        "seed": [0, 0, 0, 1, 1, 1], "data": ["a", "a", "a", "b", "b", "b"], "list": ["generated"] * 6,
        "HR@5": [0.02, 0.10, 0.06, 0.01, 0.05, 0.00]})
    out = tables.with_gap_closed(rows)
    # seed 0: (0.06 - 0.02) / (0.10 - 0.02) = 0.5; seed 1: (0 - 0.01) / (0.05 - 0.01) = -0.25
    np.testing.assert_allclose(out["gap closed HR@5"], [0.0, 1.0, 0.5, 0.0, 1.0, -0.25])
    with pytest.raises(ValueError, match="references=True"):
        tables.with_gap_closed(rows[rows.variant != "interest oracle"])


@pytest.mark.parametrize("mean, ci, paper, expected", [
    (0.02, 0.01, 0.03, "reproduced"), (-0.02, 0.01, 0.03, "opposite"), (0.005, 0.01, 0.03, "not separated"),
    (-0.02, 0.01, None, "below 0"), (0.0, 0.0, -0.01, "not separated")])
def test_verdict_rule_by_hand(mean, ci, paper, expected):
    assert tables.verdict(mean, ci, paper).startswith(expected)


def test_paired_sentence_renders_the_paired_difference():
    rows = pd.DataFrame({"variant": ["a", "a", "b", "b"], "list": ["generated"] * 4, "seed": [0, 1, 0, 1],
                         "HR@5": [0.3, 0.5, 0.1, 0.1]})
    # differences 0.2 and 0.4: mean 0.3, CI = t(0.975, 1) x std / sqrt(2) = 12.706 x 0.1414 / 1.414 = 1.2706
    line = tables.paired_sentence(rows, "HR@5", "a", "b", paper=-0.01)
    assert line == "- a minus b, HR@5: +0.3000 ± 1.2706 (paper: -0.0100): not separated (the CI contains 0; mean above 0)."


def test_stopping_summary_by_hand():
    curves = pd.DataFrame({"variant": ["a"] * 5 + ["b"] * 4, "seed": [0] * 9,
                           "epoch": [1, 2, 3, 4, 5, 1, 2, 3, 4],
                           "valid_loss": [3.0, 2.0, 1.9, 1.8, 1.7, 3.0, 2.0, 2.1, 2.2],
                           "stopped_early": [False] * 5 + [True] * 4})       # as the trainer recorded it
    table = tables.stopping_summary(curves, cap=5)
    assert table.loc[("a", 0)].tolist() == [5, 5, "the 5-epoch cap"]     # still improving at the cap
    assert table.loc[("b", 0)].tolist() == [4, 2, "early stopping"]      # two epochs without improvement


def test_loss_sweep_merges_the_iqr_and_names_the_knob(monkeypatch):
    """Notebook 05's per-seed loss sweep (Study.loss_sweep), on stub grids."""
    study = Study("smoke", (0, 1), "unused")
    def fake_grid(grid, references=True):
        assert not references
        assert list(grid) == ["tau=0.5", "tau=2"]          # studies.loss_grid's names
        rows = []
        for name in grid:
            for s in study.seeds:
                hr = (0.1 if name == "tau=0.5" else 0.3) + 0.01 * s
                rows += [{"variant": name, "seed": s, "list": "generated", "HR@5": 0.0},
                         {"variant": name, "seed": s, "list": "ranked", "HR@5": hr}]
        return pd.DataFrame(rows)

    class FakeConsistency:
        summary = pd.DataFrame({"variant": ["tau=0.5", "tau=0.5", "tau=2", "tau=2"], "seed": [0, 1, 0, 1],
                                "IQR": [4.0, 6.0, 9.0, 8.0], "median": 0.0, "mean": 0.0})

    monkeypatch.setattr(study, "grid", fake_grid)
    monkeypatch.setattr(study, "consistency", lambda grid: FakeConsistency)
    rows = study.loss_sweep("tau", (0.5, 2.0))
    assert set(rows.list) == {tables.SERVED}           # the ranked list is the one served
    assert rows.set_index(["tau", "seed"])["IQR"].to_dict() == {(0.5, 0): 4.0, (0.5, 1): 6.0,
                                                                (2.0, 0): 9.0, (2.0, 1): 8.0}
    # paired by seed: HR@5 differences 0.2 and 0.2 -> mean 0.2, CI 0; IQR differences 5, 2 -> mean 3.5
    mean, ci = tables.paired_difference(rows, "HR@5", ("tau=2", "served"), ("tau=0.5", "served"))
    assert mean == pytest.approx(0.2) and ci == pytest.approx(0.0, abs=1e-12)
    assert tables.paired_difference(rows, "IQR", ("tau=2", "served"), ("tau=0.5", "served"))[0] == 3.5
    table = tables.mean_ci_columns(rows, "tau", ["HR@5", "IQR"], list_name="served")
    assert table["IQR_mean"].tolist() == [5.0, 8.5]


def test_tally_says_and_paired_verdict_by_hand():
    lines = ["- a minus b, HR@5: +0.1 ± 0.2: not separated (the CI contains 0; mean above 0).",
             "- c minus b, HR@5: +0.3 ± 0.1 (paper: +0.0100): reproduced (the paper's sign, the CI excludes 0).",
             "- d minus b, HR@5: +0.0 ± 0.1: not separated (the CI contains 0; mean above 0)."]
    assert tables.tally(lines) == "2 not separated, 1 reproduced"
    words = ("beats", "loses to", "ties")
    assert tables.says("reproduced (...)", *words) == "beats" and tables.says("below 0 (...)", *words) == "loses to"
    assert tables.says("not separated (...)", *words) == "ties"
    rows = pd.DataFrame({"variant": ["a", "a", "b", "b"], "list": ["generated"] * 4, "seed": [0, 1, 0, 1],
                         "HR@5": [0.3, 0.31, 0.1, 0.1]})
    assert tables.paired_verdict(rows, "HR@5", "a", "b", paper=-0.1).startswith("opposite")


def test_capped_runs_sentence_by_hand():
    stopping = pd.DataFrame({"epochs": [12, 30], "best epoch": [9, 30], "ended by": ["early stopping", "the 30-epoch cap"]},
                            index=pd.MultiIndex.from_tuples([("a", 0), ("b", 2)], names=["variant", "seed"]))
    line = tables.capped_runs_sentence(stopping, 30)
    assert line.startswith("- 1 of 2 runs reached the 30-epoch cap: b (seed 2);") and "provisional" in line
    assert tables.capped_runs_sentence(stopping.iloc[:1], 30) == "- All 1 runs ended by early stopping before the 30-epoch cap."


def test_parse_mean_ci_reads_back_what_the_tables_write():
    """The one reader of "mean ± ci" cells (the README's renderer and compare_results call it):
    each shape the tables write, by hand, and anything else refused rather than misread."""
    from oneranker.tables import parse_mean_ci

    assert parse_mean_ci("0.1234 ± 0.0056") == (0.1234, 0.0056)
    assert parse_mean_ci("+0.0042 ± 0.0061") == (0.0042, 0.0061)
    assert parse_mean_ci("-0.0100 ± 0.0020") == (-0.01, 0.002)
    assert parse_mean_ci("+1.2% ± 0.3%") == (1.2, 0.3)             # percents stay percents
    assert parse_mean_ci(" 82.2% ± 0.7% ") == (82.2, 0.7)
    for bad in ("0.12", "0.1 ± ", "1.2% ± 0.3", "a ± b", "0.1 ± 0.2 ± 0.3", ""):
        with pytest.raises(ValueError, match="not a 'mean ± ci' cell"):
            parse_mean_ci(bad)
