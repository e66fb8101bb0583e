"""Does inductor's compiled serving request, or a part of it, return eager's answers on this device?

The end-to-end benchmark's compiled whole request crashed on the H200 (torch 2.11, CUDA 13) at its
first call, inside inductor's runtime autotuning of a Triton kernel ("an illegal memory access",
or "operation not supported on global/shared address space"; docs/paper_profile.md, "GPU benchmarks"), while the
same request compiled for the CPU matched eager. This script compiles one part at a time, so that
the part whose GPU kernels fail can be named; run each part in a process of its own (a CUDA error
leaves the process's GPU context unusable; tests/test_generate.py does so).

* ``first_unique``: the candidate merge's deduplication (a stable sort, a scatter, a gather) on
  rows of heads x n ids, the request's shape;
* ``topk``: the generator's merged top-n over the catalogue (per-head top-k, then first_unique);
* ``prefill``: the model's part before candidate selection (``encode``, then the generator's
  catalogue scores of every head);
* ``ranking``: the model's part after it (the R-Decoder's scores of given candidates from the
  passed-through K/V), on a prefill and candidates computed eagerly;
* ``request``: the whole request (prefill, top-n, ranking from passed-through K/V).
``--mask outside`` builds Step 1's mask eagerly, outside the compiled graph, and passes it in to
``prefill`` and ``request`` (default ``inside``: built in the graph, as ``encode`` does alone). On
the H200 (2026-12-04) ``prefill`` with the mask inside crashed in FlexAttention's kernel with the
mask's construction fused into it, the pattern of upstream reports of FlexAttention and
``create_block_mask`` compiled together (docs/paper_profile.md, "GPU benchmarks").

On the H200 (2026-12-04) the first two matched eager alone and the whole request did not, so the
failing kernels are in ``prefill`` or ``ranking``: the two model parts name which, if one fails.
Both may pass while the request fails: compiled alone, neither sees what inductor fuses across
the prefill -> top-n -> ranking boundary (the ranking's state and candidates are its inputs).

Exit status 0 when the compiled part agrees with eager: the deduplication and the top-n return
eager's ids exactly (fp32 scores in, no ties to break differently); the request, which runs under
bf16 autocast on a GPU as the benchmark does, returns at least 90% of eager's candidates (bf16
scores tie, and a tie may be broken either way) with their scores within bf16's rounding; the
model parts, under the same autocast, return every score within bf16's rounding. 3 when it ran
and disagreed (the line says by how much); a crash exits with its error (1).

    python benchmarks/compile_check.py --part topk [--mode reduce-overhead] [--d 512 --history 2048]
    python benchmarks/compile_check.py --part prefill --mask outside
"""

from __future__ import annotations

import argparse
import sys

import torch

from common import (header, paper_model, serve_candidates, serve_prefill, serve_ranking, serve_request, step1_mask,
                    synthetic_batch)
from oneranker.config import make_config
from oneranker.generate import first_unique

PARTS = ("first_unique", "topk", "prefill", "ranking", "request")
SCORE_PARTS = ("prefill", "ranking")                # model halves: their output is scores alone
MODEL_PARTS = SCORE_PARTS + ("request",)            # the parts run under bf16 autocast on a GPU
MASK_PARTS = ("prefill", "request")                 # the parts that build Step 1's mask (--mask applies)
PAPER_HEADS = make_config("paper").model         # its interest and value task heads


def serving_scores(B: int, n_items: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random interest [B, interest heads, n_items] and value [B, value heads, n_items] scores, as
    many heads as the paper profile has."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, PAPER_HEADS.n_interest_tasks, n_items, generator=g).to(device),
            torch.randn(B, PAPER_HEADS.n_value_tasks, n_items, generator=g).to(device))


def part_function(part: str, args: argparse.Namespace, device: torch.device):
    """(function, its inputs) of one part, at the end-to-end benchmark's sizes by default."""
    if part == "first_unique":
        g = torch.Generator().manual_seed(0)
        merged = PAPER_HEADS.n_interest_tasks + 1          # topk_candidates merges each interest head and the value mean
        ids = torch.randint(0, args.items, (args.requests, merged * args.n), generator=g).to(device)
        return (lambda ids: first_unique(ids, args.n)), (ids,)
    if part == "topk":
        return (lambda i, v: serve_candidates(i, v, args.n)), serving_scores(args.requests, args.items, device)
    model = paper_model(args.d, args.heads, args.history, device, attention="flex" if device.type == "cuda" else "sdpa",
                        n_items=args.items).eval()
    batch = synthetic_batch(model, args.requests, args.history, device)
    if args.mask == "outside" and part in MASK_PARTS:
        with torch.no_grad():
            mask = step1_mask(model, batch)                      # eager: the compiled graph takes it in
        if part == "request":
            return (lambda batch, mask: serve_request(model, batch, args.n, mask)), (batch, mask)
        return (lambda batch, mask: serve_prefill(model, batch, mask)[1:]), (batch, mask)
    if part == "request":
        return (lambda batch: serve_request(model, batch, args.n)), (batch,)
    if part == "prefill":
        return (lambda batch: serve_prefill(model, batch)[1:]), (batch,)
    with torch.no_grad():
        state, interest, value = serve_prefill(model, batch)     # eager: only the ranking is compiled
        candidates = serve_candidates(interest, value, args.n)
    return (lambda state, candidates: (serve_ranking(model, state, candidates),)), (state, candidates)


def tolerance(eager: tuple[torch.Tensor, ...], low_precision: bool) -> float:
    """How far a compiled score may be from eager's: bf16's rounding (8 bits of mantissa) under
    autocast, float32's otherwise, relative to the largest eager score (at least 1)."""
    scale = max(1.0, *(float(e.abs().max()) for e in eager))
    return (3e-2 if low_precision else 1e-4) * scale


MISMATCH = 3          # the exit status of a part that ran but disagreed with eager (a crash exits 1)
SHARED_CANDIDATES = 0.9


def agreement(eager: tuple[torch.Tensor, torch.Tensor | None], out: tuple[torch.Tensor, torch.Tensor | None],
              low_precision: bool) -> tuple[bool, str]:
    """Whether the compiled output ``out`` agrees with ``eager``, and a line saying how far. Ids alone
    must be equal; a request's candidates are compared per request as sets (the share of the compiled
    request's candidates that eager returns too), and its scores on the candidates both return (a
    candidate's score does not depend on the others: they never see each other)."""
    ids_e, scores_e = eager
    ids_o, scores_o = out
    if scores_e is None:
        same = torch.equal(ids_o, ids_e)
        return same, f"ids {'equal' if same else 'DIFFER'} ({int((ids_o != ids_e).sum())} of {ids_e.numel()} differ)"
    match = ids_o[:, :, None] == ids_e[:, None, :]                       # [B, n compiled, n eager]
    share = int(match.any(2).sum()) / ids_o.numel()                     # exact: a count over a count
    gaps = (scores_o.float()[:, :, None] - scores_e.float()[:, None, :]).abs()[match]
    gap = float(gaps.max()) if gaps.numel() else float("inf")           # torch's max keeps a NaN: it fails
    tol = tolerance((scores_e,), low_precision)
    ok = share >= SHARED_CANDIDATES and gap <= tol
    return ok, (f"{share:.1%} of the candidates shared (at least {SHARED_CANDIDATES:.0%}), largest score difference "
                f"on them {gap:.3g} (at most {tol:.3g})")


def scores_agree(eager: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, ...], low_precision: bool) -> tuple[bool, str]:
    """Whether every score tensor of a model part compiled (``out``) is within rounding of eager's
    (the tolerance of a request's scores), and a line saying how far."""
    # torch's max keeps a NaN (Python's max drops one that is not first): a NaN gap then fails
    gap = float(torch.stack([(o.float() - e.float()).abs().max() for e, o in zip(eager, out, strict=True)]).max())
    tol = tolerance(eager, low_precision)
    return gap <= tol, f"largest score difference {gap:.3g} (at most {tol:.3g})"


def as_pair(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids, scores or None) of a part's output."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS, required=True)
    ap.add_argument("--mode", default="default", choices=["default", "reduce-overhead"],
                    help="torch.compile's mode ('reduce-overhead' also replays a CUDA graph)")
    ap.add_argument("--mask", default="inside", choices=["inside", "outside"],
                    help="where the prefill and request parts build Step 1's mask: in the compiled graph "
                         "(as encode does) or eagerly before it, passed in")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--n", type=int, default=30, help="candidates per request")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--history", type=int, default=2048)
    args = ap.parse_args()
    if args.mask == "outside" and args.part not in MASK_PARTS:
        ap.error(f"--mask outside applies to the parts that build Step 1's mask (prefill, request), not {args.part}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(header(f"part {args.part}, mode {args.mode}, mask {args.mask}"), flush=True)
    fn, inputs = part_function(args.part, args, device)
    with torch.no_grad():
        eager = fn(*inputs)
        compiled_fn = torch.compile(fn, dynamic=False, mode=None if args.mode == "default" else args.mode)
        for _ in range(3):                  # reduce-overhead records its CUDA graph on a later call
            out = compiled_fn(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
    low_precision = args.part in MODEL_PARTS and device.type == "cuda"
    if args.part in SCORE_PARTS:
        ok, how = scores_agree(eager, tuple(t.clone() for t in out), low_precision)
    else:
        ok, how = agreement(as_pair(eager), tuple(t if t is None else t.clone() for t in as_pair(out)), low_precision)
    print(f"{args.part} compiled ({args.mode}{', mask outside' if args.mask == 'outside' else ''}): {how}: "
          f"{'ok' if ok else 'MISMATCH'}", flush=True)
    return 0 if ok else MISMATCH


if __name__ == "__main__":
    sys.exit(main())
