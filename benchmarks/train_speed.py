"""How close one training gets to this machine's matrix-multiply limit.

    python benchmarks/train_speed.py [--epochs 5] [--precision fp32|bf16] [--device cpu|cuda] [--latent 30]
                                     [--cuda-graphs auto|off|forward|step] [--per-epoch]

For the depth-3 and depth-5 presets on MNIST it prints: seconds per epoch (median over epochs,
training steps only, scaled to 60,000 images), images per second, the float32 GEMM rate measured
in the same run at 2048^3 and at the layers' own shapes, and the percentage of the lower bound
6 * weights * 60,000 / GEMM rate that the epoch achieves (forward 2 FLOP per weight and image,
backward 4). On a CPU it also prints the round trip between the first two CPUs measured after each
epoch (`core_latency.py`): on a VM whose hypervisor sometimes splits the vCPUs across far-apart
cores, it tells which placement a run had.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from autoenc import data
from autoenc.model import DenseAutoencoder, ModelConfig
from autoenc.training import TrainConfig, fit, resolve_device
from autoenc.config import CUDA_GRAPHS, cuda_graphs_mode
from autoenc.training.device import use_cuda_graphs
from core_latency import describe as round_trips, measure as core_round_trip

IMAGES = 60_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gemm_rate(shapes: list[tuple[int, int, int]], device: torch.device, dtype=torch.float32,
              seconds: float = 1.0) -> float:
    """FLOP/s of torch.mm over a list of (m, k, n) products, repeated for about `seconds`."""
    mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
            for m, k, n in shapes]
    flop = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in mats:  # warm-up
        torch.mm(a, b)
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a, b in mats:
            torch.mm(a, b)
        reps += 1
    _sync(device)
    return flop * reps / (time.perf_counter() - t0)


def layer_shapes(model: DenseAutoencoder, batch: int) -> list[tuple[int, int, int]]:
    """The (m, k, n) GEMMs of one training step: forward, input gradient, weight gradient."""
    shapes = []
    for lin in model.dense_layers():
        n_out, n_in = lin.weight.shape
        shapes += [(batch, n_in, n_out), (batch, n_out, n_in), (n_out, batch, n_in)]
    return shapes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--latent", type=int, default=30)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--cuda-graphs", choices=CUDA_GRAPHS, default="auto",
                    help="as trainer.cuda_graphs: auto (forward/backward graphs on CUDA), off, forward, step (the whole step)")
    ap.add_argument("--per-epoch", action="store_true",
                    help="also print every timed epoch: s/epoch, %% of the 2048^3 bound, core round trip")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    x_train, _ = data.load("mnist", "train")
    x_val, _ = data.load("mnist", "val")
    print(f"device {device}, {torch.get_num_threads()} threads, precision {args.precision}, batch {args.batch_size}"
          + {True: ", CUDA graphs (forward and backward)", "step": ", CUDA graphs (whole step)"}.get(
              use_cuda_graphs(cuda_graphs_mode(args.cuda_graphs), device), ""))
    print("| preset | weights | s/epoch (60k) | images/s | GEMM 2048^3 GFLOP/s | GEMM at layer shapes GFLOP/s "
          "| bound s (2048^3) | % of bound | bound s (layer shapes) | % of that | core round trip ns |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for depth in (3, 5):
        mc = ModelConfig.preset(depth, args.latent)
        model = DenseAutoencoder(mc)
        weights = sum(lin.weight.numel() for lin in model.dense_layers())
        shapes = layer_shapes(model, args.batch_size)
        rates: list[tuple[float, float]] = []  # (2048^3, layer shapes), measured right after each epoch
        trips: list[float | None] = []  # core round trip in ns, measured right after each epoch

        def measure(row: dict, _model) -> None:
            rates.append((gemm_rate([(2048, 2048, 2048)], device, seconds=0.5),
                          gemm_rate(shapes, device, seconds=0.5)))
            trips.append(core_round_trip() if device.type == "cpu" else None)

        tc = TrainConfig(epochs=args.epochs, device=args.device, precision=args.precision,
                         batch_size=args.batch_size)
        result = fit(mc, x_train, x_val, tc, progress=False, on_epoch=measure, cuda_graphs=cuda_graphs_mode(args.cuda_graphs))
        # the first epoch warms caches and allocators; each later epoch is compared with the GEMM
        # rates and the core round trip measured just after it, so a machine whose speed drifts
        # still gives fair ratios
        timed = [(k + 1, h["train_seconds"] * IMAGES / len(x_train), r, trip)  # s/epoch scaled to 60,000
                 for k, (h, r, trip) in enumerate(zip(result.history, rates, trips))]
        timed = timed[1:] or timed
        flop = 6 * weights * IMAGES
        epoch = statistics.median(e for _, e, _, _ in timed)
        big, small = (statistics.median(r[i] for _, _, r, _ in timed) for i in (0, 1))
        pct_big, pct_small = (statistics.median(100 * flop / r[i] / e for _, e, r, _ in timed) for i in (0, 1))
        print(f"| depth {depth}, L={args.latent} | {weights:,} | {epoch:.2f} | {IMAGES / epoch:,.0f} | "
              f"{big / 1e9:.0f} | {small / 1e9:.0f} | {flop / big:.2f} | {pct_big:.0f}% | {flop / small:.2f} | "
              f"{pct_small:.0f}% | {round_trips([t for _, _, _, t in timed])} |", flush=True)
        if args.per_epoch:
            for k, e, r, trip in timed:
                print(f"| epoch {k} | | {e:.2f} | {IMAGES / e:,.0f} | {r[0] / 1e9:.0f} | {r[1] / 1e9:.0f} | "
                      f"| {100 * flop / r[0] / e:.0f}% | | {100 * flop / r[1] / e:.0f}% | {round_trips([trip])} |")


if __name__ == "__main__":
    main()
