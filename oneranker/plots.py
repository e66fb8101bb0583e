"""Figures of the notebooks. Each function takes data, returns a matplotlib Figure, and
draws nothing it computes itself beyond simple counts (the numbers come from the package)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .outputs import output_dir
from .schema import Logs

sns.set_theme(style="whitegrid", context="notebook")


def save(fig: matplotlib.figure.Figure, name: str, profile: str, root: str | Path = "..") -> Path:
    """Write ``<name>.png`` into the profile's figures folder (:func:`outputs.output_dir`: the
    committed ``figures/<profile>`` under ``make reproduce``, else ``scratch/figures/<profile>``),
    folders created as needed; the notebook shows the figure itself. Returns the path."""
    path = output_dir("figures", profile, root) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


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
                 ax: matplotlib.axes.Axes | None = None) -> matplotlib.figure.Figure:
    """Draw a [Q, K] attention mask: dark = the query (row) may attend to the key (column).
    ``groups`` [(label, size), ...] draws separators between token groups."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
    else:
        fig = ax.figure
    ax.imshow(np.asarray(allowed, dtype=float), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ax.set(title=title, xlabel="key", ylabel="query")
    ax.grid(False)
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
                 zero_line: bool = False, ylabel: str = "{}") -> matplotlib.figure.Figure:
    """Mean and 95% CI over seeds of each metric against a swept setting. ``table`` holds
    columns x, ``<metric>_mean`` and ``<metric>_ci``. ``zero_line`` marks 0 (for paired
    differences); ``ylabel`` formats each metric's axis label."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.3))
    for ax, m in zip(np.atleast_1d(axes), metrics):
        ax.errorbar(table[x], table[f"{m}_mean"], yerr=table[f"{m}_ci"], marker="o", capsize=3)
        if zero_line:
            ax.axhline(0.0, color="grey", lw=1, ls="--")
        ax.set(xlabel=x, ylabel=ylabel.format(m))
        if logx:
            ax.set_xscale("log", base=2)
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
    left.set(ylabel="|generator rank - ranker rank|", title="Rank difference")
    for name, group in overlap.groupby("variant", sort=False):
        stats = group.groupby("k")["overlap"].apply(lambda v: mean_ci(v.values))
        k = stats.index.values
        mean = np.array([m for m, _ in stats]); ci = np.array([c for _, c in stats])
        right.plot(k, mean, label=name)
        right.fill_between(k, mean - ci, mean + ci, alpha=0.25)
    right.set(xlabel="K", ylabel="top-K overlap", title="Generator top-K in ranker top-K", ylim=(0, 1.02))
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
