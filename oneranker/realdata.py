"""Evaluation on real logs (MovieLens, Taobao), where no simulated truth exists.

The standard protocol of sequential recommendation: leave-last-out by time (each user's last
request is the test request, the one before it validation: :func:`data.split_requests`), the
held-out positive is the item the user actually clicked at that request, and every list is a
**full ranking over all items** (no sampled negatives). Items the user saw before are kept in
the ranking (nothing is filtered), so a model must learn not to repeat them if repeats never
happen. Metrics: HR@K (is the positive in the first K) and NDCG@K with one relevant item.

References on the same split: ``popularity`` (the items clicked most in training) and
``random``. Models: any config, trained by :func:`train.train_or_load` on the prepared
folder, its cache keyed by the dataset's fingerprint as well as the config.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .data import Prepared
from .metrics import hit_ndcg, hit_rate
from .reference import popularity_list, random_list

REAL_KS = (10, 20)


def dataset_fingerprint(folder: str | Path) -> str:
    """A short hash of every byte of a prepared folder (names and contents): two preparations
    of different data, or of the same data by another config, never share it, so a model
    cached for one is never served for the other. Reads the whole folder (MovieLens-100k:
    a few MB, well under a second)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0")
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]


def heldout_positives(prepared: Prepared, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(request rows, positive item) of the ``split`` requests that hold a logged click: the
    first clicked item of each (MovieLens: the rated movie; Taobao: the clicked ad)."""
    table = prepared.requests[split].data
    items = table.column("imp_item").combine_chunks()
    clicks = table.column("imp_click").combine_chunks()
    offsets = items.offsets.to_numpy()
    item_values, click_values = items.values.to_numpy(), clicks.values.to_numpy()
    rows, positives = [], []
    for r in range(len(offsets) - 1):
        hit = np.flatnonzero(click_values[offsets[r]:offsets[r + 1]] > 0)
        if len(hit):
            rows.append(r)
            positives.append(item_values[offsets[r] + hit[0]])
    return np.asarray(rows, np.int64), np.asarray(positives, np.int64)


def real_metrics(ranked: np.ndarray, positives: np.ndarray, ks: tuple[int, ...] = REAL_KS) -> dict[str, float]:
    """HR@K and NDCG@K of lists [R, n] (best first) against one held-out item per request."""
    if len(ranked) != len(positives):
        raise ValueError(f"{len(ranked)} lists for {len(positives)} held-out items")
    out = {}
    for k in ks:
        if ranked.shape[1] < k:
            raise ValueError(f"lists of {ranked.shape[1]} items cannot give HR@{k}")
        out[f"HR@{k}"] = hit_rate(ranked, positives, k)
        out[f"NDCG@{k}"] = hit_ndcg(ranked, positives, k)
    return out


def model_rankings(model, cfg: Config, prepared: Prepared, rows: np.ndarray, n: int,
                   device: str = "cpu") -> dict[str, np.ndarray]:
    """The model's full-catalogue lists for the test requests ``rows``: ``generated`` (merged
    heads' top n) and, with a ranker, ``ranked`` (those n reordered by the R-Decoder)."""
    from .evaluate import TruthSet, model_lists

    return model_lists(model, cfg, prepared, TruthSet(indices=rows, truth=None), n, device=device)


def evaluate_real(models: dict[str, tuple], prepared: Prepared, n: int = 20, seed: int = 0,
                  device: str = "cpu") -> list[dict]:
    """Rows (list, metrics) for the references and every ``name: (model, cfg)`` on the test
    split, one per list a model serves (``name`` for its served list, ``name (generated)``
    for a ranker's candidates before ranking)."""
    rows_idx, positives = heldout_positives(prepared)
    n = min(n, prepared.meta["n_items"])
    ks = tuple(k for k in REAL_KS if k <= n)         # a toy catalogue smaller than 20 gets fewer Ks
    lists = {"random": random_list(prepared.meta["n_items"], len(rows_idx), n, seed),
             "popularity": popularity_list(prepared, len(rows_idx), n)}
    for name, (model, cfg) in models.items():
        out = model_rankings(model, cfg, prepared, rows_idx, n, device)
        if "ranked" in out:
            lists[name] = out["ranked"]
            lists[f"{name} (generated)"] = out["generated"]
        else:
            lists[name] = out["generated"]
    return [{"list": name, "requests": len(positives), **real_metrics(lst, positives, ks)}
            for name, lst in lists.items()]


def comparison_variants() -> dict[str, dict]:
    """The models compared on real logs, at the profile's model and training settings: a
    SASRec-style baseline, the Step-1 generator and the full OneRanker."""
    from . import baselines

    return {"SASRec-style": dict(baselines.SASREC), "Step-1 generator": dict(baselines.HSTU), "OneRanker": {}}


def _train_and_evaluate(data: str, cache: str, name: str, overrides: dict, profile: str, seed: int,
                        device: str, references: bool) -> list[dict]:
    """One (model, seed) of :func:`compare`, in a worker process (single-threaded on CPU)."""
    import torch

    from .config import make_config
    from .data import load_prepared
    from .train import train_or_load

    if device == "cpu":
        torch.set_num_threads(1)
    # real logs: every model trains alone (train.stack_seeds stacks the models of simulated worlds)
    cfg = make_config(profile, seed=seed, **{**overrides, "train.stack_seeds": ()})
    prepared = load_prepared(data)
    model, history = train_or_load(cfg, prepared, cache, device=device, progress=False,
                                   fingerprint=dataset_fingerprint(data))
    rows = evaluate_real({name: (model, cfg)}, prepared, seed=seed, device=device)
    curve = [{"epoch": e["epoch"], "train_loss": e["train_loss"], "valid_loss": e["valid_loss"],
              "stopped_early": history.stopped_early} for e in history.epochs]
    trained = {"model": name, "epochs": len(history.epochs),
               "train_seconds": sum(e.get("seconds", float("nan")) for e in history.epochs), "curve": json.dumps(curve)}
    out = []
    for r in rows:
        if r["list"] in ("random", "popularity"):
            if references:
                out.append({**r, "seed": seed, "model": "", "epochs": np.nan, "train_seconds": np.nan, "curve": ""})
        else:
            out.append({**r, "seed": seed, **trained})
    return out


def compare(data: str | Path, seeds: list[int] | tuple[int, ...], cache: str | Path = "cache",
            variants: dict[str, dict] | None = None, profile: str = "quick", device: str = "cpu",
            workers: int = 2) -> pd.DataFrame:
    """Train (or load from the cache) every variant for every seed on the prepared folder
    ``data`` and evaluate it with the protocol above. One row per (list, seed): the references
    (once per seed) and each model's served list (and a ranker's generated list), with the
    epochs trained, the training time and the learning curve (JSON). A seed changes the
    models' initialisation, batches and sampling; the data are the folder's."""
    variants = variants or comparison_variants()
    jobs = [(str(data), str(cache), name, overrides, profile, s, device, i == 0)
            for s in seeds for i, (name, overrides) in enumerate(variants.items())]
    if workers <= 1:
        parts = [_train_and_evaluate(*job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_train_and_evaluate, *zip(*jobs)))
    return pd.DataFrame([r for part in parts for r in part])


def summary(results: pd.DataFrame, metrics: tuple[str, ...] = ("HR@10", "NDCG@10", "HR@20")) -> pd.DataFrame:
    """Mean ± 95% CI over seeds of each list's metrics, its HR@10 relative to popularity's
    (paired by seed), the epochs trained and the training seconds per model."""
    from .metrics import mean_ci

    pop = results[results.list == "popularity"].set_index("seed")["HR@10"]
    table = {}
    for name, g in results.groupby("list", sort=False):
        row = {m: "{:.4f} ± {:.4f}".format(*mean_ci(g[m].values)) for m in metrics}
        row["HR@10 / popularity"] = "{:.2f} ± {:.2f}".format(*mean_ci((g.set_index("seed")["HR@10"] / pop).values))
        row["epochs"] = f"{g['epochs'].mean():.1f}" if name not in ("random", "popularity") else ""
        row["train s"] = f"{g['train_seconds'].mean():.0f}" if name not in ("random", "popularity") else ""
        row["seeds"] = len(g)
        table[name] = row
    return pd.DataFrame.from_dict(table, orient="index")


def prepared_folder(cfg: Config, source: str, raw: str | Path, cache_dir: str | Path = "cache") -> Path:
    """The real logs in the folder ``raw`` prepared under ``cfg`` (:func:`data.cached_real_folder`),
    cached under a folder named by the raw files' fingerprint. ``data.cached_real_folder`` keys
    its folder by the config, the source name and the data code only, so a second raw folder of
    the same source (ml-1m after ml-100k) would be served the first one's preparation; keying
    the cache folder by the raw bytes closes that gap until the key itself carries them (a
    change to the data code, which retrains every model)."""
    from .data import cached_real_folder

    return cached_real_folder(cfg, source, raw, Path(cache_dir) / "real-src" / dataset_fingerprint(raw))


def learning_curves(results: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """The per-epoch rows of ``models``' learning curves (the ``curve`` JSON of each result
    row), one per (variant, seed, epoch): the input of :func:`plots.learning_curves` and
    :func:`tables.stopping_summary`."""
    return pd.DataFrame([{"variant": row["list"], "seed": row["seed"], **epoch}
                         for _, row in results[results.list.isin(models)].iterrows()
                         for epoch in json.loads(row["curve"])])


def last_epochs_change(valid_losses: list[float] | np.ndarray, last: int = 5) -> float | None:
    """The validation loss's relative change over a run's last ``last`` epochs (None with
    ``last`` epochs or fewer): a run still falling by more than a fraction of a percent had not
    flattened. Read by :func:`stopping_table` and by scripts/paper_histories.py for the paper runs."""
    if len(valid_losses) <= last:
        return None
    return float(valid_losses[-1] / valid_losses[-1 - last] - 1)


def change_up_to_best(valid_losses: list[float] | np.ndarray, last: int = 5) -> float | None:
    """The validation loss's relative change over the ``last`` epochs up to a run's best epoch
    (None for a best within the first ``last``). Unlike :func:`last_epochs_change`, which a
    stopping rule pulls towards zero (it stops after epochs without a new best), this asks
    whether the curve had flattened where its weights were kept."""
    losses = np.asarray(valid_losses, dtype=float)
    return last_epochs_change(losses[: int(losses.argmin()) + 1], last)


def stopping_table(results: pd.DataFrame, models: list[str], cap: int) -> pd.DataFrame:
    """Per (model, seed): :func:`tables.stopping_summary` (epochs trained, the best epoch and
    what ended the run) and how much the validation loss still moved over its last five epochs
    (a run still falling by more than a fraction of a percent had not flattened). Curves made
    before the trainer's flag was recorded count as capped when they reached ``cap``."""
    from .tables import stopping_summary

    curves = learning_curves(results, models)
    reached = curves.groupby(["variant", "seed"]).epoch.transform("max") >= cap
    curves["stopped_early"] = curves["stopped_early"].fillna(~reached) if "stopped_early" in curves else ~reached
    table = stopping_summary(curves, cap)

    def last5(v: np.ndarray) -> str:
        change = last_epochs_change(v)
        return "(fewer than 6 epochs)" if change is None else f"{100 * change:+.2f}%"

    table["last 5 epochs: change of validation loss"] = [
        last5(g.sort_values("epoch").valid_loss.to_numpy()) for _, g in curves.groupby(["variant", "seed"], sort=False)]
    return table


def verdicts(results: pd.DataFrame, at_least: list[tuple[str, str]], models: list[str],
             ratio_target: float = 2.5, metric: str = "HR@10") -> list[str]:
    """The stated targets as sentences, from the per-seed rows: ``a`` at least matches ``b``
    (paired by seed) for each pair of ``at_least``, and each of ``models`` reaches
    ``ratio_target`` x popularity. A target holds when its CI is on the right side, is missed
    when its CI is on the wrong side, and is otherwise not separated by these seeds."""
    from .metrics import mean_ci

    def by_seed(name: str) -> pd.Series:
        return results[results.list == name].set_index("seed")[metric]

    lines = []
    for a, b in at_least:
        m, ci = mean_ci((by_seed(a) - by_seed(b)).values)
        verdict = ("holds" if m - ci > 0 else "missed" if m + ci < 0 else
                   f"not separated: the CI crosses zero, mean {'above' if m >= 0 else 'below'}")
        lines.append(f"- {a} minus {b}: {metric} {m:+.4f} ± {ci:.4f} ({verdict}).")
    for name in models:
        m, ci = mean_ci((by_seed(name) / by_seed("popularity")).values)
        verdict = ("met" if m - ci >= ratio_target else "missed" if m + ci < ratio_target else
                   f"not separated: the CI contains {ratio_target:g}")
        lines.append(f"- {name}: {m:.2f} ± {ci:.2f} x popularity's {metric} (target {ratio_target:g}x: {verdict}).")
    return lines
