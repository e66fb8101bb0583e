"""The market's truth over the whole catalogue, as evaluation computes it for every test request
(``World.truth(users, None, ...)``) against the same numbers from the catalogue passed as
``items`` (gathered [requests, ads, d] copies of the ads' vectors), side by side in one run.
CPU only: the truth is numpy.

    python benchmarks/truth.py --profile paper --requests 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import header  # noqa: E402
from oneranker.config import make_config  # noqa: E402
from oneranker.profiling import time_side_by_side  # noqa: E402
from oneranker.world import World  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.requests < 1 or args.repeats < 1:
        raise SystemExit("--requests and --repeats must be at least 1")
    cfg = make_config(args.profile, seed=0)
    world = World(cfg.world, cfg.seed)
    rng = np.random.default_rng(0)
    users = rng.choice(cfg.world.n_users, size=min(args.requests, cfg.world.n_users), replace=False)
    active, context = world.sample_active_interest(users, rng), world.sample_context(len(users), rng)
    catalogue = np.broadcast_to(np.arange(cfg.world.n_items), (len(users), cfg.world.n_items))
    same = np.array_equal(world.truth(users, None, active, context).pctr, world.truth(users, catalogue, active, context).pctr)
    print(header(f"profile {args.profile} | {len(users)} requests x {cfg.world.n_items} ads | identical pCTR: {same}"))
    t = time_side_by_side({"catalogue given as items": lambda: world.truth(users, catalogue, active, context),
                           "items=None": lambda: world.truth(users, None, active, context)},
                          repeats=args.repeats, warmup=1)
    base = t["catalogue given as items"]["median_s"]
    for name, v in t.items():
        print(f"{name:>26s}: {v['median_s']:6.2f} s (median of {args.repeats}), {base / v['median_s']:.2f}x the first row")


if __name__ == "__main__":
    main()
