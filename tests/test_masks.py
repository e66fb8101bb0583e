"""Attention masks (oneranker.masks): literal small layouts, dense vs mask_mod agreement,
FlexAttention vs SDPA parity, invisibility of masked keys, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from oneranker import masks as M

# flex_attention in eager mode (no torch.compile) is a slow reference path and says so.
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else [])
H, D = 2, 16


def _mat(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r.split()] for r in rows])


def _qkv(B: int, L: int, S: int, device: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, n, D, generator=g).to(device) for n in (L, S, S))


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    mask = dense[:, None] if dense.dim() == 3 else dense      # broadcast over heads
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _random_step1(g: torch.Generator, B: int, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    prefix = (torch.rand(B, generator=g) * (lengths + 1)).long().clamp(max=lengths)
    return lengths, prefix


# --------------------------------------------------------------------------- literal layouts

def test_step1_literal():
    expected = _mat([
        "1 1 0 0 0 0",
        "1 1 0 0 0 0",
        "1 1 1 0 0 0",
        "1 1 1 1 0 0",
        "1 1 1 1 1 0",
        "1 1 1 1 1 0",
    ])
    got = M.step1_dense(torch.tensor([5]), 2, 6)
    assert got.dtype == torch.bool and got.shape == (1, 6, 6)
    assert torch.equal(got[0], expected)
    assert torch.equal(M.step1_dense(torch.tensor([5]), torch.tensor([2]), 6), got)


def test_step2_literal():
    expected = _mat([
        "1 0 0 1 1",
        "1 1 0 1 1",
        "1 1 1 1 1",
        "1 1 1 1 0",
        "1 1 1 0 1",
    ])
    assert torch.equal(M.step2_dense(2, 1, 2), expected)


def test_step2_ablation_is_full():
    assert M.step2_dense(2, 1, 2, heterogeneous=False).all()
    assert M.step2_dense(6, 2, 32, heterogeneous=False).shape == (40, 40)
    assert M.dense_from_mask_mod(M.step2_mask_mod(6, 2, 32, heterogeneous=False), 1, 40, 40).all()


def test_step3_literal():
    expected = _mat([
        "1 0 0 0",
        "1 1 0 0",
        "1 0 1 0",
        "1 0 0 1",
    ])
    assert torch.equal(M.step3_dense(3), expected)


def test_cross_literal():
    lengths = torch.tensor([3, 5])
    assert torch.equal(M.key_padding(lengths, 5), _mat(["1 1 1 0 0", "1 1 1 1 1"]))
    got = M.cross_dense(lengths, 2, 5)
    assert got.shape == (2, 2, 5)
    assert torch.equal(got[0], _mat(["1 1 1 0 0", "1 1 1 0 0"]))
    assert got[1].all()


# --------------------------------------------------------------------------- dense vs mask_mod

@pytest.mark.parametrize("L", [1, 3, 7, 20])
def test_step1_mask_mod_matches_dense(L):
    g = torch.Generator().manual_seed(L)
    for _ in range(5):
        lengths, prefix = _random_step1(g, 4, L)
        ref = M.step1_dense(lengths, prefix, L)
        assert torch.equal(M.dense_from_mask_mod(M.step1_mask_mod(lengths, prefix), 4, L, L), ref)
        # every row has at least one visible key: no NaN from an empty softmax
        assert ref.any(-1).all()


@pytest.mark.parametrize("sizes", [(2, 1, 2), (6, 2, 32), (0, 2, 3), (3, 0, 0), (0, 0, 4), (1, 1, 0)])
@pytest.mark.parametrize("heterogeneous", [True, False])
def test_step2_mask_mod_matches_dense(sizes, heterogeneous):
    t = sum(sizes)
    got = M.dense_from_mask_mod(M.step2_mask_mod(*sizes, heterogeneous=heterogeneous), 2, t, t)
    assert torch.equal(got, M.step2_dense(*sizes, heterogeneous=heterogeneous).expand(2, t, t))


@pytest.mark.parametrize("n", [0, 1, 3, 30])
def test_step3_mask_mod_matches_dense(n):
    got = M.dense_from_mask_mod(M.step3_mask_mod(n), 1, n + 1, n + 1)
    assert torch.equal(got[0], M.step3_dense(n))


def test_cross_mask_mod_matches_dense():
    lengths = torch.tensor([1, 4, 9])
    got = M.dense_from_mask_mod(M.cross_mask_mod(lengths), 3, 5, 9)
    assert torch.equal(got, M.cross_dense(lengths, 5, 9))


# --------------------------------------------------------------------------- flex vs SDPA parity

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("L,block_size", [(37, 128), (100, 16)])
def test_step1_flex_parity(device, L, block_size):
    g = torch.Generator().manual_seed(L)
    lengths, prefix = _random_step1(g, 2, L)
    lengths, prefix = lengths.to(device), prefix.to(device)
    q, k, v = _qkv(2, L, L, device)
    ref = _sdpa(q, k, v, M.step1_dense(lengths, prefix, L))
    out = flex_attention(q, k, v, block_mask=M.step1_block_mask(lengths, prefix, L, block_size=block_size))
    valid = M.key_padding(lengths, L)[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[valid], ref[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)        # padding rows agree too


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="flex_attention has no backward on CPU")
def test_step1_flex_grad_parity():
    L = 50
    lengths, prefix = torch.tensor([50, 23], device="cuda"), torch.tensor([4, 0], device="cuda")
    q, k, v = _qkv(2, L, L, "cuda")
    weight = torch.randn_like(q)
    grads = []
    for attend in (lambda q: _sdpa(q, k, v, M.step1_dense(lengths, prefix, L)),
                   lambda q: flex_attention(q, k, v, block_mask=M.step1_block_mask(lengths, prefix, L, 16))):
        q_ = q.clone().requires_grad_(True)
        (attend(q_) * weight).sum().backward()
        grads.append(q_.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled flex_attention is exercised on CUDA only")
def test_compiled_flex_parity_cuda():
    """The fused kernel skips masked blocks, so use several blocks per row (L=300 > 128)."""
    L = 300
    lengths, prefix = torch.tensor([300, 170], device="cuda"), torch.tensor([9, 140], device="cuda")
    q, k, v = _qkv(2, L, L, "cuda")
    compiled = torch.compile(flex_attention)
    ref = _sdpa(q, k, v, M.step1_dense(lengths, prefix, L))
    out = compiled(q, k, v, block_mask=M.step1_block_mask(lengths, prefix, L, compile=True))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    t = 6 + 2 + 32
    q, k, v = _qkv(2, t, t, "cuda")
    ref = _sdpa(q, k, v, M.step2_dense(6, 2, 32, device="cuda"))
    out = compiled(q, k, v, block_mask=M.step2_block_mask(6, 2, 32, device="cuda", compile=True))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes,block_size", [((2, 1, 2), 128), ((6, 2, 32), 16), ((0, 3, 5), 128)])
@pytest.mark.parametrize("heterogeneous", [True, False])
def test_step2_flex_parity(device, sizes, block_size, heterogeneous):
    t = sum(sizes)
    q, k, v = _qkv(2, t, t, device)
    ref = _sdpa(q, k, v, M.step2_dense(*sizes, heterogeneous=heterogeneous, device=device))
    bm = M.step2_block_mask(*sizes, heterogeneous=heterogeneous, device=device, block_size=block_size)
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=bm), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,block_size", [(3, 128), (40, 16)])
def test_step3_flex_parity(device, n, block_size):
    q, k, v = _qkv(2, n + 1, n + 1, device)
    ref = _sdpa(q, k, v, M.step3_dense(n, device=device))
    bm = M.step3_block_mask(n, device=device, block_size=block_size)
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=bm), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_flex_parity(device):
    lengths = torch.tensor([7, 40], device=device)
    q, k, v = _qkv(2, 9, 40, device)
    ref = _sdpa(q, k, v, M.cross_dense(lengths, 9, 40))
    out = flex_attention(q, k, v, block_mask=M.cross_block_mask(lengths, 9, 40, block_size=16))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- masked keys are invisible

def _unchanged_after_perturbing(dense: torch.Tensor, query: int, key: int, batch: int = 0) -> bool:
    """Perturb value vector ``key`` (row ``batch``), return whether ``query``'s SDPA output
    is bit-for-bit unchanged."""
    B = dense.shape[0] if dense.dim() == 3 else 1
    L, S = dense.shape[-2:]
    q, k, v = _qkv(B, L, S, "cpu", seed=1)
    before = _sdpa(q, k, v, dense)
    v = v.clone()
    v[batch, :, key] += 100.0
    after = _sdpa(q, k, v, dense)
    return torch.equal(before[batch, :, query], after[batch, :, query])


def test_step1_future_and_padding_keys_invisible():
    dense = M.step1_dense(torch.tensor([5, 6]), torch.tensor([2, 1]), 6)
    assert _unchanged_after_perturbing(dense, query=2, key=3)         # future token
    assert _unchanged_after_perturbing(dense, query=0, key=4)         # future of the prefix
    assert _unchanged_after_perturbing(dense, query=4, key=5)         # padding token, valid query
    assert _unchanged_after_perturbing(dense, query=5, key=5)         # padding token, padding query
    # controls: visible keys do change the output
    assert not _unchanged_after_perturbing(dense, query=0, key=1)     # prefix is bidirectional
    assert not _unchanged_after_perturbing(dense, query=4, key=3)     # past token


def test_step2_hidden_keys_invisible():
    dense = M.step2_dense(2, 1, 2)                                    # [I0 I1 V2 F3 F4]
    assert _unchanged_after_perturbing(dense, query=0, key=2)         # value task, interest query
    assert _unchanged_after_perturbing(dense, query=1, key=2)
    assert _unchanged_after_perturbing(dense, query=0, key=1)         # later interest task
    assert _unchanged_after_perturbing(dense, query=3, key=4)         # another fake item
    assert _unchanged_after_perturbing(dense, query=4, key=3)
    assert not _unchanged_after_perturbing(dense, query=2, key=0)     # value sees interest
    assert not _unchanged_after_perturbing(dense, query=0, key=3)     # tasks see fake items
    full = M.step2_dense(2, 1, 2, heterogeneous=False)
    assert not _unchanged_after_perturbing(full, query=0, key=2)      # ablation: all visible


def test_step3_other_candidates_invisible():
    dense = M.step3_dense(3)
    for c in (1, 2, 3):
        for other in (1, 2, 3):
            if other != c:
                assert _unchanged_after_perturbing(dense, query=c, key=other)
        assert _unchanged_after_perturbing(dense, query=0, key=c)     # ranking token sees itself only
        assert not _unchanged_after_perturbing(dense, query=c, key=0)


# --------------------------------------------------------------------------- argument checks

@pytest.mark.parametrize("call,match", [
    (lambda: M.step1_dense(torch.tensor([5]), 2, -1), "seq_len"),
    (lambda: M.step1_dense(torch.tensor([7]), 2, 6), "lengths must be <= seq_len"),
    (lambda: M.step1_dense(torch.tensor([0]), 0, 6), "lengths must be >= 1"),
    (lambda: M.step1_dense(torch.tensor([-2]), 0, 6), "lengths must be >= 1"),
    (lambda: M.step1_dense(torch.tensor([4]), 5, 6), "prefix_len must be <= lengths"),
    (lambda: M.step1_dense(torch.tensor([4, 3]), torch.tensor([1, 4]), 6), "prefix_len must be <= lengths"),
    (lambda: M.step1_dense(torch.tensor([4]), -1, 6), "prefix_len must be >= 0"),
    (lambda: M.step1_dense(torch.tensor([4, 3]), torch.tensor([1]), 6), "shape of lengths"),
    (lambda: M.step1_dense(torch.tensor([4.0]), 1, 6), "integer"),
    (lambda: M.step1_dense(torch.tensor(4), 1, 6), "1-D"),
    (lambda: M.step1_mask_mod(torch.tensor([4]), 5), "prefix_len must be <= lengths"),
    (lambda: M.step1_block_mask(torch.tensor([9]), 1, 6), "lengths must be <= seq_len"),
    (lambda: M.step2_dense(-1, 2, 3), "n_interest"),
    (lambda: M.step2_dense(1, -2, 3), "n_value"),
    (lambda: M.step2_mask_mod(1, 2, -3), "n_fake"),
    (lambda: M.step2_block_mask(0, 0, 0), "at least one token"),
    (lambda: M.step3_dense(-1), "n_candidates"),
    (lambda: M.step3_mask_mod(-4), "n_candidates"),
    (lambda: M.step3_block_mask(2, block_size=0), "block_size"),
    (lambda: M.key_padding(torch.tensor([3]), 2), "lengths must be <= seq_len"),
    (lambda: M.cross_dense(torch.tensor([3]), -1, 4), "n_queries"),
    (lambda: M.cross_mask_mod(torch.tensor([0, 2])), "lengths must be >= 1"),
    (lambda: M.dense_from_mask_mod(M.step3_mask_mod(2), 1, -3, 3), "Q"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_key_padding_allows_empty_rows():
    assert not M.key_padding(torch.tensor([0, 2]), 3)[0].any()
