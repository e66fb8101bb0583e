"""The canonical log schema that every source (simulated market, MovieLens, Taobao) is
converted to, and the checks it must pass before any dataset is written.

A user's journey is one time-ordered token stream (organic content and ad impressions with
their actions), stored for all users at once in CSR form (``stream_offsets``). An ad request
points into its user's stream (``req_hist_end``: the tokens before it are its history) and
owns the impressions the logging policy showed (CSR over requests, ``imp_offsets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Token types (0 is padding). The prefix holds USER and CONTEXT tokens (GPR's layout).
PAD, USER, CONTEXT, ORGANIC, AD = 0, 1, 2, 3, 4
MIN_REQUESTS_PER_USER = 3   # a time split needs one train, one valid and one test request per user
TOKEN_TYPES = {"pad": PAD, "user": USER, "context": CONTEXT, "organic": ORGANIC, "ad": AD}

# Actions, ordered along the funnel so that a larger action implies the smaller ones.
NO_ACTION, VIEW, IMPRESSION, CLICK, CONVERSION = 0, 1, 2, 3, 4
ACTIONS = {"none": NO_ACTION, "view": VIEW, "impression": IMPRESSION, "click": CLICK, "conversion": CONVERSION}


class DataError(ValueError):
    """Input logs or files are malformed; the message names the file/field and the problem."""


@dataclass
class Logs:
    """Event logs in the canonical schema (numpy arrays, ids are dense 0-based indices)."""

    source: str
    # ads
    item_category: np.ndarray      # int64 [n_items]
    item_bid: np.ndarray           # float64 [n_items], > 0: advertiser bid per conversion-weighted click
    item_price: np.ndarray         # float64 [n_items], > 0: value of one conversion (GMV)
    item_content: np.ndarray       # float32 [n_items, content_dim]: semantic-ID input
    n_organic: int
    # users
    user_attrs: np.ndarray         # int64 [n_users, n_user_fields]
    user_attr_cardinality: tuple[int, ...]
    # token streams, CSR over users, time ordered
    stream_offsets: np.ndarray     # int64 [n_users + 1]
    tok_type: np.ndarray           # int8 [n_tokens]: ORGANIC or AD
    tok_item: np.ndarray           # int32 [n_tokens]: organic id or ad id
    tok_action: np.ndarray         # int8 [n_tokens]: VIEW for organic; IMPRESSION/CLICK/CONVERSION for ads
    # requests, grouped by user and time ordered within a user
    req_user: np.ndarray           # int64 [n_requests]
    req_hist_end: np.ndarray       # int64 [n_requests]: tokens [0, hist_end) of the user's stream precede it
    req_context: np.ndarray        # int64 [n_requests, n_context_fields]
    context_cardinality: tuple[int, ...]
    # impressions, CSR over requests
    imp_offsets: np.ndarray        # int64 [n_requests + 1]
    imp_item: np.ndarray           # int64 [n_impressions]
    imp_position: np.ndarray       # int64 [n_impressions], 1-based slot
    imp_click: np.ndarray          # int8 [n_impressions]
    imp_conv: np.ndarray           # int8 [n_impressions]
    # evaluation-only ground truth of simulated worlds (absent for real logs)
    req_oracle: np.ndarray | None = None   # int64 [n_requests]: the session's active interest slot
    notes: dict = field(default_factory=dict)  # counted skips and documented choices of the loader

    @property
    def n_items(self) -> int:
        return len(self.item_category)

    @property
    def n_users(self) -> int:
        return len(self.user_attrs)

    @property
    def n_requests(self) -> int:
        return len(self.req_user)

    def validate(self) -> None:
        """Check every invariant the rest of the package relies on; raise DataError if broken."""
        n_items, n_users, n_req = self.n_items, self.n_users, self.n_requests
        _finite_positive("item_bid", self.item_bid, n_items)
        _finite_positive("item_price", self.item_price, n_items)
        if self.item_content.ndim != 2 or len(self.item_content) != n_items:
            raise DataError(f"item_content must be [n_items={n_items}, dim], got {self.item_content.shape}")
        if not np.isfinite(self.item_content).all():
            raise DataError("item_content contains NaN or infinite values")
        if n_users == 0 or n_req == 0:
            raise DataError(f"no usable data: {n_users} users, {n_req} requests")
        _csr("stream_offsets", self.stream_offsets, n_users, len(self.tok_item))
        _csr("imp_offsets", self.imp_offsets, n_req, len(self.imp_item))
        _in_range("imp_item", self.imp_item, n_items)
        _in_range("req_user", self.req_user, n_users)
        ad = self.tok_type == AD
        _in_range("ad tokens' item", self.tok_item[ad], n_items)
        _in_range("organic tokens' item", self.tok_item[self.tok_type == ORGANIC], self.n_organic)
        if not np.isin(self.tok_type, (ORGANIC, AD)).all():
            raise DataError("tok_type must be ORGANIC or AD for every stream token")
        if np.any(np.diff(self.req_user) < 0):
            raise DataError("requests must be grouped by user (req_user non-decreasing)")
        stream_len = np.diff(self.stream_offsets)[self.req_user]
        if np.any(self.req_hist_end < 0) or np.any(self.req_hist_end > stream_len):
            raise DataError("req_hist_end points outside its user's stream")
        same_user = self.req_user[1:] == self.req_user[:-1]
        if np.any(np.diff(self.req_hist_end)[same_user] < 0):
            raise DataError("requests of a user must be time ordered (req_hist_end non-decreasing)")
        for name, arr, card in (("user_attrs", self.user_attrs, self.user_attr_cardinality),
                                ("req_context", self.req_context, self.context_cardinality)):
            if arr.ndim != 2 or arr.shape[1] != len(card):
                raise DataError(f"{name} must have {len(card)} columns, got shape {arr.shape}")
            if arr.size and (arr.min() < 0 or np.any(arr.max(axis=0) >= np.asarray(card))):
                raise DataError(f"{name} has a value outside its cardinality {card}")


def _finite_positive(name: str, arr: np.ndarray, n: int) -> None:
    if len(arr) != n:
        raise DataError(f"{name} has {len(arr)} entries, expected {n}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} must be finite and > 0; item {i} has {float(arr[i])!r} ({int(bad.sum())} bad in all)")


def _csr(name: str, offsets: np.ndarray, n_rows: int, n_values: int) -> None:
    if len(offsets) != n_rows + 1 or offsets[0] != 0 or offsets[-1] != n_values or np.any(np.diff(offsets) < 0):
        raise DataError(f"{name} is not a valid CSR offset array for {n_rows} rows and {n_values} values")


def _in_range(name: str, ids: np.ndarray, n: int) -> None:
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise DataError(f"{name} ids must lie in [0, {n}); found {int(ids.min())}..{int(ids.max())}")


@dataclass(frozen=True)
class Vocab:
    """Sizes of every embedding table the model needs, read from ``meta``."""

    n_items: int
    n_organic: int
    user_attr_cardinality: tuple[int, ...]
    context_cardinality: tuple[int, ...]
    sid_digits: tuple[int, ...]

    @classmethod
    def from_meta(cls, meta: dict) -> "Vocab":
        return cls(meta["n_items"], meta["n_organic"], tuple(meta["user_attr_cardinality"]),
                   tuple(meta["context_cardinality"]), tuple(meta["sid_digits"]))

    @property
    def prefix_len(self) -> int:
        return len(self.user_attr_cardinality) + len(self.context_cardinality)

    @property
    def n_user_tokens(self) -> int:
        return int(sum(self.user_attr_cardinality))

    @property
    def n_context_tokens(self) -> int:
        return int(sum(self.context_cardinality))
