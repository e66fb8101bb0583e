"""The co-occurrence reference's inputs and counts: the vectorised functions of
``oneranker.reference`` against the per-request loops they replaced (kept in
``tests/test_reference.py`` as their parity reference), side by side on one training split.
Every notebook grid computes the reference rows of each dataset, and a paper-profile training
split holds about 830k requests, so these loops were a CPU-bound part of the paper notebooks'
evaluation cells.

    python benchmarks/references.py --profile quick --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from common import best_of, header  # noqa: E402
from test_reference import _counts_by_loop, _sessions_by_loop  # noqa: E402

from oneranker import reference  # noqa: E402
from oneranker.config import make_config  # noqa: E402
from oneranker.data import _csr_numpy, cached_prepared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(header(f"profile {args.profile}, seed {args.seed}"), flush=True)
    prepared = cached_prepared(make_config(args.profile, seed=args.seed), args.cache, progress=False)
    table = prepared.requests["train"].data
    users, ends = table.column("user").to_numpy(), table.column("hist_end").to_numpy()
    offsets, tok_type = _csr_numpy(prepared.users, "tok_type")
    _, tok_item = _csr_numpy(prepared.users, "tok_item")
    n_organic, n_items = prepared.meta["n_organic"], prepared.meta["n_items"]
    slates = reference._prepared_slates(prepared, "train", "imp_item")
    clicks = reference._prepared_slates(prepared, "train", "imp_click")
    print(f"{len(users)} training requests")
    t_loop, s_loop = best_of(lambda: _sessions_by_loop(offsets, tok_type, tok_item, users, ends, n_organic), args.repeats)
    t_vec, s_vec = best_of(lambda: reference.request_sessions(offsets, tok_type, tok_item, users, ends, n_organic),
                            args.repeats)
    same = all(np.array_equal(a, b) for a, b in zip(s_loop, s_vec)) and len(s_loop) == len(s_vec)
    print(f"sessions: per-request loop {t_loop:.3f} s, vectorised {t_vec:.3f} s, {t_loop / t_vec:.1f}x; equal: {same}")
    n_keys = max(1, n_organic)
    t_loop, (counts, pop) = best_of(lambda: _counts_by_loop(n_keys, n_items, s_vec, slates, clicks), args.repeats)
    t_vec, model = best_of(lambda: reference.CooccurrenceModel(n_keys, n_items).fit(s_vec, slates, clicks),
                            args.repeats)
    same = (model.counts != counts).nnz == 0 and np.array_equal(model.popularity, pop)
    print(f"co-occurrence counts: per-request loop {t_loop:.3f} s, vectorised {t_vec:.3f} s, "
          f"{t_loop / t_vec:.1f}x; equal: {same}")


if __name__ == "__main__":
    main()
