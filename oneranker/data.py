"""From canonical logs to per-request training examples stored as Hugging Face ``datasets``.

On disk, a prepared dataset is one folder::

    requests/   DatasetDict train / valid / test: one row per ad request (time split per user)
    users/      Dataset: one row per user, attributes and the whole time-ordered token stream
    items/      Dataset: one row per ad: category, bid, price, content vector, semantic ID
    meta.json   source, config, vocabulary sizes, semantic-ID statistics, counted skips

A request row stores where its history ends in its user's stream rather than a copy of the
history: at paper scale (3M requests, histories up to 1,024 tokens) copies would need
billions of integers. :class:`Collator` cuts the history out at batch time.

Split (docs/design.md, "The data split"): per user, the last request is *test*, the one
before *valid*, the rest *train*. Requests with an empty history are skipped and counted in
``meta["skips"]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import datasets
import torch
from datasets import Dataset, DatasetDict, load_from_disk
from filelock import FileLock

from .config import Config
from .schema import AD, CLICK, CONTEXT, MIN_REQUESTS_PER_USER, USER, DataError, Logs, Vocab
from .semantic_ids import SemanticIds, build_semantic_ids

SCHEMA_VERSION = 1
SPLITS = ("train", "valid", "test")


# ---------------------------------------------------------------------------- arrow helpers
def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def _fixed_lists(matrix: np.ndarray) -> pa.ListArray:
    n, k = matrix.shape
    return _list_array(np.arange(0, n * k + 1, k), matrix.ravel())


def _csr_numpy(ds: Dataset, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list column, without Python objects per row."""
    arr = ds.data.column(column).combine_chunks()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else pa.concat_arrays(arr.chunks)
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)
    return offsets - offsets[0], values[offsets[0]:offsets[-1]]


# ---------------------------------------------------------------------------- building
def split_requests(logs: Logs, min_requests: int = MIN_REQUESTS_PER_USER) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Request indices per split (time split per user) and the counted skips: users with fewer
    than ``min_requests`` requests (``data.min_requests_per_user``) are skipped."""
    if min_requests < MIN_REQUESTS_PER_USER:
        raise DataError(f"min_requests={min_requests}: a time split needs at least {MIN_REQUESTS_PER_USER} "
                        "requests per user (train, valid, test)")
    user = logs.req_user
    last = np.r_[user[1:] != user[:-1], True]
    second_last = np.r_[last[1:] & ~last[:-1], False]
    n_per_user = np.bincount(user, minlength=logs.n_users)
    enough = n_per_user[user] >= min_requests
    empty = logs.req_hist_end == 0
    split = np.where(last, 2, np.where(second_last, 1, 0))
    keep = enough & ~empty
    skips = {f"requests_of_users_with_fewer_than_{min_requests}_requests": int((~enough).sum()),
             "requests_with_empty_history": int((enough & empty).sum())}
    return {name: np.flatnonzero(keep & (split == k)) for k, name in enumerate(SPLITS)}, skips


def _requests_table(logs: Logs, idx: np.ndarray) -> pa.Table:
    starts, ends = logs.imp_offsets[idx], logs.imp_offsets[idx + 1]
    lens = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lens)])
    sel = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
    items = logs.imp_item[sel]
    click, conv = logs.imp_click[sel], logs.imp_conv[sel]
    cols: dict[str, Any] = {
        "request_id": pa.array(idx.astype(np.int64)),
        "user": pa.array(logs.req_user[idx]),
        "hist_end": pa.array(logs.req_hist_end[idx]),
        "context": _fixed_lists(logs.req_context[idx]),
        "imp_item": _list_array(offsets, items),
        "imp_position": _list_array(offsets, logs.imp_position[sel]),
        "imp_click": _list_array(offsets, click),
        "imp_conv": _list_array(offsets, conv),
        "imp_bid": _list_array(offsets, logs.item_bid[items]),
        "imp_price": _list_array(offsets, logs.item_price[items]),
        # Evaluation-only truth of simulated worlds (-1 for real logs); the collator keeps it
        # apart from model inputs.
        "oracle_active": pa.array(logs.req_oracle[idx] if logs.req_oracle is not None
                                  else np.full(len(idx), -1, np.int64)),
    }
    return pa.table(cols)


def _users_table(logs: Logs) -> pa.Table:
    o = logs.stream_offsets
    return pa.table({
        "user": pa.array(np.arange(logs.n_users, dtype=np.int64)),
        "attrs": _fixed_lists(logs.user_attrs),
        "tok_type": _list_array(o, logs.tok_type.astype(np.int8)),
        "tok_item": _list_array(o, logs.tok_item.astype(np.int32)),
        "tok_action": _list_array(o, logs.tok_action.astype(np.int8)),
    })


def _items_table(logs: Logs, sids: SemanticIds) -> pa.Table:
    return pa.table({
        "item": pa.array(np.arange(logs.n_items, dtype=np.int64)),
        "category": pa.array(logs.item_category.astype(np.int64)),
        "bid": pa.array(logs.item_bid.astype(np.float64)),
        "price": pa.array(logs.item_price.astype(np.float64)),
        "content": _fixed_lists(logs.item_content.astype(np.float32)),
        "sid": _fixed_lists(sids.codes.astype(np.int64)),
    })


def _dataset(table: pa.Table, fingerprint: str) -> Dataset:
    """A ``datasets.Dataset`` over an Arrow table, with the fingerprint given: otherwise
    ``datasets`` hashes the whole table through dill, which is slow at paper scale and fails
    on some Python / pyarrow pairs (3.12 with pyarrow 26: "Can't pickle MonthDayNano")."""
    return Dataset(table, fingerprint=fingerprint)


def build_prepared(logs: Logs, cfg: Config) -> "Prepared":
    """Validate logs, compute semantic IDs, split and convert to datasets (in memory)."""
    logs.validate()
    sc = cfg.semantic_ids
    if logs.n_items < sc.codebook_size:
        raise DataError(f"semantic_ids.codebook_size={sc.codebook_size} exceeds the {logs.n_items} ads of "
                        f"source {logs.source!r}; choose a smaller codebook")
    sids = build_semantic_ids(logs.item_content, sc.levels, sc.codebook_size, seed=cfg.seed,
                              n_init=sc.kmeans_n_init, max_iter=sc.kmeans_max_iter)
    splits, skips = split_requests(logs, cfg.data.min_requests_per_user)
    if any(len(v) == 0 for v in splits.values()):
        raise DataError(f"source {logs.source!r} leaves an empty split ({ {k: len(v) for k, v in splits.items()} }); "
                        f"every user needs at least data.min_requests_per_user={cfg.data.min_requests_per_user} requests "
                        f"(one each for test and validation, the rest for training)")
    key = cfg.data_hash()
    requests = DatasetDict({name: _dataset(_requests_table(logs, idx), f"{key}-{name}")
                            for name, idx in splits.items()})
    meta = {
        "schema_version": SCHEMA_VERSION,
        "source": logs.source,
        "config": cfg.to_dict(),
        "config_hash": cfg.data_hash(),
        "n_users": logs.n_users, "n_items": logs.n_items, "n_organic": logs.n_organic,
        "n_requests": {k: int(len(v)) for k, v in splits.items()},
        "user_attr_cardinality": list(logs.user_attr_cardinality),
        "context_cardinality": list(logs.context_cardinality),
        "sid_digits": list(sids.digits_per_level),
        "semantic_id_stats": sids.stats.as_dict(),
        "skips": {**skips, **{k: v for k, v in logs.notes.items() if k.startswith("skipped")}},
        "notes": {k: v for k, v in logs.notes.items() if not k.startswith("skipped")},
    }
    return Prepared(requests=requests, users=_dataset(_users_table(logs), f"{key}-users"),
                    items=_dataset(_items_table(logs, sids), f"{key}-items"),
                    meta=meta)


# ---------------------------------------------------------------------------- storage
@dataclass
class Prepared:
    """A prepared dataset: request splits, user streams, the ad catalogue and metadata."""

    requests: DatasetDict
    users: Dataset
    items: Dataset
    meta: dict = field(default_factory=dict)

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write atomically: into a temporary sibling folder, renamed into place at the end,
        so that a failure never leaves a half-written dataset at ``out``."""
        out = Path(out)
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise DataError(f"output folder {out} exists and is not empty; pass overwrite=True (--force)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        datasets.disable_progress_bars()  # three tiny tables: their bars would only clutter notebooks
        try:
            self.requests.save_to_disk(str(tmp / "requests"))
            self.users.save_to_disk(str(tmp / "users"))
            self.items.save_to_disk(str(tmp / "items"))
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=1, sort_keys=True, default=_json_default))
            if out.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                os.replace(out, trash / "old")
                os.replace(tmp, out)
                shutil.rmtree(trash)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            datasets.enable_progress_bars()
        return out

    @property
    def sid_codes(self) -> np.ndarray:
        """Semantic IDs [n_items, levels + 1] (last digit: dedup)."""
        return _csr_numpy(self.items, "sid")[1].reshape(len(self.items), -1)

    @property
    def item_content(self) -> np.ndarray:
        """Content vectors [n_items, dim] (the semantic-ID input)."""
        return _csr_numpy(self.items, "content")[1].reshape(len(self.items), -1)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def load_prepared(path: str | Path) -> Prepared:
    """Read a folder written by :meth:`Prepared.save`; refuse anything incomplete or foreign."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no prepared dataset at {path} (folder missing); run `python -m oneranker prepare`")
    missing = [p for p in ("requests", "users", "items", "meta.json") if not (path / p).exists()]
    if missing:
        raise DataError(f"prepared dataset at {path} is incomplete: missing {', '.join(missing)}")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path / 'meta.json'} is not valid JSON: {e}") from e
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path} has schema version {meta.get('schema_version')}, this code reads {SCHEMA_VERSION}; "
                        f"prepare it again")
    return Prepared(requests=load_from_disk(str(path / "requests")), users=load_from_disk(str(path / "users")),
                    items=load_from_disk(str(path / "items")), meta=meta)


def load_logs(source: str, cfg: Config, path: str | Path | None = None, progress: bool = True) -> Logs:
    """Logs of a source in the canonical schema: the simulated market or real files."""
    if source == "adworld":
        from .world import World  # local: the real-data path does not need the simulator
        return World(cfg.world, cfg.seed).simulate(progress=progress)
    if source not in ("movielens", "taobao"):
        raise DataError(f"unknown source {source!r}; choose adworld, movielens or taobao")
    if path is None or not Path(path).is_dir():
        raise DataError(f"source {source} needs an existing folder with its files (got {path})")
    from . import loaders
    value = loaders.SyntheticValue.of(cfg.world)
    return loaders.load_movielens(path, seed=cfg.seed, value=value) if source == "movielens" else \
        loaders.load_taobao(path, seed=cfg.seed, value=value)


def cached_prepared(cfg: Config, cache_dir: str | Path = "cache", logs: Logs | None = None,
                    progress: bool = True) -> Prepared:
    """The simulated-market dataset of ``cfg``, built once (from ``logs`` if given) and cached
    under the data sections' hash and the data code's version (:mod:`oneranker.cache`), so
    that a stale dataset is never reused. A damaged one is set aside and built again
    (:func:`_read_cached`)."""
    from .cache import dataset_folder

    folder = dataset_folder(cfg, cache_dir)
    with _building(folder):
        prepared = _read_cached(folder)
        if prepared is None:
            logs = logs if logs is not None else load_logs("adworld", cfg, progress=progress)
            build_prepared(logs, cfg).save(folder, overwrite=True)
            prepared = load_prepared(folder)
    return prepared


def cached_real_folder(cfg: Config, source: str, path: str | Path, cache_dir: str | Path = "cache") -> Path:
    """The folder of the real logs of ``source`` (files in ``path``) prepared under ``cfg``, made
    once and cached (:func:`cache.real_data_folder`, keyed by the data sections and the data
    code's version), so that a change of the loaders or of the preparation prepares them again.
    A folder, because real-data models are keyed by its fingerprint (``realdata``). A damaged
    one is set aside and prepared again (:func:`_read_cached`)."""
    from .cache import real_data_folder

    folder = real_data_folder(cfg, cache_dir, source)
    with _building(folder):
        if _read_cached(folder) is None:
            build_prepared(load_logs(source, cfg, path, progress=False), cfg).save(folder, overwrite=True)
    return folder


def _building(folder: Path) -> contextlib.AbstractContextManager:
    """A lock file beside the cached dataset ``folder``: one process at a time reads, sets aside
    or builds it. Without it two of a pool's workers that find the same dataset missing or
    damaged would both build it, and one could move the other's folder away mid-read. A cache
    this process may not write (a prebuilt one shared read-only, e.g. in a workshop) is only
    read: no lock is needed there, and none could be made."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(folder.parent, os.W_OK):
        return contextlib.nullcontext()
    return FileLock(folder.parent / f".{folder.name}.lock")


def _read_cached(folder: Path) -> Prepared | None:
    """The cached dataset in ``folder``, or None when there is none or it is damaged (a truncated
    Arrow table, a missing table or meta.json, another schema): a damaged one is moved aside as
    ``<folder>.damaged`` and named in a CacheWarning, as a damaged model is
    (:func:`cache.set_aside`). An error of the machine (no permission, no file descriptors, a
    full disk: :func:`cache.machine_error`) is raised instead, since building again would fail
    the same way."""
    from .cache import machine_error, set_aside

    if not folder.exists():
        return None
    try:
        return load_prepared(folder)
    except (DataError, OSError, ValueError) as e:        # pyarrow.ArrowInvalid is a ValueError
        if machine_error(e):
            raise
        set_aside(folder, e, "built again")
        return None


# ---------------------------------------------------------------------------- batching
class Collator:
    """Turns request rows into padded tensors.

    Layout of one example (right padded): ``[user attributes | request context | the last
    max_history_len tokens of the user's stream before the request | pad]``. The prefix is
    GPR's bidirectional user/context block; ``tok_id`` indexes the table of the token's type
    (user-attribute and context ids are offset per field so that each field has its own rows).
    ``pad_to``: pad the batch's length up to a multiple of this (never past the longest
    possible example), so that compiled GPU kernels see a few shapes, not one per batch.
    """

    def __init__(self, prepared: Prepared, max_history_len: int, pad_to: int = 1) -> None:
        if max_history_len < 1:
            raise ValueError(f"max_history_len must be >= 1, got {max_history_len}")
        if pad_to < 1:
            raise ValueError(f"pad_to must be >= 1, got {pad_to}")
        self.pad_to = pad_to
        self.vocab = Vocab.from_meta(prepared.meta)
        self.max_history_len = max_history_len
        self.stream_offsets, self.tok_type = _csr_numpy(prepared.users, "tok_type")
        _, self.tok_item = _csr_numpy(prepared.users, "tok_item")
        _, self.tok_action = _csr_numpy(prepared.users, "tok_action")
        _, attrs = _csr_numpy(prepared.users, "attrs")
        self.user_attrs = attrs.reshape(len(prepared.users), -1).astype(np.int64)
        self.attr_offsets = np.r_[0, np.cumsum(self.vocab.user_attr_cardinality)[:-1]].astype(np.int64)
        self.ctx_offsets = np.r_[0, np.cumsum(self.vocab.context_cardinality)[:-1]].astype(np.int64)

    def history(self, user: int, hist_end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(type, item, action) of the last ``max_history_len`` tokens before a request."""
        start = self.stream_offsets[user]
        lo = start + max(0, hist_end - self.max_history_len)
        hi = start + hist_end
        return self.tok_type[lo:hi], self.tok_item[lo:hi], self.tok_action[lo:hi]

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        B = len(rows)
        P = self.vocab.prefix_len
        hists = [self.history(r["user"], r["hist_end"]) for r in rows]
        L = P + max(len(h[0]) for h in hists)
        L = min(-(-L // self.pad_to) * self.pad_to, max(L, P + self.max_history_len))
        tok_type = np.zeros((B, L), np.int64)
        tok_id = np.zeros((B, L), np.int64)
        tok_action = np.zeros((B, L), np.int64)
        n_attr = len(self.attr_offsets)
        for b, (r, (ty, it, ac)) in enumerate(zip(rows, hists)):
            tok_type[b, :n_attr] = USER
            tok_id[b, :n_attr] = self.attr_offsets + self.user_attrs[r["user"]]
            tok_type[b, n_attr:P] = CONTEXT
            tok_id[b, n_attr:P] = self.ctx_offsets + np.asarray(r["context"], np.int64)
            n = len(ty)
            tok_type[b, P:P + n], tok_id[b, P:P + n], tok_action[b, P:P + n] = ty, it, ac
        S = max(len(r["imp_item"]) for r in rows)
        imp = {k: np.full((B, S), fill, dtype) for k, fill, dtype in
               (("imp_item", -1, np.int64), ("imp_position", 0, np.int64), ("imp_click", 0, np.int64),
                ("imp_conv", 0, np.int64), ("imp_bid", 0.0, np.float32), ("imp_price", 0.0, np.float32))}
        for b, r in enumerate(rows):
            n = len(r["imp_item"])
            for k in imp:
                imp[k][b, :n] = r[k]
        out = {"tok_type": tok_type, "tok_id": tok_id, "tok_action": tok_action,
               "length": (tok_type != 0).sum(1), "prefix_len": np.full(B, P),
               "user": np.array([r["user"] for r in rows]), "request_id": np.array([r["request_id"] for r in rows]),
               "context": np.array([r["context"] for r in rows], np.int64).reshape(B, -1),
               "oracle_active": np.array([r["oracle_active"] for r in rows]), **imp}
        out["imp_mask"] = out["imp_item"] >= 0
        return {k: torch.as_tensor(v) for k, v in out.items()}


# ---------------------------------------------------------------------------- log statistics
def history_lengths(logs: Logs) -> np.ndarray:
    """History length (tokens before the request) of every request."""
    return logs.req_hist_end.copy()


def log_summary(logs: Logs) -> dict[str, float]:
    """Base rates and sizes a reader should check before trusting any model result."""
    clicks = logs.imp_click.astype(bool)
    stream = np.diff(logs.stream_offsets)
    return {
        "users": logs.n_users, "ads": logs.n_items, "organic_items": logs.n_organic,
        "requests": logs.n_requests, "impressions": len(logs.imp_item), "stream_tokens": int(stream.sum()),
        "ad_tokens_share": float((logs.tok_type == AD).mean()),
        "ctr": float(clicks.mean()),
        "cvr_per_click": float(logs.imp_conv[clicks].mean()) if clicks.any() else float("nan"),
        "requests_per_user": float(logs.n_requests / logs.n_users),
        "stream_len_mean": float(stream.mean()), "stream_len_max": int(stream.max()),
    }


def ctr_by_position(logs: Logs) -> dict[int, float]:
    """Logged CTR at each slot: position bias shows as a decreasing curve."""
    return {int(p): float(logs.imp_click[logs.imp_position == p].mean()) for p in np.unique(logs.imp_position)}


def user_category_breadth(logs: Logs) -> np.ndarray:
    """Distinct categories among each user's clicked ads: multi-interest users click several."""
    click_tok = (logs.tok_type == AD) & (logs.tok_action >= CLICK)
    user_of_tok = np.repeat(np.arange(logs.n_users), np.diff(logs.stream_offsets))
    cats = logs.item_category[logs.tok_item[click_tok]]
    pairs = np.unique(np.stack([user_of_tok[click_tok], cats]), axis=1)
    return np.bincount(pairs[0], minlength=logs.n_users)
