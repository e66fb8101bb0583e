"""Training: the OneRanker objective on request batches, AdamW with warm-up and then cosine decay
or a decay on plateaus of the validation loss, early stopping on the validation split, bf16
autocast on CUDA, and atomic, resumable checkpoints.

Determinism is by construction rather than by saving RNG states: the order of an epoch's
batches, the dropout noise and the sampled targets/negatives of step ``t`` are all seeded by
``(seed, epoch)`` and ``(seed, t)``. A run killed after any step and resumed from its last
checkpoint therefore continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .cache import atomic_save, load_entry, model_folder
from .config import Config, TrainConfig
from .data import Collator, Prepared
from .graphs import StepGraphs
from .losses import LossDraws, draw_loss_samples, loss_from_draws, loss_terms
from .model import OneRanker
from .runtime import autocast, batch_to_device, distributed_rank, gpu_padding, resolve_device, step_seed
from .stacked import StackedTrainer, stack_folder, stack_mates


def build_model(cfg: Config, prepared: Prepared) -> OneRanker:
    from .schema import Vocab
    torch.manual_seed(cfg.seed)
    bids = np.asarray(prepared.items.data.column("bid").to_numpy(), dtype=np.float64)
    return OneRanker(cfg.model, Vocab.from_meta(prepared.meta), prepared.sid_codes, cfg.data.max_history_len,
                     item_bid=bids)


class _LossModule(nn.Module):
    """The model with :func:`loss_terms` as its forward, so that DistributedDataParallel sees
    one forward call per step (its gradient hooks are armed there)."""

    def __init__(self, model: OneRanker) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], tc: TrainConfig, draws: LossDraws,
                rows: slice | None) -> dict[str, torch.Tensor]:
        return loss_from_draws(self.model, batch, tc, draws, rows, count_total=_summed_over_processes)


def _prepare_compiler() -> None:
    """Settings every ``train.compile`` scope needs. Dropout in compiled code draws from the
    same random generator, in the same order, as eager (inductor's ``fallback_random``):
    otherwise a compiled run would draw other dropout masks and train another model, which a
    field left out of the config hash must never do. And the recompile limit is raised above
    torch's default of 8, so that dynamo never falls back to eager without a word (one graph
    per padded batch shape, and per mode: training and evaluation)."""
    import torch._dynamo
    import torch._inductor.config

    torch._inductor.config.fallback_random = True
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"   # torch < 2.7
    setattr(cfg, name, max(getattr(cfg, name), 64))


@functools.cache
def compiled_loss_from_draws() -> Callable[..., dict[str, torch.Tensor]]:
    """:func:`loss_from_draws` compiled as one graph (``train.compile='loss'``): made once
    per process and shared by its trainers. Shapes are left to torch's automatic dynamic
    shapes (the first batch's shape is compiled as it is, a second shape makes its sizes
    symbolic)."""
    _prepare_compiler()
    return torch.compile(loss_from_draws)


def transformer_blocks(model: OneRanker) -> list[nn.Module]:
    """The transformer blocks of the model's three steps, in order (those it has)."""
    return [b for part in (model.step1, model.step2, model.rdecoder) if part is not None for b in part.blocks]


def compile_blocks(model: OneRanker) -> list[nn.Module]:
    """``train.compile='blocks'``: compile each transformer block of the model in place
    (regional compilation; nothing compiles until a block first runs). The blocks of one
    class share their code, so dynamo can reuse one graph for all the layers of a step instead
    of compiling the whole step as one graph; the steps' glue (embeddings, heads, losses)
    stays eager. Returns the blocks."""
    _prepare_compiler()
    blocks = transformer_blocks(model)
    for block in blocks:
        block.compile()
    return blocks


def _summed_over_processes(counts: torch.Tensor) -> torch.Tensor:
    """A loss term's counts summed over the processes of distributed training (all-reduce)."""
    counts = counts.clone()
    dist.all_reduce(counts)
    return counts


_SHOW_LOSS_EVERY = 25   # steps between progress-bar loss updates (each waits for the GPU)


def _from_process_0(value: torch.Tensor) -> torch.Tensor:
    """``value`` as process 0 holds it, in every process of the distributed group."""
    dist.broadcast(value, src=0)
    return value


def _killed(stop_after_steps: int | None, step: int) -> bool:
    """Whether a run simulating a kill after ``stop_after_steps`` steps stops at ``step`` (the
    resume tests); a kill at an epoch's last step comes after the epoch's validation, as the
    checkpoint written then records it."""
    return stop_after_steps is not None and step >= stop_after_steps


def collated(prepared: Prepared, split: str, indices: np.ndarray, collate: Collator) -> dict[str, torch.Tensor]:
    """The requests ``indices`` of ``split`` as one batch collated on the CPU (the trainer's
    steps and the validation loss build their batches here)."""
    cols = prepared.requests[split][np.asarray(indices).tolist()]
    return collate([dict(zip(cols, vals)) for vals in zip(*cols.values())])


def length_grouped_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, window: int,
                           rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of ``order`` whose members have similar ``lengths``: each window of ``window``
    batches is sorted by length and cut into batches, then all batches are shuffled. Every
    index appears once; a batch still mixes users, only their history lengths are alike."""
    batches = []
    for start in range(0, len(order), batch_size * window):
        w = order[start:start + batch_size * window]
        w = w[np.argsort(lengths[w], kind="stable")]
        batches += [w[i:i + batch_size] for i in range(0, len(w), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class History:
    """Per-epoch training and validation losses, and where training stopped."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float = math.inf
    stopped_early: bool = False


@dataclass(frozen=True)
class Plateau:
    """Where the plateau schedule stands after some epochs (:func:`plateau_schedule`)."""

    decays: int        # times the learning rate has been multiplied by train.lr_decay
    scale: float       # the learning rate's factor now: lr_decay ** decays, not below lr_floor
    bad_epochs: int    # epochs since the last new best validation loss or the last decay
    stop: bool         # early stopping: train.patience epochs without a new best at the floor


def plateau_schedule(valid_losses: list[float], tc: TrainConfig) -> Plateau:
    """The plateau schedule's state after the epochs whose validation losses are given.

    torch's ``ReduceLROnPlateau`` rule (mode 'min', threshold 0, cooldown 0): an epoch whose loss
    is below the best so far resets the count of bad epochs, any other adds one; when the count
    exceeds ``lr_patience`` the rate is multiplied by ``lr_decay`` (not below ``lr_floor`` x the
    peak) and the count restarts. Once the rate is at its floor, a count above ``patience`` ends
    training. A function of the losses alone rather than a stateful scheduler, so a resumed run
    (whose history is checkpointed) continues on the same rate, and the rate of every epoch can be
    read back from a learning curve (tests/test_train.py checks the decays against torch's
    scheduler)."""
    # decays to reach the floor: the smallest k with lr_decay ** k <= lr_floor (the tolerance keeps
    # a floor that is an exact power, 0.5 ** 3 = 0.125, at 3 despite the logarithms' rounding)
    floor_decays = max(0, math.ceil(math.log(tc.lr_floor) / math.log(tc.lr_decay) - 1e-9))
    best, bad, decays, stop = math.inf, 0, 0, False
    for loss in valid_losses:
        if loss < best:
            best, bad = loss, 0
        else:
            bad += 1
        if decays >= floor_decays:
            stop = stop or bad > tc.patience
        elif bad > tc.lr_patience:
            decays, bad = decays + 1, 0
    return Plateau(decays, max(tc.lr_decay ** decays, tc.lr_floor), bad, stop)


class Trainer:
    """Trains one model of one config on one prepared dataset, checkpointing to ``workdir``."""

    def __init__(self, cfg: Config, prepared: Prepared, workdir: str | Path | None = None,
                 device: str = "auto", progress: bool = True) -> None:
        self.cfg, self.tc, self.prepared = cfg, cfg.train, prepared
        self.device = resolve_device(device)
        self.progress = progress
        self.collate = Collator(prepared, cfg.data.max_history_len, pad_to=gpu_padding(self.device))
        self.model = build_model(cfg, prepared).to(self.device)
        # Distributed (torchrun): every rank reads the same global batch and computes the loss of
        # its share of the rows, normalised for the whole batch; DDP averages the gradients,
        # so the loss is scaled by the world size and the step equals one process's step.
        self.rank, self.world = distributed_rank()
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(_LossModule(self.model), device_ids=ids, find_unused_parameters=True)
        # train.compile, on CUDA only: the transformer blocks, or the step's forward pass and
        # loss as one graph (refused with DDP, whose forward is the eager loss module)
        if self.tc.compile == "loss" and self.ddp is not None:
            raise ValueError("train.compile='loss' cannot run under distributed training (DDP wraps the eager "
                             "loss); use train.compile='blocks' or 'off'")
        self.loss_fn = loss_from_draws
        if self.device.type == "cuda" and self.tc.compile == "blocks":
            compile_blocks(self.model)
        elif self.device.type == "cuda" and self.tc.compile == "loss":
            self.loss_fn = compiled_loss_from_draws()
        # fused: one kernel for the whole update on CUDA (a paper-profile step spent several
        # milliseconds in the per-tensor updates); the CPU keeps the reference implementation
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=self.tc.lr, weight_decay=self.tc.weight_decay,
                                       fused=self.device.type == "cuda")
        n_train = len(prepared.requests["train"])
        if self.tc.max_train_requests:
            n_train = min(n_train, self.tc.max_train_requests)
        self.n_train = n_train
        self._train_lengths: np.ndarray | None = None  # history length per train request (grouping)
        self.steps_per_epoch = math.ceil(n_train / self.tc.batch_size)
        self.total_steps = self.steps_per_epoch * self.tc.epochs
        # collate the next batch in a thread while a step runs: on a GPU (see host_batches)
        self.prefetch = self.device.type != "cpu"
        self.workdir = Path(workdir) if workdir is not None else None
        self.step, self.history, self.best_state, self.bad_epochs = 0, History(), None, 0
        self.epoch_losses: list[float | torch.Tensor] = []  # the current epoch's step totals (checkpointed)
        if self.workdir is not None:
            self._load(self.workdir / "checkpoint.pt")
        # the step's GPU work replayed as CUDA graphs (train.cuda_graphs; the CPU always runs eager)
        self.graphs = StepGraphs(self) if self.tc.cuda_graphs and self.device.type == "cuda" else None

    # ---------------------------------------------------------------- schedule and batches
    def lr_at(self, step: int) -> float:
        """Linear warm-up, then the schedule (``train.lr_schedule``): cosine decay to 10% of the
        peak at the cap, or the plateau schedule's rate after the epochs trained so far."""
        if self.tc.lr_schedule == "plateau":
            scale = plateau_schedule(self._valid_losses(), self.tc).scale
            return self.tc.lr * scale * min(1.0, (step + 1) / max(1, self.tc.warmup_steps))
        # the cosine schedule's own warm-up, kept as it was: cosine runs stay bit for bit those of before
        if step < self.tc.warmup_steps:
            return self.tc.lr * (step + 1) / self.tc.warmup_steps
        t = (step - self.tc.warmup_steps) / max(1, self.total_steps - self.tc.warmup_steps)
        return self.tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    def _valid_losses(self) -> list[float]:
        return [e["valid_loss"] for e in self.history.epochs]

    def host_batch(self, split: str, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """The requests ``indices`` of ``split`` collated on the CPU (see :func:`collated`)."""
        return collated(self.prepared, split, indices, self.collate)

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(step_seed(self.cfg.seed, 1, epoch))
        return rng.permutation(len(self.prepared.requests["train"]))[: self.n_train]

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches of training-request indices, in order (a function of the seed and
        the epoch only, so a resumed run continues with the same batches)."""
        order, B = self.epoch_order(epoch), self.tc.batch_size
        if not self.tc.length_grouping:
            return [order[i:i + B] for i in range(0, len(order), B)]
        if self._train_lengths is None:
            # through Arrow: the datasets numpy formatter takes minutes for a million rows
            hist_end = self.prepared.requests["train"].data.column("hist_end").to_numpy()
            self._train_lengths = np.minimum(hist_end, self.cfg.data.max_history_len)
        rng = np.random.default_rng(step_seed(self.cfg.seed, 6, epoch))
        return length_grouped_batches(order, self._train_lengths, B, self.tc.length_grouping, rng)

    def _autocast(self):
        return autocast(self.device, cache=self.graphs is None)   # a graph cannot keep autocast's cache

    def draw_generator(self, step: int) -> torch.Generator:
        """The CPU generator of step ``step``'s value targets and negatives (seeded by the config's
        seed and the step alone: a resumed or stacked run draws the same)."""
        return torch.Generator().manual_seed(step_seed(self.cfg.seed, 3, step))

    def refresh_fake_items(self, epoch: int) -> None:
        """Recompute the model's Fake Item Tokens from its item embeddings, as at the start of
        epoch ``epoch`` (k-means seeded by the config's seed and the epoch)."""
        self.model.refresh_fake_items(step_seed(self.cfg.seed, 5, epoch) % (2**31))

    # ---------------------------------------------------------------- training
    def train_step(self, indices: np.ndarray, host: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One optimiser step on the training requests ``indices`` (``host``: their batch, already
        collated on the CPU, e.g. by :meth:`fit`'s prefetching thread). Returns the loss terms
        as 0-d tensors, still on the device: reading one waits for the GPU to finish the step,
        so :meth:`fit` reads them rarely. Nothing else in the step waits for the GPU (the value
        targets are drawn from the CPU batch), so the host queues the step and goes on; under
        ``train.cuda_graphs`` the first step of each batch shape waits, to capture its graph.
        The host's half is here; the GPU's is :meth:`gpu_step`, run eagerly or replayed as a
        CUDA graph (``train.cuda_graphs``, :mod:`oneranker.graphs`)."""
        self.model.train()
        torch.manual_seed(step_seed(self.cfg.seed, 2, self.step))  # dropout noise of this step
        gen = self.draw_generator(self.step)
        lr = self.lr_at(self.step)
        host = self.host_batch("train", indices) if host is None else host
        batch = batch_to_device(host, self.device)
        # the step's random draws, from the CPU batch, before the forward pass: DDP moves every
        # tensor of its inputs to the GPU, so the CPU batch is never handed to it
        draws = draw_loss_samples(self.model, batch, self.tc, gen, host)
        if self.graphs is not None:
            terms = self.graphs.step(batch, draws, lr)
        else:
            for g in self.optim.param_groups:
                g["lr"] = lr
            terms = self.gpu_step(batch, draws)
        self.step += 1
        if self.ddp is not None:  # the batch's loss is the sum of the ranks' shares
            summed = torch.stack([v.detach().float() for v in terms.values()])
            dist.all_reduce(summed)
            return dict(zip(terms, summed))
        return {k: v.detach() for k, v in terms.items()}

    def gpu_step(self, batch: dict[str, torch.Tensor], draws: LossDraws) -> dict[str, torch.Tensor]:
        """The step's GPU work on a batch already on the device: the loss terms (this rank's
        rows of the batch under DDP), backward, the gradient clip and AdamW at the optimiser's
        learning rate. No host-device wait, so it can be captured as a CUDA graph."""
        with self._autocast():
            if self.ddp is None:
                terms = self.loss_fn(self.model, batch, self.tc, draws)
            else:
                B = batch["imp_item"].shape[0]
                terms = self.ddp(batch, self.tc, draws, slice(B * self.rank // self.world, B * (self.rank + 1) // self.world))
        self.optim.zero_grad(set_to_none=True)
        (terms["total"] * self.world).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optim.step()
        return terms

    def validation_loss(self) -> float:
        """Mean total loss on (a fixed subset of) the validation split, with fixed sampling:
        the number early stopping watches."""
        n = len(self.prepared.requests["valid"])
        n = n if not self.tc.eval_requests else min(n, self.tc.eval_requests)
        return mean_loss_terms(self.model, self.prepared, self.tc, n, step_seed(self.cfg.seed, 4),
                               self.device, self.collate)["total"]

    def fit(self, stop_after_steps: int | None = None) -> History:
        """Train until ``epochs`` or early stopping; ``stop_after_steps`` simulates a killed run
        (used by the resume test). Returns the history; the model holds the best weights."""
        start_epoch = self.step // self.steps_per_epoch
        for epoch in range(start_epoch, self.tc.epochs):
            if self.history.stopped_early:
                break
            first = self.step - epoch * self.steps_per_epoch
            if first == 0:
                self.refresh_fake_items(epoch)
            batches = self.epoch_batches(epoch)
            self._epoch_started = time.perf_counter()   # wall time of the epoch (a measurement, not a result)
            bar = tqdm(range(first, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.tc.epochs}",
                       disable=not self.progress, leave=False)
            hosts = self.host_batches(batches, first)
            for b in bar:
                terms = self.train_step(batches[b], next(hosts))
                self.epoch_losses.append(terms["total"])
                if self.progress and b % _SHOW_LOSS_EVERY == 0:
                    bar.set_postfix(loss=f"{float(terms['total']):.3f}")
                if _killed(stop_after_steps, self.step) and b + 1 < self.steps_per_epoch:
                    self._save()
                    return self.history
            self._end_epoch(epoch)
            self._save()
            if _killed(stop_after_steps, self.step):
                return self.history
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        if self.graphs is not None:   # training is over: free the graphs' memory
            self.graphs.reset()
            self.optim.zero_grad(set_to_none=True)
        return self.history

    def host_batches(self, batches: list[np.ndarray], first: int) -> Iterator[dict[str, torch.Tensor] | None]:
        """The CPU batches of ``batches[first:]`` in order. With ``prefetch`` (on a GPU) a thread
        collates the next batch while the current step runs (collation is Python and numpy work
        that would otherwise leave the GPU idle); without (on the CPU, where a second thread would
        only compete with training for the cores) each is collated when its step asks (None).
        The batches are the same either way, and so is the trained model."""
        if not self.prefetch:
            for _ in range(first, len(batches)):
                yield None
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = pool.submit(self.host_batch, "train", batches[first]) if first < len(batches) else None
            for b in range(first, len(batches)):
                host = ahead.result()
                ahead = pool.submit(self.host_batch, "train", batches[b + 1]) if b + 1 < len(batches) else None
                yield host

    def _end_epoch(self, epoch: int) -> None:
        valid = self.validation_loss()
        if self.ddp is not None:
            # every process takes process 0's loss: the stopping epoch and, under the plateau
            # schedule, the learning rate follow it, so the processes cannot drift apart on a
            # last-bit difference of their own validation passes
            valid = float(_from_process_0(torch.tensor([valid], dtype=torch.float64, device=self.device)))
        train = float(np.mean([float(x) for x in self.epoch_losses])) if self.epoch_losses else float("nan")
        self.epoch_losses = []
        self.history.epochs.append({"epoch": epoch + 1, "train_loss": train, "valid_loss": valid,
                                    "seconds": round(time.perf_counter() - self._epoch_started, 2)})
        if valid < self.history.best_valid:
            self.history.best_valid, self.history.best_epoch, self.bad_epochs = valid, epoch + 1, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1     # the cosine schedule's count; the plateau schedule keeps its own
        if self.tc.lr_schedule == "plateau":   # stops only at the floor of its learning rate
            self.history.stopped_early = plateau_schedule(self._valid_losses(), self.tc).stop
        elif self.bad_epochs > self.tc.patience:
            self.history.stopped_early = True

    # ---------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        """Write the checkpoint to a temporary file and rename it: never half-written."""
        if self.workdir is None or self.rank != 0:
            return
        blob = {"config_hash": self.cfg.hash(), "config": json.dumps(self.cfg.to_dict(), sort_keys=True),
                "step": self.step, "model": self.model.state_dict(), "optim": self.optim.state_dict(),
                "best_state": self.best_state, "bad_epochs": self.bad_epochs,
                "history": json.dumps(self.history.__dict__), "epoch_losses": [float(x) for x in self.epoch_losses]}
        atomic_save(blob, self.workdir / "checkpoint.pt")

    def _load(self, path: Path) -> None:
        """Resume from the checkpoint at ``path`` if there is a readable one (a damaged one is
        set aside and named by :func:`cache.load_entry`, and training starts afresh)."""
        blob = load_entry(path, map_location=self.device, expect=("step", "model", "optim", "history"))
        if blob is None:
            return
        if blob.get("config_hash") != self.cfg.hash():
            raise ValueError(f"checkpoint {path} was made by another config (hash {blob.get('config_hash')}, "
                             f"this run {self.cfg.hash()}); use another workdir or delete it")
        self.model.load_state_dict(blob["model"])
        self.optim.load_state_dict(blob["optim"])
        self.step, self.best_state, self.bad_epochs = blob["step"], blob["best_state"], blob["bad_epochs"]
        self.history = History(**json.loads(blob["history"]))
        self.epoch_losses = list(blob["epoch_losses"])


@torch.no_grad()
def mean_loss_terms(model: OneRanker, prepared: Prepared, tc: TrainConfig, n_requests: int, seed: int,
                    device: torch.device, collate: Collator) -> dict[str, float]:
    """Each loss term of ``model`` (``mtp``, ``rank``, ``dc``, ``total``), under the objective
    ``tc``, averaged over the first ``n_requests`` validation requests in batches of
    ``tc.batch_size``, the random targets and negatives drawn from a generator seeded by
    ``seed``. Early stopping watches its ``total``; notebook 05 scores models trained without
    a term on that term by passing the full model's ``tc``."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    for start in range(0, n_requests, tc.batch_size):
        chunk = range(start, min(start + tc.batch_size, n_requests))
        host = collated(prepared, "valid", np.asarray(chunk), collate)
        with autocast(device):
            terms = loss_terms(model, batch_to_device(host, device), tc, gen, host=host)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
    return {k: v / n_requests for k, v in sums.items()}


def load_trained(cfg: Config, prepared: Prepared, cache_dir: str | Path = "cache", device: str = "auto",
                 fingerprint: str | None = None) -> tuple[OneRanker, History] | None:
    """The cached trained model of ``cfg`` (on the dataset ``fingerprint``, for real logs) and
    its history, or None when the cache has none. A damaged ``final.pt`` is set aside (named in
    a :class:`cache.CacheWarning`) and None returned; one made by another config or dataset is
    an error. Nothing is trained here: ``evaluate`` refuses where there is no model."""
    final = model_folder(cfg, cache_dir, fingerprint) / "final.pt"
    dev = resolve_device(device)
    blob = load_entry(final, map_location=dev, expect=("config_hash", "model", "history"))
    if blob is None:
        return None
    if blob["config_hash"] != cfg.hash() or blob.get("fingerprint") != fingerprint:
        raise ValueError(f"{final} was made by another config or dataset (config {blob['config_hash']}, "
                         f"dataset {blob.get('fingerprint')}); delete it")
    model = build_model(cfg, prepared).to(dev)
    model.load_state_dict(blob["model"])
    return model.eval(), History(**json.loads(blob["history"]))


def train_or_load(cfg: Config, prepared: Prepared, cache_dir: str | Path = "cache", device: str = "auto",
                  progress: bool = True, fingerprint: str | None = None) -> tuple[OneRanker, History]:
    """The trained model of ``cfg``, from the cache (:func:`load_trained`) or trained now.

    Notebooks share models through this cache, so a variant trained in one notebook is not
    trained again in the next. The checkpoint in the cache folder also makes a killed run
    resume where it stopped. A damaged cached model is set aside and trained again. A config
    of a stack (``train.stack_seeds``) trains with its stack mates, and all of them are cached
    (:func:`train_stack`).
    """
    cached = load_trained(cfg, prepared, cache_dir, device, fingerprint)
    if cached is not None:
        return cached
    if len(stack_mates(cfg)) > 1:
        if fingerprint is not None:
            raise ValueError("train.stack_seeds stacks the models of simulated worlds (one per seed); "
                             "a model of real logs trains alone: leave train.stack_seeds empty")
        return train_stack(cfg, prepared, cache_dir, device, progress)
    folder = model_folder(cfg, cache_dir, fingerprint)
    trainer = Trainer(cfg, prepared, workdir=folder, device=device, progress=progress)
    history = trainer.fit()
    if trainer.rank == 0:  # distributed: one writer; the others wait for the file
        save_trained(cfg, trainer.model, history, cache_dir, fingerprint)
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    if trainer.world > 1:
        dist.barrier()
    return trainer.model.eval(), history


def save_trained(cfg: Config, model: OneRanker, history: History, cache_dir: str | Path,
                 fingerprint: str | None = None, **extra) -> Path:
    """Write a trained model into the cache, where :func:`load_trained` finds it (atomically);
    ``extra``: more entries of the record (e.g. a stacked model's stack)."""
    record = {"config_hash": cfg.hash(), "model": model.state_dict(), "history": json.dumps(history.__dict__),
              **extra}
    if fingerprint is not None:
        record["fingerprint"] = fingerprint
    final = model_folder(cfg, cache_dir, fingerprint) / "final.pt"
    atomic_save(record, final)
    return final


def train_stack(cfg: Config, prepared: Prepared, cache_dir: str | Path = "cache", device: str = "auto",
                progress: bool = False) -> tuple[OneRanker, History]:
    """Train ``cfg`` with its stack mates (:func:`oneranker.stacked.stack_mates`) as one stacked
    model, write every mate's trained model into the cache (each a model of its own config,
    recording its stack), and return ``cfg``'s. ``prepared``: ``cfg``'s dataset (the mates' come
    from the cache). The stack's checkpoint makes a killed run resume where it stopped."""
    from .data import cached_prepared

    mates = stack_mates(cfg)
    if len(mates) < 2:
        raise ValueError(f"config {cfg.hash()} is not in a stack (train.stack_seeds={cfg.train.stack_seeds}, "
                         f"seed {cfg.seed}); train it with train_or_load")
    if distributed_rank()[1] > 1:
        raise ValueError("stacked training (train.stack_seeds) is not combined with distributed training")
    datasets = [prepared if m == cfg else cached_prepared(m, cache_dir, progress=False) for m in mates]
    folder = stack_folder(mates, cache_dir)
    trainers = [Trainer(m, p, device=device, progress=False) for m, p in zip(mates, datasets)]
    histories = StackedTrainer(trainers, workdir=folder, progress=progress).fit()
    hashes = [m.hash() for m in mates]
    for m, t, h in zip(mates, trainers, histories):
        save_trained(m, t.model, h, cache_dir, stack=hashes)
    (folder / "stack_checkpoint.pt").unlink(missing_ok=True)
    folder.rmdir()
    i = mates.index(cfg)
    return trainers[i].model.eval(), histories[i]
