"""Render the tables and verdict lines of the README and its docs/ pages from the committed result files.

The README and the pages of docs/ quote numbers only inside blocks marked ``<!-- BEGIN rendered: NAME -->`` ...
``<!-- END rendered: NAME -->``; this script rewrites each block from ``results/`` (the CSVs the
notebooks and scripts write), so the prose around them can never drift from the outputs.
``--check`` only compares (``tests/test_project.py`` runs it): it fails when a block differs
from what the files give, i.e. when results changed and the README was not re-rendered.

    python scripts/render_readme.py            # rewrite the blocks in place
    python scripts/render_readme.py --check    # exit 1 and name the stale blocks
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchmark_table  # noqa: E402  (scripts/, beside this file)
import paper_histories  # noqa: E402
import patience_study  # noqa: E402
from oneranker import paper, realdata, reference, tables  # noqa: E402
from oneranker.cache import atomic_write_text  # noqa: E402
from oneranker.config import make_config  # noqa: E402
from oneranker.metrics import mean_ci  # noqa: E402

QUICK = ROOT / "results" / "quick"
BLOCK = re.compile(r"(<!-- BEGIN rendered: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END rendered: (?P=name) -->)", re.S)


def markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    """A pipe table of the frame's cells as they are (strings are written unchanged)."""
    df = df.reset_index() if index else df
    cells = [[str(c) for c in df.columns]] + [["" if pd.isna(v) else str(v) for v in row] for row in df.values]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * len(df.columns))
    return "\n".join(lines) + "\n"


def _pm(values, digits: int = 4, percent: bool = False) -> str:
    mean, ci = mean_ci(values)
    if percent:
        return f"{100 * mean:.1f}% ± {100 * ci:.1f}%"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


# --- blocks --------------------------------------------------------------------------------
# scripts/learnability.py's setting names: those of the committed runs (made while today's
# defaults were still called "learnable") and those the script writes now.
OLD_NAMES = {"defaults": "before (41c59d2's defaults)", "learnable": "the learnability defaults"}
NEW_NAMES = {"before learnability": "before (41c59d2's defaults)", "defaults": "the learnability defaults"}


def _setting_label(setting: str, names: dict[str, str]) -> str:
    base, _, change = setting.partition(", ")
    return names[base] + (f", {change}" if change else "")


def learnability() -> str:
    """scripts/learnability.py's two H200 runs: the defaults before the learnability work and
    today's, every reference of their worlds, and each change taken back (run 1)."""
    rows = []
    for run, name in ((1, "learnability_h200.csv"), (2, "learnability_learnable_h200.csv")):
        res = pd.read_csv(QUICK / name)
        if run == 2:
            res = res[~res.variant.isin(reference.REFERENCES)]
        names = OLD_NAMES if "learnable" in set(res.setting) else NEW_NAMES
        for (setting, variant, lst), g in res.groupby(["setting", "variant", "list"], sort=False):
            label = _setting_label(setting, names)
            shown = {"generated": variant, "ranked": f"{variant} (served)"}[lst]
            if variant == "OneRanker" and lst == "generated":
                shown = "OneRanker (generated)"
            rows.append({"run": run, "setting": label, "list": shown, "HR@5": _pm(g["HR@5"]),
                         "gap closed": _pm(g["gap closed HR@5"], percent=True), "valueHR@5": _pm(g["valueHR@5"]),
                         "epochs": f"{g['epochs'].mean():.1f}" if g["epochs"].notna().any() else ""})
    return markdown_table(pd.DataFrame(rows), index=False)


def real_data() -> str:
    """MovieLens-100k over 5 seeds (scripts/real_data.py): realdata.summary, wall times aside."""
    res = pd.read_csv(QUICK / "real_ml100k_5seeds.csv")
    table = realdata.summary(res).drop(columns=["seeds"]).rename(columns={"train s": "train s (one core each)"})
    return markdown_table(table.rename_axis("list"))


def real_data_verdicts() -> str:
    res = pd.read_csv(QUICK / "real_ml100k_5seeds.csv")
    lines = realdata.verdicts(res, at_least=[("Step-1 generator", "SASRec-style"), ("OneRanker", "Step-1 generator")],
                              models=["SASRec-style", "Step-1 generator"])
    return "\n".join(lines) + "\n"


def _csv(name: str, directory: Path = QUICK) -> pd.DataFrame:
    return pd.read_csv(directory / f"{name}.csv", index_col=0, keep_default_na=False)


def table2() -> str:
    """Notebook 05: the paper's Table 2 on served lists, with the references, the gap closed,
    each row minus the full model (absolute and relative) and the paper's own differences, and each
    row minus the non-learned co-occurrence list (has it learned more than item-to-item counts?)."""
    t, d, r = _csv("05_table2"), _csv("05_table2_vs_full"), _csv("05_table2_vs_full_relative")
    cooc = _csv("05_table2_vs_cooccurrence")
    out = pd.DataFrame({"HR@5": t["HR@5"], "gap closed HR@5 (%)": t["gap closed HR@5 (%)"],
                        "valueHR@5": t["valueHR@5"], "ecpmNDCG@5": t["ecpmNDCG@5"]})
    out["HR@5 − full"] = d["HR@5"].reindex(out.index).fillna("")
    out["relative to full"] = r["HR@5"].reindex(out.index).fillna("")
    out["paper: relative to full"] = r["paper HR@5"].reindex(out.index).fillna("")
    out["HR@5 − co-occurrence"] = cooc["HR@5"].reindex(out.index).fillna("")
    out["verdict"] = [tables.verdict(*tables.parse_mean_ci(d.loc[v, "HR@5"]), float(d.loc[v, "paper HR@5"]))
                      if v in d.index else "" for v in out.index]
    return markdown_table(out.rename_axis("served list"))


def table3(directory: Path = QUICK) -> str:
    """Notebook 02: the Step-2 attention designs against the paper's design, paired by seed."""
    d = _csv("02_table3_paired", directory)
    design = paper.TABLE3_HR5["Step 2 only (paper design)"]
    lines = []
    for variant in d.index:
        mean, ci = tables.parse_mean_ci(d.loc[variant, "HR@5"])
        theirs = paper.TABLE3_HR5[variant] - design
        lines.append(f"- {variant}: HR@5 {mean:+.4f} ± {ci:.4f} (paper {theirs:+.4f}): "
                     f"{tables.verdict(mean, ci, theirs)}.")
    return "\n".join(lines) + "\n"


def headroom() -> str:
    """Notebook 01: the headroom criteria for the default market and the one before it."""
    return markdown_table(_csv("01_headroom").rename_axis("5 seeds, no model"))


def stopping() -> str:
    """Notebook 04: epochs trained per variant (3 seeds), and what ended each run."""
    st = pd.read_csv(QUICK / "04_stopping.csv")
    rows = {v: {"epochs (min-max)": f"{g['epochs'].min()}-{g['epochs'].max()}",
                "best epoch (min-max)": f"{g['best epoch'].min()}-{g['best epoch'].max()}",
                "ended by early stopping": f"{(g['ended by'] == 'early stopping').sum()} of {len(g)}"}
            for v, g in st.groupby("variant", sort=False)}
    return markdown_table(pd.DataFrame.from_dict(rows, orient="index").rename_axis("model (quick)"))


def patience_study_block() -> str:
    """scripts/patience_study.py at the quick profile: the full model and the Step-1 generator
    trained with today's patience and a larger one, per model and patience, and paired by seed
    against today's patience with the rule the script states before its runs."""
    rows = patience_study.with_rules(pd.read_csv(QUICK / "patience_study.csv"))
    reference = patience_study.patience_rule(int(rows["patience"].min()))   # the script's: its smallest patience
    return (markdown_table(patience_study.summary(rows), index=False).rstrip("\n") + "\n\n"
            + _study_scale(QUICK / "06_table1_hr.csv") + "\n\n"
            + markdown_table(patience_study.paired(rows, reference), index=False).rstrip("\n") + "\n")


def paper_patience_study() -> str:
    """scripts/patience_study.py at the paper profile on one H200: the full model and the Step-1
    generator under the former rule (cosine decay to a 30-epoch cap, patience 2) and the plateau
    schedule (cap 60), per model and rule, paired by seed, and the rule's verdict on the plateau
    schedule stated before the runs."""
    rows = _paper_study_rows()
    reference = next(r for r in rows["rule"] if not r.startswith("plateau"))   # the script writes it first
    return (f"`{_shown(PAPER_STUDY)}` (and its `.txt`, the run's output):\n\n"
            + markdown_table(patience_study.summary(rows), index=False).rstrip("\n") + "\n\n"
            + _study_scale(ROOT / "results" / "paper" / "06_table1_hr.csv") + "\n\n"
            + markdown_table(patience_study.paired(rows, reference), index=False).rstrip("\n") + "\n\n"
            + f"By the rule stated before the runs: {patience_study.plateau_adopted(rows, reference)}.\n\n"
            + _rule_runs_line(rows, reference, patience_study.change_before_best(pd.read_csv(PAPER_CURVES))))


def _rule_runs_line(rows: pd.DataFrame, reference: str, before_best: pd.DataFrame) -> str:
    """Per rule of a patience study: how its runs ended, how far before its last epoch the best
    came, how much the validation loss moved over the last five epochs and over the five up to the
    best (``before_best``: :func:`patience_study.change_before_best`); the epochs' ratio."""
    def pct(v: float) -> str:
        return f"{100 * v:+.2f}%"

    def spread(values: pd.Series) -> str:
        return f"{pct(values.min())} to {pct(values.max())} (median {pct(values.median())})"

    parts = []
    for rule, g in rows.groupby("rule", sort=False):
        ended = int(g["stopped early"].astype(bool).sum())
        before = (g["epochs"] - g["best epoch"]).astype(int)
        up_to_best = before_best.loc[before_best["rule"] == rule, "5 epochs before the best"].astype(float)
        parts.append(f"{rule}: {ended} of {len(g)} runs ended by early stopping, after {g['epochs'].min()}–"
                     f"{g['epochs'].max()} epochs, the best {before.min()}–{before.max()} epochs before the last; "
                     f"the validation loss's change over the last five epochs {spread(g['last 5 epochs'].astype(float))}, "
                     f"over the five epochs up to the best {spread(up_to_best)}")
    ratio = " ".join(f"The runs of {r} took {now / then:.2f}× the epochs of {reference}'s ({now:.1f} against "
                     f"{then:.1f} on average)." for r, (now, then) in _epoch_ratios(rows, reference).items())
    return "- " + ".\n- ".join(parts) + "." + ("\n\n" + ratio if ratio else "") + "\n"


def _epoch_ratios(rows: pd.DataFrame, reference: str) -> dict[str, tuple[float, float]]:
    """Per plateau rule of a patience study: (its runs' mean epochs, the reference rule's)."""
    then = rows.loc[rows["rule"] == reference, "epochs"].mean()
    return {r: (g["epochs"].mean(), then) for r, g in rows.groupby("rule", sort=False) if r.startswith("plateau")}


def paper_curves() -> str:
    """results/paper/learning_curves_h200.log: one seed of the paper profile on an H200."""
    text = (ROOT / "results" / "paper" / "learning_curves_h200.log").read_text()
    rows = []
    for part in re.split(r"\n(?=\S.*\(config )", text)[1:]:
        head, _, rest = part.partition("\n")
        curve = pd.read_csv(__import__("io").StringIO("\n".join(l for l in rest.splitlines() if re.match(r"^(epoch|\d)", l))))
        gen = re.search(r"generated HR@5 ([\d.]+)", rest).group(1)
        ranked = re.search(r"ranked +HR@5 ([\d.]+)", rest)
        rows.append({"model (paper, seed 0)": head.split(" (config")[0], "epochs": str(len(curve)),
                     "ended by": "early stopping" if "stopped early" in head else "the 30-epoch cap",
                     "valid loss, epoch 1 → best": f"{curve.valid_loss.iloc[0]:.2f} → {curve.valid_loss.min():.2f}",
                     "s per epoch (median)": f"{curve.seconds.median():.1f}",
                     "HR@5 generated": gen, "HR@5 served": ranked.group(1) if ranked else ""})
    # the scale: the reference lists of the same paper-profile market (3-seed means, no model;
    # results/paper/headroom_3seeds.log, the affinity-8 world that is today's default)
    log = (ROOT / "results" / "paper" / "headroom_3seeds.log").read_text().splitlines()
    refs = __import__("ast").literal_eval(log[log.index("{'world.affinity_weight': 8.0}") + 1].split(" gap/ci")[0].strip())
    pop, oracle = refs["popularity HR@5"], refs["interest oracle HR@5"]
    for name in ("random", "popularity", "co-occurrence", "interest oracle"):
        rows.append({"model (paper, seed 0)": f"{name} (reference, 3-seed mean)",
                     "HR@5 generated": f"{refs[name + ' HR@5']:.4f}"})
    table = pd.DataFrame(rows).fillna("")
    closed = lambda v: f"{100 * (float(v) - pop) / (oracle - pop):.0f}%" if v else ""  # noqa: E731
    table["gap closed (served, vs 3-seed references)"] = [
        closed(r["HR@5 served"] or r["HR@5 generated"]) for _, r in table.iterrows()]
    return markdown_table(table, index=False)


def _gap(value: float, refs: dict) -> float:
    """Share of the popularity -> interest-oracle HR@5 gap that ``value`` closes, against a
    probe record's references (``refs``: list name -> HR@5 of the same requests)."""
    return (value - refs["popularity"]) / (refs["interest oracle"] - refs["popularity"])


def _gap_percent(value: float, refs: dict) -> str:
    """:func:`_gap` as a whole percentage (never "-0%")."""
    return f"{round(100 * _gap(value, refs)) + 0:.0f}%"


PAPER_STUDY = ROOT / "results" / "paper" / "patience_study_h200_8f61a7b.csv"   # the newest paper patience study
PAPER_CURVES = ROOT / "results" / "paper" / "patience_study_curves_h200_8f61a7b.csv"   # its learning curves


def _study_scale(table1: Path) -> str:
    """The scale of a patience study's HR@5: the reference lists of the same worlds and test
    requests (the profile's default world at the study's seeds), as notebook 06's Table 1 at that
    profile reports them (the study's committed rows hold the models only)."""
    table = pd.read_csv(table1, index_col=0)
    refs = ", ".join(f"{name} {table.loc[name, 'HR@5']}" for name in reference.REFERENCES[:4])
    return (f"The scale, HR@5 on the same worlds and test requests (notebook 06's Table 1, "
            f"`{_shown(table1)}`): {refs}; the gap closed is each seed's share of its own "
            f"popularity → interest-oracle gap.")


def _paper_study_rows() -> pd.DataFrame:
    """The paper patience study's per-seed rows, each named by its rule."""
    return patience_study.with_rules(pd.read_csv(PAPER_STUDY))


def _paper_series() -> tuple[int, int, str]:
    """The paper series' model configs (notebooks 02-06, 3 seeds), the epochs a run of the paper
    profile's rule takes and what they are: the mean of the paper patience study's runs under it
    (rounded up), or the profile's cap while that study has no run of the rule."""
    from oneranker import studies

    tc = make_config("paper").train
    configs = len(studies.all_configs("paper", [0, 1, 2]))
    if tc.lr_schedule == "plateau" and PAPER_STUDY.exists():
        runs = _paper_study_rows()
        runs = runs[runs["rule"] == patience_study.plateau_rule(tc.patience)]
        if len(runs):
            return (configs, math.ceil(runs["epochs"].mean()),
                    f"the mean of the paper patience study's {len(runs)} plateau runs; the cap is {tc.epochs}")
    return configs, tc.epochs, "the cap"


def paper_arithmetic() -> str:
    """The paper series' training time at probe run 4's pace: its models' median seconds per
    epoch (epoch 1, with compilation, left out) over the number of models sharing the GPU,
    times the notebooks' paper configs (3 seeds) and the paper profile's epoch cap."""
    recs = _probe_records(PROBE_RUNS[3])
    epochs = [r for r in recs if "epoch" in r and r["epoch"] > 1]
    n_models = len({r["variant"] for r in epochs})
    per_epoch = pd.Series([r["seconds"] for r in epochs]).median()
    per_model = per_epoch / n_models
    configs, cap, epochs_are = _paper_series()
    hours = configs * cap * per_model / 3600
    return (f"{n_models} models sharing the H200 took {per_epoch:.1f} s per epoch each (run 4, median), "
            f"{per_model:.1f} s per model-epoch, so the {configs} configs at {cap} epochs ({epochs_are}) would "
            f"take about {configs} × {cap} × {per_model:.1f} s ≈ {hours:.1f} hours.\n")


PROBE_RUNS = tuple(f"learning_probes_h200_run{i}" for i in range(1, 6))


def _probe_records(run: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "results" / "paper" / f"{run}.jsonl").read_text().splitlines()]


def _gpu_busy(run: str) -> str:
    """Mean nvidia-smi utilisation over the samples taken while the models held GPU memory."""
    smi = pd.read_csv(ROOT / "results" / "paper" / f"{run}_nvidia_smi.csv", skipinitialspace=True)
    util = smi.iloc[:, 1].str.rstrip(" %").astype(float)
    loaded = smi.iloc[:, 2].str.rstrip(" MiB").astype(float) > 1000
    return f"{util[loaded].mean():.0f}%"


def _batch_wait(record: dict) -> float:
    """Seconds an epoch's steps waited for their batches: runs 1-2 built each batch in the step
    (``batch_build_s``: collation and copy, all of it waited for); later runs collate the next
    batch in a thread while the step computes (``wait_s``: what was still waited for)."""
    return record["wait_s"] if "wait_s" in record else record["batch_build_s"]


def paper_probes() -> str:
    """scripts/paper_learning.py on one H200 (seed 0 of the paper profile, four models at once
    per run, early stopping off, each run cut at its wall limit): how far each variant learned,
    against the references of the same requests (gap closed by the served list where the
    model has a ranker, else by the generated one)."""
    rows = []
    for i, run in enumerate(PROBE_RUNS, 1):
        recs = _probe_records(run)
        refs = recs[0]["references HR@5"]
        closed = lambda v: _gap_percent(v, refs)  # noqa: E731
        busy = _gpu_busy(run)
        epochs = [r for r in recs if "epoch" in r]
        for name in dict.fromkeys(r["variant"] for r in epochs):
            curve = [r for r in epochs if r["variant"] == name]
            scored = [r for r in curve if "HR@5 generated" in r]
            last, at12 = scored[-1], next((r for r in scored if r["epoch"] == 12), None)
            shown = lambda r: r.get("HR@5 ranked", r["HR@5 generated"])  # noqa: E731
            later = curve[1:]       # epoch 1 includes compilation
            rows.append({"run": i, "variant (paper, seed 0)": name, "epochs": str(len(curve)),
                         "s per epoch (median)": f"{pd.Series([r['seconds'] for r in later]).median():.1f}",
                         "steps waiting for batches (share of epoch)":
                             f"{sum(_batch_wait(r) for r in later) / sum(r['seconds'] for r in later):.0%}",
                         "gap closed, epoch 12": closed(shown(at12)) if at12 else "",
                         "HR@5 generated, last epoch": f"{last['HR@5 generated']:.4f}",
                         "HR@5 served, last epoch": f"{last['HR@5 ranked']:.4f}" if "HR@5 ranked" in last else "",
                         "gap closed, last epoch": closed(shown(last)), "GPU busy (run)": busy})
        for name in ("random", "popularity", "co-occurrence", "interest oracle"):
            rows.append({"run": i, "variant (paper, seed 0)": f"{name} (reference)",
                         "HR@5 generated, last epoch": f"{refs[name]:.4f}", "gap closed, last epoch": closed(refs[name])})
    return markdown_table(pd.DataFrame(rows).fillna(""), index=False) + _probe_profile_line()


SEEDS_RUN = "learning_probes_h200_run6"


def paper_seeds() -> str:
    """Run 6 (scripts/paper_learning.py, one process per seed, three models sharing the H200,
    early stopping off, cut at the wall limit): the full model under today's defaults on seeds
    0-2 of the paper profile, the share of each seed's popularity -> oracle gap that its
    served and generated lists close at every scored epoch, beside that seed's co-occurrence."""
    recs = _probe_records(SEEDS_RUN)
    refs = {r["seed"]: r["references HR@5"] for r in recs if "references HR@5" in r}
    rows = []
    for seed in sorted(refs):
        scored = [r for r in recs if r["seed"] == seed and "epoch" in r and "HR@5 generated" in r]
        curve = [r for r in recs if r["seed"] == seed and "epoch" in r]
        final = next(r for r in recs if r["seed"] == seed and r.get("final"))
        row = {"seed": str(seed),
               "epochs": f"{final['epochs']}" + (" (cut by the wall limit)" if final["cut_by_wall_limit"] else ""),
               "best validation epoch": str(final["best_epoch"]),
               "validation loss, epoch 1 → last": f"{curve[0]['valid_loss']:.2f} → {curve[-1]['valid_loss']:.2f}"}
        row |= {f"served, epoch {r['epoch']}": _gap_percent(r["HR@5 ranked"], refs[seed]) for r in scored}
        row |= {"generated, last": _gap_percent(scored[-1]["HR@5 generated"], refs[seed]),
                "co-occurrence": _gap_percent(refs[seed]["co-occurrence"], refs[seed]),
                "popularity HR@5": f"{refs[seed]['popularity']:.4f}",
                "oracle HR@5": f"{refs[seed]['interest oracle']:.4f}"}
        rows.append(row)
    median = pd.Series([r["seconds"] for r in recs if "epoch" in r and r["epoch"] > 1]).median()
    return (markdown_table(pd.DataFrame(rows).fillna(""), index=False)
            + f"\nGap closed (%, each seed's own popularity → interest-oracle gap on its 1,000 test requests); "
              f"{median:.1f} s per epoch per model (median, {len(rows)} models at once); GPU busy {_gpu_busy(SEEDS_RUN)} "
              f"(nvidia-smi every 2 s while the models held memory).\n")


LR_RUNS = ("learning_probes_h200_run7", "learning_probes_h200_run8", "learning_probes_h200_run8_apart")
TODAY_PREFIX = "today's defaults, "


def _variant_curves(run: str) -> pd.DataFrame:
    """One row per (variant, seed) of a probe run: its epochs and how they ended, its validation
    loss from the first epoch to the last, the share of the seed's popularity -> oracle gap its
    served list closes at every regularly scored epoch and at the end (the best epoch's
    weights, restored, where the run ended itself), its generated list there, and co-occurrence. A process still finishing its last epoch when the records
    were collected has no final record; its row says so."""
    recs = _probe_records(run)
    refs = {r["seed"]: r["references HR@5"] for r in recs if "references HR@5" in r}
    keys = dict.fromkeys((r["variant"], r["seed"]) for r in recs if "epoch" in r)
    every = next((r["eval_every"] for r in recs if "eval_every" in r),        # recorded since run 8's script
                 min((r["epoch"] for r in recs if "epoch" in r and "HR@5 ranked" in r), default=1))
    rows = []
    for variant, seed in keys:
        mine = [r for r in recs if r.get("variant") == variant and r["seed"] == seed]
        curve = [r for r in mine if "epoch" in r]
        scored = [r for r in curve if "HR@5 ranked" in r]
        final = next((r for r in mine if r.get("final")), None)
        if not scored:
            rows.append({"variant": variant.removeprefix(TODAY_PREFIX), "seed": str(seed),
                         "epochs": f"{curve[-1]['epoch']} (never scored)"})
            continue
        if final is None:
            stop = "cut by the wall limit; not yet scored" if any("cut_by_wall_limit_after_epoch" in r for r in mine) \
                else "still running when collected"
            ended = f"{curve[-1]['epoch']} ({stop})"
        else:
            stop = "cut by the wall limit" if final["cut_by_wall_limit"] else \
                "stopped early" if final["stopped_early"] else "the cap"
            ended = f"{final['epochs']} ({stop}; best {final['best_epoch']})"
        row = {"variant": variant.removeprefix(TODAY_PREFIX), "seed": str(seed), "epochs": ended,
               "validation loss, epoch 1 → last": f"{curve[0]['valid_loss']:.2f} → {curve[-1]['valid_loss']:.2f}"}
        row |= {f"served, epoch {r['epoch']}": _gap_percent(r["HR@5 ranked"], refs[seed])
                for r in scored if r["epoch"] % every == 0}
        # the final score is of the best epoch's weights (restored), else of the last scored epoch
        last = final if final is not None else scored[-1]
        epoch = final["best_epoch"] if final is not None else scored[-1]["epoch"]
        row |= {"served, final (weights of epoch)": f"{_gap_percent(last['HR@5 ranked'], refs[seed])} ({epoch})",
                "generated, final": _gap_percent(last["HR@5 generated"], refs[seed]),
                "co-occurrence": _gap_percent(refs[seed]["co-occurrence"], refs[seed])}
        rows.append(row)
    df = pd.DataFrame(rows).sort_values(["variant", "seed"], kind="stable")
    served = sorted((c for c in df.columns if c.startswith("served, epoch")), key=lambda c: int(c.rsplit(" ", 1)[1]))
    rest = [c for c in df.columns if c not in served and c not in ("variant", "seed", "epochs",
                                                                       "validation loss, epoch 1 → last")]
    return df[["variant", "seed", "epochs", "validation loss, epoch 1 → last", *served, *rest]]


def _run8_pace() -> tuple[int, float]:
    """Run 8's models sharing the GPU (its two files' models all trained at once) and the
    median seconds of one model's epoch over their number (epoch 1, compilation, left out)."""
    sharing = len({(r["seed"], r["variant"]) for run in LR_RUNS[1:] for r in _probe_records(run) if "epoch" in r})
    per_model = pd.Series([r["seconds"] for run in LR_RUNS[1:] for r in _probe_records(run)
                           if r.get("epoch", 1) > 1]).median() / sharing
    return sharing, per_model


def paper_lr_warmup() -> str:
    """Runs 7 and 8 (scripts/paper_learning.py on the H200): the paper-sized model under today's
    defaults with a lower peak learning rate, a three-epoch warm-up, both, fp32 training, dense
    attention, or the CPU lab's quick size (run 7, seeds 1 and 2, early stopping off); then
    both together, the paper profile's defaults since, on seeds 0-2 under the profile's own
    stopping rule, and each alone on seed 1 (run 8)."""
    run7 = _variant_curves(LR_RUNS[0])
    run8 = pd.concat([_variant_curves(run) for run in LR_RUNS[1:]], ignore_index=True)
    runs = LR_RUNS[:2]
    epoch_s = {run: pd.Series([r["seconds"] for r in _probe_records(run) if r.get("epoch", 1) > 1]).median()
               for run in runs}
    sharing, per_model = _run8_pace()
    configs, cap, epochs_are = _paper_series()
    pace = (f" At run 8's pace ({per_model:.1f} s per model-epoch, {sharing} models sharing the GPU) the paper "
            f"series' {configs} models would train for about {configs} × E × {per_model:.1f} s: "
            f"{configs * 20 * per_model / 60:.0f} minutes at E = 20 epochs, {configs * cap * per_model / 60:.0f} "
            f"at {cap} epochs ({epochs_are}).\n")
    return (f"Run 7 ({len(run7)} models at once; early stopping off):\n\n" + markdown_table(run7.fillna(""), index=False)
            + f"\nRun 8 ({sharing} models at once; patience 2, cap 30):\n\n" + markdown_table(run8.fillna(""), index=False)
            + f"\nGap closed (%, each seed's own popularity → interest-oracle gap on its 1,000 test requests). "
              f"Median seconds per epoch per model: {epoch_s[LR_RUNS[0]]:.1f} in run 7 (GPU busy "
              f"{_gpu_busy(LR_RUNS[0])}), {epoch_s[LR_RUNS[1]]:.1f} in run 8 (GPU busy {_gpu_busy(LR_RUNS[1])}; "
              f"nvidia-smi every 2 s while the models held memory)." + pace)


THROUGHPUT_LINE = benchmark_table.THROUGHPUT_LINE


def paper_compile_throughput() -> str:
    """benchmarks/training_throughput.py on the H200, eager against train.compile='blocks'
    side by side in one run, alone and four models at once, as its result lines print them."""
    text = (ROOT / "results" / "paper" / "training_throughput_compile_h200.txt").read_text()
    rows = [{"contender": m["spec"], "models at once": m["models"], "step": m["mode"],
             "requests/s (all models)": f"{int(m['rps']):,}", "ms per step of one model": m["ms"],
             "× the first row": m["ratio"]}
            for m in map(THROUGHPUT_LINE.match, text.splitlines()) if m]
    return markdown_table(pd.DataFrame(rows), index=False)


STEP_LINE = re.compile(r"^\s*(?P<spec>\S+):\s+(?P<ms>[\d.]+) ms per step \(median of (?P<n>\d+).*?"
                       r"(?P<ratio>[\d.]+)x the first row's speed; GPU kernels (?P<kernel>[\d.]+) ms and "
                       r"(?P<kernels>\d+) kernels per step")


STEP_CALLS = ("training_step_h200.txt", "training_step_repeat_h200.txt")   # calls a and b


def _step_lines(name: str) -> list[dict]:
    text = (ROOT / "results" / "paper" / name).read_text()
    return [m.groupdict() for m in map(STEP_LINE.match, text.splitlines()) if m]


STEP_CONTENDERS = {"today": "today (tokens gathered in one lookup)", "select": "tokens looked up type by type (before)",
                   "sdpa": "Step 1 on cuDNN SDPA (dense mask)"}


def paper_step_contenders() -> str:
    """benchmarks/training_step.py on the H200: one paper-profile model's step, contender against
    contender in one process (two calls on one machine: batches 5-19 and 10-34 of seed 0's
    sequence), wall and GPU kernel time."""
    rows = []
    for call, name in zip("ab", STEP_CALLS):
        for m in _step_lines(name):
            label = STEP_CONTENDERS.get(m["spec"], m["spec"])
            if m["spec"].startswith("flex:"):
                label = f"FlexAttention `{m['spec'][5:]}`"
            rows.append({"call": call, "contender": label,
                         "wall ms per step (median)": m["ms"], "× the first row's speed": m["ratio"],
                         "GPU kernel ms per step": m["kernel"], "kernels per step": f"{int(m['kernels']):,}"})
    return markdown_table(pd.DataFrame(rows), index=False)


# The fused-kernel contenders measured alone after notebook 04's failed run (2026-12-03): call e the
# LayerNorm / embedding scopes, call f compiled blocks (benchmarks/training_step.py)
FUSION_CALLS = (("e", "step_layernorms_h200_4e2f4c4.txt"), ("f", "step_blocks_h200_4e2f4c4.txt"))
WARMUP_LINE = re.compile(r"^\s*(?P<spec>\S+): warmed up in\s+(?P<s>[\d.]+) s, (?P<graphs>\d+) graphs compiled")
DRIFT = re.compile(r"differ from today's by at most (?P<drift>[\d.e+-]+)")
FUSION_NAMES = {"today": "eager (today)", "today-again": "eager again (the GPU's own drift)",
                "layernorms-compiled-dynamic": "LayerNorms compiled",
                "embeddings-compiled-dynamic": "embedding lookups compiled",
                "norms-embeddings-compiled-dynamic": "LayerNorms and lookups compiled",
                "blocks-compiled-dynamic": "transformer blocks compiled"}


def _fusion_rows() -> list[dict]:
    """Each contender of the two fusion calls: its step, its kernel time against its call's eager
    row, its weights' distance from eager's after the same batches, and its warm-up."""
    rows = []
    for call, name in FUSION_CALLS:
        text = (ROOT / "results" / "paper" / name).read_text()
        warm = {m["spec"]: m for m in map(WARMUP_LINE.match, text.splitlines()) if m}
        lines = [(m.groupdict(), DRIFT.search(line)["drift"]) for line in text.splitlines()
                 if (m := STEP_LINE.match(line))]
        today = next(float(m["kernel"]) for m, _ in lines if m["spec"] == "today")
        for m, drift in lines:
            rows.append({"call": call, "contender": FUSION_NAMES.get(m["spec"], m["spec"]), "spec": m["spec"],
                         "wall ms per step (median)": m["ms"], "GPU kernel ms per step": m["kernel"],
                         "kernel time vs eager": f"{float(m['kernel']) / today - 1:+.0%}",
                         "kernels per step": f"{int(m['kernels']):,}",
                         "max weight distance from eager": drift,
                         "warm-up, s (graphs compiled)": f"{warm[m['spec']]['s']} ({warm[m['spec']]['graphs']})"})
    return rows


def paper_step_fusions() -> str:
    """The fused-kernel contenders on the H200, one model alone (calls e and f), and what they say."""
    rows = _fusion_rows()
    table = markdown_table(pd.DataFrame(rows).drop(columns="spec"), index=False)
    by = {r["spec"]: r for r in rows if r["spec"] != "today"}
    eager = by["today-again"]["max weight distance from eager"]
    within = [r["contender"] for r in by.values() if r["spec"] != "today-again"
              and float(r["max weight distance from eager"]) <= float(eager)]
    return (table + "\n\n"
            f"- Compiled transformer blocks: {by['blocks-compiled-dynamic']['kernel time vs eager']} GPU kernel time "
            f"per step, after a warm-up of {by['blocks-compiled-dynamic']['warm-up, s (graphs compiled)'].split()[0]} s; "
            f"LayerNorms and lookups: {by['norms-embeddings-compiled-dynamic']['kernel time vs eager']}, "
            f"LayerNorms alone {by['layernorms-compiled-dynamic']['kernel time vs eager']}.\n"
            f"- A second eager run's weights end {eager} from the first's after the same batches; within that: "
            f"{', '.join(within) if within else 'none'}; the others within "
            f"{max(float(r['max weight distance from eager']) for r in by.values()) / float(eager):.1f}× it.\n"
            "- A lone model's wall time does not fall: its host launches the kernels. What the kernel time sets is the "
            "pace of several models sharing the GPU under MPS; whether compiled blocks speed such a pool, their warm-up "
            "paid in every process, was measured after notebook 04 (\"Compiled blocks under MPS\" below).\n"
            "- A warm-up of 0 graphs reused the graphs of the contenders before it in the same process.\n")


# Deterministic CUDA training (reproduce --deterministic), measured by .device/paper.sh after a
# notebook: benchmarks/training_step.py --contenders today deterministic deterministic-again
# today-again, and the GPU test tests/test_train.py -k deterministic_run (collect.sh names them
# step_deterministic_h200_COMMIT.txt and gpu_tests_deterministic_h200_COMMIT.txt)
DETERMINISM_KERNEL_RATIO = 1.15     # the rule's bound on deterministic's GPU kernel time, set before measuring
DETERMINISM_FILE: str | None = None   # which measurement the rule reads, once there are several (the first)
AGAIN_LINE = re.compile(r"^\s*(?P<spec>\S+)-again: after the same batches its weights differ from (?P<base>\S+)'s "
                        r"by at most (?P<drift>[\d.e+-]+)")
DIGEST = re.compile(r"weights sha1 (?P<sha>[0-9a-f]+)")


def determinism_verdict(step_text: str, test_text: str, bound: float = DETERMINISM_KERNEL_RATIO) -> tuple[pd.DataFrame, str]:
    """The determinism measurement's table and what the rule of docs/paper_profile.md, set before it, decides:
    notebook 06 trains with --deterministic only if deterministic-again ends bit for bit where
    deterministic does (distance 0 and the same weights digest), the GPU test passed, and
    deterministic's GPU kernel time per step is at most ``bound`` x today's in the same call."""
    steps = {m["spec"]: (m, DIGEST.search(line)) for line in step_text.splitlines() if (m := STEP_LINE.match(line))}
    again = {m["spec"]: float(m["drift"]) for m in map(AGAIN_LINE.match, step_text.splitlines()) if m}
    missing = [s for s in ("today", "deterministic", "deterministic-again") if s not in steps]
    if missing:
        return pd.DataFrame(), (f"The measurement has no row for {', '.join(missing)}: the rule cannot decide, "
                                "so notebook 06 trains eager.")
    today = float(steps["today"][0]["kernel"])
    rows = [{"contender": spec, "wall ms per step (median)": m["ms"], "GPU kernel ms per step": m["kernel"],
             "kernel time vs today": f"{float(m['kernel']) / today:.2f}×",
             "weights digest": digest["sha"] if digest else "",
             "distance from its first run": f"{again[spec.removesuffix('-again')]:.2e}"
             if spec.endswith("-again") and spec.removesuffix("-again") in again else ""}
            for spec, (m, digest) in steps.items()]
    digests = [steps[s][1]["sha"] if steps[s][1] else None for s in ("deterministic", "deterministic-again")]
    repeats = again.get("deterministic") == 0.0 and digests[0] is not None and digests[0] == digests[1]
    summary = PYTEST_SUMMARY.findall(test_text)
    passed = bool(summary) and re.search(r"\b1 passed\b", summary[-1]) is not None \
        and not re.search(r"\b\d+ (failed|errors?)\b", summary[-1])
    ratio = float(steps["deterministic"][0]["kernel"]) / today
    said = f" (its summary: {summary[-1]})" if summary else " (no pytest summary)"
    # (the check as the rule states it, whether it holds, what the decision says when it does not)
    checks = [("a deterministic step repeats bit for bit", repeats, "a deterministic step did not repeat bit for bit"),
              ("the GPU test passed", passed, "the GPU test did not pass" + said),
              (f"its kernel time is {ratio:.2f}× today's, at most {bound:.2f}×", ratio <= bound,
               f"its kernel time is {ratio:.2f}× today's, over {bound:.2f}×")]
    failed = [why for _, ok, why in checks if not ok]
    decision = ("so notebook 06 trains with `--deterministic`." if not failed
                else f"not met: {'; '.join(failed)}; so notebook 06 trains eager.")
    return pd.DataFrame(rows), ("The rule: " + "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok, _ in checks)
                                + f". {decision[0].upper() + decision[1:]}")


def paper_determinism() -> str:
    """The latest determinism measurement on the H200 and the rule's decision, or that it has not run."""
    steps = sorted((ROOT / "results" / "paper").glob("step_deterministic_h200_*.txt"))
    if DETERMINISM_FILE:
        steps = [ROOT / "results" / "paper" / DETERMINISM_FILE]
    if not steps:
        return ("Not yet measured on a GPU; `.device/paper.sh` measures it after the next notebook, and this block "
                "then shows the rule's decision.\n")
    if len(steps) > 1:
        raise ValueError(f"several determinism measurements ({', '.join(s.name for s in steps)}): name the one the "
                         "rule reads (the first) in DETERMINISM_FILE")
    step = steps[0]
    commit = step.stem.rsplit("_", 1)[-1]
    test = ROOT / "results" / "paper" / f"gpu_tests_deterministic_h200_{commit}.txt"
    table, decision = determinism_verdict(step.read_text(), test.read_text() if test.exists() else "")
    body = markdown_table(table, index=False).rstrip("\n") + "\n\n" if not table.empty else ""
    return (body + f"From `{step.relative_to(ROOT)}`"
            + (f" and `{test.relative_to(ROOT)}`" if test.exists() else " (no GPU test output)") + ". " + decision + "\n")


FIRST_SITTING = re.compile(r"notebook (?P<nb>\d+) end rc=0 \(seeds (?P<seeds>[\d ]+)\)")
LOG_DAY = re.compile(r", (?P<day>\d{4}-\d{2}-\d{2}), commit ")     # collect.sh's header: the sitting's day
# collect.sh's name of a notebook's log: its K-th entry in the sitting (none: the first), the card, the commit
SITTING_LOG = re.compile(r"notebook(?P<nb>\d+)(?:_(?P<entry>\d+))?_(?P<card>h\d00)_(?P<commit>[0-9a-f]+)\.txt$")
SITTING_START = re.compile(r"^# progress\.log\n(\S+) start$", re.M)   # collect.sh's copy of the progress log
DONE = re.compile(r"done in (?P<s>[\d.]+) s, GPU busy (?P<busy>\d+)%")
# a training pool's phase line; its GPU busy share where the log gives it (a pass's log does)
TRAINED = re.compile(r"models trained: (?P<n>\d+) in (?P<s>\d+) s(?:, GPU busy (?P<busy>\d+)%)?")


def _first_sittings(directory: Path = ROOT / "results" / "paper", seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict]:
    """The first sittings of notebooks split over two (``.device/paper.sh`` with SEEDS), in the order they ran:
    each one's log (notebookNN_GPU_COMMIT.txt, GPU the card it ran on, whose header names the seeds
    it ran, fewer than the series' ``seeds``) beside the results cache it left for the second sitting
    (results_cache_COMMIT.tar.gz; since 2026-12-04 every sitting leaves one, so the seeds decide)."""
    ran = []     # (when it ran: the sitting's start, its progress log's first stamp, then the pass; its row)
    for log in sorted(directory.glob("notebook*_h[0-9]00_*.txt")):
        name = SITTING_LOG.match(log.name)
        if name is None:
            continue                                # a log kept aside (notebook04_h200_4e2f4c4_failed.txt)
        text = log.read_text()
        first = FIRST_SITTING.search(text.splitlines()[0]) if text else None
        cache = directory / f"results_cache_{name['commit']}.tar.gz"
        if first is None or not cache.exists() or set(map(int, first["seeds"].split())) >= set(seeds):
            continue                                # a whole run: all the seeds, no results cache
        done, trained, day = DONE.search(text), TRAINED.search(text), LOG_DAY.search(text.splitlines()[0])
        start = SITTING_START.search(text)
        ran.append(((start[1] if start else day["day"] if day else "?", int(name["entry"] or 1)), {
            "notebook": first["nb"], "seeds": first["seeds"], "day": day["day"] if day else "?",
            "GPU": name["card"].upper(), "model code": ", ".join(sorted(_cache_model_codes(cache))) or "?",
            "commit": f"`{name['commit']}`",
            "wall s": done["s"] if done else "?", "GPU busy": f"{done['busy']}%" if done else "?",
            "models trained": f"{trained['n']} in {trained['s']} s" if trained else "?",
            "results left for the second sitting": f"`{_shown(cache)}`", "log": f"`{_shown(log)}`"}))
    return [row for _, row in sorted(ran, key=lambda pair: pair[0])]


def _cache_model_codes(cache: Path) -> set[str]:
    """The model-code versions of the results in a sitting's results cache (``cache.answered``'s
    records, results/asked/CONFIG-MODELCODE-RESULTCODE.json); none if it cannot be read."""
    import tarfile

    from oneranker.cache import asked_codes

    try:
        with tarfile.open(cache) as tar:
            return {asked_codes(n)[0] for n in tar.getnames() if "/asked/" in n and n.endswith(".json")}
    except (tarfile.TarError, OSError):
        return set()


def _first_sittings_of(run: dict, firsts: list[dict]) -> list[dict]:
    """The first sittings that belong to ``run`` (a run-record entry): of its notebook, with results
    under its model code, on or before its day. A notebook run again under new code has its former
    first sittings beside its new ones (05's of 2026-12-03 under 228471b4); only those of the run
    the record names count with it."""
    return [f for f in firsts if f["notebook"] == run["notebook"][:2] and f["day"] <= run["finished"][:10]
            and run.get("model_code") in f["model code"].split(", ")]


PYTEST_SUMMARY = re.compile(r"^=*[ \t]*(\d+ (?:passed|x?failed|xpassed|skipped|errors?|deselected)\b.*?)"
                            r"[ \t]*=*[ \t]*$", re.M)
PYTEST_FAILURE_HEADER = re.compile(r"^_{3,} (\S+) _{3,}$", re.M)
# XFAIL: a test marked as known to fail (an upstream bug, tests/test_generate.py) that failed as expected
PYTEST_OUTCOME = re.compile(r"^(?P<outcome>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (?P<what>.+)$", re.M)
# -rA's PASSES (and XPASSES) section: a header per passed test with its captured output, up to the
# next of pytest's own sections (by title: a '=== ... ===' banner in a test's captured output does
# not end it) or the final summary line
PYTEST_SECTION_AFTER_PASSES = (r"(?:FAILURES|ERRORS|X?PASSES|warnings summary|short test summary info"
                               r"|slowest \S+ durations|\d+ (?:passed|x?failed|xpassed|skipped|errors?|deselected)\b[^\n]*)")
PYTEST_PASSES_SECTION = re.compile(rf"^=+ X?PASSES =+$.*?(?=^=+ {PYTEST_SECTION_AFTER_PASSES} =+$|\Z)", re.M | re.S)
# The runs of every GPU-only test on the H200 (pytest -m gpu, or one of them), oldest first; the
# queue of .device/paper.sh adds gpu_tests_h200_COMMIT.txt (-rA: every test's outcome named)
GPU_TEST_RUNS = ("gpu_tests_marker_h200.txt", "gpu_tests_deterministic_h200_bd6a44f.txt")


# benchmarks/compile_check.py's verdict line: "prefill compiled (default, mask outside): largest ...: ok"
COMPILE_CHECK_LINE = re.compile(r"^(?P<part>\w+) compiled \((?P<how>[^)]*)\): (?P<what>.+): (?P<verdict>ok|MISMATCH)$", re.M)


def compile_checks(directory: Path = ROOT / "results" / "paper") -> str:
    """Each H200 run of benchmarks/compile_check.py (a serving part compiled alone, against eager):
    its verdict lines, or that it printed none (it crashed, or its time or the sitting's ran out)."""
    rows = []
    for path in sorted(directory.glob("compile_check*_h200_*.txt")):
        lines = list(COMPILE_CHECK_LINE.finditer(path.read_text()))
        rows += [{"run": f"`{_shown(path)}`", "part": m["part"], "compiled": m["how"], "against eager": m["what"],
                  "verdict": m["verdict"]} for m in lines]
        if not lines:
            rows.append({"run": f"`{_shown(path)}`", "part": "", "compiled": "",
                         "against eager": "no verdict line (crashed, or its time ran out)", "verdict": ""})
    return markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + "\n"


def gpu_tests() -> str:
    """The GPU-only test runs on the H200: each file's last pytest summary and the tests it names
    as failed, skipped or known to fail (issue 14 asks every GPU-only test run there and passing)."""
    directory = ROOT / "results" / "paper"
    files = [directory / n for n in GPU_TEST_RUNS] + sorted(directory.glob("gpu_tests_h200_*.txt"))
    rows = [{"run": f"`{_shown(path)}`", **gpu_test_run(path.read_text())} for path in files]
    return markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + "\n"


def gpu_test_run(text: str) -> dict[str, str]:
    """One file of pytest output: each run's summary line (a sitting may run pytest more than once
    into one file, e.g. the GPU-only tests, then the compiled-serving ones several at a time), and
    the tests named as failed, errored, skipped or failed as expected (XFAIL; from -rA/-rf/-rs
    lines, or, for a failure, its traceback's header)."""
    summary = PYTEST_SUMMARY.findall(text)
    named = [f"{m['outcome']} {m['what'].split(' - ')[0]}" for m in PYTEST_OUTCOME.finditer(text)
             if m["outcome"] != "PASSED"]
    tracebacks = PYTEST_PASSES_SECTION.sub("", text)   # the headers left are failures' and errors'
    named += [f"FAILED {m[1]}" for m in PYTEST_FAILURE_HEADER.finditer(tracebacks)
              if not any(m[1] in n for n in named)]
    return {"pytest's summary": "; then ".join(summary) if summary else "none (cut short)",
            "failed, skipped or known to fail": "; ".join(dict.fromkeys(named)) or "none named"}


def _shown(path: Path) -> Path:
    """``path`` as the README names it: from the repository's root when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


# The same pass on each card (docs/paper_profile.md "Sitting 2 on an H100, sitting 3 on an H200"): notebook 05's seed-0 pass in
# sitting 2, lent an H100 for the H200 kind, and its seed-1 pass in sitting 3, on an H200 (7 models each,
# one code): each pass's log, its models' learning curves, and the device tool's replies with the card's nvidia-smi
H100_PASS = ("notebook05_h100_a9afbb0.txt", "histories_05_h100_a9afbb0.jsonl", "sitting_calls_h100_a9afbb0.txt")
H200_PASS = ("notebook05_h200_6f8e82a.txt", "histories_05_h200_6f8e82a.jsonl", "sitting_calls_h200_6f8e82a.txt")
GPU_READING = re.compile(r"^\d+ %, (\d+) MiB$", re.M)          # wait.sh's reading at the end of a call
CARD_MIB = re.compile(r"/\s*(\d+)MiB \|")                        # nvidia-smi's table: used / total


def _card_pass(directory: Path, names: tuple[str, str, str]) -> dict:
    """One pass of :data:`H100_PASS` or :data:`H200_PASS`: its seeds, training and whole-pass
    times, its runs' learning curves, wait.sh's memory readings and the card's memory."""
    log, curves, calls = (directory / name for name in names)
    text, replies = log.read_text(), calls.read_text()
    trained, done = TRAINED.search(text), DONE.search(text)
    return {"seeds": FIRST_SITTING.search(text.splitlines()[0])["seeds"], "n": int(trained["n"]),
            "train_s": int(trained["s"]), "busy": trained["busy"], "pass_s": float(done["s"]),
            "runs": paper_histories.read(curves), "curves": curves, "calls": calls,
            "readings": [int(m) for m in GPU_READING.findall(replies)], "card": int(CARD_MIB.search(replies)[1])}


def paper_card_passes(directory: Path = ROOT / "results" / "paper") -> str:
    """Notebook 05's pass on an H100 beside its next pass on an H200 (same notebook, pool size and
    code; one pass each, of different seeds): the time per model and per model-epoch, the runs'
    lengths and how they ended, and GPU memory as wait.sh read it on each card against the card's
    own and the H200 runs' peaks, and the largest pool the plan still trains
    (results/sitting_rehearsal.csv). Only a pool of the same size tells the cards apart: a pool's
    pace depends on its size (:func:`_pool_line`)."""
    h100, h200 = _card_pass(directory, H100_PASS), _card_pass(directory, H200_PASS)
    record = _paper_record()
    every = [{"notebook": r["notebook"][:2], "peak": r["gpu_memory_peak_mib"], "gpu": r.get("gpu") or "",
              "models": sum(p["items"] for p in _training_pools(r))}
             for r in record["runs"] if r["notebook"][:2] != "01"]      # 01 trains no model
    pools = [p for p in every if "H200" in p["gpu"]]     # the card whose memory the sentence is about
    on_h100 = [p for p in every if "H100" in p["gpu"]]
    peaks, sizes = [p["peak"] for p in pools], [p["models"] for p in pools]
    biggest = max(pools, key=lambda p: p["models"])
    plan = pd.read_csv(SITTING_REHEARSAL, dtype={"entry": str})
    largest = plan.loc[plan["models trained"].idxmax()]
    epochs = {card: sum(r["epochs"] for r in c["runs"]) for card, c in (("H100", h100), ("H200", h200))}
    more = max(h200["readings"]) > h100["card"]

    def one(card: str, c: dict) -> str:
        return (f"the seed-{c['seeds']} pass on the {card} trained {c['n']} models in {c['train_s']} s "
                f"({c['train_s'] / c['n']:.0f} s a model, {c['train_s'] / epochs[card]:.2f} s a model-epoch over "
                f"{epochs[card]} epochs; GPU busy {c['busy']}%; the pass {c['pass_s']:.0f} s in all)")

    def learning(c: dict) -> str:
        return (f"{sum(r['stopped_early'] for r in c['runs'])} of its {len(c['runs'])} runs ended by early stopping, "
                f"after {min(r['epochs'] for r in c['runs'])}–{max(r['epochs'] for r in c['runs'])} epochs "
                f"(cap {max(r['cap'] for r in c['runs'])}; `{_shown(c['curves'])}`)")

    def memory(c: dict) -> str:
        return ", then ".join(f"{m:,} MiB" for m in c["readings"]) + f" of {c['card']:,} MiB (`{_shown(c['calls'])}`)"

    return "\n".join([
        f"- **Pace, card against card (one pass each):** {one('H100', h100)}; {one('H200', h200)}. The H200 "
        f"took {h200['train_s'] / h100['train_s']:.2f}× the H100's training time for "
        f"{epochs['H200'] / epochs['H100']:.2f}× its epochs.",
        f"- **Learning:** on the H100, {learning(h100)}; on the H200, {learning(h200)}.",
        f"- **Memory:** `wait.sh` takes one reading at the end of each call. The H100: {memory(h100)}; "
        f"the H200: {memory(h200)}. "
        + (f"The same pool of {h100['n']} read more on the H200 than the H100 has, and the H100 ran its pool "
           "without running out of memory: each worker's caching allocator keeps what the card lets it, so a "
           "reading bounds what a pool holds, not what it needs. " if more else
           "Each worker's caching allocator keeps what the card lets it, so a reading bounds what a pool "
           "holds, not what it needs. ")
        + f"The run record's pools under ten workers ({pools[0]['notebook']}–{pools[-1]['notebook']}, "
        f"{min(sizes)}–{max(sizes)} models) peaked at {min(peaks):,.0f}–{max(peaks):,.0f} MiB on the H200 "
        "(`gpu_memory_peak_mib`, sampled the same way), "
        + ("past an H100's memory" if min(peaks) > h100["card"] else
           f"{sum(p > h100['card'] for p in peaks)} of {len(peaks)} past an H100's memory")
        + "; the plan's largest pool, "
        f"`{largest['entry']}` ({largest['models trained']} models under ten workers), "
        + (f"is no larger than {biggest['notebook']}'s of {biggest['models']} ({biggest['peak']:,.0f} MiB). "
           if largest["models trained"] <= biggest["models"] else
           "is larger than any of them: it likely holds as much or more, an extrapolation. ")
        + "".join(f"{p['notebook']}'s entry ran on an H100: its pool of {p['models']} under ten workers peaked "
                  f"at {p['peak']:,.0f} of {h100['card']:,} MiB. " for p in on_h100)
        + "What a pool needs on the H100 was measured apart (below).",
    ]) + "\n"


def paper_first_sittings() -> str:
    """The first sittings run so far (:func:`_first_sittings`), or that none has run."""
    rows = _first_sittings()
    if not rows:
        return "No notebook has run a first sitting yet.\n"
    return markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + "\n"


# Notebook 04 at paper scale twice, same code and seeds on one kind of GPU: the tables the failed run
# (commit 4e2f4c4) had written, kept in its log, against the whole run's (commit 4c61cb6), kept in a
# folder of their own so that a later run of 04 (the rerun under today's defaults) does not replace them
RERUN_04_LOG = "notebook04_h200_4e2f4c4_failed.txt"
RERUN_04_WHOLE = "rerun_04_4c61cb6"
RERUN_04_DIFFERENCES = {"04_headline_relative.csv": 1, "04_headline_vs_baselines.csv": 2, "04_ranker_vs_step2_only.csv": 1}


def _logged_tables(log: str) -> dict[str, list[list[str]]]:
    """The CSV tables a failed notebook's log kept ("# table written before the failure: NAME"),
    each as its lines split on commas."""
    tables_, name = {}, None
    for line in log.splitlines():
        if line.startswith("# table written before the failure: "):
            name = line.rsplit(" ", 1)[-1]
            tables_[name] = []
        elif line.startswith("#"):
            name = None
        elif name and line.strip():
            tables_[name].append(line.split(","))
    return tables_


def _cells(rows: list[list[str]], labels: int) -> dict[tuple[str, ...], str]:
    """Every cell of a split CSV table by (its row's label columns..., its column's header)."""
    header = rows[0]
    return {(*row[:labels], header[j]): row[j] for row in rows[1:] for j in range(labels, len(row))}


def _separated(cell: str) -> bool:
    mean, ci = tables.parse_mean_ci(cell)
    return abs(mean) > ci


def rerun_comparison(then: dict[str, list[list[str]]], now: dict[str, list[list[str]]]) -> dict:
    """What moved between two runs' tables of notebook 04: the difference cells (a mean ± CI of
    a paired difference) whose verdict changed sides between separated from 0 and not, out of
    all compared, and the largest move of a gap-closed mean (points, where, then and now)."""
    flips, compared = [], 0
    for name, labels in RERUN_04_DIFFERENCES.items():
        old, new = _cells(then[name], labels), _cells(now[name], labels)
        for key, cell in old.items():
            if "±" in cell and "±" in new.get(key, ""):
                compared += 1
                if _separated(cell) != _separated(new[key]):
                    flips.append((name, key, cell, new[key]))
    old, new = (_cells(x["04_headline_gap_closed.csv"], 2) for x in (then, now))
    moves = [(abs(tables.parse_mean_ci(new[k])[0] - tables.parse_mean_ci(v)[0]), k, v, new[k]) for k, v in old.items()
             if "±" in v and k in new]
    return {"flips": flips, "compared": compared, "largest": max(moves)}


def paper_rerun_04() -> str:
    """Notebook 04's two paper runs side by side: the gap-closed and ranker rows docs/paper_profile.md names,
    then and now, and how many difference verdicts changed sides."""
    paper_dir = ROOT / "results" / "paper"
    then = _logged_tables((paper_dir / RERUN_04_LOG).read_text())
    now = {name: [line.split(",") for line in (paper_dir / RERUN_04_WHOLE / name).read_text().splitlines()
                  if line.strip()]
           for name in then}
    gap_then, gap_now = (_cells(x["04_headline_gap_closed.csv"], 2) for x in (then, now))
    diff_then, diff_now = (_cells(x["04_ranker_vs_step2_only.csv"], 1) for x in (then, now))
    shown = [("full OneRanker, ranked list: gap closed, HR@5", gap_then, gap_now,
              ("full OneRanker", "ranked", "gap closed HR@5 (%)")),
             ("full OneRanker, ranked list: gap closed, HR@1", gap_then, gap_now,
              ("full OneRanker", "ranked", "gap closed HR@1 (%)")),
             ("Step-1 generator: gap closed, HR@5", gap_then, gap_now,
              ("Step-1 generator", "generated", "gap closed HR@5 (%)")),
             ("full OneRanker (ranked) minus Step 2 only, HR@5", diff_then, diff_now, ("full OneRanker (ranked)", "HR@5")),
             ("ranker on Step 1 only (ranked) minus Step 2 only, HR@5", diff_then, diff_now,
              ("ranker on Step 1 only (ranked)", "HR@5"))]
    rows = [{"what": what, "failed run (4e2f4c4)": a[key] + ("%" if "gap" in what else ""),
             "whole run (4c61cb6)": b[key] + ("%" if "gap" in what else "")} for what, a, b, key in shown]
    stop_then, stop_now = (_cells(x["04_stopping.csv"], 2) for x in (then, now))
    rows.append({"what": "full OneRanker, seed 1: epochs (ended by)",
                 "failed run (4e2f4c4)": f"{stop_then[('full OneRanker', '1', 'epochs')]} "
                                         f"({stop_then[('full OneRanker', '1', 'ended by')]})",
                 "whole run (4c61cb6)": f"{stop_now[('full OneRanker', '1', 'epochs')]} "
                                            f"({stop_now[('full OneRanker', '1', 'ended by')]})"})
    c = rerun_comparison(then, now)
    points, (variant, list_name, column), old, new = c["largest"]
    fixed = ("random", "popularity", "co-occurrence", "interest oracle", "value oracle")
    same = all(gap_then[k] == gap_now[k] for k in gap_then if k[0] in fixed)
    return (markdown_table(pd.DataFrame(rows), index=False) + "\n\n"
            f"- The non-learned rows ({', '.join(fixed)}) are {'the same' if same else 'NOT the same'} in both runs, "
            f"to the last digit of every gap-closed cell.\n"
            f"- Over every K and metric of its three difference tables ({', '.join(f'`{n[:-4]}`' for n in RERUN_04_DIFFERENCES)}), "
            f"{len(c['flips'])} of {c['compared']} cells changed sides between separated from 0 and not.\n"
            f"- The largest move of a gap-closed mean: {points:.1f} points ({variant}, {list_name} list, "
            f"{column.removeprefix('gap closed ').removesuffix(' (%)')}: {old}% in the failed run, {new}% in the whole one).\n")


THREADS_LINE = re.compile(r"^\s*(?P<spec>\S+): .*?prefetch (?P<prefetch>on|off).*?(?P<models>\d+) model\(s\) at once:\s+"
                          r"(?P<rps>\d+) requests/s.*?(?P<ms>[\d.]+) ms per step of one model, .*?GPU busy (?P<busy>\S+) "
                          r"\(.*?CPU threads per model (?P<threads>\w+)")


THROUGHPUT_CALLS = (("c", "training_throughput_threads_h200.txt"), ("d", "training_throughput_prefetch_h200.txt"))


# Whether compiled blocks speed eight models at once under MPS (after notebook 04, 2026-12-03), and
# the rule set before it: at least this many times the slower eager row's requests/s, with the
# slowest worker's warm-up under this many seconds
POOL_BLOCKS_FILE = benchmark_table.POOL_BLOCKS_FILE
POOL_BLOCKS_RULE = (1.15, 180)
WARMUP_S = re.compile(r"warm-up (?P<warm>\d+) s")


def pool_blocks_verdict(text: str, rule: tuple[float, int] = POOL_BLOCKS_RULE) -> tuple[pd.DataFrame, str]:
    """benchmarks/training_throughput.py's eager / compiled-blocks / eager rows and what the rule
    decides for notebooks 05 and 06."""
    rows = [{**m.groupdict(), "warm": WARMUP_S.search(line)["warm"], "compiled": "compiled blocks" in line}
            for line in text.splitlines() if (m := THREADS_LINE.match(line))]
    eager = min(float(r["rps"]) for r in rows if not r["compiled"])
    compiled = next(r for r in rows if r["compiled"])
    ratio, warm = float(compiled["rps"]) / eager, int(compiled["warm"])
    table = pd.DataFrame([{"run": r["spec"], "training": "compiled blocks" if r["compiled"] else "eager",
                           "models at once": r["models"], "requests/s": f"{int(r['rps']):,}",
                           "ms per step of one model": r["ms"], "slowest warm-up, s": r["warm"],
                           "× the slower eager row": f"{float(r['rps']) / eager:.2f}"} for r in rows])
    ok = ratio >= rule[0] and warm < rule[1]
    return table, (f"The rule: compiled blocks at {ratio:.2f}× the slower eager row (at least {rule[0]:.2f}× asked), "
                   f"slowest warm-up {warm} s (under {rule[1]} s asked): "
                   + ("met, so notebooks 05 and 06 train with `--train-compile blocks`." if ok
                      else "not met, so notebooks 05 and 06 train eager, as 01–04."))


def paper_pool_blocks() -> str:
    """The compiled-blocks pool measurement on the H200 and the rule's decision."""
    table, decision = pool_blocks_verdict((ROOT / "results" / "paper" / POOL_BLOCKS_FILE).read_text())
    return markdown_table(table, index=False) + f"\n\nFrom `results/paper/{POOL_BLOCKS_FILE}`. {decision}\n"


def _throughput_lines(name: str) -> list[dict]:
    text = (ROOT / "results" / "paper" / name).read_text()
    return [m.groupdict() for m in map(THREADS_LINE.match, text.splitlines()) if m]


def paper_workers_threads() -> str:
    """benchmarks/training_throughput.py on the H200: models at once, CPU threads each and the
    prefetching thread, side by side within each of two calls (one machine)."""
    rows = []
    for call, name in THROUGHPUT_CALLS:
        lines = _throughput_lines(name)
        refs = [float(m["rps"]) for m in lines if m["models"] == "6" and m["threads"] == "default" and m["prefetch"] == "on"]
        if not refs:
            raise ValueError(f"results/paper/{name}: no row of 6 models with default threads to compare with")
        ref = refs[0]
        for m in lines:
            rows.append({"call": call, "contender": m["spec"], "models at once": m["models"],
                         "CPU threads each": "a thread per core (16)" if m["threads"] == "default" else m["threads"],
                         "next batch collated in a thread": m["prefetch"], "requests/s (all models)": f"{int(m['rps']):,}",
                         "ms per step of one model": m["ms"], "GPU busy": m["busy"],
                         "× 6 models, default threads": f"{float(m['rps']) / ref:.2f}"})
    return markdown_table(pd.DataFrame(rows), index=False)


def _today_table(name: str) -> str:
    """The operator table printed after the 'today' contender's line in a training_step file."""
    text = (ROOT / "results" / "paper" / name).read_text()
    after = text[re.search(r"^\s*today:.*ms per step", text, re.M).end():]
    return after.split("Self CPU time total")[0]


def paper_step_summary() -> str:
    """The numbers docs/paper_profile.md says of the step contenders, from the same files as the table."""
    calls = [{m["spec"]: m for m in _step_lines(name)} for name in STEP_CALLS]
    saved = [1 - float(c["today"]["kernel"]) / float(c["select"]["kernel"]) for c in calls]
    today = calls[0]["today"]
    others = [m for spec, m in calls[0].items() if spec not in ("today", "select")]
    wall = [float(m["ms"]) / float(today["ms"]) - 1 for m in others]
    kernel = [float(m["kernel"]) / float(today["kernel"]) - 1 for m in others]
    lone_wall = [float(c["today"]["ms"]) for c in calls]
    lone_kernel = [float(c["today"]["kernel"]) for c in calls]
    top = max(_kernel_shares(_today_table(STEP_CALLS[0])).values())

    def pct(x: float) -> str:
        return f"{100 * x:+.0f}%".replace("-", "−")

    return (f"- Looking tokens up in one table takes {' and '.join(f'{100 * x:.0f}%' for x in saved)} off the GPU "
            f"kernel time of a step (calls a and b).\n"
            f"- The other attention contenders move a step's wall time by {pct(min(wall))} to {pct(max(wall))} "
            f"and its kernel time by {pct(min(kernel))} to {pct(max(kernel))}; no operator takes more than "
            f"{top:.0f}% of the kernel time (call a's profile of `today`).\n"
            f"- One model alone: {min(lone_wall):.0f}–{max(lone_wall):.0f} ms of wall time per step for "
            f"{min(lone_kernel):.0f}–{max(lone_kernel):.0f} ms of GPU kernels.\n")


def paper_workers_summary() -> str:
    """The numbers docs/paper_profile.md says of several models at once, from the same files as the table."""
    lines = {call: _throughput_lines(name) for call, name in THROUGHPUT_CALLS}
    many = [m for ls in lines.values() for m in ls if int(m["models"]) >= 6]
    alone_d = [float(m["ms"]) for m in lines["d"] if m["models"] == "1" and m["prefetch"] == "on"]
    many_ms = [float(m["ms"]) for m in many]
    busy = [float(m["busy"].rstrip("%")) for m in many if m["busy"] != "n/a"]
    rps = {(c, m["spec"]): float(m["rps"]) for c, ls in lines.items() for m in ls}
    best = rps[("c", "20x8ft2")] / rps[("c", "20x6f")]
    off_1, off_6 = rps[("d", "20x1")], rps[("d", "20x6")]
    prefetch = [v / off_1 for (c, spec), v in rps.items() if c == "d" and spec == "20x1f"] + [rps[("d", "20x6f")] / off_6]
    first = lines["c"][0]
    return (f"- With 6 or 8 processes each step of a model takes {min(many_ms):.0f}–{max(many_ms):.0f} ms of wall "
            f"time, {min(many_ms) / max(alone_d):.1f}–{max(many_ms) / min(alone_d):.1f}× a lone model's in the same "
            f"benchmark (call d: {min(alone_d):.0f}–{max(alone_d):.0f} ms), while the GPU is busy "
            f"{min(busy):.0f}–{max(busy):.0f}% of the time (call c).\n"
            f"- 8 processes with 2 intra-op threads each: {best:.2f}× the requests/s of 6 with a thread per core.\n"
            f"- Collating the next batch in a thread: {min(prefetch):.2f}–{max(prefetch):.2f}× (call d).\n"
            f"- Call c's first row, a process's first contender on a fresh machine with nvidia-smi sampling: "
            f"{float(first['ms']):.0f} ms per step, GPU busy {first['busy']}.\n")


def paper_gpu_floor() -> str:
    """The paper series' GPU kernel time if every step cost what one full model's step costs in
    its kernels (training_step's 'today' rows), at the epoch cap and at the 20 epochs run 8's
    models reached without stopping: a floor no number of processes can go under."""
    from oneranker.config import make_config

    tc = make_config("paper").train
    steps = -(-tc.max_train_requests // tc.batch_size)
    configs, cap, epochs_are = _paper_series()
    kernel_ms = sorted(float(m["kernel"]) for name in STEP_CALLS
                       for m in _step_lines(name) if m["spec"] == "today")
    lo, hi = kernel_ms[0], kernel_ms[-1]
    sharing, per_model = _run8_pace()

    def minutes(epochs: int, ms: float) -> float:
        return configs * epochs * steps * ms / 1e3 / 60

    from oneranker import studies

    rows, seen = [], set()
    for nb, cfgs in studies.configs_by_notebook("paper", [0, 1, 2]).items():
        worlds = {c.data_hash() for c in cfgs} - seen
        seen |= worlds
        rows.append({"notebook": nb, "models first trained here": len(cfgs), "worlds first simulated here": len(worlds),
                     f"GPU kernel minutes, {cap} epochs": f"{len(cfgs) * cap * steps * lo / 6e4:.1f}–"
                                                          f"{len(cfgs) * cap * steps * hi / 6e4:.1f}"})
    return (f"{configs} configs × {steps} steps per epoch × {lo:.1f}–{hi:.1f} ms of GPU kernels per step: "
            f"{minutes(cap, lo):.0f}–{minutes(cap, hi):.0f} minutes at {cap} epochs ({epochs_are}), "
            f"{minutes(20, lo):.0f}–{minutes(20, hi):.0f} at 20 epochs, against the 20-minute target for the whole "
            f"series ({minutes(20, lo) / 20:.1f}–{minutes(cap, hi) / 20:.1f}× over it before any evaluation or world "
            f"simulation). Run 8's training ({sharing} models sharing the GPU; its epochs' seconds include the "
            f"validation pass, so this is approximate) took {1e3 * per_model / steps:.1f} ms per model-step over all "
            f"of them, {1e3 * per_model / steps / hi:.2f}–{1e3 * per_model / steps / lo:.2f}× this floor: about "
            f"what a faster host (CUDA graphs, fewer processes fighting over the cores) can still win with the same "
            f"kernels; models batched in one process change the kernels (fewer, larger), which this floor does not "
            f"bound. By notebook (each model where it is first trained; issue 14 "
            f"asks for none over 8 minutes):\n\n" + markdown_table(pd.DataFrame(rows), index=False))


STACK_LINE = re.compile(r"^\s*(?P<name>[\w-]+): +(?P<ms>[\d.]+) ms per step \(median of (?P<n>\d+)\), +(?P<per_model>[\d.]+) "
                        r"ms per model-step \((?P<ratio>[\d.]+)x alone\); GPU kernels +(?P<kernel>[\d.]+) ms per "
                        r"model-step \((?P<kratio>[\d.]+)x alone\), (?P<kernels>\d+) kernels per step")
STACK_WARM = re.compile(r"^\s*(?P<name>[\w-]+): warmed up in +(?P<s>[\d.]+) s, peak GPU memory (?P<gib>[\d.]+) GiB")
STACK_FAILED = re.compile(r"^\s*(?P<name>[\w-]+): failed to warm up: (?P<why>[\w]+: [^.]*?)(?:\. |$)")
# benchmarks/stacked_step.py on the H200, in the order they ran (calls f, g, h of this stop)
STACK_CALLS = (("f", "stacked_step_first_h200.txt"), ("g", "stacked_step_3_6_h200.txt"), ("h", "stacked_step_h200.txt"))
STACK_LABELS = {"alone": "one model alone (FlexAttention)", "alone-sdpa": "one model alone, dense-mask SDPA",
                "alone-math": "one model alone, math attention"}


def _stack_label(name: str) -> str:
    if name in STACK_LABELS:
        return STACK_LABELS[name]
    m = int(name.split("-")[1])
    return f"a stack of {m} models" + (", math attention" if name.endswith("-math") else "")


def _stack_rows() -> list[dict]:
    """Every contender of every call: measured, or the reason it could not run."""
    rows = []
    for call, name in STACK_CALLS:
        lines = (ROOT / "results" / "paper" / name).read_text().splitlines()
        peaks = {m["name"]: m["gib"] for m in map(STACK_WARM.match, lines) if m}
        for line in lines:
            m, f = STACK_LINE.match(line), STACK_FAILED.match(line)
            if m:
                rows.append({"call": call, **m.groupdict(), "peak": peaks.get(m["name"], "n/a")})
            elif f:
                rows.append({"call": call, "name": f["name"], "failed": f["why"]})
    return rows


def paper_stacked_step() -> str:
    """benchmarks/stacked_step.py on the H200: models alone against stacks of models
    (train.stack_seeds), per model-step, side by side in one process per call."""
    out = []
    for r in sorted(_stack_rows(), key=lambda r: (r["call"], "failed" in r)):   # measured rows first
        if "failed" in r:
            out.append({"call": r["call"], "contender": _stack_label(r["name"]), "wall ms per model-step": "—",
                        "speed vs alone, wall (alone ÷ this)": "—", "GPU kernel ms per model-step": "—",
                        "speed vs alone, GPU kernels (alone ÷ this)": "—",
                        "kernels per step": "—", "peak GPU memory above the baseline, GiB": f"did not run: {r['failed']}"})
            continue
        out.append({"call": r["call"], "contender": _stack_label(r["name"]), "wall ms per model-step": r["per_model"],
                    "speed vs alone, wall (alone ÷ this)": r["ratio"], "GPU kernel ms per model-step": r["kernel"],
                    "speed vs alone, GPU kernels (alone ÷ this)": r["kratio"], "kernels per step": f"{int(r['kernels']):,}",
                    "peak GPU memory above the baseline, GiB": r["peak"]})
    return markdown_table(pd.DataFrame(out), index=False)


def paper_stacked_summary() -> str:
    """The stacks' GPU kernel time per model-step against one model alone on the same (math)
    attention, in the call that measured both (call h)."""
    rows = [r for r in _stack_rows() if r["call"] == "h" and "failed" not in r]
    alone = next(float(r["kernel"]) for r in rows if r["name"] == "alone-math")
    flex = next(float(r["kernel"]) for r in rows if r["name"] == "alone")
    stacks = [(int(r["name"].split("-")[1]), float(r["kernel"])) for r in rows if r["name"].startswith("stack-")]
    parts = [f"{m} models: {k:.1f} ms ({k / alone:.2f}× one model's {alone:.1f} ms on the same attention, "
             f"{k / flex:.2f}× its {flex:.1f} ms on FlexAttention)" for m, k in stacks]
    ratios = [k / alone for _, k in stacks]
    if all(r > 1 for r in ratios) and ratios == sorted(ratios):
        verdict = "A stack costs more GPU time per model than a model alone, and more the more models it holds."
    elif all(r < 1 for r in ratios):
        verdict = "A stack costs less GPU time per model than a model alone."
    else:
        verdict = "Stacking neither wins nor loses throughout."
    largest = max(stacks)[0]
    name = next(r["name"] for r in rows if r["name"].startswith(f"stack-{largest}"))
    shares = _kernel_shares(_stack_profile("stacked_step_h200.txt", name))
    where = (f" In the {largest}-model stack's profile, copies (`aten::copy_`) take {shares['aten::copy_']:.0f}% "
             f"of the kernel time and additions (`aten::add`) {shares['aten::add']:.0f}%.")
    return "GPU kernel time per model-step in a stack (call h): " + "; ".join(parts) + ". " + verdict + where + "\n"


MPS_SECTION = re.compile(r"^## MPS (?P<state>on|off)")
MPS_CALL = re.compile(r"^# call (?P<call>\d+)")
MPS_LINE = re.compile(r"^\s*(?P<spec>\S+): .*?(?P<models>\d+) model\(s\) at once:\s+(?P<rps>\d+) requests/s,.*?"
                      r"(?P<ms>[\d.]+) ms per step of one model,.*?GPU busy (?P<busy>\d+|n/a)%?.*?warm-up (?P<warm>\d+) s")


def _paper_record() -> dict:
    """results/paper/run_record.json: the paper series' runs, one entry per notebook."""
    return json.loads((ROOT / "results" / "paper" / "run_record.json").read_text())


def _paper_run(notebook: str) -> dict:
    """The run-record entry of one paper-profile notebook (its name's start, e.g. "02_")."""
    runs = [r for r in _paper_record()["runs"] if r["notebook"].startswith(notebook)]
    if not runs:
        raise LookupError(f"results/paper/run_record.json has no entry for notebook {notebook!r}")
    return runs[0]


def paper_headroom() -> str:
    """Notebook 01's headroom table at the paper profile (results/paper/01_headroom.csv, the
    committed run of results/paper/run_record.json)."""
    table = pd.read_csv(ROOT / "results" / "paper" / "01_headroom.csv", index_col=0)
    run = _paper_run("01_")
    col = table.columns[0]
    ratio = float(table.loc["oracle / popularity", col].split(" ± ")[0])
    gap, ci = (float(x) for x in table.loc["oracle - popularity gap", col].split(" ± "))
    verdict = (f"With {col}: oracle ÷ popularity {ratio:.1f} (criterion ≥ 4: {'pass' if ratio >= 4 else 'fail'}); "
               f"the gap {gap / ci:.1f} CIs wide (criterion ≥ 10: {'pass' if gap / ci >= 10 else 'fail'}). ")
    return (markdown_table(table).rstrip("\n") + "\n\n" + verdict + f"Notebook 01, paper profile: {run['seconds']:.0f} s on one "
            f"{run['gpu']} ({run['cpu_count']} CPU cores), commit `{run['commit'][:7]}`, model code `{run['model_code']}`.\n")


NOTEBOOK_BOUND_S = 8 * 60   # issue 14: no paper-profile notebook over 8 minutes


def _phase_totals(phases: list[dict]) -> str:
    """A run-record entry's phases summed by name (a sweep logs one row per grid), each with the
    GPU's busy share weighted by the rows' seconds where the run measured it."""
    from oneranker.study import phase_line

    totals: dict[str, dict] = {}
    for p in phases:
        t = totals.setdefault(p["phase"], {"phase": p["phase"], "items": 0, "seconds": 0.0, "busy_s": 0.0, "seen_s": 0.0})
        t["items"] += p["items"]
        t["seconds"] += p["seconds"]
        if p["gpu_busy_percent"] is not None:
            t["busy_s"] += p["gpu_busy_percent"] * p["seconds"]
            t["seen_s"] += p["seconds"]
    return "; ".join(phase_line({**t, "gpu_busy_percent": t["busy_s"] / t["seen_s"] if t["seen_s"] else None})
                     for t in totals.values())


def paper_series() -> str:
    """The paper series so far, one row per notebook of results/paper/run_record.json: its wall
    time, the GPU's busy share and peak memory where nvidia-smi measured them, whether it ran
    under MPS, the code it ran and, where the run logged them, its phases; then whether the
    entries are one model-code version and which notebooks are still to run."""
    from oneranker.reproduce import code_versions

    def known(value: object, fmt: str) -> str:
        return "n/a" if value is None else fmt.format(value)

    record = _paper_record()
    rows = []
    for r in record["runs"]:
        peak = r.get("gpu_memory_peak_mib")
        rows.append({"notebook": r["notebook"], "wall time, s": f"{r['seconds']:.0f}",
                     "GPU busy, %": known(r.get("gpu_busy_percent"), "{:.0f}"),
                     "peak GPU memory, GiB": known(None if peak is None else peak / 1024, "{:.0f}"),
                     "MPS": {True: "on", False: "off"}.get(r.get("mps"), "not recorded"),
                     "ended": r["finished"][:10], "commit": f"`{r['commit'][:7]}`", "model code": f"`{r['model_code']}`",
                     "evaluation code": f"`{r['evaluation_code']}`" if "evaluation_code" in r else "not recorded",
                     "phases": _phase_totals(r["phases"]) if "phases" in r else "not logged (run before the phase log)"})
    versions = code_versions(record)
    evaluations = {r["evaluation_code"] for r in record["runs"] if "evaluation_code" in r}
    ran = {r["notebook"][:2] for r in record["runs"]}
    # a notebook split over sittings: its entry is the last one's; the first ones' time is in their
    # logs (several where one sitting ran several passes of it, each with its own log)
    firsts = [f for f in _first_sittings(seeds=tuple(record["seeds"])) if f["wall s"] != "?"]
    missing = [f"{i:02d}" + (" (the first of its two sittings ran)" if any(f["notebook"] == f"{i:02d}" for f in firsts) else "")
               for i in range(1, 7) if f"{i:02d}" not in ran]
    split = {r["notebook"][:2]: s for r in record["runs"]
             if (s := sum(float(f["wall s"]) for f in _first_sittings_of(r, firsts)))}
    total = sum(r["seconds"] for r in record["runs"]) + sum(split.values())
    over = [r["notebook"][:2] for r in record["runs"] if r["seconds"] + split.get(r["notebook"][:2], 0) > NOTEBOOK_BOUND_S]
    pre = record.get("pretrain")
    pretrained = "" if pre is None else (
        f"\n\nPretraining (every model of the series in one pool, before the notebooks; model code "
        f"`{pre['model_code']}`, seeds {', '.join(map(str, pre['seeds'])) if pre['seeds'] else 'of each notebook'}): "
        f"{pre['jobs_trained']} training jobs "
        f"for {pre['configs']} configs in {pre['seconds']:.0f} s"
        + ("" if pre.get("gpu_busy_percent") is None else f", GPU busy {pre['gpu_busy_percent']:.0f}%") + ".")
    total += 0 if pre is None else pre["seconds"]
    return (markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + pretrained
            + f"\n\n{len(record['runs'])} of notebooks 01–06 ran, {total / 60:.1f} minutes in all"
            + ("" if not split else " (with the first sittings of " + ", ".join(
                f"{nb} ({s:.0f} s)" for nb, s in sorted(split.items())) + ", which the table's rows leave out)")
            + " (seeds "
            + f"{', '.join(map(str, record['seeds']))}), "
            + (f"under one model-code version (`{next(iter(versions))}`)" if len(versions) == 1
               else f"under {len(versions)} model-code versions ({', '.join(sorted(versions))}): not yet one series")
            + (f", evaluation code {', '.join(f'`{v}`' for v in sorted(evaluations))} where recorded" if evaluations else "")
            + f"; over the {NOTEBOOK_BOUND_S // 60}-minute bound: {', '.join(over) or 'none'}"
            + (f"; not yet run: {', '.join(missing)}.\n" if missing else ".\n"))


SITTING_S = 30 * 60        # the device time of one session, the machine's start included (.device/README)
# a machine's start, the quickest and slowest seen (2026-12-04's second sitting: held 623 s for a
# 590 s command; 2026-12-03's fourth sitting: held 952 s for a 588 s command)
MACHINE_START_S = (33, 364)


@dataclass(frozen=True)
class SittingPace:
    """The pace a sitting estimate scales from: the latest paper run in the run record that logged
    its training (``run``): its training pools, models and seconds, the mean and the best pool's
    seconds per model (times the stopping rule's factor, ``why``), and an entry's other work (worlds,
    evaluation, the notebook's other cells) in seconds: ``other`` as measured, ``other_best`` at best,
    the most and least of any entry measured under its evaluation code (:func:`_other_work`; both
    the run's own where it is the only one), and per notebook where its own entries were measured
    (``other_by_notebook``, :meth:`other_range`). That work is taken as a cost per entry, not per
    model, as measured: it barely grew with the models evaluated. A pass of 05 (one seed, 10
    configs) had 169-177 s of it, the notebook (30 configs) 214 s (notebook05_h100_a9afbb0.txt,
    notebook05_h200_5899e33.txt). Where pools of several sizes were measured
    under that run's code (:func:`_pool_line`), a pool costs ``fixed`` seconds whatever its size
    plus ``mean`` per model: the fitted line moved up to the pool furthest above it, so that no
    measured pool took longer than its estimate (``fixed_best`` and ``best``: moved down to the one
    furthest below). Small pools took more per model than large ones (the pools the fit table
    lists); a pool ends with its slowest run, which is one reading of that fixed part (pool size
    and notebook go together in these pools, so it is not measured apart). ``line`` names the pools fitted; empty, ``fixed`` is 0."""
    run: dict
    pools: list[dict]
    n_run: int
    train_s: float
    mean: float
    best: float
    other: float
    why: str
    fixed: float = 0.0
    fixed_best: float = 0.0
    line: str = ""
    other_best: float | None = None
    other_line: str = ""
    other_by_notebook: dict[str, tuple[float, float]] = field(default_factory=dict)

    def other_range(self, notebook: str | None = None) -> tuple[float, float]:
        """An entry's other work, (at best, as measured): its notebook's own entries' least and most
        where measured, else every entry's (or the run's own)."""
        if notebook in self.other_by_notebook:
            return self.other_by_notebook[notebook]
        return (self.other if self.other_best is None else self.other_best), self.other

    def as_measured(self, trained: int | list[int], notebook: str | None = None) -> float:
        """Seconds of one entry of ``notebook`` as measured, the machine's start left out: each pool
        of ``trained`` models (a count, or one per pool) on the line's upper edge (or at the mean
        pace), and the most other work (:meth:`other_range`)."""
        return self._pools(trained, self.fixed, self.mean) + self.other_range(notebook)[1]

    def favourable(self, trained: int | list[int], notebook: str | None = None) -> float:
        """Seconds of one entry of ``notebook`` at best, the start left out: the line's lower edge
        (or the best pool's pace), and the least other work (:meth:`other_range`)."""
        return self._pools(trained, self.fixed_best, self.best) + self.other_range(notebook)[0]

    @staticmethod
    def _pools(trained: int | list[int], fixed: float, per_model: float) -> float:
        """Training seconds of pools of ``trained`` models: each pays the fixed part once; none, nothing."""
        return sum(fixed + k * per_model for k in ([trained] if isinstance(trained, int) else trained) if k)


def _training_pools(run: dict) -> list[dict]:
    """A run record entry's training pools: its "models trained" phases that trained a model."""
    return [p for p in run.get("phases", []) if p["phase"] == "models trained" and p["items"]]


def _sitting_pace(record: dict) -> SittingPace | None:
    """The :class:`SittingPace` of the run record's latest run that logged training; None if none.
    With pools of two sizes or more measured under its model code and today's defaults, the pace
    per model and the pool's fixed cost come from :func:`_pool_line` instead of its mean."""
    runs = [r for r in record["runs"] if _training_pools(r)]
    if not runs:
        return None
    run = max(runs, key=lambda r: r["finished"])
    pools = _training_pools(run)
    n_run, train_s = sum(p["items"] for p in pools), sum(p["seconds"] for p in pools)
    factor, why = _rule_factor(run)
    pace = SittingPace(run, pools, n_run, train_s, train_s / n_run * factor,
                       min(p["seconds"] / p["items"] for p in pools) * factor, run["seconds"] - train_s, why)
    entries = _other_work(record, run)
    if len(entries) > 1:
        seconds = [s for _, _, s in entries]
        own: dict[str, list[float]] = {}
        for nb, _, s in entries:
            own.setdefault(nb, []).append(s)
        pace = replace(pace, other=max(seconds), other_best=min(seconds),
                       other_line=", ".join(f"{where} {s:.0f} s" for _, where, s in entries),
                       other_by_notebook={nb: (min(v), max(v)) for nb, v in own.items()})
    fit = _pool_line(record, run) if factor == 1.0 else None
    if fit is None:
        return pace
    fixed, per_model, (below, above), line = fit
    return replace(pace, mean=per_model, best=per_model, fixed=fixed + above, fixed_best=max(0.0, fixed - below),
                   line=line)


def _other_work(record: dict, run: dict) -> list[tuple[str, str, float]]:
    """The other work (seconds beside training) of every entry measured, as (notebook, words,
    seconds): ``run`` itself, the run record's other runs that trained under its evaluation code
    (whatever their training defaults: this work is the worlds, the evaluation and the notebook's
    cells), and the passes under its model code (:func:`_passes`: their wall time less their
    training; their logs name no evaluation code, and it has not changed under that model code)."""
    entries = [(r["notebook"][:2], r["notebook"][:2], r["seconds"] - sum(p["seconds"] for p in _training_pools(r)))
               for r in record["runs"] if _training_pools(r) and (r is run or (
                   "evaluation_code" in r and r.get("evaluation_code") == run.get("evaluation_code")))]
    return entries + [(p["notebook"], p["where"], p["wall_s"] - p["train_s"])
                      for p in _passes(record, run) if p["wall_s"] is not None]


def _passes(record: dict, run: dict) -> list[dict]:
    """The passes of notebooks split over sittings (:func:`_first_sittings`, results only) whose
    results are under ``run``'s model code (a pass's log names neither its profile config nor its
    evaluation code), each as its notebook, its words ("05:0 (H100)"), its models trained and their
    seconds, and its wall seconds (None where its log has none)."""
    out = []
    for first in _first_sittings(seeds=tuple(record.get("seeds", (0, 1, 2)))):
        trained = TRAINED.search(f"models trained: {first.get('models trained', '?')}")
        if trained and run.get("model_code") in first["model code"].split(", "):
            wall = first.get("wall s", "?")
            out.append({"notebook": first["notebook"], "where": f"{first['notebook']}:{first['seeds']} ({first['GPU']})",
                        "models": int(trained["n"]), "train_s": float(trained["s"]),
                        "wall_s": None if wall == "?" else float(wall)})
    return out


def _measured_pools(record: dict, run: dict) -> list[tuple[int, float, str]]:
    """Every training pool measured under ``run``'s model code, as (models, seconds, where): the run
    record's training phases under today's paper defaults, or today's but for a smaller cap none of
    their runs reached (:func:`_defaults`: the same runs, so the same pools), and the passes
    (:func:`_passes`)."""
    curves, seeds = _paper_curves(), record.get("seeds", [0, 1, 2])
    pools = [(p["items"], p["seconds"], r["notebook"][:2]) for r in record["runs"]
             if r.get("model_code") == run.get("model_code") and _defaults(r, seeds, curves).as_today
             for p in _training_pools(r)]
    return pools + [(p["models"], p["train_s"], p["where"]) for p in _passes(record, run)]


def _pool_line(record: dict, run: dict) -> tuple[float, float, tuple[float, float], str] | None:
    """A least-squares line through the measured pools (:func:`_measured_pools`), seconds against
    models: its intercept (a pool's fixed cost), its slope (seconds per model), how far the pools
    furthest below and above it lie from it, and the pools' words; None for a run that names no model code
    (an entry older than the field: its pools cannot be matched), with fewer than two sizes, or
    for a line that would not grow with the pool (a negative slope or intercept: read the mean)."""
    import numpy as np

    if not run.get("model_code"):
        return None
    pools = _measured_pools(record, run)
    if len({n for n, _, _ in pools}) < 2:
        return None
    n, s = np.array([p[0] for p in pools], float), np.array([p[1] for p in pools], float)
    per_model, fixed = np.polyfit(n, s, 1)
    if per_model <= 0 or fixed < 0:
        return None
    residuals = s - (fixed + per_model * n)
    spread = (float(max(0.0, -residuals.min())), float(max(0.0, residuals.max())))
    words = ", ".join(f"{where} {k} in {sec:.0f} s" for k, sec, where in pools)
    return float(fixed), float(per_model), spread, words


def _number_word(n: int) -> str:
    return {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}.get(n, str(n))


def _recorded_cap(notebook: str) -> int | None:
    """The cap of epochs the run record's entry of ``notebook`` trained under (:func:`_defaults`);
    None where the record has no entry or the entry's cap is not known."""
    record = _paper_record()
    runs = [r for r in record["runs"] if r["notebook"].startswith(notebook)]
    return _defaults(runs[0], record.get("seeds", [0, 1, 2])).cap if runs else None


def paper_convergence(directory: Path = ROOT / "results" / "paper") -> str:
    """Whether the paper series' models reached the convergence criterion (early stopping) or the
    cap of epochs, from the stopping tables the notebooks write (``tables.stopping_summary``;
    notebook 04 writes one), in the package's own words (``tables.capped_runs_sentence``), with
    how many capped runs had their best validation loss in their last three epochs (still
    improving when the cap stopped them)."""
    lines = []
    for path in sorted(directory.glob("*_stopping.csv")):
        stopping = pd.read_csv(path).set_index(["variant", "seed"])
        # the cap the runs ran under, as the table names it (a table of a profile since changed keeps
        # its own); without a capped run, the cap of the notebook's entry in the run record
        caps = stopping["ended by"].str.extract(r"the (\d+)-epoch cap")[0].dropna().astype(int).unique()
        cap = int(caps[0]) if len(caps) == 1 else _recorded_cap(path.name[:2])
        capped = stopping[stopping["ended by"] != "early stopping"]
        improving = sum(map(paper_histories.still_improving, capped["best epoch"], capped["epochs"]))
        # (no capped run and no recorded cap: the sentence cannot name the cap, so it does not)
        sentence = (tables.capped_runs_sentence(stopping, cap) if cap is not None
                    else f"- All {len(stopping)} runs ended by early stopping before their cap.")
        lines.append(f"Notebook {path.name[:2]} (`{_shown(path)}`):\n" + sentence
                     + (f" {improving} of them had their best validation loss in their last "
                        f"{_number_word(paper_histories.LATE)} epochs." if len(capped) else ""))
    return ("\n\n".join(lines) if lines else "No paper notebook has written its stopping table yet.") + "\n"


def paper_histories_block(directory: Path = ROOT / "results" / "paper") -> str:
    """The learning curves brought back from the GPU (scripts/paper_histories.py, one file per
    notebook and sitting): per file, how many runs reached the cap, how many of those had their
    best epoch in their last three, and the validation loss's change over the last five epochs,
    for the capped runs and for those early stopping ended (median and range: how far from flat
    each kind was when it ended; an early stop on a still-falling curve stopped on noise), and
    every run's change over the five epochs up to its best (where its weights were kept; the
    stopping rule does not pull it towards zero)."""
    rows = []
    for path in sorted(directory.glob("histories_*_h[0-9]00_*.jsonl")):
        records = paper_histories.read(path)
        capped = [r for r in records if not r["stopped_early"]]
        early = [r for r in records if r["stopped_early"]]
        last = f"validation loss's change over the last {paper_histories.LAST} epochs, median (range)"
        rows.append({"file": f"`{_shown(path)}`", "runs": len(records), "reached the cap": len(capped),
                     f"of those, best epoch in the last {_number_word(paper_histories.LATE)}":
                         sum(paper_histories.still_improving(r["best_epoch"], r["epochs"]) for r in capped),
                     f"capped runs: {last}": _median_and_range(capped),
                     f"early-stopped runs: {last}": _median_and_range(early),
                     f"all runs: its change over the {paper_histories.LAST} epochs up to the best, median (range)":
                         _median_and_range(records, paper_histories.change_to_best)})
    if not rows:
        return ("No learning curves brought back yet: `.device/paper.sh` writes them after each notebook from its next "
                "sitting on (`scripts/paper_histories.py`).\n")
    return markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + "\n"


def paper_rerun_draws(curves: list[dict] | None = None, seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """The same configs and seeds trained more than once on the GPU: each model of the series
    under today's cap (its learning curves brought back) beside every draw of it under the former
    cap that stopped by its rule before it (in exact arithmetic the same run: the plateau schedule
    does not read the cap). What differs is the GPU's draw (its training is not bit-reproducible)
    and, across model codes, the code, whose change moved no number of the quick series: epochs,
    best epoch and best validation loss of each pair, the former draw named by its file."""
    curves = _paper_curves() if curves is None else curves
    cap = make_config("paper").train.epochs
    former = max((r["cap"] for r in curves if r["cap"] < cap), default=None)
    from oneranker import studies

    # today's config hash -> the same config's under the former cap (every paper config of the notebooks)
    twin = {} if former is None else {cfg.hash(): paper_histories.with_cap(cfg, former).hash()
                                      for cfg in studies.all_configs("paper", list(seeds))}
    draws: dict[str, list[dict]] = {}
    for r in curves:
        if r["cap"] == former and r["stopped_early"]:
            draws.setdefault(r["config"], []).append(r)
    rows = []
    for r in (r for r in curves if r["cap"] == cap):
        for b in draws.get(twin.get(r["config"], ""), []):
            old, new = (paper_histories.best_valid(x["curve"], x["best_epoch"]) for x in (b, r))
            rows.append({"notebook": r["notebook"], "seed": r["seed"], "model": r["label"],
                         "former draw": f"`{b.get('file', '?')}`",
                         f"epochs (cap {former} → {cap})": f"{b['epochs']} → {r['epochs']}",
                         "best epoch": f"{b['best_epoch']} → {r['best_epoch']}",
                         "best validation loss": f"{old:.4f} → {new:.4f}", "change": f"{100 * (new / old - 1):+.2f}%",
                         "model code": f"{b['model_code']} → {r['model_code']}"})
    if not rows:
        return f"No model has trained under the cap of {cap} beside a draw under the former cap yet.\n"
    table = pd.DataFrame(rows)
    shifts = sorted(abs(int(e.split(" → ")[1]) - int(e.split(" → ")[0])) for e in table.iloc[:, 4])
    changes = sorted(float(c.rstrip("%")) for c in table["change"])
    models = table[["seed", "model"]].drop_duplicates().shape[0]
    return (markdown_table(table, index=False).rstrip("\n") + f"\n\n{len(rows)} pairs ({models} models): the stopping "
            f"epoch moved by {shifts[0]}–{shifts[-1]} epochs (median {statistics.median(shifts):g}); the best validation "
            f"loss by {changes[0]:+.2f}% to {changes[-1]:+.2f}% (median {statistics.median(changes):+.2f}%).\n")


def _median_and_range(records: list[dict], change: Callable[[list[dict]], float | None] | None = None) -> str:
    """The runs' validation-loss change (``change`` of a curve; by default over its last epochs,
    paper_histories.last_change) as 'median (lowest to highest)' in percent; n/a without a run
    long enough to have one."""
    change = change or paper_histories.last_change
    changes = sorted(c for r in records if (c := change(r["curve"])) is not None)
    if not changes:
        return "n/a"
    return f"{100 * statistics.median(changes):+.2f}% ({100 * changes[0]:+.2f}% to {100 * changes[-1]:+.2f}%)"


def paper_sitting_fit() -> str:
    """Whether each notebook still to run fits one sitting: the models it trains from an empty
    cache (each sitting's machine starts bare, and a paper model's weights exceed a file the
    device tool brings back) at the pace of :func:`_sitting_pace` (the measured pools' line, or
    the latest run's pace), plus an entry's other work (worlds, evaluation, the other cells:
    :func:`_other_work`) and the machine's start. Two estimates: as measured (the line's upper
    edge or the mean pace, the most other work an entry took, the slowest start) and favourable
    (the line's lower edge or the best pool's pace, the least other work, the quickest start)."""
    from oneranker import studies

    record = _paper_record()
    pace = _sitting_pace(record)
    if pace is None:
        return "No paper run has logged its training phase yet.\n"
    run = pace.run
    curves = _paper_curves()
    ran = {r["notebook"][:2] for r in record["runs"] if _defaults(r, record.get("seeds", [0, 1, 2]), curves).as_today}
    ran_before = {r["notebook"][:2] for r in record["runs"]} - ran
    halfway = {f["notebook"]: f["seeds"] for f in _first_sittings(seeds=tuple(record["seeds"]))}
    shared = _shared_results()

    def as_measured(trained: int, nb: str) -> float:
        return pace.as_measured(trained, nb) + MACHINE_START_S[1]

    rows = []
    for nb in sorted(studies.SEEDS):
        models = len(studies.notebook_configs(nb, "paper", record["seeds"]))
        measured = as_measured(models, nb)
        favourable = pace.favourable(models, nb) + MACHINE_START_S[0]
        fit = ("fits" if measured <= SITTING_S else
               "tight: fits only in the favourable estimate" if favourable <= SITTING_S else "does not fit")
        # (a first sitting is not told apart by its defaults: during the rerun, a notebook whose
        # former run is recorded shows that run until its new entry names today's config)
        state = ("ran" if nb in ran else f"ran under the former defaults; again: {fit}" if nb in ran_before
                 else f"first of two sittings ran (seeds {halfway[nb]})" if nb in halfway else fit)
        # in two sittings (oneranker.study's cached results): the first seeds' models, then the
        # rest, each sitting paying an entry's other work
        first = len(studies.notebook_configs(nb, "paper", record["seeds"][:2]))
        halves = [as_measured(first, nb), as_measured(models - first, nb)]
        # one seed per sitting: each adds its seed's models
        per_seed = [len(studies.notebook_configs(nb, "paper", record["seeds"][:i + 1])) for i in range(len(record["seeds"]))]
        added = [b - a for a, b in zip([0] + per_seed, per_seed)]
        sittings = [as_measured(k, nb) for k in added]
        # with the results of the notebooks before it brought in (results/shared_results.csv): only
        # the models they did not answer train
        reuse = ""
        if (sh := shared.get(nb)) is not None:
            seeds = record["seeds"]
            if sh["alone"] != len(studies.notebook_configs(nb, "paper", seeds[:1])):
                reuse = f"not read: the smoke measurement's {sh['alone']} models per seed are not the paper's"
            else:
                k = sh["after"]
                trains, first_k = k * len(seeds), k * len(seeds[:2])
                one = as_measured(trains, nb)
                two = [as_measured(first_k, nb), as_measured(trains - first_k, nb)]
                reuse = (f"after {sh['earlier']}: {k} of {sh['alone']} per seed; {one / 60:.0f}, or "
                         f"{two[0] / 60:.0f} + {two[1] / 60:.0f} ({first_k} + {trains - first_k} models)")
        rows.append({"notebook": nb, "models from an empty cache": str(models),
                     "sitting minutes needed (favourable – as measured)": f"{favourable / 60:.0f} – {measured / 60:.0f}",
                     "state": state,
                     "in two sittings, as measured (first seeds, then the rest)":
                         f"{halves[0] / 60:.0f} + {halves[1] / 60:.0f} ({first} + {models - first} models)",
                     "one seed per sitting, as measured":
                         " + ".join(f"{t / 60:.0f}" for t in sittings) + f" ({' + '.join(map(str, added))} models)",
                     "with the earlier notebooks' results: models trained, one sitting or two, as measured": reuse})
    return (markdown_table(pd.DataFrame(rows), index=False).rstrip("\n")
            + f"\n\nFrom notebook {run['notebook'][:2]}'s paper run ({run['gpu']}, MPS {'on' if run.get('mps') else 'off'}): "
            + (f"a training pool takes {pace.fixed:.0f} s plus {pace.mean:.0f} s per model as measured "
               f"({pace.fixed_best:.0f} s plus {pace.best:.0f} at best): the upper and lower edges of a least-squares "
               f"line through the pools measured under its model code and today's defaults, moved to the pools "
               f"furthest above and below it ({pace.line}; the run's own: {pace.n_run} models in {pace.train_s:.0f} s)"
               if pace.line else
               f"{pace.mean:.0f} s per model over its {len(pace.pools)} training phase{'s' if len(pace.pools) > 1 else ''} "
               f"({pace.n_run} models in {pace.train_s:.0f} s{pace.why}), {pace.best:.0f} s in its best one")
            + f"; {_other_words(pace)}; a machine's start took "
            f"{MACHINE_START_S[0] / 60:.1f}–{MACHINE_START_S[1] / 60:.1f} minutes. A sitting has {SITTING_S // 60} "
            f"minutes of device time. In two sittings (\"A notebook in two sittings\" below) the first trains and "
            f"evaluates seeds {record['seeds'][0]} and {record['seeds'][1]}, the second the rest, each paying an "
            f"entry's other work.\n")


def _other_seconds(pace: SittingPace) -> str:
    """An entry's other work in words: 'other work of least to most s an entry' (or the run's own),
    and where its notebook's own range is taken instead."""
    if pace.other_best is None:
        return f"other work of {pace.other:.0f} s an entry"
    return (f"other work of {pace.other_best:.0f} to {pace.other:.0f} s an entry"
            + (", or its notebook's own range where measured" if pace.other_by_notebook else ""))


def _other_words(pace: SittingPace) -> str:
    """What an entry's other work is taken to cost, in words (:func:`_other_work`)."""
    if pace.other_best is None:
        return f"{pace.other / 60:.1f} minutes of other work an entry (the run's own)"
    return (f"other work (worlds, evaluation, the other cells) of {pace.other_best / 60:.1f}–{pace.other / 60:.1f} "
            f"minutes an entry, whatever the models it evaluates: the least and most of its notebook's entries "
            f"where measured, else of every entry measured ({pace.other_line})")


SITTING_REHEARSAL = ROOT / "results" / "sitting_rehearsal.csv"
# The plan for a session whose device time has shrunk before sitting 5 (.device/README, NEXT):
# 06's seeds 0 and 1 as a pass each, then the notebook 06 (until 2026-12-06, the one of sitting 4:
# 05's seed 2 as a pass, then 05 with 06's seed 0, then 06's seeds 1 and 2)
SITTING_REHEARSAL_FALLBACK = ROOT / "results" / "sitting_rehearsal_fallback.csv"


def _plan_summary(verdicts: dict[int, str]) -> str:
    """'Five sittings: four fit as measured; tight: sitting 4.' from each sitting's verdict."""
    def sittings(names: list[str]) -> str:
        return f"sitting{'s' if len(names) > 1 else ''} {', '.join(names)}"

    n = len(verdicts)
    groups = {v: [str(k) for k, f in verdicts.items() if f.startswith(v)] for v in ("fits", "tight", "does not fit")}
    return (f"{_number_word(n).capitalize()} sitting{'s' if n != 1 else ''}: "
            f"{_number_word(len(groups['fits'])) if groups['fits'] else 'none'} fit{'s' if len(groups['fits']) == 1 else ''} as measured"
            + (f"; tight: {sittings(groups['tight'])}" if groups["tight"] else "")
            + (f"; not fitting: {sittings(groups['does not fit'])}" if groups["does not fit"] else "") + ". ")


def _entry_pools(entry: dict) -> list[int]:
    """The models of each pool a rehearsed entry trained ("7 + 1": two pools, each paying a pool's
    fixed part); its models trained as one pool where the rehearsal did not count pools."""
    pools = str(entry.get("pools", ""))
    if not re.fullmatch(r"\d+(?: \+ \d+)*", pools):
        return [int(entry["models trained"])]
    return [int(k) for k in pools.split(" + ")]


def paper_sitting_plan(path: Path = SITTING_REHEARSAL) -> str:
    """The next sittings' plan as rehearsed here (scripts/rehearse_sittings.py: the device scripts
    at the smoke profile on the CPU, each sitting from the last one's results), each entry's
    models trained scaled to the paper profile at the pace of :func:`paper_sitting_fit`, plus its
    notebook's other work: minutes per entry and per sitting, the start counted once."""
    if not path.exists():
        return f"No plan rehearsed yet (`python scripts/rehearse_sittings.py --out {_shown(path)}`).\n"
    pace = _sitting_pace(_paper_record())
    if pace is None:
        return "No paper run has logged its training phase yet.\n"
    table = pd.read_csv(path, dtype={"notebook": str, "seeds": str, "entry": str})
    rows, verdicts = [], {}
    for sitting, entries in table.groupby("sitting", sort=True):
        spent = [0.0, 0.0]                   # favourable, as measured; the start added below
        for i, e in enumerate(entries.to_dict("records")):
            pools = _entry_pools(e)
            work = (pace.favourable(pools, e["notebook"]), pace.as_measured(pools, e["notebook"]))
            spent = [spent[0] + work[0], spent[1] + work[1]]
            total = (spent[0] + MACHINE_START_S[0], spent[1] + MACHINE_START_S[1])
            fit = ("fits" if total[1] <= SITTING_S else
                   "tight: fits only in the favourable estimate" if total[0] <= SITTING_S else "does not fit")
            kind = "the notebook" if ":" not in e["entry"] else "a pass (results only)"
            rows.append({"sitting": str(sitting) if i == 0 else "", "entry": f"`{e['entry']}`",
                         "what": f"{kind}, seeds {e['seeds']}",
                         "models trained (of evaluated)": f"{e['models trained']} (of {e['models evaluated']})"
                         + (f"; pools {e['pools']}" if "+" in str(e.get("pools", "")) else ""),
                         "minutes (favourable – as measured)": f"{work[0] / 60:.0f} – {work[1] / 60:.0f}",
                         "sitting so far, with the start": f"{total[0] / 60:.0f} – {total[1] / 60:.0f}: {fit}"})
        verdicts[sitting] = fit
    summary = _plan_summary(verdicts)
    return (markdown_table(pd.DataFrame(rows), index=False).rstrip("\n") + "\n\n" + summary
            + "Models trained: as rehearsed at the smoke profile, each sitting on a bare machine from the last "
            "one's results (the counts per seed are the notebooks' code, the same at the paper profile). Minutes: "
            "at the pace of the table above ("
            + (f"a pool {pace.fixed:.0f} s plus " if pace.line else "")
            + f"{pace.mean:.0f} s per model as measured, "
            + (f"{pace.fixed_best:.0f} s plus " if pace.line else "") + f"{pace.best:.0f} at best; "
            f"{_other_seconds(pace)}), the start "
            f"{MACHINE_START_S[0] / 60:.1f}–{MACHINE_START_S[1] / 60:.1f} minutes.\n")


SHARED_RESULTS = ROOT / "results" / "shared_results.csv"


def _shared_results(path: Path = SHARED_RESULTS) -> dict[str, dict]:
    """Per notebook measured after others (scripts/shared_results.py): the notebooks before it, and
    the models per seed it trains alone and with their results in the cache; none without the file."""
    if not path.exists():
        return {}
    table = pd.read_csv(path, dtype={"notebook": str, "after": str}).fillna({"after": ""})
    return {r["notebook"]: {"earlier": ", ".join(r["after"].split()), "alone": int(r["models per seed alone"]),
                            "after": int(r["models per seed after"])}
            for r in table.to_dict("records") if r["after"]}


# The paper profile's config before run-record entries named theirs (the cosine schedule to a 30-epoch cap)
OLD_PAPER_CONFIG = "b317c2748b38"


def _run_config(run: dict) -> str:
    """The paper-profile config hash a run-record entry trained under (``OLD_PAPER_CONFIG`` for an
    entry written before entries named theirs)."""
    return run.get("profile_config", OLD_PAPER_CONFIG)


def _paper_curves() -> list[dict]:
    """Every learning curve brought back from the paper sittings (scripts/paper_histories.py's files)."""
    return [{**r, "file": path.name} for path in sorted((ROOT / "results" / "paper").glob("histories_*.jsonl"))
            for r in paper_histories.read(path)]


@dataclass
class Defaults:
    """The paper defaults a run-record entry trained under, against today's: ``as_today`` when its
    models are the ones today's defaults train (today's config, or today's but for a smaller cap of
    epochs that none of its runs reached: the plateau schedule does not depend on the cap), with the
    cap it ran under and the words the README's tables show."""
    as_today: bool
    cap: int | None
    words: str


def _defaults(run: dict, seeds: list[int], curves: list[dict] | None = None) -> Defaults:
    """:class:`Defaults` of the entry ``run`` (its notebook's models at ``seeds``), from its config
    hash and, for a config that is today's but for the cap, the learning curves ``curves``
    (:func:`_paper_curves` by default) of every one of its models (paper_histories.under_a_smaller_cap)."""
    today, config = make_config("paper"), _run_config(run)
    if config == today.hash():
        return Defaults(True, today.train.epochs, f"today's (`{config}`)")
    capped = paper_histories.under_a_smaller_cap(run["notebook"][:2], config, run.get("model_code", ""), seeds,
                                                 _paper_curves() if curves is None else curves)
    if capped is None:
        return Defaults(False, None, f"former (`{config}`)")
    if not capped["runs"]:
        return Defaults(True, capped["cap"], f"today's but for the cap (`{config}`: cap {capped['cap']}, no model here)")
    if not capped["reached"]:
        return Defaults(True, capped["cap"], f"today's but for the cap (`{config}`: cap {capped['cap']}, which none "
                                             f"of its {capped['runs']} runs reached)")
    return Defaults(False, capped["cap"], f"former (`{config}`: cap {capped['cap']}, which {capped['reached']} of its "
                                          f"{capped['runs']} runs reached)")


def _rule_factor(run: dict) -> tuple[float, str]:
    """How much longer a model trains under today's paper profile than under ``run``'s, and the
    words for it: the ratio of the mean epochs of the paper patience study's runs under the two
    rules (measured side by side, one sitting; :func:`_epoch_ratios`); 1 when the run trained
    under today's defaults, or under defaults the study did not compare."""
    cfg = make_config("paper")
    if _run_config(run) != OLD_PAPER_CONFIG or cfg.train.lr_schedule != "plateau":
        return 1.0, ""
    rows = _paper_study_rows()
    reference = patience_study.patience_rule(cfg.train.patience)
    now, then = _epoch_ratios(rows, reference)[patience_study.plateau_rule(cfg.train.patience)]
    return now / then, (f", scaled by {now / then:.2f} here: the paper patience study's plateau runs took {now:.1f} "
                        f"epochs on average, its runs under the former rule ({reference}, cosine to a 30-epoch "
                        f"cap) {then:.1f}")


def paper_table3() -> str:
    """Notebook 02 at the paper profile: its table with the reference rows and gap closed, the
    paired differences with their verdicts, and the run that made them."""
    table = pd.read_csv(ROOT / "results" / "paper" / "02_table3.csv", index_col=0, keep_default_na=False)
    cols = ["HR@5", "NDCG@5", "valueHR@5", "ecpmNDCG@5", "gap closed HR@5 (%)"]
    gap = {row: tables.parse_mean_ci(cell) for row, cell in table["gap closed HR@5 (%)"].items()}
    refs = ("random", "popularity", "co-occurrence", "interest oracle", "value oracle")
    models = {row: mc for row, mc in gap.items() if row not in refs}
    best, (co, co_ci) = max(models, key=lambda r: models[r][0]), gap["co-occurrence"]
    overlap = abs(models[best][0] - co) < models[best][1] + co_ci
    learned = (f"The Step-2 models close {min(m for m, _ in models.values()):.1f}–{models[best][0]:.1f}% of the "
               f"popularity → oracle gap ({table['seeds'].iloc[0]}-seed means); the best, {best} ({models[best][0]:.1f} ± "
               f"{models[best][1]:.1f}%), is {'below' if models[best][0] < co else 'above'} the non-learned "
               f"co-occurrence list ({co:.1f} ± {co_ci:.1f}%){', within the CIs' if overlap else ''}. "
               f"Each design against the paper's, paired by seed:\n\n")
    return (markdown_table(table[cols].rename_axis(f"paper profile, {table['seeds'].iloc[0]} seeds")).rstrip("\n") + "\n\n" + learned
            + table3(ROOT / "results" / "paper") + "\n" + _paper_run_line("02"))


def _paper_run_line(notebook: str) -> str:
    """One sentence on the committed paper run of ``notebook`` ("02"): wall time against issue 14's
    bound, GPU use, commit and model code, from the run record."""
    run = _paper_run(f"{notebook}_")
    return (f"Notebook {notebook}, paper profile: {run['seconds']:.0f} s on one {run['gpu']}, "
            f"{'over' if run['seconds'] > NOTEBOOK_BOUND_S else 'within'} the {NOTEBOOK_BOUND_S // 60} minutes "
            f"per notebook of issue 14 "
            f"(GPU busy {run['gpu_busy_percent']:.0f}% of nvidia-smi's {run['gpu_samples']} samples, peak "
            f"{run['gpu_memory_peak_mib'] / 1024:.0f} GiB), commit `{run['commit'][:7]}`, model code `{run['model_code']}`.\n")


@dataclass(frozen=True)
class Claim:
    """One comparison the paper reports, and where each profile's notebook writes ours: row
    ``row`` of ``results/<profile>/<table>.csv``, column ``column``, a paired "mean ± ci" cell."""
    label: str
    notebook: str
    table: str
    row: str
    column: str
    paper: float
    paper_shown: str


def _claims() -> list[Claim]:
    """Every paper comparison the notebooks test, in notebook order, with the paper's own difference."""
    t2, t3, t1 = paper.TABLE2, paper.TABLE3_HR5, paper.TABLE1_HR
    design, full = t3["Step 2 only (paper design)"], t2["Full OneRanker"][0]
    out = [Claim(f"Table 3: {v} minus the paper's design, HR@5", "02", "02_table3_paired", v, "HR@5", t3[v] - design,
                 f"{t3[v] - design:+.4f}") for v in ("self-attention before cross-attention", "without the heterogeneous mask")]
    out += [Claim(f"Table 2 (Step 2): {v} minus Step 2 only, HR@5", "03", "03_step2_ablations_paired", v, "HR@5",
                  t2[f"Step 2 {v}"][0] - t2["Step 2 only (no ranker)"][0],
                  f"{t2[f'Step 2 {v}'][0] - t2['Step 2 only (no ranker)'][0]:+.4f}")
            for v in ("without Fake Item Tokens", "without Fake Items and task tokens")]
    step2 = t2["Step 2 only (no ranker)"][0]
    # notebook 04 tests the ranker's share of Table 2 on its own models, as 05 does in its full table
    out.append(Claim("Table 2: full OneRanker (ranked) minus Step 2 only, HR@5 (05 tests it reversed)", "04", "04_ranker_vs_step2_only",
                     "full OneRanker (ranked)", "HR@5", full - step2, f"{full - step2:+.4f}"))
    out += [Claim(f"Table 2: {v} minus full OneRanker, HR@5", "05", "05_table2_vs_full", v, "HR@5", t2[v][0] - full,
                  f"{t2[v][0] - full:+.4f}") for v in t2 if v != "Full OneRanker"]
    out += [Claim(f"Table 1: OneRanker minus {name}-style, HR@5", "06", "06_oneranker_vs_baselines", f"{name}-style", "HR@5",
                  t1["OneRanker"][2] - t1[name][2], f"{t1['OneRanker'][2] - t1[name][2]:+.4f}") for name in ("HSTU", "GPR")]
    gmv = paper.AB["GMV"]
    shown = ", ".join(f"{v:+.2f}% at {share}" + (" (n.s.)" if (share, "GMV") in paper.AB_NOT_SIGNIFICANT else "")
                      for share, v in gmv.items())
    out.append(Claim("A/B: OneRanker's GMV lift over the cascade", "06", "06_ab_gmv_cost", "OneRanker", "vs cascade: gmv",
                     float(gmv["20% traffic"]), shown))   # the sign of its one significant GMV lift
    return out


def _claim_cell(claim: Claim, directory: Path) -> str:
    """Our "mean ± ci: verdict" for one claim from one profile's results, or why there is none."""
    path = directory / f"{claim.table}.csv"
    if not path.exists():
        return "not yet run"
    t = _ab_table(directory) if claim.table == "06_ab_gmv_cost" else pd.read_csv(path, index_col=0, keep_default_na=False)
    if claim.row not in t.index or claim.column not in t.columns:
        raise LookupError(f"{path} has no cell ({claim.row!r}, {claim.column!r}) for the claim {claim.label!r}")
    cell = str(t.loc[claim.row, claim.column])
    mean, ci = tables.parse_mean_ci(cell)
    return f"{cell.strip()}: {tables.verdict(mean, ci, claim.paper).split(' (')[0]}"


SCALE_TABLES = {"02": "02_table3", "03": "03_step2_ablations", "04": "04_ranker_ablations", "05": "05_table2",
                "06": "06_table1_hr"}
REFERENCES = ("random", "popularity", "co-occurrence", "interest oracle", "value oracle")


def _scale_row(notebook: str, profile: str) -> dict | None:
    """One notebook's scale at one profile: the HR@5 gap closed by its models (lowest and highest
    mean; a model with a served and a generated list counts by each), the co-occurrence list's, and
    popularity's and the interest oracle's HR@5, from its main table; None where it has not run."""
    path = ROOT / "results" / profile / f"{SCALE_TABLES[notebook]}.csv"
    if not path.exists():
        return None
    t = pd.read_csv(path, index_col=0, keep_default_na=False)
    gap = list(zip(t.index, map(tables.parse_mean_ci, t["gap closed HR@5 (%)"])))   # 04 lists a model twice (generated, ranked)
    models = [m for i, m in gap if i not in REFERENCES]
    cooc = next(m for i, m in gap if i == "co-occurrence")
    low, high = min(models, key=lambda m: m[0]), max(models, key=lambda m: m[0])
    first = lambda name: t.loc[t.index == name, "HR@5"].iloc[0]  # noqa: E731  (04 lists some rows twice)
    return {"notebook": notebook, "profile": profile, "seeds": str(t["seeds"].iloc[0]), "model rows": str(len(models)),
            "gap closed, lowest model": f"{low[0]:.1f} ± {low[1]:.1f}%", "gap closed, highest model": f"{high[0]:.1f} ± {high[1]:.1f}%",
            "co-occurrence, gap closed": f"{cooc[0]:.1f} ± {cooc[1]:.1f}%",
            "popularity HR@5": first("popularity"), "interest oracle HR@5": first("interest oracle")}


def paper_scale() -> str:
    """The scale beside the paper-claims table: per notebook and profile, how much of the
    popularity -> interest-oracle HR@5 gap its models close against the non-learned co-occurrence list."""
    rows = [r for nb in SCALE_TABLES for prof in ("quick", "paper") if (r := _scale_row(nb, prof)) is not None]
    lines = [f"- {prof}: {_beyond_counts(ROOT / 'results' / prof)}" for prof in ("quick", "paper")]
    return (markdown_table(pd.DataFrame(rows), index=False).rstrip("\n")
            + "\n\nHas the full model learned more than item-to-item counts? Full OneRanker minus the co-occurrence "
              "list, HR@5, paired by seed (notebook 04, `04_headline_vs_baselines.csv`):\n\n" + "\n".join(lines) + "\n")


def _beyond_counts(directory: Path) -> str:
    """The full model's lists minus the co-occurrence list (HR@5, mean ± 95% CI over seeds) from
    notebook 04's headline table in ``directory``, each with whether it is separated from 0; what
    is missing where the table predates the row (it was added on 2026-12-04) or 04 has not run."""
    path = directory / "04_headline_vs_baselines.csv"
    if not path.exists():
        return "notebook 04 has not run"
    table = pd.read_csv(path, index_col=[0, 1], keep_default_na=False)
    if "vs co-occurrence" not in table.index.get_level_values(0):
        return "not in its table yet (its run of 04 predates the row)"
    return "; ".join(f"{name} {cell}, " + tables.says(tables.verdict(*tables.parse_mean_ci(cell)), "above it", "below it",
                                                       "not separated from it")
                     for name, cell in table.loc["vs co-occurrence", "HR@5"].items())


def paper_claims() -> str:
    """The paper's comparisons side by side: its difference, ours at the quick profile and ours at
    the paper profile (3 seeds on one GPU) where that notebook has run, each with the verdict rule."""
    from oneranker.studies import SEEDS

    record = _paper_record()
    paper_seeds = record["seeds"]
    defaults = _paper_defaults(record)
    rows = [{"claim": c.label, "notebook": c.notebook, "paper": c.paper_shown,
             "quick (seeds)": f"{_claim_cell(c, QUICK)} ({len(SEEDS[c.notebook])})",
             f"paper profile ({len(paper_seeds)} seeds)": _claim_cell(c, ROOT / "results" / "paper"),
             "paper run's defaults": defaults.get(c.notebook, "not yet run")} for c in _claims()]
    table = pd.DataFrame(rows)
    counts = {col: table[col].str.extract(r": (reproduced|not separated|opposite to the paper)")[0].value_counts()
              for col in table.columns[3:5]}
    summary = "; ".join(f"{col}: " + ", ".join(f"{n} {word}" for word, n in counts[col].items()) for col in counts
                        if len(counts[col]))
    return (markdown_table(table, index=False).rstrip("\n") + f"\n\n{len(table)} rows, {len(table) - 1} distinct "
            f"comparisons (04 and 05 both test full OneRanker against Step 2 only). {summary}.\n")


def _paper_defaults(record: dict) -> dict[str, str]:
    """Per notebook (two digits), the paper-profile defaults its recorded run trained under:
    today's, today's but for a smaller cap that none of its runs reached (:func:`_defaults`), or
    the former ones (an entry without ``profile_config`` ran under ``OLD_PAPER_CONFIG``), each
    with its config hash. During a rerun under new defaults the claims' cells mix them, and this
    says which is which."""
    curves = _paper_curves()
    return {run["notebook"][:2]: _defaults(run, record.get("seeds", [0, 1, 2]), curves).words for run in record["runs"]}


def paper_mps() -> str:
    """benchmarks/training_throughput.py's 8 models at once with and without CUDA's MPS
    (results/paper/mps_throughput_h200.txt): each call's pair, in the order they ran."""
    rows, call, state = [], None, None
    for line in (ROOT / "results" / "paper" / "mps_throughput_h200.txt").read_text().splitlines():
        if m := MPS_CALL.match(line):
            call = int(m["call"])
        elif m := MPS_SECTION.match(line):
            state = m["state"]
        elif m := MPS_LINE.match(line):
            rows.append({"call": call, "MPS": state, "models at once": int(m["models"]),
                         "requests/s": int(m["rps"]), "ms per step of one model": float(m["ms"]),
                         "GPU busy (nvidia-smi, %)": m["busy"], "warm-up, s": int(m["warm"])})
    table = pd.DataFrame(rows)
    ratios = []
    for call, g in table.groupby("call", sort=False):
        on, off = (float(g.loc[g["MPS"] == s, "requests/s"].iloc[0]) for s in ("on", "off"))
        first = g["MPS"].iloc[0]
        ratios.append(f"call {call} (MPS {first} first): {on / off:.2f}×")
    return (markdown_table(table, index=False).rstrip("\n") + "\n\nRequests/s with MPS ÷ without, per call: "
            + "; ".join(ratios) + ".\n")


GRAPHS_LINE = re.compile(r"^\s*(?P<spec>\S+): .*?(?P<models>\d+) model\(s\) at once:\s+(?P<rps>\d+) requests/s,.*?"
                         r"(?P<ms>[\d.]+) ms per step of one model,.*?GPU busy (?P<busy>\d+|n/a)%?.*?"
                         r"warm-up (?P<warm>\d+) s.*?MPS (?P<mps>on|off), CUDA graphs (?P<graphs>on|off)")


def paper_mps_graphs() -> str:
    """benchmarks/training_throughput.py with MPS and train.cuda_graphs switched per contender,
    two invocations on two machines (results/paper/mps_graphs_throughput_h200.txt); the first
    invocation's lines predate the CUDA-graphs column (graphs off)."""
    rows, invocation = [], 0
    for line in (ROOT / "results" / "paper" / "mps_graphs_throughput_h200.txt").read_text().splitlines():
        if line.startswith("# python"):
            invocation += 1
        elif m := MPS_LINE.match(line):
            g = GRAPHS_LINE.match(line)
            rows.append({"invocation": invocation, "contender": m["spec"], "models at once": int(m["models"]),
                         "MPS": "on" if "MPS on" in line else "off", "CUDA graphs": g["graphs"] if g else "off",
                         "requests/s": int(m["rps"]), "ms per step of one model": float(m["ms"]),
                         "GPU busy (nvidia-smi, %)": m["busy"], "warm-up, s": int(m["warm"])})
    table = pd.DataFrame(rows)
    later = table[(table["models at once"] == 8) & table.duplicated("invocation")]   # each invocation's first left out
    mean = later.groupby(["MPS", "CUDA graphs"])["requests/s"].agg(["mean", "count"])
    text = "; ".join(f"MPS {mps}, graphs {graphs}: {r['mean']:.0f} ({int(r['count'])} contender"
                     f"{'s' if r['count'] > 1 else ''})" for (mps, graphs), r in mean.iterrows())
    from oneranker.config import make_config

    batch = make_config("paper").train.batch_size
    on = mean.loc[("on", "off"), "mean"]
    kernel = _graphed_step_rows()
    kernel_ms = float(kernel.loc[kernel["contender"] == "today", "GPU kernel ms per step"].iloc[0])
    return (markdown_table(table, index=False).rstrip("\n") + "\n\nMean requests/s of the eight-model contenders, "
            "each invocation's first contender left out (it ran slower in every invocation): " + text + ". "
            f"With MPS that is {on / batch:.1f} model-steps a second (batches of {batch}), "
            f"{1e3 * batch / on:.1f} ms per model-step, against {kernel_ms:.1f} ms of GPU kernels in one eager "
            "step of a model alone (`paper-graphed-step` below).\n")


def _graphed_step_rows() -> pd.DataFrame:
    """benchmarks/training_step.py's eager, second eager and graphed contenders on one paper model
    (results/paper/training_step_graphed_h200.txt)."""
    rows = []
    pattern = re.compile(r"^\s*(?P<name>[\w-]+):\s+(?P<ms>[\d.]+) ms per step \(median of (?P<n>\d+), p90 (?P<p90>[\d.]+)\), "
                         r"(?P<ratio>[\d.]+)x .*?GPU kernels (?P<gpu>[\d.]+) ms and (?P<k>\d+) kernels per step.*?"
                         r"by at most (?P<drift>[\d.e+-]+)")
    for line in (ROOT / "results" / "paper" / "training_step_graphed_h200.txt").read_text().splitlines():
        if m := pattern.match(line):
            rows.append({"contender": m["name"], "ms per step (median)": float(m["ms"]), "p90": float(m["p90"]),
                         "speed ÷ today": float(m["ratio"]), "GPU kernel ms per step": float(m["gpu"]),
                         "kernels per step": int(m["k"]), "max weight distance from today": m["drift"]})
    return pd.DataFrame(rows)


def paper_graphed_step() -> str:
    """The table of :func:`_graphed_step_rows`."""
    return markdown_table(_graphed_step_rows(), index=False)


def _stack_profile(name: str, contender: str) -> str:
    """The profiler table stacked_step.py printed after ``contender``'s result line."""
    lines = (ROOT / "results" / "paper" / name).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if (m := STACK_LINE.match(line)) and m["name"] == contender)
    table = []
    for line in lines[start + 1:]:
        if STACK_LINE.match(line) or line.startswith("rc="):
            break
        table.append(line)
    return "\n".join(table)


TRUTH_LINE = re.compile(r"^\s*(?P<name>.+?):\s+(?P<s>[\d.]+) s \(median of (?P<n>\d+)\), (?P<ratio>[\d.]+)x the first row")


def truth_speed() -> str:
    """benchmarks/truth.py: the truth over the catalogue for evaluation, the catalogue given as
    items against items=None, side by side in one run."""
    text = (ROOT / "results" / "paper" / "truth_cpu.txt").read_text()
    head = next(line for line in text.splitlines() if line.startswith("# device"))
    rows = {m["name"]: m for m in map(TRUTH_LINE.match, text.splitlines()) if m}
    old, new = rows["catalogue given as items"], rows["items=None"]
    same = "bit for bit the same pCTR" if "identical pCTR: True" in head else "DIFFERENT pCTR"
    size = re.search(r"(\d+) requests x (\d+) ads", head)
    return (f"{new['s']} s instead of {old['s']} s ({new['ratio']}×, median of {new['n']}) for the truth of "
            f"{int(size[1]):,} requests × {int(size[2]):,} ads on this 2-core CPU, {same}.\n")


LIST_METRICS_LINE = re.compile(r"^(?P<what>[^:]+): (?P<old_name>.+?) (?P<old>[\d.]+) s, (?P<new_name>.+?) (?P<new>[\d.]+) s, "
                               r"(?P<ratio>[\d.]+)x; equal(?P<within> within \S+)?: (?P<equal>True|False)$")


def list_metrics_speed() -> str:
    """benchmarks/list_metrics.py: the oracles' top-n, a list's metrics and a ranker's GAUC at
    the paper profile's shapes against the code they replaced, side by side in one run."""
    text = (ROOT / "results" / "quick" / "list_metrics_cpu.txt").read_text()
    head = next(line for line in text.splitlines() if line.startswith("# device"))
    lines = []
    for m in filter(None, map(LIST_METRICS_LINE.match, text.splitlines())):
        same = ("A DIFFERENT OUTPUT" if m["equal"] != "True" else
                f"the same output to{m['within'].removeprefix(' within')}" if m["within"] else "the same output exactly")
        lines.append(f"- {m['what']}: {m['new']} s instead of {m['old']} s ({m['ratio']}×; {m['old_name']} before, "
                     f"{m['new_name']} now), {same}.")
    return "\n".join(lines) + f"\n\n({head.removeprefix('# ')}; this project's 2-core machine.)\n"


STEP_KERNELS = {"FlexAttention backward": "triton_tem_fused_flex_attention_backward",
                "LayerNorm backward": "aten::native_layer_norm_backward",
                "embedding backward": "aten::embedding_dense_backward"}


def _kernel_shares(table: str) -> dict[str, float]:
    """Self-CUDA share (%) of each row of one torch.profiler table, by name (first row of a name;
    the kernel names that the label table matches by prefix end in a compile-time index)."""
    shares: dict[str, float] = {}
    for line in table.splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) == 11 and cols[7].endswith("%") and cols[0] != "Name":
            shares.setdefault(cols[0], float(cols[7].rstrip("%")))
    return shares


def paper_step_profile() -> str:
    """Run 6's profile of three training steps per seed (after epoch 1, the other models
    training beside it): GPU kernel time and kernels per step against the profiled wall time
    per step (the JSON records), and the largest kernels' shares of the kernel time (the
    profile tables; a kernel outside a table's top rows is shown as below its smallest row)."""
    recs = _probe_records(SEEDS_RUN)
    profiles = {r["seed"]: r["profile"] for r in recs if "profile" in r}
    text = (ROOT / "results" / "paper" / f"{SEEDS_RUN}_profile.txt").read_text()
    tables = dict(zip(map(int, re.findall(r"^# seed (\d+)", text, re.M)), re.split(r"^# seed \d+\n", text, flags=re.M)[1:]))
    rows = []
    for seed in sorted(profiles):
        prof, shares = profiles[seed], _kernel_shares(tables[seed])
        row = {"seed": str(seed), "GPU kernel ms per step": f"{1e3 * prof['gpu_kernel_s_per_step']:.0f}",
               "kernels per step": f"{prof['gpu_kernels_per_step']:,.0f}",
               "wall ms per profiled step": f"{1e3 * prof['wall_s_per_step_profiled']:.0f}"}
        for label, name in STEP_KERNELS.items():
            share = next((v for k, v in shares.items() if k.startswith(name)), None)
            row[f"{label}, share of kernel time"] = f"{share:.0f}%" if share is not None else f"< {min(shares.values()):.0f}%"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows), index=False)


SMALL_MODEL_RUN = "paper_world_small_model_cpu"


def paper_world_small_model() -> str:
    """results/paper/paper_world_small_model_cpu.jsonl beside run 6: the full model under
    today's defaults on the paper profile's worlds, at the quick model's size on this 2-core
    CPU (fp32 and dense attention; one run in bf16 autocast) and at the paper's size on the
    H200 (bf16, FlexAttention): the validation loss over the first four epochs and the share
    of the popularity -> oracle gap that the served list closes at the last scored epoch up to
    the fourth. Runs stopped before their fourth epoch show the epochs they have."""
    small, big = _probe_records(SMALL_MODEL_RUN), _probe_records(SEEDS_RUN)
    sizes = {r["seed"]: r["set"] for r in small if "references HR@5" in r}
    rows = []
    for seed in sorted(sizes):
        runs = [("quick-sized, CPU, " + precision, [r for r in small if r.get("precision", "fp32") == precision])
                for precision in ("fp32", "bf16")]
        for label, recs in runs + [("paper-sized, H200 (run 6), bf16", big)]:
            refs = next(r["references HR@5"] for r in recs + small if r.get("seed") == seed and "references HR@5" in r)
            curve = {r["epoch"]: r for r in recs if r.get("seed") == seed and "epoch" in r and r["epoch"] <= 4}
            if not curve:
                continue
            row = {"seed": str(seed), "model": label}
            row |= {f"validation loss, epoch {e}": f"{curve[e]['valid_loss']:.2f}" for e in sorted(curve)}
            scored = [e for e in sorted(curve) if "HR@5 ranked" in curve[e]]
            row["served (epoch)"] = f"{_gap_percent(curve[scored[-1]]['HR@5 ranked'], refs)} ({scored[-1]})" if scored else ""
            rows.append(row)
    size = ", ".join(f"`{k}={v}`" for k, v in next(iter(sizes.values())).items())
    return (markdown_table(pd.DataFrame(rows).fillna(""), index=False)
            + f"\nThe quick-sized model: the paper profile with {size}. Gap closed: each seed's own "
              f"popularity → interest-oracle gap on its 1,000 test requests.\n")


def _probe_profile_line() -> str:
    """Run 1's profile of three steps: GPU kernel time per step (the profile table's own total;
    the JSON record's GPU figure of that run counted operators and kernels twice) against the
    wall time per step of the same variant's unprofiled epochs."""
    recs = _probe_records(PROBE_RUNS[0])
    prof = next(r for r in recs if "profile" in r)
    table = (ROOT / "results" / "paper" / f"{PROBE_RUNS[0]}_profile.txt").read_text()
    gpu_ms = float(re.search(r"Self CUDA time total: ([\d.]+)ms", table).group(1)) / 3
    curve = [r for r in recs if r.get("variant") == prof["variant"] and "epoch" in r]
    steps = curve[1]["steps"] - curve[0]["steps"]
    step_ms = 1e3 * pd.Series([r["seconds"] for r in curve[2:]]).median() / steps
    return (f"\nRun 1's profile of three training steps of its first variant ({prof['variant']}, after epoch 1, the "
            f"other three models training beside it; `{PROBE_RUNS[0]}_profile.txt`): {gpu_ms:.0f} ms of GPU kernel "
            f"time per step, against {step_ms:.0f} ms of wall time per step in that variant's unprofiled epochs "
            f"(median epoch over {steps} steps). Those three steps trained that model: its epoch 2 then skipped "
            f"three batches and the Fake-Item refresh (the script now restores the model after profiling).\n")


def long_history_lab() -> str:
    """results/quick/long_history_lab.jsonl: the quick model over paper-length histories on
    this 2-core CPU (scripts/paper_learning.py --set ..., seed 0, early stopping off): HR@5 of
    the generated list at epoch 2 and at the last scored epoch, with the references of the
    same requests."""
    recs = [json.loads(line) for line in (QUICK / "long_history_lab.jsonl").read_text().splitlines()]
    heads = [r for r in recs if "references HR@5" in r]
    if len({json.dumps(r["set"], sort_keys=True) for r in heads}) != 1 or len({r["data"] for r in heads}) != 1:
        raise ValueError("long_history_lab.jsonl: its runs are of different settings or data")
    refs = heads[0]["references HR@5"]
    closed = lambda v: _gap_percent(v, refs)  # noqa: E731
    scored = [r for r in recs if "HR@5 generated" in r and "epoch" in r]
    rows = []
    for name in dict.fromkeys(r["variant"] for r in scored):
        curve = [r for r in scored if r["variant"] == name]
        at2, last = next(r for r in curve if r["epoch"] == 2), curve[-1]
        rows.append({"variant (quick model, paper-length histories, seed 0)": name.removeprefix("quick: "),
                     "HR@5, epoch 2": f"{at2['HR@5 generated']:.4f}", "gap closed, epoch 2": closed(at2["HR@5 generated"]),
                     "last scored epoch": str(last["epoch"]), "HR@5, last scored epoch": f"{last['HR@5 generated']:.4f}",
                     "gap closed, last scored epoch": closed(last["HR@5 generated"])})
    for name in ("random", "popularity", "co-occurrence", "interest oracle"):
        rows.append({"variant (quick model, paper-length histories, seed 0)": f"{name} (reference)",
                     "HR@5, epoch 2": f"{refs[name]:.4f}", "gap closed, epoch 2": closed(refs[name])})
    settings = ", ".join(f"`{k}={v}`" for k, v in heads[0]["set"].items())
    return markdown_table(pd.DataFrame(rows).fillna(""), index=False) + f"\nSettings over the quick profile: {settings}.\n"


def task_query_quick() -> str:
    """results/quick/step2_queries_probe.jsonl (scripts/paper_learning.py at the quick profile,
    early stopping as in the notebooks): learned task queries against queries that add the
    newest Step-1 state, paired per seed, with the references of each seed's requests."""
    recs = [json.loads(line) for line in (QUICK / "step2_queries_probe.jsonl").read_text().splitlines()]
    refs = {r["seed"]: r["references HR@5"] for r in recs if "references HR@5" in r}
    cut = [r for r in recs if "cut_by_wall_limit_after_epoch" in r or r.get("cut_by_wall_limit")]
    if cut:
        raise ValueError(f"step2_queries_probe.jsonl: {len(cut)} run(s) cut by the wall limit, not converged")
    finals = pd.DataFrame([r for r in recs if r.get("final")])
    if finals.duplicated(["seed", "variant"]).any():
        raise ValueError("step2_queries_probe.jsonl: a (seed, variant) has more than one final row")
    finals["list"] = ["served" if pd.notna(r) else "generated" for r in finals.get("HR@5 ranked", pd.Series([None] * len(finals)))]
    finals["HR@5 shown"] = finals["HR@5 ranked"].fillna(finals["HR@5 generated"])
    finals["gap"] = [_gap(v, refs[s]) for v, s in zip(finals["HR@5 shown"], finals["seed"])]
    rows = []
    for model in ("Step 2 only", "full"):
        base = finals[finals.variant == f"quick: {model}"].set_index("seed")
        last = finals[finals.variant == f"quick: {model}, queries + last state"].set_index("seed")
        seeds = sorted(set(base.index) & set(last.index))
        for name, g in (("learned", base), ("learned+last", last)):
            g = g.loc[seeds]
            rows.append({"model": f"{model} ({g['list'].iloc[0]} list)", "task_query": name,
                         "HR@5": _pm(g["HR@5 shown"]), "gap closed": _pm(g["gap"], percent=True),
                         "best epoch": _pm(g["best_epoch"], digits=1), "seeds": str(len(seeds))})
        diff, ci = mean_ci(last.loc[seeds, "HR@5 shown"] - base.loc[seeds, "HR@5 shown"])
        ep, ep_ci = mean_ci(last.loc[seeds, "best_epoch"] - base.loc[seeds, "best_epoch"])
        rows.append({"model": f"{model}: learned+last − learned (paired)", "task_query": "",
                     "HR@5": f"{diff:+.4f} ± {ci:.4f}: {tables.verdict(diff, ci)}", "gap closed": "",
                     "best epoch": f"{ep:+.1f} ± {ep_ci:.1f}: {tables.verdict(ep, ep_ci)}", "seeds": str(len(seeds))})
    for name in ("random", "popularity", "co-occurrence", "interest oracle"):
        values = [refs[s][name] for s in sorted(refs)]
        gaps = [_gap(refs[s][name], refs[s]) for s in sorted(refs)]
        rows.append({"model": f"{name} (reference)", "task_query": "", "HR@5": _pm(values),
                     "gap closed": _pm(gaps, percent=True), "best epoch": "", "seeds": str(len(refs))})
    ended = int(finals["stopped_early"].sum())
    line = (f"All {ended} runs ended by early stopping (the longest after {finals['epochs'].max()} epochs)."
            if ended == len(finals) else
            f"{len(finals) - ended} of {len(finals)} runs did not end by early stopping: they may not have converged.")
    return markdown_table(pd.DataFrame(rows), index=False) + f"\n{line}\n"


def table1(directory: Path = QUICK) -> str:
    """Notebook 06: the paper's Table 1 on served lists, with the references and the gap closed."""
    t = _csv("06_table1_hr", directory)
    seeds = t.pop("seeds").iloc[0]
    return markdown_table(t.rename_axis(f"served list ({seeds} seeds)"))


def table1_verdicts(directory: Path = QUICK, metrics: tuple[str, ...] = ("HR@5", "valueHR@5")) -> str:
    """Notebook 06: OneRanker minus each pipeline on ``metrics``, with the paper's difference on
    HR@5 where Table 1 has the pipeline (HSTU, GPR)."""
    d = _csv("06_oneranker_vs_baselines", directory)
    paper_diff = {"HSTU-style": paper.TABLE1_HR["OneRanker"][2] - paper.TABLE1_HR["HSTU"][2],
                  "GPR-style": paper.TABLE1_HR["OneRanker"][2] - paper.TABLE1_HR["GPR"][2]}
    lines = []
    for other in d.index:
        for metric in metrics:
            mean, ci = tables.parse_mean_ci(d.loc[other, metric])
            theirs = paper_diff.get(other) if metric == "HR@5" else None
            shown = f" (paper {theirs:+.4f})" if theirs is not None else ""
            lines.append(f"- OneRanker minus {other}, {metric}: {mean:+.4f} ± {ci:.4f}{shown}: "
                         f"{tables.verdict(mean, ci, theirs)}.")
    return "\n".join(lines) + "\n"


def _ab_table(directory: Path = QUICK) -> pd.DataFrame:
    """Notebook 06's A/B table, its two header rows joined ("vs cascade: gmv", ...)."""
    t = pd.read_csv(directory / "06_ab_gmv_cost.csv", header=[0, 1], index_col=0, keep_default_na=False)
    t.columns = [f"{a}: {b}" for a, b in t.columns]
    return t


def ab(directory: Path = QUICK) -> str:
    """Notebook 06: expected GMV and cost of each arm's 4-ad slate, lifts paired by seed (over the
    seeds of its Table 1)."""
    seeds = _csv("06_table1_hr", directory)["seeds"].iloc[0]
    return markdown_table(_ab_table(directory).rename_axis(f"arm ({seeds} seeds)"))


def _sitting_histories(notebook: str, directory: Path) -> list[Path]:
    """The learning-curve files of the committed paper run of ``notebook`` ("06"): its run record
    entry's commit and, where it ran in two sittings, its first sitting's (not a later rerun's)."""
    run = _paper_run(f"{notebook}_")
    commits = {run["commit"][:7]} | {row["commit"].strip("`") for row in _first_sittings_of(run, _first_sittings(directory))}
    return [path for c in sorted(commits) for path in sorted(directory.glob(f"histories_{notebook}_h[0-9]00_{c}.jsonl"))]


def paper_table1() -> str:
    """Notebook 06 at the paper profile: Table 1 on served lists (interest, HR, and value, eCPM-NDCG),
    OneRanker against each pipeline with verdicts, the simulated A/B, and the run that made them.
    The sentence on value is read from the paired table, so it says what the CSVs say."""
    directory = ROOT / "results" / "paper"
    hr = _csv("06_table1_hr", directory)
    ecpm = _csv("06_table1_ecpm_ndcg", directory)
    seeds = int(hr["seeds"].iloc[0])
    shown = hr[["HR@5", "HR@15", "gap closed HR@5 (%)"]].join(ecpm[["ecpmNDCG@5", "ecpmNDCG@15"]])
    d = _csv("06_oneranker_vs_baselines", directory)
    learned = [r for r in d.index if r not in reference.REFERENCES]

    def count(metric: str, side: str) -> list[str]:
        """The learned pipelines OneRanker is ``side`` of on ``metric``, by tables.verdict's rule."""
        return [r for r in learned if tables.verdict(*tables.parse_mean_ci(d.loc[r, metric])).startswith(f"{side} 0")]

    above_hr, below_value = count("HR@5", "above"), count("ecpmNDCG@5", "below")
    value = (f"On interest, OneRanker's served list is above {len(above_hr)} of the {len(learned)} learned pipelines on "
             f"HR@5 ({', '.join(above_hr) or 'none'}); on value it is below {len(below_value)} of them on eCPM-NDCG@5 "
             f"({', '.join(below_value) or 'none'}), paired by seed. ")
    gmv, gmv_ci = tables.parse_mean_ci(_ab_table(directory).loc["OneRanker", "vs cascade: gmv"].replace("%", ""))
    value += (f"Its simulated GMV against the cascade: {gmv:+.2f}% ± {gmv_ci:.2f}%, "
              f"{tables.verdict(gmv, gmv_ci, None)}.\n\n")
    records = [r for path in _sitting_histories("06", directory) for r in paper_histories.read(path)]
    capped = sum(not r["stopped_early"] for r in records)
    provisional = (f"Provisional: {capped} of the notebook's {len(records)} runs whose learning curves came back "
                   f"reached the epoch cap ([docs/paper_profile.md](docs/paper_profile.md), \"Trained to convergence?\").\n\n" if capped else "")
    return (provisional + markdown_table(shown.rename_axis(f"paper profile, served list ({seeds} seeds)")).rstrip("\n")
            + "\n\nOneRanker minus each list, paired by seed:\n\n"
            + table1_verdicts(directory, ("HR@5", "valueHR@5", "ecpmNDCG@5")) + "\n" + value
            + ab(directory) + "\n" + _paper_run_line("06"))


def targets() -> str:
    """The issue's quick-profile targets, from notebook 06's 5 seeds: the Step-1 generator
    (HSTU-style) closes >= 40% and OneRanker's served list >= 50% of the gap."""
    t = _csv("06_table1_hr")
    lines = []
    for name, shown, target in (("HSTU-style", "Step-1 generator (HSTU-style)", 40), ("OneRanker", "OneRanker, served", 50)):
        mean, ci = tables.parse_mean_ci(t.loc[name, "gap closed HR@5 (%)"])
        state = ("met" if mean - ci >= target else "missed" if mean + ci < target else
                 f"{'met' if mean >= target else 'missed'} in the mean, not by the CI")
        lines.append(f"- {shown}: {mean:.1f}% ± {ci:.1f}% of the popularity → interest-oracle HR@5 gap "
                     f"(target ≥ {target}%: {state}).")
    return "\n".join(lines) + "\n"


def code_version_checks() -> list[dict]:
    """Every results/quick/code_version_check*.json, as a chain: each comparison's old code is the
    one before's new code, starting from the code the committed results were computed with."""
    checks = [json.loads(f.read_text()) for f in sorted(QUICK.glob("code_version_check*.json"))]
    news = {c["new"] for c in checks}
    chain = [c for c in checks if c["old"] not in news]
    if len(chain) != 1:
        raise ValueError(f"the code-version checks do not form one chain: {[(c['old'], c['new']) for c in checks]}")
    while len(chain) < len(checks):
        after = [c for c in checks if c["old"] == chain[-1]["new"]]
        if len(after) != 1:
            raise ValueError(f"the code-version checks do not form one chain after {chain[-1]['new']}: "
                             f"{[(c['old'], c['new']) for c in checks]}")
        chain.append(after[0])
    return chain


def code_version_check() -> str:
    """scripts/compare_code_versions.py's comparisons of the quick models retrained under each
    later model code with those of the code before it, back to the code the committed results
    were computed with."""
    lines = []
    for r in code_version_checks():
        verdict = ("all bitwise equal" if not r["differ"] else
                   f"{len(r['differ'])} differ: {', '.join(r['differ'])}")
        lines.append(f"- Model code `{r['new']}` against `{r['old']}`: {r['compared']} quick models trained under "
                     f"both, {r['equal']} with bitwise equal weights and per-epoch losses ({verdict}); "
                     f"{r['only_old']} trained under `{r['old']}` only" + (f"; {r['note']}." if r.get("note") else "."))
    return "\n".join(lines) + "\n"


def workshop_times() -> str:
    """scripts/notebook_costs.py: the models each notebook trains and how long it runs."""
    costs = pd.read_csv(QUICK / "notebook_costs.csv", dtype={"notebook": str})
    record = json.loads((QUICK / "run_record.json").read_text())
    total = costs[["models first trained here", "training CPU-minutes"]].sum()
    cold = total["training CPU-minutes"] / record["cpu_count"] + costs["run minutes, models cached"].sum()
    note = (f"\n`training CPU-minutes`: the sum of the training times recorded in the models' histories (one "
            f"single-threaded process per model, as `pretrain` trains them on a CPU; measured on the "
            f"machine that trained each model, as its history records it). `run minutes, models cached`: each notebook's wall time in the "
            f"last `make reproduce` on {record['cpu_count']} CPU cores ({record['machine']}), every model already in the "
            f"cache (notebook 07's MovieLens models included). All {int(total['models first trained here'])} "
            f"models take about {total['training CPU-minutes']:.0f} CPU-minutes, so `pretrain` on {record['cpu_count']} cores "
            f"takes at most about {total['training CPU-minutes'] / record['cpu_count']:.0f} minutes, and a cold run of every "
            f"notebook at most about {cold:.0f} minutes: an upper estimate, since a history records its model's wall "
            f"time, which counts the waits of processes sharing a core; the fresh clones' runs in "
            f"[docs/reproducibility.md](reproducibility.md) measure the real time.\n")
    return markdown_table(costs, index=False) + note


QUICK_RERUN_OTHER_CPU = ROOT / "results" / "rerun_quick_intel_xeon_a0cc7c1.csv"


def quick_rerun_other_cpu(path: Path = QUICK_RERUN_OTHER_CPU) -> str:
    """scripts/compare_results.py's comparison of the committed quick tables with a fresh clone's
    rerun on another processor: how many tables moved, by how much against the seeds' CIs, which
    CIs changed their side of 0, and whether any cell changed in its words (a verdict)."""
    t = pd.read_csv(path, keep_default_na=False, na_values=[""])
    differ = t[t.cells_differing > 0]
    worst = differ.loc[differ.largest_shift_in_ci.idxmax()]
    words = int(t.text_cells_differing.sum())
    lines = [f"{len(t) - len(differ)} of {len(t)} result tables came back identical; {len(differ)} differ in "
             f"{int(differ.cells_differing.sum())} of their {int(differ.cells.sum())} cells "
             f"(`{path.relative_to(ROOT)}`, from `python scripts/compare_results.py`).",
             f"- The largest move of a mean: {worst.largest_shift_in_ci:.2f} of its 95% CI half-width over seeds "
             f"(`{worst.table}`).",
             "- Cells changed in their words: " + ("none." if words == 0 else
                                                   " | ".join(differ.text_differences[differ.text_cells_differing > 0]))]
    crossed = differ[differ.zero_side_changes > 0]
    lines.append(f"- CIs that changed their side of 0: {int(crossed.zero_side_changes.sum())}" +
                 ("." if crossed.empty else ":"))
    for row in crossed.itertuples():
        lines += [f"  - `{row.table}` {change}" for change in row.zero_side_differences.split(" | ")]
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "targets": targets,
    "headroom": headroom,
    "paper-patience-study": paper_patience_study,
    "stopping": stopping,
    "patience-study": patience_study_block,
    "paper-curves": paper_curves,
    "paper-probes": paper_probes,
    "paper-seeds": paper_seeds,
    "paper-world-small-model": paper_world_small_model,
    "paper-step-profile": paper_step_profile,
    "paper-lr-warmup": paper_lr_warmup,
    "paper-compile-throughput": paper_compile_throughput,
    "paper-step-contenders": paper_step_contenders,
    "paper-step-fusions": paper_step_fusions,
    "paper-determinism": paper_determinism,
    "gpu-benchmarks": benchmark_table.table,
    "paper-first-sittings": paper_first_sittings,
    "paper-card-passes": paper_card_passes,
    "gpu-tests": gpu_tests,
    "compile-checks": compile_checks,
    "paper-convergence": paper_convergence,
    "paper-histories": paper_histories_block,
    "paper-rerun-draws": paper_rerun_draws,
    "paper-rerun-04": paper_rerun_04,
    "paper-pool-blocks": paper_pool_blocks,
    "paper-workers-threads": paper_workers_threads,
    "paper-gpu-floor": paper_gpu_floor,
    "paper-step-summary": paper_step_summary,
    "paper-workers-summary": paper_workers_summary,
    "truth-speed": truth_speed,
    "list-metrics-speed": list_metrics_speed,
    "paper-stacked-step": paper_stacked_step,
    "paper-stacked-summary": paper_stacked_summary,
    "paper-headroom": paper_headroom,
    "paper-table3": paper_table3,
    "paper-claims": paper_claims,
    "paper-scale": paper_scale,
    "paper-series": paper_series,
    "paper-sitting-fit": paper_sitting_fit,
    "paper-sitting-plan": paper_sitting_plan,
    "paper-sitting-plan-fallback": lambda: paper_sitting_plan(SITTING_REHEARSAL_FALLBACK),
    "paper-mps": paper_mps,
    "paper-mps-graphs": paper_mps_graphs,
    "paper-graphed-step": paper_graphed_step,
    "long-history-lab": long_history_lab,
    "paper-arithmetic": paper_arithmetic,
    "task-query-quick": task_query_quick,
    "table1": table1,
    "paper-table1": paper_table1,
    "table1-verdicts": table1_verdicts,
    "ab": ab,
    "table2": table2,
    "table3": table3,
    "learnability": learnability,
    "real-data": real_data,
    "real-data-verdicts": real_data_verdicts,
    "code-version-check": code_version_check,
    "workshop-times": workshop_times,
    "quick-rerun-other-cpu": quick_rerun_other_cpu,
}

# The documents that hold rendered blocks: the README keeps the results and the headline of
# learnability, the lab notes behind them live in docs/. Where each block lives is read from the
# documents' own markers; every renderer must appear in exactly one of them.
DOCUMENTS = ("README.md", "docs/learning.md", "docs/paper_profile.md", "docs/workshop.md", "docs/reproducibility.md")


def document_blocks() -> dict[str, dict[str, Callable[[], str]]]:
    """Each document's renderers, found by its markers; refuses a renderer in no document or in two
    (a marker without a renderer is :func:`render`'s refusal)."""
    found = {doc: re.findall(r"<!-- BEGIN rendered: ([\w-]+) -->", (ROOT / doc).read_text()) for doc in DOCUMENTS}
    named = [n for names in found.values() for n in names]
    twice = sorted({n for n in named if named.count(n) > 1})
    unplaced = sorted(set(BLOCKS) - set(named))
    if twice or unplaced:
        raise ValueError(f"render_readme: blocks in two documents {twice}, in none of {DOCUMENTS} {unplaced}")
    return {doc: {n: BLOCKS[n] for n in names if n in BLOCKS} for doc, names in found.items()}


def render(text: str, blocks: dict[str, Callable[[], str]]) -> tuple[str, list[str]]:
    """The document with every block re-rendered, and the names of the blocks that changed."""
    changed = []

    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            raise KeyError(f"block {name!r} has no renderer in scripts/render_readme.py")
        body = blocks[name]()
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    out = BLOCK.sub(one, text)
    begins = re.findall(r"<!-- BEGIN rendered: ([\w-]+) -->", text)
    rendered = [m.group("name") for m in BLOCK.finditer(text)]
    if sorted(begins) != sorted(rendered) or sorted(rendered) != sorted(blocks):
        raise ValueError(f"blocks: markers {sorted(begins)}, complete blocks {sorted(rendered)}, "
                         f"renderers {sorted(blocks)}: each renderer needs exactly one complete block "
                         "(its marker says which document holds it)")
    return out, changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 when a block is stale")
    args = ap.parse_args()
    stale = []
    for name, blocks in document_blocks().items():
        path = ROOT / name
        new, changed = render(path.read_text(), blocks)
        stale += [f"{name}: {block}" for block in changed]
        if changed and not args.check:
            atomic_write_text(path, new)      # only a changed document, never half-written
    if args.check:
        if stale:
            print(f"blocks out of date with results/: {', '.join(stale)} (run scripts/render_readme.py)")
            return 1
        return 0
    print(f"re-rendered: {', '.join(stale) or 'nothing changed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
