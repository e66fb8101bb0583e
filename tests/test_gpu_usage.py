"""The nvidia-smi sampler behind make paper's run record and the throughput benchmark, and the
run record's per-notebook entries: checked against a fake nvidia-smi on any machine."""

import json
import os
import stat
import time
from pathlib import Path

import pytest

from oneranker import reproduce
from oneranker.gpu_usage import GpuSampler, parse_line
from oneranker.study import PHASE_LOG_ENV

# Two GPUs; each sample prints one line per GPU: (50%, 1000 MiB) and (70%, 3000 MiB).
FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-gpu=index) printf '0\\n1\\n' ;;
  *) echo "a warning line"; while true; do printf '0, 50, 1000\\n1, 70, 3000\\n'; sleep 0.02; done ;;
esac
"""


@pytest.fixture
def fake_smi(tmp_path):
    path = tmp_path / "nvidia-smi"
    path.write_text(FAKE_SMI)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_lines_are_parsed_or_skipped():
    assert parse_line("0, 37, 81920\n") == (0, 37.0, 81920.0)
    assert parse_line("1, [N/A], 120") == (1, None, 120.0)       # e.g. a MIG slice's utilisation
    assert parse_line("No devices were found") is None


def test_lines_are_grouped_by_gpu_even_when_one_is_missing():
    """A sample is one line per GPU: a GPU's line that did not come (or said [N/A]) must not
    shift the next sample's lines into this one."""
    gpu = GpuSampler.__new__(GpuSampler)
    gpu._gpus = 2
    pending: dict = {}
    lines = ["0, 50, 1000", "1, [N/A], 3000",     # one sample, GPU 1 without utilisation
             "0, 40, 1000",                         # GPU 1's line lost: cut short by ...
             "0, 60, 2000", "1, 80, 4000"]          # ... the next sample's GPU 0
    samples = [s for s in (gpu._add_line(parse_line(line), pending) for line in lines) if s is not None]
    assert [(s.utilisation, s.memory_mib) for s in samples] == [(50.0, 4000.0), (40.0, 1000.0), (70.0, 6000.0)]


def test_a_sample_is_the_gpus_mean_utilisation_and_summed_memory(fake_smi):
    with GpuSampler(every_ms=20, command=fake_smi) as gpu:
        t0 = time.time()
        deadline = t0 + 20
        while len(gpu.samples) < 5 and time.time() < deadline:
            time.sleep(0.02)
        summary = gpu.summary(t0 - 1, time.time())
    assert gpu.proc is None                      # closed: nvidia-smi is not left running
    assert summary is not None and summary["gpu_samples"] >= 5
    assert summary["gpu_busy_percent"] == 60.0 and summary["gpu_memory_peak_mib"] == 4000.0
    assert gpu.summary(0.0, 1.0) is None         # a window without samples says so


def test_without_nvidia_smi_nothing_is_sampled(tmp_path):
    gpu = GpuSampler(command=str(tmp_path / "missing-nvidia-smi"))
    assert not gpu.active and gpu.summary(0.0, time.time()) is None
    with pytest.raises(ValueError, match="every_ms"):
        GpuSampler(every_ms=0)


def test_a_run_record_entry_names_its_code_and_keeps_the_other_notebooks(tmp_path, monkeypatch):
    """Across sittings each notebook's entry keeps its own code version, so a series assembled
    from several runs shows whether it is one code version."""
    from oneranker.cache import MODEL_CODE, code_version

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    log = tmp_path / "results" / "paper" / "run_record.json"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"runs": [{"notebook": "01_data_prep.ipynb", "seconds": 74.0, "model_code": "old"},
                                        {"notebook": "02_task_token_mask.ipynb", "seconds": 350.0}]}))
    entry = {"notebook": "02_task_token_mask.ipynb", "seconds": 94.0, **reproduce.provenance()}
    reproduce._write_run_record("paper", 0, [0, 1, 2], "cuda", [entry])
    record = json.loads(log.read_text())
    assert [r["notebook"] for r in record["runs"]] == ["01_data_prep.ipynb", "02_task_token_mask.ipynb"]
    assert record["runs"][1]["seconds"] == 94.0 and record["runs"][1]["model_code"] == code_version(MODEL_CODE)
    assert {"commit", "uncommitted_changes", "machine", "gpu", "torch", "mps"} <= set(record["runs"][1])
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    assert reproduce.provenance()["mps"] is False
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "pipe"))   # what pool.mps sets for its clients
    assert reproduce.provenance()["mps"] is True
    assert reproduce.code_versions(record) == {"old", code_version(MODEL_CODE)}


def test_a_copied_tree_names_its_commit_and_the_record_says_changes_are_unknown(tmp_path, monkeypatch):
    """ONERANKER_COMMIT: a tree copied beside git data that is not its own (the lent GPU machines)
    records the commit it was copied from; git's own answer would name an older one."""
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)   # no repository here
    monkeypatch.delenv(reproduce.COMMIT_ENV, raising=False)
    assert {k: reproduce.provenance()[k] for k in ("commit", "uncommitted_changes")} == \
        {"commit": None, "uncommitted_changes": None}
    monkeypatch.setenv(reproduce.COMMIT_ENV, "abc1234")
    assert {k: reproduce.provenance()[k] for k in ("commit", "uncommitted_changes")} == \
        {"commit": "abc1234", "uncommitted_changes": None}


def test_each_phase_gets_the_gpu_busy_share_of_its_own_window(tmp_path):
    """reproduce.read_phases: a notebook's logged phases (Study._phase) with the mean of the
    samples inside each phase's window, hand-computed; without a sampler, no share."""
    from oneranker.gpu_usage import Sample

    log = tmp_path / "phases.jsonl"
    log.write_text(json.dumps({"phase": "worlds simulated", "items": 3, "started": 100.0, "ended": 110.0,
                               "seconds": 10.0}) + "\n"
                   + json.dumps({"phase": "models trained", "items": 9, "started": 110.0, "ended": 130.0,
                                 "seconds": 20.0}) + "\n")
    gpu = GpuSampler(command=str(tmp_path / "missing-nvidia-smi"))
    gpu.samples += [Sample(104.0, 0.0, 1.0), Sample(108.0, 10.0, 1.0), Sample(115.0, 90.0, 5.0),
                    Sample(125.0, 70.0, 5.0), Sample(140.0, 0.0, 1.0)]
    assert reproduce.read_phases(log, gpu) == [
        {"phase": "worlds simulated", "items": 3, "seconds": 10.0, "gpu_busy_percent": 5.0},
        {"phase": "models trained", "items": 9, "seconds": 20.0, "gpu_busy_percent": 80.0}]
    assert [p["gpu_busy_percent"] for p in reproduce.read_phases(log, None)] == [None, None]


def _tiny_notebook(path: Path, code: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)
    return path


def test_a_notebooks_kernel_logs_its_phases_into_its_run_record_entry(tmp_path, monkeypatch):
    """End to end through papermill: the kernel inherits the phase log that reproduce names for
    the notebook, a study's phase there lands in the entry, and no temporary file is left."""
    import nbformat

    path = _tiny_notebook(tmp_path / "09_phases.ipynb",
                          "from oneranker.study import Study\n"
                          "study = Study(profile, (0,), device='cpu')\n"
                          "with study._phase('models trained') as phase:\n"
                          "    phase['items'] = 2\n"
                          "from oneranker.parallel import progress\n"
                          "sum(progress(range(3), desc='a bar'))")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.delenv(PHASE_LOG_ENV, raising=False)
    out = tmp_path / "out"
    entry = reproduce._run_one(path, 1, 1, {"profile": "smoke", "seed": 0}, out, None)
    assert [(p["phase"], p["items"], p["gpu_busy_percent"]) for p in entry["phases"]] == [("models trained", 2, None)]
    from oneranker.config import make_config
    assert entry["profile_config"] == make_config("smoke").hash()   # the defaults its models trained under
    assert sorted(f.name for f in out.iterdir()) == ["09_phases.ipynb"]
    assert PHASE_LOG_ENV not in os.environ
    # the bar was left out: the saved cell holds the phase line and the result, no widget frame
    outputs = nbformat.read(out / "09_phases.ipynb", as_version=4).cells[-1].outputs
    assert [o.output_type for o in outputs] == ["stream", "execute_result"]
    assert outputs[0].text.startswith("models trained: 2 in")


def test_a_failing_notebook_leaves_no_file_and_no_environment_behind(tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    path = _tiny_notebook(tmp_path / "09_fails.ipynb", "raise RuntimeError('cell fails')")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.delenv(PHASE_LOG_ENV, raising=False)
    out = tmp_path / "out"
    with pytest.raises(PapermillExecutionError, match="cell fails"):
        reproduce._run_one(path, 1, 1, {"profile": "smoke", "seed": 0}, out, None)
    assert list(out.iterdir()) == [] and PHASE_LOG_ENV not in os.environ


def test_headless_kernels_set_their_environment_and_restore_it(monkeypatch):
    from oneranker.parallel import PROGRESS_BARS_ENV

    monkeypatch.delenv(PROGRESS_BARS_ENV, raising=False)
    monkeypatch.delenv(PHASE_LOG_ENV, raising=False)
    monkeypatch.setenv("ONERANKER_ML100K", "/mine")
    with reproduce.headless_kernels({"ONERANKER_ML100K": None, PHASE_LOG_ENV: "/tmp/log"}):
        assert (os.environ[PROGRESS_BARS_ENV], os.environ["ONERANKER_ML100K"], os.environ[PHASE_LOG_ENV]) == \
            ("0", "/mine", "/tmp/log")
    assert PROGRESS_BARS_ENV not in os.environ and PHASE_LOG_ENV not in os.environ
    assert os.environ["ONERANKER_ML100K"] == "/mine"
    with pytest.raises(KeyError), reproduce.headless_kernels({"ONERANKER_ML100K": "/theirs"}):
        raise KeyError("restored after an error too")
    assert os.environ["ONERANKER_ML100K"] == "/mine" and PROGRESS_BARS_ENV not in os.environ


def test_each_notebooks_entry_is_saved_when_it_ends_and_the_pretraining_has_its_own(tmp_path, monkeypatch):
    """A series cut short by a failing notebook keeps the entries of those that ran; the
    pretraining of the whole series is an entry of its own, kept by later partial runs."""
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    jobs = iter([9, 0])                      # the first pretraining trains 9 jobs, a rerun none
    monkeypatch.setattr("oneranker.pool.train_notebook_models", lambda *a, **k: (69, next(jobs)))
    ok = _tiny_notebook(tmp_path / "01_ok.ipynb", "1 + 1")
    bad = _tiny_notebook(tmp_path / "02_bad.ipynb", "raise RuntimeError('cut short')")
    with pytest.raises(PapermillExecutionError):
        reproduce.run_notebooks("paper", [str(ok), str(bad)], device="cpu", pretrain=True)
    log = tmp_path / "results" / "paper" / "run_record.json"
    record = json.loads(log.read_text())
    assert [r["notebook"] for r in record["runs"]] == ["01_ok.ipynb"]
    assert (record["pretrain"]["configs"], record["pretrain"]["jobs_trained"]) == (69, 9)
    assert reproduce.code_versions(record) == {record["pretrain"]["model_code"]}
    reproduce.run_notebooks("paper", [str(ok)], device="cpu")          # a later sitting, no pretraining
    reproduce.run_notebooks("paper", [str(ok)], device="cpu", pretrain=True)   # a rerun: nothing to train
    assert json.loads(log.read_text())["pretrain"] == record["pretrain"]
    stale = {**record, "pretrain": {**record["pretrain"], "model_code": "older"}}
    assert reproduce.code_versions(stale) == {"older", record["pretrain"]["model_code"]}


def test_a_results_only_run_keeps_no_notebook_table_or_record_and_takes_one_seed(tmp_path, monkeypatch):
    """reproduce --results-only (a first sitting that only fills the cache's results): one seed
    is accepted there and nowhere else, the notebook runs (its study phases are returned), and
    nothing of it is kept: no executed notebook, no run record, its tables in scratch/."""
    from oneranker.outputs import OUTPUTS_ENV

    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.delenv(OUTPUTS_ENV, raising=False)
    path = _tiny_notebook(tmp_path / "09_results.ipynb",
                          "import os\n"
                          "from oneranker.outputs import OUTPUTS_ENV\n"
                          "assert OUTPUTS_ENV not in os.environ   # tables and figures go to scratch/\n"
                          "from oneranker.study import Study\n"
                          "study = Study(profile, (0,), device='cpu')\n"
                          "with study._phase('models evaluated') as phase:\n"
                          "    phase['items'] = 1")
    before = sorted(p.name for p in tmp_path.iterdir())
    entries = reproduce.run_notebooks("smoke", [str(path)], device="cpu", seeds=[0], results_only=True)
    assert [(e["notebook"], [(p["phase"], p["items"]) for p in e["phases"]]) for e in entries] == \
        [("09_results.ipynb", [("models evaluated", 1)])]
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # no results/, no notebook written
    with pytest.raises(ValueError, match=r"seeds=\[0\]: give at least 2 .*--results-only takes one"):
        reproduce.run_notebooks("smoke", [str(path)], device="cpu", seeds=[0])
    with pytest.raises(ValueError, match=r"seeds=\[1, 1\]: give at least 1 distinct"):
        reproduce.check_seeds([1, 1], results_only=True)
    reproduce.check_seeds([3], results_only=True)
    reproduce.check_seeds(None)
