"""How much sooner a study ends when its trials run side by side.

    python benchmarks/study_speed.py [--preset quick] [--out runs/study_speed]

Runs the same study twice from scratch: (a) the trials one after another in one process with
every core (workers=1, threads=all cores), (b) side by side, one single-thread trial per core
(workers=cores, threads=1, the default). Prints both wall times and the speed-up. (The two runs
use different thread counts per trial, so their numbers may differ in the last digits; a study's
numbers depend on its threads per trial, never on its workers.)
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from aelab.study import preset, run_study


def timed(name: str, out: Path, workers: int, threads: int) -> float:
    """Wall seconds of a fresh run of preset `name` with the given workers and threads."""
    shutil.rmtree(out, ignore_errors=True)
    config = preset(name)
    config.threads = threads
    t0 = time.perf_counter()
    run_study(config, out, workers=workers, progress=False, report=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--out", type=Path, default=Path("runs/study_speed"))
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    seq = timed(args.preset, args.out / "sequential", workers=1, threads=cores)
    par = timed(args.preset, args.out / "parallel", workers=cores, threads=1)
    print(f"| preset | one after another ({cores} threads) | side by side ({cores} x 1 thread) | speed-up |")
    print("| --- | --- | --- | --- |")
    print(f"| {args.preset} | {seq:.0f} s | {par:.0f} s | {seq / par:.2f}x |")


if __name__ == "__main__":
    main()
