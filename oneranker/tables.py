"""Tables from per-seed result rows: means with 95% CIs, differences paired by seed, the share
of the popularity -> oracle gap closed, the verdict rule, and the sentences notebooks quote.

Every function here takes a tidy frame (one row per variant, seed and list, as
:meth:`oneranker.study.Study.grid` returns) and computes nothing about models: tables are
built from the numbers, and the prose of the notebooks is built from the tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .metrics import mean_ci
from .outputs import output_dir
from .reference import INTEREST_ORACLE, POPULARITY, gap_closed

SERVED = "served"   # the list a variant would serve (its ranked list where it has a ranker)


def served(results: pd.DataFrame) -> pd.DataFrame:
    """The list each (variant, seed) would serve, relabelled ``served``: the ranked list where
    the variant has a ranker (its own R-Decoder or a cascade's), the generated list
    otherwise (generators and the reference lists)."""
    keys = ["variant", "seed"]
    has_ranked = results[results.list == "ranked"].set_index(keys).index
    pick = results.list.eq("ranked") | (results.list.eq("generated") & ~results.set_index(keys).index.isin(has_ranked))
    out = results[pick].copy()
    out["list"] = SERVED
    return out.reset_index(drop=True)


def with_gap_closed(results: pd.DataFrame, metric: str = "HR@5") -> pd.DataFrame:
    """``results`` with a column ``gap closed <metric>``: each row's share of the popularity ->
    interest-oracle gap of its own dataset and seed (:func:`reference.gap_closed`; 0 =
    popularity, 1 = the oracle). Needs the reference rows (``Study.grid(..., references=True)``)."""
    refs = results[results.variant.isin([POPULARITY, INTEREST_ORACLE])]
    missing = {POPULARITY, INTEREST_ORACLE} - set(refs.variant)
    if missing:
        raise ValueError(f"gap closed needs the reference rows {sorted(missing)}: run the grid with references=True")
    ends = refs.drop_duplicates(["data", "seed", "variant"]).pivot(index=["data", "seed"], columns="variant",
                                                                  values=metric)
    key = pd.MultiIndex.from_frame(results[["data", "seed"]])
    out = results.copy()
    out[f"gap closed {metric}"] = gap_closed(results[metric].to_numpy(), ends[POPULARITY].reindex(key).to_numpy(),
                                             ends[INTEREST_ORACLE].reindex(key).to_numpy())
    return out


def summarise(results: pd.DataFrame, metrics: list[str], by: tuple[str, ...] = ("variant", "list"),
              digits: int = 4) -> pd.DataFrame:
    """Mean and 95% CI half-width over seeds, as ``mean ± ci`` strings, rows in input order."""
    order = list(dict.fromkeys(map(tuple, results[list(by)].values.tolist())))
    table = {}
    for key, group in results.groupby(list(by), sort=False):
        table[key] = {m: "{:.{d}f} ± {:.{d}f}".format(*mean_ci(group[m].values), d=digits) for m in metrics}
    out = pd.DataFrame.from_dict(table, orient="index")
    if len(by) == 1:
        out.index = pd.Index([k[0] for k in out.index], name=by[0])
        order = [k[0] for k in order]
    else:
        out.index = pd.MultiIndex.from_tuples(out.index, names=list(by))
    out = out.loc[order]
    out["seeds"] = results.groupby(list(by), sort=False).size().reindex(out.index).astype(int).values
    return out


def paired_difference(results: pd.DataFrame, metric: str, a: tuple[str, str], b: tuple[str, str],
                      relative: bool = False) -> tuple[float, float]:
    """Mean and 95% CI of ``metric(a) - metric(b)`` paired by seed ((variant, list) pairs):
    seeds share the world, so pairing removes the world-to-world variation. ``relative``:
    ``metric(a) / metric(b) - 1`` instead (a lift, as an A/B test reports it)."""
    def by_seed(v: tuple[str, str]) -> pd.Series:
        sel = results[results.variant == v[0]]
        if "list" in sel:                           # per-seed frames without lists pair by variant
            sel = sel[sel.list == v[1]]
        if sel.empty:
            raise KeyError(f"no rows for variant {v[0]!r}, list {v[1]!r}")
        return sel.set_index("seed")[metric]
    diff = (by_seed(a) / by_seed(b) - 1) if relative else (by_seed(a) - by_seed(b))
    return mean_ci(diff.dropna().values)


def paired_table(results: pd.DataFrame, metrics: list[str], variants: list[str | tuple[str, str]],
                 base: str | tuple[str, str], digits: int = 4, relative: bool = False,
                 list_name: str = "generated") -> pd.DataFrame:
    """``variant - base`` for each metric, paired by seed, as ``+mean ± ci`` strings. Variants
    and base are names (their ``list_name`` list) or (variant, list) pairs. ``relative``:
    lifts ``variant / base - 1`` in percent."""
    key = lambda v: _row_key(v, list_name)  # noqa: E731
    rows = {}
    for v in variants:
        a = key(v)
        label = a[0] if a[1] == list_name else f"{a[0]} ({a[1]})"
        rows[label] = {}
        for m in metrics:
            mean, ci = paired_difference(results, m, a, key(base), relative=relative)
            rows[label][m] = (f"{100 * mean:+.{digits}f}% ± {100 * ci:.{digits}f}%" if relative
                              else f"{mean:+.{digits}f} ± {ci:.{digits}f}")
    return pd.DataFrame.from_dict(rows, orient="index")


def _row_key(v: str | tuple[str, str], list_name: str) -> tuple[str, str]:
    """A (variant, list) pair: a bare variant name means its ``list_name`` list."""
    return (v, list_name) if isinstance(v, str) else tuple(v)


# A cell as the tables above write a mean and its 95% CI half-width: "0.1234 ± 0.0056",
# "+0.0042 ± 0.0061", "+1.2% ± 0.3%" (both numbers in percent, or neither).
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
MEAN_CI_CELL = re.compile(rf"(?P<mean>{_NUMBER})(?P<percent>%?)\s*±\s*(?P<ci>{_NUMBER})(?P=percent)")


def parse_mean_ci(cell: object) -> tuple[float, float]:
    """(mean, ci) of a ``mean ± ci`` cell as this module writes it, in the cell's own unit (a
    percent cell gives percents): the one reader of these cells, for code that takes a committed
    table back (the README's renderer, the comparison of two runs' tables). Any other cell is a
    ValueError naming it, rather than a number read from the wrong place."""
    m = MEAN_CI_CELL.fullmatch(str(cell).strip())
    if m is None:
        raise ValueError(f"not a 'mean ± ci' cell: {cell!r}")
    return float(m["mean"]), float(m["ci"])


def verdict(mean: float, ci: float, paper: float | None = None) -> str:
    """The project's verdict rule as words, for a paired difference ``mean ± ci`` (95% CI over
    seeds): with the paper's difference, *reproduced* when the CI excludes zero on the paper's
    side, *opposite to the paper* when it excludes zero on the other side, otherwise *not
    separated* (a null result at these seeds); without it, only whether the CI excludes zero."""
    side = "above" if mean >= 0 else "below"
    if mean - ci <= 0 <= mean + ci:
        return f"not separated (the CI contains 0; mean {side} 0)"
    if paper is None or paper == 0:
        return f"{side} 0 (the CI excludes 0)"
    return "reproduced (the paper's sign, the CI excludes 0)" if (mean > 0) == (paper > 0) else \
        "opposite to the paper (the CI excludes 0)"


def paired_sentence(results: pd.DataFrame, metric: str, a: str | tuple[str, str], b: str | tuple[str, str],
                    paper: float | None = None, list_name: str = "generated", digits: int = 4) -> str:
    """One markdown line, rendered from the per-seed rows: ``a - b`` on ``metric``, paired by
    seed, with the paper's difference beside it when given, and its :func:`verdict`. Notebooks
    quote results through this, never by typing numbers into prose."""
    key = lambda v: _row_key(v, list_name)  # noqa: E731
    mean, ci = paired_difference(results, metric, key(a), key(b))
    name = lambda v: key(v)[0] if key(v)[1] == list_name else f"{key(v)[0]} ({key(v)[1]})"
    ours = f"{mean:+.{digits}f} ± {ci:.{digits}f}"
    theirs = "" if paper is None else f" (paper: {paper:+.{digits}f})"
    return f"- {name(a)} minus {name(b)}, {metric}: {ours}{theirs}: {verdict(mean, ci, paper)}."


def mean_ci_columns(results: pd.DataFrame, by: str, metrics: list[str], list_name: str = "generated") -> pd.DataFrame:
    """One row per value of ``by`` with ``<metric>_mean`` and ``<metric>_ci`` columns (for
    sweeps and their plots)."""
    sel = results[results.list == list_name]
    rows = []
    for value, group in sel.groupby(by, sort=True):
        row = {by: value}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci"] = mean_ci(group[m].values)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_sweep(results: pd.DataFrame, by: str, metrics: list[str], a: tuple[str, str], b: tuple[str, str],
                 relative: bool = False, lift_metrics: list[str] = ()) -> pd.DataFrame:
    """For each value of the swept column ``by``: mean and 95% CI over seeds of the paired
    difference (or, with ``relative``, lift) ``a - b`` of each metric, plus the lift of each of
    ``lift_metrics``, as ``<metric>_mean`` / ``<metric>_ci`` columns (the input of
    :func:`plots.metric_sweep`)."""
    rows = []
    for value, group in results.groupby(by, sort=True):
        row = {by: value}
        for m, rel in [*((m, relative) for m in metrics), *((m, True) for m in lift_metrics)]:
            row[f"{m}_mean"], row[f"{m}_ci"] = paired_difference(group, m, a, b, relative=rel)
        rows.append(row)
    return pd.DataFrame(rows)


def save_table(df: pd.DataFrame, profile: str, name: str, root: str | Path = "..") -> Path:
    """Write ``df`` as ``<name>.csv`` into the profile's results folder (:func:`outputs.output_dir`:
    the committed ``results/<profile>`` under ``make reproduce``, else
    ``scratch/results/<profile>``). Returns the path."""
    path = output_dir("results", profile, root) / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)
    return path


def stopping_summary(curves: pd.DataFrame, cap: int) -> pd.DataFrame:
    """Per (variant, seed) of :meth:`oneranker.study.Study.learning_curves` rows (with a ``variant`` column): epochs
    trained, the epoch of lowest validation loss (the weights kept) and what ended the run, as
    the trainer recorded it (``stopped_early``): early stopping (the validation loss had
    stopped improving) or the ``cap`` of epochs (the model may not have converged)."""
    rows = []
    for (variant, seed), g in curves.groupby(["variant", "seed"], sort=False):
        epochs = int(g.epoch.max())
        rows.append({"variant": variant, "seed": seed, "epochs": epochs,
                     "best epoch": int(g.epoch.loc[g.valid_loss.idxmin()]),
                     "ended by": "early stopping" if g.stopped_early.iloc[0] else f"the {cap}-epoch cap"})
    return pd.DataFrame(rows).set_index(["variant", "seed"])


def capped_runs_sentence(stopping: pd.DataFrame, cap: int) -> str:
    """One line on a :func:`stopping_summary` table: every run ended by early stopping, or
    which runs reached the ``cap`` of epochs (their numbers may come from models that had not
    converged, so what rests on them is provisional)."""
    capped = stopping[stopping["ended by"] != "early stopping"]
    if capped.empty:
        return f"- All {len(stopping)} runs ended by early stopping before the {cap}-epoch cap."
    runs = ", ".join(f"{v} (seed {s})" for v, s in capped.index)
    return (f"- {len(capped)} of {len(stopping)} runs reached the {cap}-epoch cap: {runs}; they may not have "
            f"converged, so the numbers resting on them are provisional.")


def paired_verdict(results: pd.DataFrame, metric: str, a: str | tuple[str, str], b: str | tuple[str, str],
                   paper: float | None = None, list_name: str = "generated") -> str:
    """:func:`verdict` of ``a - b`` on ``metric``, paired by seed (names or (variant, list) pairs)."""
    return verdict(*paired_difference(results, metric, _row_key(a, list_name), _row_key(b, list_name)), paper)


def says(verdict_text: str, positive: str, negative: str, null: str) -> str:
    """The words that match a :func:`verdict`: ``positive`` for the paper's sign (or above 0),
    ``negative`` for the other sign, ``null`` when not separated; so that prose built around a
    result can never claim more than its CI."""
    if verdict_text.startswith(("reproduced", "above")):
        return positive
    if verdict_text.startswith(("opposite", "below")):
        return negative
    return null


def tally(lines: list[str]) -> str:
    """How many :func:`paired_sentence` lines reached each verdict ("2 not separated, 1
    reproduced"): a group's headline, rendered from its lines, never typed."""
    verdicts = pd.Series([line.rsplit(": ", 1)[-1].split(" (")[0].rstrip(".") for line in lines])
    return ", ".join(f"{n} {v}" for v, n in verdicts.value_counts().items())
