"""Where one float32 training step's time goes, against the matrix-multiply bound.

    python benchmarks/step_breakdown.py [--depth 3] [--threads N] [--rounds 6] [--steps 50]

Times five variants of the training step of one preset at L=30 on MNIST (batch 256), interleaved
in one process: `rounds` rounds of `steps` steps of each variant, with this machine's 2048^3 GEMM
rate and the round trip between its first two CPUs (`core_latency.py`) measured after each round.
Prints each variant's median ms per step and its percentage of the lower bound
6 * weights * batch / (2048^3 GEMM rate), as `train_speed.py` does per epoch:

    the training step        what `fit` runs (batch gather, forward, loss, backward, fused Adam)
    without Adam             the same, no optimizer step
    no batch norm, no SiLU   dense layers only (with biases), Adam kept
    neither                  dense layers only, no optimizer step
    GEMMs alone              the step's matrix multiplies in its order (forward, then each
                             layer's weight and input gradient) and the batch gather

Interleaving matters on a shared machine whose speed drifts by 1.5x within minutes: each
variant sees the same moments. The differences between rows are what the step spends beyond
its GEMMs. (On the 2-vCPU VM of docs/speed.md the drift is the two vCPUs moving between cores
that share a cache, round trip ~200 ns, and cores apart, ~350 ns.)
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from aelab import data
from aelab.model import DenseAutoencoder, ModelConfig
from aelab.training import (TrainConfig, _Autoencode, adam_step, build_optimizer, init_model, prepare,
                            reconstruction_loss)
from core_latency import describe as round_trips, measure as core_round_trip
from train_speed import gemm_rate

BATCH = 256


def training_step(model: DenseAutoencoder, x: torch.Tensor, gen: torch.Generator, adam: bool):
    """A step as `fit` takes it (plain autoencoder, float32), optionally without the optimizer."""
    config = TrainConfig(precision="fp32", batch_size=BATCH)
    optimizer = build_optimizer(model, config, torch.device("cpu"), 1e-4)
    autoencode = _Autoencode(model)

    def step() -> None:
        clean = x.index_select(0, torch.randint(0, len(x), (BATCH,), generator=gen))
        _, out = autoencode(clean)
        loss = reconstruction_loss(out, clean, config.loss)
        loss.backward()
        if adam:
            adam_step(optimizer, 1e-4)
        else:
            optimizer.zero_grad(set_to_none=True)
    return step


def gemms_alone(model: DenseAutoencoder, x: torch.Tensor, gen: torch.Generator):
    """The step's GEMMs at its shapes and in its order, and its batch gather; nothing else."""
    weights = [lin.weight.detach() for lin in model.dense_layers()]

    def step() -> None:
        h = x.index_select(0, torch.randint(0, len(x), (BATCH,), generator=gen))
        inputs = []
        for w in weights:
            inputs.append(h)
            h = h @ w.t()
        grad = h
        for k in range(len(weights) - 1, -1, -1):
            grad.t() @ inputs[k]  # weight gradient
            if k:  # no input gradient for the images
                grad = grad @ weights[k]
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    prepare(TrainConfig(threads=args.threads, precision="fp32"))
    x = data.load("mnist", "train")[0].float().contiguous()
    gen = torch.Generator().manual_seed(0)

    def model(**kw) -> DenseAutoencoder:
        return init_model(ModelConfig.preset(args.depth, 30, **kw), 0, torch.device("cpu"))

    base = model()
    variants = {
        "the training step": training_step(base, x, gen, adam=True),
        "without Adam": training_step(model(), x, gen, adam=False),
        "no batch norm, no SiLU": training_step(model(norm="none", activation="linear"), x, gen, adam=True),
        "neither": training_step(model(norm="none", activation="linear"), x, gen, adam=False),
        "GEMMs alone": gemms_alone(base, x, gen),
    }
    for step in variants.values():  # warm-up: allocations, Adam's state, MKL's buffers
        for _ in range(20):
            step()
    times: dict[str, list[float]] = {name: [] for name in variants}
    rates, trips = [], []
    for _ in range(args.rounds):
        for name, step in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
        rates.append(gemm_rate([(2048, 2048, 2048)], torch.device("cpu"), seconds=0.3))
        trips.append(core_round_trip())
    rate = statistics.median(rates)
    bound = 6 * base.num_parameters() * BATCH / rate
    print(f"depth {args.depth}, L=30, batch {BATCH}, {torch.get_num_threads()} threads, float32; "
          f"GEMM 2048^3 {rate / 1e9:.0f} GFLOP/s (rounds: {min(rates) / 1e9:.0f}-{max(rates) / 1e9:.0f}), "
          f"bound {bound * 1e3:.2f} ms per step; core round trip {round_trips(trips)} ns")
    print("| step variant | ms per step (median) | % of bound |")
    print("| --- | --- | --- |")
    for name, t in times.items():
        ms = statistics.median(t)
        print(f"| {name} | {ms * 1e3:.2f} | {bound / ms:.0%} |")


if __name__ == "__main__":
    main()
