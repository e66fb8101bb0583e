"""Real MovieLens-100k, trained and evaluated: popularity, SASRec-style, the Step-1 generator and
the full OneRanker on the standard protocol (oneranker.realdata), over seeds.

    python -m oneranker prepare --source movielens --path ../shared/data/ml-100k --out data/ml-100k
    python scripts/real_data.py --data data/ml-100k --seeds 0 1 2 3 4 --out results/quick/real_ml100k.csv

GroupLens' ml-100k files (u.data, u.item, u.user) are at https://grouplens.org/datasets/movielens/100k/.
The prepared folder is made once (its semi-synthetic bids come from the prepare seed); a seed
here changes the models' initialisation, batches and sampling. Models use the learnability
settings of ``config.LEARNABLE`` (model and training sections; the world's do not apply).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from oneranker import baselines, config
from oneranker.metrics import mean_ci

VARIANTS = {"SASRec-style": baselines.SASREC, "Step-1 generator": baselines.HSTU, "OneRanker": {}}


def model_overrides(variant: dict) -> dict:
    learnable = {k: v for k, v in config.LEARNABLE.items() if not k.startswith("world.")}
    return {**learnable, **variant}


def run_one(data: str, cache: str, name: str, seed: int, device: str) -> list[dict]:
    import torch

    from oneranker.data import load_prepared
    from oneranker.realdata import dataset_fingerprint, evaluate_real
    from oneranker.train import train_or_load

    if device == "cpu":
        torch.set_num_threads(1)
    cfg = config.make_config("quick", seed=seed, **model_overrides(VARIANTS[name]))
    prepared = load_prepared(data)
    t0 = time.time()
    model, history = train_or_load(cfg, prepared, cache, device=device, progress=False,
                                   fingerprint=dataset_fingerprint(data))
    seconds = sum(e.get("seconds", float("nan")) for e in history.epochs)
    rows = evaluate_real({name: (model, cfg)}, prepared, seed=seed, device=device)
    keep = [r for r in rows if r["list"] not in ("random", "popularity")] if name != "SASRec-style" else rows
    return [{**r, "seed": seed, "epochs": len(history.epochs), "train_seconds": seconds,
             "wall_seconds": time.time() - t0} for r in keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder written by prepare --source movielens")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    jobs = [(args.data, args.cache, name, s, args.device) for s in args.seeds for name in VARIANTS]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = [r for part in pool.map(run_one, *zip(*jobs)) for r in part]
    res = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False)
    table = {}
    for name, g in res.groupby("list", sort=False):
        table[name] = {m: "{:.4f} ± {:.4f}".format(*mean_ci(g[m].values)) for m in ("HR@10", "NDCG@10", "HR@20")}
        pop = res[res.list == "popularity"].set_index("seed")["HR@10"]
        table[name]["HR@10 / popularity"] = "{:.2f} ± {:.2f}".format(*mean_ci((g.set_index("seed")["HR@10"] / pop).values))
        if g["epochs"].notna().any():
            table[name]["epochs"] = f"{g['epochs'].mean():.1f}"
            table[name]["train s"] = f"{g['train_seconds'].mean():.0f}"
    pd.set_option("display.width", 200)
    print(pd.DataFrame.from_dict(table, orient="index").to_string())


if __name__ == "__main__":
    main()
