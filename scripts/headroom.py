"""How much room does a market leave for learning? The headroom criteria of the world's defaults.

For each setting (the profile's world, and the settings tried by the learnability work), over
seeds, from the logs and the truth alone (no model): HR@5 of the random, popularity,
co-occurrence and interest-oracle lists, the oracle / popularity ratio, the popularity ->
oracle gap in units of its 95% CI over seeds, and the median effective number of ads of the
truth (``reference.market_headroom``). The criteria, fixed before any model was compared:
oracle HR@5 >= 4x popularity and a gap >= 10 CIs wide (``reference.headroom_criteria``).

    python scripts/headroom.py --profile quick --seeds 0 1 2 3 4 --out results/quick/headroom.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from oneranker import reference

SETTINGS = {"defaults": {}, "before (affinity 4)": {"world.affinity_weight": 4.0}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--settings", default=None, help="JSON {name: overrides} (default: today's and the earlier affinity)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    settings = json.loads(args.settings) if args.settings else SETTINGS
    res = reference.headroom_table(settings, args.profile, args.seeds)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False)
    summary = {}
    for name, g in res.groupby("setting", sort=False):
        c = reference.headroom_criteria(g)
        summary[name] = {"oracle / popularity": round(c["ratio"], 2), "gap in CIs": round(c["gap_cis"], 1),
                         "effective ads (median)": round(float(g["effective ads (median)"].mean())),
                         "co-occurrence gap closed": round(float(g["co-occurrence gap closed"].mean()), 3),
                         "logged CTR": round(float(g["ctr"].mean()), 4), "meets both criteria": c["met"]}
    print(pd.DataFrame.from_dict(summary, orient="index").to_string())


if __name__ == "__main__":
    main()
