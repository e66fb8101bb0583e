"""The simulated market: knobs do what their documentation says, determinism, truth."""

import numpy as np
import pytest

from oneranker.config import make_config
from oneranker.data import ctr_by_position, log_summary, user_category_breadth
from oneranker.schema import AD, IMPRESSION, ORGANIC
from oneranker.world import World


@pytest.fixture(scope="module")
def quick_world():
    w = World(make_config("quick").world, seed=0)
    return w, w.simulate()


def small(seed=0, **world):
    return World(make_config("quick", world={"n_users": 300, "n_items": 200, "n_organic": 100, **world}).world, seed)


def test_logs_are_valid(quick_world):
    _, logs = quick_world
    logs.validate()


def test_base_rates_fall_in_documented_ranges(quick_world):
    # docs/design.md, "The simulated ad market": CTR a few percent, CVR ~10% of clicks.
    s = log_summary(quick_world[1])
    assert 0.01 <= s["ctr"] <= 0.10, s["ctr"]
    assert 0.05 <= s["cvr_per_click"] <= 0.20, s["cvr_per_click"]


def test_calibration_hits_base_ctr_knob():
    for target in (0.01, 0.05):
        w = small(**{"base_ctr": target})
        rng = np.random.default_rng(1)
        users = rng.integers(0, 300, 5000)
        items = rng.choice(200, size=(5000, 1), p=w.item_popularity)
        t = w.truth(users, items, w.sample_active_interest(users, rng), w.sample_context(5000, rng))
        assert abs(t.pctr.mean() - target) < 0.25 * target


def test_interest_value_correlation_follows_its_knob():
    measured = [World(make_config("quick", world={"interest_value_corr": r}).world, 0).interest_value_correlation()
                for r in (-0.6, 0.0, 0.6)]
    assert measured[0] < measured[1] < measured[2]
    assert measured[0] < -0.3 and measured[2] > 0.0


def test_position_bias_shows_in_logs(quick_world):
    ctr = ctr_by_position(quick_world[1])
    values = [ctr[p] for p in sorted(ctr)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_position_bias_knob_off_flattens_ctr():
    ctr = ctr_by_position(small(**{"position_bias": 0.0}).simulate())
    strong = ctr_by_position(small(**{"position_bias": 2.0}).simulate())
    assert strong[1] / strong[4] > ctr[1] / ctr[4]


def test_same_seed_same_logs_other_seed_other_logs():
    a, b, c = small(0).simulate(), small(0).simulate(), small(1).simulate()
    for name in ("tok_item", "tok_action", "imp_item", "imp_click", "req_context", "item_bid"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.item_bid, c.item_bid)
    assert len(a.tok_item) != len(c.tok_item) or not np.array_equal(a.tok_item, c.tok_item)


def test_multi_interest_users_click_several_categories(quick_world):
    w, logs = quick_world
    breadth = user_category_breadth(logs)
    multi = w.user_n_interests >= 2
    assert breadth[multi].mean() > breadth[~multi].mean()


def test_history_end_splits_organic_session_from_its_slate(quick_world):
    _, logs = quick_world
    S = 4
    for r in range(0, logs.n_requests, 997):
        u, end = logs.req_user[r], logs.req_hist_end[r]
        o = logs.stream_offsets[u]
        after = slice(o + end, o + end + S)
        assert (logs.tok_type[after] == AD).all()
        np.testing.assert_array_equal(logs.tok_item[after], logs.imp_item[logs.imp_offsets[r]:logs.imp_offsets[r + 1]])
        assert (logs.tok_action[after] >= IMPRESSION).all()
        if end > 0:
            assert logs.tok_type[o + end - 1] in (AD, ORGANIC)


def test_truth_over_the_catalogue_equals_the_catalogue_given_as_items(monkeypatch):
    """items=None (every ad for every request, no gathered copies) gives the numbers of the
    catalogue passed as items, bit for bit, across chunks of users too; the bids and prices
    are the catalogue's, row by row."""
    import oneranker.world as world_module

    monkeypatch.setattr(world_module, "_USER_CHUNK", 7)    # several chunks for 20 users
    w = small()
    rng = np.random.default_rng(3)
    users = rng.choice(w.cfg.n_users, 20, replace=False)
    active, context = w.sample_active_interest(users, rng), w.sample_context(len(users), rng)
    given = w.truth(users, np.broadcast_to(np.arange(w.cfg.n_items), (20, w.cfg.n_items)), active, context)
    everything = w.truth(users, None, active, context)
    for field in ("pctr", "pcvr", "bid", "price"):
        assert np.array_equal(getattr(everything, field), getattr(given, field)), field
    assert everything.pctr.shape == (20, w.cfg.n_items) and np.array_equal(everything.bid[5], w.item_bid)
    assert w.truth(users[:0], None, active[:0], context[:0]).pctr.shape == (0, w.cfg.n_items)


def test_truth_is_consistent():
    w = small()
    users = np.array([0, 1, 2])
    items = np.array([[0, 1], [2, 3], [4, 5]])
    t = w.truth(users, items, np.zeros(3, int), np.zeros((3, 2), int))
    assert t.pctr.shape == (3, 2) and ((0 < t.pctr) & (t.pctr < 1)).all()
    np.testing.assert_allclose(t.ecpm, w.item_bid[items] * t.pctr * t.pcvr)
    np.testing.assert_allclose(t.gmv, w.item_price[items] * t.pctr * t.pcvr)


def test_active_interest_raises_its_categorys_ctr():
    w = small(**{"session_boost": 2.0})
    multi = np.flatnonzero(w.user_n_interests >= 2)[:50]
    cat0 = w.user_interest_cat[multi, 0]
    items = np.array([np.flatnonzero(w.item_category == c)[:1] for c in cat0])
    ctx = np.zeros((len(multi), 2), int)
    on = w.truth(multi, items, np.zeros(len(multi), int), ctx).pctr
    off = w.truth(multi, items, np.ones(len(multi), int), ctx).pctr
    assert (on > off).mean() > 0.9


def test_logs_do_not_depend_on_the_number_of_threads(monkeypatch):
    """The chunks of users are served in parallel threads from random numbers drawn first,
    in one stream: with one thread or several, the logs are the same."""
    import dataclasses
    import oneranker.world as world

    cfg = make_config("quick", seed=5, **{"world.n_users": 600})
    monkeypatch.setattr(world, "_USER_CHUNK", 64)          # ~10 chunks per time step

    def logs() -> dict:
        out = World(cfg.world, cfg.seed).simulate()
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)
                if isinstance(getattr(out, f.name), np.ndarray)}

    threaded = logs()
    monkeypatch.setattr(world.os, "cpu_count", lambda: 1)  # one thread
    sequential = logs()
    for name, value in threaded.items():
        np.testing.assert_array_equal(value, sequential[name], err_msg=name)


def test_the_seed_reaches_the_logging_stream_too():
    """Two seeds' logs differ in their own random draws, not only through their catalogues: the
    number of requests of each user is the logging stream's first draw."""
    a, c = small(0).simulate(), small(1).simulate()
    assert not np.array_equal(np.bincount(a.req_user, minlength=300), np.bincount(c.req_user, minlength=300))


def test_a_noiseless_legacy_ranker_serves_distinct_ads_in_order_of_true_ecpm():
    """logging_noise 0: the legacy cascade's estimate is the true eCPM (bid x pCTR x pCVR), so
    every slate holds distinct ads in non-increasing true eCPM."""
    w = small(**{"logging_noise": 0.0})
    logs = w.simulate()
    S = w.cfg.slate_size
    slates = logs.imp_item.reshape(-1, S)
    ecpm = w.truth(logs.req_user, slates, logs.req_oracle, logs.req_context).ecpm
    assert (np.diff(ecpm, axis=1) <= 1e-12 * ecpm[:, :-1]).all()
    assert all(len(set(s)) == S for s in slates.tolist())


def test_price_follows_bid_as_its_knob_says():
    """price_bid_corr: 'pricier goods bid more' (both follow the value tier)."""
    corr = lambda w: np.corrcoef(np.log(w.item_price), np.log(w.item_bid))[0, 1]  # noqa: E731
    assert corr(small(**{"price_bid_corr": 0.9})) > 0.3
    assert corr(small(**{"price_bid_corr": -0.9})) < -0.3
