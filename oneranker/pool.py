"""Models and datasets made in parallel worker processes, into the cache.

Each dataset and each model depends on its config only (seeded simulation, data order,
initialisation and sampling), so what the pool makes does not depend on how many workers
ran or in which order: a model trained here is bit-identical to one trained in the notebook.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, as_completed
from pathlib import Path

import torch

from .cache import has_dataset, has_model
from .config import Config
from .data import cached_prepared
from .parallel import environment, in_processes, process_pool, progress, result_of
from .runtime import resolve_device
from .stacked import stack_mates
from .train import train_or_load
from . import studies


def _train_in_worker(cfg_dict: dict, cache_dir: str, device: str = "cpu", threads: int = 1) -> str:
    """Train one config into the model cache (runs in a worker process with ``threads`` intra-op
    CPU threads: one on CPU, :func:`gpu_worker_threads` on a GPU)."""
    from .config import config_from_dict

    torch.set_num_threads(threads)      # on CPU, train_or_load_in_run pins CPU_TRAINING_THREADS too
    cfg = config_from_dict(cfg_dict)
    try:
        train_or_load_in_run(cfg, cached_prepared(cfg, cache_dir, progress=False), cache_dir, device)
    except Exception:  # some errors (e.g. the compiler's) cannot be pickled back to the parent
        import traceback

        raise RuntimeError(f"training model {cfg.hash()} failed:\n{traceback.format_exc()}") from None
    return cfg.hash()


# train.compile for the models a run trains on CUDA, in place of their configs' (``reproduce`` and
# ``pretrain`` --train-compile set it for the run; the notebooks' kernels and workers inherit it)
TRAIN_COMPILE_ENV = "ONERANKER_TRAIN_COMPILE"


def as_trained(cfg: Config, device: torch.device) -> Config:
    """``cfg`` as a run trains it: on CUDA with ``train.compile`` from ``ONERANKER_TRAIN_COMPILE``
    where that is set. The field is a runtime one (fused kernels round bf16 differently and
    compute the same; tests/test_train.py compares them with eager on CUDA), so the config hash,
    hence the model's cache key, is the same, and a run can choose how its models are compiled
    without a change of code. Why: several models sharing a GPU go at the pace of a step's GPU
    kernel time, which compiled transformer blocks cut by about a quarter on the H200
    (results/paper/step_blocks_h200_4e2f4c4.txt). The CPU always trains eager."""
    scope = os.environ.get(TRAIN_COMPILE_ENV)
    if not scope or device.type != "cuda" or scope == cfg.train.compile:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=scope))


# Deterministic CUDA training for a run (``reproduce`` and ``pretrain`` --deterministic set it;
# the training workers inherit it with cuBLAS's deterministic workspace setting, which must be
# in the environment before a process's first cuBLAS call)
DETERMINISTIC_ENV = "ONERANKER_DETERMINISTIC"
CUBLAS_DETERMINISTIC = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """torch's deterministic algorithms on (or off) for the block, then as they were. Why: on a
    GPU some backward kernels add with atomics in whatever order the threads arrive, so two
    runs of one paper model over the same batches ended about 1e-3 apart and two runs of
    notebook 04 moved its tables (docs/paper_profile.md); with these on, torch takes a deterministic kernel
    for such an op or raises naming the op that has none. The CPU is deterministic either way."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def run_algorithms(device: torch.device) -> contextlib.AbstractContextManager:
    """How this run's models train on ``device``: deterministically where ``ONERANKER_DETERMINISTIC``
    is set and the device is CUDA (:func:`deterministic_algorithms`), otherwise as torch chooses.
    A runtime choice like ``train.compile``: the same computation, so the models' cache keys do
    not change, and the run record says which way a run trained (``deterministic``). cuBLAS's
    deterministic workspace is set here too where the command line did not (a process that
    trains inside has not started cuBLAS yet; torch refuses a deterministic run without it)."""
    if device.type == "cuda" and os.environ.get(DETERMINISTIC_ENV):
        for name, value in CUBLAS_DETERMINISTIC.items():
            os.environ.setdefault(name, value)
        return deterministic_algorithms(True)
    return contextlib.nullcontext()


# Intra-op CPU threads of every model trained on the CPU, wherever it trains. CPU kernels split
# their sums over the threads, so one config trained with 1 and with 2 threads ends with other
# weights (a quick Step-2-only model: every tensor, up to 0.0135 apart) under the same cache key,
# and a notebook's numbers then depend on which process trained its models (docs/reproducibility.md).
CPU_TRAINING_THREADS = 1


@contextlib.contextmanager
def cpu_training_threads(device: str | torch.device) -> Iterator[None]:
    """On the CPU, :data:`CPU_TRAINING_THREADS` intra-op threads for the block, then as before (a
    notebook's own evaluation keeps its threads); elsewhere a no-op (a GPU worker's threads are
    :func:`gpu_worker_threads`, and a GPU step's CPU work does not depend on them). Why: the model
    cache keys a model by its config and code, not by the thread count it trained with, so every
    way a CPU model is trained (a pool's worker, a study's model not trained up front, ``python -m
    oneranker train``) must train it with the same count, the pool's."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_TRAINING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_or_load_in_run(cfg: Config, prepared, cache_dir: str | Path, device: str | torch.device,
                         progress: bool = False, fingerprint: str | None = None):
    """:func:`oneranker.train.train_or_load` under the run's algorithms (:func:`run_algorithms`)
    and, on the CPU, with the pool's thread count (:func:`cpu_training_threads`): the one way the
    package trains a model in a process of its own (a pool's worker, the study's process for a
    model not trained up front, ``python -m oneranker train``), so that ``--deterministic``
    reaches every model a run trains and a CPU model is the same bits whichever trained it."""
    dev = torch.device(device)
    with run_algorithms(dev), cpu_training_threads(dev):
        return train_or_load(cfg, prepared, cache_dir, device=str(device), progress=progress,
                             **({} if fingerprint is None else {"fingerprint": fingerprint}))


def _prepare_in_worker(cfg_dict: dict, cache_dir: str) -> str:
    """Simulate and prepare one dataset into the cache (runs in a worker process)."""
    from .config import config_from_dict

    cfg = config_from_dict(cfg_dict)
    cached_prepared(cfg, cache_dir, progress=False)
    return cfg.data_hash()


GPU_WORKERS_ENV = "ONERANKER_GPU_WORKERS"


GPU_GB_PER_WORKER = 12   # a paper-profile training process's share of GPU memory, with headroom


def default_workers(device: torch.device, models_per_worker: int = 1) -> int:
    """CPU: one single-threaded training process per core, up to 4 (the quick models are small;
    two such processes train a grid faster than one two-thread process did while the profile
    was sized). GPU: up to 8 processes share the device, fewer where its memory would not hold
    them (``ONERANKER_GPU_WORKERS`` overrides): one paper-scale model alone leaves it idle most
    of each step while Python launches its ~1,900 kernels (on the H200: 63-89 ms per step for
    22-28 ms of GPU kernels, benchmarks/training_step.py), so concurrent models fill those gaps.
    Measured side by side on the H200 (benchmarks/training_throughput.py,
    results/paper/training_throughput_threads_h200.txt): 8 models with 2 CPU threads each train
    1.13x the requests/s of 6 with PyTorch's default of a thread per core each. A notebook with
    4 training processes held 39 GB on an H100, about 10 GB each: an 80 GB H100 gets 6, the
    141 GB H200 8. ``models_per_worker``: a stack of M models (``train.stack_seeds``) held
    about 24 GiB per model on the H200 (47.5 and 71.2 GiB for stacks of 2 and 3,
    results/paper/stacked_step_h200.txt), twice a lone model's share, so a worker of a stack
    counts for 2M lone ones."""
    if device.type == "cpu":
        return max(1, min(4, os.cpu_count() or 1))
    if os.environ.get(GPU_WORKERS_ENV):
        return max(1, int(os.environ[GPU_WORKERS_ENV]))
    total_gb = torch.cuda.get_device_properties(device).total_memory / 2**30
    per_worker = GPU_GB_PER_WORKER * (1 if models_per_worker <= 1 else 2 * models_per_worker)
    return max(1, min(8, int(total_gb // per_worker)))


MPS_CONTROL = "nvidia-cuda-mps-control"
MPS_ENV = ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")


def check_mps(device: str | None = None) -> str:
    """The path of CUDA's MPS control program, or an error naming what is missing (asked before
    any work: a run that asks for MPS and cannot have it must not start without it). With
    ``device`` (the run's ``--device``), also an error unless it is a CUDA device: MPS shares one
    between processes."""
    if device is not None:
        from .runtime import resolve_device

        if resolve_device(device).type != "cuda":
            raise ValueError(f"--mps shares a CUDA device between processes; --device {device} is not one")
    path = shutil.which(MPS_CONTROL)
    if path is None:
        raise FileNotFoundError(f"--mps needs CUDA's Multi-Process Service: {MPS_CONTROL} is not on PATH "
                                "(it ships with the NVIDIA driver's utilities)")
    return path


@contextlib.contextmanager
def mps(enabled: bool = True) -> Iterator[None]:
    """CUDA's Multi-Process Service (MPS) while the block runs: a private control daemon, whose
    pipe folder every CUDA process started inside the block (training workers, notebook
    kernels) finds in its environment. Without MPS the GPU runs one process's kernels at a
    time (time slices); with it, the kernels of several processes can run at once on its
    multiprocessors. Eight paper-profile models training side by side without it kept the
    H200 busy only 51-71% of the time (nvidia-smi), and under it trained 1.21x the
    requests/s in the one pair measured in a fair order (benchmarks/training_throughput.py,
    results/paper/mps_throughput_h200.txt). The kernels are the same ones; that the trained
    models then agree to the GPU's rounding has not been measured. A process that had already
    used CUDA before the block may stay outside it (not measured either). The daemon is
    stopped and the environment restored when the block ends, also on error.
    ``enabled=False``: a no-op."""
    if not enabled:
        yield
        return
    control = check_mps()
    folder = Path(tempfile.mkdtemp(prefix="oneranker-mps-"))
    try:
        with environment({MPS_ENV[0]: str(folder / "pipe"), MPS_ENV[1]: str(folder / "log")}):
            try:
                for k in MPS_ENV:
                    Path(os.environ[k]).mkdir()
                started = subprocess.run([control, "-d"], stdin=subprocess.DEVNULL, capture_output=True,
                                         text=True, timeout=60)
                if started.returncode != 0:
                    raise RuntimeError(f"{MPS_CONTROL} -d could not start the MPS daemon (exit {started.returncode}): "
                                       f"{(started.stderr or started.stdout).strip()[:300]}")
                yield
            finally:     # the daemon is told to quit while its environment still names it
                try:
                    subprocess.run([control], input="quit\n", text=True, timeout=60, capture_output=True)
                except subprocess.TimeoutExpired:
                    warnings.warn(f"the MPS daemon did not stop within 60 s (pipe folder {folder / 'pipe'})",
                                  stacklevel=2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


ALLOC_CONF_ENV = "PYTORCH_CUDA_ALLOC_CONF"
GPU_WORKER_ALLOC_CONF = "expandable_segments:True"


def gpu_worker_environment(device: torch.device) -> dict[str, str | None]:
    """What the pool's GPU workers find in their environment: PyTorch's caching allocator in
    expandable segments, unless the user set ``PYTORCH_CUDA_ALLOC_CONF`` (theirs is kept). Why:
    each worker's allocator keeps freed blocks for reuse, and with fixed-size segments a worker
    holds memory it cannot use (the worker that failed held 1.69 GiB reserved but unallocated).
    Notebook 06's pool of 9 under ten workers ran out of memory on an 80 GB H100 35 s into
    training without it (results/paper/h100_memory_06_9b69994.txt) and trained to the end with
    it, peaking at 67,733 MiB (results/paper/sitting_calls_h100_38bfd9c.txt). The setting moves
    where tensors lie, not the operations asked for. Nothing changes on the CPU."""
    if device.type != "cuda" or os.environ.get(ALLOC_CONF_ENV):
        return {}
    return {ALLOC_CONF_ENV: GPU_WORKER_ALLOC_CONF}


def gpu_worker_threads(workers: int) -> int:
    """Intra-op CPU threads of each of ``workers`` processes training on one GPU: the host's
    cores shared out (PyTorch would give each process one per core, and the processes, each
    with its collating thread and autograd's, would then fight over the cores that launch
    their kernels). The CPU work of a GPU step is batch building and seeded draws, whose
    results do not depend on the thread count (tests/test_study.py; the Fake Items' k-means
    runs in scikit-learn's own thread pool)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def prepare_all(cfgs: list[Config], cache_dir: str | Path, workers: int | None = None) -> int:
    """Make sure every config's dataset (and those of its stack mates, which train with it) is
    in the cache, simulating the missing worlds in parallel processes (:func:`in_processes`); how
    many were simulated. At paper scale one world takes most of a minute of one core."""
    missing = {c.data_hash(): c for c in (m for c in cfgs for m in stack_mates(c)) if not has_dataset(c, cache_dir)}
    in_processes(_prepare_in_worker, [(c.to_dict(), str(cache_dir)) for c in missing.values()], workers,
                 desc="simulating worlds")
    return len(missing)


def train_all(cfgs: list[Config], cache_dir: str | Path, device: str = "auto", workers: int | None = None) -> int:
    """Make sure every config has a trained model in the cache, training the missing ones in
    worker processes (on CPU always, even with ``workers=1``, so that every CPU model is
    trained single-threaded; on a GPU, several processes share it); how many jobs were trained
    (a stack counts once). Each model depends on its config only (seeded data order,
    initialisation and sampling), so the result does not depend on how many workers ran or in
    which order."""
    dev = resolve_device(device)
    missing = {c.hash(): c for c in cfgs if not has_model(c, cache_dir)}
    if not missing:
        return 0
    prepare_all(list(missing.values()), cache_dir)
    # one job per stack (train.stack_seeds): training any of its configs trains all of them
    jobs: dict[tuple[str, ...], Config] = {}
    for c in missing.values():
        jobs.setdefault(tuple(m.hash() for m in stack_mates(c)), c)
    stack_size = max(len(key) for key in jobs)
    missing = {c.hash(): as_trained(c, dev) for c in jobs.values()}
    workers = workers or default_workers(dev, stack_size)
    bar = progress(total=len(missing), desc="training models (a stack counts once)", unit="job")
    if dev.type != "cpu" and min(workers, len(missing)) == 1:
        for c in missing.values():
            train_or_load_in_run(c, cached_prepared(c, cache_dir), cache_dir, dev)
            bar.update()
    else:
        n = min(workers, len(missing))
        threads = 1 if dev.type == "cpu" else gpu_worker_threads(n)
        # the workers are spawned inside the block, so they inherit its environment
        with environment(gpu_worker_environment(dev)), process_pool(n) as pool:
            futures = [pool.submit(_train_in_worker, c.to_dict(), str(cache_dir), str(dev), threads)
                       for c in missing.values()]
            wait_for_training(futures, bar.update, n, dev)
    bar.close()
    return len(missing)


def wait_for_training(futures: list[Future], done: Callable[[], None], workers: int, dev: torch.device) -> None:
    """Each training job's outcome as it ends (``done`` after each), a worker killed from outside
    named as such (:func:`parallel.result_of`). Models already trained stay in the cache, so a
    rerun resumes with the rest."""
    for f in as_completed(futures):
        result_of(f, f"{workers} workers training models on {dev.type}")
        done()


def train_notebook_models(profile: str, cache_dir: str | Path, device: str = "auto", workers: int | None = None,
                          seeds: list[int] | tuple[int, ...] | None = None) -> tuple[int, int]:
    """Train every model of notebooks 02-06 (:mod:`oneranker.studies`) missing from the cache, in
    one pool; returns how many configs the notebooks use and how many jobs were trained (a
    stack counts once). Full models first, so that the pool does not end waiting on one long model."""
    cfgs = studies.all_configs(profile, seeds)
    cfgs.sort(key=lambda c: (not (c.model.use_ranker and c.model.use_step2), not c.model.use_ranker))
    return len(cfgs), train_all(cfgs, cache_dir, device=device, workers=workers)
