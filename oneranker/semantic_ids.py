"""Semantic IDs for ads: residual k-means codes, a dedup digit and a prefix trie.

A generative recommender cannot emit an ad's raw index (a vocabulary of 20k+ opaque
symbols learns nothing about unseen or rare ads). Instead each ad gets a short code of
digits, coarse to fine, computed from its content vector:

* **Residual k-means** (:func:`residual_kmeans`): level 1 clusters the content vectors into
  ``codebook_size`` groups; level ``l`` clusters what level ``l-1`` left unexplained (the
  residual ``x - c_1 - ... - c_{l-1}``). Similar ads therefore share code prefixes, so the
  model can generalise across them.
* **Dedup digit** (:func:`dedup_digit`): two ads may fall into the same cell at every level.
  A final digit 0, 1, 2, ... (in item order) makes every full code unique, so a generated
  code names exactly one ad.
* **Prefix trie** (:class:`PrefixTrie`): the set of valid codes and their prefixes. Beam search
  asks it which next digits are valid (:meth:`PrefixTrie.next_mask`), so generation never emits a
  code that is not an ad, and maps generated codes back to ads (:meth:`PrefixTrie.items_of`).

:func:`build_semantic_ids` runs all three and computes :class:`SemanticIdStats` (collisions,
codebook usage, entropy) so that a poor codebook shows up in tables instead of silently
degrading the model.
"""

from __future__ import annotations

import warnings

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from sklearn.cluster import KMeans

__all__ = [
    "PrefixTrie",
    "SemanticIdStats",
    "SemanticIds",
    "build_semantic_ids",
    "code_stats",
    "dedup_digit",
    "residual_kmeans",
]

# Encoded prefixes are int64; keep a safety margin below 2**63 so ``key * radix + digit``
# in the look-ups can never overflow.
_MAX_CODE_SPACE = 2**62


# ---------------------------------------------------------------------------- residual k-means
def _check_content(content: np.ndarray) -> np.ndarray:
    """Return content as float64, or raise ValueError saying what is wrong with it."""
    content = np.asarray(content)
    if content.ndim != 2:
        raise ValueError(f"content must be a 2-D array [n_items, dim], got shape {content.shape}")
    if content.shape[0] == 0 or content.shape[1] == 0:
        raise ValueError(f"content is empty (shape {content.shape}); need at least one item and one dimension")
    if not np.issubdtype(content.dtype, np.number) or np.issubdtype(content.dtype, np.complexfloating):
        raise ValueError(f"content must be real numbers, got dtype {content.dtype}")
    content = content.astype(np.float64)
    finite = np.isfinite(content)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(f"content must be finite, but {len(bad)} item(s) have NaN or inf values "
                         f"(first: item {bad[0]})")
    return content


def _level_seeds(seed: int, levels: int) -> list[int]:
    """One k-means seed per level.

    Spawned from a SeedSequence so that seed ``l`` does not depend on ``levels``: building
    with more levels keeps the coarser levels' codes identical, and different base seeds do
    not share level seeds (as ``seed + l`` would).
    """
    children = np.random.SeedSequence(seed).spawn(levels)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def residual_kmeans(content: np.ndarray, levels: int, codebook_size: int, seed: int, n_init: int = 1,
                    max_iter: int = 100) -> tuple[np.ndarray, list[np.ndarray]]:
    """Multi-level residual k-means (RQ-KMeans) codes of item content vectors.

    Args:
        content: float [n_items, dim] content vectors.
        levels: number of code levels.
        codebook_size: clusters per level.
        seed: makes the result deterministic (one derived k-means seed per level).
        n_init, max_iter: passed to :class:`sklearn.cluster.KMeans` at every level.

    Returns:
        ``(codes, centroids)``: codes int64 [n_items, levels] and, per level, the centroids
        float64 [codebook_size, dim]. ``sum_l centroids[l][codes[:, l]]`` approximates content.

    Raises:
        ValueError: content not 2-D, empty or not finite; fewer items than ``codebook_size``;
            non-positive ``levels``, ``codebook_size``, ``n_init`` or ``max_iter``.
    """
    x = _check_content(content)
    for name, value in (("levels", levels), ("codebook_size", codebook_size), ("n_init", n_init),
                        ("max_iter", max_iter)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n_items = x.shape[0]
    if n_items < codebook_size:
        raise ValueError(f"codebook_size={codebook_size} exceeds the number of items ({n_items}): "
                         f"k-means cannot form more clusters than there are items; choose a smaller codebook")

    codes = np.empty((n_items, levels), dtype=np.int64)
    centroids: list[np.ndarray] = []
    residual = x
    for level, level_seed in enumerate(_level_seeds(seed, levels)):
        km = KMeans(n_clusters=codebook_size, n_init=n_init, max_iter=max_iter, random_state=level_seed)
        labels = km.fit_predict(residual).astype(np.int64)
        centres = km.cluster_centers_.astype(np.float64)
        codes[:, level] = labels
        centroids.append(centres)
        residual = residual - centres[labels]
    return codes, centroids


# ---------------------------------------------------------------------------- dedup digit
def _check_codes(codes: np.ndarray, name: str = "codes") -> np.ndarray:
    """Return codes as int64 [n, depth], or raise ValueError."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n_items, depth], got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {codes.dtype}")
    return codes.astype(np.int64)


def _group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the index of its distinct row, and the size of every distinct-row group."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def dedup_digit(codes: np.ndarray) -> np.ndarray:
    """Occurrence number of each row's code: 0 for the first item (in item order) with a
    given code, 1 for the second, and so on.

    Appending it to ``codes`` makes every row unique, while keeping the digit small (its
    codebook is the size of the largest collision group, not the number of items).

    Args:
        codes: int [n_items, levels].

    Returns:
        int64 [n_items].
    """
    codes = _check_codes(codes)
    n = codes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    group, _ = _group_ids(codes)
    order = np.argsort(group, kind="stable")          # items grouped by code, item order kept inside
    sorted_group = group[order]
    is_start = np.r_[True, sorted_group[1:] != sorted_group[:-1]]
    start_of_run = np.maximum.accumulate(np.where(is_start, np.arange(n), 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) - start_of_run
    return out


# ---------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class SemanticIdStats:
    """Quality of a semantic-ID codebook (computed from the level codes, before dedup).

    High collision rates or low usage / entropy mean the content vectors are poorly spread
    over the codebook, so many ads are told apart only by the arbitrary dedup digit.
    """

    n_items: int
    levels: int
    codebook_size: int
    n_unique_codes: int              # distinct level-code tuples before dedup
    collision_rate: float            # fraction of items whose code tuple is shared with another item
    max_dedup: int                   # largest dedup digit + 1 (size of the dedup "codebook")
    usage: tuple[float, ...]         # per level: fraction of the codebook used
    entropy_bits: tuple[float, ...]  # per level: Shannon entropy (bits) of the code distribution

    def as_dict(self) -> dict:
        """Flat dict of plain Python numbers (JSON / table friendly): ``usage_l1``, ``entropy_l1``, ..."""
        out: dict = {
            "n_items": self.n_items,
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "n_unique_codes": self.n_unique_codes,
            "collision_rate": self.collision_rate,
            "max_dedup": self.max_dedup,
        }
        for level, (usage, entropy) in enumerate(zip(self.usage, self.entropy_bits), start=1):
            out[f"usage_l{level}"] = usage
            out[f"entropy_l{level}"] = entropy
        return out


def code_stats(codes: np.ndarray, codebook_size: int) -> SemanticIdStats:
    """Statistics of level codes int [n_items, levels] (before the dedup digit).

    Raises:
        ValueError: codes not 2-D integers, empty, or outside ``[0, codebook_size)``.
    """
    codes = _check_codes(codes)
    n_items, levels = codes.shape
    if n_items == 0 or levels == 0:
        raise ValueError(f"codes is empty (shape {codes.shape})")
    if codes.min() < 0 or codes.max() >= codebook_size:
        raise ValueError(f"codes must lie in [0, codebook_size={codebook_size}), "
                         f"got values in [{codes.min()}, {codes.max()}]")
    group, counts = _group_ids(codes)
    usage, entropy = [], []
    for level in range(levels):
        p = np.bincount(codes[:, level], minlength=codebook_size) / n_items
        p = p[p > 0]
        usage.append(float(len(p) / codebook_size))
        entropy.append(float(-(p * np.log2(p)).sum()) + 0.0)  # + 0.0: no "-0.0" for a single code
    return SemanticIdStats(
        n_items=int(n_items),
        levels=int(levels),
        codebook_size=int(codebook_size),
        n_unique_codes=int(len(counts)),
        collision_rate=float((counts[group] > 1).mean()),
        max_dedup=int(counts.max()),
        usage=tuple(usage),
        entropy_bits=tuple(entropy),
    )


# ---------------------------------------------------------------------------- prefix trie
def _as_digits(code: Sequence[int]) -> np.ndarray:
    """A code or prefix as a 1-D int64 array (an empty sequence is the empty prefix)."""
    arr = np.asarray(code)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"a code must be a 1-D sequence of digits, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"code digits must be integers, got {code!r}")
    return arr.astype(np.int64)


class PrefixTrie:
    """Valid semantic-ID prefixes, built from the full codes [n_items, depth].

    Not a pointer-based trie: every prefix of length ``l + 1`` is encoded as one integer in
    mixed radix (radix of column ``j`` = largest digit in column ``j`` + 1) and, per length,
    the sorted unique encodings are kept. Membership, children and item look-ups are then
    binary searches that vectorise over a whole beam (:meth:`next_mask`, :meth:`items_of`).
    Digits outside a column's range are rejected before encoding, so the encoding never
    aliases an invalid code onto a valid one.
    """

    def __init__(self, codes: np.ndarray):
        codes = _check_codes(codes)
        n_items, depth = codes.shape
        if n_items == 0 or depth == 0:
            raise ValueError(f"PrefixTrie needs at least one code of at least one digit, got shape {codes.shape}")
        if codes.min() < 0:
            raise ValueError(f"semantic-ID digits must be non-negative, got {codes.min()}")
        self.depth: int = int(depth)
        self.n_items: int = int(n_items)
        self.radix: np.ndarray = codes.max(axis=0) + 1
        code_space = int(np.prod([int(r) for r in self.radix], dtype=object))
        if code_space > _MAX_CODE_SPACE:
            raise ValueError(f"code space {code_space} (radices {self.radix.tolist()}) is too large to encode in int64")

        # the trie as tensors, per device, made on first use by :meth:`tensors`
        self._tensors: dict[str, TrieTensors] = {}
        # _keys[l]: sorted unique encodings of the prefixes of length l + 1.
        self._keys: list[np.ndarray] = []
        enc = np.zeros(n_items, dtype=np.int64)
        for level in range(depth):
            enc = enc * self.radix[level] + codes[:, level]
            self._keys.append(np.unique(enc))

        order = np.argsort(enc, kind="stable")
        full_sorted = enc[order]
        dup = np.flatnonzero(full_sorted[1:] == full_sorted[:-1])
        if len(dup):
            a, b = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
            raise ValueError(f"PrefixTrie needs unique codes, but {len(dup)} row(s) duplicate another "
                             f"(e.g. items {a} and {b} share code {tuple(codes[a].tolist())}); "
                             f"append a dedup digit (see dedup_digit)")
        self._full_keys = full_sorted   # == self._keys[-1]
        self._full_items = order.astype(np.int64)
        self.codes = codes
        self.codes.setflags(write=False)

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return f"PrefixTrie(n_items={self.n_items}, depth={self.depth}, radix={self.radix.tolist()})"

    # -- encoding
    def _encode(self, prefixes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encode rows of int64 [B, l] (l <= depth); returns (keys [B], in_range [B])."""
        b, length = prefixes.shape
        in_range = ((prefixes >= 0) & (prefixes < self.radix[:length])).all(axis=1)
        safe = np.where(in_range[:, None], prefixes, 0)
        enc = np.zeros(b, dtype=np.int64)
        for level in range(length):
            enc = enc * self.radix[level] + safe[:, level]
        return enc, in_range

    def _lookup(self, prefixes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows int64 [B, l] with 1 <= l <= depth: (found [B] bool, position in _keys[l-1] [B])."""
        enc, in_range = self._encode(prefixes)
        keys = self._keys[prefixes.shape[1] - 1]
        pos = np.searchsorted(keys, enc)
        found = in_range & (pos < len(keys))
        found[found] = keys[pos[found]] == enc[found]
        return found, pos

    def _check_batch(self, arr: np.ndarray, name: str) -> np.ndarray:
        arr = np.asarray(arr)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array [B, length], got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
        return arr.astype(np.int64)

    # -- single-code queries
    def is_prefix(self, prefix: Sequence[int]) -> bool:
        """True if some item's code starts with ``prefix`` (the empty prefix always does; a full
        code counts as its own prefix)."""
        digits = _as_digits(prefix)
        if len(digits) == 0:
            return True
        if len(digits) > self.depth:
            return False
        return bool(self._lookup(digits[None, :])[0][0])

    def contains(self, code: Sequence[int]) -> bool:
        """True if ``code`` is the full code of an item."""
        digits = _as_digits(code)
        return len(digits) == self.depth and self.is_prefix(digits)

    def children(self, prefix: Sequence[int]) -> np.ndarray:
        """Sorted valid next digits after ``prefix`` (int64); empty if the prefix is invalid or complete."""
        digits = _as_digits(prefix)
        length = len(digits)
        if length >= self.depth or not self.is_prefix(digits):
            return np.zeros(0, dtype=np.int64)
        parent = self._encode(digits[None, :])[0][0]
        radix = self.radix[length]
        keys = self._keys[length]
        lo, hi = np.searchsorted(keys, [parent * radix, (parent + 1) * radix])
        return keys[lo:hi] - parent * radix

    def item_of(self, code: Sequence[int]) -> int:
        """Index of the item with full code ``code``; KeyError naming the code if there is none."""
        digits = _as_digits(code)
        item = self.items_of(digits[None, :])[0] if len(digits) == self.depth else -1
        if item < 0:
            raise KeyError(f"semantic ID {tuple(digits.tolist())} is not the code of any item "
                           f"(valid codes have {self.depth} digits)")
        return int(item)

    def tensors(self, device: torch.device | str = "cpu") -> TrieTensors:
        """The trie as tensors on ``device`` (made once per device and kept)."""
        key = str(torch.device(device))
        if key not in self._tensors:
            self._tensors[key] = TrieTensors(tuple(int(r) for r in self.radix),
                                     [torch.as_tensor(k, device=device) for k in self._keys],
                                     torch.as_tensor(self._full_items, device=device))
        return self._tensors[key]

    # -- batched queries (beam search)
    def items_of(self, codes: np.ndarray) -> np.ndarray:
        """Item index of each full code int [B, depth]; -1 where the code is not an item's."""
        codes = self._check_batch(codes, "codes")
        if codes.shape[1] != self.depth:
            raise ValueError(f"codes must have {self.depth} digits per row, got shape {codes.shape}")
        found, pos = self._lookup(codes)
        out = np.full(len(codes), -1, dtype=np.int64)
        out[found] = self._full_items[pos[found]]
        return out

    def next_mask(self, prefixes: np.ndarray, width: int) -> np.ndarray:
        """Which digits may follow each prefix.

        Args:
            prefixes: int [B, l], 0 <= l < depth, the same length for all rows.
            width: number of columns of the mask (e.g. the decoder's output vocabulary); must
                cover every digit valid at position ``l``.

        Returns:
            bool [B, width]: True where digit ``d`` continues the row's prefix to a valid
            prefix. All False for invalid prefixes.
        """
        prefixes = self._check_batch(prefixes, "prefixes")
        b, length = prefixes.shape
        if length >= self.depth:
            raise ValueError(f"prefix length {length} leaves no next digit: must be < depth={self.depth}")
        radix = int(self.radix[length])
        if width < radix:
            raise ValueError(f"width={width} is too small: digit {radix - 1} is valid at position {length}")
        # A candidate key is found only if the prefix itself is valid, so no separate check of
        # the prefix is needed; out-of-range digits are masked out by in_range.
        parent, in_range = self._encode(prefixes)
        candidates = parent[:, None] * radix + np.arange(radix)[None, :]      # [B, radix]
        keys = self._keys[length]
        pos = np.searchsorted(keys, candidates).clip(max=len(keys) - 1)
        mask = np.zeros((b, width), dtype=bool)
        mask[:, :radix] = (keys[pos] == candidates) & in_range[:, None]
        return mask


@dataclass(eq=False)
class TrieTensors:
    """A :class:`PrefixTrie` as tensors on one device, so that a beam search runs there
    without a host round trip per level (and can be captured in a CUDA graph): the mixed
    radix of every position, the sorted prefix encodings of every length and the item of
    every full code (in the order of the full-length encodings)."""

    radix: tuple[int, ...]
    keys: list[torch.Tensor]
    items: torch.Tensor

    @property
    def depth(self) -> int:
        return len(self.radix)

    def member(self, level: int, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(found, position) of prefix encodings ``enc`` (any shape) of length ``level + 1``."""
        keys = self.keys[level]
        pos = torch.searchsorted(keys, enc.reshape(-1)).clamp(max=len(keys) - 1).view(enc.shape)
        return keys[pos] == enc, pos


# ---------------------------------------------------------------------------- all together
@dataclass(eq=False)   # arrays inside: compare by identity, not element-wise
class SemanticIds:
    """Semantic IDs of a catalogue: full unique codes, the k-means codebooks and their stats."""

    codes: np.ndarray            # int64 [n_items, levels + 1]; last column = dedup digit; rows unique
    centroids: list[np.ndarray]  # per level: float64 [codebook_size, dim]
    stats: SemanticIdStats

    @property
    def digits_per_level(self) -> tuple[int, ...]:
        """Vocabulary size of each code position: ``codebook_size`` per level, then ``max_dedup``."""
        return (self.stats.codebook_size,) * self.stats.levels + (self.stats.max_dedup,)

    @cached_property
    def trie(self) -> PrefixTrie:
        """Prefix trie of the full codes (built on first use)."""
        return PrefixTrie(self.codes)


def build_semantic_ids(content: np.ndarray, levels: int, codebook_size: int, seed: int, n_init: int = 1,
                       max_iter: int = 100) -> SemanticIds:
    """Residual k-means codes plus a dedup digit, so that every item has a unique code.

    See :func:`residual_kmeans` for the arguments and errors.
    """
    level_codes, centroids = residual_kmeans(content, levels, codebook_size, seed, n_init=n_init,
                                             max_iter=max_iter)
    codes = np.concatenate([level_codes, dedup_digit(level_codes)[:, None]], axis=1)
    stats = code_stats(level_codes, codebook_size)
    warn_on_collisions(stats, n_distinct_content=len(np.unique(content, axis=0)))
    return SemanticIds(codes=codes, centroids=centroids, stats=stats)


COLLISION_WARNING = 0.2
"""Share of items sharing their semantic ID (before the dedup digit) above which building the
IDs warns: a model that sees ads only through their codes then cannot tell those items apart
(MovieLens-100k's genre + year content collides for 80% of movies)."""


class SemanticIdWarning(UserWarning):
    """Semantic IDs too coarse for the catalogue (see :data:`COLLISION_WARNING`)."""


def warn_on_collisions(stats: SemanticIdStats, n_distinct_content: int) -> None:
    """Warn when more than :data:`COLLISION_WARNING` of the items share their code tuple."""
    if stats.collision_rate > COLLISION_WARNING:
        warnings.warn(f"{100 * stats.collision_rate:.0f}% of {stats.n_items} items share their semantic ID "
                      f"({stats.n_unique_codes} distinct codes; {n_distinct_content} distinct content vectors): "
                      f"items told apart only by the dedup digit; consider model.item_representation='sid+id'",
                      SemanticIdWarning, stacklevel=3)
