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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .baselines import Cascade
from .config import Config, make_config
from .data import cached_prepared
from .evaluate import TruthSet, list_metrics, model_lists, popularity_list, truth_set
from .metrics import mean_ci
from .train import resolve_device, train_or_load
from .world import World

POPULARITY = "popularity"


def _train_in_worker(cfg_dict: dict, cache_dir: str) -> str:
    """Train one config into the model cache (runs in a worker process, one CPU thread)."""
    from .config import config_from_dict

    torch.set_num_threads(1)
    cfg = config_from_dict(cfg_dict)
    train_or_load(cfg, cached_prepared(cfg, cache_dir), cache_dir, device="cpu", progress=False)
    return cfg.hash()


def default_workers(device: torch.device) -> int:
    """CPU: one single-threaded training process per core, up to 4 (the quick models are small;
    two such processes train a grid faster than one two-thread process did while the profile
    was sized); GPU: one process."""
    return 1 if device.type != "cpu" else max(1, min(4, os.cpu_count() or 1))


def train_all(cfgs: list[Config], cache_dir: str | Path, device: str = "auto", workers: int | None = None) -> None:
    """Make sure every config has a trained model in the cache, training the missing ones in
    worker processes on CPU (always, even with ``workers=1``, so that every CPU model is
    trained single-threaded). Each model depends on its config only (seeded data order,
    initialisation and sampling), so the result does not depend on how many workers ran or
    in which order."""
    dev = resolve_device(device)
    missing = {c.hash(): c for c in cfgs if not (Path(cache_dir) / "models" / c.hash() / "final.pt").exists()}
    if not missing:
        return
    for c in {c.data_hash(): c for c in missing.values()}.values():   # build datasets once, here
        cached_prepared(c, cache_dir)
    workers = workers or default_workers(dev)
    bar = tqdm(total=len(missing), desc="training models", unit="model")
    if dev.type != "cpu":
        for c in missing.values():
            train_or_load(c, cached_prepared(c, cache_dir), cache_dir, device=str(dev), progress=False)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_train_in_worker, c.to_dict(), str(cache_dir)) for c in missing.values()]
            for f in as_completed(futures):
                f.result()
                bar.update()
    bar.close()


def _configs(profile: str, seed: int, variant: dict | Cascade) -> list[Config]:
    if isinstance(variant, Cascade):
        return [make_config(profile, seed=seed, **variant.generator), make_config(profile, seed=seed, **variant.ranker)]
    return [make_config(profile, seed=seed, **variant)]


def run_grid(profile: str, variants: dict[str, dict | Cascade], seeds: list[int] | tuple[int, ...],
             cache_dir: str | Path, device: str = "auto", n_candidates: int | None = None,
             eval_requests: int | None = 1000, baselines: bool = False, progress: bool = False,
             workers: int | None = None, per_head: bool = False) -> pd.DataFrame:
    """Train (or load) and evaluate every variant for every seed.

    A variant is a dict of config overrides (one model) or a :class:`baselines.Cascade` (a
    generator and a separate ranker). Variants may change the world or the data: each is
    evaluated on its own dataset and truth. Returns a tidy frame: columns ``variant, seed,
    list`` (``generated`` or ``ranked``) and the metrics of :func:`evaluate.list_metrics`.
    ``baselines=True`` adds the popularity list of each dataset; ``per_head=True`` adds each
    generator head's own list (``head: click``, ...).
    """
    rows = []
    dev = resolve_device(device)
    train_all([c for s in seeds for v in variants.values() for c in _configs(profile, s, v)], cache_dir,
              device=device, workers=workers)
    for seed in seeds:
        truths: dict[str, TruthSet] = {}
        for name, variant in variants.items():
            cfgs = _configs(profile, seed, variant)
            cfg = cfgs[0]
            prepared = cached_prepared(cfg, cache_dir, progress=progress)
            key = cfg.data_hash()
            if key not in truths:
                truths[key] = truth_set(World(cfg.world, seed), prepared, n_requests=eval_requests)
                if baselines:
                    n_req = len(truths[key].indices)
                    rows.append({"variant": POPULARITY, "seed": seed, "list": "generated", "data": key,
                                 **list_metrics(popularity_list(prepared, n_req, n_candidates or cfg.train.n_candidates),
                                                truths[key])})
            ts, n = truths[key], n_candidates or cfg.train.n_candidates
            models = [train_or_load(c, prepared, cache_dir, device=str(dev), progress=progress) for c in cfgs]
            ranker = models[1][0] if isinstance(variant, Cascade) else None
            lists = model_lists(models[0][0], cfg, prepared, ts, n, device=dev, per_head=per_head, ranker=ranker)
            for list_name, ranked in lists.items():
                rows.append({"variant": name, "seed": seed, "list": list_name, "data": key,
                             "epochs": len(models[0][1].epochs), **list_metrics(ranked, ts)})
            del models
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, metrics: list[str], by: tuple[str, ...] = ("variant", "list"),
              digits: int = 4) -> pd.DataFrame:
    """Mean and 95% CI half-width over seeds, as ``mean ± ci`` strings, rows in input order."""
    order = list(dict.fromkeys(map(tuple, results[list(by)].values.tolist())))
    table = {}
    for key, group in results.groupby(list(by), sort=False):
        table[key] = {m: "{:.{d}f} ± {:.{d}f}".format(*mean_ci(group[m].values), d=digits) for m in metrics}
    out = pd.DataFrame.from_dict(table, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=list(by))
    out = out.loc[order]
    out["seeds"] = [int((results[list(by)].apply(tuple, axis=1) == k).sum()) for k in order]
    return out


def paired_difference(results: pd.DataFrame, metric: str, a: tuple[str, str], b: tuple[str, str]) -> tuple[float, float]:
    """Mean and 95% CI of ``metric(a) - metric(b)`` paired by seed ((variant, list) pairs):
    seeds share the world, so pairing removes the world-to-world variation."""
    def by_seed(v: tuple[str, str]) -> pd.Series:
        sel = results[(results.variant == v[0]) & (results.list == v[1])]
        return sel.set_index("seed")[metric]
    diff = (by_seed(a) - by_seed(b)).dropna()
    return mean_ci(diff.values)


def paired_table(results: pd.DataFrame, metrics: list[str], variants: list[str | tuple[str, str]],
                 base: str | tuple[str, str], digits: int = 4) -> pd.DataFrame:
    """``variant - base`` for each metric, paired by seed, as ``+mean ± ci`` strings. Variants
    and base are names (their ``generated`` list) or (variant, list) pairs."""
    def key(v: str | tuple[str, str]) -> tuple[str, str]:
        return (v, "generated") if isinstance(v, str) else tuple(v)

    rows = {}
    for v in variants:
        a = key(v)
        label = a[0] if a[1] == "generated" else f"{a[0]} ({a[1]})"
        rows[label] = {m: "{:+.{d}f} ± {:.{d}f}".format(*paired_difference(results, m, a, key(base)), d=digits)
                       for m in metrics}
    return pd.DataFrame.from_dict(rows, orient="index")


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


def save_table(df: pd.DataFrame, profile: str, name: str, root: str | Path = "../results") -> None:
    path = Path(root) / profile / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)


def _trained(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...], cache_dir: str | Path):
    """(config, dataset, model, history) of the variant ``overrides`` for every seed, from the
    cache (the missing models are trained first, in parallel)."""
    cfgs = [make_config(profile, seed=s, **overrides) for s in seeds]
    train_all(cfgs, cache_dir)
    for cfg in cfgs:
        prepared = cached_prepared(cfg, cache_dir)
        model, history = train_or_load(cfg, prepared, cache_dir, device="cpu", progress=False)
        yield cfg, prepared, model, history


def centroid_alignment_by_seed(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...],
                               cache_dir: str | Path, eval_requests: int = 1000) -> pd.DataFrame:
    """Mean Spearman rho (over test requests) of :func:`evaluate.centroid_alignment`, one row
    per seed, for the (cached or trained) model of ``overrides``."""
    from .evaluate import centroid_alignment

    rows = []
    for cfg, prepared, model, _ in _trained(profile, overrides, seeds, cache_dir):
        ts = truth_set(World(cfg.world, cfg.seed), prepared, n_requests=eval_requests)
        a = centroid_alignment(model, cfg, prepared, ts)
        rows.append({"seed": cfg.seed, "interest_rho": float(np.nanmean(a["interest_rho"])),
                     "value_rho": float(np.nanmean(a["value_rho"]))})
    return pd.DataFrame(rows)


def learning_curves(profile: str, overrides: dict, seeds: list[int] | tuple[int, ...], cache_dir: str | Path) -> pd.DataFrame:
    """Per-epoch training and validation loss of the (cached or trained) model of
    ``overrides`` for every seed: is the training budget enough for the model to converge?"""
    return pd.DataFrame([{"seed": cfg.seed, **e} for cfg, _, _, history in _trained(profile, overrides, seeds, cache_dir)
                         for e in history.epochs])
