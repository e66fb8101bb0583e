"""How far is a rerun's results folder from the committed one? Every result table, cell by cell.

A reviewer who runs ``make reproduce`` on their own machine gets ``results/quick`` again. On the
machine the committed tables came from, every table comes back bit for bit
(docs/reproducibility.md); on another processor, CPU training can take other rounding paths, and
the models, then the tables, move. This script says by how much, and whether any verdict moved:

- a cell whose numbers changed but whose words did not ("+0.0042 ± 0.0061" -> "+0.0054 ± 0.0083")
  is a numeric difference, measured by the largest absolute change of a number in it;
  For a mean written with its 95% CI over seeds ("m ± h"), the change of m is also given in
  units of the wider of the two half-widths: well below 1, the rerun is inside the seeds' noise.
  Where the project's verdict rule (:func:`oneranker.tables.verdict`: above 0, below 0 or not
  separated) reads the two cells differently, the cell is listed as a zero-side change: for a
  paired difference that is a verdict moved, though written in numbers only;
- a cell whose words changed ("mean above 0" -> "mean below 0", "reproduced" -> "not separated")
  is a text difference, listed in full: that is where a conclusion moved.

    python scripts/compare_results.py results/quick /elsewhere/results/quick --out compare.csv

It prints one line per table that differs and the processors each folder's run record names,
and exits with 1 when some cell changed in its words or its CI's side of 0 (a conclusion may have
moved), else 0.
The run record itself (times, commits) is not a result table and is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from oneranker.cache import atomic_write_text
from oneranker.reproduce import CELL_NUMBER, cell_numbers, read_result_table
from oneranker.tables import parse_mean_ci, verdict

MEAN_PM_CI = ("# ± #", "#% ± #%")      # a mean and its 95% CI half-width, as the tables write them
# A comparison's row before anything is found: every column, nothing differing
NOTHING_DIFFERS = {"cells": 0, "cells_differing": 0, "numeric_cells_differing": 0, "largest_abs_difference": float("nan"),
                   "largest_shift_in_ci": float("nan"), "zero_side_changes": 0, "zero_side_differences": "",
                   "text_cells_differing": 0, "text_differences": ""}
COLUMNS = ["table", *NOTHING_DIFFERS]


def words(cell: str) -> str:
    """A cell with each number replaced by ``#``: what must stay the same for a change to be numeric only."""
    return CELL_NUMBER.sub("#", cell)


def side_of_zero(mean: float, ci: float) -> str:
    """"above 0", "below 0" or "not separated": the project's verdict on a mean ± CI, without its
    reason in brackets (which also names the mean's side when not separated)."""
    return verdict(mean, ci).split(" (")[0]


def row_label(table: pd.DataFrame, row: int) -> str:
    """A row named as a reader finds it: its first cell, with those of the next columns that have no
    header (the further levels of a written index, e.g. "paired: with - without / with DC"); its
    position when these are empty."""
    lead = 1
    while lead < len(table.columns) and table.columns[lead].startswith("Unnamed:"):
        lead += 1
    names = [v for v in table.iloc[row, :lead] if v]
    return " / ".join(names) if names else f"row {row}"


def compare_table(name: str, old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """One table's row of the comparison: how many cells differ, by how much, and in which words."""
    if list(old.columns) != list(new.columns) or old.shape != new.shape:
        return {**NOTHING_DIFFERS, "table": name, "cells": old.size, "cells_differing": old.size,
                "text_cells_differing": old.size,
                "text_differences": f"layout differs: {old.shape} {list(old.columns)} -> {new.shape} {list(new.columns)}"}
    numeric, texts, largest, shifts, sides = 0, [], 0.0, [], []
    for column in old.columns:
        for row, (a, b) in enumerate(zip(old[column], new[column])):
            if a == b:
                continue
            if words(a) == words(b):
                numeric += 1
                largest = max(largest, max(abs(u - v) for u, v in zip(cell_numbers(a), cell_numbers(b))))
                if words(a) not in MEAN_PM_CI:
                    continue
                (m0, c0), (m1, c1) = parse_mean_ci(a), parse_mean_ci(b)
                if max(c0, c1) > 0:             # a mean ± CI whose CI is not 0: its shift and its side of 0
                    shifts.append(abs(m0 - m1) / max(c0, c1))
                    if side_of_zero(m0, c0) != side_of_zero(m1, c1):
                        sides.append(f"{row_label(old, row)}, {column}: {a!r} -> {b!r}")
            else:
                texts.append(f"{row_label(old, row)}, {column}: {a!r} -> {b!r}")
    return {**NOTHING_DIFFERS, "table": name, "cells": old.size, "cells_differing": numeric + len(texts),
            "numeric_cells_differing": numeric, "largest_abs_difference": largest,
            "largest_shift_in_ci": max(shifts, default=float("nan")), "zero_side_changes": len(sides),
            "zero_side_differences": " | ".join(sides), "text_cells_differing": len(texts), "text_differences": " | ".join(texts)}


def compare_folders(old: Path, new: Path) -> pd.DataFrame:
    """Every CSV table present in both folders, compared (:func:`compare_table`); a table present
    in only one of them is a row of its own, saying which."""
    old_names = {p.name for p in old.glob("*.csv")}
    new_names = {p.name for p in new.glob("*.csv")}
    rows = []
    for name in sorted(old_names | new_names):
        if name not in new_names or name not in old_names:
            side = "the first" if name in old_names else "the second"
            rows.append({**NOTHING_DIFFERS, "table": name, "text_differences": f"only in {side} folder"})
            continue
        rows.append(compare_table(name, read_result_table(old / name), read_result_table(new / name)))
    return pd.DataFrame(rows, columns=COLUMNS)


def processors(folder: Path) -> list[str]:
    """The processors the folder's run record names (one per notebook entry), in first-seen order."""
    record = folder / "run_record.json"
    if not record.exists():
        return []
    runs = json.loads(record.read_text()).get("runs", [])
    return list(dict.fromkeys(r.get("cpu") or "not recorded" for r in runs))


def _shift(value: float) -> str:
    return "no mean ± CI changed" if value != value else f"of a mean: {value:.2f} of its CI half-width"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the results folder compared against (e.g. the committed results/quick)")
    parser.add_argument("new", type=Path, help="the rerun's results folder")
    parser.add_argument("--out", type=Path, help="write the comparison as CSV here")
    args = parser.parse_args(argv)
    for folder in (args.old, args.new):
        if not folder.is_dir() or not any(folder.glob("*.csv")):
            parser.error(f"{folder}: not a folder of result tables (no *.csv in it)")
    table = compare_folders(args.old, args.new)
    alone = table.text_differences.str.startswith("only in")     # a table in one folder is not identical
    differing = table[(table.cells_differing > 0) & ~alone]
    print(f"{len(table) - len(differing) - alone.sum()} of {len(table)} tables identical; processors: "
          f"{', '.join(processors(args.old)) or 'not recorded'} -> {', '.join(processors(args.new)) or 'not recorded'}")
    for row in table[alone].itertuples():
        print(f"  {row.table}: {row.text_differences}")
    for row in differing.itertuples():
        print(f"  {row.table}: {row.cells_differing} of {row.cells} cells differ, largest |change| of a number "
              f"{row.largest_abs_difference:.4g} ({_shift(row.largest_shift_in_ci)}), "
              f"{row.zero_side_changes} across 0, {row.text_cells_differing} in their words")
        for change in filter(None, row.zero_side_differences.split(" | ")):
            print(f"    CI's side of 0: {change}")
    if args.out:
        atomic_write_text(args.out, table.to_csv(index=False))
    return 1 if ((table.text_cells_differing > 0) | (table.zero_side_changes > 0)).any() else 0


if __name__ == "__main__":
    sys.exit(main())
