"""A latent sweep one job after another (Hydra's default launcher, torch's threads per job)
against the same sweep side by side (hydra/launcher=joblib, the cores shared: one thread per job
on 2 cores), interleaved in one run so both see the same machine. Prints each wall time and the
speed-up.

    python benchmarks/sweep_speed.py --epochs 5 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def sweep(launcher: str | None, epochs: int, train_images: int | None, latents: str) -> float:
    """Wall seconds of one `autoenc train -m latent=...` in a fresh folder."""
    args = [sys.executable, "-m", "autoenc", "train", "-m", f"latent={latents}", f"trainer.epochs={epochs}"]
    args += [f"dataset.train_images={train_images}"] if train_images else []
    args += [f"hydra/launcher={launcher}"] if launcher else []
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        done = subprocess.run(args, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-images", type=int, default=None, help="default: the whole training split")
    p.add_argument("--latents", default="15,30,50,100")
    p.add_argument("--rounds", type=int, default=2)
    ns = p.parse_args()
    print(f"cores: {os.cpu_count()}; sweep latent={ns.latents}, {ns.epochs} epochs, "
          f"{ns.train_images or 'all'} training images; AUTOENC_DATA_DIR={os.environ.get('AUTOENC_DATA_DIR')}")
    times: dict[str, list[float]] = {"sequential": [], "joblib": []}
    for r in range(ns.rounds):
        order = ("sequential", "joblib") if r % 2 == 0 else ("joblib", "sequential")
        for name in order:
            seconds = sweep(None if name == "sequential" else "joblib", ns.epochs, ns.train_images, ns.latents)
            times[name].append(seconds)
            print(f"round {r + 1}: {name:<10} {seconds:7.1f} s", flush=True)
    print("\n| launcher | wall seconds (each round) | mean |\n| --- | --- | --- |")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {sum(values) / len(values):.1f} |")
    ratio = sum(times["sequential"]) / sum(times["joblib"])
    print(f"\nspeed-up of joblib over one after another: {ratio:.2f}x")


if __name__ == "__main__":
    main()
