"""Attention and decoder blocks shared by the three steps.

One :class:`Attention` serves self- and cross-attention and dispatches to one of two kernels
that must agree (tests/test_layers.py): PyTorch's scaled-dot-product attention with a dense
boolean mask (the reference, any device) or FlexAttention with a block mask (the fast path on
CUDA). Keys and values can be projected once and reused (:meth:`Attention.project_kv`): that
is the R-Decoder's K/V pass-through.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Mask:
    """A mask in the form the chosen kernel needs: dense bool [B|1, Q, K] or a BlockMask."""

    dense: Tensor | None = None
    block: object | None = None  # torch.nn.attention.flex_attention.BlockMask


# How FlexAttention is compiled on CUDA: torch.compile's mode and FlexAttention's kernel
# options (tile sizes, warps, stages), None for torch's defaults. They change how fast the
# kernels run, not what they compute; benchmarks/training_step.py measures alternatives.
FLEX_COMPILE_MODE: str | None = None
FLEX_KERNEL_OPTIONS: dict | None = None


@functools.cache
def _compiled_flex_attention(mode: str | None = None):
    from torch.nn.attention.flex_attention import flex_attention
    return torch.compile(flex_attention, mode=mode)


def _flex(q: Tensor, k: Tensor, v: Tensor, block_mask: object) -> Tensor:
    """FlexAttention: compiled on CUDA (its fast path); eager elsewhere (a slow reference
    that exists so CPU tests can check parity)."""
    from torch.nn.attention.flex_attention import flex_attention
    if not q.is_cuda:
        return flex_attention(q, k, v, block_mask=block_mask)
    options = FLEX_KERNEL_OPTIONS
    fn = _compiled_flex_attention(FLEX_COMPILE_MODE)
    return fn(q, k, v, block_mask=block_mask) if options is None else \
        fn(q, k, v, block_mask=block_mask, kernel_options=dict(options))


class Attention(nn.Module):
    """Multi-head attention; ``kv`` given = cross-attention, else self-attention."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        return x.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``memory`` [B, L, d] as [B, H, L, d/H]: computed once, reusable."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: Tensor, mask: Mask, kv: Tensor | None = None,
                cached_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        q = self._split(self.q(x))
        k, v = cached_kv if cached_kv is not None else self.project_kv(x if kv is None else kv)
        if k.shape[0] != q.shape[0]:  # one shared memory for many query rows
            k, v = k.expand(q.shape[0], -1, -1, -1), v.expand(q.shape[0], -1, -1, -1)
        if mask.block is not None:
            o = _flex(q, k, v, mask.block)
        else:
            m = mask.dense
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=None if m is None else m.unsqueeze(-3))
        B, H, L, Dh = o.shape
        return self.out(o.transpose(1, 2).reshape(B, L, H * Dh))


class MLP(nn.Sequential):
    def __init__(self, d_model: int, ratio: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, ratio * d_model), nn.GELU(), nn.Linear(ratio * d_model, d_model),
                         nn.Dropout(dropout))


class DecoderBlock(nn.Module):
    """Pre-norm self-attention block (Step 1's G-Decoder layer)."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads)
        self.mlp = MLP(d_model, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Mask) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.mlp(self.norm2(x))


class CrossSelfBlock(nn.Module):
    """Cross-attention to a memory, then masked self-attention among the queries, then an MLP
    (Steps 2 and 3). ``self_first=True`` swaps the two attentions: the paper's ablation."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float, self_first: bool = False) -> None:
        super().__init__()
        self.self_first = self_first
        self.norm_c, self.norm_s, self.norm_m = (nn.LayerNorm(d_model) for _ in range(3))
        self.cross = Attention(d_model, n_heads)
        self.self_attn = Attention(d_model, n_heads)
        self.mlp = MLP(d_model, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.cross.project_kv(memory)

    def forward(self, x: Tensor, memory: Tensor | None, cross_mask: Mask, self_mask: Mask,
                cached_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        def cross(h: Tensor) -> Tensor:
            return h + self.drop(self.cross(self.norm_c(h), cross_mask, kv=memory, cached_kv=cached_kv))

        def self_(h: Tensor) -> Tensor:
            return h + self.drop(self.self_attn(self.norm_s(h), self_mask))

        x = cross(self_(x)) if self.self_first else self_(cross(x))
        return x + self.mlp(self.norm_m(x))
