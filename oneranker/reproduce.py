"""Execute the notebook series headlessly with papermill (``make reproduce``, ``make paper``).

The default profile writes the executed notebooks back in place (they are committed executed
with it, for nbval); other profiles write to ``results/<profile>/notebooks/`` so the committed
default-profile notebooks stay untouched. Each notebook is executed into a temporary file and
renamed into place only when it succeeded: a failure never leaves a half-executed notebook.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = "quick"


def notebook_paths(notebooks: list[str] | None = None) -> list[Path]:
    paths = [Path(n).resolve() for n in notebooks] if notebooks else sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"notebooks not found: {', '.join(missing)}")
    return paths


def run_notebooks(profile: str, notebooks: list[str] | None = None, seed: int = 0, device: str = "auto",
                  seeds: list[int] | None = None) -> list[dict]:
    """Run each notebook with papermill; return (and save) a record of the run. ``seeds``
    replaces the notebooks' own seed lists (e.g. fewer seeds for the costly paper profile)."""
    import papermill as pm

    if seeds is not None and (len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0):
        raise ValueError(f"seeds={seeds}: give at least two distinct non-negative seeds (a CI needs two)")
    from .train import resolve_device

    resolve_device(device)  # e.g. `make paper` on a machine without CUDA fails here, not in notebook 02
    paths = notebook_paths(notebooks)
    parameters = {"profile": profile, "seed": seed, "device": device}
    if seeds is not None:
        parameters["seeds"] = list(seeds)
    out_dir = None if profile == DEFAULT_PROFILE else ROOT / "results" / profile / "notebooks"
    records = []
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} (profile={profile}, seed={seed})", flush=True)
        target = path if out_dir is None else out_dir / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{path.stem}.", dir=target.parent)
        os.close(fd)
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(path), tmp, parameters=parameters,
                                cwd=str(path.parent), progress_bar=True, kernel_name="python3")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        records.append({"notebook": path.name, "seconds": round(time.perf_counter() - start, 1)})
        print(f"    done in {records[-1]['seconds']} s -> {target.relative_to(ROOT)}", flush=True)
    import torch

    log = ROOT / "results" / profile / "run_record.json"
    # A run of some notebooks updates their entries and keeps the others' (a record per notebook).
    previous = json.loads(log.read_text()).get("runs", []) if log.exists() else []
    ran = {r["notebook"] for r in records}
    runs = sorted([r for r in previous if r["notebook"] not in ran] + records, key=lambda r: r["notebook"])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    record = {"profile": profile, "seed": seed, "seeds": list(seeds) if seeds is not None else "notebook defaults",
              "device": device, "gpu": gpu, "python": platform.python_version(),
              "torch": torch.__version__, "machine": platform.platform(), "processor": platform.processor(),
              "cpu_count": os.cpu_count(), "runs": runs}
    log.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=log.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record, indent=1))
    os.replace(tmp, log)
    return records
