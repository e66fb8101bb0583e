"""Rehearse a plan of GPU sittings here, on the CPU, at the toy ``smoke`` profile, before it costs
device time: the same scripts (``.device/paper.sh``, ``wait.sh``, ``collect.sh``), the same entries
and the same chain of results caches (each sitting starts from the last one's, ``RESULTS_IN``),
in a scratch copy of the checkout.

A sitting on the lent GPU starts bare, and what it trained is gone with it; what travels to the
next is its cache's results. A mistake in that chain (a results cache that does not serve, a
pass that trains what an earlier sitting had, an entry the scripts misread) shows only when a
sitting trains more than planned, at the price of the sitting. Which models a notebook shares
and which results it asks are the notebooks' code, the same at every profile, so a chain that
trains the planned models here trains them at the paper profile too.

A row per entry: its sitting, notebook and seeds, its exit status, the models it trained (the
scratch machine's model cache after it, less before it: a sitting's cache starts with none) and
in which pools (a model asked something new after the first pool trains in a later one, alone
or nearly: on the GPU slower per model than a full pool), the models it evaluated (its seeds'
configs) and its seconds here.

    python scripts/rehearse_sittings.py                                   # the plan in .device/README (NEXT)
    python scripts/rehearse_sittings.py --out results/sitting_rehearsal.csv    # what docs/paper_profile.md renders
    python scripts/rehearse_sittings.py --sittings "04 05:0" "05 06:0" "06"
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from oneranker.cache import atomic_write_text  # noqa: E402
from shared_results import scratch_copy  # noqa: E402  (scripts/, beside this file)

# The plan of .device/README's NEXT (docs/paper_profile.md, "The next sittings, rehearsed"): notebook
# 06 again under the paper profile's cap of 120 epochs (2026-12-06), a sitting per seed from a bare
# machine: 06's seed 0 as a pass, its seed 1 as a pass, then 06 whole (seed 2 trains). Notebooks
# 01-05 stand: their runs all stopped by their rule before the former cap of 60, so they are the
# runs the new cap trains (render_readme._defaults). Of two entries in a sitting, the first's
# results are sent back before the second starts, so a sitting cut in the second keeps the first.
# The series before ran "04", "05:0", "05:1", "05", "06:0", "06:1", "06" (sitting 5 planned as
# "06:0,1", one pool of 18, tight: the sessions' budgets had shrunk to failed starts, so a seed per
# sitting; results/sitting_rehearsal_fallback.csv).
PLAN = ["06:0", "06:1", "06"]
# Where paper.sh works and writes on any machine (setup.sh): one rehearsal at a time
WORK, OUT = Path("/tmp/w"), Path("/tmp/out")


def sitting_env(results_in: Path | None) -> dict[str, str]:
    """paper.sh's environment for a rehearsal: the toy profile on the CPU, no wheels installed,
    and this interpreter as the ``python3`` the scripts call."""
    # the folder of this interpreter's python3 (a venv's bin: a link to it elsewhere would leave the venv)
    bindir = Path(sys.executable).parent
    if not (bindir / "python3").exists():
        raise FileNotFoundError(f"no python3 beside {sys.executable}: paper.sh calls python3")
    env = {**os.environ, "PROFILE": "smoke", "DEVICE": "cpu", "WHEELS": "0",
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    for knob in ("RESULTS_IN", "SEEDS", "GPU_WORKERS", "DETERMINISTIC", "GPU_TESTS", "GPU_TEST_PROCS",
                 "GPU_TEST_SECONDS", "E2E", "CHECK_ONLY"):   # paper.sh's, not the caller's
        env.pop(knob, None)
    if results_in is not None:
        env["RESULTS_IN"] = str(results_in)
    return env


def job_running() -> int | None:
    """The pid of a paper.sh or job.sh still running on this machine (setup.sh's pid file), or None."""
    try:
        pid = int((OUT / "paper.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def script(repo: Path, name: str, args: list[str], env: dict[str, str]) -> str:
    """Run ``.device/NAME`` with ``args``; its output, or an error carrying its last words."""
    done = subprocess.run(["bash", str(repo / ".device" / name), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def entry_rows(log: str) -> list[dict]:
    """Per entry of a sitting, from paper.sh's progress log: the notebook, its seeds, its exit
    status, the models it trained (the cache's count after it, less the count after the entry
    before: the sitting's cache starts with none) and its seconds."""
    rows, before, started = [], 0, None
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        if m := re.match(r"notebook (\d\d) start", text):
            started = pd.Timestamp(stamp)
        elif m := re.match(r"notebook (\d\d) end rc=(\d+) \(seeds ([\d ]+)\); models in the cache: (\d+)", text):
            models = int(m.group(4))
            rows.append({"notebook": m.group(1), "seeds": m.group(3), "rc": int(m.group(2)),
                         "models trained": models - before,
                         "seconds": (pd.Timestamp(stamp) - started).total_seconds() if started is not None else None})
            before = models
    return rows


def run_sitting(repo: Path, entries: str, commit: str, results_in: Path | None, collected: Path) -> tuple[int, list[dict], str]:
    """One sitting: paper.sh in the foreground, wait.sh's snapshot into ``collected``, then
    collect.sh into the scratch checkout. Its exit status, its entries' rows and its progress log."""
    running = job_running()
    if running is not None:
        raise RuntimeError(f"a job is running (pid {running}, {OUT / 'paper.pid'}): a rehearsal would "
                           f"replace its {WORK} and {OUT}")
    if OUT.exists():
        shutil.rmtree(OUT)            # a DONE or pid left by another run would end or stop this one
    env = sitting_env(results_in)
    done = subprocess.run(["bash", str(repo / ".device" / "paper.sh"), str(repo), commit, entries],
                          env=env, capture_output=True, text=True)
    log = (OUT / "progress.log").read_text() if (OUT / "progress.log").exists() else ""
    collected.mkdir(parents=True)
    script(repo, "wait.sh", ["0"], {**env, "OUT": str(collected)})
    script(repo, "collect.sh", [str(collected), commit], env)
    rows = entry_rows(log)
    for i, row in enumerate(rows):   # the training pools of its log: a later pool trains alone
        nb_log = OUT / entry_log_name(row["notebook"], [r["notebook"] for r in rows[:i]])
        text = nb_log.read_text(errors="replace") if nb_log.exists() else ""
        row["pools"] = " + ".join(m.group(1) for m in re.finditer(r"models trained: (\d+) in", text))
    return done.returncode, rows, log


def entry_log_name(notebook: str, earlier: list[str]) -> str:
    """paper.sh's log of an entry of ``notebook`` after the sitting's ``earlier`` entries' notebooks:
    nb_NN.log for the notebook's first entry, nb_NN_K.log for its K-th (several passes of it)."""
    k = earlier.count(notebook) + 1
    return f"nb_{notebook}.log" if k == 1 else f"nb_{notebook}_{k}.log"


def rehearse(sittings: list[str]) -> pd.DataFrame:
    """Every sitting of the plan in order, each from the last one's results cache: a row per entry."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = scratch_copy(Path(tmp) / "repo")
        results_in = None
        for i, entries in enumerate(sittings, 1):
            commit = f"{i:07x}" + "0" * 33     # 40 characters, the first 7 (collect.sh's names) distinct
            rc, entry_table, log = run_sitting(repo, entries, commit, results_in, Path(tmp) / f"files_at_{i}")
            for entry, row in zip(entries.split(), entry_table):
                rows.append({"sitting": i, "entry": entry, "results in": "" if results_in is None else "the last sitting's",
                             **row, "models evaluated": evaluated(row["notebook"], row["seeds"])})
                print(", ".join(f"{k}: {v}" for k, v in rows[-1].items()), flush=True)
            if rc != 0 or len(entry_table) != len(entries.split()):
                raise RuntimeError(f"sitting {i} ({entries}) exited {rc} after {len(entry_table)} of its entries:\n{log}")
            results_in = repo / "results" / "smoke" / f"results_cache_{commit[:7]}.tar.gz"
            if not results_in.exists():
                raise RuntimeError(f"sitting {i} left no results cache ({results_in.name}): the next has none to start from")
    return pd.DataFrame(rows)


def evaluated(notebook: str, seeds: str) -> int:
    """The models an entry evaluates (every config of its seeds): its other work grows with them."""
    from oneranker import studies

    return len(studies.notebook_configs(notebook, "smoke", [int(s) for s in seeds.split()]))


def check_sittings(sittings: list[str], repo: Path = ROOT) -> None:
    """paper.sh's own checks of each sitting's entries (CHECK_ONLY=1: its checks and nothing
    else), for every sitting before the first one runs: a sitting refuses a bad entry only when
    it starts, after the earlier sittings' work."""
    env = {**sitting_env(None), "CHECK_ONLY": "1"}
    for i, entries in enumerate(sittings, 1):
        done = subprocess.run(["bash", str(repo / ".device" / "paper.sh"), str(repo), "0" * 40, entries],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ValueError(f"sitting {i} ({entries!r}): {done.stderr.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sittings", nargs="+", default=PLAN, help="each sitting's paper.sh entries, in order")
    ap.add_argument("--out", type=Path, help="write the table here (CSV)")
    args = ap.parse_args()
    try:
        check_sittings(args.sittings)
    except ValueError as e:
        ap.error(str(e))
    if shutil.which("bash") is None:
        ap.error("bash is needed: the sittings' scripts are bash")
    table = rehearse(args.sittings)
    if args.out:
        atomic_write_text(args.out, table.to_csv(index=False))     # never a half-written file
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
