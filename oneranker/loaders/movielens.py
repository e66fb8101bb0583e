"""MovieLens loader (see :mod:`oneranker.loaders`).

MovieLens (GroupLens ml-100k or ml-1m layout, detected from the files present)
------------------------------------------------------------------------------
MovieLens logs ratings, not ad requests, so this mapping is *semi-synthetic*:

* **Ads** are movies: every movie of the item file (``u.item`` / ``movies.dat``), dense ids in
  order of raw movie id. **Users** are those with at least 3 ratings (fewer cannot give a
  train / valid / test request each), dense ids in order of raw user id; the others are
  counted in ``notes["skipped_users_few_requests"]``.
* **Requests.** Each rating is one ad request. A user's ratings are ordered by timestamp, ties
  in file order (a stable sort); the history of a request is the user's earlier ratings as AD
  tokens with action CONVERSION for a rating >= 4 and CLICK otherwise.
* **Slates.** MovieLens logs no impressions, so each request shows ``slate_size`` slots: the rated
  movie at a uniformly random slot (click 1, conversion = rating >= 4) and ``slate_size - 1``
  movies the user never rated (click 0, conversion 0), drawn without replacement with
  probability proportional to their number of ratings + 1 (the + 1 keeps never-rated movies
  possible). A user who left fewer unrated movies than that gets a shorter slate (counted in
  ``notes["short_slates"]``).
* **Context**: weekday (7) and 4-hour bucket (6) of the rating's timestamp, in UTC (the users'
  time zones are unknown). No organic content (``n_organic = 0``).
* **Value layer**, semi-synthetic: bid ~ LogNormal(0, 0.6) and price ~ LogNormal(3, 0.8) per
  movie, drawn from the seed independently of the ratings (MovieLens has no money in it).
* **Content** vector: genre multi-hot plus the standardized release year (a missing year gets the
  mean, i.e. 0 after standardizing; counted in ``notes["movies_missing_year"]``). Category: the
  movie's first genre, or an extra "no genre" category.
* **User attributes** (gender, age bucket, occupation) from ``users.dat`` (ml-1m) or ``u.user``
  (ml-100k), each re-indexed densely with 0 for unknown; without that file, one field of
  cardinality 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import WorldConfig
from ..schema import AD, CLICK, CONVERSION, DataError, Logs
from .tables import HOURS_PER_BUCKET, SyntheticValue, _Table, _folder, _require, _read_table, _ints, _floats, _binary, _unique_ids, _lookup, _standardize, _user_attributes, _hour_bucket, _keep_active_users



ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")


ML1M_GENRES = ML100K_GENRES[1:]


ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)   # ml-1m's age buckets; ml-100k's ages are mapped onto them


# ============================================================================ MovieLens
@dataclass
class _Movies:
    """Movies sorted by raw id."""

    raw_id: np.ndarray       # int64 [n]
    genres: np.ndarray       # float32 [n, n_genres] multi-hot
    year: np.ndarray         # float64 [n], NaN if unknown
    source: str              # file name, for messages


@dataclass
class _Ratings:
    user: np.ndarray         # raw user id
    movie: np.ndarray        # dense movie id
    rating: np.ndarray
    ts: np.ndarray
    source: str              # the ratings file's name, for errors


_ML_LAYOUTS = {"ml-100k": ("u.data", "u.item", "u.user"), "ml-1m": ("ratings.dat", "movies.dat", "users.dat")}


def load_movielens(path: str | Path, seed: int = 0, slate_size: int = 4,
                   value: SyntheticValue | None = None) -> Logs:
    """MovieLens ml-100k / ml-1m files in ``path`` as semi-synthetic ad logs (module docstring);
    ``value``: how bids and prices are drawn (default: the default world's distributions)."""
    if slate_size < 1:
        raise ValueError(f"slate_size must be >= 1, got {slate_size}")
    folder = _folder(path)
    layout = _movielens_layout(folder)
    ratings_file, movies_file, users_file = (folder / name for name in _ML_LAYOUTS[layout])
    if layout == "ml-100k":
        movies = _ml100k_movies(movies_file)
        ratings = _ml_ratings(ratings_file, "\t", movies)
        profile = _ml100k_users(users_file) if users_file.is_file() else None
    else:
        movies = _ml1m_movies(movies_file)
        ratings = _ml_ratings(ratings_file, "::", movies)
        profile = _ml1m_users(users_file) if users_file.is_file() else None
    notes = {"layout": layout, "user_profile": users_file.name if profile else "absent (one attribute field)"}
    value = value or SyntheticValue.of(WorldConfig())
    logs = _movielens_logs(movies, ratings, profile, np.random.default_rng(seed), slate_size, notes, value)
    logs.validate()
    return logs


def _movielens_layout(folder: Path) -> str:
    for layout, (ratings, movies, _) in _ML_LAYOUTS.items():
        if (folder / ratings).exists() or (folder / movies).exists():
            _require(folder, ratings)
            _require(folder, movies)
            return layout
    raise DataError(f"no MovieLens files in {folder}: expected u.data and u.item (ml-100k) "
                    f"or ratings.dat and movies.dat (ml-1m)")


def _ml100k_movies(path: Path) -> _Movies:
    flags = [f"genre_{i}" for i in range(len(ML100K_GENRES))]
    table = _read_table(path, ("movie_id", "title", "release_date", "video_release_date", "imdb_url", *flags),
                        "|", header=False, encoding="latin-1", dtype=str)
    genres = np.stack([_binary(table, flag) for flag in flags], axis=1).astype(np.float32)
    # "01-Jan-1995": the year is the last four digits; an empty date leaves the year unknown.
    year = pd.to_numeric(table.frame["release_date"].str.extract(r"(\d{4})\s*$")[0], errors="coerce")
    return _sorted_movies(table, genres, year.to_numpy(np.float64))


def _ml1m_movies(path: Path) -> _Movies:
    table = _read_table(path, ("movie_id", "title", "genres"), "::", header=False, encoding="latin-1", dtype=str)
    names = table.frame["genres"].fillna("").str.split("|")
    # Later MovieLens releases add genres (IMAX, ...): they extend the list rather than fail.
    extra = sorted({g for row in names for g in row if g and g not in ML1M_GENRES})
    index = {g: i for i, g in enumerate((*ML1M_GENRES, *extra))}
    genres = np.zeros((len(names), len(index)), np.float32)
    for row, listed in enumerate(names):
        genres[row, [index[g] for g in listed if g]] = 1.0
    # "Toy Story (1995)": the year is the title's trailing parenthesis.
    year = pd.to_numeric(table.frame["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    return _sorted_movies(table, genres, year.to_numpy(np.float64))


def _sorted_movies(table: _Table, genres: np.ndarray, year: np.ndarray) -> _Movies:
    ids = _ints(table, "movie_id")
    _unique_ids(table, "movie_id", ids)
    order = np.argsort(ids, kind="stable")
    return _Movies(ids[order], genres[order], year[order], table.name)


def _ml_ratings(path: Path, sep: str, movies: _Movies) -> _Ratings:
    table = _read_table(path, ("user_id", "movie_id", "rating", "timestamp"), sep, header=False, encoding="latin-1")
    user, ts = _ints(table, "user_id"), _ints(table, "timestamp")
    movie = _lookup(table, "movie_id", _ints(table, "movie_id"), movies.raw_id, movies.source)
    rating = _floats(table, "rating")
    table.check(~((rating >= 1) & (rating <= 5)), "rating", "expected a number from 1 to 5, found {value}")
    return _Ratings(user, movie, rating, ts, table.name)


def _ml1m_users(path: Path) -> tuple[np.ndarray, list[pd.Series]]:
    table = _read_table(path, ("user_id", "gender", "age", "occupation", "zip"), "::", header=False,
                        encoding="latin-1", dtype=str)
    ids = _ints(table, "user_id")
    _unique_ids(table, "user_id", ids)
    return ids, [table.frame[c] for c in ("gender", "age", "occupation")]


def _ml100k_users(path: Path) -> tuple[np.ndarray, list[pd.Series]]:
    table = _read_table(path, ("user_id", "age", "gender", "occupation", "zip"), "|", header=False,
                        encoding="latin-1", dtype=str)
    ids = _ints(table, "user_id")
    _unique_ids(table, "user_id", ids)
    # Raw ages bucketed like ml-1m's, so both layouts share the attribute's meaning.
    bucket = np.asarray(ML1M_AGE_CODES)[np.digitize(_ints(table, "age"), ML1M_AGE_CODES[1:])]
    return ids, [table.frame["gender"], pd.Series(bucket), table.frame["occupation"]]


def _movielens_logs(movies: _Movies, ratings: _Ratings, profile: tuple[np.ndarray, list[pd.Series]] | None,
                    rng: np.random.Generator, slate_size: int, notes: dict, value: SyntheticValue) -> Logs:
    n_items = len(movies.raw_id)
    # Semi-synthetic value layer: MovieLens has no money in it, so bids and prices come from the seed.
    bid = value.bids(rng, n_items)
    price = value.prices(rng, n_items)
    popularity = np.bincount(ratings.movie, minlength=n_items) + 1.0   # over all users, kept or not

    kept_users, dense_user, skipped = _keep_active_users(ratings.user, ratings.source)
    rows = np.flatnonzero(dense_user >= 0)
    rows = rows[np.lexsort((ratings.ts[rows], dense_user[rows]))]      # lexsort is stable: ties keep file order
    user, movie, rating, ts = dense_user[rows], ratings.movie[rows], ratings.rating[rows], ratings.ts[rows]
    stream_offsets = np.r_[0, np.cumsum(np.bincount(user, minlength=len(kept_users)))].astype(np.int64)
    liked = rating >= 4

    slates = [_slates_of_user(rng, movie[a:b], popularity, slate_size)
              for a, b in zip(stream_offsets[:-1], stream_offsets[1:])]
    sizes = np.concatenate([np.full(len(s), s.shape[1]) for s in slates])
    imp_item = np.concatenate([s.ravel() for s in slates]).astype(np.int64)
    shown_rated = imp_item == np.repeat(movie, sizes)                 # negatives are never rated movies
    attrs, attr_card, no_profile = _user_attributes(kept_users, *(profile or (None, [])))

    notes.update({
        "skipped_users_few_requests": skipped,
        "short_slates": int((sizes < slate_size).sum()),
        "movies_missing_year": int(np.isnan(movies.year).sum()),
        "users_without_profile": no_profile if profile else 0,
        "requests": "one per rating; history = earlier ratings (timestamp order, ties in file order)",
        "actions": "rating >= 4 -> CONVERSION, else CLICK",
        "slates": f"rated movie at a random slot + {slate_size - 1} unrated movies sampled by popularity (+1)",
        "value_layer": f"semi-synthetic: {value.bid_note()}, {value.price_note()} per movie, seeded",
        "context": "weekday, 4-hour bucket of the timestamp in UTC",
    })
    genres = movies.genres
    return Logs(
        source="movielens",
        item_category=np.where(genres.any(axis=1), genres.argmax(axis=1), genres.shape[1]).astype(np.int64),
        item_bid=bid, item_price=price,
        item_content=np.c_[genres, _standardize(movies.year)].astype(np.float32),
        n_organic=0,
        user_attrs=attrs, user_attr_cardinality=attr_card,
        stream_offsets=stream_offsets,
        tok_type=np.full(len(rows), AD, np.int8), tok_item=movie.astype(np.int32),
        tok_action=np.where(liked, CONVERSION, CLICK).astype(np.int8),
        req_user=user.astype(np.int64),
        req_hist_end=(np.arange(len(rows)) - stream_offsets[user]).astype(np.int64),
        req_context=np.c_[(ts // 86400 + 3) % 7, _hour_bucket(ts)].astype(np.int64),  # 1 Jan 1970 was a Thursday (3)
        context_cardinality=(7, 24 // HOURS_PER_BUCKET),
        imp_offsets=np.r_[0, np.cumsum(sizes)].astype(np.int64),
        imp_item=imp_item,
        imp_position=np.concatenate([np.tile(np.arange(1, s.shape[1] + 1), len(s)) for s in slates]).astype(np.int64),
        imp_click=shown_rated.astype(np.int8),
        imp_conv=(shown_rated & np.repeat(liked, sizes)).astype(np.int8),
        notes=notes)


def _slates_of_user(rng: np.random.Generator, rated: np.ndarray, popularity: np.ndarray,
                    slate_size: int) -> np.ndarray:
    """Slates [n_ratings, k + 1] of one user: each rated movie at a random slot among k movies the
    user never rated, drawn by popularity without replacement (k = slate_size - 1, or fewer if
    the user left fewer unrated movies)."""
    unrated = np.setdiff1d(np.arange(len(popularity)), rated)
    k = min(slate_size - 1, len(unrated))
    negatives = _draw_distinct(rng, unrated, popularity[unrated], len(rated), k)
    slot = rng.integers(0, k + 1, size=len(rated))
    is_slot = np.arange(k + 1) == slot[:, None]
    slates = np.empty((len(rated), k + 1), np.int64)
    slates[is_slot] = rated
    slates[~is_slot] = negatives.ravel()
    return slates


def _draw_distinct(rng: np.random.Generator, pool: np.ndarray, weights: np.ndarray, rows: int, k: int) -> np.ndarray:
    """``rows`` independent draws of k distinct entries of ``pool`` with probability ∝ weights.
    Draws with replacement and keeps the first k distinct ones (cheap when k << len(pool));
    a row that does not get k falls back to numpy's exact sampler."""
    if k == 0:
        return np.empty((rows, 0), np.int64)
    p = weights / weights.sum()
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    candidates = pool[np.searchsorted(cdf, rng.random((rows, 4 * k + 8)), side="right")]
    out = np.empty((rows, k), np.int64)
    for r, row in enumerate(candidates.tolist()):
        distinct = list(dict.fromkeys(row))[:k]
        out[r] = distinct if len(distinct) == k else rng.choice(pool, size=k, replace=False, p=p)
    return out
