"""CPU work spread over worker processes: one home for the process pool that the model pool
(:mod:`oneranker.pool`) and the market measurements (:func:`oneranker.reference.headroom_table`)
share. Light on purpose: it imports nothing of the model, so pure-measurement modules can use it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
PROGRESS_BARS_ENV = "ONERANKER_PROGRESS_BARS"


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             unit: str = "it", leave: bool = True, disable: bool = False) -> tqdm:
    """tqdm.auto's bar (a widget in Jupyter), left out where ``ONERANKER_PROGRESS_BARS=0``: in a
    headless run (``reproduce`` sets it for the notebooks it executes) a widget's saved output is
    its first frame, "0%", which the committed notebook would show for ever; the studies print
    each phase's count and time instead (:meth:`oneranker.study.Study._phase`)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave,
                disable=disable or os.environ.get(PROGRESS_BARS_ENV) == "0")


@contextlib.contextmanager
def environment(updates: dict[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``updates`` set inside the block (a None value leaves that variable as
    it is), every one of them restored afterwards, also on error: the one home for settings that
    child processes inherit (notebook kernels, MPS clients, NCCL ranks)."""
    before = {name: os.environ.get(name) for name in updates}
    try:
        os.environ.update({name: value for name, value in updates.items() if value is not None})
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(143)`` in this process, as Ctrl-C raises KeyboardInterrupt.

    SIGTERM is what ``kill``, ``timeout``, torchrun and job schedulers send to stop a run, and
    Python's default for it is to die on the spot: no ``finally`` block runs, so an atomic
    write leaves its temporary file beside the cache (:func:`oneranker.cache.atomic_save`), a
    private MPS daemon is never told to quit (:func:`oneranker.pool.mps`) and a worker pool's
    children are orphaned. As an exception those blocks run, and the exit status is still
    the 128 + 15 a shell expects of a terminated process. Installed by the command line
    (``python -m oneranker``) and by every worker of :func:`process_pool`; a no-op outside the
    main thread, where Python allows no signal handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_terminated)


def _exit_terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """``workers`` fresh interpreter processes for the block (spawned, not forked: a forked child
    would inherit the parent's CUDA and thread state), each stopping cleanly on SIGTERM
    (:func:`exit_on_sigterm`). The block's end waits for the calls submitted; a failure or a
    stop inside it (an exception, Ctrl-C, SIGTERM) stops the workers instead (:func:`stop_pool`)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_on_sigterm)
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor, grace: float = 60.0) -> None:
    """Shut ``pool`` down after its caller failed or was stopped: the calls not yet started are
    cancelled, and the running ones are stopped rather than waited for, since a paper-profile
    model can train for many minutes. Each worker is sent SIGTERM, which it turns into an
    exception (:func:`exit_on_sigterm`), so its atomic writes clean up; what it had finished is
    in the cache, and a rerun resumes from there. A worker still alive ``grace`` seconds later
    (stuck in a driver call, say) is killed. ``ProcessPoolExecutor.terminate_workers`` (Python
    3.14) sends the SIGTERMs; before it, the pool's own table of processes is the only handle."""
    processes = dict(getattr(pool, "_processes", None) or {})
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
    else:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes.values():
            if process.is_alive():
                process.terminate()
    deadline = time.monotonic() + grace
    for process in processes.values():
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def result_of(future: Future[T], running: str) -> T:
    """``future.result()``; a worker killed from outside (by the kernel for memory, most often)
    breaks the whole pool with an exception that names no cause, so it is re-raised saying what
    was ``running`` (e.g. "2 workers training models on cpu") and what to try."""
    try:
        return future.result()
    except BrokenProcessPool as e:
        raise RuntimeError(
            f"a worker process died abruptly ({running}); the usual cause is the machine running out of memory "
            "(a paper-profile model on a CPU, or too many workers): try fewer workers (--workers, "
            "ONERANKER_GPU_WORKERS) or a smaller profile; what finished is in the cache and a rerun skips it") from e


def in_processes(fn: Callable[..., T], args: list[tuple], workers: int | None = None,
                 desc: str | None = None) -> list[T]:
    """``[fn(*a) for a in args]``, the calls spread over spawned worker processes (results in the
    order of ``args``). For CPU work of seconds to minutes per call that is seeded by its
    arguments alone (a world's simulation), so the results do not depend on how many ran at
    once. Default: half the cores (each call's numpy uses more than one); with one worker, or
    one call, it runs in this process. The first failure is raised; the calls not yet
    started are cancelled and the running ones stopped (:func:`process_pool`). ``fn`` must be
    importable by the workers (a module-level function)."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    workers = min(len(args), workers or max(1, (os.cpu_count() or 1) // 2))
    if workers <= 1:
        return [fn(*a) for a in args]
    with process_pool(workers) as pool:
        futures = [pool.submit(fn, *a) for a in args]
        for f in progress(as_completed(futures), total=len(futures), desc=desc, disable=desc is None):
            result_of(f, f"{workers} workers {desc or fn.__name__}")
    return [f.result() for f in futures]
