"""The study report (autoenc.report): on the quick study and on small hand-made study folders.

The hand-made folders (`make_study`) hold the files a study writes (summary.json, results.json,
results.csv, denoising.json, denoising.csv, trials/<id>/...) with chosen numbers, so each test
knows the right answer and runs in a second; the quick study checks the same on real output.
`check_differences` recomputes every difference the report prints from results.csv and
denoising.csv alone.
"""
from __future__ import annotations

import base64
import csv
import json
import math
import os
import re
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autoenc.figures import image_grid
from autoenc.report import findings
from autoenc.report import sections as report
from autoenc.study.runner import DENOISING_COLUMNS, RESULT_COLUMNS, _csv

SECTIONS = ["Headline findings", "Compression", "Regularization", "Image grids", "Training curves",
            "Per-class PSNR", "Appendix: every run", "Appendix: time per trial",
            "Appendix: how the trials were scheduled"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JITTER = 0.05  # dB: seed 0 scores +0.05, seed 1 −0.05 on every autoencoder number: sd 0.0707, spread 0.1


# ------------------------------------------------------------------------------------------
# hand-made study folders
# ------------------------------------------------------------------------------------------

_PNGS: dict[int, bytes] = {}


def _grid_png(path: Path, rows: int = 2) -> None:
    """A small image grid PNG (made once per row count, then copied)."""
    if rows not in _PNGS:
        g = torch.Generator().manual_seed(rows)
        image_grid([torch.rand(4, 16, generator=g) for _ in range(rows)], (4, 4), path)
        _PNGS[rows] = path.read_bytes()
    path.write_bytes(_PNGS[rows])


def _ae_row(dataset: str, phase: str, depth: int, latent: int, psnr: float, seed: int = 0, l2: float = 0.0,
            l1: float = 0.0, noise_var=None, val_offset: float = 0.0, gap: float = 0.3, noisy: float = -0.4,
            hoyer: float = 0.22, small: float = 0.02, mean_abs: float = 1.0, variances=(), subset: int = 0,
            ssim: float = 0.5) -> dict:
    j = JITTER if seed % 2 == 0 else -JITTER
    widths = [256, 128] if depth == 3 else [512, 384, 256, 128]
    tag = f"d{depth}-L{latent}" + (f"-l2_{l2:g}" if l2 else "") + (f"-l1_{l1:g}" if l1 else "")
    if noise_var is not None:
        tag += f"-blind{noise_var[0]:g}_{noise_var[1]:g}" if isinstance(noise_var, list) else f"-noise{noise_var:g}"
    tag += "-ref" if phase == "unpenalized" else ""
    tag += f"-s{seed}" if seed else ""
    den = [{"noise_var": v, "sigma": math.sqrt(v), "psnr": psnr - 10 * v + j, "psnr_dataset": psnr - 10 * v - 0.4,
            "ssim": ssim + j / 10, "n_images": 300, "noisy_psnr": 10 - 10 * math.log10(v),
            **({"subset_psnr": psnr - 10 * v + 0.05 + j, "subset_psnr_dataset": psnr - 10 * v - 0.35,
                "subset_ssim": ssim + 0.01 + j / 10, "subset_images": subset} if subset else {})} for v in variances]
    penalized = phase in ("unpenalized", "l2", "l1", "l2+l1")
    return {
        "id": f"{dataset}-{tag}-0000abcd", "phase": phase, "kind": "ae", "dataset": dataset, "depth": depth,
        "widths": widths, "latent": latent, "l2": l2, "l1": l1, "noise_var": noise_var, "seed": seed,
        "psnr": psnr + j, "psnr_dataset": psnr - 0.5 + j, "ssim": 0.7 + j / 10, "mse": 10 ** (-psnr / 10),
        "val_psnr": psnr + val_offset + j, "train_psnr": psnr + gap + j, "noisy_psnr": psnr + noisy + j,
        "code_hoyer": hoyer + j / 10, "code_small_fraction": small, "code_dead_units": 0, "code_mean_abs": mean_abs,
        "code_zero_fraction": 0.001, "epochs": 3, "epochs_run": 3, "best_epoch": 3, "seconds": 1.5,
        "parameters": 1000 * depth + latent, "activation": "silu", "latent_activation": "linear", "norm": "batch",
        "decoder_norm": "none" if penalized else "batch", "unit_code_columns": penalized, "init": "orthogonal",
        "schedule": "onecycle", "lr": 0.01, "warmup": 0.1, "batch_size": 256, "loss": "mse", "precision": "fp32",
        "status": "ok", "per_class_psnr": {str(c): psnr + 0.1 * c - 0.45 + j for c in range(10)}, "denoising": den,
        "run_dir": "run", "wall_seconds": 2.0,
    }


def _pca_row(dataset: str, k: int, psnr: float) -> dict:
    return {"id": f"{dataset}-pca-k{k}-0000abcd", "phase": "pca", "kind": "pca", "dataset": dataset, "depth": None,
            "widths": [], "latent": k, "l2": 0.0, "l1": 0.0, "noise_var": None, "seed": 0, "psnr": psnr,
            "psnr_dataset": psnr - 0.4, "ssim": 0.6, "val_psnr": psnr, "train_psnr": psnr + 0.1,
            "noisy_psnr": psnr - 0.3, "seconds": 0.5, "parameters": k * 785, "status": "ok",
            "per_class_psnr": {str(c): psnr for c in range(10)}, "wall_seconds": 0.6}


def _baselines(dataset: str, var: float, bm3d: bool = True, full: int = 300, subset: int = 100) -> dict:
    def b(method, psnr, param=None, name=None, n=full, note=""):
        return {"method": method, "var": var, "sigma": math.sqrt(var), "param": param, "param_name": name,
                "psnr": psnr, "psnr_dataset": None if psnr is None else psnr - 0.2,
                "ssim": None if psnr is None else 0.45, "n_images": n, "subset": 0 < n < full, "seconds": 0.3,
                "note": note, **({"subset_psnr": psnr + 0.1, "subset_psnr_dataset": psnr - 0.1, "subset_ssim": 0.46,
                                  "subset_images": subset} if psnr is not None and n == full else {})}

    rows = [b("noisy", -10 * math.log10(var)), b("gaussian", 17.0 - 10 * var, 0.7, "sigma_px"),
            b("nlm", 17.5 - 10 * var, 0.3, "h_over_sigma"), b("linear", 18.0 - 10 * var)]
    rows.append(b("bm3d", 18.2 - 10 * var, 0.85, "sigma_mult", n=subset) if bm3d else
                b("bm3d", None, n=0, note="bm3d not installed: pip install 'autoenc[bm3d]'"))
    return {"id": f"{dataset}-baselines-noise{var:g}-0000abcd", "kind": "baselines", "phase": "baselines",
            "dataset": dataset, "noise_var": var, "rows": rows, "status": "ok", "wall_seconds": 3.0}


def _denoising_rows(rows: list[dict], baselines: list[dict], winners: dict[str, tuple]) -> list[dict]:
    """denoising.json as the study writes it: the baselines (a subset-only one with its subset_*
    scores alone), each denoiser's seeds, and the grid's chosen arm fed noisy images (ae)."""
    keys = ("psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr", "subset_psnr_dataset", "subset_ssim",
            "subset_images")
    out = []
    for b in baselines:
        for m in b["rows"]:
            score = ({"subset_psnr": m["psnr"], "subset_psnr_dataset": m["psnr_dataset"], "subset_ssim": m["ssim"],
                      "subset_images": m["n_images"]} if m["subset"] else m)
            out.append({"dataset": b["dataset"], "noise_var": b["noise_var"], "sigma": m["sigma"],
                        "method": m["method"], "seed": None, "detail": "", "seconds": m["seconds"],
                        **{k: score.get(k) for k in keys}})
    for r in rows:
        if r.get("kind") != "ae" or r.get("status") != "ok":
            continue
        if r["noise_var"] is not None:
            method = "dae-blind" if isinstance(r["noise_var"], list) else "dae"
        elif r["phase"] == "grid" and (r["depth"], r["latent"]) == winners.get(r["dataset"]):
            method = "ae"
        else:
            continue
        for s in r["denoising"]:
            if method != "dae" or s["noise_var"] == r["noise_var"]:
                out.append({"dataset": r["dataset"], "noise_var": s["noise_var"], "sigma": s["sigma"],
                            "method": method, "seed": r["seed"], "detail": "", "seconds": 1.0,
                            **{k: s.get(k) for k in keys}})
    return out


def write_tables(root: Path) -> None:
    """results.csv and denoising.csv from results.json and denoising.json, as the study writes them."""
    rows = json.loads((root / "results.json").read_text())
    (root / "results.csv").write_text(_csv(rows, RESULT_COLUMNS))
    if (root / "denoising.json").is_file():
        (root / "denoising.csv").write_text(_csv(json.loads((root / "denoising.json").read_text()),
                                                 DENOISING_COLUMNS))


def make_study(root: Path, datasets=("mnist",), denoising: bool = True, failed: bool = False, pca: bool = True,
               seeds: int = 2, bm3d: bool = True, latents=(15, 30), variances=(0.04, 0.16)) -> Path:
    """A finished study folder with known numbers, every autoencoder once per seed (seed 0 scores
    +0.05 dB, seed 1 −0.05 dB: a spread of 0.1 dB on every difference).

    Per dataset: depth 3 at L=15 / 30 (psnr 18 / 20), depth 5 at L=15 / 30 (17.5 / 21: depth 5
    loses at L=15 and wins at L=30, and validation picks depth 5, L=30); PCA 16 / 19; the penalized
    trials' unpenalized reference (none) at 20.8, l2 1e-5 (20.85: a tie, but validation prefers it)
    and 1e-4 (20.3, noisy-input psnr 20.2 against none's 20.4: a smaller drop, worse on noisy inputs),
    l1 1e-5 (20.75, Hoyer 0.3) and 1e-4 (19.8, Hoyer 0.55), l2+l1; with denoising: a per-level
    denoiser at 0.04 and 0.16, a blind one, baselines (bm3d on a 100-image subset only, with
    numbers; bm3d=False: not installed). failed: one l1 trial failed. pca=False: no PCA rows. The
    test subset is 300 images. latents, variances: other grids (the psnr lines through the points
    above; the penalized trials at depth 5 and the largest L)."""
    root.mkdir(parents=True, exist_ok=True)
    variances = list(variances) if denoising else []
    top = max(latents)
    rows, baselines = [], []
    for ds in datasets:
        for s in range(seeds):
            rows += [_ae_row(ds, "grid", d, L, base + slope * (L - 15) / 15, s, variances=variances, subset=100)
                     for d, base, slope in ((3, 18.0, 2.0), (5, 17.5, 3.5)) for L in latents]
        rows += [_pca_row(ds, L, 16.0 + 3.0 * (L - 15) / 15) for L in latents] if pca else []
        if denoising:
            baselines += [_baselines(ds, v, bm3d) for v in variances]
        top_psnr = 17.5 + 3.5 * (top - 15) / 15  # the winner, depth 5 at the largest L (21.0 at L = 30)
        for s in range(seeds):
            if denoising:
                rows += [_ae_row(ds, "denoise", 5, 30, 21.0, s, noise_var=v, variances=variances, subset=100,
                                 ssim=0.6) for v in variances]
                rows += [_ae_row(ds, "blind", 5, 30, 20.9, s, noise_var=[min(variances), max(variances)],
                                 variances=variances, subset=100, ssim=0.6)]
            rows += [_ae_row(ds, "unpenalized", 5, top, top_psnr - 0.2, s),
                     _ae_row(ds, "l2", 5, top, top_psnr - 0.15, s, l2=1e-5, val_offset=0.2, gap=0.2, noisy=-0.2),
                     _ae_row(ds, "l2", 5, top, top_psnr - 0.7, s, l2=1e-4, gap=0.05, noisy=-0.1),
                     _ae_row(ds, "l1", 5, top, top_psnr - 0.25, s, l1=1e-5, hoyer=0.3, small=0.05, mean_abs=0.6),
                     _ae_row(ds, "l1", 5, top, top_psnr - 1.2, s, l1=1e-4, hoyer=0.55, small=0.3, mean_abs=0.2),
                     _ae_row(ds, "l2+l1", 5, top, top_psnr - 0.18, s, l2=1e-5, l1=1e-5, val_offset=0.05, hoyer=0.3)]
        if failed:
            bad = next(r for r in rows if r["dataset"] == ds and r["phase"] == "l1" and r["l1"] == 1e-4)
            rows[rows.index(bad)] = {"id": bad["id"], "kind": "ae", "phase": "l1", "dataset": ds, "status": "failed",
                                     "error": "TrainingError: loss became NaN at epoch 2", "attempts": 2}
    for r in rows + baselines:
        folder = root / "trials" / r["id"]
        (folder / "run").mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps({**r, "trial": {"id": r["id"]}}))
        if r.get("kind") == "ae" and r.get("status") == "ok":
            _grid_png(folder / "grid.png")
            np.save(folder / "code_values.npy", np.random.default_rng(0).normal(size=(50, r["latent"])).astype(
                np.float32) * r["code_mean_abs"], allow_pickle=False)
            (folder / "run" / "history.jsonl").write_text("".join(
                json.dumps({"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.1 / e,
                            "val_psnr": r["val_psnr"] - 3 + e, "lr": 1e-3, "seconds": 0.5}) + "\n"
                for e in range(1, 4)))
            if r["noise_var"] is not None:
                for v in variances:
                    _grid_png(folder / f"denoise_{v:g}.png", rows=3)
    ae_rows = [r for r in rows if r.get("kind") in ("ae", "pca")]
    config = {"name": "synthetic", "datasets": list(datasets), "depths": [3, 5], "latents": list(latents),
              "epochs": {"3": 3, "5": 3}, "l2": [1e-5, 1e-4], "l1": [1e-5, 1e-4], "combined": True, "pca": pca,
              "penalty_model": {"decoder_norm": "none", "unit_code_columns": True},
              "denoising": ({"variances": variances, "blind": [min(variances), max(variances)] if variances else None,
                             "architecture": "best", "model": {},
                             "train": {}, "baselines": ["noisy", "gaussian", "nlm", "linear", "bm3d"], "subset": 100}
                            if denoising else None),
              "subset": {"train": 2000, "val": 300, "test": 300}, "robustness_var": 0.01, "seeds": seeds}
    failed_list = [{"id": r["id"], "phase": r["phase"], "dataset": r["dataset"], "error": r["error"],
                    "attempts": r["attempts"]} for r in rows if r.get("status") == "failed"]
    summary = {"study": config, "seeds": list(range(seeds)), "trials_total": len(rows) + len(baselines),
               "trials_done": len(rows) + len(baselines), "failed": failed_list, "choices": {}, "wall_seconds": 42.0,
               "environment": {"autoenc": "0.1.0", "commit": "0123456789ab", "python": "3.11.7",
                               "libraries": {"torch": "2.13.0", "numpy": "2.4.6"}, "cpu": "Test CPU", "cores": 2,
                               "gpu": None, "platform": "Linux"}}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "study.yaml").write_text(json.dumps(config))
    (root / "results.json").write_text(json.dumps(ae_rows))
    (root / "denoising.json").write_text(json.dumps(_denoising_rows(rows, baselines, {d: (5, top) for d in datasets})))
    write_tables(root)
    return root


# ------------------------------------------------------------------------------------------
# reading a report back
# ------------------------------------------------------------------------------------------

def _no_broken_section(md: str) -> None:
    assert report.SECTION_FAILED not in md


def _images(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", html)


def _assert_self_contained(html: str) -> None:
    srcs = _images(html)
    assert srcs, "the report has no images"
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == PNG_MAGIC
    assert not re.search(r"<script[^>]*\bsrc=", html), "a script loaded from elsewhere"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report loads something from the network"
    assert "@import" not in html and "url(" not in html


def _md_tables(md: str) -> list[list[dict]]:
    """Every Markdown table of `md` as a list of {column: cell} rows."""
    return [rows for _, _, _, rows in _located_tables(md)]


def _located_tables(md: str) -> list[tuple[str, str, str, list[dict]]]:
    """Every Markdown table of `md` with the level-2 and level-3 headings above it and its caption."""
    tables, lines, i, h2, h3, caption = [], md.splitlines(), 0, "", "", ""
    while i < len(lines):
        if lines[i].startswith("## "):
            h2, h3 = lines[i][3:], ""
        elif lines[i].startswith("### "):
            h3 = lines[i][4:]
        elif lines[i].startswith("*") and lines[i].endswith("*") and not lines[i].startswith("**"):
            caption = lines[i].strip("*")
        if lines[i].startswith("| ") and i + 1 < len(lines) and re.match(r"^\|( -{3}:? \|)+$", lines[i + 1]):
            head = [c.strip().replace("\\|", "|") for c in lines[i].strip("|").split(" | ")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(head, [c.strip().replace("\\|", "|") for c in lines[i].strip("|").split(" | ")])))
                i += 1
            tables.append((h2, h3, caption, rows))
            caption = ""
        else:
            i += 1
    return tables


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def _num(cell: str) -> float:
    """A number as printed ("19.92", "−0.56", "±0.00", "0.07 %"), the mean of "a ± b"."""
    return float(cell.split(" ± ")[0].replace("−", "-").replace("±", "").replace("+", "").replace(" %", ""))


def _edit_rows(study: Path, edit) -> None:
    """Rewrite results.json (and results.csv) with edit(row) applied to every row (they stay the newest files)."""
    rows = json.loads((study / "results.json").read_text())
    for r in rows:
        edit(r)
    (study / "results.json").write_text(json.dumps(rows))
    write_tables(study)


# ------------------------------------------------------------------------------------------
# every difference the report prints, recomputed from results.csv and denoising.csv
# ------------------------------------------------------------------------------------------

SIGNED = re.compile(r"[+−±](?=\d)\d+\.\d+")  # a printed difference: +0.13, −0.21, ±0.00 (not a spread, "± 0.03")
DIFF = r"[+−±]\d+\.\d+(?: ± \d+\.\d+)?"


def _csv_rows(path: Path) -> list[dict]:
    def value(v: str):
        if v == "":
            return None
        try:
            return json.loads(v)
        except ValueError:
            return v
    with open(path) as fh:
        return [{k: value(v) for k, v in r.items()} for r in csv.DictReader(fh)]


class Truth:
    """The numbers behind a report, from results.csv and denoising.csv only."""

    def __init__(self, study: Path):
        self.rows = [r for r in _csv_rows(study / "results.csv") if r["status"] == "ok"]
        self.den = _csv_rows(study / "denoising.csv") if (study / "denoising.csv").is_file() else []

    def arm(self, dataset, phase, **keys) -> list[dict]:
        return [r for r in self.rows if r["dataset"] == dataset and r["phase"] == phase
                and all(r[k] == v for k, v in keys.items())]

    def winner(self, dataset) -> list[dict]:
        cells = {(r["depth"], r["latent"]) for r in self.arm(dataset, "grid")}
        return max((self.arm(dataset, "grid", depth=d, latent=L) for d, L in sorted(cells)),
                   key=lambda a: statistics.fmean(r["val_psnr"] for r in a))

    def setting(self, dataset, label) -> list[dict]:
        """A regularization table's setting label as its rows."""
        w = self.winner(dataset)[0]
        same = {"depth": w["depth"], "latent": w["latent"]}
        if label == "grid's model":
            return self.winner(dataset)
        if label == "none":
            return self.arm(dataset, "unpenalized", **same) or self.winner(dataset)
        values = dict(re.findall(r"(l[12]) = (\S+)", label))
        phase = "l2+l1" if len(values) == 2 else next(iter(values))
        return self.arm(dataset, phase, **same, **{k: float(v) for k, v in values.items()})

    def methods(self, dataset, var) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for d in self.den:
            if d["dataset"] == dataset and abs(d["noise_var"] - var) < 1e-9:
                out.setdefault(d["method"], []).append(d)
        return out


def _stat(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), len(values)


def _expect(printed: str, a: list[float], b: list[float]) -> None:
    """printed ("+0.13 ± 0.03", "−0.21") is mean(a) − mean(b) to 0.005, with the spread sqrt(sd_a² + sd_b²)
    (none when both have one value)."""
    (ma, sa, na), (mb, sb, nb) = _stat(a), _stat(b)
    value = float(printed.split(" ± ")[0].replace("−", "-").replace("±", "").replace("+", ""))
    assert abs(value - (ma - mb)) <= 0.005 + 1e-9, (printed, ma - mb)
    if na > 1 or nb > 1:
        assert " ± " in printed and abs(float(printed.split(" ± ")[1]) - math.hypot(sa, sb)) <= 0.005 + 1e-9, printed
    else:
        assert " ± " not in printed, printed


def _col(rows: list[dict], key: str, scale: float = 1.0) -> list[float]:
    return [scale * r[key] for r in rows if r.get(key) is not None]


def check_differences(study: Path) -> int:
    """Recompute every difference report.md prints (tables and headline findings) from results.csv
    and denoising.csv; every signed number of the report must be one of them. Returns how many."""
    md = (study / "report.md").read_text()
    truth = Truth(study)
    names = {findings.dataset_name(d): d for d in {r["dataset"] for r in truth.rows} | {d["dataset"] for d in truth.den}}
    checked = 0

    def expect(printed: str, a, b) -> None:
        nonlocal checked
        _expect(printed, a, b)
        checked += len(SIGNED.findall(printed))

    def pca(dataset, latent):
        return _col(truth.arm(dataset, "pca", latent=latent), "psnr")

    def margin(dataset, var, ae_method, baseline, subset, printed, ssim_printed=None):
        by = truth.methods(dataset, var)
        key, skey = ("subset_psnr", "subset_ssim") if subset else ("psnr", "ssim")
        assert (_col(by[baseline], "psnr") == []) == subset
        best = max((m for m in ("dae", "dae-blind", "ae") if _col(by.get(m, []), key)),
                   key=lambda m: statistics.fmean(_col(by[m], key)))
        assert best == ae_method  # the best autoencoder at that level
        ae = statistics.fmean(_col(by[best], key))
        margins = {m: ae - statistics.fmean(_col(rs, "subset_psnr" if not _col(rs, "psnr") else "psnr"))
                   for m, rs in by.items() if m not in ("dae", "dae-blind", "ae") and (_col(rs, "psnr") or
                                                                                  _col(rs, "subset_psnr"))}
        assert baseline == min(margins, key=margins.get)  # the strongest baseline: the smallest margin
        expect(printed, _col(by[best], key), _col(by[baseline], key))
        if ssim_printed is not None:
            expect(ssim_printed, _col(by[best], skey), _col(by[baseline], skey))

    margin_methods: dict[tuple, tuple] = {}
    for h2, h3, _, rows in _located_tables(md):
        dataset = names.get(h3.split(" (")[0])
        if h2.startswith("Compression") and rows and "vs PCA (dB)" in rows[0]:
            for r in rows:
                if r["depth"] != "PCA":
                    expect(r["vs PCA (dB)"], _col(truth.arm(dataset, "grid", depth=int(r["depth"]),
                                                             latent=int(r["L"])), "psnr"), pca(dataset, int(r["L"])))
        elif h2.startswith("Compression") and rows and "verdict" in rows[0]:
            deep, shallow = (int(x) for x in re.findall(r"depth (\d)", list(rows[0])[3]))
            for r in rows:
                a = _col(truth.arm(dataset, "grid", depth=deep, latent=int(r["L"])), "psnr")
                b = _col(truth.arm(dataset, "grid", depth=shallow, latent=int(r["L"])), "psnr")
                expect(r[list(r)[3]], a, b)
        elif h2 == "Regularization" and rows and "psnr − none (dB)" in rows[0]:
            none = truth.setting(dataset, "none")
            for r in rows:
                if r["psnr − none (dB)"] != "–":
                    expect(r["psnr − none (dB)"], _col(truth.setting(dataset, r["setting"]), "psnr"), _col(none, "psnr"))
        elif h2 == "Regularization" and rows and "gap − none (dB)" in rows[0]:
            none = truth.setting(dataset, "none")
            noisy_key = next(k for k in rows[0] if k.startswith("noisy-input psnr σ²"))
            for r in rows:
                arm = truth.setting(dataset, r["setting"])
                gaps = [x["train_psnr"] - x["psnr"] for x in arm]
                none_gaps = [x["train_psnr"] - x["psnr"] for x in none]
                if SIGNED.search(r["gap (dB)"]):  # a negative gap is a signed number
                    expect(r["gap (dB)"], gaps, [0.0] * len(gaps))
                expect(r["gap − none (dB)"], gaps, none_gaps)
                expect(r["noisy-input psnr − none (dB)"], _col(arm, "noisy_psnr"), _col(none, "noisy_psnr"))
                expect(r["drop − none (dB)"], [x["noisy_psnr"] - x["psnr"] for x in arm],
                       [x["noisy_psnr"] - x["psnr"] for x in none])
                assert _num(r[noisy_key]) == pytest.approx(statistics.fmean(_col(arm, "noisy_psnr")), abs=0.005)
        elif h2 == "Denoising" and rows and "margin (dB)" in rows[0]:
            for r in rows:
                var = float(re.match(r"σ²=([\d.]+)", r["level"])[1])
                ae_method = r["best autoencoder psnr (dB)"].split(":")[0]
                baseline = r["strongest baseline psnr (dB)"].split(":")[0].removesuffix(" (subset)")
                subset = "(subset)" in r["strongest baseline psnr (dB)"]
                margin(dataset, var, ae_method, baseline, subset, r["margin (dB)"], r["SSIM margin"])
                margin_methods[(dataset, var)] = (ae_method, baseline, subset)
        elif h2 == "Per-class PSNR" and rows and "difference (dB)" in rows[0]:
            best = truth.winner(dataset)
            k = best[0]["latent"]
            for r in rows:
                expect(r["difference (dB)"], [x["per_class_psnr"][r["class"]] for x in best],
                       [p["per_class_psnr"][r["class"]] for p in truth.arm(dataset, "pca", latent=k)])
        elif h2 == "Headline findings" and rows and "finding" in rows[0]:
            for r in rows:
                for name, dataset in names.items():
                    cell = r.get(name, "–")
                    what = r["finding"]
                    if what == "its psnr minus PCA with k = L (dB)":
                        w = truth.winner(dataset)
                        expect(cell, _col(w, "psnr"), pca(dataset, w[0]["latent"]))
                    elif what.startswith("depth 5 minus depth 3"):
                        for latent, printed in re.findall(rf"L = (\d+): ({DIFF})", cell):
                            expect(printed, _col(truth.arm(dataset, "grid", depth=5, latent=int(latent)), "psnr"),
                                   _col(truth.arm(dataset, "grid", depth=3, latent=int(latent)), "psnr"))
                    elif what.startswith("strongest l"):
                        m = re.match(rf"(l[12] = \S+): ({DIFF})$", cell)
                        if m:
                            key = "noisy_psnr" if "noisy-input" in what else "psnr"
                            expect(m[2], _col(truth.setting(dataset, m[1]), key),
                                   _col(truth.setting(dataset, "none"), key))
    # the headline findings and what limits them, in words
    for h2, h3, _, rows in _located_tables(md):
        if h2 == "Headline findings" and rows and "finding" in rows[0]:
            for r in rows:
                for name, dataset in names.items():
                    for var, printed in re.findall(rf"σ² = (\d+(?:\.\d+)?): ({DIFF})", r.get(name, "")):
                        ae_method, baseline, subset = margin_methods[(dataset, float(var))]
                        by = truth.methods(dataset, float(var))
                        key = ("subset_" if subset else "") + ("ssim" if r["finding"] == "the same, SSIM" else "psnr")
                        expect(printed, _col(by[ae_method], key), _col(by[baseline], key))
    head = _section(md, "Headline findings")
    bullets = [line for line in head.splitlines() if line.startswith("- **")]
    for line in bullets:
        topic = re.match(r"- \*\*(.+?)\.\*\*", line)[1]
        for part in line.split(" — "):
            name = re.search(r"(?:\*\* )?([\w.-]+): ", part)[1]
            dataset = names[name]
            if topic == "Compression":
                for printed, latent in re.findall(rf"({DIFF}) dB over PCA with k = (\d+)", part):
                    expect(printed, _col(truth.winner(dataset), "psnr"), pca(dataset, int(latent)))
            elif topic == "Depth":
                for printed, latent in re.findall(rf"({DIFF}) dB at L = (\d+)", part):
                    expect(printed, _col(truth.arm(dataset, "grid", depth=5, latent=int(latent)), "psnr"),
                           _col(truth.arm(dataset, "grid", depth=3, latent=int(latent)), "psnr"))
            elif topic in ("L1 on the code", "L2 on the weights"):
                none = truth.setting(dataset, "none")
                for label, printed in re.findall(rf"(l1 = \S+): [\d.]+(?: ± [\d.]+)? \(psnr ({DIFF}) dB\)", part):
                    expect(printed, _col(truth.setting(dataset, label), "psnr"), _col(none, "psnr"))
                for label, p, n in re.findall(rf"(l2 = \S+): psnr ({DIFF}) dB, noisy-input psnr ({DIFF}) dB", part):
                    expect(p, _col(truth.setting(dataset, label), "psnr"), _col(none, "psnr"))
                    expect(n, _col(truth.setting(dataset, label), "noisy_psnr"), _col(none, "noisy_psnr"))
                for label, printed in re.findall(rf"validation prefers (l[12] = \S+) \(validation psnr ({DIFF}) dB", part):
                    expect(printed, _col(truth.setting(dataset, label), "val_psnr"), _col(none, "val_psnr"))
            elif topic == "Denoising":
                for printed, var, ae_method, baseline, on in re.findall(
                        rf"({DIFF}) dB at σ² = (\d+(?:\.\d+)?) \((\S+) − (\S+?)( on the subset)?\)", part):
                    margin(dataset, float(var), ae_method, baseline, bool(on), printed)
                blind = part.split("the blind denoiser − the per-level ones: ")
                for printed, var in re.findall(rf"({DIFF}) dB at σ² = (\d+(?:\.\d+)?)", blind[1] if len(blind) > 1 else ""):
                    by = truth.methods(dataset, float(var))
                    expect(printed, _col(by["dae-blind"], "psnr"), _col(by["dae"], "psnr"))
                for var, printed in re.findall(rf"σ² = (\d+(?:\.\d+)?) \(({DIFF}) dB against the noisy input\)", part):
                    by = truth.methods(dataset, float(var))
                    best = max((m for m in ("dae", "dae-blind", "ae") if m in by),
                               key=lambda m: statistics.fmean(_col(by[m], "psnr")))
                    expect(printed, _col(by[best], "psnr"), _col(by["noisy"], "psnr"))
    limits = head.split("**What limits them**", 1)[1].split("\n", 1)[0] if "**What limits them**" in head else ""
    for name, printed in re.findall(rf"([\w.-]+): the penalties act on the model .*? whose unpenalized psnr is "
                                    rf"({DIFF}) dB against the grid's own model", limits):
        dataset = names[name]
        expect(printed, _col(truth.setting(dataset, "none"), "psnr"), _col(truth.winner(dataset), "psnr"))
    assert checked == len(SIGNED.findall(md)), (checked, len(SIGNED.findall(md)))
    return checked


def check_every_method_has_a_number(study: Path) -> None:
    """Every (dataset, method, level) of denoising.csv with a number appears in the report's
    denoising tables with that number (mean over the seeds): on the whole test split, and on the
    fixed subset (where a subset-only method, BM3D, has its numbers beside every other method's)."""
    md = (study / "report.md").read_text()
    tables = [(h3, "fixed subset" in caption, rows) for h2, h3, caption, rows in _located_tables(md)
              if h2 == "Denoising" and rows and next(iter(rows[0])) == "method" and list(rows[0])[1].endswith(" psnr")]
    den = Truth(study).den
    assert den
    for d in den:
        for key, subset in (("psnr", False), ("subset_psnr", True)):
            if d.get(key) is None:
                continue
            label = report.AE_LABELS.get(d["method"], d["method"])
            cells = [r for h3, sub, rows in tables if h3 == findings.dataset_name(d["dataset"]) and sub == subset
                     for r in rows if r["method"].strip("*") == label]
            assert len(cells) == 1, (d["dataset"], d["method"], key)
            column = f"σ²={d['noise_var']:g} (σ={math.sqrt(d['noise_var']):.2f}) psnr"
            same = [x[key] for x in den if x["dataset"] == d["dataset"] and x["method"] == d["method"]
                    and x["noise_var"] == d["noise_var"]]
            assert _num(cells[0][column]) == pytest.approx(statistics.fmean(same), abs=0.005), (d["method"], key)


# ------------------------------------------------------------------------------------------
# the quick study
# ------------------------------------------------------------------------------------------

def test_quick_report_has_every_section(quick_study):
    html = (quick_study / "report.html").read_text()
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    for text in (html, md):
        for section in SECTIONS + ["Denoising"]:
            assert section in text, section
        assert report.PSNR_LABEL in text and report.PSNR_DATASET_LABEL in text
        assert "Failed trials" not in text
    assert "Partial results" not in md
    from autoenc.training.device import resolve_precision

    assert f"training arithmetic {resolve_precision('auto', torch.device('cpu'))}, every score in float32" in md
    for heading in SECTIONS + ["Denoising"]:
        assert re.search(rf"<h2 id=\"[a-z-]+\">{re.escape(heading)}", html), heading
    # the order of a results section: findings up front, timing and scheduling in the appendix
    order = [md.index(f"## {h}") for h in ("Headline findings", "Compression", "Regularization", "Denoising",
                                           "Appendix: every run", "Appendix: time per trial")]
    assert order == sorted(order)


def test_quick_report_is_self_contained(quick_study):
    html = (quick_study / "report.html").read_text()
    _assert_self_contained(html)
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    refs = re.findall(r"\]\((report_files/[^)]+)\)", md)
    assert len(refs) == len(_images(html))
    for ref in refs:
        assert (quick_study / ref).read_bytes()[:8] == PNG_MAGIC


def test_quick_report_recomputes_every_difference_from_the_csvs(quick_study):
    """Every difference report.md prints equals the one recomputed from results.csv and
    denoising.csv (means over the seeds, then the difference) to 0.005 dB, its spread too."""
    assert check_differences(quick_study) > 40


def test_quick_report_shows_every_method_of_denoising_csv(quick_study):
    check_every_method_has_a_number(quick_study)


def test_quick_md_tables_match_results(quick_study):
    rows = [r for r in _csv_rows(quick_study / "results.csv") if r["status"] == "ok"]
    tables = _md_tables((quick_study / "report.md").read_text())
    grid_tables = [t for t in tables if t and "depth" in t[0] and "psnr_dataset (dB)" in t[0]]
    cells = {(r["depth"], r["L"], r["psnr (dB)"], r["psnr_dataset (dB)"]) for t in grid_tables for r in t}
    seeds = {r["seed"] for r in rows if r["kind"] == "ae"}
    assert seeds == {0, 1}
    for r in [r for r in rows if r["phase"] == "grid"]:
        arm = [x for x in rows if x["phase"] == "grid" and x["dataset"] == r["dataset"] and x["depth"] == r["depth"]
               and x["latent"] == r["latent"]]
        assert len(arm) == 2
        psnr, psnr_dataset = (f"{statistics.fmean(x[k] for x in arm):.2f} ± {statistics.stdev(x[k] for x in arm):.2f}"
                              for k in ("psnr", "psnr_dataset"))
        assert (str(r["depth"]), str(r["latent"]), psnr, psnr_dataset) in cells, r["id"]
    for r in [r for r in rows if r["kind"] == "pca"]:
        assert ("PCA", str(r["latent"]), f"{r['psnr']:.2f}", f"{r['psnr_dataset']:.2f}") in cells
    runs = next(t for t in tables if t and "activation" in t[0])
    assert len(runs) == len(rows) and {r["trial"] for r in runs} == {r["id"] for r in rows}
    for column in ("activation", "norm (encoder / decoder)", "init", "schedule", "batch", "epochs (best)", "seed"):
        assert all(r[column] not in ("", "–") for r in runs if r["phase"] != "pca"), column


def test_quick_findings_name_the_winner(quick_study):
    rows = [r for r in _csv_rows(quick_study / "results.csv") if r["status"] == "ok"]
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    head = _section(md, "Headline findings")
    compression = next(line for line in head.splitlines() if line.startswith("- **Compression.**"))
    for dataset in ("mnist", "fashion-mnist"):
        best = Truth(quick_study).winner(dataset)
        part = next(p for p in compression.split(" — ") if f"{dataset}: " in p)
        assert f"validation chose depth {best[0]['depth']}, L = {best[0]['latent']}" in part
        assert f"psnr {statistics.fmean(r['psnr'] for r in best):.2f} ± " in part
    assert sum(r["kind"] == "ae" for r in rows) == 44 and sum(r["kind"] == "pca" for r in rows) == 4
    md_head = md.split("## Headline findings")[0]
    assert "Seeds: 2 training seeds (0, 1)" in md_head and "Ran on: " in md_head and "torch " in md_head
    assert "[results.csv](results.csv)" in md_head and "[denoising.csv](denoising.csv)" in md_head
    assert "[study.yaml](study.yaml)" in md_head
    assert "Wall time of every trial, summed over the 72 trials (autoencoders, PCA, the classical denoisers)" in md


# ------------------------------------------------------------------------------------------
# hand-made studies
# ------------------------------------------------------------------------------------------

def test_synthetic_report_findings_and_tables(tmp_path):
    study = make_study(tmp_path / "s")
    html_path, md_path = report.write_report(study)
    assert (html_path, md_path) == (study / "report.html", study / "report.md")
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    _assert_self_contained(html)
    assert check_differences(study) > 30
    check_every_method_has_a_number(study)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "validation chose depth 5, L = 30: psnr 21.00 ± 0.07 dB" in text
    # depth: −0.50 and +1.00 dB against a spread of 0.10 dB
    assert "depth 5 − depth 3: −0.50 ± 0.10 dB at L = 15, +1.00 ± 0.10 dB at L = 30; depth 5 wins at L = 30 and " \
           "loses at L = 15" in text
    assert "+2.00 ± 0.07 dB over PCA with k = 30; against PCA with k = L the best depth at each L is above at " \
           "every L" in text
    # denoising: the best AE against the strongest baseline, bm3d (a subset-only method) on the subset
    margins = findings.denoising_margins(findings.load_study(study), "mnist")
    assert [(m["baseline"], m["on_subset"]) for m in margins] == [("bm3d", True), ("bm3d", True)]
    assert margins[0]["margin"].value == pytest.approx((21.0 - 0.4 + 0.05) - (18.2 - 0.4))
    reg = next(t for t in _md_tables(md) if t and "Hoyer sparsity" in t[0])
    by = {r["setting"]: r for r in reg}
    assert list(by) == ["grid's model", "none", "l2 = 1e-05", "l2 = 0.0001", "l1 = 1e-05", "l1 = 0.0001",
                        "l2 = 1e-05 + l1 = 1e-05"]
    assert by["l1 = 0.0001"]["Hoyer sparsity"] == "0.55 ± 0.01" and by["none"]["Hoyer sparsity"] == "0.22 ± 0.01"
    assert by["l1 = 0.0001"]["mean |E|"] == "0.200 ± 0.000" and by["l1 = 0.0001"]["entries < 1% of max (%)"] == \
        "30.0 ± 0.0"
    assert "✓ l2" in by["l2 = 1e-05"]["validation"] and "★ best" in by["l2 = 1e-05"]["validation"]
    assert by["l1 = 1e-05"]["validation"] == "best l1 tried, not above none"
    assert by["grid's model"]["psnr − none (dB)"] == "+0.20 ± 0.10"  # what the penalty design costs here
    assert "Failed trials" not in md and "Partial results" not in md


def test_a_difference_within_the_seeds_spread_is_a_tie(tmp_path):
    """Every arm's seeds differ by ±0.05 dB (sd 0.071): a difference of 0.05 dB lies within its
    0.10 dB spread (a tie); 0.5 dB does not. With one seed there is no spread and no verdict."""
    study = make_study(tmp_path / "s", denoising=False)
    loaded = findings.load_study(study)
    settings = dict(findings.regularization_arms(loaded, "mnist"))
    assert findings.claims(settings["none"], settings["l2 = 1e-05"])["psnr"].sign == 0
    assert findings.claims(settings["none"], settings["l2 = 0.0001"])["psnr"].sign == -1
    tables = _md_tables(report.write_report(study)[1].read_text())
    depth = next(t for t in tables if t and "verdict" in t[0] and "L" in t[0])
    assert [(r["L"], r["depth 5 − depth 3 (dB)"], r["verdict"]) for r in depth] == [
        ("15", "−0.50 ± 0.10", "depth 5 loses"), ("30", "+1.00 ± 0.10", "depth 5 wins")]
    one = make_study(tmp_path / "one", denoising=False, seeds=1)
    md = report.write_report(one)[1].read_text()
    depth = next(t for t in _md_tables(md) if t and "verdict" in t[0] and "L" in t[0])
    assert [(r["depth 5 − depth 3 (dB)"], r["verdict"]) for r in depth] == [
        ("−0.50", "one seed: no verdict"), ("+1.00", "one seed: no verdict")]
    assert "Every autoencoder ran with one training seed (0)" in md
    assert check_differences(one) > 10


@pytest.mark.parametrize("kind", ["empty", "run folder", "missing"])
def test_report_refuses_a_folder_that_is_not_a_study(tmp_path, kind, capsys):
    """An empty folder, a training run folder or no folder at all: an error naming the folder and
    what to run, exit status 2 from the CLI, and nothing written there."""
    from autoenc.cli import main
    from autoenc.errors import ConfigError

    folder = tmp_path / "mnist-d5-L30-s0"
    if kind != "missing":
        folder.mkdir()
    if kind == "run folder":
        (folder / "config.json").write_text(json.dumps({"dataset": "mnist"}))
        (folder / "history.jsonl").write_text("")
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else None
    with pytest.raises(ConfigError) as err:
        report.write_report(folder)
    message = str(err.value)
    assert message.startswith(f"{folder} is not a study folder")
    assert "autoenc study hydra.run.dir=" in message
    if kind != "missing":
        assert "it holds no study.yaml" in message
        assert ("training run folder (config.json)" in message) == (kind == "run folder")
        assert ("it is empty" in message) == (kind == "empty")
        with pytest.raises(SystemExit) as stop:
            main(["report", str(folder)])
        assert stop.value.code == 2 and f"error: {folder} is not a study folder" in capsys.readouterr().err
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == before
def test_robustness_is_judged_by_noisy_input_psnr_too(tmp_path):
    """l2 = 1e-4 shrinks the drop from clean to noisy input (−0.40 -> −0.10 dB) while its noisy-input
    psnr falls (20.40 -> 20.20 dB): not more robust, whatever the drop says."""
    study = make_study(tmp_path / "s", denoising=False)
    md = report.write_report(study)[1].read_text()
    claims = {r["setting"]: r for t in _md_tables(md) if t and "gap − none (dB)" in t[0] for r in t}
    row = claims["l2 = 0.0001"]
    assert (row["noisy-input psnr − none (dB)"], row["drop − none (dB)"]) == ("−0.20 ± 0.10", "+0.30 ± 0.00")
    assert row["verdict"] == ("less overfitting (narrower gap); a smaller drop but worse on noisy inputs: not more "
                              "robust")
    # better on clean and noisy inputs alike (l1 = 1e-5 +0.30 dB on both): the same drop, not more robust
    _edit_rows(study, lambda r: r.update(psnr=r["psnr"] + 0.5, noisy_psnr=r["noisy_psnr"] + 0.5,
                                         train_psnr=r["train_psnr"] + 0.5)
               if r["phase"] == "l1" and r["l1"] == 1e-5 else None)
    md = report.write_report(study)[1].read_text()
    claims = {r["setting"]: r for t in _md_tables(md) if t and "gap − none (dB)" in t[0] for r in t}
    assert claims["l1 = 1e-05"]["verdict"].endswith("better on noisy inputs, not more robust: the drop is not smaller")


def test_a_regularizer_is_chosen_only_when_it_beats_no_regularization(tmp_path):
    """The best l2 tried (mean validation psnr 21.05 dB) beats none (20.80 dB): chosen. The best
    l1 tried (20.75 dB) does not; then at 20.8004 dB it does, by 0.0004 dB on the unrounded means."""
    study = make_study(tmp_path / "s", denoising=False)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "validation prefers l2 = 1e-05 (validation psnr +0.25 ± 0.10 dB over none)" in text
    assert "validation prefers none to every l1 tried" in text
    _edit_rows(study, lambda r: r.update(val_psnr=r["val_psnr"] + 0.0504) if r["phase"] == "l1" and r["l1"] == 1e-5
               else None)
    choices = findings.regularizer_choices(findings.load_study(study), "mnist")
    assert {p: (arm[0]["id"], chosen) for p, (arm, chosen, _) in choices.items()} == {
        "l2": ("mnist-d5-L30-l2_1e-05-0000abcd", True), "l1": ("mnist-d5-L30-l1_1e-05-0000abcd", True)}
    assert choices["l1"][2].value == pytest.approx(0.0004)


def test_no_code_histogram_without_l1(tmp_path):
    """A study with l2 only (l1: []): the histogram "with and without l1" would show one curve under
    that title, so the report leaves it out."""
    study = make_study(tmp_path / "s", denoising=False)
    rows = [r for r in json.loads((study / "results.json").read_text()) if r["phase"] not in ("l1", "l2+l1")]
    (study / "results.json").write_text(json.dumps(rows))
    write_tables(study)
    for trial in (study / "trials").iterdir():
        if "-l1_" in trial.name:
            shutil.rmtree(trial)
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    assert "l2 = 0.0001" in _section(md, "Regularization")
    assert "code-histogram" not in md and "with each l1" not in md


def test_a_negative_gap_has_the_same_minus_sign_as_every_difference(tmp_path):
    assert findings.db(-0.1) == "−0.10" and findings.db(21.0) == "21.00"
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(train_psnr=r["psnr"] - 0.1) if r["phase"] == "l1" and r["l1"] == 1e-5
               else None)
    md = report.write_report(study)[1].read_text()
    claims = {r["setting"]: r for t in _md_tables(md) if t and "gap − none (dB)" in t[0] for r in t}
    assert claims["l1 = 1e-05"]["gap (dB)"] == "−0.10 ± 0.00"
    assert not re.search(r"(?<![\w.])-\d", _section(md, "Regularization"))
    check_differences(study)


def test_the_report_names_what_limits_its_findings(tmp_path):
    """Models still improving at the budget's end, the blind denoiser's longer training, the
    denoisers' other architecture, and every baseline defined (linear: supervised)."""
    study = make_study(tmp_path / "s")
    _edit_rows(study, lambda r: r.update(epochs_run=6, best_epoch=6, epochs=6) if r["phase"] == "blind" else None)
    _edit_rows(study, lambda r: r.update(best_epoch=2) if r["id"] == "mnist-d3-L15-0000abcd" else None)
    md = report.write_report(study)[1].read_text()
    limits = _section(md, "Headline findings").split("**What limits them**", 1)[1]
    assert "25 of 26 autoencoders had their best validation epoch at their last one" in limits
    assert "the blind denoiser trained 6 epochs against 3 for the per-level ones" in limits
    den = " ".join(_section(md, "Denoising").split())
    assert "**linear**: an affine LMMSE denoiser" in den and "supervised" in den and "not a classical filter" in den
    for method in ("noisy", "gaussian", "nlm", "bm3d", "dae", "dae-blind", "ae"):
        assert f"**{report.AE_LABELS.get(method, method)}**: " in den, method
    assert "the blind denoiser trained **6 epochs**" in den


def test_denoising_tables_show_ssim_beside_psnr_and_every_method_on_the_subset(tmp_path):
    """bm3d ran on the 100-image subset only: its numbers are in the subset table beside every other
    method's on the same images (it is never "not run"); SSIM beside psnr at each level."""
    study = make_study(tmp_path / "s")
    md = report.write_report(study)[1].read_text()
    den = [(h3, rows) for h2, h3, _, rows in _located_tables(md) if h2 == "Denoising" and rows
           and next(iter(rows[0])) == "method" and list(rows[0])[1].endswith(" psnr")]
    assert len(den) == 2
    (_, full), (_, subset) = den
    assert list(full[0])[1:] == ["σ²=0.04 (σ=0.20) psnr", "σ²=0.04 (σ=0.20) SSIM", "σ²=0.16 (σ=0.40) psnr",
                                 "σ²=0.16 (σ=0.40) SSIM"]
    assert "bm3d" not in {r["method"] for r in full}
    sub = {r["method"].strip("*"): r for r in subset}
    assert set(sub) == {"noisy", "gaussian", "nlm", "linear", "bm3d", "dae (per-level)", "dae-blind (all levels)",
                        "ae (plain, noisy input)"}
    assert sub["bm3d"]["σ²=0.04 (σ=0.20) psnr"] == "17.80" and sub["bm3d"]["σ²=0.04 (σ=0.20) SSIM"] == "0.450"
    assert "Not run" not in md
    margins = next(t for t in _md_tables(md) if t and "margin (dB)" in t[0])
    assert margins[0]["strongest baseline psnr (dB)"] == "bm3d (subset): 17.80"
    missing = make_study(tmp_path / "m", bm3d=False)
    md = report.write_report(missing)[1].read_text()
    assert "Not run: bm3d: bm3d not installed: pip install 'autoenc[bm3d]'." in md
    check_every_method_has_a_number(missing)


@pytest.mark.parametrize("gpu, words", [
    ({"3": 100, "5": 100}, "epochs (depth 3: 3, depth 5: 3 on a CPU; depth 3: 100, depth 5: 100 on a GPU);"),
    (None, "epochs (depth 3: 3, depth 5: 3);"),  # null: a GPU trains the same epochs
    ({"3": 3, "5": 3}, "epochs (depth 3: 3, depth 5: 3);"),
])
def test_the_header_gives_the_gpu_budget_beside_the_cpu_one(tmp_path, gpu, words):
    study = findings.load_study(make_study(tmp_path / "s", denoising=False))
    study.config["gpu_epochs"] = gpu
    assert words in str(report.header_section(study))


def test_the_header_says_what_ran_the_study(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    md = report.write_report(study)[1].read_text()
    head = md.split("## Headline findings")[0]
    assert ("Ran on: Test CPU, 2 cores, no GPU used; training arithmetic fp32, every score in float32. Software: "
            "autoenc 0.1.0 at commit 0123456789ab; Python 3.11.7; torch 2.13.0, numpy 2.4.6; Linux.") in head
    summary = json.loads((study / "summary.json").read_text())
    del summary["environment"]
    (study / "summary.json").write_text(json.dumps(summary))
    assert "Ran on: not recorded" in report.write_report(study)[1].read_text()


def test_sections_say_which_test_images_they_are_on(tmp_path):
    study = make_study(tmp_path / "s")
    md = report.write_report(study)[1].read_text()
    assert "Test split" not in md
    assert "test scores on the first 300 test images (the study's subset.test)" in _section(md, "Compression")
    assert "scored on the first 300 test images (the study's subset.test), about 30 per class." in _section(
        md, "Per-class PSNR")
    assert "train psnr on the first 2,000 training images" in _section(md, "Regularization")
    summary = json.loads((study / "summary.json").read_text())
    del summary["study"]["subset"]
    (study / "summary.json").write_text(json.dumps(summary))
    md = report.write_report(study)[1].read_text()
    assert "scored on the 300 test images (the whole test split), about 30 per class." in md
    assert "train psnr on the first 10,000 training images" in md


def test_a_study_without_pca_shows_no_pca_and_sub_second_times(tmp_path):
    study = make_study(tmp_path / "s", denoising=False, pca=False)
    _edit_rows(study, lambda r: r.update(seconds=0.02))
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    for heading in ("Headline findings", "Compression", "Per-class PSNR"):
        assert "PCA" not in _section(md, heading), heading
    grid = next(t for t in _md_tables(md) if t and "psnr_dataset (dB)" in t[0] and "depth" in t[0])
    assert list(grid[0]) == ["depth", "L", "seeds", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "SSIM",
                             "epochs (best)", "seconds", "parameters", "chosen"]
    per_class = next(t for t in _md_tables(md) if t and "class" in t[0])
    assert list(per_class[0]) == ["class", "autoencoder psnr (dB)"]
    assert "Training time of the 20 autoencoders, summed: 0.4 s (training and fitting only" in md  # 20 × 0.02 s
    assert "fitting time of the" not in md


def test_data_without_labels_has_no_per_class_section(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(per_class_psnr={}))
    for trial in (study / "trials").iterdir():
        result = json.loads((trial / "result.json").read_text())
        (trial / "result.json").write_text(json.dumps({**result, "per_class_psnr": {}}))
    os.utime(study / "results.json")  # results.json stays the newest file
    html_path, md_path = report.write_report(study)
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    assert "Per-class" not in md and "Per-class" not in html and "per-class" not in html
    assert "## Training curves" in md and "## Appendix: time per trial" in md


def test_a_study_without_a_grid_states_its_denoising_findings(tmp_path):
    study = make_study(tmp_path / "s")
    gone = {"grid", "unpenalized", "l2", "l1", "l2+l1"}
    for trial in (study / "trials").iterdir():
        if json.loads((trial / "result.json").read_text()).get("phase") in gone:
            shutil.rmtree(trial)
    rows = [r for r in json.loads((study / "results.json").read_text()) if r["phase"] not in gone]
    summary = json.loads((study / "summary.json").read_text())
    summary["study"].update(depths=[], denoising={**summary["study"]["denoising"],
                                                  "architecture": {"depth": 5, "latent": 30}})
    summary.update(trials_total=len(rows) + 2, trials_done=len(rows) + 2)
    (study / "summary.json").write_text(json.dumps(summary))
    (study / "results.json").write_text(json.dumps(rows))
    dens = [d for d in json.loads((study / "denoising.json").read_text()) if d["method"] != "ae"]
    (study / "denoising.json").write_text(json.dumps(dens))
    write_tables(study)
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    found = _section(md, "Headline findings")
    assert "at σ² = 0.04 (dae − bm3d on the subset)" in found
    assert "this study has no compression grid" in found and "No finished compression model yet" not in found
    assert "yet" not in md.split("## Appendix: time per trial")[0]
    assert "this study has no compression grid" in _section(md, "Regularization")


def test_denoising_without_baselines_is_still_a_finding(tmp_path):
    study = make_study(tmp_path / "s")
    rows = [d for d in json.loads((study / "denoising.json").read_text()) if d["method"] in report.AE_METHODS]
    (study / "denoising.json").write_text(json.dumps(rows))
    write_tables(study)
    for trial in (study / "trials").iterdir():
        if "baselines" in trial.name:
            shutil.rmtree(trial)
    os.utime(study / "results.json")
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("no classical baseline was run, so there is nothing to compare the autoencoders with; the best of them "
            "reaches 20.60 ± 0.07 dB (dae) at σ² = 0.04 (σ = 0.20) and 19.40 ± 0.07 dB (dae) at σ² = 0.16 "
            "(σ = 0.40)") in text
    assert "the blind denoiser − the per-level ones" not in text  # said only beside a comparison


def test_the_findings_say_when_the_autoencoders_make_the_noisy_images_worse(tmp_path):
    study = make_study(tmp_path / "s")
    assert "adds error instead of removing it" not in findings.findings_text(findings.load_study(study), "mnist")
    rows = json.loads((study / "denoising.json").read_text())
    for d in rows:
        if d["method"] == "noisy" and d["noise_var"] == 0.04:
            d["psnr"] = 21.0  # above the best autoencoder's 20.60 dB at this level
    (study / "denoising.json").write_text(json.dumps(rows))
    write_tables(study)
    os.utime(study / "results.json")
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("at σ² = 0.04 (−0.40 ± 0.07 dB against the noisy input) even the best autoencoder's output is further "
            "from the clean images than its noisy input: it adds error instead of removing it") in text
    report.write_report(study)
    check_differences(study)


def test_the_two_time_totals_say_what_they_sum(tmp_path):
    """26 autoencoders: the 8 grid trials, stacks of 4 (8 s, which each records: 16 s), and 18 more of
    1.5 s: 43 s of training; 2 PCA fits of 0.5 s. Whole trials: 26 × 2.0 + 2 × 0.6 + 2 baseline trials
    × 3.0 = 59.2 s of wall time."""
    study = make_study(tmp_path / "s")
    _edit_rows(study, lambda r: r.update(seconds=8.0, stacked=4) if r["phase"] == "grid" else None)
    md = report.write_report(study)[1].read_text()
    assert ("Training time of the 26 autoencoders, summed: 43 s; fitting time of the 2 PCA models, summed: 1.0 s "
            "(training and fitting only: not evaluation, not the classical denoisers;") in md
    assert ("Wall time of every trial, summed over the 30 trials (autoencoders, PCA, the classical denoisers): 59 s. "
            "A trial's wall time is all of it") in _section(md, "Appendix: time per trial")
    assert [findings.fmt_duration(s) for s in (0.0, 0.01, 0.36, 9.94, 42.0, 750.0)] == [
        "0.0 s", "< 0.1 s", "0.4 s", "9.9 s", "42 s", "12.5 min (750 s)"]


def test_the_schedule_shows_what_each_worker_did_in_the_latest_run(tmp_path):
    """Worker A trains a stack of two grid models from 2 to 12 s and scores them until 13 and 14 s;
    worker B fits PCA from 1 to 3 s and runs one baseline trial from 3 to 9 s; a trial of an earlier
    run of the study is left out."""
    study = make_study(tmp_path / "s", denoising=False)
    t0 = 1_700_000_000.0
    summary = json.loads((study / "summary.json").read_text())
    (study / "summary.json").write_text(json.dumps({**summary, "started_at": t0}))
    rows = json.loads((study / "results.json").read_text())
    stack = [r for r in rows if r["phase"] == "grid"][:2]
    pca = [r for r in rows if r["kind"] == "pca"][:2]
    for r, end in zip(stack, (13.0, 14.0)):
        r.update(worker="host:1", started_at=t0 + 2, trained_at=t0 + 12, finished_at=t0 + end, seconds=9.0)
    pca[0].update(worker="host:2", started_at=t0 + 1, finished_at=t0 + 3)
    pca[1].update(worker="host:2", started_at=t0 - 50, finished_at=t0 - 40)  # the earlier run
    (study / "results.json").write_text(json.dumps(rows))
    write_tables(study)
    baseline = {"id": "mnist-baselines-noise0.04-tv-0000abcd", "kind": "baselines", "phase": "baselines",
                "dataset": "mnist", "noise_var": 0.04, "rows": [], "status": "ok", "wall_seconds": 6.0,
                "worker": "host:2", "started_at": t0 + 3, "finished_at": t0 + 9}
    (study / "trials" / baseline["id"]).mkdir(parents=True)
    (study / "trials" / baseline["id"] / "result.json").write_text(json.dumps({**baseline, "trial": {}}))

    jobs, stats = report.timeline(findings.load_study(study))
    assert [(j["worker"], j["start"], j["trained"], j["end"], j["trials"]) for j in jobs] == [
        ("host:2", 1.0, None, 3.0, 1), ("host:1", 2.0, 12.0, 14.0, 2), ("host:2", 3.0, None, 9.0, 1)]
    assert stats["trials"] == 4 and stats["workers"] == 2 and stats["span"] == 14.0
    capacity = 2 * 14.0
    assert stats["training"] == pytest.approx(10 / capacity) and stats["evaluation"] == pytest.approx(2 / capacity)
    assert stats["other"] == pytest.approx(8 / capacity) and stats["busy"] == pytest.approx(20 / capacity)
    assert stats["first_start"] == 1.0 and stats["last_ae_end"] == 14.0
    assert stats["setup_median"] == pytest.approx(1.0)
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    schedule = _section(md, "Appendix: how the trials were scheduled")
    assert "4 trials (1 stack of trials trained together) on 2 workers, 14 s" in schedule
    assert "busy 71% of that time: training autoencoders 36%, scoring them 7%, PCA and the classical baselines 29%" \
        in schedule
    assert "(report_files/timeline.png)" in schedule and (study / "report_files" / "timeline.png").is_file()


def test_a_study_without_timestamps_says_it_has_no_timeline(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    assert report.timeline(findings.load_study(study)) == ([], {})
    assert "No trial of the latest run has a timeline" in report.write_report(study)[1].read_text()


def test_figures_are_drawn_at_twice_their_display_size(tmp_path):
    """Sharp on high-DPI screens: every PNG is shown at half its pixel width and height."""
    from autoenc.report.render import png_size

    study = make_study(tmp_path / "s")
    html = report.write_report(study)[0].read_text()
    shown = re.findall(r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', html)
    assert len(shown) == len(_images(html)) > 5
    for data, w, h in shown:
        pw, ph = png_size(base64.b64decode(data))
        assert pw - 2 * int(w) in (0, 1) and ph - 2 * int(h) in (0, 1), (pw, ph, w, h)


def test_the_runs_table_sorts_and_links_the_files(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    html = report.write_report(study)[0].read_text()
    assert '<table class="sortable">' in html and "<script>" in html and "aria-sort" in html
    for name in ("results.csv", "denoising.csv", "study.yaml"):
        if (study / name).is_file():
            assert f'<a href="{name}">{name}</a>' in html, name


def test_two_datasets_and_markdown_images(tmp_path):
    study = make_study(tmp_path / "s", datasets=("mnist", "fashion-mnist"))
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    assert " — fashion-mnist: " in _section(md, "Headline findings")
    check_differences(study)
    refs = re.findall(r"\]\((report_files/[^)]+)\)", md)
    assert len(refs) == len(set(refs)) and all((study / r).is_file() for r in refs)
    stale = study / "report_files" / "old.png"
    stale.write_bytes(PNG_MAGIC)
    report.write_report(study)
    assert not stale.exists(), "figures no longer referenced are removed"


def test_failed_trial_is_listed(tmp_path):
    study = make_study(tmp_path / "s", failed=True)
    html_path, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "## Failed trials" in md and "loss became NaN at epoch 2" in md
    assert "mnist-d5-L30-l1_0.0001-0000abcd" in md.split("## Failed trials", 1)[1]
    assert "1 failed" in md
    assert "Failed trials" in html_path.read_text()


def test_study_without_denoising(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    html_path, md_path = report.write_report(study)
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    assert "## Denoising" not in md and ">Denoising<" not in html
    for section in SECTIONS:
        assert f"## {section}" in md


def test_partial_study_renders(tmp_path):
    study = make_study(tmp_path / "s")
    for name in ("results.json", "denoising.json", "summary.json", "results.csv", "denoising.csv"):
        (study / name).unlink()
    for trial in (study / "trials").iterdir():
        if "-l1_" in trial.name or "blind" in trial.name or "d5-L15" in trial.name:
            shutil.rmtree(trial)
    (study / "study.yaml").write_text("name: partial\ndatasets: [mnist]\ndepths: [3, 5]\nlatents: [15, 30]\n"
                                      "denoising:\n  variances: [0.04, 0.16]\n")
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    assert "Partial results" in md and "autoenc study report: partial" in md
    assert "validation chose depth 5, L = 30" in md
    assert f"**{report.AE_LABELS['dae-blind']}**" not in md and f"**{report.AE_LABELS['dae']}**" in md
    assert "| 5 | 15 |" not in md  # the missing grid cell is simply absent


def test_running_study_adds_trials_newer_than_results(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    rows = json.loads((study / "results.json").read_text())
    (study / "results.json").write_text(json.dumps([r for r in rows if r["phase"] != "l2+l1"]))
    old = time.time() - 60
    os.utime(study / "results.json", (old, old))
    stale = study / "trials" / "mnist-stale-trial"  # an older leftover not in results.json: ignored
    stale.mkdir()
    late = next(r for r in rows if r["phase"] == "l2+l1")
    (stale / "result.json").write_text(json.dumps({**late, "id": "mnist-stale-trial", "phase": "grid"}))
    os.utime(stale / "result.json", (old - 60, old - 60))
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    assert "l2 = 1e-05 + l1 = 1e-05" in md
    assert "Partial results" in md
    assert "mnist-stale-trial" not in md


def test_empty_study_renders(tmp_path):
    study = tmp_path / "empty"
    study.mkdir()
    (study / "study.yaml").write_text("name: empty\ndatasets: [mnist]\n")
    html_path, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "Partial results" in md and "No finished compression model yet" in md
    assert "<script" not in html_path.read_text()  # no sortable table, no script


def test_cli_report(tmp_path, capsys):
    from autoenc.cli import main

    study = make_study(tmp_path / "s", denoising=False)
    with pytest.raises(SystemExit) as stop:
        main(["report", str(study)])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"wrote {study / 'report.html'} and ")
    assert (study / "report.html").is_file() and (study / "report.md").is_file()


def test_a_failing_section_does_not_stop_the_report(tmp_path, monkeypatch):
    def broken_section(study):
        raise RuntimeError("unexpected numbers")

    monkeypatch.setattr(report, "SECTIONS", (report.headline_section, broken_section, report.failed_section))
    study = make_study(tmp_path / "s", denoising=False)
    md = report.write_report(study)[1].read_text()
    assert "## Headline findings" in md and "## Broken" in md
    assert f"{report.SECTION_FAILED} (RuntimeError: unexpected numbers)" in md
