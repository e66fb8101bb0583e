"""Stacked models (oneranker.stacked): the same losses, gradients and updates as each model
alone, per-model clipping, padding, resuming, and the cache."""

import pytest
import torch

from conftest import tiny_config
from oneranker.config import ConfigError, make_config
from oneranker.distributed_check import held_out_outputs
from oneranker.losses import draw_loss_samples, loss_from_draws
from oneranker.stacked import ModelStack, StackedTrainer, clip_grad_norm_per_model, stack_batches, stack_mates
from oneranker.train import Trainer, load_trained, train_or_load

SEEDS = (0, 1, 2)


def _trainers(prepared, seeds=SEEDS, **over):
    """Trainers of one config at several seeds, all on one dataset (a stack only needs one
    architecture and one step count; whose data each model reads does not matter here)."""
    return [Trainer(tiny_config(seed=s, **over), prepared, progress=False) for s in seeds]


def test_stack_batches_pads_each_field_as_the_collator_does():
    a = {"length": torch.tensor([2, 1]), "tok_type": torch.tensor([[1, 2], [3, 0]]),
         "imp_item": torch.tensor([[5], [6]]), "imp_bid": torch.tensor([[1.0], [2.0]])}
    b = {"length": torch.tensor([3, 3]), "tok_type": torch.tensor([[1, 2, 3], [1, 1, 1]]),
         "imp_item": torch.tensor([[7, 8], [9, -1]]), "imp_bid": torch.tensor([[1.0, 3.0], [4.0, 0.0]])}
    s = stack_batches([a, b])
    assert s["tok_type"].tolist() == [[[1, 2, 0], [3, 0, 0]], [[1, 2, 3], [1, 1, 1]]]
    assert s["imp_item"].tolist() == [[[5, -1], [6, -1]], [[7, 8], [9, -1]]]     # no impression: -1
    assert s["imp_bid"].tolist() == [[[1.0, 0.0], [2.0, 0.0]], [[1.0, 3.0], [4.0, 0.0]]]
    assert s["length"].tolist() == [[2, 1], [3, 3]]
    with pytest.raises(ValueError, match="one size"):
        stack_batches([a, {k: v[:1] for k, v in b.items()}])


def test_per_model_clipping_is_clip_grad_norm_of_each_model():
    torch.manual_seed(0)
    grads = [[torch.randn(3, 4) * s, torch.randn(5) * s] for s in (0.1, 1.0, 10.0)]
    stacked = [torch.nn.Parameter(torch.zeros(3, *g.shape)) for g in grads[0]]
    for j, p in enumerate(stacked):
        p.grad = torch.stack([g[j] for g in grads])
    norms = clip_grad_norm_per_model(stacked, 1.0)
    for i, g in enumerate(grads):
        alone = [torch.nn.Parameter(torch.zeros_like(x)) for x in g]
        for p, x in zip(alone, g):
            p.grad = x.clone()
        norm = torch.nn.utils.clip_grad_norm_(alone, 1.0)
        assert torch.allclose(norms[i], norm)
        for p, q in zip(alone, stacked):
            assert torch.allclose(q.grad[i], p.grad, atol=1e-7)
    # hand case: a gradient of norm 5 (3-4-5) is scaled to norm 1, one of norm 0.5 is kept
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    clip_grad_norm_per_model([p], 1.0)
    assert torch.allclose(p.grad, torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-6)


def test_stacked_losses_and_gradients_are_each_models_own(tiny_prepared):
    trainers = _trainers(tiny_prepared)
    stack = ModelStack([t.model for t in trainers], trainers[0].tc)
    stack.train()
    batches = trainers[0].epoch_batches(0)
    hosts = [t.host_batch("train", b) for t, b in zip(trainers, batches[:3])]   # three batches of one size
    draws = [draw_loss_samples(t.model, h, t.tc, torch.Generator().manual_seed(i), h)
             for i, (t, h) in enumerate(zip(trainers, hosts))]
    terms = stack.loss_terms(hosts, draws)
    terms["total"].sum().backward()
    for i, (t, h, d) in enumerate(zip(trainers, hosts, draws)):
        t.model.train()
        alone = loss_from_draws(t.model, h, t.tc, d)
        for k in ("mtp", "rank", "dc", "total"):
            assert torch.allclose(terms[k][i], alone[k], rtol=1e-5, atol=1e-6), k
        alone["total"].backward()
        for name, p in t.model.named_parameters():
            if p.grad is not None:
                g = stack.params[name].grad[i][:len(p.grad)] if p.grad.dim() else stack.params[name].grad[i]
                assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6), name


def test_a_stack_trains_each_model_as_it_would_alone(tmp_path):
    """Without dropout (the one draw a stack makes for all its models), a stack of three seeds,
    each on its own world, ends where each model alone ends, up to the order of floating-point
    sums: code tables of different sizes (padded in the stack), the epoch's one short batch at
    a different step for each seed (length grouping), and early stopping at different epochs."""
    from oneranker.data import cached_prepared

    over = {"train.max_train_requests": 250, "train.length_grouping": 2, "train.epochs": 5, "train.patience": 0,
            "train.lr": 0.03}
    cfgs = [tiny_config(seed=s, **over) for s in SEEDS]
    data = [cached_prepared(c, tmp_path, progress=False) for c in cfgs]
    alone = [Trainer(c, d, progress=False) for c, d in zip(cfgs, data)]
    for t in alone:
        t.fit()
    stack = StackedTrainer([Trainer(c, d, progress=False) for c, d in zip(cfgs, data)])
    assert len({stack.stack.params["items.tables.3.weight"].shape[1]}) == 1
    assert len({d.sid_codes[:, 3].max() for d in data}) > 1                        # tables of other sizes
    short = [[len(b) for b in t.epoch_batches(0)].index(250 % 32) for t in stack.trainers]
    assert len(set(short)) > 1                                                      # the short batch moves
    histories = stack.fit()
    assert len({len(h.epochs) for h in histories}) > 1                              # they stop apart
    for a, h, t, d in zip(alone, histories, stack.trainers, data):
        assert [e["epoch"] for e in h.epochs] == [e["epoch"] for e in a.history.epochs]
        assert (h.best_epoch, h.stopped_early) == (a.history.best_epoch, a.history.stopped_early)
        for x, y in zip(h.epochs, a.history.epochs):
            assert x["valid_loss"] == pytest.approx(y["valid_loss"], rel=1e-4)
            assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-4)
        # compared by what they compute: parameters whose true gradient is 0 (attention's key
        # biases) are moved by AdamW's normalised rounding noise, differently in each
        with torch.no_grad():
            for x, y in zip(held_out_outputs(t.model, t.cfg, d), held_out_outputs(a.model, a.cfg, d)):
                assert torch.allclose(x, y, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("killed_after", [3, 4])   # within the first epoch, and at its last step
def test_a_killed_stack_resumes_to_the_same_models(tiny_prepared, tmp_path, killed_after):
    over = {"model.dropout": 0.1, "train.epochs": 2}
    full = StackedTrainer(_trainers(tiny_prepared, **over), workdir=tmp_path / "a")
    full.fit()
    StackedTrainer(_trainers(tiny_prepared, **over), workdir=tmp_path / "b").fit(stop_after_steps=killed_after)
    resumed = StackedTrainer(_trainers(tiny_prepared, **over), workdir=tmp_path / "b")
    assert resumed.step == killed_after
    resumed.fit()
    for a, b in zip(full.trainers, resumed.trainers):
        assert [{k: v for k, v in e.items() if k != "seconds"} for e in a.history.epochs] == \
            [{k: v for k, v in e.items() if k != "seconds"} for e in b.history.epochs]
        for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="made by other configs"):
        StackedTrainer(_trainers(tiny_prepared, seeds=(0, 1), **over), workdir=tmp_path / "b")


def test_a_stack_refuses_models_of_other_configs(tiny_prepared):
    for other in ({"train.gamma": 0.0}, {"world.n_items": 150}):
        with pytest.raises(ValueError, match="differ in their seed only"):
            StackedTrainer([Trainer(tiny_config(seed=0), tiny_prepared, progress=False),
                            Trainer(tiny_config(seed=1, **other), tiny_prepared, progress=False)])
    with pytest.raises(ValueError, match="distinct seeds"):
        StackedTrainer(_trainers(tiny_prepared, seeds=(0, 0)))
    with pytest.raises(ValueError, match="at least one"):
        StackedTrainer([])
    with pytest.raises(ValueError, match="one architecture"):
        ModelStack([Trainer(tiny_config(seed=0), tiny_prepared).model,
                    Trainer(tiny_config(seed=1, **{"model.n_fake_items": 2}), tiny_prepared).model],
                   tiny_config().train)


def test_a_bad_length_in_a_stacked_batch_is_refused_before_the_step(tiny_prepared):
    trainers = _trainers(tiny_prepared, seeds=(0, 1))
    stack = ModelStack([t.model for t in trainers], trainers[0].tc)
    hosts = [t.host_batch("train", t.epoch_batches(0)[0]) for t in trainers]
    draws = [draw_loss_samples(t.model, h, t.tc, torch.Generator().manual_seed(0), h) for t, h in zip(trainers, hosts)]
    hosts[1]["length"][0] = 0
    with pytest.raises(ValueError, match="lengths must be >= 1"):
        stack.loss_terms(hosts, draws)
    hosts[1]["length"][0], hosts[0]["prefix_len"][3] = 5, 10**6
    with pytest.raises(ValueError, match="prefix_len must be <= lengths"):
        stack.loss_terms(hosts, draws)


def test_stack_seeds_name_the_mates_and_key_the_cache():
    cfg = make_config("smoke", seed=1, **{"train.stack_seeds": (0, 1, 2)})
    assert [m.seed for m in stack_mates(cfg)] == [0, 1, 2]
    assert all(m.train.stack_seeds == (0, 1, 2) for m in stack_mates(cfg))
    lone = make_config("smoke", seed=5, **{"train.stack_seeds": (0, 1, 2)})
    assert stack_mates(lone) == [lone]
    # the field enters the hash only when the config stacks: configs made before it existed keep
    # theirs (the values are those of the commit before it, 92ed0bc), a model that trains alone
    # (its seed not in the stack, or a stack of one) hashes as if the field were unset
    # (the paper profile as it was then: the cosine schedule to a 30-epoch cap)
    old_paper = make_config("paper", **{"train.lr_schedule": "cosine", "train.epochs": 30})
    assert (make_config("smoke").hash(), old_paper.hash()) == ("da2ad5b5cd64", "b317c2748b38")
    assert cfg.hash() != make_config("smoke", seed=1).hash()
    assert lone.hash() == make_config("smoke", seed=5).hash()
    assert make_config("smoke", **{"train.stack_seeds": (0,)}).hash() == "da2ad5b5cd64"
    with pytest.raises(ConfigError, match="a seed may appear once"):
        make_config("smoke", **{"train.stack_seeds": (0, 0)})
    with pytest.raises(ConfigError, match="stacked models"):
        make_config("smoke", **{"train.stack_seeds": (0, 1), "train.compile": "loss"})
    with pytest.raises(ConfigError, match="cuda_graphs does not apply to stacked models"):
        make_config("smoke", **{"train.stack_seeds": (0, 1), "train.cuda_graphs": True})


def test_train_or_load_trains_the_whole_stack_into_the_cache(tmp_path):
    from oneranker.data import cached_prepared

    cache = tmp_path / "cache"
    cfg = tiny_config(seed=1, **{"train.stack_seeds": (0, 1), "train.epochs": 1})
    prepared = cached_prepared(cfg, cache, progress=False)
    model, history = train_or_load(cfg, prepared, cache, device="cpu", progress=False)
    for m in stack_mates(cfg):
        loaded = load_trained(m, cached_prepared(m, cache, progress=False), cache, device="cpu")
        assert loaded is not None, f"stack mate of seed {m.seed} not cached"
    again, _ = load_trained(cfg, prepared, cache, device="cpu")
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    blob = torch.load(next((cache / "models").glob(f"{cfg.hash()}-*")) / "final.pt", weights_only=False)
    assert blob["stack"] == [m.hash() for m in stack_mates(cfg)]
    assert not list((cache / "models").glob("*-stack2/stack_checkpoint.pt"))   # removed once trained


def test_a_model_that_stopped_leaves_the_others_unchanged(tiny_prepared):
    """A stopped model stays in the stack but is no longer read: its mates train exactly as if
    it were still training (no parameter is shared), and its own record stays as it stopped."""
    over = {"train.epochs": 2}
    both = StackedTrainer(_trainers(tiny_prepared, seeds=(0, 1), **over))
    both.fit()
    one = StackedTrainer(_trainers(tiny_prepared, seeds=(0, 1), **over))
    one.trainers[1].history.stopped_early = True       # as if it had stopped before the first epoch
    one.fit()
    assert one.trainers[0].history.epochs == [dict(e, seconds=x["seconds"]) for e, x in
                                              zip(both.trainers[0].history.epochs, one.trainers[0].history.epochs)]
    assert one.trainers[1].history.epochs == [] and one.trainers[1].epoch_losses == []
    for (k, v), w in zip(one.trainers[0].model.state_dict().items(), both.trainers[0].model.state_dict().values()):
        assert torch.equal(v, w), k


def test_a_stack_collating_ahead_in_threads_trains_the_same_models(tiny_prepared):
    """On a GPU each member collates its next batch in a thread (Trainer.host_batches, zipped
    by the stack); on the CPU each is collated when its step asks. The models must not depend
    on which: here both ways run on the CPU, with dropout."""
    over = {"model.dropout": 0.1, "train.epochs": 2}
    runs = []
    for prefetch in (False, True):
        trainers = _trainers(tiny_prepared, seeds=(0, 1), **over)
        for t in trainers:
            t.prefetch = prefetch
        StackedTrainer(trainers).fit()
        runs.append(trainers)
    for a, b in zip(*runs):
        assert [e["train_loss"] for e in a.history.epochs] == [e["train_loss"] for e in b.history.epochs]
        for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(v, w), k


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the stack's CUDA path needs a GPU")
def test_a_stacked_cuda_step_gives_each_models_losses(tiny_prepared):
    """On CUDA (bf16 autocast, the math attention inside the stack, FlexAttention alone): the
    stack's losses are each model's own, to bf16 rounding. (Before the stack chose the math
    attention itself, this failed on the H200: the fused kernel refused the vmapped call,
    results/paper/gpu_test_stacked_h200.txt; not yet run on a GPU since.)"""
    # one head of 16 dimensions: 'auto' picks FlexAttention alone (it needs heads of 16 or more)
    trainers = [Trainer(tiny_config(seed=s, **{"model.attention": "auto", "model.n_heads": 1}), tiny_prepared,
                        device="cuda", progress=False) for s in SEEDS]
    stack = StackedTrainer([Trainer(t.cfg, tiny_prepared, device="cuda", progress=False) for t in trainers])
    batches = trainers[0].epoch_batches(0)[:3]
    hosts = [t.host_batch("train", b) for t, b in zip(trainers, batches)]
    stacked = stack.train_step(hosts)["total"].cpu()
    alone = torch.stack([t.train_step(b, h)["total"].cpu() for t, b, h in zip(trainers, batches, hosts)])
    torch.testing.assert_close(stacked, alone, rtol=2e-2, atol=2e-2)


def test_a_stack_on_cuda_allows_the_math_attention_only():
    """Inside a CUDA stack's call only PyTorch's math SDPA backend is enabled (the fused ones
    refused the vmapped call on the H200); on the CPU nothing is changed; after, all is as before."""
    from oneranker.stacked import _attention_under_vmap

    before = (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),
              torch.backends.cuda.math_sdp_enabled())
    with _attention_under_vmap(torch.device("cuda")):
        assert torch.backends.cuda.math_sdp_enabled()
        assert not torch.backends.cuda.mem_efficient_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
    with _attention_under_vmap(torch.device("cpu")):
        assert torch.backends.cuda.mem_efficient_sdp_enabled() == before[1]
    assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),
            torch.backends.cuda.math_sdp_enabled()) == before
