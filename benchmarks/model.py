"""The real model at paper structure: training step, block-mask construction, ranking with
K/V pass-through, and one end-to-end request batch. Every ratio is measured side by side in
this one process (interleaved repeats, :func:`oneranker.profiling.time_side_by_side`).

Run on a GPU:   python benchmarks/model.py [--quick] [--only train,mask,rank,e2e]
On a CPU (a smoke run at toy sizes):  python benchmarks/model.py --smoke

* train: one optimiser step of L_MTP + L_rank + L_DC (bf16 autocast) at d = 512, history
  2,048: the fast path (FlexAttention block mask, G-Decoder compiled) against the eager
  dense-mask SDPA path. Tokens/s counts real (unpadded) history tokens. Model FLOP
  utilisation = useful FLOPs / time / bf16 dense peak, where useful FLOPs are those counted by
  torch's FLOP counter on the dense path minus the Step-1 attention work that the mask
  discards (the dense kernel computes it, the flex kernel skips it).
* mask: building the Step-1 block mask of a batch (eager and compiled ``create_block_mask``)
  as a share of the fast training step.
* rank: candidates scored per second by the R-Decoder from passed-through K/V (eager, and
  compiled once for every n), against re-encoding the history with the candidates (the
  cascade's cost), n = 64, 256, 1024; ``--rank-contenders`` picks some (e.g. the eager two,
  which need no compile: an H200 call cut short printed no ranking row before).
* e2e: one batch of 8 requests: prefill (Steps 1-2), generation (top-n over the catalogue)
  and ranking; median and p99 latency. Contenders: the eager model, the ``--compile``
  scopes, the whole request compiled as one graph, and that graph replayed as a CUDA graph
  (``mode="reduce-overhead"``); each of the last two also with Step 1's block mask built
  eagerly beside the graph and passed in (``/mask-outside``; its build is timed as part of the
  request). On the H200 the request compiled with the mask built inside crashed in
  FlexAttention's kernel fused with the mask's construction; built outside, it compiled and
  agreed with eager in the default mode (benchmarks/compile_check.py --mask outside, 2026-12-04).
* train contenders: eager dense-mask, and per ``--compile`` scope: ``step1``, ``model``
  (encode, generator, R-Decoder) or ``loss`` (the model's forward pass and the loss as one
  graph).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import (header, paper_model, peak_flops, serve_request, bf16_on_gpu, step1_mask, step1_mask_density,
                    synthetic_batch)
from oneranker import masks
from oneranker.config import make_config
from oneranker.generate import rank_candidates, rank_reencoding
from oneranker.model import OneRanker
from oneranker.profiling import time_side_by_side
from oneranker.losses import draw_loss_samples, loss_from_draws, loss_terms


def train_step_fn(model, batch, device, loss_fn=loss_from_draws):
    """One optimiser step of the full loss, as the trainer takes it (``loss_fn``: the loss
    given the step's random draws, compiled whole in the 'loss' contender)."""
    tc = make_config("paper").train
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        gen = torch.Generator().manual_seed(0)
        with bf16_on_gpu(device):
            loss = loss_fn(model, batch, tc, draw_loss_samples(model, batch, tc, gen))["total"]
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    return step


def counted_flops(model, batch, device) -> int:
    """Forward + backward FLOPs of the loss, counted by torch (dense path)."""
    tc = make_config("paper").train
    with FlopCounterMode(display=False) as fc:
        with bf16_on_gpu(device):
            loss = loss_terms(model, batch, tc, torch.Generator().manual_seed(0))["total"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def compiled_model(d: int, heads: int, S: int, device: torch.device, scope: str, state: dict):
    """The fast path: FlexAttention in Step 1 and ``torch.compile`` over ``scope``: 'step1'
    (the G-Decoder alone), 'model' (encode, generator scores and the R-Decoder, each its own
    graph) or 'loss' (nothing here: the training step compiles the whole loss, the model's
    forward pass included, as one graph; see :func:`bench_train`)."""
    model = paper_model(d, heads, S, device, attention="flex" if device.type == "cuda" else "sdpa")
    model.load_state_dict(state)
    if device.type == "cuda":
        if scope == "step1":
            model.step1 = torch.compile(model.step1, dynamic=False)
        elif scope == "model":
            for name in ("encode", "generator_scores", "rank"):
                setattr(model, name, torch.compile(getattr(model, name), dynamic=False))
    return model


def profile_step(step, device, label: str, rows: int = 12) -> None:
    """The kernels that take the time of one step (torch.profiler), to see what limits it."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"\n### profile of one {label} step (top {rows} by {key})")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))


def first_steps(steps: dict, device: torch.device) -> None:
    """Run each contender's first step (compilation included) on its own and say at once how
    long it took, so a slow compile shows while it happens rather than after every contender
    has been timed; the side-by-side timing that follows starts from warm contenders."""
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"  ready: {name} (first step, compilation included: {time.perf_counter() - start:.1f} s)")


def bench_train(args, device) -> float:
    d, heads, S, B = args.d, args.heads, args.history, args.batch
    eager = paper_model(d, heads, S, device, attention="sdpa")
    whole_loss = torch.compile(loss_from_draws, dynamic=False) if device.type == "cuda" else loss_from_draws
    fast = {f"fast ({scope} compiled)": (compiled_model(d, heads, S, device, scope, eager.state_dict()),
                                         whole_loss if scope == "loss" else loss_from_draws)
            for scope in args.compile}
    batch = synthetic_batch(eager, B, S, device)
    flops = counted_flops(eager, batch, device)
    density = step1_mask_density(batch)
    L = batch["tok_type"].shape[1]
    step1_attention = 12 * B * L * L * d * eager.cfg.step1_layers          # QK^T and PV, forward + backward
    useful = flops - step1_attention * (1 - density)
    steps = {name: train_step_fn(m, batch, device, loss_fn) for name, (m, loss_fn) in fast.items()}
    steps["eager dense"] = train_step_fn(eager, batch, device)
    tokens = float((batch["length"] - batch["prefix_len"]).sum())
    peak = peak_flops()
    print(f"\n## training step: d={d}, heads={heads}, history={S}, batch={B}, real tokens={int(tokens)}, "
          f"Step-1 mask density={density:.3f}")
    print(f"counted FLOPs (dense path) {flops / 1e12:.2f} T, useful {useful / 1e12:.2f} T per step")
    first_steps(steps, device)
    t = time_side_by_side(steps, repeats=args.repeats, warmup=2, device=device, grad=True)
    for name, v in t.items():
        s = v["median_s"]
        mfu = f"{useful / s / peak:.1%}" if peak else "n/a"
        speed = t["eager dense"]["median_s"] / s
        print(f"{name:24s} {s * 1e3:9.2f} ms/step  {tokens / s:12.0f} tokens/s  MFU {mfu:>6s}  {speed:.2f}x eager dense")
    if args.profile:
        for name, step in steps.items():
            profile_step(step, device, name)
    return min(t[name]["median_s"] for name in fast)


def bench_mask(args, device, step_s: float | None) -> None:
    S, B = args.history, args.batch
    model = paper_model(args.d, args.heads, S, device)
    batch = synthetic_batch(model, B, S, device)
    L = batch["tok_type"].shape[1]
    fns = {"eager create_block_mask": lambda: masks.step1_block_mask(batch["length"], batch["prefix_len"], L),
           "compiled create_block_mask": lambda: masks.step1_block_mask(batch["length"], batch["prefix_len"], L,
                                                                          compile=True)}
    if device.type != "cuda":
        fns.pop("compiled create_block_mask")
    t = time_side_by_side(fns, repeats=args.repeats, warmup=2, device=device)
    print(f"\n## Step-1 block-mask construction: batch={B}, L={L}")
    for name, v in t.items():
        share = f"  {v['median_s'] / step_s:.1%} of the fast training step" if step_s else ""
        print(f"{name:28s} {v['median_s'] * 1e3:8.3f} ms{share}")


RANK_CONTENDERS = ("pass-through", "re-encode", "compiled")


@torch.no_grad()
def bench_rank(args, device) -> None:
    """Candidates scored per second at each ``--candidates`` size, by each of
    ``--rank-contenders``: the R-Decoder from passed-through K/V (eager, and ``compiled`` as
    one graph, compiled once with symbolic sizes so that every n reuses it) against
    re-encoding the history with the candidates. Each contender's first call (its compile
    included) is reported as it ends, and each size's rows as soon as that size is timed, so a
    call cut short still leaves what it measured."""
    S, d = args.history, args.d
    model = paper_model(d, args.heads, S, device, attention="flex" if device.type == "cuda" else "sdpa").eval()
    B = args.rank_users
    batch = synthetic_batch(model, B, S, device)
    print(f"\n## ranking: d={d}, history={S}, users per batch={B} (bf16 autocast on GPU)")
    compiled_rank = torch.compile(rank_candidates, dynamic=True) if device.type == "cuda" else rank_candidates
    with bf16_on_gpu(device):
        state = model.encode(batch)
    for n in args.candidates:
        cands = torch.randint(0, model.items.n_items, (B, n), device=device)
        every = {"pass-through": lambda: rank_candidates(model, state, cands),
                 "compiled": lambda: compiled_rank(model, state, cands),
                 "re-encode": lambda: rank_reencoding(model, batch, cands)}
        fns = {name: _under_autocast(every[name], device) for name in args.rank_contenders}
        first_steps(fns, device)
        t = time_side_by_side(fns, repeats=args.repeats, warmup=2, device=device)
        rate = {k: B * n / v["median_s"] for k, v in t.items()}
        for name, r in rate.items():
            versus = f", {r / rate['re-encode']:.1f}x re-encode" if "re-encode" in rate and name != "re-encode" else ""
            print(f"n = {n:5d}  {name:13s} {r:14.0f} candidates/s{versus}")


def _request_times(request: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``request``, sorted, after five warm-up calls (the
    first compiles); synchronised around each call, so that a call's time is its GPU work too."""
    for _ in range(5):
        request()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        request()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)


def _gpu_context_lost(error: BaseException, device: torch.device) -> bool:
    """Whether ``error`` left the process's CUDA context unusable: a CUDA error anywhere in its chain
    (the compiler wraps one raised while it autotunes), or one the device reports on the next
    synchronisation (kernel errors arrive asynchronously)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, torch.AcceleratorError):
            return True
        seen = seen.__cause__ or seen.__context__
    if device.type != "cuda":
        return False
    try:
        torch.cuda.synchronize()
    except Exception:
        return True
    return False


def _under_autocast(fn, device: torch.device):
    def call():
        with bf16_on_gpu(device):
            return fn()
    return call


E2E_CONTENDERS = ("none", "step1", "model", "request", "request+graph", "request/mask-outside",
                  "request+graph/mask-outside")
MASK_OUTSIDE = "/mask-outside"          # the contender builds Step 1's mask eagerly and passes it in


def e2e_label(scope: str, device: torch.device) -> str:
    """An end-to-end contender's name as it is measured: on the CPU nothing compiles and attention
    is SDPA (a smoke run there checks the script, not the fast paths), so it says so."""
    if device.type != "cuda":
        return "sdpa, eager model" if scope == "none" else f"sdpa, eager model ({scope} compiles on CUDA only)"
    base = scope.removesuffix(MASK_OUTSIDE)
    label = {"none": "flex, eager model", "request+graph": "flex, request compiled, CUDA graph"}.get(
        base, f"flex, {base} compiled")
    return label + (", mask outside" if scope.endswith(MASK_OUTSIDE) else "")


@torch.no_grad()
def bench_e2e(args, device) -> None:
    S, n = args.history, 30
    ref = paper_model(args.d, args.heads, S, device)
    batch = synthetic_batch(ref, 8, S, device)
    print(f"\n## end to end: 8 requests, history={S}, d={args.d}, {ref.items.n_items} ads, {n} candidates ranked, "
          f"bf16")
    # in the order asked (a short call measures the first ones); a compile scope only if --compile has it
    contenders = [c for c in args.e2e_contenders if c == "none" or c.startswith("request") or c in args.compile]
    first: tuple[str, float] | None = None   # the first contender measured: each later one's speed-up is over it
    for scope in contenders:               # serving has no loss; 'request': the whole request as one graph
        compiled = scope in args.compile
        outside = scope.endswith(MASK_OUTSIDE)
        model = compiled_model(args.d, args.heads, S, device, scope, ref.state_dict()) if compiled else \
            paper_model(args.d, args.heads, S, device, attention="flex" if device.type == "cuda" else "sdpa")
        model.eval()

        def serve(model: OneRanker, batch: dict[str, torch.Tensor], mask=None) -> tuple[torch.Tensor, torch.Tensor]:
            return serve_request(model, batch, n, mask)

        if device.type == "cuda" and scope.startswith("request"):
            # One graph (no host reads in the request); "+graph" also replays it as a CUDA graph.
            graph = scope.removesuffix(MASK_OUTSIDE).endswith("+graph")
            serve = torch.compile(serve, dynamic=False, mode="reduce-overhead" if graph else None)

        def request() -> tuple[torch.Tensor, torch.Tensor]:
            # the mask built outside is rebuilt per request, as a server would (its lengths are the request's)
            return serve(model, batch, step1_mask(model, batch)) if outside else serve(model, batch)

        label = e2e_label(scope, device)
        try:
            times = _request_times(request, args.e2e_repeats, device)
        except Exception as e:
            # named in the output, so that a crash is not read as the next contender's (on the H200 the
            # whole request compiled crashed in inductor's autotuning, 2026-12-03); after a CUDA error
            # the process's GPU context is unusable, so the contenders after it are not measured
            error = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"{label:48s} failed: {type(e).__name__}: {error}")
            if _gpu_context_lost(e, device):
                raise
            continue
        med, p99 = statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]
        first = first or (label, med)
        # the ratio measured in this run: medians of one process on one GPU (across runs and machines
        # the eager model's median has differed by about 2x, docs/paper_profile.md)
        ratio = "" if first[0] == label else f", {first[1] / med:.2f}x the speed of {first[0]}"
        print(f"{label:48s} median {med * 1e3:7.2f} ms, p99 {p99 * 1e3:7.2f} ms, p99/median {p99 / med:.2f} "
              f"({len(times)} batches){ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="train,mask,rank,e2e")
    ap.add_argument("--smoke", action="store_true", help="toy sizes on any device (checks the script runs)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--history", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64, help="requests per training step")
    ap.add_argument("--rank-users", type=int, default=128)
    ap.add_argument("--candidates", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--rank-contenders", nargs="+", default=list(RANK_CONTENDERS), choices=RANK_CONTENDERS,
                    help="the ranking contenders (re-encode is the ratios' reference)")
    ap.add_argument("--compile", nargs="+", default=["step1", "model", "loss"], choices=["step1", "model", "loss"],
                    help="what the fast training path compiles (one contender each)")
    ap.add_argument("--e2e-contenders", nargs="+", default=list(E2E_CONTENDERS), choices=E2E_CONTENDERS,
                    help="the end-to-end contenders, measured in the order given ('none': the eager model; a compile scope of "
                         "--compile; 'request': the whole request compiled; '+graph': replayed as a CUDA graph; "
                         "'/mask-outside': Step 1's mask built eagerly and passed in)")
    ap.add_argument("--profile", action="store_true", help="print the top kernels of one step of each contender")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)    # each result line shows when it is measured, even piped
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.smoke:
        args.d, args.heads, args.history, args.batch, args.rank_users, args.candidates = 32, 2, 64, 4, 4, [8, 16]
    args.repeats = 3 if (args.quick or args.smoke) else 10
    args.e2e_repeats = 20 if (args.quick or args.smoke) else 200
    print(header())
    only = set(args.only.split(","))
    step_s = bench_train(args, device) if "train" in only else None
    if "mask" in only:
        bench_mask(args, device, step_s)
    if "rank" in only:
        bench_rank(args, device)
    if "e2e" in only:
        bench_e2e(args, device)


if __name__ == "__main__":
    main()
