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
  already in the cache, except notebook 07, which trains its own models inside the run.

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


def costs(cache_dir: Path, profile: str = "quick") -> pd.DataFrame:
    record = json.loads((ROOT / "results" / profile / "run_record.json").read_text())
    run = {r["notebook"][:2]: r["seconds"] for r in record["runs"]}
    seen: set[str] = set()
    rows = []
    for nb in ("01", "02", "03", "04", "05", "06", "07"):
        cfgs = []
        if nb in studies.SEEDS:
            for seed in studies.SEEDS[nb]:
                for variant in studies.notebook_variants(nb):
                    cfgs += [c for c in studies.configs(variant, profile, seed) if c.hash() not in seen]
                    seen |= {c.hash() for c in cfgs}
        unique = {c.hash(): c for c in cfgs}
        rows.append({"notebook": nb, "models first trained here": len(unique),
                     "training CPU-minutes": round(sum(training_seconds(c, cache_dir) for c in unique.values()) / 60, 1),
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
