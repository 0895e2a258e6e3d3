"""Denoising evaluation: score a denoiser on the protocol's fixed noisy test images at several
noise variances, next to the classical baselines, with a grid per level.

Backs `aelab denoise RUN_DIR --noise-var 0.01,0.04,...` and the study's denoising part.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from . import baselines, data, noise
from .evaluation import image_metrics, reconstruct
from .figures import grid_indices, image_grid


def score_levels(model: torch.nn.Module, x_test: torch.Tensor, variances: list[float], image_shape,
                 seed: int = 0, subset: int = 0, grid_dir: Path | None = None,
                 title: str = "denoiser") -> list[dict]:
    """Score `model` as a denoiser of x_test (N, D) in [0, 1] at each noise variance sigma^2.

    For each level: psnr and psnr_dataset (dB) and ssim of model(noisy) against the clean images
    on the whole split, and (subset > 0) the same on the baselines' fixed subset of `subset`
    images. grid_dir: also save denoise_<var>.png there (rows: clean, noisy, denoised; the same
    images at every level). Returns one dict per level.
    """
    idx = baselines.subset_indices(len(x_test), subset) if subset else None
    shown = grid_indices(len(x_test))
    scores = []
    for var in variances:
        noisy = noise.noisy_test_set(x_test, var, seed=seed)
        out = reconstruct(model, noisy, keep_on_device=True)  # scored on the model's device
        full = image_metrics(out, x_test, image_shape)
        row = {"noise_var": var, "sigma": math.sqrt(var), "psnr": full["psnr"],
               "psnr_dataset": full["psnr_dataset"], "ssim": full["ssim"], "n_images": len(x_test),
               "noisy_psnr": image_metrics(noisy, x_test)["psnr"]}
        if idx is not None:
            part = image_metrics(out[idx], x_test[idx], image_shape)
            row.update({"subset_psnr": part["psnr"], "subset_psnr_dataset": part["psnr_dataset"],
                        "subset_ssim": part["ssim"], "subset_images": len(idx)})
        scores.append(row)
        if grid_dir is not None:
            image_grid([x_test[shown], noisy[shown], out[shown]], image_shape, Path(grid_dir) / f"denoise_{var:g}.png",
                       ["clean", f"noisy σ²={var:g}", "denoised"],
                       title=f"{title}, σ²={var:g} (σ={math.sqrt(var):.2f}): psnr {full['psnr']:.2f} dB")
    return scores


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of `rows` (dicts) with the given columns; floats to 2 decimals."""
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def denoise_run(run_dir: str | Path, variances: list[float], methods: list[str] | None = None, subset: int = 1000,
                seed: int = 0, data_dir: str | Path | None = None) -> str:
    """Evaluate the model of a run folder as a denoiser at each variance, beside the classical
    `methods` (None: all; [] none), on the test split of its dataset. Writes denoise.json, denoise.md
    and denoise_<var>.png into the run folder; returns the Markdown table (PSNR in dB)."""
    from .runs import atomic_write_json, atomic_write_text, read_run

    run = read_run(run_dir)
    dataset, shape = run.config["dataset"], tuple(run.config["image_shape"])
    subset_cfg = run.config.get("subset", {})
    x_train, _ = data.load(dataset, "train", data_dir)
    x_val, _ = data.load(dataset, "val", data_dir)
    x_test, _ = data.load(dataset, "test", data_dir)
    x_train, x_val, x_test = (x_train[:subset_cfg.get("train")], x_val[:subset_cfg.get("val")],
                              x_test[:subset_cfg.get("test")])
    subset = min(subset, len(x_test))
    rows = []
    for score in score_levels(run.model, x_test, variances, shape, seed=seed, subset=subset, grid_dir=Path(run_dir),
                              title=f"{dataset} {Path(run_dir).name}"):
        rows.append({"method": "this model", "detail": Path(run_dir).name, **score})
        if methods == []:
            continue
        for b in baselines.denoising_baselines(x_train, x_val, x_test, score["noise_var"], shape, seed=seed,
                                               methods=methods, subset=subset):
            rows.append({"noise_var": score["noise_var"], "sigma": score["sigma"], **b.to_dict()})
    atomic_write_json(Path(run_dir) / "denoise.json", rows)
    cols = ["noise_var", "sigma", "method", "detail", "psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr",
            "subset_images"]
    table = (f"Denoising on the {dataset} test split (psnr = mean per-image PSNR, dB; subset_psnr on the "
             f"{subset} fixed test images the slow baselines run on)\n\n" + format_table(rows, cols))
    atomic_write_text(Path(run_dir) / "denoise.md", table + "\n")
    return table
