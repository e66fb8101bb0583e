"""The cache: keys that miss on other code or other data, atomic writes, damaged entries named,
set aside and computed again (never a raw traceback)."""

import errno
import shutil
import threading
import warnings
from pathlib import Path

import pytest
import torch

from conftest import load_tool, tiny_config
from oneranker import cache
from oneranker.train import train_or_load


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_code_version_ignores_docstrings_and_comments_only():
    a = 'def f(x):\n    """Why."""\n    return x + 1  # note\n'
    b = 'def f(x):\n    """Another why."""\n\n    return x + 1\n'
    c = 'def f(x):\n    return x + 2\n'
    d = 'def f(x):\n    if x:\n        pass\n    return x + 1\n'
    e = 'def f(x):\n    if x:\n        pass\n        return x + 1\n'       # the same tokens, other blocks
    assert cache.code_text(a) == cache.code_text(b) != cache.code_text(c)
    assert cache.code_text(d) != cache.code_text(e)


def test_code_version_leaves_out_the_profile_tables_only():
    """A profile table's values reach a model only through the config hash, so editing it keeps
    the code version; any other top-level statement, or a class, still changes it."""
    src = "PROFILES = {'paper': {'n': 1}}\nOTHER = 1\nclass C:\n    x = 1\n"
    tokens = lambda s: cache.code_text(s, ("PROFILES",))  # noqa: E731
    assert tokens(src) == tokens(src.replace("'n': 1", "'n': 2"))
    assert tokens(src) != tokens(src.replace("OTHER = 1", "OTHER = 2"))
    assert tokens(src) != tokens(src.replace("x = 1", "x = 2"))
    assert set(cache.VALUES_KEYED_BY_CONFIG["config.py"]) <= set(vars(__import__("oneranker.config").config))


def test_code_version_is_the_same_under_every_python():
    """The key is the source text without docstrings, comments and blank lines: neither an
    ``ast.dump`` (which changes between Python versions) nor the token stream (Python 3.12
    splits f-strings into several tokens; 3.11 keeps one) could find a model trained under
    another Python. Pinned for one small source with an f-string."""
    src = 'def f(x):\n    """Doc."""\n\n    return {"a": f"{x!r:>4}"}  # c\n'
    assert cache.code_text(src) == 'def f(x):\n    return {"a": f"{x!r:>4}"}'
    # the syntax tree counts columns in UTF-8 bytes: a docstring with non-ASCII text is cut whole
    assert cache.code_text('def f():\n    """é→x"""; return 1\n') == "def f():\n    ; return 1"


def test_keys_change_with_the_code_version_and_the_dataset(monkeypatch, tmp_path):
    cfg = tiny_config()
    base = cache.model_folder(cfg, tmp_path)
    assert cache.model_folder(cfg, tmp_path, fingerprint="abc") != base
    data = cache.dataset_folder(cfg, tmp_path)
    monkeypatch.setattr(cache, "code_version", lambda modules=cache.MODEL_CODE: "other")
    assert cache.model_folder(cfg, tmp_path) != base
    assert cache.dataset_folder(cfg, tmp_path) != data


def test_a_code_change_misses_the_model_cache(monkeypatch, tmp_path, tiny_prepared):
    cfg = tiny_config(**{"train.epochs": 1})
    train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(cache, "code_version", lambda modules=cache.MODEL_CODE: "changed")
    assert not cache.has_model(cfg, tmp_path)
    train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    assert len(list((tmp_path / "models").iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty-dict"])
def test_a_damaged_final_model_is_named_set_aside_and_retrained(tmp_path, tiny_prepared, damage):
    cfg = tiny_config(**{"train.epochs": 1})
    first, _ = train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    final = cache.model_folder(cfg, tmp_path) / "final.pt"
    if damage == "truncate":
        final.write_bytes(final.read_bytes()[:1000])
    elif damage == "garbage":
        final.write_bytes(b"not a checkpoint")
    else:
        torch.save({}, final)
    with pytest.warns(cache.CacheWarning, match="final.pt is damaged"):
        again, _ = train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    assert (final.parent / "final.pt.damaged").exists() and final.exists()
    assert _same(_weights(first), _weights(again))     # retrained from scratch: the same model


def test_a_damaged_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, tiny_prepared):
    from oneranker.train import Trainer

    cfg = tiny_config(**{"train.epochs": 2})
    reference, _ = train_or_load(cfg, tiny_prepared, tmp_path / "ref", device="cpu", progress=False)
    folder = cache.model_folder(cfg, tmp_path / "run")
    Trainer(cfg, tiny_prepared, workdir=folder, device="cpu", progress=False).fit(stop_after_steps=3)
    ckpt = folder / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    with pytest.warns(cache.CacheWarning, match="checkpoint.pt is damaged"):
        model, _ = train_or_load(cfg, tiny_prepared, tmp_path / "run", device="cpu", progress=False)
    assert _same(_weights(reference), _weights(model))


@pytest.mark.parametrize("damage", ["truncated table", "missing table", "bad meta"])
def test_a_damaged_cached_dataset_is_named_set_aside_and_built_again(tmp_path, damage):
    from oneranker.data import cached_prepared

    cfg = tiny_config()
    first = cached_prepared(cfg, tmp_path, progress=False)
    rows = first.requests["train"].to_pandas()
    del first                           # its tables map the files damaged below
    folder = cache.dataset_folder(cfg, tmp_path)
    if damage == "truncated table":
        arrow = sorted((folder / "requests" / "train").glob("*.arrow"))[0]
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    elif damage == "missing table":
        shutil.rmtree(folder / "items")
    else:
        (folder / "meta.json").write_text("{")
    with pytest.warns(cache.CacheWarning, match=f"{folder.name} is damaged .*built again"):
        again = cached_prepared(cfg, tmp_path, progress=False)
    assert (folder.parent / f"{folder.name}.damaged").is_dir()
    assert again.requests["train"].to_pandas().equals(rows)      # the same dataset, built again
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        cached_prepared(cfg, tmp_path, progress=False)            # now read as it is


@pytest.mark.parametrize("code", [errno.EACCES, errno.EMFILE])
def test_a_machine_error_reading_a_cached_dataset_is_raised_not_taken_for_damage(tmp_path, monkeypatch, code):
    from oneranker import data

    cfg = tiny_config()
    data.cached_prepared(cfg, tmp_path, progress=False)
    folder = cache.dataset_folder(cfg, tmp_path)

    def unreadable(path):
        raise OSError(code, "the machine says no", str(path))

    monkeypatch.setattr(data, "load_prepared", unreadable)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        with pytest.raises(OSError, match="the machine says no"):
            data.cached_prepared(cfg, tmp_path, progress=False)
    assert folder.is_dir() and not (folder.parent / f"{folder.name}.damaged").exists()


def test_a_machine_error_reading_a_cache_entry_is_raised_not_taken_for_damage(tmp_path, monkeypatch):
    entry = tmp_path / "x.pt"
    torch.save({"a": 1}, entry)

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(cache.torch, "load", no_descriptors)
    with pytest.raises(OSError, match="Too many open files"):
        cache.load_entry(entry)
    assert entry.exists() and not (tmp_path / "x.pt.damaged").exists()


def test_one_process_at_a_time_reads_or_builds_a_cached_dataset(tmp_path):
    """While another process holds the dataset's lock (building it, or setting it aside),
    cached_prepared waits for it rather than building the same folder at the same time."""
    from filelock import FileLock

    from oneranker.data import cached_prepared

    cfg = tiny_config()
    cached_prepared(cfg, tmp_path, progress=False)
    folder = cache.dataset_folder(cfg, tmp_path)
    done = threading.Event()
    with FileLock(folder.parent / f".{folder.name}.lock"):
        reader = threading.Thread(target=lambda: (cached_prepared(cfg, tmp_path, progress=False), done.set()))
        reader.start()
        assert not done.wait(0.5)       # held elsewhere: it waits
    assert done.wait(30)                # released: it reads
    reader.join()


def test_a_read_only_cache_is_read_without_a_lock(tmp_path, monkeypatch):
    """A cache the process may not write (a prebuilt one shared read-only) is read as it is: no
    lock file is made there. (Permissions are pretended: the tests may run as root.)"""
    from oneranker import data

    cfg = tiny_config()
    data.cached_prepared(cfg, tmp_path, progress=False)
    folder = cache.dataset_folder(cfg, tmp_path)
    (folder.parent / f".{folder.name}.lock").unlink()
    writable = data.os.access
    monkeypatch.setattr(data.os, "access", lambda p, mode: False if mode == data.os.W_OK else writable(p, mode))

    def no_lock(path):
        raise AssertionError(f"a lock was made in a read-only cache: {path}")

    monkeypatch.setattr(data, "FileLock", no_lock)
    assert len(data.cached_prepared(cfg, tmp_path, progress=False).requests["train"]) > 0
    assert not (folder.parent / f".{folder.name}.lock").exists()


def test_atomic_save_leaves_nothing_behind_on_failure(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    target = tmp_path / "x.pt"
    cache.atomic_save({"a": 1}, target)
    with pytest.raises(RuntimeError):
        cache.atomic_save({"a": Unpicklable()}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]
    assert torch.load(target, weights_only=True) == {"a": 1}


def test_a_good_cached_model_loads_without_a_warning(tmp_path, tiny_prepared):
    cfg = tiny_config(**{"train.epochs": 1})
    first, history = train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        again, history2 = train_or_load(cfg, tiny_prepared, tmp_path, device="cpu", progress=False)
    assert _same(_weights(first), _weights(again)) and history2.epochs == history.epochs


def test_atomic_write_text_replaces_whole_and_cleans_up(tmp_path):
    target = tmp_path / "record.json"
    cache.atomic_write_text(target, "one")
    cache.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_text("x")      # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        cache.atomic_write_text(tmp_path / "dir", "three")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "record.json"]


def _package_imports(start: str, stop: frozenset[str] = frozenset()) -> set[str]:
    """Every package module that ``start`` imports, directly or through each other (itself
    included), not following the modules of ``stop``."""
    import ast

    root = Path(cache.__file__).parent
    deps, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in deps or name in stop:
            continue
        deps.add(name)
        path = root / name / "__init__.py" if (root / name).is_dir() else root / f"{name}.py"
        files = sorted((root / name).glob("*.py")) if (root / name).is_dir() else [path]
        for f in files:
            for node in ast.walk(ast.parse(f.read_text())):
                # relative to the package root: level 1 from a root module, level 2 from a subpackage
                # (level 1 there is the subpackage itself, hashed whole)
                if isinstance(node, ast.ImportFrom) and node.level == (2 if f.parent != root else 1):
                    tops = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                    todo += [t for t in tops if (root / f"{t}.py").exists() or (root / t).is_dir()]
    return deps - {"cache"}          # the keys themselves


def test_the_code_version_covers_every_module_a_model_depends_on():
    """Every package module that train, losses, model or data import (directly or through each
    other) is hashed into the model key: otherwise a change there would serve stale models."""
    deps = _package_imports("train")
    assert deps <= set(cache.MODEL_CODE), sorted(deps - set(cache.MODEL_CODE))


def test_the_evaluation_code_version_covers_what_turns_models_into_numbers():
    """What the studies' tables are computed with (evaluation, references, tables of CIs, the
    named variants, a study's rows) and all they import is in the model or the result code
    version, or computes no number (cache.ORCHESTRATION); the three do not overlap, and the
    record's provenance names both versions."""
    from oneranker import reproduce

    covered = set(cache.MODEL_CODE) | set(cache.RESULT_CODE) | set(cache.ORCHESTRATION)
    for start in ("evaluate", "reference", "tables", "studies", "study"):   # study: what keys the results cache
        deps = _package_imports(start)
        assert deps <= covered, (start, sorted(deps - covered))
    assert not set(cache.MODEL_CODE) & set(cache.EVALUATION_CODE)
    assert not (set(cache.MODEL_CODE) | set(cache.EVALUATION_CODE)) & set(cache.ORCHESTRATION)
    assert reproduce.provenance()["evaluation_code"] == cache.code_version(cache.EVALUATION_CODE)


def test_results_brought_in_are_counted_by_the_code_they_were_made_under(tmp_path):
    """cache.asked_under_today and scripts/results_in_check.py, hand-made records: two made under
    today's model and result code, one under an older model code; a cache of only older records
    is refused (a sitting on it would train every model again), with the reason in its line."""
    from oneranker.cache import MODEL_CODE, RESULT_CODE, code_version

    asked = tmp_path / "results" / "asked"
    asked.mkdir(parents=True)
    today = f"{code_version(MODEL_CODE)}-{code_version(RESULT_CODE)}"
    for name in (f"aaa-{today}.json", f"bbb-{today}.json", f"ccc-228471b4-{code_version(RESULT_CODE)}.json"):
        (asked / name).write_text("[]")
    assert cache.asked_under_today(tmp_path) == (2, 1)

    check = load_tool("scripts/results_in_check.py")
    ok, line = check.verdict(tmp_path)
    assert ok and line.endswith("2 models' records under today's model code "
                                f"{code_version(MODEL_CODE)}, result code {code_version(RESULT_CODE)}; 1 under other code")
    for name in ("aaa", "bbb"):
        (asked / f"{name}-{today}.json").unlink()
    ok, line = check.verdict(tmp_path)
    assert not ok and "0 models' records under today's" in line and "every model would train again" in line
    assert cache.asked_under_today(tmp_path / "empty") == (0, 0)


def test_a_record_of_asked_results_names_the_code_it_was_made_under(tmp_path):
    """cache.asked_codes reads back what cache._asked_file writes: the model code after the
    config's hash, the result code last (a real-data model's dataset fingerprint between them is
    neither); a name of another form is refused, not misread."""
    from oneranker.cache import MODEL_CODE, RESULT_CODE, _asked_file, code_version

    cfg = tiny_config()
    assert cache.asked_codes(_asked_file(cfg, tmp_path).name) == (code_version(MODEL_CODE), code_version(RESULT_CODE))
    assert cache.asked_codes("results/asked/c3913e2758c6-dd68b6d1-ab12cd34-7d801d10.json") == ("dd68b6d1", "7d801d10")
    with pytest.raises(ValueError, match="not a record of asked results"):
        cache.asked_codes("results/asked/")


ROOT = Path(cache.__file__).parent


def _keys(cfg, tmp_path) -> dict[str, str]:
    return {"data": cache.dataset_folder(cfg, tmp_path).name,
            "model": cache.model_folder(cfg, tmp_path).name,
            "result": cache.result_path("lists", [cfg], {"n": 1}, tmp_path).name,
            "asked": cache._asked_file(cfg, tmp_path).name}


ALL = {"data", "model", "result", "asked"}
MODEL = {"model", "result", "asked"}      # a model key is part of its results' keys and records
RESULT = {"result", "asked"}
# Which keys an edit of a file's code must move, by hand from cache.py's docstring: the code that
# simulates and prepares data keys the datasets (and so the models and results); the code that
# trains keys models and results; the code that evaluates keys results only; the profile tables of
# config.py key nothing (their values reach a model through the config hash).
EDITS = [
    ("world.py", "code", ALL), ("data.py", "code", ALL), ("semantic_ids.py", "code", ALL),
    ("loaders/movielens.py", "code", ALL), ("config.py", "code", ALL),
    ("config.py", "profile table", set()),
    ("model.py", "code", MODEL), ("train.py", "code", MODEL), ("losses.py", "code", MODEL),
    ("stacked.py", "code", MODEL),
    ("study.py", "code", RESULT), ("evaluate.py", "code", RESULT), ("metrics.py", "code", RESULT),
    ("parallel.py", "code", set()),
]


@pytest.mark.parametrize("rel, what, moved", EDITS)
def test_a_code_edit_moves_exactly_the_keys_it_decides(monkeypatch, tmp_path, rel, what, moved):
    cfg = tiny_config()
    before = _keys(cfg, tmp_path)
    target = (ROOT / rel).read_text()
    if what == "code":
        edit = lambda s: s + "\nEDITED_BY_THE_TEST = 1\n"                           # noqa: E731
    else:
        assert '"n_users": 300' in target
        edit = lambda s: s.replace('"n_users": 300', '"n_users": 301')              # noqa: E731
    real = cache.code_text
    monkeypatch.setattr(cache, "code_text", lambda s, names=(): real(edit(s) if s == target else s, names))
    cache.code_version.cache_clear()
    try:
        after = _keys(cfg, tmp_path)
    finally:
        monkeypatch.undo()
        cache.code_version.cache_clear()
    assert {k for k in before if before[k] != after[k]} == moved


def test_a_result_key_names_its_kind_models_and_arguments(tmp_path):
    a, b = tiny_config(seed=0), tiny_config(seed=1)
    key = cache.result_path("lists", [a], {"n": 1}, tmp_path)
    assert key == cache.result_path("lists", [a], {"n": 1}, tmp_path)
    others = [cache.result_path("lists", [a], {"n": 2}, tmp_path), cache.result_path("grid", [a], {"n": 1}, tmp_path),
              cache.result_path("lists", [b], {"n": 1}, tmp_path), cache.result_path("lists", [a, b], {"n": 1}, tmp_path)]
    assert len({key, *others}) == 5


def test_a_dataset_key_follows_the_seed_and_the_data_sections_only(tmp_path):
    base = tiny_config()
    folder = lambda cfg: cache.dataset_folder(cfg, tmp_path)        # noqa: E731
    for changed in (tiny_config(seed=1), tiny_config(**{"world.n_users": 301}),
                    tiny_config(**{"data.max_history_len": 23}), tiny_config(**{"semantic_ids.codebook_size": 5})):
        assert folder(changed) != folder(base)
    for same in (tiny_config(**{"model.d_model": 32}), tiny_config(**{"train.lr": 1e-4})):
        assert folder(same) == folder(base) and cache.model_folder(same, tmp_path) != cache.model_folder(base, tmp_path)


def test_a_failed_text_write_keeps_the_old_file_whole(tmp_path):
    """A write that fails half-way (here: text that cannot be encoded) leaves the file as it was
    and no temporary beside it (what a kill mid-write would do to a direct write)."""
    target = tmp_path / "record.json"
    cache.atomic_write_text(target, '["a"]')
    with pytest.raises(UnicodeEncodeError):
        cache.atomic_write_text(target, '["b\ud800"]')
    assert target.read_text() == '["a"]'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_the_data_code_version_covers_every_module_a_dataset_depends_on():
    """What data and world import (cache.py, the keys themselves, not followed) keys the datasets:
    otherwise a change there would serve a stale prepared dataset."""
    for start in ("data", "world"):
        deps = _package_imports(start, stop=frozenset({"cache"}))
        assert deps <= set(cache.DATA_CODE), (start, sorted(deps - set(cache.DATA_CODE)))
