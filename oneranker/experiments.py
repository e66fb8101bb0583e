"""Grids of variants x seeds into tidy tables, reusing trained models cached by config hash.

A *variant* is a name and a dict of config overrides (every ablation is a config switch), a
*seed* changes the world, the data split, the initialisation and the training order. Each
(variant, seed) is trained once (``train.train_or_load``) and evaluated on the test
requests against the simulated market's truth; the result is one row per (variant, seed,
list) with every metric as a column, ready for :func:`summarise`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import make_config
from .data import cached_prepared
from .evaluate import list_metrics, model_lists, popularity_list, test_set
from .metrics import mean_ci
from .train import resolve_device, train_or_load
from .world import World

POPULARITY = "popularity"


def run_grid(profile: str, variants: dict[str, dict], seeds: list[int] | tuple[int, ...], cache_dir: str | Path,
             device: str = "auto", n_candidates: int | None = None, eval_requests: int | None = 1000,
             baselines: bool = False, progress: bool = False) -> pd.DataFrame:
    """Train (or load) and evaluate every variant for every seed.

    Returns a tidy frame: columns ``variant, seed, list`` (``generated`` or ``ranked``) and the
    metrics of :func:`evaluate.list_metrics`. ``baselines=True`` adds the popularity list.
    """
    rows = []
    dev = resolve_device(device)
    for seed in seeds:
        base = make_config(profile, seed=seed)
        prepared = cached_prepared(base, cache_dir, progress=progress)
        ts = test_set(World(base.world, seed), prepared, n_requests=eval_requests, seed=seed)
        n = n_candidates or base.train.n_candidates
        if baselines:
            rows.append({"variant": POPULARITY, "seed": seed, "list": "generated",
                         **list_metrics(popularity_list(prepared, len(ts.indices), n), ts)})
        for name, overrides in variants.items():
            cfg = make_config(profile, seed=seed, **overrides)
            model, history = train_or_load(cfg, prepared, cache_dir, device=str(dev), progress=progress)
            for list_name, ranked in model_lists(model, cfg, prepared, ts, n, device=dev).items():
                rows.append({"variant": name, "seed": seed, "list": list_name,
                             "epochs": len(history.epochs), **list_metrics(ranked, ts)})
            del model
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


def save_table(df: pd.DataFrame, profile: str, name: str, root: str | Path = "../results") -> None:
    path = Path(root) / profile / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)
