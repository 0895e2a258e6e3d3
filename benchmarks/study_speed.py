"""How much sooner a study ends when its trials run side by side.

    python benchmarks/study_speed.py [--preset quick] [--epochs-scale 1] [--baseline-subset N] [--only sequential]
                                     [--out runs/study_speed]

Runs the same study twice from scratch: (a) the trials one after another in one process with
every core (workers=1, threads=all cores), (b) side by side, one single-thread trial per core
(workers=cores, threads=1, the default). Prints both wall times and the speed-up. (The two runs
use different thread counts per trial, so their numbers may differ in the last digits; a study's
numbers depend on its threads per trial, never on its workers.)

The default preset takes about an hour side by side on 2 cores and 1.3 hours one after another
(both: 2 h 9 min here, docs/speed.md); `--preset default --epochs-scale 0.1 --baseline-subset 100`
runs the same 140 trials, in the same order and with the same dependencies, with a tenth of every
epoch budget and of the slow baselines' test subset (42 minutes both ways when the study had 60
trials). `--only sequential` (or `parallel`) runs one of the two, for a full-budget study whose
other half was timed by `autoenc study` itself (its summary.json has the wall time).
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import time
from pathlib import Path

from autoenc.findings import load_study
from autoenc.report.sections import schedule_text, timeline
from autoenc.study import StudyConfig, preset, run_study


def scaled(name: str, epochs_scale: float, baseline_subset: int | None) -> StudyConfig:
    """Preset `name` with every epoch budget times epochs_scale (at least 1 epoch) and, if given,
    the slow baselines' test subset set to baseline_subset images."""
    config = preset(name)

    def scale(epochs: dict | None) -> dict | None:
        return None if epochs is None else {d: max(1, round(e * epochs_scale)) for d, e in epochs.items()}

    config.epochs, config.gpu_epochs = scale(config.epochs), scale(config.gpu_epochs)
    if config.denoising is not None:
        d = config.denoising
        d.epochs, d.gpu_epochs = scale(d.epochs), scale(d.gpu_epochs)
        if baseline_subset is not None:
            d.subset = baseline_subset
    return config


def timed(config: StudyConfig, out: Path, workers: int, threads: int) -> float:
    """Wall seconds of a fresh run of the study `config` with the given workers and threads;
    prints what kept the workers busy (`report.timeline`)."""
    shutil.rmtree(out, ignore_errors=True)
    config = copy.deepcopy(config)
    config.threads = threads
    t0 = time.perf_counter()
    run_study(config, out, workers=workers, progress=False, report=False)
    seconds = time.perf_counter() - t0
    jobs, st = timeline(load_study(out))
    if st:
        print(f"  {schedule_text(jobs, st)} (last result at {st['span']:.1f} s)", flush=True)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--out", type=Path, default=Path("runs/study_speed"))
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    ap.add_argument("--baseline-subset", type=int, default=None)
    ap.add_argument("--only", choices=["sequential", "parallel"], default=None,
                    help="Run only one of the two (the other column prints a dash).")
    args = ap.parse_args()
    config = scaled(args.preset, args.epochs_scale, args.baseline_subset)
    label = args.preset if args.epochs_scale == 1 and args.baseline_subset is None else \
        f"{args.preset}, epochs x {args.epochs_scale:g}, baseline subset {config.denoising.subset}"
    cores = len(os.sched_getaffinity(0))
    seq = par = None
    if args.only != "parallel":
        seq = timed(config, args.out / "sequential", workers=1, threads=cores)
        print(f"one after another: {seq:.0f} s", flush=True)
    if args.only != "sequential":
        par = timed(config, args.out / "parallel", workers=cores, threads=1)
        print(f"side by side: {par:.0f} s", flush=True)
    cells = [f"{t:.0f} s" if t is not None else "–" for t in (seq, par)]
    speedup = f"{seq / par:.2f}x" if seq is not None and par is not None else "–"
    print(f"| preset | one after another ({cores} threads) | side by side ({cores} x 1 thread) | speed-up |")
    print("| --- | --- | --- | --- |")
    print(f"| {label} | {cells[0]} | {cells[1]} | {speedup} |")


if __name__ == "__main__":
    main()
