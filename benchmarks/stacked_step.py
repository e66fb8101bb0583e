"""Models trained one by one against models stacked into one batched model
(``train.stack_seeds``, :mod:`oneranker.stacked`): GPU time and wall time per model-step.

    python benchmarks/stacked_step.py --cache /tmp/cache --stacks 3 6

Contenders, all in one process, on the paper profile's seed-0 dataset and the same batches:

* ``alone``: one :class:`~oneranker.train.Trainer` as configured (FlexAttention on CUDA): a
  model-step costs one of its steps;
* ``alone-sdpa``: the same on dense-mask attention with PyTorch's default SDPA backend;
* ``alone-math`` (``--math``): the same on PyTorch's unfused math attention, the kernel a
  stack runs on CUDA, so that the stack's own cost is seen apart from the kernel's;
* ``stack-M``: a :class:`~oneranker.stacked.StackedTrainer` of M models (seeds 0..M-1), each
  model on its own seed's length-grouped batch of the step (from the one dataset: the speed
  depends on the shapes, not on whose data), so a step pays what a real stack pays: padding
  to the longest of M batches; a model-step costs 1/M of its step.
  On CUDA a stack runs PyTorch's unfused math attention (``stacked._attention_under_vmap``:
  the memory-efficient kernel refused the batched call). The committed H200 files name its
  rows ``stack-M-math``: they were measured before the stack chose that kernel itself, with
  the math kernel set around the step (their ``stack-M`` rows are the refusal), by
  ``--math``, which then added those contenders (call g) and ``alone-math`` (call h); and
  calls g and h ran with the masks expanded to the batch (commit 183adf5, reverted since).

Each contender first steps once on every padded batch length the timed steps see and
``--warmup`` more; the timed steps run round-robin (:func:`oneranker.profiling.time_side_by_side`,
each from a synchronised GPU to a synchronised GPU); then three steps of each are profiled
for their GPU kernel time. The ratios are per model-step against ``alone``. The peak GPU memory
is what a contender's warm-up allocated above what was allocated before it. Printed as each
result is known.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import header, padded_shape_firsts  # noqa: E402
from oneranker.config import make_config  # noqa: E402
from oneranker.data import cached_prepared  # noqa: E402
from oneranker.profiling import profile_calls, synchronize, time_side_by_side  # noqa: E402


def main() -> None:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from oneranker.stacked import StackedTrainer
    from oneranker.train import Trainer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--stacks", nargs="+", type=int, default=[3, 6], help="stack sizes M to time")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-sdpa", action="store_true", help="leave out the alone-sdpa contender")
    ap.add_argument("--math", action="store_true",
                    help="also one model alone on PyTorch's math attention (unfused), the kernel of a stack on CUDA")
    args = ap.parse_args()
    if args.steps < 3 or args.warmup < 0 or any(m < 1 for m in args.stacks):
        raise SystemExit("--steps must be >= 3 (three are profiled), every --stacks value >= 1, --warmup >= 0")
    print(header(f"profile {args.profile} | {' '.join(sys.argv)}"), flush=True)
    device = torch.device(args.device)
    base = make_config(args.profile, seed=0)
    prepared = cached_prepared(base, args.cache, progress=False)

    def trainer(seed: int, **over) -> Trainer:
        # the cosine schedule: a stack has one learning rate (the paper profile's plateau is per model)
        cfg = make_config(args.profile, seed=seed, **{"train.lr_schedule": "cosine", **over})
        return Trainer(cfg, prepared, device=args.device, progress=False)

    n = args.warmup + args.steps
    seeds = range(max(args.stacks))
    # step k of model s: the k-th batch of seed s's order (as a stack of seeds 0..M-1 would see)
    orders = {s: (trainer(s).epoch_batches(0) + trainer(s).epoch_batches(1))[:n] for s in seeds}
    first = trainer(0)
    shape_firsts = [i for i, b in enumerate(orders[0]) if any(b is x for x in padded_shape_firsts(first, orders[0]))]
    warm = shape_firsts + list(range(args.warmup))   # step indices: every padded length of seed 0, then warm-up
    timed = list(range(args.warmup, n))
    hosts = {(s, k): first.host_batch("train", orders[s][k]) for s in seeds for k in set(warm + timed)}
    steppers, models = {}, {}

    def alone_step(t: Trainer, kernel: str | None, backend=None):
        def step(k: int) -> None:
            with contextlib.nullcontext() if kernel is None else t.model.attention_kernel(kernel), \
                    contextlib.nullcontext() if backend is None else sdpa_kernel(backend):
                t.train_step(orders[0][k], hosts[0, k])
        return step

    def stack_step(st: StackedTrainer):
        def step(k: int) -> None:
            st.train_step([hosts[s, k] for s in range(len(st.trainers))])
        return step

    contenders = {"alone": (first, None, None)} | ({} if args.no_sdpa else {"alone-sdpa": (trainer(0), "sdpa", None)})
    if args.math:
        contenders["alone-math"] = (trainer(0), "sdpa", SDPBackend.MATH)
    for name, (t, kernel, backend) in contenders.items():
        steppers[name], models[name] = alone_step(t, kernel, backend), 1
    for m in args.stacks:
        steppers[f"stack-{m}"], models[f"stack-{m}"] = stack_step(StackedTrainer([trainer(s) for s in range(m)])), m
    for name, step in list(steppers.items()):
        before = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        try:
            for k in warm:
                step(k)
            synchronize(device)
        except Exception as e:   # e.g. out of memory: reported, not fatal
            print(f"{name:>12s}: failed to warm up: {type(e).__name__}: {str(e).splitlines()[0][:300]}", flush=True)
            del steppers[name]
            continue
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**30 if device.type == "cuda" else float("nan")
        print(f"{name:>12s}: warmed up in {time.perf_counter() - t0:5.1f} s, peak GPU memory {peak:.1f} GiB",
              flush=True)

    def timed_calls(name: str):
        queue = iter(timed * 2)
        return lambda: steppers[name](next(queue))

    times = time_side_by_side({n: timed_calls(n) for n in steppers}, repeats=len(timed), warmup=0,
                              device=device, grad=True)
    ref = None
    for name in steppers:
        per_model = times[name]["median_s"] / models[name]
        queue = iter(timed)
        prof = profile_calls(lambda: steppers[name](next(queue)), 3, device, row_limit=15)
        kernel = prof["gpu_kernel_s_per_step"] / models[name]
        ref = ref or (per_model, kernel)
        gpu = "" if not kernel else (f"; GPU kernels {1e3 * kernel:5.1f} ms per model-step ({ref[1] / kernel:.2f}x "
                                     f"alone), {prof['gpu_kernels_per_step']:.0f} kernels per step")
        print(f"{name:>12s}: {1e3 * times[name]['median_s']:7.1f} ms per step (median of {len(timed)}), "
              f"{1e3 * per_model:6.1f} ms per model-step ({ref[0] / per_model:.2f}x alone){gpu}", flush=True)
        if name.startswith("stack"):
            print(prof["top"], flush=True)


if __name__ == "__main__":
    main()
