"""One training step of the real Trainer, contender against contender in one process: its wall
time is what one model alone costs, its GPU kernel time what several models sharing one GPU
can never go under (the paper series trains 69 models to convergence), so this is where
`make paper` gets faster.

    python benchmarks/training_step.py --cache /tmp/cache --contenders today select sdpa

Each contender is its own Trainer (the paper profile, seed 0) on the same cached dataset and
the same batches, changed in one respect only:

* ``today``: the Trainer as configured; ``today-again``: the same a second time, whose weight
  drift from ``today``'s (printed for every contender) is the scale of the GPU's own
  run-to-run rounding (atomic additions in some backward kernels);
* ``deterministic``: the step under torch's deterministic algorithms (``pool.run_algorithms``,
  ``reproduce --deterministic``); ``deterministic-again``: the same a second time. Where a
  contender ``X-again`` runs beside ``X``, its weight distance from ``X``'s is printed too:
  0 for the deterministic pair says that a run repeats bit for bit, and the ratio to ``today``
  what that costs. With either of them, cuBLAS's deterministic workspace
  (``pool.CUBLAS_DETERMINISTIC``) is set for the whole process before CUDA starts, so every
  contender of that invocation runs with it;
* ``select``: tokens looked up type by type (``TokenEmbedding.lookup='select'``, the CPU's
  reference way; ``today`` gathers them in one lookup on CUDA);
* ``sdpa``: Step 1 on dense-mask scaled-dot-product attention instead of FlexAttention;
* ``loss-compiled`` / ``blocks-compiled``: ``train.compile='loss'`` / ``'blocks'`` (on the H200
  loss-compiled's warm-up outlasted 6.5 minutes: results/paper/training_step_compile_loss_h200.txt);
* ``loss-compiled-dynamic`` / ``blocks-compiled-dynamic``: the same graphs compiled with every
  size symbolic from the start (``dynamic=True``), so that one compilation serves every padded
  batch length (``train.compile`` lets torch decide, which compiles the first shape as it is
  and recompiles on the second). The warm-up line counts the graphs dynamo compiled for each
  contender, so whether one compilation did serve every length is measured, not assumed. A
  compiled contender shares dynamo's per-code caches with any other contender compiling the
  same code (``loss-compiled`` and ``loss-compiled-dynamic``): run such pairs in separate
  invocations;
* ``layernorms-compiled-dynamic``: only the LayerNorms compiled (``dynamic=True``), each one
  small graph that inductor fuses forward and backward: the H200 profile of ``today`` put
  LayerNorm's backward and its weight-gradient reduction at about a fifth of a step's kernel
  time, and these graphs compile in seconds, where whole blocks take minutes;
* ``embeddings-compiled-dynamic``: only the embedding lookups compiled (``dynamic=True``): every
  ``nn.Embedding`` module's and the one gathered token lookup's (``F.embedding`` in
  ``TokenEmbedding._gathered``). Inductor's backward is a scatter-add where eager's
  ``embedding_dense_backward`` sorts the indices: the H200 profiles of ``today`` put it at 8-15%
  of a step's kernel time. ``norms-embeddings-compiled-dynamic``: this and the LayerNorms together;
* ``flex-autotune``: FlexAttention compiled with ``mode='max-autotune-no-cudagraphs'``;
* ``graphed``: ``train.cuda_graphs`` (:mod:`oneranker.graphs`): the step's GPU work captured
  as one CUDA graph per batch shape and replayed, one launch instead of about 1,900. Its
  weight drift from ``today``'s, against ``today-again``'s, says whether it trains the same
  model; on the CPU it runs eager, like the Trainer;
* ``flex:KEY=V,...``: FlexAttention with these kernel options (``FlexKernelOptions``; ``fwd_``
  and ``bwd_`` prefixes for one pass only, e.g. ``flex:fwd_BLOCK_M=64,bwd_BLOCK_M1=32``).

Every contender first steps once on every padded batch shape the timed steps will see (each
may compile) and ``--warmup`` more; then the timed steps run round-robin
(``profiling.time_side_by_side``: step ``i`` of every contender on the same batch, each timed
from a synchronised GPU to a synchronised GPU, so a slow moment of the machine hits all of
them alike). Each contender is then profiled for three steps: its GPU kernel time and kernel
count per step. Printed as each result is known.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import header, padded_shape_firsts  # noqa: E402
from oneranker import layers  # noqa: E402
from oneranker.config import make_config  # noqa: E402
from oneranker.data import cached_prepared  # noqa: E402
from oneranker.profiling import profile_training_steps, synchronize, time_side_by_side  # noqa: E402

NAMED = {"today": {}, "today-again": {}, "deterministic": {"deterministic": True},
         "deterministic-again": {"deterministic": True}, "select": {"lookup": "select"}, "sdpa": {"kernel": "sdpa"},
         "loss-compiled": {"train.compile": "loss"}, "blocks-compiled": {"train.compile": "blocks"},
         "loss-compiled-dynamic": {"train.compile": "off", "compile_dynamic": "loss"},
         "blocks-compiled-dynamic": {"train.compile": "off", "compile_dynamic": "blocks"},
         "layernorms-compiled-dynamic": {"train.compile": "off", "compile_dynamic": "layernorms"},
         "embeddings-compiled-dynamic": {"train.compile": "off", "compile_dynamic": "embeddings"},
         "norms-embeddings-compiled-dynamic": {"train.compile": "off", "compile_dynamic": "layernorms+embeddings"},
         "flex-autotune": {"flex_mode": "max-autotune-no-cudagraphs"}, "graphed": {"train.cuda_graphs": True}}


def parse_contender(spec: str) -> dict:
    """A contender's settings from its name (see the module docstring); a malformed one is
    refused before anything runs."""
    if spec in NAMED:
        return NAMED[spec]
    if spec.startswith("flex:"):
        options = {}
        for part in spec[5:].split(","):
            key, _, value = part.partition("=")
            if not key or not (value.isdigit() or value in ("true", "false")):
                raise SystemExit(f"--contenders {spec!r}: expected flex:KEY=VALUE,... with integer or true/false "
                                 "values, e.g. flex:fwd_BLOCK_M=64,bwd_BLOCK_M1=32")
            options[key] = int(value) if value.isdigit() else value == "true"
        return {"flex_options": options}
    raise SystemExit(f"--contenders {spec!r}: choose among {', '.join(NAMED)} or flex:KEY=V,...")


@contextlib.contextmanager
def contender_setting(trainer, setting: dict):
    """The contender's model-side settings, in force for its steps only (contenders alternate)."""
    from oneranker import model as model_module
    from oneranker.pool import deterministic_algorithms

    saved = layers.FLEX_COMPILE_MODE, layers.FLEX_KERNEL_OPTIONS, trainer.model.embed.lookup, model_module.F
    layers.FLEX_COMPILE_MODE = setting.get("flex_mode")
    layers.FLEX_KERNEL_OPTIONS = setting.get("flex_options")
    trainer.model.embed.lookup = setting.get("lookup", "auto")
    # the model module's torch.nn.functional, with embedding compiled (embeddings-compiled-dynamic)
    model_module.F = getattr(trainer, "functional", model_module.F)
    kernel = setting.get("kernel")
    try:
        with trainer.model.attention_kernel(kernel) if kernel else contextlib.nullcontext(), \
                deterministic_algorithms(setting.get("deterministic", False)):
            yield
    finally:
        layers.FLEX_COMPILE_MODE, layers.FLEX_KERNEL_OPTIONS, trainer.model.embed.lookup, model_module.F = saved


def _compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far (dynamo's own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def compile_dynamic(trainer, scope: str | None, backend: str = "inductor") -> None:
    """``*-compiled-dynamic``: the trainer's loss, each of its transformer blocks, each of its
    LayerNorms or each of its embedding lookups (``scope`` joins several with ``+``), compiled
    with every size symbolic (``dynamic=True``); the trainer itself was built with compilation
    off. An embedding lookup that is no module call (the gathered token lookup) goes through
    ``trainer.functional``, which :func:`contender_setting` puts in the model module's place of
    ``torch.nn.functional`` during the contender's steps only. ``backend``: torch.compile's (a
    test traces with ``aot_eager``)."""
    import torch

    from oneranker.losses import loss_from_draws
    from oneranker.train import transformer_blocks

    if scope == "loss":
        trainer.loss_fn = torch.compile(loss_from_draws, dynamic=True, backend=backend)
    elif scope == "blocks":
        for block in transformer_blocks(trainer.model):
            block.compile(dynamic=True, backend=backend)
    elif scope and set(scope.split("+")) <= {"layernorms", "embeddings"}:
        # not module.compile(): dynamo does not trace a frame of torch.nn's own code (a bare
        # LayerNorm's _call_impl ran eager, 0 graphs), so each forward calls a function of ours
        parts = scope.split("+")
        if "layernorms" in parts:
            fused = torch.compile(_layer_norm, dynamic=True, backend=backend)
            for module in trainer.model.modules():
                if isinstance(module, torch.nn.LayerNorm):
                    module.forward = functools.partial(_fused_forward, fused, module)
        if "embeddings" in parts:
            lookup = torch.compile(_embedding_lookup, dynamic=True, backend=backend)
            for module in trainer.model.modules():
                if isinstance(module, torch.nn.Embedding):
                    if module.padding_idx is not None or module.max_norm is not None or module.sparse:
                        raise ValueError(f"{module}: only plain embedding tables are compiled here")
                    module.forward = functools.partial(lookup, weight=module.weight)
            trainer.functional = _FunctionalWith(lookup)
    elif scope is not None:
        raise ValueError(f"compile_dynamic: unknown scope {scope!r}")


def _embedding_lookup(idx, weight):
    import torch.nn.functional as F

    return F.embedding(idx, weight)


class _FunctionalWith:
    """``torch.nn.functional`` with ``embedding`` replaced (a plain lookup: the model's gathered
    token lookup passes no other argument)."""

    def __init__(self, embedding) -> None:
        self.embedding = lambda idx, weight: embedding(idx, weight)

    def __getattr__(self, name: str):
        import torch.nn.functional as F

        return getattr(F, name)


def _layer_norm(x, weight, bias, shape: tuple[int, ...], eps: float):
    import torch.nn.functional as F

    return F.layer_norm(x, shape, weight, bias, eps)


def _fused_forward(fused, module, x):
    """A LayerNorm's forward through the compiled ``_layer_norm``, with the module's own weights."""
    return fused(x, module.weight, module.bias, tuple(module.normalized_shape), module.eps)


def weights_digest(trainer) -> str:
    """A short SHA-1 of the trainer's weights, byte for byte: equal digests from two invocations
    (two processes, two sittings) say that their runs ended with the same weights."""
    import hashlib

    import torch

    digest = hashlib.sha1()
    for name, value in sorted(trainer.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def weight_drift(trainer, reference) -> float:
    """The largest absolute difference between two trainers' weights (same config, same batches)."""
    import torch

    theirs = reference.model.state_dict()
    return max(float((v.float() - theirs[k].float()).abs().max()) for k, v in trainer.model.state_dict().items()
               if torch.is_floating_point(v))


def main() -> None:
    import torch

    from oneranker.train import Trainer, _prepare_compiler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--contenders", nargs="+", default=["today", "select", "sdpa"])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tables", action="store_true", help="print every contender's top operators, not only the first's")
    args = ap.parse_args()
    settings = {spec: parse_contender(spec) for spec in args.contenders}
    if any(s.get("deterministic") for s in settings.values()):   # before CUDA's first cuBLAS call
        from oneranker.pool import CUBLAS_DETERMINISTIC

        os.environ.update(CUBLAS_DETERMINISTIC)
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be >= 1 and --warmup >= 0")
    # every contender compiles its own graphs (one per padded shape): above dynamo's default limit
    _prepare_compiler()
    print(header(f"profile {args.profile} | {' '.join(sys.argv)}"), flush=True)
    base = make_config(args.profile, seed=0)
    prepared = cached_prepared(base, args.cache, progress=False)
    trainers, batches = {}, None
    for spec, setting in settings.items():
        over = {k: v for k, v in setting.items() if k.startswith("train.")}
        t0, graphs = time.perf_counter(), _compiled_graphs()
        try:
            trainer = Trainer(make_config(args.profile, seed=0, **over), prepared, device=args.device, progress=False)
            compile_dynamic(trainer, setting.get("compile_dynamic"))
            if batches is None:
                batches = (trainer.epoch_batches(0) + trainer.epoch_batches(1))[: 3 + args.warmup + args.steps]
            with contender_setting(trainer, setting):
                for b in padded_shape_firsts(trainer, batches) + batches[:args.warmup]:
                    trainer.train_step(b)
                synchronize(trainer.device)
        except Exception as e:   # a contender that cannot run (a compiler error, say) is reported, not fatal
            print(f"{spec:>16s}: failed to warm up: {type(e).__name__}: {str(e).splitlines()[0][:300]}", flush=True)
            continue
        trainers[spec] = trainer
        print(f"{spec:>16s}: warmed up in {time.perf_counter() - t0:5.1f} s, {_compiled_graphs() - graphs} graphs "
              f"compiled", flush=True)
    if not trainers:
        raise SystemExit("no contender could warm up (see above)")
    timed = batches[args.warmup:args.warmup + args.steps]

    def stepper(spec: str):
        queue = iter(timed)

        def step() -> None:
            with contender_setting(trainers[spec], settings[spec]):
                trainers[spec].train_step(next(queue))
        return step

    times = time_side_by_side({spec: stepper(spec) for spec in trainers}, repeats=len(timed), warmup=0,
                              device=torch.device(args.device), grad=True)
    first_spec = next(iter(trainers))
    drift = {spec: weight_drift(trainer, trainers[first_spec]) for spec, trainer in trainers.items()}
    digests = {spec: weights_digest(trainer) for spec, trainer in trainers.items()}   # before profiling steps
    first = None
    for i, (spec, trainer) in enumerate(trainers.items()):
        med = times[spec]["median_s"]
        first = first or med
        profiled = timed[:3]
        with contender_setting(trainer, settings[spec]):
            prof = profile_training_steps(trainer, profiled, n=len(profiled), row_limit=20)
        print(f"{spec:>16s}: {1e3 * med:7.1f} ms per step (median of {len(timed)}, p90 "
              f"{1e3 * times[spec]['p90_s']:.1f}), {first / med:.2f}x the first row's speed; "
              f"GPU kernels {1e3 * prof['gpu_kernel_s_per_step']:.1f} ms and {prof['gpu_kernels_per_step']:.0f} kernels "
              f"per step ({len(profiled)} profiled steps); after the same batches its weights differ "
              f"from {first_spec}'s by at most {drift[spec]:.2e} (weights sha1 {digests[spec]})", flush=True)
        if i == 0 or args.tables:
            print(prof["top"], flush=True)
    for spec, line in again_lines(trainers).items():
        print(f"{spec:>16s}: {line}", flush=True)


def again_lines(trainers: dict) -> dict[str, str]:
    """For each contender ``X-again`` that ran beside ``X``: how far its weights ended from ``X``'s
    after the same batches (0: the step repeats bit for bit)."""
    return {spec: f"after the same batches its weights differ from {spec.removesuffix('-again')}'s by at most "
                  f"{weight_drift(trainer, trainers[spec.removesuffix('-again')]):.2e}"
            for spec, trainer in trainers.items()
            if spec.endswith("-again") and spec.removesuffix("-again") in trainers}


if __name__ == "__main__":
    main()
