"""Training throughput when several models train at once in one stack (`autoenc.stacked`).

    python benchmarks/stack_speed.py [--device cpu|cuda] [--stacks 2 4 8] [--depth 3] [--epochs 3]
                                     [--cuda-graphs auto|off|forward|step]

For one preset at L=30 on MNIST it prints the seconds per epoch of one `fit` and of `fit_stacked`
with K models (seeds 0..K-1), and the seconds per model-epoch: the median over epochs after the
first, training steps only (the stack's epoch is shared, so per model it is divided by K). The
speed-up is one fit's epoch over the stack's per-model epoch: above 1 the stack trains more
models per second than separate runs one after another.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from autoenc import data
from autoenc.config import CUDA_GRAPHS, cuda_graphs_mode
from autoenc.model import ModelConfig
from autoenc.training.stacked import fit_stacked
from autoenc.training import TrainConfig, fit, resolve_device
from autoenc.training.device import use_cuda_graphs


def median_epoch(history: list[dict]) -> float:
    """Median training seconds of the epochs after the first (all of them if there is one)."""
    times = [h["train_seconds"] for h in history]
    return statistics.median(times[1:] or times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stacks", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cuda-graphs", choices=CUDA_GRAPHS, default="auto",
                    help="as trainer.cuda_graphs: auto (forward/backward graphs on CUDA), off, forward, step (the whole step)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    x_train, _ = data.load("mnist", "train")
    x_val, _ = data.load("mnist", "val")
    mc = ModelConfig.preset(args.depth, 30)

    def config(seed: int) -> TrainConfig:
        return TrainConfig(epochs=args.epochs, device=args.device, precision=args.precision, threads=args.threads,
                           seed=seed, patience=0)

    one = median_epoch(fit(mc, x_train, x_val, config(0), progress=False,
                                   cuda_graphs=cuda_graphs_mode(args.cuda_graphs)).history)
    print(f"device {device}, {torch.get_num_threads()} threads, precision {args.precision}, "
          f"depth {args.depth}, L=30, {len(x_train):,} training images"
          + {True: ", CUDA graphs (forward and backward)", "step": ", CUDA graphs (whole step)"}.get(
              use_cuda_graphs(cuda_graphs_mode(args.cuda_graphs), device), ""))
    print("| models | s/epoch | s per model-epoch | speed-up over one fit at a time |")
    print("| --- | --- | --- | --- |")
    print(f"| 1 (fit) | {one:.2f} | {one:.2f} | 1.00x |", flush=True)
    for k in args.stacks:
        results = fit_stacked(mc, [(x_train, x_val, config(seed)) for seed in range(k)], progress=False,
                              cuda_graphs=cuda_graphs_mode(args.cuda_graphs))
        epoch = median_epoch(results[0].history)
        print(f"| {k} (stacked) | {epoch:.2f} | {epoch / k:.3f} | {one / (epoch / k):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
