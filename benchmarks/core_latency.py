"""How far apart this machine's first two CPUs are: the round trip of one byte between them.

    python benchmarks/core_latency.py [--samples 10]

Two processes, pinned to the first two CPUs this process may use, bounce one byte of shared
memory back and forth; the result is nanoseconds per round trip (Python's polling included, so
it reads higher than a C probe). On the 2-vCPU AMD EPYC VM of docs/speed.md it is about
180-230 ns when the hypervisor runs both vCPUs on cores that share an L3 cache and about
340-410 ns when it splits them (a C probe: about 70 against 340 ns); the split lasts minutes
and costs a 2-thread training step about a third of its speed (matrix multiplies at the layers'
shapes drop from ~185 to ~140 GFLOP/s while 2048^3 holds). `train_speed.py` and
`step_breakdown.py` print it next to their timings so a reader can tell which placement a run
had. Standard library only (Linux: CPU affinity); a probe takes about 0.1 s.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import statistics
import subprocess
import sys
import time
from multiprocessing import get_context, shared_memory

BOUNCES = 100_000
PR_SET_PDEATHSIG = 1  # prctl option: a signal for this process when its parent dies
WARM_UP = 300_000  # untimed bounces first (~60 ms): after 50,000 the first sample still read 1.6x slow


def _answer(name: str, cpu: int, bounces: int) -> None:
    try:  # die with the measuring process (e.g. killed by measure()'s timeout) instead of spinning on
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):
        pass
    if os.getppid() == 1:  # the measuring process is already gone
        return
    os.sched_setaffinity(0, {cpu})
    shm = shared_memory.SharedMemory(name=name)
    buf = shm.buf
    for _ in range(bounces):
        while buf[0] != 1:
            pass
        buf[0] = 0
    del buf
    shm.close()


def round_trip_ns(cpus: tuple[int, int], bounces: int = BOUNCES) -> float:
    """Nanoseconds per round trip of one byte between CPUs `cpus[0]` and `cpus[1]`."""
    shm = shared_memory.SharedMemory(create=True, size=64)
    buf = shm.buf
    buf[0] = 0
    other = get_context("fork").Process(target=_answer, args=(shm.name, cpus[1], WARM_UP + bounces))
    mask = os.sched_getaffinity(0)
    try:
        other.start()
        os.sched_setaffinity(0, {cpus[0]})
        for n in (WARM_UP, bounces):  # only the second pass is kept
            t0 = time.perf_counter()
            for _ in range(n):
                buf[0] = 1
                while buf[0] != 0:
                    pass
            seconds = time.perf_counter() - t0
        other.join()
    finally:
        os.sched_setaffinity(0, mask)
        del buf
        shm.close()
        shm.unlink()
    return seconds / bounces * 1e9


def measure(samples: int = 3) -> float | None:
    """Median round trip in ns between the first two usable CPUs over `samples` probes, run in a
    fresh interpreter (so the caller's threads are not forked; about 0.1 s a probe); None where
    fewer than two CPUs are usable or the probe fails."""
    if len(os.sched_getaffinity(0)) < 2:
        return None
    try:
        run = subprocess.run([sys.executable, __file__, "--samples", str(samples)], capture_output=True,
                             text=True, timeout=10 * samples)
        return statistics.median(float(v) for v in run.stdout.split())
    except (subprocess.TimeoutExpired, statistics.StatisticsError, ValueError):
        return None


def describe(values: list[float | None]) -> str:
    """Round trips in ns as "min-max" (one number if they agree, "-" where none was measured)."""
    ns = [v for v in values if v is not None]
    if not ns:
        return "-"
    lo, hi = round(min(ns)), round(max(ns))
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("core_latency: fewer than two usable CPUs, nothing to measure")
    for _ in range(args.samples):
        print(f"{round_trip_ns((cpus[0], cpus[1])):.0f}", flush=True)


if __name__ == "__main__":
    main()
