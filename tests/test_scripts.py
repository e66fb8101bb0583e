"""The measurement scripts run end to end at the smoke profile and write what they promise."""

import json
import subprocess
import sys
from pathlib import Path

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
