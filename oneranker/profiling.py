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


def _sync(device: torch.device | None) -> None:
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
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ts = sorted(ts)
        out[name] = {"median_s": statistics.median(ts), "p90_s": ts[min(len(ts) - 1, int(0.9 * len(ts)))]}
    return out
