"""What several training processes sharing one device get, against one process alone.

    python benchmarks/gpu_share.py [--device cuda] [--processes 1 2 4] [--depth 5] [--stack 8] [--epochs 4]
                                   [--cuda-graphs auto|off|forward|step] [--threads 1]

A study on a GPU runs its trainer processes side by side on one device. Without NVIDIA's MPS the
GPU gives their kernels turns (time slices) instead of running them together, so the chain the
study waits for (the grid, then the l2 and l1 trials, then the combined one) slows down by about
the number of busy processes, and the models per second of all of them together may stay at
what one process gets. For each count P of processes this starts P spawned processes, each
training one stack of `--stack` models (depth `--depth`, L=30, MNIST, seeds 0..K-1) for
`--epochs` epochs, all released at once, and prints the median epoch of one process (epochs
after the first, training steps only), the models per second of all P together
(P x K / that epoch) and both against P = 1. Run it with `nvidia-cuda-mps-control -d` started
and without to see what MPS changes. On a CPU (`--device cpu --threads 1`) it measures trials
side by side, one thread each, as a study on a CPU runs them.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import statistics

from autoenc import data
from autoenc.config import CUDA_GRAPHS, cuda_graphs_mode
from autoenc.model import ModelConfig
from autoenc.training.stacked import fit_stacked
from autoenc.training import TrainConfig, fit


def _train(args: argparse.Namespace, ready, results) -> None:
    """One process: load MNIST, wait until all P processes are ready, train, report its epochs."""
    x_train, _ = data.load("mnist", "train")
    x_val, _ = data.load("mnist", "val")
    mc = ModelConfig.preset(args.depth, 30)
    jobs = [(x_train, x_val, TrainConfig(epochs=args.epochs, device=args.device, threads=args.threads,
                                          precision=args.precision, seed=seed, patience=0))
            for seed in range(args.stack)]
    ready.wait()
    if args.stack == 1:
        history = fit(mc, *jobs[0], progress=False, cuda_graphs=cuda_graphs_mode(args.cuda_graphs)).history
    else:
        history = fit_stacked(mc, jobs, progress=False, cuda_graphs=cuda_graphs_mode(args.cuda_graphs))[0].history
    times = [h["train_seconds"] for h in history]
    results.put((os.getpid(), statistics.median(times[1:] or times)))


def _result(results, procs) -> float:
    """The next process's median epoch in seconds; SystemExit when a process died without one."""
    while True:
        try:
            return results.get(timeout=5)[1]
        except queue.Empty:
            dead = [proc for proc in procs if proc.exitcode not in (None, 0)]
            if dead:
                for proc in procs:
                    proc.kill()
                raise SystemExit(f"a training process exited with code {dead[0].exitcode} (its error is above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--stack", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: torch's)")
    ap.add_argument("--cuda-graphs", choices=CUDA_GRAPHS, default="auto",
                    help="as trainer.cuda_graphs: auto (forward/backward graphs on CUDA), off, forward, step (the whole step)")
    args = ap.parse_args()
    if min(args.processes) < 1 or args.stack < 1 or args.epochs < 2:
        ap.error("--processes and --stack must be >= 1 and --epochs >= 2 (the first epoch is not timed)")
    args.processes = sorted(set(args.processes) | {1})  # the others are compared with one process alone
    ctx = mp.get_context("spawn")
    print(f"device {args.device}, depth {args.depth}, L=30, {args.stack} model(s) per process, precision "
          f"{args.precision}, graphs {args.cuda_graphs}, "
          f"MPS pipe {'found' if os.path.exists(os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '/tmp/nvidia-mps')) else 'absent'}")
    print("| processes | s/epoch of one (median) | models/s, all together | epoch vs 1 process | models/s vs 1 process |")
    print("| --- | --- | --- | --- | --- |")
    alone = None
    for p in args.processes:
        ready, results = ctx.Barrier(p), ctx.Queue()
        procs = [ctx.Process(target=_train, args=(args, ready, results)) for _ in range(p)]
        for proc in procs:
            proc.start()
        epochs = [_result(results, procs) for _ in procs]
        for proc in procs:
            proc.join()
        epoch = statistics.median(epochs)
        rate = p * args.stack / epoch
        alone = alone or (epoch, rate)
        print(f"| {p} | {epoch:.3f} | {rate:.3g} | {epoch / alone[0]:.2f}x | {rate / alone[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
