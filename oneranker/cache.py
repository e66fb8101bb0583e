"""The on-disk cache of prepared datasets and trained models: its layout, its keys, how entries
are written and how damaged ones are handled, in one place.

Layout under a cache folder (``cache/`` by default; the notebooks use ``../cache``)::

    data/adworld-<data key>/        a prepared simulated dataset (``data.cached_prepared``)
    data/.adworld-<data key>.lock   held while one process reads, sets aside or builds it
                                    (none in a cache this process may not write: only read)
    real/<source>-<data key>/       a prepared folder of real logs (``data.cached_real_folder``)
    models/<model key>/final.pt     a trained model: weights, config hash, history
    models/<model key>/checkpoint.pt  while it trains (atomic, resumable)
    models/<first model key>-stack<M>/stack_checkpoint.pt
                                    while a stack of M models trains (train.stack_seeds; each
                                    model's final.pt then goes to its own folder)
    results/<result key>.pt         what a study computed from one model (its rows, arrays)
    results/asked/<model key>-<result code>.json
                                    the result files a study asked of that model

A **result key** is the kind of result, the model keys of the models it reads (a cascade reads
two), its arguments and the version of the code that computes results from models
(``RESULT_CODE``). Results are small where models are not (a paper model's weights exceed what
the lent GPU machine returns), so they can travel between sittings: a notebook run with some of
its seeds leaves every result it asked for, and a later run with all seeds need not train the
models whose every asked-for result it finds (:func:`answered`).

A **model key** is the config hash, the version of the code that trains a model
(:func:`code_version`) and, for a dataset given as a folder of real logs, the dataset's
fingerprint (``realdata.dataset_fingerprint``). A **data key** is the hash of the config
sections that decide a dataset plus the version of the code that simulates and prepares it.
So an entry can never be served to another config, other data, or code that would compute it
differently; a comment or docstring edit keeps the keys (the version hashes the code's source
text without docstrings, comments and blank lines: :func:`code_text`).

Every file is written to a temporary name and renamed into place (:func:`atomic_save`), so
a killed run never leaves a half-written entry. An entry that is damaged anyway (a truncated
copy, a table missing from a cached dataset) is named in a warning, moved aside as
``<name>.damaged`` and treated as missing: the model is retrained, or resumed from its last
good checkpoint, the dataset built again (:func:`set_aside`). An error of the machine while
reading (no permission, no file descriptors, a full disk: :func:`machine_error`) is raised
instead, never taken for damage.
"""

from __future__ import annotations

import ast
import io
import tokenize
import contextlib
import errno
import functools
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .runtime import distributed_rank

# The modules whose code decides a prepared dataset, and those that decide a trained model
# given its dataset. Their code (docstrings and comments left out: code_text) keys the cache.
DATA_CODE = ("config", "schema", "world", "loaders", "semantic_ids", "data")
MODEL_CODE = DATA_CODE + ("runtime", "masks", "layers", "model", "losses", "graphs", "train", "stacked")
# The modules that turn trained models into a notebook's numbers (generation, evaluation against
# the truth, reference lists, metrics, CIs, the named variants). They key no model; they key the
# results a study caches (RESULT_CODE), and a run record names their version beside the model
# code's, so that a series assembled across sittings shows whether its numbers came from one
# evaluation too.
EVALUATION_CODE = ("generate", "evaluate", "metrics", "reference", "tables", "studies", "baselines")
# The code that turns a trained model into a study's results (oneranker.study's rows too): keys
# the results cache
RESULT_CODE = EVALUATION_CODE + ("study",)
# Modules those import that compute no number: they spread seeded work over processes (results
# in the order of their arguments, whatever ran where; a pool's models depend on their configs
# only, oneranker.pool) or write files. In neither version.
ORCHESTRATION = ("parallel", "outputs", "pool")
# Module-level tables of values that reach a result only as config values, which the config's
# own hash already keys: the named profiles. Left out of the code version, so that re-sizing
# the paper profile does not throw away every quick model; a change of what the values *mean*
# is a change of the classes and functions around them, which stay in.
VALUES_KEYED_BY_CONFIG = {"config.py": ("PROFILES", "BEFORE_LEARNABILITY")}


class CacheWarning(UserWarning):
    """A cache entry could not be read and was set aside; it will be computed again."""


def _left_out(tree: ast.Module, names: tuple[str, ...]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Source spans (start, end) that do not key the cache: every docstring (a string statement
    opening a module, class or function body) and the top-level assignments to ``names``."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                spans.append(first)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id in names for t in targets):
            spans.append(node)
    return [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in spans]


def code_text(source: str, names: tuple[str, ...] = ()) -> str:
    """The part of ``source`` that decides what it computes: its lines with comments,
    docstrings, the assignments to ``names`` and blank lines taken out, trailing blanks
    stripped, indentation kept. Built from the syntax tree's positions and the tokeniser's
    comments, which every Python version reports alike; not from ``ast.dump`` or the token
    stream, which change between versions (Python 3.12 splits f-strings into several tokens):
    a model trained under one Python must be found under another."""
    lines = source.splitlines()
    cut: dict[int, list[tuple[int, int]]] = {}          # 1-based line -> [(start col, end col)]

    def drop(start: tuple[int, int], end: tuple[int, int]) -> None:
        for row in range(start[0], end[0] + 1):
            lo = start[1] if row == start[0] else 0
            hi = end[1] if row == end[0] else len(lines[row - 1])
            cut.setdefault(row, []).append((lo, hi))

    def chars(row: int, col: int) -> int:      # ast columns count UTF-8 bytes; strings count characters
        return len(lines[row - 1].encode()[:col].decode(errors="ignore")) if row <= len(lines) else col

    for (r0, c0), (r1, c1) in _left_out(ast.parse(source), names):
        drop((r0, chars(r0, c0)), (r1, chars(r1, c1)))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            drop(tok.start, tok.end)
    kept = []
    for row, line in enumerate(lines, start=1):
        for lo, hi in sorted(cut.get(row, []), reverse=True):
            line = line[:lo] + line[hi:]
        if line.strip():
            kept.append(line.rstrip())
    return "\n".join(kept)


@functools.lru_cache(maxsize=None)
def code_version(modules: tuple[str, ...] = MODEL_CODE) -> str:
    """Short hash of the code of ``modules`` of this package (:func:`code_text`: docstrings and
    comments left out): it changes when code that could change a cached result changes."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for name in modules:
        # a package first, as Python's import finds it
        files = sorted((root / name).glob("*.py")) if (root / name / "__init__.py").exists() else [root / f"{name}.py"]
        if not files:
            raise FileNotFoundError(f"cache.code_version: no module or package {name!r} in {root}")
        for path in files:                      # a package: each of its files, in name order
            rel = path.relative_to(root).as_posix()
            digest.update(rel.encode())
            digest.update(code_text(path.read_text(), VALUES_KEYED_BY_CONFIG.get(rel, ())).encode())
    return digest.hexdigest()[:8]


def dataset_folder(cfg: Config, cache_dir: str | Path) -> Path:
    """Where the prepared simulated dataset of ``cfg`` lives."""
    return Path(cache_dir) / "data" / f"adworld-{cfg.data_hash()}-{code_version(DATA_CODE)}"


def real_data_folder(cfg: Config, cache_dir: str | Path, source: str) -> Path:
    """Where the prepared folder of real logs of ``source`` (``movielens``, ``taobao``) under
    ``cfg`` lives: keyed like a simulated dataset, so other loader code never reuses it."""
    return Path(cache_dir) / "real" / f"{source}-{cfg.data_hash()}-{code_version(DATA_CODE)}"


def model_folder(cfg: Config, cache_dir: str | Path, fingerprint: str | None = None) -> Path:
    """Where the trained model of ``cfg`` (on the dataset ``fingerprint``, for real logs) lives."""
    key = f"{cfg.hash()}-{code_version(MODEL_CODE)}" + ("" if fingerprint is None else f"-{fingerprint}")
    return Path(cache_dir) / "models" / key


def has_model(cfg: Config, cache_dir: str | Path, fingerprint: str | None = None) -> bool:
    return (model_folder(cfg, cache_dir, fingerprint) / "final.pt").exists()


def has_dataset(cfg: Config, cache_dir: str | Path) -> bool:
    return (dataset_folder(cfg, cache_dir) / "meta.json").exists()


def result_path(kind: str, cfgs: list[Config], args: dict, cache_dir: str | Path) -> Path:
    """Where the result ``kind`` of the models of ``cfgs`` under ``args`` (JSON-able) lives."""
    key = json.dumps([kind, [model_folder(c, cache_dir).name for c in cfgs], code_version(RESULT_CODE), args],
                     sort_keys=True, default=str)
    return Path(cache_dir) / "results" / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _asked_file(cfg: Config, cache_dir: str | Path) -> Path:
    """The record of what was asked of the model of ``cfg`` under today's result code: asks
    recorded under other code name results this code would not read."""
    name = f"{model_folder(cfg, cache_dir).name}-{code_version(RESULT_CODE)}.json"
    return Path(cache_dir) / "results" / "asked" / name


def asked_codes(name: str) -> tuple[str, str]:
    """(model code, result code) of a record of asked results, from its file name as
    :func:`_asked_file` writes it (CONFIG-MODELCODE[-DATASET]-RESULTCODE.json): which code a
    results cache brought from another sitting was made under."""
    parts = Path(name).stem.split("-")
    if len(parts) < 3:
        raise ValueError(f"{name!r} is not a record of asked results (CONFIG-MODELCODE-RESULTCODE.json)")
    return parts[1], parts[-1]


# What a study records when it used a model itself (its weights, not a cached result): no
# result can stand in for it, so the notebook that did so never skips it
ASKED_MODEL = "the model itself"
# The notebook whose study asks (``reproduce`` sets it for each notebook's kernel). A model one
# notebook used itself is recorded as asked by that notebook, so only that notebook's later
# runs must train it: another notebook that asks only its results is served by them. That is
# what lets a GPU sitting, which starts bare with the earlier sittings' results, skip the
# models an earlier notebook trained (notebook 04 uses every model of its learning curves
# itself; on a bare machine 05 retrained all of them until 2026-12-04). Unset (a notebook run
# by hand), every such record counts, whoever made it.
ASKER_ENV = "ONERANKER_ASKER"


def _model_itself(asker: str | None) -> str:
    """The record of a model used itself by ``asker`` (None: by a study that did not say)."""
    return ASKED_MODEL if asker is None else f"{ASKED_MODEL} ({asker})"


def _is_model_itself(name: str) -> bool:
    return name == ASKED_MODEL or name.startswith(ASKED_MODEL + " (")


def note_asked(cfgs: list[Config], name: str, cache_dir: str | Path) -> None:
    """Record that a study asked the models of ``cfgs`` for the result file ``name`` (or for
    :data:`ASKED_MODEL`, recorded as asked by the notebook :data:`ASKER_ENV` names)."""
    if name == ASKED_MODEL:
        name = _model_itself(os.environ.get(ASKER_ENV) or None)
    for cfg in cfgs:
        file = _asked_file(cfg, cache_dir)
        asked = set(json.loads(file.read_text())) if file.exists() else set()
        if name not in asked:
            atomic_write_text(file, json.dumps(sorted(asked | {name})))


def asked_under_today(cache_dir: str | Path) -> tuple[int, int]:
    """How many models' records of asked results (:func:`note_asked`) in ``cache_dir`` were made
    under today's model and result code, and how many under other code. Results brought in from
    another sitting (``.device/paper.sh`` RESULTS_IN) serve only when made under today's code;
    none of them under it means the sitting would train every model again."""
    here = (code_version(MODEL_CODE), code_version(RESULT_CODE))
    names = [f.name for f in (Path(cache_dir) / "results" / "asked").glob("*.json")]
    today = sum(asked_codes(name) == here for name in names)
    return today, len(names) - today


def answered(cfg: Config, cache_dir: str | Path) -> bool:
    """Whether every result a study has asked of the model of ``cfg`` is in the cache (at least
    one asked) and the asking notebook (:data:`ASKER_ENV`) has never used the model itself:
    then a study that asks the same need not train it. A record of the model used itself by
    another notebook does not count, one by a study that did not say who asked always does."""
    file = _asked_file(cfg, cache_dir)
    if not file.exists():
        return False
    asked = json.loads(file.read_text())
    asker = os.environ.get(ASKER_ENV) or None
    itself = [a for a in asked if _is_model_itself(a)]
    binding = itself if asker is None else [a for a in itself if a in (ASKED_MODEL, _model_itself(asker))]
    results = [a for a in asked if not _is_model_itself(a)]
    return not binding and bool(results) and all((file.parent.parent / n).exists() for n in results)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place: readers
    see the old file or the new one, never a half-written one; the temporary file is removed
    on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (see :func:`atomic_save`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# Errors of the machine rather than of a file (no permission, no file descriptors, no memory,
# a full or read-only disk, a failing device): raised, never taken for a damaged entry, since
# moving the entry aside and computing it again would fail the same way, or hide the problem.
MACHINE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                            errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT})


def machine_error(e: BaseException) -> bool:
    """Whether ``e``, raised while reading a cache entry, is the machine's problem (raise it)
    rather than the entry's (set it aside and compute it again)."""
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or \
        (isinstance(e, OSError) and e.errno in MACHINE_ERRNOS)


def set_aside(path: Path, problem: BaseException, then: str) -> Path:
    """Move the damaged entry ``path`` (a file or a folder) to ``<name>.damaged``, replacing an
    older one, and name it in a :class:`CacheWarning` saying what happens ``then``. Kept, not
    deleted: the damage can be looked at. In a distributed run one process moves it; the others
    only skip it."""
    path = Path(path)
    aside = path.with_name(path.name + ".damaged")
    if distributed_rank()[0] == 0:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)     # os.replace cannot replace a folder
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside)
    warnings.warn(f"cache entry {path} is damaged ({type(problem).__name__}: {str(problem)[:120]}); moved to "
                  f"{aside.name} and {then}", CacheWarning, stacklevel=3)
    return aside


def load_entry(path: Path, map_location: str | torch.device = "cpu", expect: tuple[str, ...] = ()) -> dict | None:
    """The dict saved at ``path``, or None when there is none. A file that cannot be read, or
    lacks one of the ``expect`` keys, is damaged: it is moved aside as ``<name>.damaged``, a
    :class:`CacheWarning` names it, and None is returned (the caller computes it again)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(blob, dict):
            raise TypeError(f"a {type(blob).__name__}, not a dict")
        missing = [k for k in expect if k not in blob]
        if missing:
            raise KeyError(f"missing {missing}")
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, KeyError, pickle.UnpicklingError) as e:
        if machine_error(e):
            raise                   # the machine's problem, not the file's
        # a truncated zip, a wrong format, a partial dict: the file is damaged
        set_aside(path, e, "computed again")
        return None
    return blob
