"""Execute the notebook series headlessly with papermill (``make reproduce``, ``make paper``).

The default profile writes the executed notebooks back in place (they are committed executed
with it, for nbval); other profiles write to ``results/<profile>/notebooks/`` so the committed
default-profile notebooks stay untouched. Each notebook is executed into a temporary file and
renamed into place only when it succeeded: a failure never leaves a half-executed notebook.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .gpu_usage import GpuSampler
from .outputs import writing_committed_outputs

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = "quick"
GPU_SAMPLE_MS = 2000   # nvidia-smi's interval while notebooks run (gpu_usage: faster slows the host)
# How long a notebook's kernel may take to stop once its run is stopped (Ctrl-C, SIGTERM): the
# stop interrupts the kernel, whose cell then runs its ``finally`` blocks (a worker pool given up
# to oneranker.parallel.stop_pool's 60 s, then the pool's MPS daemon up to 60 s to quit,
# oneranker.pool.mps; atomic writes removing their temporary files); jupyter_client sends it
# SIGTERM after half of this and SIGKILL after all of it. Its default of 5 s killed a cleanup
# 2.5 s in. A kernel that ends normally exits at once, whatever this is.
KERNEL_STOP_SECONDS = 300.0


def notebook_paths(notebooks: list[str] | None = None) -> list[Path]:
    paths = [Path(n).resolve() for n in notebooks] if notebooks else sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"notebooks not found: {', '.join(missing)}")
    return paths


def check_seeds(seeds: list[int] | tuple[int, ...] | None, results_only: bool = False) -> None:
    """A seed list replacing the notebooks' own must allow a CI: two or more distinct seeds >= 0.
    A results-only run (:func:`run_notebooks`) keeps no table, so one seed is enough there: it
    only fills the cache's results for a later run over every seed."""
    if seeds is None:
        return
    least = 1 if results_only else 2
    if len(seeds) < least or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        why = "" if results_only else " (a CI needs two; --results-only takes one)"
        raise ValueError(f"seeds={list(seeds)}: give at least {least} distinct non-negative seed"
                         f"{'s' if least > 1 else ''}{why}")


def run_notebooks(profile: str, notebooks: list[str] | None = None, seed: int = 0, device: str = "auto",
                  seeds: list[int] | None = None, pretrain: bool = False, workers: int | None = None,
                  results_only: bool = False) -> list[dict]:
    """Run each notebook with papermill; return the run-record entries, each saved in
    ``results/<profile>/run_record.json`` as soon as its notebook ends (a series cut short
    keeps the entries of the notebooks that ran). ``seeds`` replaces the notebooks' own seed
    lists (e.g. fewer seeds for the costly paper profile). ``pretrain`` first trains every model
    of the series in one pool (:func:`oneranker.pool.train_notebook_models`, ``workers``
    processes), recorded as the record's ``pretrain`` entry: the notebooks' own times then
    leave their training out, and a whole run's time is the sum of the two.

    ``results_only`` runs the notebooks for what they leave in the cache's results
    (:class:`oneranker.study.Study`: one entry per model and evaluation, keyed by the models and
    the code) and keeps nothing else: the executed notebooks go to a temporary folder, their
    tables and figures to ``scratch/`` (:mod:`oneranker.outputs`), and no run record is written.
    It is the first sitting of a notebook too long for one (e.g. one seed at a time on a lent
    GPU); a later run over every seed reuses those results and trains only the rest."""
    check_seeds(seeds, results_only)
    from .runtime import resolve_device

    resolve_device(device)  # e.g. `make paper` on a machine without CUDA fails here, not in notebook 02
    paths = notebook_paths(notebooks)
    parameters = {"profile": profile, "seed": seed, "device": device}
    if seeds is not None:
        parameters["seeds"] = list(seeds)
    out_dir = None if profile == DEFAULT_PROFILE else ROOT / "results" / profile / "notebooks"
    records = []
    gpu = GpuSampler(GPU_SAMPLE_MS) if device != "cpu" else None
    try:
        with contextlib.ExitStack() as stack:
            if results_only:            # the executed notebooks go where nothing keeps them
                out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            if pretrain and not results_only and (entry := _pretrain(profile, device, workers, seeds, gpu))["jobs_trained"]:
                # an entry only when it trained something: a rerun over a full cache keeps the real cost
                _write_run_record(profile, seed, seeds, device, [], entry)
            for i, path in enumerate(paths, 1):
                records.append(_run_one(path, i, len(paths), parameters, out_dir, gpu, committed=not results_only))
                if not results_only:
                    _write_run_record(profile, seed, seeds, device, records[-1:])
    finally:
        if gpu is not None:
            gpu.close()
    return records


def _pretrain(profile: str, device: str, workers: int | None, seeds: list[int] | None,
              gpu: GpuSampler | None) -> dict:
    """Train every model of the series missing from ``cache/`` in one pool; the run-record
    entry of that: how many configs the notebooks use and how many training jobs ran (a stack
    of seeds, ``train.stack_seeds``, is one job), the seeds, and :func:`_timed_entry`'s fields."""
    from .pool import train_notebook_models

    print("[pretrain] every model of the notebooks, in one pool", flush=True)
    start, t0 = time.perf_counter(), time.time()
    configs, jobs = train_notebook_models(profile, ROOT / "cache", device=device, workers=workers, seeds=seeds)
    entry = {"configs": configs, "jobs_trained": jobs, "seeds": seeds, **_timed_entry(start, t0, gpu)}
    print(f"    done in {entry['seconds']} s: {jobs} training jobs for {configs} configs"
          + _busy_text(entry), flush=True)
    return entry


def _timed_entry(start: float, t0: float, gpu: GpuSampler | None) -> dict:
    """The fields every run-record entry has: wall seconds since ``start`` (perf_counter), when
    it ended, the provenance, and the GPU's busy share and peak memory since ``t0`` (host
    clock) where the sampler saw it."""
    entry = {"seconds": round(time.perf_counter() - start, 1),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **provenance()}
    busy = gpu.summary(t0, time.time()) if gpu is not None else None
    return entry | (busy or {})


def _busy_text(entry: dict) -> str:
    return f", GPU busy {entry['gpu_busy_percent']:.0f}%" if entry.get("gpu_busy_percent") is not None else ""


def _run_one(path: Path, i: int, n: int, parameters: dict, out_dir: Path | None,
             gpu: GpuSampler | None, committed: bool = True) -> dict:
    """Execute one notebook into a temporary file, renamed into place only when it succeeded;
    its run-record entry: wall time, when it ended, the code version it ran, the GPU's mean
    utilisation and peak memory while it ran (where nvidia-smi sampled them), and its phases
    (:func:`read_phases`)."""
    import papermill as pm

    from .cache import ASKER_ENV
    from .study import PHASE_LOG_ENV, phase_line

    print(f"[{i}/{n}] {path.name} (profile={parameters['profile']}, seed={parameters['seed']})", flush=True)
    target = path if out_dir is None else out_dir / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{path.stem}.", dir=target.parent)
    os.close(fd)
    start, t0 = time.perf_counter(), time.time()
    try:
        with tempfile.TemporaryDirectory() as logs:     # outside the results, gone whatever happens
            phase_log = Path(logs) / "phases.jsonl"
            outputs = writing_committed_outputs() if committed else contextlib.nullcontext()
            with outputs, headless_kernels({PHASE_LOG_ENV: str(phase_log), ASKER_ENV: path.stem}):
                pm.execute_notebook(str(path), tmp, parameters=parameters,
                                    cwd=str(path.parent), progress_bar=True, kernel_name="python3",
                                    **kernel_options())
            phases = read_phases(phase_log, gpu)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    # the profile's config hash: an entry names the stopping rule and every other default its
    # models trained under (a profile whose defaults changed since must run again)
    from .config import make_config

    entry = {"notebook": path.name, "profile_config": make_config(parameters["profile"]).hash(),
             **_timed_entry(start, t0, gpu), "phases": phases}
    where = target.relative_to(ROOT) if target.is_relative_to(ROOT) else "(not kept: results only)"
    print(f"    done in {entry['seconds']} s" + _busy_text(entry) + f" -> {where}", flush=True)
    for row in phases:
        print(f"      {phase_line(row)}", flush=True)
    return entry


def kernel_options() -> dict:
    """papermill's keyword arguments for its kernels (passed on to nbclient): the kernel manager's
    wait for a stopped kernel, :data:`KERNEL_STOP_SECONDS`."""
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"shutdown_wait_time": KERNEL_STOP_SECONDS}})}


def headless_kernels(extra: dict[str, str | None] | None = None) -> contextlib.AbstractContextManager[None]:
    """Environment for the notebook kernels started inside (they inherit this process's): no
    progress-bar widgets (:func:`oneranker.parallel.progress`; a saved widget shows only its
    first frame), plus ``extra`` (a None value leaves that variable as it is), all restored
    afterwards (:func:`oneranker.parallel.environment`)."""
    from .parallel import PROGRESS_BARS_ENV, environment

    return environment({PROGRESS_BARS_ENV: "0", **(extra or {})})


def read_phases(log: Path, gpu: GpuSampler | None) -> list[dict]:
    """The phases a notebook's studies logged (:meth:`oneranker.study.Study._phase`: worlds
    simulated, models trained, models evaluated), each with its wall seconds and, where the
    run's sampler saw the GPU then, its mean utilisation over the phase's window: where a
    notebook's time went, and which of it left the GPU idle."""
    rows = []
    if not log.exists():            # no study phase did work (e.g. notebook 01)
        return rows
    for line in log.read_text().splitlines():
        row = json.loads(line)
        busy = gpu.summary(row["started"], row["ended"]) if gpu is not None else None
        rows.append({"phase": row["phase"], "items": row["items"], "seconds": row["seconds"],
                     "gpu_busy_percent": busy["gpu_busy_percent"] if busy else None})
    return rows


def provenance() -> dict:
    """What a run-record entry ran on: the model code's version (the cache key's, so entries
    from different code are told apart across sittings) and the evaluation code's
    (``cache.EVALUATION_CODE``), the checkout's commit and whether it
    had uncommitted changes, where git knows them, the machine, whether its processes
    shared the GPU under CUDA's MPS, the ``train.compile`` its models were trained with
    where ``--train-compile`` chose it, whether they trained deterministically (``--deterministic``),
    the CUDA allocator setting its pool's GPU workers start with (:func:`oneranker.pool.gpu_worker_environment`),
    and the processor and CPU kernels a CPU-trained model's bits depend on (:func:`cpu_numerics`)."""
    import torch

    from .cache import EVALUATION_CODE, MODEL_CODE, code_version
    from .pool import ALLOC_CONF_ENV, DETERMINISTIC_ENV, MPS_ENV, TRAIN_COMPILE_ENV, gpu_worker_environment

    return {"model_code": code_version(MODEL_CODE), "evaluation_code": code_version(EVALUATION_CODE), **_git_state(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "mps": bool(os.environ.get(MPS_ENV[0])),   # set by pool.mps (--mps) for its clients
            # --train-compile's scope where it applied (CUDA); None: the configs' own (every profile's: off)
            "train_compile": os.environ.get(TRAIN_COMPILE_ENV) if torch.cuda.is_available() else None,
            # --deterministic where it applied (CUDA); None on a machine without CUDA
            "deterministic": bool(os.environ.get(DETERMINISTIC_ENV)) if torch.cuda.is_available() else None,
            # the pool's GPU workers' PYTORCH_CUDA_ALLOC_CONF (the user's, else the pool's); None without CUDA
            "gpu_worker_alloc_conf": (gpu_worker_environment(torch.device("cuda")).get(ALLOC_CONF_ENV)
                                      or os.environ.get(ALLOC_CONF_ENV)) if torch.cuda.is_available() else None,
            "machine": platform.platform(), "cpu_count": os.cpu_count(), **cpu_numerics()}


def cpu_numerics() -> dict:
    """What decides a CPU-trained model's bits besides its config, code and torch build, which the
    model cache does not key: the processor (a VM of the same name can run on another host), the
    kernels torch dispatches to on it (``avx2``, ``avx512``: AVX2 kernels on the same processor
    trained a quick Step-2-only model whose weights ended up to 0.58 apart) and the intra-op threads
    a CPU model trains with (:data:`oneranker.pool.CPU_TRAINING_THREADS`). Two run-record entries
    that differ here may hold other last digits from the same seeds."""
    import torch

    from .pool import CPU_TRAINING_THREADS

    name = platform.processor() or None
    try:        # a VM may name only the vendor ("AMD EPYC"): its family and model tell hosts apart
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        if "model name" in info:
            name = f"{info['model name']} (family {info.get('cpu family')}, model {info.get('model')})"
    except OSError:
        pass
    return {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_training_threads": CPU_TRAINING_THREADS}


COMMIT_ENV = "ONERANKER_COMMIT"


def _git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it (None where git, or the
    repository, is missing: e.g. an unpacked archive). ``ONERANKER_COMMIT`` names the commit
    of a tree copied to a machine with git data that is not its own (the lent GPU machines
    receive the working tree beside a stale ``.git``); whether it had changes is then unknown."""
    if os.environ.get(COMMIT_ENV):
        return {"commit": os.environ[COMMIT_ENV], "uncommitted_changes": None}
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "uncommitted_changes": None if status is None else bool(status)}


def _write_run_record(profile: str, seed: int, seeds: list[int] | None, device: str, records: list[dict],
                      pretrain: dict | None = None) -> None:
    """Merge ``records`` (run-record entries) into ``results/<profile>/run_record.json``,
    atomically: a notebook's entry replaces its earlier one, the others' stay (a series run
    across sittings keeps each notebook's provenance); ``pretrain`` replaces the pretraining
    entry, which is otherwise kept."""
    import torch

    from .cache import atomic_write_text

    log = ROOT / "results" / profile / "run_record.json"
    old = json.loads(log.read_text()) if log.exists() else {}
    previous = old.get("runs", [])
    ran = {r["notebook"] for r in records}
    runs = sorted([r for r in previous if r["notebook"] not in ran] + records, key=lambda r: r["notebook"])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    record = {"profile": profile, "seed": seed, "seeds": list(seeds) if seeds is not None else "notebook defaults",
              "device": device, "gpu": gpu, "python": platform.python_version(),
              "torch": torch.__version__, "machine": platform.platform(), "processor": platform.processor(),
              "cpu_count": os.cpu_count(), "runs": runs}
    if pretrain or "pretrain" in old:
        record["pretrain"] = pretrain or old["pretrain"]
    atomic_write_text(log, json.dumps(record, indent=1))


def code_versions(record: dict) -> set[str]:
    """The model-code versions a run record's entries ran, the pretraining's included (entries
    older than this field count as unknown): a series committed as one result must show exactly one."""
    entries = record.get("runs", []) + ([record["pretrain"]] if "pretrain" in record else [])
    return {r.get("model_code", "unknown") for r in entries}


# --- the notebook suite as a regression test (``make test``) ---------------------------------
# Executing every notebook at the default profile takes over an hour on 2 cores once the
# models train to convergence, so ``make test`` runs the whole series top to bottom at the toy
# ``smoke`` profile instead, in a scratch copy (its own cache, results and figures), and
# compares every table it writes with the tables recorded in ``tests/smoke_tables``
# (``make smoke-tables`` records them). The exact check of the committed default-profile
# notebooks is nbval's, in ``make test-notebooks``.
SMOKE_SEEDS = (0, 1)
ML100K_ENV = "ONERANKER_ML100K"


def ml100k_folder() -> Path:
    """Where MovieLens-100k is looked for: ``$ONERANKER_ML100K``, else ``../shared/data/ml-100k``
    beside the repository (notebook 07 and the real-data tests; it is not shipped)."""
    return Path(os.environ.get(ML100K_ENV, ROOT.parent / "shared" / "data" / "ml-100k")).resolve()
SMOKE_TABLES = ROOT / "tests" / "smoke_tables"
# Columns that measure this machine rather than the code (wall times): never compared.
_MACHINE_COLUMNS = ("seconds", "time", "train s", " ms", "speed")


def execute_copies(workdir: Path, profile: str = "smoke", seeds: tuple[int, ...] = SMOKE_SEEDS,
                   notebooks: list[str] | None = None, workers: int | None = None) -> Path:
    """Execute copies of the notebooks inside ``workdir`` (``workdir/notebooks``, with
    ``../cache``, ``../results`` and ``../figures`` of its own, so the repository's files are
    never touched), after training every notebook model in one pool. Returns the folder of
    the tables they wrote (``workdir/results/<profile>``). Raises on the first failing cell."""
    import shutil

    import papermill as pm

    from .pool import train_notebook_models

    workdir = Path(workdir)
    nb_dir = workdir / "notebooks"
    # the copies run outside the repository, where notebook 07's relative default path does not
    # lead to MovieLens-100k: name the folder for their kernels (they inherit the environment)
    ml100k = str(ml100k_folder()) if (ml100k_folder() / "u.data").is_file() else None
    nb_dir.mkdir(parents=True, exist_ok=True)
    paths = notebook_paths(notebooks)
    train_notebook_models(profile, workdir / "cache", device="cpu", workers=workers, seeds=seeds)
    with headless_kernels({ML100K_ENV: ml100k}):
        for path in paths:
            copy = nb_dir / path.name
            shutil.copy(path, copy)
            print(f"executing {path.name} (profile={profile}, seeds={list(seeds)})", flush=True)
            with writing_committed_outputs():     # the copy's own figures/ and results/
                pm.execute_notebook(str(copy), str(copy),
                                    parameters={"profile": profile, "seeds": list(seeds), "device": "cpu"},
                                    cwd=str(nb_dir), progress_bar=False, kernel_name="python3",
                                    **kernel_options())
    return workdir / "results" / profile


# A number as the result tables write it ("0.1234", "+1.2", "-3e-05"); the rest of a cell is its words
CELL_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def cell_numbers(cell: object) -> list[float]:
    """Every number in a table cell ("0.1234 ± 0.0056", "+1.2% ± 0.3%", 0.5, "") in order."""
    if isinstance(cell, (int, float)):
        return [] if cell != cell else [float(cell)]   # NaN: no number
    return [float(x) for x in CELL_NUMBER.findall(str(cell))]


def read_result_table(path: Path) -> "pd.DataFrame":
    """A result table as strings, exactly as written (no float parsing, no NA guessing): what two
    runs' tables are compared on, cell by cell."""
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def compare_tables(got: Path, expected: Path, rtol: float = 1e-3, atol: float = 2e-4) -> list[str]:
    """Differences between the CSV tables of two folders, as sentences (none = they agree).
    Same files, same row and column labels, the same words in every cell, and every number
    within ``atol + rtol * |expected|``: a flipped last printed digit passes, a changed
    result does not (CPU training is deterministic for a machine and torch build; another
    CPU may need ``make smoke-tables``). Wall-time columns are skipped."""
    problems = []
    got_names = {p.name for p in Path(got).glob("*.csv")}
    want_names = {p.name for p in Path(expected).glob("*.csv")}
    for name in sorted(want_names - got_names):
        problems.append(f"{name}: not written by the notebooks")
    for name in sorted(got_names - want_names):
        problems.append(f"{name}: written but not recorded in {expected} (make smoke-tables)")
    for name in sorted(got_names & want_names):
        a, b = read_result_table(Path(got) / name), read_result_table(Path(expected) / name)
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"{name}: columns or shape differ ({list(a.columns)} {a.shape} vs {list(b.columns)} {b.shape})")
            continue
        for col in a.columns:
            if any(m in col.lower() for m in _MACHINE_COLUMNS):
                continue
            for i, (x, y) in enumerate(zip(a[col], b[col])):
                nx, ny = cell_numbers(x), cell_numbers(y)
                words_x, words_y = [w for w in str(x).split() if not cell_numbers(w)], [w for w in str(y).split() if not cell_numbers(w)]
                if len(nx) != len(ny) or words_x != words_y or any(abs(p - q) > atol + rtol * abs(q) for p, q in zip(nx, ny)):
                    problems.append(f"{name}, row {i}, column {col!r}: {x!r} (recorded: {y!r})")
    return problems


def record_smoke_tables(workers: int | None = None) -> Path:
    """Execute the notebook copies at ``smoke`` and record their tables in ``tests/smoke_tables``
    (replaced as a whole, only once every notebook ran): ``make smoke-tables``, after a change
    that is meant to move the notebooks' results."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        tables = execute_copies(Path(tmp), workers=workers)
        staged = SMOKE_TABLES.with_name(SMOKE_TABLES.name + ".new")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(tables, staged, ignore=shutil.ignore_patterns("notebooks", "*.json"))
        old = SMOKE_TABLES.with_name(SMOKE_TABLES.name + ".old")
        if SMOKE_TABLES.exists():
            os.replace(SMOKE_TABLES, old)
        os.replace(staged, SMOKE_TABLES)
        shutil.rmtree(old, ignore_errors=True)
    return SMOKE_TABLES
