"""Where study trials run: in this process, side by side in local worker processes, or on Ray.

Every executor offers the same four things, used by `study.run_study`:
    submit(job) -> concurrent.futures.Future of the job's result: a trial's row, or for a list
                   of trials (a stack, `study.stack_groups`) the list of their rows
    has_slot(job)  whether a worker is free for the job now; the study holds the rest back, so
                   the trials it releases later (those others wait for) can still go first
    events        a queue of per-epoch progress messages, or None
    shutdown()    stop the workers (pending trials are dropped; finished ones are on disk)
A trial's numbers do not depend on the executor: each trial fixes its own seed and CPU threads.
"""
from __future__ import annotations

import contextlib
import copy
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from .. import data
from ..errors import ConfigError
from .trials import run_stack, run_trial


class InlineExecutor:
    """Runs each trial in this process when submitted (one at a time, with its own progress bar)."""

    events = None

    def __init__(self, study_dir: Path, data_dir: Path | None, progress: bool) -> None:
        self.study_dir, self.data_dir, self.progress = study_dir, data_dir, progress

    def has_slot(self, job: dict | list[dict]) -> bool:
        """Always True: submit runs the job before it returns."""
        return True

    def submit(self, job: dict | list[dict]) -> Future:
        """Run `job` (a trial dict, or a list of them: a stack) now; a done Future with its result
        row(s), or with the exception of a failed trial (Ctrl-C propagates)."""
        future: Future = Future()
        run = run_stack if isinstance(job, list) else run_trial
        try:
            future.set_result(run(job, self.study_dir, self.data_dir, progress=self.progress))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # recorded as a failed trial by the study
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        """Nothing to stop: no workers."""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle


@contextlib.contextmanager
def signals_ignored(*signums: int):
    """Ignore the signals `signums` (e.g. signal.SIGINT) while the block runs, then restore their
    handlers. Only the main thread can set handlers; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = [(s, signal.signal(s, signal.SIG_IGN)) for s in signums]
    try:
        yield
    finally:
        for s, handler in previous:
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _sigint_blocked():
    """Hold Ctrl-C back while the block runs (this thread; it arrives when the block ends, not
    lost). A process started inside the block starts with it blocked: the signal mask survives
    fork and exec, so a worker cannot be stopped by Ctrl-C before its initializer ignores it."""
    if not hasattr(signal, "pthread_sigmask"):  # not on POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_EVENTS = None  # in a worker process: the pool's progress queue (set by _init_worker)


def _init_worker(threads: int, checksums: dict, nice: int = 0, events=None) -> None:
    import torch

    global _EVENTS
    _ignore_sigint()
    _exit_with_parent(os.getppid())
    if nice:
        os.nice(nice)  # a lower priority (CPU_POOL_NICE): see cpu_workers
    torch.set_num_threads(threads)
    data.SHA256.update(checksums)  # the driver's table (tests register generated datasets in it)
    if events is not None:
        events.cancel_join_thread()  # a worker's exit never waits on progress messages nobody reads
    _EVENTS = events


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker within `every` seconds of its driver process `parent` dying (SIGKILL, the
    OOM killer), which leaves it no time to stop its workers: an orphaned worker would finish its
    trial beside the rerun's worker on the same trial, then wait forever for the next one (the
    pool's queue never reports EOF: every worker holds its write end). Its checkpoint stays."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="autoenc-exit-with-parent", daemon=True).start()


def _run_job(job: dict | list[dict], study_dir: Path, data_dir: Path | None):
    """In a worker: run a trial (or a stack, a list of trials), its progress to the pool's queue."""
    run = run_stack if isinstance(job, list) else run_trial
    return run(job, study_dir, data_dir, _EVENTS)


CPU_KINDS = ("pca", "baselines")  # trials that never use a GPU
CPU_POOL_NICE = 19  # the CPU-only pool beside GPU trainers yields every core a trainer wants


class LocalPoolExecutor:
    """Runs trials side by side in `workers` local processes (spawned, `threads` CPU threads each).
    With cpu_workers > 0 the CPU-only trials (PCA, classical baselines) run in a second pool of
    that many processes at the lowest priority (CPU_POOL_NICE), so on a GPU machine they use
    every cycle the GPU trainers leave instead of taking the trainers' places."""

    def __init__(self, study_dir: Path, data_dir: Path | None, workers: int, threads: int,
                 cpu_workers: int = 0) -> None:
        ctx = mp.get_context("spawn")
        # the workers' progress messages; a plain queue the workers get when they start (a
        # manager's queue would cost a process of its own)
        self.events = ctx.Queue()
        self.study_dir, self.data_dir = study_dir, data_dir
        self._slots = {"main": workers, "cpu": cpu_workers}
        self._running: dict[str, list[Future]] = {"main": [], "cpu": []}  # per pool, pruned by has_slot
        pool = dict(mp_context=ctx, initializer=_init_worker)
        checksums = copy.deepcopy(data.SHA256)
        self._pool = ProcessPoolExecutor(max_workers=workers, initargs=(threads, checksums, 0, self.events), **pool)
        self._cpu_pool = (ProcessPoolExecutor(max_workers=cpu_workers,
                                              initargs=(threads, checksums, CPU_POOL_NICE, self.events), **pool)
                          if cpu_workers > 0 else None)
        self.submitted = {"main": 0, "cpu": 0}  # trials sent to each pool

    def _side(self, job: dict | list[dict]) -> str:
        cpu_only = not isinstance(job, list) and job["kind"] in CPU_KINDS
        return "cpu" if self._cpu_pool is not None and cpu_only else "main"

    def has_slot(self, job: dict | list[dict]) -> bool:
        """Whether the pool that would run `job` has a worker without a trial."""
        side = self._side(job)
        self._running[side] = [f for f in self._running[side] if not f.done()]
        return len(self._running[side]) < self._slots[side]

    def submit(self, job: dict | list[dict]) -> Future:
        """Queue `job` (a trial dict, or a list of them: a stack) on its pool (the CPU-only pool for
        PCA and baselines beside GPU trainers); a Future of its result row(s)."""
        side = self._side(job)
        pool = self._cpu_pool if side == "cpu" else self._pool
        # submit may start a worker; one that gets Ctrl-C while it imports (a terminal sends it to
        # the whole process group) would print a traceback before its initializer ignores it
        with _sigint_blocked():
            future = pool.submit(_run_job, job, self.study_dir, self.data_dir)
        self.submitted[side] += 1
        self._running[side].append(future)
        return future

    def shutdown(self) -> None:
        """Stop the pools: wait for idle workers to exit, kill those still running a trial (an
        interrupted study; their checkpoints stay)."""
        pools = [p for p in (self._pool, self._cpu_pool) if p is not None]
        # the study ended: let the workers exit cleanly
        if all(f.done() for running in self._running.values() for f in running):
            for p in pools:
                p.shutdown(wait=True)
        else:
            for p in pools:
                for proc in list(getattr(p, "_processes", {}).values()):
                    proc.terminate()  # Ctrl-C: do not wait for running trials; their checkpoints stay
                p.shutdown(wait=False, cancel_futures=True)
        self.events.close()


def default_workers(threads: int, on_gpu: bool) -> int:
    """How many trials to run side by side: one per `threads` cores on a CPU (more throughput than
    one trial on every core, docs/speed.md). On a GPU,
    several processes share it (small models leave it idle between kernel launches, so their
    launches interleave), up to 8 and one per core; CPU trials run beside them (`cpu_workers`)."""
    cores = _cores()
    if on_gpu:
        return max(1, min(8, cores))
    return max(1, cores // threads)


def cpu_workers(threads: int, on_gpu: bool) -> int:
    """Processes for the CPU-only trials (PCA, classical baselines) beside the GPU trainers:
    one per `threads` cores, all of them, at the lowest priority (CPU_POOL_NICE): a trainer keeps
    its core whenever it wants it, and the cores of trainers that wait go to the baselines
    (docs/speed.md). At most one per 2 GiB of memory (a baseline worker needs about 1 GiB). 0 on
    a CPU machine, where every trial shares one pool."""
    return max(1, min(_cores() // threads, _memory_gib() // 2)) if on_gpu else 0


def _memory_gib() -> int:
    """This machine's memory in GiB (a large number where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
    except (ValueError, OSError, AttributeError):
        return 1 << 20


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_executor(kind: str, study_dir: Path, data_dir: Path | None, workers: int, threads: int,
                  progress: bool, cpu_workers: int = 0, **ray_options):
    """Build the executor named `kind` ("local" or "ray"); cpu_workers: see `LocalPoolExecutor`."""
    if kind == "local":
        if workers <= 1 and cpu_workers <= 0:
            return InlineExecutor(study_dir, data_dir, progress)
        return LocalPoolExecutor(study_dir, data_dir, workers, threads, cpu_workers)
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(study_dir, data_dir, threads=threads, **ray_options)
    raise ConfigError(f"unknown executor {kind!r}; choose local or ray")


def drain(events) -> list:
    """All progress messages waiting in `events` (a queue or None)."""
    out = []
    while events is not None:
        try:
            out.append(events.get_nowait())
        except (queue.Empty, EOFError, OSError, BrokenPipeError):
            break
    return out
