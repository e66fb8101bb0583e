"""Training throughput of the real Trainer on a real (cached) dataset: requests/s of one model
alone against several models trained at once on the same device, with and without
length-grouped batches, with and without the next batch collated in a thread while a step
runs (``Trainer.host_batches``, what ``Trainer.fit`` does on a GPU), eager or compiled
(``train.compile``), and at other batch sizes. This is what sizes the paper profile's training
budget.

    python benchmarks/training_throughput.py --profile paper --runs 20x1f 20x1fcb 20x4f 20x4fcb 20x8fcb

With ``--sample-ms N`` on CUDA, ``nvidia-smi`` is sampled every N ms and each contender's line
gives the mean GPU utilisation over its timed window (the share of time a kernel was running:
below 100% the host, not the GPU, sets the pace). Off by default: on the H200 the same eager
contender ran at 494 ms per step while sampled every 100 ms and at 167 ms every 500 ms
(two machines, not side by side; results/paper/training_throughput_h200.txt), against about
70 ms per step in training runs sampled every 2-3 s, so frequent sampling may slow the host;
but it also ran at 452 ms with no sampler, as the first contender of a later run
(results/paper/training_throughput_compile_h200.txt), so that is a suspicion only.

``tTHREADS`` caps each worker's intra-op CPU threads (``torch.set_num_threads``; not the
inter-op pool nor the collating thread): PyTorch gives every process a thread per core, so
several models on one GPU host (8 workers on 16 cores in the series) may oversubscribe the CPU
that builds their batches and launches their kernels; on the H200 a step's wall time has been
several times its GPU kernel time (docs/learning.md, run 6's profile). ``20x4f`` against ``20x4ft4``
measures whether that is why.

Every contender runs in this one invocation, one after another, on the same dataset; each
worker is a fresh process (as in ``pool.train_all``) that trains ``--warmup`` steps,
then waits for the others and times ``--steps`` more. The aggregate rate counts every worker's requests over the
wall time from the first worker's first timed step to the last worker's last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import header, padded_shape_firsts  # noqa: E402
from oneranker.config import config_from_dict, make_config  # noqa: E402
from oneranker.data import cached_prepared  # noqa: E402
from oneranker.gpu_usage import GpuSampler  # noqa: E402
from oneranker.parallel import environment  # noqa: E402
from oneranker.pool import ALLOC_CONF_ENV, GPU_WORKER_ALLOC_CONF, check_mps, mps  # noqa: E402


def _worker(cfg_dict: dict, cache_dir: str, device: str, warmup: int, steps: int, barrier, pad_to: int,
            prefetch: bool = False, threads: int | None = None) -> dict:
    import torch

    if threads:   # the process's intra-op CPU threads (PyTorch's default: every core, in every worker)
        torch.set_num_threads(threads)
    from oneranker.train import Trainer

    t_start = time.time()
    cfg = config_from_dict(cfg_dict)
    trainer = Trainer(cfg, cached_prepared(cfg, cache_dir, progress=False), device=device, progress=False)
    batches, epoch = [], 0
    while len(batches) < warmup + steps:
        batches += trainer.epoch_batches(epoch)
        epoch += 1
    hist_end = trainer.prepared.requests["train"].data.column("hist_end").to_numpy()
    lengths = np.minimum(hist_end, cfg.data.max_history_len)        # history tokens (no padding)
    if pad_to:
        trainer.collate.pad_to = pad_to
    # Warm-up: one batch of every padded length the timed steps will see (each may compile),
    # then ``warmup`` more.
    firsts = padded_shape_firsts(trainer, batches[:warmup + steps])
    t_init = time.time()
    for b in firsts + batches[:warmup]:
        trainer.train_step(b)
    torch.cuda.synchronize() if trainer.device.type == "cuda" else None
    t_warm = time.time()
    barrier.wait()                   # the workers' timed windows start together
    t0, tokens, requests = time.time(), 0, 0
    padded = 0
    timed = batches[warmup:warmup + steps]
    trainer.prefetch = prefetch          # the next batch collated in a thread, as Trainer.fit does on a GPU
    hosts = trainer.host_batches(timed, 0)
    for b in timed:
        tokens += int(lengths[b].sum())
        padded += len(b) * int(lengths[b].max())
        requests += len(b)
        trainer.train_step(b, next(hosts))
    torch.cuda.synchronize() if trainer.device.type == "cuda" else None
    return {"t0": t0, "t1": time.time(), "requests": requests, "tokens": tokens, "init_s": t_init - t_start,
            "warmup_s": t_warm - t_init, "padded_tokens": padded,
            "shapes": len(firsts)}


RUN_SPEC = re.compile(r"^(?P<grouping>\d+)x(?P<workers>\d+)(?:p(?P<pad>\d+))?(?P<prefetch>f?)(?:c(?P<compile>[bl]))?"
                      r"(?:b(?P<batch>\d+))?(?:t(?P<threads>\d+))?(?P<mps>m?)(?P<graphs>g?)(?P<expandable>e?)$")


def parse_run(spec: str) -> dict:
    """A contender ``GROUPINGxWORKERS[pPAD][f][cb|cl][bBATCH][tTHREADS][m][g][e]`` as its parts; a malformed one is
    refused before anything runs."""
    m = RUN_SPEC.match(spec)
    if m is None:
        raise SystemExit(f"--runs {spec!r}: expected GROUPINGxWORKERS[pPAD][f][cb|cl][bBATCH][tTHREADS][m][g][e], e.g. 20x4fcb, 20x1fb1024, 20x4ft4, 20x8ft2mg or 20x8ft2me")
    if int(m["workers"]) < 1 or any(m[k] is not None and int(m[k]) < 1 for k in ("batch", "threads")):
        raise SystemExit(f"--runs {spec!r}: the number of models, the batch size and the threads must be at least 1")
    return {"grouping": int(m["grouping"]), "workers": int(m["workers"]), "pad_to": int(m["pad"] or 0),
            "prefetch": bool(m["prefetch"]),
            "compile": {"b": "blocks", "l": "loss", None: "off"}[m["compile"]],
            "batch": int(m["batch"]) if m["batch"] else None,
            "threads": int(m["threads"]) if m["threads"] else None, "mps": bool(m["mps"]),
            "graphs": bool(m["graphs"]), "expandable": bool(m["expandable"])}


def run(cfg_dicts: list[dict], args, pad_to: int = 0, prefetch: bool = False, threads: int | None = None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    n = len(cfg_dicts)
    with ctx.Manager() as manager, ProcessPoolExecutor(n, mp_context=ctx) as pool:
        barrier = manager.Barrier(n)
        out = list(pool.map(_worker, cfg_dicts, [args.cache] * n, [args.device] * n, [args.warmup] * n,
                            [args.steps] * n, [barrier] * n, [pad_to] * n, [prefetch] * n, [threads] * n))
    wall = max(o["t1"] for o in out) - min(o["t0"] for o in out)
    return {"t0": min(o["t0"] for o in out), "t1": max(o["t1"] for o in out),
            "requests_s": sum(o["requests"] for o in out) / wall, "tokens_s": sum(o["tokens"] for o in out) / wall,
            "per_model_step_s": sum(o["t1"] - o["t0"] for o in out) / len(out) / args.steps,
            "init_s": max(o["init_s"] for o in out), "warmup_s": max(o["warmup_s"] for o in out),
            "padding": sum(o["padded_tokens"] for o in out) / sum(o["tokens"] for o in out),
            "shapes": out[0]["shapes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", nargs="+", default=["20x1f", "20x1fcb", "20x4f", "20x4fcb", "20x8fcb"],
                    help="contenders as GROUPINGxWORKERS[pPAD][f][cb|cl][bBATCH][tTHREADS][m][g][e]: train.length_grouping, models "
                         "trained at once, optionally the Collator's pad_to (default: the Trainer's), 'f' to "
                         "collate the next batch in a thread while a step runs (Trainer.fit's GPU path), 'c' for "
                         "train.compile='blocks' (cb) or 'loss' (cl), bBATCH for another train.batch_size, and "
                         "tTHREADS for each worker's intra-op CPU threads (torch.set_num_threads; default: "
                         "every core in every worker), and 'm' to run the workers under CUDA's Multi-Process "
                         "Service (a daemon started for the contender alone: oneranker.pool.mps), and 'g' for "
                         "train.cuda_graphs (each step's GPU work replayed as a CUDA graph), and 'e' for the workers' "
                         "caching allocator in expandable segments (what pool.train_all gives its GPU workers: "
                         "pool.gpu_worker_environment; without 'e', fixed-size segments)")
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sample-ms", type=int, default=0,
                    help="sample the GPU's utilisation with nvidia-smi every this many ms (0: off; see above)")
    args = ap.parse_args()
    runs = [(spec, parse_run(spec)) for spec in args.runs]
    if any(c["graphs"] for _, c in runs) and not args.device.startswith("cuda"):
        raise SystemExit(f"--runs with 'g' (train.cuda_graphs) need a CUDA device, not --device {args.device}")
    if any(c["mps"] for _, c in runs):   # before the dataset and the first contender
        if not args.device.startswith("cuda"):
            raise SystemExit(f"--runs with 'm' (MPS) need a CUDA device, not --device {args.device}")
        check_mps()
    if any(c["expandable"] for _, c in runs):
        if not args.device.startswith("cuda"):
            raise SystemExit(f"--runs with 'e' (expandable segments) need a CUDA device, not --device {args.device}")
        if os.environ.get(ALLOC_CONF_ENV):   # then the contenders without 'e' would not have fixed segments
            raise SystemExit(f"--runs with 'e' compare the allocator's segments, but {ALLOC_CONF_ENV} is set "
                             f"({os.environ[ALLOC_CONF_ENV]!r}): unset it")
    print(header(f"profile {args.profile}"), flush=True)
    cached_prepared(make_config(args.profile, seed=0), args.cache)
    gpu = GpuSampler(args.sample_ms) if args.device.startswith("cuda") and args.sample_ms > 0 else None
    base = None
    try:
        for spec, c in runs:
            over = {"train.length_grouping": c["grouping"], "train.compile": c["compile"],
                    "train.cuda_graphs": c["graphs"]}
            if c["batch"]:
                over["train.batch_size"] = c["batch"]
            alloc = {ALLOC_CONF_ENV: GPU_WORKER_ALLOC_CONF} if c["expandable"] else {}
            with mps(c["mps"]), environment(alloc):   # spawned workers inherit the allocator setting
                r = run([make_config(args.profile, seed=0, **over).to_dict()] * c["workers"], args, c["pad_to"],
                        c["prefetch"], c["threads"])
            base = base or r["requests_s"]
            busy = gpu.summary(r["t0"], r["t1"]) if gpu else None
            util = busy["gpu_busy_percent"] if busy else None
            print(f"{spec:>10s}: grouping {c['grouping']:3d}, pad {c['pad_to'] or 'default'}, prefetch "
                  f"{'on' if c['prefetch'] else 'off'}, {'eager' if c['compile'] == 'off' else 'compiled ' + c['compile']}, batch "
                  f"{c['batch'] or 'default'}, {c['workers']} model(s) at once: {r['requests_s']:8.0f} requests/s, "
                  f"{r['tokens_s'] / 1e6:6.2f} M history tokens/s, {1e3 * r['per_model_step_s']:6.1f} ms per step "
                  f"of one model, {r['requests_s'] / base:.2f}x the first row, GPU busy "
                  f"{'n/a' if util is None else f'{util:.0f}%'} (start {r['init_s']:.0f} s, warm-up "
                  f"{r['warmup_s']:.0f} s for {r['shapes']} shapes, CPU threads per model {c['threads'] or 'default'}, "
                  f"MPS {'on' if c['mps'] else 'off'}, CUDA graphs {'on' if c['graphs'] else 'off'}, segments "
                  f"{'expandable' if c['expandable'] else 'fixed'}, padded / real history tokens "
                  f"{r['padding']:.2f})", flush=True)
    finally:
        if gpu:
            gpu.close()


if __name__ == "__main__":
    main()
