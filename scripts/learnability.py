"""Do the models learn the market? Today's defaults against those before the learnability work
(``config.BEFORE_LEARNABILITY``), with every reference.

For each setting (the defaults before the learnability work; today's defaults; today's
defaults with one learnability change taken back at a time), over seeds: the Step-1 generator
(HSTU-style: next-ad head on the G-Decoder) and the full OneRanker (generated and served
lists), beside the random, popularity, co-occurrence and oracle lists of the same world.
Prints HR@5 and the share of the popularity -> interest-oracle gap closed (mean ± 95% CI over
seeds), the epochs trained, the per-head top-10 overlap of the full model's interest and
value heads, and writes the per-seed rows to ``--out``.

    python scripts/learnability.py --seeds 0 1 2 3 4 --device cuda --out results/quick/learnability.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from oneranker import baselines, config, tables
from oneranker.study import Study
from oneranker.metrics import mean_ci

BEFORE, DEFAULTS = "before learnability", "defaults"
TAKE_BACK = {  # one learnability change undone at a time (the codes-only item is the paper's own)
    "codes-only ads": {"model.item_representation": "sid"},
    "absolute positions": {"model.positions": "absolute"},
    "no bid features": {"model.value_features": False},
    "unit-variance init": {"model.embedding_init_std": 1.0},
    "5-epoch budget": {"train.epochs": 5, "train.patience": 1},
}


def settings(extra: dict) -> dict[str, dict]:
    """The defaults before the learnability work, today's defaults, and today's defaults with
    one learnability change taken back at a time."""
    out = {BEFORE: {**config.BEFORE_LEARNABILITY, **extra}, DEFAULTS: dict(extra)}
    out.update({f"{DEFAULTS}, {name}": {**extra, **change} for name, change in TAKE_BACK.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--out", default=None, help="CSV of the per-seed rows")
    ap.add_argument("--attention", default=None, help="model.attention override (e.g. sdpa on a GPU)")
    ap.add_argument("--only", nargs="*", default=None, help="settings to run (default: all)")
    ap.add_argument("--extra", default="{}", help="JSON overrides applied to every setting (e.g. a market size)")
    ap.add_argument("--workers", type=int, default=None, help="training processes (default: the package's)")
    args = ap.parse_args()
    extra = {"model.attention": args.attention} if args.attention else {}
    extra.update(json.loads(args.extra))
    frames = []
    study = Study(args.profile, tuple(args.seeds), args.cache, args.device, workers=args.workers)
    for name, overrides in settings(extra).items():
        if args.only and name not in args.only:
            continue
        variants = {"Step-1 generator": {**overrides, **baselines.HSTU}, "OneRanker": overrides}
        if name.startswith(f"{DEFAULTS}, "):
            variants = {"OneRanker": overrides}
        t0 = time.time()
        res = study.grid(variants, references=not name.startswith(f"{DEFAULTS}, "))
        res["setting"], res["seconds"] = name, time.time() - t0
        frames.append(res)
        print(f"[{name}] {time.time() - t0:.0f} s", flush=True)
        report(pd.concat(frames, ignore_index=True), args.out)
        if name in (BEFORE, DEFAULTS):
            ov = study.head_overlap(overrides)
            print(f"[{name}] per-head top-10 overlap of the full model (mean ± CI over seeds)")
            for pair, g in ov.groupby("pair"):
                mean, ci = mean_ci(g.groupby("seed").overlap.mean().values)
                print(f"  {pair}: {mean:.3f} ± {ci:.3f}", flush=True)


def report(res: pd.DataFrame, out: str | None) -> None:
    """Gap closed per row (against its own world and seed), the CSV, and the summary table."""
    res = tables.with_gap_closed(res)   # against the references of the row's own dataset and seed
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(out, index=False)
    pd.set_option("display.width", 200)
    rows = []
    for (setting, variant, lst), g in res.groupby(["setting", "variant", "list"], sort=False):
        row = {"setting": setting, "list": f"{variant} ({lst})"}
        for m in ("HR@5", "gap closed HR@5", "valueHR@5"):
            mean, ci = mean_ci(g[m].values)
            row[m] = f"{mean:.4f} ± {ci:.4f}" if m != "gap closed HR@5" else f"{100 * mean:.1f}% ± {100 * ci:.1f}%"
        row["epochs"] = g["epochs"].mean() if "epochs" in g and g["epochs"].notna().any() else ""
        if "train_seconds" in g and g["train_seconds"].notna().any():
            row["train s/model"] = round(g["train_seconds"].mean(), 1)
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
