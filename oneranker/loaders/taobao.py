"""Taobao display-ad loader (see :mod:`oneranker.loaders`).

Taobao display-ad click data (Alibaba "Ad Display/Click Data on Taobao.com", CSV with header)
------------------------------------------------------------------------------------------------
* **Requests**: the ``raw_sample.csv`` rows with the same (user, time_stamp, pid) form one
  request, slots in file order, click = ``clk``. A user's requests are ordered by time, ties by
  first appearance in the file. Users with fewer than 3 requests are skipped and counted.
  ``max_requests_per_user`` keeps a user's most recent N requests as requests; the older ones
  still happened, so their impressions stay in the history.
* **Conversions** (post-click attribution): a clicked impression converts if ``behavior_log.csv``
  has a ``buy`` by the same user of the ad's ``cate_id`` within 72 h after the request
  (inclusive). Clicks are required because the schema's actions are ordered along the funnel
  (a conversion implies a click). One buy may credit several clicks. Without the behaviour log
  every conversion is 0.
* **History**: the user's tokens strictly earlier in time than the request: impressions of
  earlier requests as AD tokens (CONVERSION / CLICK / IMPRESSION) interleaved by time with
  behaviour events as ORGANIC tokens (organic id = dense index of the behaviour category;
  every btag becomes action VIEW). Requests sharing a timestamp share a history.
* **Context**: pid (dense index) and 4-hour bucket of the hour of day in Beijing time (UTC+8,
  where the logs were recorded).
* **User attributes**: the 8 ``user_profile.csv`` columns, each re-indexed densely with 0 for an
  empty value or a user absent from the profile file.
* **Value layer**: price is the real item price; bids are semi-synthetic, LogNormal(0, 0.6) per ad
  from the seed, as for MovieLens (the data set has no bids).
* **Ads**: those appearing in ``raw_sample.csv``, dense ids in order of raw adgroup_id. Content:
  signed feature hashing of cate_id, brand (``NULL`` contributes nothing), campaign_id and
  customer into 32 dimensions, plus the standardized log price. Category: dense cate_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import WorldConfig
from ..schema import AD, CLICK, CONVERSION, IMPRESSION, ORGANIC, VIEW, Logs
from .tables import HOURS_PER_BUCKET, SyntheticValue, _Table, _folder, _require, _read_table, _ints, _floats, _binary, _unique_ids, _lookup, _standardize, _user_attributes, _hour_bucket, _keep_active_users

CONVERSION_WINDOW_S = 72 * 3600


TAOBAO_UTC_OFFSET_S = 8 * 3600


HASH_DIM = 32


RAW_SAMPLE_COLUMNS = ("user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk")


AD_FEATURE_COLUMNS = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price")


USER_PROFILE_COLUMNS = ("userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
                        "pvalue_level", "shopping_level", "occupation", "new_user_class_level")


BEHAVIOR_LOG_COLUMNS = ("user", "time_stamp", "btag", "cate", "brand")


BTAGS = ("pv", "cart", "fav", "buy")


def _optional_ints(table: _Table, column: str) -> np.ndarray:
    """An integer column where an empty / NULL value is allowed and becomes -1."""
    values = table.frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    table.check(values.notna().to_numpy() & (~np.isfinite(numbers) | (numbers % 1 != 0)), column,
                "expected an integer or NULL, found {value}")
    return np.where(np.isnan(numbers), -1, numbers).astype(np.int64)


# ============================================================================ Taobao
@dataclass
class _Ads:
    """ad_feature.csv sorted by raw adgroup_id."""

    raw_id: np.ndarray
    cate: np.ndarray
    campaign: np.ndarray
    customer: np.ndarray
    brand: np.ndarray        # -1 for NULL
    price: np.ndarray


@dataclass
class _Impressions:
    """raw_sample.csv in file order."""

    user: np.ndarray         # raw user id
    ts: np.ndarray
    ad: np.ndarray           # row of _Ads
    pid: np.ndarray          # dense pid
    n_pids: int
    click: np.ndarray


@dataclass
class _Behaviour:
    user: np.ndarray
    ts: np.ndarray
    is_buy: np.ndarray
    cate: np.ndarray


def load_taobao(path: str | Path, seed: int = 0, max_requests_per_user: int | None = None,
                value: SyntheticValue | None = None) -> Logs:
    """Alibaba's Taobao display-ad click files in ``path`` as ad logs (module docstring);
    ``value``: how bids are drawn (default: the default world's distribution)."""
    if max_requests_per_user is not None and max_requests_per_user < 1:
        raise ValueError(f"max_requests_per_user must be >= 1 or None, got {max_requests_per_user}")
    folder = _folder(path)
    files = {name: _require(folder, name) for name in ("raw_sample.csv", "ad_feature.csv", "user_profile.csv")}
    ads = _taobao_ads(files["ad_feature.csv"])
    impressions = _taobao_impressions(files["raw_sample.csv"], ads)
    profile = _taobao_profile(files["user_profile.csv"])
    behaviour_file = folder / "behavior_log.csv"
    behaviour = _taobao_behaviour(behaviour_file) if behaviour_file.is_file() else None
    value = value or SyntheticValue.of(WorldConfig())
    logs = _taobao_logs(ads, impressions, profile, behaviour, np.random.default_rng(seed), max_requests_per_user,
                        value)
    logs.validate()
    return logs


def _taobao_ads(path: Path) -> _Ads:
    table = _read_table(path, AD_FEATURE_COLUMNS, ",", header=True)
    ids = _ints(table, "adgroup_id")
    _unique_ids(table, "adgroup_id", ids)
    price = _floats(table, "price")
    table.check(~(np.isfinite(price) & (price > 0)), "price", "expected a finite number > 0, found {value}")
    order = np.argsort(ids, kind="stable")
    return _Ads(ids[order], _ints(table, "cate_id")[order], _ints(table, "campaign_id")[order],
                _ints(table, "customer")[order], _optional_ints(table, "brand")[order], price[order])


def _taobao_impressions(path: Path, ads: _Ads) -> _Impressions:
    table = _read_table(path, RAW_SAMPLE_COLUMNS, ",", header=True, dtype={"pid": str})
    user, ts = _ints(table, "user"), _ints(table, "time_stamp")
    ad = _lookup(table, "adgroup_id", _ints(table, "adgroup_id"), ads.raw_id, "ad_feature.csv")
    _binary(table, "nonclk")
    pid, pids = pd.factorize(table.frame["pid"].fillna(""), sort=True)
    return _Impressions(user, ts, ad, pid.astype(np.int64), len(pids), _binary(table, "clk"))


def _taobao_profile(path: Path) -> tuple[np.ndarray, list[pd.Series]]:
    table = _read_table(path, USER_PROFILE_COLUMNS, ",", header=True)
    ids = _ints(table, "userid")
    _unique_ids(table, "userid", ids)
    return ids, [table.frame[c] for c in USER_PROFILE_COLUMNS[1:]]


def _taobao_behaviour(path: Path) -> _Behaviour:
    table = _read_table(path, BEHAVIOR_LOG_COLUMNS, ",", header=True, dtype={"btag": str, "brand": str})
    btag = table.frame["btag"]
    table.check(~btag.isin(BTAGS).to_numpy(), "btag", "unknown btag {value} (expected one of " + ", ".join(BTAGS) + ")")
    return _Behaviour(_ints(table, "user"), _ints(table, "time_stamp"), (btag == "buy").to_numpy(),
                      _ints(table, "cate"))


@dataclass
class _Requests:
    """raw_sample's requests: the (user, time_stamp, pid) groups, numbered in order of first
    appearance, and the kept ones in time order."""

    of_row: np.ndarray       # request of each raw_sample row
    slot: np.ndarray         # 1-based slot of each row in its request (file order)
    user: np.ndarray         # dense user of each request, -1 if the user is skipped
    ts: np.ndarray
    pid: np.ndarray
    order: np.ndarray        # kept requests by (user, time, first appearance)
    position: np.ndarray     # each request's index in ``order``, -1 if its user is skipped
    is_example: np.ndarray   # over ``order``: among its user's most recent max_requests_per_user
    kept_users: np.ndarray   # raw ids, sorted; dense user id = index
    skipped_users: int


def _taobao_requests(imp: _Impressions, max_requests: int | None) -> _Requests:
    keys = pd.DataFrame({"user": imp.user, "ts": imp.ts, "pid": imp.pid}).groupby(["user", "ts", "pid"], sort=False)
    of_row, slot = keys.ngroup().to_numpy(), keys.cumcount().to_numpy() + 1
    _, first_row = np.unique(of_row, return_index=True)
    kept_users, user, skipped = _keep_active_users(imp.user[first_row], "raw_sample.csv")
    ts = imp.ts[first_row]
    order = np.lexsort((np.arange(len(first_row)), ts, user))
    order = order[user[order] >= 0]
    position = np.full(len(first_row), -1)
    position[order] = np.arange(len(order))
    return _Requests(of_row, slot, user, ts, imp.pid[first_row], order, position,
                     _most_recent(user[order], max_requests), kept_users, skipped)


def _most_recent(user: np.ndarray, limit: int | None) -> np.ndarray:
    """Mask over time-ordered requests grouped by user: the last ``limit`` of each user."""
    if limit is None:
        return np.ones(len(user), bool)
    counts = np.bincount(user)
    rank = np.arange(len(user)) - np.r_[0, np.cumsum(counts)][user]
    return counts[user] - rank <= limit


def _taobao_logs(ads: _Ads, imp: _Impressions, profile: tuple[np.ndarray, list[pd.Series]],
                 behaviour: _Behaviour | None, rng: np.random.Generator, max_requests: int | None,
                 value: SyntheticValue) -> Logs:
    requests = _taobao_requests(imp, max_requests)
    # Impressions of kept users in request order, then slot. All of them are history tokens,
    # those of the requests kept as examples (is_example) also their slates.
    rows = np.flatnonzero(requests.position[requests.of_row] >= 0)
    rows = rows[np.lexsort((requests.slot[rows], requests.position[requests.of_row[rows]]))]
    row_request = requests.position[requests.of_row[rows]]              # index into requests.order
    shown = requests.is_example[row_request]
    click = imp.click[rows]
    conv = _post_click_conversions(imp.user[rows], ads.cate[imp.ad[rows]], imp.ts[rows], click, behaviour)
    used_ads, item = np.unique(imp.ad, return_inverse=True)             # every ad of raw_sample, by raw id
    item = item[rows]
    action = np.where(conv == 1, CONVERSION, np.where(click == 1, CLICK, IMPRESSION))
    ad_tokens = (requests.user[requests.of_row[rows]], imp.ts[rows], np.full(len(rows), AD), item, action)
    organic_tokens, n_organic = _organic_tokens(behaviour, requests.kept_users)
    stream = _interleave([organic_tokens, ad_tokens], len(requests.kept_users))

    examples = requests.order[requests.is_example]
    user, ts = requests.user[examples], requests.ts[examples]
    imp_sizes = np.bincount(row_request[shown], minlength=len(requests.order))[requests.is_example]
    attrs, attr_card, no_profile = _user_attributes(requests.kept_users, *profile)
    bid = value.bids(rng, len(used_ads))   # the data set logs no bids
    _, category = np.unique(ads.cate[used_ads], return_inverse=True)
    return Logs(
        source="taobao",
        item_category=category.astype(np.int64), item_bid=bid, item_price=ads.price[used_ads],
        item_content=_ad_content(ads, used_ads),
        n_organic=n_organic,
        user_attrs=attrs, user_attr_cardinality=attr_card,
        stream_offsets=stream["offsets"], tok_type=stream["type"].astype(np.int8),
        tok_item=stream["item"].astype(np.int32), tok_action=stream["action"].astype(np.int8),
        req_user=user.astype(np.int64),
        req_hist_end=_history_ends(stream, user, ts),
        req_context=np.c_[requests.pid[examples], _hour_bucket(ts, TAOBAO_UTC_OFFSET_S)].astype(np.int64),
        context_cardinality=(imp.n_pids, 24 // HOURS_PER_BUCKET),
        imp_offsets=np.r_[0, np.cumsum(imp_sizes)].astype(np.int64),
        imp_item=item[shown].astype(np.int64),
        imp_position=requests.slot[rows][shown].astype(np.int64),
        imp_click=click[shown].astype(np.int8),
        imp_conv=conv[shown].astype(np.int8),
        notes={
            "skipped_users_few_requests": requests.skipped_users,
            "requests_beyond_max_per_user": int((~requests.is_example).sum()),
            "users_without_profile": no_profile,
            "behaviour_events": len(organic_tokens[0]),
            "conversions": ("clicked impression + buy of the ad's cate_id by the user within 72 h"
                            if behaviour is not None else "all 0: no behavior_log.csv"),
            "history": "earlier requests' impressions interleaved by time with behaviour events (VIEW)",
            "value_layer": f"real price; semi-synthetic {value.bid_note()} per ad, seeded",
            "context": "pid, 4-hour bucket of the hour of day in UTC+8",
        })


def _organic_tokens(behaviour: _Behaviour | None, kept_users: np.ndarray) -> tuple[tuple[np.ndarray, ...], int]:
    """Behaviour events of kept users as ORGANIC tokens (user, ts, type, item, action), the
    organic id being the dense index of the category; every btag becomes VIEW (the schema has
    one organic action). Also returns the number of organic ids."""
    if behaviour is None:
        empty = np.empty(0, np.int64)
        return (empty,) * 5, 0
    mine = np.isin(behaviour.user, kept_users)
    organic, cates = pd.factorize(behaviour.cate[mine], sort=True)
    n = len(organic)
    return (np.searchsorted(kept_users, behaviour.user[mine]), behaviour.ts[mine], np.full(n, ORGANIC),
            organic.astype(np.int64), np.full(n, VIEW)), len(cates)


def _post_click_conversions(user: np.ndarray, cate: np.ndarray, ts: np.ndarray, click: np.ndarray,
                            behaviour: _Behaviour | None) -> np.ndarray:
    """1 where a clicked impression is followed by a buy of its category by its user within the
    window (the request's time included): the data set logs purchases, not ad conversions."""
    conv = np.zeros(len(user), np.int8)
    if behaviour is None or not click.any() or not behaviour.is_buy.any():
        return conv
    clicked = np.flatnonzero(click)
    queries = pd.DataFrame({"row": clicked, "user": user[clicked], "cate": cate[clicked], "ts": ts[clicked]})
    buys = pd.DataFrame({"user": behaviour.user[behaviour.is_buy], "cate": behaviour.cate[behaviour.is_buy],
                         "ts": behaviour.ts[behaviour.is_buy]})
    buys["buy_ts"] = buys["ts"]
    matched = pd.merge_asof(queries.sort_values("ts", kind="stable"), buys.sort_values("ts", kind="stable"),
                            on="ts", by=["user", "cate"], direction="forward", tolerance=CONVERSION_WINDOW_S)
    conv[matched["row"].to_numpy()[matched["buy_ts"].notna().to_numpy()]] = 1
    return conv


def _interleave(parts: list[tuple[np.ndarray, ...]], n_users: int) -> dict[str, np.ndarray]:
    """One time-ordered stream per user from token groups (user, ts, type, item, action).
    Same-time ties keep the groups' order (behaviour before impressions) and each group's order."""
    user, ts, kind, item, action = (np.concatenate(column) for column in zip(*parts))
    order = np.lexsort((np.arange(len(user)), ts, user))
    counts = np.bincount(user, minlength=n_users)
    return {"user": user[order], "ts": ts[order], "type": kind[order], "item": item[order],
            "action": action[order], "offsets": np.r_[0, np.cumsum(counts)].astype(np.int64)}


def _history_ends(stream: dict[str, np.ndarray], user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Per request, the number of its user's tokens strictly earlier than its time. Times are
    replaced by their rank so that (user, time) packs into one sortable int64 key."""
    _, rank = np.unique(np.r_[stream["ts"], ts], return_inverse=True)
    n_ranks = int(rank.max()) + 1
    tok_key = stream["user"] * n_ranks + rank[:len(stream["ts"])]
    req_key = user * n_ranks + rank[len(stream["ts"]):]
    return (np.searchsorted(tok_key, req_key, side="left") - stream["offsets"][user]).astype(np.int64)


def _ad_content(ads: _Ads, rows: np.ndarray) -> np.ndarray:
    """Signed feature hashing of the ad's ids (Weinberger et al., 2009) plus standardized log
    price: ids with millions of values need no vocabulary, and collisions cancel in expectation."""
    fields = (ads.cate[rows], ads.brand[rows], ads.campaign[rows], ads.customer[rows])
    hashed = np.zeros((len(rows), HASH_DIM), np.float32)
    for field, values in enumerate(fields):
        present = np.flatnonzero(values >= 0)                          # a NULL brand contributes nothing
        h = _mix64(values[present].astype(np.uint64) ^ _mix64(np.array([field + 1], np.uint64))[0])
        sign = np.where(h >> np.uint64(63), -1.0, 1.0).astype(np.float32)
        np.add.at(hashed, (present, (h % np.uint64(HASH_DIM)).astype(np.int64)), sign)
    return np.c_[hashed, _standardize(np.log(ads.price[rows]))].astype(np.float32)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed hash (Python's hash() is salted per process)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
