"""How busy the GPU was while something ran: ``nvidia-smi`` samples, read as they arrive.

One home for the samplers of ``make paper``'s run record (a notebook's mean utilisation and
peak memory, beside its wall time) and of ``benchmarks/training_throughput.py`` (a contender's
timed window). Sampling is off where ``nvidia-smi`` is missing (a CPU machine): every summary
is then None, never a made-up zero.

Sample every two seconds or more: in one run on the H200 a training step took 494 ms with
samples every 100 ms against 167 ms without them (README), so frequent sampling can slow the
host it measures.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

QUERY = "utilization.gpu,memory.used"


@dataclass(frozen=True)
class Sample:
    at: float            # this host's clock (time.time()) when the line arrived
    utilisation: float   # percent of the interval a kernel ran, the mean over the machine's GPUs
    memory_mib: float    # memory used, summed over the machine's GPUs


def parse_line(line: str) -> tuple[float, float] | None:
    """One ``nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits``
    line as (utilisation %, memory MiB); None for a line that is not one (a warning, "[N/A]")."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


class GpuSampler:
    """``nvidia-smi`` utilisation and memory samples every ``every_ms``, stamped with this host's
    clock as they arrive, so that any window (a notebook, a benchmark contender) can be matched
    to them. A machine with several GPUs prints a line per GPU and sample: a sample is then
    their mean utilisation and their summed memory."""

    def __init__(self, every_ms: int = 2000, command: str = "nvidia-smi") -> None:
        if every_ms <= 0:
            raise ValueError(f"every_ms={every_ms}: sample at a positive interval (2000 or more is advised)")
        self.samples: list[Sample] = []
        self.proc: subprocess.Popen | None = None
        self._gpus = _gpu_count(command)
        if self._gpus:
            self.proc = subprocess.Popen([command, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits",
                                          "-lms", str(every_ms)], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        return self.proc is not None

    def _read(self) -> None:
        pending: list[tuple[float, float]] = []
        for line in self.proc.stdout:
            parsed = parse_line(line)
            if parsed is None:
                continue
            pending.append(parsed)
            if len(pending) == self._gpus:
                util = sum(u for u, _ in pending) / len(pending)
                self.samples.append(Sample(time.time(), util, sum(m for _, m in pending)))
                pending = []

    def summary(self, t0: float, t1: float) -> dict | None:
        """Mean utilisation (%), peak memory (MiB) and the number of samples between ``t0`` and
        ``t1`` (host clock); None when no sample fell there (or nothing is sampled)."""
        window = [s for s in list(self.samples) if t0 <= s.at <= t1]
        if not window:
            return None
        return {"gpu_busy_percent": round(sum(s.utilisation for s in window) / len(window), 1),
                "gpu_memory_peak_mib": max(s.memory_mib for s in window), "gpu_samples": len(window)}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gpu_count(command: str) -> int:
    """GPUs that ``command`` (nvidia-smi) lists; 0 where it is missing or fails."""
    if shutil.which(command) is None:
        return 0
    try:
        out = subprocess.run([command, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.strip().isdigit()) if out.returncode == 0 else 0
