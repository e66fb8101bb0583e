"""Notebook 05's per-seed loss sweep (experiments.loss_sweep_by_seed), checked by hand on stub grids."""

import pandas as pd
import pytest

from oneranker import experiments


def test_loss_sweep_by_seed_merges_the_iqr_and_names_the_knob(monkeypatch):
    def fake_grid(profile, grid, seeds, cache_dir, device="auto"):
        assert list(grid) == ["tau=0.5", "tau=2"]          # studies.loss_grid's names
        rows = []
        for name in grid:
            for s in seeds:
                hr = (0.1 if name == "tau=0.5" else 0.3) + 0.01 * s
                rows += [{"variant": name, "seed": s, "list": "generated", "HR@5": 0.0},
                         {"variant": name, "seed": s, "list": "ranked", "HR@5": hr}]
        return pd.DataFrame(rows)

    class FakeConsistency:
        summary = pd.DataFrame({"variant": ["tau=0.5", "tau=0.5", "tau=2", "tau=2"], "seed": [0, 1, 0, 1],
                                "IQR": [4.0, 6.0, 9.0, 8.0], "median": 0.0, "mean": 0.0})

    monkeypatch.setattr(experiments, "run_grid", fake_grid)
    monkeypatch.setattr(experiments, "consistency_by_seed", lambda *a, **k: FakeConsistency)
    rows = experiments.loss_sweep_by_seed("smoke", "tau", (0.5, 2.0), (0, 1), "unused")
    assert set(rows.list) == {experiments.SERVED}           # the ranked list is the one served
    assert rows.set_index(["tau", "seed"])["IQR"].to_dict() == {(0.5, 0): 4.0, (0.5, 1): 6.0,
                                                                (2.0, 0): 9.0, (2.0, 1): 8.0}
    # paired by seed: HR@5 differences 0.2 and 0.2 -> mean 0.2, CI 0; IQR differences 5, 2 -> mean 3.5
    mean, ci = experiments.paired_difference(rows, "HR@5", ("tau=2", "served"), ("tau=0.5", "served"))
    assert mean == pytest.approx(0.2) and ci == pytest.approx(0.0, abs=1e-12)
    assert experiments.paired_difference(rows, "IQR", ("tau=2", "served"), ("tau=0.5", "served"))[0] == 3.5
    table = experiments.mean_ci_columns(rows, "tau", ["HR@5", "IQR"], list_name="served")
    assert table["IQR_mean"].tolist() == [5.0, 8.5]
