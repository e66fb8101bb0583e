"""The three terms of OneRanker's objective, L = alpha * L_MTP + beta * L_rank + gamma * L_DC.

* :func:`catalogue_nll` — L_MTP for one head: negative log-likelihood of the head's target
  ads under a softmax over the **full catalogue** (paper, "Training objective").
* :func:`value_weighted_targets` (one draw) and :func:`value_weighted_draws` (one per value
  head) — the value heads' targets: ads drawn from a request's impressions with probability
  rising with their realised value (the paper says "value-weighted sampling" without the
  scheme; ours: probability proportional to value^power, DESIGN.md).
* :func:`bpr_loss` — L_rank: pairwise BPR on ranker scores, each pair ordered by value.
* :func:`dc_loss` — L_DC, Distribution Consistency: the ranker's softmax(s / tau) over a
  candidate set is a soft label for the generator's distribution over the *same* set.

All functions take padded batches with explicit masks and return a scalar mean; rows with
nothing to learn from contribute nothing (and a batch with nothing gives 0, not NaN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def catalogue_nll(logits: Tensor, targets: Tensor, weights: Tensor | None = None, norm: Tensor | None = None) -> Tensor:
    """Mean of ``-log softmax(logits)[target]`` over valid targets (``targets >= 0``).

    logits [B, N] over the whole catalogue; targets [B, P] ad ids, -1 = padding;
    weights [B, P] optional non-negative per-target weights (a weighted mean). ``norm``
    replaces the denominator (the total weight): distributed training divides each rank's
    sum by the total weight of the whole batch, so the ranks' losses add up to this mean.
    """
    valid = targets >= 0
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, targets.clamp(min=0))
    w = valid.float() if weights is None else weights.float() * valid
    return -(logp * w).sum() / (w.sum().clamp(min=1e-12) if norm is None else norm)


def nll_norm(targets: Tensor, weights: Tensor | None = None) -> Tensor:
    """The denominator :func:`catalogue_nll` uses for these targets (their total weight)."""
    valid = targets >= 0
    w = valid.float() if weights is None else weights.float() * valid
    return w.sum().clamp(min=1e-12)


def realised_value(bid: Tensor, click: Tensor, conv: Tensor, click_weight: float, conv_weight: float) -> Tensor:
    """An impression's logged business value: its bid times a funnel-graded outcome
    (conversion > click > impression), the ordering GPR and OneRanker use for value."""
    return bid * (click_weight * click.float() + conv_weight * conv.float())


def value_weighted_targets(items: Tensor, value: Tensor, mask: Tensor, n_samples: int, power: float = 1.0,
                           generator: torch.Generator | None = None) -> Tensor:
    """Draw ``n_samples`` target ads per row among the valid, positive-value impressions,
    with probability proportional to ``value ** power``; rows without any get -1."""
    return value_weighted_draws(items, value, mask, n_samples, 1, power, generator)[0]


def value_weighted_draws(items: Tensor, value: Tensor, mask: Tensor, n_samples: int, n_draws: int,
                         power: float = 1.0, generator: torch.Generator | None = None) -> list[Tensor]:
    """``n_draws`` independent :func:`value_weighted_targets` draws (one per value head).

    The draws are made on the CPU with the caller's CPU generator, so every device gets the
    same targets. The weights are copied to the CPU once for all the draws: that copy is the
    one point of a training step where the host waits for the GPU.
    """
    w = torch.where(mask & (value > 0), value.float().clamp(min=0) ** power, torch.zeros_like(value, dtype=torch.float))
    has = w.sum(1) > 0
    w = torch.where(has[:, None], w, torch.ones_like(w)).detach().cpu()
    out = []
    for _ in range(n_draws):
        idx = torch.multinomial(w, n_samples, replacement=True, generator=generator).to(items.device)
        drawn = items.gather(1, idx)
        out.append(torch.where(has[:, None], drawn, torch.full_like(drawn, -1)))
    return out


def bpr_pairs(value: Tensor, mask: Tensor) -> Tensor:
    """[B, C, C]: True where candidate i of a row should outrank candidate j (value_i > value_j)."""
    return (value[:, :, None] > value[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def bpr_loss(scores: Tensor, value: Tensor, mask: Tensor, norm: Tensor | None = None) -> Tensor:
    """Mean ``-log sigmoid(s_i - s_j)`` over pairs of the same row with ``value_i > value_j``
    (``norm``: divide by this number of pairs instead, as in :func:`catalogue_nll`)."""
    pair = bpr_pairs(value, mask)
    diff = scores[:, :, None] - scores[:, None, :]
    n = pair.sum() if norm is None else norm
    # No pairs: the sum is 0 and so is the loss. Clamping the count, rather than testing it
    # with `if`, keeps the host from waiting for the GPU.
    return -(F.logsigmoid(diff.float()) * pair).sum() / _at_least_one(n)


def dc_loss(ranker_scores: Tensor, generator_scores: Tensor, mask: Tensor, tau: float,
            detach_ranker: bool = True, norm: Tensor | None = None) -> Tensor:
    """Distribution Consistency: ``-sum_i softmax(r / tau)_i log pi_gen(i)`` over each row's
    candidates, with ``pi_gen`` the generator's softmax renormalised over the same set.

    ``detach_ranker=True`` (our default; the paper does not say) makes it a pure
    ranking -> generation signal: the ranker teaches, it is not pulled towards the generator.
    Rows with fewer than two candidates carry no ordering and are skipped (``norm``: divide
    the sum over rows by this number of rows instead of taking the mean).
    """
    if tau <= 0:
        raise ValueError(f"dc tau must be > 0, got {tau}")
    r = ranker_scores.detach() if detach_ranker else ranker_scores
    neg = torch.finfo(torch.float32).min
    p = F.softmax(torch.where(mask, r.float() / tau, neg), dim=-1)
    logq = F.log_softmax(torch.where(mask, generator_scores.float(), neg), dim=-1)
    per_row = -(p * torch.where(mask, logq, 0.0)).sum(-1)
    rows = mask.sum(-1) >= 2
    n = rows.sum() if norm is None else norm
    # Masking and dividing, not indexing by `rows` and testing `n`: no host-device sync.
    return torch.where(rows, per_row, 0.0).sum() / _at_least_one(n)


def _at_least_one(n: Tensor | int | float) -> Tensor | int | float:
    """A count used as a denominator, raised to 1 when it is 0 (the numerator is then 0)."""
    return n.clamp(min=1) if isinstance(n, Tensor) else max(n, 1)
