"""Studies: parallel training gives the models of sequential training; grids, sweeps and the
analyses of one mechanism on tiny models; the truth sets a study keeps."""

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import PROFILE, TINY, InProcessPool, pretend_cuda_training, tiny_config
import oneranker.study as study_module
from oneranker import evaluate, pool, reference
from oneranker.baselines import CASCADE_RANKER, GPR, Cascade
from oneranker.cache import model_folder
from oneranker.config import make_config
from oneranker.data import cached_prepared
from oneranker.study import PHASE_LOG_ENV, Study, phase_line
from oneranker.train import train_or_load
from oneranker.world import World


def _study(tmp_path, seeds=(0,), eval_requests=20):
    return Study(PROFILE, seeds, tmp_path, device="cpu", eval_requests=eval_requests, workers=2)


def test_models_do_not_depend_on_the_number_of_workers(tmp_path):
    cfgs = [tiny_config(seed=0), tiny_config(seed=0, **{"model.use_ranker": False})]
    pool.train_all(cfgs, tmp_path / "two", device="cpu", workers=2)
    pool.train_all(cfgs, tmp_path / "one", device="cpu", workers=1)
    for cfg in cfgs:
        a = torch.load(model_folder(cfg, tmp_path / "two") / "final.pt", weights_only=True)["model"]
        b = torch.load(model_folder(cfg, tmp_path / "one") / "final.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_stack_is_one_job_of_the_pool_and_caches_every_mate(tmp_path, monkeypatch):
    """Configs of one stack (train.stack_seeds) are trained by one job, which caches them all:
    the same models as the stack trained through train_or_load."""
    stacked = {"train.stack_seeds": (0, 1), "train.epochs": 1}
    cfgs = [tiny_config(seed=s, **stacked) for s in (0, 1)] + [tiny_config(seed=0, **{"model.use_ranker": False})]
    jobs = []
    real = pool._train_in_worker
    monkeypatch.setattr(pool, "process_pool", lambda workers: InProcessPool())
    monkeypatch.setattr(pool.torch, "set_num_threads", lambda n: None)   # in this process: leave its threads
    monkeypatch.setattr(pool, "_train_in_worker", lambda d, *a: jobs.append(d["seed"]) or real(d, *a))
    pool.train_all(cfgs, tmp_path / "pool", device="cpu", workers=2)
    assert sorted(jobs) == [0, 0]                  # the stack once (by its first config), the lone model once
    for cfg in cfgs:
        assert (model_folder(cfg, tmp_path / "pool") / "final.pt").exists()
    direct, _ = train_or_load(cfgs[1], cached_prepared(cfgs[1], tmp_path / "direct", progress=False),
                              tmp_path / "direct", device="cpu", progress=False)
    a = torch.load(model_folder(cfgs[1], tmp_path / "pool") / "final.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], v) for k, v in direct.state_dict().items())


def test_gpu_training_processes_share_out_the_cores_and_the_memory(monkeypatch):
    """Hand-computed: 16 cores among 8 GPU training processes is 2 threads each, among 3 is 5,
    and a process never gets fewer than one; 8 processes on a 141 GB GPU, 6 on an 80 GB one,
    1 on a small one, the environment overriding; 4 single-threaded ones on a CPU."""
    from types import SimpleNamespace

    monkeypatch.setattr(pool.os, "cpu_count", lambda: 16)
    assert [pool.gpu_worker_threads(n) for n in (8, 3, 1, 32, 0)] == [2, 5, 16, 1, 16]
    monkeypatch.delenv(pool.GPU_WORKERS_ENV, raising=False)
    workers = []
    for gb in (141, 80, 8):
        monkeypatch.setattr(pool.torch.cuda, "get_device_properties", lambda d, gb=gb: SimpleNamespace(total_memory=gb * 2**30))
        workers.append(pool.default_workers(torch.device("cuda")))
    assert workers == [8, 6, 1]
    # a stack of 3 models counts for 6 lone ones (24 GiB a model, measured): 141 // 72 = 1, 80 // 72 = 1
    stacks = []
    for gb in (141, 80):
        monkeypatch.setattr(pool.torch.cuda, "get_device_properties", lambda d, gb=gb: SimpleNamespace(total_memory=gb * 2**30))
        stacks.append(pool.default_workers(torch.device("cuda"), models_per_worker=3))
    assert stacks == [1, 1]
    monkeypatch.setenv(pool.GPU_WORKERS_ENV, "3")
    assert pool.default_workers(torch.device("cuda")) == 3
    assert pool.default_workers(torch.device("cpu")) == 4


def test_a_gpu_steps_cpu_work_does_not_depend_on_the_thread_count(tiny_prepared):
    """What a GPU training process computes on its CPU (the collated batch and the step's seeded
    draws) is the same with 1 and with 3 intra-op threads: sharing the cores out among the
    pool's processes (pool.gpu_worker_threads) changes no model."""
    from oneranker.losses import draw_loss_samples
    from oneranker.train import Trainer

    trainer = Trainer(tiny_config(), tiny_prepared, device="cpu", progress=False)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            host = trainer.host_batch("train", trainer.epoch_batches(0)[1])
            draws = draw_loss_samples(trainer.model, host, trainer.tc, torch.Generator().manual_seed(7), host)
            out.append((host, draws))
    finally:
        torch.set_num_threads(before)
    (h1, d1), (h3, d3) = out
    assert h1.keys() == h3.keys() and all(torch.equal(h1[k], h3[k]) for k in h1)
    assert all(torch.equal(a, b) for a, b in zip(d1.value_targets, d3.value_targets))
    assert torch.equal(d1.negatives, d3.negatives)


def test_worlds_simulated_in_parallel_equal_those_built_in_process(tmp_path):
    cfgs = [tiny_config(seed=0), tiny_config(seed=1)]
    pool.prepare_all(cfgs, tmp_path / "pool", workers=2)
    for cfg in cfgs:
        a = cached_prepared(cfg, tmp_path / "pool")
        b = cached_prepared(cfg, tmp_path / "here")
        for split in ("train", "test"):
            assert a.requests[split].to_dict() == b.requests[split].to_dict()


def test_a_study_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        Study(PROFILE, ())


def test_grid_runs_references_and_a_cascade(tmp_path, capsys):
    variants = {"GPR-style": {**TINY, **GPR},
                "cascade": Cascade(generator={**TINY, **GPR}, ranker={**TINY, **CASCADE_RANKER})}
    study = _study(tmp_path)
    res = study.grid(variants)
    # each phase that did work is timed and printed: one world, two models (the cascade's
    # generator is the GPR-style model), two (variant, seed) evaluations
    assert [(t["phase"], t["items"]) for t in study.timings] == [
        ("worlds simulated", 1), ("models trained", 2), ("models evaluated", 2)]
    assert all(t["seconds"] >= 0 for t in study.timings)
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        "worlds simulated", "models trained", "models evaluated"]
    assert set(map(tuple, res[["variant", "list"]].values.tolist())) == {
        *((r, "generated") for r in reference.REFERENCES),
        ("GPR-style", "generated"), ("cascade", "generated"), ("cascade", "ranked")}
    # the cascade generates with the very GPR-style model: same candidates, same metrics
    gen = res[res.list == "generated"].set_index("variant")
    assert gen.loc["cascade", "HR@15"] == gen.loc["GPR-style", "HR@15"]
    assert len(list((tmp_path / "models").iterdir())) == 2      # GPR-style shared, plus the ranker
    # one world: every row is scored on the same dataset
    assert res["data"].nunique() == 1
    again = _study(tmp_path)
    bare = again.grid({"GPR-style": variants["GPR-style"]}, references=False)
    assert bare.variant.tolist() == ["GPR-style"]
    # everything else was cached, the model's scored lists too (the cache's results)
    assert [(t["phase"], t["items"]) for t in again.timings] == [("models evaluated", 1),
                                                                ("results reused from the cache", 1)]


def test_world_sweep_consistency_and_loss_terms_on_tiny_models(tmp_path):
    variants = {"full": dict(TINY), "no DC": {**TINY, "train.gamma": 0.0}}
    study = _study(tmp_path)
    res = study.world_sweep(variants, "world.interest_value_corr", [-0.5, 0.5])
    assert sorted(res["world.interest_value_corr"].unique()) == [-0.5, 0.5]
    assert set(res.variant) == {"full", "no DC", *reference.REFERENCES}
    assert {"gmv", "cost"} <= set(res.columns)
    assert res.groupby("world.interest_value_corr")["data"].nunique().tolist() == [1, 1]   # a world per value
    # the value oracle serves the highest true eCPM: no list of the same length costs advertisers more
    for _, group in res.groupby("world.interest_value_corr"):
        assert group.loc[group.variant == reference.VALUE_ORACLE, "cost"].item() >= group["cost"].max() - 1e-12
    terms = study.validation_loss_terms(variants, reference=TINY, n_requests=30)
    assert terms.variant.tolist() == ["full", "no DC"]
    assert (terms[["mtp", "rank", "dc"]] > 0).all().all()       # L_DC scored for the gamma = 0 model too
    # measured under the same objective, the full model's total is the weighted sum of its terms
    tc = tiny_config().train
    full = terms.set_index("variant").loc["full"]
    assert full["total"] == pytest.approx(tc.alpha * full["mtp"] + tc.beta * full["rank"] + tc.gamma * full["dc"])
    c = study.consistency(variants)
    assert set(c.summary.variant) == {"full", "no DC"} and (c.summary["IQR"] >= 0).all()
    n = tiny_config().train.n_candidates
    assert len(c.overlap) == 2 * n and c.overlap["overlap"].between(0, 1).all()
    assert c.differences["full"].shape == (20 * n,)
    aucs = study.ranker_auc({"full": variants["full"], "cascade": Cascade(ranker={**TINY, **CASCADE_RANKER})},
                            n_requests=50)
    assert aucs.variant.tolist() == ["full", "cascade"] and aucs["impressions"].nunique() == 1


def test_the_kept_weights_give_the_early_stopping_loss_again(tmp_path):
    """train.mean_loss_terms on the cached (best-epoch) model, seeded as the trainer seeds its
    validation, gives the loss early stopping read at that epoch: the kept weights are the best
    epoch's, and the number is reproducible from the cache (Study.validation_loss_terms calls
    the same function under another seed and the reference objective)."""
    from oneranker.data import Collator
    from oneranker.runtime import step_seed
    from oneranker.train import mean_loss_terms

    cfg = tiny_config()
    prepared = cached_prepared(cfg, tmp_path)
    model, history = train_or_load(cfg, prepared, tmp_path, device="cpu", progress=False)
    n = min(len(prepared.requests["valid"]), cfg.train.eval_requests)
    terms = mean_loss_terms(model, prepared, cfg.train, n, step_seed(cfg.seed, 4), torch.device("cpu"),
                            Collator(prepared, cfg.data.max_history_len))
    assert terms["total"] == pytest.approx(history.best_valid, rel=1e-6)


def test_head_overlap_of_a_tiny_model(tmp_path):
    out = _study(tmp_path).head_overlap(TINY, k=5)
    heads = ["head: click", "head: conversion", "head: impression", "head: value"]
    assert sorted(out.pair) == sorted(f"{a} / {b}" for a, b in itertools.combinations(heads, 2))
    assert out.overlap.between(0, 1).all() and (out.seed == 0).all()


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
    by_seed = _study(tmp_path).centroid_alignment({**TINY, "model.use_ranker": False})
    assert by_seed.seed.tolist() == [0]
    assert by_seed["interest_rho"].item() == pytest.approx(float(np.nanmean(out["interest_rho"])))
    no_fake = tiny_config(**{"model.use_ranker": False, "model.use_fake_items": False})
    model2, _ = train_or_load(no_fake, prepared, tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="Fake Item Tokens"):
        evaluate.centroid_alignment(model2, no_fake, prepared, ts)


def test_a_study_scores_each_datasets_references_once_and_rows_stay_its_own(tmp_path, monkeypatch):
    """Two grids on one dataset: the reference lists are built and scored once, both grids get
    the same rows, and a grid that edits its frame cannot change the next grid's rows."""
    import oneranker.study as study_module

    calls = []
    real = study_module.reference_lists
    monkeypatch.setattr(study_module, "reference_lists", lambda *a: calls.append(a) or real(*a))
    study = _study(tmp_path)
    variants = {"GPR-style": {**TINY, **GPR}}
    first = study.grid(variants)
    first.loc[first.variant == "popularity", "HR@5"] = -1.0
    second = study.grid(variants)
    assert len(calls) == 1
    refs = lambda res: res[res.variant.isin(reference.REFERENCES)].reset_index(drop=True)  # noqa: E731
    assert (refs(second)["HR@5"] >= 0).all()
    fresh = _study(tmp_path).grid(variants)
    pd.testing.assert_frame_equal(refs(second), refs(fresh))


def test_a_study_keeps_its_truth_sets_and_they_are_the_truth_sets(tmp_path):
    study = _study(tmp_path)
    study.truths_kept_gib = 0.0                                     # room for the last one only
    cfg = tiny_config(seed=0)
    prepared = cached_prepared(cfg, tmp_path)
    a = study.truth_set(cfg, prepared)
    b = evaluate.truth_set(World(cfg.world, cfg.seed), prepared, n_requests=20)
    np.testing.assert_array_equal(a.indices, b.indices)
    for field in ("pctr", "pcvr", "bid", "price"):
        np.testing.assert_array_equal(getattr(a.truth, field), getattr(b.truth, field))
    assert study.truth_set(cfg, prepared) is a
    other = tiny_config(seed=1)
    study.truth_set(other, cached_prepared(other, tmp_path))
    assert study.truth_set(cfg, prepared) is not a                 # only the most recent one was kept
    assert _study(tmp_path).truth_set(cfg, prepared) is not a      # each study keeps its own
    study.truths_kept_gib = 1.0                                     # room for both
    a = study.truth_set(cfg, prepared)
    assert study.truth_set(other, cached_prepared(other, tmp_path)) is not a and study.truth_set(cfg, prepared) is a


def test_a_truth_sets_held_bytes_count_a_broadcast_row_once():
    """study.held_bytes, by hand: 3 requests x 5 ads of float64 pCTR and pCVR (120 bytes each),
    the bid and price broadcast from one row of 5 (40 bytes each), 3 int64 indices (24 bytes)."""
    from oneranker.study import held_bytes
    from oneranker.world import Truth

    row = np.arange(5.0)
    ts = evaluate.TruthSet(indices=np.arange(3), truth=Truth(pctr=np.zeros((3, 5)), pcvr=np.ones((3, 5)),
                                                              bid=np.broadcast_to(row, (3, 5)),
                                                              price=np.broadcast_to(row, (3, 5))))
    assert held_bytes(ts) == 24 + 120 + 120 + 40 + 40


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


def test_the_headroom_table_in_processes_equals_each_world_measured_here():
    """Ten worlds in notebook 01 took seven minutes of one core at paper scale; the table now
    simulates them in worker processes, and must give each (setting, seed) row as if measured
    in this process, in the order asked for."""
    settings = {"default": {}, "affinity 4": {"world.affinity_weight": 4.0}}
    table = reference.headroom_table(settings, "smoke", [1, 0], workers=2)
    assert list(zip(table["setting"], table["seed"])) == [("default", 1), ("default", 0), ("affinity 4", 1),
                                                           ("affinity 4", 0)]
    for row in table.to_dict("records"):
        here = reference.market_headroom(make_config("smoke", seed=row["seed"], **settings[row["setting"]]))
        assert {k: row[k] for k in here} == here


def _fake_mps_control(folder, monkeypatch):
    """A stand-in for nvidia-cuda-mps-control on PATH that logs each call: its arguments, its
    input and the pipe folder it was given."""
    log = folder / "calls.log"
    tool = folder / "nvidia-cuda-mps-control"
    tool.write_text(f'#!/bin/sh\necho "args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY input=$(cat)" >> {log}\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def test_mps_starts_a_private_daemon_and_stops_it_also_on_error(tmp_path, monkeypatch):
    """pool.mps: the daemon is started (-d) with a private pipe folder that processes started
    inside the block inherit, and told to quit when the block ends, also when it raised; the
    environment is restored and the folder removed."""
    log = _fake_mps_control(tmp_path, monkeypatch)
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    monkeypatch.setenv("CUDA_MPS_LOG_DIRECTORY", "/somewhere/else")
    with pytest.raises(RuntimeError, match="inside"):
        with pool.mps():
            pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
            assert os.path.isdir(pipe) and os.environ["CUDA_MPS_LOG_DIRECTORY"] != "/somewhere/else"
            child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['CUDA_MPS_PIPE_DIRECTORY'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
            assert child == pipe
            raise RuntimeError("inside")
    calls = log.read_text().splitlines()
    assert calls == [f"args=-d pipe={pipe} input=", f"args= pipe={pipe} input=quit"]
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ and os.environ["CUDA_MPS_LOG_DIRECTORY"] == "/somewhere/else"
    assert not os.path.exists(pipe)
    with pool.mps(enabled=False):
        assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ
    assert len(log.read_text().splitlines()) == 2
    (tmp_path / "nvidia-cuda-mps-control").write_text('#!/bin/sh\necho "no GPU here" >&2\nexit 3\n')
    with pytest.raises(RuntimeError, match="could not start the MPS daemon .exit 3.: no GPU here"):
        with pool.mps():
            raise AssertionError("the block must not run")
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_mps_is_refused_before_any_work_without_its_program_or_a_gpu(tmp_path, monkeypatch, capsys):
    from oneranker.__main__ import main

    monkeypatch.setenv("PATH", str(tmp_path))   # no nvidia-cuda-mps-control
    with pytest.raises(FileNotFoundError, match="nvidia-cuda-mps-control"):
        with pool.mps():
            raise AssertionError("the block must not run")
    notebook = str(Path(__file__).resolve().parent.parent / "notebooks" / "01_data_prep.ipynb")
    _fake_mps_control(tmp_path, monkeypatch)
    assert main(["reproduce", "--profile", "smoke", "--device", "cpu", "--mps", "--notebooks", notebook]) == 2
    assert main(["pretrain", "--profile", "smoke", "--device", "cpu", "--mps", "--cache", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("--device cpu is not one") == 2
    assert not (tmp_path / "calls.log").exists() and not (tmp_path / "models").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or shutil.which(pool.MPS_CONTROL) is None,
                    reason="needs a CUDA GPU and CUDA's MPS control program")
def test_a_process_started_under_mps_computes_through_its_server():
    """On a GPU: a CUDA process started inside pool.mps runs its kernels through the block's MPS
    server (the server's log records the client) and computes what it computes alone."""
    code = ("import torch; torch.manual_seed(0); x = torch.randn(512, 512, device='cuda'); "
            "print(float((x @ x).double().sum()))")
    alone = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    with pool.mps():
        shared = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=120).stdout
        server_log = Path(os.environ["CUDA_MPS_LOG_DIRECTORY"], "server.log").read_text()
    assert shared == alone
    assert "connected" in server_log


def test_phases_are_logged_for_the_run_record_and_an_idle_phase_is_not(tmp_path, monkeypatch):
    log = tmp_path / "phases.jsonl"
    monkeypatch.setenv(PHASE_LOG_ENV, str(log))
    study = Study(PROFILE, (0,), tmp_path, device="cpu", progress=False)
    with study._phase("models trained") as phase:
        phase["items"] = 9
    with study._phase("worlds simulated"):
        pass
    with pytest.raises(RuntimeError), study._phase("models evaluated") as phase:
        phase["items"] = 1
        raise RuntimeError("a phase that fails leaves no row")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == study.timings and [(r["phase"], r["items"]) for r in rows] == [("models trained", 9)]
    assert phase_line({**rows[0], "seconds": 61.6}) == "models trained: 9 in 62 s"
    assert phase_line({**rows[0], "seconds": 61.6, "gpu_busy_percent": 79.5}) == "models trained: 9 in 62 s, GPU busy 80%"
    # a log that cannot be written: warned about, the row still kept
    monkeypatch.setenv(PHASE_LOG_ENV, str(tmp_path / "missing" / "phases.jsonl"))
    with pytest.warns(UserWarning, match="phase log cannot be written"), study._phase("models trained") as phase:
        phase["items"] = 1
    assert len(study.timings) == 2


def test_a_runs_train_compile_replaces_the_configs_on_cuda_only_and_keeps_the_cache_key(tmp_path, monkeypatch,
                                                                                        capsys):
    """pool.as_trained: ONERANKER_TRAIN_COMPILE (reproduce/pretrain --train-compile) sets the
    train.compile of every model a run trains on CUDA, a runtime field, so the config hash (the
    model's cache key) is unchanged; on the CPU, or unset, the config is the one given. A scope
    that is no choice of the field is refused by the command line before any work, and the run
    record names the scope."""
    from oneranker import reproduce
    from oneranker.__main__ import main

    cfg = make_config("smoke", seed=0)
    monkeypatch.delenv(pool.TRAIN_COMPILE_ENV, raising=False)
    assert pool.as_trained(cfg, torch.device("cuda")) is cfg
    assert reproduce.provenance()["train_compile"] is None
    monkeypatch.setenv(pool.TRAIN_COMPILE_ENV, "blocks")
    assert pool.as_trained(cfg, torch.device("cpu")) is cfg
    compiled = pool.as_trained(cfg, torch.device("cuda"))
    assert compiled.train.compile == "blocks" and cfg.train.compile == "off"
    assert compiled.hash() == cfg.hash()
    assert reproduce.provenance()["train_compile"] is None                 # no CUDA here: it did not apply
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
        assert reproduce.provenance()["train_compile"] == "blocks"
    monkeypatch.delenv(pool.TRAIN_COMPILE_ENV)
    notebook = str(Path(__file__).resolve().parent.parent / "notebooks" / "01_data_prep.ipynb")
    assert main(["reproduce", "--profile", "smoke", "--device", "cpu", "--train-compile", "everything",
                 "--notebooks", notebook]) == 2
    assert main(["pretrain", "--profile", "smoke", "--device", "cpu", "--train-compile", "fast",
                 "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--train-compile 'everything': choose one of off, blocks, loss" in err and "'fast'" in err
    assert not (tmp_path / "models").exists() and pool.TRAIN_COMPILE_ENV not in os.environ


def _every_result(study: Study, variants: dict, rankers: dict) -> dict:
    """What notebooks 05 and 06 ask of models (grid, consistency, loss terms, ranker AUC)."""
    c = study.consistency(variants)
    return {"grid": study.grid({**variants, **rankers}), "summary": c.summary, "overlap": c.overlap,
            "differences": c.differences, "terms": study.validation_loss_terms(variants, reference=TINY, n_requests=30),
            "auc": study.ranker_auc(rankers, n_requests=50)}


def test_a_notebooks_seeds_can_train_in_two_sittings_through_the_cached_results(tmp_path):
    """A study with seeds 0 and 1 leaves each model's results in the cache. Its models and worlds
    then vanish (a sitting of the GPU machine ends); a study with seeds 0, 1 and 2 on what is left
    trains only seed 2's models, and every table equals a study that trained all three seeds."""
    variants = {"full": dict(TINY), "no DC": {**TINY, "train.gamma": 0.0}}
    rankers = {"cascade": Cascade(generator={**TINY, **GPR}, ranker={**TINY, **CASCADE_RANKER})}
    first = _every_result(_study(tmp_path / "split", seeds=(0, 1)), variants, rankers)
    assert len(first["grid"][first["grid"].variant == "full"]) == 2 * 2        # 2 seeds x (generated, ranked)
    for folder in ("models", "data"):
        shutil.rmtree(tmp_path / "split" / folder)
    later = _study(tmp_path / "split", seeds=(0, 1, 2))
    split = _every_result(later, variants, rankers)
    trained = [t["items"] for t in later.timings if t["phase"] == "models trained"]
    # seed 2's models only: full and no DC (for the consistency), then the cascade's two (the grid)
    assert trained == [2, 2]
    assert later.results_reused == 2 * (3 + 2 + 2 + 1)   # seeds 0 and 1: grid rows, consistency, loss terms, AUC
    whole = _every_result(_study(tmp_path / "whole", seeds=(0, 1, 2)), variants, rankers)
    for name in ("grid", "summary", "overlap", "terms", "auc"):       # all but the training's wall seconds
        pd.testing.assert_frame_equal(split[name].drop(columns="train_seconds", errors="ignore"),
                                      whole[name].drop(columns="train_seconds", errors="ignore"),
                                      check_exact=True, obj=name)
    for name, d in whole["differences"].items():
        np.testing.assert_array_equal(split["differences"][name], d)
    # a study that uses a model itself (its weights) never skips it: seeds 0 and 1 train again, in a pool
    user = _study(tmp_path / "split", seeds=(0, 1, 2))
    assert len(list(user.trained(variants["full"]))) == 3
    assert [(t["phase"], t["items"]) for t in user.timings if t["phase"] == "models trained"] == [("models trained", 2)]


def test_a_model_one_notebook_used_itself_is_skipped_by_another_that_asks_only_its_results(tmp_path, monkeypatch):
    """Notebook 04 uses its models themselves (their learning curves) and asks their lists; the
    sitting ends (models and worlds gone). Notebook 05, asking the same lists of them, trains
    none up front; 04 run again trains its model, since it uses it itself; and a study that does
    not say which notebook asks (a notebook run by hand) trains it too, as before."""
    from oneranker.cache import ASKER_ENV

    variants = {"full": dict(TINY)}
    monkeypatch.setenv(ASKER_ENV, "04_ranking_decoder")
    first = _study(tmp_path, seeds=(0,))
    first.learning_curves(variants["full"])
    grid = first.grid(variants, references=False)

    def bare_then(asker: str | None) -> Study:
        for folder in ("models", "data"):
            shutil.rmtree(tmp_path / folder, ignore_errors=True)
        if asker is None:
            monkeypatch.delenv(ASKER_ENV, raising=False)
        else:
            monkeypatch.setenv(ASKER_ENV, asker)
        return _study(tmp_path, seeds=(0,))

    def trained(study: Study) -> int:
        return sum(t["items"] or 0 for t in study.timings if t["phase"] == "models trained")

    later = bare_then("05_dc_loss_ablations")
    later.train([variants["full"]])
    pd.testing.assert_frame_equal(later.grid(variants, references=False), grid)
    assert trained(later) == 0 and later.results_reused == 1
    again = bare_then("04_ranking_decoder")
    again.train([variants["full"]])
    assert trained(again) == 1
    by_hand = bare_then(None)
    by_hand.train([variants["full"]])
    assert trained(by_hand) == 1


def test_answered_reads_who_used_the_model_itself_from_hand_made_records(tmp_path, monkeypatch):
    """cache.answered on hand-written records: every asked result present and no use of the model
    itself by the notebook asking now; a use recorded without a notebook binds everyone."""
    from oneranker import cache

    cfg = tiny_config(seed=0)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "lists-a.pt").write_bytes(b"")

    def answered(record: list[str], asker: str | None) -> bool:
        path = cache._asked_file(cfg, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        if asker is None:
            monkeypatch.delenv(cache.ASKER_ENV, raising=False)
        else:
            monkeypatch.setenv(cache.ASKER_ENV, asker)
        return cache.answered(cfg, tmp_path)

    assert answered(["lists-a.pt"], "05")
    assert answered(["lists-a.pt"], None)
    assert not answered(["lists-a.pt", "lists-b.pt"], "05")                       # one result missing
    assert not answered([], "05") and not answered(["the model itself (04)"], "05")   # no result asked
    assert answered(["lists-a.pt", "the model itself (04)"], "05")
    assert not answered(["lists-a.pt", "the model itself (04)"], "04")
    assert not answered(["lists-a.pt", "the model itself (04)"], None)
    assert not answered(["lists-a.pt", "the model itself"], "05")                # said by no notebook
    monkeypatch.setenv(cache.ASKER_ENV, "06")
    cache.note_asked([cfg], cache.ASKED_MODEL, tmp_path)
    assert json.loads(cache._asked_file(cfg, tmp_path).read_text()) == ["lists-a.pt", "the model itself", "the model itself (06)"]


def test_a_result_the_first_sitting_did_not_ask_trains_its_models_up_front_and_new_code_skips_nothing(
        tmp_path, monkeypatch):
    """A first study with seeds 0 1 asks only for a grid. A second, with seeds 0 1 2, skips the
    models of seeds 0 and 1 for the grid, but its consistency needs them: they train up front in
    one pool (a logged phase), never one by one in the study's process. And under other result
    code nothing that was asked before counts: every model trains."""
    import warnings

    from oneranker import cache

    variants = {"full": dict(TINY)}
    _study(tmp_path / "a", seeds=(0, 1)).grid(variants, references=False)
    for folder in ("models", "data"):
        shutil.rmtree(tmp_path / "a" / folder)
    later = _study(tmp_path / "a", seeds=(0, 1, 2))
    later.grid(variants, references=False)
    assert [t["items"] for t in later.timings if t["phase"] == "models trained"] == [1]      # seed 2
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not trained up front.*")
        later.consistency(variants)
    assert [t["items"] for t in later.timings if t["phase"] == "models trained"] == [1, 2]   # then seeds 0 and 1
    _study(tmp_path / "b", seeds=(0, 1)).grid(variants, references=False)
    shutil.rmtree(tmp_path / "b" / "models")
    version = cache.code_version
    monkeypatch.setattr(cache, "code_version",
                        lambda modules=cache.MODEL_CODE: "newcode0" if modules == cache.RESULT_CODE else version(modules))
    other = _study(tmp_path / "b", seeds=(0, 1))
    other.grid(variants, references=False)
    assert [t["items"] for t in other.timings if t["phase"] == "models trained"] == [2]
    assert other.results_reused == 0


def test_a_declared_analysis_trains_the_models_it_needs_in_the_first_pool(tmp_path):
    """Study.will_ask: a first sitting (seeds 0 1) asks a grid and a consistency; its models and
    worlds vanish. A study with seeds 0 1 2 that declares the consistency and the loss terms
    before training trains, in one pool, seed 2 and the models of seeds 0 and 1 whose loss terms
    are missing (answered for everything asked so far, they would otherwise be skipped and then
    train in a later pool of their own); the analyses then train nothing. A declaration that
    the cache already answers adds nothing; a cascade's AUC declares its ranker; an unknown
    analysis or argument is refused before any work. A declaration is bound as its analysis is
    called, defaults included, so that it asks what the later call asks."""
    variants = {"full": dict(TINY)}
    first = _study(tmp_path, seeds=(0, 1))
    first.grid(variants, references=False)
    first.consistency(variants)
    for folder in ("models", "data"):
        shutil.rmtree(tmp_path / folder)
    later = _study(tmp_path, seeds=(0, 1, 2))
    later.will_ask("consistency", variants)
    later.will_ask("validation_loss_terms", variants)        # its defaults, as the call below takes them
    later.train(list(variants.values()))
    later.grid(variants, references=False)
    later.consistency(variants)
    later.validation_loss_terms(variants)
    assert [t["items"] for t in later.timings if t["phase"] == "models trained"] == [3]
    assert later.results_reused == 2 + 2               # seeds 0 and 1: their grid rows and consistency
    assert later._declared_missing() == []             # each declared ask was the very ask made later
    for folder in ("models", "data"):
        shutil.rmtree(tmp_path / folder)
    answered = _study(tmp_path, seeds=(0, 1, 2))
    answered.will_ask("consistency", variants)
    answered.train(list(variants.values()))
    assert not [t for t in answered.timings if t["phase"] == "models trained"]
    fresh = _study(tmp_path / "fresh", seeds=(0,))
    fresh.will_ask("ranker_auc", {"cascade": Cascade(generator={**TINY, **GPR}, ranker={**TINY, **CASCADE_RANKER})})
    assert [c.hash() for c in fresh._declared_missing()] == [make_config(PROFILE, seed=0, **TINY, **CASCADE_RANKER).hash()]
    with pytest.raises(ValueError, match="no per-model analysis 'lists'"):
        fresh.will_ask("lists", variants)
    with pytest.raises(TypeError, match="will_ask\\('ranker_auc'.*n_request"):
        fresh.will_ask("ranker_auc", variants, n_request=5)


def test_a_runs_deterministic_switch_turns_torchs_deterministic_algorithms_on_for_cuda_training_only(
        tmp_path, monkeypatch, capsys):
    """pool.run_algorithms: with ONERANKER_DETERMINISTIC (reproduce/pretrain --deterministic) a
    model that trains on CUDA trains under torch's deterministic algorithms, which are as they
    were afterwards (warn_only too), also when the training fails; on the CPU, or unset, nothing
    changes. The command line refuses the switch on a device that is not CUDA before any work,
    sets cuBLAS's deterministic workspace beside it, and the run record says whether it applied."""
    from oneranker import reproduce
    from oneranker.__main__ import deterministic_env, main

    assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.delenv(pool.DETERMINISTIC_ENV, raising=False)
    with pool.run_algorithms(torch.device("cuda")):
        assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv(pool.DETERMINISTIC_ENV, "1")
    with pool.run_algorithms(torch.device("cpu")):
        assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(RuntimeError, match="a failed training"), pool.run_algorithms(torch.device("cuda")):
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"   # set where the command line did not
        raise RuntimeError("a failed training")
    assert not torch.are_deterministic_algorithms_enabled()
    with pool.deterministic_algorithms(True):           # nested: each block restores what it found
        with pool.deterministic_algorithms(False):
            assert not torch.are_deterministic_algorithms_enabled()
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with pool.deterministic_algorithms(False):
            pass
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert reproduce.provenance()["deterministic"] is None                  # no CUDA here: it did not apply
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
        assert reproduce.provenance()["deterministic"] is True
        m.delenv(pool.DETERMINISTIC_ENV)
        assert reproduce.provenance()["deterministic"] is False
        m.setattr("oneranker.runtime.resolve_device", lambda device: torch.device("cuda"))
        env = deterministic_env(argparse.Namespace(deterministic=True, device="cuda"))
        assert env == {pool.DETERMINISTIC_ENV: "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
        assert deterministic_env(argparse.Namespace(deterministic=False, device="cuda")) == {}
    monkeypatch.delenv(pool.DETERMINISTIC_ENV)
    assert main(["pretrain", "--profile", "smoke", "--device", "cpu", "--deterministic", "--cache", str(tmp_path)]) == 2
    assert "--deterministic makes CUDA training deterministic; --device cpu is not CUDA" in capsys.readouterr().err
    assert not (tmp_path / "models").exists() and pool.DETERMINISTIC_ENV not in os.environ


def test_every_way_a_run_trains_a_model_takes_the_runs_algorithms(tmp_path, monkeypatch):
    """--deterministic must reach every model a run trains: a pool worker's, the pool's own
    process (one job on a GPU), and a study's model not trained up front all train through
    pool.train_or_load_in_run. A stand-in for train_or_load records, on a pretend CUDA device,
    whether the deterministic algorithms were on as each model trained; and the run's
    environment (the switch and cuBLAS's workspace) reaches spawned worker processes."""
    from oneranker import study as study_module
    from oneranker.__main__ import training_env
    from oneranker.parallel import environment, in_processes

    seen = []
    cuda = pretend_cuda_training(monkeypatch,
                                 lambda cfg, device: seen.append((device, torch.are_deterministic_algorithms_enabled())))
    monkeypatch.setattr(study_module, "cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr(study_module, "has_model", lambda cfg, cache_dir: False)
    monkeypatch.setattr(study_module, "resolve_device", lambda device: cuda)
    cfg = make_config("smoke", seed=0)
    study = Study("smoke", seeds=(0,), cache_dir=tmp_path, progress=False)

    def train_every_way() -> None:
        pool._train_in_worker(cfg.to_dict(), str(tmp_path), "cuda")
        assert pool.train_all([cfg], tmp_path, device="cuda", workers=1) == 1
        with pytest.warns(UserWarning, match="not trained up front"):
            study._load(cfg)

    monkeypatch.delenv(pool.DETERMINISTIC_ENV, raising=False)
    train_every_way()
    assert seen == [("cuda", False)] * 3
    seen.clear()
    monkeypatch.setattr("oneranker.runtime.resolve_device", lambda device: cuda)
    with environment(training_env(argparse.Namespace(deterministic=True, device="cuda", train_compile=None))):
        train_every_way()
        names = [(pool.DETERMINISTIC_ENV,), ("CUBLAS_WORKSPACE_CONFIG",)]
        assert in_processes(os.getenv, names, workers=2) == ["1", ":4096:8"]
    assert seen == [("cuda", True)] * 3
    assert not torch.are_deterministic_algorithms_enabled() and pool.DETERMINISTIC_ENV not in os.environ


def test_a_training_worker_killed_from_outside_is_named_with_what_to_try():
    """pool.wait_for_training: a job that ended counts as done; a worker killed from outside
    (BrokenProcessPool, which names no cause: a local paper-profile run on 2 CPU cores died so)
    becomes an error saying what ran and what to try; any other error of a job passes unchanged."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from oneranker import pool

    def future(error: BaseException | None = None) -> Future:
        f: Future = Future()
        f.set_exception(error) if error else f.set_result(None)
        return f

    done = []
    pool.wait_for_training([future(), future()], lambda: done.append(1), 2, torch.device("cpu"))
    assert done == [1, 1]
    with pytest.raises(RuntimeError, match=r"died abruptly \(2 workers training models on cpu\).*out of memory"
                                           r".*--workers.*a rerun skips it") as raised:
        pool.wait_for_training([future(BrokenProcessPool("gone"))], lambda: None, 2, torch.device("cpu"))
    assert isinstance(raised.value.__cause__, BrokenProcessPool)
    with pytest.raises(ValueError, match="a bad config"):
        pool.wait_for_training([future(ValueError("a bad config"))], lambda: None, 1, torch.device("cpu"))


def test_a_worker_process_that_dies_is_named_by_in_processes():
    """parallel.in_processes over workers that exit at once (os._exit, as a process killed for
    memory ends): the error says a worker died, which work ran and what to try, not the bare
    BrokenProcessPool the pool raises."""
    from concurrent.futures.process import BrokenProcessPool

    from oneranker.parallel import in_processes

    with pytest.raises(RuntimeError, match=r"died abruptly \(2 workers dying\).*out of memory") as raised:
        in_processes(os._exit, [(1,), (1,)], workers=2, desc="dying")
    assert isinstance(raised.value.__cause__, BrokenProcessPool)


def test_a_cpu_model_is_the_same_bits_whichever_process_trains_it(tmp_path):
    """One config trained on the CPU by the pool (a worker, one thread) and by a study's own
    process running two intra-op threads (a model not trained up front) gives the same weights
    bit for bit: the cache keys a model by its config and code only, so the thread count must
    not change it (pool.cpu_training_threads). Without that pin this tiny model's weights differ
    by about 1e-3 between 1 and 2 threads (CPU kernels split their sums over the threads); a
    fresh clone's make reproduce found the quick Step-2-only models differing so (docs/reproducibility.md)."""
    cfg = tiny_config(seed=0)
    pool.train_all([cfg], tmp_path / "pool", device="cpu", workers=1)
    study = _study(tmp_path / "own")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.warns(UserWarning, match="not trained up front"):
            study._load(cfg)
        assert torch.get_num_threads() == 2         # the process's own count again after training
    finally:
        torch.set_num_threads(before)
    a, b = (torch.load(model_folder(cfg, tmp_path / d) / "final.pt", weights_only=True)["model"] for d in ("pool", "own"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_way_a_cpu_model_trains_takes_the_pools_thread_count(tmp_path, monkeypatch):
    """A pool's worker, a study's model not trained up front and ``python -m oneranker train``
    (simulated market and real logs) all train a CPU model with pool.CPU_TRAINING_THREADS
    intra-op threads, and give the calling process its own count back. A stand-in for
    train_or_load records the count each saw."""
    import warnings

    from oneranker import study as study_module
    from oneranker.__main__ import main

    class Trained(Exception):
        pass

    seen = []

    def recorder(cfg, prepared, cache_dir, device, progress, **kwargs):
        seen.append((device, torch.get_num_threads()))
        raise Trained

    monkeypatch.setattr(pool, "train_or_load", recorder)
    monkeypatch.setattr(pool, "cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr(study_module, "cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr("oneranker.data.cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr("oneranker.__main__._real_data", lambda folder: ("prepared", "fingerprint"))
    cfg = make_config("smoke", seed=0)
    study = Study("smoke", seeds=(0,), cache_dir=tmp_path, device="cpu", progress=False)
    before = torch.get_num_threads()
    try:
        for way in (lambda: pool._train_in_worker(cfg.to_dict(), str(tmp_path), "cpu"),
                    lambda: study._load(cfg),
                    lambda: main(["train", "--profile", "smoke", "--device", "cpu", "--cache", str(tmp_path)]),
                    lambda: main(["train", "--profile", "smoke", "--device", "cpu", "--cache", str(tmp_path),
                                  "--data", str(tmp_path)])):
            torch.set_num_threads(2)
            with pytest.raises((Trained, RuntimeError)), warnings.catch_warnings():
                warnings.simplefilter("ignore")     # "not trained up front": the study's own process trains it
                way()
            if len(seen) > 1:                      # the worker sets its own count for good; the others restore it
                assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [("cpu", pool.CPU_TRAINING_THREADS)] * 4



def test_reproduce_names_the_notebook_that_asks_to_its_kernel(tmp_path, monkeypatch):
    """reproduce runs each notebook with oneranker.cache.ASKER_ENV set to its name (its kernel
    inherits the environment), so the models it uses itself are recorded as used by it; the
    variable is restored afterwards."""
    import papermill

    from oneranker import reproduce
    from oneranker.cache import ASKER_ENV

    seen = {}

    def fake_execute(source, target, **kwargs):
        seen["asker"] = os.environ.get(ASKER_ENV)
        Path(target).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.delenv(ASKER_ENV, raising=False)
    source = Path(__file__).resolve().parent.parent / "notebooks" / "05_dc_loss_ablations.ipynb"
    reproduce._run_one(source, 1, 1, {"profile": "smoke", "seed": 0}, tmp_path, None, committed=False)
    assert seen["asker"] == "05_dc_loss_ablations"
    assert ASKER_ENV not in os.environ


@pytest.fixture
def fake_study(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(Study, "_train_configs", lambda self, cfgs, skip_answered=True: trained.append(list(cfgs)))
    monkeypatch.setattr(study_module, "cached_prepared", lambda cfg, *a, **k: cfg)      # "dataset" = its config
    monkeypatch.setattr(Study, "truth_set", lambda self, cfg, prepared: ("truth", cfg.data_hash()))
    monkeypatch.setattr(Study, "_references", lambda self, cfg, prepared, ts, n: [
        {"variant": "random", "seed": cfg.seed, "list": "generated", "data": cfg.data_hash()}])
    monkeypatch.setattr(Study, "_list_rows", lambda self, cfgs, prepared, ts, n, per_head: {"rows": [
        {"list": "generated", "data": cfgs[0].data_hash(), "model_seed": cfgs[0].seed, "models": len(cfgs)}]
        + ([{"list": "ranked", "data": cfgs[0].data_hash(), "model_seed": cfgs[1].seed, "models": 2}]
           if len(cfgs) > 1 else [])})
    study = Study(PROFILE, (0, 1), tmp_path, device="cpu", eval_requests=20, workers=1, progress=False)
    return study, trained


def test_grid_has_one_row_per_variant_seed_and_list_and_each_datasets_references_per_seed(fake_study):
    study, trained = fake_study
    variants = {"gpr": {**TINY, **GPR},
                "cascade": Cascade(generator={**TINY, **GPR}, ranker={**TINY, **CASCADE_RANKER}),
                "other world": {**TINY, **GPR, "world.n_users": 150}}
    res = study.grid(variants)
    # one pool trains every model of every variant at every seed (the cascade's two); the
    # second call (_ensure_models: no result cached yet) asks for the same models
    want = sorted((s, c.hash()) for v in variants.values() for s in (0, 1) for c in study.configs(v, s))
    assert len(want) == 2 * (1 + 2 + 1)
    assert [sorted((c.seed, c.hash()) for c in call) for call in trained] == [want, want]
    models = res[res.variant != "random"]
    assert sorted(map(tuple, models[["variant", "seed", "list"]].values.tolist())) == sorted(
        [(v, s, "generated") for v in variants for s in (0, 1)] + [("cascade", s, "ranked") for s in (0, 1)])
    assert (models.seed == models.model_seed).all()                 # each row is its own seed's model
    assert (models[models.variant == "cascade"].models == 2).all()  # the cascade's rows come from both models
    # references: once per dataset and seed (two worlds x two seeds), each on its own seed
    refs = res[res.variant == "random"]
    assert sorted(map(tuple, refs[["seed", "data"]].values.tolist())) == sorted(
        (s, study.configs(variants[v], s)[0].data_hash()) for s in (0, 1) for v in ("gpr", "other world"))
    assert refs["data"].nunique() == 4 and len(refs) == 4
