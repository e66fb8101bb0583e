"""Every attention mask of OneRanker, as a pure function of the token layout.

Convention everywhere: ``True`` = the query (row) **may attend** to the key (column).

Each mask comes in two forms that must agree (``tests/test_masks.py`` checks it):

* a **dense** boolean tensor, the reference, passed as
  ``torch.nn.functional.scaled_dot_product_attention(attn_mask=...)`` (broadcast over heads);
* a **FlexAttention** form: a ``mask_mod(b, h, q_idx, kv_idx) -> bool`` closure and a
  ``BlockMask`` from ``create_block_mask`` for ``flex_attention(block_mask=...)``.

The dense forms are written region by region, the way the paper describes them; the
``mask_mod`` forms are the same rules as one compact predicate. Keeping the two
independent is what makes the parity tests meaningful.

Step 1, G-Decoder self-attention (docs/paper.md, "Step 1"): ``[prefix | history | padding]``,
right padded. Bidirectional inside the user/context prefix, causal over the behaviour
history, padding never a key. Example: prefix 2, length 5, seq_len 6 (``P`` prefix,
``h`` history, ``.`` padding)::

            keys  P P h h h .
    q  P          1 1 0 0 0 0
       P          1 1 0 0 0 0
       h          1 1 1 0 0 0
       h          1 1 1 1 0 0
       h          1 1 1 1 1 0
       .          1 1 1 1 1 0     <- padding queries see every valid key (no empty row)

Step 2, task tokens + Fake Item Tokens (docs/paper.md, "Step 2"): ``[interest | value | fake]``.
Example: 2 interest (``I``), 1 value (``V``), 2 fake items (``F``)::

            keys  I I V F F
    q  I          1 0 0 1 1       interest: causal among interest, no value, all fakes
       I          1 1 0 1 1
       V          1 1 1 1 1       value: all interest, causal among value, all fakes
       F          1 1 1 1 0       fake: all tasks, itself only among fakes
       F          1 1 1 0 1

Without the heterogeneous mask (the paper's ablation) the Step-2 mask is all ones.

Step 3, R-Decoder self-attention (docs/paper.md, "Step 3"): ``[ranking token R | candidates c]``.
Example: 3 candidates::

            keys  R c c c
    q  R          1 0 0 0         ranking token: itself only
       c          1 1 0 0         candidate: ranking token and itself,
       c          1 0 1 0         never another candidate (scored independently)
       c          1 0 0 1

Cross-attention (Steps 2 and 3 query the Step-1 states H1): every query may see every
*real* key of its row, never padding. lengths 3, seq_len 5, 2 queries::

            keys  x x x . .
    q             1 1 1 0 0
                  1 1 1 0 0

Argument checks (sizes, lengths) run when a mask is built, outside the attention call;
they read tensor values (one host sync on CUDA), so build masks once per batch.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""``mask_mod(b, h, q_idx, kv_idx) -> bool tensor``, FlexAttention's mask signature."""

DeviceLike = torch.device | str

__all__ = [
    "MaskMod",
    "step1_dense", "step1_mask_mod", "step1_block_mask",
    "step2_dense", "step2_mask_mod", "step2_block_mask",
    "step3_dense", "step3_mask_mod", "step3_block_mask",
    "key_padding", "cross_dense", "cross_mask_mod", "cross_block_mask",
    "dense_from_mask_mod",
]


# --------------------------------------------------------------------------- validation

def _check_size(name: str, value: int, minimum: int = 0) -> None:
    """Reject a negative (or too small) layout size with a message naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _require(holds: Tensor, message: str, got: Callable[[], object] | None = None) -> None:
    """Raise ``ValueError(message)`` unless the 0-d bool tensor ``holds`` is true.

    Reading a GPU tensor's value makes the host wait for the GPU, and inside ``torch.compile``
    it splits the graph. On CUDA and while compiling, the check is therefore a device-side
    assertion (``torch._assert_async``): no wait and no graph break, and a failure surfaces as
    a CUDA error carrying ``message`` at the next synchronisation. On the CPU it raises at
    once, with the offending value (``got``) in the message. Under :func:`torch.func.vmap` no
    value can be read: the check is skipped there, and the stacked models' trainer checks the
    whole stacked tensor before the vmapped call (:meth:`oneranker.stacked.ModelStack.loss_terms`).
    """
    if torch._C._functorch.is_batchedtensor(holds):
        return   # under vmap (stacked models): the caller checks the stacked tensor (stacked.ModelStack)
    if holds.is_cuda or torch.compiler.is_compiling():
        torch._assert_async(holds, message)
    elif not bool(holds):
        raise ValueError(message if got is None else f"{message}, got {got()}")


def _check_lengths(lengths: Tensor, seq_len: int | None = None, minimum: int = 1) -> None:
    """``lengths`` must be a 1-D integer tensor with ``minimum <= lengths <= seq_len``.

    ``minimum`` is 1 for attention masks: a row without any valid key would have an empty
    softmax and give NaN.
    """
    if not isinstance(lengths, Tensor) or lengths.dim() != 1:
        raise ValueError("lengths must be a 1-D tensor [B] of valid-token counts")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if seq_len is not None:
        _check_size("seq_len", seq_len)
    if lengths.numel() == 0:
        return
    _require((lengths >= minimum).all(), f"lengths must be >= {minimum} (a row with no valid key would be empty)",
             lambda: int(lengths.min()))
    if seq_len is not None:
        _require((lengths <= seq_len).all(), f"lengths must be <= seq_len={seq_len}", lambda: int(lengths.max()))


def _prefix_tensor(prefix_len: Tensor | int, lengths: Tensor) -> Tensor:
    """Return ``prefix_len`` as a LongTensor[B] on ``lengths``' device, checked against it
    (``0 <= prefix_len <= lengths``: the prefix is part of the valid tokens)."""
    if isinstance(prefix_len, Tensor):
        if prefix_len.dtype.is_floating_point or prefix_len.dtype.is_complex or prefix_len.dtype == torch.bool:
            raise ValueError(f"prefix_len must be an int or an integer tensor, got {prefix_len.dtype}")
        if prefix_len.dim() == 0:
            prefix_len = prefix_len.expand(lengths.shape)
        if prefix_len.shape != lengths.shape:
            raise ValueError(f"prefix_len must have the shape of lengths {tuple(lengths.shape)}, "
                             f"got {tuple(prefix_len.shape)}")
        prefix = prefix_len.to(device=lengths.device, dtype=torch.long)
    else:
        _check_size("prefix_len", prefix_len)
        prefix = torch.full_like(lengths, prefix_len, dtype=torch.long)
    if prefix.numel():
        _require((prefix >= 0).all(), "prefix_len must be >= 0", lambda: int(prefix.min()))
        _require((prefix <= lengths).all(), "prefix_len must be <= lengths (the prefix is part of the valid tokens)")
    return prefix


@functools.cache
def _compiled_create_block_mask() -> Callable[..., BlockMask]:
    """One ``torch.compile`` wrapper, made on first use and reused (compiling is slow)."""
    return torch.compile(create_block_mask)


def _build_block_mask(mask_mod: MaskMod, B: int | None, H: int | None, q_len: int, kv_len: int,
                      device: DeviceLike, block_size: int, compile: bool) -> BlockMask:
    """``create_block_mask`` with our defaults; wrapped in ``torch.compile`` only on request
    (compiling pays off for long sequences on GPU, eager is fine for small layouts)."""
    _check_size("block_size", block_size, minimum=1)
    build = _compiled_create_block_mask() if compile else create_block_mask
    return build(mask_mod, B, H, q_len, kv_len, device=device, BLOCK_SIZE=block_size)


# --------------------------------------------------------------------------- Step 1

def step1_dense(lengths: Tensor, prefix_len: Tensor | int, seq_len: int) -> Tensor:
    """G-Decoder self-attention mask, BoolTensor[B, seq_len, seq_len] (docs/paper.md, "Step 1").

    GPR's mask: causal over the behaviour sequence (no peeking at future behaviour), but
    bidirectional inside the user/context prefix (attributes and request context have no
    order). Padding (``k >= lengths[b]``) is never a key; padding queries still see all valid
    keys so no row is empty (their outputs are ignored downstream).
    """
    _check_lengths(lengths, seq_len)
    prefix = _prefix_tensor(prefix_len, lengths)
    pos = torch.arange(seq_len, device=lengths.device)
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=lengths.device).tril()
    key_in_prefix = pos[None, None, :] < prefix[:, None, None]             # [B, 1, K]
    key_real = key_padding(lengths, seq_len)[:, None, :]                   # [B, 1, K]
    return (causal[None] | key_in_prefix) & key_real


def step1_mask_mod(lengths: Tensor, prefix_len: Tensor | int) -> MaskMod:
    """FlexAttention form of :func:`step1_dense`: ``k < len[b] and (k <= q or k < prefix[b])``."""
    _check_lengths(lengths)
    prefix = _prefix_tensor(prefix_len, lengths)

    def step1_mask(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx < lengths[b]) & ((kv_idx <= q_idx) | (kv_idx < prefix[b]))

    return step1_mask


def step1_block_mask(lengths: Tensor, prefix_len: Tensor | int, seq_len: int, block_size: int = 128,
                     compile: bool = False) -> BlockMask:
    """BlockMask of :func:`step1_dense` (B = len(lengths), shared by heads) on ``lengths``' device."""
    _check_lengths(lengths, seq_len)
    mask_mod = step1_mask_mod(lengths, prefix_len)
    return _build_block_mask(mask_mod, lengths.shape[0], None, seq_len, seq_len,
                             lengths.device, block_size, compile)


# --------------------------------------------------------------------------- Step 2

def _check_step2(n_interest: int, n_value: int, n_fake: int) -> None:
    _check_size("n_interest", n_interest)
    _check_size("n_value", n_value)
    _check_size("n_fake", n_fake)
    if n_interest + n_value + n_fake == 0:
        raise ValueError("Step 2 needs at least one token (n_interest + n_value + n_fake >= 1)")


def step2_dense(n_interest: int, n_value: int, n_fake: int, heterogeneous: bool = True,
                device: DeviceLike = "cpu") -> Tensor:
    """Heterogeneous Step-2 self-attention mask, BoolTensor[T, T], T = n_interest + n_value + n_fake.

    Why each block (docs/paper.md, "Step 2"): task tokens follow the funnel under a causal
    mask, so the value tasks see what the interest tasks learned but not the reverse
    (interest rows see no value column); every task sees all Fake Item Tokens (coarse target
    awareness); each fake item sees all tasks but only itself among fakes, so centroids stay
    distinct.
    ``heterogeneous=False`` is the paper's ablation: full attention.
    """
    _check_step2(n_interest, n_value, n_fake)
    t = n_interest + n_value + n_fake
    if not heterogeneous:
        return torch.ones(t, t, dtype=torch.bool, device=device)

    def all_(rows: int, cols: int) -> Tensor:
        return torch.ones(rows, cols, dtype=torch.bool, device=device)

    def none(rows: int, cols: int) -> Tensor:
        return torch.zeros(rows, cols, dtype=torch.bool, device=device)

    def causal(n: int) -> Tensor:
        return all_(n, n).tril()

    def itself(n: int) -> Tensor:
        return torch.eye(n, dtype=torch.bool, device=device)

    ni, nv, nf = n_interest, n_value, n_fake
    rows = [  # the paper's table, row by row:  interest tasks | value tasks | fake items
        [causal(ni),     none(ni, nv),  all_(ni, nf)],   # interest task i
        [all_(nv, ni),   causal(nv),    all_(nv, nf)],   # value task j
        [all_(nf, ni),   all_(nf, nv),  itself(nf)],     # fake item f
    ]
    return torch.cat([torch.cat(row, dim=1) for row in rows], dim=0)


def step2_mask_mod(n_interest: int, n_value: int, n_fake: int, heterogeneous: bool = True) -> MaskMod:
    """FlexAttention form of :func:`step2_dense`.

    The table collapses to two rules: a task query sees keys ``k <= q`` (earlier tasks along
    the funnel, itself) and every fake item; a fake query sees every task and itself.
    """
    _check_step2(n_interest, n_value, n_fake)
    n_tasks = n_interest + n_value

    if not heterogeneous:
        def step2_full(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return (q_idx >= 0) & (kv_idx >= 0)     # all True, shaped like the indices

        return step2_full

    def step2_mask(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        task_query = q_idx < n_tasks
        fake_key = kv_idx >= n_tasks
        return torch.where(task_query, (kv_idx <= q_idx) | fake_key, ~fake_key | (kv_idx == q_idx))

    return step2_mask


def step2_block_mask(n_interest: int, n_value: int, n_fake: int, heterogeneous: bool = True,
                     device: DeviceLike = "cpu", block_size: int = 128, compile: bool = False) -> BlockMask:
    """BlockMask of :func:`step2_dense`, shared by batch and heads (B = H = None)."""
    mask_mod = step2_mask_mod(n_interest, n_value, n_fake, heterogeneous)
    t = n_interest + n_value + n_fake
    return _build_block_mask(mask_mod, None, None, t, t, device, block_size, compile)


# --------------------------------------------------------------------------- Step 3

def step3_dense(n_candidates: int, device: DeviceLike = "cpu") -> Tensor:
    """R-Decoder self-attention mask, BoolTensor[1 + n, 1 + n] over ``[ranking token; candidates]``.

    docs/paper.md, "Step 3": candidates see the ranking token and themselves but never each
    other, so each candidate's score does not depend on which other candidates share its
    list; the ranking token sees itself only.
    """
    _check_size("n_candidates", n_candidates)
    mask = torch.eye(1 + n_candidates, dtype=torch.bool, device=device)
    mask[:, 0] = True            # every candidate reads the ranking token
    return mask


def step3_mask_mod(n_candidates: int) -> MaskMod:
    """FlexAttention form of :func:`step3_dense`: ``k == q or k == 0``."""
    _check_size("n_candidates", n_candidates)

    def step3_mask(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx == q_idx) | (kv_idx == 0)

    return step3_mask


def step3_block_mask(n_candidates: int, device: DeviceLike = "cpu", block_size: int = 128,
                     compile: bool = False) -> BlockMask:
    """BlockMask of :func:`step3_dense`, shared by batch and heads (B = H = None)."""
    mask_mod = step3_mask_mod(n_candidates)
    return _build_block_mask(mask_mod, None, None, 1 + n_candidates, 1 + n_candidates,
                             device, block_size, compile)


# --------------------------------------------------------------------------- cross-attention

def key_padding(lengths: Tensor, seq_len: int) -> Tensor:
    """BoolTensor[B, seq_len], True where the key is a real token (``k < lengths[b]``).

    Unlike the attention masks this accepts ``lengths == 0`` (a row of padding only): it
    describes the layout, it is not itself an attention mask.
    """
    _check_lengths(lengths, seq_len, minimum=0)
    return torch.arange(seq_len, device=lengths.device)[None, :] < lengths[:, None]


def cross_dense(lengths: Tensor, n_queries: int, seq_len: int) -> Tensor:
    """Cross-attention mask, BoolTensor[B, n_queries, seq_len]: queries (Step-2 task/fake
    tokens, Step-3 ranking/candidate tokens) read every real Step-1 state, never padding."""
    _check_lengths(lengths, seq_len)
    _check_size("n_queries", n_queries)
    return key_padding(lengths, seq_len)[:, None, :].expand(-1, n_queries, -1)


def cross_mask_mod(lengths: Tensor) -> MaskMod:
    """FlexAttention form of :func:`cross_dense`: ``k < lengths[b]``."""
    _check_lengths(lengths)

    def cross_mask(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx < lengths[b]) & (q_idx >= 0)     # q_idx term: shape the result like the grid

    return cross_mask


def cross_block_mask(lengths: Tensor, n_queries: int, seq_len: int, block_size: int = 128,
                     compile: bool = False) -> BlockMask:
    """BlockMask of :func:`cross_dense` (B = len(lengths), shared by heads) on ``lengths``' device."""
    _check_lengths(lengths, seq_len)
    _check_size("n_queries", n_queries)
    return _build_block_mask(cross_mask_mod(lengths), lengths.shape[0], None, n_queries, seq_len,
                             lengths.device, block_size, compile)


# --------------------------------------------------------------------------- evaluation

def dense_from_mask_mod(mask_mod: MaskMod, B: int, Q: int, K: int, h: int = 0,
                        device: DeviceLike = "cpu") -> Tensor:
    """Evaluate ``mask_mod`` on the full grid, BoolTensor[B, Q, K] (head ``h``).

    Vectorised: the four index arguments are broadcasting tensors of shapes [B,1,1], [],
    [1,Q,1], [1,1,K], so one call covers the grid. Used by the tests to compare a mask_mod
    with its dense form and by the notebooks to draw masks. ``device`` must be the device of
    any tensor the mask_mod captured (e.g. ``lengths``).
    """
    for name, value in (("B", B), ("Q", Q), ("K", K), ("h", h)):
        _check_size(name, value)
    b = torch.arange(B, device=device).view(B, 1, 1)
    q = torch.arange(Q, device=device).view(1, Q, 1)
    k = torch.arange(K, device=device).view(1, 1, K)
    head = torch.tensor(h, device=device)
    return torch.as_tensor(mask_mod(b, head, q, k), device=device).to(torch.bool).expand(B, Q, K).clone()


def verify_by_perturbation(allowed: Tensor, n_trials: int = 3, seed: int = 0) -> dict[str, int]:
    """Check a dense mask the hard way: for every query, change the value vectors of all keys
    it may *not* see and confirm its attention output is unchanged bit for bit; change one
    key it *may* see and confirm the output moves. Returns the counts of queries checked and
    passed, so a notebook can show the rule holds for every query.

    allowed: Bool[Q, K]. Uses SDPA on random queries/keys in float64.
    """
    if allowed.dim() != 2:
        raise ValueError(f"allowed must be a [Q, K] matrix, got shape {tuple(allowed.shape)}")
    g = torch.Generator().manual_seed(seed)
    Q, K = allowed.shape
    hidden_ok = visible_ok = 0
    for _ in range(n_trials):
        q, k, v = (torch.randn(1, 1, n, 8, generator=g, dtype=torch.float64) for n in (Q, K, K))
        base = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)[0, 0]
        for i in range(Q):
            v2 = v.clone()
            v2[0, 0, ~allowed[i]] += torch.randn(int((~allowed[i]).sum()), 8, generator=g, dtype=torch.float64)
            hidden_ok += bool(torch.equal(F.scaled_dot_product_attention(q, k, v2, attn_mask=allowed)[0, 0, i], base[i]))
            v3 = v.clone()
            j = int(torch.nonzero(allowed[i])[0])
            v3[0, 0, j] += 1.0
            visible_ok += bool(not torch.equal(F.scaled_dot_product_attention(q, k, v3, attn_mask=allowed)[0, 0, i],
                                               base[i]))
    return {"queries_checked": Q * n_trials, "unchanged_by_hidden_keys": hidden_ok,
            "changed_by_a_visible_key": visible_ok}


def kernel_parity(dense: Tensor, block_mask: BlockMask, seed: int = 0, head_dim: int = 16) -> float:
    """Largest absolute difference between FlexAttention under ``block_mask`` and dense-mask
    SDPA under ``dense`` ([B|1, Q, K]) on random queries, keys and values (2 heads)."""
    import warnings

    from torch.nn.attention.flex_attention import flex_attention

    g = torch.Generator().manual_seed(seed)
    if dense.dim() == 2:
        dense = dense[None]
    B = block_mask.shape[0] if block_mask.shape[0] is not None else 1
    Q, K = dense.shape[-2:]
    q, k, v = (torch.randn(max(B, dense.shape[0]), 2, n, head_dim, generator=g) for n in (Q, K, K))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense[:, None])
    with warnings.catch_warnings():  # eager (uncompiled) flex is the point here: exact, not fast
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        out = flex_attention(q, k, v, block_mask=block_mask)
    return float((ref - out).abs().max())
