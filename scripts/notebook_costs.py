"""What each notebook costs on a laptop: the models it trains and how long it takes to run.

Writes ``results/quick/notebook_costs.csv``, which ``scripts/render_readme.py`` renders into
``docs/workshop.md``. Two measurements, kept apart because they come from different machines:

* ``models`` and ``training CPU-minutes``: the notebook models that a notebook is the first to
  use (``oneranker.studies``, in notebook order: a model shared by later notebooks is counted
  once, where it is first trained), and the sum of their training times as recorded in each
  model's history (``seconds`` per epoch; one single-threaded process per model, as
  ``pool.train_all`` trains on a CPU). Needs the trained models in the cache.
* ``run minutes, models cached``: the notebook's wall time in the last ``make reproduce`` run
  (``results/quick/run_record.json``, which records the machine), when every model was
  already in the cache.

    python scripts/notebook_costs.py [--cache cache]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oneranker import cache, studies  # noqa: E402
from oneranker.cache import load_entry  # noqa: E402


def training_seconds(cfg, cache_dir: Path) -> float:
    """Seconds the cached model of ``cfg`` trained (the sum over its epochs)."""
    blob = load_entry(cache.model_folder(cfg, cache_dir) / "final.pt", map_location="cpu", expect=("history",))
    if blob is None:
        raise FileNotFoundError(f"model {cfg.hash()} is not in {cache_dir}: run `python -m oneranker pretrain` first")
    return sum(e.get("seconds", 0.0) for e in json.loads(blob["history"])["epochs"])


def real_data_models(profile: str = "quick") -> pd.Series:
    """Training seconds of each MovieLens model notebook 07 trains (one per model and seed), from
    the table it writes (its models are keyed by the prepared data, not by ``studies``)."""
    rows = pd.read_csv(ROOT / "results" / profile / "07_real_ml100k.csv")
    return rows.dropna(subset=["model"]).drop_duplicates(["model", "seed"]).set_index(["model", "seed"])["train_seconds"]


def costs(cache_dir: Path, profile: str = "quick") -> pd.DataFrame:
    record = json.loads((ROOT / "results" / profile / "run_record.json").read_text())
    run = {r["notebook"][:2]: r["seconds"] for r in record["runs"]}
    first = studies.configs_by_notebook(profile)
    real = real_data_models(profile)
    rows = []
    for nb in ("01", "02", "03", "04", "05", "06", "07"):
        cfgs = first.get(nb, [])
        n, seconds = (len(real), real.sum()) if nb == "07" else \
            (len(cfgs), sum(training_seconds(c, cache_dir) for c in cfgs))
        rows.append({"notebook": nb, "models first trained here": n,
                     "training CPU-minutes": round(seconds / 60, 1),
                     "run minutes, models cached": round(run.get(nb, float("nan")) / 60, 1)})
    out = pd.DataFrame(rows)
    out.attrs["machine"] = f"{record['cpu_count']} cores, {record['machine']}, torch {record['torch']}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    args = ap.parse_args()
    out = costs(Path(args.cache))
    path = ROOT / "results" / "quick" / "notebook_costs.csv"
    out.to_csv(path, index=False)
    print(out.to_string(index=False))
    print(f"-> {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
