"""Logs -> datasets on disk -> batches; the prepare command and its failure modes."""

import json

import numpy as np
import pytest
import torch

from oneranker.__main__ import main
from oneranker.config import make_config
from oneranker.data import Collator, build_prepared, load_prepared, split_requests
from oneranker.loaders import load_movielens
from oneranker.schema import AD, CLICK, CONTEXT, CONVERSION, USER, DataError
from oneranker.world import World
from test_loaders import write_ml100k

SMALL = {"world.n_users": 200, "world.n_items": 120, "world.n_organic": 60, "world.n_categories": 6,
         "semantic_ids.codebook_size": 4}


@pytest.fixture(scope="module")
def world_logs():
    cfg = make_config("quick", **SMALL)
    return cfg, World(cfg.world, cfg.seed).simulate()


@pytest.fixture(scope="module")
def prepared(world_logs, tmp_path_factory):
    cfg, logs = world_logs
    out = tmp_path_factory.mktemp("prep") / "ds"
    build_prepared(logs, cfg).save(out)
    return load_prepared(out)


def test_time_split_per_user(world_logs):
    _, logs = world_logs
    splits, skips = split_requests(logs)
    assert len(splits["test"]) == len(splits["valid"]) == logs.n_users
    for r_test, r_valid in zip(splits["test"][:20], splits["valid"][:20]):
        u = logs.req_user[r_test]
        mine = np.flatnonzero(logs.req_user == u)
        assert r_test == mine[-1] and r_valid == mine[-2]
        assert np.isin(mine[:-2], splits["train"]).sum() + skips["requests_with_empty_history"] >= len(mine) - 2
    # a user's first request has no history unless organic content preceded it: a counted skip
    first = np.r_[True, logs.req_user[1:] != logs.req_user[:-1]]
    assert skips["requests_with_empty_history"] == int((first & (logs.req_hist_end == 0)).sum()) > 0


def test_roundtrip_keeps_everything(world_logs, prepared):
    cfg, logs = world_logs
    assert prepared.meta["config_hash"] == cfg.data_hash()
    assert len(prepared.users) == logs.n_users and len(prepared.items) == logs.n_items
    row = prepared.requests["test"][0]
    r = row["request_id"]
    assert row["imp_item"] == list(logs.imp_item[logs.imp_offsets[r]:logs.imp_offsets[r + 1]])
    np.testing.assert_allclose(row["imp_bid"], logs.item_bid[row["imp_item"]])
    codes = prepared.sid_codes
    assert len(np.unique(codes, axis=0)) == logs.n_items


def test_collator_layout(world_logs, prepared):
    cfg, logs = world_logs
    collate = Collator(prepared, max_history_len=16)
    rows = [prepared.requests["train"][i] for i in range(5)]
    batch = collate(rows)
    P = collate.vocab.prefix_len
    assert (batch["tok_type"][:, :3] == USER).all() and (batch["tok_type"][:, 3:P] == CONTEXT).all()
    for b, row in enumerate(rows):
        u, end = row["user"], row["hist_end"]
        o = logs.stream_offsets[u]
        expect = logs.tok_item[o + max(0, end - 16): o + end]
        n = len(expect)
        assert batch["length"][b] == P + n
        np.testing.assert_array_equal(batch["tok_id"][b, P:P + n].numpy(), expect)
        assert (batch["tok_type"][b, P + n:] == 0).all()
        # the request's own slate is never part of its history
        assert not (batch["tok_type"][b, P + n:] == AD).any()
    assert batch["imp_item"].dtype == torch.int64 and batch["imp_mask"].all()
    # attribute / context ids are offset per field: every field has its own embedding rows
    assert batch["tok_id"][:, :3].max() < collate.vocab.n_user_tokens
    assert batch["tok_id"][:, 3:P].max() < collate.vocab.n_context_tokens


def test_same_seed_same_dataset_other_seed_other(tmp_path):
    cfg = make_config("quick", **SMALL)
    a = build_prepared(World(cfg.world, 0).simulate(), cfg)
    b = build_prepared(World(cfg.world, 0).simulate(), cfg)
    c = build_prepared(World(cfg.world, 1).simulate(), cfg)
    assert a.requests["train"].data.equals(b.requests["train"].data)
    assert a.items.data.equals(b.items.data)
    assert not a.requests["train"].data.equals(c.requests["train"].data)


def test_load_refuses_incomplete_or_missing(tmp_path, prepared):
    with pytest.raises(DataError, match="folder missing"):
        load_prepared(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "meta.json").write_text("{}")
    with pytest.raises(DataError, match="incomplete: missing requests, users, items"):
        load_prepared(tmp_path / "half")


def test_bad_bid_is_refused_before_writing(world_logs, tmp_path):
    cfg, logs = world_logs
    import copy
    bad = copy.copy(logs)
    bad.item_bid = logs.item_bid.copy()
    bad.item_bid[7] = np.nan
    with pytest.raises(DataError, match="item_bid must be finite and > 0; item 7"):
        build_prepared(bad, cfg)
    bad.item_bid[7] = -1.0
    with pytest.raises(DataError, match="item 7 has -1.0"):
        build_prepared(bad, cfg)


def test_prepare_cli_writes_and_refuses(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["prepare", "--source", "adworld", "--out", str(out)] + \
        [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "adworld" and meta["n_users"] == 200
    # non-empty --out without --force: refused, untouched
    assert main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    # a bad config field: refused before any work, nothing written
    out2 = tmp_path / "out2"
    assert main(["prepare", "--source", "adworld", "--out", str(out2), "--set", "world.n_userz=3"]) == 2
    assert not out2.exists()
    # a real source without --path
    assert main(["prepare", "--source", "movielens", "--out", str(out2)]) == 2
    assert "needs an existing folder" in capsys.readouterr().err
    assert not out2.exists()


def test_failure_midway_leaves_nothing(tmp_path, world_logs, monkeypatch):
    cfg, logs = world_logs
    prepared = build_prepared(logs, cfg)
    out = tmp_path / "ds"

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(type(prepared.items), "save_to_disk", boom)
    with pytest.raises(OSError):
        prepared.save(out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_train_cli_trains_caches_and_refuses_bad_devices(tmp_path, capsys):
    from conftest import PROFILE, TINY
    from oneranker.__main__ import main

    args = ["train", "--profile", PROFILE, "--cache", str(tmp_path), "--device", "cpu", "--eval-requests", "20"]
    args += [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "epoch 1:" in first and "generated" in first and "ranked" in first
    assert main(args) == 0                                   # second time: from the cache, same numbers
    assert capsys.readouterr().out == first
    assert main(["train", "--cache", str(tmp_path), "--device", "tpu"]) == 2
    assert "--device 'tpu'" in capsys.readouterr().err


def test_collator_pads_to_a_multiple_but_never_past_the_longest_example(prepared):
    rows = [prepared.requests["train"][i] for i in range(5)]
    plain = Collator(prepared, max_history_len=16)(rows)
    padded = Collator(prepared, max_history_len=16, pad_to=8)(rows)
    P = Collator(prepared, max_history_len=16).vocab.prefix_len
    L = plain["tok_type"].shape[1]
    assert padded["tok_type"].shape[1] == min(-(-L // 8) * 8, P + 16)
    assert Collator(prepared, max_history_len=16, pad_to=1000)(rows)["tok_type"].shape[1] == P + 16
    for k in plain:   # the padding is pad tokens: same lengths, same content where both have it
        a, b = plain[k], padded[k]
        assert torch.equal(a, b[:, :L] if k.startswith("tok_") else b), k
    assert (padded["tok_type"][:, L:] == 0).all()
    with pytest.raises(ValueError, match="pad_to"):
        Collator(prepared, max_history_len=16, pad_to=0)


@pytest.fixture
def ml(tmp_path):
    logs = load_movielens(write_ml100k(tmp_path), seed=0, slate_size=8)
    with pytest.warns(Warning):   # tiny catalogue: semantic IDs collide (SemanticIdWarning)
        prepared = build_prepared(logs, make_config("smoke", **{"semantic_ids.codebook_size": 2}))
    return logs, prepared


def test_collator_keeps_the_newest_history_before_the_request_and_pads_impressions(ml):
    logs, prepared = ml
    test = prepared.requests["test"]
    rows = [test[i] for i in range(3)]
    assert [r["user"] for r in rows] == [0, 1, 2] and [r["hist_end"] for r in rows] == [2, 4, 3]
    batch = Collator(prepared, max_history_len=2)(rows)
    P = batch["prefix_len"][0].item()
    # user 1 (raw 4) rated movies 10, 20, 30, 50, 70 (dense 0, 1, 2, 4, 6) with 5, 5, 4, 3, 2; the
    # test request is the rating of 70: its history is the two newest earlier ratings, 30 and 50,
    # never the oldest (0, 1) and never the request's own movie 6.
    assert batch["tok_id"][1, P:].tolist() == [2, 4]
    assert batch["tok_action"][1, P:].tolist() == [CONVERSION, CLICK]
    assert batch["tok_type"][1, P:].tolist() == [AD, AD]
    # user 0 (raw 2): 10, 50, 60 -> history of the test request (60): 10, 50 = dense 0, 4
    assert batch["tok_id"][0, P:].tolist() == [0, 4]
    # user 2 (raw 7): 10, 20, 30, 40 -> history of the test request (40): 20, 30 = dense 1, 2
    assert batch["tok_id"][2, P:].tolist() == [1, 2]
    for b in range(3):
        assert rows[b]["imp_item"][int(np.argmax(rows[b]["imp_click"]))] not in batch["tok_id"][b, P:].tolist()
    # impressions: 6, 4, 5 real slots, right padded with item -1, click/conv/position/bid 0
    assert batch["imp_mask"].tolist() == [[True] * 6, [True] * 4 + [False] * 2, [True] * 5 + [False]]
    pad = ~batch["imp_mask"]
    assert (batch["imp_item"][pad] == -1).all()
    for k in ("imp_click", "imp_conv", "imp_position", "imp_bid", "imp_price"):
        assert (batch[k][pad] == 0).all(), k
    assert batch["imp_click"].sum(1).tolist() == [1, 1, 1]
    assert batch["imp_position"][1].tolist() == [1, 2, 3, 4, 0, 0]
    # item 0 is a real ad, not padding: a slate that shows it keeps it in the mask
    row = dict(rows[1])
    row["imp_item"] = [0] + row["imp_item"][1:]
    batch = Collator(prepared, max_history_len=2)([row, rows[0]])
    assert batch["imp_mask"].tolist() == [[True] * 4 + [False] * 2, [True] * 6]


def test_split_skips_users_with_fewer_than_min_requests(ml):
    logs, _ = ml
    splits, skips = split_requests(logs, min_requests=4)      # user 0 has only 3 ratings
    assert skips["requests_of_users_with_fewer_than_4_requests"] == 3
    assert logs.req_user[splits["test"]].tolist() == [1, 2]
    assert splits["test"].tolist() == [7, 11] and splits["valid"].tolist() == [6, 10]
    # train: user 1's requests 4, 5 and user 2's request 9 (requests 3 and 8 have empty histories)
    assert splits["train"].tolist() == [4, 5, 9]
    assert skips["requests_with_empty_history"] == 2
