"""The training pool and the process helpers (oneranker/pool.py, oneranker/parallel.py) with
stand-in jobs, no training: which models a run trains (each by its own key), how it trains them
(the run's compile setting, worker processes on the CPU, the GPU workers' allocator setting, which
a GPU-only test checks in a real worker), a failed job named by its config, every
stack mate's world, results in the order asked, and a stopped run (SIGTERM) cleaning up, in its
pool's workers and in a notebook's kernel. The pool's training itself, bit for bit
against training in-process, is tested in tests/test_study.py."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import InProcessPool, pretend_cuda_training, tiny_config
from oneranker import pool
from oneranker.cache import dataset_folder, model_folder
from oneranker.parallel import in_processes

REPO = Path(__file__).resolve().parents[1]


def test_in_processes_returns_results_in_the_order_of_args_not_of_completion():
    # the first call ends about 2 s after the second: completion order would be ["second", "first"]
    args = [("sleep 2; echo first",), ("echo second",)]
    assert in_processes(subprocess.getoutput, args, workers=2) == ["first", "second"]


def _fake_pool(monkeypatch, trained, pools=None):
    """train_all with a stand-in pool whose jobs only record the config and write its final.pt."""
    from oneranker.config import config_from_dict

    def job(d, cache_dir, device, threads):
        cfg = config_from_dict(d)
        trained.append(cfg.hash())
        for m in pool.stack_mates(cfg):
            model_folder(m, cache_dir).mkdir(parents=True, exist_ok=True)
            (model_folder(m, cache_dir) / "final.pt").touch()
        return cfg.hash()

    monkeypatch.setattr(pool, "process_pool", lambda n: InProcessPool(pools, n))
    monkeypatch.setattr(pool, "prepare_all", lambda cfgs, cache_dir, workers=None: 0)
    monkeypatch.setattr(pool, "_train_in_worker", job)


def test_train_all_skips_exactly_the_models_whose_own_key_is_cached(tmp_path, monkeypatch):
    trained = []
    _fake_pool(monkeypatch, trained)
    full, no_ranker = tiny_config(seed=0), tiny_config(seed=0, **{"model.use_ranker": False})
    assert full.data_hash() == no_ranker.data_hash() and full.hash() != no_ranker.hash()
    # the shared dataset is already cached: that must not count as a trained model
    dataset_folder(full, tmp_path).mkdir(parents=True)
    (dataset_folder(full, tmp_path) / "meta.json").write_text("{}")
    assert pool.train_all([full, no_ranker], tmp_path, device="cpu", workers=2) == 2
    assert sorted(trained) == sorted([full.hash(), no_ranker.hash()])
    trained.clear()
    assert pool.train_all([full, no_ranker], tmp_path, device="cpu", workers=2) == 0 and trained == []
    # a stack whose first mate is cached but whose second is not: one job, by the missing mate
    stacked = {"train.stack_seeds": (0, 1), "train.epochs": 1}
    a, b = tiny_config(seed=0, **stacked), tiny_config(seed=1, **stacked)
    model_folder(a, tmp_path).mkdir(parents=True)
    (model_folder(a, tmp_path) / "final.pt").touch()
    assert pool.train_all([a, b], tmp_path, device="cpu", workers=2) == 1 and trained == [b.hash()]


def test_cpu_training_goes_through_a_worker_process_even_with_one_worker(tmp_path, monkeypatch):
    pools = []
    _fake_pool(monkeypatch, [], pools)
    assert pool.train_all([tiny_config(seed=0)], tmp_path, device="cpu", workers=1) == 1
    assert pools == [1]


def test_train_all_trains_each_model_as_the_run_compiles_it(tmp_path, monkeypatch):
    """ONERANKER_TRAIN_COMPILE reaches the models train_all trains on CUDA, in the pool's own
    process (one job) and in its workers (config sent as a dict); the cache key is the config's."""
    seen = []
    pretend_cuda_training(monkeypatch, lambda cfg, device: seen.append((cfg.train.compile, cfg.hash())))
    monkeypatch.setattr(pool, "process_pool", lambda n: InProcessPool())
    monkeypatch.setattr(pool.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(pool, "gpu_worker_threads", lambda n: 1)
    monkeypatch.setenv(pool.TRAIN_COMPILE_ENV, "blocks")
    cfg, other = tiny_config(seed=0), tiny_config(seed=1)
    assert pool.train_all([cfg], tmp_path, device="cuda", workers=1) == 1
    assert pool.train_all([cfg, other], tmp_path, device="cuda", workers=2) == 2
    assert seen == [("blocks", cfg.hash()), ("blocks", cfg.hash()), ("blocks", other.hash())]


def test_gpu_workers_start_with_expandable_segments_unless_the_user_chose_an_allocator(tmp_path, monkeypatch):
    """The pool's GPU workers inherit PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (06's pool
    of 9 fits an 80 GB H100 only with it); a user's own setting is kept, the CPU pool is left as
    it is, and the parent's environment is restored after the pool."""
    name = pool.ALLOC_CONF_ENV
    seen = []

    def recording_pool(n):
        seen.append(os.environ.get(name))
        return InProcessPool()

    pretend_cuda_training(monkeypatch, lambda cfg, device: None)
    monkeypatch.setattr(pool, "process_pool", recording_pool)
    monkeypatch.setattr(pool.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(pool, "gpu_worker_threads", lambda n: 1)
    two = [tiny_config(seed=0), tiny_config(seed=1)]
    monkeypatch.delenv(name, raising=False)
    assert pool.train_all(two, tmp_path, device="cuda", workers=2) == 2
    assert seen == ["expandable_segments:True"] and name not in os.environ
    monkeypatch.setenv(name, "max_split_size_mb:256")
    assert pool.train_all(two, tmp_path, device="cuda", workers=2) == 2
    assert seen[-1] == "max_split_size_mb:256" == os.environ[name]
    assert pool.gpu_worker_environment(pool.torch.device("cpu")) == {}
    monkeypatch.delenv(name)
    assert pool.gpu_worker_environment(pool.torch.device("cpu")) == {}
    assert pool.gpu_worker_environment(pool.torch.device("cuda", 1)) == {name: "expandable_segments:True"}


def _segments_expandable() -> list[bool]:
    """In a pool's worker: whether each CUDA memory segment of a fresh allocation is expandable."""
    import torch

    x = torch.ones(1 << 20, device="cuda")
    segments = torch.cuda.memory_snapshot()
    del x
    return [s["is_expandable"] for s in segments]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_real_gpu_worker_of_the_pool_allocates_in_expandable_segments(monkeypatch):
    """The setting reaches a spawned worker's CUDA allocator, not just its environment; the
    parent (which may have started CUDA already) is left as it was."""
    from oneranker.parallel import environment, process_pool

    monkeypatch.delenv(pool.ALLOC_CONF_ENV, raising=False)
    with environment(pool.gpu_worker_environment(torch.device("cuda"))), process_pool(1) as workers:
        expandable = workers.submit(_segments_expandable).result()
    assert expandable and all(expandable)
    assert pool.ALLOC_CONF_ENV not in os.environ
    with process_pool(1) as workers:      # without it, a worker's segments are fixed
        assert not any(workers.submit(_segments_expandable).result())


def test_the_run_record_names_the_allocator_setting_of_the_gpu_workers(monkeypatch):
    from oneranker import reproduce

    name = pool.ALLOC_CONF_ENV
    monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pool.torch.cuda, "is_available", lambda: False)
    assert reproduce.provenance()["gpu_worker_alloc_conf"] is None
    monkeypatch.setattr(pool.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(pool.torch.cuda, "get_device_name", lambda *a: "a pretend GPU")
    assert reproduce.provenance()["gpu_worker_alloc_conf"] == "expandable_segments:True"
    monkeypatch.setenv(name, "max_split_size_mb:256")
    assert reproduce.provenance()["gpu_worker_alloc_conf"] == "max_split_size_mb:256"


def test_a_failed_training_job_is_raised_naming_its_config(tmp_path, monkeypatch):
    cfg = tiny_config(seed=3)

    def boom(*a, **k):
        raise ValueError("no such kernel")

    monkeypatch.setattr(pool.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(pool, "cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr(pool, "train_or_load_in_run", boom)
    with pytest.raises(RuntimeError, match=rf"(?s)training model {cfg.hash()} failed:\n.*ValueError: no such kernel") as e:
        pool._train_in_worker(cfg.to_dict(), str(tmp_path), "cpu")
    assert e.value.__cause__ is None       # picklable back to the parent, whatever the original error was


def test_prepare_all_simulates_the_worlds_of_every_stack_mate(tmp_path, monkeypatch):
    from oneranker.config import config_from_dict

    made = []
    monkeypatch.setattr(pool, "_prepare_in_worker", lambda d, cache_dir: made.append(config_from_dict(d).seed))
    stacked = {"train.stack_seeds": (0, 1), "train.epochs": 1}
    assert pool.prepare_all([tiny_config(seed=0, **stacked)], tmp_path, workers=1) == 2
    assert sorted(made) == [0, 1]


# --- SIGTERM: a stopped run cleans up (oneranker.parallel.exit_on_sigterm) -----------------------

def _started(cmd: list[str], env_path: Path, ready: Callable[[], bool], timeout: float = 60) -> subprocess.Popen:
    """``cmd`` started with ``env_path`` and the repository importable, once ``ready()`` holds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(env_path), str(REPO)])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{cmd} never got ready (exit {proc.poll()}):\n{proc.communicate()[0]}")
        time.sleep(0.1)
    return proc


def _terminated(proc: subprocess.Popen, timeout: float = 60) -> str:
    """``proc``'s output once a SIGTERM has stopped it; killed, and the test failed, when it
    does not stop within ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {timeout} s after SIGTERM:\n{proc.communicate()[0]}")


ATOMIC_SAVE_STOPPED = """
import sys, time, torch
from pathlib import Path
from oneranker import cache, parallel
if sys.argv[2] == "handled":
    parallel.exit_on_sigterm()
def slow_save(obj, f):       # torch.save, stopped halfway through writing
    Path(f).write_bytes(b"half")
    Path(sys.argv[1], "writing").touch()
    time.sleep(120)
torch.save = slow_save
cache.atomic_save({"value": 1}, Path(sys.argv[1], "cache", "entry.pt"))
"""


@pytest.mark.parametrize("handled", [True, False], ids=["exit_on_sigterm", "python_default"])
def test_a_sigterm_during_an_atomic_write_leaves_no_temporary_file_once_handled(tmp_path, handled):
    """Python's default for SIGTERM kills at once, and the half-written temporary file stays in
    the cache folder (the second case shows it); with exit_on_sigterm the write's ``finally``
    removes it and the exit status is still 143 (128 + SIGTERM)."""
    script = tmp_path / "save.py"
    script.write_text(ATOMIC_SAVE_STOPPED)
    proc = _started([sys.executable, str(script), str(tmp_path), "handled" if handled else "default"],
                    tmp_path, (tmp_path / "writing").exists)
    output = _terminated(proc)
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    if handled:
        assert proc.returncode == 143 and left == [], output
    else:
        assert proc.returncode == -signal.SIGTERM and len(left) == 1 and left[0].endswith(".tmp"), output


POOL_JOBS = """
import os, time
from pathlib import Path

def job(folder: str, i: int) -> None:
    tmp = Path(folder, f".job{i}.tmp")
    tmp.write_text("half")
    try:
        Path(folder, f"started{i}").write_text(str(os.getpid()))
        time.sleep(120)
    finally:
        time.sleep(CLEANUP_SECONDS)   # a cleanup that may take a while (a checkpoint's last write, say)
        tmp.unlink()
"""

POOL_RUN = """
import sys
from oneranker.parallel import exit_on_sigterm, in_processes
from pool_jobs import job
if __name__ == "__main__":
    exit_on_sigterm()
    in_processes(job, [(sys.argv[1], 0), (sys.argv[1], 1)], workers=2)
"""


def _pool_running(tmp_path: Path, cleanup_seconds: float) -> tuple[subprocess.Popen, Path, list[int]]:
    """A parent running two two-minute jobs in a pool (in_processes), once both have started: the
    process, the jobs' folder and the workers' pids."""
    (tmp_path / "pool_jobs.py").write_text(POOL_JOBS.replace("CLEANUP_SECONDS", str(cleanup_seconds)))
    (tmp_path / "run.py").write_text(POOL_RUN)
    work = tmp_path / "work"
    work.mkdir()
    started = [work / "started0", work / "started1"]
    proc = _started([sys.executable, str(tmp_path / "run.py"), str(work)], tmp_path,
                    lambda: all(p.exists() and p.read_text() for p in started))
    return proc, work, [int(p.read_text()) for p in started]


def _nothing_left(proc: subprocess.Popen, output: str, work: Path, workers: list[int]) -> None:
    """The parent exited 143, no job left its temporary file, and no worker is alive."""
    assert proc.returncode == 143, output
    assert sorted(p.name for p in work.iterdir()) == ["started0", "started1"], output
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_sigterm_to_a_pool_s_parent_stops_its_running_workers_cleanly(tmp_path):
    """Only the parent is signalled (as ``kill PID`` does): it stops its workers rather than
    waiting out their two-minute jobs, and each worker's ``finally`` still runs."""
    proc, work, workers = _pool_running(tmp_path, cleanup_seconds=0)
    output = _terminated(proc, timeout=30)     # not the jobs' two minutes
    _nothing_left(proc, output, work, workers)


STUBBORN_JOB = """
import os, signal, time
from pathlib import Path

def job(folder: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)     # a worker deaf to SIGTERM (stuck, say)
    Path(folder, "started").write_text(str(os.getpid()))
    time.sleep(120)
"""


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    """parallel.stop_pool: SIGTERM first; a worker still alive after ``grace`` seconds is killed,
    so stopping a pool never hangs on one process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from oneranker.parallel import exit_on_sigterm, stop_pool

    (tmp_path / "stubborn_jobs.py").write_text(STUBBORN_JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_on_sigterm)
    pool.submit(__import__("stubborn_jobs").job, str(tmp_path))
    deadline = time.monotonic() + 60
    while not ((tmp_path / "started").exists() and (tmp_path / "started").read_text()):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    t0 = time.monotonic()
    stop_pool(pool, grace=1.0)
    assert time.monotonic() - t0 < 20
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "started").read_text()), 0)


def test_a_second_sigterm_while_the_pool_stops_still_leaves_nothing_behind(tmp_path):
    """A scheduler may send SIGTERM again before the first has finished stopping the run: the
    parent still exits 143 only once its workers have finished their cleanup (Python's exit
    joins the pool's manager thread), so no worker or temporary file is left behind."""
    proc, work, workers = _pool_running(tmp_path, cleanup_seconds=3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(1)                                       # the workers are in their 3-s cleanup now
    output = _terminated(proc, timeout=30)              # the second SIGTERM
    _nothing_left(proc, output, work, workers)


STOPPED_CELL = """
import time
from pathlib import Path
tmp = Path(".cell.tmp")
tmp.write_text("half")
try:
    Path("started").write_text("1")
    time.sleep(120)
finally:
    time.sleep(6)     # a cleanup that takes a while (stopping a worker pool, say)
    tmp.unlink()
"""

RUN_NOTEBOOK = """
import sys
from pathlib import Path
from oneranker import reproduce
from oneranker.parallel import exit_on_sigterm
exit_on_sigterm()
reproduce.KERNEL_STOP_SECONDS = float(sys.argv[2])
notebook = Path(sys.argv[1])
reproduce._run_one(notebook, 1, 1, {"profile": "smoke", "seed": 0}, notebook.parent / "out", None, committed=False)
"""


@pytest.mark.parametrize("stop_seconds", ["reproduce", 5.0], ids=["kernel_stop_seconds", "jupyter_default"])
def test_a_stopped_notebook_run_lets_its_kernel_finish_its_cleanup(tmp_path, stop_seconds):
    """A SIGTERM to ``make reproduce`` stops the notebook's kernel through an interrupt, so the
    running cell's ``finally`` blocks run in the kernel. jupyter_client's default wait of 5 s
    kills the kernel 2.5 s into a 6-s cleanup, and its temporary file stays (the second case);
    reproduce.KERNEL_STOP_SECONDS lets it finish, and nothing half-written is left."""
    import nbformat

    from oneranker.reproduce import KERNEL_STOP_SECONDS

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(STOPPED_CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "stopped.ipynb")
    (tmp_path / "run.py").write_text(RUN_NOTEBOOK)
    seconds = KERNEL_STOP_SECONDS if stop_seconds == "reproduce" else stop_seconds
    proc = _started([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "stopped.ipynb"), str(seconds)],
                    tmp_path, (tmp_path / "started").exists)
    output = _terminated(proc, timeout=60)    # it exits once its kernel has (stopped or killed)
    assert proc.returncode == 143, output
    assert (tmp_path / ".cell.tmp").exists() == (stop_seconds != "reproduce"), output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), output
