"""Denoising evaluation: score a denoiser on the protocol's fixed noisy test images at several
noise variances, next to the classical baselines, with a grid per level.

Backs `aelab denoise RUN_DIR --noise-var 0.01,0.04,...` and the study's denoising part.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from . import baselines, data, noise
from .errors import ConfigError
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


def trained_levels(noise_var: noise.NoiseSpec) -> list[float]:
    """The noise variances sigma^2 at which `aelab train` scores a denoiser trained on `noise_var`:
    its own variance, or for a blind range (lo, hi) the protocol's evaluation grid levels
    (`noise.EVAL_VARIANCES`) inside it (lo and hi themselves when the range holds none of them)."""
    if isinstance(noise_var, (tuple, list)):
        lo, hi = noise.check_variance_range(noise_var)
        return [v for v in noise.EVAL_VARIANCES if lo <= v <= hi] or [lo, hi]
    return [noise.check_variance(noise_var, allow_zero=False)]


def _images_cell(row: dict) -> str:
    """The table's 'images' cell: how many test images psnr, psnr_dataset and ssim are on, and
    "(subset)" when those are the fixed subset (`baselines.subset_indices`) rather than the whole split."""
    n = row.get("n_images")
    if not n:
        return ""
    return f"{n:,} (subset)" if row.get("subset") else f"{n:,}"


def _progress_line(k: int, total: int, row: dict, seconds: float) -> str:
    """One finished (level, method) of `denoise_run`, for output that is not a terminal:
    "[5/12] sigma^2=0.09 (sigma=0.3) bm3d: psnr 22.10 dB on the fixed subset of 1,000 test images, 95.2 s"
    (psnr in dB; seconds since the previous line)."""
    psnr = row.get("psnr")
    n = row.get("n_images") or 0
    on = f"the fixed subset of {n:,} test images" if row.get("subset") else f"{n:,} test images"
    score = (f"psnr {psnr:.2f} dB on {on}" if isinstance(psnr, (int, float))
             else f"skipped ({row.get('note') or 'no score'})")
    return f"[{k}/{total}] {noise.noise_label(row['noise_var'])} {row['method']}: {score}, {seconds:.1f} s"


def denoise_run(run_dir: str | Path, variances: list[float], methods: list[str] | None = None, subset: int = 1000,
                seed: int = 0, data_dir: str | Path | None = None, progress: bool | None = None) -> str:
    """Evaluate the model of a run folder as a denoiser at each variance, beside the classical
    `methods` (None: all; [] none), on the test split of its dataset. Writes denoise.json, denoise.md
    and denoise_<var>.png into the run folder; returns the Markdown table.

    Every row is scored on the protocol's fixed noisy test images of its noise variance sigma^2
    (`noise.noisy_test_set`, seed `seed`) against the clean ones: psnr and psnr_dataset (dB on the
    [0, 1] scale) and ssim on the whole test split, except for a method that runs on the fixed
    subset of `subset` test images only (bm3d, about 30 ms per image: its row says "(subset)");
    subset_psnr (and subset_psnr_dataset, subset_ssim): every row, this model's included, on that
    same fixed subset (`baselines.subset_indices`), the number to compare with a subset-only row.
    progress: a bar over the (level, method) scores (default: only when stderr is a terminal;
    otherwise a line per finished one on stderr); False: silent. With every baseline and 5 levels
    this takes minutes (bm3d most of them).
    """
    from tqdm.auto import tqdm

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
    names = list(baselines.METHODS if methods is None else methods)
    unknown = [m for m in names if m not in baselines.METHOD_INFO]
    if unknown:  # before any scoring, not minutes into it
        raise ConfigError(f"unknown baseline {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(baselines.METHODS)}")
    show = sys.stderr.isatty() if progress is None else progress
    log = progress is None and not show  # to a file or pipe: a line per finished score instead of the bar
    total = len(variances) * (1 + len(names))
    bar = tqdm(total=total, desc="denoise", unit="score", disable=not show, leave=False, dynamic_ncols=True)
    clock = {"t": time.perf_counter(), "done": 0}

    def finished(row: dict, next_method: str | None) -> None:
        bar.update(1)
        clock["done"] += 1
        if next_method is not None:
            bar.set_postfix_str(f"σ²={row['noise_var']:g} {next_method}")
        if log:
            now = time.perf_counter()
            print(_progress_line(clock["done"], total, row, now - clock["t"]), file=sys.stderr, flush=True)
            clock["t"] = now

    rows = []
    pca = baselines.denoising_pca(x_train) if "pca" in names else None  # once, not once per level
    try:
        for var in variances:
            bar.set_postfix_str(f"σ²={var:g} this model")
            score = score_levels(run.model, x_test, [var], shape, seed=seed, subset=subset, grid_dir=Path(run_dir),
                                 title=Path(run_dir).name)[0]
            rows.append({"method": "this model", "detail": Path(run_dir).name, "subset": False, **score})
            finished(rows[-1], names[0] if names else None)
            if not names:
                continue

            def on_result(b: baselines.BaselineResult, var=var) -> None:
                rows.append({"noise_var": var, "sigma": math.sqrt(var), **b.to_dict()})
                later = names[names.index(b.method) + 1:]
                finished(rows[-1], later[0] if later else None)

            baselines.denoising_baselines(x_train, x_val, x_test, var, shape, seed=seed, methods=names,
                                          subset=subset, on_result=on_result, pca=pca)
    finally:
        bar.close()
    atomic_write_json(Path(run_dir) / "denoise.json", rows)
    cols = ["noise_var", "sigma", "method", "detail", "images", "psnr", "psnr_dataset", "ssim", "subset_psnr"]
    shown = [{**r, "images": _images_cell(r)} for r in rows]
    on_subset = (f"; subset_psnr: every row on the same fixed subset of {subset:,} test images, to compare with "
                 f"the (subset) rows" if subset else "")
    table = (f"Denoising on the {dataset} test split: each row's output against the clean images, from the fixed "
             f"noisy test images of its noise_var (sigma^2); psnr (mean per-image PSNR), psnr_dataset (dB) and "
             f"ssim on the test images in 'images' (the whole split, or only the fixed subset the slow baselines "
             f"run on, marked (subset)){on_subset}\n\n" + format_table(shown, cols))
    atomic_write_text(Path(run_dir) / "denoise.md", table + "\n")
    return table
