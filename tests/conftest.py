"""Shared fixtures: a tiny simulated dataset and a tiny model config (fast on 2 CPU cores),
stand-ins for the training pool (a pool run in this process, training on a pretend GPU), and the
one loader of a command-line script or benchmark as a module (load_tool)."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from oneranker.config import make_config
from oneranker.data import build_prepared
from oneranker.world import World

ROOT = Path(__file__).resolve().parents[1]


def load_tool(relative_path: str) -> types.ModuleType:
    """The script or benchmark at ``relative_path`` (from the project root, e.g.
    ``"scripts/book.py"``, ``"benchmarks/model.py"``) as a module, loaded once per test session.

    Why one home: the tests once loaded these files three ways (importlib with or without
    ``sys.modules``, ``import`` after a ``sys.path.insert`` removed again or left in place), so a
    script could be two modules at once and a test's ``sys.path`` hinge on which test ran before.
    Here the module is named by the file's stem and registered in ``sys.modules`` before it runs:
    a dataclass looks its module up there, and a script imported by another (render_readme imports
    benchmark_table) is then the same module the tests hold. The file's folder is on ``sys.path``
    only while the module runs, for the siblings it imports (``common``, ``shared_results``); the
    entry added here is removed afterwards (a script may add its own folder itself: that stays).
    The module is shared, so a test changes its attributes through ``monkeypatch`` only."""
    path = (ROOT / relative_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"load_tool: no script or benchmark {relative_path!r} (looked for {path})")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        where = getattr(loaded, "__file__", None)
        if where is not None and Path(where).resolve() == path:
            return loaded
        raise ImportError(f"load_tool: the module name {name!r} of {relative_path} is taken by {where or loaded!r}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    entry = str(path.parent)          # this very object: removed by identity, not by an equal entry
    sys.path.insert(0, entry)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)   # no half-run module for the next caller
        raise
    finally:
        for i, p in enumerate(sys.path):
            if p is entry:
                del sys.path[i]
                break
    return module


def stale_rendered_document(tmp_path: Path, monkeypatch) -> tuple[types.ModuleType, Path, str]:
    """scripts/render_readme.py pointed at one document, ``tmp_path/doc.md``, whose one block
    ``x`` is stale (it reads "old"; its renderer writes "new"): the module, the document and its
    stale text. Shared by the tests of ``--check`` and of an interrupted write."""
    render_readme = load_tool("scripts/render_readme.py")
    doc = tmp_path / "doc.md"
    stale = "a\n<!-- BEGIN rendered: x -->\nold\n<!-- END rendered: x -->\nb\n"
    doc.write_text(stale)
    monkeypatch.setattr(render_readme, "ROOT", tmp_path)
    monkeypatch.setattr(render_readme, "document_blocks", lambda: {"doc.md": {"x": lambda: "new\n"}})
    return render_readme, doc, stale


# The unit tests' models: the `smoke` profile (a toy market and model) with what the tests need
# on top of it: no dropout (parity tests compare outputs exactly), the SDPA kernel (FlexAttention
# has no backward on the CPU), epochs of several small steps and few random negatives.
PROFILE = "smoke"
TINY = {"model.dropout": 0.0, "model.attention": "sdpa", "train.batch_size": 32, "train.max_train_requests": 128,
        "train.n_random_negatives": 4}


def tiny_config(**overrides):
    return make_config(PROFILE, **{**TINY, **overrides})


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("tiny") / "ds"
    prepared = build_prepared(World(cfg.world, cfg.seed).simulate(), cfg)
    prepared.save(out)
    from oneranker.data import load_prepared
    return load_prepared(out)


class InProcessPool:
    """A stand-in for oneranker.pool's process pool: runs each job at once, in this process (so a
    test sees what the pool would submit, without worker processes). ``log``, when given, records
    the number of workers each pool was asked for."""

    def __init__(self, log: list | None = None, workers: int | None = None):
        if log is not None:
            log.append(workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future

        f = Future()
        f.set_result(fn(*args))
        return f


def pretend_cuda_training(monkeypatch, record) -> torch.device:
    """oneranker.pool on a pretend GPU with training replaced by ``record(cfg, device)`` (called in
    the process that would train), its datasets and cache stood in: what a run hands each model
    it trains, without a GPU or any training. Returns the pretend device."""
    from oneranker import pool

    cuda = torch.device("cuda")

    def recorder(cfg, prepared, cache_dir, device, progress):
        record(cfg, device)
        return "model", "history"

    monkeypatch.setattr(pool, "train_or_load", recorder)
    monkeypatch.setattr(pool, "cached_prepared", lambda cfg, cache_dir, progress=True: "prepared")
    monkeypatch.setattr(pool, "resolve_device", lambda device: cuda)
    monkeypatch.setattr(pool, "prepare_all", lambda cfgs, cache_dir, workers=None: 0)
    monkeypatch.setattr(pool, "has_model", lambda cfg, cache_dir: False)
    return cuda
