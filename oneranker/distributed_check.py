"""Does training on N processes (DistributedDataParallel) give the one-process model, and how
much faster is it? The same config, the same global batches, ``steps`` optimiser steps on 1 and
on N processes; then the two models compared by what they compute, and their throughput.

What "the same model" can mean: every rank computes its rows' share of the whole batch's loss
(:class:`~oneranker.train.Trainer`), so an N-process step is the one-process step up to the
order of floating-point sums: bit for bit it is not, and on a GPU bf16 autocast widens the
difference. Parameters whose true gradient is exactly zero (the key bias of softmax attention,
the ranker's output bias) are moved by AdamW's normalised rounding noise, differently under
any two summation orders, without changing what the model computes; so the comparison is of
outputs on held-out requests (catalogue scores, and ranker scores centred per request) and of
the lists served to the test requests, not of raw weights (their relative difference is
reported too). The runs are steps of :meth:`~oneranker.train.Trainer.train_step` only, without
the per-epoch k-means refresh of the Fake Items or the validation pass: the distributed part of
training is the step. What limits the speed-up, by design of the Trainer: every rank collates
and copies the whole global batch (and draws its samples) and encodes only its rows, so the
host's share of a step does not shrink with more processes. Used by ``scripts/multi_gpu_check.py`` (two GPUs: issue "Multi-GPU training
verified on two H200s") and by tests/test_distributed.py.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import torch

from .config import Config, config_from_dict
from .parallel import environment

# NVLink multicast (NVLS) off for NCCL and symmetric memory: the lent multi-GPU machines ask it
# (a setting of the process, not of the machine)
NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def _rank_main(rank: int, world: int, cfg_dict: dict, cache: str, device: str, steps: int, warmup: int,
               init: str, out: str) -> None:
    """One process of the run: ``steps`` steps of the Trainer on its share of each global batch
    (timing the steps after ``warmup``); rank 0 writes the weights and the timing to ``out``."""
    import torch.distributed as dist

    from .data import cached_prepared
    from .profiling import synchronize
    from .train import Trainer

    cuda = device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo", init_method=init, rank=rank, world_size=world)
    if not cuda:
        torch.set_num_threads(1)
    try:
        cfg = config_from_dict(cfg_dict)
        trainer = Trainer(cfg, cached_prepared(cfg, cache, progress=False), None,
                          device=f"cuda:{rank}" if cuda else "cpu", progress=False)
        batches, epoch = [], 0
        while len(batches) < steps:
            batches += trainer.epoch_batches(epoch)
            epoch += 1
        batches = batches[:steps]
        hosts = trainer.host_batches(batches, 0)   # the next batch collated in a thread on a GPU, as fit() does
        t0 = None
        for i, b in enumerate(batches):
            if i == warmup:
                synchronize(trainer.device)
                if world > 1:
                    dist.barrier()
                t0 = time.perf_counter()
            trainer.train_step(b, next(hosts))
        synchronize(trainer.device)
        seconds = time.perf_counter() - t0
        if rank == 0:
            state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
            requests = sum(len(b) for b in batches[warmup:])
            with open(out, "wb") as f:
                pickle.dump({"state": state, "seconds": seconds, "timed_steps": steps - warmup,
                             "requests_per_s": requests / seconds}, f)
    finally:
        if world > 1:
            dist.destroy_process_group()


def train_on(world: int, cfg: Config, cache: str | Path, device: str, steps: int, warmup: int,
             workdir: str | Path) -> dict:
    """Train ``cfg`` for ``steps`` steps on ``world`` processes (one GPU each on CUDA, gloo on
    the CPU), from fresh spawned processes; rank 0's weights and the timing of the steps after
    ``warmup``."""
    import torch.multiprocessing as mp

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: choose cpu or cuda")
    if device == "cuda" and torch.cuda.device_count() < world:
        raise ValueError(f"{world} processes need {world} GPUs; this machine has {torch.cuda.device_count()}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup={warmup} must be at least 0 and below steps={steps}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out, init = workdir / f"world{world}.pkl", f"file://{(workdir / f'init{world}').resolve()}"
    with environment(NCCL_ENV if device == "cuda" else {}):   # inherited by the spawned processes
        mp.spawn(_rank_main, args=(world, cfg.to_dict(), str(cache), device, steps, warmup, init, str(out)),
                 nprocs=world, join=True)
    with open(out, "rb") as f:
        return pickle.load(f)


@torch.no_grad()
def held_out_outputs(model, cfg: Config, prepared, n: int = 64, n_candidates: int = 10) -> tuple:
    """What a model computes on the first ``n`` test requests: its interest and value catalogue
    scores and its ranker's scores of fixed random candidates, centred per request (None without
    a ranker). Centred, because the ranker's output bias gets no gradient from BPR or L_DC, so
    two equally trained models may differ in it by a constant that changes no ranking."""
    from .data import Collator

    model.eval()
    n = min(n, len(prepared.requests["test"]))
    batch = Collator(prepared, cfg.data.max_history_len)([prepared.requests["test"][i] for i in range(n)])
    cands = torch.randint(0, cfg.world.n_items, (n, n_candidates), generator=torch.Generator().manual_seed(0))
    state = model.encode(batch)
    interest, value = model.generator_scores(state)
    ranked = model.rank(state, cands) if model.rdecoder is not None else None
    return interest, value, None if ranked is None else ranked - ranked.mean(1, keepdim=True)


def compare(cfg: Config, prepared, states: dict[int, dict], eval_requests: int = 1000,
            device: str = "cpu") -> dict:
    """Models of the same config (``states``: weights by world size) compared by what they
    compute on test requests: the largest difference of their catalogue scores and of their
    ranker scores centred per request, the weights' relative difference, and each one's served
    and generated HR@5 on the same truth set."""
    from .evaluate import list_metrics, model_lists, truth_set
    from .train import build_model
    from .world import World

    models = {}
    for world, state in states.items():
        m = build_model(cfg, prepared)
        m.load_state_dict(state)
        models[world] = m.eval()
    outputs = {world: held_out_outputs(m, cfg, prepared) for world, m in models.items()}
    ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=eval_requests)
    first, *others = sorted(models)
    report = {"metrics": {}, "max_abs_diff": {}, "weights_rel_diff": {}}
    for world, m in models.items():
        lists = model_lists(m.to(device), cfg, prepared, ts, cfg.train.n_candidates, device=device)
        m.cpu()
        report["metrics"][world] = {name: round(list_metrics(v, ts, ks=(5,))["HR@5"], 5) for name, v in lists.items()}
    for world in others:
        a, b = outputs[first], outputs[world]
        report["max_abs_diff"][world] = {name: float((x - y).abs().max()) for name, x, y in
                                         zip(("interest", "value", "ranker (centred)"), a, b) if x is not None}
        num = sum(float((states[first][k].float() - states[world][k].float()).norm() ** 2) for k in states[first]
                  if states[first][k].is_floating_point())
        den = sum(float(states[first][k].float().norm() ** 2) for k in states[first] if states[first][k].is_floating_point())
        report["weights_rel_diff"][world] = (num / max(den, 1e-30)) ** 0.5
    return report
