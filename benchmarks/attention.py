"""Masked attention of Step 1, forward + backward: FlexAttention vs dense-mask SDPA, and vs
plain causal FlashAttention at the same shape (the ceiling); block-mask construction time.

Run on a GPU:  python benchmarks/attention.py [--quick]
Prints the device and versions, then one row per (width, S) with times and ratios measured
side by side in this one process (interleaved repeats).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from oneranker import masks  # noqa: E402
from oneranker.profiling import time_side_by_side  # noqa: E402

WIDTHS = {128: 4, 512: 8}        # d_model: heads (head dim 32 at paper width, 64 at d = 512)
PREFIX = 5                        # user-attribute + context tokens, bidirectional


def header() -> str:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return f"# device: {dev} | torch {torch.__version__} | python {platform.python_version()}"


def contenders(B: int, S: int, d: int, heads: int, device: torch.device, mode: str | None = None) -> tuple[dict, dict]:
    from torch.nn.attention.flex_attention import flex_attention

    g = torch.Generator(device="cpu").manual_seed(0)
    lengths = torch.randint(S // 2, S + 1, (B,), generator=g).to(device)
    hd = d // heads
    q, k, v = (torch.randn(B, heads, S, hd, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    dense = masks.step1_dense(lengths, PREFIX, S)[:, None]          # [B, 1, S, S] on the device
    block = masks.step1_block_mask(lengths, PREFIX, S, compile=True)
    flex = torch.compile(flex_attention, mode=mode, dynamic=False)

    def step(out: torch.Tensor) -> None:
        out.float().sum().backward()

    fns = {
        "flex": lambda: step(flex(q, k, v, block_mask=block)),
        "sdpa_dense_mask": lambda: step(F.scaled_dot_product_attention(q, k, v, attn_mask=dense)),
        "flash_causal": lambda: step(F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    }
    build = {"block_mask_build": lambda: masks.step1_block_mask(lengths, PREFIX, S, compile=True)}
    return fns, build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--tokens", type=int, default=32768, help="batch tokens per call (B = tokens // S)")
    ap.add_argument("--mode", default=None, help="torch.compile mode for flex (e.g. max-autotune-no-cudagraphs)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU")
    device = torch.device("cuda")
    print(header() + f" | flex compile mode: {args.mode or 'default'}")
    print("d_model  heads  S     B   flex_ms  sdpa_mask_ms  flash_ms  sdpa/flex  flex_speed_vs_flash  build_ms")
    reps = 5 if args.quick else 20
    for d, heads in WIDTHS.items():
        for S in (1024, 2048, 4096):
            B = max(1, args.tokens // S)
            fns, build = contenders(B, S, d, heads, device, args.mode)
            t = time_side_by_side(fns, repeats=reps, warmup=3, device=device, grad=True)
            b = time_side_by_side(build, repeats=reps, warmup=2, device=device)
            ms = {k: v["median_s"] * 1e3 for k, v in {**t, **b}.items()}
            print(f"{d:7d} {heads:6d} {S:5d} {B:3d} {ms['flex']:8.3f} {ms['sdpa_dense_mask']:13.3f} "
                  f"{ms['flash_causal']:9.3f} {ms['sdpa_dense_mask'] / ms['flex']:10.2f} "
                  f"{ms['flash_causal'] / ms['flex']:20.2f} {ms['block_mask_build']:9.3f}", flush=True)


if __name__ == "__main__":
    main()
