"""Figures of the notebooks. Each function takes data, returns a matplotlib Figure, and
draws nothing it computes itself beyond simple counts (the numbers come from the package)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .outputs import output_dir
from .schema import Logs

if TYPE_CHECKING:                  # pandas appears in annotations only (tables passed in)
    import pandas as pd

sns.set_theme(style="whitegrid", context="notebook")


def save(fig: matplotlib.figure.Figure, name: str, profile: str, root: str | Path = "..") -> None:
    """Write ``<name>.png`` into the profile's figures folder (:func:`outputs.output_dir`: the
    committed ``figures/<profile>`` under ``make reproduce``, else ``scratch/figures/<profile>``),
    folders created as needed; the notebook shows the figure itself (so this returns nothing
    that a cell would print under it)."""
    path = output_dir("figures", profile, root) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def popularity(logs: Logs) -> matplotlib.figure.Figure:
    """Rank-frequency of ad impressions and clicks on log-log axes: a power law is a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, weights in (("impressions", None), ("clicks", logs.imp_click)):
        counts = np.sort(np.bincount(logs.imp_item, weights=weights, minlength=logs.n_items))[::-1]
        counts = counts[counts > 0]
        ax.loglog(np.arange(1, len(counts) + 1), counts, label=label)
    ax.set(xlabel="ad rank", ylabel="count", title="Ad popularity in the logs")
    ax.legend()
    return fig


def value_distributions(logs: Logs) -> matplotlib.figure.Figure:
    """Histograms of log bid and log price over the catalogue (log-normal by design)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, values, name in ((axes[0], logs.item_bid, "bid"), (axes[1], logs.item_price, "price")):
        sns.histplot(np.log(values), bins=40, ax=ax)
        ax.set(xlabel=f"log {name}", title=f"{name} per ad")
    fig.tight_layout()
    return fig


def interest_vs_value(mean_pctr: np.ndarray, bid: np.ndarray, corr: float) -> matplotlib.figure.Figure:
    """Each ad's appeal (mean true pCTR) against its bid: the tension the paper is about."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(mean_pctr, bid, s=4, alpha=0.4)
    ax.set(xscale="log", yscale="log", xlabel="mean true pCTR over users", ylabel="bid",
           title=f"Interest vs value (measured r = {corr:.2f})")
    return fig


def position_bias(ctr_by_pos: dict[int, float]) -> matplotlib.figure.Figure:
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    pos = sorted(ctr_by_pos)
    ax.bar([str(p) for p in pos], [ctr_by_pos[p] for p in pos])
    ax.set(xlabel="slot", ylabel="logged CTR", title="Position bias in the logs")
    return fig


def history_lengths(lengths: np.ndarray, cap: int) -> matplotlib.figure.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.histplot(lengths, bins=50, ax=ax)
    ax.axvline(cap, color="C3", ls="--", label=f"max_history_len = {cap}")
    ax.set(xlabel="history tokens before the request", ylabel="requests", title="History lengths")
    ax.legend()
    return fig


def multi_interest(breadth: np.ndarray, n_interests: np.ndarray | None) -> matplotlib.figure.Figure:
    """Distinct categories among a user's clicked ads, by the user's true number of interests."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    if n_interests is None:
        sns.histplot(breadth, discrete=True, ax=ax)
    else:
        sns.boxplot(x=n_interests, y=breadth, ax=ax, color="C0")
        ax.set_xlabel("true number of interests of the user")
    ax.set(ylabel="categories among clicked ads", title="Multi-interest users")
    return fig


def code_usage(codes: np.ndarray, digits: tuple[int, ...]) -> matplotlib.figure.Figure:
    """How often each code is used at each semantic-ID level (flat = well-spread codebook)."""
    levels = len(digits) - 1
    fig, axes = plt.subplots(1, levels + 1, figsize=(3.2 * (levels + 1), 3), squeeze=False)
    for lvl, ax in enumerate(axes[0]):
        counts = np.sort(np.bincount(codes[:, lvl], minlength=digits[lvl]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0)
        ax.set(title="dedup digit" if lvl == levels else f"level {lvl + 1}", xlabel="code (sorted)",
               ylabel="ads" if lvl == 0 else None)
    fig.tight_layout()
    return fig


def mask_picture(allowed: np.ndarray, title: str, groups: list[tuple[str, int]] | None = None,
                 ax: matplotlib.axes.Axes | None = None, legend: bool = True) -> matplotlib.figure.Figure:
    """Draw a [Q, K] attention mask: dark = the query (row) may attend to the key (column).
    ``groups`` [(label, size), ...] draws separators between token groups; ``legend`` says
    what black and white mean (beside the axes)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
    else:
        fig = ax.figure
    ax.imshow(np.asarray(allowed, dtype=float), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ax.set(title=title, xlabel="key (attended to)", ylabel="query (attending)")
    ax.grid(False)
    from matplotlib.patches import Patch
    if legend:
        ax.legend(handles=[Patch(facecolor="black", label="may attend"),
                           Patch(facecolor="white", edgecolor="grey", label="masked")],
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    if groups:
        edges = np.cumsum([size for _, size in groups])[:-1] - 0.5
        for e in edges:
            ax.axhline(e, color="C3", lw=1)
            ax.axvline(e, color="C3", lw=1)
        centres = np.cumsum([0] + [size for _, size in groups])[:-1] + np.array([s for _, s in groups]) / 2 - 0.5
        ax.set_xticks(centres, [g for g, _ in groups], rotation=45, ha="right")
        ax.set_yticks(centres, [g for g, _ in groups])
    return fig


def fake_items_projection(item_emb: np.ndarray, centroids: np.ndarray, category: np.ndarray) -> matplotlib.figure.Figure:
    """Ads and Fake Item Tokens in the 2-D PCA plane of the learned item embeddings: the
    centroids should sit inside the clouds of ads (coloured by their true category)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(item_emb)
    xy, cxy = pca.transform(item_emb), pca.transform(centroids)
    fig, ax = plt.subplots(figsize=(5.8, 4.6))
    ax.scatter(xy[:, 0], xy[:, 1], c=category, cmap="tab20", s=6, alpha=0.5, linewidths=0)
    ax.scatter(cxy[:, 0], cxy[:, 1], marker="*", s=180, c="black", edgecolors="white", label="Fake Item Tokens")
    ev = pca.explained_variance_ratio_
    ax.set(xlabel=f"PC 1 ({ev[0]:.0%})", ylabel=f"PC 2 ({ev[1]:.0%})",
           title="Item embeddings (colour: true category) and centroids")
    ax.legend(loc="best")
    return fig


def centroid_preference(pref: dict[str, np.ndarray], truth: dict[str, np.ndarray], rho: dict[str, float]) -> matplotlib.figure.Figure:
    """One request: each centroid's preference s_il against the true mean of its ads, one
    panel per channel (e.g. interest vs pCTR, value vs eCPM)."""
    fig, axes = plt.subplots(1, len(pref), figsize=(4.6 * len(pref), 3.8))
    for ax, name in zip(np.atleast_1d(axes), pref):
        ax.scatter(truth[name], pref[name], s=30)
        ax.set(xlabel=f"true mean {name} of the centroid's ads", ylabel="preference s_il",
               title=f"{name}: Spearman rho = {rho[name]:.2f}")
    fig.tight_layout()
    return fig


def metric_sweep(table: "pd.DataFrame", x: str, metrics: list[str], logx: bool = True,
                 zero_line: bool = False, ylabel: str = "{}", title: str | None = None, xlabel: str | None = None,
                 n_seeds: int | None = None, references: dict[str, dict[str, float]] | None = None,
                 percent: tuple[str, ...] = ()) -> matplotlib.figure.Figure:
    """Mean and 95% CI over seeds (error bars) of each metric against a swept setting.
    ``table`` holds columns x, ``<metric>_mean`` and ``<metric>_ci``. ``zero_line`` marks 0
    (for paired differences); ``ylabel`` formats each metric's axis label; ``references``
    {metric: {name: value}} draws each reference as a labelled dotted line (e.g. popularity
    and the oracle); metrics in ``percent`` are fractions shown in percent."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        scale = 100.0 if m in percent else 1.0
        ax.errorbar(table[x], scale * table[f"{m}_mean"], yerr=scale * table[f"{m}_ci"], marker="o", capsize=3,
                    label="mean ± 95% CI")
        if zero_line:
            ax.axhline(0.0, color="grey", lw=1, ls="--")
        for i, (name, value) in enumerate((references or {}).get(m, {}).items()):
            ax.axhline(scale * value, color=f"C{i + 2}", lw=1, ls=":", label=name)
        ax.set(xlabel=xlabel or x, ylabel=ylabel.format(m) + (" (%)" if m in percent else ""))
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(table[x]), [f"{v:.3g}" for v in table[x]])
    axes[0][0].legend(fontsize="small")
    seeds = f" over {n_seeds} seeds" if n_seeds else " over seeds"
    fig.suptitle((title + "\n" if title else "") + f"error bars: 95% CI{seeds}", fontsize="medium")
    fig.tight_layout()
    return fig


def dc_analysis(differences: dict[str, np.ndarray], overlap: "pd.DataFrame") -> matplotlib.figure.Figure:
    """The paper's DC figure: the absolute generator-ranker rank difference on the generated
    candidates (box: quartiles, so its height is the IQR; whiskers 5-95%), and the top-K
    overlap for every K (mean and 95% CI over seeds), one colour per variant."""
    from .metrics import mean_ci

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    names = list(differences)
    left.boxplot([differences[n] for n in names], whis=(5, 95), showfliers=False)
    left.set_xticks(range(1, len(names) + 1), names)
    left.set(ylabel="|generator rank - ranker rank|",
             title="Rank difference\n(box: quartiles, its height the IQR; whiskers: 5th-95th percentile)")
    for name, group in overlap.groupby("variant", sort=False):
        stats = group.groupby("k")["overlap"].apply(lambda v: mean_ci(v.values))
        k = stats.index.values
        mean = np.array([m for m, _ in stats]); ci = np.array([c for _, c in stats])
        right.plot(k, mean, label=name)
        right.fill_between(k, mean - ci, mean + ci, alpha=0.25)
    right.set(xlabel="K", ylabel="top-K overlap", ylim=(0, 1.02),
              title="Generator top-K in ranker top-K\n(line: mean, band: 95% CI over seeds)")
    right.legend()
    fig.tight_layout()
    return fig


def truth_concentration(effective: dict[str, np.ndarray], n_items: int) -> matplotlib.figure.Figure:
    """Distribution over requests of the truth's effective number of ads
    (:func:`oneranker.reference.effective_ads`), one histogram per market setting, with each
    median dashed: the fewer ads the truth spreads over, the more a model that knows the
    user can gain over popularity. ``n_items`` (a uniform truth) bounds the axis."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(1, n_items, 60)
    for i, (name, values) in enumerate(effective.items()):
        med = float(np.median(values))
        ax.hist(values, bins=bins, histtype="step", lw=1.6, color=f"C{i}", label=f"{name} (median {med:.0f})")
        ax.axvline(med, color=f"C{i}", ls="--", lw=1)
    ax.set(xlim=(0, n_items), xlabel=f"effective number of ads (of {n_items:,}; {n_items:,} = uniform truth)",
           ylabel="test requests", title="How concentrated is the truth?")
    ax.legend()
    return fig


def learning_curves(curves: "pd.DataFrame") -> matplotlib.figure.Figure:
    """Training (dashed) and validation (solid) loss per epoch, one panel per variant and one
    colour per seed, with a dot on the epoch of lowest validation loss (the weights kept).
    ``curves``: rows of :meth:`oneranker.study.Study.learning_curves` with a ``variant``
    column. Each variant sums different loss terms, so each panel has its own y axis."""
    from matplotlib.lines import Line2D

    variants = list(dict.fromkeys(curves["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.4), squeeze=False)
    for ax, name in zip(axes[0], variants):
        for i, (seed, g) in enumerate(curves[curves["variant"] == name].groupby("seed")):
            colour = f"C{i}"
            ax.plot(g["epoch"], g["train_loss"], ls="--", color=colour)
            ax.plot(g["epoch"], g["valid_loss"], color=colour, label=f"seed {seed}")
            best = g.loc[g["valid_loss"].idxmin()]
            ax.plot(best["epoch"], best["valid_loss"], "o", color=colour)
        ax.set(title=name, xlabel="epoch")
    axes[0][0].set_ylabel("loss")
    handles, _ = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", ls="--", label="training"),
                Line2D([], [], color="grey", label="validation"),
                Line2D([], [], color="grey", marker="o", ls="", label="best validation")]
    axes[0][-1].legend(handles=handles, loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def architecture(n_interest: int = 3, n_value: int = 1, n_fake: int = 4, n_candidates: int = 4) -> matplotlib.figure.Figure:
    """OneRanker's three steps as one diagram: Step 1 (G-Decoder) encodes the user's history
    under a causal mask; Step 2 reads it through cross-attention with task tokens (interest
    along the funnel, then value) and Fake Item Tokens, whose outputs score the whole
    catalogue (the generator's heads); Step 3 (R-Decoder) scores the generated candidates
    from the K/V of Steps 1-2 computed once per request (the K/V pass-through)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(12.5, 5.6))
    ax.set(xlim=(0, 12.5), ylim=(-0.4, 5.4))
    ax.axis("off")

    def box(x, y, w, h, text, colour, fontsize=9):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=colour, ec="0.25", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)

    def arrow(a, b, text=None, colour="0.2", dy=0.12):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.3))
        if text:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center", fontsize=8, color=colour)

    box(0.2, 0.3, 2.2, 0.7, "request prefix\n(user, context)", "#e8e8e8")
    box(0.2, 1.2, 2.2, 0.9, "history tokens\n(ads: semantic ID + ID;\norganic items; actions)", "#e8e8e8", 8)
    box(3.0, 0.3, 2.4, 1.8, "Step 1: G-Decoder\nself-attention over\nprefix + history, causal\nover the history\n(mask: notebook 02)", "#cfe2f3")
    arrow((2.4, 0.65), (3.0, 0.8))
    arrow((2.4, 1.65), (3.0, 1.5))
    tokens = f"{n_interest} interest tokens\n(impression → click\n→ conversion)\n{n_value} value token(s)\n{n_fake} Fake Item Tokens"
    box(3.0, 2.7, 2.4, 2.4, "Step 2\ncross-attends to Step 1,\nself-attends under the\nheterogeneous mask\n\n" + tokens,
        "#d9ead3", 8)
    arrow((4.2, 2.1), (4.2, 2.7), "H1", dy=-0.05)
    box(6.1, 3.7, 2.7, 1.4, "dual-channel scores over\nthe whole catalogue:\n⟨task, e⟩ + Σ s · cos(e, centroid)\n(notebook 03)",
        "#fff2cc", 8)
    arrow((5.4, 4.3), (6.1, 4.3))
    box(6.1, 2.6, 2.7, 0.75, f"{n_candidates} generated candidates\n(the heads' top lists merged)", "#fff2cc", 8)
    arrow((7.45, 3.7), (7.45, 3.35))
    box(9.6, 0.3, 2.7, 2.5, "Step 3: R-Decoder\nranking token + candidates\ncross-attend to Steps 1-2;\n"
        "each candidate sees only\nthe ranking token and itself\n→ one score per candidate\n(notebook 04)", "#f4cccc", 8)
    arrow((8.8, 2.95), (10.3, 2.8), "candidates", dy=0.1)
    arrow((5.4, 0.9), (9.6, 0.9), colour="C3")
    arrow((5.4, 2.9), (9.6, 1.9), colour="C3")
    ax.text(7.5, 0.45, "K/V of Steps 1-2, computed once per request\n(the K/V pass-through)", ha="center",
            fontsize=8, color="C3")
    box(9.6, 3.7, 2.7, 1.4, "served list:\nthe candidates in\nthe ranker's order", "#ead1dc", 9)
    arrow((10.95, 2.8), (10.95, 3.7))
    ax.text(0.2, -0.3, "Training: L = α L_MTP (the heads, full-catalogue softmax) + β L_rank (BPR on the ranker's scores) "
            "+ γ L_DC (the ranker's distribution teaches the generator's; notebook 05)", fontsize=8.5, color="0.25")
    ax.set_title("OneRanker: generation and ranking in one forward pass", fontsize=11)
    return fig


def forest(effects: "pd.DataFrame", title: str, xlabel: str = "effect relative to the full model (%)") -> matplotlib.figure.Figure:
    """Ablation forest plot: for each row of ``effects`` (index = the ablation; columns
    ``mean`` and ``ci``, ours, and optionally ``paper``), our effect with its 95% CI over seeds
    as a dot and bar, the paper's as a red diamond, a dashed line at 0 (no effect)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(effects) + 1.4))
    y = np.arange(len(effects))[::-1]
    ax.errorbar(effects["mean"], y, xerr=effects["ci"], fmt="o", color="C0", capsize=3, label="ours: mean ± 95% CI")
    if "paper" in effects:
        has = effects["paper"].notna()
        ax.plot(effects["paper"][has], y[has.to_numpy()], "D", color="C3", label="the paper")
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_yticks(y, effects.index)
    ax.set(xlabel=xlabel, title=title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def tradeoff(summary: "pd.DataFrame", x: str, y: str, title: str) -> matplotlib.figure.Figure:
    """Interest against value: each row of ``summary`` (index = pipeline or reference list;
    columns ``<x>_mean``, ``<x>_ci``, ``<y>_mean``, ``<y>_ci``) as a point with 95% CI bars
    over seeds on both axes, labelled. Up and to the right is better on both."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for i, (name, row) in enumerate(summary.iterrows()):
        ax.errorbar(row[f"{x}_mean"], row[f"{y}_mean"], xerr=row[f"{x}_ci"], yerr=row[f"{y}_ci"], fmt="o",
                    capsize=3, color=f"C{i % 10}")
        ax.annotate(name, (row[f"{x}_mean"], row[f"{y}_mean"]), xytext=(5, 4), textcoords="offset points",
                    fontsize=8)
    ax.set(xlabel=f"{x} (interest)", ylabel=f"{y} (value)",
           title=title + "\n(bars: 95% CI over seeds)")
    fig.tight_layout()
    return fig


def ab_bars(lifts: "pd.DataFrame", paper_range: dict[str, tuple[float, float]] | None = None,
            title: str = "Simulated A/B against the cascade") -> matplotlib.figure.Figure:
    """Lifts of each arm (index) over the control, one panel per quantity (columns
    ``<q>_mean``, ``<q>_ci`` in percent, e.g. gmv and cost), with 95% CI error bars over
    seeds, a line at 0 and the paper's online range shaded where given."""
    quantities = [c[:-5] for c in lifts.columns if c.endswith("_mean")]
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 3.6), squeeze=False)
    for ax, q in zip(axes[0], quantities):
        xs = np.arange(len(lifts))
        ax.bar(xs, lifts[f"{q}_mean"], yerr=lifts[f"{q}_ci"], capsize=4, color=[f"C{i}" for i in xs])
        ax.axhline(0, color="grey", lw=1)
        if paper_range and q in paper_range:
            lo, hi = paper_range[q]
            ax.axhspan(lo, hi, color="C3", alpha=0.15, label=f"the paper's online lifts ({lo:+.1f}% to {hi:+.1f}%)")
            ax.legend(fontsize="small", loc="best")
        ax.set_xticks(xs, lifts.index, rotation=20, ha="right")
        ax.set(ylabel=f"{q} lift (%)", title=q)
    fig.suptitle(title + " (error bars: 95% CI over seeds)", fontsize="medium")
    fig.tight_layout()
    return fig


def request_trace(trace: "pd.DataFrame", history: str, n_items: int) -> matplotlib.figure.Figure:
    """One request end to end: the generated candidates in the generator's order and in the
    ranker's order (rows of ``trace``: ``ad``, ``generator rank``, ``ranker rank``, ``true pCTR``,
    ``true eCPM``), each bar the candidate's true pCTR (left) and eCPM (right), so one sees what
    the reordering does to interest and value at the top of the list."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 5.6), sharey="col")
    for row, order in enumerate(("generator rank", "ranker rank")):
        t = trace.sort_values(order)
        for col, truth in enumerate(("true pCTR", "true eCPM")):
            ax = axes[row][col]
            ax.bar(np.arange(1, len(t) + 1), t[truth], color="C0" if row == 0 else "C1")
            ax.set(xlabel=f"position in the {order.split()[0]}'s list", ylabel=truth)
            ax.set_xticks(np.arange(1, len(t) + 1), [str(a) for a in t["ad"]], rotation=90, fontsize=7)
    axes[0][0].set_title("generated (Steps 1-2)")
    axes[1][0].set_title("served: the R-Decoder's order (Step 3)")
    fig.suptitle(f"One test request, its {len(trace)} candidates of {n_items:,} ads (x labels: ad ids)\n{history}",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def kv_cost(cost: "pd.DataFrame") -> matplotlib.figure.Figure:
    """Ranking cost per request (rows: number of candidates; one column per way of ranking,
    MFLOPs) on log axes: K/V pass-through grows with the candidates only, re-encoding per
    candidate with the candidates times the history."""
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    for i, way in enumerate(cost.columns):
        ax.plot(cost.index, cost[way], marker="o", color=f"C{i}", label=way)
    ax.set(xscale="log", yscale="log", xlabel="candidates ranked per request", ylabel="MFLOPs per request",
           title="What K/V pass-through saves")
    ax.set_xticks(list(cost.index), [str(n) for n in cost.index])
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
