"""Does early stopping end training on noise, or the cap on a budget? The same models, several stopping rules.

Early stopping ends a run after ``train.patience`` epochs without a new best validation loss and
keeps the best epoch's weights. If the validation loss is noisy, a small patience stops on a
bump of a curve that would still fall: the weights kept are then those of an earlier, higher
minimum. At the paper profile the learning curves brought back from the GPU show exactly that
(docs/paper_profile.md, "Trained to convergence?"), and show a second limit: the cosine decay of the learning
rate ends at the cap of epochs, so a run that reaches the cap is annealed by its budget.

A *rule* is how a run ends: ``patience P`` (the cosine schedule, whatever the profile's, with each
``--patience``, under ``--epochs``' cap or the profile's; the first is the reference) and, with
``--plateau-epochs N``, ``plateau, patience P`` (``train.lr_schedule='plateau'``: the peak learning
rate until the validation loss stops improving, halved on each plateau down to an eighth, early
stopping with the reference's patience there; cap N epochs). For each rule it trains the full OneRanker and the Step-1
generator (HSTU-style) over ``--seeds``, with every other setting of the profile unchanged, and
prints per model and rule (mean ± 95% CI over seeds): epochs trained, best epoch, runs that
reached their cap, the validation loss's change over the last five epochs, best validation loss,
training seconds, HR@5 and the share of the popularity -> interest-oracle gap closed; then,
paired by seed against the reference rule, the relative change of the best validation loss and
the change of the gap closed.

The rules, stated before the runs:
* a larger patience: the reference patience **stops on noise** when the larger one reaches a
  lower best validation loss with the CI of the paired relative change below zero. "Lower on
  seeds" beside it counts the seeds where it did: on a CPU training is deterministic, so a larger
  patience continues the reference's run and its change is zero or negative, and one seed that
  stopped on a bump shows there even when the CI does not separate.
* the plateau schedule becomes the paper profile's (the convergence rerun's) when every one of
  its runs ends by its stopping rule before its cap and no model's best validation loss is higher
  than under the reference (the paired CI not above zero). Its epochs and seconds say what the
  rerun costs. (It was adopted so on 2026-12-04; the paper profile's cap is 60 epochs since, so the
  study that decided it, the second command below, sets the former rule's cap with --epochs 30.)
The gap closed is reported beside them, not used to choose (a stopping rule is a convergence
setting, not a knob to tune for a metric). Needs two seeds or more (a CI).

    python scripts/patience_study.py --profile quick --seeds 0 1 2 3 4 --patience 2 5 \\
        --out results/quick/patience_study.csv
    python scripts/patience_study.py --profile paper --seeds 0 1 2 --patience 2 --epochs 30 --plateau-epochs 60 \\
        --device cuda --mps --workers 10 --out /tmp/out/patience_study.csv --curves /tmp/out/patience_study_curves.csv
    python scripts/patience_study.py --plot results/paper/patience_study_curves_h200_8f61a7b.csv \\
        --figure figures/paper/patience_study_curves.png
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
from oneranker.realdata import change_up_to_best, last_epochs_change
from oneranker.reference import REFERENCES
from oneranker.study import Study

MODELS = {"OneRanker": {}, "Step-1 generator": dict(baselines.HSTU)}
SERVED = {"OneRanker": "ranked", "Step-1 generator": "generated"}   # the list each model serves


def variant_name(model: str, rule: str) -> str:
    return f"{model}, {rule}"


def patience_rule(patience: int) -> str:
    return f"patience {patience}"


def plateau_rule(patience: int) -> str:
    return f"plateau, patience {patience}"


def rule_patience(rule: str) -> int:
    """The patience in a rule's name, read back in this one place (the names are written by
    :func:`patience_rule` and :func:`plateau_rule`; the rows keep only the name)."""
    for name in (plateau_rule, patience_rule):          # the longer prefix first
        prefix = name(0)[:-1]
        if rule.startswith(prefix) and rule[len(prefix):].isdigit():
            return int(rule[len(prefix):])
    raise ValueError(f"not a rule's name: {rule!r} (expected {patience_rule(2)!r} or {plateau_rule(2)!r})")


def rules(patiences: list[int], epochs: int | None = None, plateau_epochs: int | None = None) -> dict[str, dict]:
    """Each rule's train overrides, the reference (the first patience) first: a patience on the
    cosine schedule (pinned: the paper profile's own is the plateau one since it was adopted), its
    cap ``epochs`` if given (its cosine decay ends there too), else the profile's; with
    ``plateau_epochs``, the plateau schedule at the reference patience under that cap."""
    out = {patience_rule(p): {"train.lr_schedule": "cosine", "train.patience": p,
                              **({} if epochs is None else {"train.epochs": epochs})} for p in patiences}
    if plateau_epochs is not None:
        out[plateau_rule(patiences[0])] = {"train.lr_schedule": "plateau", "train.patience": patiences[0],
                                           "train.epochs": plateau_epochs}
    return out


def overrides(model: str, rule: dict) -> dict:
    """One model's config overrides under a rule (a value of :func:`rules`)."""
    return {**MODELS[model], **rule}


def variants(rule_set: dict[str, dict]) -> dict[str, dict]:
    """Each model under each rule, as a study's variants (:func:`overrides`)."""
    return {variant_name(m, name): overrides(m, rule) for name, rule in rule_set.items() for m in MODELS}


def curves_summary(study: Study, model: str, name: str, rule: dict) -> pd.DataFrame:
    """Per seed: epochs trained, best epoch and what ended the run (:func:`tables.stopping_summary`
    over the cached models' learning curves, against the cap they ran under), with the best
    epoch's validation loss, the loss's change over the last five epochs (None for a run of five
    or fewer) and the training seconds (the epochs' wall times: what the rule costs)."""
    run = overrides(model, rule)
    curves = study.learning_curves(run).assign(variant=model)
    cap = study.configs(run, study.seeds[0])[0].train.epochs
    stops = tables.stopping_summary(curves, cap).reset_index()
    per_seed = curves.groupby("seed").agg(**{
        "best valid loss": ("valid_loss", "min"),
        "last 5 epochs": ("valid_loss", lambda v: last_epochs_change(v.to_numpy())),
        "train seconds": ("seconds", "sum")}).reset_index()
    return (stops.merge(per_seed, on="seed")
            .assign(model=model, rule=name, cap=cap,
                    **{"stopped early": lambda t: t["ended by"] == "early stopping"})
            [["model", "rule", "seed", "cap", "epochs", "best epoch", "stopped early", "last 5 epochs",
              "best valid loss", "train seconds"]])


def change_before_best(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, rule, seed) of a ``--curves`` table: the validation loss's relative change over
    the five epochs up to the run's best epoch (None for a best within the first five). Unlike the
    change over a run's last five epochs, which a stopping rule pulls towards zero (it stops after
    epochs without a new best), this asks whether the curve had flattened where its weights were
    kept."""
    rows = []
    for (model, rule, seed), g in curves.groupby(["model", "rule", "seed"], sort=False):
        rows.append({"model": model, "rule": rule, "seed": seed,
                     "5 epochs before the best": change_up_to_best(g.sort_values("epoch")["valid_loss"].to_numpy())})
    return pd.DataFrame(rows)


def with_rules(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows written before rules had names (the quick study: a ``patience`` column) named by it."""
    return rows if "rule" in rows else rows.assign(rule=rows["patience"].map(patience_rule))


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95% CI over seeds of each (model, rule)'s columns; what a row lacks is left out."""
    rows = with_rules(rows)
    out = []
    for (model, rule), g in rows.groupby(["model", "rule"], sort=False):
        row = {"model": model, "rule": rule, "seeds": len(g)}
        for col, fmt in (("epochs", "{:.1f}"), ("best epoch", "{:.1f}"), ("last 5 epochs", "{:+.2%}"),
                         ("best valid loss", "{:.4f}"), ("train seconds", "{:.0f}"), ("HR@5", "{:.4f}"),
                         ("gap closed HR@5", "{:.1%}")):
            values = g[col].dropna().to_numpy(dtype=float) if col in g else np.array([])
            if len(values):   # a run of five epochs or fewer has no change over its last five
                mean, ci = mean_ci(values)
                row[col] = f"{fmt.format(mean)} ± {fmt.format(ci).lstrip('+')}"
            elif col in g:
                row[col] = "n/a"
        row["stopped early"] = f"{int(g['stopped early'].sum())} of {len(g)}"
        out.append(row)
    return pd.DataFrame(out)


def _verdict(reference: str, rule: str, mean: float, ci: float, same_schedule: bool) -> str:
    if np.isnan(ci):
        return "n/a (one seed: no CI)"
    if mean + ci < 0:
        return f"{reference} stops on noise" if same_schedule else f"{rule} ends lower"
    return "not separated" if mean - ci <= 0 else f"{rule} ends higher"


def paired(rows: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per model and rule other than ``reference``, paired by seed against it: the relative change
    of the best validation loss and the change of the gap closed (mean ± 95% CI), and the rule's
    verdict on the first. Of the patience rules only those larger than the reference's are compared."""
    rows = with_rules(rows)
    if reference not in set(rows["rule"]):
        raise ValueError(f"no runs under the reference rule {reference!r} (rules: {sorted(set(rows['rule']))})")
    ref_patience = rule_patience(reference)
    out = []
    for model, g in rows.groupby("model", sort=False):
        ref = g[g["rule"] == reference].set_index("seed")
        for rule, h in g[g["rule"] != reference].groupby("rule", sort=False):
            same_schedule = not rule.startswith("plateau")
            if same_schedule and rule_patience(rule) <= ref_patience:
                continue
            h = h.set_index("seed").loc[ref.index]
            loss = (h["best valid loss"] / ref["best valid loss"] - 1).to_numpy()
            gap = (h["gap closed HR@5"] - ref["gap closed HR@5"]).to_numpy()
            (lm, lc), (gm, gc) = mean_ci(loss), mean_ci(gap)
            out.append({"model": model, "rule": f"{rule} vs {reference}",
                        "best valid loss, relative change": f"{lm:+.2%} ± {lc:.2%}",
                        "lower on seeds": f"{int((loss < 0).sum())} of {len(loss)}",
                        "gap closed HR@5, change": f"{100 * gm:+.1f} ± {100 * gc:.1f} points",
                        "rule's verdict": _verdict(reference, rule, lm, lc, same_schedule)})
    return pd.DataFrame(out)


def plateau_adopted(rows: pd.DataFrame, reference: str) -> str | None:
    """The rule stated before the runs, for the plateau schedule: adopted when every plateau run
    ended by its stopping rule before its cap and no model's best validation loss is higher than
    under the reference (None without plateau runs)."""
    rows = with_rules(rows)
    plateau = rows[rows["rule"].str.startswith("plateau")]
    if plateau.empty:
        return None
    # ended by its rule before its cap: a stop that fires at the cap's epoch counts as the cap's
    capped = int((~plateau["stopped early"].astype(bool) | (plateau["epochs"] >= plateau["cap"])).sum())
    compared = paired(rows, reference)
    higher = compared[compared["rule"].str.startswith("plateau")
                      & compared["rule's verdict"].str.endswith("ends higher")]
    if capped or not higher.empty:
        why = ([f"{capped} of {len(plateau)} plateau runs reached their cap"] if capped else []) + \
              [f"{m}: {v}" for m, v in zip(higher["model"], higher["rule's verdict"])]
        return "plateau schedule not adopted: " + "; ".join(why)
    return (f"plateau schedule adopted: all {len(plateau)} plateau runs ended by its rule before the cap, and no "
            f"model's best validation loss ends higher (paired by seed)")


def plot(curves_csv: Path, figure: Path) -> None:
    """Every run's learning curve of a study (``--curves``' CSV), one panel per model and rule
    (:func:`oneranker.plots.learning_curves`), written to ``figure``."""
    from oneranker.plots import learning_curves

    curves = pd.read_csv(curves_csv)
    fig = learning_curves(curves.assign(variant=curves["model"] + ", " + curves["rule"]))
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110, bbox_inches="tight")
    print(f"wrote {figure}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--patience", type=int, nargs="+", default=[2, 5],
                    help="patiences to compare on the profile's schedule; the first is the reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--workers", type=int, default=None, help="training processes (default: the package's)")
    ap.add_argument("--mps", action="store_true",
                    help="train under CUDA's Multi-Process Service (oneranker.pool.mps), as the paper notebooks do")
    ap.add_argument("--epochs", type=int, default=None,
                    help="the patience rules' cap of epochs (train.epochs; default: the profile's). At the paper "
                         "profile 30 is reached by runs still improving (docs/paper_profile.md, 'Trained to convergence?')")
    ap.add_argument("--plateau-epochs", type=int, default=None,
                    help="also train every model under the plateau schedule (train.lr_schedule='plateau') at the "
                         "reference patience, with this cap of epochs")
    ap.add_argument("--out", default=None, help="CSV of the per-seed rows")
    ap.add_argument("--curves", default=None, help="CSV of every run's learning curve (per epoch: train and "
                                                   "validation loss, seconds), for the figure")
    ap.add_argument("--plot", type=Path, default=None, metavar="CURVES_CSV",
                    help="train nothing: draw the learning curves of a --curves CSV into --figure")
    ap.add_argument("--figure", type=Path, default=None, help="the PNG that --plot writes")
    args = ap.parse_args()
    if args.plot is not None or args.figure is not None:
        if args.plot is None or args.figure is None:
            ap.error("--plot and --figure go together")
        if not args.plot.is_file():
            ap.error(f"--plot {args.plot}: no such file")
        return plot(args.plot, args.figure)
    if min(args.patience) < 0 or len(set(args.patience)) != len(args.patience):
        ap.error(f"--patience needs distinct values >= 0, got {args.patience}")
    if len(args.patience) + (args.plateau_epochs is not None) < 2:
        ap.error(f"two or more rules to compare: --patience needs two or more distinct values, or one with "
                 f"--plateau-epochs, got {args.patience}")
    if args.patience[0] != min(args.patience):
        ap.error(f"--patience: the first value is the reference and must be the smallest, got {args.patience}")
    if len(set(args.seeds)) < 2:
        ap.error(f"--seeds needs two or more seeds (a CI over seeds), got {args.seeds}")
    for flag, value in (("--epochs", args.epochs), ("--plateau-epochs", args.plateau_epochs)):
        if value is not None and value < 1:
            ap.error(f"{flag} must be at least 1, got {value}")
    if args.mps:
        try:
            check_mps(args.device)
        except (ValueError, FileNotFoundError) as e:
            ap.error(str(e))
    t0 = time.time()
    rule_set = rules(args.patience, args.epochs, args.plateau_epochs)
    reference = patience_rule(args.patience[0])
    study = Study(args.profile, tuple(args.seeds), args.cache, args.device, workers=args.workers)
    with mps(args.mps):
        # the plateau runs are the longest: the pool starts them first, so it does not end waiting on one
        ordered = dict(sorted(variants(rule_set).items(), key=lambda kv: kv[1].get("train.lr_schedule") != "plateau"))
        res = tables.with_gap_closed(study.grid(ordered))
    served = pd.concat([res[(res["variant"] == variant_name(m, name)) & (res["list"] == SERVED[m])]
                        .assign(model=m, rule=name) for name in rule_set for m in MODELS])
    curves = pd.concat([curves_summary(study, m, name, rule) for name, rule in rule_set.items() for m in MODELS])
    rows = served[["model", "rule", "seed", "HR@5", "gap closed HR@5"]].merge(curves, on=["model", "rule", "seed"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
    if args.curves:
        Path(args.curves).parent.mkdir(parents=True, exist_ok=True)
        pd.concat([study.learning_curves(overrides(m, rule)).assign(model=m, rule=name)
                   for name, rule in rule_set.items() for m in MODELS]).to_csv(args.curves, index=False)
    pd.set_option("display.width", 240)
    cap = f"cap {args.epochs} epochs" if args.epochs else "the profile's cap of epochs"
    print(f"# {args.profile} profile, seeds {args.seeds}, patience rules at {cap}, {time.time() - t0:.0f} s; "
          "served list: " + ", ".join(f"{m} {SERVED[m]}" for m in MODELS))
    print(summary(rows).to_string(index=False))
    # the scale: the reference lists of the same datasets and test requests
    refs = res[res["variant"].isin(REFERENCES)].drop_duplicates(["variant", "seed"])
    print("\nreferences (mean ± 95% CI over seeds):")
    print(tables.summarise(refs, ["HR@5", "gap closed HR@5"], by=("variant",)).to_string())
    print()
    print(paired(rows, reference).to_string(index=False), flush=True)
    adopted = plateau_adopted(rows, reference)
    if adopted:
        print(f"\n{adopted}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
