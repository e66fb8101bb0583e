"""FLOP counting on hand-computed cases; side-by-side timing returns every contender."""

import pytest
import torch

from oneranker import profiling


def test_count_flops_of_a_matmul_by_hand():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert profiling.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_count_flops_scales_with_the_work():
    lin = torch.nn.Linear(32, 32, bias=False)
    x = torch.randn(10, 32)
    one = profiling.count_flops(lambda: lin(x))
    assert one == 2 * 10 * 32 * 32
    assert profiling.count_flops(lambda: lin(lin(x))) == 2 * one


def test_time_side_by_side_reports_each_function():
    out = profiling.time_side_by_side({"a": lambda: torch.ones(3).sum(), "b": lambda: torch.zeros(3)}, repeats=3)
    assert set(out) == {"a", "b"}
    assert all(v["median_s"] >= 0 and v["p90_s"] >= v["median_s"] for v in out.values())
    with pytest.raises(ValueError, match="repeats"):
        profiling.time_side_by_side({"a": lambda: None}, repeats=0)


def test_time_side_by_side_can_keep_autograd():
    x = torch.randn(4, requires_grad=True)
    seen = []
    profiling.time_side_by_side({"f": lambda: seen.append(torch.is_grad_enabled())}, repeats=1, warmup=0, grad=True)
    profiling.time_side_by_side({"f": lambda: seen.append(torch.is_grad_enabled())}, repeats=1, warmup=0)
    assert seen == [True, False] and x.requires_grad


def test_count_flops_of_a_flex_attention_model_counts_its_dense_twin(tiny_prepared):
    """The counter cannot see inside FlexAttention; with the model named, it counts the
    dense-mask path, whose arithmetic is the same, and the model keeps its own kernel."""
    from conftest import tiny_config
    from oneranker.data import Collator
    from oneranker.train import build_model

    flex = build_model(tiny_config(**{"model.attention": "flex", "model.d_model": 32}), tiny_prepared).eval()
    dense = build_model(tiny_config(**{"model.d_model": 32}), tiny_prepared).eval()
    batch = Collator(tiny_prepared, 24)([tiny_prepared.requests["test"][i] for i in range(3)])
    with pytest.raises(Exception):
        profiling.count_flops(lambda: flex.encode(batch))
    # after the failed count, eager FlexAttention failed under dynamo for the rest of the process
    # (seen: test_masks' flex parity, run after this test, "_safe_softmax" skipped); resetting
    # dynamo's caches restores it, so the tests pass in any order
    torch._dynamo.reset()
    counted = profiling.count_flops(lambda: flex.encode(batch), flex)
    assert counted == profiling.count_flops(lambda: dense.encode(batch)) > 0
    assert flex._kernel is None                       # the dense kernel was scoped to the count


def test_profiling_training_steps_leaves_the_trainer_as_it_was(tiny_prepared):
    """profile_training_steps reports per-step wall and kernel numbers and an operator table,
    and restores the weights, the optimiser and the step count (a probe's run goes on unchanged)."""
    from conftest import tiny_config
    from oneranker.train import Trainer

    trainer = Trainer(tiny_config(), tiny_prepared, device="cpu", progress=False)
    batches = trainer.epoch_batches(0)
    trainer.train_step(batches[0])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in trainer.optim.state.values()]
    out = profiling.profile_training_steps(trainer, batches[1:], n=2, row_limit=5)
    assert out["wall_s_per_step_profiled"] > 0 and out["gpu_kernels_per_step"] == 0
    assert "aten::" in out["top"] and trainer.step == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, trainer.optim.state.values()))
