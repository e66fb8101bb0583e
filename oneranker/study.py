"""A study: variants x seeds trained (or read from the cache) and evaluated into tidy tables.

A *variant* is a name and a dict of config overrides (every ablation is a config switch) or a
:class:`~oneranker.baselines.Cascade`; a *seed* changes the world, the data split, the
initialisation and the training order. A :class:`Study` holds what every experiment of a
notebook shares (the profile, the seeds, the model cache, the device and the test requests
evaluated), so each call names only what differs: the variants. Each (variant, seed) is
trained once (:func:`oneranker.train.train_or_load`) and evaluated on the test requests
against the simulated market's truth; results are one row per (variant, seed, list) with
every metric as a column, the input of :mod:`oneranker.tables`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import itertools
import json
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch

from .baselines import Cascade
from .cache import ASKED_MODEL, answered, atomic_save, has_model, load_entry, note_asked, result_path
from .config import Config, make_config
from .data import Collator, Prepared, cached_prepared
from .evaluate import (TruthSet, centroid_alignment, generator_ranker_consistency, list_metrics, model_lists,
                       ranker_auc, slate_outcomes, truth_set)
from .metrics import iqr, list_overlap
from .model import OneRanker
from .parallel import progress
from .pool import prepare_all, train_all, train_or_load_in_run
from .reference import reference_lists
from .runtime import gpu_padding, resolve_device
from .studies import Variant, configs, loss_grid, with_knob
from .tables import served
from .train import History, mean_loss_terms
from .world import World

Trained = tuple[Config, Prepared, OneRanker, History]
# What a study asks of a model (or a cascade's two): the kind of result, their configs, its arguments;
# the cache keeps each answer (:func:`cache.result_path`)
Ask = tuple[str, list[Config], dict]
PHASE_LOG_ENV = "ONERANKER_PHASE_LOG"


def phase_line(row: dict) -> str:
    """One phase as the notebooks, ``reproduce`` and the run record's tables print it: what, how many, how
    long, and, where the run measured it, how busy the GPU was."""
    busy = row.get("gpu_busy_percent")
    return f"{row['phase']}: {row['items']} in {row['seconds']:.0f} s" + ("" if busy is None else f", GPU busy {busy:.0f}%")


@dataclass
class Consistency:
    """The paper's DC analysis for several variants over seeds: per-seed summaries of the
    absolute generator-ranker rank difference on the generated candidates (``summary``:
    variant, seed, IQR, median, mean), the top-K overlap for every K (``overlap``: variant,
    seed, k, overlap) and the pooled rank differences of each variant (for box plots)."""

    summary: pd.DataFrame
    overlap: pd.DataFrame
    differences: dict[str, np.ndarray]


@dataclass
class Study:
    """The shared setting of a notebook's experiments.

    ``eval_requests`` test requests are scored against the truth (``None``: all of them);
    ``workers`` training processes fill the cache (``None``: :func:`pool.default_workers`);
    ``progress`` shows a bar over the models each call evaluates (a notebook cell that scores
    dozens of models must say how far it is).
    The truth sets computed so far are kept (at paper scale one costs about 10 s and 640 MB,
    and a notebook asks for the same few many times, notebook 06 for nine worlds'): the most
    recent ones that fit in ``truths_kept_gib`` GiB of host memory, and always the last one.
    ``timings`` gets one row per phase that did work (worlds simulated, models trained, models
    evaluated) with its wall seconds, so that a notebook's wall time can be taken apart
    (papermill keeps no progress bar's final state); with ``progress`` each row is also printed
    as it ends.

    What a study computes from one model (a grid's rows, a consistency, loss terms, an AUC) is
    kept in the cache's results (:meth:`_result`, keyed by the models, the arguments and the
    code), with a record of what was asked of each model. A later study does not train a model
    whose every result asked so far is there (:meth:`_train_configs`), and trains up front, in
    its pool, the models of any result it then misses (:meth:`_ensure_models`); a notebook
    declares the per-model analyses of its later cells before it trains (:meth:`will_ask`), so
    that those models train in its first pool too, not alone when a cell asks. So a notebook's
    seeds can train in different sittings of a GPU whose trained models do not outlive the
    sitting: one run with some seeds leaves their results, a run with all seeds then trains
    only the others. ``results_reused`` counts the results served so.
    """

    profile: str
    seeds: tuple[int, ...]
    cache_dir: str | Path = "cache"
    device: str = "auto"
    eval_requests: int | None = 1000
    workers: int | None = None
    truths_kept_gib: float = 8.0
    progress: bool = True
    _truths: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _reference_rows: dict = field(default_factory=dict, init=False, repr=False)
    timings: list[dict] = field(default_factory=list, init=False, repr=False)
    results_reused: int = field(default=0, init=False)
    _declared: list[Ask] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        if not self.seeds:
            raise ValueError("a study needs at least one seed")

    @property
    def dev(self) -> torch.device:
        return resolve_device(self.device)

    def _bar(self, items, desc: str):
        """A progress bar over ``items`` (an iterable, or a count for a manual bar)."""
        counted = isinstance(items, int)
        return progress(None if counted else items, total=items if counted else None, desc=desc, unit="model",
                        disable=not self.progress, leave=False)

    @contextlib.contextmanager
    def _phase(self, what: str, quiet: bool = False) -> Iterator[dict]:
        """Time one phase; the caller sets the yielded row's ``items`` (how many it did). A
        phase that did nothing (everything cached) or raised leaves no row. Where
        ``ONERANKER_PHASE_LOG`` names a file (``reproduce`` sets it for each notebook it runs),
        the row is appended to it as a JSON line, so that the run record can give each phase its
        share of the GPU; a log that cannot be written is warned about, never fatal (the phase's
        work is done by then). ``quiet``: logged, not printed (a notebook cell's output stays what
        it is whether the cache held the phase's work or not)."""
        row = {"phase": what, "items": 0, "started": time.time()}
        yield row
        row["ended"] = time.time()
        if not row["items"]:
            return
        row["seconds"] = round(row["ended"] - row["started"], 1)
        self.timings.append(row)
        if log := os.environ.get(PHASE_LOG_ENV):
            try:
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
            except OSError as e:
                warnings.warn(f"{PHASE_LOG_ENV}={log}: the phase log cannot be written ({e})", stacklevel=3)
        if self.progress and not quiet:
            print(phase_line(row), flush=True)

    # ------------------------------------------------------------------ models
    def configs(self, variant: Variant, seed: int) -> list[Config]:
        """The model configs of one variant and seed (two for a cascade: generator, ranker)."""
        return configs(variant, self.profile, seed)

    def train(self, variants: list[Variant]) -> None:
        """Train every model of every variant and seed in one pool (call it once per notebook
        with everything the notebook needs: the workers then never wait for a straggler between
        grids); later calls find them in the cache."""
        self._train_configs([c for v in variants for s in self.seeds for c in self.configs(v, s)])

    def will_ask(self, analysis: str, variants: dict[str, Variant], **kwargs) -> None:
        """Declare, before :meth:`train`, a per-model analysis that a later cell runs:
        ``analysis`` is the method's name (``consistency``, ``validation_loss_terms``,
        ``ranker_auc``), ``variants`` and ``kwargs`` its arguments. The next pool then also trains
        each model whose result of it is not in the cache, though every result asked of it so far
        is (an earlier notebook's model, or an earlier sitting's seeds: :func:`cache.answered`
        would skip it). Undeclared, such a model trains when the cell asks, in a pool of its own:
        at the paper profile a lone model's whole training, minutes of a GPU sitting."""
        builders = {"consistency": self._consistency_asks, "validation_loss_terms": self._loss_terms_asks,
                    "ranker_auc": self._ranker_auc_asks}
        if analysis not in builders:
            raise ValueError(f"Study.will_ask: no per-model analysis {analysis!r}; one of {sorted(builders)}")
        # bound as the analysis itself will be called, its defaults included: a declaration asks
        # exactly what the later call asks, and a wrong argument is refused now
        try:
            call = inspect.signature(getattr(self, analysis)).bind(variants, **kwargs)
        except TypeError as e:
            raise TypeError(f"Study.will_ask({analysis!r}, ...): {e}") from None
        call.apply_defaults()
        self._declared += builders[analysis](**call.arguments).values()

    def _declared_missing(self) -> list[Config]:
        """The models of the declared asks (:meth:`will_ask`) whose result is not in the cache."""
        return [c for kind, cfgs, args in self._declared if not self._result_path(kind, cfgs, args).exists()
                for c in cfgs]

    def _train_configs(self, cfgs: list[Config], skip_answered: bool = True) -> None:
        """Simulate the missing worlds, then train the missing models, each a timed phase; with
        ``skip_answered``, not those whose every result asked so far is in the cache
        (:func:`cache.answered`), unless a declared ask (:meth:`will_ask`) still needs them."""
        declared = self._declared_missing()
        with self._phase("worlds simulated") as phase:
            phase["items"] = prepare_all(cfgs + declared, self.cache_dir)
        needed = [c for c in cfgs if not (skip_answered and answered(c, self.cache_dir))] + declared
        with self._phase("models trained") as phase:      # a stack (train.stack_seeds) counts once
            phase["items"] = train_all(needed, self.cache_dir, device=self.device, workers=self.workers)

    def _result_path(self, kind: str, cfgs: list[Config], args: dict) -> Path:
        """Where :meth:`_result` keeps ``kind`` of the models of ``cfgs`` under ``args``: the study's
        test requests and device are arguments too."""
        return result_path(kind, cfgs, {**args, "eval_requests": self.eval_requests, "device": self.dev.type},
                           self.cache_dir)

    def _ensure_models(self, asks: list[tuple[str, list[Config], dict]]) -> None:
        """Train, in one pool, the models of every ask (kind, configs, arguments) whose result is
        not in the cache: a model skipped because an earlier run's asks were all answered may
        still be needed by an ask that run did not make (another call, a failed run)."""
        missing = [c for kind, cfgs, args in asks if not self._result_path(kind, cfgs, args).exists() for c in cfgs]
        if missing:
            self._train_configs(missing, skip_answered=False)

    def _result(self, kind: str, cfgs: list[Config], args: dict, compute: Callable[[], dict]) -> dict:
        """``compute()`` (a dict of numbers, strings, lists and arrays computed from the models of
        ``cfgs``), from the cache's results where a study already computed it under the same
        models, ``args`` and code (:func:`cache.result_path`), else computed and saved there
        (atomically); the same values either way (both pass through the saved form). The ask
        is recorded (:func:`cache.note_asked`)."""
        path = self._result_path(kind, cfgs, args)
        note_asked(cfgs, path.name, self.cache_dir)
        blob = load_entry(path, expect=("value",))
        if blob is not None:
            self.results_reused += 1
            return _from_saved(blob["value"])
        saved = _to_saved(compute())
        atomic_save({"value": saved}, path)
        return _from_saved(saved)

    @contextlib.contextmanager
    def _reuse_logged(self) -> Iterator[None]:
        """Log, as a phase of its own, how many results the block served from the cache (a run
        record then says which of a notebook's numbers came from models of an earlier run); not
        printed."""
        before = self.results_reused
        with self._phase("results reused from the cache", quiet=True) as phase:
            yield
            phase["items"] = self.results_reused - before
            phase["started"] = time.time()     # a count, not a duration: the block's time is its own phase's

    def _load(self, cfg: Config) -> tuple[Prepared, OneRanker, History]:
        """The dataset, model (on the study's device) and history of ``cfg``. The model is trained
        up front (:meth:`_ensure_models`); one still missing is trained here, alone, with a warning."""
        prepared = cached_prepared(cfg, self.cache_dir, progress=False)
        if not has_model(cfg, self.cache_dir):
            warnings.warn(f"model {cfg.hash()} was not trained up front; training it alone in this process",
                          stacklevel=2)
        model, history = train_or_load_in_run(cfg, prepared, self.cache_dir, self.dev)
        return prepared, model, history

    def trained(self, overrides: dict) -> Iterator[Trained]:
        """(config, dataset, model on the study's device, history) of the one-model variant
        ``overrides`` for every seed, the missing models trained first, in parallel."""
        cfgs = [make_config(self.profile, seed=s, **overrides) for s in self.seeds]
        note_asked(cfgs, ASKED_MODEL, self.cache_dir)      # the caller uses the models themselves: never skip them
        self._train_configs(cfgs)
        for cfg in self._bar(cfgs, "models"):
            prepared = cached_prepared(cfg, self.cache_dir)
            model, history = train_or_load_in_run(cfg, prepared, self.cache_dir, self.dev)
            yield cfg, prepared, model, history

    def truth_set(self, cfg: Config, prepared: Prepared) -> TruthSet:
        """:func:`evaluate.truth_set` of ``cfg``'s world on the study's test requests (kept)."""
        key = (cfg.data_hash(), self.eval_requests)
        if key in self._truths:
            self._truths.move_to_end(key)
        else:
            self._truths[key] = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=self.eval_requests)
            budget = self.truths_kept_gib * 2**30
            while len(self._truths) > 1 and sum(map(held_bytes, self._truths.values())) > budget:
                self._truths.popitem(last=False)
        return self._truths[key]

    def _references(self, cfg: Config, prepared: Prepared, ts: TruthSet, n: int) -> list[dict]:
        """The reference lists' rows of ``cfg``'s dataset (:func:`reference.reference_lists`,
        scored by :func:`_row_metrics`), computed once per dataset, list length and truth set:
        every grid of a notebook shows them, and at paper scale they cost seconds per dataset."""
        key = (cfg.data_hash(), self.eval_requests, n, cfg.seed)
        if key not in self._reference_rows:
            self._reference_rows[key] = [
                {"variant": name, "seed": cfg.seed, "list": "generated", "data": key[0], **_row_metrics(ranked, ts, cfg)}
                for name, ranked in reference_lists(prepared, ts, n, cfg.seed).items()]
        return self._reference_rows[key]

    # ------------------------------------------------------------------ grids
    def grid(self, variants: dict[str, Variant], references: bool = True, per_head: bool = False,
             n_candidates: int | None = None) -> pd.DataFrame:
        """Train (or load) and evaluate every variant for every seed.

        Variants may change the world or the data: each is evaluated on its own dataset and
        truth. Returns a tidy frame: columns ``variant, seed, list`` (``generated`` or
        ``ranked``; with ``per_head``, each generator head's own list, ``head: click``, ...),
        ``data`` (the dataset's hash), the metrics of :func:`evaluate.list_metrics` and the
        slate's expected ``gmv`` and ``cost`` per request (:func:`evaluate.slate_outcomes`).
        ``references`` adds every reference list of each dataset (random, popularity,
        co-occurrence, interest and value oracles: :mod:`oneranker.reference`), the scale every
        model row is read against (:func:`tables.with_gap_closed` needs them).
        """
        self.train(list(variants.values()))
        self._ensure_models([self._lists_ask(v, s, per_head, n_candidates) for s in self.seeds for v in variants.values()])
        with self._reuse_logged(), self._phase("models evaluated") as phase:
            rows = self._evaluate_grid(variants, references, per_head, n_candidates)
            phase["items"] = len(self.seeds) * len(variants)
        return pd.DataFrame(rows)

    def _evaluate_grid(self, variants: dict[str, Variant], references: bool, per_head: bool,
                       n_candidates: int | None) -> list[dict]:
        """:meth:`grid`'s rows, every model already trained."""
        rows = []
        bar = self._bar(len(self.seeds) * len(variants), "evaluating")
        for seed in self.seeds:
            seen: set[str] = set()
            for name, variant in variants.items():
                kind, cfgs, args = self._lists_ask(variant, seed, per_head, n_candidates)
                cfg, n = cfgs[0], args["n"]
                prepared = cached_prepared(cfg, self.cache_dir, progress=False)
                ts = self.truth_set(cfg, prepared)
                key = cfg.data_hash()
                if references and key not in seen:
                    rows.extend(dict(row) for row in self._references(cfg, prepared, ts, n))
                seen.add(key)
                result = self._result(kind, cfgs, args, lambda: self._list_rows(cfgs, prepared, ts, n, per_head))
                rows += [{"variant": name, "seed": seed, **row} for row in result["rows"]]
                bar.update()
        bar.close()
        return rows

    def _lists_ask(self, variant: Variant, seed: int, per_head: bool,
                   n_candidates: int | None) -> tuple[str, list[Config], dict]:
        """What :meth:`grid` asks of one variant at one seed: its lists of ``n`` (the config's
        candidates unless given) scored, per head too with ``per_head``."""
        cfgs = self.configs(variant, seed)
        return "lists", cfgs, {"n": n_candidates or cfgs[0].train.n_candidates, "per_head": per_head}

    def _list_rows(self, cfgs: list[Config], prepared: Prepared, ts: TruthSet, n: int, per_head: bool) -> dict:
        """One model's (or a cascade's) rows of :meth:`grid`: each of its lists scored against the
        truth, with the generator's epochs and training seconds."""
        models = [train_or_load_in_run(c, prepared, self.cache_dir, self.dev) for c in cfgs]
        ranker = models[1][0] if len(models) > 1 else None
        lists = model_lists(models[0][0], cfgs[0], prepared, ts, n, device=self.dev, per_head=per_head, ranker=ranker)
        history = models[0][1]
        rows = [{"list": list_name, "data": cfgs[0].data_hash(), "epochs": len(history.epochs),
                 "train_seconds": sum(e.get("seconds", np.nan) for e in history.epochs),
                 **_row_metrics(ranked, ts, cfgs[0])} for list_name, ranked in lists.items()]
        del models
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        return {"rows": rows}

    def world_sweep(self, variants: dict[str, Variant], knob: str, values: list | tuple,
                    **grid_kwargs) -> pd.DataFrame:
        """:meth:`grid` once per value of a world (or data) knob, every variant at every value;
        the frame gets a column named after the knob. All models are trained up front, so the
        worker pool stays full across values."""
        self.train([with_knob(var, knob, v) for v in values for var in variants.values()])
        frames = [self.grid({name: with_knob(var, knob, value) for name, var in variants.items()}, **grid_kwargs)
                  .assign(**{knob: value}) for value in values]
        return pd.concat(frames, ignore_index=True)

    def loss_sweep(self, knob: str, values: list | tuple) -> pd.DataFrame:
        """The full model at each value of the loss knob ``train.<knob>`` (e.g. tau, gamma): one
        served row per (value, seed), with the generator-ranker rank-difference ``IQR`` and a
        column named ``knob``. Kept per seed so that two values can be compared *paired* by seed
        (:func:`tables.paired_sentence`); :func:`tables.mean_ci_columns` of it
        (``list_name="served"``) gives the averaged sweep with its CIs."""
        grid = loss_grid(knob, values)
        res = served(self.grid(grid, references=False))
        dc = self.consistency(grid).summary
        res = res.merge(dc[["variant", "seed", "IQR"]], on=["variant", "seed"])
        res[knob] = res.variant.map({f"{knob}={v:g}": v for v in values})
        return res

    # ------------------------------------------------------------------ analyses of one mechanism
    def centroid_alignment(self, overrides: dict) -> pd.DataFrame:
        """Mean Spearman rho (over test requests) of :func:`evaluate.centroid_alignment`, one row
        per seed, for the model of ``overrides``."""
        rows = []
        for cfg, prepared, model, _ in self.trained(overrides):
            a = centroid_alignment(model, cfg, prepared, self.truth_set(cfg, prepared), device=self.dev)
            rows.append({"seed": cfg.seed, "interest_rho": float(np.nanmean(a["interest_rho"])),
                         "value_rho": float(np.nanmean(a["value_rho"]))})
        return pd.DataFrame(rows)

    def _model_asks(self, kind: str, variants: dict[str, dict],
                    args: Callable[[int], dict]) -> dict[tuple[str, int], Ask]:
        """What a per-model analysis asks of the one-model variant of each name at each seed,
        keyed (name, seed): ``kind`` of its model under ``args(seed)``. The one home of an
        analysis's asks, for running it (:meth:`_per_model`) and declaring it (:meth:`will_ask`)."""
        return {(name, seed): (kind, [make_config(self.profile, seed=seed, **overrides)], args(seed))
                for name, overrides in variants.items() for seed in self.seeds}

    def _per_model(self, variants: dict[str, dict], asks: dict[tuple[str, int], Ask],
                   compute: Callable[[Config], dict]) -> dict[tuple[str, int], dict]:
        """``compute(config)`` of each ask (:meth:`_model_asks`), keyed (name, seed), through the
        cache's results (:meth:`_result`): the models trained first, the skipped ones too where a
        result is missing (:meth:`_ensure_models`)."""
        self.train(list(variants.values()))
        self._ensure_models(list(asks.values()))
        with self._reuse_logged():
            return {key: self._result(kind, cfgs, a, lambda: compute(cfgs[0]))
                    for key, (kind, cfgs, a) in asks.items()}

    def consistency(self, variants: dict[str, dict]) -> Consistency:
        """:func:`evaluate.generator_ranker_consistency` of every variant and seed on the test
        requests' ``train.n_candidates`` generated candidates."""
        results = self._per_model(variants, self._consistency_asks(variants), self._consistency)
        summary = [{"variant": name, "seed": seed, **r["summary"]} for (name, seed), r in results.items()]
        overlap = [{"variant": name, "seed": seed, "k": k, "overlap": o}
                   for (name, seed), r in results.items() for k, o in enumerate(r["topk_overlap"], start=1)]
        differences = {name: np.concatenate([results[name, seed]["rank_difference"].ravel() for seed in self.seeds])
                       for name in variants}
        return Consistency(pd.DataFrame(summary), pd.DataFrame(overlap), differences)

    def _consistency_asks(self, variants: dict[str, dict]) -> dict[tuple[str, int], Ask]:
        """What :meth:`consistency` asks of each model."""
        return self._model_asks("consistency", variants, lambda seed: {})

    def _consistency(self, cfg: Config) -> dict:
        """One model's part of :meth:`consistency`."""
        prepared, model, _ = self._load(cfg)
        c = generator_ranker_consistency(model, cfg, prepared, self.truth_set(cfg, prepared),
                                         cfg.train.n_candidates, device=self.dev)
        d = c["rank_difference"]
        return {"summary": {"IQR": iqr(d), "median": float(np.median(d)), "mean": float(d.mean())},
                "topk_overlap": [float(o) for o in c["topk_overlap"]], "rank_difference": d}

    def validation_loss_terms(self, variants: dict[str, dict], reference: dict | None = None,
                              n_requests: int = 1000) -> pd.DataFrame:
        """Each loss term (L_MTP, L_rank, L_DC) of every variant and seed on the first
        ``n_requests`` validation requests (:func:`train.mean_loss_terms`), all measured with
        the losses of the ``reference`` overrides (default: the full model's), so that a model
        trained without a term (e.g. gamma = 0) is still scored on it. Random candidates and
        targets are drawn from one fixed generator per seed, the same for every variant."""
        objective = self._objective(reference)
        results = self._per_model(variants, self._loss_terms_asks(variants, reference, n_requests),
                                  lambda cfg: self._loss_terms(cfg, objective[cfg.seed], n_requests))
        return pd.DataFrame([{"variant": name, "seed": seed, **r} for (name, seed), r in results.items()])

    def _objective(self, reference: dict | None) -> dict[int, Any]:
        """Per seed, the training config whose losses :meth:`validation_loss_terms` measures."""
        return {seed: make_config(self.profile, seed=seed, **(reference or {})).train for seed in self.seeds}

    def _loss_terms_asks(self, variants: dict[str, dict], reference: dict | None,
                         n_requests: int) -> dict[tuple[str, int], Ask]:
        """What :meth:`validation_loss_terms` asks of each model."""
        objective = self._objective(reference)
        return self._model_asks("loss_terms", variants, lambda seed: {"reference": dataclasses.asdict(objective[seed]),
                                                                      "n_requests": n_requests})

    def _loss_terms(self, cfg: Config, tc, n_requests: int) -> dict:
        """One model's row of :meth:`validation_loss_terms`."""
        prepared, model, _ = self._load(cfg)
        collate = Collator(prepared, cfg.data.max_history_len, pad_to=gpu_padding(self.dev))
        n = min(n_requests, len(prepared.requests["valid"]))
        return mean_loss_terms(model, prepared, tc, n, cfg.seed, self.dev, collate)

    def ranker_auc(self, rankers: dict[str, Variant], n_requests: int | None = None) -> pd.DataFrame:
        """AUC and GAUC of each variant's ranker (a model's own R-Decoder, or a cascade's separate
        ranker) on the logged test impressions, one row per (variant, seed)."""
        results = self._per_model(self._rankers(rankers), self._ranker_auc_asks(rankers, n_requests),
                                  lambda cfg: self._ranker_auc(cfg, n_requests))
        return pd.DataFrame([{"variant": name, "seed": seed, **r} for (name, seed), r in results.items()])

    @staticmethod
    def _rankers(rankers: dict[str, Variant]) -> dict[str, dict]:
        """Each variant's ranker as a one-model variant: a cascade's separate ranker, else the model."""
        return {name: (v.ranker if isinstance(v, Cascade) else v) for name, v in rankers.items()}

    def _ranker_auc_asks(self, rankers: dict[str, Variant], n_requests: int | None) -> dict[tuple[str, int], Ask]:
        """What :meth:`ranker_auc` asks of each ranker."""
        return self._model_asks("ranker_auc", self._rankers(rankers), lambda seed: {"n_requests": n_requests})

    def _ranker_auc(self, cfg: Config, n_requests: int | None) -> dict:
        """One model's row of :meth:`ranker_auc`."""
        prepared, model, _ = self._load(cfg)
        return ranker_auc(model, cfg, prepared, n_requests, device=self.dev)

    def learning_curves(self, overrides: dict) -> pd.DataFrame:
        """Per-epoch training and validation loss of the model of ``overrides`` for every seed:
        is the training budget enough for the model to converge? ``stopped_early`` (on every
        row of a run) says whether early stopping ended it."""
        return pd.DataFrame([{"seed": cfg.seed, **e, "stopped_early": history.stopped_early}
                             for cfg, _, _, history in self.trained(overrides) for e in history.epochs])

    def head_overlap(self, overrides: dict, k: int = 10) -> pd.DataFrame:
        """Pairwise :func:`metrics.list_overlap` of the per-head top-k lists
        (``model_lists(per_head=True)``) of the model of ``overrides`` on the test requests, one
        row per (seed, pair of heads): do the interest and value heads retrieve different ads?"""
        rows = []
        for cfg, prepared, model, _ in self.trained(overrides):
            lists = {n: v for n, v in model_lists(model, cfg, prepared, self.truth_set(cfg, prepared), k,
                                                  device=self.dev, per_head=True).items() if n.startswith("head")}
            rows += [{"seed": cfg.seed, "pair": f"{a} / {b}", "overlap": list_overlap(lists[a], lists[b], k)}
                     for a, b in itertools.combinations(sorted(lists), 2)]
        return pd.DataFrame(rows)


def held_bytes(ts: TruthSet) -> int:
    """Host memory a truth set holds: each array's own elements (a broadcast view, such as an ad's
    bid repeated over the requests, holds one row, not the product of its shape)."""
    arrays = [ts.indices, *(getattr(ts.truth, f.name) for f in dataclasses.fields(ts.truth))]
    return sum(a.itemsize * int(np.prod([n for n, step in zip(a.shape, a.strides) if step != 0])) for a in arrays)


def _to_saved(value: Any) -> Any:
    """A result as the cache saves it (``torch.load(weights_only=True)`` reads tensors and plain
    Python values only): arrays as tensors, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _to_saved(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_saved(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("a result's arrays must be numeric, not of Python objects")
        return torch.from_numpy(np.array(value, order="C"))       # a copy; 0-d stays 0-d
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_saved(value: Any) -> Any:
    """The inverse of :func:`_to_saved`: tensors back to arrays."""
    if isinstance(value, dict):
        return {k: _from_saved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_saved(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return value


def _row_metrics(ranked: np.ndarray, ts: TruthSet, cfg: Config) -> dict[str, float]:
    """List metrics plus the expected GMV and advertiser cost per request of the slate the
    list's head fills (the world's slate size and position model)."""
    slate = slate_outcomes(ranked, ts, cfg.world.slate_size, cfg.world.position_bias)
    return {**list_metrics(ranked, ts), "gmv": float(slate["gmv"].mean()), "cost": float(slate["cost"].mean())}

