"""Candidate generation and unified ranking at serving time.

* :func:`topk_candidates` — exact top-K of every Step-2 head over the whole catalogue,
  merged rank by rank across heads and de-duplicated to ``n`` candidates.
* :func:`beam_search` — the scalable path for large catalogues: a beam search over
  semantic-ID digits constrained by the prefix trie, so it never emits an invalid code. An
  ad's semantic score ``<u, e_ad>`` is a sum over its code embeddings, hence additive over
  levels, so the search is exact once the beam covers every valid prefix (tested against
  exhaustive scoring).
* :func:`rank_candidates` — Step 3 on the candidates from K/V computed once per request
  (K/V pass-through), equal to recomputing them (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .model import OneRanker, State
from .semantic_ids import PrefixTrie, TrieTensors

if TYPE_CHECKING:        # the annotation's name only: pandas is imported where beam_trace runs
    import pandas as pd


def topk_candidates(interest: Tensor, value: Tensor, n: int) -> Tensor:
    """Merge the heads' exact top-n lists into n distinct ads per request [B, n].

    Heads: every interest head and the bagged value heads (their mean). The merge takes each
    head's best ad, then each head's second best, and so on, skipping repeats, so every head
    contributes its strongest ads (value and interest coverage in separate output spaces).
    """
    heads = torch.cat([interest, value.mean(1, keepdim=True)], dim=1)         # [B, H, N]
    B, H, N = heads.shape
    if n > N:
        raise ValueError(f"n={n} candidates requested from a catalogue of {N} ads")
    top = heads.topk(n, dim=-1).indices                                       # [B, H, n]
    interleaved = top.transpose(1, 2).reshape(B, H * n)                       # rank-major
    return first_unique(interleaved, n)


def first_unique(ids: Tensor, n: int) -> Tensor:
    """The first ``n`` distinct values of each row, in order of first appearance [B, n].

    Vectorised (no per-row Python, no host sync): a stable sort puts repeats after their first
    occurrence, which marks the first occurrences; their positions, in row order, give the
    output. Every row must hold at least ``n`` distinct values (one head's top-n does).
    """
    B, M = ids.shape
    sorted_ids, order = ids.sort(dim=1, stable=True)
    first_sorted = torch.ones_like(sorted_ids, dtype=torch.bool)
    first_sorted[:, 1:] = sorted_ids[:, 1:] != sorted_ids[:, :-1]
    first = torch.zeros_like(first_sorted).scatter(1, order, first_sorted)   # back to row order
    pos = torch.arange(M, device=ids.device).expand(B, M)
    keep = torch.where(first, pos, pos + M).sort(dim=1).values[:, :n]        # first occurrences first
    return ids.gather(1, keep)


def beam_search(user: Tensor | Callable[[int], Tensor], level_tables: list[Tensor], trie: PrefixTrie | TrieTensors,
                beam_size: int) -> tuple[Tensor, Tensor]:
    """Top ``beam_size`` ads per user by ``sum_l <user, E_l[code_l]>``, over valid codes only.

    user [B, d], or a function giving each live beam its own user vector [B, b, d] from the
    number of beams b (what a generator without a shared history pays: see
    :func:`beam_generate`); level_tables[l] [K_l, d] (the semantic-ID code embeddings, dedup
    digit last).
    Returns (ad ids [B, beam], scores [B, beam]), best first; ad id -1 only if fewer valid ads
    exist than the beam. Every step runs on ``user``'s device with shapes fixed by (B, beam,
    K_l): no host round trip, so the search can be captured in a CUDA graph
    (:func:`graphed_beam_search`). Beams are prefixes kept as their mixed-radix encodings.
    """
    device = level_tables[0].device
    t = trie.tensors(device) if isinstance(trie, PrefixTrie) else trie
    if len(level_tables) != t.depth:
        raise ValueError(f"{len(level_tables)} code tables for a trie of depth {t.depth}")
    shared = None if callable(user) else user[:, None]                        # [B, 1, d]: one vector for all beams
    B = shared.shape[0] if shared is not None else user(1).shape[0]
    enc = torch.zeros(B, 1, dtype=torch.long, device=device)                  # the empty prefix
    scores = torch.zeros(B, 1, device=device)
    for level, table in enumerate(level_tables):
        K, radix = table.shape[0], t.radix[level]
        digits = torch.arange(K, device=device)
        cand_enc = enc[:, :, None] * radix + digits                           # [B, b, K]
        found, _ = t.member(level, cand_enc)
        valid = found & (digits < radix)                                      # digits past the radix would alias
        u = shared if shared is not None else user(enc.shape[1])
        cand = scores[:, :, None] + (u @ table.T).float()
        cand = cand.masked_fill(~valid, float("-inf"))
        keep = min(beam_size, cand_enc.shape[1] * K)
        scores, flat = cand.flatten(1).topk(keep, dim=-1)
        enc = cand_enc.flatten(1).gather(1, flat)
    found, pos = t.member(t.depth - 1, enc)
    items = torch.where(found & torch.isfinite(scores), t.items[pos], -1)
    return items, scores


def beam_trace(user: np.ndarray, level_tables: list[np.ndarray], trie: PrefixTrie, beam_size: int) -> "pd.DataFrame":
    """:func:`beam_search` for one user, written out step by step for reading (notebook 04):
    at each level, every kept prefix is extended by the digits the trie allows after it
    (:meth:`PrefixTrie.children`), each extension scored ``prefix score + <user, E_l[digit]>``,
    and the best ``beam_size`` are kept. Returns one row per extension considered: ``level``,
    ``prefix`` (the digits before), ``digit``, ``score`` and ``kept``; the kept rows of the last
    level, best first, are :func:`beam_search`'s ads (``item``). Numpy, one request: for
    teaching and for checking the batched search, not for serving."""
    import pandas as pd

    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    rows = []
    for level, table in enumerate(level_tables):
        step = [(prefix + (int(d),), score + float(user @ table[d]))
                for prefix, score in beams for d in trie.children(prefix)]
        step.sort(key=lambda e: -e[1])
        beams = step[:beam_size]
        kept = {code for code, _ in beams}
        rows += [{"level": level + 1, "prefix": code[:-1], "digit": code[-1], "score": score, "kept": code in kept,
                  "item": trie.item_of(code) if level == len(level_tables) - 1 else -1} for code, score in step]
    return pd.DataFrame(rows)


def graphed_beam_search(user: Tensor, level_tables: list[Tensor], trie: PrefixTrie,
                        beam_size: int) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """:func:`beam_search` captured once in a CUDA graph for users of ``user``'s shape: the
    returned function copies its input into the graph's static buffer and replays the
    recorded kernels (no Python or launch overhead per level). CUDA only."""
    if user.device.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device")
    t = trie.tensors(user.device)
    static = user.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):                     # warm up kernels and the allocator off the capture
            beam_search(static, level_tables, t, beam_size)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = beam_search(static, level_tables, t, beam_size)

    def run(u: Tensor) -> tuple[Tensor, Tensor]:
        static.copy_(u)
        graph.replay()
        return out
    return run


def beam_generate(model: OneRanker, batch: dict[str, Tensor], trie: PrefixTrie | TrieTensors, beam_size: int,
                  per_beam_copies: bool = False) -> tuple[Tensor, Tensor]:
    """Generation by beam search over the model's semantic IDs. The history is encoded once
    per request and shared by every beam (the semantic score is additive over code levels,
    so a beam needs no state of its own); ``per_beam_copies`` encodes a copy of the history
    for every live beam at every level instead, as a generator without a shared history
    cache would. Both give the same ads (tested); only the cost differs (benchmarks/).

    The search is exact for scores that are sums over code levels, i.e. ads made of their
    semantic-ID codes alone; an ID embedding, an output bias or a bid term is no such sum, so
    such a model is refused rather than searched approximately."""
    cfg = model.cfg
    if cfg.item_representation != "sid" or (cfg.value_features and model.has_value_heads):
        raise ValueError("beam search over semantic IDs needs ads made of their codes alone "
                         f"(model.item_representation='sid' and no value_features; got "
                         f"{cfg.item_representation!r}, value_features={cfg.value_features})")
    tables = [t.weight for t in model.items.tables]
    if not per_beam_copies:
        return beam_search(semantic_user_vectors(model, model.encode(batch)), tables, trie, beam_size)
    B = batch["tok_type"].shape[0]

    def per_beam(n_beams: int) -> Tensor:
        copies = {k: v.repeat_interleave(n_beams, dim=0) for k, v in batch.items()}
        return semantic_user_vectors(model, model.encode(copies)).view(B, n_beams, -1)
    return beam_search(per_beam, tables, trie, beam_size)


def semantic_user_vectors(model: OneRanker, state: State) -> Tensor:
    """The value channel's user vector (mean of the value task outputs) for beam search; the
    Step-1 state when the model has no Step 2."""
    if model.step2 is None:
        return state.last
    _, value_idx = model.step2.head_tokens()
    return state.tasks[:, value_idx].mean(1)


def rank_candidates(model: OneRanker, state: State, candidates: Tensor, use_cache: bool = True,
                    chunk: int | None = None) -> Tensor:
    """R-Decoder scores [B, C].

    With ``use_cache`` the memory's K/V are projected once per request
    (``RDecoder.memory_kv``) and reused for every chunk of ``chunk`` candidates: candidates
    never see each other (Step-3 mask), so scoring them in chunks from one cache must equal
    recomputing everything in one pass (tests/test_generate.py).
    """
    if not use_cache:
        return model.rank(state, candidates)
    memory, _ = model.ranker_memory(state)
    cache = model.rdecoder.memory_kv(memory)
    step = chunk or candidates.shape[1]
    return torch.cat([model.rank(state, candidates[:, i:i + step], cache=cache)
                      for i in range(0, candidates.shape[1], step)], dim=1)


# Per-candidate re-encoding encodes a [history; candidate] sequence per candidate: at most this
# many attention-matrix entries (sequences x tokens^2) per pass. At the paper profile's 1,024
# tokens, 64 requests x 300 candidates in one pass asked the H200 for a 76 GiB dense mask.
REENCODE_PASS_ENTRIES = 2 ** 28


def rank_reencoding(model: OneRanker, batch: dict[str, Tensor], candidates: Tensor,
                    per_candidate: bool = False, pass_entries: int = REENCODE_PASS_ENTRIES) -> Tensor:
    """The same R-Decoder scores as :func:`rank_candidates`, paid for the way a separate
    ranker pays: the history is encoded again (Steps 1-2) for ranking, once per request, or
    with ``per_candidate`` once per candidate (a ranker that reads ``[history; candidate]``
    as one sequence, like a cascade's target-attention ranker). Used to measure what K/V
    pass-through saves (notebook 04); the scores are identical by construction (tested).
    Per candidate, the sequences are encoded in passes of at most ``pass_entries`` attention
    entries (sequences x padded length^2), so that memory stays bounded; every sequence is
    encoded on its own row, so the scores and the FLOPs are those of one pass."""
    if not per_candidate:
        return rank_candidates(model, model.encode(batch), candidates)
    B, C = candidates.shape
    L = batch["tok_type"].shape[1]
    rows = max(1, pass_entries // max(1, L * L))
    flat = candidates.reshape(B * C, 1)
    scores = []
    for start in range(0, B * C, rows):
        idx = torch.arange(start, min(start + rows, B * C), device=candidates.device) // C   # each row's request
        state = model.encode({k: v.index_select(0, idx.to(v.device)) for k, v in batch.items()})
        scores.append(rank_candidates(model, state, flat[start:start + rows]))
    return torch.cat(scores).view(B, C)
