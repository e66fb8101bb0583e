"""The model: shapes, masks seen through the model, and every ablation switch changes the computation."""

import math

import numpy as np
import pytest
import torch

from conftest import load_tool, tiny_config
from oneranker.data import Collator
from oneranker.losses import draw_loss_samples, loss_from_draws, loss_terms
from oneranker.model import FakeItemTokens, OneRanker
from oneranker.train import build_model


def _batch(prepared, cfg, n=6, split="train"):
    collate = Collator(prepared, cfg.data.max_history_len)
    return collate([prepared.requests[split][i] for i in range(n)])


def _outputs(model, batch, cands):
    model.eval()
    with torch.no_grad():
        state = model.encode(batch)
        interest, value = model.generator_scores(state)
        ranked = model.rank(state, cands) if model.rdecoder is not None else None
    return interest, value, ranked


def test_shapes(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared)
    batch = _batch(tiny_prepared, cfg)
    cands = torch.randint(0, 120, (6, 7))
    interest, value, ranked = _outputs(model, batch, cands)
    assert interest.shape == (6, cfg.model.n_interest_tasks, cfg.world.n_items)
    assert value.shape == (6, cfg.model.n_value_tasks, cfg.world.n_items)
    assert ranked.shape == (6, 7)


def test_history_is_causal_through_the_model(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    batch = _batch(tiny_prepared, cfg)
    b = int(torch.argmax(batch["length"]))
    L = int(batch["length"][b])
    p = L - 3
    changed = {k: v.clone() for k, v in batch.items()}
    changed["tok_action"][b, p + 1:L] = (changed["tok_action"][b, p + 1:L] + 1) % 5
    with torch.no_grad():
        h, h2 = model.encode(batch).h1, model.encode(changed).h1
    assert torch.equal(h[b, : p + 1], h2[b, : p + 1])      # the past never sees the future
    assert not torch.equal(h[b, p + 1:L], h2[b, p + 1:L])


def test_candidates_are_scored_independently(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    batch = _batch(tiny_prepared, cfg)
    cands = torch.randint(0, 120, (6, 5))
    other = cands.clone()
    other[:, 1:] = torch.randint(0, 120, (6, 4))
    with torch.no_grad():
        state = model.encode(batch)
        a, b = model.rank(state, cands), model.rank(state, other)
    torch.testing.assert_close(a[:, 0], b[:, 0])


SWITCHES = [
    ({"model.heterogeneous_mask": False}, "generator"),
    ({"model.step2_order": "self_first"}, "generator"),
    ({"model.use_fake_items": False}, "generator"),
    ({"model.use_task_tokens": False}, "generator"),
    ({"model.use_task_tokens": False, "model.use_fake_items": False}, "generator"),
    ({"model.use_step2": False}, "generator"),
    ({"model.ranker_kv": "step1"}, "ranker"),
    ({"model.use_step2": False, "model.ranker_kv": "step1"}, "ranker"),
    ({"model.item_representation": "sid"}, "generator"),
    ({"model.item_representation": "id"}, "generator"),
    ({"model.positions": "absolute"}, "generator"),
    ({"model.value_features": False}, "generator"),
    ({"model.value_features": False}, "ranker"),
]


@pytest.mark.parametrize("switch, part", SWITCHES)
def test_every_ablation_switch_changes_the_computation(tiny_prepared, switch, part):
    base_cfg, cfg = tiny_config(), tiny_config(**switch)
    base = _trained_like(build_model(base_cfg, tiny_prepared))
    variant = build_model(cfg, tiny_prepared)
    # Same weights wherever the two share a parameter, so a difference comes from the switch.
    variant.load_state_dict({k: v for k, v in base.state_dict().items() if k in variant.state_dict()
                             and variant.state_dict()[k].shape == v.shape}, strict=False)
    with torch.no_grad():   # parameters only the variant has: non-trivial values too
        for k, p in variant.named_parameters():
            if k not in base.state_dict():
                p.add_(torch.randn_like(p) * 0.1)
    batch = _batch(tiny_prepared, base_cfg)
    cands = torch.randint(0, 120, (6, 5))
    out_base, out_var = _outputs(base, batch, cands), _outputs(variant, batch, cands)
    if part == "generator":
        assert not torch.allclose(out_base[1], out_var[1])
    else:
        assert not torch.allclose(out_base[2], out_var[2])


def test_no_ranker_and_no_dc_switches(tiny_prepared):
    no_rank = build_model(tiny_config(**{"model.use_ranker": False}), tiny_prepared)
    assert no_rank.rdecoder is None
    cfg = tiny_config()
    batch = _batch(tiny_prepared, cfg)
    with pytest.raises(RuntimeError, match="no ranker"):
        no_rank.rank(no_rank.encode(batch), torch.zeros(6, 2, dtype=torch.long))
    model = build_model(cfg, tiny_prepared).eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with_dc = loss_terms(model, batch, cfg.train, gen())
    without = loss_terms(model, batch, tiny_config(**{"train.gamma": 0.0}).train, gen())
    assert with_dc["dc"] > 0 and without["dc"] == 0
    assert not torch.isclose(with_dc["total"], without["total"])
    assert torch.isclose(with_dc["mtp"], without["mtp"])


def test_value_aware_mtp_weighting_changes_the_interest_loss_only(tiny_prepared):
    cfg = tiny_config()
    batch = _batch(tiny_prepared, cfg, n=16)
    model = build_model(cfg, tiny_prepared).eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = loss_terms(model, batch, cfg.train, gen())
    weighted = loss_terms(model, batch, tiny_config(**{"train.mtp_weighting": "value"}).train, gen())
    assert not torch.isclose(plain["mtp"], weighted["mtp"])
    assert torch.isclose(plain["rank"], weighted["rank"])


def test_fake_items_are_kmeans_centroids_of_item_embeddings(tiny_prepared):
    model = build_model(tiny_config(), tiny_prepared)
    model.refresh_fake_items(seed=0)
    centroids = model.step2.fake.centroids
    emb = model.items().detach()
    # every item's nearest centroid is closer than the global mean: centroids live in item space
    d = torch.cdist(emb, centroids).min(1).values
    assert d.mean() < torch.cdist(emb, emb.mean(0, keepdim=True)).mean()
    assert centroids.shape == (4, 16)


def test_flex_and_sdpa_kernels_agree_through_the_model(tiny_prepared):
    sdpa = build_model(tiny_config(**{"model.attention": "sdpa"}), tiny_prepared).eval()
    flex = build_model(tiny_config(**{"model.attention": "flex"}), tiny_prepared).eval()
    flex.load_state_dict(sdpa.state_dict())
    batch = _batch(tiny_prepared, tiny_config())
    with torch.no_grad():
        a, b = sdpa.encode(batch), flex.encode(batch)
    valid = batch["tok_type"] != 0
    torch.testing.assert_close(a.h1[valid], b.h1[valid], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_encode_and_rank_compile_to_one_graph_each(tiny_prepared, attention):
    """Nothing in the forward pass reads a tensor's value on the host: such a read splits a
    torch.compile graph (and, on a GPU, makes the host wait for it). The input checks are
    device-side assertions while compiling."""
    model = build_model(tiny_config(**{"model.attention": attention}), tiny_prepared).eval()
    batch = _batch(tiny_prepared, tiny_config())
    torch._dynamo.reset()
    with torch.no_grad():   # eager FlexAttention has no backward on the CPU
        enc = torch._dynamo.explain(model.encode)(batch)
        state = model.encode(batch)
        rank = torch._dynamo.explain(model.rank)(state, torch.randint(0, 120, (6, 5)))
    assert (enc.graph_count, enc.graph_break_count) == (1, 0), [r.reason for r in enc.break_reasons]
    assert (rank.graph_count, rank.graph_break_count) == (1, 0), [r.reason for r in rank.break_reasons]


def test_the_whole_loss_compiles_to_one_graph_and_matches_eager(tiny_prepared):
    """Given the step's random draws, the loss (model forward included) is one graph, and
    the traced graph computes the eager loss and gradients (``aot_eager``: the trace and its
    autograd, without code generation, which the GPU benchmark exercises)."""
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared)
    batch = _batch(tiny_prepared, cfg, n=8)
    draws = draw_loss_samples(model, batch, cfg.train, torch.Generator().manual_seed(3))
    torch._dynamo.reset()
    report = torch._dynamo.explain(loss_from_draws)(model, batch, cfg.train, draws)
    assert (report.graph_count, report.graph_break_count) == (1, 0), [r.reason for r in report.break_reasons]

    def loss_and_grads(fn):
        model.zero_grad(set_to_none=True)
        terms = fn(model, batch, cfg.train, draws)
        terms["total"].backward()
        return terms, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    eager, eager_grads = loss_and_grads(loss_from_draws)
    traced, traced_grads = loss_and_grads(torch.compile(loss_from_draws, backend="aot_eager"))
    for k in ("mtp", "rank", "dc", "total"):
        torch.testing.assert_close(traced[k], eager[k], rtol=1e-5, atol=1e-6)
    assert len(traced_grads) == len(eager_grads) > 0
    for a, b in zip(traced_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    whole = loss_terms(model, batch, cfg.train, torch.Generator().manual_seed(3))
    assert float(whole["total"]) == float(eager["total"])       # loss_terms = the draws, then this loss


def test_a_whole_serving_request_compiles_to_one_graph(tiny_prepared):
    """The serving request the benchmarks compile (``benchmarks/common.py``'s ``serve_request``:
    prefill, top-n over the catalogue, ranking with passed-through K/V) traces as one graph, and
    the traced graph (``aot_eager``: the trace without code generation) returns eager's
    candidates and scores."""
    serve_request = load_tool("benchmarks/common.py").serve_request

    model = build_model(tiny_config(), tiny_prepared).eval()
    batch = _batch(tiny_prepared, tiny_config())

    def serve(batch):
        return serve_request(model, batch, 10)
    torch._dynamo.reset()
    with torch.no_grad():
        report = torch._dynamo.explain(serve)(batch)
        eager, traced = serve(batch), torch.compile(serve, backend="aot_eager")(batch)
    assert (report.graph_count, report.graph_break_count) == (1, 0), [r.reason for r in report.break_reasons]
    assert torch.equal(traced[0], eager[0])
    torch.testing.assert_close(traced[1], eager[1], rtol=1e-5, atol=1e-6)


def test_input_checks_still_raise_on_the_cpu(tiny_prepared):
    model = build_model(tiny_config(), tiny_prepared).eval()
    batch = _batch(tiny_prepared, tiny_config())
    bad = {**batch, "prefix_len": batch["length"] + 1}
    with pytest.raises(ValueError, match="prefix_len must be <= lengths"):
        model.encode(bad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device synchronisation exists on a GPU only")
def test_the_loss_forward_waits_for_the_gpu_once(tiny_prepared, monkeypatch):
    """On CUDA, the loss's forward pass (model and losses) never makes the host wait for the
    GPU; its one wait is the copy of the value-target weights to the CPU generator. (The
    backward pass runs torch's own kernels only, so it is not checked here.)"""
    import oneranker.losses as losses_module

    cfg = tiny_config()
    device = torch.device("cuda")
    model = build_model(cfg, tiny_prepared).to(device)
    batch = {k: v.to(device) for k, v in _batch(tiny_prepared, cfg).items()}
    real, calls = losses_module.value_weighted_draws, []

    def draws_allowed_to_wait(*args, **kwargs):
        calls.append(1)
        torch.cuda.set_sync_debug_mode(0)
        try:
            return real(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(losses_module, "value_weighted_draws", draws_allowed_to_wait)
    torch.cuda.set_sync_debug_mode("error")      # any other wait raises
    try:
        loss = loss_terms(model, batch, cfg.train, torch.Generator().manual_seed(0))["total"]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert calls == [1] and torch.isfinite(loss)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_loss_forward_from_a_host_batch_never_waits_for_the_gpu(tiny_prepared):
    """Given the batch as collated on the CPU (what the trainer passes), the loss's forward pass
    draws the value targets from it and never makes the host wait for the GPU."""
    from oneranker.runtime import batch_to_device

    cfg = tiny_config()
    device = torch.device("cuda")
    model = build_model(cfg, tiny_prepared).to(device)
    host = _batch(tiny_prepared, cfg)
    batch = batch_to_device(host, device)
    torch.cuda.set_sync_debug_mode("error")      # any wait raises
    try:
        loss = loss_terms(model, batch, cfg.train, torch.Generator().manual_seed(0), host=host)["total"]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss)


def test_task_queries_start_from_the_newest_step1_state(tiny_prepared, monkeypatch):
    """model.task_query: 'learned' queries are the task vectors alone, the same for every
    request; 'learned+last' adds the Step-1 state at each request's newest history token, the
    one the Step-1 generator's head reads (State.last)."""
    from oneranker.model import Step2

    batch = _batch(tiny_prepared, tiny_config())
    seen = {}
    real = Step2.queries

    def spy(self, last):
        seen["last"], seen["q"] = last, real(self, last)
        return seen["q"]

    monkeypatch.setattr(Step2, "queries", spy)
    for mode in ("learned", "learned+last"):
        model = build_model(tiny_config(**{"model.task_query": mode}), tiny_prepared).eval()
        with torch.no_grad():
            state = model.encode(batch)
        tokens = model.step2.task_tokens[None]
        assert torch.equal(seen["last"], state.last)
        expected = tokens + state.last[:, None] if mode == "learned+last" else tokens.expand_as(seen["q"])
        assert torch.equal(seen["q"], expected)
    assert not torch.equal(state.last[0], state.last[1])     # the requests' states differ, so the queries do


def test_zero_initialised_step2_starts_as_its_normalised_queries(tiny_prepared):
    """model.step2_init='zero': every Step-2 residual branch and the preference MLP's last
    layer start at 0, so each task output is LayerNorm(query) (with 'learned+last': of the
    task vector plus the newest Step-1 state) and the dual-channel score is the semantic
    match alone; the other weights are drawn exactly as with 'default'; and one optimiser
    step moves the zeroed layers (they learn)."""
    cfg = tiny_config(**{"model.task_query": "learned+last", "model.step2_init": "zero"})
    batch = _batch(tiny_prepared, cfg)
    torch.manual_seed(0)
    model = build_model(cfg, tiny_prepared)
    torch.manual_seed(0)
    default = build_model(tiny_config(**{"model.task_query": "learned+last", "model.step2_init": "default"}),
                          tiny_prepared)
    params, before = dict(model.named_parameters()), dict(default.named_parameters())
    zeroed = {n for n, p in params.items() if not p.any() and before[n].any()}
    layers = ["preference.2"] + [f"blocks.{i}.{layer}" for i in range(cfg.model.step2_layers)
                                 for layer in ("cross.out", "self_attn.out", "mlp.2")]
    assert zeroed == {f"step2.{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}
    for name, p in before.items():
        if name not in zeroed:
            assert torch.equal(p, params[name]) or not params[name].any(), name
    model.eval()
    with torch.no_grad():
        state = model.encode(batch)
        s2 = model.step2
        assert torch.allclose(state.tasks, s2.norm(s2.queries(state.last)), atol=1e-6)
        assert torch.allclose(state.fakes, s2.norm(s2.fake(batch["tok_type"].shape[0])), atol=1e-6)
        item_emb = model.items()
        assert torch.equal(s2.scores(state.tasks, state.fakes, item_emb), state.tasks @ item_emb.T)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_terms(model, batch, cfg.train, torch.Generator().manual_seed(0))["total"].backward()
    opt.step()
    assert all(params[n].any() for n in zeroed)


@pytest.mark.parametrize("candidates", ["impressions", "impressions+negatives"])
def test_dc_over_the_impressions_ignores_the_random_negatives(tiny_prepared, candidates):
    """train.dc_candidates, through the whole loss: over the impressions alone, L_DC does not
    change when the step's random negatives do (the ranker scores each candidate on its own,
    so the impressions' scores stay); over impressions and negatives it does."""
    cfg = tiny_config(**{"train.dc_candidates": candidates})
    batch = _batch(tiny_prepared, cfg)
    torch.manual_seed(0)
    model = _trained_like(build_model(cfg, tiny_prepared)).eval()
    draws = draw_loss_samples(model, batch, cfg.train, torch.Generator().manual_seed(0))
    with torch.no_grad():
        dc = loss_from_draws(model, batch, cfg.train, draws)["dc"]
        draws.negatives = (draws.negatives + 7) % model.items.n_items
        moved = loss_from_draws(model, batch, cfg.train, draws)["dc"]
    assert dc > 0
    if candidates == "impressions":
        torch.testing.assert_close(moved, dc)
    else:
        assert not torch.isclose(moved, dc)


def test_zero_initialised_step2_without_fake_items(tiny_prepared):
    """step2_init='zero' without Fake Items (no preference MLP): the task outputs still start
    as their normalised queries."""
    cfg = tiny_config(**{"model.use_fake_items": False, "model.step2_init": "zero"})
    model = build_model(cfg, tiny_prepared).eval()
    with torch.no_grad():
        state = model.encode(_batch(tiny_prepared, cfg))
        assert state.fakes is None
        torch.testing.assert_close(state.tasks, model.step2.norm(model.step2.queries(state.last)))


def _trained_like(model):
    """Give every parameter a non-trivial value (zero-initialised biases and bid weights
    would hide a switch that only matters once trained)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_first_catalogue_loss_is_that_of_a_uniform_guess(tiny_prepared):
    """Small embedding initialisation: the softmax over the catalogue starts near uniform
    (the old unit-variance tables started tens of nats above ln N)."""
    import math

    from oneranker.losses import catalogue_nll
    def first_loss(std):
        cfg = tiny_config(**{"model.embedding_init_std": std})
        model = build_model(cfg, tiny_prepared).eval()
        batch = _batch(tiny_prepared, cfg, n=16)
        with torch.no_grad():
            interest, _ = model.generator_scores(model.encode(batch))
        return float(catalogue_nll(interest[:, 0], batch["imp_item"]))

    n_items = tiny_config().world.n_items
    assert abs(first_loss(0.02) - math.log(n_items)) < 0.25
    assert first_loss(1.0) > 2 * math.log(n_items)      # PyTorch's unit-variance tables


@pytest.mark.parametrize("representation", ["sid", "id", "sid+id"])
def test_item_representation_parts(tiny_prepared, representation):
    model = build_model(tiny_config(**{"model.item_representation": representation}), tiny_prepared)
    items = model.items
    assert (len(items.tables) > 0) == ("sid" in representation)
    assert (items.ids is not None) == (representation != "sid")
    ids = torch.tensor([0, 5, 7])
    parts = 0
    if items.tables:
        parts = sum(t.weight[items.codes[ids, lvl]] for lvl, t in enumerate(items.tables))
    if items.ids is not None:
        parts = parts + items.ids.weight[ids]
    torch.testing.assert_close(items(ids), parts)
    torch.testing.assert_close(items()[ids], items(ids))


@pytest.mark.parametrize("representation", ["sid", "id", "sid+id"])
def test_gathered_and_selected_token_lookups_agree(tiny_prepared, representation):
    """The two token lookups (TokenEmbedding's docstring) give bit-equal embeddings, padding
    included, and the same gradients for every table up to the order of their sums; 'auto'
    selects on the CPU (so CPU-trained models are unchanged) and an unknown lookup is refused."""
    cfg = tiny_config(**{"model.item_representation": representation})
    batch = _batch(tiny_prepared, cfg)
    args = (batch["tok_type"], batch["tok_id"], batch["tok_action"])
    out, grads = {}, {}
    for lookup in ("select", "gather", "auto"):
        model = build_model(cfg, tiny_prepared)
        model.embed.lookup = lookup
        x = model.embed(*args, model.items, batch["length"], batch["prefix_len"])
        (x * torch.linspace(-1, 1, x.numel()).view_as(x)).sum().backward()
        out[lookup] = x.detach()
        grads[lookup] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert torch.equal(out["select"], out["gather"])
    assert torch.equal(out["auto"], out["select"])
    assert grads["select"].keys() == grads["gather"].keys() and len(grads["select"]) >= 6
    for name, g in grads["select"].items():
        torch.testing.assert_close(grads["gather"][name], g, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(grads["auto"][name], g)
    model.embed.lookup = "nearest"
    with pytest.raises(ValueError, match="token lookup 'nearest'"):
        model.embed(*args, model.items)


def test_an_id_embedding_separates_ads_that_share_their_codes(tiny_prepared):
    """Under 'sid' two ads with the same level codes differ only by their dedup-digit row;
    with the same codes everywhere they are the same vector. An ID embedding and output bias
    give every ad parameters of its own."""
    for representation, separable in (("sid", False), ("sid+id", True)):
        model = build_model(tiny_config(**{"model.item_representation": representation}), tiny_prepared)
        items = model.items
        items.codes[1] = items.codes[0]                        # ad 1 now has ad 0's full code
        with torch.no_grad():
            if items.ids is not None:
                items.output_bias[1] = 1.0
        same = torch.equal(items(torch.tensor([0])), items(torch.tensor([1])))
        assert same != separable
        assert (float(items.bias(torch.tensor([1]))) != float(items.bias(torch.tensor([0])))) == separable


def test_recency_positions_count_back_from_the_newest_token(tiny_prepared):
    cfg = tiny_config(**{"model.positions": "recency"})
    model = build_model(cfg, tiny_prepared)
    lengths, prefix = torch.tensor([9, 6]), torch.tensor([5, 5])
    pos = model.embed.position_ids(lengths, prefix, 10)
    max_len = model.embed.max_len
    assert pos[0].tolist() == [max_len - 5 + i for i in range(5)] + [3, 2, 1, 0, 0]
    assert pos[1].tolist() == [max_len - 5 + i for i in range(5)] + [0, 0, 0, 0, 0]
    absolute = build_model(tiny_config(**{"model.positions": "absolute"}), tiny_prepared)
    assert absolute.embed.position_ids(lengths, prefix, 10)[1].tolist() == list(range(10))


def test_a_single_head_generator_gets_no_bid_term(tiny_prepared):
    """Without Step 2 (or with one shared query) the value 'heads' are the one next-item
    output: the bid feature must not tilt it."""
    for switch in ({"model.use_step2": False}, {"model.use_task_tokens": False}):
        cfg = tiny_config(**{"model.value_features": True, **switch})
        model = _trained_like(build_model(cfg, tiny_prepared)).eval()
        with torch.no_grad():
            interest, value = model.generator_scores(model.encode(_batch(tiny_prepared, cfg)))
        torch.testing.assert_close(value, interest[:, :1].expand_as(value))


def test_value_features_add_the_bid_to_value_heads_only(tiny_prepared):
    cfg = tiny_config(**{"model.value_features": True})
    model = _trained_like(build_model(cfg, tiny_prepared)).eval()
    batch = _batch(tiny_prepared, cfg)
    with torch.no_grad():
        state = model.encode(batch)
        interest, value = model.generator_scores(state)
        model.value_bid_weight.zero_()
        interest0, value0 = model.generator_scores(state)
    torch.testing.assert_close(interest, interest0)
    assert not torch.allclose(value, value0)
    bids = np.asarray(tiny_prepared.items["bid"])
    z = (np.log(bids) - np.log(bids).mean()) / np.log(bids).std()
    np.testing.assert_allclose(model.items.bid_feature().numpy(), z, rtol=1e-5, atol=1e-6)


def test_importing_the_model_does_not_import_the_data_stack():
    """The model needs table sizes only (schema.Vocab): not datasets, pyarrow or scikit-learn."""
    import subprocess
    import sys

    code = ("import sys, oneranker.model; "
            "print(sorted(m for m in ('datasets', 'pyarrow', 'sklearn', 'oneranker.data') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_attention_kernel_is_scoped_to_its_block(tiny_prepared):
    model = build_model(tiny_config(), tiny_prepared)
    lengths, prefix = torch.tensor([5]), torch.tensor([2])
    with model.attention_kernel("flex"):
        assert model.step1_mask(lengths, prefix, 8).block is not None
    assert model.step1_mask(lengths, prefix, 8).dense is not None         # tiny config: sdpa
    with pytest.raises(RuntimeError), model.attention_kernel("flex"):
        raise RuntimeError("inside")
    assert model._kernel is None
    with pytest.raises(ValueError, match="choose"):
        with model.attention_kernel("fast"):
            pass


def test_retrieval_score_is_the_mean_of_the_value_heads_only():
    interest = torch.full((1, 3, 3), 100.0)
    value = torch.tensor([[[1.0, 2.0, 9.0], [3.0, 4.0, -1.0]]])          # [B=1, 2 value heads, N=3]
    torch.testing.assert_close(OneRanker.retrieval_score(interest, value), torch.tensor([[2.0, 3.0, 4.0]]))
    torch.testing.assert_close(OneRanker.retrieval_score(-interest, value), torch.tensor([[2.0, 3.0, 4.0]]))


def test_head_scores_give_interest_then_value_task_outputs(tiny_prepared):
    cfg = tiny_config()
    step2 = build_model(cfg, tiny_prepared).step2
    n_int, n_val = cfg.model.n_interest_tasks, cfg.model.n_value_tasks
    T = n_int + n_val
    scores = torch.arange(2 * T * 5, dtype=torch.float32).reshape(2, T, 5)
    interest, value = step2.head_scores(scores)
    assert interest.shape == (2, n_int, 5) and value.shape == (2, n_val, 5)
    ints, vals = step2.head_tokens()
    assert ints == list(range(n_int)) and vals == list(range(n_int, T))
    torch.testing.assert_close(interest, scores[:, ints])
    torch.testing.assert_close(value, scores[:, vals])


def test_item_affinity_is_the_cosine_with_each_centroid():
    fake = FakeItemTokens(2, 2)
    fake.centroids.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    items = torch.tensor([[1.0, 1.0], [0.0, 5.0], [-4.0, 0.0]])
    h = 1 / math.sqrt(2)
    torch.testing.assert_close(fake.item_affinity(items), torch.tensor([[h, h], [0.0, 1.0], [-1.0, 0.0]]))


def test_dual_channel_score_is_semantic_plus_preference_weighted_cosines(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    model.refresh_fake_items(seed=0)
    step2 = model.step2
    with torch.no_grad():
        for p in step2.preference.parameters():       # non-trivial preferences
            p.add_(torch.randn_like(p) * 0.3)
        emb = model.items()
        tasks, fakes = torch.randn(2, step2.n_tasks, cfg.model.d_model), torch.randn(2, cfg.model.n_fake_items, cfg.model.d_model)
        got = step2.scores(tasks, fakes, emb)
        s = step2.centroid_preferences(tasks, fakes)                           # [B, T, F]
        cos = torch.nn.functional.cosine_similarity(emb[:, None], step2.fake.centroids[None], dim=-1)   # [N, F]
        want = torch.einsum("btd,nd->btn", tasks, emb) + torch.einsum("btf,nf->btn", s, cos)
        assert s.abs().max() > 1e-3 and cos.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_fake_items_are_a_kmeans_fixed_point(tiny_prepared):
    model = build_model(tiny_config(), tiny_prepared)
    model.refresh_fake_items(seed=0)
    c = model.step2.fake.centroids
    emb = model.items().detach()
    nearest = torch.cdist(emb, c).argmin(1)
    for l in range(len(c)):                 # Lloyd's fixed point: each centroid is its cluster's mean
        assert (nearest == l).any()
        torch.testing.assert_close(c[l], emb[nearest == l].mean(0), rtol=1e-4, atol=1e-4)
