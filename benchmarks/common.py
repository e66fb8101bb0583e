"""What the benchmarks share: a header naming the machine, and the real model at a chosen
width with a synthetic request batch of a chosen history length (random ids in the ranges of
a paper-sized vocabulary: speed does not depend on the data, only on the shapes)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from oneranker.config import make_config  # noqa: E402
from oneranker.schema import Vocab  # noqa: E402
from oneranker.model import OneRanker  # noqa: E402
from oneranker.schema import AD, CONTEXT, ORGANIC, USER  # noqa: E402

USER_ATTRS, CONTEXT_FIELDS = (8, 16, 32), (24, 7)       # cardinalities (prefix of 5 tokens)
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12}      # dense bf16 tensor-core peak


def best_of(fn, repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` calls of ``fn`` in seconds, and the last call's result (a
    CPU-side function timed on a shared machine: the minimum is the least disturbed run)."""
    import time

    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def header(extra: str = "") -> str:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return f"# device: {dev} | torch {torch.__version__} | python {platform.python_version()}" + (f" | {extra}" if extra else "")


def peak_flops() -> float | None:
    """The GPU's dense bf16 peak, for model FLOP utilisation (None if unknown)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def paper_model(d: int, heads: int, history: int, device: torch.device, attention: str = "sdpa",
                n_items: int = 20_000, digits: tuple[int, ...] = (256, 256, 256, 4), seed: int = 0,
                **model: object) -> OneRanker:
    """OneRanker with the paper profile's structure (4/2/1 layers, 6+2 tasks, 32 Fake Item
    Tokens) at width ``d``, over a random semantic-ID catalogue of ``n_items`` ads; ``model``:
    further ``model.*`` knobs by name (e.g. ``item_representation="sid"``)."""
    overrides = {"model.d_model": d, "model.n_heads": heads, "model.attention": attention, "model.dropout": 0.0,
                 **{f"model.{k}": v for k, v in model.items()}}
    cfg = make_config("paper", seed=seed, **overrides)
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, k, n_items) for k in digits], axis=1)
    vocab = Vocab(n_items, 10_000, USER_ATTRS, CONTEXT_FIELDS, digits)
    torch.manual_seed(seed)
    return OneRanker(cfg.model, vocab, codes, history).to(device)


def bf16_on_gpu(device: torch.device) -> torch.autocast:
    """The benchmarks' precision (the serving request's, the ranking's and training's): bf16
    autocast on a GPU, fp32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def step1_mask(model: OneRanker, batch: dict[str, torch.Tensor]):
    """The batch's Step-1 mask as ``encode`` builds it, for a caller that builds it outside a
    compiled graph (compile_check --mask outside)."""
    return model.step1_mask(batch["length"], batch["prefix_len"], batch["tok_type"].shape[1])


def serve_prefill(model: OneRanker, batch: dict[str, torch.Tensor], mask=None):
    """The request's model half before candidate selection: prefill (``encode``, on Step 1's
    ``mask`` when given, else the one it builds) and the generator's catalogue scores of every
    head. Returns (state, interest [B, heads, N], value [B, heads, N])."""
    with bf16_on_gpu(next(model.parameters()).device):
        state = model.encode(batch, mask)
        interest, value = model.generator_scores(state)
    return state, interest, value


def serve_candidates(interest: torch.Tensor, value: torch.Tensor, n: int) -> torch.Tensor:
    """The request's candidate selection between its model halves: the generator's merged top-``n``
    over the catalogue, on fp32 scores (ids only: no autocast op in it)."""
    from oneranker.generate import topk_candidates

    return topk_candidates(interest.float(), value.float(), n)


def serve_ranking(model: OneRanker, state, candidates: torch.Tensor) -> torch.Tensor:
    """The request's model half after candidate selection: the R-Decoder's scores [B, n] of
    ``candidates`` from the passed-through K/V."""
    from oneranker.generate import rank_candidates

    with bf16_on_gpu(next(model.parameters()).device):
        return rank_candidates(model, state, candidates)


def serve_request(model: OneRanker, batch: dict[str, torch.Tensor], n: int,
                  mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One serving request end to end, as the benchmarks time and compile it: :func:`serve_prefill`
    (on Step 1's ``mask`` when given), :func:`serve_candidates` and :func:`serve_ranking` of those
    candidates; the model halves under bf16 autocast on a GPU. Returns the candidates [B, n] and
    their scores [B, n]. No host reads, so it traces as one graph (benchmarks/compile_check.py
    compiles each half alone too)."""
    state, interest, value = serve_prefill(model, batch, mask)
    candidates = serve_candidates(interest, value, n)
    return candidates, serve_ranking(model, state, candidates)


def synthetic_batch(model: OneRanker, B: int, history: int, device: torch.device, min_share: float = 0.5,
                    n_impressions: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """B requests whose histories have between ``min_share * history`` and ``history`` tokens
    (mixed ads and organic items, right padded), each with logged impressions, clicks and bids."""
    g = torch.Generator().manual_seed(seed)
    vocab, P = model.vocab, model.vocab.prefix_len
    L = P + history
    lengths = P + torch.randint(int(min_share * history), history + 1, (B,), generator=g)
    pos = torch.arange(L)[None]
    real = pos < lengths[:, None]
    is_ad = torch.rand(B, L, generator=g) < 0.5
    tok_type = torch.where(is_ad, AD, ORGANIC)
    tok_type[:, : len(USER_ATTRS)] = USER
    tok_type[:, len(USER_ATTRS):P] = CONTEXT
    tok_type = torch.where(real, tok_type, 0)
    tok_id = torch.where(tok_type == AD, torch.randint(0, vocab.n_items, (B, L), generator=g),
                         torch.randint(0, vocab.n_organic, (B, L), generator=g))
    tok_id[:, :P] = torch.randint(0, min(vocab.n_user_tokens, vocab.n_context_tokens), (B, P), generator=g)
    tok_id = torch.where(real, tok_id, 0)
    tok_action = torch.where(real & (tok_type == AD), torch.randint(1, 5, (B, L), generator=g), 0)
    S = n_impressions
    click = torch.rand(B, S, generator=g) < 0.2
    batch = {"tok_type": tok_type, "tok_id": tok_id, "tok_action": tok_action, "length": lengths,
             "prefix_len": torch.full((B,), P), "imp_item": torch.randint(0, vocab.n_items, (B, S), generator=g),
             "imp_position": torch.arange(S).repeat(B, 1), "imp_click": click.long(),
             "imp_conv": (click & (torch.rand(B, S, generator=g) < 0.3)).long(),
             "imp_bid": torch.rand(B, S, generator=g) + 0.5, "imp_price": torch.rand(B, S, generator=g) * 10,
             "imp_mask": torch.ones(B, S, dtype=torch.bool)}
    return {k: v.to(device) for k, v in batch.items()}


def step1_mask_density(batch: dict[str, torch.Tensor]) -> float:
    """Share of the [L, L] score matrix that the Step-1 mask allows (causal + prefix +
    padding): the useful share of a dense attention computation."""
    from oneranker import masks

    L = batch["tok_type"].shape[1]
    return float(masks.step1_dense(batch["length"], batch["prefix_len"], L).float().mean())


def padded_shape_firsts(trainer, batches: list[np.ndarray]) -> list[np.ndarray]:
    """One batch of ``batches`` (training-request indices of a Trainer) per padded history
    length they hold: stepping once on each compiles every graph the timed steps will need."""
    cfg = trainer.cfg
    hist_end = trainer.prepared.requests["train"].data.column("hist_end").to_numpy()
    lengths = np.minimum(hist_end, cfg.data.max_history_len)
    P, pad = trainer.collate.vocab.prefix_len, trainer.collate.pad_to
    padded = [min(-(-(P + int(lengths[b].max())) // pad) * pad, P + cfg.data.max_history_len) for b in batches]
    return list({L: b for L, b in zip(padded, batches)}.values())
