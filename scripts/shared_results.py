"""How many models a notebook still trains when the models' results of the notebooks before it
are in the cache: the paper series' sittings start bare, but each brings back its cache's results
(``.device/paper.sh``), and a notebook sharing models with an earlier one (the same config and
seed, asked the same results) then need not train them (:func:`oneranker.cache.answered`).

Measured, not inferred: each notebook runs ``reproduce --results-only`` at the toy ``smoke``
profile, one seed, in a scratch copy of the checkout, once from an empty cache and once after
the notebooks before it, their results in the cache but not their models or worlds (a bare
machine: :func:`bare_machine`); the run's "models trained" phases are counted. Which models a
notebook shares and which results it asks are the notebooks' code, the same at every profile,
so the counts carry over to the paper profile's seeds (the sitting estimate of docs/paper_profile.md reads them).
Writes ``results/shared_results.csv``.

Until 2026-12-04 the later notebooks ran with the earlier ones' models still in the cache, which
no sitting has: that counted 6 of 05's 10 models per seed after 04 where a bare machine trained
all 10 (04 uses its models themselves, and that record then bound every notebook: see
``oneranker.cache.ASKER_ENV``). ``scripts/rehearse_sittings.py`` runs a plan of sittings through
the device scripts themselves.

    python scripts/shared_results.py [--notebooks 04 05 06] [--out results/shared_results.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from oneranker.cache import atomic_write_text  # noqa: E402
# In a scratch copy: the notebooks named, one seed, results only; prints each run's phases as JSON
RUN = ("import json, sys; from oneranker.reproduce import run_notebooks; "
       "records = run_notebooks(notebooks=sys.argv[1:], profile='smoke', seeds=[0], device='cpu', results_only=True); "
       "print('PHASES ' + json.dumps([r.get('phases', []) for r in records]))")


def scratch_copy(dest: Path) -> Path:
    """The checkout's tracked files (as they are now, uncommitted edits included) copied to ``dest``:
    its own cache, results and figures, so the repository's are never touched."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def bare_machine(workdir: Path) -> None:
    """What the next GPU sitting starts from: a bare machine whose cache holds only the results
    brought in (``.device/paper.sh`` RESULTS_IN). The trained models and simulated worlds stay on
    the machine that made them (a paper model's weights exceed a file the device tool brings back),
    so a later notebook that needs a model itself, or asks it a result not yet computed, trains it
    again."""
    cache = workdir / "cache"
    for entry in cache.iterdir() if cache.is_dir() else ():
        if entry.name != "results":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def models_trained(workdir: Path, notebook: str) -> int:
    """Run ``notebook`` (e.g. "05") results-only in ``workdir`` over whatever its cache holds; the
    models its "models trained" phases counted."""
    path = next((workdir / "notebooks").glob(f"{notebook}_*.ipynb"), None)
    if path is None:
        raise FileNotFoundError(f"no notebook {notebook}_*.ipynb in {workdir / 'notebooks'}")
    # the copy's package for this process and the notebooks' kernels alike (an editable install
    # would otherwise lead the kernels to the checkout's, edits made during the run included)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", RUN, str(path)], cwd=workdir, capture_output=True, text=True, env=env)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PHASES ")), None)
    if done.returncode != 0 or line is None:
        why = f"exit {done.returncode}" if done.returncode != 0 else "no PHASES line in its output"
        raise RuntimeError(f"notebook {notebook}, results-only at the smoke profile, failed ({why}):\n"
                           f"stdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}")
    return count_trained(json.loads(line.removeprefix("PHASES ")))


def count_trained(phases_per_run: list[list[dict]]) -> int:
    """The models of every "models trained" phase of every run (a notebook can train in several
    pools: :meth:`oneranker.study.Study._ensure_models` trains those an ask finds missing)."""
    return sum(p["items"] or 0 for phases in phases_per_run for p in phases if p["phase"] == "models trained")


def measure(notebooks: list[str]) -> pd.DataFrame:
    """Per notebook after the first: models trained per seed alone (empty cache) and after the
    notebooks before it in the list (their results in the cache)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chain = scratch_copy(Path(tmp) / "chain")
        first = models_trained(chain, notebooks[0])
        bare_machine(chain)
        rows.append({"notebook": notebooks[0], "after": "", "models per seed alone": first,
                     "models per seed after": first})
        for i, nb in enumerate(notebooks[1:], 1):
            after = models_trained(chain, nb)
            bare_machine(chain)
            alone = models_trained(scratch_copy(Path(tmp) / f"alone_{nb}"), nb)
            rows.append({"notebook": nb, "after": " ".join(notebooks[:i]), "models per seed alone": alone,
                         "models per seed after": after})
            print(f"{nb}: {alone} models per seed alone, {after} after {', '.join(notebooks[:i])}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", nargs="+", default=["04", "05", "06"], help="in the order they run")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "shared_results.csv")
    args = ap.parse_args()
    if len(args.notebooks) < 2:
        ap.error("give two notebooks or more: the first's results are what the later ones reuse")
    table = measure(args.notebooks)
    atomic_write_text(args.out, table.to_csv(index=False))     # never a half-written file
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
