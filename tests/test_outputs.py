"""A learner's run writes to scratch/; only make reproduce writes the committed figures and tables."""

import pandas as pd
import pytest

from oneranker import outputs, tables


def test_runs_write_to_scratch_unless_reproduce_asks(tmp_path, monkeypatch):
    monkeypatch.delenv(outputs.OUTPUTS_ENV, raising=False)
    frame = pd.DataFrame({"a": [1]})
    assert tables.save_table(frame, "quick", "t", root=tmp_path) == tmp_path / "scratch" / "results" / "quick" / "t.csv"
    with outputs.writing_committed_outputs():
        assert tables.save_table(frame, "quick", "t", root=tmp_path) == tmp_path / "results" / "quick" / "t.csv"
    assert outputs.output_dir("figures", "paper", tmp_path) == tmp_path / "scratch" / "figures" / "paper"
    with pytest.raises(ValueError, match="output kind"):
        outputs.output_dir("models", "quick")


def test_the_committed_switch_is_restored_after_the_block(monkeypatch):
    monkeypatch.setenv(outputs.OUTPUTS_ENV, "something else")
    with outputs.writing_committed_outputs():
        assert outputs.output_dir("results", "quick").parts[:2] == ("..", "results")
    assert outputs.output_dir("results", "quick").parts[:2] == ("..", "scratch")
