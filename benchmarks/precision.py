"""bf16 autocast against float32 at the same wall time: the rule for making bf16 the default.

    python benchmarks/precision.py [--dataset mnist] [--epochs 30] [--depths 3 5] [--latent 30] [--threads N] [--device cpu]

For each preset it trains, with the default recipe: float32 for --epochs epochs (the
study's CPU budget by default), bf16 for the same epochs, and bf16 for as many epochs as fit in
float32's training time (bf16's per-epoch time taken from its own run). It prints training
seconds, per-epoch seconds and final test psnr (mean per-image, dB), and whether bf16 at float32's
wall time stays within 0.1 dB of float32 (the issue's rule for adopting it).
"""
from __future__ import annotations

import argparse

import torch

from autoenc import data
from autoenc.evaluation import psnr, reconstruct
from autoenc.model import ModelConfig
from autoenc.training import TrainConfig, fit

TOLERANCE_DB = 0.1


def run(mc: ModelConfig, tc: TrainConfig, x_train, x_val, x_test) -> dict:
    """Train once; return training seconds (steps only), seconds per epoch and test psnr in dB."""
    result = fit(mc, x_train, x_val, tc, progress=False)
    train = sum(h["train_seconds"] for h in result.history)
    return {"epochs": result.epochs_run, "train": train, "per_epoch": train / result.epochs_run,
            "psnr": psnr(reconstruct(result.model, x_test), x_test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--depths", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--latent", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x_train, _ = data.load(args.dataset, "train")
    x_val, _ = data.load(args.dataset, "val")
    x_test, _ = data.load(args.dataset, "test")
    print(f"{args.dataset}, default recipe, device {args.device}, {torch.get_num_threads()} threads; "
          f"test psnr = mean per-image PSNR in dB")
    print("| preset | precision | epochs | training s | s/epoch | test psnr | vs float32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for depth in args.depths:
        mc = ModelConfig.preset(depth, args.latent)
        base = dict(epochs=args.epochs, patience=0, device=args.device)
        fp32 = run(mc, TrainConfig(**base, precision="fp32"), x_train, x_val, x_test)
        bf16 = run(mc, TrainConfig(**base, precision="bf16"), x_train, x_val, x_test)
        same_time = max(1, int(fp32["train"] / bf16["per_epoch"]))
        bf16_t = run(mc, TrainConfig(**{**base, "epochs": same_time}, precision="bf16"), x_train, x_val, x_test)
        for name, r in (("fp32", fp32), ("bf16, same epochs", bf16), ("bf16, fp32's time", bf16_t)):
            delta = "" if r is fp32 else f"{r['psnr'] - fp32['psnr']:+.2f} dB"
            print(f"| depth {depth}, L={args.latent} | {name} | {r['epochs']} | {r['train']:.1f} | "
                  f"{r['per_epoch']:.2f} | {r['psnr']:.2f} | {delta} |", flush=True)
        ok = bf16_t["psnr"] >= fp32["psnr"] - TOLERANCE_DB
        print(f"| depth {depth}, L={args.latent} | rule: bf16 at fp32's time within {TOLERANCE_DB} dB | | | | | "
              f"{'met' if ok else 'not met'} |", flush=True)


if __name__ == "__main__":
    main()
