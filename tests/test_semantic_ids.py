"""Semantic IDs: residual structure, dedup, statistics by hand, the prefix trie, errors."""

import itertools
import warnings

import numpy as np
import pytest

from oneranker.semantic_ids import (
    PrefixTrie,
    SemanticIds,
    build_semantic_ids,
    code_stats,
    dedup_digit,
    residual_kmeans,
)

# Four far-apart cluster centres, each with the same four small offsets: level 1 should find
# the centres, level 2 (on the residuals) the offsets, whatever the cluster.
CENTRES = np.array([[10.0, 10.0], [10.0, -10.0], [-10.0, 10.0], [-10.0, -10.0]])
OFFSETS = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
CLUSTER = np.repeat(np.arange(4), 4)   # item i = CENTRES[i // 4] + OFFSETS[i % 4]
OFFSET = np.tile(np.arange(4), 4)
TOY = CENTRES[CLUSTER] + OFFSETS[OFFSET]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if labelings a and b group the items identically (labels themselves arbitrary)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def random_content(n=300, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim)) * 3
    return centres[rng.integers(0, 6, n)] + rng.normal(size=(n, dim))


# ---------------------------------------------------------------------------- residual k-means
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_structure_on_toy_data(seed):
    codes, centroids = residual_kmeans(TOY, levels=2, codebook_size=4, seed=seed)
    assert codes.dtype == np.int64 and codes.shape == (16, 2)
    assert [c.shape for c in centroids] == [(4, 2), (4, 2)]
    # Level 1 groups the items by cluster centre.
    assert same_partition(codes[:, 0], CLUSTER)
    # Level 2 clusters the residuals: it separates the points within each level-1 cluster ...
    for c in range(4):
        assert len(set(codes[CLUSTER == c, 1].tolist())) == 4
    # ... and, being residual, gives the same code to the same offset in every cluster.
    assert same_partition(codes[:, 1], OFFSET)
    # Centroids are the centres and the offsets; together they reconstruct the data exactly.
    np.testing.assert_allclose(np.sort(centroids[0], axis=0), np.sort(CENTRES, axis=0))
    np.testing.assert_allclose(np.sort(centroids[1], axis=0), np.sort(OFFSETS, axis=0), atol=1e-12)
    recon = centroids[0][codes[:, 0]] + centroids[1][codes[:, 1]]
    np.testing.assert_allclose(recon, TOY, atol=1e-12)


def test_more_levels_keep_coarse_codes_and_reduce_error():
    x = random_content()
    codes2, cents2 = residual_kmeans(x, levels=2, codebook_size=5, seed=3)
    codes3, cents3 = residual_kmeans(x, levels=3, codebook_size=5, seed=3)
    np.testing.assert_array_equal(codes3[:, :2], codes2)   # per-level seeds do not depend on `levels`
    errors = []
    for depth in range(4):
        recon = sum((cents3[l][codes3[:, l]] for l in range(depth)), np.zeros_like(x))
        errors.append(((x - recon) ** 2).sum())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_determinism():
    x = random_content()
    a_codes, a_cents = residual_kmeans(x, 3, 6, seed=7)
    b_codes, b_cents = residual_kmeans(x, 3, 6, seed=7)
    np.testing.assert_array_equal(a_codes, b_codes)
    for a, b in zip(a_cents, b_cents):
        np.testing.assert_array_equal(a, b)
    # Another seed may give other codes, but a valid result all the same.
    c_codes, _ = residual_kmeans(x, 3, 6, seed=8)
    assert c_codes.shape == a_codes.shape and c_codes.min() >= 0 and c_codes.max() < 6
    np.testing.assert_array_equal(build_semantic_ids(x, 3, 6, seed=7).codes,
                                  build_semantic_ids(x, 3, 6, seed=7).codes)


@pytest.mark.parametrize("content, kwargs, words", [
    (np.zeros((3, 2)), {"codebook_size": 4}, ["codebook_size=4", "3"]),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), {}, ["finite", "item 0"]),
    (np.array([[0.0, 1.0], [np.inf, 1.0]]), {}, ["finite", "item 1"]),
    (np.zeros(5), {}, ["2-D"]),
    (np.zeros((0, 3)), {}, ["empty"]),
    (np.zeros((4, 0)), {}, ["empty"]),
    (np.zeros((4, 2)), {"levels": 0}, ["levels"]),
])
def test_residual_kmeans_errors(content, kwargs, words):
    args = {"levels": 2, "codebook_size": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError) as err:
        residual_kmeans(content, **args)
    for w in words:
        assert w in str(err.value)


# ---------------------------------------------------------------------------- dedup
def test_dedup_digit_by_hand():
    out = dedup_digit(np.array([[0, 1], [0, 1], [2, 3], [0, 1]]))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [0, 1, 0, 2])
    np.testing.assert_array_equal(dedup_digit(np.array([[5], [3], [5], [3], [3]])), [0, 0, 1, 1, 2])
    assert dedup_digit(np.zeros((0, 2), dtype=np.int64)).shape == (0,)


def test_dedup_digit_makes_rows_unique():
    codes = np.random.default_rng(0).integers(0, 3, size=(500, 2))
    d = dedup_digit(codes)
    full = np.column_stack([codes, d])
    assert len(np.unique(full, axis=0)) == len(full)
    # Each group's digits are 0..size-1, assigned in item order.
    for code in np.unique(codes, axis=0):
        rows = np.flatnonzero((codes == code).all(axis=1))
        np.testing.assert_array_equal(d[rows], np.arange(len(rows)))


# ---------------------------------------------------------------------------- statistics
def test_code_stats_by_hand():
    s = code_stats(np.array([[0], [0], [1], [2]]), codebook_size=4)
    assert (s.n_items, s.levels, s.codebook_size) == (4, 1, 4)
    assert s.n_unique_codes == 3
    assert s.collision_rate == pytest.approx(0.5)
    assert s.max_dedup == 2
    assert s.usage == pytest.approx((0.75,))
    assert s.entropy_bits == pytest.approx((1.5,))   # p = 1/2, 1/4, 1/4


def test_code_stats_two_levels_by_hand():
    # Level 1 uses one code of 2 (entropy 0); level 2 uses both equally (1 bit).
    # Tuples: (0,0) twice and (0,1) twice, so every item collides.
    s = code_stats(np.array([[0, 0], [0, 1], [0, 0], [0, 1]]), codebook_size=2)
    assert s.n_unique_codes == 2 and s.collision_rate == 1.0 and s.max_dedup == 2
    assert s.usage == pytest.approx((0.5, 1.0))
    assert s.entropy_bits == pytest.approx((0.0, 1.0))
    d = s.as_dict()
    assert d == {"n_items": 4, "levels": 2, "codebook_size": 2, "n_unique_codes": 2, "collision_rate": 1.0,
                 "max_dedup": 2, "usage_l1": 0.5, "entropy_l1": 0.0, "usage_l2": 1.0, "entropy_l2": 1.0}
    assert all(type(v) in (int, float) for v in d.values())


def test_code_stats_no_collisions():
    s = code_stats(np.array([[0, 1], [1, 0], [1, 1]]), codebook_size=2)
    assert s.collision_rate == 0.0 and s.max_dedup == 1 and s.n_unique_codes == 3


def test_code_stats_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="codebook_size=2"):
        code_stats(np.array([[0], [2]]), codebook_size=2)


# ---------------------------------------------------------------------------- build
def test_build_semantic_ids():
    x = random_content()
    sids = build_semantic_ids(x, levels=2, codebook_size=4, seed=0)   # 16 cells for 300 items: collisions
    assert isinstance(sids, SemanticIds)
    level_codes, _ = residual_kmeans(x, 2, 4, seed=0)
    assert sids.codes.dtype == np.int64 and sids.codes.shape == (300, 3)
    np.testing.assert_array_equal(sids.codes[:, :2], level_codes)
    np.testing.assert_array_equal(sids.codes[:, 2], dedup_digit(level_codes))
    assert len(np.unique(sids.codes, axis=0)) == 300   # every item's full code is unique
    assert sids.stats == code_stats(level_codes, 4)
    assert sids.stats.max_dedup == sids.codes[:, 2].max() + 1 > 1
    assert sids.digits_per_level == (4, 4, sids.stats.max_dedup)
    assert all(sids.codes[:, i].max() < n for i, n in enumerate(sids.digits_per_level))
    trie = sids.trie
    assert trie is sids.trie   # cached
    np.testing.assert_array_equal(trie.items_of(sids.codes), np.arange(300))
    assert all(trie.item_of(sids.codes[i]) == i for i in range(0, 300, 37))


# ---------------------------------------------------------------------------- prefix trie
HAND = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [2, 0, 0]])


def test_trie_by_hand():
    t = PrefixTrie(HAND)
    assert t.depth == 3 and len(t) == 4
    assert t.contains((0, 1, 1)) and t.contains([2, 0, 0]) and t.contains(np.array([0, 0, 0]))
    for bad in [(0, 1, 2), (1, 0, 0), (0, 1), (), (0, 1, 1, 0), (-1, 0, 0), (0, 0, 5)]:
        assert not t.contains(bad), bad
    for ok in [(), (0,), (2,), (0, 1), (2, 0), (0, 1, 1)]:
        assert t.is_prefix(ok), ok
    for bad in [(1,), (3,), (-1,), (2, 1), (0, 2), (0, 1, 1, 0)]:
        assert not t.is_prefix(bad), bad
    expected_children = {(): [0, 2], (0,): [0, 1], (0, 1): [0, 1], (0, 0): [0], (2,): [0], (2, 0): [0],
                         (1,): [], (0, 2): [], (0, 1, 1): []}
    for prefix, kids in expected_children.items():
        got = t.children(prefix)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, kids, err_msg=str(prefix))
    assert [t.item_of(c) for c in HAND] == [0, 1, 2, 3]
    with pytest.raises(KeyError, match=r"\(1, 0, 0\)"):
        t.item_of((1, 0, 0))
    with pytest.raises(KeyError, match=r"\(0, 1\)"):
        t.item_of((0, 1))


def test_trie_encoding_does_not_alias():
    # Radices (2, 2): a naive encoding maps (0, 2) onto (1, 0) and (0, -1) onto (-1, 1).
    t = PrefixTrie(np.array([[1, 0], [0, 1]]))
    assert not t.contains((0, 2)) and not t.is_prefix((0, 2))
    np.testing.assert_array_equal(t.items_of(np.array([[0, 2], [1, 0], [0, -1], [0, 1], [2, 0]])),
                                  [-1, 0, -1, 1, -1])
    mask = t.next_mask(np.array([[0], [1], [2], [-1]]), width=3)
    np.testing.assert_array_equal(mask, [[False, True, False], [True, False, False],
                                         [False, False, False], [False, False, False]])


def test_items_of_marks_invalid_codes():
    t = PrefixTrie(HAND)
    perm = np.array([3, 1, 0, 2])
    np.testing.assert_array_equal(t.items_of(HAND[perm]), perm)
    queries = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 2], [2, 0, 0], [9, 9, 9], [-1, 0, 0]])
    out = t.items_of(queries)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2, -1, -1, 3, -1, -1])
    assert t.items_of(np.zeros((0, 3), dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="3 digits"):
        t.items_of(np.array([[0, 1]]))


def brute_force_mask(codes: np.ndarray, prefixes: np.ndarray, width: int) -> np.ndarray:
    valid = {tuple(row[:l]) for row in codes.tolist() for l in range(codes.shape[1] + 1)}
    return np.array([[tuple(p) + (d,) in valid for d in range(width)] for p in prefixes.tolist()],
                    dtype=bool).reshape(len(prefixes), width)


def test_next_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    level_codes = rng.integers(0, 5, size=(400, 3))
    codes = np.column_stack([level_codes, dedup_digit(level_codes)])
    t = PrefixTrie(codes)
    width = 8
    for length in range(codes.shape[1]):
        # Half valid prefixes (taken from items), half random ones, some with out-of-range digits.
        valid = codes[rng.integers(0, len(codes), 300), :length]
        random = rng.integers(-1, 7, size=(300, length))
        prefixes = np.concatenate([valid, random])
        mask = t.next_mask(prefixes, width)
        assert mask.dtype == bool and mask.shape == (600, width)
        np.testing.assert_array_equal(mask, brute_force_mask(codes, prefixes, width), err_msg=f"length {length}")
        # Consistent with children() row by row.
        for p, row in zip(prefixes[::50], mask[::50]):
            np.testing.assert_array_equal(np.flatnonzero(row), t.children(p))
    assert t.next_mask(np.zeros((0, 2), dtype=np.int64), width).shape == (0, width)


def test_next_mask_errors():
    t = PrefixTrie(HAND)
    with pytest.raises(ValueError, match="depth"):
        t.next_mask(HAND, width=4)              # complete codes have no next digit
    with pytest.raises(ValueError, match="width"):
        t.next_mask(np.zeros((2, 0), dtype=np.int64), width=2)   # digit 2 is valid at position 0


def test_trie_rejects_duplicate_rows():
    with pytest.raises(ValueError) as err:
        PrefixTrie(np.array([[0, 1], [2, 3], [0, 1]]))
    msg = str(err.value)
    assert "unique" in msg and "items 0 and 2" in msg and "(0, 1)" in msg and "dedup" in msg


def test_trie_enumerates_exactly_the_codes():
    # Walking the trie through children() reproduces the code set.
    t = PrefixTrie(HAND)

    def walk(prefix):
        if len(prefix) == t.depth:
            yield prefix
        for d in t.children(prefix):
            yield from walk(prefix + (int(d),))

    assert sorted(walk(())) == sorted(map(tuple, HAND.tolist()))
    all_codes = itertools.product(range(4), repeat=3)
    assert {c for c in all_codes if t.contains(c)} == set(map(tuple, HAND.tolist()))


def test_building_warns_when_many_items_share_a_semantic_id():
    from oneranker.semantic_ids import SemanticIdWarning, build_semantic_ids

    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((64, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SemanticIdWarning)           # well spread content: no warning
        build_semantic_ids(distinct, levels=3, codebook_size=8, seed=0)
    repeated = np.repeat(distinct[:8], 8, axis=0)                  # 8 distinct vectors for 64 items
    with pytest.warns(SemanticIdWarning, match=r"share their semantic ID \(\d+ distinct codes; 8 distinct content"):
        ids = build_semantic_ids(repeated, levels=3, codebook_size=8, seed=0)
    assert ids.stats.collision_rate > 0.2


def test_the_seed_reaches_every_levels_kmeans():
    """seed 7 and seed 8 start k-means from other centres, so the labels (numbered by the
    initial centres) differ at every level: the seed is passed on, not fixed."""
    x = random_content()
    a, _ = residual_kmeans(x, 3, 6, seed=7)
    b, _ = residual_kmeans(x, 3, 6, seed=8)
    assert all(not np.array_equal(a[:, l], b[:, l]) for l in range(3))
