"""Beam search over semantic IDs: paths/s, CUDA graph vs eager, shared history vs per-beam
copies. Every ratio is measured side by side in this one process.

Run on a GPU:  python benchmarks/beam_search.py [--quick]
Smoke run on any device:  python benchmarks/beam_search.py --smoke

* search: the trie-constrained beam search (3 levels x 256 codes plus the dedup digit, beam
  256) from the users' vectors, eager against one CUDA-graph replay; paths/s = users x beam /
  time.
* generation: encoding the history (2,048 tokens, d = 512) and searching, with the history
  encoded once and shared by every beam, against a copy of the history encoded per live beam
  (what a generator without a shared history cache pays).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from common import header, paper_model, bf16_on_gpu, synthetic_batch
from oneranker.generate import beam_generate, beam_search, graphed_beam_search
from oneranker.profiling import time_side_by_side
from oneranker.semantic_ids import PrefixTrie, dedup_digit


def catalogue(n_items: int, levels: int, codebook: int, seed: int = 0) -> tuple[np.ndarray, tuple[int, ...]]:
    """Random codes of ``levels`` digits plus a dedup digit (unique full codes)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, codebook, (n_items, levels))
    full = np.concatenate([codes, dedup_digit(codes)[:, None]], axis=1)
    return full, (codebook,) * levels + (int(full[:, -1].max()) + 1,)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--users", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--beam", type=int, default=256)
    ap.add_argument("--items", type=int, default=20_000)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d, heads, history, levels, codebook = 512, 8, 2048, 3, 256
    gen_users = 2
    if args.smoke:
        d, heads, history, levels, codebook, args.users, args.beam, args.items, gen_users = 32, 2, 64, 3, 8, [4], 16, 300, 2
    reps = 3 if (args.quick or args.smoke) else 20
    codes, digits = catalogue(args.items, levels, codebook)
    trie = PrefixTrie(codes)
    print(header(f"{levels} levels x {codebook} codes + dedup digit ({digits[-1]}), {args.items} ads, beam {args.beam}"))

    g = torch.Generator().manual_seed(0)
    tables = [torch.randn(k, d, generator=g).to(device) / d ** 0.5 for k in digits]
    print("\n## search from user vectors (fp32)")
    print(" users  eager ms  paths/s eager  graph ms  paths/s graph  graph vs eager")
    for B in args.users:
        user = torch.randn(B, d, generator=g).to(device)
        fns = {"eager": lambda: beam_search(user, tables, trie, args.beam)}
        if device.type == "cuda":
            run = graphed_beam_search(user, tables, trie, args.beam)
            assert torch.equal(run(user)[0], fns["eager"]()[0]), "graph and eager beam search disagree"
            fns["graph"] = lambda: run(user)
        t = time_side_by_side(fns, repeats=reps, warmup=3, device=device)
        eager = t["eager"]["median_s"]
        graph = t["graph"]["median_s"] if "graph" in t else float("nan")
        print(f"{B:6d} {eager * 1e3:9.3f} {B * args.beam / eager:14.0f} {graph * 1e3:9.3f} "
              f"{B * args.beam / graph:14.0f} {eager / graph:15.2f}x")

    # beam search walks semantic IDs, so its ads are their codes alone (the paper profile adds an
    # ID embedding and the bid feature, which beam_generate refuses: it could not score a prefix)
    model = paper_model(d, heads, history, device, attention="flex" if device.type == "cuda" else "sdpa",
                        n_items=args.items, digits=digits, item_representation="sid", value_features=False).eval()
    model.items.codes.copy_(torch.as_tensor(codes, device=device))
    batch = synthetic_batch(model, gen_users, history, device)
    with torch.no_grad(), bf16_on_gpu(device):
        shared = beam_generate(model, batch, trie, args.beam)
        copies = beam_generate(model, batch, trie, args.beam, per_beam_copies=True)
        same = float((shared[0] == copies[0]).float().mean())
        t = time_side_by_side({"shared history": lambda: beam_generate(model, batch, trie, args.beam),
                               "per-beam copies": lambda: beam_generate(model, batch, trie, args.beam,
                                                                        per_beam_copies=True)},
                              repeats=max(2, reps // 4), warmup=1, device=device)
    print(f"\n## generation (encode + search): {gen_users} requests, history {history}, d={d}, bf16")
    for name, v in t.items():
        print(f"{name:16s} {v['median_s'] * 1e3:10.2f} ms  {gen_users * args.beam / v['median_s']:12.0f} paths/s")
    print(f"shared vs per-beam copies: {t['per-beam copies']['median_s'] / t['shared history']['median_s']:.1f}x "
          f"(same ads in {same:.1%} of beam slots; bf16 ties may reorder)")


if __name__ == "__main__":
    main()
