"""Learning curves at the paper profile: how fast, and how far, each variant learns.

Several variants (of one seed, or of each of ``--seeds``) train at the same time on one GPU (one process each, as
``pool.train_all`` runs them). After every epoch each prints its training and validation loss,
the epoch's wall time and the part of it spent building batches on the CPU; every
``--eval-every`` epochs it also scores the current weights on ``--eval-requests`` test
requests against the world's truth: HR@5 of the generated list, the served (ranked) list and
each generator head, beside the random, popularity, co-occurrence and interest-oracle lists of
the same requests, and the share of the popularity -> oracle gap closed. Early stopping is
switched off (``--patience``) so that the whole curve is seen: this measures where a curve
flattens, to choose the paper profile's stopping rule and budget from it, not a result.

    python scripts/paper_learning.py --device cuda --minutes 8 --out results/paper/learning.jsonl

``--seeds 0 1 2`` runs every variant on each seed, all at once (one process per seed and
variant); every record names its seed. With ``--stacked`` the seeds of a variant train as one
stacked model (``train.stack_seeds``, :mod:`oneranker.stacked`), one process per variant; each
seed still gets its own records.

One process (the first variant asked for, on the first seed) also profiles three training steps after its first epoch:
the top operators by GPU time and the CPU and GPU totals, to show what bounds a step.

``--set key=value`` changes the base config of every variant, e.g. a quick-profile model over
paper-length histories, on a CPU (the "long-history lab" of docs/learning.md):

    python scripts/paper_learning.py --profile quick --device cpu --set world.mean_requests=30 \
        world.max_requests=120 world.organic_per_request=6 data.max_history_len=512 --variants ...

Runs 1 and 2 of the committed paper runs (``results/paper/learning_probes_h200_run*.jsonl``,
docs/learning.md) were made by an earlier version: their "queries + last state" variants patched the computation of
``model.task_query='learned+last'`` into ``Step2.forward``; their ``batch_build_s`` is the
time to collate each batch and copy it to the GPU, in the step (now ``collate_s`` and
``wait_s``); their profile made three extra training steps in the first variant's run (now
undone) and its GPU time per step counted operators and their kernels twice (the profile
table's "Self CUDA time total" is the right total).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

# Every variant is written relative to the settings the probes started from (the paper's
# literal reading: learned task queries, PyTorch's initialisation of Step 2, L_DC over all the
# ranker's candidates), so that each name keeps its meaning, and the committed runs stay
# reproducible, after the defaults changed (config.py: task_query, step2_init, dc_candidates).
PROBE_BASE = {"model.task_query": "learned", "model.step2_init": "default",
              "train.dc_candidates": "impressions+negatives"}
# ... and, at the paper profile, its learning rate and warm-up before run 7 (config.py now
# trains it at 1e-3 after three epochs of warm-up: "today's defaults, lr 1e-3, warm-up 3 epochs")
# ... and the cosine schedule the probes ran on before the paper profile took the plateau one
# (docs/paper_profile.md, "Trained to convergence?"): --epochs stays the schedule's length
PROBE_BASE_OF_PROFILE = {"paper": {"train.lr": 2e-3, "train.warmup_steps": 30, "train.lr_schedule": "cosine"}}


def probe_base(profile: str) -> dict:
    """The settings every variant's name is written against, at ``profile``."""
    return {**PROBE_BASE, **PROBE_BASE_OF_PROFILE.get(profile, {})}

# A probe-only switch, not a config field: the variant trains in fp32 (no autocast, also on
# the GPU) or under bf16 autocast (also on the CPU), to tell a precision effect from an
# optimisation one. Its records name the precision; their config hash is the same variant's
# at the Trainer's own precision (bf16 autocast on CUDA, fp32 on the CPU). Only the training
# steps change: the validation loss (early stopping's number) and the scoring keep the
# Trainer's precision, the same for every variant of a device, so they stay comparable.
PROBE_AUTOCAST = "probe.autocast"
def _paper_steps_per_epoch() -> int:
    """Optimiser steps in one epoch of the paper profile (its requests per epoch / batch size)."""
    from oneranker.config import make_config

    tc = make_config("paper").train
    return math.ceil(tc.max_train_requests / tc.batch_size)


PAPER_3_EPOCHS = 3 * _paper_steps_per_epoch()      # warm-up steps: three paper-profile epochs
TODAY = {"model.task_query": "learned+last", "model.step2_init": "zero", "train.dc_candidates": "impressions"}
BIG = {"train.batch_size": 1024, "train.lr": 4e-3, "train.warmup_steps": 10}
VARIANTS: dict[str, dict] = {
    "full, batch 256": {},
    "full, batch 1024, lr 4e-3": {"train.batch_size": 1024, "train.lr": 4e-3, "train.warmup_steps": 10},
    "Step 2 only, batch 256": {"model.use_ranker": False},
    "Step-1 generator, batch 1024, lr 4e-3": {"model.use_step2": False, "model.use_ranker": False,
                                              "train.batch_size": 1024, "train.lr": 4e-3,
                                              "train.warmup_steps": 10},
    "Step 2 only, batch 1024, lr 4e-3": {"model.use_ranker": False, **BIG},
    "Step 2 only, queries + last state, batch 1024, lr 4e-3": {"model.use_ranker": False, **BIG,
                                                                "model.task_query": "learned+last"},
    "full, queries + last state, batch 1024, lr 4e-3": {**BIG, "model.task_query": "learned+last"},
    "Step 2 only, no Fake Items, batch 1024, lr 4e-3": {"model.use_ranker": False, "model.use_fake_items": False,
                                                        **BIG},
    # why the full model lags Step 2 (the next probe): all with queries that read the newest state
    "full, queries + last state, batch 256": {"model.task_query": "learned+last"},
    "full, queries + last state, no DC, batch 256": {"model.task_query": "learned+last", "train.gamma": 0.0},
    "full, queries + last state, 3 interest tasks, batch 256": {"model.task_query": "learned+last",
                                                                "model.n_interest_tasks": 3},
    "Step 2 only, queries + last state, batch 256": {"model.use_ranker": False, "model.task_query": "learned+last"},
    # zero-initialised Step-2 branches (model.step2_init): Step 2 starts as its normalised queries
    "full, queries + last state, zero-initialised branches": {"model.task_query": "learned+last",
                                                              "model.step2_init": "zero"},
    "full, zero-initialised branches": {"model.step2_init": "zero"},
    "Step 2 only, queries + last state, zero-initialised branches": {
        "model.use_ranker": False, "model.task_query": "learned+last", "model.step2_init": "zero"},
    "Step 2 only, zero-initialised branches": {"model.use_ranker": False, "model.step2_init": "zero"},
    "Step-1 generator": {"model.use_step2": False, "model.use_ranker": False},
    # why the full model lags Step 2 alone: the DC loss, and the random negatives it is computed over
    "full, queries + last state, zero-initialised branches, no DC": {
        "model.task_query": "learned+last", "model.step2_init": "zero", "train.gamma": 0.0},
    "full, queries + last state, zero-initialised branches, no random negatives": {
        "model.task_query": "learned+last", "model.step2_init": "zero", "train.n_random_negatives": 0},
    "full, queries + last state, no DC": {"model.task_query": "learned+last", "train.gamma": 0.0},
    "full, queries + last state, zero-initialised branches, DC over impressions": TODAY,   # = today's defaults
    "Step 2 only, today's defaults": {"model.use_ranker": False, **TODAY},
    # run 6: today's defaults learn on seed 0 only (seed 1 sits at popularity, seed 2 starts late);
    # the quick-sized model learns on seed 1 of the same world (CPU), so the next probe is the
    # paper-sized model's optimisation: a lower peak learning rate and a longer warm-up
    "today's defaults, lr 1e-3": {**TODAY, "train.lr": 1e-3},
    "today's defaults, warm-up 3 epochs": {**TODAY, "train.warmup_steps": PAPER_3_EPOCHS},
    "today's defaults, lr 1e-3, warm-up 3 epochs": {**TODAY, "train.lr": 1e-3, "train.warmup_steps": PAPER_3_EPOCHS},
    "today's defaults, fp32 (no autocast)": {**TODAY, PROBE_AUTOCAST: "fp32"},
    "today's defaults, dense attention (SDPA)": {**TODAY, "model.attention": "sdpa"},
    "today's defaults, bf16 autocast (also on a CPU)": {**TODAY, PROBE_AUTOCAST: "bf16"},
    # the CPU lab's quick-sized model (which learns seeds 1 and 2 of the paper worlds there) on the
    # GPU's arithmetic (FlexAttention, padding, CUDA autocast): tells the model's size from the path
    "today's defaults, quick-sized model": {**TODAY, "model.d_model": 32, "model.n_heads": 2,
                                            "model.step1_layers": 2, "model.step2_layers": 1,
                                            "model.n_fake_items": 16},
    # the same at the default (quick) profile's batch and learning rate
    "quick: full": {},
    "quick: full, queries + last state": {"model.task_query": "learned+last"},
    "quick: Step 2 only": {"model.use_ranker": False},
    "quick: Step 2 only, queries + last state": {"model.use_ranker": False, "model.task_query": "learned+last"},
    "quick: Step-1 generator": {"model.use_step2": False, "model.use_ranker": False},
    "quick: Step 2 only, queries + last state, no Fake Items": {"model.use_ranker": False,
                                                                "model.task_query": "learned+last",
                                                                "model.use_fake_items": False},
    "quick: Step 2 only, queries + last state, one shared query": {"model.use_ranker": False,
                                                                   "model.task_query": "learned+last",
                                                                   "model.use_task_tokens": False},
    "quick: Step 2 only, queries + last state, zero-initialised branches": {
        "model.use_ranker": False, "model.task_query": "learned+last", "model.step2_init": "zero"},
    "quick: Step 2 only, zero-initialised branches": {"model.use_ranker": False, "model.step2_init": "zero"},
}


def base_overrides(args: argparse.Namespace) -> dict:
    """``--set key=value`` as config overrides under every variant's (values parsed as JSON,
    else kept as text): e.g. a quick-profile model over paper-length histories on a CPU."""
    out = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value, e.g. data.max_history_len=512")
        if key in probe_base(args.profile):
            raise SystemExit(f"--set {key}: every variant's name is relative to the probes' base {key}; "
                             f"choose or add a variant that sets it instead")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _emit(record: dict, args: argparse.Namespace) -> None:
    """Print one JSON record (with the run's seed) and append it to ``--out``."""
    line = json.dumps({"seed": args.seed, **record})
    out = args.out
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def run_variant(name: str, overrides: dict, args: argparse.Namespace, deadline: float) -> str:
    """Train and score one variant (in a worker process); errors come back as text, since some
    (the compiler's) cannot be pickled."""
    try:
        return _run_variant(name, overrides, args, deadline)
    except Exception:
        import traceback

        raise RuntimeError(f"variant {name!r} failed:\n{traceback.format_exc()}") from None


def _run_variant(name: str, overrides: dict, args: argparse.Namespace, deadline: float) -> str:
    import torch

    from oneranker.stacked import StackedTrainer

    if args.device == "cpu":
        torch.set_num_threads(1)   # one single-threaded process per core, as pool.train_all trains
    if not args.stacked:
        _finish(*_probe(name, overrides, args, deadline))
        return name
    probes = [_probe(name, overrides, argparse.Namespace(**{**vars(args), "seed": s}), deadline) for s in args.seeds]
    StackedTrainer([p[0] for p in probes]).fit()   # each probe's model then holds its best weights
    for p in probes:
        _finish(*p)
    return name


def _finish(trainer, name: str, cfg, prepared, ts, args: argparse.Namespace) -> None:
    """The final record of a probe whose training has ended: its best weights scored."""
    from oneranker.evaluate import list_metrics, model_lists

    history = trainer.history
    lists = model_lists(trainer.model, cfg, prepared, ts, cfg.train.n_candidates, device=trainer.device, per_head=True)
    _emit({"variant": name, "final": True, "best_epoch": history.best_epoch, "epochs": len(history.epochs),
           "cut_by_wall_limit": trainer.cut_by_wall_limit,
           "stopped_early": history.stopped_early and not trainer.cut_by_wall_limit,
           **{f"HR@5 {k}": round(list_metrics(v, ts, ks=(5,))["HR@5"], 5) for k, v in lists.items()}}, args)


def _probe(name: str, overrides: dict, args: argparse.Namespace, deadline: float) -> tuple:
    """A probing Trainer of one variant and seed, and what :func:`_finish` scores it with.
    ``--stacked``: the config names the stack of ``--seeds`` (``train.stack_seeds``)."""
    import torch

    from oneranker.config import make_config
    from oneranker.data import cached_prepared
    from oneranker.evaluate import list_metrics, model_lists, truth_set
    from oneranker.profiling import profile_training_steps
    from oneranker.train import Trainer
    from oneranker.world import World

    overrides = dict(overrides)
    precision = overrides.pop(PROBE_AUTOCAST, "default")
    stack = {"train.stack_seeds": tuple(args.seeds)} if args.stacked else {}
    cfg = make_config(args.profile, seed=args.seed, **{**probe_base(args.profile), **base_overrides(args),
                                                        "train.patience": args.patience,
                                                        "train.epochs": args.epochs, **overrides, **stack})
    prepared = cached_prepared(cfg, args.cache, progress=False)
    ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=args.eval_requests)

    class Probe(Trainer):
        """The trainer, timing its batch collation (``collate_s``: in the prefetching thread on a
        GPU, overlapped with the steps) and the time the steps waited for their batches
        (``wait_s``), and scoring the weights every few epochs."""

        collate_seconds = wait_seconds = 0.0
        cut_by_wall_limit = False

        def _autocast(self):
            """The Trainer's autocast (bf16 on CUDA, none on the CPU), or a probe-only precision."""
            if precision == "fp32":
                return torch.autocast(self.device.type, enabled=False)
            if precision == "bf16":
                return torch.autocast(self.device.type, dtype=torch.bfloat16)
            return super()._autocast()

        def host_batch(self, split, indices):
            t = time.perf_counter()
            out = super().host_batch(split, indices)
            self.collate_seconds += time.perf_counter() - t
            return out

        def host_batches(self, batches, first):
            inner = super().host_batches(batches, first)
            while True:
                t = time.perf_counter()
                try:
                    host = next(inner)
                except StopIteration:
                    return
                self.wait_seconds += time.perf_counter() - t
                yield host

        def _end_epoch(self, epoch: int) -> None:
            super()._end_epoch(epoch)
            rec = {"variant": name, "config": cfg.hash(), **({"precision": precision} if precision != "default" else {}), **self.history.epochs[-1],
                   "collate_s": round(self.collate_seconds, 2), "wait_s": round(self.wait_seconds, 2),
                   "steps": self.step}
            self.collate_seconds = self.wait_seconds = 0.0
            if (epoch + 1) % args.eval_every == 0 or time.time() > deadline:
                t = time.perf_counter()
                lists = model_lists(self.model, cfg, prepared, ts, cfg.train.n_candidates, device=self.device,
                                    per_head=True)
                rec.update({f"HR@5 {k}": round(list_metrics(v, ts, ks=(5,))["HR@5"], 5) for k, v in lists.items()})
                rec["eval_s"] = round(time.perf_counter() - t, 1)
            _emit(rec, args)
            first = epoch == 0 and name == args.variants[0] and args.seed == (args.seeds or [args.seed])[0]
            if first and self.device.type == "cuda" and not args.stacked:   # a stack's step is not this trainer's
                prof = profile_training_steps(self, self.epoch_batches(epoch + 1000))
                print(prof.pop("top"), flush=True)
                _emit({"variant": name, "profile": prof}, args)
            if time.time() > deadline:
                self.cut_by_wall_limit = True
                self.history.stopped_early = True   # ends fit(); the final row says it was the wall limit
                _emit({"variant": name, "cut_by_wall_limit_after_epoch": epoch + 1}, args)

    torch.manual_seed(cfg.seed)
    trainer = Probe(cfg, prepared, workdir=None, device=args.device, progress=False)
    if not args.stacked:
        trainer.fit()   # the best epoch's weights
    return trainer, name, cfg, prepared, ts, args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seed", type=int, default=None, help="the seed (default 0); or --seeds")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS)[:4], choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=40, help="epoch cap (the learning-rate schedule's length)")
    ap.add_argument("--patience", type=int, default=1000, help="early-stopping patience (default: off)")
    ap.add_argument("--eval-every", type=int, default=3)
    ap.add_argument("--eval-requests", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=8.0, help="wall limit of the measurement, from its start")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: one per variant)")
    ap.add_argument("--out", default=None, help="JSON lines of every record")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides under every variant's, e.g. world.mean_requests=30")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="run every variant on each of these seeds (instead of --seed), all at once")
    ap.add_argument("--stacked", action="store_true",
                    help="train each variant's --seeds as one stacked model (train.stack_seeds), one process "
                         "per variant, instead of one process per seed and variant")
    args = ap.parse_args()
    if args.stacked and not args.seeds:
        raise SystemExit("--stacked trains the models of --seeds as one: give --seeds")
    base_overrides(args)                 # a malformed --set is refused before any work
    if args.seeds is not None and args.seed is not None:
        raise SystemExit("give --seed or --seeds, not both")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds {args.seeds}: a seed is named twice")
    if not args.variants:
        raise SystemExit("--variants: name at least one variant")
    args.seed = 0 if args.seed is None else args.seed
    start = time.time()
    deadline = start + 60 * args.minutes
    runs = [argparse.Namespace(**{**vars(args), "seed": s}) for s in (args.seeds or [args.seed])]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers or len(runs) * len(args.variants), mp_context=ctx) as pool:
        for f in [pool.submit(emit_references, run, start) for run in runs]:   # each seed's world, at once
            f.result()
        jobs = runs[:1] if args.stacked else runs   # a stack's job trains every seed
        futures = [pool.submit(run_variant, v, VARIANTS[v], run, deadline) for run in jobs for v in args.variants]
        for f in futures:
            f.result()
    for run in runs:
        _emit({"total_s": round(time.time() - start, 1)}, run)


def emit_references(args: argparse.Namespace, start: float) -> None:
    """Prepare the seed's data (cached) and emit the references' HR@5 on its test requests: the
    first record of each seed, which the variants' records are read against."""
    from oneranker.config import make_config
    from oneranker.data import cached_prepared
    from oneranker.evaluate import list_metrics, truth_set
    from oneranker.reference import reference_lists
    from oneranker.world import World

    cfg = make_config(args.profile, seed=args.seed, **base_overrides(args))
    prepared = cached_prepared(cfg, args.cache, progress=False)
    ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=args.eval_requests)
    refs = {k: round(list_metrics(v, ts, ks=(5,))["HR@5"], 5)
            for k, v in reference_lists(prepared, ts, cfg.train.n_candidates, args.seed).items()}
    _emit({"references HR@5": refs, "eval_every": args.eval_every, "data": cfg.data_hash(), "set": base_overrides(args),
           "prepared_s": round(time.time() - start, 1)}, args)


if __name__ == "__main__":
    main()
