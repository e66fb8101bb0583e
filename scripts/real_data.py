"""Real MovieLens-100k, trained and evaluated over seeds: popularity, SASRec-style, the Step-1
generator and the full OneRanker on the standard protocol (:mod:`oneranker.realdata`).

    python -m oneranker prepare --source movielens --path ../shared/data/ml-100k --out data/ml-100k
    python scripts/real_data.py --data data/ml-100k --seeds 0 1 2 3 4 --out results/quick/real_ml100k.csv

GroupLens' ml-100k files (u.data, u.item, u.user): https://grouplens.org/datasets/movielens/100k/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from oneranker import realdata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder written by prepare --source movielens")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="CSV of the per-seed rows")
    args = ap.parse_args()
    res = realdata.compare(args.data, args.seeds, args.cache, device=args.device, workers=args.workers)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print(realdata.summary(res).to_string())


if __name__ == "__main__":
    main()
