"""The measurement scripts run end to end at the smoke profile and write what they promise."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


def test_paper_learning_records_curves_scores_and_a_final_row(tmp_path):
    """scripts/paper_learning.py: references first, one record per epoch and variant (scored at
    every --eval-every), and a final row of the best weights per variant, each with its seed."""
    out = tmp_path / "curves.jsonl"
    variants = ["quick: full", "quick: Step 2 only, queries + last state"]
    subprocess.run([sys.executable, "scripts/paper_learning.py", "--profile", "smoke", "--device", "cpu",
                    "--seed", "1", "--epochs", "2", "--eval-every", "2", "--eval-requests", "50",
                    "--cache", str(tmp_path / "cache"), "--out", str(out), "--workers", "1",
                    "--variants", *variants], cwd=ROOT, check=True, capture_output=True, text=True)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["seed"] == 1 for r in recs)
    refs = recs[0]["references HR@5"]
    assert refs["random"] < refs["interest oracle"]
    for v in variants:
        epochs = [r for r in recs if r.get("variant") == v and "epoch" in r]
        assert [r["epoch"] for r in epochs] == [1, 2]
        assert "HR@5 generated" in epochs[1] and "HR@5 generated" not in epochs[0]
        final = [r for r in recs if r.get("variant") == v and r.get("final")]
        assert len(final) == 1 and final[0]["epochs"] == 2
    assert "HR@5 ranked" in next(r for r in recs if r.get("variant") == "quick: full" and r.get("final"))
    assert "total_s" in recs[-1]


def test_paper_learning_runs_every_variant_on_each_seed(tmp_path):
    """--seeds: each seed's references come before its variants' records, every variant has a
    final row per seed, and a probe-precision variant names its precision in its records."""
    out = tmp_path / "curves.jsonl"
    variants = ["quick: Step-1 generator", "today's defaults, bf16 autocast (also on a CPU)"]
    subprocess.run([sys.executable, "scripts/paper_learning.py", "--profile", "smoke", "--device", "cpu",
                    "--seeds", "0", "1", "--epochs", "1", "--eval-every", "1", "--eval-requests", "50",
                    "--cache", str(tmp_path / "cache"), "--out", str(out), "--workers", "2",
                    "--variants", *variants], cwd=ROOT, check=True, capture_output=True, text=True)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    for seed in (0, 1):
        mine = [i for i, r in enumerate(recs) if r["seed"] == seed]
        assert "references HR@5" in recs[mine[0]]
        for v in variants:
            assert len([r for r in recs if r["seed"] == seed and r.get("variant") == v and r.get("final")]) == 1
    epochs = [r for r in recs if "epoch" in r]
    assert all(r.get("precision") == "bf16" for r in epochs if r["variant"] == variants[1])
    assert all("precision" not in r for r in epochs if r["variant"] == variants[0])


def test_training_throughput_contenders_are_parsed_or_refused():
    """benchmarks/training_throughput.py's contender grammar GROUPINGxWORKERS[pPAD][f][cb|cl][bBATCH][tTHREADS][m][g][e]."""
    import pytest

    bench = load_tool("benchmarks/training_throughput.py")
    assert bench.parse_run("20x4fcb") == {"grouping": 20, "workers": 4, "pad_to": 0, "prefetch": True,
                                          "compile": "blocks", "batch": None, "threads": None, "mps": False,
                                          "graphs": False, "expandable": False}
    assert bench.parse_run("0x1p64clb1024") == {"grouping": 0, "workers": 1, "pad_to": 64, "prefetch": False,
                                                "compile": "loss", "batch": 1024, "threads": None, "mps": False,
                                                "graphs": False, "expandable": False}
    assert bench.parse_run("20x8ft2m")["mps"] and bench.parse_run("20x8m")["workers"] == 8
    assert bench.parse_run("20x4ft2")["threads"] == 2 and bench.parse_run("20x4fb512t4")["batch"] == 512
    assert bench.parse_run("50x8")["compile"] == "off"
    assert bench.parse_run("20x8ft2mg")["graphs"] and bench.parse_run("20x8ft2mg")["mps"]
    assert bench.parse_run("20x1fg") == {**bench.parse_run("20x1f"), "graphs": True}
    assert bench.parse_run("20x8ft2me") == {**bench.parse_run("20x8ft2m"), "expandable": True}
    assert bench.parse_run("20x8ft2mge")["graphs"] and bench.parse_run("20x8ft2mge")["expandable"]
    for bad in ("20x0f", "20x1b0", "20x1fc", "20x1cf", "x4", "20x4ft0", "20x4ftb", "20x4mf", "20x4mm", "20x4gm",
                "20x4gg", "20x4em", "20x4ee", "20x4eg"):
        with pytest.raises(SystemExit, match="--runs"):
            bench.parse_run(bad)


def test_training_throughput_refuses_an_allocator_comparison_it_cannot_make(monkeypatch):
    """'e' (expandable segments) is refused before any work off CUDA, and when the user's own
    PYTORCH_CUDA_ALLOC_CONF would make the contenders without 'e' something other than fixed."""
    import pytest

    bench = load_tool("benchmarks/training_throughput.py")
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.setattr(sys, "argv", ["training_throughput.py", "--device", "cpu", "--runs", "20x1f", "20x1fe"])
    with pytest.raises(SystemExit, match="'e' .*need a CUDA device, not --device cpu"):
        bench.main()
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    monkeypatch.setattr(sys, "argv", ["training_throughput.py", "--device", "cuda", "--runs", "20x1f", "20x1fe"])
    with pytest.raises(SystemExit, match="PYTORCH_CUDA_ALLOC_CONF is set .*max_split_size_mb:128.*unset it"):
        bench.main()


def test_training_step_benchmark_times_and_profiles_every_contender(tmp_path):
    """benchmarks/training_step.py at the smoke profile on the CPU: a line per contender with its
    step time, ratio and kernel count (0 on the CPU), the first one's operator table, and for a
    contender run again beside itself (deterministic-again) its distance from the first run; a
    malformed contender is refused before any work."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "training_step.py"), "--profile", "smoke", "--device", "cpu",
           "--cache", str(tmp_path), "--warmup", "0", "--steps", "2"]
    out = subprocess.run(cmd + ["--contenders", "today", "select", "flex:fwd_BLOCK_M=64,PRESCALE_QK=false", "graphed",
                                         "deterministic", "deterministic-again"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if "ms per step" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["today", "select", "flex", "graphed", "deterministic",
                                                               "deterministic-again"]
    assert "1.00x the first row's speed" in lines[0] and all("0 kernels per step" in line for line in lines)
    assert "differ from today's by at most 0.00e+00" in lines[1]     # the CPU is exact, whatever the lookup
    assert "differ from today's by at most 0.00e+00" in lines[3]     # and runs eager under train.cuda_graphs
    again = [line for line in out.splitlines() if line.strip().startswith("deterministic-again: after")]
    assert again == ["deterministic-again: after the same batches its weights differ from deterministic's by at most "
                     "0.00e+00"]
    digests = {line.split(":")[0].strip(): line.split("weights sha1 ")[1].rstrip(")") for line in lines}
    assert len(set(digests.values())) == 1                # the CPU is exact: every contender the same weights
    assert out.count("0 graphs compiled") == 6            # eager contenders compile nothing on the CPU
    assert out.count("Self CPU time total") == 1          # only the first contender's table without --tables
    for bad in ("fast", "flex:BLOCK_M", "flex:BLOCK_M=big"):
        res = subprocess.run(cmd + ["--contenders", "today", bad], capture_output=True, text=True)
        assert res.returncode != 0 and "--contenders" in res.stderr and "warmed up" not in res.stdout
    import functools
    from types import SimpleNamespace

    import torch

    bench = load_tool("benchmarks/training_step.py")
    assert bench.parse_contender("loss-compiled-dynamic") == {"train.compile": "off", "compile_dynamic": "loss"}
    # layernorms-compiled-dynamic: every LayerNorm now runs through a traced graph (module.compile()
    # traced none), with the module's own weights: outputs and gradients equal eager ones
    import copy

    from torch._dynamo.utils import counters

    eager = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.LayerNorm(6, eps=1e-3), torch.nn.LayerNorm(6))
    with torch.no_grad():
        for norm in eager[1:]:
            norm.weight.uniform_(0.5, 2.0), norm.bias.uniform_(-1.0, 1.0)
    fused = copy.deepcopy(eager)
    graphs = counters["stats"]["unique_graphs"]
    bench.compile_dynamic(SimpleNamespace(model=fused), "layernorms", backend="aot_eager")
    x = torch.randn(2, 5, 6)
    for model in (eager, fused):
        model(x).pow(2).sum().backward()
    assert counters["stats"]["unique_graphs"] > graphs
    assert all(isinstance(m.forward, functools.partial) for m in fused[1:])
    assert torch.allclose(fused(x), eager(x), atol=1e-6)
    for a, b in zip(eager.parameters(), fused.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)
    assert bench.parse_contender("flex:bwd_BLOCK_M1=32,ROWS_GUARANTEED_SAFE=true") == \
        {"flex_options": {"bwd_BLOCK_M1": 32, "ROWS_GUARANTEED_SAFE": True}}
    import pytest

    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.bias[1] += 0.5
    assert bench.weight_drift(SimpleNamespace(model=b), SimpleNamespace(model=a)) == pytest.approx(0.5)


def test_embeddings_contender_routes_every_lookup_through_one_traced_graph_in_its_steps_only():
    """benchmarks/training_step.py embeddings-compiled-dynamic: each nn.Embedding module and the
    model module's F.embedding (the gathered token lookup) go through the compiled lookup, with
    equal outputs and gradients; the model module's F is the compiled one only inside the
    contender's setting; a padded table and an unknown scope are refused."""
    import copy
    from types import SimpleNamespace

    import pytest
    import torch
    from torch._dynamo.utils import counters

    from oneranker import model as model_module

    bench = load_tool("benchmarks/training_step.py")
    assert bench.parse_contender("norms-embeddings-compiled-dynamic")["compile_dynamic"] == "layernorms+embeddings"

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table, self.norm = torch.nn.Embedding(7, 4), torch.nn.LayerNorm(4)
            self.embed = SimpleNamespace(lookup="auto")

        def forward(self, idx):
            return self.norm(self.table(idx) + model_module.F.embedding(idx, self.table.weight * 2))

    eager = Tiny()
    fused = copy.deepcopy(eager)
    trainer = SimpleNamespace(model=fused)
    graphs = counters["stats"]["unique_graphs"]
    bench.compile_dynamic(trainer, "layernorms+embeddings", backend="aot_eager")
    idx = torch.tensor([[0, 3, 3, 6], [1, 1, 2, 5]])
    plain_f = model_module.F
    eager(idx).pow(2).sum().backward()
    with bench.contender_setting(trainer, {}):
        assert model_module.F is trainer.functional and model_module.F.relu is torch.nn.functional.relu
        out = fused(idx)
        out.pow(2).sum().backward()
    assert model_module.F is plain_f                                   # restored after the steps
    assert counters["stats"]["unique_graphs"] > graphs
    assert torch.allclose(out, eager(idx), atol=1e-6)
    for a, b in zip(eager.parameters(), fused.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)
    with pytest.raises(ValueError, match="plain embedding"):
        bench.compile_dynamic(SimpleNamespace(model=torch.nn.Embedding(3, 2, padding_idx=0)), "embeddings",
                              backend="aot_eager")
    with pytest.raises(ValueError, match="unknown scope"):
        bench.compile_dynamic(trainer, "everything", backend="aot_eager")


def test_model_benchmark_reports_each_ranking_contender_as_each_size_is_timed():
    """benchmarks/model.py --smoke --only rank: a ready line per contender and size, then a row per
    contender with its rate and, beside the re-encoding reference, the ratio; a subset of the
    contenders runs alone (no ratio without the reference); an unknown one is refused."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "model.py"), "--smoke", "--only", "rank"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT / "benchmarks").stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("n = ")]
    assert [(r[2], r[3]) for r in rows] == [(n, c) for n in ("8", "16") for c in ("pass-through", "re-encode", "compiled")]
    assert all(("x re-encode" in " ".join(r)) == (r[3] != "re-encode") for r in rows)
    assert out.count("ready: ") == 6
    alone = subprocess.run(cmd + ["--rank-contenders", "pass-through"], capture_output=True, text=True, check=True,
                           cwd=ROOT / "benchmarks").stdout
    assert [line.split()[3] for line in alone.splitlines() if line.startswith("n = ")] == ["pass-through"] * 2
    assert "re-encode" not in alone.split("## ranking")[1]
    bad = subprocess.run(cmd + ["--rank-contenders", "fastest"], capture_output=True, text=True, cwd=ROOT / "benchmarks")
    assert bad.returncode != 0 and "--rank-contenders" in bad.stderr


def test_multi_gpu_check_compares_one_and_two_processes_on_the_cpu(tmp_path):
    """scripts/multi_gpu_check.py with gloo processes at the smoke profile: the 2-process model
    computes what the 1-process model computes (fp32, to rounding) and serves the same lists;
    both runs are timed; a bad --gpus or --warmup is refused before any work."""
    out = tmp_path / "check.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "multi_gpu_check.py"), "--profile", "smoke", "--device", "cpu",
           "--steps", "5", "--warmup", "1", "--cache", str(tmp_path / "cache"), "--eval-requests", "40"]
    res = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert set(r["requests_per_s"]) == {"1", "2"} and all(v > 0 for v in r["requests_per_s"].values())
    one, two = r["metrics"]["1"], r["metrics"]["2"]
    assert one.keys() == two.keys() and "ranked" in one and all(abs(one[k] - two[k]) < 1e-3 for k in one)
    assert all(d < 1e-4 for d in r["max_abs_diff"]["2"].values()) and r["weights_rel_diff"]["2"] < 1e-3
    for bad in (["--gpus", "1"], ["--warmup", "5"]):
        res = subprocess.run(cmd + bad, capture_output=True, text=True)
        assert res.returncode != 0 and bad[0] in res.stderr and "process(es)" not in res.stdout


def test_truth_benchmark_compares_both_ways_and_checks_they_agree():
    """benchmarks/truth.py at the smoke profile: the header says whether both ways give the same
    pCTR (they must), and each way gets a timed row."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "truth.py"), "--profile", "smoke",
                          "--requests", "20", "--repeats", "1"], capture_output=True, text=True, check=True).stdout
    assert "identical pCTR: True" in out
    assert "catalogue given as items:" in out and "items=None:" in out and "1.00x the first row" in out


def test_paper_probe_names_keep_their_meaning_after_the_paper_defaults_moved():
    """Run 7 moved the paper profile to lr 1e-3 after three epochs of warm-up, and the paper
    patience study to the plateau schedule with a 60-epoch cap. The probes' base pins the old rate,
    warm-up and the cosine schedule at the paper profile, so every variant name still means the run
    it named, and "today's defaults, lr 1e-3, warm-up 3 epochs" at its 30-epoch cap is the profile
    as it was before the plateau schedule (b317c2748b38, the committed paper results' key)."""
    import argparse

    import pytest

    from oneranker.config import make_config

    probes = load_tool("scripts/paper_learning.py")
    paper = make_config("paper")
    assert (paper.train.lr, paper.train.warmup_steps) == (1e-3, probes.PAPER_3_EPOCHS) == (1e-3, 282)
    named = {**probes.probe_base("paper"), **probes.VARIANTS["today's defaults, lr 1e-3, warm-up 3 epochs"]}
    assert make_config("paper", **named, **{"train.epochs": 30}).hash() == "b317c2748b38"
    assert make_config("paper", **named).train.lr_schedule == "cosine" != paper.train.lr_schedule
    old = make_config("paper", **{**probes.probe_base("paper"), **probes.TODAY})
    assert (old.train.lr, old.train.warmup_steps) == (2e-3, 30)
    assert "train.lr" not in probes.probe_base("quick")          # quick's variants keep quick's rate
    with pytest.raises(SystemExit, match="train.lr"):
        probes.base_overrides(argparse.Namespace(profile="paper", set=["train.lr=0.01"]))


def test_code_version_comparison_tells_equal_models_from_different_ones(tmp_path):
    """scripts/compare_code_versions.py: the same weights and losses (other seconds) are equal;
    one changed weight or loss is not; configs trained under one version only are counted."""
    import torch

    cmp = load_tool("scripts/compare_code_versions.py")

    def save(name: str, weight: float, loss: float, seconds: float) -> None:
        (tmp_path / name).mkdir()
        history = json.dumps({"epochs": [{"epoch": 1, "valid_loss": loss, "seconds": seconds}]})
        torch.save({"model": {"w": torch.tensor([weight])}, "history": history}, tmp_path / name / "final.pt")

    save("aaa-old", 1.0, 5.0, 8.0), save("aaa-new", 1.0, 5.0, 17.0)      # equal but for the seconds
    save("bbb-old", 1.0, 5.0, 8.0), save("bbb-new", 1.0 + 1e-7, 5.0, 8.0)  # a weight moved
    save("ccc-old", 1.0, 5.0, 8.0), save("ccc-new", 1.0, 5.1, 8.0)      # a loss moved
    save("ddd-old", 1.0, 5.0, 8.0)                                       # not retrained
    assert cmp.compare(tmp_path, "old", "new") == {"old": "old", "new": "new", "compared": 3, "equal": 1,
                                                   "differ": ["bbb", "ccc"], "only_old": 1, "only_new": 0}


def test_results_comparison_tells_numeric_drift_from_a_moved_verdict(tmp_path, capsys):
    """scripts/compare_results.py on hand-made folders: an identical table; a mean moved by 0.002
    with CI half-widths 0.005 and 0.004 (a shift of 0.4 of the wider), its CI on the same side of
    0; a paired difference whose CI now contains 0, in numbers only; a verdict whose words changed;
    a changed layout; a table present in one folder only. Exit 1 while a side of 0 or a word moved."""
    cmp = load_tool("scripts/compare_results.py")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    tables = {
        "same.csv": ("a,b\nx,0.5\n", "a,b\nx,0.5\n"),
        "drift.csv": ("row,hr\nfull,+0.0100 ± 0.0050\nn,3\n", "row,hr\nfull,+0.0120 ± 0.0040\nn,3\n"),
        "side.csv": (",,hr\npaired,cascade,+0.0062 ± 0.0060\n", ",,hr\npaired,cascade,+0.0045 ± 0.0082\n"),
        "verdict.csv": ("row,verdict\nfull,reproduced\n", "row,verdict\nfull,not separated\n"),
        "layout.csv": ("a\n1\n", "a,b\n1,2\n"),
    }
    for name, (then, now) in tables.items():
        (old / name).write_text(then), (new / name).write_text(now)
    (old / "gone.csv").write_text("a\n1\n")
    rows = cmp.compare_folders(old, new).set_index("table")
    assert rows.loc["same.csv", "cells_differing"] == 0
    drift = rows.loc["drift.csv"]
    assert (drift.cells, drift.cells_differing, drift.numeric_cells_differing, drift.text_cells_differing) == (4, 1, 1, 0)
    assert drift.largest_abs_difference == pytest.approx(0.002) and drift.largest_shift_in_ci == pytest.approx(0.4)
    assert drift.zero_side_changes == 0
    side = rows.loc["side.csv"]
    assert (side.zero_side_changes, side.text_cells_differing) == (1, 0)
    assert side.zero_side_differences == "paired / cascade, hr: '+0.0062 ± 0.0060' -> '+0.0045 ± 0.0082'"
    # the project's verdict rule decides the side (a CI that touches 0 contains it), a sign flip counts
    assert [cmp.side_of_zero(m, 0.005) for m in (0.01, -0.01, 0.005)] == ["above 0", "below 0", "not separated"]
    verdict = rows.loc["verdict.csv"]
    assert verdict.text_cells_differing == 1 and verdict.text_differences == "full, verdict: 'reproduced' -> 'not separated'"
    assert rows.loc["layout.csv", "text_differences"].startswith("layout differs")
    assert rows.loc["gone.csv", "text_differences"] == "only in the first folder"
    assert cmp.main([str(old), str(new), "--out", str(tmp_path / "out.csv")]) == 1
    assert len(cmp.read_result_table(tmp_path / "out.csv")) == 6
    out = capsys.readouterr().out
    assert out.startswith("1 of 6 tables identical") and "  gone.csv: only in the first folder" in out
    for name in ("verdict.csv", "layout.csv"):
        (new / name).write_text(tables[name][0])
    (new / "gone.csv").write_text("a\n1\n")
    assert cmp.main([str(old), str(new)]) == 1          # the CI that crossed 0 is still there
    (new / "side.csv").write_text(tables["side.csv"][0])
    assert cmp.main([str(old), str(new)]) == 0          # numbers moved, no side of 0 nor word: 0


def test_list_metrics_benchmark_compares_each_path_with_the_one_it_replaced():
    """benchmarks/list_metrics.py at a toy size: two rows, each with a ratio, and both outputs
    equal to the replaced code's (the parity the block of docs/paper_profile.md reports)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "list_metrics.py"), "--requests", "40", "--ads", "500",
           "--n", "30", "--repeats", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if "x; equal:" in line]
    assert [row.split(":")[0] for row in rows] == ["top-30 of every row", "one list's metrics"]
    assert all(row.endswith("equal: True") for row in rows)


def test_beam_search_benchmark_runs_both_parts_at_the_smoke_size():
    """benchmarks/beam_search.py --smoke: a row per user count of the search from user vectors,
    then the generation part's two contenders and their ratio. Its generation part once asked
    beam search of a model whose ads carry an ID embedding and so raised on every device, and the
    H200 sitting of 2026-12-03 lost it: this runs the whole script."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "beam_search.py"), "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    search = out.split("## search from user vectors")[1].split("##")[0].splitlines()
    assert [line.split()[0] for line in search[2:] if line.strip()] == ["4"]
    generation = out.split("## generation")[1].splitlines()
    assert [line.split()[0] for line in generation[1:3]] == ["shared", "per-beam"]
    assert "shared vs per-beam copies:" in out and "same ads in" in out
    # the benchmark table of docs/paper_profile.md reads this very output (scripts/benchmark_table.py)
    table = _benchmark_table()
    assert table.beam_paths(out)[0].endswith("paths/s eager (4 users)")       # no CUDA graph on the CPU
    assert re.fullmatch(r"[\d.]+× \([\d.]+ vs [\d.]+ ms\)", table.beam_generation(out)[0])


def _benchmark_table():
    """scripts/benchmark_table.py, the GPU benchmark table of docs/paper_profile.md."""
    return load_tool("scripts/benchmark_table.py")


def test_model_benchmark_training_rows_are_what_the_readme_table_reads():
    """benchmarks/model.py --smoke --only train,mask: a line per training contender (median, tokens/s,
    MFU, ratio to the eager dense step) and per block-mask builder; scripts/benchmark_table.py
    parses each of them (on the CPU the MFU is n/a: no peak FLOP rate is known)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model.py"), "--smoke", "--only", "train,mask"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    table = _benchmark_table()
    cell, verdict = table.training_step(out)
    assert [part.split(":")[0] for part in cell.split("; ")] == ["fast (step1 compiled)", "fast (model compiled)",
                                                                  "fast (loss compiled)"]
    assert verdict in ("met", "missed")
    assert table.mfu(out) == ("n/a (no peak FLOP rate known for the device)", "not measured")
    mask, _ = table.block_mask(out)
    assert mask.startswith("not in the output (no compiled create_block_mask line)")   # compiled on CUDA only
    assert [r["name"] for r in table.rows_of(table.MASK_ROW, out)] == ["eager create_block_mask"]


def test_model_benchmark_measures_the_end_to_end_contenders_asked_in_their_order():
    """benchmarks/model.py --only e2e --e2e-contenders: the contenders named, in the order given
    (a short GPU call measures the aimed-at ones first: on 2026-12-03 the H200's 240 s ended
    after the first two of five), each a line with its median and p99/median, named as measured
    (on the CPU: SDPA, nothing compiled)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model.py"), "--smoke", "--only", "e2e",
                          "--e2e-contenders", "request", "request+graph/mask-outside", "none"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    names = ["sdpa, eager model (request compiles on CUDA only)",       # as measured on the CPU
             "sdpa, eager model (request+graph/mask-outside compiles on CUDA only)", "sdpa, eager model"]
    table = _benchmark_table()
    assert [r["name"] for r in table.rows_of(table.E2E_ROW, out)] == names
    # each contender after the first with its speed-up over the first, measured in this run
    lines = [ln for ln in out.splitlines() if table.E2E_ROW.match(ln)]
    assert "the speed of" not in lines[0]
    assert all(re.search(rf", [\d.]+x the speed of {re.escape(names[0])}$", ln) for ln in lines[1:]), lines
    cell, _ = table.end_to_end(out)
    assert [part.split(":")[0] for part in cell.split("; ")] == names
    # on a GPU each contender is named as it is measured there (no GPU needed to name one)
    bench = load_tool("benchmarks/model.py")
    import torch

    cuda = torch.device("cuda")
    assert [bench.e2e_label(c, cuda) for c in bench.E2E_CONTENDERS] == [
        "flex, eager model", "flex, step1 compiled", "flex, model compiled", "flex, request compiled",
        "flex, request compiled, CUDA graph", "flex, request compiled, mask outside",
        "flex, request compiled, CUDA graph, mask outside"]


def test_paper_histories_writes_each_cached_models_curve_and_summarises_it(tmp_path):
    """scripts/paper_histories.py at the smoke profile: of notebook 04's five configs of seed 0 the
    cache holds one (trained here), so one record, labelled by what its config changes from the
    profile, with a curve of one row per epoch trained and what ended it; --summary prints its
    convergence table. A notebook that trains no model is refused by name."""
    from oneranker import studies, train
    from oneranker.data import cached_prepared

    cfg = studies.notebook_configs("04", "smoke", [0])[0]
    train.train_or_load(cfg, cached_prepared(cfg, tmp_path / "cache"), tmp_path / "cache", device="cpu", progress=False)
    out = tmp_path / "h.jsonl"
    script = [sys.executable, str(ROOT / "scripts" / "paper_histories.py")]
    subprocess.run([*script, "--notebooks", "04", "--profile", "smoke", "--seeds", "0", "--cache",
                    str(tmp_path / "cache"), "--out", str(out)], cwd=ROOT, check=True, capture_output=True, text=True)
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["notebook"] == "04" and record["seed"] == 0 and record["config"] == cfg.hash()
    assert record["label"] == "model.use_ranker=False"
    assert [e["epoch"] for e in record["curve"]] == list(range(1, record["epochs"] + 1))
    assert 1 <= record["best_epoch"] <= record["epochs"] <= cfg.train.epochs
    assert record["stopped_early"] == (record["epochs"] < cfg.train.epochs)
    table = subprocess.run([*script, "--summary", str(out)], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout
    assert "model.use_ranker=False" in table and "runs reached the cap" in table
    kept = [e["valid_loss"] for e in record["curve"] if e["epoch"] == record["best_epoch"]][0]
    assert f"{kept:10.4f}  model.use_ranker=False" in table          # the best epoch's validation loss
    refused = subprocess.run([*script, "--notebooks", "01", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "no notebook 01 trains models" in refused.stderr


def test_paper_histories_measures_the_last_epochs_change_by_hand():
    """scripts/paper_histories.py's last-five-epochs change, hand-computed: validation losses 10, 9,
    8, 7, 6, 5 end 5 / 10 - 1 = -50% below the loss five epochs before the last; five epochs or
    fewer have no such change. The change up to the best epoch ignores the epochs after it."""
    paper_histories = load_tool("scripts/paper_histories.py")
    curve = [{"epoch": i + 1, "valid_loss": v} for i, v in enumerate([10.0, 9.0, 8.0, 7.0, 6.0, 5.0])]
    assert paper_histories.last_change(curve) == -0.5
    assert paper_histories.last_change(curve[1:]) is None
    # up to the best: two rising epochs after the best (5.5, 6) leave the last five epochs' change
    # at 6 / 8 - 1 = -25%, but the five up to the best still fell by 5 / 10 - 1 = -50%
    later = curve + [{"epoch": 7, "valid_loss": 5.5}, {"epoch": 8, "valid_loss": 6.0}]
    assert paper_histories.last_change(later) == -0.25
    assert paper_histories.change_to_best(later) == -0.5
    assert paper_histories.best_valid(later, 6) == 5.0         # the kept epoch's, not the last (6.0)
    # a best within the first five epochs has no such change
    assert paper_histories.change_to_best(curve[::-1]) is None


def test_paper_histories_summary_numbers_by_hand():
    """Run A (capped, 8 epochs, losses 10 9 8 7 6 5 5.5 6, best epoch 6): last five 6/8 - 1 = -25.00%,
    five up to the best 5/10 - 1 = -50.00%, best valid 5.0000, best in the last LATE=3 (6 > 8 - 3).
    Run B (early stopping, losses 10 ... 3, best 8): -62.50% both; not capped, so not counted."""
    paper_histories = load_tool("scripts/paper_histories.py")
    curve = lambda losses: [{"epoch": i + 1, "valid_loss": v} for i, v in enumerate(losses)]  # noqa: E731
    a = {"notebook": "05", "seed": 0, "epochs": 8, "best_epoch": 6, "stopped_early": False, "label": "A",
         "curve": curve([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 5.5, 6.0])}
    b = {"notebook": "05", "seed": 1, "epochs": 8, "best_epoch": 8, "stopped_early": True, "label": "B",
         "curve": curve([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])}
    lines = paper_histories.summary([a, b]).splitlines()
    assert lines[1].split() == ["05", "0", "8", "6", "the", "cap", "-25.00%", "-50.00%", "5.0000", "A"]
    assert lines[2].split() == ["05", "1", "8", "8", "early", "stopping", "-62.50%", "-62.50%", "3.0000", "B"]
    assert lines[3] == "1 of 2 runs reached the cap; 1 of them had their best validation loss in their last 3 epochs."



def _patience_study():
    return load_tool("scripts/patience_study.py")


def _study_rows(model: str, rule: str, losses: list[float], gaps: list[float], stopped: bool = True) -> list[dict]:
    return [{"model": model, "rule": rule, "seed": s, "best valid loss": v, "gap closed HR@5": g,
             "stopped early": stopped, "epochs": 40 if stopped else 60, "cap": 60}
            for s, (v, g) in enumerate(zip(losses, gaps))]


def test_patience_study_applies_its_stated_rule_to_hand_made_runs():
    """scripts/patience_study.py's paired comparison, hand-computed. OneRanker, three seeds, best
    validation losses 10, 10, 10 at patience 2 and 9, 9.5, 9.25 at patience 5: relative changes
    -10%, -5%, -7.5%, mean -7.5%, sd 2.5%, 95% CI t(2) 4.303 x 2.5% / sqrt(3) = 6.21%: the upper
    end -1.29% is below zero, so patience 2 stops on noise. The generator's changes 0%, +1%, -1%
    straddle zero: not separated. The gap closed's change is reported, not judged."""
    import pandas as pd
    patience_study = _patience_study()
    rows = _study_rows
    frame = pd.DataFrame(rows("OneRanker", "patience 2", [10, 10, 10], [0.5, 0.5, 0.5])
                         + rows("OneRanker", "patience 5", [9, 9.5, 9.25], [0.6, 0.5, 0.55])
                         + rows("Step-1 generator", "patience 2", [10, 10, 10], [0.6, 0.6, 0.6])
                         + rows("Step-1 generator", "patience 5", [10, 10.1, 9.9], [0.6, 0.6, 0.6]))
    out = patience_study.paired(frame, reference="patience 2").set_index("model")
    assert out.loc["OneRanker", "rule"] == "patience 5 vs patience 2"
    assert out.loc["OneRanker", "best valid loss, relative change"] == "-7.50% ± 6.21%"
    assert out.loc["OneRanker", "lower on seeds"] == "3 of 3"
    assert out.loc["OneRanker", "gap closed HR@5, change"] == "+5.0 ± 12.4 points"
    assert out.loc["OneRanker", "rule's verdict"] == "patience 2 stops on noise"
    assert out.loc["Step-1 generator", "rule's verdict"] == "not separated"
    higher = frame.assign(**{"best valid loss": [10, 10, 10, 11, 11.5, 11.2, 10, 10, 10, 10, 10, 10]})
    assert patience_study.paired(higher, "patience 2").set_index("model").loc["OneRanker", "rule's verdict"] == \
        "patience 5 ends higher"
    one_seed = frame[frame["seed"] == 0]
    assert set(patience_study.paired(one_seed, "patience 2")["rule's verdict"]) == {"n/a (one seed: no CI)"}
    assert patience_study.paired(frame, "patience 5").empty   # only larger patiences are compared
    with pytest.raises(ValueError, match="no runs under the reference rule 'patience 3'"):
        patience_study.paired(frame, "patience 3")
    # rows written before rules had names (the committed quick study) are named by their patience
    old = frame.assign(patience=frame["rule"].str.split().str[-1].astype(int)).drop(columns="rule")
    assert patience_study.paired(old, "patience 2").equals(patience_study.paired(frame, "patience 2"))
    assert patience_study.plateau_adopted(frame, "patience 2") is None   # no plateau runs
    # a rule's patience is read back from its name in one place, the inverse of how it was named
    assert [patience_study.rule_patience(r) for r in ("patience 12", "plateau, patience 3")] == [12, 3]
    with pytest.raises(ValueError, match="not a rule's name: 'cosine 2'"):
        patience_study.rule_patience("cosine 2")


def test_patience_study_judges_the_plateau_schedule_by_the_rule_stated_before_its_runs():
    """The plateau rule against the reference, by hand: OneRanker's plateau losses 9, 9.5, 9.25
    against 10, 10, 10 end lower (the CI above); the generator's 10, 10.1, 9.9 are not
    separated. Every plateau run ended by its rule and none ends higher: adopted. One run at
    its cap, or a model ending higher, and it is not."""
    import pandas as pd
    patience_study = _patience_study()
    rows = _study_rows
    frame = pd.DataFrame(rows("OneRanker", "patience 2", [10, 10, 10], [0.5, 0.5, 0.5], stopped=False)
                         + rows("OneRanker", "plateau, patience 2", [9, 9.5, 9.25], [0.6, 0.5, 0.55])
                         + rows("Step-1 generator", "patience 2", [10, 10, 10], [0.6, 0.6, 0.6])
                         + rows("Step-1 generator", "plateau, patience 2", [10, 10.1, 9.9], [0.6, 0.6, 0.6]))
    out = patience_study.paired(frame, "patience 2").set_index("model")
    assert out.loc["OneRanker", "rule's verdict"] == "plateau, patience 2 ends lower"
    assert out.loc["Step-1 generator", "rule's verdict"] == "not separated"
    assert patience_study.plateau_adopted(frame, "patience 2") == \
        "plateau schedule adopted: all 6 plateau runs ended by its rule before the cap, and no model's best " \
        "validation loss ends higher (paired by seed)"
    capped = frame.assign(**{"stopped early": [True] * 3 + [False, True, True] + [True] * 6})
    assert patience_study.plateau_adopted(capped, "patience 2") == \
        "plateau schedule not adopted: 1 of 6 plateau runs reached their cap"
    at_cap = frame.assign(epochs=[40] * 9 + [60, 40, 40])    # stopped by its rule, but at the cap's epoch
    assert patience_study.plateau_adopted(at_cap, "patience 2") == \
        "plateau schedule not adopted: 1 of 6 plateau runs reached their cap"
    higher = frame.assign(**{"best valid loss": [10, 10, 10, 11, 11.5, 11.2] + [10] * 6})
    assert patience_study.plateau_adopted(higher, "patience 2") == \
        "plateau schedule not adopted: OneRanker: plateau, patience 2 ends higher"


def test_patience_study_refuses_bad_arguments_and_builds_its_rules(monkeypatch, capsys):
    import pandas as pd
    patience_study = _patience_study()
    for argv, why in ((["--patience", "2"], "two or more rules"), (["--patience", "5", "2"], "must be the smallest"),
                      (["--patience", "2", "2", "--plateau-epochs", "40"], "distinct values"),
                      (["--seeds", "0"], "two or more seeds"), (["--mps", "--device", "cpu"], "--device cpu is not one"),
                      (["--epochs", "0"], "--epochs must be at least 1"),
                      (["--patience", "2", "--plateau-epochs", "0"], "--plateau-epochs must be at least 1"),
                      (["--plot", "curves.csv"], "--plot and --figure go together"),
                      (["--plot", "no_such.csv", "--figure", "x.png"], "no_such.csv: no such file")):
        monkeypatch.setattr(sys, "argv", ["patience_study.py", *argv])   # in this process: argparse's refusal
        with pytest.raises(SystemExit) as refused:
            patience_study.main()
        assert refused.value.code == 2 and why in capsys.readouterr().err, argv
    # the rules: each patience on the profile's schedule; --epochs sets their cap, else the profile's
    # stays; the plateau rule at the reference patience under its own cap
    # (the patience rules pin the cosine schedule: the paper profile's own is the plateau one)
    cosine = {"train.lr_schedule": "cosine"}
    assert patience_study.rules([2, 5]) == {"patience 2": {**cosine, "train.patience": 2},
                                            "patience 5": {**cosine, "train.patience": 5}}
    assert patience_study.rules([2], epochs=60, plateau_epochs=40) == {
        "patience 2": {**cosine, "train.patience": 2, "train.epochs": 60},
        "plateau, patience 2": {"train.lr_schedule": "plateau", "train.patience": 2, "train.epochs": 40}}
    from oneranker.config import make_config
    paper = {name: make_config("paper", **rule).train for name, rule in patience_study.rules([2], 30, 60).items()}
    assert (paper["patience 2"].lr_schedule, paper["patience 2"].epochs) == ("cosine", 30)   # the former rule
    assert (paper["plateau, patience 2"].lr_schedule, paper["plateau, patience 2"].epochs) == ("plateau", 60)
    capped = patience_study.variants(patience_study.rules([2, 5], epochs=60))
    assert set(capped) == {"OneRanker, patience 2", "Step-1 generator, patience 2", "OneRanker, patience 5",
                           "Step-1 generator, patience 5"}
    assert capped["Step-1 generator, patience 2"] == {**patience_study.MODELS["Step-1 generator"], **cosine,
                                                      "train.patience": 2, "train.epochs": 60}
    # the learning curves are read from the models trained under the rule's cap, not the profile's

    class FakeStudy:
        seeds = (0,)
        asked: list[dict] = []

        def learning_curves(self, overrides: dict) -> pd.DataFrame:
            self.asked.append(overrides)
            return pd.DataFrame({"seed": 0, "epoch": [1, 2, 3, 4, 5, 6], "valid_loss": [4.0, 3.0, 2.0, 2.5, 2.2, 2.1],
                                 "seconds": [1.0, 1.0, 1.0, 1.0, 1.0, 1.5], "stopped_early": False})

        def configs(self, overrides: dict, seed: int):
            from oneranker.config import make_config
            return [make_config("smoke", seed, **overrides)]

    rule = {"train.patience": 2, "train.epochs": 6}
    row = patience_study.curves_summary(FakeStudy(), "OneRanker", "patience 2", rule).iloc[0]
    assert FakeStudy.asked[-1] == rule
    assert (row["epochs"], row["best epoch"], row["best valid loss"], row["stopped early"], row["cap"]) == \
        (6, 3, 2.0, False, 6)
    assert row["last 5 epochs"] == pytest.approx(2.1 / 4.0 - 1) and row["train seconds"] == 6.5
    patience_study.curves_summary(FakeStudy(), "OneRanker", "patience 2", {"train.patience": 2})
    assert FakeStudy.asked[-1] == {"train.patience": 2}


def _rehearse_sittings():
    return load_tool("scripts/rehearse_sittings.py")


def test_rehearse_sittings_reads_each_entry_of_a_hand_made_progress_log():
    """scripts/rehearse_sittings.py's reading of paper.sh's stamps: per entry, the models the
    cache gained (the count after it less the count after the entry before) and its seconds."""
    log = "\n".join([
        "2026-12-04T10:00:00Z start",
        "2026-12-04T10:00:05Z notebook 04 start (seeds 0 1 2    )",
        "2026-12-04T10:20:05Z notebook 04 end rc=0 (seeds 0 1 2); models in the cache: 15",
        "2026-12-04T10:20:09Z histories 04 rc=0",
        "2026-12-04T10:20:10Z notebook 05 start (seeds 0 --results-only   )",
        "2026-12-04T10:29:10Z notebook 05 end rc=1 (seeds 0); models in the cache: 21",
        "2026-12-04T10:29:11Z queue start"])
    assert _rehearse_sittings().entry_rows(log) == [
        {"notebook": "04", "seeds": "0 1 2", "rc": 0, "models trained": 15, "seconds": 1200.0},
        {"notebook": "05", "seeds": "0", "rc": 1, "models trained": 6, "seconds": 540.0}]


def test_each_entry_of_a_notebook_in_a_sitting_has_its_own_log_name():
    """paper.sh's log of a notebook's K-th entry in one sitting (several passes of it): nb_NN.log for
    the first, nb_NN_K.log after, whatever other notebooks came between."""
    name = _rehearse_sittings().entry_log_name
    assert name("06", []) == "nb_06.log"
    assert name("06", ["05", "06"]) == "nb_06_2.log"
    assert name("06", ["06", "05", "06"]) == "nb_06_3.log"
    assert name("05", ["06", "06"]) == "nb_05.log"


def test_two_sittings_through_the_device_scripts_train_what_the_shared_results_measured(tmp_path):
    """Two sittings of .device/paper.sh at the smoke profile on the CPU (scripts/rehearse_sittings.py):
    notebook 04's seed-0 models as a pass, then, on a bare machine from its results cache, 05's
    seeds 0 and 1 as two passes of one sitting (each pass's log and results its own: a sitting cut
    in the second keeps the first). Seed 0 trains exactly the models results/shared_results.csv counts for 05 after 04 (both
    measure a bare machine, one through reproduce, one through the device scripts): fewer than 05
    alone only because a model 04 used itself no longer binds 05 (oneranker.cache.ASKER_ENV).
    A bad entry stops paper.sh before any work, naming it."""
    import pandas as pd

    rehearse = _rehearse_sittings()
    if rehearse.job_running() is not None:
        pytest.skip("a paper.sh job is running on this machine: a rehearsal would replace its /tmp/w and /tmp/out")
    table = rehearse.rehearse(["04:0", "05:0 05:1"])
    shared = pd.read_csv(ROOT / "results" / "shared_results.csv", dtype={"notebook": str}).set_index("notebook")
    alone, after = shared.loc["05", "models per seed alone"], shared.loc["05", "models per seed after"]
    assert list(table["rc"]) == [0, 0, 0]
    # the second sitting's two passes of 05: seed 0 shares 04's results, seed 1 has none to share
    assert list(table["models trained"]) == [shared.loc["04", "models per seed alone"], after, alone]
    assert after < alone
    # each pass's pools read from its own log (nb_05.log, then nb_05_2.log): one pool each
    assert list(table["pools"]) == [str(n) for n in table["models trained"]]
    assert list(table["models evaluated"]) == [shared.loc["04", "models per seed alone"], alone, alone]


def test_paper_sh_refuses_a_bad_entry_before_any_work():
    """.device/paper.sh names a bad entry, seed list, or GPU-test processes or time limit and exits 2
    before its setup (no copy of the tree, no install, no notebook)."""
    rehearse = _rehearse_sittings()
    if rehearse.job_running() is not None:
        pytest.skip("a paper.sh job is running on this machine")
    for bad, seeds, why in (("05:0,0", "", "give distinct seeds"), ("05:0,00", "", "give distinct seeds"),
                            ("5", "", "give a notebook NN"), ("05 05:1", "", "named whole before it"),
                            ("05 05", "", "named whole before it"), ("05:0 05:1,0", "", "seed 0 of notebook 05 is in an earlier pass"),
                            ("05:1 05:01", "", "seed 1 of notebook 05 is in an earlier pass"),
                            ("05:0 05", "0 1", "seed 0 of notebook 05 is in an earlier pass"),   # SEEDS: 05 -> 05:0,1
                            ("09", "", "give a notebook NN"), ("05:", "", "give a notebook NN"),
                            (" ", "", "no entry"), ("05", "0 0", "give distinct seeds"),
                            ("05", "0,1", "give seeds as numbers")):
        env = {k: v for k, v in os.environ.items() if k != "SEEDS"} | ({"SEEDS": seeds} if seeds else {})
        done = subprocess.run(["bash", str(ROOT / ".device" / "paper.sh"), str(ROOT), "0" * 40, bad],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 2 and why in done.stderr, (bad, seeds, done.stderr)
        assert "start" not in Path("/tmp/out/progress.log").read_text(), "setup.sh ran"
    # the GPU tests' processes at once (pytest -n) and their time limit
    for name, value, why in (("GPU_TEST_PROCS", "0", "a number of pytest processes"),
                             ("GPU_TEST_PROCS", "four", "a number of pytest processes"),
                             ("GPU_TEST_PROCS", "100", "a number of pytest processes"),
                             ("GPU_TEST_SECONDS", "5", "time limit in seconds"),
                             ("GPU_TEST_SECONDS", "15m", "time limit in seconds")):
        env = {k: v for k, v in os.environ.items() if k != "SEEDS"} | {name: value}
        done = subprocess.run(["bash", str(ROOT / ".device" / "paper.sh"), str(ROOT), "0" * 40, "05"],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 2 and why in done.stderr, (name, value, done.stderr)
        assert "start" not in Path("/tmp/out/progress.log").read_text(), "setup.sh ran"


NVIDIA_SMI_H100 = ("|   0  NVIDIA H100 80GB HBM3          On  |   00000000:00:06.0 Off |                    0 |\n"
                   "| N/A   35C    P0             71W /  700W |       0MiB /  81559MiB |      0%      Default |\n")


NVIDIA_SMI_H200 = "|   0  NVIDIA H200                    On  |   00000000:00:06.0 Off |                    0 |\n"


@pytest.mark.parametrize("smi", [NVIDIA_SMI_H100, NVIDIA_SMI_H200, "NVIDIA-SMI has failed\n"],
                         ids=["h100", "h200", "no_card"])
def test_collect_names_a_sitting_s_files_by_the_card_it_ran_on(tmp_path, smi):
    """.device/collect.sh: the device tool's H200 kind may lend an H100 (2026-12-05), so the files
    of a paper sitting are named by the card its nvidia-smi names (notebook05_h100_COMMIT.txt),
    and a sitting whose card cannot be read is refused before anything is written."""
    import tarfile

    repo = tmp_path / "repo"
    (repo / ".device").mkdir(parents=True)
    (repo / ".device" / "collect.sh").write_text((ROOT / ".device" / "collect.sh").read_text())
    out = tmp_path / "sitting" / "out"
    out.mkdir(parents=True)
    (out / "nvidia_smi_start.txt").write_text(smi)
    (out / "progress.log").write_text("2026-12-05T15:17:25Z start\n"
                                      "2026-12-05T15:31:36Z notebook 05 end rc=0 (seeds 0); models in the cache: 7\n")
    (out / "nb_05.log").write_text("[1/1] 05_dc_loss_ablations.ipynb\n    done in 819.7 s, GPU busy 67%\n")
    (out / "histories_05.jsonl").write_text('{"notebook": "05"}\n')
    (out / "results_cache.tar.gz").write_bytes(b"")    # (a refused sitting must not copy it either)
    files_at = tmp_path / "files"
    files_at.mkdir()
    with tarfile.open(files_at / "out.tar.gz", "w:gz") as tar:
        tar.add(out, arcname="out")
    done = subprocess.run(["bash", str(repo / ".device" / "collect.sh"), str(files_at), "a9afbb0" + "0" * 33],
                          capture_output=True, text=True)
    written = sorted(p.name for p in (repo / "results" / "paper").glob("*")) if (repo / "results").exists() else []
    if smi != "NVIDIA-SMI has failed\n":
        card, name = ("h100", "NVIDIA H100 80GB HBM3") if smi is NVIDIA_SMI_H100 else ("h200", "NVIDIA H200")
        assert done.returncode == 0, done.stderr
        assert written == [f"histories_05_{card}_a9afbb0.jsonl", f"notebook05_{card}_a9afbb0.txt",
                           "results_cache_a9afbb0.tar.gz"]
        header = (repo / "results" / "paper" / f"notebook05_{card}_a9afbb0.txt").read_text().splitlines()[0]
        assert header.startswith(f"# notebook 05 at paper, one {name}, 2026-12-05, commit a9afbb0:")
    else:
        assert done.returncode == 1 and "which card ran it?" in done.stderr
        assert written == []
