"""Multi-GPU training checked against one GPU: the same config and global batches trained for
``--steps`` steps on 1 and on ``--gpus`` processes (DistributedDataParallel, NCCL with NVLink
multicast off), then the models compared by what they compute and by the lists they serve,
and the requests/s of each (oneranker.distributed_check says why outputs, not raw weights).

    python scripts/multi_gpu_check.py --profile paper --gpus 2 --steps 300 --cache /tmp/cache \\
        --out results/paper/multi_gpu_h200x2.json

On a machine without GPUs ``--device cpu`` runs the same check with gloo processes (the test
at the smoke profile). The script reports; the tests hold the tolerances (fp32's on the CPU,
bf16's on GPUs: tests/test_scripts.py, tests/test_distributed.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oneranker.cache import atomic_write_text  # noqa: E402
from oneranker.config import ConfigError, make_config  # noqa: E402


def main() -> None:
    import torch

    from oneranker import distributed_check
    from oneranker.data import cached_prepared

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--gpus", type=int, default=2, help="processes of the distributed run (one GPU each on CUDA)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20, help="steps before the timed ones (compilation, allocation)")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--eval-requests", type=int, default=1000)
    ap.add_argument("--out", default=None, help="JSON of the comparison")
    args = ap.parse_args()
    if args.gpus < 2:
        raise SystemExit("--gpus must be at least 2 (the run it is compared with has 1)")
    if args.device == "cuda" and torch.cuda.device_count() < args.gpus:
        raise SystemExit(f"--gpus {args.gpus}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if not 0 <= args.warmup < args.steps:
        raise SystemExit("--warmup must be at least 0 and below --steps")
    if args.eval_requests < 1:
        raise SystemExit(f"--eval-requests {args.eval_requests}: give at least 1")
    try:
        cfg = make_config(args.profile, seed=args.seed)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    prepared = cached_prepared(cfg, args.cache, progress=False)   # once, before the processes read it
    runs = {}
    with tempfile.TemporaryDirectory() as work:
        for world in (1, args.gpus):
            runs[world] = distributed_check.train_on(world, cfg, args.cache, args.device, args.steps, args.warmup, work)
            print(f"{world} process(es): {runs[world]['requests_per_s']:,.0f} requests/s over "
                  f"{runs[world]['timed_steps']} steps", flush=True)
    report = distributed_check.compare(cfg, prepared, {w: r["state"] for w, r in runs.items()},
                                       args.eval_requests, device="cuda" if args.device == "cuda" else "cpu")
    report = {"profile": args.profile, "seed": args.seed, "config": cfg.hash(), "device": args.device,
              "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "steps": args.steps,
              "warmup": args.warmup, "requests_per_s": {w: r["requests_per_s"] for w, r in runs.items()},
              "speedup": runs[args.gpus]["requests_per_s"] / runs[1]["requests_per_s"], **report}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")


if __name__ == "__main__":
    main()
