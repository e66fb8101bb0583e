"""Real-data loaders: public log formats converted to the canonical :class:`~oneranker.schema.Logs`.

Every file is read and checked completely before anything is built, so a bad file fails with a
:class:`~oneranker.schema.DataError` naming the file, the 1-based line and the problem, and no
half-built logs are ever returned. Same files and seed, same logs: all randomness comes from one
``numpy.random.Generator`` seeded by ``seed``. Counted skips and the choices below are recorded
in ``logs.notes`` (keys starting with ``skipped`` are counts of dropped users).

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

import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, NoReturn, Sequence

import numpy as np
import pandas as pd

from .schema import AD, CLICK, CONVERSION, IMPRESSION, MIN_REQUESTS_PER_USER, ORGANIC, VIEW, DataError, Logs

BID_LOG_MEAN, BID_LOG_SIGMA = 0.0, 0.6
PRICE_LOG_MEAN, PRICE_LOG_SIGMA = 3.0, 0.8
HOURS_PER_BUCKET = 4
CONVERSION_WINDOW_S = 72 * 3600
TAOBAO_UTC_OFFSET_S = 8 * 3600
HASH_DIM = 32

_MISSING = ["", "NULL"]      # the only spellings read as "no value" (pandas' defaults include "NA", "nan", ...)
_ONE_CHAR_SEP = "\x1f"       # ASCII unit separator: stands in for "::" so pandas' fast parser applies

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
ML1M_GENRES = ML100K_GENRES[1:]
ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)   # ml-1m's age buckets; ml-100k's ages are mapped onto them

RAW_SAMPLE_COLUMNS = ("user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk")
AD_FEATURE_COLUMNS = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price")
USER_PROFILE_COLUMNS = ("userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
                        "pvalue_level", "shopping_level", "occupation", "new_user_class_level")
BEHAVIOR_LOG_COLUMNS = ("user", "time_stamp", "btag", "cate", "brand")
BTAGS = ("pv", "cart", "fav", "buy")


# ============================================================================ files and lines
@dataclass(frozen=True)
class _Table:
    """A parsed file and what is needed to trace a row back to its line in that file."""

    name: str
    frame: pd.DataFrame
    first_line: int   # 1-based line number of row 0

    def fail(self, row: int, problem: str) -> NoReturn:
        raise DataError(f"{self.name}, line {self.first_line + row}: {problem}")

    def check(self, bad: np.ndarray, column: str, problem: str) -> None:
        """Fail on the first row flagged ``bad``; ``problem`` may quote the raw value as {value}."""
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            self.fail(row, f"{column}: " + problem.format(value=_shown(self.frame[column].iloc[row])))


def _shown(value: object) -> str:
    return "an empty value" if pd.isna(value) else repr(str(value))


def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a directory holding the data files")
    return folder


def _require(folder: Path, name: str) -> Path:
    if not (folder / name).is_file():
        raise DataError(f"missing required file {name} in {folder}")
    return folder / name


def _read_table(path: Path, columns: Sequence[str], sep: str, *, header: bool,
                encoding: str = "utf-8", dtype: dict | type | None = None) -> _Table:
    """Parse a separated file with pandas after checking every line's field count ourselves:
    pandas pads short lines with NaN silently and numbers lines differently, so the count is
    checked where 1-based line numbers are known. Quotes are literal (GroupLens files do not
    quote, and a title may contain a quote), so one record is always one line."""
    display_sep = sep
    source: Path | io.BytesIO = path
    if len(sep) > 1:   # pandas' fast C parser takes one-character separators only
        source = io.BytesIO(path.read_bytes().replace(sep.encode(), _ONE_CHAR_SEP.encode()))
        sep = _ONE_CHAR_SEP
    n_rows = _count_data_lines(source, path.name, sep, display_sep, columns, header, encoding)
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        frame = pd.read_csv(source, sep=sep, header=None, names=list(columns), skiprows=int(header),
                            dtype=dtype, encoding=encoding, quoting=csv.QUOTE_NONE, keep_default_na=False,
                            na_values=_MISSING, skip_blank_lines=False, engine="c")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path.name}: cannot be parsed ({exc})") from exc
    if len(frame) != n_rows:
        raise DataError(f"{path.name}: parsed {len(frame)} rows from {n_rows} data lines (stray line breaks?)")
    return _Table(path.name, frame, first_line=1 + int(header))


@contextlib.contextmanager
def _binary_lines(source: Path | io.BytesIO) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with open(source, "rb") as f:
            yield f
    else:
        source.seek(0)
        yield source


def _count_data_lines(source: Path | io.BytesIO, name: str, sep: str, display_sep: str,
                      columns: Sequence[str], header: bool, encoding: str) -> int:
    """Number of data lines; DataError on an empty file, a wrong header or a wrong field count."""
    n_data, sep_bytes = 0, sep.encode()
    with _binary_lines(source) as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip(b"\r\n")
            if number == 1 and header:
                _check_header(name, line.decode(encoding, errors="replace"), sep, columns)
                continue
            if not line.strip():
                raise DataError(f"{name}, line {number}: empty line (expected {len(columns)} fields)")
            n_fields = line.count(sep_bytes) + 1
            if n_fields != len(columns):
                raise DataError(f"{name}, line {number}: wrong number of fields: expected {len(columns)} "
                                f"separated by {display_sep!r}, found {n_fields}")
            n_data += 1
    if n_data == 0:
        raise DataError(f"{name} is empty: no data lines")
    return n_data


def _check_header(name: str, line: str, sep: str, columns: Sequence[str]) -> None:
    # The real user_profile.csv header ends in "new_user_class_level " (trailing space): names are stripped.
    found = [field.strip() for field in line.lstrip("\ufeff").split(sep)]
    if found != list(columns):
        raise DataError(f"{name}, line 1: missing or wrong header: expected {','.join(columns)!r}, "
                        f"found {line.strip()!r}")


def _ints(table: _Table, column: str) -> np.ndarray:
    """An integer column (ids, timestamps, flags); anything else is an error at its line."""
    values = table.frame[column]
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    table.check(~np.isfinite(numbers) | (numbers % 1 != 0), column, "expected an integer, found {value}")
    return numbers.astype(np.int64)


def _optional_ints(table: _Table, column: str) -> np.ndarray:
    """An integer column where an empty / NULL value is allowed and becomes -1."""
    values = table.frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    table.check(values.notna().to_numpy() & (~np.isfinite(numbers) | (numbers % 1 != 0)), column,
                "expected an integer or NULL, found {value}")
    return np.where(np.isnan(numbers), -1, numbers).astype(np.int64)


def _floats(table: _Table, column: str) -> np.ndarray:
    """A numeric column; unparseable values become NaN for the caller's range check to report."""
    return pd.to_numeric(table.frame[column], errors="coerce").to_numpy(np.float64)


def _binary(table: _Table, column: str) -> np.ndarray:
    values = pd.to_numeric(table.frame[column], errors="coerce").to_numpy(np.float64)
    table.check(~np.isin(values, (0.0, 1.0)), column, "expected 0 or 1, found {value}")
    return values.astype(np.int8)


def _unique_ids(table: _Table, column: str, ids: np.ndarray) -> None:
    table.check(pd.Series(ids).duplicated().to_numpy(), column, "duplicate id {value}")


def _lookup(table: _Table, column: str, ids: np.ndarray, known: np.ndarray, source: str) -> np.ndarray:
    """Positions of ``ids`` in the sorted array ``known``; an id absent from it is an error."""
    pos = np.searchsorted(known, ids).clip(max=len(known) - 1)
    table.check(known[pos] != ids, column, "unknown id {value}: not in " + source)
    return pos


# ============================================================================ shared pieces
def _standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the known values; a missing value (NaN) becomes the mean (0)."""
    known = x[np.isfinite(x)]
    if known.size == 0:
        return np.zeros_like(x)
    std = known.std()
    z = (x - known.mean()) / (std if std > 0 else 1.0)
    return np.where(np.isfinite(z), z, 0.0)


def _user_attributes(users: np.ndarray, profile_ids: np.ndarray | None,
                     fields: Sequence[pd.Series]) -> tuple[np.ndarray, tuple[int, ...], int]:
    """Attributes of ``users`` (raw ids): each field re-indexed densely over the profile file's
    values, 0 reserved for an empty value or a user the profile file lacks. Returns the
    attributes, their cardinalities and the number of users without a profile. Without a
    profile file, one constant field of cardinality 1."""
    if profile_ids is None:
        return np.zeros((len(users), 1), np.int64), (1,), len(users)
    codes, cardinality = [], []
    for values in fields:
        index, uniques = pd.factorize(values, sort=True)   # empty -> -1 -> 0
        codes.append(index + 1)
        cardinality.append(len(uniques) + 1)
    order = np.argsort(profile_ids, kind="stable")
    table, sorted_ids = np.stack(codes, axis=1)[order], profile_ids[order]
    pos = np.searchsorted(sorted_ids, users).clip(max=len(sorted_ids) - 1)
    found = sorted_ids[pos] == users
    attrs = np.where(found[:, None], table[pos], 0).astype(np.int64)
    return attrs, tuple(cardinality), int((~found).sum())


def _hour_bucket(ts: np.ndarray, utc_offset_s: int = 0) -> np.ndarray:
    return ((ts + utc_offset_s) % 86400) // 3600 // HOURS_PER_BUCKET


def _keep_active_users(user: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Users (raw ids) with at least MIN_REQUESTS_PER_USER entries: (sorted kept raw ids,
    dense id per entry or -1 if its user is dropped, number of users dropped)."""
    uniq, inverse, counts = np.unique(user, return_inverse=True, return_counts=True)
    keep = counts >= MIN_REQUESTS_PER_USER
    dense = np.where(keep, np.cumsum(keep) - 1, -1)
    return uniq[keep], dense[inverse], int((~keep).sum())


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


_ML_LAYOUTS = {"ml-100k": ("u.data", "u.item", "u.user"), "ml-1m": ("ratings.dat", "movies.dat", "users.dat")}


def load_movielens(path: str | Path, seed: int = 0, slate_size: int = 4) -> Logs:
    """MovieLens ml-100k / ml-1m files in ``path`` as semi-synthetic ad logs (module docstring)."""
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
    logs = _movielens_logs(movies, ratings, profile, np.random.default_rng(seed), slate_size, notes)
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
    return _Ratings(user, movie, rating, ts)


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
                    rng: np.random.Generator, slate_size: int, notes: dict) -> Logs:
    n_items = len(movies.raw_id)
    # Semi-synthetic value layer: MovieLens has no money in it, so bids and prices come from the seed.
    bid = rng.lognormal(BID_LOG_MEAN, BID_LOG_SIGMA, n_items)
    price = rng.lognormal(PRICE_LOG_MEAN, PRICE_LOG_SIGMA, n_items)
    popularity = np.bincount(ratings.movie, minlength=n_items) + 1.0   # over all users, kept or not

    kept_users, dense_user, skipped = _keep_active_users(ratings.user)
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
        "value_layer": f"semi-synthetic: bid ~ LogNormal({BID_LOG_MEAN}, {BID_LOG_SIGMA}), "
                       f"price ~ LogNormal({PRICE_LOG_MEAN}, {PRICE_LOG_SIGMA}) per movie, seeded",
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


def load_taobao(path: str | Path, seed: int = 0, max_requests_per_user: int | None = None) -> Logs:
    """Alibaba's Taobao display-ad click files in ``path`` as ad logs (module docstring)."""
    if max_requests_per_user is not None and max_requests_per_user < 1:
        raise ValueError(f"max_requests_per_user must be >= 1 or None, got {max_requests_per_user}")
    folder = _folder(path)
    files = {name: _require(folder, name) for name in ("raw_sample.csv", "ad_feature.csv", "user_profile.csv")}
    ads = _taobao_ads(files["ad_feature.csv"])
    impressions = _taobao_impressions(files["raw_sample.csv"], ads)
    profile = _taobao_profile(files["user_profile.csv"])
    behaviour_file = folder / "behavior_log.csv"
    behaviour = _taobao_behaviour(behaviour_file) if behaviour_file.is_file() else None
    logs = _taobao_logs(ads, impressions, profile, behaviour, np.random.default_rng(seed), max_requests_per_user)
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
    kept_users, user, skipped = _keep_active_users(imp.user[first_row])
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
                 behaviour: _Behaviour | None, rng: np.random.Generator, max_requests: int | None) -> Logs:
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
    bid = rng.lognormal(BID_LOG_MEAN, BID_LOG_SIGMA, len(used_ads))   # the data set logs no bids
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
            "value_layer": f"real price; semi-synthetic bid ~ LogNormal({BID_LOG_MEAN}, {BID_LOG_SIGMA}) per ad, seeded",
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
