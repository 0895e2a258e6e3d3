"""Denoising scores: a denoiser on the protocol's fixed noisy test images at several noise
variances sigma^2, and the tables that put it beside the classical baselines."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..figures import grid_indices, image_grid
from . import baselines, noise
from .metrics import image_metrics, reconstruct


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


def trained_levels(noise_var: noise.NoiseSpec) -> list[float]:
    """The noise variances sigma^2 at which `autoenc train` scores a denoiser trained on `noise_var`:
    its own variance, or for a blind range (lo, hi) the protocol's evaluation grid levels
    (`noise.EVAL_VARIANCES`) inside it (lo and hi themselves when the range holds none of them)."""
    if isinstance(noise_var, (tuple, list)):
        lo, hi = noise.check_variance_range(noise_var)
        return [v for v in noise.EVAL_VARIANCES if lo <= v <= hi] or [lo, hi]
    return [noise.check_variance(noise_var, allow_zero=False)]


def images_cell(row: dict) -> str:
    """The table's 'images' cell: how many test images psnr, psnr_dataset and ssim are on, and
    "(subset)" when those are the fixed subset (`baselines.subset_indices`) rather than the whole split."""
    n = row.get("n_images")
    if not n:
        return ""
    return f"{n:,} (subset)" if row.get("subset") else f"{n:,}"


def progress_line(k: int, total: int, row: dict, seconds: float) -> str:
    """One finished (level, method) of `denoise_run`, for output that is not a terminal:
    "[5/12] sigma^2=0.09 (sigma=0.3) bm3d: psnr 22.10 dB on the fixed subset of 1,000 test images, 95.2 s"
    (psnr in dB; seconds since the previous line)."""
    psnr = row.get("psnr")
    n = row.get("n_images") or 0
    on = f"the fixed subset of {n:,} test images" if row.get("subset") else f"{n:,} test images"
    score = (f"psnr {psnr:.2f} dB on {on}" if isinstance(psnr, (int, float))
             else f"skipped ({row.get('note') or 'no score'})")
    return f"[{k}/{total}] {noise.noise_label(row['noise_var'])} {row['method']}: {score}, {seconds:.1f} s"
