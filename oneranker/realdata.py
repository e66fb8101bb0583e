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
from pathlib import Path

import numpy as np

from .config import Config
from .data import Prepared
from .metrics import hit_ndcg, hit_rate
from .reference import popularity_list, random_list

REAL_KS = (10, 20)


def dataset_fingerprint(folder: str | Path) -> str:
    """A short hash of a prepared folder's metadata and file sizes: two preparations of
    different data (or of the same data by another config) never share it, so a model cached
    for one is never served for the other."""
    folder = Path(folder)
    h = hashlib.sha256((folder / "meta.json").read_bytes())
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "meta.json":
            h.update(f"{p.relative_to(folder)}:{p.stat().st_size}".encode())
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


def prepared_config(folder: str | Path) -> dict:
    """The config a prepared folder was made with (its meta.json), as a dict."""
    return json.loads((Path(folder) / "meta.json").read_text())["config"]
