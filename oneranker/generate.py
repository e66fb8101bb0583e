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

import torch
from torch import Tensor

from .model import OneRanker, State
from .semantic_ids import PrefixTrie


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
    out = torch.empty(B, n, dtype=torch.long, device=heads.device)
    for b in range(B):
        out[b] = torch.tensor(list(dict.fromkeys(interleaved[b].tolist()))[:n], device=heads.device)
    return out


def beam_search(user: Tensor, level_tables: list[Tensor], trie: PrefixTrie, beam_size: int) -> tuple[Tensor, Tensor]:
    """Top ``beam_size`` ads per user by ``sum_l <user, E_l[code_l]>``, over valid codes only.

    user [B, d]; level_tables[l] [K_l, d] (the semantic-ID code embeddings, dedup digit last).
    Returns (ad ids [B, beam], scores [B, beam]), best first; ad id -1 only if fewer valid ads
    exist than the beam.
    """
    if len(level_tables) != trie.depth:
        raise ValueError(f"{len(level_tables)} code tables for a trie of depth {trie.depth}")
    B = user.shape[0]
    device = user.device
    prefixes = torch.zeros(B, 1, 0, dtype=torch.long, device=device)
    scores = torch.zeros(B, 1, device=device)
    for level, table in enumerate(level_tables):
        K = table.shape[0]
        digit_scores = user @ table.T                                        # [B, K]
        b = prefixes.shape[1]
        valid = torch.as_tensor(trie.next_mask(prefixes.reshape(B * b, level).cpu().numpy(), K), device=device)
        cand = scores[:, :, None] + digit_scores[:, None, :]                 # [B, b, K]
        cand = cand.masked_fill(~valid.view(B, b, K), float("-inf"))
        keep = min(beam_size, b * K)
        scores, flat = cand.view(B, b * K).topk(keep, dim=-1)
        parent, digit = flat // K, flat % K
        prefixes = torch.cat([prefixes.gather(1, parent[:, :, None].expand(-1, -1, level)), digit[:, :, None]], -1)
    items = torch.as_tensor(trie.items_of(prefixes.reshape(-1, trie.depth).cpu().numpy()), device=device)
    items = items.view(B, -1)
    items = torch.where(torch.isfinite(scores), items, torch.full_like(items, -1))
    return items, scores


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


def rank_reencoding(model: OneRanker, batch: dict[str, Tensor], candidates: Tensor,
                    per_candidate: bool = False) -> Tensor:
    """The same R-Decoder scores as :func:`rank_candidates`, paid for the way a separate
    ranker pays: the history is encoded again (Steps 1-2) for ranking, once per request, or
    with ``per_candidate`` once per candidate (a ranker that reads ``[history; candidate]``
    as one sequence, like a cascade's target-attention ranker). Used to measure what K/V
    pass-through saves (notebook 04); the scores are identical by construction (tested)."""
    if not per_candidate:
        return rank_candidates(model, model.encode(batch), candidates)
    B, C = candidates.shape
    repeated = {k: v.repeat_interleave(C, dim=0) for k, v in batch.items()}
    state = model.encode(repeated)
    return rank_candidates(model, state, candidates.reshape(B * C, 1)).view(B, C)
