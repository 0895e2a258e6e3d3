"""Train the protocol's grid with the default recipe and print test psnr per cell.

    python benchmarks/quality_grid.py [--datasets mnist,fashion-mnist] [--depths 3,5]
        [--latents 15,30,50,100] [--epochs N] [--out outputs/quality_grid]

Each model trains with `TrainConfig()` defaults (the recipe in docs/recipe.md) unless --epochs
is given; finished cells are kept in --out and reused, so an interrupted run resumes.
Prints one Markdown table: psnr / psnr_dataset (dB) per cell, the margin over PCA with k = L,
the target of issue 3, and the seconds each model trained.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from autoenc import data
from autoenc.evaluation.baselines import fit_pca
from autoenc.evaluation import image_metrics
from autoenc.model import ModelConfig
from autoenc.runs import train_run
from autoenc.training import TrainConfig

TARGETS = {"mnist": {15: 21.8, 30: 24.3, 50: 25.6, 100: 27.3},
           "fashion-mnist": {15: 21.5, 30: 22.6, 50: 23.2, 100: 24.5}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--depths", default="3,5")
    ap.add_argument("--latents", default="15,30,50,100")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("outputs/quality_grid"))
    args = ap.parse_args()
    rows = []
    print("| dataset | depth | L | psnr | psnr_dataset | PCA psnr | margin over PCA | target | met | epochs | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.datasets.split(","):
        x_train, _ = data.load(dataset, "train")
        x_test, _ = data.load(dataset, "test")
        pca = fit_pca(x_train, max(int(v) for v in args.latents.split(",")))
        for depth in map(int, args.depths.split(",")):
            for latent in map(int, args.latents.split(",")):
                overrides = {"epochs": args.epochs} if args.epochs else {}
                if args.threads:
                    overrides["threads"] = args.threads
                tc = TrainConfig(**overrides)
                run = train_run(dataset, ModelConfig.preset(depth, latent), tc,
                                args.out / f"{dataset}-d{depth}-L{latent}", progress=False)
                m = run.metrics
                pca_psnr = image_metrics(pca.truncate(latent).reconstruct(x_test), x_test)["psnr"]
                target = TARGETS.get(dataset, {}).get(latent)
                met = "" if target is None else ("yes" if m["psnr"] >= target else "NO")
                print(f"| {dataset} | {depth} | {latent} | {m['psnr']:.2f} | {m['psnr_dataset']:.2f} | {pca_psnr:.2f} | "
                      f"{m['psnr'] - pca_psnr:+.2f} | {target} | {met} | {run.config['epochs_run']} | "
                      f"{run.config['train_seconds']:.0f} |", flush=True)
                rows.append(m)
    print(f"\n{len(rows)} models; torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)


if __name__ == "__main__":
    main()
