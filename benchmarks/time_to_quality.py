"""Wall seconds of training until the test psnr first reaches a target.

    python benchmarks/time_to_quality.py [--target 21.6] [--budget-seconds 10] [--depth 3] [--latent 30]

Trains MNIST depth 3, L=30 twice: with the default recipe (TrainConfig(): up to 100 epochs,
early stopping on validation) and with the short-budget recipe (the epochs that fit
--budget-seconds, as `autoenc train --budget-seconds` picks them). After every epoch the test psnr
(mean per-image, dB) is measured outside the training clock; the table gives the training
seconds at which it first reached --target, and where each run ended. 21.6 dB is what 20 Keras
epochs reach on this machine (about 45 s).
"""
from __future__ import annotations

import argparse
import time

from autoenc import data
from autoenc.evaluation import psnr, reconstruct
from autoenc.model import ModelConfig
from autoenc.training import TrainConfig, budget_epochs, fit


def timed_run(mc: ModelConfig, tc: TrainConfig, x_train, x_val, x_test, target: float) -> dict:
    """Train and return the training seconds to `target` dB (None if never), final psnr, epochs."""
    state = {"train": 0.0, "hit": None, "psnr": None}

    def on_epoch(row, model):
        state["train"] += row["train_seconds"]
        model.eval()
        state["psnr"] = psnr(reconstruct(model, x_test), x_test)
        model.train()
        if state["hit"] is None and state["psnr"] >= target:
            state["hit"] = (state["train"], row["epoch"])

    t0 = time.perf_counter()
    fit(mc, x_train, x_val, tc, progress=False, on_epoch=on_epoch)
    return {**state, "epochs": tc.epochs, "wall": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=float, default=21.6)
    ap.add_argument("--budget-seconds", type=float, default=10.0)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--latent", type=int, default=30)
    ap.add_argument("--precision", default=TrainConfig.precision)
    args = ap.parse_args()
    x_train, _ = data.load("mnist", "train")
    x_val, _ = data.load("mnist", "val")
    x_test, _ = data.load("mnist", "test")
    mc = ModelConfig.preset(args.depth, args.latent)
    default = TrainConfig(precision=args.precision)
    short = TrainConfig(precision=args.precision,
                        epochs=budget_epochs(mc, TrainConfig(precision=args.precision), len(x_train), args.budget_seconds))
    print(f"MNIST depth {args.depth}, L={args.latent}; target test psnr {args.target} dB")
    print("| recipe | epochs | training s to target (epoch) | final test psnr | training s in all |")
    print("| --- | --- | --- | --- | --- |")
    for name, tc in ((f"short budget ({args.budget_seconds:g} s)", short), ("default", default)):
        r = timed_run(mc, tc, x_train, x_val, x_test, args.target)
        hit = "not reached" if r["hit"] is None else f"{r['hit'][0]:.1f} (epoch {r['hit'][1]})"
        print(f"| {name} | {r['epochs']} | {hit} | {r['psnr']:.2f} | {r['train']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
