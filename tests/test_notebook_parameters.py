"""The notebooks' parameters cells name the same models as oneranker.studies, which `pretrain`
trains up front: if the two drifted, the notebooks would quietly train models in the run."""

import json
from pathlib import Path

import pytest

from oneranker import studies

ROOT = Path(__file__).resolve().parent.parent


def parameters(notebook: str) -> dict:
    """The values the notebook's cell tagged ``parameters`` assigns."""
    path = next((ROOT / "notebooks").glob(f"{notebook}_*.ipynb"))
    cells = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    values: dict = {}
    exec("".join(cells[0]["source"]), {}, values)
    return values


@pytest.mark.parametrize("notebook", sorted(studies.SEEDS))
def test_each_notebook_uses_the_seeds_pretrain_trains(notebook):
    assert tuple(parameters(notebook)["seeds"]) == studies.SEEDS[notebook]


def test_the_sweeps_of_the_parameters_cells_are_the_studies():
    assert tuple(parameters("03")["fake_sweep"]) == studies.FAKE_ITEM_SWEEP
    p05 = parameters("05")
    assert tuple(p05["tau_sweep"]) == studies.TAU_SWEEP and tuple(p05["gamma_sweep"]) == studies.GAMMA_SWEEP
    assert tuple(parameters("06")["corr_sweep"]) == studies.CORR_SWEEP
    assert parameters("04")["train_overrides"] == {}
