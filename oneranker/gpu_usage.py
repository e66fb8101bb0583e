"""How busy the GPU was while something ran: ``nvidia-smi`` samples, read as they arrive.

One home for the samplers of ``make paper``'s run record (a notebook's mean utilisation and
peak memory, beside its wall time) and of ``benchmarks/training_throughput.py`` (a contender's
timed window). Sampling is off where ``nvidia-smi`` is missing (a CPU machine): every summary
is then None, never a made-up zero.

Sample every two seconds or more: an H200 benchmark stepped at 494 ms per step with samples
every 100 ms and training runs sampled every 2-3 s at about 70 ms, which suggested that
frequent sampling slows the host it measures; the same contender later stepped at 452 ms with
no sampler at all (docs/learning.md), so that is a suspicion, not a measurement. Two seconds costs
nothing that matters to a notebook of minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

QUERY = "index,utilization.gpu,memory.used"


@dataclass(frozen=True)
class Sample:
    at: float            # this host's clock (time.time()) when the line arrived
    utilisation: float   # percent of the interval a kernel ran, the mean over the machine's GPUs
    memory_mib: float    # memory used, summed over the machine's GPUs


def parse_line(line: str) -> tuple[int, float | None, float | None] | None:
    """One ``nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits``
    line as (GPU index, utilisation %, memory MiB), a value nvidia-smi cannot give ("[N/A]", e.g.
    a MIG slice's utilisation) as None; None for a line that is not one (a warning)."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3 or not parts[0].isdigit():
        return None

    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    return int(parts[0]), number(parts[1]), number(parts[2])


def visible_gpus() -> list[str]:
    """``-i`` arguments for nvidia-smi naming the GPUs this process may use
    (``CUDA_VISIBLE_DEVICES`` as indices), so that a job on one GPU of a shared host is not
    averaged with the others; none (every GPU) when it is unset or not a list of indices."""
    ids = os.environ.get("CUDA_VISIBLE_DEVICES", "").replace(" ", "")
    return ["-i", ids] if ids and all(p.isdigit() for p in ids.split(",")) else []


class GpuSampler:
    """``nvidia-smi`` utilisation and memory samples every ``every_ms``, stamped with this host's
    clock as they arrive, so that any window (a notebook, a benchmark contender) can be matched
    to them. With several GPUs nvidia-smi prints a line per GPU and sample: the lines of one
    sample are grouped by GPU index (a repeated index starts the next sample), and a sample is
    their mean utilisation and their summed memory, over the GPUs that reported each."""

    def __init__(self, every_ms: int = 2000, command: str = "nvidia-smi") -> None:
        if every_ms <= 0:
            raise ValueError(f"every_ms={every_ms}: sample at a positive interval (2000 or more is advised)")
        self.samples: list[Sample] = []
        self.proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._gpus = _gpu_count(command)
        if self._gpus:
            self.proc = subprocess.Popen([command, *visible_gpus(), f"--query-gpu={QUERY}",
                                          "--format=csv,noheader,nounits", "-lms", str(every_ms)],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        return self.proc is not None

    def _read(self, stdout) -> None:
        pending: dict[int, tuple[float | None, float | None]] = {}
        for line in stdout:
            sample = self._add_line(parse_line(line), pending)
            if sample is not None:
                self.samples.append(sample)

    def _add_line(self, parsed: tuple[int, float | None, float | None] | None,
                  pending: dict[int, tuple[float | None, float | None]]) -> Sample | None:
        """Add one parsed line to the sample being gathered (``pending``, by GPU index); the
        sample this line finished (every GPU seen) or cut short (its GPU seen already), if any."""
        if parsed is None:
            return None
        index, util, mem = parsed
        done = None
        if index in pending:            # a GPU's line was missing: the sample ended without it
            done = _sample(pending)
            pending.clear()
        pending[index] = (util, mem)
        if len(pending) == self._gpus:
            done = _sample(pending)
            pending.clear()
        return done

    def summary(self, t0: float, t1: float) -> dict | None:
        """Mean utilisation (%), peak memory (MiB) and the number of samples between ``t0`` and
        ``t1`` (host clock); None when no sample fell there (or nothing is sampled)."""
        window = [s for s in list(self.samples) if t0 <= s.at <= t1]
        if not window:
            return None
        return {"gpu_busy_percent": round(sum(s.utilisation for s in window) / len(window), 1),
                "gpu_memory_peak_mib": max(s.memory_mib for s in window), "gpu_samples": len(window)}

    def close(self) -> None:
        """Stop nvidia-smi (killed if it does not end within 5 s) and its reader."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sample(pending: dict[int, tuple[float | None, float | None]]) -> Sample | None:
    """One sample from its GPUs' lines: None when no GPU gave its utilisation."""
    utils = [u for u, _ in pending.values() if u is not None]
    if not utils:
        return None
    return Sample(time.time(), sum(utils) / len(utils), sum(m for _, m in pending.values() if m is not None))


def _gpu_count(command: str) -> int:
    """GPUs that ``command`` (nvidia-smi) lists; 0 where it is missing or fails."""
    if shutil.which(command) is None:
        return 0
    try:
        out = subprocess.run([command, *visible_gpus(), "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.strip().isdigit()) if out.returncode == 0 else 0
