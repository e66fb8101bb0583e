"""Reference lists (random, popularity, co-occurrence, oracles), gap closed and the truth's
concentration: hand-computed cases."""

import numpy as np
import pytest

from oneranker import reference
from oneranker.schema import AD, ORGANIC
from oneranker.world import Truth


def test_oracles_pick_the_highest_truth():
    truth = Truth(pctr=np.array([[0.1, 0.2, 0.4]]), pcvr=np.array([[0.5, 0.5, 0.5]]),
                  bid=np.array([[1.0, 4.0, 1.0]]), price=np.ones((1, 3)))
    assert reference.interest_oracle_list(truth.pctr, 2).tolist() == [[2, 1]]
    assert reference.value_oracle_list(truth.ecpm, 2).tolist() == [[1, 2]]   # ecpm .05, .4, .2


def test_top_n_is_stable_and_best_first():
    assert reference.top_n(np.array([[1.0, 3.0, 3.0, 2.0]]), 3).tolist() == [[1, 2, 3]]
    assert reference.top_n(np.array([[1.0, 3.0]]), 2).tolist() == [[1, 0]]
    # a tie across the cut (two 3.0s for one place) takes the full sort: the lower index wins
    assert reference.top_n(np.array([[3.0, 1.0, 3.0, 5.0]]), 2).tolist() == [[3, 0]]
    # NaN goes last, as in the full sort of the negated scores
    assert reference.top_n(np.array([[np.nan, 1.0, 2.0]]), 2).tolist() == [[2, 1]]


def test_top_n_equals_the_first_n_of_a_full_stable_sort():
    """The partition path must be the full stable argsort's answer, row by row, on scores with
    ties at and across the cut, NaNs, signed zeros, and more rows than one block."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 40)))
        kind = trial % 4
        x = rng.normal(size=shape) if kind == 0 else rng.integers(0, 4, size=shape).astype(float)
        if kind == 2:
            x[rng.random(shape) < 0.2] = np.nan
        if kind == 3:
            x = np.where(rng.random(shape) < 0.5, 0.0, -0.0)
        for n in (0, 1, 2, 5, shape[1], shape[1] + 2):
            want = np.argsort(-x, axis=1, kind="stable")[:, :n]
            assert np.array_equal(reference.top_n(x, n, rows_at_once=3), want), (trial, n)


def test_random_list_is_distinct_and_seeded():
    a, b = reference.random_list(50, 4, 10, seed=3), reference.random_list(50, 4, 10, seed=3)
    assert (a == b).all() and all(len(set(r)) == 10 for r in a)
    assert not (a == reference.random_list(50, 4, 10, seed=4)).all()


def test_popularity_list_orders_by_training_clicks(tiny_prepared):
    table = tiny_prepared.requests["train"].data
    items = table.column("imp_item").combine_chunks().flatten().to_numpy()
    clicks = table.column("imp_click").combine_chunks().flatten().to_numpy()
    counts = np.bincount(items, weights=clicks, minlength=tiny_prepared.meta["n_items"])
    lists = reference.popularity_list(tiny_prepared, 3, 10)
    assert lists.shape == (3, 10) and (lists == lists[0]).all()
    assert (np.diff(counts[lists[0]]) <= 0).all()           # most clicked first
    assert counts[lists[0][-1]] >= np.sort(counts)[::-1][9]
    # ads tied on clicks are ordered by impressions: ad 1 (1 click in 2 impressions) before ad 0 (1 in 1)
    assert reference.top_n(reference.click_counts(np.array([0, 1, 1]), np.array([1, 1, 0]), 2), 2).tolist() == [[1, 0]]


def test_session_is_the_organic_run_after_the_last_ad():
    types = np.array([ORGANIC, AD, AD, ORGANIC, ORGANIC])
    items = np.array([7, 1, 2, 3, 4])
    assert reference.session_tokens(types, items, n_organic=10).tolist() == [3, 4]
    assert reference.session_tokens(np.array([ORGANIC, ORGANIC]), np.array([5, 6]), 10).tolist() == [5, 6]
    assert reference.session_tokens(np.array([ORGANIC, AD]), np.array([5, 6]), 10).tolist() == []


def test_cooccurrence_scores_by_hand():
    # two organic items, three ads; item 0 was followed by a click on ad 2 and an impression of ad 1
    model = reference.CooccurrenceModel(n_keys=2, n_items=3, impression_weight=0.5, smoothing=1.0)
    model.fit([np.array([0]), np.array([1])], [np.array([2, 1]), np.array([0])], [np.array([1, 0]), np.array([0])])
    pop = np.array([0.5, 0.5, 1.0]) / 2.0
    np.testing.assert_allclose(model.popularity, pop)
    s = model.scores([np.array([0]), np.array([], dtype=np.int64)])
    np.testing.assert_allclose(s[0], (np.array([0.0, 0.5, 1.0]) + pop) / (1.5 + 1.0))
    np.testing.assert_allclose(s[1], pop)       # an empty session falls back to popularity
    assert reference.top_n(s, 1)[0, 0] == 2
    # a session of several items scores the mean of its items' rows: item 0's (0, 0.5, 1) + pop over
    # 2.5 = (0.1, 0.3, 0.6) and item 1's (0.5, 0, 0) + pop over 1.5 = (0.5, 1/6, 1/3)
    np.testing.assert_allclose(model.scores([np.array([0, 1])])[0], [0.3, 0.7 / 3, 1.4 / 3])


def test_gap_closed_and_effective_ads():
    assert reference.gap_closed(0.3, 0.1, 0.5) == pytest.approx(0.5)
    assert reference.gap_closed(0.05, 0.1, 0.5) == pytest.approx(-0.125)
    np.testing.assert_allclose(reference.effective_ads(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])),
                               [4.0, 1.0])


def test_reference_lists_on_a_tiny_world(tiny_prepared):
    from conftest import tiny_config
    from oneranker.evaluate import truth_set
    from oneranker.metrics import expected_hit_rate
    from oneranker.world import World

    cfg = tiny_config()
    ts = truth_set(World(cfg.world, cfg.seed), tiny_prepared, n_requests=50)
    lists = reference.reference_lists(tiny_prepared, ts, 10, seed=0)
    assert set(lists) == set(reference.REFERENCES)
    hr = {k: expected_hit_rate(v, ts.truth.pctr, 5) for k, v in lists.items()}
    assert hr[reference.INTEREST_ORACLE] == max(hr.values())   # nothing beats the interest oracle
    assert (lists[reference.VALUE_ORACLE] == reference.value_oracle_list(ts.truth.ecpm, 10)).all()
    assert (lists[reference.INTEREST_ORACLE] == reference.interest_oracle_list(ts.truth.pctr, 10)).all()
    assert all(v.shape == (50, 10) for v in lists.values())


def test_headroom_criteria_by_hand():
    import pandas as pd

    from oneranker.reference import headroom_criteria

    rows = pd.DataFrame({"oracle / popularity": [5.0, 7.0], "interest oracle HR@5": [0.10, 0.12],
                         "popularity HR@5": [0.02, 0.02]})
    c = headroom_criteria(rows)
    # ratio 6 ± t(0.975, 1) x 1.414 / 1.414 = 12.706; gap 0.09 ± 12.706 x 0.01414 / 1.414 = 0.127
    assert c["ratio"] == pytest.approx(6.0) and c["ratio_ci"] == pytest.approx(12.706, abs=1e-3)
    assert c["gap"] == pytest.approx(0.09) and c["gap_ci"] == pytest.approx(0.12706, abs=1e-5)
    assert c["ratio_met"] and not c["gap_met"] and not c["met"]
    steady = pd.DataFrame({"oracle / popularity": [5.0, 5.0], "interest oracle HR@5": [0.10, 0.10],
                           "popularity HR@5": [0.02, 0.02]})
    assert headroom_criteria(steady)["met"]            # no spread over seeds: the gap is infinitely many CIs wide


# The per-request loops the vectorised functions replaced, kept as their reference.
def _sessions_by_loop(stream_offsets, tok_type, tok_item, users, hist_ends, n_organic):
    return [reference.session_tokens(tok_type[stream_offsets[u]:stream_offsets[u] + e],
                                     tok_item[stream_offsets[u]:stream_offsets[u] + e], n_organic)
            for u, e in zip(users, hist_ends)]


def _counts_by_loop(n_keys, n_items, sessions, slates, clicks, impression_weight=0.1):
    from scipy import sparse

    rows, cols, vals, pop = [], [], [], np.zeros(n_items)
    for keys, items, click in zip(sessions, slates, clicks):
        w = np.where(click > 0, 1.0, impression_weight)
        np.add.at(pop, items, w)
        rows.append(np.repeat(keys, len(items)))
        cols.append(np.tile(items, len(keys)))
        vals.append(np.tile(w, len(keys)))
    counts = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows).astype(np.int64),
                                                       np.concatenate(cols).astype(np.int64))), shape=(n_keys, n_items))
    return counts, pop / pop.sum()


def test_sessions_of_all_requests_equal_those_found_one_by_one():
    """Hand-made streams: a session after an ad, one with no ad before it, an empty history, a
    history ending on an ad, and two users back to back (the second's session must not start in
    the first's stream)."""
    tok_type = np.array([ORGANIC, AD, ORGANIC, ORGANIC, AD, ORGANIC, ORGANIC, ORGANIC, AD])
    tok_item = np.arange(len(tok_type))
    offsets = np.array([0, 5, 9])
    users = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    ends = np.array([0, 1, 2, 4, 0, 1, 3, 4])
    got = reference.request_sessions(offsets, tok_type, tok_item, users, ends, n_organic=100)
    want = _sessions_by_loop(offsets, tok_type, tok_item, users, ends, 100)
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert [g.tolist() for g in got] == [[], [0], [], [2, 3], [], [5], [5, 6, 7], []]


def test_cooccurrence_counts_equal_the_per_request_sums_bit_for_bit(tiny_prepared):
    """The vectorised fit adds the same pairs in the same order as one request at a time: the
    counts and the popularity are equal exactly, on a real (tiny) training split."""
    sessions = reference._prepared_sessions(tiny_prepared, "train")
    slates = reference._prepared_slates(tiny_prepared, "train", "imp_item")
    clicks = reference._prepared_slates(tiny_prepared, "train", "imp_click")
    users = tiny_prepared.requests["train"].data.column("user").to_numpy()
    ends = tiny_prepared.requests["train"].data.column("hist_end").to_numpy()
    from oneranker.data import _csr_numpy
    offsets, tok_type = _csr_numpy(tiny_prepared.users, "tok_type")
    _, tok_item = _csr_numpy(tiny_prepared.users, "tok_item")
    n_organic = tiny_prepared.meta["n_organic"]
    assert [a.tolist() for a in sessions] == \
        [b.tolist() for b in _sessions_by_loop(offsets, tok_type, tok_item, users, ends, n_organic)]
    assert sum(len(s) for s in sessions) > 0
    n_keys, n_items = max(1, n_organic), tiny_prepared.meta["n_items"]
    model = reference.CooccurrenceModel(n_keys, n_items).fit(sessions, slates, clicks)
    counts, pop = _counts_by_loop(n_keys, n_items, sessions, slates, clicks)
    assert (model.counts != counts).nnz == 0 and model.counts.nnz == counts.nnz
    assert np.array_equal(model.popularity, pop)
