"""The numbers the OneRanker paper reports (docs/paper.md, "Results reported"), to print
next to ours.

They come from Tencent's advertising data (not public) with sampled candidate lists, so only
their *direction* and rough relative size can be compared with the simulated market's. The
paper's NDCG is far above its HR, which suggests value-graded gains; our closest analogue is
``ecpmNDCG@K`` (the list's true eCPM as gains).
"""

from __future__ import annotations

import pandas as pd

from .metrics import KS  # noqa: E402,F401  (the paper's cut-offs, at which every list is measured)

# Table 1: HR@K of the offline comparison (NDCG@K is reported for OneRanker at every K and
# for GPR at K = 1 and 5 only).
TABLE1_HR = {
    "HSTU": (0.1741, 0.3508, 0.4648, 0.6604, 0.7953),
    "GPR": (0.1824, 0.3703, 0.4935, 0.6957, 0.8207),
    "OneRanker": (0.2639, 0.4959, 0.6213, 0.7945, 0.8894),
}
TABLE1_NDCG = {
    "GPR": (0.6823, None, 0.6818, None, None),
    "OneRanker": (0.8102, 0.7954, 0.7904, 0.7970, 0.8206),
}

# Table 2: component ablation, (HR@5, NDCG@5).
TABLE2 = {
    "Full OneRanker": (0.6213, 0.7904),
    "without DC loss": (0.6173, 0.7865),
    "without Step-2 K/V in the ranker": (0.6161, 0.7858),
    "ranker on Step 1 only": (0.6157, 0.7849),
    "Step 2 only (no ranker)": (0.5448, 0.7440),
    "Step 2 without Fake Item Tokens": (0.5203, 0.7285),
    "Step 2 without Fake Items and task tokens": (0.5066, 0.7275),
}

# Table 3: the Step-2 attention design, HR@5 of Step 2 alone (no ranker).
TABLE3_HR5 = {
    "Step 2 only (paper design)": 0.5448,
    "self-attention before cross-attention": 0.5277,
    "without the heterogeneous mask": 0.5335,
}

# Online A/B against the cascade: relative lifts in percent at each traffic share; the pairs
# in AB_NOT_SIGNIFICANT are reported as not significant (the paper gives one CI only: GMV-Normal
# at 5%, [0.16%, 2.52%]).
AB = pd.DataFrame(
    {"GMV": [0.41, 0.78, 0.08], "GMV-Normal": [1.34, 0.64, 0.35], "Costs": [0.72, 1.15, 0.45]},
    index=pd.Index(["5% traffic", "20% traffic", "80% traffic"], name="A/B"),
)
AB_NOT_SIGNIFICANT = {("5% traffic", "GMV"), ("80% traffic", "GMV")}


def table1(metric: str = "HR") -> pd.DataFrame:
    """The paper's Table 1 as a frame, rows = models, columns = ``<metric>@K``."""
    source = {"HR": TABLE1_HR, "NDCG": TABLE1_NDCG}[metric]
    return pd.DataFrame({m: dict(zip((f"{metric}@{k}" for k in KS), v)) for m, v in source.items()}).T


def table2() -> pd.DataFrame:
    """The paper's Table 2 with each row's HR@5 difference from the full model."""
    df = pd.DataFrame(TABLE2, index=["HR@5", "NDCG@5"]).T
    df["HR@5 vs full"] = df["HR@5"] - df.loc["Full OneRanker", "HR@5"]
    return df
