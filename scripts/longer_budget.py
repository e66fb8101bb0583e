"""Does the quick profile's training budget explain the null Step-2 ablations (notebooks 02-04)?

Re-runs the Step-2 ablations and the full model with 3x the epochs (15 instead of 5), same
world, data and seeds, and prints the same tables as the notebooks. Not part of
`make test` (about 12 minutes on 2 CPU cores).

    .venv/bin/python scripts/longer_budget.py [--epochs 15] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

from oneranker import experiments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache", default="cache")
    args = ap.parse_args()
    budget = {"train.epochs": args.epochs}
    s2 = {**budget, "model.use_ranker": False}
    variants = {
        "Step 2 only": s2,
        "without Fake Item Tokens": {**s2, "model.use_fake_items": False},
        "without Fake Items and task tokens": {**s2, "model.use_fake_items": False, "model.use_task_tokens": False},
        "full OneRanker": budget,
        "Step-1 generator": {**budget, "model.use_step2": False, "model.use_ranker": False},
    }
    res = experiments.run_grid("quick", variants, args.seeds, args.cache, baselines=True)
    metrics = ["HR@5", "HR@15", "valueHR@5", "ecpmNDCG@5"]
    print(f"== {args.epochs} epochs, seeds {args.seeds}")
    print(experiments.summarise(res, metrics).to_string())
    print(experiments.paired_table(res, metrics, ["without Fake Item Tokens", "without Fake Items and task tokens",
                                                  ("full OneRanker", "ranked")], "Step 2 only").to_string())
    print(experiments.paired_table(res, metrics, [("full OneRanker", "ranked"), ("full OneRanker", "generated")],
                                   "popularity").to_string())
    print(experiments.paired_table(res, metrics, [("full OneRanker", "ranked"), ("full OneRanker", "generated")],
                                   "Step-1 generator").to_string())
    print(experiments.learning_curves("quick", budget, args.seeds, args.cache)
          .pivot(index="epoch", columns="seed", values="valid_loss").round(3).to_string())


if __name__ == "__main__":
    main()
