"""Where and how computation runs: the device, copies to it, padding for its kernels, mixed
precision and the distributed process group. One home for these, so that model, data and
training code never decide them on their own."""

from __future__ import annotations

import contextlib

import numpy as np

import torch
import torch.distributed as dist


def resolve_device(device: str) -> torch.device:
    """``auto`` = CUDA where there is one, else the CPU; a CUDA device asked for on a machine
    without one is an error here, before any work."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return torch.device(device)


def gpu_padding(device: torch.device | str) -> int:
    """The ``Collator.pad_to`` for batches bound to ``device``: FlexAttention's block size on
    CUDA (compiled kernels then see at most max_history_len / 128 shapes), none elsewhere."""
    return 128 if torch.device(device).type == "cuda" else 1


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Copy a CPU tensor to ``device``. To CUDA the copy goes through pinned memory and does
    not block: a plain copy makes the host wait until the GPU has finished all the work
    queued before it (the previous step's backward pass, say) instead of queuing more."""
    device = torch.device(device)
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def batch_to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """A collated batch on ``device`` (see :func:`to_device`)."""
    return {k: to_device(v, device) for k, v in batch.items()}


def autocast(device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the paper-scale runs); full fp32 elsewhere (CPU runs are exact).
    ``cache=False``: no cache of the bf16 copies of the weights (the same values, cast again
    at each use), as code captured in a CUDA graph needs (oneranker.graphs)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def step_seed(seed: int, *parts: int) -> int:
    """A seed derived from a run's ``seed`` and a path of integers (e.g. what it seeds and the
    step): every random stream of training is seeded this way, so that a resumed or stacked
    run draws what an uninterrupted lone run draws."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])
