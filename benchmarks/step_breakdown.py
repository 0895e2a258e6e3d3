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
    hand-written backward    the training step's arithmetic without autograd: the same ATen
                             kernels called directly, gradients written into buffers kept from
                             step to step, no batch-norm running averages (checked first:
                             bit-identical weights to the training step's after 5 steps)

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

from autoenc import data
from autoenc.model import DenseAutoencoder, ModelConfig
from autoenc.training.device import prepare
from autoenc.training.loop import (Autoencode, TrainConfig, adam_step, build_optimizer, init_model,
                                   reconstruction_loss)
from core_latency import describe as round_trips, measure as core_round_trip
from train_speed import gemm_rate

BATCH = 256


def training_step(model: DenseAutoencoder, x: torch.Tensor, gen: torch.Generator, adam: bool):
    """A step as `fit` takes it (plain autoencoder, float32), optionally without the optimizer."""
    config = TrainConfig(precision="fp32", batch_size=BATCH)
    optimizer = build_optimizer(model, config, torch.device("cpu"), 1e-4)
    autoencode = Autoencode(model)

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


def hand_written_step(model: DenseAutoencoder, x: torch.Tensor, gen: torch.Generator):
    """The training step (default model: batch norm and SiLU, linear code, sigmoid output, MSE;
    float32) with its backward pass written out instead of recorded by autograd: what autograd's
    bookkeeping costs, as an upper bound of what removing it could save."""
    aten = torch.ops.aten
    optimizer = build_optimizer(model, TrainConfig(precision="fp32", batch_size=BATCH), torch.device("cpu"), 1e-4)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grads = [torch.zeros_like(p) for p in params]
    mods = [*model.encoder, *model.decoder]
    layers = []  # (dense, batch norm or None, activation module)
    while mods:
        dense, norm = mods.pop(0), None
        if isinstance(mods[0], torch.nn.BatchNorm1d):
            norm = mods.pop(0)
        layers.append((dense, norm, mods.pop(0)))

    @torch.no_grad()
    def step() -> None:
        for p, g in zip(params, grads):
            p.grad = g
        h = clean = x.index_select(0, torch.randint(0, len(x), (BATCH,), generator=gen))
        saved = []
        for dense, norm, act in layers:
            a = torch.mm(h, dense.weight.t()) if dense.bias is None else torch.addmm(dense.bias, h, dense.weight.t())
            stats = None
            if norm is not None:
                n, mean, invstd = aten.native_batch_norm(a, norm.weight, norm.bias, None, None, True, 0.0, norm.eps)
                stats = (a, mean, invstd)
                a = n
            saved.append((h, stats, a))
            h = act(a)
        g = torch.sub(h, clean).mul_(2.0 / h.numel())  # d mean((y - x)^2) / dy
        g = aten.sigmoid_backward(g, h)
        for k in range(len(layers) - 1, -1, -1):
            dense, norm, act = layers[k]
            h_in, stats, pre = saved[k]
            if isinstance(act, torch.nn.SiLU):
                g = aten.silu_backward(g, pre)
            if norm is not None:
                a, mean, invstd = stats
                g, dgamma, dbeta = aten.native_batch_norm_backward(g, a, norm.weight, None, None, mean, invstd,
                                                                   True, norm.eps, [True, True, True])
                norm.weight.grad.copy_(dgamma)
                norm.bias.grad.copy_(dbeta)
            if dense.bias is not None:
                torch.sum(g, 0, out=dense.bias.grad)
            torch.mm(g.t(), h_in, out=dense.weight.grad)
            if k:
                g = torch.mm(g, dense.weight)
        adam_step(optimizer, 1e-4)
    return step


def same_weights(depth: int, x: torch.Tensor, steps: int = 5) -> bool:
    """Whether the hand-written step leaves exactly the training step's weights after `steps` steps
    from the same initialization and batches."""
    models = [init_model(ModelConfig.preset(depth, 30), 0, torch.device("cpu")) for _ in range(2)]
    for model, make in zip(models, (lambda m, x, g: training_step(m, x, g, adam=True), hand_written_step)):
        step = make(model, x, torch.Generator().manual_seed(1))
        for _ in range(steps):
            step()
    return all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    prepare("cpu", args.threads, "fp32")
    x = data.load("mnist", "train")[0].float().contiguous()
    gen = torch.Generator().manual_seed(0)

    def model(**kw) -> DenseAutoencoder:
        return init_model(ModelConfig.preset(args.depth, 30, **kw), 0, torch.device("cpu"))

    identical = same_weights(args.depth, x)
    base = model()
    variants = {
        "the training step": training_step(base, x, gen, adam=True),
        "without Adam": training_step(model(), x, gen, adam=False),
        "no batch norm, no SiLU": training_step(model(norm="none", activation="linear"), x, gen, adam=True),
        "neither": training_step(model(norm="none", activation="linear"), x, gen, adam=False),
        "GEMMs alone": gemms_alone(base, x, gen),
        "hand-written backward": hand_written_step(model(), x, gen),
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
    print(f"hand-written backward: weights after 5 steps bit-identical to the training step's: {identical}")
    print("| step variant | ms per step (median) | % of bound |")
    print("| --- | --- | --- |")
    for name, t in times.items():
        ms = statistics.median(t)
        print(f"| {name} | {ms * 1e3:.2f} | {bound / ms:.0%} |")


if __name__ == "__main__":
    main()
