"""A training step's GPU work replayed as a CUDA graph (``train.cuda_graphs``, CUDA only).

A paper-profile step launches about 1,900 kernels from Python. On the lent H200 machines
(gVisor) those launches, not the kernels, are most of a step's wall time, and several models
sharing the GPU add up their hosts' costs. A CUDA graph records the kernels of one step once
and replays them with one launch; Python's forward and backward do not run again.

What stays on the host, as in the eager step (:meth:`oneranker.train.Trainer.train_step`):
the step's dropout seed, its CPU-drawn targets and negatives, the learning rate, the batch's
collation and its copy to the GPU. What the graph holds: :meth:`Trainer.gpu_step` (the loss,
backward, the gradient clip, AdamW) on static input tensors, into which each step's batch and
draws are copied before the replay. A graph serves one batch shape (padded history length,
batch size), so a run captures one per shape it meets (length grouping keeps them few).

Before a shape is captured, two eager iterations on a side stream warm up everything lazy
(compiled kernels, cached masks, the optimiser's state); their updates are then undone, the
weights and the optimiser's state restored in place, and the random state reset, so every
step does what the eager step does, with two differences: the learning rate is a float32
tensor on the GPU (fused AdamW's ``capturable`` form, where eager passes the exact double; a
relative rounding of at most 6e-8), and the order of some floating-point sums may differ as it
does between two eager runs. How far a graphed run drifts from an eager one is measured by
``benchmarks/training_step.py`` (``graphed`` against ``today-again``, the GPU's own run-to-run
drift) and checked by a GPU-only test.

The graphs point at the model's parameters, the optimiser's state tensors and the learning-rate
tensor: anything that replaces them (``optim.load_state_dict``) needs new graphs
(:meth:`StepGraphs.reset`).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from .losses import LossDraws


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    batch: dict[str, Tensor]          # static inputs, copied into before each replay
    draws: LossDraws
    terms: dict[str, Tensor]          # static outputs, cloned after each replay
    grads: list[Tensor | None]        # the gradients the graph writes (kept alive: its memory)


def _shape_key(batch: dict[str, Tensor], draws: LossDraws) -> tuple:
    shapes = [(k, tuple(v.shape), v.dtype) for k, v in sorted(batch.items())]
    shapes += [tuple(t.shape) for t in draws.value_targets]
    return tuple(shapes) + (None if draws.negatives is None else tuple(draws.negatives.shape),)


def _static_copy(draws: LossDraws) -> LossDraws:
    return LossDraws([t.clone() for t in draws.value_targets],
                     None if draws.negatives is None else draws.negatives.clone())


class StepGraphs:
    """The CUDA graphs of one :class:`~oneranker.train.Trainer`'s steps, one per batch shape."""

    WARMUP_ITERATIONS = 2

    def __init__(self, trainer) -> None:
        if trainer.device.type != "cuda":
            raise ValueError("train.cuda_graphs needs a CUDA device")
        if trainer.ddp is not None:
            raise ValueError("train.cuda_graphs is not combined with distributed training")
        if trainer.tc.compile != "off":
            raise ValueError("train.cuda_graphs is not combined with train.compile")
        from . import layers

        if layers.FLEX_COMPILE_MODE in ("reduce-overhead", "max-autotune"):   # inductor's own graphs
            raise ValueError(f"train.cuda_graphs cannot capture FlexAttention compiled with mode "
                             f"{layers.FLEX_COMPILE_MODE!r}, which makes CUDA graphs of its own")
        with contextlib.suppress(Exception):   # graphs replayed under a profiler (pytorch#75504); optional
            torch.profiler._utils._init_for_cuda_graphs()
        self.trainer = weakref.proxy(trainer)   # the trainer holds this object: no cycle keeps the GPU memory
        self.device = trainer.device
        self.lr = torch.tensor(trainer.tc.lr, dtype=torch.float32, device=trainer.device)
        self.reset()

    def reset(self) -> None:
        """Forget every graph (after the optimiser's state tensors were replaced, or when
        training ends: the graphs' memory pool is then freed) and point the optimiser at the
        learning-rate tensor, in the capturable form, again."""
        self.graphs: dict[tuple, _Graph] = {}
        self.pool = None
        for g in self.trainer.optim.param_groups:
            g["lr"], g["capturable"] = self.lr, True

    def step(self, batch: dict[str, Tensor], draws: LossDraws, lr: float) -> dict[str, Tensor]:
        """One optimiser step on ``batch`` (on the GPU) with ``draws``, at learning rate ``lr``;
        the loss terms, as :meth:`Trainer.gpu_step` returns them. The caller has set the step's
        dropout seed."""
        with torch.cuda.device(self.device):   # capture and replay on the trainer's GPU, whichever is current
            self.lr.fill_(lr)
            key = _shape_key(batch, draws)
            if key not in self.graphs:
                self.graphs[key] = self._capture(batch, draws)
            g = self.graphs[key]
            for k, v in batch.items():
                g.batch[k].copy_(v)
            for static, t in zip(g.draws.value_targets, draws.value_targets):
                static.copy_(t)
            if draws.negatives is not None:
                g.draws.negatives.copy_(draws.negatives)
            g.graph.replay()
            return {k: v.clone() for k, v in g.terms.items()}

    def _capture(self, batch: dict[str, Tensor], draws: LossDraws) -> _Graph:
        """The graph of this batch shape, captured after a warm-up whose updates are undone.
        A warm-up that fails is undone too; a capture that fails ends the run (torch leaves the
        thread's stream and allocator in the capture's state), so it is never retried eagerly."""
        t, device = self.trainer, self.device
        static_batch, static_draws = {k: v.clone() for k, v in batch.items()}, _static_copy(draws)
        saved = _TrainingState(t)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        try:
            with torch.cuda.stream(side):
                for _ in range(self.WARMUP_ITERATIONS):
                    t.gpu_step(static_batch, static_draws)
        except BaseException:
            torch.cuda.current_stream(device).wait_stream(side)
            saved.restore()
            raise
        torch.cuda.current_stream(device).wait_stream(side)
        t.optim.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            terms = t.gpu_step(static_batch, static_draws)
        saved.restore()   # after the capture (which ran nothing): as before the step, random state too
        self.pool = self.pool or graph.pool()
        grads = [p.grad for p in t.model.parameters()]
        terms = {k: v.detach() for k, v in terms.items()}
        return _Graph(graph, static_batch, static_draws, terms, grads)


class _TrainingState:
    """The model's weights and buffers, the optimiser's state and the GPU's random state, to be
    put back in place (the same tensors: graphs point at them)."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        self.optim = {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)}
                      for p, st in trainer.optim.state.items()}
        self.rng = torch.cuda.get_rng_state(trainer.device)

    @torch.no_grad()
    def restore(self) -> None:
        t = self.trainer
        for k, v in t.model.state_dict().items():
            v.copy_(self.weights[k])
        for p, st in t.optim.state.items():   # a state the warm-up created is a fresh one: zeros
            for k, v in st.items():
                if torch.is_tensor(v) and p in self.optim:
                    v.copy_(self.optim[p][k])
                elif torch.is_tensor(v):
                    v.zero_()
        torch.cuda.set_rng_state(self.rng, t.device)
