"""Where the notebooks write their figures and tables.

``make reproduce`` (:mod:`oneranker.reproduce`) runs the notebooks to produce the committed
``figures/<profile>/`` and ``results/<profile>/``, and says so through the environment of the
kernels it starts (``ONERANKER_OUTPUTS=committed``). Any other run (a learner in JupyterLab,
nbval re-executing a notebook, an exercise with another parameter) writes to
``scratch/figures/<profile>/`` and ``scratch/results/<profile>/`` instead, so that it never
overwrites what the repository ships. Paths are relative to the notebooks' folder.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

OUTPUTS_ENV = "ONERANKER_OUTPUTS"
COMMITTED = "committed"
KINDS = ("figures", "results")


def output_dir(kind: str, profile: str, root: str | Path = "..") -> Path:
    """The folder for ``kind`` (``figures`` or ``results``) of ``profile``: the committed one
    under ``root`` when the run was asked to write it, else the same under ``root/scratch``."""
    if kind not in KINDS:
        raise ValueError(f"output kind must be one of {KINDS}, got {kind!r}")
    base = Path(root) if os.environ.get(OUTPUTS_ENV) == COMMITTED else Path(root) / "scratch"
    return base / kind / profile


@contextlib.contextmanager
def writing_committed_outputs() -> Iterator[None]:
    """Within this block, notebook kernels started from this process (they inherit its
    environment) write the committed figures and tables."""
    before = os.environ.get(OUTPUTS_ENV)
    os.environ[OUTPUTS_ENV] = COMMITTED
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OUTPUTS_ENV, None)
        else:
            os.environ[OUTPUTS_ENV] = before
