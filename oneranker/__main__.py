"""Command line: ``python -m oneranker {prepare,train,evaluate,pretrain,reproduce} ...``.

Every argument is checked (config fields, paths, the output folder) before any work starts.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from typing import TYPE_CHECKING

from .config import Config, ConfigError, make_config
from .parallel import exit_on_sigterm

if TYPE_CHECKING:
    import torch
from .schema import DataError

SOURCES = ("adworld", "movielens", "taobao")


def parse_overrides(pairs: list[str]) -> dict:
    """``["world.n_users=500", "semantic_ids.levels=2"]`` -> dotted-key dict (values as literals)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set expects section.field=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def check_out_parent(out: Path) -> None:
    """The folder ``out`` will be written into can be made and written: its nearest existing
    ancestor is a writable directory (checked before building anything)."""
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"--out {out}: cannot create it ({parent} is not a writable directory)")


def check_positive(name: str, value: int | None) -> None:
    """An optional count option (``--workers``, ``--eval-requests``) must be at least 1."""
    if value is not None and value < 1:
        raise ConfigError(f"{name} {value}: give at least 1")


@contextlib.contextmanager
def _named_if_damaged(folder: str | Path, what: str, remedy: str) -> Iterator[None]:
    """Reading a prepared dataset: a damaged table (truncated Arrow file, missing split) raised
    as a DataError naming the folder and the remedy instead of a raw pyarrow/datasets traceback."""
    try:
        yield
    except DataError:
        raise
    except (OSError, ValueError) as e:       # pyarrow.ArrowInvalid is a ValueError
        raise DataError(f"{what} {folder} is damaged ({type(e).__name__}: {str(e)[:160]}); {remedy}") from None


def cmd_prepare(args: argparse.Namespace) -> None:
    from .data import build_prepared, load_logs

    cfg = make_config(args.profile, seed=args.seed, **parse_overrides(args.set))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise DataError(f"--out {out} exists and is not empty; pass --force to replace it")
    check_out_parent(out)
    logs = load_logs(args.source, cfg, args.path)
    prepared = build_prepared(logs, cfg)
    prepared.save(out, overwrite=args.force)
    m = prepared.meta
    print(f"wrote {out}: {m['n_users']} users, {m['n_items']} ads, requests {m['n_requests']}, skips {m['skips']}")


def cmd_train(args: argparse.Namespace) -> None:
    """Train one config of the simulated market into the model cache (or report the cached
    model), then print its learning curve and its test metrics against the market's truth."""
    from .runtime import resolve_device

    cfg = make_config(args.profile, seed=args.seed, **parse_overrides(args.set))
    check_positive("--eval-requests", args.eval_requests)
    try:  # an unknown or unavailable device is refused before any work
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"--device {args.device!r}: {e}") from None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # started by torchrun: one process per device, DDP over the global batch
        import torch
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        if args.data:
            _train_real_and_report(cfg, args, device)
        else:
            _train_and_report(cfg, args, device)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_and_report(cfg: Config, args: argparse.Namespace, device: torch.device) -> None:
    """Train (one process or one rank of several) and, on rank 0, print the report."""
    from .data import cached_prepared
    from .evaluate import list_metrics, model_lists, truth_set
    from .pool import train_or_load_in_run
    from .world import World

    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:  # rank 0 builds the dataset (again, if damaged); the others then read it from the cache
        cached_prepared(cfg, args.cache, progress=True)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        dist.barrier()
    prepared = cached_prepared(cfg, args.cache, progress=False)
    # the pool's thread count on the CPU: the model cached here is the one a notebook's pool trains
    model, history = train_or_load_in_run(cfg, prepared, args.cache, device, progress=rank == 0)
    if rank != 0:
        return
    print(f"model {cfg.hash()} in {Path(args.cache) / 'models' / cfg.hash()}")
    for e in history.epochs:
        print(f"  epoch {e['epoch']}: train {e['train_loss']:.4f}  valid {e['valid_loss']:.4f}")
    ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=args.eval_requests)
    for name, lists in model_lists(model, cfg, prepared, ts, cfg.train.n_candidates, device=device).items():
        m = list_metrics(lists, ts)
        print(f"  {name:9s} " + "  ".join(f"{k} {m[k]:.4f}" for k in ("HR@5", "NDCG@5", "valueHR@5", "ecpmNDCG@5")))


def _real_data(folder: str | None) -> tuple:
    """(prepared dataset, fingerprint) of a folder written by ``prepare``; a clear error
    naming the folder if it is missing or incomplete."""
    from .data import load_prepared
    from .realdata import dataset_fingerprint

    if folder is None:
        raise ConfigError("--data is required: a folder written by `python -m oneranker prepare`")
    with _named_if_damaged(folder, "prepared dataset", "delete it and prepare it again"):
        prepared = load_prepared(folder)   # itself a DataError naming what is missing
    return prepared, dataset_fingerprint(folder)


def _print_real(rows: list[dict]) -> None:
    print(f"  {'list':28s} " + "  ".join(f"{k:>8s}" for k in ("HR@10", "NDCG@10", "HR@20")))
    for r in rows:
        print(f"  {r['list']:28s} " + "  ".join(f"{r.get(k, float('nan')):8.4f}" for k in ("HR@10", "NDCG@10", "HR@20")))
    print(f"  ({rows[0]['requests']} test requests: each user's last, full ranking over all items, seen items kept)")


def _train_real_and_report(cfg: Config, args: argparse.Namespace, device: torch.device) -> None:
    """``train --data DIR``: train on a prepared real-data folder, then print the protocol's
    metrics beside popularity and random."""
    from .realdata import evaluate_real
    from .cache import model_folder
    from .pool import train_or_load_in_run

    prepared, fingerprint = _real_data(args.data)
    rank = int(os.environ.get("RANK", "0"))
    model, history = train_or_load_in_run(cfg, prepared, args.cache, device, progress=rank == 0,
                                          fingerprint=fingerprint)
    if rank != 0:
        return
    print(f"model {cfg.hash()} of dataset {fingerprint} in {model_folder(cfg, args.cache, fingerprint)}")
    for e in history.epochs:
        print(f"  epoch {e['epoch']}: train {e['train_loss']:.4f}  valid {e['valid_loss']:.4f}")
    _print_real(evaluate_real({"model": (model, cfg)}, prepared, seed=cfg.seed, device=str(device)))


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``evaluate --data DIR``: the cached model of this config and dataset (trained by
    ``train --data DIR`` with the same --profile/--seed/--set) on the test split."""
    from .realdata import evaluate_real
    from .cache import model_folder
    from .runtime import resolve_device
    from .train import load_trained

    cfg = make_config(args.profile, seed=args.seed, **parse_overrides(args.set))
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"--device {args.device!r}: {e}") from None
    prepared, fingerprint = _real_data(args.data)
    folder = model_folder(cfg, args.cache, fingerprint)
    cached = load_trained(cfg, prepared, args.cache, device=str(device), fingerprint=fingerprint)
    if cached is None:      # none, or a damaged one that was just set aside: evaluate never trains
        raise ConfigError(f"no usable trained model of config {cfg.hash()} for dataset {fingerprint} in {folder}; "
                          f"train it first: python -m oneranker train --data {args.data} (same --profile/--seed/--set)")
    model, _ = cached
    _print_real(evaluate_real({"model": (model, cfg)}, prepared, seed=cfg.seed, device=str(device)))


def check_gpu_sharing(args: argparse.Namespace) -> None:
    """``--mps`` needs a CUDA device and CUDA's MPS control program: refused before any work."""
    from .pool import check_mps

    if args.mps:
        check_mps(args.device)


def train_compile_env(args: argparse.Namespace) -> dict[str, str | None]:
    """``--train-compile``: the environment that makes the run's training use that
    ``train.compile`` on CUDA (:func:`oneranker.pool.as_trained`), checked against the field's
    choices before any work; nothing when not given."""
    from .config import TrainConfig
    from .pool import TRAIN_COMPILE_ENV

    if args.train_compile is None:
        return {}
    choices = next(f.metadata["choices"] for f in dataclasses.fields(TrainConfig) if f.name == "compile")
    if args.train_compile not in choices:
        raise ConfigError(f"--train-compile {args.train_compile!r}: choose one of {', '.join(choices)}")
    return {TRAIN_COMPILE_ENV: args.train_compile}


def deterministic_env(args: argparse.Namespace) -> dict[str, str | None]:
    """``--deterministic``: the environment that makes the run's CUDA training take torch's
    deterministic algorithms (:func:`oneranker.pool.run_algorithms`), with cuBLAS's deterministic
    workspace; refused before any work on a device that is not CUDA, whose training is
    deterministic already; nothing when not given."""
    from .pool import CUBLAS_DETERMINISTIC, DETERMINISTIC_ENV
    from .runtime import resolve_device

    if not args.deterministic:
        return {}
    if resolve_device(args.device).type != "cuda":
        raise ConfigError(f"--deterministic makes CUDA training deterministic; --device {args.device} is not CUDA, "
                          "and training on the CPU is deterministic already")
    return {DETERMINISTIC_ENV: "1", **CUBLAS_DETERMINISTIC}


def training_env(args: argparse.Namespace) -> dict[str, str | None]:
    """The environment of a run that trains many models (``reproduce``, ``pretrain``): its
    ``--train-compile`` and ``--deterministic``, each checked before any work."""
    return {**train_compile_env(args), **deterministic_env(args)}


def cmd_pretrain(args: argparse.Namespace) -> None:
    from .parallel import environment
    from .pool import mps, train_notebook_models

    from .reproduce import check_seeds
    from .runtime import resolve_device

    make_config(args.profile)
    check_positive("--workers", args.workers)
    try:   # bad --seeds or --device: an error before any work
        check_seeds(args.seeds)
        resolve_device(args.device)
        check_gpu_sharing(args)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    run_env = training_env(args)
    with mps(args.mps), environment(run_env):
        n, trained = train_notebook_models(args.profile, args.cache, device=args.device, workers=args.workers,
                                           seeds=args.seeds)
    print(f"{n} notebook models of profile {args.profile} are in {args.cache} ({trained} trained now)")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from .parallel import environment
    from .pool import mps
    from .reproduce import notebook_paths, run_notebooks

    from .reproduce import check_seeds
    from .runtime import resolve_device

    make_config(args.profile)  # validate everything before training a model or starting a kernel
    check_positive("--workers", args.workers)
    if args.notebooks is not None and not args.notebooks:
        raise ConfigError("--notebooks names no notebook; leave it out to run them all")
    try:
        check_seeds(args.seeds, args.results_only)
        if args.results_only and not args.notebooks:
            raise ValueError("--results-only needs --notebooks: it is one notebook's sitting, not the series'")
        resolve_device(args.device)   # e.g. `make paper` on a machine without CUDA fails here
        notebook_paths(args.notebooks)
        check_gpu_sharing(args)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    run_env = training_env(args)
    with mps(args.mps), environment(run_env):   # the training workers and the notebooks' kernels start inside
        # the whole series: every model first, in one pool (oneranker.studies), recorded as the pretraining
        run_notebooks(args.profile, notebooks=args.notebooks, seed=args.seed, device=args.device, seeds=args.seeds,
                      pretrain=not args.notebooks, workers=args.workers, results_only=args.results_only)


def add_training_run_options(parser: argparse.ArgumentParser) -> None:
    """How a run that trains many models on a GPU trains them (``reproduce``, ``pretrain``)."""
    parser.add_argument("--mps", action="store_true",
                        help="run the GPU's processes under CUDA's Multi-Process Service (a private daemon for "
                             "the run; oneranker.pool.mps): their kernels then share the GPU at once instead of "
                             "in time slices; needs nvidia-cuda-mps-control")
    parser.add_argument("--deterministic", action="store_true",
                        help="train on CUDA with torch's deterministic algorithms (oneranker.pool.run_algorithms): "
                             "the same seed then gives the same weights on the same GPU and software, at a cost "
                             "benchmarks/training_step.py measures; a runtime choice, so the models' cache keys "
                             "are unchanged; recorded in the run record")
    parser.add_argument("--train-compile", default=None, metavar="SCOPE",
                        help="train.compile for every model this run trains on CUDA, in place of the profile's "
                             "(off, blocks or loss; a runtime field, so the models' cache keys are unchanged; "
                             "oneranker.pool.as_trained); recorded in the run record")


def main(argv: list[str] | None = None) -> int:
    """The command line; its exit status (2 for a bad parameter or file, named on stderr).
    Run as a program (``argv`` None: ``python -m oneranker``, the ``oneranker`` script, a
    torchrun rank), a SIGTERM stops it through its ``finally`` blocks, as Ctrl-C does
    (:func:`oneranker.parallel.exit_on_sigterm`); called with ``argv`` (the tests), the caller's
    signal handling is left alone."""
    if argv is None:
        exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m oneranker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="logs -> prepared dataset folder (datasets on disk)")
    p.add_argument("--source", choices=SOURCES, required=True)
    p.add_argument("--path", help="folder with the source's files (movielens, taobao)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. --set semantic_ids.codebook_size=8")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_prepare)
    t = sub.add_parser("train", help="train one model of the simulated market (cached by config hash)")
    t.add_argument("--profile", default="quick")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. --set model.use_ranker=False")
    t.add_argument("--cache", default="cache", help="dataset and model cache folder")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--eval-requests", type=int, default=1000, help="test requests to evaluate on")
    t.add_argument("--data", default=None, help="a prepared folder of real logs (prepare --source movielens|taobao); "
                                                "default: the simulated market of the config")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="evaluate a trained model on a prepared real-data folder (full ranking)")
    e.add_argument("--data", required=True, help="a folder written by prepare")
    e.add_argument("--profile", default="quick")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    e.add_argument("--cache", default="cache", help="model cache folder")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("reproduce", help="execute the notebooks headlessly with papermill")
    r.add_argument("--profile", default="quick")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--notebooks", nargs="*", default=None, help="notebook files (default: all)")
    r.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="replace the notebooks' seed lists (default: each notebook's own)")
    r.add_argument("--workers", type=int, default=None,
                   help="training processes of the up-front pool (default: one per core up to 4 on CPU)")
    r.add_argument("--results-only", action="store_true",
                   help="a first sitting of a notebook too long for one: run it only to fill the cache's "
                        "results (one seed is enough), keeping no notebook, table, figure or run record; "
                        "a later run over every seed reuses them (oneranker.reproduce.run_notebooks)")
    add_training_run_options(r)
    r.set_defaults(func=cmd_reproduce)
    w = sub.add_parser("pretrain", help="train every model the notebooks use, in one pool (oneranker.studies)")
    w.add_argument("--profile", default="quick")
    w.add_argument("--cache", default="cache", help="model cache folder (the notebooks read ../cache)")
    w.add_argument("--device", default="auto")
    w.add_argument("--workers", type=int, default=None, help="training processes (default: one per core up to 4 on CPU)")
    w.add_argument("--seeds", type=int, nargs="+", default=None, help="replace the notebooks' seed lists")
    add_training_run_options(w)
    w.set_defaults(func=cmd_pretrain)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
