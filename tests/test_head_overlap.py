"""Top-k overlap of two lists and of a model's heads; what ended each training run."""

import itertools

import numpy as np
import pandas as pd
import pytest

from conftest import TINY
from oneranker import experiments, metrics


def test_list_overlap_by_hand():
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert metrics.list_overlap(a, a) == 1.0                       # a list with itself
    assert metrics.list_overlap(a, a + 100) == 0.0                 # disjoint lists
    b = np.array([[4, 3, 9, 10], [8, 7, 6, 5]])                         # 2 of 4, then 4 of 4 (order ignored)
    assert metrics.list_overlap(a, b) == pytest.approx((0.5 + 1.0) / 2)
    assert metrics.list_overlap(a, b, k=2) == pytest.approx((0 / 2 + 0 / 2) / 2)


def test_head_overlap_of_a_tiny_model(tmp_path):
    out = experiments.head_overlap_by_seed("quick", TINY, (0,), tmp_path, device="cpu", k=5, eval_requests=20)
    heads = ["head: click", "head: conversion", "head: impression", "head: value"]
    assert sorted(out.pair) == sorted(f"{a} / {b}" for a, b in itertools.combinations(heads, 2))
    assert out.overlap.between(0, 1).all() and (out.seed == 0).all()


def test_stopping_summary_by_hand():
    curves = pd.DataFrame({"variant": ["a"] * 5 + ["b"] * 4, "seed": [0] * 9,
                           "epoch": [1, 2, 3, 4, 5, 1, 2, 3, 4],
                           "valid_loss": [3.0, 2.0, 1.9, 1.8, 1.7, 3.0, 2.0, 2.1, 2.2],
                           "stopped_early": [False] * 5 + [True] * 4})       # as the trainer recorded it
    table = experiments.stopping_summary(curves, cap=5)
    assert table.loc[("a", 0)].tolist() == [5, 5, "the 5-epoch cap"]     # still improving at the cap
    assert table.loc[("b", 0)].tolist() == [4, 2, "early stopping"]      # two epochs without improvement
