"""Table parsing shared by the real-data loaders: every file read and checked completely, errors
naming the file, the 1-based line and the problem (:class:`~oneranker.schema.DataError`), and the
helpers both loaders use (dense re-indexing, user attributes, hour buckets, active users).
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

from ..config import WorldConfig
from ..schema import MIN_REQUESTS_PER_USER, DataError


@dataclass(frozen=True)
class SyntheticValue:
    """What the real logs lack and the loaders draw, seeded: a bid per ad (neither data set
    logs bids) and, for MovieLens, a price per movie. Both log-normal with the simulated
    world's parameters (:meth:`of`), so real and simulated markets share one value scale and
    the numbers have one home, :class:`~oneranker.config.WorldConfig`."""

    bid_log_mean: float
    bid_log_sigma: float
    price_log_mean: float
    price_log_sigma: float

    @classmethod
    def of(cls, world: WorldConfig) -> "SyntheticValue":
        return cls(world.bid_log_mean, world.bid_log_sigma, world.price_log_mean, world.price_log_sigma)

    def bids(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.bid_log_mean, self.bid_log_sigma, n)

    def prices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.price_log_mean, self.price_log_sigma, n)

    def bid_note(self) -> str:
        return f"bid ~ LogNormal({self.bid_log_mean}, {self.bid_log_sigma})"

    def price_note(self) -> str:
        return f"price ~ LogNormal({self.price_log_mean}, {self.price_log_sigma})"


HOURS_PER_BUCKET = 4


_MISSING = ["", "NULL"]      # the only spellings read as "no value" (pandas' defaults include "NA", "nan", ...)


_ONE_CHAR_SEP = "\x1f"       # ASCII unit separator: stands in for "::" so pandas' fast parser applies


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


def _keep_active_users(user: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Users (raw ids) with at least MIN_REQUESTS_PER_USER entries: (sorted kept raw ids,
    dense id per entry or -1 if its user is dropped, number of users dropped). A DataError
    naming ``source`` (the file the entries come from) when no user is kept: the logs would
    be empty, and every later step would fail on that with an error that names no file."""
    uniq, inverse, counts = np.unique(user, return_inverse=True, return_counts=True)
    keep = counts >= MIN_REQUESTS_PER_USER
    if not keep.any():
        raise DataError(f"{source}: no user has at least {MIN_REQUESTS_PER_USER} requests "
                        f"({len(uniq)} users, at most {int(counts.max(initial=0))} each), so no user's history is left")
    dense = np.where(keep, np.cumsum(keep) - 1, -1)
    return uniq[keep], dense[inverse], int((~keep).sum())
