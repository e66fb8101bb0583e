"""The three terms of OneRanker's objective, L = alpha * L_MTP + beta * L_rank + gamma * L_DC.

* :func:`catalogue_nll` — L_MTP for one head: negative log-likelihood of the head's target
  ads under a softmax over the **full catalogue** (paper, "Training objective").
* :func:`value_weighted_targets` (one draw) and :func:`value_weighted_draws` (one per value
  head) — the value heads' targets: ads drawn from a request's impressions with probability
  rising with their realised value (the paper says "value-weighted sampling" without the
  scheme; ours: probability proportional to value^power, docs/design.md,
  "Value-weighted sampling").
* :func:`bpr_loss` — L_rank: pairwise BPR on ranker scores, each pair ordered by value.
* :func:`dc_loss` — L_DC, Distribution Consistency: the ranker's softmax(s / tau) over a
  candidate set is a soft label for the generator's distribution over the *same* set.

Each term comes as a :class:`Term`, a sum and the count it is averaged over (``*_term``), and
as its mean (``catalogue_nll``, ``bpr_loss``, ``dc_loss``). All take padded batches with
explicit masks; rows with nothing to learn from contribute nothing (and a batch with nothing
gives 0, not NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import TrainConfig
from .runtime import to_device

if TYPE_CHECKING:
    from .model import OneRanker


@dataclass(frozen=True)
class Term:
    """A loss term as a sum and the count it is averaged over. Kept apart so that a share of
    a batch's rows (one process of distributed training) can report its part of both and the
    trainer can divide by the count of the whole batch (:func:`loss_from_draws`)."""

    sum: Tensor
    count: Tensor

    def mean(self, count: Tensor | None = None) -> Tensor:
        """``sum / count`` (``count``: another denominator, e.g. summed over processes); a
        term with nothing to average is 0, never NaN."""
        count = self.count if count is None else count.to(self.sum.dtype)
        return self.sum / _at_least(count, self.floor)

    @property
    def floor(self) -> float:
        """The smallest denominator: counts of pairs or rows are integers, weights are not."""
        return 1e-12 if self.count.is_floating_point() else 1


def catalogue_nll_term(logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Term:
    """``-log softmax(logits)[target]`` summed over valid targets (``targets >= 0``), with
    their total weight as the count. logits [B, N] over the whole catalogue; targets [B, P]
    ad ids, -1 = padding; weights [B, P] optional non-negative per-target weights."""
    valid = targets >= 0
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, targets.clamp(min=0))
    w = valid.float() if weights is None else weights.float() * valid
    return Term(-(logp * w).sum(), w.sum())


def catalogue_nll(logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
    """L_MTP of one head: the (weighted) mean of :func:`catalogue_nll_term`."""
    return catalogue_nll_term(logits, targets, weights).mean()


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
    same targets; they are returned on the device of ``items``. Given GPU tensors, the weights
    are copied to the CPU once for all the draws, and the host waits for the GPU there; the
    trainer passes the batch as collated on the CPU instead (``host`` of :func:`loss_terms`),
    and nothing waits.
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


def bpr_term(scores: Tensor, value: Tensor, mask: Tensor) -> Term:
    """``-log sigmoid(s_i - s_j)`` summed over pairs of the same row with ``value_i > value_j``,
    with the number of pairs as the count."""
    pair = bpr_pairs(value, mask)
    diff = scores[:, :, None] - scores[:, None, :]
    return Term(-(F.logsigmoid(diff.float()) * pair).sum(), pair.sum())


def bpr_loss(scores: Tensor, value: Tensor, mask: Tensor) -> Tensor:
    """L_rank: the mean of :func:`bpr_term` over its pairs (0 when there are none)."""
    return bpr_term(scores, value, mask).mean()


def dc_term(ranker_scores: Tensor, generator_scores: Tensor, mask: Tensor, tau: float,
            detach_ranker: bool = True) -> Term:
    """Distribution Consistency: ``-sum_i softmax(r / tau)_i log pi_gen(i)`` over each row's
    candidates, with ``pi_gen`` the generator's softmax renormalised over the same set, summed
    over rows, with the number of rows as the count.

    ``detach_ranker=True`` (our default; the paper does not say) makes it a pure
    ranking -> generation signal: the ranker teaches, it is not pulled towards the generator.
    Rows with fewer than two candidates carry no ordering and are skipped.
    """
    if tau <= 0:
        raise ValueError(f"dc tau must be > 0, got {tau}")
    r = ranker_scores.detach() if detach_ranker else ranker_scores
    neg = torch.finfo(torch.float32).min
    p = F.softmax(torch.where(mask, r.float() / tau, neg), dim=-1)
    logq = F.log_softmax(torch.where(mask, generator_scores.float(), neg), dim=-1)
    per_row = -(p * torch.where(mask, logq, 0.0)).sum(-1)
    rows = mask.sum(-1) >= 2
    # Masking, not indexing by `rows` and testing the count: no host-device sync.
    return Term(torch.where(rows, per_row, 0.0).sum(), rows.sum())


def dc_loss(ranker_scores: Tensor, generator_scores: Tensor, mask: Tensor, tau: float,
            detach_ranker: bool = True) -> Tensor:
    """L_DC: the mean of :func:`dc_term` over the rows with at least two candidates."""
    return dc_term(ranker_scores, generator_scores, mask, tau, detach_ranker).mean()


def _at_least(n: Tensor, floor: float) -> Tensor:
    """A count used as a denominator, raised to ``floor`` when it is 0 (the sum is then 0).
    Clamping, rather than testing the count with ``if``, keeps the host from waiting for the GPU."""
    return n.clamp(min=floor)


# ------------------------------------------------------------------ the objective, assembled
# The terms above, put together as the paper's training objective L = alpha L_MTP + beta L_rank
# + gamma L_DC for one batch of logged requests: which targets each head learns (the funnel),
# the value-aware weights of GPR-style training, the step's random draws, and the total.
FUNNEL = ("impression", "click", "conversion")




def funnel_level(head: int, n_heads: int) -> str:
    """Interest heads are laid out along the funnel: the first third predicts impressions,
    the next clicks, the last conversions (paper: task tokens ordered impression -> click ->
    conversion -> value)."""
    return FUNNEL[head * len(FUNNEL) // n_heads]


def value_aware_weights(bid: torch.Tensor, click: torch.Tensor, conv: torch.Tensor, mask: torch.Tensor,
                        tc: TrainConfig) -> torch.Tensor:
    """GPR-style per-target weights [B, P]: the impression's bid divided by the batch's mean
    bid (a normalised eCPM proxy) times its funnel grade, 1 + click_weight x click +
    conv_weight x conversion, so that conversion > click > impression."""
    grade = 1.0 + tc.value_click_weight * click.float() + tc.value_conv_weight * conv.float()
    mean_bid = (bid * mask).sum() / mask.sum().clamp(min=1)
    return bid / mean_bid.clamp(min=1e-12) * grade * mask


@dataclass
class LossDraws:
    """The random part of one step's loss, drawn with the step's CPU generator: a target per
    value head and the ranker's random negatives. Drawn apart from the loss itself, so that
    :func:`loss_from_draws` is a pure tensor function (one ``torch.compile`` graph)."""

    value_targets: list[torch.Tensor]      # per value head, [B, 1] ad ids (-1: nothing to draw)
    negatives: torch.Tensor | None         # [B, n_random_negatives], None without a ranker


def draw_loss_samples(model: OneRanker, batch: dict[str, torch.Tensor], tc: TrainConfig,
                      gen: torch.Generator, host: dict[str, torch.Tensor] | None = None) -> LossDraws:
    """Draw a step's value targets, then its negatives, for the whole batch (in this order:
    the generator's stream, and so every trained model, depends on it). ``host``: the same
    batch on the CPU, as collated; the value targets are then drawn from it and copied to the
    batch's device without the host waiting for the GPU."""
    items = batch["imp_item"]
    src = batch if host is None else host
    # Value heads: each draws its own value-weighted target (bagging over the value tokens).
    targets = value_weighted_draws(src["imp_item"], _logged_value(src, tc), src["imp_mask"], 1,
                                   model.cfg.n_value_tasks, tc.value_power, gen)
    targets = [to_device(t, items.device) for t in targets]
    negatives = None
    if model.rdecoder is not None:
        negatives = torch.randint(0, model.items.n_items, (items.shape[0], tc.n_random_negatives), generator=gen)
        negatives = to_device(negatives, items.device)
    return LossDraws(targets, negatives)


def _outcomes(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The logged clicks and conversions of the batch's valid impressions."""
    mask = batch["imp_mask"]
    return batch["imp_click"].bool() & mask, batch["imp_conv"].bool() & mask


def _logged_value(batch: dict[str, torch.Tensor], tc: TrainConfig) -> torch.Tensor:
    click, conv = _outcomes(batch)
    return realised_value(batch["imp_bid"], click, conv, tc.value_click_weight, tc.value_conv_weight) * batch["imp_mask"]


CountTotal = Callable[[Tensor], Tensor]


def loss_terms(model: OneRanker, batch: dict[str, torch.Tensor], tc: TrainConfig,
               gen: torch.Generator, rows: slice | None = None,
               count_total: CountTotal | None = None,
               host: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """L_MTP, L_rank, L_DC and their weighted total for one batch (paper, 'Training objective').

    ``rows`` and ``count_total``: the terms of these rows only, each divided by its count over
    the whole batch, ``count_total`` summing the counts of the processes that share the batch.
    Random negatives and value targets are drawn for the whole batch first and then sliced, so
    the losses of disjoint row ranges add up to the whole batch's loss: distributed training
    gives every rank the same batch and its own rows (:class:`~oneranker.train.Trainer`).
    ``host``: the batch as collated on the CPU, before its copy to the GPU; given, the step
    never makes the host wait for the GPU (:func:`draw_loss_samples`).
    """
    return loss_from_draws(model, batch, tc, draw_loss_samples(model, batch, tc, gen, host), rows, count_total)


def loss_from_draws(model: OneRanker, batch: dict[str, torch.Tensor], tc: TrainConfig, draws: LossDraws,
                    rows: slice | None = None, count_total: CountTotal | None = None) -> dict[str, torch.Tensor]:
    """:func:`loss_terms` given the step's random draws: no randomness and no host-device
    wait, so it can be compiled whole, the model's forward pass included."""
    items, mask = batch["imp_item"], batch["imp_mask"]
    click, conv = _outcomes(batch)
    by_level = {"impression": torch.where(mask, items, -1), "click": torch.where(click, items, -1),
                "conversion": torch.where(conv, items, -1)}
    v = _logged_value(batch, tc)
    n_int, n_val = model.cfg.n_interest_tasks, model.cfg.n_value_tasks
    weights = value_aware_weights(batch["imp_bid"], click, conv, mask, tc) if tc.mtp_weighting == "value" else None
    int_targets = [by_level[funnel_level(h, n_int)] for h in range(n_int)]
    val_targets, negatives = draws.value_targets, draws.negatives
    sel = slice(None) if rows is None else rows

    state = model.encode(batch if rows is None else {k: t[sel] for k, t in batch.items()})
    interest, value = model.generator_scores(state)
    w_sel = None if weights is None else weights[sel]
    terms = {f"mtp{h}": catalogue_nll_term(interest[:, h], int_targets[h][sel], w_sel) for h in range(n_int)}
    terms |= {f"mtp{n_int + j}": catalogue_nll_term(value[:, j], val_targets[j][sel]) for j in range(n_val)}
    if negatives is not None:
        cands = torch.cat([items.clamp(min=0), negatives], dim=1)[sel]
        cand_mask = torch.cat([mask, torch.ones_like(negatives, dtype=torch.bool)], dim=1)[sel]
        cand_value = torch.cat([v, torch.zeros(negatives.shape, device=v.device)], dim=1)[sel]
        r = model.rank(state, cands)
        terms["rank"] = bpr_term(r, cand_value, cand_mask)
        if tc.gamma > 0:
            g = model.retrieval_score(interest, value).gather(1, cands)
            terms["dc"] = dc_term(r, g, dc_candidates(cand_mask, mask.shape[1], tc), tc.tau, tc.dc_detach_ranker)
    means = _means(terms, count_total)
    out = {"mtp": torch.stack([means[f"mtp{h}"] for h in range(n_int + n_val)]).mean()}
    zero = out["mtp"] * 0.0
    out["rank"], out["dc"] = means.get("rank", zero), means.get("dc", zero)
    out["total"] = tc.alpha * out["mtp"] + tc.beta * out["rank"] + tc.gamma * out["dc"]
    return out


def dc_candidates(cand_mask: Tensor, n_impressions: int, tc: TrainConfig) -> Tensor:
    """The candidates of L_DC among the ranker's [impressions | random negatives] columns
    (``train.dc_candidates``): all of them, or the impressions alone."""
    if tc.dc_candidates == "impressions+negatives":
        return cand_mask
    is_impression = torch.arange(cand_mask.shape[1], device=cand_mask.device) < n_impressions
    return cand_mask & is_impression


def _means(terms: dict[str, Term], count_total: CountTotal | None) -> dict[str, Tensor]:
    """Each term's mean; with ``count_total``, over the counts of every process (one call for
    all the counts, so distributed training exchanges them once a step)."""
    if count_total is None:
        return {k: t.mean() for k, t in terms.items()}
    counts = count_total(torch.stack([t.count.float() for t in terms.values()]))
    return {k: t.mean(c) for (k, t), c in zip(terms.items(), counts)}
