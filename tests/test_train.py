"""Training: the loss falls, checkpoints are atomic, refused for another config, and resume exactly."""

import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from oneranker.losses import funnel_level
from oneranker.train import Plateau, Trainer, length_grouped_batches, plateau_schedule


def test_funnel_levels():
    assert [funnel_level(h, 3) for h in range(3)] == ["impression", "click", "conversion"]
    assert [funnel_level(h, 6) for h in range(6)] == ["impression"] * 2 + ["click"] * 2 + ["conversion"] * 2


def test_loss_falls(tiny_prepared):
    cfg = tiny_config(**{"train.epochs": 3, "train.max_train_requests": 256, "train.lr": 5e-3})
    t = Trainer(cfg, tiny_prepared, progress=False)
    hist = t.fit()
    first, last = hist.epochs[0]["train_loss"], min(e["train_loss"] for e in hist.epochs)
    assert last < first


@pytest.mark.parametrize("prefetch", [False, True])
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tiny_prepared, tmp_path, prefetch):
    """Also with the next batch collated in a thread (the GPU path): a resumed epoch must start
    its batches at the step it stopped at, not at the epoch's first."""
    cfg = tiny_config()
    full = Trainer(cfg, tiny_prepared, workdir=tmp_path / "a", progress=False)
    full.fit()
    # killed mid-epoch (step 3 of 4 in epoch 1), then a fresh process resumes from the checkpoint
    killed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    killed.prefetch = prefetch
    killed.fit(stop_after_steps=3)
    resumed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    resumed.prefetch = prefetch
    assert resumed.step == 3
    resumed.fit()
    results = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs]  # noqa: E731
    assert results(resumed.history) == results(full.history)     # wall time is a measurement, not a result
    assert all(e["seconds"] > 0 for e in full.history.epochs)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["checkpoint.pt"]   # no temporary left


def test_checkpoint_of_another_config_is_refused(tiny_prepared, tmp_path):
    Trainer(tiny_config(), tiny_prepared, workdir=tmp_path, progress=False).fit(stop_after_steps=1)
    with pytest.raises(ValueError, match="made by another config"):
        Trainer(tiny_config(**{"train.gamma": 0.0}), tiny_prepared, workdir=tmp_path, progress=False)


def test_resume_on_the_quick_profile_ends_with_the_same_metrics(tmp_path):
    """The issue's check at the default profile's world, data and model (a short budget).

    On the CPU: CUDA's backward kernels accumulate with atomics, so two CUDA runs of the same
    config differ in the last bits (seen on an H100) whether or not one was resumed."""
    from oneranker.config import make_config
    from oneranker.data import cached_prepared
    from oneranker.evaluate import list_metrics, model_lists, truth_set
    from oneranker.world import World

    cfg = make_config("quick", **{"train.max_train_requests": 512, "train.epochs": 2, "train.eval_requests": 256})
    prepared = cached_prepared(cfg, tmp_path / "cache")
    ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=200)
    full = Trainer(cfg, prepared, workdir=tmp_path / "a", device="cpu", progress=False)
    full.fit()
    Trainer(cfg, prepared, workdir=tmp_path / "b", device="cpu", progress=False).fit(stop_after_steps=3)  # killed
    resumed = Trainer(cfg, prepared, workdir=tmp_path / "b", device="cpu", progress=False)
    resumed.fit()

    def metrics(model):
        return {name: list_metrics(lists, ts) for name, lists in model_lists(model, cfg, prepared, ts, 30).items()}

    assert metrics(resumed.model) == metrics(full.model)


# A scripted validation curve and what the plateau schedule makes of it (lr_decay 0.5, lr_patience 1,
# lr_floor 0.25: two decays, patience 1 at the floor), by hand:
#   epoch 1-2: new bests (5, 4); 3: 4.5, one bad epoch; 4: 4.2, two > 1: first decay, count restarts;
#   5: 3.9 a new best; 6, 7: two bad epochs: second decay, now at the floor 0.25;
#   8: 3.95, one bad epoch; 9: 3.99, two > patience 1: early stopping, the best epoch 5.
PLATEAU = {"train.lr_schedule": "plateau", "train.lr_decay": 0.5, "train.lr_patience": 1, "train.lr_floor": 0.25,
           "train.patience": 1}
SCRIPTED = [5.0, 4.0, 4.5, 4.2, 3.9, 4.0, 4.1, 3.95, 3.99, 3.0, 2.0]


def test_the_plateau_schedule_on_a_hand_computed_curve():
    tc = tiny_config(**PLATEAU).train
    assert plateau_schedule([], tc) == Plateau(decays=0, scale=1.0, bad_epochs=0, stop=False)
    assert plateau_schedule(SCRIPTED[:3], tc) == Plateau(0, 1.0, 1, False)
    assert plateau_schedule(SCRIPTED[:4], tc) == Plateau(1, 0.5, 0, False)
    assert plateau_schedule(SCRIPTED[:7], tc) == Plateau(2, 0.25, 0, False)
    assert plateau_schedule(SCRIPTED[:8], tc) == Plateau(2, 0.25, 1, False)
    assert plateau_schedule(SCRIPTED[:9], tc) == Plateau(2, 0.25, 2, True)
    # a floor between two powers of the decay is reached by the decay that passes it, and held
    odd = tiny_config(**{**PLATEAU, "train.lr_floor": 0.3}).train
    assert plateau_schedule(SCRIPTED[:7], odd).scale == 0.3
    # no decays (floor 1): early stopping as under the cosine schedule, patience 1 at a constant rate
    flat = tiny_config(**{**PLATEAU, "train.lr_floor": 1.0}).train
    assert plateau_schedule(SCRIPTED[:3], flat) == Plateau(0, 1.0, 1, False)
    assert plateau_schedule(SCRIPTED[:4], flat) == Plateau(0, 1.0, 2, True)


def test_the_plateau_schedule_decays_as_torch_reduce_lr_on_plateau():
    """Parity with the library's scheduler (mode 'min', threshold 0, no cooldown) on random
    walks: the same rate after every epoch, through the floor."""
    tc = tiny_config(**{"train.lr_schedule": "plateau", "train.lr_decay": 0.5, "train.lr_patience": 2,
                        "train.lr_floor": 0.125, "train.patience": 100}).train
    rng = np.random.default_rng(0)
    for walk in range(20):
        losses = list(10 + np.cumsum(rng.normal(-0.02, 0.1, size=60)))
        optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optim, mode="min", factor=0.5, patience=2,
                                                           threshold=0.0, cooldown=0, min_lr=0.125)
        for i, loss in enumerate(losses):
            sched.step(loss)
            assert plateau_schedule(losses[:i + 1], tc).scale == optim.param_groups[0]["lr"], (walk, i)


def _scripted(monkeypatch) -> None:
    """Every trainer's validation loss of epoch e is SCRIPTED[e - 1] (a resumed one's too)."""
    monkeypatch.setattr(Trainer, "validation_loss", lambda self: SCRIPTED[len(self.history.epochs)])


def test_a_plateau_run_decays_on_its_curve_and_stops_at_the_floor(tiny_prepared, monkeypatch):
    _scripted(monkeypatch)
    cfg = tiny_config(**PLATEAU, **{"train.epochs": 11, "train.warmup_steps": 2, "train.lr": 1e-3})
    t = Trainer(cfg, tiny_prepared, progress=False)
    rates = []
    step = t.train_step
    monkeypatch.setattr(t, "train_step", lambda *a: (step(*a), rates.append(t.optim.param_groups[0]["lr"]))[0])
    t.fit()
    assert t.history.stopped_early and len(t.history.epochs) == 9 and t.history.best_epoch == 5
    per_epoch = [rates[e * t.steps_per_epoch:(e + 1) * t.steps_per_epoch] for e in range(9)]
    assert per_epoch[0][:2] == pytest.approx([0.5e-3, 1e-3])                       # the warm-up
    expected = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]                               # epoch by epoch, above
    assert [set(r) for r in per_epoch[1:]] == [{1e-3 * x} for x in expected[1:]]
    # a plateau run that reaches its cap above its floor was not ended by its rule
    capped = Trainer(tiny_config(**PLATEAU, **{"train.epochs": 6}), tiny_prepared, progress=False)
    capped.fit()
    assert not capped.history.stopped_early and len(capped.history.epochs) == 6
    # a cosine run of the same curve stops at its first patience-1 plateau, epoch 4
    cosine = Trainer(tiny_config(**{"train.patience": 1, "train.epochs": 11}), tiny_prepared, progress=False)
    cosine.fit()
    assert cosine.history.stopped_early and len(cosine.history.epochs) == 4


def test_a_plateau_run_that_stops_before_its_cap_is_the_same_run_under_a_larger_cap(tiny_prepared, monkeypatch):
    """The paper profile's cap went from 60 to 120 epochs (oneranker.config): a run that stopped
    by its rule under the old cap must be the very run the new cap trains, or the results of the
    runs that stopped before 60 would not stand for the profile's new defaults."""
    _scripted(monkeypatch)      # the stop falls at epoch 9 of SCRIPTED (the test above)
    runs = {}
    for cap in (10, 30):
        t = Trainer(tiny_config(**PLATEAU, **{"train.epochs": cap}), tiny_prepared, progress=False)
        t.fit()
        runs[cap] = t
    short, long = runs[10], runs[30]
    assert short.history.stopped_early and long.history.stopped_early
    curve = {cap: [{k: v for k, v in e.items() if k != "seconds"} for e in t.history.epochs] for cap, t in runs.items()}
    assert curve[10] == curve[30] and len(curve[10]) == 9 and short.history.best_epoch == long.history.best_epoch
    for (name, a), b in zip(short.model.state_dict().items(), long.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_killed_plateau_run_resumes_on_its_decayed_rate(tiny_prepared, tmp_path, monkeypatch):
    """The rate is a function of the checkpointed curve: a run killed after its first decay
    (epoch 4, the middle of epoch 5) resumes on the decayed rate and ends bit for bit as the
    uninterrupted run."""
    _scripted(monkeypatch)
    cfg = tiny_config(**PLATEAU, **{"train.epochs": 11})
    full = Trainer(cfg, tiny_prepared, workdir=tmp_path / "a", progress=False)
    full.fit()
    killed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    killed.fit(stop_after_steps=4 * killed.steps_per_epoch + 2)
    resumed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    assert resumed.lr_at(resumed.step) == cfg.train.lr * 0.5
    resumed.fit()
    assert [e["valid_loss"] for e in resumed.history.epochs] == SCRIPTED[:9]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_the_plateau_fields_enter_the_hash_only_under_the_plateau_schedule():
    """Adding the fields kept every cosine config's hash (the pinned profile hashes,
    tests/test_config.py); under 'plateau' each of them is part of the model's config."""
    base = tiny_config()
    assert tiny_config(**{"train.lr_decay": 0.3, "train.lr_floor": 0.5, "train.lr_patience": 7}).hash() == base.hash()
    plateau = tiny_config(**{"train.lr_schedule": "plateau"})
    assert plateau.hash() != base.hash()
    for field, value in (("lr_decay", 0.3), ("lr_floor", 0.5), ("lr_patience", 7)):
        assert tiny_config(**{"train.lr_schedule": "plateau", f"train.{field}": value}).hash() != plateau.hash()


def test_a_stack_of_plateau_trainers_is_refused(tiny_prepared):
    """A stack shares one learning rate; each model's plateau is its own (configs refuse
    train.stack_seeds with the plateau schedule; a stack built from Trainers directly, as
    benchmarks/stacked_step.py does, is refused too)."""
    from oneranker.stacked import StackedTrainer
    trainers = [Trainer(tiny_config(seed=s, **{"train.lr_schedule": "plateau"}), tiny_prepared, progress=False)
                for s in (0, 1)]
    with pytest.raises(ValueError, match="cosine schedule only"):
        StackedTrainer(trainers)


@pytest.mark.parametrize("overrides, why", [
    ({"train.lr_schedule": "step"}, "lr_schedule"),
    ({"train.lr_schedule": "plateau", "train.lr_decay": 1.0}, "lr_decay"),
    ({"train.lr_floor": 0.0}, "lr_floor"),
    ({"train.lr_schedule": "plateau", "train.stack_seeds": (0, 1)}, "stacked models"),
])
def test_a_bad_plateau_setting_is_refused_before_any_work(overrides, why):
    from oneranker.config import ConfigError
    with pytest.raises(ConfigError, match=why):
        tiny_config(**overrides)


def test_length_grouped_batches_cover_every_request_once_and_group_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, size=1000)
    order = rng.permutation(1000)[:950]
    batches = length_grouped_batches(order, lengths, 32, 4, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == sorted(order.tolist())
    assert len(batches) == -(-950 // 32)   # as many steps as plain batches
    # within a window of 4 batches the lengths are sorted: every batch spans a quarter of it
    span = np.mean([np.ptp(lengths[b]) for b in batches])
    plain = np.mean([np.ptp(lengths[order[i:i + 32]]) for i in range(0, 950, 32)])
    assert span < 0.5 * plain
    again = length_grouped_batches(order, lengths, 32, 4, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_length_grouping_is_hashed_only_when_on_and_trains(tiny_prepared):
    base = tiny_config()
    assert tiny_config(**{"train.length_grouping": 0}).hash() == base.hash()   # older caches stay valid
    cfg = tiny_config(**{"train.length_grouping": 2})
    assert cfg.hash() != base.hash()
    t = Trainer(cfg, tiny_prepared, progress=False)
    batches = t.epoch_batches(0)
    assert sorted(np.concatenate(batches).tolist()) == sorted(t.epoch_order(0).tolist())
    assert len(batches) == t.steps_per_epoch
    t.fit()
    assert len(t.history.epochs) == cfg.train.epochs


def test_prefetched_batches_train_the_same_model(tiny_prepared):
    """Collating the next batch in a thread (the GPU path) changes when a batch is built, never
    which: the weights after an epoch are bit for bit those of the synchronous path."""
    cfg = tiny_config(**{"train.epochs": 1})
    weights = []
    for prefetch in (False, True):
        trainer = Trainer(cfg, tiny_prepared, device="cpu", progress=False)
        trainer.prefetch = prefetch
        trainer.fit()
        weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_value_targets_drawn_from_the_host_batch_are_those_of_the_device_batch(tiny_prepared):
    """The trainer draws the value targets from the batch as collated on the CPU (no wait for
    the GPU); the draws equal those made from the batch itself with the same generator."""
    from oneranker.losses import draw_loss_samples
    from oneranker.train import build_model, collated

    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared)
    host = collated(tiny_prepared, "train", np.arange(12), Trainer(cfg, tiny_prepared, device="cpu",
                                                                   progress=False).collate)
    a = draw_loss_samples(model, host, cfg.train, torch.Generator().manual_seed(3))
    # the values of the batch given as `batch` are scrambled: the draws must follow `host`
    batch = {k: v.clone() for k, v in host.items()}
    batch["imp_bid"], batch["imp_click"] = batch["imp_bid"].flip(1), 1 - batch["imp_click"]
    b = draw_loss_samples(model, batch, cfg.train, torch.Generator().manual_seed(3), host=host)
    c = draw_loss_samples(model, batch, cfg.train, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a.value_targets, b.value_targets))
    assert torch.equal(a.negatives, b.negatives)
    assert any(not torch.equal(x, y) for x, y in zip(a.value_targets, c.value_targets))   # the test can fail
    assert any((t >= 0).any() for t in a.value_targets)      # something was drawn


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device synchronisation exists on a GPU only")
def test_a_training_step_on_the_gpu_never_waits_for_it(tiny_prepared):
    """Trainer.train_step on CUDA queues the whole step (value draws from the CPU batch, the
    forward and backward passes, clipping, fused AdamW) without the host waiting for the GPU,
    so that the next batch is collated while the GPU computes. The first step runs outside the
    check (first-use initialisations may wait)."""
    cfg = tiny_config()
    trainer = Trainer(cfg, tiny_prepared, device="cuda", progress=False)
    batches = trainer.epoch_batches(0)
    trainer.train_step(batches[0])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")      # any wait raises
    try:
        terms = trainer.train_step(batches[1], trainer.host_batch("train", batches[1]))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(terms["total"])


def test_the_loss_is_one_graph_for_the_compiler(tiny_prepared):
    """train.compile compiles :func:`loss_from_draws` as one graph: dynamo traces the model's
    forward pass and the three losses without a graph break (a break would split the step and
    bring back the host's Python between its pieces). Tracing only, so it runs in seconds on a
    CPU; the compiled kernels are compared with eager on CUDA below."""
    import torch._dynamo

    from oneranker.data import Collator
    from oneranker.losses import draw_loss_samples, loss_from_draws
    from oneranker.train import build_model, collated

    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared)
    batch = collated(tiny_prepared, "train", np.arange(16), Collator(tiny_prepared, cfg.data.max_history_len))
    draws = draw_loss_samples(model, batch, cfg.train, torch.Generator().manual_seed(0))
    explained = torch._dynamo.explain(loss_from_draws)(model, batch, cfg.train, draws)
    assert [b.reason for b in explained.break_reasons] == []
    assert explained.graph_count == 1


def test_every_transformer_block_is_one_graph_for_the_compiler(tiny_prepared):
    """train.compile='blocks' compiles each block of the three steps (compile_blocks); each
    must trace without a graph break, here with the masks and inputs of a real forward pass
    (tracing only, seconds on a CPU)."""
    import torch._dynamo

    from oneranker.data import Collator
    from oneranker.train import build_model, collated, transformer_blocks

    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    batch = collated(tiny_prepared, "train", np.arange(8), Collator(tiny_prepared, cfg.data.max_history_len))
    blocks = transformer_blocks(model)
    assert len(blocks) == cfg.model.step1_layers + cfg.model.step2_layers + cfg.model.step3_layers
    calls = []
    for b in blocks:
        b.register_forward_pre_hook(lambda mod, args, kwargs: calls.append((mod, args, kwargs)), with_kwargs=True)
    with torch.no_grad():
        state = model.encode(batch)
        model.rank(state, batch["imp_item"].clamp(min=0))
        seen = []
        for block, args, kwargs in calls:
            out = torch._dynamo.explain(block.forward)(*args, **kwargs)
            seen.append((type(block).__name__, out.graph_count, [r.reason for r in out.break_reasons]))
    assert {id(b) for b, _, _ in calls} == {id(b) for b in blocks}
    assert all(graphs == 1 and breaks == [] for _, graphs, breaks in seen), seen


def compiled(module: torch.nn.Module) -> bool:
    """Whether ``module.compile()`` wrapped the module (torch's marker of an in-place compile)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def test_compile_blocks_marks_every_block_and_a_cpu_trainer_stays_eager(tiny_prepared):
    """compile_blocks wraps every block of the three steps for compilation (lazily: nothing
    compiles until a block runs), and the Trainer does so only on CUDA: on a CPU train.compile
    leaves the model eager and the loss the eager function."""
    from oneranker.losses import loss_from_draws
    from oneranker.train import build_model, compile_blocks, transformer_blocks

    model = build_model(tiny_config(), tiny_prepared)
    assert not any(compiled(b) for b in transformer_blocks(model))
    assert compile_blocks(model) == transformer_blocks(model)
    assert all(compiled(b) for b in transformer_blocks(model))
    for scope in ("blocks", "loss"):
        trainer = Trainer(tiny_config(**{"train.compile": scope}), tiny_prepared, device="cpu", progress=False)
        assert trainer.loss_fn is loss_from_draws
        assert not any(compiled(b) for b in transformer_blocks(trainer.model))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="train.compile compiles on CUDA only")
@pytest.mark.parametrize("scope", ["blocks", "loss"])
def test_a_compiled_training_run_on_the_gpu_follows_the_eager_one(tiny_prepared, scope):
    """With train.compile the Trainer takes the compiled step on CUDA (every block wrapped, or
    the compiled loss), with dropout on (the compiled code must draw eager's masks), and its
    steps (bf16 autocast, so not bit for bit) follow the eager run's: the first step's
    gradient points the same way, and four steps' losses agree."""
    from oneranker.train import compiled_loss_from_draws, transformer_blocks

    runs = {}
    for mode in ("off", scope):
        cfg = tiny_config(**{"train.compile": mode, "model.dropout": 0.1})
        trainer = Trainer(cfg, tiny_prepared, device="cuda", progress=False)
        wrapped = [compiled(b) for b in transformer_blocks(trainer.model)]
        assert all(wrapped) if mode == "blocks" else not any(wrapped)
        assert (trainer.loss_fn is compiled_loss_from_draws()) == (mode == "loss")
        batches = trainer.epoch_batches(0)[:4]
        losses = [float(trainer.train_step(batches[0])["total"])]
        grad = torch.cat([p.grad.float().flatten() for p in trainer.model.parameters() if p.grad is not None])
        losses += [float(trainer.train_step(b)["total"]) for b in batches[1:]]
        runs[mode] = losses, grad
    cosine = float(torch.nn.functional.cosine_similarity(runs[scope][1], runs["off"][1], dim=0))
    print(f"compiled ({scope}) vs eager: losses {runs[scope][0]} vs {runs['off'][0]}, first gradient cosine {cosine:.4f}")
    assert runs[scope][1].shape == runs["off"][1].shape
    assert cosine > 0.99
    np.testing.assert_allclose(runs[scope][0], runs["off"][0], rtol=2e-2)


def test_cuda_graphs_leave_the_cpu_eager_and_the_hash_unchanged(tiny_prepared):
    """train.cuda_graphs is a CUDA-only runtime switch: on the CPU the Trainer runs eager (no
    graphs), and the config hash, hence the model cache, ignores it."""
    cfg = tiny_config(**{"train.cuda_graphs": True})
    assert cfg.hash() == tiny_config().hash()
    assert Trainer(cfg, tiny_prepared, device="cpu", progress=False).graphs is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_a_graphed_training_run_on_the_gpu_follows_the_eager_one(tiny_prepared, attention):
    """train.cuda_graphs on CUDA, with dropout on, on SDPA and on compiled FlexAttention (the
    paper path): a graph per batch shape (two shapes here, the second captured after an eager
    validation pass, with the optimiser's state already there, and the first replayed after
    it); the run follows the eager one's to rounding: the weights' distance from eager's is
    a small share of how far training moved them, and the losses agree. Refused with
    train.compile. Run twice eagerly, the GPU's own drift is printed beside it."""
    over = {"model.dropout": 0.1}
    if attention == "flex":
        over |= {"model.attention": "flex", "model.d_model": 32, "model.compile_block_mask": True}
    runs = {}
    for name, graphed in (("eager", False), ("eager again", False), ("graphed", True)):
        trainer = Trainer(tiny_config(**{"train.cuda_graphs": graphed, **over}), tiny_prepared, device="cuda",
                          progress=False)
        assert (trainer.graphs is not None) == graphed
        start = {k: v.float().clone() for k, v in trainer.model.state_dict().items()}
        full = trainer.epoch_batches(0)[:3]
        batches = full[:2] + [full[2][:20], full[2]]              # a second shape (20 requests), then the first
        losses = [float(trainer.train_step(b)["total"]) for b in batches[:2]]
        trainer.validation_loss()
        losses += [float(trainer.train_step(b)["total"]) for b in batches[2:]]
        runs[name] = losses, {k: v.float().clone() for k, v in trainer.model.state_dict().items()}
        if graphed:
            assert len(trainer.graphs.graphs) == 2
    moved = sum(float((runs["eager"][1][k] - start[k]).norm() ** 2) for k in start) ** 0.5
    drift = {name: sum(float((runs[name][1][k] - runs["eager"][1][k]).norm() ** 2) for k in start) ** 0.5
             for name in ("eager again", "graphed")}
    print(f"{attention}: training moved the weights {moved:.3e}; distance from the eager run: {drift}; "
          f"losses {runs['graphed'][0]} vs {runs['eager'][0]}")
    assert moved > 0 and drift["graphed"] < 0.01 * moved
    np.testing.assert_allclose(runs["graphed"][0], runs["eager"][0], rtol=1e-3)
    with pytest.raises(ValueError, match="train.compile"):
        Trainer(tiny_config(**{"train.cuda_graphs": True, "train.compile": "blocks"}), tiny_prepared, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="deterministic algorithms matter on CUDA only")
def test_a_deterministic_run_trains_the_same_weights_twice_on_the_gpu(tmp_path, monkeypatch):
    """Under --deterministic two runs that train the same configs on the same GPU, each in fresh
    spawned worker processes (pool.train_all, the way a notebook's pool trains), end with the
    same weights bit for bit, dropout on. Without it, two runs of a paper model over the same
    batches ended about 1e-3 apart on the H200 (benchmarks/training_step.py). An op with no
    deterministic CUDA kernel would raise here, naming itself."""
    from oneranker import pool
    from oneranker.data import cached_prepared
    from oneranker.train import load_trained

    monkeypatch.setenv(pool.DETERMINISTIC_ENV, "1")
    for key, value in pool.CUBLAS_DETERMINISTIC.items():
        monkeypatch.setenv(key, value)
    with pool.run_algorithms(torch.device("cuda")):
        assert torch.are_deterministic_algorithms_enabled()
    # FlexAttention (the paper profile's kernel on CUDA), dropout on, two epochs each; heads of 16
    # dims, the narrowest compiled FlexAttention takes (the smoke profile's 8 failed on the H200)
    cfgs = [tiny_config(**{"model.attention": "flex", "model.d_model": 32, "model.dropout": 0.1,
                           "train.epochs": 2}, seed=s)
            for s in (0, 1)]
    weights = []
    for run in ("a", "b"):
        cache = tmp_path / run
        assert pool.train_all(cfgs, cache, device="cuda", workers=2) == 2
        weights.append([load_trained(c, cached_prepared(c, cache), cache, device="cpu")[0].state_dict()
                        for c in cfgs])
    for first, second in zip(*weights):
        differ = [k for k in first if not torch.equal(first[k], second[k])]
        assert not differ, f"weights that differ between two deterministic runs: {differ[:5]}"


def _results(h):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs]


@pytest.mark.parametrize("kill", ["epoch boundary", "mid-epoch"])
def test_a_run_killed_after_its_best_epoch_resumes_to_the_same_stop_and_weights(tiny_prepared, tmp_path,
                                                                              monkeypatch, kill):
    """Cosine, patience 1, the scripted curve 5, 4, 4.5, 4.2: the best epoch is 2, epoch 3 is one
    bad epoch, epoch 4 a second (> 1): stopped after epoch 4, the model holding epoch 2's weights.
    Killed after epoch 3 (at its end, or one step into epoch 4), the resumed run must restore the
    count of bad epochs, the best weights and the epoch's validation, and end the same."""
    _scripted(monkeypatch)
    cfg = tiny_config(**{"train.patience": 1, "train.epochs": 11})
    full = Trainer(cfg, tiny_prepared, workdir=tmp_path / "a", progress=False)
    full.fit()
    assert full.history.stopped_early and len(full.history.epochs) == 4 and full.history.best_epoch == 2
    assert [e["valid_loss"] for e in full.history.epochs] == SCRIPTED[:4]
    killed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    killed.fit(stop_after_steps=3 * killed.steps_per_epoch + (kill == "mid-epoch"))
    resumed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    assert len(resumed.history.epochs) == 3
    resumed.fit()
    assert _results(resumed.history) == _results(full.history)
    assert resumed.history.stopped_early and resumed.history.best_epoch == 2
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_the_cosine_schedule_on_hand_computed_steps(tiny_prepared):
    """lr 1e-3, 2 warm-up steps, 2 epochs of 4 steps (8 in all): warm-up (step + 1) / 2, then
    0.1 + 0.45 (1 + cos(pi t)) with t = (step - 2) / 6, held at 0.1 past the cap."""
    cfg = tiny_config(**{"train.lr": 1e-3, "train.warmup_steps": 2, "train.epochs": 2})
    t = Trainer(cfg, tiny_prepared, device="cpu", progress=False)
    assert (t.steps_per_epoch, t.total_steps) == (4, 8)
    steps = [0, 1, 2, 3, 5, 8, 14]
    expected = [0.5e-3, 1e-3, 1e-3, 0.1e-3 + 0.45e-3 * (1 + math.cos(math.pi / 6)), 0.55e-3, 0.1e-3, 0.1e-3]
    assert [t.lr_at(s) for s in steps] == pytest.approx(expected, rel=1e-12)


def test_a_killed_run_with_dropout_on_resumes_to_the_same_weights(tiny_prepared, tmp_path):
    """The resume tests train without dropout (TINY), so the per-step dropout seed is never
    exercised: with dropout 0.1, killed at step 3 of 4 in epoch 1, the resumed run ends bit for
    bit as the uninterrupted one."""
    cfg = tiny_config(**{"model.dropout": 0.1})
    full = Trainer(cfg, tiny_prepared, workdir=tmp_path / "a", progress=False)
    full.fit()
    Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False).fit(stop_after_steps=3)
    resumed = Trainer(cfg, tiny_prepared, workdir=tmp_path / "b", progress=False)
    resumed.fit()
    assert _results(resumed.history) == _results(full.history)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_floor_that_is_an_exact_power_is_reached_by_that_many_decays():
    """0.9 ** 4 == 0.6561 as floats, but log(0.6561) / log(0.9) = 4.000000000000001: without the
    tolerance the schedule would take a fifth (no-op) decay at the floor before counting patience.
    lr_patience 0, patience 0: every epoch without a new best decays; epochs 2-5 take the rate to
    the floor (4 decays), epoch 6 is one bad epoch there: stop."""
    tc = tiny_config(**{"train.lr_schedule": "plateau", "train.lr_decay": 0.9, "train.lr_floor": 0.6561,
                        "train.lr_patience": 0, "train.patience": 0}).train
    assert plateau_schedule([1.0, 2.0, 2.0, 2.0, 2.0], tc) == Plateau(4, 0.6561, 0, False)
    assert plateau_schedule([1.0, 2.0, 2.0, 2.0, 2.0, 2.0], tc) == Plateau(4, 0.6561, 1, True)
