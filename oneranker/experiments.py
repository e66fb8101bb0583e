"""Grids of variants x seeds into tidy tables, reusing trained models cached by config hash.

A *variant* is a name and a dict of config overrides (every ablation is a config switch), a
*seed* changes the world, the data split, the initialisation and the training order. Each
(variant, seed) is trained once (``train.train_or_load``) and evaluated on the test
requests against the simulated market's truth; the result is one row per (variant, seed,
list) with every metric as a column, ready for :func:`summarise`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .baselines import Cascade
from .cache import has_dataset, has_model
from .config import Config, make_config
from .data import cached_prepared
from .evaluate import TruthSet, list_metrics, model_lists, slate_outcomes, truth_set
from .metrics import list_overlap, mean_ci
from .runtime import resolve_device
from .train import train_or_load
from .world import World

from . import studies
from .studies import configs, loss_grid, with_knob
from .reference import (INTEREST_ORACLE, POPULARITY, gap_closed, popularity_list, reference_lists,
                        value_oracle_list)

ORACLE = "oracle"   # the value oracle under the name the committed notebooks use
SERVED = "served"


def _train_in_worker(cfg_dict: dict, cache_dir: str, device: str = "cpu") -> str:
    """Train one config into the model cache (runs in a worker process; on CPU with one thread)."""
    from .config import config_from_dict

    if device == "cpu":
        torch.set_num_threads(1)
    cfg = config_from_dict(cfg_dict)
    try:
        train_or_load(cfg, cached_prepared(cfg, cache_dir, progress=False), cache_dir, device=device, progress=False)
    except Exception:  # some errors (e.g. the compiler's) cannot be pickled back to the parent
        import traceback

        raise RuntimeError(f"training model {cfg.hash()} failed:\n{traceback.format_exc()}") from None
    return cfg.hash()


def _prepare_in_worker(cfg_dict: dict, cache_dir: str) -> str:
    """Simulate and prepare one dataset into the cache (runs in a worker process)."""
    from .config import config_from_dict

    cfg = config_from_dict(cfg_dict)
    cached_prepared(cfg, cache_dir, progress=False)
    return cfg.data_hash()


GPU_WORKERS_ENV = "ONERANKER_GPU_WORKERS"


def default_workers(device: torch.device) -> int:
    """CPU: one single-threaded training process per core, up to 4 (the quick models are small;
    two such processes train a grid faster than one two-thread process did while the profile
    was sized). GPU: 6 processes share the device (``ONERANKER_GPU_WORKERS`` overrides): one
    paper-scale model alone leaves it idle while Python builds its next batch and launches
    kernels, so concurrent models fill those gaps. On the H100, paper profile
    (benchmarks/training_throughput.py): 4 at once train 2.3x the requests/s of one, 8 at
    once 2.6x; 6 keeps memory headroom (a notebook with 4 training processes held 39 GB)."""
    if device.type == "cpu":
        return max(1, min(4, os.cpu_count() or 1))
    return max(1, int(os.environ.get(GPU_WORKERS_ENV, "6")))


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def prepare_all(cfgs: list[Config], cache_dir: str | Path, workers: int | None = None) -> None:
    """Make sure every config's dataset is in the cache, simulating the missing worlds in
    parallel processes (each world is seeded on its own, so the result does not depend on
    how many ran at once). At paper scale one world takes minutes of one core."""
    missing = {c.data_hash(): c for c in cfgs if not has_dataset(c, cache_dir)}
    workers = min(len(missing), workers or max(1, (os.cpu_count() or 1) // 2))
    if workers <= 1:
        for c in missing.values():
            cached_prepared(c, cache_dir)
        return
    with _pool(workers) as pool:
        futures = [pool.submit(_prepare_in_worker, c.to_dict(), str(cache_dir)) for c in missing.values()]
        for f in tqdm(as_completed(futures), total=len(futures), desc="simulating worlds", unit="world"):
            f.result()


def train_all(cfgs: list[Config], cache_dir: str | Path, device: str = "auto", workers: int | None = None) -> None:
    """Make sure every config has a trained model in the cache, training the missing ones in
    worker processes (on CPU always, even with ``workers=1``, so that every CPU model is
    trained single-threaded; on a GPU, several processes share it). Each model depends on its
    config only (seeded data order, initialisation and sampling), so the result does not
    depend on how many workers ran or in which order."""
    dev = resolve_device(device)
    missing = {c.hash(): c for c in cfgs if not has_model(c, cache_dir)}
    if not missing:
        return
    prepare_all(list(missing.values()), cache_dir)
    workers = workers or default_workers(dev)
    bar = tqdm(total=len(missing), desc="training models", unit="model")
    if dev.type != "cpu" and min(workers, len(missing)) == 1:
        for c in missing.values():
            train_or_load(c, cached_prepared(c, cache_dir), cache_dir, device=str(dev), progress=False)
            bar.update()
    else:
        with _pool(min(workers, len(missing))) as pool:
            futures = [pool.submit(_train_in_worker, c.to_dict(), str(cache_dir), str(dev)) for c in missing.values()]
            for f in as_completed(futures):
                f.result()
                bar.update()
    bar.close()


def run_grid(profile: str, variants: dict[str, dict | Cascade], seeds: list[int] | tuple[int, ...],
             cache_dir: str | Path, device: str = "auto", n_candidates: int | None = None,
             eval_requests: int | None = 1000, baselines: bool = False, progress: bool = False,
             workers: int | None = None, per_head: bool = False, oracle: bool = False,
             references: bool = False) -> pd.DataFrame:
    """Train (or load) and evaluate every variant for every seed.

    A variant is a dict of config overrides (one model) or a :class:`baselines.Cascade` (a
    generator and a separate ranker). Variants may change the world or the data: each is
    evaluated on its own dataset and truth. Returns a tidy frame: columns ``variant, seed,
    list`` (``generated`` or ``ranked``), the metrics of :func:`evaluate.list_metrics` and the
    slate's expected ``gmv`` and ``cost`` per request (:func:`evaluate.slate_outcomes`).
    ``references=True`` adds every reference list of each dataset (random, popularity,
    co-occurrence, interest and value oracles: :mod:`oneranker.reference`), the scale every
    model row is read against; ``baselines=True`` only the popularity list and ``oracle=True``
    only the value oracle (named ``oracle``), as the committed notebooks use them;
    ``per_head=True`` adds each generator head's own list (``head: click``, ...).
    """
    rows = []
    dev = resolve_device(device)
    train_variants(profile, list(variants.values()), seeds, cache_dir, device=device, workers=workers)
    for seed in seeds:
        truths: dict[str, TruthSet] = {}
        for name, variant in variants.items():
            cfgs = configs(variant, profile, seed)
            cfg = cfgs[0]
            prepared = cached_prepared(cfg, cache_dir, progress=progress)
            key = cfg.data_hash()
            if key not in truths:
                truths[key] = cached_truth_set(cfg, prepared, eval_requests)
                n_req, n = len(truths[key].indices), n_candidates or cfg.train.n_candidates
                refs = dict(reference_lists(prepared, truths[key], n, seed)) if references else {}
                if baselines and not references:
                    refs[POPULARITY] = popularity_list(prepared, n_req, n)
                if oracle:
                    refs[ORACLE] = value_oracle_list(truths[key].truth.ecpm, n)
                for ref_name, ref_list in refs.items():
                    rows.append({"variant": ref_name, "seed": seed, "list": "generated", "data": key,
                                 **_row_metrics(ref_list, truths[key], cfg)})
            ts, n = truths[key], n_candidates or cfg.train.n_candidates
            models = [train_or_load(c, prepared, cache_dir, device=str(dev), progress=progress) for c in cfgs]
            ranker = models[1][0] if isinstance(variant, Cascade) else None
            lists = model_lists(models[0][0], cfg, prepared, ts, n, device=dev, per_head=per_head, ranker=ranker)
            for list_name, ranked in lists.items():
                rows.append({"variant": name, "seed": seed, "list": list_name, "data": key,
                             "epochs": len(models[0][1].epochs),
                             "train_seconds": sum(e.get("seconds", np.nan) for e in models[0][1].epochs),
                             **_row_metrics(ranked, ts, cfg)})
            del models
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def _row_metrics(ranked: np.ndarray, ts: TruthSet, cfg: Config) -> dict[str, float]:
    """List metrics plus the expected GMV and advertiser cost per request of the slate the
    list's head fills (the world's slate size and position model)."""
    slate = slate_outcomes(ranked, ts, cfg.world.slate_size, cfg.world.position_bias)
    return {**list_metrics(ranked, ts), "gmv": float(slate["gmv"].mean()), "cost": float(slate["cost"].mean())}


def served(results: pd.DataFrame) -> pd.DataFrame:
    """The list each (variant, seed) would serve, relabelled ``served``: the ranked list where
    the variant has a ranker (its own R-Decoder or a cascade's), the generated list
    otherwise (generators and the reference lists)."""
    keys = ["variant", "seed"]
    has_ranked = results[results.list == "ranked"].set_index(keys).index
    pick = results.list.eq("ranked") | (results.list.eq("generated") & ~results.set_index(keys).index.isin(has_ranked))
    out = results[pick].copy()
    out["list"] = SERVED
    return out.reset_index(drop=True)


def train_notebook_models(profile: str, cache_dir: str | Path, device: str = "auto", workers: int | None = None,
                          seeds: list[int] | tuple[int, ...] | None = None) -> int:
    """Train every model of notebooks 02-06 (:mod:`oneranker.studies`) missing from the cache, in
    one pool; returns how many configs the notebooks use. Full models first, so that the pool
    does not end waiting on one long model."""
    cfgs = studies.all_configs(profile, seeds)
    cfgs.sort(key=lambda c: (not (c.model.use_ranker and c.model.use_step2), not c.model.use_ranker))
    train_all(cfgs, cache_dir, device=device, workers=workers)
    return len(cfgs)


def train_variants(profile: str, variants: list[dict | Cascade], seeds: list[int] | tuple[int, ...],
                   cache_dir: str | Path, device: str = "auto", workers: int | None = None) -> None:
    """Train every model of every variant and seed in one pool (call it once per notebook
    with everything the notebook needs: the workers then never wait for a straggler between
    grids); later grids find them in the cache."""
    train_all([c for v in variants for s in seeds for c in configs(v, profile, s)], cache_dir, device=device,
              workers=workers)


def world_sweep(profile: str, variants: dict[str, dict | Cascade], knob: str, values: list | tuple,
                seeds: list[int] | tuple[int, ...], cache_dir: str | Path, **grid_kwargs) -> pd.DataFrame:
    """:func:`run_grid` once per value of a world (or data) knob, every variant at every
    value; the frame gets a column named after the knob. All models are trained up front,
    so the worker pool stays full across values."""
    train_variants(profile, [with_knob(var, knob, v) for v in values for var in variants.values()], seeds, cache_dir,
                   device=grid_kwargs.get("device", "auto"), workers=grid_kwargs.get("workers"))
    frames = []
    for value in values:
        grid = run_grid(profile, {name: with_knob(var, knob, value) for name, var in variants.items()}, seeds,
                        cache_dir, **grid_kwargs)
        frames.append(grid.assign(**{knob: value}))
    return pd.concat(frames, ignore_index=True)


def with_gap_closed(results: pd.DataFrame, metric: str = "HR@5") -> pd.DataFrame:
    """``results`` with a column ``gap closed <metric>``: each row's share of the popularity ->
    interest-oracle gap of its own dataset and seed (:func:`reference.gap_closed`; 0 =
    popularity, 1 = the oracle). Needs the reference rows (``run_grid(..., references=True)``)."""
    refs = results[results.variant.isin([POPULARITY, INTEREST_ORACLE])]
    missing = {POPULARITY, INTEREST_ORACLE} - set(refs.variant)
    if missing:
        raise ValueError(f"gap closed needs the reference rows {sorted(missing)}: run the grid with references=True")
    ends = refs.drop_duplicates(["data", "seed", "variant"]).pivot(index=["data", "seed"], columns="variant",
                                                                  values=metric)
    key = pd.MultiIndex.from_frame(results[["data", "seed"]])
    out = results.copy()
    out[f"gap closed {metric}"] = gap_closed(results[metric].to_numpy(), ends[POPULARITY].reindex(key).to_numpy(),
                                             ends[INTEREST_ORACLE].reindex(key).to_numpy())
    return out


def summarise(results: pd.DataFrame, metrics: list[str], by: tuple[str, ...] = ("variant", "list"),
              digits: int = 4) -> pd.DataFrame:
    """Mean and 95% CI half-width over seeds, as ``mean ± ci`` strings, rows in input order."""
    order = list(dict.fromkeys(map(tuple, results[list(by)].values.tolist())))
    table = {}
    for key, group in results.groupby(list(by), sort=False):
        table[key] = {m: "{:.{d}f} ± {:.{d}f}".format(*mean_ci(group[m].values), d=digits) for m in metrics}
    out = pd.DataFrame.from_dict(table, orient="index")
    if len(by) == 1:
        out.index = pd.Index([k[0] for k in out.index], name=by[0])
        order = [k[0] for k in order]
    else:
        out.index = pd.MultiIndex.from_tuples(out.index, names=list(by))
    out = out.loc[order]
    out["seeds"] = results.groupby(list(by), sort=False).size().reindex(out.index).astype(int).values
    return out


def paired_difference(results: pd.DataFrame, metric: str, a: tuple[str, str], b: tuple[str, str],
                      relative: bool = False) -> tuple[float, float]:
    """Mean and 95% CI of ``metric(a) - metric(b)`` paired by seed ((variant, list) pairs):
    seeds share the world, so pairing removes the world-to-world variation. ``relative``:
    ``metric(a) / metric(b) - 1`` instead (a lift, as an A/B test reports it)."""
    def by_seed(v: tuple[str, str]) -> pd.Series:
        sel = results[results.variant == v[0]]
        if "list" in sel:                           # per-seed frames without lists pair by variant
            sel = sel[sel.list == v[1]]
        if sel.empty:
            raise KeyError(f"no rows for variant {v[0]!r}, list {v[1]!r}")
        return sel.set_index("seed")[metric]
    diff = (by_seed(a) / by_seed(b) - 1) if relative else (by_seed(a) - by_seed(b))
    return mean_ci(diff.dropna().values)


def paired_table(results: pd.DataFrame, metrics: list[str], variants: list[str | tuple[str, str]],
                 base: str | tuple[str, str], digits: int = 4, relative: bool = False,
                 list_name: str = "generated") -> pd.DataFrame:
    """``variant - base`` for each metric, paired by seed, as ``+mean ± ci`` strings. Variants
    and base are names (their ``list_name`` list) or (variant, list) pairs. ``relative``:
    lifts ``variant / base - 1`` in percent."""
    def key(v: str | tuple[str, str]) -> tuple[str, str]:
        return (v, list_name) if isinstance(v, str) else tuple(v)

    rows = {}
    for v in variants:
        a = key(v)
        label = a[0] if a[1] == list_name else f"{a[0]} ({a[1]})"
        rows[label] = {}
        for m in metrics:
            mean, ci = paired_difference(results, m, a, key(base), relative=relative)
            rows[label][m] = (f"{100 * mean:+.{digits}f}% ± {100 * ci:.{digits}f}%" if relative
                              else f"{mean:+.{digits}f} ± {ci:.{digits}f}")
    return pd.DataFrame.from_dict(rows, orient="index")


def verdict(mean: float, ci: float, paper: float | None = None) -> str:
    """The project's verdict rule as words, for a paired difference ``mean ± ci`` (95% CI over
    seeds): with the paper's difference, *reproduced* when the CI excludes zero on the paper's
    side, *opposite to the paper* when it excludes zero on the other side, otherwise *not
    separated* (a null result at these seeds); without it, only whether the CI excludes zero."""
    side = "above" if mean >= 0 else "below"
    if mean - ci <= 0 <= mean + ci:
        return f"not separated (the CI contains 0; mean {side} 0)"
    if paper is None or paper == 0:
        return f"{side} 0 (the CI excludes 0)"
    return "reproduced (the paper's sign, the CI excludes 0)" if (mean > 0) == (paper > 0) else \
        "opposite to the paper (the CI excludes 0)"


def paired_sentence(results: pd.DataFrame, metric: str, a: str | tuple[str, str], b: str | tuple[str, str],
                    paper: float | None = None, list_name: str = "generated", digits: int = 4) -> str:
    """One markdown line, rendered from the per-seed rows: ``a - b`` on ``metric``, paired by
    seed, with the paper's difference beside it when given, and its :func:`verdict`. Notebooks
    quote results through this, never by typing numbers into prose."""
    key = (lambda v: (v, list_name) if isinstance(v, str) else tuple(v))
    mean, ci = paired_difference(results, metric, key(a), key(b))
    name = lambda v: key(v)[0] if key(v)[1] == list_name else f"{key(v)[0]} ({key(v)[1]})"
    ours = f"{mean:+.{digits}f} ± {ci:.{digits}f}"
    theirs = "" if paper is None else f" (paper: {paper:+.{digits}f})"
    return f"- {name(a)} minus {name(b)}, {metric}: {ours}{theirs}: {verdict(mean, ci, paper)}."


def mean_ci_columns(results: pd.DataFrame, by: str, metrics: list[str], list_name: str = "generated") -> pd.DataFrame:
    """One row per value of ``by`` with ``<metric>_mean`` and ``<metric>_ci`` columns (for
    sweeps and their plots)."""
    sel = results[results.list == list_name]
    rows = []
    for value, group in sel.groupby(by, sort=True):
        row = {by: value}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci"] = mean_ci(group[m].values)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_sweep(results: pd.DataFrame, by: str, metrics: list[str], a: tuple[str, str], b: tuple[str, str],
                 relative: bool = False, lift_metrics: list[str] = ()) -> pd.DataFrame:
    """For each value of the swept column ``by``: mean and 95% CI over seeds of the paired
    difference (or, with ``relative``, lift) ``a - b`` of each metric, plus the lift of each of
    ``lift_metrics``, as ``<metric>_mean`` / ``<metric>_ci`` columns (the input of
    :func:`plots.metric_sweep`)."""
    rows = []
    for value, group in results.groupby(by, sort=True):
        row = {by: value}
        for m, rel in [*((m, relative) for m in metrics), *((m, True) for m in lift_metrics)]:
            row[f"{m}_mean"], row[f"{m}_ci"] = paired_difference(group, m, a, b, relative=rel)
        rows.append(row)
    return pd.DataFrame(rows)


def save_table(df: pd.DataFrame, profile: str, name: str, root: str | Path = "../results") -> None:
    path = Path(root) / profile / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)


def _trained(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...], cache_dir: str | Path,
             device: str = "auto"):
    """(config, dataset, model on ``device``, history) of the variant ``overrides`` for every
    seed, from the cache (the missing models are trained first, in parallel)."""
    cfgs = [make_config(profile, seed=s, **overrides) for s in seeds]
    train_all(cfgs, cache_dir, device=device)
    for cfg in cfgs:
        prepared = cached_prepared(cfg, cache_dir)
        model, history = train_or_load(cfg, prepared, cache_dir, device=device, progress=False)
        yield cfg, prepared, model, history


_TRUTHS: OrderedDict[tuple[str, int | None], TruthSet] = OrderedDict()


def cached_truth_set(cfg: Config, prepared, n_requests: int | None) -> TruthSet:
    """:func:`evaluate.truth_set` of ``cfg``'s world and test requests, memoised: at paper scale
    one costs about 10 s and 640 MB (1,000 requests x 20k ads x 4 arrays), and a notebook asks
    for the same few many times. The 4 most recent are kept."""
    key = (cfg.data_hash(), n_requests)
    if key in _TRUTHS:
        _TRUTHS.move_to_end(key)
    else:
        _TRUTHS[key] = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=n_requests)
        while len(_TRUTHS) > 4:
            _TRUTHS.popitem(last=False)
    return _TRUTHS[key]


def centroid_alignment_by_seed(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...],
                               cache_dir: str | Path, eval_requests: int = 1000, device: str = "auto") -> pd.DataFrame:
    """Mean Spearman rho (over test requests) of :func:`evaluate.centroid_alignment`, one row
    per seed, for the (cached or trained) model of ``overrides``."""
    from .evaluate import centroid_alignment

    rows = []
    for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir, device):
        ts = cached_truth_set(cfg, prepared, eval_requests)
        a = centroid_alignment(model, cfg, prepared, ts, device=resolve_device(device))
        rows.append({"seed": cfg.seed, "interest_rho": float(np.nanmean(a["interest_rho"])),
                     "value_rho": float(np.nanmean(a["value_rho"]))})
    return pd.DataFrame(rows)


@dataclass
class Consistency:
    """The paper's DC analysis for several variants over seeds: per-seed summaries of the
    absolute generator-ranker rank difference on the generated candidates (``summary``:
    variant, seed, IQR, median, mean), the top-K overlap for every K (``overlap``: variant,
    seed, k, overlap) and the pooled rank differences of each variant (for box plots)."""

    summary: pd.DataFrame
    overlap: pd.DataFrame
    differences: dict[str, np.ndarray]


def consistency_by_seed(profile: str, variants: dict[str, dict], seeds: list[int] | tuple[int, ...],
                        cache_dir: str | Path, eval_requests: int = 1000, device: str = "auto") -> Consistency:
    """:func:`evaluate.generator_ranker_consistency` of every (cached or trained) variant and
    seed on the test requests' ``train.n_candidates`` generated candidates."""
    from .evaluate import generator_ranker_consistency
    from .metrics import iqr

    train_variants(profile, list(variants.values()), seeds, cache_dir, device=device)
    summary, overlap, differences = [], [], {}
    for name, overrides in variants.items():
        pooled = []
        for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir, device):
            ts = cached_truth_set(cfg, prepared, eval_requests)
            c = generator_ranker_consistency(model, cfg, prepared, ts, cfg.train.n_candidates,
                                             device=resolve_device(device))
            d = c["rank_difference"]
            summary.append({"variant": name, "seed": cfg.seed, "IQR": iqr(d), "median": float(np.median(d)),
                            "mean": float(d.mean())})
            overlap += [{"variant": name, "seed": cfg.seed, "k": k, "overlap": float(o)}
                        for k, o in enumerate(c["topk_overlap"], start=1)]
            pooled.append(d.ravel())
        differences[name] = np.concatenate(pooled)
    return Consistency(pd.DataFrame(summary), pd.DataFrame(overlap), differences)


def validation_loss_terms(profile: str, variants: dict[str, dict], seeds: list[int] | tuple[int, ...],
                          cache_dir: str | Path, reference: dict | None = None, n_requests: int = 1000,
                          device: str = "auto") -> pd.DataFrame:
    """Each loss term (L_MTP, L_rank, L_DC) of every (cached or trained) variant and seed on
    the first ``n_requests`` validation requests (:func:`train.mean_loss_terms`), all measured
    with the losses of the ``reference`` overrides (default: the full model's), so that a
    model trained without a term (e.g. gamma = 0) is still scored on it. Random candidates and
    targets are drawn from one fixed generator, the same for every variant."""
    from .data import Collator
    from .runtime import gpu_padding
    from .train import mean_loss_terms

    dev = resolve_device(device)
    rows = []
    for name, overrides in variants.items():
        for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir, device):
            tc = make_config(profile, seed=cfg.seed, **(reference or {})).train
            collate = Collator(prepared, cfg.data.max_history_len, pad_to=gpu_padding(dev))
            n = min(n_requests, len(prepared.requests["valid"]))
            rows.append({"variant": name, "seed": cfg.seed,
                         **mean_loss_terms(model, prepared, tc, n, cfg.seed, dev, collate)})
    return pd.DataFrame(rows)


def ranker_auc_by_seed(profile: str, rankers: dict[str, dict | Cascade], seeds: list[int] | tuple[int, ...],
                       cache_dir: str | Path, n_requests: int | None = None, device: str = "auto") -> pd.DataFrame:
    """AUC and GAUC of each variant's ranker (a model's own R-Decoder, or a cascade's separate
    ranker) on the logged test impressions, one row per (variant, seed)."""
    from .evaluate import ranker_auc

    ranker_overrides = {name: (v.ranker if isinstance(v, Cascade) else v) for name, v in rankers.items()}
    train_variants(profile, list(ranker_overrides.values()), seeds, cache_dir, device=device)
    rows = []
    for name, overrides in ranker_overrides.items():
        for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir, device):
            rows.append({"variant": name, "seed": cfg.seed,
                         **ranker_auc(model, cfg, prepared, n_requests, device=resolve_device(device))})
    return pd.DataFrame(rows)


def learning_curves(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...], cache_dir: str | Path) -> pd.DataFrame:
    """Per-epoch training and validation loss of the (cached or trained) model of
    ``overrides`` for every seed: is the training budget enough for the model to converge?
    ``stopped_early`` (on every row of a run) says whether early stopping ended it."""
    return pd.DataFrame([{"seed": cfg.seed, **e, "stopped_early": history.stopped_early}
                         for cfg, _, _, history in _trained(profile, overrides, seeds, cache_dir) for e in history.epochs])


def head_overlap_by_seed(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...], cache_dir: str | Path,
                         device: str = "auto", k: int = 10, eval_requests: int = 1000) -> pd.DataFrame:
    """Pairwise :func:`metrics.list_overlap` of the per-head top-k lists (``model_lists(per_head=True)``)
    of the (cached or trained) model of ``overrides`` on the test requests, one row per
    (seed, pair of heads): do the interest and value heads retrieve different ads?"""
    import itertools

    rows = []
    for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir, device):
        ts = cached_truth_set(cfg, prepared, eval_requests)
        lists = {n: v for n, v in model_lists(model, cfg, prepared, ts, k, device=resolve_device(device),
                                              per_head=True).items() if n.startswith("head")}
        rows += [{"seed": cfg.seed, "pair": f"{a} / {b}", "overlap": list_overlap(lists[a], lists[b], k)}
                 for a, b in itertools.combinations(sorted(lists), 2)]
    return pd.DataFrame(rows)


def stopping_summary(curves: pd.DataFrame, cap: int) -> pd.DataFrame:
    """Per (variant, seed) of :func:`learning_curves` rows (with a ``variant`` column): epochs
    trained, the epoch of lowest validation loss (the weights kept) and what ended the run, as
    the trainer recorded it (``stopped_early``): early stopping (the validation loss had
    stopped improving) or the ``cap`` of epochs (the model may not have converged)."""
    rows = []
    for (variant, seed), g in curves.groupby(["variant", "seed"], sort=False):
        epochs = int(g.epoch.max())
        rows.append({"variant": variant, "seed": seed, "epochs": epochs,
                     "best epoch": int(g.epoch.loc[g.valid_loss.idxmin()]),
                     "ended by": "early stopping" if g.stopped_early.iloc[0] else f"the {cap}-epoch cap"})
    return pd.DataFrame(rows).set_index(["variant", "seed"])


def loss_sweep_by_seed(profile: str, knob: str, values: list | tuple, seeds: list[int] | tuple[int, ...],
                       cache_dir: str | Path, device: str = "auto") -> pd.DataFrame:
    """The full model at each value of the loss knob ``train.<knob>`` (e.g. tau, gamma): one
    served row per (value, seed), with the generator-ranker rank-difference ``IQR`` and a
    column named ``knob``. Kept per seed so that two values can be compared *paired* by seed
    (:func:`paired_sentence`); :func:`mean_ci_columns` of it (``list_name="served"``) gives the
    averaged sweep with its CIs."""
    grid = loss_grid(knob, values)
    res = served(run_grid(profile, grid, seeds, cache_dir, device=device))
    dc = consistency_by_seed(profile, grid, seeds, cache_dir, device=device).summary
    res = res.merge(dc[["variant", "seed", "IQR"]], on=["variant", "seed"])
    res[knob] = res.variant.map({f"{knob}={v:g}": v for v in values})
    return res
