"""Reference lists: the scale every model result is read against.

A number such as HR@5 = 0.05 means nothing alone. Every results table of the project puts
beside its models:

* ``random``: ads drawn uniformly (the floor);
* ``popularity``: the ads clicked most in the training logs, the same list for every request
  (what a generator must beat to have learned anything personal);
* ``co-occurrence``: a non-learned history baseline, an item-to-item count model: an ad scores
  by how often it was clicked (or shown) right after the items of the request's current
  session in the training logs, smoothed towards popularity. No parameter is fitted;
* ``interest oracle``: the top-K ads by the market's true pCTR at the request (the ceiling of
  HR@K: nothing can find the held-out interest positive more often);
* ``value oracle``: the top-K ads by true eCPM (the ceiling of valueHR@K and of the eCPM
  graded NDCG).

:func:`gap_closed` turns a metric into the share of the popularity -> interest-oracle gap that
a list closes: 0 = popularity, 1 = the oracle. :func:`effective_ads` measures how concentrated
the truth is (the number of equally likely ads with the same entropy as a request's true pCTR
distribution): a flat truth leaves no headroom for any model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from .schema import AD, ORGANIC

RANDOM = "random"
POPULARITY = "popularity"
COOCCURRENCE = "co-occurrence"
INTEREST_ORACLE = "interest oracle"
VALUE_ORACLE = "value oracle"
REFERENCES = (RANDOM, POPULARITY, COOCCURRENCE, INTEREST_ORACLE, VALUE_ORACLE)


def random_list(n_items: int, n_requests: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct ads drawn uniformly for each request [R, n] (seeded)."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((n_requests, n_items)), axis=1)[:, :n]


def click_counts(imp_item: np.ndarray, imp_click: np.ndarray, n_items: int) -> np.ndarray:
    """Clicks per ad in logged impressions, with a 1e-6 tie-break by impressions."""
    return (np.bincount(imp_item, weights=imp_click.astype(float), minlength=n_items)
            + 1e-6 * np.bincount(imp_item, minlength=n_items))


def top_n(scores: np.ndarray, n: int, rows_at_once: int = 256) -> np.ndarray:
    """Indices of the ``n`` highest scores of each row, best first; ties go to the lower index:
    exactly the first ``n`` of a full stable sort of the negated scores. A partition finds each
    row's n-th highest score; where exactly ``n`` scores reach it (no tie across the cut), those
    ``n`` are sorted alone, in index order, stably: the full sort's answer at a fraction of
    its cost (2,000 x 20,000 oracle scores at the paper profile). Other rows take the full sort.
    Rows go ``rows_at_once`` at a time, so the partition's copy stays small."""
    scores = np.atleast_2d(scores)
    n_rows, n_cols = scores.shape
    if not 0 < n < n_cols:
        return np.argsort(-scores, axis=1, kind="stable")[:, :n]
    out = np.empty((n_rows, n), dtype=np.intp)
    for lo in range(0, n_rows, rows_at_once):
        block = scores[lo:lo + rows_at_once]
        cut = np.partition(block, n_cols - n, axis=1)[:, n_cols - n:n_cols - n + 1]
        inside = block >= cut
        # exactly n reach the cut: they are the n highest (NaN reaches no cut; the full sort puts it last)
        simple = inside.sum(1) == n
        rows = np.flatnonzero(simple)
        idx = np.nonzero(inside[rows])[1].reshape(len(rows), n)          # in index order
        order = np.argsort(-np.take_along_axis(block[rows], idx, axis=1), axis=1, kind="stable")
        out[lo + rows] = np.take_along_axis(idx, order, axis=1)
        rest = np.flatnonzero(~simple)
        if len(rest):
            out[lo + rest] = np.argsort(-block[rest], axis=1, kind="stable")[:, :n]
    return out


def interest_oracle_list(pctr: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` ads of highest true pCTR at each request [R, n]."""
    return top_n(pctr, n)


def value_oracle_list(ecpm: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` ads of highest true eCPM at each request [R, n]."""
    return top_n(ecpm, n)


def session_tokens(tok_type: np.ndarray, tok_item: np.ndarray, n_organic: int) -> np.ndarray:
    """Token keys of a request's *current session*: the organic items consumed after the last
    ad impression (the run of organic tokens that ends the history). Organic item ``o`` has
    key ``o``; an ad would be ``n_organic + ad`` (none appear in a session by definition)."""
    is_ad = tok_type == AD
    start = len(tok_type) - int(np.argmax(is_ad[::-1])) if is_ad.any() else 0
    sel = tok_type[start:] == ORGANIC
    return tok_item[start:][sel].astype(np.int64)


class CooccurrenceModel:
    """Item-to-item counts from session items to the ads logged right after them.

    ``fit``: for every training request, each item of its current session (organic items
    since the last ad slot) counts each ad of the request's slate with weight
    ``impression_weight`` if only shown and 1 if clicked. ``scores``: for a request, the mean
    over its session items of ``(count[item, ad] + smoothing * p_pop(ad)) / (n[item] +
    smoothing)``, where ``p_pop`` is the popularity distribution: a session without items,
    or with items never seen, falls back to popularity. Counting only, nothing is trained.
    """

    def __init__(self, n_keys: int, n_items: int, impression_weight: float = 0.1, smoothing: float = 5.0) -> None:
        self.n_keys, self.n_items = n_keys, n_items
        self.impression_weight, self.smoothing = impression_weight, smoothing
        self.counts: sparse.csr_matrix | None = None
        self.popularity: np.ndarray | None = None

    def fit(self, sessions: list[np.ndarray], slates: list[np.ndarray], clicks: list[np.ndarray]) -> "CooccurrenceModel":
        """Count every (session item, slate ad) pair of every request, without a Python loop over
        requests (a paper-scale training split has about 830k of them). The pairs are listed
        request by request, key-major within a request, so the summed counts are those of
        adding them one request at a time."""
        keys, k = _flat(sessions, np.int64)
        items, s = _flat(slates, np.int64)
        w = np.where(_flat(clicks, np.int64)[0] > 0, 1.0, self.impression_weight)
        pop = np.bincount(items, weights=w, minlength=self.n_items).astype(float)
        key_request = np.repeat(np.arange(len(k)), k)        # the request of each session item
        reps = s[key_request]                                 # its slate's length
        pos = _ragged_positions((np.cumsum(s) - s)[key_request], reps)   # its slate, in `items`
        self.counts = sparse.csr_matrix((w[pos], (np.repeat(keys, reps), items[pos])),
                                        shape=(self.n_keys, self.n_items))
        self.popularity = pop / max(pop.sum(), 1e-12)
        return self

    def scores(self, sessions: list[np.ndarray]) -> np.ndarray:
        """[R, n_items] scores of the requests whose current sessions are ``sessions``."""
        if self.counts is None:
            raise RuntimeError("CooccurrenceModel.scores before fit")
        totals = np.asarray(self.counts.sum(axis=1)).ravel()
        out = np.empty((len(sessions), self.n_items))
        lam = self.smoothing
        for r, keys in enumerate(sessions):
            if len(keys) == 0:
                out[r] = self.popularity
                continue
            counts = np.asarray(self.counts[keys].todense())
            out[r] = ((counts + lam * self.popularity) / (totals[keys, None] + lam)).mean(0)
        return out


def gap_closed(value: float | np.ndarray, popularity: float | np.ndarray,
               oracle: float | np.ndarray) -> float | np.ndarray:
    """Share of the popularity -> oracle gap closed: (value - popularity) / (oracle -
    popularity). 0 = popularity, 1 = the oracle, negative = below popularity."""
    return (np.asarray(value) - popularity) / np.where(np.asarray(oracle) - popularity == 0, np.nan,
                                                        np.asarray(oracle) - popularity)


def effective_ads(pctr: np.ndarray) -> np.ndarray:
    """Per request, exp(entropy) of the true pCTR normalised over the catalogue [R]: the
    number of equally likely ads that would spread the held-out positive as widely."""
    p = pctr / pctr.sum(axis=1, keepdims=True)
    return np.exp(-(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1))


def request_sessions(stream_offsets: np.ndarray, tok_type: np.ndarray, tok_item: np.ndarray,
                     users: np.ndarray, hist_ends: np.ndarray, n_organic: int) -> list[np.ndarray]:
    """:func:`session_tokens` of each request (user, history end) of a token stream, for all
    requests at once: each session starts after the last ad token of its history (found with a
    running maximum over the whole stream) or at the stream's start."""
    users, hist_ends = np.asarray(users, np.int64), np.asarray(hist_ends, np.int64)
    lo = np.asarray(stream_offsets, np.int64)[users]
    hi = lo + hist_ends
    idx = np.arange(len(tok_type))
    last_ad = np.maximum.accumulate(np.where(tok_type == AD, idx, -1)) if len(tok_type) else idx
    after_ad = np.where(hist_ends > 0, last_ad[np.maximum(hi - 1, 0)] + 1, lo) if len(tok_type) else lo
    start = np.maximum(after_ad, lo)
    n = hi - start
    pos = _ragged_positions(start, n)
    organic = tok_type[pos] == ORGANIC
    keys = tok_item[pos][organic].astype(np.int64)
    counts = np.bincount(np.repeat(np.arange(len(users)), n)[organic], minlength=len(users))
    return np.split(keys, np.cumsum(counts)[:-1]) if len(users) else []


def market_headroom(cfg, n_test: int = 1000, k: int = 5) -> dict[str, float]:
    """How much room a market leaves for learning, from its logs and truth alone (no model):
    HR@k of the random, popularity, co-occurrence and interest-oracle lists on the first
    ``n_test`` test requests, the share of the gap the co-occurrence list closes, and the
    median effective number of ads of the truth. ``cfg``: a :class:`~oneranker.config.Config`."""
    from .data import split_requests
    from .metrics import expected_hit_rate
    from .world import World

    world = World(cfg.world, cfg.seed)
    logs = world.simulate()
    splits, _ = split_requests(logs)
    train, test = splits["train"], splits["test"][:n_test]
    n_items = logs.n_items

    def sessions(idx: np.ndarray) -> list[np.ndarray]:
        return request_sessions(logs.stream_offsets, logs.tok_type, logs.tok_item, logs.req_user[idx],
                                logs.req_hist_end[idx], logs.n_organic)

    def slates(idx: np.ndarray, col: np.ndarray) -> list[np.ndarray]:
        return [col[logs.imp_offsets[i]:logs.imp_offsets[i + 1]] for i in idx]

    truth = world.truth(logs.req_user[test], None, logs.req_oracle[test], logs.req_context[test])
    sel = np.concatenate([np.arange(logs.imp_offsets[i], logs.imp_offsets[i + 1]) for i in train])
    pop = click_counts(logs.imp_item[sel], logs.imp_click[sel], n_items)
    cooc = CooccurrenceModel(logs.n_organic, n_items).fit(sessions(train), slates(train, logs.imp_item),
                                                          slates(train, logs.imp_click))
    lists = {RANDOM: random_list(n_items, len(test), k, cfg.seed),
             POPULARITY: np.broadcast_to(top_n(pop, k), (len(test), k)),
             COOCCURRENCE: top_n(cooc.scores(sessions(test)), k),
             INTEREST_ORACLE: interest_oracle_list(truth.pctr, k)}
    out = {f"{name} HR@{k}": expected_hit_rate(lst, truth.pctr, k) for name, lst in lists.items()}
    out["oracle / popularity"] = out[f"{INTEREST_ORACLE} HR@{k}"] / out[f"{POPULARITY} HR@{k}"]
    out["co-occurrence gap closed"] = float(gap_closed(out[f"{COOCCURRENCE} HR@{k}"], out[f"{POPULARITY} HR@{k}"],
                                                       out[f"{INTEREST_ORACLE} HR@{k}"]))
    out["effective ads (median)"] = float(np.median(effective_ads(truth.pctr)))
    out["ctr"] = float(logs.imp_click.mean())
    return out


def _headroom_row(cfg_dict: dict) -> dict[str, float]:
    """:func:`market_headroom` of a config given as a dict (what a worker process receives)."""
    from .config import config_from_dict

    return market_headroom(config_from_dict(cfg_dict))


def headroom_table(settings: dict[str, dict], profile: str, seeds: list[int] | tuple[int, ...],
                   workers: int | None = None) -> pd.DataFrame:
    """:func:`market_headroom` of every setting (a name and its config overrides) at every seed,
    one row each (columns ``setting``, ``seed`` and the measures), in that order. Each world is
    simulated in a process of its own (:func:`oneranker.parallel.in_processes`): at paper scale one
    takes most of a minute of one core, and notebook 01 measures ten."""
    from .config import make_config
    from .parallel import in_processes

    keys = [(name, s) for name in settings for s in seeds]
    cfgs = [(make_config(profile, seed=s, **settings[name]).to_dict(),) for name, s in keys]
    rows = in_processes(_headroom_row, cfgs, workers, desc="simulating worlds")
    return pd.DataFrame([{"setting": name, "seed": s, **row} for (name, s), row in zip(keys, rows)])


# ---------------------------------------------------------------------------- on prepared data
def popularity_list(prepared, n_requests: int, n: int) -> np.ndarray:
    """The n ads clicked most often in the training logs, for every request [R, n] (the
    baseline a generator must beat)."""
    table = prepared.requests["train"].data   # Arrow: flattening list columns is instant there
    items = table.column("imp_item").combine_chunks().flatten().to_numpy()
    clicks = table.column("imp_click").combine_chunks().flatten().to_numpy()
    counts = click_counts(items, clicks, prepared.meta["n_items"])
    return np.broadcast_to(top_n(counts, n)[0], (n_requests, n))


def _ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop."""
    return np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)


def _flat(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """A list of 1-d arrays as one concatenated array and their lengths."""
    lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
    flat = np.concatenate(arrays).astype(dtype) if len(arrays) else np.zeros(0, dtype)
    return flat, lengths


def _prepared_sessions(prepared, split: str, rows: np.ndarray | None = None) -> list[np.ndarray]:
    from .data import _csr_numpy

    offsets, tok_type = _csr_numpy(prepared.users, "tok_type")
    _, tok_item = _csr_numpy(prepared.users, "tok_item")
    table = prepared.requests[split].data
    users = table.column("user").to_numpy()
    ends = table.column("hist_end").to_numpy()
    if rows is not None:
        users, ends = users[rows], ends[rows]
    return request_sessions(offsets, tok_type, tok_item, users, ends, prepared.meta["n_organic"])


def _prepared_slates(prepared, split: str, column: str) -> list[np.ndarray]:
    arr = prepared.requests[split].data.column(column).combine_chunks()
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy()
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def cooccurrence_list(prepared, rows: np.ndarray, n: int, split: str = "test") -> np.ndarray:
    """The co-occurrence baseline's top n for the requests ``rows`` of ``split`` [R, n], its
    counts taken from the training split (:class:`CooccurrenceModel`)."""
    model = CooccurrenceModel(max(1, prepared.meta["n_organic"]), prepared.meta["n_items"]).fit(
        _prepared_sessions(prepared, "train"), _prepared_slates(prepared, "train", "imp_item"),
        _prepared_slates(prepared, "train", "imp_click"))
    return top_n(model.scores(_prepared_sessions(prepared, split, np.asarray(rows))), n)


def reference_lists(prepared, ts, n: int, seed: int) -> dict[str, np.ndarray]:
    """Every reference list of the module docstring for the truth set ``ts`` [R, n] each."""
    R = len(ts.indices)
    return {RANDOM: random_list(prepared.meta["n_items"], R, n, seed),
            POPULARITY: popularity_list(prepared, R, n),
            COOCCURRENCE: cooccurrence_list(prepared, ts.indices, n),
            INTEREST_ORACLE: interest_oracle_list(ts.truth.pctr, n),
            VALUE_ORACLE: value_oracle_list(ts.truth.ecpm, n)}


# The headroom criteria a market must meet before any model is compared on it, stated before
# the first comparison: the interest oracle at least this many times popularity's HR@k ...
HEADROOM_MIN_RATIO = 4.0
# ... and the popularity -> oracle gap at least this many 95% seed-CIs wide.
HEADROOM_MIN_GAP_CIS = 10.0


def headroom_criteria(rows) -> dict[str, float | bool]:
    """The criteria for one market from its :func:`market_headroom` rows over seeds (a frame with
    one row per seed): the oracle / popularity ratio and the popularity -> oracle gap, each as
    mean and 95% CI over seeds, the gap's width in CIs, and whether each criterion is met."""
    from .metrics import mean_ci

    ratio, ratio_ci = mean_ci(rows["oracle / popularity"])
    gap, gap_ci = mean_ci(rows["interest oracle HR@5"] - rows["popularity HR@5"])
    width = gap / gap_ci if gap_ci > 0 else float("inf")
    return {"ratio": ratio, "ratio_ci": ratio_ci, "gap": gap, "gap_ci": gap_ci, "gap_cis": width,
            "ratio_met": bool(ratio >= HEADROOM_MIN_RATIO), "gap_met": bool(width >= HEADROOM_MIN_GAP_CIS),
            "met": bool(ratio >= HEADROOM_MIN_RATIO and width >= HEADROOM_MIN_GAP_CIS)}
