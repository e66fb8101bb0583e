"""Losses against hand-computed values."""

import math

import pytest
import torch

from oneranker.losses import bpr_loss, catalogue_nll, dc_loss, realised_value, value_weighted_draws, value_weighted_targets


def test_catalogue_nll_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])
    # row 0: p = [1/4, 3/4], target 1 -> -log 3/4; row 1: p = [2/3, 1/3], targets 0 and pad
    targets = torch.tensor([[1, -1], [0, -1]])
    expect = -(math.log(0.75) + math.log(2 / 3)) / 2
    assert catalogue_nll(logits, targets).item() == pytest.approx(expect, rel=1e-6)
    w = torch.tensor([[3.0, 5.0], [1.0, 5.0]])  # padding weight is ignored
    expect_w = -(3 * math.log(0.75) + math.log(2 / 3)) / 4
    assert catalogue_nll(logits, targets, w).item() == pytest.approx(expect_w, rel=1e-6)


def test_catalogue_nll_no_targets_is_zero_not_nan():
    out = catalogue_nll(torch.randn(2, 5, requires_grad=True), torch.full((2, 3), -1))
    assert out.item() == 0.0


def test_realised_value_orders_the_funnel():
    bid = torch.tensor([2.0, 2.0, 2.0])
    v = realised_value(bid, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), click_weight=1.0, conv_weight=3.0)
    assert v.tolist() == [0.0, 2.0, 8.0]


def test_value_weighted_targets_follow_value():
    items = torch.tensor([[10, 11, 12], [20, 21, 22]])
    value = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    g = torch.Generator().manual_seed(0)
    out = value_weighted_targets(items, value, mask, n_samples=4000, generator=g)
    assert (out[1] == -1).all()                       # no positive value: no target
    assert set(out[0].tolist()) <= {10, 11}           # zero-value ad never drawn
    share = (out[0] == 11).float().mean().item()
    assert share == pytest.approx(0.75, abs=0.03)     # 3 / (1 + 3)
    sharp = value_weighted_targets(items, value, mask, 4000, power=2.0, generator=g)
    assert (sharp[0] == 11).float().mean().item() == pytest.approx(0.9, abs=0.03)  # 9 / (1 + 9)


def test_bpr_hand_computed():
    scores = torch.tensor([[2.0, 0.0, 1.0]])
    value = torch.tensor([[3.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, True]])
    # pairs: (0 > 1): s diff 2; (0 > 2): diff 1; (1, 2) tie -> no pair
    expect = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(-1)))) / 2
    assert bpr_loss(scores, value, mask).item() == pytest.approx(expect, rel=1e-6)
    mask2 = torch.tensor([[True, True, False]])
    assert bpr_loss(scores, value, mask2).item() == pytest.approx(-math.log(1 / (1 + math.exp(-2))), rel=1e-6)
    assert bpr_loss(scores, torch.zeros_like(value), mask).item() == 0.0
    # a masked candidate on the *winning* side of a pair: (2 > 0) and (2 > 1) by value, but 2 is
    # padding, so only (0 > 1) counts: -log sigmoid(2)
    masked_winner = torch.tensor([[3.0, 1.0, 5.0]])
    assert bpr_loss(scores, masked_winner, mask2).item() == pytest.approx(-math.log(1 / (1 + math.exp(-2))), rel=1e-6)


def test_dc_hand_computed():
    ranker = torch.tensor([[math.log(3.0), 0.0, 5.0]])
    gen = torch.tensor([[0.0, math.log(3.0), -7.0]])
    mask = torch.tensor([[True, True, False]])
    # tau = 1: p = [3/4, 1/4]; pi_gen over the two = [1/4, 3/4]
    expect = -(0.75 * math.log(0.25) + 0.25 * math.log(0.75))
    assert dc_loss(ranker, gen, mask, tau=1.0).item() == pytest.approx(expect, rel=1e-6)
    # tau -> large: soft labels become uniform
    expect_flat = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert dc_loss(ranker, gen, mask, tau=1e6).item() == pytest.approx(expect_flat, rel=1e-5)
    # a row with one candidate carries no ordering: it is left out of the sum and of the count,
    # so the mean is the first row's alone
    two_rows = (torch.cat([ranker, torch.tensor([[1.0, 2.0, 3.0]])]), torch.cat([gen, torch.zeros(1, 3)]),
                torch.cat([mask, torch.tensor([[True, False, False]])]))
    assert dc_loss(*two_rows, tau=1.0).item() == pytest.approx(expect, rel=1e-6)


def test_dc_gradients_flow_to_generator_only_by_default():
    ranker = torch.randn(3, 4, requires_grad=True)
    gen = torch.randn(3, 4, requires_grad=True)
    dc_loss(ranker, gen, torch.ones(3, 4, dtype=torch.bool), tau=0.5).backward()
    assert ranker.grad is None and gen.grad.abs().sum() > 0
    ranker2 = torch.randn(3, 4, requires_grad=True)
    dc_loss(ranker2, gen, torch.ones(3, 4, dtype=torch.bool), tau=0.5, detach_ranker=False).backward()
    assert ranker2.grad.abs().sum() > 0


def test_dc_is_minimal_when_generator_matches_ranker():
    ranker = torch.randn(2, 5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    matched = dc_loss(ranker, ranker / 0.7, mask, tau=0.7)
    other = dc_loss(ranker, torch.randn(2, 5), mask, tau=0.7)
    assert matched < other
    with pytest.raises(ValueError, match="tau"):
        dc_loss(ranker, ranker, mask, tau=0.0)


def test_dc_candidates_are_the_impressions_or_all_the_ranker_candidates():
    """train.dc_candidates: the ranker's candidates are [impressions | random negatives]; with
    'impressions' L_DC sees the first block only (padded impressions stay out either way), and
    its value is the hand-computed one of test_dc_hand_computed, whatever the negatives score."""
    from oneranker.config import make_config
    from oneranker.losses import dc_candidates

    cand_mask = torch.tensor([[True, True, False, True, True]])    # 3 impression slots (1 padded), 2 negatives
    only = make_config("quick", **{"train.dc_candidates": "impressions"}).train
    both = make_config("quick", **{"train.dc_candidates": "impressions+negatives"}).train
    assert dc_candidates(cand_mask, 3, only).tolist() == [[True, True, False, False, False]]
    assert torch.equal(dc_candidates(cand_mask, 3, both), cand_mask)
    ranker = torch.tensor([[math.log(3.0), 0.0, 0.0, 9.0, -9.0]])
    gen = torch.tensor([[0.0, math.log(3.0), 0.0, 4.0, 2.0]])
    expect = -(0.75 * math.log(0.25) + 0.25 * math.log(0.75))
    assert dc_loss(ranker, gen, dc_candidates(cand_mask, 3, only), tau=1.0).item() == pytest.approx(expect, rel=1e-6)
    assert dc_loss(ranker, gen, cand_mask, tau=1.0).item() != pytest.approx(expect, rel=1e-3)


def test_value_aware_weights_by_hand():
    from oneranker.config import make_config
    from oneranker.losses import value_aware_weights

    tc = make_config("quick", **{"train.value_click_weight": 1.0, "train.value_conv_weight": 3.0}).train
    bid = torch.tensor([[1.0, 3.0, 5.0]])
    click = torch.tensor([[False, True, True]])
    conv = torch.tensor([[False, False, True]])
    mask = torch.tensor([[True, True, False]])                 # third impression is padding
    w = value_aware_weights(bid, click, conv, mask, tc)
    # mean bid over valid = 2; grades 1, 2, (5: masked)
    torch.testing.assert_close(w, torch.tensor([[0.5, 3.0, 0.0]]))


def test_rank_and_dc_losses_trace_without_graph_breaks():
    """No `if` on a tensor's value (a host-device wait on a GPU, a split graph when compiled),
    and an empty batch still gives 0."""
    scores, gen_scores = torch.randn(3, 5), torch.randn(3, 5)
    value = torch.tensor([[3.0, 1, 0, 0, 2], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 0, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)

    def both(s, g, v, m):
        return bpr_loss(s, v, m) + dc_loss(s, g, m, tau=1.0)

    torch._dynamo.reset()
    report = torch._dynamo.explain(both)(scores, gen_scores, value, mask)
    assert (report.graph_count, report.graph_break_count) == (1, 0), [r.reason for r in report.break_reasons]
    nothing = torch.zeros(3, 5, dtype=torch.bool)
    assert float(both(scores, gen_scores, value, nothing)) == 0.0


def test_value_weighted_draws_equal_one_call_per_head():
    """One copy of the weights for all the value heads draws exactly what one call per head drew."""
    items = torch.randint(0, 50, (6, 8))
    value, mask = torch.rand(6, 8) * (torch.rand(6, 8) < 0.5), torch.rand(6, 8) < 0.8
    together = value_weighted_draws(items, value, mask, 3, 4, 1.5, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    apart = [value_weighted_targets(items, value, mask, 3, 1.5, g) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(together, apart)) and len(together) == 4
