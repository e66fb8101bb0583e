"""Measuring cost: FLOPs from PyTorch's own counter and wall time measured side by side.

Timings are only ever compared within one run (interleaved repeats of every contender, so
that a slow moment of the machine hits all of them alike); FLOPs are exact and
deterministic, so notebooks check them under nbval and only show the timings.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object], model: torch.nn.Module | None = None) -> int:
    """Floating-point operations of one call of ``fn`` (matmuls and attention, as counted by
    ``torch.utils.flop_counter``; elementwise work is not counted). ``model``: the OneRanker
    that ``fn`` calls, run with the dense-mask attention while counting. The counter cannot
    see inside FlexAttention (it raises), and the count is the model's arithmetic, the same
    for every kernel that computes it."""
    dense = model.attention_kernel("sdpa") if model is not None else contextlib.nullcontext()
    with dense, torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def synchronize(device: torch.device | None) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing on the CPU, whose work is never queued."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(fns: dict[str, Callable[[], object]], repeats: int = 10, warmup: int = 2,
                      device: torch.device | None = None, grad: bool = False) -> dict[str, dict[str, float]]:
    """Median and p90 seconds per call of each function, repeats interleaved round-robin.
    ``grad=True`` keeps autograd on (for forward + backward contenders)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    with torch.set_grad_enabled(grad):
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                synchronize(device)
                t0 = time.perf_counter()
                fn()
                synchronize(device)
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ts = sorted(ts)
        out[name] = {"median_s": statistics.median(ts), "p90_s": ts[min(len(ts) - 1, int(0.9 * len(ts)))]}
    return out


def profile_training_steps(trainer, batches: list, n: int = 3, row_limit: int = 12) -> dict:
    """Top operators of the first ``n`` steps of ``trainer`` (a :class:`~oneranker.train.Trainer`) on
    ``batches`` by GPU time, the wall time per step under the profiler, and the GPU kernels'
    time and count per step (kernel events only: an operator's device time is its kernels',
    and counting both would count it twice). The kernel time is what several models sharing
    one GPU are bounded by; the wall time also holds the host's share. The trainer's model,
    optimiser and step are restored afterwards, so the profiled steps leave its run unchanged."""
    import copy

    steps = list(batches[:n])
    if not steps:
        raise ValueError("profile_training_steps needs at least one batch")
    saved = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optim.state_dict()), trainer.step
    queue = iter(steps)
    out = profile_calls(lambda: trainer.train_step(next(queue)), len(steps), trainer.device, row_limit)
    trainer.model.load_state_dict(saved[0])
    trainer.optim.load_state_dict(saved[1])
    trainer.step = saved[2]
    if getattr(trainer, "graphs", None) is not None:   # they pointed at the replaced optimiser state
        trainer.graphs.reset()
    return out


def profile_calls(fn: Callable[[], object], n: int, device: torch.device, row_limit: int = 12) -> dict:
    """``fn`` called ``n`` times under the profiler: the wall time per call, the GPU kernels'
    time and count per call (kernel events only: an operator's device time is its kernels',
    and counting both would count it twice) and the top operators' table."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if n < 1:
        raise ValueError(f"profile_calls needs n >= 1, got {n}")
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(device)
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(n):
            fn()
        synchronize(device)
    wall = time.perf_counter() - t0
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    return {"wall_s_per_step_profiled": wall / n,
            "gpu_kernel_s_per_step": sum(e.device_time_total for e in kernels) / 1e6 / n,
            "gpu_kernels_per_step": len(kernels) / n,
            "top": prof.key_averages().table(sort_by=sort, row_limit=row_limit)}
