"""Several models of one architecture trained as one batched model (``train.stack_seeds``).

A paper-profile training step is ~1,900 small GPU kernels: one model alone leaves the GPU idle
while Python launches them, and several models in several processes queue their kernels one
after another (their sum is a floor no number of processes goes under; docs/paper_profile.md, "Where a
step's time goes"). Stacking M models of the same architecture (the same config at M seeds)
was meant to make every one of those kernels M times larger instead of M times more numerous
(measured, a stack's step launches more kernels than one model's, not the same number):

* the models' parameters and buffers are stacked along a new leading axis [M, ...]
  (:class:`ModelStack`); embedding tables whose row counts differ between the models' worlds
  (the semantic IDs' dedup digit) are padded with rows no token ever looks up;
* one step is :func:`torch.func.vmap` over :func:`~oneranker.losses.loss_from_draws`, each
  model on its own batch (the batches padded to one length) and its own random draws;
* the gradient of the summed losses is each model's own gradient (no parameter is shared), it
  is clipped per model (:func:`clip_grad_norm_per_model`) and AdamW, elementwise, updates every
  model exactly as it would alone;
* :class:`StackedTrainer` keeps each model's epoch bookkeeping in its own
  :class:`~oneranker.train.Trainer`: the same batches, targets, negatives, learning-rate
  schedule, Fake-Item refresh, validation loss and early stopping as that model alone.

What differs from training each model alone: the dropout noise (drawn for the stack at once,
so a model's noise depends on its stack) and the order of floating-point sums. A stacked
model is therefore a function of its config, whose ``train.stack_seeds`` names the stack, and
the caches are keyed by that config. Step 1 runs on dense-mask attention (FlexAttention does
not run under vmap); the two compute the same function (tests/test_masks.py).

Measured on the H200 (docs/paper_profile.md, "Stacked models"; benchmarks/stacked_step.py), a stack does not
pay: CUDA's fused SDPA kernel refuses the vmapped call, so a stack runs the unfused math
attention there (:func:`_attention_under_vmap`), and even against a model alone on that
attention its step costs more GPU time per model, more with more models. No profile stacks.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from .cache import atomic_save, load_entry, model_folder
from .config import Config, TrainConfig
from .losses import LossDraws, draw_loss_samples, loss_from_draws
from .model import OneRanker
from .runtime import autocast, batch_to_device, step_seed

# Padding of a collated batch's tensors when batches of several models are brought to one
# length: no token (type 0), no impression (-1); every other field 0 (masked wherever read).
_PAD_VALUE = {"imp_item": -1}


def stack_mates(cfg: Config) -> list[Config]:
    """The configs trained as one stack with ``cfg``: the same config at every seed of
    ``train.stack_seeds``, in that order; ``[cfg]`` alone when it does not stack
    (:attr:`~oneranker.config.Config.stacked`)."""
    if not cfg.stacked:
        return [cfg]
    return [dataclasses.replace(cfg, seed=s) for s in cfg.train.stack_seeds]


# The only tensors whose size may differ between the worlds of one config: the semantic-ID
# code tables (the dedup digit takes as many values as the world's largest collision). Their
# extra rows are never looked up (no ad has such a code), so zeros there change nothing.
_PADDABLE = re.compile(r"^items\.tables\.\d+\.weight$")


def _stack(tensors: list[Tensor], name: str) -> Tensor:
    """The models' tensors stacked [M, ...]; a semantic-ID code table padded with zero rows to
    the longest (:data:`_PADDABLE`), any other difference of shape an error."""
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) == 1:
        return torch.stack(tensors)
    if not _PADDABLE.match(name) or len({tuple(t.shape[1:]) for t in tensors}) != 1:
        raise ValueError(f"cannot stack {name}: shapes {[tuple(t.shape) for t in tensors]} differ (only the "
                         "semantic-ID code tables may differ in their rows between the worlds of one config)")
    n = max(t.shape[0] for t in tensors)
    return torch.stack([torch.cat([t, t.new_zeros(n - t.shape[0], *t.shape[1:])]) if len(t) < n else t
                        for t in tensors])


def stack_batches(batches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collated batches of the same size, one per model, as one batch [M, B, ...]: each 2-D field
    right-padded to the longest (no token, no impression), so that vmap sees one shape. (Batches
    of other sizes go into separate calls: :meth:`ModelStack.loss_terms`.)"""
    sizes = {len(b["length"]) for b in batches}
    if len(sizes) != 1:
        raise ValueError(f"the stacked models' batches hold {sorted(sizes)} requests: they must be of one size")
    out = {}
    for key in batches[0]:
        ts = [b[key] for b in batches]
        if ts[0].dim() >= 2:
            n = max(t.shape[1] for t in ts)
            ts = [F.pad(t, (0, n - t.shape[1]), value=_PAD_VALUE.get(key, 0)) if t.shape[1] < n else t for t in ts]
        out[key] = torch.stack(ts)
    return out


def _attention_under_vmap(device: torch.device):
    """The SDPA kernels a stack may use. On CUDA only PyTorch's unfused math attention: under
    vmap the memory-efficient kernel refused the stacked call ("attn_bias: wrong shape (batch
    dimension)", on the H200 with torch 2.11, results/paper/stacked_step_h200.txt), and the math
    one costs [B, H, L, L] scores per model. On the CPU any kernel (vmap loops over the models).
    ``sdpa_kernel`` sets process-wide flags: harmless here, since the pool trains in processes."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH) if device.type == "cuda" else contextlib.nullcontext()


class _Objective(nn.Module):
    """One model's training objective as a module forward (what :func:`functional_call` runs)."""

    def __init__(self, model: OneRanker, tc: TrainConfig) -> None:
        super().__init__()
        self.model, self.tc = model, tc

    def forward(self, batch: dict[str, Tensor], value_targets: list[Tensor], negatives: Tensor | None
                ) -> dict[str, Tensor]:
        return loss_from_draws(self.model, batch, self.tc, LossDraws(list(value_targets), negatives))


class ModelStack:
    """M :class:`~oneranker.model.OneRanker` of one architecture as stacked tensors.

    ``params`` (leaves that train) and ``buffers`` map each name of the model's state to a
    tensor [M, ...]; :meth:`member_state` gives model ``i``'s own state dict back (padding rows
    cut), :meth:`load_member` writes model ``i``'s buffers back after they changed outside
    (the Fake Items' refresh)."""

    def __init__(self, models: list[OneRanker], tc: TrainConfig) -> None:
        if not models:
            raise ValueError("a stack needs at least one model")
        if any(m.cfg != models[0].cfg for m in models):
            raise ValueError("the stacked models must share one model config (one architecture)")
        self.n = len(models)
        self.rows = [{k: (v.shape[0] if v.dim() else None) for k, v in m.state_dict(keep_vars=True).items()}
                     for m in models]
        names = [dict(m.named_parameters()) for m in models]
        self.params = {k: nn.Parameter(_stack([p[k].detach() for p in names], k)) for k in names[0]}
        bufs = [dict(m.named_buffers()) for m in models]
        self.buffers = {k: _stack([b[k] for b in bufs], k) for k in bufs[0]}
        base = copy.deepcopy(models[0]).to("meta")
        base._kernel = "sdpa"   # FlexAttention does not run under vmap; dense SDPA computes the same
        self.objective = _Objective(base, tc)
        self._batched = vmap(self._one, randomness="different")

    def _one(self, params: dict, buffers: dict, batch: dict, value_targets: list, negatives: Tensor | None
             ) -> dict[str, Tensor]:
        state = {f"model.{k}": v for k, v in params.items()} | {f"model.{k}": v for k, v in buffers.items()}
        return functional_call(self.objective, state, (batch, value_targets, negatives))

    def train(self, mode: bool = True) -> None:
        self.objective.train(mode)

    def loss_terms(self, batches: list[dict[str, Tensor]], draws: list[LossDraws]) -> dict[str, Tensor]:
        """Every model's loss terms [M], model ``i`` on its own batch ``batches[i]`` and draws
        ``draws[i]``. Models whose batches hold as many requests are computed together (one
        vmapped call per batch size: all of them at once, except at the one short batch of an
        epoch, which length grouping puts at a seed-dependent step)."""
        groups: dict[int, list[int]] = {}
        for i, b in enumerate(batches):
            groups.setdefault(len(b["length"]), []).append(i)
        out: dict[str, list] = {}
        for members in groups.values():
            terms = self._group_terms(members, [batches[i] for i in members], [draws[i] for i in members])
            for k, v in terms.items():
                out.setdefault(k, [None] * len(batches))
                for j, i in enumerate(members):
                    out[k][i] = v[j]
        return {k: torch.stack(v) for k, v in out.items()}

    def _group_terms(self, members: list[int], batches: list[dict[str, Tensor]], draws: list[LossDraws]
                     ) -> dict[str, Tensor]:
        """The loss terms of the models ``members`` (their slices of the stack; gradients flow
        back into it). Checks the batch here, on the stacked tensors: inside vmap the masks'
        checks cannot read a value (:func:`oneranker.masks._require`)."""
        from . import masks

        batch = stack_batches(batches)
        lengths = batch["length"].reshape(-1)
        masks._check_lengths(lengths, batch["tok_type"].shape[-1])
        masks._prefix_tensor(batch["prefix_len"].reshape(-1), lengths)
        value_targets = [torch.stack([d.value_targets[j] for d in draws]) for j in range(len(draws[0].value_targets))]
        negatives = None if draws[0].negatives is None else torch.stack([d.negatives for d in draws])
        params, buffers = self.params, self.buffers
        device = next(iter(params.values())).device
        if len(members) < self.n:
            idx = torch.tensor(members, device=device)
            params = {k: v.index_select(0, idx) for k, v in params.items()}
            buffers = {k: v.index_select(0, idx) for k, v in buffers.items()}
        with _attention_under_vmap(device):
            return self._batched(params, buffers, batch, value_targets, negatives)

    def member_state(self, i: int) -> dict[str, Tensor]:
        """Model ``i``'s state dict (its own table sizes), detached copies."""
        out = {}
        for k, rows in self.rows[i].items():
            src = self.params[k] if k in self.params else self.buffers[k]
            t = src.detach()[i]
            out[k] = (t if rows is None else t[:rows]).clone()
        return out

    @torch.no_grad()
    def load_member(self, i: int, state: dict[str, Tensor]) -> None:
        """Write ``state`` (a state dict of model ``i``, or some of its entries) into the stack."""
        for k, v in state.items():
            dst = self.params[k] if k in self.params else self.buffers[k]
            dst[i, :len(v)].copy_(v) if v.dim() else dst[i].copy_(v)


def clip_grad_norm_per_model(params: list[Tensor], max_norm: float) -> Tensor:
    """Clip the gradients of stacked parameters [M, ...] model by model: each model's gradient
    is scaled by ``min(1, max_norm / (norm + 1e-6))`` with ``norm`` the L2 norm of that model's
    gradient over all its parameters, as :func:`torch.nn.utils.clip_grad_norm_` does for one
    model. Returns the M norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise ValueError("no gradients to clip")
    sq = sum(g.float().pow(2).reshape(g.shape[0], -1).sum(1) for g in grads)
    norms = sq.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype).view(-1, *([1] * (g.dim() - 1))))
    return norms


class StackedTrainer:
    """Train the models of ``trainers`` (a list of :class:`~oneranker.train.Trainer`, one per config of a
    stack, each on its own dataset) as one batched model. Each Trainer keeps its model's
    bookkeeping (epochs' batches, draws, validation, early stopping, best weights); this class
    owns the stacked weights and the one optimiser. ``workdir``: where the stack's checkpoint
    lives (written atomically after every epoch; a run resumes from it)."""

    def __init__(self, trainers: list, workdir: str | Path | None = None, progress: bool = False) -> None:
        if not trainers:
            raise ValueError("a stack needs at least one Trainer")
        first = trainers[0]
        if first.tc.lr_schedule != "cosine":   # one rate for the stack: each model's plateau would be its own
            raise ValueError(f"a stack trains on the cosine schedule only, got train.lr_schedule="
                             f"{first.tc.lr_schedule!r}")
        seeds = [t.cfg.seed for t in trainers]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"a stack's models must have distinct seeds, got {seeds}")
        for t in trainers[1:]:
            if dataclasses.replace(t.cfg, seed=first.cfg.seed) != first.cfg:
                raise ValueError(f"a stack's configs must differ in their seed only ({first.cfg.hash()} and "
                                 f"{t.cfg.hash()} differ in more)")
            if t.steps_per_epoch != first.steps_per_epoch or t.device != first.device:
                raise ValueError(f"a stack's models must take the same steps on one device ({t.steps_per_epoch} "
                                 f"vs {first.steps_per_epoch} steps per epoch)")
        if any(t.world > 1 for t in trainers):
            raise ValueError("stacked training is not combined with distributed training")
        self.trainers, self.tc, self.device = trainers, first.tc, first.device
        self.stack = ModelStack([t.model for t in trainers], self.tc)
        self.optim = torch.optim.AdamW(list(self.stack.params.values()), lr=self.tc.lr,
                                       weight_decay=self.tc.weight_decay, fused=self.device.type == "cuda")
        self.steps_per_epoch, self.step, self.progress = first.steps_per_epoch, 0, progress
        self.seed = step_seed(*seeds)   # the stack's own stream (its dropout noise)
        self.workdir = Path(workdir) if workdir is not None else None
        if self.workdir is not None:
            self._load(self.workdir / "stack_checkpoint.pt")

    # ---------------------------------------------------------------- one step
    def train_step(self, hosts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """One optimiser step of every model, model ``i`` on its CPU batch ``hosts[i]``. The
        targets and negatives are drawn with each model's own step generator (as it would
        alone); the dropout noise from the stack's. Returns the loss terms [M], on the device."""
        self.stack.train()
        torch.manual_seed(step_seed(self.seed, 2, self.step))
        for g in self.optim.param_groups:
            g["lr"] = self.trainers[0].lr_at(self.step)
        batches = [batch_to_device(h, self.device) for h in hosts]
        draws = []
        for t, host, batch in zip(self.trainers, hosts, batches):
            draws.append(draw_loss_samples(t.model, batch, self.tc, t.draw_generator(self.step), host))
        with autocast(self.device):
            terms = self.stack.loss_terms(batches, draws)
        self.optim.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        clip_grad_norm_per_model(list(self.stack.params.values()), 1.0)
        self.optim.step()
        self.step += 1
        return {k: v.detach() for k, v in terms.items()}

    # ---------------------------------------------------------------- epochs
    def _sync_to_models(self, which: list[int]) -> None:
        for i in which:
            self.trainers[i].model.load_state_dict(self.stack.member_state(i))

    def _active(self) -> list[int]:
        return [i for i, t in enumerate(self.trainers) if not t.history.stopped_early]

    def _host_steps(self, batches: list[list[np.ndarray]], first: int) -> Iterator[list[dict[str, Tensor]]]:
        """Each step's CPU batches of every model, from each model's own
        :meth:`Trainer.host_batches` (collated a step ahead in a thread on a GPU; on the CPU
        when the step asks)."""
        ahead = [t.host_batches(bs, first) for t, bs in zip(self.trainers, batches)]
        for b, hosts in zip(range(first, self.steps_per_epoch), zip(*ahead)):
            yield [t.host_batch("train", bs[b]) if h is None else h
                   for t, bs, h in zip(self.trainers, batches, hosts)]

    def fit(self, stop_after_steps: int | None = None) -> list:
        """Train until every model has stopped early or run its epochs; each Trainer's model
        then holds its best weights. A model that stopped early stays in the stack (its slice
        keeps being computed, and is never read again, nor are its Fake Items refreshed): the
        stack trains until its last model stops. ``stop_after_steps``: simulate a killed run (the resume test)."""
        start_epoch = self.step // self.steps_per_epoch
        for epoch in range(start_epoch, self.tc.epochs):
            active = self._active()
            if not active:
                break
            first = self.step - epoch * self.steps_per_epoch
            if first == 0:   # each model's Fake Items from its own item embeddings, as alone
                self._sync_to_models(active)
                for i in active:
                    self.trainers[i].refresh_fake_items(epoch)
                    self.stack.load_member(i, dict(self.trainers[i].model.named_buffers()))
            started = time.perf_counter()
            batches = [t.epoch_batches(epoch) for t in self.trainers]
            steps = tqdm(self._host_steps(batches, first), total=self.steps_per_epoch - first, leave=False,
                         desc=f"epoch {epoch + 1}/{self.tc.epochs}, {len(active)} of {len(self.trainers)} models",
                         disable=not self.progress)
            for hosts in steps:
                terms = self.train_step(hosts)
                for i in active:
                    self.trainers[i].epoch_losses.append(terms["total"][i])
                killed = stop_after_steps is not None and self.step >= stop_after_steps
                if killed and self.step < (epoch + 1) * self.steps_per_epoch:
                    self._save()
                    return [t.history for t in self.trainers]   # each Trainer's History
            self._sync_to_models(active)
            trained = time.perf_counter() - started
            for i in active:   # each model's epoch record: the stack's training time and its own validation
                t = self.trainers[i]
                t.step, t._epoch_started = self.step, time.perf_counter() - trained
                t._end_epoch(epoch)
            self._save()
            if stop_after_steps is not None and self.step >= stop_after_steps:
                return [t.history for t in self.trainers]
        for i, t in enumerate(self.trainers):   # the best weights (the last ones if none was best)
            t.model.load_state_dict(t.best_state if t.best_state is not None else self.stack.member_state(i))
        return [t.history for t in self.trainers]   # each Trainer's History

    # ---------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        """The stack's weights, optimiser and every model's bookkeeping, written atomically."""
        if self.workdir is None:
            return
        blob = {"configs": [t.cfg.hash() for t in self.trainers], "step": self.step,
                "params": {k: v.detach() for k, v in self.stack.params.items()}, "buffers": self.stack.buffers,
                "optim": self.optim.state_dict(),
                "models": [{"best_state": t.best_state, "bad_epochs": t.bad_epochs,
                            "history": json.dumps(t.history.__dict__),
                            "epoch_losses": [float(x) for x in t.epoch_losses]} for t in self.trainers]}
        atomic_save(blob, self.workdir / "stack_checkpoint.pt")

    @torch.no_grad()
    def _load(self, path: Path) -> None:
        blob = load_entry(path, map_location=self.device, expect=("configs", "step", "params", "optim", "models"))
        if blob is None:
            return
        hashes = [t.cfg.hash() for t in self.trainers]
        if blob["configs"] != hashes:
            raise ValueError(f"stack checkpoint {path} was made by other configs ({blob['configs']}, this run "
                             f"{hashes}); use another workdir or delete it")
        for k, v in blob["params"].items():
            self.stack.params[k].copy_(v)
        for k, v in blob["buffers"].items():
            self.stack.buffers[k].copy_(v)
        self.optim.load_state_dict(blob["optim"])
        self.step = blob["step"]
        for i, (t, m) in enumerate(zip(self.trainers, blob["models"])):
            t.best_state, t.bad_epochs = m["best_state"], m["bad_epochs"]
            t.history = type(t.history)(**json.loads(m["history"]))
            t.epoch_losses = list(m["epoch_losses"])
            t.step = self.step
            t.model.load_state_dict(self.stack.member_state(i))


def stack_folder(cfgs: list[Config], cache_dir: str | Path) -> Path:
    """Where a stack's checkpoint lives while it trains: beside its first model's folder."""
    first = model_folder(cfgs[0], cache_dir)
    return first.parent / f"{first.name}-stack{len(cfgs)}"

