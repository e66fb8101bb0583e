"""Bad parameters and files refused before any work, by the command line and the scripts: a
clear message naming the problem and a non-zero exit, no training started, nothing written; an
interrupted write leaves no truncated document. (Other refusals live beside the code they guard:
tests/test_data.py, test_realdata.py, test_study.py, test_scripts.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import load_tool, stale_rendered_document
from oneranker.__main__ import main


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the bad argument was refused")


# ---------------------------------------------------------------- python -m oneranker
@pytest.mark.parametrize("workers", ["0", "-1"])
def test_pretrain_refuses_workers_below_one(tmp_path, monkeypatch, capsys, workers):
    import oneranker.pool as pool
    monkeypatch.setattr(pool, "train_notebook_models", _no_work)
    rc = main(["pretrain", "--profile", "smoke", "--workers", workers, "--seeds", "0", "1",
               "--device", "cpu", "--cache", str(tmp_path / "cache")])
    assert rc == 2
    assert "--workers" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_reproduce_refuses_workers_below_one(monkeypatch, capsys):
    import oneranker.reproduce as reproduce
    monkeypatch.setattr(reproduce, "run_notebooks", _no_work)
    assert main(["reproduce", "--profile", "smoke", "--workers", "-1", "--device", "cpu"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_reproduce_refuses_an_empty_notebook_list(monkeypatch, capsys):
    import oneranker.reproduce as reproduce
    monkeypatch.setattr(reproduce, "run_notebooks", _no_work)   # before: ran the whole series
    assert main(["reproduce", "--profile", "smoke", "--device", "cpu", "--notebooks"]) == 2
    assert "--notebooks" in capsys.readouterr().err


@pytest.mark.parametrize("n", ["-1"])
def test_train_refuses_eval_requests_below_one(tmp_path, monkeypatch, capsys, n):
    import oneranker.data as data
    monkeypatch.setattr(data, "cached_prepared", _no_work)      # before: trained, then IndexError
    rc = main(["train", "--profile", "smoke", "--device", "cpu", "--eval-requests", n,
               "--cache", str(tmp_path / "cache")])
    assert rc == 2
    assert "--eval-requests" in capsys.readouterr().err


def test_prepare_refuses_an_out_it_cannot_create(tmp_path, monkeypatch, capsys):
    import oneranker.data as data
    monkeypatch.setattr(data, "load_logs", _no_work)            # before: built the dataset, then FileNotFoundError
    (tmp_path / "a_file").write_text("x")
    rc = main(["prepare", "--source", "adworld", "--profile", "smoke", "--out", str(tmp_path / "a_file" / "out")])
    assert rc == 2
    assert "--out" in capsys.readouterr().err


def _damaged_prepared(folder: Path) -> Path:
    from oneranker.data import SCHEMA_VERSION
    for name in ("requests", "users", "items"):
        (folder / name).mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    return folder


def test_evaluate_names_a_damaged_data_folder(tmp_path, capsys):
    folder = _damaged_prepared(tmp_path / "prepared")
    rc = main(["evaluate", "--profile", "smoke", "--device", "cpu", "--data", str(folder),
               "--cache", str(tmp_path / "cache")])
    assert rc == 2
    assert str(folder) in capsys.readouterr().err


def test_train_sets_a_damaged_cached_dataset_aside_and_builds_it_again(tmp_path, capsys):
    from oneranker.cache import CacheWarning, dataset_folder
    from oneranker.config import make_config
    folder = _damaged_prepared(dataset_folder(make_config("smoke"), tmp_path / "cache"))
    with pytest.warns(CacheWarning, match=f"{folder.name} is damaged"):
        rc = main(["train", "--profile", "smoke", "--device", "cpu", "--cache", str(tmp_path / "cache")])
    assert rc == 0
    assert (folder.parent / f"{folder.name}.damaged").is_dir() and (folder / "meta.json").exists()


# ---------------------------------------------------------------- scripts
def _run_script(module, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    with pytest.raises(SystemExit) as info:
        module.main()
    return info.value.code


@pytest.mark.parametrize("argv", [
    ["--notebooks", "05", "--profile", "nope"],
    ["--notebooks", "05", "--profile", "smoke", "--seeds", "1", "1"],
    ["--notebooks", "05", "--profile", "smoke", "--cache", "/nonexistent_cache_dir"],
])
def test_paper_histories_refuses_bad_arguments(tmp_path, monkeypatch, capsys, argv):
    ph = load_tool("scripts/paper_histories.py")
    monkeypatch.setattr(ph, "histories", _no_work)
    if "--cache" not in argv:
        (tmp_path / "cache" / "models").mkdir(parents=True)
        argv = [*argv, "--cache", str(tmp_path / "cache")]
    code = _run_script(ph, [*argv, "--out", str(tmp_path / "h.jsonl")], monkeypatch)
    assert code == 2
    assert not (tmp_path / "h.jsonl").exists()


@pytest.mark.parametrize("content", [None, '{"bad": 1\n'])
def test_paper_histories_summary_of_a_bad_file(tmp_path, monkeypatch, content):
    ph = load_tool("scripts/paper_histories.py")
    path = tmp_path / "h.jsonl"
    if content is not None:
        path.write_text(content)
    assert _run_script(ph, ["--summary", str(path)], monkeypatch) == 2


@pytest.mark.parametrize("argv", [["--profile", "nope"], ["--profile", "smoke", "--eval-requests", "-1"]])
def test_multi_gpu_check_refuses_bad_arguments(tmp_path, monkeypatch, argv):
    mg = load_tool("scripts/multi_gpu_check.py")
    import oneranker.data as data
    monkeypatch.setattr(data, "cached_prepared", _no_work)
    code = _run_script(mg, ["--device", "cpu", "--gpus", "2", "--steps", "3", "--warmup", "1",
                            "--cache", str(tmp_path / "cache"), *argv], monkeypatch)
    assert isinstance(code, str) and code   # a message, not a traceback


@pytest.mark.parametrize("sittings", [["07"], ["05:1,1"], [""], ["05 05:0"], ["04", "5"], ["05:x"]])
def test_rehearse_sittings_checks_every_entry_first(monkeypatch, sittings):
    rs = load_tool("scripts/rehearse_sittings.py")
    monkeypatch.setattr(rs, "rehearse", _no_work)     # before: sittings ran until paper.sh refused one
    assert _run_script(rs, ["--sittings", *sittings], monkeypatch) == 2


def test_render_readme_never_leaves_a_truncated_document(tmp_path, monkeypatch):
    """A document with a stale block, the run killed between writing the new text and the
    rename: the document keeps its old text whole and no temporary is left beside it."""
    import os

    rr, doc, stale = stale_rendered_document(tmp_path, monkeypatch)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(sys, "argv", ["render_readme.py"])
    with pytest.raises(KeyboardInterrupt):
        rr.main()
    monkeypatch.undo()
    assert doc.read_text() == stale
    assert [p.name for p in tmp_path.iterdir()] == ["doc.md"]


def test_rehearse_sittings_lets_the_plans_entries_through():
    """The plan's own sittings pass paper.sh's checks (CHECK_ONLY=1 stops it there, before its
    setup copies the tree anywhere)."""
    rs = load_tool("scripts/rehearse_sittings.py")
    rs.check_sittings(rs.PLAN)
    rs.check_sittings(["04 05:0", "05 06:2"])
