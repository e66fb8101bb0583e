"""Generation: merged top-K, trie-constrained beam search vs exhaustive scoring, cached K/V ranking."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_tool, tiny_config
from oneranker.data import Collator
from oneranker.generate import beam_generate, beam_search, rank_candidates, topk_candidates
from oneranker.semantic_ids import PrefixTrie
from oneranker.train import build_model


def test_topk_merges_heads_rank_by_rank_without_repeats():
    interest = torch.tensor([[[5.0, 4.0, 3.0, 0.0, 0.0]]])        # one interest head: 0, 1, 2
    value = torch.tensor([[[0.0, 0.0, 1.0, 9.0, 2.0], [0.0, 0.0, 1.0, 9.0, 2.0]]])  # value mean: 3, 4, 2
    out = topk_candidates(interest, value, n=4)
    assert out.tolist() == [[0, 3, 1, 4]]


def _random_trie(rng, n_items, digits):
    codes = set()
    while len(codes) < n_items:
        codes.add(tuple(int(rng.integers(0, k)) for k in digits))
    return np.array(sorted(codes))


def test_beam_search_equals_exhaustive_when_the_beam_covers_the_catalogue():
    rng = np.random.default_rng(0)
    digits = (4, 5, 3)
    for trial in range(5):
        codes = _random_trie(rng, 40, digits)
        trie = PrefixTrie(codes)
        tables = [torch.randn(k, 8) for k in digits]
        user = torch.randn(3, 8)
        items, scores = beam_search(user, tables, trie, beam_size=60)   # >= valid prefixes at every level
        codes_t = torch.as_tensor(codes)
        exhaustive = sum(user @ t[codes_t[:, lvl]].T for lvl, t in enumerate(tables))   # [3, n_items]
        top = exhaustive.topk(10, dim=-1)
        assert torch.equal(items[:, :10], top.indices)
        torch.testing.assert_close(scores[:, :10], top.values)


def test_beam_search_never_emits_an_invalid_code():
    rng = np.random.default_rng(1)
    codes = _random_trie(rng, 30, (6, 6, 2))
    trie = PrefixTrie(codes)
    items, _ = beam_search(torch.randn(4, 8), [torch.randn(k, 8) for k in (6, 6, 2)], trie, beam_size=5)
    assert (items >= 0).all() and (items < 30).all()
    assert all(trie.contains(codes[i]) for i in items.flatten().tolist())


def test_the_step_by_step_beam_trace_is_the_batched_search():
    """generate.beam_trace (numpy, one request, the trie's own children()) keeps the same beams
    as the batched beam_search, also when the beam is narrower than the catalogue."""
    from oneranker.generate import beam_trace

    rng = np.random.default_rng(2)
    digits = (4, 5, 3)
    codes = _random_trie(rng, 40, digits)
    trie = PrefixTrie(codes)
    tables = [torch.randn(k, 8, dtype=torch.float64) for k in digits]
    user = torch.randn(1, 8, dtype=torch.float64)
    for beam in (3, 8):
        items, scores = beam_search(user, tables, trie, beam_size=beam)
        trace = beam_trace(user[0].numpy(), [t.numpy() for t in tables], trie, beam)
        last = trace[(trace.level == len(digits)) & trace.kept]
        assert last["item"].tolist() == items[0].tolist()
        np.testing.assert_allclose(last["score"].to_numpy(), scores[0].numpy(), rtol=1e-5)   # beam_search sums in float32
        # every extension the trace considered is a valid prefix: the trie's children only
        assert all(trie.is_prefix((*p, d)) for p, d in zip(trace.prefix, trace.digit))
        assert trace.groupby("level").kept.sum().tolist() == [min(beam, len(trie.children(()))), beam, beam]


def test_cached_kv_ranking_equals_recomputing(tiny_prepared):
    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    batch = Collator(tiny_prepared, cfg.data.max_history_len)([tiny_prepared.requests["test"][i] for i in range(4)])
    cands = torch.randint(0, 120, (4, 30))
    with torch.no_grad():
        state = model.encode(batch)
        cached = rank_candidates(model, state, cands, use_cache=True, chunk=7)
        recomputed = rank_candidates(model, state, cands, use_cache=False)
    torch.testing.assert_close(cached, recomputed, rtol=1e-5, atol=1e-5)


def test_reencoding_gives_the_pass_through_scores(tiny_prepared):
    """What notebook 04 times must compute the same thing three ways."""
    from oneranker.generate import rank_reencoding

    cfg = tiny_config()
    model = build_model(cfg, tiny_prepared).eval()
    batch = Collator(tiny_prepared, cfg.data.max_history_len)([tiny_prepared.requests["test"][i] for i in range(3)])
    cands = torch.randint(0, 120, (3, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        passed = rank_candidates(model, model.encode(batch), cands)
        once = rank_reencoding(model, batch, cands)
        per_cand = rank_reencoding(model, batch, cands, per_candidate=True)
        # in passes of at most 5 sequences (4 passes, the last one short): the same scores
        L = batch["tok_type"].shape[1]
        in_passes = rank_reencoding(model, batch, cands, per_candidate=True, pass_entries=5 * L * L)
    torch.testing.assert_close(once, passed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_cand, passed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(in_passes, per_cand, rtol=1e-6, atol=1e-6)


# Beam search scores an ad as a sum over its codes: the paper's codes-only ads, no bid term.
CODES_ONLY = {"model.item_representation": "sid", "model.value_features": False}


def test_beam_generation_from_a_shared_history_equals_per_beam_copies(tiny_prepared):
    cfg = tiny_config(**CODES_ONLY)
    model = build_model(cfg, tiny_prepared).eval()
    trie = PrefixTrie(model.items.codes.numpy())
    test = tiny_prepared.requests["test"]
    batch = Collator(tiny_prepared, cfg.data.max_history_len)([test[i] for i in range(5)])
    with torch.no_grad():
        shared = beam_generate(model, batch, trie, beam_size=16)
        copies = beam_generate(model, batch, trie, beam_size=16, per_beam_copies=True)
    assert torch.equal(shared[0], copies[0])
    torch.testing.assert_close(shared[1], copies[1])
    assert (shared[0] >= 0).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_graphed_beam_search_equals_eager():
    from oneranker.generate import graphed_beam_search

    rng = np.random.default_rng(2)
    digits = (16, 16, 4)
    trie = PrefixTrie(_random_trie(rng, 500, digits))
    tables = [torch.randn(k, 32, device="cuda") for k in digits]
    run = graphed_beam_search(torch.randn(8, 32, device="cuda"), tables, trie, beam_size=32)
    for _ in range(3):
        user = torch.randn(8, 32, device="cuda")
        items, scores = run(user)
        ref_items, ref_scores = beam_search(user, tables, trie, beam_size=32)
        assert torch.equal(items, ref_items)
        torch.testing.assert_close(scores, ref_scores)


def test_first_unique_equals_the_python_definition_on_random_rows():
    from oneranker.generate import first_unique

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids = torch.randint(0, 12, (6, 40), generator=g)
        ids[:, :8] = torch.randperm(50, generator=g)[:8]        # at least 8 distinct per row
        expected = torch.tensor([list(dict.fromkeys(r))[:8] for r in ids.tolist()])
        assert torch.equal(first_unique(ids, 8), expected)


@pytest.mark.parametrize("switch", [{"model.item_representation": "sid+id"}, {"model.value_features": True}])
def test_beam_generation_refuses_scores_that_are_not_sums_over_codes(tiny_prepared, switch):
    cfg = tiny_config(**{**CODES_ONLY, **switch})
    model = build_model(cfg, tiny_prepared).eval()
    batch = Collator(tiny_prepared, cfg.data.max_history_len)([tiny_prepared.requests["test"][0]])
    with pytest.raises(ValueError, match="codes alone"):
        beam_generate(model, batch, PrefixTrie(model.items.codes.numpy()), beam_size=4)


COMPILE_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "compile_check.py"


def _compile_check(*argv: str, timeout: int = 200) -> subprocess.CompletedProcess:
    """benchmarks/compile_check.py in a process of its own: a CUDA error there (the compiled request
    crashed on the H200) cannot leave this test session's GPU context unusable, and a part that hangs
    fails alone, its time out, so the other parts are still run and named."""
    try:
        return subprocess.run([sys.executable, str(COMPILE_CHECK), *argv], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"compile_check {' '.join(argv)} ran past {timeout} s; its output: {e.stdout!r}")


@pytest.mark.parametrize("part, says", [
    ("first_unique", "first_unique compiled (default): ids equal (0 of 10 differ): ok"),
    ("ranking", "ranking compiled (default): largest score difference "),
    ("prefill --mask outside", "prefill compiled (default, mask outside): largest score difference "),
])
def test_the_compile_check_compares_a_compiled_part_with_eager(part, says):
    """The script behind the GPU tests below, at toy sizes on this machine: the compiled
    deduplication returns eager's ids, the compiled ranking (its model state, computed eagerly,
    passed in) eager's scores, and so does the compiled prefill with Step 1's mask built eagerly
    and passed in (the plumbing: on the CPU that mask is a dense one; the block mask crossing the
    compiled graph's boundary is the GPU tests' below); each says so."""
    done = _compile_check("--part", *part.split(), "--items", "50", "--n", "5", "--requests", "2", "--d", "32",
                          "--heads", "2", "--history", "16")
    assert done.returncode == 0, done.stderr[-2000:]
    assert says in done.stdout and done.stdout.rstrip().endswith(": ok"), done.stdout[-500:]


def test_the_compile_check_refuses_a_mask_outside_for_a_part_without_one():
    done = _compile_check("--part", "ranking", "--mask", "outside")
    assert done.returncode == 2 and "applies to the parts that build Step 1's mask" in done.stderr


def test_the_compile_checks_agreement_of_a_request_allows_ties_not_wrong_scores():
    """A request's candidates are compared as sets per request and its scores on the shared ones,
    hand-computed: one swapped candidate of ten (a bf16 tie broken the other way) is 90% shared and
    passes; two are not; a shared candidate's score off by more than the tolerance fails; ids alone
    must be equal."""
    compile_check = load_tool("benchmarks/compile_check.py")

    ids = torch.arange(10)[None]
    scores = torch.linspace(0, 1, 10)[None]
    one_swapped = ids.clone()
    one_swapped[0, 9] = 99
    ok, how = compile_check.agreement((ids, scores), (one_swapped, scores), low_precision=True)
    assert ok and how.startswith("90.0% of the candidates shared")
    two_swapped = one_swapped.clone()
    two_swapped[0, 8] = 98
    assert not compile_check.agreement((ids, scores), (two_swapped, scores), low_precision=True)[0]
    reordered = (ids.flip(1), scores.flip(1))                     # same candidates, other order: agrees
    assert compile_check.agreement((ids, scores), reordered, low_precision=False) == (
        True, "100.0% of the candidates shared (at least 90%), largest score difference on them 0 (at most 0.0001)")
    off = scores.clone()
    off[0, 3] += 0.05                                             # over 3e-2 x max(1, |scores|) = 0.03
    assert not compile_check.agreement((ids, scores), (ids, off), low_precision=True)[0]
    assert compile_check.agreement((ids, None), (one_swapped, None), low_precision=True) == (
        False, "ids DIFFER (1 of 10 differ)")
    # a model part's scores (prefill: interest and value): every one within the tolerance
    interest, value = torch.zeros(1, 2, 4), torch.full((1, 1, 4), 2.0)        # scale max(1, 2) = 2
    near = (interest + 0.05, value)                                           # 0.05 <= 3e-2 x 2 = 0.06
    assert compile_check.scores_agree((interest, value), near, low_precision=True) == (
        True, "largest score difference 0.05 (at most 0.06)")
    assert not compile_check.scores_agree((interest, value), (interest, value + 0.07), low_precision=True)[0]
    assert not compile_check.scores_agree((interest, value), near, low_precision=False)[0]
    nan_value = (interest, torch.full_like(value, float("nan")))             # NaN in a later head fails too
    assert compile_check.scores_agree((interest, value), nan_value, low_precision=True) == (
        False, "largest score difference nan (at most 0.06)")
    nan_score = off.clone()
    nan_score[0, 3] = float("nan")
    assert not compile_check.agreement((ids, scores), (ids, nan_score), low_precision=True)[0]


# The compiled parts seen to crash on the H200 (torch 2.11, CUDA 13) with Step 1's block mask built
# inside the compiled graph: inductor fuses the mask's construction into FlexAttention's kernel, which
# then faults (results/paper/compile_check_prefill_blocking_h200_8f61a7b.txt names the kernel;
# model_e2e_h200_cb8a1b5*.txt the whole request in both modes). The prefill in reduce-overhead mode
# crashed too when first run (2026-12-05, gpu_tests_h200_bd5df35.txt: "operation not supported on
# global/shared address space", reported asynchronously at autotuning's synchronize, so no kernel is
# named). Built outside, both parts agreed with eager in both modes (compile_check_mask_outside_h200_1b47d27.txt,
# gpu_tests_h200_bd5df35.txt: the check the test below runs). Strict: the day torch's kernel is
# fixed these pass, fail as XPASS, and the mark is to be removed. Only a crash or a disagreement
# (the assertion) is expected; a compile past its time still fails.
MASK_FUSED_CRASH = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="Step 1's mask built in the compiled graph: FlexAttention's fused kernel faults on the H200")
MASK_FUSED_CRASHES = {("default", "prefill"), ("default", "request"), ("reduce-overhead", "prefill"),
                      ("reduce-overhead", "request")}
SERVING_PARTS = [pytest.param(mode, part, id=f"{mode}-{part}",
                              marks=[MASK_FUSED_CRASH] if (mode, part) in MASK_FUSED_CRASHES else [])
                 for mode in ("default", "reduce-overhead")
                 for part in ("first_unique", "topk", "prefill", "ranking", "request")]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor's GPU kernels exist on a GPU only")
@pytest.mark.parametrize("mode, part", SERVING_PARTS)
def test_a_compiled_serving_part_on_the_gpu_matches_eager(mode, part):
    """Each part of the serving request compiled by inductor for the GPU, at the end-to-end
    benchmark's sizes, returns eager's candidates (and scores): at those sizes the whole request
    crashed on the H200 in inductor's autotuning (2026-12-03, docs/paper_profile.md, "GPU benchmarks"); the part
    that fails here names where (on 2026-12-04 the first two passed, and the ranking; the prefill
    crashed, marked above with the request). The model parts get 400 s: the whole request's
    default-mode compile ran past 200 s there."""
    done = _compile_check("--part", part, "--mode", mode, timeout=400 if part in ("prefill", "ranking", "request") else 200)
    what = {0: "agreed", 3: "ran but disagreed with eager"}.get(done.returncode, f"crashed (exit {done.returncode})")
    assert done.returncode == 0, (what, done.stdout[-1000:], done.stderr[-3000:])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor's GPU kernels exist on a GPU only")
@pytest.mark.parametrize("part", ["prefill", "request"])
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_a_compiled_serving_part_with_its_mask_built_outside_matches_eager(part, mode):
    """The prefill and the whole request compiled with Step 1's block mask built eagerly and passed
    in (compile_check --mask outside): with the mask built inside the compiled graph, the prefill
    crashed on the H200 in FlexAttention's kernel with the mask's construction fused into it
    (2026-12-04, docs/paper_profile.md, "GPU benchmarks"). 400 s to compile, as the model parts above."""
    done = _compile_check("--part", part, "--mode", mode, "--mask", "outside", timeout=400)
    what = {0: "agreed", 3: "ran but disagreed with eager"}.get(done.returncode, f"crashed (exit {done.returncode})")
    assert done.returncode == 0, (what, done.stdout[-1000:], done.stderr[-3000:])


def test_topk_skips_a_repeat_across_heads_and_merges_the_mean_of_the_bagged_value_heads():
    interest = torch.tensor([[[5.0, 4.0, 3.0, 2.0, 1.0]]])          # interest head: 0, 1, 2, 3, 4
    value = torch.tensor([[[0.0, 9.0, 0.1, 0.0, 1.0],                 # value head A alone: 1, 4, 2, ...
                           [0.0, 0.0, 0.1, 4.0, 2.0]]])               # value head B alone: 3, 4, 2, ...
    # mean [0, 4.5, 0.1, 2, 1.5]: 1, 3, 4, 2, 0. Rank by rank: 0, 1 | 1 (repeat, skipped), 3 | 2, ...
    assert topk_candidates(interest, value, n=4).tolist() == [[0, 1, 3, 2]]


def test_beam_search_never_extends_a_prefix_by_a_digit_past_its_radix():
    # codes (0, 1) and (1, 0): radices (2, 2), but the level-2 table has 3 rows (a codebook digit
    # no ad uses). Digit 2 after prefix (0,) encodes as 0 * 2 + 2 = 2 = the encoding of (1, 0).
    trie = PrefixTrie(torch.tensor([[0, 1], [1, 0]]).numpy())
    tables = [torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [0.0], [10.0]])]
    items, scores = beam_search(torch.tensor([[1.0]]), tables, trie, beam_size=2)
    # (0, 1): 1 + 0 = 1 (ad 0); (1, 0): 0 + 0 = 0 (ad 1); the aliased (0, 2) would score 11 as ad 1
    assert items.tolist() == [[0, 1]]
    assert scores.tolist() == [[1.0, 0.0]]
