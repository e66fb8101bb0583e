"""Does inductor's compiled serving request, or a part of it, return eager's answers on this device?

The end-to-end benchmark's compiled whole request crashed on the H200 (torch 2.11, CUDA 13) at its
first call, inside inductor's runtime autotuning of a Triton kernel ("an illegal memory access",
or "operation not supported on global/shared address space"; README "GPU benchmarks"), while the
same request compiled for the CPU matched eager. This script compiles one part at a time, so that
the part whose GPU kernels fail can be named; run each part in a process of its own (a CUDA error
leaves the process's GPU context unusable; tests/test_generate.py does so).

* ``first_unique``: the candidate merge's deduplication (a stable sort, a scatter, a gather) on
  rows of heads x n ids, the request's shape;
* ``topk``: the generator's merged top-n over the catalogue (per-head top-k, then first_unique);
* ``request``: the whole request (prefill, top-n, ranking from passed-through K/V).

Exit status 0 when the compiled part returns eager's ids (exactly) and scores (to bf16's
rounding); 1 with the first differences otherwise; a crash exits with the error.

    python benchmarks/compile_check.py --part topk [--mode reduce-overhead] [--d 512 --history 2048]
"""

from __future__ import annotations

import argparse
import sys

import torch

from common import header, paper_model, synthetic_batch
from oneranker.generate import first_unique, rank_candidates, topk_candidates

PARTS = ("first_unique", "topk", "request")


def serving_scores(B: int, n_items: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random interest [B, 6, n_items] and value [B, 2, n_items] scores: the paper profile's heads."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 6, n_items, generator=g).to(device), torch.randn(B, 2, n_items, generator=g).to(device)


def part_function(part: str, args: argparse.Namespace, device: torch.device):
    """(function, its inputs) of one part, at the end-to-end benchmark's sizes by default."""
    if part == "first_unique":
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, args.items, (args.requests, 7 * args.n), generator=g).to(device)
        return (lambda ids: first_unique(ids, args.n)), (ids,)
    if part == "topk":
        return (lambda i, v: topk_candidates(i, v, args.n)), serving_scores(args.requests, args.items, device)
    model = paper_model(args.d, args.heads, args.history, device, attention="flex" if device.type == "cuda" else "sdpa",
                        n_items=args.items).eval()
    batch = synthetic_batch(model, args.requests, args.history, device)

    def serve(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            state = model.encode(batch)
            interest, value = model.generator_scores(state)
            candidates = topk_candidates(interest.float(), value.float(), args.n)
            return candidates, rank_candidates(model, state, candidates).float()
    return serve, (batch,)


def as_pair(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids, scores or None) of a part's output."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS, required=True)
    ap.add_argument("--mode", default="default", choices=["default", "reduce-overhead"],
                    help="torch.compile's mode ('reduce-overhead' also replays a CUDA graph)")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--n", type=int, default=30, help="candidates per request")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--history", type=int, default=2048)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(header(f"part {args.part}, mode {args.mode}"), flush=True)
    fn, inputs = part_function(args.part, args, device)
    with torch.no_grad():
        eager = as_pair(fn(*inputs))
        compiled_fn = torch.compile(fn, dynamic=False, mode=None if args.mode == "default" else args.mode)
        for _ in range(3):                  # reduce-overhead records its CUDA graph on a later call
            out = compiled_fn(*inputs)
        out = as_pair(tuple(t.clone() if t is not None else None for t in as_pair(out)))
        if device.type == "cuda":
            torch.cuda.synchronize()
    same_ids = torch.equal(out[0], eager[0])
    score_gap = float((out[1] - eager[1]).abs().max()) if eager[1] is not None else None
    ok = same_ids and (score_gap is None or score_gap <= 2e-2)     # bf16 scores: a few units of its last place
    scores = "no scores" if score_gap is None else f"largest score difference {score_gap:.3g}"
    print(f"{args.part} compiled ({args.mode}): ids {'equal' if same_ids else 'DIFFER'} "
          f"({int((out[0] != eager[0]).sum())} of {out[0].numel()} differ), {scores}: "
          f"{'ok' if ok else 'MISMATCH'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
