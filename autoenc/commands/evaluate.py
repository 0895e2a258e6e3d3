"""`autoenc evaluate RUN_DIR`: score a run folder's model again (metrics.json, grid.png)."""
from __future__ import annotations

import argparse
import json

from ..evaluation import noise
from .common import data_dir_option, folder, guarded


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="autoenc evaluate", description=(
        "Score RUN_DIR's model on a split of its dataset: writes metrics.json and grid.png (16 fixed images above "
        "their outputs). A run trained on a subset is scored on the split's first images, as it was trained."))
    p.add_argument("run_dir", type=folder, metavar="RUN_DIR", help="a run folder (outputs/..., a study's trial run)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="default: test")
    p.add_argument("--noise-var", type=float, default=None,
                   help="score as a denoiser of the fixed test noise of this variance sigma^2, e.g. 0.09; 0 scores "
                        "clean inputs (default: a per-level denoiser's own variance, clean inputs otherwise)")
    data_dir_option(p)
    ns = p.parse_args(args)

    def run() -> None:
        from ..runs import CONFIG, evaluate_run

        m = evaluate_run(ns.run_dir, ns.split, ns.data_dir, noise_var=ns.noise_var)
        subset = json.loads((ns.run_dir / CONFIG).read_text()).get("subset", {}).get(ns.split)
        on = f"{ns.split} (its first {m['n_images']:,} images: the run's subset)" if subset else ns.split
        print(f"{ns.run_dir} on {on}, {noise.inputs_label(m['noise_var'])}: psnr {m['psnr']:.2f} dB, "
              f"psnr_dataset {m['psnr_dataset']:.2f} dB, ssim {m['ssim']:.4f}, mse {m['mse']:.5f}; code: "
              f"{m['code']['zero_fraction']:.1%} entries |E|<1e-3, {m['code']['dead_units']} units never active")
        print(f"wrote {ns.run_dir / 'metrics.json'} and {ns.run_dir / 'grid.png'}")
    return guarded(run)
