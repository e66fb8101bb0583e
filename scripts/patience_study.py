"""Does early stopping end training on noise? The same models trained with two patiences.

Early stopping ends a run after ``train.patience`` epochs without a new best validation loss and
keeps the best epoch's weights. If the validation loss is noisy, a small patience stops on a
bump of a curve that would still fall: the weights kept are then those of an earlier, higher
minimum. At the paper profile the learning curves brought back from the GPU show exactly that
(README "Trained to convergence?"); this script asks it of a profile on this machine.

For each patience (``--patience``, the first is the reference, normally today's default) it
trains the full OneRanker and the Step-1 generator (HSTU-style) over ``--seeds``, with every
other setting of the profile unchanged, and prints per model and patience (mean ± 95% CI over
seeds): epochs trained, best epoch, best validation loss, HR@5 and the share of the popularity
-> interest-oracle gap closed; then, paired by seed against the reference patience, the
relative change of the best validation loss and the change of the gap closed.

The rule, stated before the runs: the reference patience **stops on noise** when a larger
patience reaches a lower best validation loss with the CI of the paired relative change below
zero. "Lower on seeds" beside it counts the seeds where it did: on a CPU training is
deterministic, so a larger patience continues the reference's run and its change is zero or
negative, and one seed that stopped on a bump shows there even when the CI does not separate.
The gap closed is reported beside it, not used to choose (a patience is a convergence setting,
not a knob to tune for a metric). Needs two seeds or more (a CI).

    python scripts/patience_study.py --profile quick --seeds 0 1 2 3 4 --patience 2 5 \\
        --out results/quick/patience_study.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from oneranker import baselines, tables
from oneranker.metrics import mean_ci
from oneranker.pool import check_mps, mps
from oneranker.study import Study

MODELS = {"OneRanker": {}, "Step-1 generator": dict(baselines.HSTU)}
SERVED = {"OneRanker": "ranked", "Step-1 generator": "generated"}   # the list each model serves


def variant_name(model: str, patience: int) -> str:
    return f"{model}, patience {patience}"


def overrides(model: str, patience: int, epochs: int | None = None) -> dict:
    """One model's config overrides at ``patience``; with ``epochs``, its cap of epochs set to it
    (``train.epochs``; its cosine decay ends there too), else the profile's."""
    return {**MODELS[model], "train.patience": patience, **({} if epochs is None else {"train.epochs": epochs})}


def variants(patiences: list[int], epochs: int | None = None) -> dict[str, dict]:
    """Each model at each patience, as a study's variants (:func:`overrides`)."""
    return {variant_name(m, p): overrides(m, p, epochs) for p in patiences for m in MODELS}


def curves_summary(study: Study, model: str, patience: int, epochs: int | None = None) -> pd.DataFrame:
    """Per seed: epochs trained, best epoch and what ended the run (:func:`tables.stopping_summary`
    over the cached models' learning curves, against the cap they ran under), with the best
    epoch's validation loss."""
    run = overrides(model, patience, epochs)
    curves = study.learning_curves(run).assign(variant=model)
    cap = study.configs(run, study.seeds[0])[0].train.epochs
    stops = tables.stopping_summary(curves, cap).reset_index()
    best = curves.groupby("seed")["valid_loss"].min().rename("best valid loss").reset_index()
    return (stops.merge(best, on="seed")
            .assign(model=model, patience=patience, **{"stopped early": lambda t: t["ended by"] == "early stopping"})
            [["model", "patience", "seed", "epochs", "best epoch", "best valid loss", "stopped early"]])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95% CI over seeds of each (model, patience)'s columns."""
    out = []
    for (model, patience), g in rows.groupby(["model", "patience"], sort=False):
        row = {"model": model, "patience": patience, "seeds": len(g)}
        for col, fmt in (("epochs", "{:.1f}"), ("best epoch", "{:.1f}"), ("best valid loss", "{:.4f}"),
                         ("HR@5", "{:.4f}"), ("gap closed HR@5", "{:.1%}")):
            mean, ci = mean_ci(g[col].to_numpy(dtype=float))
            row[col] = f"{fmt.format(mean)} ± {fmt.format(ci)}"
        row["stopped early"] = f"{int(g['stopped early'].sum())} of {len(g)}"
        out.append(row)
    return pd.DataFrame(out)


def paired(rows: pd.DataFrame, reference: int) -> pd.DataFrame:
    """Per model and patience larger than ``reference``, paired by seed against it: the relative change
    of the best validation loss and the change of the gap closed (mean ± 95% CI), and the rule's
    verdict on the first."""
    if reference not in set(rows["patience"]):
        raise ValueError(f"no runs at the reference patience {reference} (patiences: {sorted(set(rows['patience']))})")
    out = []
    for model, g in rows.groupby("model", sort=False):
        ref = g[g["patience"] == reference].set_index("seed")
        for patience, h in g[g["patience"] > reference].groupby("patience"):
            h = h.set_index("seed").loc[ref.index]
            loss = (h["best valid loss"] / ref["best valid loss"] - 1).to_numpy()
            gap = (h["gap closed HR@5"] - ref["gap closed HR@5"]).to_numpy()
            (lm, lc), (gm, gc) = mean_ci(loss), mean_ci(gap)
            verdict = ("n/a (one seed: no CI)" if np.isnan(lc) else
                       f"patience {reference} stops on noise" if lm + lc < 0 else
                       "not separated" if lm - lc <= 0 else f"patience {patience} ends higher")
            out.append({"model": model, "patience": f"{patience} vs {reference}",
                        "best valid loss, relative change": f"{lm:+.2%} ± {lc:.2%}",
                        "lower on seeds": f"{int((loss < 0).sum())} of {len(loss)}",
                        "gap closed HR@5, change": f"{100 * gm:+.1f} ± {100 * gc:.1f} points", "rule": verdict})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--patience", type=int, nargs="+", default=[2, 5],
                    help="patiences to compare; the first is the reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--workers", type=int, default=None, help="training processes (default: the package's)")
    ap.add_argument("--mps", action="store_true",
                    help="train under CUDA's Multi-Process Service (oneranker.pool.mps), as the paper notebooks do")
    ap.add_argument("--epochs", type=int, default=None,
                    help="every run's cap of epochs (train.epochs; default: the profile's). At the paper profile "
                         "30 is reached by runs still improving (README 'Trained to convergence?')")
    ap.add_argument("--out", default=None, help="CSV of the per-seed rows")
    args = ap.parse_args()
    if len(args.patience) < 2 or min(args.patience) < 0 or len(set(args.patience)) != len(args.patience):
        ap.error(f"--patience needs two or more distinct values >= 0, got {args.patience}")
    if args.patience[0] != min(args.patience):
        ap.error(f"--patience: the first value is the reference and must be the smallest, got {args.patience}")
    if len(set(args.seeds)) < 2:
        ap.error(f"--seeds needs two or more seeds (a CI over seeds), got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.mps:
        try:
            check_mps(args.device)
        except (ValueError, FileNotFoundError) as e:
            ap.error(str(e))
    t0 = time.time()
    study = Study(args.profile, tuple(args.seeds), args.cache, args.device, workers=args.workers)
    with mps(args.mps):
        res = tables.with_gap_closed(study.grid(variants(args.patience, args.epochs)))
    served = pd.concat([res[(res["variant"] == variant_name(m, p)) & (res["list"] == SERVED[m])]
                        .assign(model=m, patience=p) for p in args.patience for m in MODELS])
    curves = pd.concat([curves_summary(study, m, p, args.epochs) for p in args.patience for m in MODELS])
    rows = served[["model", "patience", "seed", "HR@5", "gap closed HR@5"]].merge(curves, on=["model", "patience", "seed"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
    pd.set_option("display.width", 220)
    cap = f"cap {args.epochs} epochs" if args.epochs else "the profile's cap of epochs"
    print(f"# {args.profile} profile, seeds {args.seeds}, {cap}, {time.time() - t0:.0f} s; served list: "
          + ", ".join(f"{m} {SERVED[m]}" for m in MODELS))
    print(summary(rows).to_string(index=False))
    print()
    print(paired(rows, args.patience[0]).to_string(index=False), flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
