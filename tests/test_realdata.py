"""Real-data evaluation: held-out positives, full-ranking metrics by hand, a cache keyed by the
dataset, the train/evaluate CLI on fixture MovieLens files, and real ml-100k when present."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oneranker.__main__ import main
from oneranker import realdata
from oneranker.data import load_prepared
from oneranker.realdata import dataset_fingerprint, heldout_positives, real_metrics
from test_loaders import write_ml100k

SMALL = ["--profile", "smoke", "--set", "semantic_ids.codebook_size=2", "--set", "train.batch_size=4",
         "--set", "train.eval_requests=0"]
ML100K = Path(os.environ.get("ONERANKER_ML100K", Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"))


def _prepare(tmp_path: Path, name: str = "ds", seed: int = 0) -> Path:
    (tmp_path / f"raw-{name}").mkdir()
    src = write_ml100k(tmp_path / f"raw-{name}")
    out = tmp_path / name
    assert main(["prepare", "--source", "movielens", "--path", str(src), "--out", str(out), "--seed", str(seed),
                 "--set", "semantic_ids.codebook_size=2"]) == 0
    return out


def test_real_metrics_by_hand():
    ranked = np.array([[3, 1, 2], [5, 6, 7]])
    positives = np.array([1, 9])
    m = real_metrics(np.pad(ranked, ((0, 0), (0, 17)), constant_values=0) + 0, positives, ks=(10,))
    assert m["HR@10"] == pytest.approx(0.5)                       # found at rank 2 in row 0 only
    assert m["NDCG@10"] == pytest.approx(0.5 / np.log2(3))        # 1 / log2(2 + 1), averaged over 2 rows
    with pytest.raises(ValueError, match="HR@20"):
        real_metrics(ranked, positives, ks=(20,))


def test_heldout_positive_is_each_users_last_rated_movie(tmp_path):
    from oneranker.data import load_prepared

    prepared = load_prepared(_prepare(tmp_path))
    rows, positives = heldout_positives(prepared)
    test = prepared.requests["test"]
    assert len(rows) == len(test) == 3                           # users 2, 4, 7 (user 9 has 2 ratings)
    for r, p in zip(rows, positives):
        items, clicks = test[int(r)]["imp_item"], test[int(r)]["imp_click"]
        assert p == items[int(np.argmax(clicks))] and sum(clicks) == 1


def test_fingerprint_tells_two_preparations_apart(tmp_path):
    a, b = _prepare(tmp_path, "a", seed=0), _prepare(tmp_path, "b", seed=1)   # other bids and slates
    assert dataset_fingerprint(a) == dataset_fingerprint(a)
    assert dataset_fingerprint(a) != dataset_fingerprint(b)
    # same shapes, same meta.json, other content: two ratings swap their movies
    raw = tmp_path / "raw-swapped"
    raw.mkdir()
    write_ml100k(raw)
    lines = (raw / "u.data").read_text().splitlines()
    u0, m0, r0, t0 = lines[0].split("\t")
    u1, m1, r1, t1 = lines[1].split("\t")
    lines[0], lines[1] = "\t".join((u0, m1, r0, t0)), "\t".join((u1, m0, r1, t1))
    (raw / "u.data").write_text("\n".join(lines) + "\n")
    c = tmp_path / "swapped"
    assert main(["prepare", "--source", "movielens", "--path", str(raw), "--out", str(c),
                 "--set", "semantic_ids.codebook_size=2"]) == 0
    assert (a / "meta.json").read_bytes() == (c / "meta.json").read_bytes()
    assert dataset_fingerprint(a) != dataset_fingerprint(c)


def test_train_and_evaluate_cli_on_real_logs(tmp_path, capsys):
    data, cache = _prepare(tmp_path), tmp_path / "cache"
    args = ["--data", str(data), "--cache", str(cache), "--device", "cpu", *SMALL]
    assert main(["evaluate", *args]) == 2                         # nothing trained yet: a clear error
    assert "train it first" in capsys.readouterr().err
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    assert "HR@10" in out and "popularity" in out and f"of dataset {dataset_fingerprint(data)}" in out
    assert main(["evaluate", *args]) == 0
    assert "model" in capsys.readouterr().out
    # a damaged model is set aside and named; evaluate refuses instead of training a new one
    from oneranker.cache import CacheWarning
    final = next((cache / "models").glob("*/final.pt"))
    final.write_bytes(b"not a checkpoint")
    with pytest.warns(CacheWarning, match="final.pt is damaged"):
        assert main(["evaluate", *args]) == 2
    assert "no usable trained model" in capsys.readouterr().err
    assert not final.exists() and final.with_name("final.pt.damaged").exists()
    # a re-prepared dataset misses the cache instead of loading the old model
    other = _prepare(tmp_path, "other", seed=1)
    assert main(["evaluate", "--data", str(other), "--cache", str(cache), "--device", "cpu", *SMALL]) == 2
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--cache", str(cache), *SMALL]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.skipif(not (ML100K / "u.data").is_file(),
                    reason=f"real MovieLens-100k not found at {ML100K}: get ml-100k.zip from "
                           "https://grouplens.org/datasets/movielens/100k/ and set ONERANKER_ML100K")
def test_real_movielens_100k_protocol(tmp_path):
    from oneranker.data import build_prepared, load_logs
    from oneranker.config import make_config
    from oneranker.reference import popularity_list

    cfg = make_config("quick")
    prepared = build_prepared(load_logs("movielens", cfg, ML100K, progress=False), cfg)
    assert (prepared.meta["n_users"], prepared.meta["n_items"]) == (943, 1682)
    rows, positives = heldout_positives(prepared)
    assert len(rows) == 943                                       # leave-last-out: one test request per user
    pop = real_metrics(popularity_list(prepared, len(rows), 20), positives)
    assert 0.02 < pop["HR@10"] < 0.10                             # popularity on ml-100k, seen items kept


def _rows(hr: dict[str, list[float]], curves: dict[str, list[float]] | None = None):
    import json

    import pandas as pd
    rows = []
    for name, values in hr.items():
        for seed, v in enumerate(values):
            curve = [{"epoch": i + 1, "valid_loss": x} for i, x in enumerate((curves or {}).get(name, []))]
            rows.append({"list": name, "seed": seed, "HR@10": v, "curve": json.dumps(curve)})
    return pd.DataFrame(rows)


def test_verdicts_by_hand():
    from oneranker.realdata import verdicts

    res = _rows({"popularity": [0.1, 0.1, 0.1], "a": [0.30, 0.31, 0.29], "b": [0.20, 0.21, 0.19],
                 "c": [0.25, 0.35, 0.15]})
    lines = verdicts(res, at_least=[("a", "b"), ("b", "a"), ("c", "a")], models=["a", "b"])
    assert "a minus b: HR@10 +0.1000 ± 0.0000 (holds)" in lines[0]
    assert "(missed)" in lines[1]
    assert "not separated: the CI crosses zero, mean below" in lines[2]     # c - a: -0.05, +0.04, -0.14
    assert "a: 3.00 ± 0.25 x popularity's HR@10 (target 2.5x: met)" in lines[3]
    assert "(target 2.5x: missed)" in lines[4]


def test_stopping_table_by_hand():
    from oneranker.realdata import stopping_table

    curves = {"m": [2.0, 1.5, 1.2, 1.1, 1.05, 1.0, 0.99]}
    table = stopping_table(_rows({"m": [0.1]}, curves), ["m"], cap=7)
    row = table.loc[("m", 0)]
    assert row["epochs"] == 7 and row["ended by"] == "the 7-epoch cap"
    assert row["last 5 epochs: change of validation loss"] == f"{100 * (0.99 / 1.5 - 1):+.2f}%"
    short = stopping_table(_rows({"m": [0.1]}, {"m": [2.0, 1.5]}), ["m"], cap=7).loc[("m", 0)]
    assert short["ended by"] == "early stopping" and short["last 5 epochs: change of validation loss"] == "(fewer than 6 epochs)"


def test_two_raw_folders_of_one_source_get_two_prepared_folders(tmp_path, monkeypatch):
    """data.cached_real_folder keys by config, source and code only; realdata.prepared_folder
    adds the raw files' fingerprint, so ml-1m is never served ml-100k's preparation."""
    from oneranker import data, realdata
    from oneranker.config import make_config

    calls = []
    monkeypatch.setattr(data, "cached_real_folder", lambda cfg, source, raw, cache_dir: calls.append(cache_dir) or cache_dir)
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in ((a, "1\t2\t5\t0\n"), (b, "1\t3\t4\t0\n")):
        folder.mkdir()
        (folder / "u.data").write_text(text)
    cfg = make_config("smoke")
    first = realdata.prepared_folder(cfg, "movielens", a, tmp_path / "cache")
    assert realdata.prepared_folder(cfg, "movielens", b, tmp_path / "cache") != first
    assert realdata.prepared_folder(cfg, "movielens", a, tmp_path / "cache") == first


def test_evaluate_real_serves_the_ranked_list_and_names_the_generated_one(tmp_path, monkeypatch):
    prepared = load_prepared(_prepare(tmp_path))
    rows, positives = realdata.heldout_positives(prepared)
    others = [[i for i in range(8) if i != p] for p in positives]
    ranked = np.array([[p] + o[:7] for p, o in zip(positives, others)])      # positive first: HR@1 = 1
    generated = np.array([o[:7] + [p] for p, o in zip(positives, others)])   # positive last: HR@1 = 0
    monkeypatch.setattr(realdata, "REAL_KS", (1,))
    monkeypatch.setattr(realdata, "model_rankings",
                        lambda model, cfg, prep, r, n, device="cpu": {"ranked": ranked, "generated": generated})
    out = {r["list"]: r for r in realdata.evaluate_real({"m": (None, None)}, prepared, n=20)}
    assert set(out) == {"random", "popularity", "m", "m (generated)"}
    assert out["m"]["HR@1"] == 1.0 and out["m"]["NDCG@1"] == 1.0
    assert out["m (generated)"]["HR@1"] == 0.0
    assert out["m"]["requests"] == 3


def test_summary_pairs_each_seed_with_its_own_popularity():
    rows = []
    for seed, (pop, model) in enumerate([(0.1, 0.2), (0.2, 0.4), (0.4, 0.8)]):
        for name, hr in (("popularity", pop), ("m", model)):
            rows.append({"list": name, "seed": seed, "HR@10": hr, "NDCG@10": hr / 2, "HR@20": hr,
                         "epochs": np.nan if name == "popularity" else 3, "train_seconds": np.nan if name == "popularity" else 10})
    # shuffled rows: the pairing is by seed, not by row order
    table = realdata.summary(pd.DataFrame(rows).sample(frac=1, random_state=1))
    assert table.loc["m", "HR@10 / popularity"] == "2.00 ± 0.00"      # 0.2/0.1 = 0.4/0.2 = 0.8/0.4 = 2
    assert table.loc["popularity", "HR@10 / popularity"] == "1.00 ± 0.00"
    assert table.loc["m", "epochs"] == "3.0" and table.loc["m", "seeds"] == 3
